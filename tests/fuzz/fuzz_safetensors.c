/* fuzz_safetensors.c — st_open and the tensor readers on arbitrary bytes.
 *
 * A checkpoint file: header length, JSON header (names, dtypes, shapes,
 * offsets, metadata), data. Whatever st_open accepts must be safe to use:
 * every entry found by name, read with its own shape, converted from its
 * dtype; the parameters of a small network loaded by name. */
#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("f.safetensors", data, size);
    StFile f;
    Error err;
    if (st_open(path, &f, &err) < 0) return 0;
    for (int i = 0; i < f.n_entries; i++) {
        const StEntry *e = &f.entries[i];
        if (st_find(&f, e->name) != e) abort();   // names are unique and found
        int shape[TENSOR_MAX_DIMS], ok = e->ndim <= TENSOR_MAX_DIMS && e->count <= (1u << 20);
        for (int d = 0; ok && d < e->ndim; d++) {
            ok = e->shape[d] >= 0 && e->shape[d] <= (1 << 20);
            if (ok) shape[d] = (int)e->shape[d];
        }
        if (!ok) continue;
        real *buf = malloc((e->count ? e->count : 1) * sizeof(real));
        if (st_read_tensor(&f, e->name, buf, e->ndim, shape, &err) < 0) abort();
        free(buf);
    }
    (void)st_meta(&f, "format");
    (void)st_meta(&f, "ddpm.config");
    // A small set of parameters, filled by name where the file has them.
    ParamSet ps;
    params_init(&ps);
    params_add(&ps, "a", 2, (int[]){2, 3});
    params_add(&ps, "b", 1, (int[]){4});
    params_add(&ps, "conv_in.weight", 4, (int[]){2, 1, 3, 3});
    params_alloc(&ps);
    (void)st_load_params(&f, &ps, "", 0, &err);
    (void)st_load_params(&f, &ps, "train.ema.", 1, &err);
    params_free(&ps);
    st_close(&f);
    return 0;
}
