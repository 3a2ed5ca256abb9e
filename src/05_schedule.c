/* 05_schedule.c — the forward process: the noise schedule and q.
 *
 * Chapter 05 (book/05_schedule.md). The forward process adds Gaussian noise
 * in T small steps, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
 * (Eq. (2)). Nothing in it is learned: everything follows from the T numbers
 * beta_t, and this file turns them into the tables the rest of the book
 * reads —
 *
 *   alphas_cumprod       abar_t = prod_{s<=t} (1 - beta_s), so that
 *                        q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  Eq. (4)
 *   posterior_*          q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)         Eq. (6), (7)
 *                        mu~_t = coef1_t x_0 + coef2_t x_t
 *
 * — and applies them to a batch: q_sample (Eq. (4)), q_posterior_mean_variance
 * (Eq. (7)) and predict_x0_from_eps (Eq. (4) solved for x_0, as in Eq. (15)).
 *
 * The schedules: "linear" is the paper's (beta from 1e-4 to 0.02 over
 * T = 1000 steps, np.linspace in the official code); "cosine" is the
 * extension of Nichol & Dhariwal 2021 (Improved DDPM), abar_t following
 * cos^2 from 1 to 0, each beta clipped at 0.999.
 *
 * As in the official code (GaussianDiffusion2.__init__, diffusion_utils_2.py)
 * every table is computed in double and only then stored as `real`; the
 * names are the official code's. Timesteps are code timesteps t = 0..T-1:
 * paper t = code t + 1, so betas[0] is the paper's beta_1.
 *
 * Shape legend: N images, D = C*H*W values per image, t [N] one timestep per
 * image; x0, xt, noise, eps, mean [N, D] row-major.
 */
#include "05_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>   // sqrt() and log() pick the float or double version from the type

#define COSINE_S 0.008         // Nichol & Dhariwal's offset: beta_1 is not vanishingly small
#define COSINE_MAX_BETA 0.999  // ... and their clip, which keeps abar_{T-1} > 0

static const double PI = 3.14159265358979323846;

/* ---- the betas ------------------------------------------------------------ */

// np.linspace(beta_start, beta_end, T) as NumPy computes it, to the last bit:
// beta_t = t * step + beta_start, step = (beta_end - beta_start) / (T - 1),
// and the last entry set to beta_end exactly. T >= 2.
static void linear_betas(double *betas, int T, double beta_start, double beta_end)
{
    double step = (beta_end - beta_start) / (T - 1);
    for (int t = 0; t < T; t++) betas[t] = t * step + beta_start;
    betas[T - 1] = beta_end;
}

// The cosine schedule's abar as a function of u = t / T in [0, 1]:
// f(u) = cos^2((u + s) / (1 + s) * pi / 2), so abar_t = f((t+1)/T) / f(0).
static double cosine_f(double u)
{
    double c = cos((u + COSINE_S) / (1 + COSINE_S) * PI / 2);
    return c * c;
}

// beta_t = 1 - abar_t / abar_{t-1} = 1 - f((t+1)/T) / f(t/T), clipped at
// 0.999: f(1) = cos^2(pi/2) = 0 would make the last beta exactly 1.
static void cosine_betas(double *betas, int T)
{
    for (int t = 0; t < T; t++) {
        double b = 1 - cosine_f((double)(t + 1) / T) / cosine_f((double)t / T);
        betas[t] = b < COSINE_MAX_BETA ? b : COSINE_MAX_BETA;
    }
}

/* ---- the tables ----------------------------------------------------------- */

// Every table from the betas, in double, stored as real. The formulas are
// the official code's, operation for operation (same rounding in the double
// build). t runs over code timesteps; abar_prev is abar_{t-1}, 1 at t = 0.
static void schedule_tables(Schedule *s, const double *betas)
{
    double abar_prev = 1, posterior_variance_1 = 0;
    for (int t = 0; t < s->T; t++) {
        double beta = betas[t], alpha = 1. - beta;
        double abar = abar_prev * alpha;                 // np.cumprod(alphas)
        s->betas[t] = (real)beta;
        s->alphas_cumprod[t] = (real)abar;
        s->alphas_cumprod_prev[t] = (real)abar_prev;
        // Eq. (4): q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), and its inverse
        s->sqrt_alphas_cumprod[t] = (real)sqrt(abar);
        s->sqrt_one_minus_alphas_cumprod[t] = (real)sqrt(1. - abar);
        s->log_one_minus_alphas_cumprod[t] = (real)log(1. - abar);
        s->sqrt_recip_alphas_cumprod[t] = (real)sqrt(1. / abar);
        s->sqrt_recipm1_alphas_cumprod[t] = (real)sqrt(1. / abar - 1);
        // Eq. (7): beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t; 0 at t = 0
        double posterior_variance = beta * (1. - abar_prev) / (1. - abar);
        s->posterior_variance[t] = (real)posterior_variance;
        if (t == 1) posterior_variance_1 = posterior_variance;
        if (t >= 1) s->posterior_log_variance_clipped[t] = (real)log(posterior_variance);
        // Eq. (7): mu~_t = coef1 x_0 + coef2 x_t
        s->posterior_mean_coef1[t] = (real)(beta * sqrt(abar_prev) / (1. - abar));
        s->posterior_mean_coef2[t] = (real)((1. - abar_prev) * sqrt(alpha) / (1. - abar));
        abar_prev = abar;
    }
    // NOTE: as the official code, log(append(posterior_variance[1],
    // posterior_variance[1:])): beta~ is 0 at t = 0 and its log -inf, so the
    // first entry borrows the second's.
    s->posterior_log_variance_clipped[0] = (real)log(posterior_variance_1);
}

// Arguments a user can get wrong (they come from the command line).
static int schedule_check_args(const char *kind, int T, double beta_start, double beta_end,
                               Error *err)
{
    if (!kind || (strcmp(kind, "linear") && strcmp(kind, "cosine")))
        return error_set(err, "unknown beta schedule '%s' (expected linear or cosine)",
                         kind ? kind : "(null)");
    // T = 1 has no posterior_variance[1] for the clipped log-variance to borrow.
    if (T < 2)
        return error_set(err, "a diffusion needs at least T = 2 steps (got T = %d)", T);
    if (!strcmp(kind, "linear") &&
        !(0 < beta_start && beta_start <= beta_end && beta_end < 1))
        return error_set(err, "the linear schedule needs 0 < beta_start <= beta_end < 1 "
                         "(got beta_start = %g, beta_end = %g)", beta_start, beta_end);
    if (!strcmp(kind, "linear") && 1. - beta_start == 1.)
        return error_set(err, "beta_start = %g is too small: 1 - beta_start rounds to 1 "
                         "and abar_0 = 1 would divide by zero", beta_start);
    return 0;
}

// The tables in one allocation: 12 arrays of T reals, carved in the order
// of the struct; schedule_free gives the block back through s->betas.
static int schedule_alloc(Schedule *s, int T, Error *err)
{
    real *block = calloc((size_t)12 * T, sizeof(real));
    if (!block) return error_set(err, "out of memory for a schedule of T = %d steps", T);
    real **tables[12] = {
        &s->betas, &s->alphas_cumprod, &s->alphas_cumprod_prev, &s->sqrt_alphas_cumprod,
        &s->sqrt_one_minus_alphas_cumprod, &s->log_one_minus_alphas_cumprod,
        &s->sqrt_recip_alphas_cumprod, &s->sqrt_recipm1_alphas_cumprod,
        &s->posterior_variance, &s->posterior_log_variance_clipped,
        &s->posterior_mean_coef1, &s->posterior_mean_coef2};
    for (int i = 0; i < 12; i++) *tables[i] = block + (size_t)i * T;
    return 0;
}

int schedule_init(Schedule *s, const char *kind, int T, double beta_start,
                  double beta_end, Error *err)
{
    memset(s, 0, sizeof *s);   // so schedule_free is safe after a failure
    if (schedule_check_args(kind, T, beta_start, beta_end, err)) return -1;
    double *betas = malloc((size_t)T * sizeof *betas);   // beta_t in double, for a moment
    if (!betas) return error_set(err, "out of memory for a schedule of T = %d steps", T);
    if (schedule_alloc(s, T, err)) {
        free(betas);
        return -1;
    }
    s->T = T;
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    if (!strcmp(kind, "linear")) linear_betas(betas, T, beta_start, beta_end);
    else cosine_betas(betas, T);
    schedule_tables(s, betas);
    free(betas);
    return 0;
}

void schedule_free(Schedule *s)
{
    free(s->betas);            // the start of the one block (schedule_alloc)
    memset(s, 0, sizeof *s);
}

/* ---- applying q to a batch ---------------------------------------------- */

// Timesteps come from the program (the trainer draws them, the sampler
// counts them down), never from a user: one out of range is a bug.
static void check_timesteps(const Schedule *s, const int *t, int N, const char *fn)
{
    for (int n = 0; n < N; n++)
        DDPM_CHECK(t[n] >= 0 && t[n] < s->T, "%s: image %d has timestep %d, outside 0..%d",
                   fn, n, t[n], s->T - 1);
}

// Eq. (4), sampled: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise, each
// image at its own timestep. xt, x0, noise [N, D], t [N]; xt may alias x0
// or noise.
void q_sample(real *xt, const real *x0, const real *noise, const int *t,
              int N, size_t D, const Schedule *s)
{
    check_timesteps(s, t, N, "q_sample");
    #pragma omp parallel for if ((size_t)N * D > PAR_MIN)
    for (int n = 0; n < N; n++) {
        real a = s->sqrt_alphas_cumprod[t[n]], b = s->sqrt_one_minus_alphas_cumprod[t[n]];
        const real *x = x0 + (size_t)n * D, *e = noise + (size_t)n * D;
        real *y = xt + (size_t)n * D;
        for (size_t i = 0; i < D; i++) y[i] = a * x[i] + b * e[i];
    }
}

// Eq. (7): the posterior q(x_{t-1} | x_t, x_0) = N(mu~, beta~ I).
// mean [N, D] = coef1_t x0 + coef2_t xt (may alias x0 or xt); var [N] =
// beta~_t and logvar [N] = its clipped log, either may be NULL.
void q_posterior_mean_variance(real *mean, real *var, real *logvar, const real *x0,
                               const real *xt, const int *t, int N, size_t D,
                               const Schedule *s)
{
    check_timesteps(s, t, N, "q_posterior_mean_variance");
    #pragma omp parallel for if ((size_t)N * D > PAR_MIN)
    for (int n = 0; n < N; n++) {
        real c1 = s->posterior_mean_coef1[t[n]], c2 = s->posterior_mean_coef2[t[n]];
        const real *a = x0 + (size_t)n * D, *b = xt + (size_t)n * D;
        real *m = mean + (size_t)n * D;
        for (size_t i = 0; i < D; i++) m[i] = c1 * a[i] + c2 * b[i];
    }
    for (int n = 0; var && n < N; n++) var[n] = s->posterior_variance[t[n]];
    for (int n = 0; logvar && n < N; n++) logvar[n] = s->posterior_log_variance_clipped[t[n]];
}

// Eq. (4) solved for x_0 (the paper's Eq. (15)):
// x0 = xt / sqrt(abar_t) - sqrt(1/abar_t - 1) eps, the official
// _predict_xstart_from_eps. x0, xt, eps [N, D]; x0 may alias xt or eps.
// With the true noise it undoes q_sample (up to rounding).
void predict_x0_from_eps(real *x0, const real *xt, const real *eps, const int *t,
                         int N, size_t D, const Schedule *s)
{
    check_timesteps(s, t, N, "predict_x0_from_eps");
    #pragma omp parallel for if ((size_t)N * D > PAR_MIN)
    for (int n = 0; n < N; n++) {
        real a = s->sqrt_recip_alphas_cumprod[t[n]], b = s->sqrt_recipm1_alphas_cumprod[t[n]];
        const real *x = xt + (size_t)n * D, *e = eps + (size_t)n * D;
        real *y = x0 + (size_t)n * D;
        for (size_t i = 0; i < D; i++) y[i] = a * x[i] - b * e[i];
    }
}
