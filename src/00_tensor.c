/* 00_tensor.c — tensors, arenas, parameters, random numbers, GEMM.
 *
 * This is the floor of the whole project; chapter 00 (book/00_tensor.md)
 * walks through it. A Tensor is nothing more than a pointer to `size` reals
 * plus a shape: row-major, last dimension fastest, so an image batch
 * [N, C, H, W] stores x[n][c][h][w] at ((n*C + c)*H + h)*W + w. No strides,
 * no views: every op writes a fresh contiguous output, which keeps each
 * kernel a plain loop over memory.
 *
 * Memory has two lifetimes:
 *   - parameters live as long as the model: one ParamSet block;
 *   - everything a training step computes (activations, saved values,
 *     gradients of activations) comes from an Arena and is released in one
 *     go by arena_reset() after the optimiser step. After the first step the
 *     arena is one block big enough for a whole step, so the training loop
 *     makes no system allocation at all.
 *
 * Random numbers: PCG32 (O'Neill 2014), 64-bit state, 32-bit output. The
 * same seed gives the same integer stream on every machine; normals come from
 * Box–Muller in double precision.
 *
 * GEMM: one entry point, gemm(), that every later module calls. It forwards
 * to cblas_sgemm (cblas_dgemm in the double build). gemm_ref() is the
 * textbook triple loop the tests use as the reference.
 */
#include "00_tensor.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ddpm_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: internal error: check '%s' failed: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

int error_set(Error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *xmalloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    if (posix_memalign(&p, 64, bytes) != 0) {
        fprintf(stderr, "out of memory: could not allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

/* ---- Arena -------------------------------------------------------------- */

struct ArenaBlock {
    ArenaBlock *next;   // the previous (older, smaller) block
    size_t cap, used;
    char *mem;          // [cap], 64-byte aligned
};

static ArenaBlock *arena_block_new(Arena *a, size_t cap)
{
    ArenaBlock *b = xmalloc(sizeof *b);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    b->mem = xmalloc(cap);
    a->n_mallocs++;
    return b;
}

void arena_init(Arena *a, size_t bytes)
{
    memset(a, 0, sizeof *a);
    a->head = arena_block_new(a, bytes < 4096 ? 4096 : bytes);
}

// Bump allocation: round up to 64 bytes (a cache line, and what AVX-512
// would want), take from the newest block, open a bigger block when full.
void *arena_alloc(Arena *a, size_t bytes)
{
    size_t need = (bytes + 63) & ~(size_t)63;
    ArenaBlock *b = a->head;
    if (b->used + need > b->cap) {
        size_t cap = 2 * b->cap > need ? 2 * b->cap : need;
        ArenaBlock *nb = arena_block_new(a, cap);
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->mem + b->used;
    b->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *arena_calloc(Arena *a, size_t bytes)
{
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

// Scratch memory inside a step (im2col buffers, say): everything allocated
// after arena_mark() is handed back by arena_release(). If the arena had to
// open a new block in between, the memory stays taken until arena_reset();
// from the second step on there is only one block and release always works.
size_t arena_mark(const Arena *a)
{
    return a->used;
}

void arena_release(Arena *a, size_t mark)
{
    size_t give_back = a->used - mark;
    if (mark > a->used || give_back > a->head->used) return;   // spans blocks: keep
    a->head->used -= give_back;
    a->used = mark;
}

// Release everything at once. If the step needed more than one block, trade
// them all for a single block of the peak size: from then on one block
// holds a whole step and arena_alloc never reaches the system allocator.
void arena_reset(Arena *a)
{
    if (a->head->next) {
        size_t cap = a->peak;
        arena_free(a);
        a->head = arena_block_new(a, cap);
    }
    a->head->used = 0;
    a->used = 0;
}

void arena_free(Arena *a)
{
    for (ArenaBlock *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b->mem);
        free(b);
    }
    a->head = NULL;
}

/* ---- Tensor --------------------------------------------------------------- */

Tensor *tensor_new(Arena *a, int ndim, const int *shape)
{
    DDPM_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "ndim %d", ndim);
    Tensor *t = arena_alloc(a, sizeof *t);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        DDPM_CHECK(shape[i] > 0, "dimension %d is %d", i, shape[i]);
        t->shape[i] = shape[i];
        t->size *= (size_t)shape[i];
    }
    t->data = arena_alloc(a, t->size * sizeof(real));
    return t;
}

Tensor *tensor_zeros(Arena *a, int ndim, const int *shape)
{
    Tensor *t = tensor_new(a, ndim, shape);
    memset(t->data, 0, t->size * sizeof(real));
    return t;
}

Tensor *tensor_like(Arena *a, const Tensor *t)
{
    return tensor_new(a, t->ndim, t->shape);
}

int tensor_same_shape(const Tensor *a, const Tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void tensor_check_same(const char *op, const Tensor *a, const Tensor *b)
{
    char sa[64], sb[64];
    DDPM_CHECK(tensor_same_shape(a, b), "%s: shapes %s and %s differ", op,
               tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb));
}

// Read any tensor as [N, C, HW]: dims 0 and 1, and the product of the rest.
void tensor_nchw(const Tensor *t, int *n, int *c, size_t *hw)
{
    *n = t->shape[0];
    *c = t->ndim > 1 ? t->shape[1] : 1;
    *hw = 1;
    for (int i = 2; i < t->ndim; i++) *hw *= (size_t)t->shape[i];
}

char *tensor_shape_str(const Tensor *t, char *buf, size_t len)
{
    size_t k = 0;
    k += snprintf(buf + k, len - k, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += snprintf(buf + k, len - k, i ? ",%d" : "%d", t->shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

void tensor_zero_grad(Tensor *t)
{
    if (t->grad) memset(t->grad, 0, t->size * sizeof(real));
}

/* ---- ParamSet --------------------------------------------------------------- */

void params_init(ParamSet *ps)
{
    memset(ps, 0, sizeof *ps);
}

// Declare a parameter. Its memory is carved later by params_alloc(), once
// every parameter is known, so that all of them sit in one block.
Tensor *params_add(ParamSet *ps, const char *name, int ndim, const int *shape)
{
    DDPM_CHECK(ps->data == NULL, "params_add('%s') after params_alloc", name);
    DDPM_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "ndim %d", ndim);
    if (ps->count == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->params = realloc(ps->params, ps->cap * sizeof *ps->params);
        DDPM_CHECK(ps->params != NULL, "out of memory");
    }
    Tensor *t = calloc(1, sizeof *t);
    DDPM_CHECK(t != NULL, "out of memory");
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        DDPM_CHECK(shape[i] > 0, "params_add('%s'): dimension %d is %d", name, i, shape[i]);
        t->shape[i] = shape[i];
        t->size *= (size_t)shape[i];
    }
    t->requires_grad = 1;
    t->name = strdup(name);
    ps->params[ps->count++] = t;
    ps->total += t->size;
    return t;
}

void params_alloc(ParamSet *ps)
{
    DDPM_CHECK(ps->data == NULL, "params_alloc called twice");
    ps->data = xmalloc(ps->total * sizeof(real));
    ps->grad = xmalloc(ps->total * sizeof(real));
    memset(ps->data, 0, ps->total * sizeof(real));
    memset(ps->grad, 0, ps->total * sizeof(real));
    size_t off = 0;
    for (int i = 0; i < ps->count; i++) {
        ps->params[i]->data = ps->data + off;
        ps->params[i]->grad = ps->grad + off;
        off += ps->params[i]->size;
    }
}

Tensor *params_find(const ParamSet *ps, const char *name)
{
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->params[i]->name, name) == 0) return ps->params[i];
    return NULL;
}

void params_zero_grad(ParamSet *ps)
{
    memset(ps->grad, 0, ps->total * sizeof(real));
}

void params_free(ParamSet *ps)
{
    for (int i = 0; i < ps->count; i++) {
        free((char *)ps->params[i]->name);
        free(ps->params[i]);
    }
    free(ps->params);
    free(ps->data);
    free(ps->grad);
    memset(ps, 0, sizeof *ps);
}

/* ---- Rng: PCG32 ----------------------------------------------------------- */

// One step of the generator: a 64-bit linear congruential state update, then
// a permutation ("xorshift high bits, random rotate") of the old state.
uint32_t rng_u32(Rng *r)
{
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

void rng_seed(Rng *r, uint64_t seed, uint64_t stream)
{
    r->skip_before = r->skip_after = 0;
    r->state = 0;
    r->inc = (stream << 1) | 1;
    rng_u32(r);
    r->state += seed;
    rng_u32(r);
}

// Jump ahead (Brown, "Random number generation with arbitrary strides",
// 1994): n steps of state -> a state + c compose into one affine map,
// built by repeated squaring of (a, c).
void rng_advance(Rng *r, uint64_t n)
{
    uint64_t mult = 6364136223846793005ULL, plus = r->inc, acc_mult = 1, acc_plus = 0;
    for (; n > 0; n >>= 1) {
        if (n & 1) {
            acc_mult *= mult;
            acc_plus = acc_plus * mult + plus;
        }
        plus = (mult + 1) * plus;
        mult *= mult;
    }
    r->state = acc_mult * r->state + acc_plus;
}

void rng_skip_batch(Rng *r, size_t per_image, int after)
{
    rng_advance(r, (uint64_t)(after ? r->skip_after : r->skip_before) * per_image);
}

// Lemire's trick would be faster; rejection keeps it exact and obvious.
uint32_t rng_below(Rng *r, uint32_t bound)
{
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t x = rng_u32(r);
        if (x >= threshold) return x % bound;
    }
}

double rng_uniform(Rng *r)
{
    uint64_t hi = rng_u32(r) >> 5, lo = rng_u32(r) >> 6;   // 27 + 26 bits
    return (double)(hi * 67108864ULL + lo) / 9007199254740992.0;
}

// Box–Muller: two uniforms give one normal (we drop the second for
// simplicity: the stream position then depends only on how many normals
// were drawn, which makes --resume easy to reason about).
double rng_normal(Rng *r)
{
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rng_fill_uniform(Rng *r, real *x, size_t n, real lo, real hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (real)rng_uniform(r);
}

void rng_fill_normal(Rng *r, real *x, size_t n, real mean, real std)
{
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (real)rng_normal(r);
}

/* ---- Elementwise kernels ---------------------------------------------------- */
/* OpenMP splits a loop over the two cores only when it is long enough to pay
 * for waking the second thread (a few microseconds). */

// PAR_MIN (00_tensor.h): the length below which a loop stays on one core.

void vec_fill(real *out, real v, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = v;
}

void vec_copy(real *out, const real *x, size_t n)
{
    memcpy(out, x, n * sizeof(real));
}

void vec_add(real *out, const real *a, const real *b, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void vec_sub(real *out, const real *a, const real *b, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] - b[i];
}

void vec_mul(real *out, const real *a, const real *b, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void vec_scale(real *out, const real *x, real s, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = s * x[i];
}

void vec_axpy(real *y, real alpha, const real *x, size_t n)
{
    if (n <= PAR_MIN) {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
        return;
    }
    #pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// Reductions accumulate in double: a float sum of a million terms loses
// about three digits, a double one none that float can show.
// Below PAR_MIN the loop never enters OpenMP at all: even a parallel region
// whose if() is false costs about a microsecond, which adds up when a
// caller sums thousands of small planes.
double vec_sum(const real *x, size_t n)
{
    double s = 0;
    if (n <= PAR_MIN) {
        #pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += x[i];
        return s;
    }
    #pragma omp parallel for reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

double vec_mean(const real *x, size_t n)
{
    return vec_sum(x, n) / (double)n;
}

double vec_dot(const real *a, const real *b, size_t n)
{
    double s = 0;
    if (n <= PAR_MIN) {
        #pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
        return s;
    }
    #pragma omp parallel for reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- GEMM ------------------------------------------------------------------ */

// The reference: C = alpha * op(A) op(B) + beta * C, one dot product per
// output element. op(A)[i][k] is A[i*lda + k], or A[k*lda + i] if transposed.
void gemm_ref(int trans_a, int trans_b, int M, int N, int K,
              real alpha, const real *A, int lda, const real *B, int ldb,
              real beta, real *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                real a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                real b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            real *c = &C[(size_t)i * ldc + j];
            *c = (real)(alpha * acc + (beta == 0 ? 0 : beta * *c));
        }
    }
}

// The real thing: OpenBLAS packs panels of A and B into cache-sized blocks
// and runs a hand-written FMA micro-kernel on them. beta == 0 means "C may be
// garbage", exactly as in BLAS.
void gemm(int trans_a, int trans_b, int M, int N, int K,
          real alpha, const real *A, int lda, const real *B, int ldb,
          real beta, real *C, int ldc)
{
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef DDPM_DOUBLE
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

int gemm_threads(void)
{
    return openblas_get_num_threads();
}

int gemm_set_threads(int n)
{
    int was = openblas_get_num_threads();
    openblas_set_num_threads(n > 0 ? n : openblas_get_num_procs());
    return was;
}
