/* 08_sampler.h — Algorithm 2: images from noise by the learned reverse process.
 *
 * Chapter 08 of the book (book/08_sampler.md). Paper §3.2, Algorithm 2,
 * Eq. (11) and (15), Figures 6-8; the official code's p_sample and
 * p_sample_loop (diffusion_utils_2.py).
 *
 * Shapes: x [N, C, H, W]; code timesteps t = 0..T-1 (paper t = code t + 1):
 * the step at code t takes the network's input at t (paper x_{t+1}) to the
 * input at t - 1. Image n draws all of its noise from rngs[n], so a sample
 * depends on its seed and index only, never on the batch size.
 */
#ifndef DDPM_SAMPLER_H
#define DDPM_SAMPLER_H

#include "06_elbo.h"

typedef struct Sampler {
    const Diffusion *df;     // schedule, what the model predicts, sigma_t^2 (beta or beta~)
    const Model *model;
    int clip;                // clip x0_hat to [-1, 1] before the posterior mean (official; 1)
    int batch;               // images per network call
    // Optional, called after every step at code t with the new x (x at code
    // t-1; x_0 after t = 0) and the x0_hat (Eq. 15) that step predicted.
    void (*on_step)(void *ctx, int t, const real *x, const real *x0_hat, int N);
    void *step_ctx;
    void (*progress)(void *ctx, long done, long total);  // image-steps; may be NULL
    void *progress_ctx;
} Sampler;

// One step of Algorithm 2 for N images at code t, x updated in place:
// x <- mean + exp(logvar / 2) z with z ~ N(0, I) from rngs[n], z = 0 at t = 0.
// x0_hat (may be NULL) receives the predicted x_0. tp's arena holds the step.
void p_sample(Tape *tp, const Sampler *s, real *x, int N, int C, int H, int W, int t,
              Rng *rngs, real *x0_hat);

// Steps t = t_from, t_from - 1, ..., t_to over N images, batch images per
// network call, no gradients. x enters as the input of step t_from (x_T for
// t_from = T-1) and leaves as the input of step t_to - 1 (x_0 for t_to = 0).
int  p_sample_loop(const Sampler *s, real *x, int N, int C, int H, int W, int t_from,
                   int t_to, Rng *rngs, Error *err);

// N new images: image n has rngs Rng(seed, first + n), x_T drawn from it.
int  sample_images(const Sampler *s, real *out, int N, int C, int H, int W,
                   uint64_t seed, uint64_t first, Error *err);

// Figure 6: sample_images that also keeps x0_hat of every image at the
// first step and whenever t % every == 0: snaps [S, N, C, H, W] and ts [S]
// (the code t of each) with S = sample_n_snapshots(T, every).
int  sample_n_snapshots(int T, int every);
int  sample_progressive(const Sampler *s, real *out, real *snaps, int *ts, int N, int C,
                        int H, int W, uint64_t seed, int every, Error *err);
int  sample_is_snapshot(int T, int every, int t);   // is step t one of those?
// rows [P, S, D] = the snapshots of the first P images, one row per image,
// from snaps [S, N, D]: the layout of the paper's Figure 6 grid.
void sample_snapshot_rows(real *rows, const real *snaps, int S, int N, int P, size_t D);

// Figure 7: one chain from x_T down to the input of step t, then K samples
// of x_0 that all continue from there. out [K, C, H, W]; xt [C, H, W] (may
// be NULL) receives the shared x and x0_hat [C, H, W] (may be NULL) what the
// model predicts from it (Eq. 15). s->on_step sees the K branches only.
int  sample_shared_latent(const Sampler *s, real *out, real *xt, real *x0_hat, int K, int C,
                          int H, int W, int t, uint64_t seed, Error *err);

// Figure 8: x_t ~ q(x_t | a), x'_t ~ q(x_t | b) at code t (Eq. 4, one noise
// draw each), then
// for every lambda[l] the mix (1 - lambda) x_t + lambda x'_t denoised back to
// x_0 with the same reverse-process noise for every lambda. out [L, C, H, W].
int  sample_interpolate(const Sampler *s, real *out, const real *a, const real *b,
                        int C, int H, int W, int t, const double *lambda, int L,
                        uint64_t seed, Error *err);

#endif
