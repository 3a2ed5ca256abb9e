/* fuzz_idx.c — the MNIST / Fashion-MNIST IDX loader, plain and gzipped.
 *
 * Input: a flag byte, a 2-byte length, the images file, then the labels
 * file. Flag bit 0 (images) and bit 1 (labels) write that file gzipped
 * (a valid stream of the fuzzer's bytes, *.gz); otherwise it is written as
 * is under the plain name, or, with bit 2 (images) / bit 3 (labels), under
 * the .gz name, so zlib meets arbitrary (mostly corrupt) gzip streams. */
#include <zlib.h>

#include "fuzz.h"
#include "data.h"

static void put(const char *plain, int mode, const uint8_t *p, size_t n)
{
    char gzname[96];
    snprintf(gzname, sizeof gzname, "%s.gz", plain);
    fuzz_remove(plain);
    fuzz_remove(gzname);
    if (mode == 1) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", fuzz_dir(), gzname);
        gzFile gz = gzopen(path, "wb1");
        if (!gz || (n && gzwrite(gz, p, (unsigned)n) != (int)n) || gzclose(gz) != Z_OK) abort();
    } else {
        fuzz_file(mode == 2 ? gzname : plain, p, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int flags = data[0];
    size_t n = (size_t)(data[1] | data[2] << 8);
    data += 3;
    size -= 3;
    if (n > size) n = size;
    put("train-images-idx3-ubyte", flags & 1 ? 1 : flags & 4 ? 2 : 0, data, n);
    put("train-labels-idx1-ubyte", flags & 2 ? 1 : flags & 8 ? 2 : 0, data + n, size - n);
    Dataset d;
    Error err;
    if (data_load(&d, fuzz_dir(), 1, &err) == 0) {
        if (d.n < 1 || d.c != 1 || d.h != 32) abort();
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] > 9) abort();
        data_free(&d);
    }
    return 0;
}
