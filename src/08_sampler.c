/* 08_sampler.c — Algorithm 2 and the three pictures the paper draws with it.
 *
 * Sampling runs the learned reverse process: start from pure noise x_T and
 * take T steps x_t -> x_{t-1} ~ p_theta(x_{t-1} | x_t). Each step is one
 * network call (the Model of chapter 06), the mean and variance that
 * p_mean_variance builds from it, and one fresh Gaussian draw. Read as a
 * score-based method this is annealed Langevin dynamics: eps_theta is a
 * scaled estimate of -grad log q(x_t), so the mean moves x_t uphill in
 * density and the noise keeps the chain a sampler rather than an optimiser.
 *
 * In order: one step (p_sample), the loop (p_sample_loop), fresh images
 * (sample_images), shared latents (Fig. 7) and interpolation (Fig. 8).
 * Progressive generation (Fig. 6) is the loop's on_step hook.
 */
#include "08_sampler.h"

#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

void p_sample(Tape *tp, const Sampler *s, real *x, int N, int C, int H, int W, int t,
              Rng *rngs, real *x0_hat)
{
    size_t D = (size_t)C * H * W;
    Tensor *xt = tensor_4d(tp->arena, N, C, H, W);
    vec_copy(xt->data, x, xt->size);
    int *ts = arena_alloc(tp->arena, (size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) ts[n] = t;
    Tensor *out = s->model->forward(tp, s->model->ctx, xt, ts, NULL);
    // For an eps model without clipping, mean is Algorithm 2's line 4:
    // (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) (Eq. 11).
    PMeanVar p = p_mean_variance(tp, s->df, out, xt, ts, s->clip);
    real *z = arena_alloc(tp->arena, D * sizeof(real));
    for (int n = 0; n < N; n++) {
        const real *mean = p.mean->data + (size_t)n * D, *logvar = p.logvar->data + (size_t)n * D;
        real *xn = x + (size_t)n * D;
        if (t == 0) {                      // the last step returns the mean: z = 0
            vec_copy(xn, mean, D);
            continue;
        }
        rng_fill_normal(&rngs[n], z, D, 0, 1);
        for (size_t i = 0; i < D; i++) xn[i] = mean[i] + exp((real)0.5 * logvar[i]) * z[i];
    }
    if (x0_hat) vec_copy(x0_hat, p.x0->data, (size_t)N * D);
}

int p_sample_loop(const Sampler *s, real *x, int N, int C, int H, int W, int t_from,
                  int t_to, Rng *rngs, Error *err)
{
    if (N <= 0 || s->batch <= 0)
        return error_set(err, "sampling needs at least one image and a batch size (got %d, %d)",
                         N, s->batch);
    if (t_to < 0 || t_from < t_to || t_from >= s->df->sched->T)
        return error_set(err, "sampling from t = %d to %d: the schedule has t = 0..%d", t_from,
                         t_to, s->df->sched->T - 1);
    if (model_check(s->df, s->model, C, H, W, err) < 0) return -1;
    size_t D = (size_t)C * H * W;
    real *x0_hat = s->on_step ? malloc((size_t)N * D * sizeof(real)) : NULL;
    DDPM_CHECK(!s->on_step || x0_hat, "out of memory for x0_hat of %d images", N);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);            // sampling: no gradients, nothing recorded
    long total = (long)(t_from - t_to + 1) * N;
    for (int t = t_from; t >= t_to; t--) {
        for (int n0 = 0; n0 < N; n0 += s->batch) {
            int B = N - n0 < s->batch ? N - n0 : s->batch;
            p_sample(&tp, s, x + (size_t)n0 * D, B, C, H, W, t, rngs + n0,
                     x0_hat ? x0_hat + (size_t)n0 * D : NULL);
            arena_reset(&ar);
            if (s->progress) s->progress(s->progress_ctx, (long)(t_from - t) * N + n0 + B, total);
        }
        if (s->on_step) s->on_step(s->step_ctx, t, x, x0_hat, N);
    }
    tape_free(&tp);
    arena_free(&ar);
    free(x0_hat);
    return 0;
}

int sample_images(const Sampler *s, real *out, int N, int C, int H, int W, uint64_t seed,
                  uint64_t first, Error *err)
{
    size_t D = (size_t)C * H * W;
    Rng *rngs = malloc((size_t)N * sizeof(Rng));
    DDPM_CHECK(rngs, "out of memory for %d generators", N);
    for (int n = 0; n < N; n++) {
        rng_seed(&rngs[n], seed, first + (uint64_t)n);
        rng_fill_normal(&rngs[n], out + (size_t)n * D, D, 0, 1);   // x_T ~ N(0, I)
    }
    int rc = p_sample_loop(s, out, N, C, H, W, s->df->sched->T - 1, 0, rngs, err);
    free(rngs);
    return rc;
}

int sample_n_snapshots(int T, int every)
{
    return 1 + (T - 2) / every + 1;   // t = T-1, then every multiple of `every` below it
}

int sample_is_snapshot(int T, int every, int t)
{
    return t == T - 1 || t % every == 0;
}

void sample_snapshot_rows(real *rows, const real *snaps, int S, int N, int P, size_t D)
{
    for (int p = 0; p < P; p++)
        for (int k = 0; k < S; k++)
            vec_copy(rows + ((size_t)p * S + k) * D, snaps + ((size_t)k * N + p) * D, D);
}

typedef struct Snapshots { int every, T, S; real *snaps; int *ts; size_t size; } Snapshots;
static void snapshot(void *ctx, int t, const real *x, const real *x0_hat, int N)
{
    (void)x;
    (void)N;
    Snapshots *k = ctx;
    if (!sample_is_snapshot(k->T, k->every, t)) return;
    vec_copy(k->snaps + (size_t)k->S * k->size, x0_hat, k->size);
    k->ts[k->S++] = t;
}

int sample_progressive(const Sampler *s, real *out, real *snaps, int *ts, int N, int C, int H,
                       int W, uint64_t seed, int every, Error *err)
{
    if (every <= 0) return error_set(err, "progressive generation: every = %d steps", every);
    Snapshots k = {every, s->df->sched->T, 0, snaps, ts, (size_t)N * C * H * W};
    Sampler with_hook = *s;
    with_hook.on_step = snapshot;
    with_hook.step_ctx = &k;
    return sample_images(&with_hook, out, N, C, H, W, seed, 0, err);
}

// Keeps the x0_hat of the first image at one step (the trunk's last).
typedef struct KeepX0 { int t; real *dst; size_t D; } KeepX0;
static void keep_x0(void *ctx, int t, const real *x, const real *x0_hat, int N)
{
    (void)x; (void)N;
    KeepX0 *k = ctx;
    if (t == k->t && k->dst) vec_copy(k->dst, x0_hat, k->D);
}

int sample_shared_latent(const Sampler *s, real *out, real *xt, real *x0_hat, int K, int C,
                         int H, int W, int t, uint64_t seed, Error *err)
{
    int T = s->df->sched->T;
    if (K <= 0 || t < 0 || t >= T)
        return error_set(err, "shared latent: K = %d samples at t = %d (want K > 0, t in 0..%d)",
                         K, t, T - 1);
    size_t D = (size_t)C * H * W;
    real *x = malloc(D * sizeof(real));
    Rng *rngs = malloc((size_t)K * sizeof(Rng));
    DDPM_CHECK(x && rngs, "out of memory for %d samples", K);
    Rng trunk;
    rng_seed(&trunk, seed, 0);
    rng_fill_normal(&trunk, x, D, 0, 1);                       // x_T
    int rc = 0;
    Sampler plain = *s;                                        // the caller's hook sees
    plain.on_step = NULL;                                      // K images, not the trunk
    if (t < T - 1) rc = p_sample_loop(&plain, x, 1, C, H, W, T - 1, t + 1, &trunk, err);
    for (int k = 0; rc == 0 && k < K; k++) {                   // K copies of that x ...
        vec_copy(out + (size_t)k * D, x, D);
        rng_seed(&rngs[k], seed, 1 + (uint64_t)k);             // ... each with its own noise
    }
    KeepX0 keep = {t, x0_hat, D};
    Sampler branch = *s;
    branch.on_step = keep_x0;
    branch.step_ctx = &keep;
    if (rc == 0) rc = p_sample_loop(&branch, out, K, C, H, W, t, 0, rngs, err);
    if (rc == 0 && xt) vec_copy(xt, x, D);
    free(rngs);
    free(x);
    return rc;
}

int sample_interpolate(const Sampler *s, real *out, const real *a, const real *b, int C,
                       int H, int W, int t, const double *lambda, int L, uint64_t seed,
                       Error *err)
{
    int T = s->df->sched->T;
    if (L <= 0 || t < 0 || t >= T)
        return error_set(err, "interpolation: %d values of lambda at t = %d (want t in 0..%d)",
                         L, t, T - 1);
    size_t D = (size_t)C * H * W;
    real *xa = malloc(D * sizeof(real)), *xb = malloc(D * sizeof(real));
    Rng *rngs = malloc((size_t)L * sizeof(Rng));
    DDPM_CHECK(xa && xb && rngs, "out of memory for an interpolation of %d images", L);
    Rng r;
    rng_seed(&r, seed, 0);
    rng_fill_normal(&r, xa, D, 0, 1);
    rng_fill_normal(&r, xb, D, 0, 1);
    q_sample(xa, a, xa, &t, 1, D, s->df->sched);               // x_t ~ q(x_t | a), Eq. 4
    q_sample(xb, b, xb, &t, 1, D, s->df->sched);               // x'_t ~ q(x_t | b)
    for (int l = 0; l < L; l++) {
        real la = (real)lambda[l];
        for (size_t i = 0; i < D; i++) out[(size_t)l * D + i] = (1 - la) * xa[i] + la * xb[i];
        rng_seed(&rngs[l], seed, 1);       // the same reverse-process noise for every lambda
    }
    int rc = p_sample_loop(s, out, L, C, H, W, t, 0, rngs, err);
    free(rngs);
    free(xb);
    free(xa);
    return rc;
}
