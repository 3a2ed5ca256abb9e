/* 07_ratedist.h — progressive lossy coding: rate and distortion along the
 * reverse process.
 *
 * Chapter 07 of the book (book/07_ratedist.md). Paper §4.3, Alg. 3 and 4,
 * Eq. 15, Figure 5 and Table 4. The bound of chapter 06 is a code length:
 * L_T is the cost of sending x_T, each L_{t-1} the cost of sending x_{t-1}
 * given x_t, L_0 the cost of x_0 itself. A receiver that has the first k of
 * the T reverse steps holds x_t for paper t = T - k + 1 and can already
 * guess x_0; the rate is what it has been sent so far, the distortion how
 * far its guess is from x_0.
 *
 * Indexing: k = 1..T "reverse process steps received" (the paper's Table 4
 * column T - t + 1), stored at index k - 1. The receiver holds x_t for
 * code t = T - k (paper t = code t + 1):
 *   rate(k) = mean over images of L_T + sum of terms at code t = T-k+1 .. T-1
 *             (k = 1: L_T alone; k = T: the whole bound minus the decoder)
 *   dist(k) = 127.5 * sqrt(mean over images of mse at code t = T - k)
 *             (the RMSE of x0_pred over the whole set, on the [0, 255] scale)
 * Rates are in bits/dim; standard errors are over images (the distortion's
 * by the delta method).
 */
#ifndef DDPM_RATEDIST_H
#define DDPM_RATEDIST_H

#include <stdio.h>

#include "06_elbo.h"

typedef struct RDCurve {
    int T, N;                    // timesteps, images
    double *rate, *rate_se;      // [T] bits/dim received after k = index + 1 steps
    double *dist, *dist_se;      // [T] RMSE of x0_pred on [0, 255] after k steps
    double prior;                // mean L_T, bits/dim (= rate[0])
    double decoder, decoder_se;  // mean L_0, bits/dim: the paper's "distortion" of §4.3
    double total, total_se;      // mean of the whole bound = rate[T-1] + decoder
} RDCurve;

// The curve from the per-t terms and errors of calc_bpd_loop (arithmetic only).
void rd_from_bpd(RDCurve *rd, const BpdResult *r);
// calc_bpd_loop (same arguments, same random numbers) followed by rd_from_bpd.
int  rate_distortion(const Diffusion *df, const Model *m, const real *x0, int N, int C, int H,
                     int W, int batch, Rng *rng, int clip, RDCurve *rd,
                     void (*progress)(void *ctx, long done, long total), void *ctx, Error *err);
void rd_free(RDCurve *rd);

// Columns steps,t,rate_bpd,rate_se,rmse,rmse_se (t in paper numbering),
// after one "# ..." line with the summary (total, decoder, prior, images).
int  rd_write_csv(const char *path, const RDCurve *rd, Error *err);
// The report of ddpm rd from a bound computed elsewhere (there, split over
// MPI ranks): rd_from_bpd, rd_print_summary on f, rd_write_csv to csv.
int  rd_report(FILE *f, const char *csv, const BpdResult *r, Error *err);

// The paper's Table 4 (CIFAR-10, 35.7M parameters, 800k steps).
typedef struct RDPoint { int steps; double rate, rmse; } RDPoint;
#define RD_PAPER_ROWS 6
extern const RDPoint rd_paper_table4[RD_PAPER_ROWS];
// Total rate, decoder and final RMSE, then rate and distortion at 1, 100,
// 300, ..., T steps received, each beside the paper's value where it has one.
void rd_print_summary(FILE *f, const RDCurve *rd);

#endif
