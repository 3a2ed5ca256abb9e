/* fileio.h — whole-file reads and atomic writes.
 *
 * Support file, shared by every reader and writer of files (safetensors
 * checkpoints, .npy arrays, PNG grids, the data sets, SHA-256); the book's
 * appendix (book/appendix_io.md) explains the atomic write. A file is read
 * whole into memory after checking that it is a regular file of a bounded
 * size; a file is written to PATH.tmp.PID, flushed, fsync'ed and renamed
 * over PATH, so a crash or a full disk leaves the old file or the new one,
 * never half. Each function returns 0, or -1 with one sentence naming the
 * file and the problem in err.
 */
#ifndef DDPM_FILEIO_H
#define DDPM_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "00_tensor.h"

#define FILE_MAX_BYTES ((size_t)1 << 36)   // 64 GiB: the largest file read

typedef int (*FileWriteFn)(FILE *fp, const void *ctx);   // 0, or -1 on a failed write

int file_host_check(const char *path, Error *err);     // fails on a big-endian host
int file_read(const char *path, unsigned char **bytes, size_t *size, Error *err);
int file_read_max(const char *path, size_t max, unsigned char **bytes, size_t *size,
                  Error *err);
int file_write_atomic(const char *path, FileWriteFn write, const void *ctx, Error *err);
int file_write_f32(FILE *fp, const real *x, size_t n);  // as little-endian float32

#endif
