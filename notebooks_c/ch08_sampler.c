/* ch08_sampler.c — the pictures of chapter 08 (make chapter8).
 *
 * Uses the trained model in $CKPT (the Makefile passes CKPT=, or the demo's
 * checkpoint, training it first when it is missing), its EMA weights.
 *   figures/ch08_samples.png         16 samples, x0_hat clipped (official)
 *   figures/ch08_samples_noclip.png  the same seeds, Algorithm 2 as printed
 *   figures/ch08_progressive.png     x0_hat every 100 steps (Figure 6)
 *   figures/ch08_shared.png          samples sharing x_t, t = 1000..250 (Figure 7)
 *   figures/ch08_interp.png          interpolation of two test images (Figure 8)
 *   figures/ch08_coarse_to_fine.{png,svg}  how far x0_hat still is from the
 *                                    final sample, and the scale of x, by step
 * N (default 16) samples; about 8 minutes on two cores for the tiny model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "08_sampler.h"
#include "progress.h"
#include "checkpoint.h"
#include "data.h"
#include "image.h"

static int T, C, R;
static size_t D;

// Per step of the clipped run: the spread of x and x0_hat of every image.
typedef struct Trace { int N; double *x_std; real *x0_hat; } Trace;
static void trace_step(void *ctx, int t, const real *x, const real *x0_hat, int N)
{
    Trace *tr = ctx;
    double s = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) s += (double)x[i] * x[i];
    tr->x_std[t] = sqrt(s / ((double)N * D));
    vec_copy(tr->x0_hat + (size_t)t * N * D, x0_hat, (size_t)N * D);
}

static int write_grid(const char *path, const real *x, int n, int cols)
{
    Error err;
    if (image_write_grid(path, x, n, C, R, R, cols, &err) < 0) {
        fprintf(stderr, "ch08: %s\n", err.msg);
        return -1;
    }
    printf("wrote %s\n", path);
    return 0;
}

// Figure 5-like curve of sampling: RMSE on [0, 255] between x0_hat at each
// step and the final sample, and the root mean square of x.
static void write_coarse_to_fine(const Trace *tr, const real *final, const char *data_name)
{
    FILE *f = fopen("figures/data/ch08_coarse_to_fine.dat", "w");
    fprintf(f, "# paper_t rmse_x0hat_to_final_0_255 rms_x\n");
    for (int t = T - 1; t >= 0; t--) {
        double se = 0;
        const real *h = tr->x0_hat + (size_t)t * tr->N * D;
        for (size_t i = 0; i < (size_t)tr->N * D; i++) se += (h[i] - final[i]) * (h[i] - final[i]);
        fprintf(f, "%d %.6f %.6f\n", t + 1, 127.5 * sqrt(se / ((double)tr->N * D)), tr->x_std[t]);
    }
    fclose(f);
    f = fopen("figures/data/ch08_coarse_to_fine.gp", "w");
    fprintf(f,
        "set grid\nset xrange [1000:0]\nset xlabel 'sampling step t (from T = 1000 down to 1)'\n"
        "set ylabel 'RMSE of x0-hat to the final sample, [0,255]'\nset y2label 'root mean square of x_t'\n"
        "set ytics nomirror\nset y2tics\nset key top right\n"
        "set title 'Coarse to fine: when sampling decides what the image is (%s)'\n"
        "p = \"plot 'figures/data/ch08_coarse_to_fine.dat' u 1:2 w l lw 2 lc rgb '#1f4e79' t 'x0-hat vs final sample', "
        "'' u 1:3 axes x1y2 w l lw 2 dt 2 lc rgb '#c0504d' t 'rms of x_t (right axis)'\"\n"
        "set terminal pngcairo size 900,520 font 'Sans,11'\nset output 'figures/ch08_coarse_to_fine.png'\n@p\n"
        "set terminal svg size 900,520 font 'Sans,11'\nset output 'figures/ch08_coarse_to_fine.svg'\n@p\n",
        data_name);
    fclose(f);
}

// Figure 7: rows t = 1000, 750, 500, 250 (paper numbering): x0_hat of the
// shared x_t, the shared x_t, then K samples that continue from it.
static int shared_latents(const Sampler *s, Progress *pr)
{
    enum { K = 6, ROWS = 4 };
    int rows_t[ROWS] = {T - 1, 3 * T / 4 - 1, T / 2 - 1, T / 4 - 1};
    real *grid = malloc(sizeof(real) * (size_t)ROWS * (K + 2) * D);
    Error err;
    for (int r = 0; r < ROWS; r++) {
        real *row = grid + (size_t)r * (K + 2) * D;
        fprintf(stderr, "shared latent at t = %d\n", rows_t[r] + 1);
        progress_start(pr, "shared", 0, 0);
        if (sample_shared_latent(s, row + 2 * D, row + D, row, K, C, R, R, rows_t[r], 8, &err) < 0) {
            fprintf(stderr, "ch08: %s\n", err.msg);
            return -1;
        }
        progress_end(pr, pr->total, NULL);
    }
    int rc = write_grid("figures/ch08_shared.png", grid, ROWS * (K + 2), K + 2);
    free(grid);
    return rc;
}

// Figure 8: two test images, rows t = 100, 250, 500, 750: the source, 9
// values of lambda, the other source.
static int interpolation(const Sampler *s, Progress *pr, const char *ckpt_data)
{
    enum { L = 9, ROWS = 4 };
    Dataset test;
    Error err;
    const char *path = data_default_path();
    if (data_load(&test, path, 0, &err) < 0) {
        fprintf(stderr, "ch08: interpolation skipped: %s\n", err.msg);
        return 0;
    }
    if (test.c != C) {
        fprintf(stderr, "ch08: interpolation skipped: %s has %d channels, the model %d\n",
                test.name, test.c, C);
        data_free(&test);
        return 0;
    }
    fprintf(stderr, "interpolating test images of %s (the model was trained on %s)\n", test.name,
            ckpt_data);
    real ab[2 * 3 * 32 * 32];
    int idx[2] = {0, 1};
    data_batch(&test, ab, idx, 2, NULL);
    int rows_t[ROWS] = {99, 249, 499, 749};
    double lambda[L];
    for (int l = 0; l < L; l++) lambda[l] = (l + 1) / (double)(L + 1);
    real *grid = malloc(sizeof(real) * (size_t)ROWS * (L + 2) * D);
    for (int r = 0; r < ROWS; r++) {
        real *row = grid + (size_t)r * (L + 2) * D;
        vec_copy(row, ab, D);
        vec_copy(row + (L + 1) * D, ab + D, D);
        progress_start(pr, "interp", 0, 0);
        if (sample_interpolate(s, row + D, ab, ab + D, C, R, R, rows_t[r], lambda, L, 9, &err) < 0) {
            fprintf(stderr, "ch08: %s\n", err.msg);
            return -1;
        }
        progress_end(pr, pr->total, NULL);
    }
    data_free(&test);
    int rc = write_grid("figures/ch08_interp.png", grid, ROWS * (L + 2), L + 2);
    free(grid);
    return rc;
}

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const char *ckpt = getenv("CKPT"), *ns = getenv("N");
    int N = ns && atoi(ns) > 0 ? atoi(ns) : 16;
    if (!ckpt) {
        fprintf(stderr, "ch08: set CKPT to a checkpoint (make chapter8 does)\n");
        return 1;
    }
    TrainedModel tm;
    Error err;
    if (trained_model_load(&tm, ckpt, 1, &err) < 0) {   // sample with the EMA weights
        fprintf(stderr, "ch08: %s\n", err.msg);
        return 1;
    }
    const char *data_name = *tm.data ? tm.data : "?";
    T = tm.sched->T, C = tm.net.cfg.in_ch, R = tm.net.cfg.resolution;
    D = (size_t)C * R * R;
    fprintf(stderr, "ch08: %s (%s, step %ld), %d samples; about %.0f minutes on two cores\n",
            ckpt, data_name, tm.step, N, (2.0 * N * T + 16500 + 17600) * 0.0075 / 60);
    Model model = unet_model(&tm.net);
    Progress pr;
    Sampler s = {.df = &tm.df, .model = &model, .clip = 1, .batch = 32,
                 .progress = progress_callback, .progress_ctx = &pr};
    int S = sample_n_snapshots(T, 100);
    real *x = malloc(sizeof(real) * (size_t)N * D), *snaps = malloc(sizeof(real) * (size_t)S * N * D);
    Trace tr = {N, calloc((size_t)T, sizeof(double)), malloc(sizeof(real) * (size_t)T * N * D)};
    // 1. Samples with x0_hat clipped, tracing every step (Figures 6 and the curve).
    s.on_step = trace_step;
    s.step_ctx = &tr;
    progress_start(&pr, "sample", 0, 0);
    if (sample_images(&s, x, N, C, R, R, 1, 0, &err) < 0) {
        fprintf(stderr, "ch08: %s\n", err.msg);
        return 1;
    }
    progress_end(&pr, pr.total, NULL);
    S = 0;
    for (int t = T - 1; t >= 0; t--)   // Figure 6 from the trace: x0_hat every 100 steps
        if (sample_is_snapshot(T, 100, t))
            vec_copy(snaps + (size_t)S++ * N * D, tr.x0_hat + (size_t)t * N * D, (size_t)N * D);
    int P = N < 8 ? N : 8;
    real *prog = malloc(sizeof(real) * (size_t)P * S * D);
    sample_snapshot_rows(prog, snaps, S, N, P, D);
    if (write_grid("figures/ch08_samples.png", x, N, (int)ceil(sqrt(N))) < 0 ||
        write_grid("figures/ch08_progressive.png", prog, P * S, S) < 0)
        return 1;
    write_coarse_to_fine(&tr, x, data_name);
    // 2. The same seeds without clipping: Algorithm 2 exactly as printed.
    s.on_step = NULL;
    s.clip = 0;
    progress_start(&pr, "noclip", 0, 0);
    if (sample_images(&s, x, N, C, R, R, 1, 0, &err) < 0) {
        fprintf(stderr, "ch08: %s\n", err.msg);
        return 1;
    }
    progress_end(&pr, pr.total, NULL);
    int outside = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) outside += x[i] < -1 || x[i] > 1;
    printf("without clipping: %.2f%% of sample values fall outside [-1, 1]\n",
           100.0 * outside / ((double)N * D));
    if (write_grid("figures/ch08_samples_noclip.png", x, N, (int)ceil(sqrt(N))) < 0) return 1;
    // 3. Shared latents and interpolation, clipped as the official code.
    s.clip = 1;
    if (shared_latents(&s, &pr) < 0 || interpolation(&s, &pr, data_name) < 0) return 1;
    free(prog);
    free(snaps);
    free(x);
    free(tr.x_std);
    free(tr.x0_hat);
    trained_model_free(&tm);
    return 0;
}
