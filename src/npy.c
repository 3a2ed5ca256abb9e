/* npy.c — arrays in NumPy's .npy format.
 *
 * The book's appendix on support files (book/appendix_io.md) shows it. A
 * .npy file (format version 1.0) is
 *
 *   "\x93NUMPY" 0x01 0x00   magic and version
 *   u16 little-endian       length of the header that follows
 *   header                  a Python dict literal, e.g.
 *                           {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *                           padded with spaces and a final '\n' so that the
 *                           data starts at a multiple of 64 bytes
 *   data                    the values, C order (last index fastest)
 *
 * Versions 2.0 and 3.0 differ only in a u32 header length (and, for 3.0, a
 * UTF-8 header); the reader takes all three. Writing always produces 1.0
 * and '<f4', laid out exactly as np.save does (NumPy also leaves 21 − digits
 * spaces after the header so the first dimension can grow in place), and
 * goes through file_write_atomic: temp file, fsync, rename.
 *
 * The reader parses the header dict with a small parser that knows its
 * three keys, accepts the dtypes we need ('<f4' '<f8' '<i4' '<i8' '|u1'),
 * refuses Fortran order, and checks that the data is exactly as long as the
 * shape says. Every failure is one sentence naming the file.
 */
#include "npy.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

static const struct {
    const char *descr;
    NpyDtype dtype;
    size_t size;
} npy_types[] = {
    {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"<i4", NPY_I4, 4},
    {"<i8", NPY_I8, 8}, {"|u1", NPY_U1, 1}, {"<u1", NPY_U1, 1},
};

/* ---- Writing --------------------------------------------------------------- */

// The header exactly as np.save writes it for a float32 array: the dict,
// NumPy's growth spaces, padding to a multiple of 64 (1 to 64 spaces), '\n'.
static size_t npy_header(char *h, size_t cap, int ndim, const int *shape)
{
    char tuple[160];
    size_t k = (size_t)snprintf(tuple, sizeof tuple, "(");
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(tuple + k, sizeof tuple - k, i ? ", %d" : "%d", shape[i]);
    snprintf(tuple + k, sizeof tuple - k, ndim == 1 ? ",)" : ")");
    size_t len = (size_t)snprintf(h, cap, "{'descr': '<f4', 'fortran_order': False, "
                                  "'shape': %s, }", tuple);
    size_t grow = ndim > 0 ? 21 - (size_t)snprintf(NULL, 0, "%d", shape[0]) : 0;
    size_t pad = grow + 64 - (10 + len + grow + 1) % 64;
    DDPM_CHECK(len + pad + 1 < cap, "npy header buffer too small");
    memset(h + len, ' ', pad);
    h[len + pad] = '\n';
    return len + pad + 1;
}

typedef struct NpyJob {
    const char *header;
    size_t header_len;
    const real *data;
    size_t count;
} NpyJob;

static int npy_emit(FILE *fp, const void *ctx)
{
    const NpyJob *job = ctx;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(job->header_len & 0xff),
                             (unsigned char)(job->header_len >> 8)};
    if (fwrite(pre, 1, sizeof pre, fp) != sizeof pre) return -1;
    if (fwrite(job->header, 1, job->header_len, fp) != job->header_len) return -1;
    return file_write_f32(fp, job->data, job->count);
}

int npy_write(const char *path, const real *data, int ndim, const int *shape, Error *err)
{
    if (file_host_check(path, err)) return -1;
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return error_set(err, "%s: cannot write %d dimensions (0 to %d allowed)",
                         path, ndim, NPY_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return error_set(err, "%s: cannot write negative dimension %d", path, shape[i]);
        count *= (size_t)shape[i];
    }
    if (!data && count > 0) return error_set(err, "%s: no data to write", path);
    char header[512];
    NpyJob job = {header, npy_header(header, sizeof header, ndim, shape), data, count};
    return file_write_atomic(path, npy_emit, &job, err);
}

/* ---- Reading: the header dict ----------------------------------------------- */

typedef struct NpyInfo {
    char descr[32];
    int fortran;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int seen[3];                  // descr, fortran_order, shape
} NpyInfo;

typedef struct Lit {
    const char *s;                // the header dict, not NUL-terminated
    size_t n, pos, base;          // length, read position, file offset of s
    const char *path;
    Error *err;
} Lit;

static int lit_fail(Lit *p, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(p->err, "%s: malformed .npy header at byte %zu: %s",
                     p->path, p->base + p->pos, what);
}

static int lit_peek(Lit *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'
                             || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
    return p->pos < p->n ? (unsigned char)p->s[p->pos] : -1;
}

static int lit_expect(Lit *p, char c, const char *where)
{
    if (lit_peek(p) == (unsigned char)c) return p->pos++, 0;
    return lit_fail(p, "expected '%c' %s", c, where);
}

// 'text' or "text", no escapes, shorter than cap.
static int lit_string(Lit *p, char *out, size_t cap)
{
    int q = lit_peek(p);
    if (q != '\'' && q != '"') return lit_fail(p, "expected a quoted string");
    size_t k = 0;
    for (p->pos++; p->pos < p->n && p->s[p->pos] != q; p->pos++) {
        if (p->s[p->pos] == '\\' || k + 1 >= cap)
            return lit_fail(p, "unexpected string (escaped or longer than %zu)", cap - 1);
        out[k++] = p->s[p->pos];
    }
    if (p->pos >= p->n) return lit_fail(p, "unexpected end of the header inside a string");
    p->pos++;
    out[k] = '\0';
    return 0;
}

static int lit_bool(Lit *p, int *v)
{
    lit_peek(p);
    size_t left = p->n - p->pos;
    if (left >= 4 && memcmp(p->s + p->pos, "True", 4) == 0) return *v = 1, p->pos += 4, 0;
    if (left >= 5 && memcmp(p->s + p->pos, "False", 5) == 0) return *v = 0, p->pos += 5, 0;
    return lit_fail(p, "expected True or False");
}

// (), (n,), (a, b, ...) — non-negative integers, an old 'L' suffix allowed.
static int lit_tuple(Lit *p, NpyInfo *h)
{
    if (lit_expect(p, '(', "to open the shape tuple")) return -1;
    for (h->ndim = 0;;) {
        int c = lit_peek(p);
        if (c == ')') return p->pos++, 0;
        if (c < '0' || c > '9') return lit_fail(p, "expected a dimension or ')' in the shape");
        if (h->ndim == NPY_MAX_DIMS) return lit_fail(p, "more than %d dimensions", NPY_MAX_DIMS);
        int64_t d = 0;
        for (; p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; p->pos++) {
            if (d > ((int64_t)1 << 40)) return lit_fail(p, "dimension too large");
            d = 10 * d + (p->s[p->pos] - '0');
        }
        if (p->pos < p->n && p->s[p->pos] == 'L') p->pos++;
        h->shape[h->ndim++] = d;
        c = lit_peek(p);
        if (c == ',') p->pos++;
        else if (c != ')') return lit_fail(p, "expected ',' or ')' in the shape");
    }
}

static int lit_value(Lit *p, const char *key, NpyInfo *h)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    int i = 0;
    while (i < 3 && strcmp(key, keys[i]) != 0) i++;
    if (i == 3) return lit_fail(p, "unexpected key '%s'", key);
    if (h->seen[i]++) return lit_fail(p, "duplicate key '%s'", key);
    if (i == 0 && lit_peek(p) == '[')
        return lit_fail(p, "structured dtypes (a list as descr) are not supported");
    return i == 0 ? lit_string(p, h->descr, sizeof h->descr)
         : i == 1 ? lit_bool(p, &h->fortran) : lit_tuple(p, h);
}

// {'key': value, ...} followed by nothing but whitespace.
static int lit_dict(Lit *p, NpyInfo *h)
{
    if (lit_expect(p, '{', "at the start of the header")) return -1;
    for (;;) {
        char key[32];
        int c = lit_peek(p);
        if (c == '}') break;
        if (lit_string(p, key, sizeof key) || lit_expect(p, ':', "after a key")
            || lit_value(p, key, h))
            return -1;
        c = lit_peek(p);
        if (c == ',') p->pos++;
        else if (c != '}') return lit_fail(p, "expected ',' or '}' after a value");
    }
    p->pos++;
    if (lit_peek(p) != -1) return lit_fail(p, "unexpected text after the header dict");
    const char *missing = !h->seen[0] ? "descr" : !h->seen[1] ? "fortran_order"
                        : !h->seen[2] ? "shape" : NULL;
    if (missing) return error_set(p->err, "%s: .npy header has no '%s'", p->path, missing);
    return 0;
}

/* ---- Reading: checks and conversion ------------------------------------------ */

// Magic, version and header length: where the header dict is.
static int npy_preamble(const char *path, const unsigned char *b, size_t size,
                        size_t *start, size_t *len, Error *err)
{
    if (size < 8 || memcmp(b, "\x93NUMPY", 6) != 0)
        return error_set(err, "%s: not a .npy file (bad magic: it does not start with "
                         "\\x93NUMPY)", path);
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return error_set(err, "%s: unsupported .npy format version %d.%d", path, b[6], b[7]);
    *start = b[6] == 1 ? 10 : 12;
    if (size < *start)
        return error_set(err, "%s: the file is only %zu bytes, too short for a .npy header",
                         path, size);
    *len = (size_t)b[8] | (size_t)b[9] << 8;
    if (b[6] > 1) *len |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (*len > size - *start)
        return error_set(err, "%s: header length %zu runs past the end of the file "
                         "(%zu bytes)", path, *len, size);
    return 0;
}

// dtype, order and shape against the bytes the file holds after the header.
static int npy_check(const char *path, const NpyInfo *h, size_t data_bytes,
                     NpyArray *a, size_t *esize, Error *err)
{
    size_t t = 0, nt = sizeof npy_types / sizeof npy_types[0];
    while (t < nt && strcmp(h->descr, npy_types[t].descr) != 0) t++;
    if (t == nt)
        return error_set(err, "%s: unsupported dtype '%s' (this reader takes <f4, <f8, <i4, "
                         "<i8, |u1)%s", path, h->descr,
                         h->descr[0] == '>' ? "; it is big-endian, save a.astype('<f4')" : "");
    if (h->fortran)
        return error_set(err, "%s: the array is in Fortran order; save "
                         "np.ascontiguousarray(a) instead", path);
    a->dtype = npy_types[t].dtype;
    *esize = npy_types[t].size;
    a->ndim = h->ndim;
    a->size = 1;
    int zero = 0, fits = 1;
    for (int i = 0; i < h->ndim; i++) zero |= h->shape[i] == 0;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] > INT_MAX)
            return error_set(err, "%s: dimension %lld is too large", path, (long long)h->shape[i]);
        a->shape[i] = (int)h->shape[i];
        if (zero) continue;
        fits = fits && a->size <= SIZE_MAX / *esize / (size_t)h->shape[i];
        if (fits) a->size *= (size_t)h->shape[i];
    }
    if (zero) a->size = 0;
    if (!fits)
        return error_set(err, "%s: size mismatch: the shape is too large for any file", path);
    if (a->size * *esize != data_bytes)
        return error_set(err, "%s: size mismatch: the shape needs %zu data bytes of '%s' "
                         "but the file holds %zu", path, a->size * *esize, h->descr, data_bytes);
    return 0;
}

static void npy_convert(NpyDtype t, const unsigned char *src, real *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f;
        double d;
        int32_t i4;
        int64_t i8;
        switch (t) {
        case NPY_F4: memcpy(&f, src + 4 * i, 4); dst[i] = (real)f; break;
        case NPY_F8: memcpy(&d, src + 8 * i, 8); dst[i] = (real)d; break;
        case NPY_I4: memcpy(&i4, src + 4 * i, 4); dst[i] = (real)i4; break;
        case NPY_I8: memcpy(&i8, src + 8 * i, 8); dst[i] = (real)i8; break;
        case NPY_U1: dst[i] = (real)src[i]; break;
        }
    }
}

int npy_read(const char *path, NpyArray *a, Error *err)
{
    memset(a, 0, sizeof *a);
    unsigned char *b;
    size_t size, start = 0, len = 0, esize = 0;
    if (file_host_check(path, err) || file_read_max(path, NPY_MAX_FILE_BYTES, &b, &size, err)) return -1;
    NpyInfo h = {0};
    int rc = npy_preamble(path, b, size, &start, &len, err);
    if (rc == 0) {
        Lit p = {(const char *)b + start, len, 0, start, path, err};
        rc = lit_dict(&p, &h);
    }
    if (rc == 0) rc = npy_check(path, &h, size - start - len, a, &esize, err);
    if (rc == 0) {
        a->data = malloc(a->size ? a->size * sizeof(real) : 1);
        if (!a->data) rc = error_set(err, "%s: cannot allocate %zu values", path, a->size);
        else npy_convert(a->dtype, b + start + len, a->data, a->size);
    }
    free(b);
    if (rc) memset(a, 0, sizeof *a);
    return rc ? -1 : 0;
}

void npy_free(NpyArray *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}
