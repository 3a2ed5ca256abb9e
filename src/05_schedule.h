/* 05_schedule.h — the forward process: the noise schedule and q.
 *
 * Chapter 05 of the book (book/05_schedule.md). Paper §2 and Eq. (4), (6), (7);
 * the official code's GaussianDiffusion2 constructor (diffusion_utils_2.py)
 * with its names. Timesteps are code timesteps t = 0..T-1 (paper t = code
 * t + 1). Every coefficient is computed in double and stored as `real`.
 *
 * Shapes: x0, xt, noise [N, D] (D = C*H*W per image), t [N].
 */
#ifndef DDPM_SCHEDULE_H
#define DDPM_SCHEDULE_H

#include "00_tensor.h"

typedef struct Schedule {
    int T;                                // 1000 in the paper
    char kind[16];                        // "linear" or "cosine"
    real *betas;                          // [T] beta_t
    real *alphas_cumprod;                 // [T] abar_t = prod_{s<=t} (1 - beta_s)
    real *alphas_cumprod_prev;            // [T] abar_{t-1}, with abar_{-1} = 1
    real *sqrt_alphas_cumprod;            // [T]
    real *sqrt_one_minus_alphas_cumprod;  // [T]
    real *log_one_minus_alphas_cumprod;   // [T]
    real *sqrt_recip_alphas_cumprod;      // [T] 1/sqrt(abar_t)
    real *sqrt_recipm1_alphas_cumprod;    // [T] sqrt(1/abar_t - 1)
    real *posterior_variance;             // [T] beta~_t (Eq. (7))
    real *posterior_log_variance_clipped; // [T] log beta~_t, entry 0 taken from entry 1
    real *posterior_mean_coef1;           // [T] coefficient of x0 in mu~ (Eq. (7))
    real *posterior_mean_coef2;           // [T] coefficient of xt in mu~ (Eq. (7))
} Schedule;

// kind "linear" (beta from beta_start to beta_end, the paper's 1e-4 -> 0.02)
// or "cosine" (Nichol & Dhariwal 2021; beta_start/end ignored). T >= 2,
// 0 < beta_start <= beta_end < 1. Returns 0, or -1 with a message in err.
int  schedule_init(Schedule *s, const char *kind, int T, double beta_start,
                   double beta_end, Error *err);
void schedule_free(Schedule *s);   // safe after a failed init

// Outputs may alias inputs (every value is computed from its own position).
// Eq. (4): xt = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per image.
void q_sample(real *xt, const real *x0, const real *noise, const int *t,
              int N, size_t D, const Schedule *s);
// Eq. (7): mean mu~(xt, x0) per image; var/logvar [N] (either may be NULL).
void q_posterior_mean_variance(real *mean, real *var, real *logvar, const real *x0,
                               const real *xt, const int *t, int N, size_t D,
                               const Schedule *s);
// x0 from xt and eps, Eq. (4) inverted (the paper's Eq. (15)):
// x0 = xt / sqrt(abar) - sqrt(1/abar - 1) eps.
void predict_x0_from_eps(real *x0, const real *xt, const real *eps, const int *t,
                         int N, size_t D, const Schedule *s);

#endif
