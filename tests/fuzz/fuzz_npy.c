/* fuzz_npy.c — npy_read on arbitrary bytes (NumPy's .npy, version 1.0:
 * magic, header length, a Python dict literal, data). What it accepts has
 * as many values as its shape says. */
#include "fuzz.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("a.npy", data, size);
    NpyArray a;
    Error err;
    if (npy_read(path, &a, &err) < 0) return 0;
    size_t n = 1;
    for (int i = 0; i < a.ndim; i++) n *= (size_t)a.shape[i];
    if (n != a.size) abort();
    volatile real sum = 0;
    for (size_t i = 0; i < a.size; i++) sum += a.data[i];   // every value readable
    (void)sum;
    npy_free(&a);
    return 0;
}
