/* safetensors.c — checkpoints in the safetensors format.
 *
 * (About 630 lines: a writer, and a reader that checks every field of a
 * file it does not trust; the JSON and the file I/O are json.c and fileio.c.)
 *
 * The book's appendix on support files (book/appendix_io.md) walks through
 * it. A safetensors file is three things back to back:
 *
 *   [8 bytes]  N, the header length, a little-endian u64
 *   [N bytes]  a JSON object: name -> {"dtype", "shape", "data_offsets"},
 *              plus an optional "__metadata__" object of strings
 *   [rest]     the raw little-endian tensor data; data_offsets [begin, end)
 *              count bytes from the start of this region
 *
 * Why this format and not a pickle: loading runs no code, the data can be
 * memory-mapped, and PyTorch reads it (safetensors.torch.load_file), so a
 * model trained here loads into the PyTorch port of the paper's network and
 * the paper's released weights, converted, load here.
 *
 * Writing always stores F32 (the double build converts), tensors in the
 * order given, the header padded with spaces to a multiple of 8 so the data
 * region starts 8-byte aligned. The file appears atomically: it is written
 * to PATH.tmp.PID, flushed, fsync'ed and renamed over PATH, so a crash or a
 * full disk leaves either the old checkpoint or the new one, never half.
 *
 * Reading takes the whole file into memory and trusts nothing in it: the
 * header length, the JSON header (read by json.c, which accepts exactly what
 * safetensors needs: objects, strings with escapes, arrays of integers),
 * dtypes F32/F64/F16/BF16, shapes, byte ranges inside the data, no
 * overlaps, no duplicate names. Each failure is one sentence naming the
 * file. The host must be little-endian; file_host_check says so if not.
 *
 * Names starting with "train." are training state (Adam moments, EMA
 * weights, step): st_read_params with strict set ignores them, and fails on
 * any other tensor the model does not have.
 */
#include "safetensors.h"

#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Small shared pieces ------------------------------------------------- */

static const char *const dtype_names[] = {"F32", "F64", "F16", "BF16"};
static const size_t dtype_sizes[] = {4, 8, 2, 2};

const char *st_dtype_name(StDtype d) { return dtype_names[d]; }
size_t st_dtype_size(StDtype d) { return dtype_sizes[d]; }

static void *xgrow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return p;
    *cap = *cap ? 2 * *cap : 16;
    p = realloc(p, (size_t)*cap * elem);
    DDPM_CHECK(p != NULL, "out of memory");
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The first name that occurs twice in names[0..n), or NULL.
static const char *first_duplicate(const char *const *names, int n)
{
    const char **sorted = xmalloc((size_t)n * sizeof *sorted);
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) dup = sorted[i];
    free(sorted);
    return dup;
}

// "[2,3,4]" for a shape of int64 dims.
static char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

/* ---- Writing ------------------------------------------------------------- */

typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1) + 256;
        b->p = realloc(b->p, b->cap);
        DDPM_CHECK(b->p != NULL, "out of memory");
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    DDPM_CHECK(n >= 0 && (size_t)n < sizeof tmp, "buf_printf: %d bytes", n);
    buf_put(b, tmp, (size_t)n);
}

// A JSON string: quotes, backslashes and control characters escaped.
static void buf_json_string(Buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') buf_printf(b, "\\%c", c);
        else if (c < 0x20) buf_printf(b, "\\u%04x", c);
        else buf_put(b, s, 1);
    }
    buf_put(b, "\"", 1);
}

static size_t tensor_count(const StTensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

// Refuse what would make an unreadable file: bad names, shapes, duplicates.
static int write_check(const char *path, const StTensor *t, int n,
                       const StMeta *meta, int n_meta, Error *err)
{
    if (n < 0 || n_meta < 0 || (n > 0 && !t) || (n_meta > 0 && !meta))
        return error_set(err, "%s: bad tensor or metadata count (%d, %d)", path, n, n_meta);
    const char **names = xmalloc((size_t)(n > n_meta ? n : n_meta) * sizeof *names);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        names[i] = t[i].name;
        if (!t[i].name || !*t[i].name || strcmp(t[i].name, "__metadata__") == 0)
            rc = error_set(err, "%s: tensor %d has no usable name", path, i);
        else if (t[i].ndim < 0 || t[i].ndim > TENSOR_MAX_DIMS)
            rc = error_set(err, "%s: tensor '%s' has %d dimensions (0 to %d allowed)",
                           path, t[i].name, t[i].ndim, TENSOR_MAX_DIMS);
        for (int d = 0; rc == 0 && d < t[i].ndim; d++)
            if (t[i].shape[d] < 0)
                rc = error_set(err, "%s: tensor '%s' has negative dimension %d",
                               path, t[i].name, t[i].shape[d]);
        if (rc == 0 && !t[i].data && tensor_count(&t[i]) > 0)
            rc = error_set(err, "%s: tensor '%s' has no data", path, t[i].name);
    }
    const char *dup = rc == 0 ? first_duplicate(names, n) : NULL;
    if (dup) rc = error_set(err, "%s: duplicate tensor name '%s'", path, dup);
    for (int i = 0; i < n_meta && rc == 0; i++) {
        names[i] = meta[i].key;
        if (!meta[i].key || !meta[i].value)
            rc = error_set(err, "%s: metadata entry %d has no key or value", path, i);
    }
    dup = rc == 0 ? first_duplicate(names, n_meta) : NULL;
    if (dup) rc = error_set(err, "%s: duplicate metadata key '%s'", path, dup);
    free(names);
    return rc;
}

// The JSON header, padded with spaces to a multiple of 8 bytes so that the
// data region (which starts after the 8-byte length) is 8-byte aligned.
static void header_build(Buf *b, const StTensor *t, int n,
                         const StMeta *meta, int n_meta)
{
    buf_put(b, "{", 1);
    if (n_meta > 0) {
        buf_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) buf_put(b, ",", 1);
            buf_json_string(b, meta[i].key);
            buf_put(b, ":", 1);
            buf_json_string(b, meta[i].value);
        }
        buf_put(b, n > 0 ? "}," : "}", n > 0 ? 2 : 1);
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = tensor_count(&t[i]) * sizeof(float);
        if (i) buf_put(b, ",", 1);
        buf_json_string(b, t[i].name);
        buf_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) buf_printf(b, d ? ",%d" : "%d", t[i].shape[d]);
        buf_printf(b, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    buf_put(b, "}", 1);
    while (b->len % 8 != 0) buf_put(b, " ", 1);
}

typedef struct StWriteJob {
    Buf header;
    const StTensor *tensors;
    int n;
} StWriteJob;

static int st_emit(FILE *fp, const void *ctx)
{
    const StWriteJob *job = ctx;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)job->header.len >> (8 * i));
    if (fwrite(len8, 1, 8, fp) != 8) return -1;
    if (fwrite(job->header.p, 1, job->header.len, fp) != job->header.len) return -1;
    for (int i = 0; i < job->n; i++)
        if (file_write_f32(fp, job->tensors[i].data, tensor_count(&job->tensors[i])) != 0)
            return -1;
    return 0;
}

int st_write(const char *path, const StTensor *tensors, int n,
             const StMeta *meta, int n_meta, Error *err)
{
    if (file_host_check(path, err) || write_check(path, tensors, n, meta, n_meta, err))
        return -1;
    StWriteJob job = {.tensors = tensors, .n = n};
    header_build(&job.header, tensors, n, meta, n_meta);
    int rc = file_write_atomic(path, st_emit, &job, err);
    free(job.header.p);
    return rc;
}

int st_write_params(const char *path, const ParamSet *ps,
                    const StMeta *meta, int n_meta, Error *err)
{
    DDPM_CHECK(ps->count == 0 || ps->data != NULL, "st_write_params before params_alloc");
    StTensor *t = xmalloc((size_t)ps->count * sizeof *t);
    for (int i = 0; i < ps->count; i++) {
        const Tensor *p = ps->params[i];
        t[i] = (StTensor){.name = p->name, .ndim = p->ndim, .data = p->data};
        memcpy(t[i].shape, p->shape, sizeof t[i].shape);
    }
    int rc = st_write(path, t, ps->count, meta, n_meta, err);
    free(t);
    return rc;
}

/* ---- Reading: entries ------------------------------------------------------ */

// One tensor's header entry as written, before it is checked.
typedef struct RawEntry {
    char *dtype;
    int has_shape, n_off, has_off, ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t off[2];
} RawEntry;

static int json_entry_field(Json *j, const char *key, const char *name, RawEntry *r)
{
    char what[256];
    int is_dtype = strcmp(key, "dtype") == 0, is_shape = strcmp(key, "shape") == 0;
    int is_off = strcmp(key, "data_offsets") == 0;
    if (!is_dtype && !is_shape && !is_off)
        return json_fail(j, "unexpected key '%s' in the entry of tensor '%s'", key, name);
    if ((is_dtype && r->dtype) || (is_shape && r->has_shape) || (is_off && r->has_off))
        return json_fail(j, "duplicate key '%s' in the entry of tensor '%s'", key, name);
    if (is_dtype) return json_string(j, &r->dtype);
    if (is_shape) {
        r->has_shape = 1;
        snprintf(what, sizeof what, "shape of tensor '%.200s'", name);
        return json_int_array(j, r->shape, ST_MAX_DIMS, &r->ndim, what);
    }
    r->has_off = 1;
    snprintf(what, sizeof what, "data_offsets of tensor '%.200s'", name);
    return json_int_array(j, r->off, 2, &r->n_off, what);
}

static int json_entry(Json *j, const char *name, RawEntry *r)
{
    if (json_expect(j, '{', "to open a tensor entry")) return -1;
    if (json_peek(j) == '}') return j->pos++, 0;
    for (int more = 1; more == 1;) {
        char *key;
        if (json_string(j, &key)) return -1;
        int rc = json_expect(j, ':', "after a key");
        if (rc == 0) rc = json_entry_field(j, key, name, r);
        free(key);
        if (rc) return -1;
        more = json_next(j, "in a tensor entry");
        if (more < 0) return -1;
    }
    return 0;
}

// Bytes needed by a shape of a dtype, or SIZE_MAX when that would overflow.
static size_t shape_bytes(const StEntry *e, size_t *count)
{
    size_t n = 1, esize = st_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] == 0) return *count = 0, 0;
    for (int d = 0; d < e->ndim; d++) {
        if (n > SIZE_MAX / esize / (size_t)e->shape[d]) return SIZE_MAX;
        n *= (size_t)e->shape[d];
    }
    *count = n;
    return n * esize;
}

static int entry_dtype(const StFile *f, const RawEntry *r, StEntry *e, Error *err)
{
    const char *missing = !r->dtype ? "dtype" : !r->has_shape ? "shape"
                        : !r->has_off ? "data_offsets" : NULL;
    if (missing) return error_set(err, "%s: tensor '%s' has no %s", f->path, e->name, missing);
    for (int d = 0; d < 4; d++)
        if (strcmp(r->dtype, dtype_names[d]) == 0) return e->dtype = (StDtype)d, 0;
    return error_set(err, "%s: tensor '%s' has unsupported dtype '%.32s' "
                     "(this reader takes F32, F64, F16, BF16)", f->path, e->name, r->dtype);
}

// Check one entry against the file: dtype, shape, byte range; fill e.
static int entry_check(const StFile *f, const RawEntry *r, StEntry *e, Error *err)
{
    char s[160];
    if (entry_dtype(f, r, e, err)) return -1;
    e->ndim = r->ndim;
    for (int d = 0; d < r->ndim; d++) {
        e->shape[d] = r->shape[d];
        if (r->shape[d] < 0 || r->shape[d] > ((int64_t)1 << 31))
            return error_set(err, "%s: tensor '%s' has dimension %lld in its shape "
                             "(0 to 2^31 allowed)", f->path, e->name, (long long)r->shape[d]);
    }
    shape_str(s, sizeof s, e->ndim, e->shape);
    if (r->n_off != 2 || r->off[0] < 0 || r->off[1] < r->off[0])
        return error_set(err, "%s: tensor '%s' has data_offsets that are not two integers "
                         "0 <= begin <= end", f->path, e->name);
    e->begin = (size_t)r->off[0];
    e->end = (size_t)r->off[1];
    size_t need = shape_bytes(e, &e->count);
    if (need == SIZE_MAX)
        return error_set(err, "%s: tensor '%s' has shape %s, too large for any file",
                         f->path, e->name, s);
    if (e->end - e->begin != need)
        return error_set(err, "%s: tensor '%s' has data_offsets [%zu, %zu] (%zu bytes) but "
                         "shape %s of %s needs %zu bytes", f->path, e->name, e->begin, e->end,
                         e->end - e->begin, s, st_dtype_name(e->dtype), need);
    if (e->end > f->data_size)
        return error_set(err, "%s: tensor '%s' has data_offsets [%zu, %zu] past the end of "
                         "the data (%zu bytes): truncated file or bad header", f->path,
                         e->name, e->begin, e->end, f->data_size);
    return 0;
}

// name: { entry }. Takes ownership of name.
static int json_tensor(Json *j, StFile *f, char *name, int *cap)
{
    f->entries = xgrow(f->entries, cap, f->n_entries + 1, sizeof *f->entries);
    StEntry *e = &f->entries[f->n_entries++];
    memset(e, 0, sizeof *e);
    e->name = name;
    RawEntry r = {0};
    int rc = json_entry(j, name, &r);
    if (rc == 0) rc = entry_check(f, &r, e, j->err);
    free(r.dtype);
    return rc;
}

// "__metadata__": { "key": "value", ... }
static int json_metadata(Json *j, StFile *f)
{
    int cap = 0;
    if (json_expect(j, '{', "to open __metadata__")) return -1;
    if (json_peek(j) == '}') return j->pos++, 0;
    for (int more = 1; more == 1;) {
        char *key, *value = NULL;
        if (json_string(j, &key)) return -1;
        f->meta = xgrow(f->meta, &cap, f->n_meta + 1, sizeof *f->meta);
        f->meta[f->n_meta++] = (StMeta){.key = key};
        if (json_expect(j, ':', "after a metadata key")) return -1;
        if (json_peek(j) != '"')
            return json_fail(j, "the value of metadata key '%s' must be a string", key);
        if (json_string(j, &value)) return -1;
        f->meta[f->n_meta - 1].value = value;
        more = json_next(j, "in __metadata__");
        if (more < 0) return -1;
    }
    return 0;
}

// The whole header: { name: entry, ..., "__metadata__": {...} } and nothing after.
static int json_header(Json *j, StFile *f)
{
    char buf[16];
    int cap = 0, seen_meta = 0;
    if (json_expect(j, '{', "at the start of the header")) return -1;
    if (json_peek(j) == '}') j->pos++;
    else for (int more = 1; more == 1;) {
        char *name;
        if (json_string(j, &name)) return -1;
        if (json_expect(j, ':', "after a tensor name")) return free(name), -1;
        int is_meta = strcmp(name, "__metadata__") == 0;
        if (is_meta && seen_meta++) return free(name), json_fail(j, "duplicate __metadata__");
        int rc = is_meta ? (free(name), json_metadata(j, f)) : json_tensor(j, f, name, &cap);
        if (rc) return -1;
        more = json_next(j, "after a header entry");
        if (more < 0) return -1;
    }
    if (json_peek(j) != -1)
        return json_fail(j, "unexpected %s after the header object", json_found(j, buf, sizeof buf));
    return 0;
}

/* ---- Reading: the file as a whole ------------------------------------------ */

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(StEntry *const *)a)->name, (*(StEntry *const *)b)->name);
}

static int cmp_entry_begin(const void *a, const void *b)
{
    const StEntry *x = *(StEntry *const *)a, *y = *(StEntry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Sort by name for st_find (and catch duplicates), then by offset (overlaps).
static int check_entries(StFile *f, Error *err)
{
    int n = f->n_entries, rc = 0;
    const char **keys = xmalloc((size_t)f->n_meta * sizeof *keys);
    for (int i = 0; i < f->n_meta; i++) keys[i] = f->meta[i].key;
    const char *dup = first_duplicate(keys, f->n_meta);
    free(keys);
    if (dup) return error_set(err, "%s: duplicate metadata key '%s'", f->path, dup);
    f->by_name = xmalloc((size_t)n * sizeof *f->by_name);
    for (int i = 0; i < n; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, cmp_entry_name);
    for (int i = 1; i < n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return error_set(err, "%s: duplicate tensor name '%s'", f->path, f->by_name[i]->name);
    StEntry **by_begin = xmalloc((size_t)n * sizeof *by_begin);
    memcpy(by_begin, f->by_name, (size_t)n * sizeof *by_begin);
    qsort(by_begin, (size_t)n, sizeof *by_begin, cmp_entry_begin);
    const StEntry *last = NULL;   // the entry that reaches furthest so far
    for (int i = 0; i < n && rc == 0; i++) {
        const StEntry *e = by_begin[i];
        if (last && e->begin < last->end)
            rc = error_set(err, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap in "
                           "the data", f->path, last->name, last->begin, last->end,
                           e->name, e->begin, e->end);
        if (!last || e->end > last->end) last = e;
    }
    free(by_begin);
    return rc;
}

// The 8-byte header length against the size of the file.
static int check_lengths(StFile *f, Error *err)
{
    if (f->size == 0)
        return error_set(err, "%s: the file is empty, not a safetensors checkpoint", f->path);
    if (f->size < 8)
        return error_set(err, "%s: the file is only %zu bytes, too short for the 8-byte "
                         "header length", f->path, f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f->bytes[i];
    if (n < 2)
        return error_set(err, "%s: header length %llu is too small for a JSON object",
                         f->path, (unsigned long long)n);
    if (n > f->size - 8)
        return error_set(err, "%s: header length %llu runs past the end of the file "
                         "(%zu bytes)", f->path, (unsigned long long)n, f->size);
    f->data = f->bytes + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;
    return 0;
}

int st_open(const char *path, StFile *f, Error *err)
{
    memset(f, 0, sizeof *f);
    if (file_host_check(path, err)) return -1;
    f->path = strdup(path);
    DDPM_CHECK(f->path != NULL, "out of memory");
    if (file_read(path, &f->bytes, &f->size, err) || check_lengths(f, err))
        goto fail;
    Json j = {.s = (const char *)f->bytes + 8, .n = (size_t)(f->data - f->bytes) - 8,
              .base = 8, .path = path, .err = err};
    if (json_header(&j, f) || check_entries(f, err)) goto fail;
    return 0;
fail:
    st_close(f);
    return -1;
}

static int cmp_name_entry(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(StEntry *const *)elem)->name);
}

const StEntry *st_find(const StFile *f, const char *name)
{
    if (f->n_entries == 0) return NULL;
    StEntry *const *hit = bsearch(name, f->by_name, (size_t)f->n_entries,
                                  sizeof *f->by_name, cmp_name_entry);
    return hit ? *hit : NULL;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

void st_close(StFile *f)
{
    for (int i = 0; i < f->n_entries; i++) free(f->entries[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->entries);
    free(f->meta);
    free(f->by_name);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* ---- Reading: tensors ----------------------------------------------------- */

// IEEE half precision to float: zero/subnormal, normal, inf/nan.
static float half_to_float(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24)
            : e == 31 ? (m ? NAN : INFINITY)
            : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

// Convert an entry's bytes (any supported dtype) to real.
static void st_convert(const StEntry *e, const unsigned char *src, real *dst)
{
    for (size_t i = 0; i < e->count; i++) {
        float f;
        double d;
        uint32_t u;
        switch (e->dtype) {
        case ST_F32: memcpy(&f, src + 4 * i, 4); dst[i] = (real)f; break;
        case ST_F64: memcpy(&d, src + 8 * i, 8); dst[i] = (real)d; break;
        case ST_F16: dst[i] = (real)half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8)); break;
        case ST_BF16:
            u = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy(&f, &u, 4);
            dst[i] = (real)f;
            break;
        }
    }
}

static int check_shape(const StFile *f, const StEntry *e, int ndim, const int *shape,
                       Error *err)
{
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (same) return 0;
    int64_t want[ST_MAX_DIMS];
    for (int d = 0; d < ndim && d < ST_MAX_DIMS; d++) want[d] = shape[d];
    char a[160], b[160];
    return error_set(err, "%s: tensor '%s' has shape %s in the file but %s is expected",
                     f->path, e->name, shape_str(a, sizeof a, e->ndim, e->shape),
                     shape_str(b, sizeof b, ndim < ST_MAX_DIMS ? ndim : ST_MAX_DIMS, want));
}

int st_read_tensor(const StFile *f, const char *name, real *dst,
                   int ndim, const int *shape, Error *err)
{
    const StEntry *e = st_find(f, name);
    if (!e) return error_set(err, "%s: no tensor '%s' in the file", f->path, name);
    if (check_shape(f, e, ndim, shape, err)) return -1;
    st_convert(e, f->data + e->begin, dst);
    return 0;
}

/* ---- Reading: a whole ParamSet --------------------------------------------- */

// Load parameter NAME from tensor PREFIX+NAME, for every parameter of ps.
// Nothing is written into ps unless every tensor is there with its shape.
// strict: fail on any tensor outside ST_TRAIN_PREFIX the model does not have.
int st_load_params(const StFile *f, ParamSet *ps, const char *prefix,
                   int strict, Error *err)
{
    char name[512];
    if (!prefix) prefix = "";
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ps->count; i++) {
            Tensor *t = ps->params[i];
            if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, t->name) >= sizeof name)
                return error_set(err, "%s: tensor name '%s%s' is too long", f->path, prefix, t->name);
            const StEntry *e = st_find(f, name);
            char s[64];
            if (!e)
                return error_set(err, "%s: missing tensor '%s' (shape %s) that the model needs",
                                 f->path, name, tensor_shape_str(t, s, sizeof s));
            if (pass == 0 && check_shape(f, e, t->ndim, t->shape, err)) return -1;
            if (pass == 1) st_convert(e, f->data + e->begin, t->data);
        }
        for (int i = 0; strict && pass == 0 && i < f->n_entries; i++) {
            const char *n = f->entries[i].name;
            if (strncmp(n, ST_TRAIN_PREFIX, strlen(ST_TRAIN_PREFIX)) != 0 && !params_find(ps, n))
                return error_set(err, "%s: unexpected tensor '%s': was this checkpoint "
                                 "written for another config?", f->path, n);
        }
    }
    return 0;
}

int st_read_params(const char *path, ParamSet *ps, int strict, Error *err)
{
    StFile f;
    if (st_open(path, &f, err)) return -1;
    int rc = st_load_params(&f, ps, "", strict, err);
    st_close(&f);
    return rc;
}
