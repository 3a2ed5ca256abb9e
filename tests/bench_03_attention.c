/* bench_03_attention.c — what one AttnBlock costs, and where the time goes.
 *
 * The paper's block (C = 128) at 32x32, 16x16 and 8x8, the tiny config's
 * C = 64 at 16x16, and the paper's real 16x16 level (C = 256), batch 8:
 * milliseconds per call, forward (no-grad) and forward+backward, and the
 * share of that time spent in the attention GEMMs alone (q^T k and v p^T in
 * the forward; the backward adds four more of the same size), in the softmax
 * pair, and in everything else (GroupNorm, the four 1x1 convs, the residual).
 * Run with `make bench`. Reports; asserts nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "03_attention.h"
#include "bench.h"

typedef struct Config { const char *what; int N, C, H, W; } Config;

typedef struct Timing {
    double fwd, fwdbwd;            // the whole block, seconds per call
    double gemm_fwd, gemm_bwd;     // the attention GEMMs alone
    double soft_fwd, soft_bwd;     // softmax_forward / softmax_backward alone
} Timing;

// The attention GEMMs of one call, exactly as attention_forward/backward
// issue them (one sample per core, one-thread GEMMs), on buffers of the same
// shapes: q, k, v, g [N,C,HW], p [HW,HW].
static void time_gemms(Timing *t, int N, int C, int HW)
{
    size_t sz = (size_t)N * C * HW, hw2 = (size_t)HW * HW;
    real *q = calloc(sz, sizeof(real)), *k = calloc(sz, sizeof(real));
    real *v = calloc(sz, sizeof(real)), *h = calloc(sz, sizeof(real));
    real *p = calloc(N * hw2, sizeof(real)), *dp = calloc(N * hw2, sizeof(real));
    real *ds = calloc(N * hw2, sizeof(real));
    BENCH_BEST(t->gemm_fwd, 0.5, _Pragma("omp parallel for") for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C * HW;
        gemm(1, 0, HW, HW, C, 1, q + o, HW, k + o, HW, 0, p + n * hw2, HW);
        gemm(0, 1, C, HW, HW, 1, v + o, HW, p + n * hw2, HW, 0, h + o, HW);
    });
    BENCH_BEST(t->gemm_bwd, 0.5, _Pragma("omp parallel for") for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C * HW;
        real *dsn = ds + n * hw2;
        gemm(0, 0, C, HW, HW, 1, h + o, HW, p + n * hw2, HW, 1, v + o, HW);
        gemm(1, 0, HW, HW, C, 1, h + o, HW, v + o, HW, 0, dsn, HW);
        gemm(0, 1, C, HW, HW, 1, k + o, HW, dsn, HW, 1, q + o, HW);
        gemm(0, 0, C, HW, HW, 1, q + o, HW, dsn, HW, 1, k + o, HW);
    });
    BENCH_BEST(t->soft_fwd, 0.5, softmax_forward(p, p, N * HW, HW));
    BENCH_BEST(t->soft_bwd, 0.5, softmax_backward(dp, p, p, N * HW, HW));
    free(q); free(k); free(v); free(h); free(p); free(dp); free(ds);
}

// The block itself, through the tape, from a warm arena (no system
// allocation inside the timed calls).
static void time_block(Timing *t, const Config *c)
{
    Rng r;
    rng_seed(&r, 3, 0);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "attn", c->C);
    params_alloc(&ps);
    rng_fill_normal(&r, ps.data, ps.total, 0, (real)(1 / sqrt((double)c->C)));
    Arena fixed, step;
    arena_init(&fixed, 1 << 20);
    arena_init(&step, 1 << 20);
    Tensor *x = tensor_4d(&fixed, c->N, c->C, c->H, c->W);
    real *g = arena_alloc(&fixed, x->size * sizeof(real));   // dL/d(out)
    rng_fill_normal(&r, x->data, x->size, 0, 1);
    rng_fill_normal(&r, g, x->size, 0, 1);
    x->requires_grad = 1;
    Tape tp;
    tape_init(&tp, &step);

    tape_set_recording(&tp, 0);
    BENCH_BEST(t->fwd, 1.0, {
        attn_block_forward(&tp, &blk, x);
        arena_reset(&step);
    });
    tape_set_recording(&tp, 1);
    BENCH_BEST(t->fwdbwd, 1.5, {
        x->grad = NULL;
        Tensor *out = attn_block_forward(&tp, &blk, x);
        tape_backward_from(&tp, out, g);
        tape_reset(&tp);
        arena_reset(&step);
    });
    tape_free(&tp);
    arena_free(&step);
    arena_free(&fixed);
    params_free(&ps);
}

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const Config configs[] = {
        {"paper C=128 32x32", 8, 128, 32, 32},
        {"paper C=128 16x16", 8, 128, 16, 16},
        {"paper C=128  8x8", 8, 128, 8, 8},
        {"tiny  C=64  16x16", 8, 64, 16, 16},
        {"paper C=256 16x16", 8, 256, 16, 16},
    };
    printf("AttnBlock, batch 8, %s, ms per call (best of repeats);\n"
           "shares of the same call's total: attention GEMMs | softmax | the rest\n"
           "(the pieces are timed alone: on a busy machine they may not add up)\n",
           sizeof(real) == 4 ? "float32" : "float64");
    printf("%-19s %8s %9s %6s %6s %6s %10s %6s %6s %6s\n", "config", "GFLOP",
           "fwd ms", "gemm", "smax", "rest", "fwd+bwd ms", "gemm", "smax", "rest");
    for (int i = 0; i < (int)(sizeof configs / sizeof configs[0]); i++) {
        const Config *c = &configs[i];
        int HW = c->H * c->W;
        Timing t;
        time_block(&t, c);
        time_gemms(&t, c->N, c->C, HW);
        // forward flops: attention 4 N HW^2 C, four 1x1 convs 8 N HW C^2
        double gflop = (4.0 * HW * HW * c->C + 8.0 * HW * c->C * c->C) * c->N / 1e9;
        double g1 = t.gemm_fwd / t.fwd, s1 = t.soft_fwd / t.fwd;
        double g2 = (t.gemm_fwd + t.gemm_bwd) / t.fwdbwd;
        double s2 = (t.soft_fwd + t.soft_bwd) / t.fwdbwd;
        printf("%-19s %8.3f %9.2f %5.0f%% %5.0f%% %5.0f%% %10.2f %5.0f%% %5.0f%% %5.0f%%\n",
               c->what, gflop, 1e3 * t.fwd, 100 * g1, 100 * s1, 100 * (1 - g1 - s1),
               1e3 * t.fwdbwd, 100 * g2, 100 * s2, 100 * (1 - g2 - s2));
    }
    return 0;
}
