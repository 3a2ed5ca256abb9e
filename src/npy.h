/* npy.h — arrays in NumPy's .npy format (read and write).
 *
 * Support file; the book's appendix (book/appendix_io.md) explains it.
 * Notebooks write their data as .npy; golden files and cross-checks with
 * NumPy come back the same way.
 *
 *   npy_write   float32 ('<f4'), C order, format version 1.0, atomically;
 *               byte for byte what np.save writes for a float32 array
 *   npy_read    '<f4' '<f8' '<i4' '<i8' '|u1' in C order, versions 1-3,
 *               converted to real into a malloc'd buffer; npy_free releases it
 */
#ifndef DDPM_NPY_H
#define DDPM_NPY_H

#include <stddef.h>

#include "00_tensor.h"

#define NPY_MAX_DIMS 8
#define NPY_MAX_FILE_BYTES ((size_t)1 << 34)   // 16 GiB: the largest .npy npy_read reads

typedef enum NpyDtype { NPY_F4, NPY_F8, NPY_I4, NPY_I8, NPY_U1 } NpyDtype;

typedef struct NpyArray {
    real *data;                 // [size] the values, C order, converted to real
    int ndim;                   // 0 for a scalar
    int shape[NPY_MAX_DIMS];
    size_t size;                // product of shape
    NpyDtype dtype;             // how the file stored them
} NpyArray;

int  npy_write(const char *path, const real *data, int ndim, const int *shape, Error *err);
int  npy_read(const char *path, NpyArray *a, Error *err);
void npy_free(NpyArray *a);

#endif
