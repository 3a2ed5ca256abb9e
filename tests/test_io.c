/* test_io.c — checkpoints (safetensors) and arrays (.npy): round trips,
 * files written by other programs, and malformed files that must fail with
 * a message naming the file and the problem.
 *
 * Runs in both builds. Every file is written into a fresh temporary
 * directory; the reference files are read from tests/data/, so the runner
 * must start in the repository root (make test does).
 *
 * How tests/data/ was made (Debian's python3-torch and python3-numpy; the
 * `safetensors` Python package was not installed, so the file is written by
 * hand, byte for byte per the format: u64 header length, JSON, data):
 *
 *   import json, struct, numpy as np, torch
 *   ts = [("conv_in.weight", torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5),
 *         ("temb.f64", torch.tensor([1 / 3, -2.5, 1e-300], dtype=torch.float64)),
 *         ("norm.f16", torch.tensor([1.0, -2.0, 2**-14, 2**-24, 65504.0, float("inf")],
 *                                   dtype=torch.float16).reshape(2, 3)),
 *         ("bf16.values", torch.tensor([1.0, -3.140625, 2.0**100, 2**-7], dtype=torch.bfloat16)),
 *         ("a.scalar", torch.tensor(7.25, dtype=torch.float32)),
 *         ("empty", torch.zeros(0, 3, dtype=torch.float32))]
 *   names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
 *            torch.bfloat16: "BF16"}
 *   header, data = {"__metadata__": {"format": "pt", "note": "caf\u00e9 \"quoted\""}}, b""
 *   for name, t in ts:   # data in this order, header keys sorted: they differ
 *       raw = t.contiguous().view(torch.int16).numpy().tobytes() \
 *           if t.dtype == torch.bfloat16 else t.contiguous().numpy().tobytes()
 *       header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
 *                       "data_offsets": [len(data), len(data) + len(raw)]}
 *       data += raw
 *   h = json.dumps(header, sort_keys=True).encode()
 *   h += b" " * (-len(h) % 8)
 *   open("tests/data/st_reference.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + data)
 *   np.save("tests/data/npy_reference_f4.npy", np.arange(12, dtype=np.float32).reshape(3, 4) / 8 - 0.75)
 *   np.save("tests/data/npy_reference_i8.npy",
 *           np.array([[-3, 0, 7], [2**40, -2**31, 1]], dtype=np.int64))
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "00_tensor.h"
#include "npy.h"
#include "safetensors.h"

#define DATA_DIR "tests/data/"

/* ---- helpers: a temporary directory, raw files ------------------------------ */

typedef struct TmpDir {
    char dir[64];
    char path[128];     // the last path made by tmp_path
} TmpDir;

static void tmp_make(TmpDir *t)
{
    strcpy(t->dir, "/tmp/ddpm_test_io_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

static const char *tmp_path(TmpDir *t, const char *name)
{
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    return t->path;
}

// Number of files in the directory (to catch leftover temp files).
static int tmp_count(const TmpDir *t)
{
    DIR *d = opendir(t->dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void tmp_remove(TmpDir *t)
{
    DIR *d = opendir(t->dir);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    unsigned char *b;
    Error err;
    ck_assert_msg(file_read(path, &b, n, &err) == 0, "%s (run from the repository root)",
                  err.msg);
    return b;
}

// A safetensors file by hand: u64 header length (hlen, or strlen(header)
// when 0), the header bytes as given, then data_bytes bytes of data.
static void write_st(const char *path, const char *header, uint64_t hlen, size_t data_bytes)
{
    size_t n = strlen(header);
    unsigned char *b = calloc(1, 8 + n + data_bytes);
    uint64_t len = hlen ? hlen : n;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_bytes; i++) b[8 + n + i] = (unsigned char)i;
    write_bytes(path, b, 8 + n + data_bytes);
    free(b);
}

static void assert_msg_has(const Error *err, const char *path, const char *phrase)
{
    ck_assert_msg(strstr(err->msg, phrase) != NULL, "message \"%s\" lacks \"%s\"", err->msg, phrase);
    ck_assert_msg(strstr(err->msg, path) != NULL, "message \"%s\" does not name %s", err->msg, path);
}

// Values every float can hold exactly, so round trips compare with ==.
static void fill_exact(real *x, size_t n, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (real)(float)rng_normal(&r);
}

/* ---- core: safetensors round trips ------------------------------------------ */

START_TEST(st_round_trip)
{
    TmpDir td;
    tmp_make(&td);
    real a[24], b[5], c = (real)-1.5, d[16];
    fill_exact(a, 24, 1);
    fill_exact(b, 5, 2);
    fill_exact(d, 16, 3);
    StTensor ts[] = {
        {"down.0.block.0.conv1.weight", 4, {2, 3, 2, 2}, a},
        {"temb.dense.0.bias", 1, {5}, b},
        {"train.step", 0, {0}, &c},
        {"zero.sized", 2, {0, 7}, NULL},
        {"name \"with\" \\ odd\tchars \xc3\xa9", 2, {4, 4}, d},
    };
    StMeta meta[] = {{"config", "tiny"}, {"note", "line1\nline2 \"q\" caf\xc3\xa9"}};
    Error err;
    const char *path = tmp_path(&td, "m.safetensors");
    ck_assert_msg(st_write(path, ts, 5, meta, 2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tmp_count(&td), 1);   // no temp file left behind
    StFile f;
    ck_assert_msg(st_open(path, &f, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq((size_t)(f.data - f.bytes) % 8, 0);   // header padded to 8
    ck_assert_int_eq(f.n_entries, 5);
    for (int i = 0; i < 5; i++) {
        const StEntry *e = &f.entries[i];
        ck_assert_str_eq(e->name, ts[i].name);   // in the order given
        ck_assert_int_eq(e->dtype, ST_F32);
        ck_assert_int_eq(e->ndim, ts[i].ndim);
        for (int k = 0; k < e->ndim; k++) ck_assert_int_eq(e->shape[k], ts[i].shape[k]);
        real back[24] = {0};
        ck_assert_msg(st_read_tensor(&f, e->name, back, ts[i].ndim, ts[i].shape, &err) == 0,
                      "%s", err.msg);
        for (size_t k = 0; k < e->count; k++) ck_assert(back[k] == ts[i].data[k]);
    }
    ck_assert_str_eq(st_meta(&f, "config"), "tiny");
    ck_assert_str_eq(st_meta(&f, "note"), meta[1].value);
    ck_assert_ptr_null(st_meta(&f, "absent"));
    ck_assert_ptr_null(st_find(&f, "absent"));
    st_close(&f);
    tmp_remove(&td);
}
END_TEST

static void model_params(ParamSet *ps, int reversed)
{
    static const char *names[] = {"conv_in.weight", "conv_in.bias", "norm_out.weight"};
    static const int shapes[][4] = {{4, 3, 3, 3}, {4}, {4}};
    static const int ndims[] = {4, 1, 1};
    params_init(ps);
    for (int k = 0; k < 3; k++) {
        int i = reversed ? 2 - k : k;
        params_add(ps, names[i], ndims[i], shapes[i]);
    }
    params_alloc(ps);
}

// A ParamSet saved and loaded into a second one whose parameters were
// registered in another order: matched by name, bit for bit. Training
// state under "train." does not upset strict loading, and st_load_params
// can fill a model from a prefixed copy (EMA weights, say).
START_TEST(st_params_round_trip)
{
    TmpDir td;
    tmp_make(&td);
    ParamSet a, b;
    model_params(&a, 0);
    model_params(&b, 1);
    fill_exact(a.data, a.total, 7);
    Error err;
    const char *path = tmp_path(&td, "p.safetensors");
    StMeta meta[] = {{"config", "tiny"}};
    ck_assert_msg(st_write_params(path, &a, meta, 1, &err) == 0, "%s", err.msg);
    ck_assert_msg(st_read_params(path, &b, 1, &err) == 0, "%s", err.msg);
    for (int i = 0; i < a.count; i++) {
        Tensor *t = a.params[i], *u = params_find(&b, t->name);
        for (size_t k = 0; k < t->size; k++) ck_assert(t->data[k] == u->data[k]);
    }
    real step = 1234, ema[4];
    fill_exact(ema, 4, 9);
    StTensor more[] = {{"conv_in.weight", 4, {4, 3, 3, 3}, a.params[0]->data},
                       {"conv_in.bias", 1, {4}, a.params[1]->data},
                       {"norm_out.weight", 1, {4}, a.params[2]->data},
                       {"train.step", 0, {0}, &step},
                       {"train.ema.conv_in.weight", 4, {4, 3, 3, 3}, a.params[0]->data},
                       {"train.ema.conv_in.bias", 1, {4}, ema},
                       {"train.ema.norm_out.weight", 1, {4}, a.params[2]->data}};
    ck_assert_msg(st_write(path, more, 7, NULL, 0, &err) == 0, "%s", err.msg);
    ck_assert_msg(st_read_params(path, &b, 1, &err) == 0, "%s", err.msg);
    StFile f;
    ck_assert_msg(st_open(path, &f, &err) == 0, "%s", err.msg);
    ck_assert_msg(st_load_params(&f, &b, "train.ema.", 1, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 4; k++) ck_assert(params_find(&b, "conv_in.bias")->data[k] == ema[k]);
    st_close(&f);
    params_free(&a);
    params_free(&b);
    tmp_remove(&td);
}
END_TEST

// A write that fails halfway (the file size limit stops it) leaves the old
// checkpoint byte for byte and no temp file; so does a refused write.
START_TEST(st_write_is_atomic)
{
    TmpDir td;
    tmp_make(&td);
    Error err;
    const char *path = tmp_path(&td, "c.safetensors");
    real small[3] = {1, 2, 3};
    StTensor one = {"w", 1, {3}, small};
    ck_assert_msg(st_write(path, &one, 1, NULL, 0, &err) == 0, "%s", err.msg);
    size_t n0, n1;
    unsigned char *before = read_bytes(path, &n0);

    static real big[100000];
    StTensor huge = {"w", 1, {100000}, big};
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = st_write(path, &huge, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(rc, -1);
    assert_msg_has(&err, path, "the file was not changed");

    StTensor twice[] = {one, one};
    ck_assert_int_eq(st_write(path, twice, 2, NULL, 0, &err), -1);
    assert_msg_has(&err, path, "duplicate tensor name 'w'");

    unsigned char *after = read_bytes(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    ck_assert_int_eq(tmp_count(&td), 1);
    free(before);
    free(after);
    tmp_remove(&td);
}
END_TEST

/* ---- core: files written by other programs --------------------------------- */

// tests/data/st_reference.safetensors: written in Python (see the top of
// this file), four dtypes, a scalar, an empty tensor, escaped metadata,
// header keys in another order than the data.
START_TEST(st_reads_reference_file)
{
    const char *path = DATA_DIR "st_reference.safetensors";
    StFile f;
    Error err;
    ck_assert_msg(st_open(path, &f, &err) == 0, "%s (run from the repository root)", err.msg);
    ck_assert_int_eq(f.n_entries, 6);
    ck_assert_str_eq(st_meta(&f, "format"), "pt");
    ck_assert_str_eq(st_meta(&f, "note"), "caf\xc3\xa9 \"quoted\"");
    real x[6];
    ck_assert_int_eq(st_read_tensor(&f, "conv_in.weight", x, 2, (int[]){2, 3}, &err), 0);
    for (int i = 0; i < 6; i++) ck_assert(x[i] == (real)(i / 4.0 - 0.5));
    ck_assert_int_eq(st_read_tensor(&f, "temb.f64", x, 1, (int[]){3}, &err), 0);
    ck_assert(x[0] == (real)(1.0 / 3.0) && x[1] == -2.5 && x[2] == (real)1e-300);
    ck_assert_int_eq(st_find(&f, "norm.f16")->dtype, ST_F16);
    ck_assert_int_eq(st_read_tensor(&f, "norm.f16", x, 2, (int[]){2, 3}, &err), 0);
    ck_assert(x[0] == 1 && x[1] == -2 && x[2] == (real)ldexp(1, -14));
    ck_assert(x[3] == (real)ldexp(1, -24) && x[4] == 65504 && isinf(x[5]) && x[5] > 0);
    ck_assert_int_eq(st_read_tensor(&f, "bf16.values", x, 1, (int[]){4}, &err), 0);
    ck_assert(x[0] == 1 && x[1] == (real)-3.140625);
    ck_assert(x[2] == (real)ldexp(1, 100) && x[3] == (real)ldexp(1, -7));
    ck_assert_int_eq(st_read_tensor(&f, "a.scalar", x, 0, NULL, &err), 0);
    ck_assert(x[0] == (real)7.25);
    ck_assert_int_eq(st_read_tensor(&f, "empty", x, 2, (int[]){0, 3}, &err), 0);

    ck_assert_int_eq(st_read_tensor(&f, "conv_in.weight", x, 2, (int[]){3, 2}, &err), -1);
    assert_msg_has(&err, path, "tensor 'conv_in.weight' has shape [2,3] in the file but [3,2] "
                   "is expected");
    ck_assert_int_eq(st_read_tensor(&f, "nope", x, 1, (int[]){1}, &err), -1);
    assert_msg_has(&err, path, "no tensor 'nope'");
    st_close(&f);
}
END_TEST

// Odd but valid: whitespace everywhere, keys in any order, \u escapes
// (a surrogate pair becomes 4 bytes of UTF-8), no tensors at all.
START_TEST(st_accepts_valid_oddities)
{
    TmpDir td;
    tmp_make(&td);
    const char *path = tmp_path(&td, "odd.safetensors");
    StFile f;
    Error err;
    write_st(path, " \n{ \"w\\u00e9\\ud83d\\ude00\" :\t{ \"shape\" : [ 2 ] , \"data_offsets\""
             " : [ 0 , 8 ] , \"dtype\" : \"F32\" } , \"__metadata__\" : { } }\r\n  ", 0, 8);
    ck_assert_msg(st_open(path, &f, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(st_find(&f, "w\xc3\xa9\xf0\x9f\x98\x80"));
    st_close(&f);
    write_st(path, "{}", 0, 0);
    ck_assert_msg(st_open(path, &f, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(f.n_entries, 0);
    st_close(&f);
    tmp_remove(&td);
}
END_TEST

/* ---- core: malformed checkpoints --------------------------------------------- */

enum { RAW, HEADER, PARAMS, CUT };   // how a bad case is made and read

typedef struct BadCase {
    int kind;             // RAW: the first `data` bytes of `text` are the file;
                          // HEADER: write_st(text, hlen, data) then st_open;
                          // PARAMS: as HEADER, then st_read_params (strict) into
                          //   w [2,3], b [3]; CUT: a good file cut short by 5 bytes
    const char *text;
    uint64_t hlen;        // header length written (0: the real one)
    size_t data;          // data bytes after the header
    const char *phrase;   // the message must contain it
} BadCase;

#define W23 "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define B3 "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"
#define F32_4(name, b, e) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[" #b "," #e "]}"

static const BadCase bad_cases[] = {
    {RAW, "", 0, 0, "the file is empty"},
    {RAW, "\x05\0\0\0\0", 0, 5, "too short for the 8-byte header length"},
    {HEADER, "{}", 999999, 0, "header length 999999 runs past the end of the file (10 bytes)"},
    {HEADER, "{}", 1, 0, "header length 1 is too small"},
    {HEADER, "hello, world", 0, 0, "malformed JSON header at byte 8: expected '{'"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offs", 0, 0,
     "unexpected end of the header inside a string"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],", 0, 0, "found the end of the header"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8, "tensor 'w' has no data_offsets"},
    {HEADER, "{\"w\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
     "tensor 'w' has unsupported dtype 'F17'"},
    {HEADER, "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
     "unsupported dtype 'I64'"},
    {HEADER, "{" F32_4("a", 0, 16) "," F32_4("b", 16, 32) "}", 0, 24,
     "tensor 'b' has data_offsets [16, 32] past the end of the data (24 bytes)"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 0, 24,
     "data_offsets [0, 12] (12 bytes) but shape [2,3] of F32 needs 24 bytes"},
    {HEADER, "{" F32_4("a", 0, 16) "," F32_4("b", 8, 24) "}", 0, 24, "overlap"},
    {HEADER, "{" F32_4("a", 0, 16) "," F32_4("a", 16, 32) "}", 0, 32, "duplicate tensor name 'a'"},
    {PARAMS, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," B3 "}", 0, 36,
     "tensor 'w' has shape [3,2] in the file but [2,3] is expected"},
    {PARAMS, "{" W23 "}", 0, 24, "missing tensor 'b'"},
    {PARAMS, "{" W23 "," B3 ",\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}",
     0, 40, "unexpected tensor 'extra': was this checkpoint written for another config?"},
    {CUT, NULL, 0, 0, "truncated file"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8,
     "dimension -2"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,8]}}", 0, 8,
     "(0 to 2^31 allowed)"},
    {HEADER, "{\"w\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648,2147483648],"
     "\"data_offsets\":[0,8]}}", 0, 8, "too large for any file"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 0, 8,
     "expected an integer, found a number with a fraction"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999]}}", 0, 0,
     "integer too large"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 0, 8,
     "data_offsets of tensor 'w' has more than 2 entries"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8,
     "not two integers 0 <= begin <= end"},
    {HEADER, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[]}}", 0, 8,
     "unexpected key 'x' in the entry of tensor 'w'"},
    {HEADER, "{\"w\":{\"dtype\":[1],\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
     "expected '\"' to open a string, found '['"},
    {HEADER, "{" W23 ",}", 0, 24, "expected '\"' to open a string, found '}'"},
    {HEADER, "{} {}", 0, 0, "unexpected '{' after the header object"},
    {HEADER, "{\"a\\qb\":{}}", 0, 0, "invalid escape in a string"},
    {HEADER, "{\"a\\ud800b\":{}}", 0, 0, "invalid \\u escape"},
    {HEADER, "{\"a\\u0000\":{}}", 0, 0, "\\u0000 is not allowed"},
    {HEADER, "{\"a\xff\":{}}", 0, 0, "invalid UTF-8 in a string"},
    {HEADER, "{\"a\nb\":{}}", 0, 0, "control character in a string"},
    {HEADER, "{\"__metadata__\":{\"k\":1}}", 0, 0, "the value of metadata key 'k' must be a string"},
    {HEADER, "{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, "duplicate __metadata__"},
    {HEADER, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0, "duplicate metadata key 'k'"},
};
#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

static void write_bad_case(const BadCase *c, const char *path)
{
    if (c->kind == RAW) {
        write_bytes(path, c->text, c->data);
    } else if (c->kind == CUT) {
        real x[6] = {1, 2, 3, 4, 5, 6};
        StTensor t[] = {{"w", 2, {2, 3}, x}, {"b", 1, {3}, x}};
        Error err;
        ck_assert_msg(st_write(path, t, 2, NULL, 0, &err) == 0, "%s", err.msg);
        size_t n;
        unsigned char *b = read_bytes(path, &n);
        write_bytes(path, b, n - 5);
        free(b);
    } else {
        write_st(path, c->text, c->hlen, c->data);
    }
}

START_TEST(st_rejects_malformed)
{
    const BadCase *c = &bad_cases[_i];
    TmpDir td;
    tmp_make(&td);
    const char *path = tmp_path(&td, "bad.safetensors");
    write_bad_case(c, path);
    Error err = {{0}};
    int rc;
    if (c->kind == PARAMS) {
        ParamSet ps;
        params_init(&ps);
        params_add(&ps, "w", 2, (int[]){2, 3});
        params_add(&ps, "b", 1, (int[]){3});
        params_alloc(&ps);
        rc = st_read_params(path, &ps, 1, &err);
        for (size_t k = 0; k < ps.total; k++) ck_assert(ps.data[k] == 0);   // untouched
        params_free(&ps);
    } else {
        StFile f;
        rc = st_open(path, &f, &err);
        if (rc == 0) st_close(&f);
        else ck_assert_ptr_null(f.bytes);   // st_open cleaned up after itself
    }
    ck_assert_msg(rc == -1, "case %d (%s) was accepted", _i, c->phrase);
    assert_msg_has(&err, path, c->phrase);
    tmp_remove(&td);
}
END_TEST

/* ---- core: .npy ----------------------------------------------------------------- */

START_TEST(npy_round_trip)
{
    TmpDir td;
    tmp_make(&td);
    static const int shapes[][4] = {{0}, {5}, {2, 3}, {0, 4}, {2, 1, 3, 2}};
    static const int ndims[] = {0, 1, 2, 2, 4};
    real x[12];
    fill_exact(x, 12, 11);
    const char *path = tmp_path(&td, "a.npy");
    for (int s = 0; s < 5; s++) {
        Error err;
        NpyArray a;
        ck_assert_msg(npy_write(path, x, ndims[s], shapes[s], &err) == 0, "%s", err.msg);
        ck_assert_msg(npy_read(path, &a, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(a.ndim, ndims[s]);
        ck_assert_int_eq(a.dtype, NPY_F4);
        size_t n = 1;
        for (int d = 0; d < a.ndim; d++) n *= (size_t)shapes[s][d];
        ck_assert_uint_eq(a.size, n);
        for (int d = 0; d < a.ndim; d++) ck_assert_int_eq(a.shape[d], shapes[s][d]);
        for (size_t k = 0; k < n; k++) ck_assert(a.data[k] == x[k]);
        size_t bytes;
        unsigned char *b = read_bytes(path, &bytes);
        ck_assert_uint_eq((bytes - 4 * n) % 64, 0);   // data starts at a multiple of 64
        free(b);
        npy_free(&a);
    }
    ck_assert_int_eq(tmp_count(&td), 1);
    tmp_remove(&td);
}
END_TEST

// NumPy's own files read back, and ours are byte for byte what np.save writes.
START_TEST(npy_matches_numpy)
{
    TmpDir td;
    tmp_make(&td);
    Error err;
    NpyArray a;
    ck_assert_msg(npy_read(DATA_DIR "npy_reference_f4.npy", &a, &err) == 0,
                  "%s (run from the repository root)", err.msg);
    ck_assert(a.ndim == 2 && a.shape[0] == 3 && a.shape[1] == 4 && a.dtype == NPY_F4);
    for (int i = 0; i < 12; i++) ck_assert(a.data[i] == (real)(i / 8.0 - 0.75));
    const char *path = tmp_path(&td, "ours.npy");
    ck_assert_int_eq(npy_write(path, a.data, 2, a.shape, &err), 0);
    size_t n0, n1;
    unsigned char *theirs = read_bytes(DATA_DIR "npy_reference_f4.npy", &n0);
    unsigned char *ours = read_bytes(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_int_eq(memcmp(theirs, ours, n0), 0);
    free(theirs);
    free(ours);
    npy_free(&a);

    ck_assert_msg(npy_read(DATA_DIR "npy_reference_i8.npy", &a, &err) == 0, "%s", err.msg);
    ck_assert(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.dtype == NPY_I8);
    static const double want[6] = {-3, 0, 7, 1099511627776.0, -2147483648.0, 1};
    for (int i = 0; i < 6; i++) ck_assert(a.data[i] == (real)want[i]);
    npy_free(&a);
    tmp_remove(&td);
}
END_TEST

// A .npy by hand: magic, version major.0, header length (2 or 4 bytes), the
// dict padded to 64, then `data` bytes. Returns the file size.
static size_t npy_by_hand(unsigned char *b, int major, const char *dict, size_t data)
{
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    size_t hlen = n + 1 + (64 - (pre + n + 1) % 64) % 64;
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + pre, dict, n);
    memset(b + pre + n, ' ', hlen - n - 1);
    b[pre + hlen - 1] = '\n';
    for (size_t i = 0; i < data; i++) b[pre + hlen + i] = (unsigned char)(i + 1);
    return pre + hlen + data;
}

START_TEST(npy_reads_other_dtypes)
{
    TmpDir td;
    tmp_make(&td);
    unsigned char b[512];
    Error err;
    NpyArray a;
    const char *path = tmp_path(&td, "x.npy");
    write_bytes(path, b, npy_by_hand(b, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", 4));
    ck_assert_msg(npy_read(path, &a, &err) == 0, "%s", err.msg);
    ck_assert(a.size == 4 && a.data[0] == 1 && a.data[3] == 4 && a.dtype == NPY_U1);
    npy_free(&a);
    double d[2] = {0.1, -7};
    size_t n = npy_by_hand(b, 2, "{\"shape\": (2L,), \"descr\": \"<f8\", \"fortran_order\": False}", 16);
    memcpy(b + n - 16, d, 16);
    write_bytes(path, b, n);
    ck_assert_msg(npy_read(path, &a, &err) == 0, "%s", err.msg);
    ck_assert(a.size == 2 && a.data[0] == (real)0.1 && a.data[1] == -7 && a.dtype == NPY_F8);
    npy_free(&a);
    int32_t i4 = -123456;
    n = npy_by_hand(b, 3, "{'descr': '<i4', 'fortran_order': False, 'shape': (), }", 4);
    memcpy(b + n - 4, &i4, 4);
    write_bytes(path, b, n);
    ck_assert_msg(npy_read(path, &a, &err) == 0, "%s", err.msg);
    ck_assert(a.ndim == 0 && a.size == 1 && a.data[0] == -123456 && a.dtype == NPY_I4);
    npy_free(&a);
    tmp_remove(&td);
}
END_TEST

typedef struct BadNpy {
    int major;            // 0: the first `data` bytes of `dict` are the file
    const char *dict;
    size_t data;
    const char *phrase;
} BadNpy;

#define NPY_DICT(descr, fortran, shape) \
    "{'descr': '" descr "', 'fortran_order': " fortran ", 'shape': " shape ", }"

static const BadNpy bad_npys[] = {
    {0, "", 0, "not a .npy file (bad magic"},
    {0, "\x93NUMPZ\x01\x00\x02\x00{}", 12, "bad magic"},
    {4, NPY_DICT("<f4", "False", "(2,)"), 8, "unsupported .npy format version 4.0"},
    {1, NPY_DICT("<f4", "True", "(2, 3)"), 24, "Fortran order"},
    {1, NPY_DICT("<f4", "False", "(2, 3)"), 20, "size mismatch: the shape needs 24 data bytes"},
    {1, NPY_DICT("<f4", "False", "(2, 3)"), 28, "but the file holds 28"},
    {1, NPY_DICT("<f4", "False", "(100000, 100000, 100000, 100000)"), 8, "too large"},
    {1, NPY_DICT("<f2", "False", "(2,)"), 4, "unsupported dtype '<f2'"},
    {1, NPY_DICT(">f4", "False", "(2,)"), 8, "it is big-endian"},
    {1, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"},
    {1, "{'descr': '<f4', 'fortran_order': False, }", 8, "header has no 'shape'"},
    {1, NPY_DICT("<f4", "False", "(2; 3)"), 24, "expected ',' or ')' in the shape"},
    {1, NPY_DICT("<f4", "Maybe", "(2,)"), 8, "expected True or False"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected key 'x'"},
    {0, "\x93NUMPY\x01\x00\xff\x00{}", 12, "header length 255 runs past the end of the file"},
};
#define N_BAD_NPYS ((int)(sizeof bad_npys / sizeof bad_npys[0]))

START_TEST(npy_rejects_malformed)
{
    const BadNpy *c = &bad_npys[_i];
    TmpDir td;
    tmp_make(&td);
    const char *path = tmp_path(&td, "bad.npy");
    unsigned char b[512];
    if (c->major == 0) write_bytes(path, c->dict, c->data);
    else write_bytes(path, b, npy_by_hand(b, c->major, c->dict, c->data));
    Error err = {{0}};
    NpyArray a;
    ck_assert_msg(npy_read(path, &a, &err) == -1, "case %d (%s) was accepted", _i, c->phrase);
    ck_assert_ptr_null(a.data);
    assert_msg_has(&err, path, c->phrase);
    tmp_remove(&td);
}
END_TEST

Suite *suite_io(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, st_round_trip);
    tcase_add_test(tc, st_params_round_trip);
    tcase_add_test(tc, st_write_is_atomic);
    tcase_add_test(tc, st_reads_reference_file);
    tcase_add_test(tc, st_accepts_valid_oddities);
    tcase_add_loop_test(tc, st_rejects_malformed, 0, N_BAD_CASES);
    tcase_add_test(tc, npy_round_trip);
    tcase_add_test(tc, npy_matches_numpy);
    tcase_add_test(tc, npy_reads_other_dtypes);
    tcase_add_loop_test(tc, npy_rejects_malformed, 0, N_BAD_NPYS);
    suite_add_tcase(s, tc);
    return s;
}
