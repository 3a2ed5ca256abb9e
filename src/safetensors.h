/* safetensors.h — checkpoints in the safetensors format (read and write).
 *
 * Support file; the book's appendix (book/appendix_io.md) explains it.
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON naming each tensor's dtype, shape and byte range, then the raw data:
 *
 *   st_write / st_write_params   always F32, tensors in the given order,
 *                                atomically (temp file, fsync, rename)
 *   st_open ... st_close         read and validate a whole file, then look
 *                                tensors up by name (F32, F64, F16, BF16)
 *   st_read_params               fill every parameter of a ParamSet by name
 *
 * Names starting with ST_TRAIN_PREFIX ("train.") are reserved for training
 * state (Adam moments, EMA weights, step, RNG state): st_read_params never
 * calls them unexpected. Every function that reads a file or writes one
 * returns 0, or -1 with one sentence naming the file and the problem in err.
 */
#ifndef DDPM_SAFETENSORS_H
#define DDPM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "00_tensor.h"
#include "fileio.h"

#define ST_MAX_DIMS 8              // most dimensions a file's tensor may have
#define ST_TRAIN_PREFIX "train."   // names reserved for training state

/* ---- Writing ------------------------------------------------------------ */

typedef struct StTensor {
    const char *name;               // checkpoint name, e.g. "conv_in.weight"
    int ndim;                       // 0 (a scalar) to TENSOR_MAX_DIMS
    int shape[TENSOR_MAX_DIMS];
    const real *data;               // [product of shape], row-major
} StTensor;

typedef struct StMeta {
    const char *key;                // the file's "__metadata__": string -> string
    const char *value;
} StMeta;

int st_write(const char *path, const StTensor *tensors, int n,
             const StMeta *meta, int n_meta, Error *err);
int st_write_params(const char *path, const ParamSet *ps,
                    const StMeta *meta, int n_meta, Error *err);

/* ---- Reading ------------------------------------------------------------ */

typedef enum StDtype { ST_F32, ST_F64, ST_F16, ST_BF16 } StDtype;

typedef struct StEntry {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t count;                   // product of shape
    size_t begin, end;              // byte range within the data region
} StEntry;

typedef struct StFile {
    char *path;
    unsigned char *bytes;           // [size] the whole file
    size_t size;
    const unsigned char *data;      // the data region: bytes + 8 + header length
    size_t data_size;
    StEntry *entries;               // [n_entries] in header order
    int n_entries;
    StEntry **by_name;              // [n_entries] the entries sorted by name
    StMeta *meta;                   // [n_meta] owned copies
    int n_meta;
} StFile;

int st_open(const char *path, StFile *f, Error *err);
const StEntry *st_find(const StFile *f, const char *name);
int st_read_tensor(const StFile *f, const char *name, real *dst,
                   int ndim, const int *shape, Error *err);
const char *st_meta(const StFile *f, const char *key);   // NULL if absent
void st_close(StFile *f);

int st_read_params(const char *path, ParamSet *ps, int strict, Error *err);
int st_load_params(const StFile *f, ParamSet *ps, const char *prefix,
                   int strict, Error *err);

const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);

#endif
