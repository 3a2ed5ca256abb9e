/* data.h — training images: CIFAR-10, MNIST / Fashion-MNIST, a folder of PNGs.
 *
 * Appendix of the book (book/appendix_data.md). Every data set comes out as
 * [n, c, 32, 32] bytes (28x28 images padded with 2 pixels of background),
 * which data_batch turns into reals in [-1, 1] (x / 127.5 - 1, as the paper)
 * with optional random horizontal flips. Every file is validated (sizes,
 * counts, magic numbers); a problem is one sentence naming the file.
 */
#ifndef DDPM_DATA_H
#define DDPM_DATA_H

#include "00_tensor.h"

typedef struct Dataset {
    char name[64];            // "CIFAR-10", "CIFAR-10 (JPEG q75 copy)", "MNIST",
                              // "Fashion-MNIST" or "PNG folder": print it with results
    char path[512];           // where it was read from
    int n, c, h, w;           // n images of c x h x w (h = w = 32)
    unsigned char *pixels;    // [n, c, h, w]
    unsigned char *labels;    // [n], or NULL (PNG folders)
} Dataset;

// path: a folder with CIFAR-10 binary batches (data_batch_1..5.bin,
// test_batch.bin), a folder with MNIST-format IDX files (*-images-idx3-ubyte
// [.gz]), or a folder of PNGs; NULL or "" picks the default (see
// data_default_path). `train` picks the training or the test split (PNG
// folders have one split and ignore it). Returns 0, or -1 with one sentence
// naming the file in err and *d left empty (data_free on it is harmless).
int  data_load(Dataset *d, const char *path, int train, Error *err);
void data_free(Dataset *d);
// The data set used when none is given: $DDPM_DATA, else build/data/cifar-10-batches-bin
// if present, else Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist).
const char *data_default_path(void);

// x [B, c, h, w] = images idx[0..B) scaled to [-1, 1]; each flipped
// left-right with probability 1/2 when rng is not NULL.
void data_batch(const Dataset *d, real *x, const int *idx, int B, Rng *rng);

#endif
