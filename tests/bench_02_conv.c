/* bench_02_conv.c — convolution throughput against the GEMM it stands on.
 *
 * For every distinct conv shape of the `tiny` (ch 32, ch_mult 1,2,2) and
 * `paper` (ch 128, ch_mult 1,2,2,2) U-Nets on 32x32 inputs, at batch 32:
 *   fwd    conv2d_forward (im2col + GEMM + layout/bias), GFLOP/s
 *   bwd    conv2d_backward (dx, dw, db): 2x the forward's flops (conv_in
 *          needs no dx, so 1x there)
 *   gemm1  gemm() alone at the conv's M = Cout, N = B*Ho*Wo, K = Cin*k*k,
 *          one call on ready matrices, OpenBLAS's own two threads
 *   gemm2  the same products cut in one half of N per core, each a
 *          one-thread gemm() (the way conv2d runs them)
 * and conv / the better GEMM. N is capped so that no operand passes 256 MB
 * (marked *). Each number is the best of ROUNDS interleaved rounds (the
 * machine is shared: interleaving gives every column the same chances).
 * Reports, never asserts.
 *
 * Usage: build/bench_02_conv [batch]        (make bench runs it with 32)
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "02_winograd.h"
#include "bench.h"

typedef struct Layer {
    const char *net, *what;
    int Cin, Cout, H, k, stride;
} Layer;

static const Layer layers[] = {
    {"tiny", "conv_in", 3, 32, 32, 3, 1},
    {"tiny", "res 32", 32, 32, 32, 3, 1},
    {"tiny", "down 32", 32, 32, 32, 3, 2},
    {"tiny", "res 16 (32->64)", 32, 64, 16, 3, 1},
    {"tiny", "res 16", 64, 64, 16, 3, 1},
    {"tiny", "nin 16 (1x1)", 32, 64, 16, 1, 1},
    {"tiny", "down 16", 64, 64, 16, 3, 2},
    {"tiny", "res 8", 64, 64, 8, 3, 1},
    {"tiny", "up res 8 (cat)", 128, 64, 8, 3, 1},
    {"tiny", "up res 32 (cat)", 96, 32, 32, 3, 1},
    {"tiny", "conv_out", 32, 3, 32, 3, 1},
    {"paper", "conv_in", 3, 128, 32, 3, 1},
    {"paper", "res 32", 128, 128, 32, 3, 1},
    {"paper", "down 32", 128, 128, 32, 3, 2},
    {"paper", "res 16 (128->256)", 128, 256, 16, 3, 1},
    {"paper", "res 16", 256, 256, 16, 3, 1},
    {"paper", "attn q/k/v 16 (1x1)", 256, 256, 16, 1, 1},
    {"paper", "down 16", 256, 256, 16, 3, 2},
    {"paper", "res 8", 256, 256, 8, 3, 1},
    {"paper", "res 4", 256, 256, 4, 3, 1},
    {"paper", "up res 8 (cat)", 512, 256, 8, 3, 1},
    {"paper", "up res 32 (cat)", 384, 128, 32, 3, 1},
    {"paper", "nin 32 (1x1, cat)", 384, 128, 32, 1, 1},
    {"paper", "conv_out", 128, 3, 32, 3, 1},
};
#define N_LAYERS (int)(sizeof layers / sizeof layers[0])
#define ROUNDS 4               // interleaved rounds (see bench_layer)
#define MIN_TIME 0.03          // seconds of each item per round
#define MAX_OPERAND (64 << 20) // elements of the largest GEMM operand

static real *filled(size_t n, Rng *r)
{
    real *p = malloc(n * sizeof(real));
    if (!p) { fprintf(stderr, "bench_02_conv: out of memory\n"); exit(1); }
    rng_fill_uniform(r, p, n, -1, 1);
    return p;
}

// 3x3 stride 1 pad 1, 1x1, or the Downsample's 3x3 stride 2 pad (0,0,1,1).
static ConvShape layer_shape(const Layer *l, int B)
{
    int p = l->k / 2;
    return l->stride == 1 ? conv_shape(B, l->Cin, l->H, l->H, l->Cout, l->k, 1, p, p, p, p)
                          : conv_shape(B, l->Cin, l->H, l->H, l->Cout, l->k, 2, 0, 0, 1, 1);
}

// The GEMMs of a conv on ready matrices, as one call (OpenBLAS splits it
// over its threads) or as one half of the columns per core, each a
// one-thread call (how conv2d splits its work). col [K, N], y [Cout, N].
typedef struct Gemms { int M, N, K, dx; real *w, *col, *y, *dw; } Gemms;

static void gemms_run(const Gemms *g, int fwd, int n0, int n)
{
    if (fwd) {
        gemm(0, 0, g->M, n, g->K, 1, g->w, g->K, g->col + n0, g->N, 0, g->y + n0, g->N);
        return;
    }
    gemm(0, 1, g->M, g->K, n, 1, g->y + n0, g->N, g->col + n0, g->N, 1, g->dw, g->K);
    if (g->dx) gemm(1, 0, g->K, n, g->M, 1, g->w, g->K, g->y + n0, g->N, 0, g->col + n0, g->N);
}

static void gemms_split(const Gemms *g, int fwd)
{
    int T = omp_get_max_threads();
    gemm_set_threads(1);
    #pragma omp parallel for num_threads(T)
    for (int t = 0; t < T; t++) {
        int n0 = (int)((long)g->N * t / T), n1 = (int)((long)g->N * (t + 1) / T);
        Gemms mine = *g;
        if (t) mine.dw = g->dw + (size_t)t * g->M * g->K;   // its own dw
        gemms_run(&mine, fwd, n0, n1 - n0);
    }
    gemm_set_threads(0);
}

// What one layer's measurements run on.
typedef struct Bench {
    ConvShape s;
    Gemms g;
    int need_dx;
    real *x, *w, *b, *out, *dx, *dw, *db;
    Arena *scratch;
} Bench;

enum { T_FWD, T_BWD, T_WFWD, T_WBWD, T_G1_FWD, T_G1_BWD, T_G2_FWD, T_G2_BWD, N_T };

static void run(Bench *k, int item)
{
    switch (item) {
    case T_FWD: conv2d_forward_im2col(k->out, k->x, k->w, k->b, &k->s, k->scratch); break;
    case T_BWD:
        conv2d_backward_im2col(k->need_dx ? k->dx : NULL, k->dw, k->out, k->x, k->w, &k->s,
                               k->scratch);
        break;
    case T_WFWD: winograd_forward(k->out, k->x, k->w, k->b, &k->s, k->scratch); break;
    case T_WBWD:
        winograd_backward(k->need_dx ? k->dx : NULL, k->dw, k->out, k->x, k->w, &k->s,
                          k->scratch);
        break;
    case T_G1_FWD: gemms_run(&k->g, 1, 0, k->g.N); break;
    case T_G1_BWD: gemms_run(&k->g, 0, 0, k->g.N); break;
    case T_G2_FWD: gemms_split(&k->g, 1); break;
    case T_G2_BWD: gemms_split(&k->g, 0); break;
    }
    arena_reset(k->scratch);
}

// Seconds per call of each item, the best over ROUNDS rounds; a round runs
// every item in turn, each for at least MIN_TIME (and at least once), so
// a slow spell of the machine hits all columns alike.
static void bench_layer(double *t, const Layer *l, int B, Arena *scratch, Rng *r, int *capped)
{
    Bench k = {.s = layer_shape(l, B), .need_dx = l->Cin > 3, .scratch = scratch};
    int K = l->Cin * l->k * l->k, T = omp_get_max_threads();
    size_t nx = (size_t)B * l->Cin * l->H * l->H, no = (size_t)B * l->Cout * k.s.Ho * k.s.Wo;
    k.x = filled(nx, r); k.w = filled((size_t)l->Cout * K, r); k.b = filled(l->Cout, r);
    k.out = filled(no, r); k.dx = filled(nx, r); k.db = filled(l->Cout, r);
    k.dw = filled((size_t)T * l->Cout * K, r);          // gemm2 gives each core a dw
    long N = (long)B * k.s.Ho * k.s.Wo, Nc = N;          // the ceiling's N, capped
    while ((size_t)K * Nc > MAX_OPERAND) Nc /= 2;
    *capped = Nc < N;
    k.g = (Gemms){l->Cout, (int)Nc, K, k.need_dx, k.w, filled((size_t)K * Nc, r),
                  filled((size_t)l->Cout * Nc, r), k.dw};
    for (int i = 0; i < N_T; i++) t[i] = 1e30;
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < N_T; i++) {
            if ((i == T_WFWD || i == T_WBWD) && !winograd_applies(&k.s)) continue;
            double start = bench_now(), scale = i < T_G1_FWD ? 1 : (double)N / Nc;
            do {
                double t0 = bench_now();
                run(&k, i);
                t[i] = fmin(t[i], (bench_now() - t0) * scale);
            } while (bench_now() - start < MIN_TIME);
        }
    free(k.x); free(k.w); free(k.b); free(k.out); free(k.dx); free(k.dw); free(k.db);
    free(k.g.col); free(k.g.y);
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 32;
    if (B < 1) { fprintf(stderr, "usage: bench_02_conv [batch >= 1]\n"); return 2; }
    Arena scratch;
    arena_init(&scratch, 64 << 20);
    Rng r;
    rng_seed(&r, 1, 0);
    printf("conv2d at batch %d (%s), GFLOP/s of the convolution's own flops\n"
           "(2 N Cout Ho Wo Cin k k per forward, whatever the route computes).\n"
           "im2col = im2col + one GEMM per chunk; wino = Winograd F(2x2,3x3) (3x3 stride 1\n"
           "only); gemm = the better of one GEMM at M = Cout, N = B*Ho*Wo, K = Cin*k*k\n"
           "on OpenBLAS's threads and the same cut in one one-thread call per core.\n"
           "Backward = dx and dw (2x the forward's flops; conv_in: dw only). x = wino\n"
           "speed / im2col speed. Best of %d interleaved rounds.\n\n",
           B, sizeof(real) == 4 ? "float" : "double", ROUNDS);
    printf("%-5s %-18s %-15s %6s | %6s %6s %6s %5s | %6s %6s %6s %5s\n", "net", "layer",
           "Cin>Cout@HxW", "GFLOP", "im2col", "wino", "gemm", "x", "im2col", "wino", "gemm", "x");
    double tot[N_T] = {0}, best[2] = {0};
    for (int i = 0; i < N_LAYERS; i++) {
        const Layer *l = &layers[i];
        int capped;
        double t[N_T];
        bench_layer(t, l, B, &scratch, &r, &capped);
        ConvShape s = layer_shape(l, B);
        double f = conv2d_flops(&s) * 1e-9, fb = f * (l->Cin > 3 ? 2 : 1);
        int w = winograd_applies(&s);
        char shape[32], wf[16] = "     -", wb[16] = "     -", xf[16] = "    -", xb[16] = "    -";
        snprintf(shape, sizeof shape, "%d>%d@%d%s%s", l->Cin, l->Cout, l->H,
                 l->k == 1 ? " 1x1" : "", l->stride > 1 ? " s2" : "");
        if (w) {
            snprintf(wf, sizeof wf, "%6.1f", f / t[T_WFWD]);
            snprintf(wb, sizeof wb, "%6.1f", fb / t[T_WBWD]);
            snprintf(xf, sizeof xf, "%4.2fx", t[T_FWD] / t[T_WFWD]);
            snprintf(xb, sizeof xb, "%4.2fx", t[T_BWD] / t[T_WBWD]);
        }
        printf("%-5s %-18s %-15s %6.2f | %6.1f %s %6.1f %s | %6.1f %s %6.1f %s%s\n",
               l->net, l->what, shape, f, f / t[T_FWD], wf,
               f / fmin(t[T_G1_FWD], t[T_G2_FWD]), xf, fb / t[T_BWD], wb,
               fb / fmin(t[T_G1_BWD], t[T_G2_BWD]), xb, capped ? " *" : "");
        fflush(stdout);
        for (int k = 0; k < N_T; k++) tot[k] += t[k];
        best[0] += w ? fmin(t[T_FWD], t[T_WFWD]) : t[T_FWD];
        best[1] += w ? fmin(t[T_BWD], t[T_WBWD]) : t[T_BWD];
    }
    printf("\nall layers, time-weighted: im2col conv at %.0f%% of the GEMM ceiling forward,"
           " %.0f%% backward;\nwith Winograd where it is faster, the same layers take %.2fx"
           " less time forward, %.2fx backward\n",
           100 * fmin(tot[T_G1_FWD], tot[T_G2_FWD]) / tot[T_FWD],
           100 * fmin(tot[T_G1_BWD], tot[T_G2_BWD]) / tot[T_BWD], tot[T_FWD] / best[0],
           tot[T_BWD] / best[1]);
    printf("(GFLOP = one forward of the layer at this batch; * = GEMM ceiling measured at\n"
           " a narrower N and scaled, to keep its operands under 256 MB)\n");
    arena_free(&scratch);
    return 0;
}
