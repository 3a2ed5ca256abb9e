/* 00_tensor.h — the one data structure, its memory, its random numbers, GEMM.
 *
 * Chapter 00 of the book (book/00_tensor.md). Everything later stands on the
 * names declared here:
 *
 *   real      the scalar type: float, or double when built with -DDDPM_DOUBLE
 *             (the second build the gradient checks use)
 *   Arena     bump allocator; one per training step, reset after the step
 *   Tensor    up to 4 dims, row-major contiguous, NCHW for images
 *   ParamSet  all of a model's parameters (and their gradients) in one block
 *   Rng       PCG32: seeded, reproducible, uniform and normal draws
 *   gemm      the single matrix-multiply entry point (cblas via OpenBLAS)
 */
#ifndef DDPM_TENSOR_H
#define DDPM_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#ifdef DDPM_DOUBLE
typedef double real;
#else
typedef float real;
#endif

/* Programming errors (never user input): print where and why, then abort. */
#define DDPM_CHECK(cond, ...) \
    do { if (!(cond)) ddpm_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)
void ddpm_fail(const char *file, int line, const char *cond, const char *fmt, ...);

/* Errors on input (files, shapes from the command line): the function returns
 * -1 and leaves one sentence naming the file and the problem in an Error. */
typedef struct Error {
    char msg[512];
} Error;
int error_set(Error *err, const char *fmt, ...);   // always returns -1

/* Memory that must exist: 64-byte aligned; out of memory prints and exits. */
void *xmalloc(size_t bytes);

/* OpenMP splits a loop over the cores only when it is long enough to pay for
 * waking the other threads (a few microseconds): more than PAR_MIN elements. */
#define PAR_MIN 32768

/* ---- Arena: memory for one step --------------------------------------- */

typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;    // newest block first; older blocks stay until reset
    size_t used;         // bytes handed out since the last reset (all blocks)
    size_t peak;         // largest `used` ever seen
    size_t n_mallocs;    // system allocations made so far (tests watch this)
} Arena;

void  arena_init(Arena *a, size_t bytes);
void *arena_alloc(Arena *a, size_t bytes);   // 64-byte aligned, uninitialised
void *arena_calloc(Arena *a, size_t bytes);  // 64-byte aligned, zeroed
size_t arena_mark(const Arena *a);           // for scratch: take a mark, ...
void  arena_release(Arena *a, size_t mark);  // ... give back all allocated since
void  arena_reset(Arena *a);
void  arena_free(Arena *a);

/* ---- Tensor --------------------------------------------------------------- */

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    real *data;                   // [size] row-major, last dim fastest
    real *grad;                   // [size] dL/d(data), or NULL if none needed
    int ndim;
    int shape[TENSOR_MAX_DIMS];   // images: N, C, H, W
    size_t size;                  // product of shape
    int requires_grad;            // a parameter or a value computed from one
    const char *name;             // parameters: checkpoint name; else NULL or op
} Tensor;

Tensor *tensor_new(Arena *a, int ndim, const int *shape);  // data uninitialised
Tensor *tensor_zeros(Arena *a, int ndim, const int *shape);
Tensor *tensor_like(Arena *a, const Tensor *t);            // same shape, uninit.
#define tensor_1d(a, n)          tensor_new((a), 1, (int[]){(n)})
#define tensor_2d(a, r, c)       tensor_new((a), 2, (int[]){(r), (c)})
#define tensor_4d(a, n, c, h, w) tensor_new((a), 4, (int[]){(n), (c), (h), (w)})

int  tensor_same_shape(const Tensor *a, const Tensor *b);
// The same shape, or abort naming op and both shapes (a programming error).
void tensor_check_same(const char *op, const Tensor *a, const Tensor *b);
void tensor_nchw(const Tensor *t, int *n, int *c, size_t *hw); // [N,C,...] view
char *tensor_shape_str(const Tensor *t, char *buf, size_t len); // "[2,3,4,4]"
void tensor_zero_grad(Tensor *t);

/* ---- ParamSet: one allocation for every parameter ------------------------ */

typedef struct ParamSet {
    Tensor **params;       // [count] in registration order
    int count, cap;
    size_t total;          // number of scalars in all parameters
    real *data;            // [total] every parameter, back to back
    real *grad;            // [total] every gradient, same layout
} ParamSet;

void    params_init(ParamSet *ps);
Tensor *params_add(ParamSet *ps, const char *name, int ndim, const int *shape);
void    params_alloc(ParamSet *ps);     // carve data/grad; call once, after adds
Tensor *params_find(const ParamSet *ps, const char *name);
void    params_zero_grad(ParamSet *ps);
void    params_free(ParamSet *ps);

/* ---- Rng: PCG32 ------------------------------------------------------------ */

typedef struct Rng {
    uint64_t state;
    uint64_t inc;          // stream selector, always odd
    // A batch split across processes (dist.h): this process holds the images
    // after the first skip_before of the batch, and skip_after more follow; a
    // draw for a whole-batch tensor (dropout) steps over the others' numbers.
    // 0, 0 (set by rng_seed) for everything else.
    uint32_t skip_before, skip_after;
} Rng;

void     rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *r);
uint32_t rng_below(Rng *r, uint32_t bound);   // uniform in [0, bound)
double   rng_uniform(Rng *r);                 // uniform in [0, 1), 53 bits
double   rng_normal(Rng *r);                  // standard normal
void     rng_fill_uniform(Rng *r, real *x, size_t n, real lo, real hi);
void     rng_fill_normal(Rng *r, real *x, size_t n, real mean, real std);
#define  RNG_NORMAL_DRAWS 4   // rng_normal takes exactly this many rng_u32 draws
void     rng_advance(Rng *r, uint64_t n);   // as if rng_u32 ran n times, in O(log n) steps
// Step over the draws of the images before (after = 0) or after (after = 1)
// this process's share of a batch, `per_image` draws each (see skip_before).
void     rng_skip_batch(Rng *r, size_t per_image, int after);

/* ---- Elementwise kernels and reductions (raw arrays of n values) -------- */

void vec_fill(real *out, real v, size_t n);
void vec_copy(real *out, const real *x, size_t n);
void vec_add(real *out, const real *a, const real *b, size_t n);
void vec_sub(real *out, const real *a, const real *b, size_t n);
void vec_mul(real *out, const real *a, const real *b, size_t n);
void vec_scale(real *out, const real *x, real s, size_t n);
void vec_axpy(real *y, real alpha, const real *x, size_t n);  // y += alpha*x
double vec_sum(const real *x, size_t n);
double vec_mean(const real *x, size_t n);
double vec_dot(const real *a, const real *b, size_t n);

/* e^x, element by element, in a form the compiler turns into vector code:
 * libm's exp is one call per element, which no loop can vectorise. Write
 * x = n ln2 + r with n an integer and |r| <= ln2/2; then e^x = 2^n e^r, the
 * 2^n built straight into the float's exponent bits and e^r from its Taylor
 * series to r^6 (relative error below 2e-7, about one float ulp). x is
 * clamped to [-87, 88], where 2^n stays a normal float. The double build
 * (the gradient checks) keeps libm's exp. */
static inline real exp_vec(real x)
{
#ifdef DDPM_DOUBLE
    return exp(x);
#else
    x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
    float n = (x * 1.44269504f + 12582912.f) - 12582912.f;   // round(x / ln2): 1.5 * 2^23 trick
    float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;    // ln2 in two parts: r exact
    float p = 1 + r * (1 + r * (0.5f + r * (1 / 6.f + r * (1 / 24.f + r * (1 / 120.f + r / 720.f)))));
    union { uint32_t u; float f; } two_n = {(uint32_t)((int32_t)n + 127) << 23};
    return p * two_n.f;
#endif
}

/* ---- GEMM: C = alpha * op(A) op(B) + beta * C, row-major ------------------ */
/* op(A) is [M, K], op(B) is [K, N], C is [M, N]; lda/ldb/ldc are row strides. */

void gemm(int trans_a, int trans_b, int M, int N, int K,
          real alpha, const real *A, int lda, const real *B, int ldb,
          real beta, real *C, int ldc);
void gemm_ref(int trans_a, int trans_b, int M, int N, int K,
              real alpha, const real *A, int lda, const real *B, int ldb,
              real beta, real *C, int ldc);
int  gemm_set_threads(int n);   // BLAS threads (0 = all cores); returns the old count
int  gemm_threads(void);

#endif
