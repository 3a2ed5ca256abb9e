/* ch02_conv.c — the experiments of chapter 02 (make chapter2).
 *
 * 1. Throughput: conv2d forward and backward against the GEMM alone, for the
 *    conv shapes of the `tiny` and `paper` U-Nets at batch 32
 *    -> figures/ch02_throughput.{png,svg}
 * 2. Receptive field: how far one output pixel of the U-Net's down path
 *    "sees", by the formula and as measured with the library's own backward
 *    (the support of d out[centre] / d x)        -> figures/ch02_rf_growth.*
 *    and what that gradient looks like after 5, 10 and 15 layers
 *                                                 -> figures/ch02_rf_maps.*
 *
 * Writes data and gnuplot scripts into figures/data/; the Makefile runs
 * gnuplot on them. Runs in well under a minute on two cores.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "02_conv.h"
#include "bench.h"

/* ---- 1. throughput ----------------------------------------------------------- */

typedef struct Layer {
    const char *label;
    int Cin, Cout, H, k, stride;
} Layer;

// The distinct conv shapes of both networks on 32x32 inputs (as in
// tests/bench_02_conv.c, which prints the full table).
static const Layer layers[] = {
    {"tiny conv_in 3>32, 32x32", 3, 32, 32, 3, 1},
    {"tiny 32>32, 32x32", 32, 32, 32, 3, 1},
    {"tiny down 32>32, 32x32", 32, 32, 32, 3, 2},
    {"tiny 64>64, 16x16", 64, 64, 16, 3, 1},
    {"tiny 1x1 32>64, 16x16", 32, 64, 16, 1, 1},
    {"tiny 64>64, 8x8", 64, 64, 8, 3, 1},
    {"tiny 128>64, 8x8", 128, 64, 8, 3, 1},
    {"tiny 96>32, 32x32", 96, 32, 32, 3, 1},
    {"paper conv_in 3>128, 32x32", 3, 128, 32, 3, 1},
    {"paper 128>128, 32x32", 128, 128, 32, 3, 1},
    {"paper down 128>128, 32x32", 128, 128, 32, 3, 2},
    {"paper 256>256, 16x16", 256, 256, 16, 3, 1},
    {"paper 1x1 256>256, 16x16", 256, 256, 16, 1, 1},
    {"paper 256>256, 8x8", 256, 256, 8, 3, 1},
    {"paper 256>256, 4x4", 256, 256, 4, 3, 1},
    {"paper 512>256, 8x8", 512, 256, 8, 3, 1},
    {"paper 384>128, 32x32", 384, 128, 32, 3, 1},
    {"paper conv_out 128>3, 32x32", 128, 3, 32, 3, 1},
};
#define N_LAYERS (int)(sizeof layers / sizeof layers[0])
#define BATCH 32
#define ROUNDS 3       // interleaved rounds: a busy spell of the machine hits all columns
#define MIN_TIME 0.03  // seconds of each measurement per round

static real *filled(size_t n, Rng *r)
{
    real *p = malloc(n * sizeof(real));
    if (!p) { fprintf(stderr, "ch02_conv: out of memory\n"); exit(1); }
    rng_fill_uniform(r, p, n, -1, 1);
    return p;
}

static ConvShape layer_shape(const Layer *l)
{
    int p = l->k / 2;
    return l->stride == 1 ? conv_shape(BATCH, l->Cin, l->H, l->H, l->Cout, l->k, 1, p, p, p, p)
                          : conv_shape(BATCH, l->Cin, l->H, l->H, l->Cout, l->k, 2, 0, 0, 1, 1);
}

// The forward's GEMM on ready matrices, the better of two ways: one call
// (OpenBLAS's threads) or one half of the columns per core.
static void gemm_ceiling(int split, int M, int N, int K, const real *w, const real *col, real *y)
{
    if (!split) {
        gemm(0, 0, M, N, K, 1, w, K, col, N, 0, y, N);
        return;
    }
    gemm_set_threads(1);
    #pragma omp parallel for
    for (int t = 0; t < 2; t++)
        gemm(0, 0, M, N / 2 + t * (N % 2), K, 1, w, K, col + t * (N / 2), N, 0,
             y + t * (N / 2), N);
    gemm_set_threads(0);
}

// Best seconds per call of `stmt` over ROUNDS rounds of at least MIN_TIME.
#define TIME_INTO(best, stmt)                                               \
    do {                                                                    \
        double s0_ = bench_now();                                           \
        do {                                                                \
            double t0_ = bench_now();                                       \
            stmt;                                                           \
            best = fmin(best, bench_now() - t0_);                           \
        } while (bench_now() - s0_ < MIN_TIME);                             \
    } while (0)

static void throughput(void)
{
    Arena scratch;
    arena_init(&scratch, 64 << 20);
    Rng r;
    rng_seed(&r, 2, 0);
    FILE *f = fopen("figures/data/ch02_throughput.dat", "w");
    fprintf(f, "# layer  fwd  bwd  gemm_ceiling   (GFLOP/s, float32, batch %d)\n", BATCH);
    fprintf(stderr, "conv GFLOP/s at batch %d:  fwd    bwd   GEMM alone\n", BATCH);
    for (int i = 0; i < N_LAYERS; i++) {
        const Layer *l = &layers[i];
        ConvShape s = layer_shape(l);
        int K = l->Cin * l->k * l->k, N = BATCH * s.Ho * s.Wo, dx_too = l->Cin > 3;
        size_t nx = (size_t)BATCH * l->Cin * l->H * l->H, no = (size_t)l->Cout * N;
        real *x = filled(nx, &r), *w = filled((size_t)l->Cout * K, &r), *b = filled(l->Cout, &r);
        real *out = filled(no, &r), *dx = filled(nx, &r), *dw = filled((size_t)l->Cout * K, &r);
        real *col = filled((size_t)K * N, &r), *db = filled(l->Cout, &r);
        double tf = 1e30, tb = 1e30, tg = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
            TIME_INTO(tf, (conv2d_forward(out, x, w, b, &s, &scratch), arena_reset(&scratch)));
            TIME_INTO(tb, (conv2d_backward(dx_too ? dx : NULL, dw, db, out, x, w, &s, &scratch),
                           arena_reset(&scratch)));
            TIME_INTO(tg, gemm_ceiling(0, l->Cout, N, K, w, col, out));
            TIME_INTO(tg, gemm_ceiling(1, l->Cout, N, K, w, col, out));
        }
        double gf = conv2d_flops(&s) * 1e-9;
        fprintf(f, "\"%s\" %.2f %.2f %.2f\n", l->label, gf / tf, gf * (dx_too ? 2 : 1) / tb, gf / tg);
        fprintf(stderr, "  %-28s %6.1f %6.1f %6.1f\n", l->label, gf / tf,
                gf * (dx_too ? 2 : 1) / tb, gf / tg);
        free(x); free(w); free(b); free(out); free(dx); free(dw); free(col); free(db);
    }
    fclose(f);
    arena_free(&scratch);

    f = fopen("figures/data/ch02_throughput.gp", "w");
    fprintf(f,
        "set style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
        "set xtics rotate by -45 left font ',9' noenhanced\nset grid ytics\n"
        "set key inside top left horizontal\n"
        "set ylabel 'GFLOP/s (float32)'\nset yrange [0:250]\nset bmargin 9\nset rmargin 12\n"
        "set title 'conv2d at batch %d vs the GEMM alone at the same M, N, K (2 cores, AVX2+FMA)'\n"
        "p = \"plot 'figures/data/ch02_throughput.dat' u 2:xtic(1) t 'conv2d forward' lc rgb '#4477aa', "
        "'' u 3 t 'conv2d backward (dx + dw)' lc rgb '#66ccee', "
        "'' u 4 t 'GEMM alone (forward shape)' lc rgb '#bbbbbb'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch02_throughput.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch02_throughput.svg'\n@p\n",
        BATCH);
    fclose(f);
}

/* ---- 2. receptive field -------------------------------------------------------- */

// The 3x3 convs of the paper's down path, in order: conv_in, then per level
// two ResBlocks of two convs and a Downsample (none after the last level),
// then the middle block's two ResBlocks. 1 = stride 1, 2 = Downsample.
static const int down_path[] = {
    1,  1, 1, 1, 1, 2,  1, 1, 1, 1, 2,  1, 1, 1, 1, 2,  1, 1, 1, 1,  1, 1, 1, 1,
};
#define DEPTH (int)(sizeof down_path / sizeof down_path[0])

// Run the first `depth` convs of the down path on x [1, C, S, S] with
// weights w (one [C, C, 3, 3] tensor reused by every layer), then push a
// gradient of 1 back from the centre pixel of the output's channel 0.
// Returns the output's side; x->grad holds d out[centre] / d x.
static int centre_gradient(Tape *tp, Tensor *x, Tensor *w, int depth)
{
    Tensor *h = x;
    for (int i = 0; i < depth; i++)
        h = down_path[i] == 2 ? ag_conv3x3_down(tp, h, w, NULL) : ag_conv3x3(tp, h, w, NULL);
    int S = h->shape[2];
    real *seed = arena_calloc(tp->arena, h->size * sizeof(real));
    seed[(size_t)(S / 2) * S + S / 2] = 1;
    vec_fill(x->grad, 0, x->size);
    tape_backward_from(tp, h, seed);
    return S;
}

// Receptive field size by the usual recursion: a k x k conv adds (k-1) * j
// to the field, where j (the "jump") is the input distance between two
// neighbouring outputs; a stride-s layer multiplies j by s.
static void rf_growth(void)
{
    enum { S = 256 };
    Arena ar;
    arena_init(&ar, 64 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    FILE *f = fopen("figures/data/ch02_rf_growth.dat", "w");
    fprintf(f, "# depth  rf_formula  rf_measured  jump  (3x3 convs of the down path, %dx%d input)\n",
            S, S);
    int rf = 1, jump = 1;
    fprintf(f, "0 1 1 1\n");
    for (int d = 1; d <= DEPTH; d++) {
        rf += 2 * jump;
        if (down_path[d - 1] == 2) jump *= 2;
        Tensor *x = tensor_4d(&ar, 1, 1, S, S), *w = tensor_4d(&ar, 1, 1, 3, 3);
        vec_fill(x->data, 1, x->size);
        vec_fill(w->data, (real)1 / 9, w->size);   // positive: no cancellation
        x->requires_grad = 1;
        x->grad = arena_alloc(&ar, x->size * sizeof(real));
        centre_gradient(&tp, x, w, d);
        int lo = S, hi = -1;                       // columns the gradient reaches
        for (int i = 0; i < S * S; i++)
            if (x->grad[i] != 0) {
                lo = i % S < lo ? i % S : lo;
                hi = i % S > hi ? i % S : hi;
            }
        fprintf(f, "%d %d %d %d\n", d, rf, hi - lo + 1, jump);
        tape_reset(&tp);
        arena_reset(&ar);
    }
    fclose(f);
    tape_free(&tp);
    arena_free(&ar);

    f = fopen("figures/data/ch02_rf_growth.gp", "w");
    fprintf(f,
        "set grid\nset key bottom right\nset xlabel '3x3 convs from the input (the U-Net down path; "
        "dashed lines: Downsample)'\n"
        "set ylabel 'receptive field (pixels across)'\nset xrange [0:%d]\nset yrange [0:*]\n"
        "set title 'Receptive field of one output pixel: formula vs the library''s backward'\n"
        "set arrow from graph 0, first 32 to graph 1, first 32 nohead dt 3 lc rgb '#aa3377'\n"
        "set label 'the whole 32x32 image' at 0.5, 38 tc rgb '#aa3377'\n",
        DEPTH);
    for (int i = 0; i < DEPTH; i++)
        if (down_path[i] == 2)
            fprintf(f, "set arrow from %d, graph 0 to %d, graph 1 nohead dt 2 lc rgb '#999999'\n",
                    i + 1, i + 1);
    fprintf(f,
        "p = \"plot 'figures/data/ch02_rf_growth.dat' u 1:2 w l lw 2 lc rgb '#4477aa' "
        "t 'r_{l} = r_{l-1} + (k-1) j_{l-1}', '' u 1:3 w p pt 7 ps 1.2 lc rgb '#ee6677' "
        "t 'support of d out[centre] / d x (measured)'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch02_rf_growth.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch02_rf_growth.svg'\n@p\n");
    fclose(f);
}

// log10 of |d out[centre] / d x|, summed over channels, relative to its
// maximum, as a gnuplot matrix; -9 where the gradient is exactly zero.
static void write_map(const char *path, const Tensor *x)
{
    int C = x->shape[1], S = x->shape[2];
    double big = 0;
    for (size_t i = 0; i < x->size; i++) big = fmax(big, fabs(x->grad[i]));
    FILE *f = fopen(path, "w");
    for (int y = 0; y < S; y++) {
        for (int xx = 0; xx < S; xx++) {
            double g = 0;
            for (int c = 0; c < C; c++) g += fabs(x->grad[((size_t)c * S + y) * S + xx]);
            fprintf(f, "%.3f ", g > 0 ? fmax(log10(g / big), -9) : -9);
        }
        fputc('\n', f);
    }
    fclose(f);
}

// Four maps on a 96x96 input: averaging filters after 5, 10 and 15 convs
// (the end of levels 0, 1, 2 of the down path), and 8 channels of random
// weights after 15 convs.
static void rf_maps(void)
{
    enum { S = 96, CR = 8 };
    static const int depths[4] = {5, 10, 15, 15};
    Arena ar;
    arena_init(&ar, 64 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    Rng r;
    rng_seed(&r, 3, 0);
    for (int p = 0; p < 4; p++) {
        int C = p < 3 ? 1 : CR;
        Tensor *x = tensor_4d(&ar, 1, C, S, S), *w = tensor_4d(&ar, C, C, 3, 3);
        rng_fill_normal(&r, x->data, x->size, 0, 1);
        if (p < 3) vec_fill(w->data, (real)1 / 9, w->size);
        else rng_fill_normal(&r, w->data, w->size, 0, (real)sqrt(1.0 / (9 * C)));
        x->requires_grad = 1;
        x->grad = arena_alloc(&ar, x->size * sizeof(real));
        centre_gradient(&tp, x, w, depths[p]);
        char path[64];
        snprintf(path, sizeof path, "figures/data/ch02_rf_map%d.dat", p);
        write_map(path, x);
        tape_reset(&tp);
        arena_reset(&ar);
    }
    tape_free(&tp);
    arena_free(&ar);

    FILE *f = fopen("figures/data/ch02_rf_maps.gp", "w");
    fprintf(f,
        "set size ratio -1\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nunset key\n"
        "set cbrange [-9:0]\nset palette defined (-9 '#ffffff', -6 '#c6dbef', -3 '#4292c6', "
        "-1 '#08306b', 0 '#000000')\nset xtics 16 font ',9'\nset ytics 16 font ',9'\n"
        "set cblabel 'log_{10} |d out / d x| (relative)'\n"
        "titles = \"'5 convs (level 0): RF 11' '10 convs (+ level 1): RF 29' "
        "'15 convs (+ level 2): RF 65' '15 convs, 8 random channels'\"\n"
        "do for [t in 'png svg'] {\n"
        "  if (t eq 'png') { set terminal pngcairo size 900,560 font 'Sans,10' } "
        "else { set terminal svg size 900,560 font 'Sans,10' }\n"
        "  set output 'figures/ch02_rf_maps.'.t\n"
        "  set multiplot layout 2,2 title 'Gradient of one output pixel w.r.t. a %dx%d input "
        "(averaging filters; last panel random)'\n"
        "  do for [i=0:3] {\n"
        "    set title word(titles, i+1) font ',10'\n"
        "    plot sprintf('figures/data/ch02_rf_map%%d.dat', i) matrix w image\n"
        "  }\n  unset multiplot\n}\n",
        S - 1, S - 1, S, S);
    fclose(f);
}

int main(void)
{
    fprintf(stderr, "ch02: receptive field...\n");
    rf_growth();
    rf_maps();
    fprintf(stderr, "ch02: conv throughput (about half a minute)...\n");
    throughput();
    return 0;
}
