/* 07_ratedist.c — progressive lossy coding: rate and distortion along the
 * reverse process.
 *
 * Chapter 07 (book/07_ratedist.md). Algorithm 3 sends an image as x_T
 * (coded with p(x_T)), then x_{T-1}, ..., x_1 (each drawn from
 * q(x_{t-1} | x_t, x_0) and coded with p_theta(x_{t-1} | x_t) as the prior
 * both sides share), then x_0 (coded with the decoder p_theta(x_0 | x_1)).
 * With relative-entropy coding each message costs the KL of its step, so
 * the code lengths are the terms of the bound (Eq. 5) that calc_bpd_loop
 * already measures. Algorithm 4 is the receiver: after any step it can
 * estimate x_0 from the x_t it holds, x0_pred = (x_t - sqrt(1 - abar_t)
 * eps_theta(x_t)) / sqrt(abar_t) (Eq. 15).
 *
 * So this file is arithmetic on a BpdResult: running sums of the terms in
 * the order they are sent (the rate) and the root mean squared error of
 * x0_pred at each t (the distortion), with standard errors over images.
 *
 * Shape legend: N images, T timesteps; per-t arrays [T * N] indexed
 * [t * N + n] with code t (paper t = code t + 1); curves [T] indexed by
 * k - 1, k = 1..T the number of reverse steps received.
 */
#include "07_ratedist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PIXEL_SCALE 127.5   // [-1, 1] -> [0, 255]

// §4.3 and Table 1 of the paper (CIFAR-10, L_simple): rate, distortion, NLL.
#define PAPER_RATE 1.78
#define PAPER_DECODER 1.97
#define PAPER_TOTAL 3.75
#define PAPER_RMSE 0.95

const RDPoint rd_paper_table4[RD_PAPER_ROWS] = {
    {100, 0.00000, 67.60}, {300, 0.00081, 54.19}, {500, 0.00716, 38.03},
    {700, 0.02866, 24.44}, {900, 0.11994, 12.02}, {1000, 1.77581, 0.95},
};

void rd_free(RDCurve *rd)
{
    free(rd->rate);
    free(rd->rate_se);
    free(rd->dist);
    free(rd->dist_se);
    memset(rd, 0, sizeof *rd);
}

static void rd_alloc(RDCurve *rd, int T, int N)
{
    memset(rd, 0, sizeof *rd);
    rd->T = T;
    rd->N = N;
    rd->rate = calloc((size_t)T, sizeof(double));
    rd->rate_se = calloc((size_t)T, sizeof(double));
    rd->dist = calloc((size_t)T, sizeof(double));
    rd->dist_se = calloc((size_t)T, sizeof(double));
    DDPM_CHECK(rd->rate && rd->rate_se && rd->dist && rd->dist_se,
               "out of memory for a rate-distortion curve of %d steps", T);
}

// The RMSE over the whole set on [0, 255], from per-image mean squared
// errors: 127.5 sqrt(M) with M their mean. Its standard error by the delta
// method, d sqrt(M) / dM = 1 / (2 sqrt(M)), from the standard error of M.
static void rmse_255(const double *mse, int N, double *rmse, double *se)
{
    double m, m_se;
    bpd_mean_se(mse, N, &m, &m_se);
    *rmse = PIXEL_SCALE * sqrt(m);
    *se = m > 0 ? PIXEL_SCALE * m_se / (2 * sqrt(m)) : 0;
}

void rd_from_bpd(RDCurve *rd, const BpdResult *r)
{
    int T = r->T, N = r->N;
    DDPM_CHECK(T >= 1 && N >= 1, "rd_from_bpd: %d timesteps, %d images", T, N);
    rd_alloc(rd, T, N);
    double *sent = malloc(sizeof(double) * (size_t)N);   // [N] bits/dim each image has sent
    DDPM_CHECK(sent, "out of memory for %d images", N);
    for (int n = 0; n < N; n++) sent[n] = r->prior[n];   // k = 1: x_T, coded with p(x_T)
    for (int k = 1; k <= T; k++) {
        int t = T - k;   // the receiver now holds x_t (code t)
        // ... which was sent given x_{t+1}: the term at code t + 1 (Alg. 3)
        if (k > 1)
            for (int n = 0; n < N; n++) sent[n] += r->terms[(size_t)(t + 1) * N + n];
        bpd_mean_se(sent, N, &rd->rate[k - 1], &rd->rate_se[k - 1]);
        rmse_255(r->mse + (size_t)t * N, N, &rd->dist[k - 1], &rd->dist_se[k - 1]);
    }
    double se;
    bpd_mean_se(r->prior, N, &rd->prior, &se);
    bpd_mean_se(r->terms, N, &rd->decoder, &rd->decoder_se);   // code t = 0: L_0
    bpd_mean_se(r->total, N, &rd->total, &rd->total_se);
    free(sent);
}

int rate_distortion(const Diffusion *df, const Model *m, const real *x0, int N, int C, int H,
                    int W, int batch, Rng *rng, int clip, RDCurve *rd,
                    void (*progress)(void *ctx, long done, long total), void *ctx, Error *err)
{
    BpdResult r;
    memset(rd, 0, sizeof *rd);
    if (calc_bpd_loop(df, m, x0, N, C, H, W, batch, rng, clip, &r, progress, ctx, err) < 0)
        return -1;
    rd_from_bpd(rd, &r);
    bpd_result_free(&r);
    return 0;
}

int rd_report(FILE *f, const char *csv, const BpdResult *r, Error *err)
{
    RDCurve rd;
    rd_from_bpd(&rd, r);
    rd_print_summary(f, &rd);
    int rc = rd_write_csv(csv, &rd, err);
    rd_free(&rd);
    return rc;
}

int rd_write_csv(const char *path, const RDCurve *rd, Error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return error_set(err, "%s: cannot write (%s)", path, strerror(errno));
    fprintf(f, "# total_bpd=%.8f total_se=%.8f decoder_bpd=%.8f decoder_se=%.8f "
               "prior_bpd=%.8f images=%d T=%d\n", rd->total, rd->total_se, rd->decoder,
            rd->decoder_se, rd->prior, rd->N, rd->T);
    fprintf(f, "steps,t,rate_bpd,rate_se,rmse,rmse_se\n");
    for (int k = 1; k <= rd->T; k++)
        fprintf(f, "%d,%d,%.8g,%.8g,%.8g,%.8g\n", k, rd->T - k + 1, rd->rate[k - 1],
                rd->rate_se[k - 1], rd->dist[k - 1], rd->dist_se[k - 1]);
    return fclose(f) == 0 ? 0 : error_set(err, "%s: write failed", path);
}

/* ---- the comparison with the paper ----------------------------------------- */

static const RDPoint *paper_row(int T, int steps)
{
    for (int i = 0; T == 1000 && i < RD_PAPER_ROWS; i++)
        if (rd_paper_table4[i].steps == steps) return &rd_paper_table4[i];
    return NULL;
}

static void print_row(FILE *f, const RDCurve *rd, int k)
{
    const RDPoint *p = paper_row(rd->T, k);
    fprintf(f, "%6d %9.5f ± %7.5f ", k, rd->rate[k - 1], rd->rate_se[k - 1]);
    if (p) fprintf(f, "%9.5f ", p->rate);
    else fprintf(f, "%9s ", "-");
    fprintf(f, "%9.2f ± %5.2f ", rd->dist[k - 1], rd->dist_se[k - 1]);
    if (p) fprintf(f, "%7.2f\n", p->rmse);
    else fprintf(f, "%7s\n", "-");
}

void rd_print_summary(FILE *f, const RDCurve *rd)
{
    int T = rd->T, tenth = T - T / 10;   // the rate sent in the last tenth of the steps
    double last = rd->rate[T - 1] > 0 ? 1 - rd->rate[tenth - 1] / rd->rate[T - 1] : 0;
    fprintf(f, "%-34s %9s %9s %7s\n", "", "ours", "± se", "paper");
    fprintf(f, "%-34s %9.5f %9.5f %7.2f\n", "rate after all T steps (bits/dim)", rd->rate[T - 1],
            rd->rate_se[T - 1], PAPER_RATE);
    fprintf(f, "%-34s %9.5f %9.5f %7.2f\n", "decoder L_0 (bits/dim)", rd->decoder,
            rd->decoder_se, PAPER_DECODER);
    fprintf(f, "%-34s %9.5f %9.5f %7.2f\n", "total = the bound (bits/dim)", rd->total,
            rd->total_se, PAPER_TOTAL);
    fprintf(f, "%-34s %9.3f %9.3f %7.2f\n", "final RMSE, x0_pred(x_1) [0,255]", rd->dist[T - 1],
            rd->dist_se[T - 1], PAPER_RMSE);
    fprintf(f, "%-34s %8.1f%% %9s %6.1f%%\n", "rate sent in the last 10% of steps", 100 * last,
            "", 100 * (1 - rd_paper_table4[4].rate / rd_paper_table4[5].rate));
    fprintf(f, "\n%6s %19s %9s %17s %7s\n", "steps", "rate (bits/dim)", "paper", "RMSE [0,255]",
            "paper");
    int rows[] = {1, 100, 300, 500, 700, 900};
    for (int i = 0; i < 6; i++)
        if (rows[i] < T) print_row(f, rd, rows[i]);
    print_row(f, rd, T);
}
