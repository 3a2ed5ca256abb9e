/* fuzz_png.c — a folder of PNGs through libpng and data_load.
 *
 * Input: a 2-byte length, the first PNG, then the second (when not empty):
 * a.png and b.png of one folder. Whatever loads is 32x32, grey or RGB. */
#include "fuzz.h"
#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t n = (size_t)(data[0] | data[1] << 8);
    data += 2;
    size -= 2;
    if (n > size) n = size;
    fuzz_file("a.png", data, n);
    if (size > n) fuzz_file("b.png", data + n, size - n);
    else fuzz_remove("b.png");
    Dataset d;
    Error err;
    if (data_load(&d, fuzz_dir(), 1, &err) == 0) {
        if (d.n < 1 || d.n > 2 || (d.c != 1 && d.c != 3) || d.h != 32 || d.w != 32) abort();
        volatile unsigned s = 0;
        for (size_t i = 0; i < (size_t)d.n * d.c * 32 * 32; i++) s += d.pixels[i];
        (void)s;
        data_free(&d);
    }
    return 0;
}
