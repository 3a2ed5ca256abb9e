/* ch07_ratedist.c — the experiment of chapter 07 (make chapter7).
 *
 * The paper's Figure 5 and Table 4 for a trained model: the bound of every
 * test image, term by term (calc_bpd_loop), read as a progressive code.
 *   figures/ch07_rd.{png,svg}     distortion vs steps received, rate vs
 *                                 steps, distortion vs rate; ours and the
 *                                 paper's Table 4 on the same axes
 *   figures/data/ch07_rd.csv      the whole curve (rd_write_csv)
 *   figures/data/ch07_table.txt   the summary, ours beside the paper's
 *
 * CKPT is the checkpoint (the Makefile's `model` target makes sure there is
 * one); its EMA weights are used when it has them, as `ddpm bpd` does.
 * EVAL_N (default 32) is the number of test images, DDPM_DATA the data set.
 * Seed 0 and one batch of up to 50 images: the numbers are those of
 * `ddpm rd --ckpt $CKPT --n $EVAL_N`.
 *   build/nb/ch07_ratedist data   only the data set's numbers (no model)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "07_ratedist.h"
#include "checkpoint.h"
#include "data.h"
#include "progress.h"

typedef struct Loaded {
    TrainedModel m;      // network (EMA weights when present), schedule, diffusion
    char label[192];     // "Fashion-MNIST, tiny U-Net, 2000 training steps"
    char steps[32];      // "2000"
} Loaded;

// The model and a label that says what it was trained on and for how long.
static int load_model(const char *path, Loaded *L, Error *err)
{
    if (trained_model_load(&L->m, path, 1, err) < 0) return -1;
    if (L->m.step >= 0) snprintf(L->steps, sizeof L->steps, "%ld", L->m.step);
    else snprintf(L->steps, sizeof L->steps, "?");
    snprintf(L->label, sizeof L->label, "%s, %s U-Net, %s training steps",
             *L->m.data ? L->m.data : "unknown data", L->m.net.cfg.name, L->steps);
    return 0;
}

// Seconds per image-timestep, for the time estimate printed before a run: the
// tiny U-Net took ~7 ms on two cores (AVX2+FMA); the others are scaled by
// their forward GFLOP per 32x32x3 image (tiny 0.566, small 3.20, paper 12.44).
static double seconds_per_step(const char *config)
{
    if (!strcmp(config, "small")) return 0.007 * 3.20 / 0.566;
    if (!strcmp(config, "paper")) return 0.007 * 12.44 / 0.566;
    return 0.007;
}

// The best distortion possible with nothing received: x_T says (almost)
// nothing about x0, so the best guess is E[x0], the mean image of the data
// (what the Gaussian test model predicts from x_T; chapter's tests). Its
// RMSE on [0, 255] over the evaluated images x0 [N, D], with the mean
// taken over the training split.
static double mean_image_rmse(const Dataset *train, const real *x0, int N)
{
    size_t D = (size_t)train->c * train->h * train->w;
    double *mean = calloc(D, sizeof *mean), se = 0;
    for (int n = 0; n < train->n; n++)
        for (size_t i = 0; i < D; i++) mean[i] += train->pixels[(size_t)n * D + i];
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < D; i++) {
            double d = (x0[(size_t)n * D + i] + 1) * 127.5 - mean[i] / train->n;
            se += d * d;
        }
    free(mean);
    return sqrt(se / ((double)N * D));
}

static void write_paper(const char *path)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "# the paper's Table 4 (CIFAR-10)\nsteps,rate_bpd,rmse\n");
    for (int i = 0; i < RD_PAPER_ROWS; i++)
        fprintf(f, "%d,%.5f,%.2f\n", rd_paper_table4[i].steps, rd_paper_table4[i].rate,
                rd_paper_table4[i].rmse);
    fclose(f);
}

// Figure 5 as three panels. The rate spans five orders of magnitude (L_T
// ~1e-5 bits/dim, then ~1-2 bits/dim in the last steps), so its axes are
// logarithmic: on a linear axis both curves would lie flat on zero for
// most of the steps. The paper's 100-step rate (0.00000) has no place on them.
// One legend, in the middle panel, where the curves leave room for it.
static void write_plot(const char *title, const char *ours, const char *theirs, int T,
                       double baseline)
{
    FILE *f = fopen("figures/data/ch07_rd.gpi", "w");
    fprintf(f,
        "set datafile separator ','\nset grid\n"
        "our = \"'figures/data/ch07_rd.csv' skip 2\"\n"
        "paper = \"'figures/data/ch07_paper.csv' skip 2\"\n"
        "O = \"lw 2 lc rgb '#1f4e79'\"\n"
        "B = \"fs transparent solid 0.25 noborder lc rgb '#4a7ab5'\"\n"
        "P = \"w lp pt 7 ps 1.2 lw 1.5 dt 2 lc rgb '#c0504d'\"\n"
        "M = \"w l dt 3 lw 1.5 lc rgb '#555555' t 'our data: its mean image (nothing received)'\"\n"
        "set multiplot layout 1,3 title '%s'\n"
        "set xlabel 'reverse process steps received (T - t + 1)'\nset xrange [0:%d]\n"
        "set ylabel 'distortion: RMSE of x_0 prediction [0, 255]'\nset yrange [0:*]\n"
        "unset key\n"
        "plot @our u 1:($5-$6):($5+$6) w filledcurves @B notitle, @our u 1:5 w l @O t '%s', "
        "@paper u 1:3 @P t '%s', %g @M\n"
        "set ylabel 'rate: bits/dim received'\nset logscale y\nset format y '10^{%%L}'\n"
        "set yrange [*:*]\nset key top left Left reverse samplen 2\n"
        "plot @our u 1:($3 > 0 ? $3 : 1/0) w l @O t '%s', @paper u 1:($2 > 0 ? $2 : 1/0) @P t '%s', "
        "NaN @M\n"
        "unset logscale y\nset format y '%%g'\nset yrange [0:*]\n"
        "set logscale x\nset format x '10^{%%L}'\nset xrange [*:*]\nunset key\n"
        "set xlabel 'rate: bits/dim received'\nset ylabel 'distortion: RMSE [0, 255]'\n"
        "plot @our u ($3 > 0 ? $3 : 1/0):5 w l @O t '%s', @paper u ($2 > 0 ? $2 : 1/0):3 @P t '%s', "
        "%g @M\n"
        "unset multiplot\n", title, T, ours, theirs, baseline, ours, theirs, ours, theirs,
        baseline);
    fclose(f);
    // loaded twice (png, then svg); .gpi so that make does not run it alone
    f = fopen("figures/data/ch07_rd_out.gp", "w");
    fprintf(f, "set terminal pngcairo size 1500,500 font 'Sans,11'\nset output 'figures/ch07_rd.png'\n"
               "load 'figures/data/ch07_rd.gpi'\n"
               "set terminal svg size 1500,500 font 'Sans,11'\nset output 'figures/ch07_rd.svg'\n"
               "load 'figures/data/ch07_rd.gpi'\n");
    fclose(f);
}

static void write_table(const Loaded *L, const Dataset *d, const RDCurve *rd, double secs,
                        double baseline)
{
    FILE *f = fopen("figures/data/ch07_table.txt", "w");
    FILE *outs[2] = {stdout, f};
    for (int i = 0; i < 2; i++) {
        fprintf(outs[i], "ours: %s; %d %s test images, %s weights, x0_pred clipped, seed 0, "
                         "%.0f s\npaper: CIFAR-10, 35.7M params, 800k steps (Table 4, §4.3)\n\n",
                L->label, rd->N, d->name, L->m.ema ? "EMA" : "raw", secs);
        rd_print_summary(outs[i], rd);
        fprintf(outs[i], "\nRMSE of the training set's mean image (nothing received): %.2f\n",
                baseline);
    }
    fclose(f);
}

// The curve of the first N test images: seed 0, batches of up to 50, x0_pred
// clipped (the defaults of ddpm rd). Returns the seconds it took, or -1.
static double evaluate(const Loaded *L, const Dataset *test, const real *x0, int N, RDCurve *rd)
{
    int T = L->m.sched->T;
    fprintf(stderr, "evaluating %d images x %d steps: about %.1f minutes on two cores\n", N, T,
            N * T * seconds_per_step(L->m.net.cfg.name) / 60);
    Rng rng;
    rng_seed(&rng, 0, 0);
    Progress pr;
    progress_start(&pr, "rd", 0, 0);
    Model model = unet_model(&L->m.net);
    Error err;
    if (rate_distortion(&L->m.df, &model, x0, N, test->c, test->h, test->w, N < 50 ? N : 50, &rng,
                        1, rd, progress_callback, &pr, &err) < 0) {
        fprintf(stderr, "ch07: %s\n", err.msg);
        return -1;
    }
    progress_end(&pr, pr.total, NULL);
    return progress_now() - pr.start;
}

/* ---- Section "data": the numbers of the data set the chapter quotes ----------
 *   build/nb/ch07_ratedist data      (DDPM_DATA=path picks the data set)
 * needs no model. On the test split: E[x0^2] and the prior term L_T it gives
 * (Eq. 5's KL(q(x_T|x0) || N(0, I)) per dimension, in bits); the RMSE on
 * [0, 255] of the training split's mean image, over the whole test split and
 * over the first EVAL_N (32) test images that make chapter7 evaluates; and
 * the share of those images' pixels that are exactly 0 or 255.              */
static int section_data(int N)
{
    Dataset train, test;
    Error err;
    const char *path = data_default_path();
    if (data_load(&train, path, 1, &err) < 0 || data_load(&test, path, 0, &err) < 0) {
        fprintf(stderr, "ch07: %s\n", err.msg);
        return 1;
    }
    size_t D = (size_t)test.c * test.h * test.w;
    real *x0 = malloc(sizeof(real) * (size_t)test.n * D);
    int *idx = malloc(sizeof(int) * (size_t)test.n);
    for (int i = 0; i < test.n; i++) idx[i] = i;
    data_batch(&test, x0, idx, test.n, NULL);
    if (N > test.n) N = test.n;
    double ex2 = 0, prior = 0, zeros = 0, full = 0;
    Schedule s;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, &err) < 0) return 1;
    double ab = s.alphas_cumprod[s.T - 1];
    for (size_t i = 0; i < (size_t)test.n * D; i++) {
        double x = x0[i];
        ex2 += x * x;
        prior += 0.5 * (-1 - log(1 - ab) + (1 - ab) + ab * x * x);   // normal_kl, per dimension
    }
    ex2 /= (double)test.n * D;
    prior /= (double)test.n * D * log(2.0);
    for (size_t i = 0; i < (size_t)N * D; i++) {
        zeros += x0[i] == -1;
        full += x0[i] == 1;
    }
    printf("%s, test split (%d images), paper schedule (abar_T = %.3g)\n", test.name, test.n, ab);
    printf("  E[x0^2]                                      %.3f\n", ex2);
    printf("  L_T = KL(q(x_T|x0) || N(0,I)), bits/dim      %.2e  (abar_T E[x0^2] / (2 ln 2) = %.2e)\n",
           prior, ab * ex2 / (2 * log(2.0)));
    printf("  RMSE of the training mean image, [0,255]     %.2f  (all test images)\n",
           mean_image_rmse(&train, x0, test.n));
    printf("  RMSE of the training mean image, [0,255]     %.2f  (first %d test images)\n",
           mean_image_rmse(&train, x0, N), N);
    printf("  pixels exactly 0 / 255 in those %d images     %.1f%% / %.1f%%\n", N,
           100 * zeros / ((double)N * D), 100 * full / ((double)N * D));
    schedule_free(&s);
    free(x0);
    free(idx);
    data_free(&train);
    data_free(&test);
    return 0;
}

int main(int argc, char **argv)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const char *ckpt = getenv("CKPT"), *en = getenv("EVAL_N"), *path = data_default_path();
    int N = en && atoi(en) > 0 ? atoi(en) : 32;
    if (argc > 1) {
        if (strcmp(argv[1], "data") == 0) return section_data(N);
        fprintf(stderr, "ch07: unknown section '%s' (data)\n", argv[1]);
        return 2;
    }
    if (!ckpt || !*ckpt) {
        fprintf(stderr, "ch07: set CKPT to a checkpoint (make chapter7 does)\n");
        return 1;
    }
    Loaded L;
    Dataset train, test;
    Error err;
    if (load_model(ckpt, &L, &err) < 0 || data_load(&train, path, 1, &err) < 0 ||
        data_load(&test, path, 0, &err) < 0) {
        fprintf(stderr, "ch07: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "model: %s (%s, %s weights)\ndata: %s test split (%s)\n", L.label, ckpt,
            L.m.ema ? "EMA" : "raw", test.name, test.path);
    if (N > test.n) N = test.n;
    real *x0 = malloc(sizeof(real) * (size_t)N * test.c * test.h * test.w);
    int *idx = malloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) idx[i] = i;
    data_batch(&test, x0, idx, N, NULL);
    RDCurve rd;
    double secs = evaluate(&L, &test, x0, N, &rd), baseline = mean_image_rmse(&train, x0, N);
    if (secs < 0 || rd_write_csv("figures/data/ch07_rd.csv", &rd, &err) < 0) {
        if (secs >= 0) fprintf(stderr, "ch07: %s\n", err.msg);
        return 1;
    }
    write_paper("figures/data/ch07_paper.csv");
    char title[320], ours[160];
    snprintf(title, sizeof title, "Progressive lossy coding (Figure 5). Ours: %s, %d test images",
             L.label, N);
    snprintf(ours, sizeof ours, "ours, %s, %s steps", *L.m.data ? L.m.data : test.name, L.steps);
    write_plot(title, ours, "paper, CIFAR-10, 35.7M params", L.m.sched->T, baseline);
    write_table(&L, &test, &rd, secs, baseline);
    rd_free(&rd);
    free(x0);
    free(idx);
    data_free(&train);
    data_free(&test);
    trained_model_free(&L.m);
    return 0;
}
