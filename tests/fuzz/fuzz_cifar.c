/* fuzz_cifar.c — the CIFAR-10 binary loader on arbitrary batch files.
 *
 * A real batch holds 10,000 records of 3073 bytes (30 MB), too large to
 * fuzz quickly, so this harness compiles data.c itself with 3 records per
 * batch: the same checks (file sizes, record counts, labels 0..9) on
 * files of 9219 bytes. The input is split into the test batch and the
 * five training batches (a 2-byte length before each part). */
#define CIFAR_RECORDS 3
#include "../../src/data.c"
#include "fuzz.h"

static const uint8_t *take(const uint8_t **data, size_t *size, size_t *len)
{
    size_t n = *size >= 2 ? (size_t)((*data)[0] | (*data)[1] << 8) : 0;
    const uint8_t *p = *data + (*size >= 2 ? 2 : *size);
    size_t rest = *size >= 2 ? *size - 2 : 0;
    if (n > rest) n = rest;
    *len = n;
    *data = p + n;
    *size = rest - n;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *names[] = {"test_batch.bin", "data_batch_1.bin", "data_batch_2.bin",
                           "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
    for (int i = 0; i < 6; i++) {
        size_t len;
        const uint8_t *part = take(&data, &size, &len);
        if (len || i == 0) fuzz_file(names[i], part, len);
        else fuzz_remove(names[i]);   // a missing batch
    }
    for (int train = 0; train < 2; train++) {
        Dataset d;
        Error err;
        if (data_load(&d, fuzz_dir(), train, &err) == 0) {
            if (d.n != (train ? 5 : 1) * CIFAR_RECORDS || d.c != 3) abort();
            for (int i = 0; i < d.n; i++)
                if (d.labels[i] > 9) abort();
            data_free(&d);
        }
    }
    return 0;
}
