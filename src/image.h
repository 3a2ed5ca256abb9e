/* image.h — image output: a batch of images as one PNG grid.
 *
 * Appendix of the book (book/appendix_data.md, "Writing images"). The
 * inverse of data_batch (data.h): values in [-1, 1] back to bytes 0..255,
 * laid out in a grid and written as an 8-bit grey or RGB PNG with libpng.
 */
#ifndef DDPM_IMAGE_H
#define DDPM_IMAGE_H

#include "00_tensor.h"

// A grid of images x [n, c, h, w] in [-1, 1] as one PNG: cols per row (at
// most n), 2-pixel gutters of mid grey around every image, values clipped to
// [-1, 1] and rounded to 0..255. c = 1 (grey) or 3 (RGB). Written atomically
// (temp file, rename): a failed write leaves an existing file unchanged.
int image_write_grid(const char *path, const real *x, int n, int c, int h, int w,
                     int cols, Error *err);

#endif
