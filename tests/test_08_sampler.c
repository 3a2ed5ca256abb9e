/* test_08_sampler.c — Algorithm 2 against answers known on paper.
 *
 * The model is tests/gauss_model.c: for data drawn value by value from
 * N(m, s2) the best denoiser is a formula, every step of the sampler is then
 * an affine map of x plus Gaussian noise, and the mean and variance of what
 * the sampler returns follow from a two-line recursion. The sampler must
 * match that recursion within a few standard errors of its sample moments,
 * for sigma^2 = beta and for sigma^2 = beta~, on a schedule short and coarse
 * enough that the two answers are far apart. On the paper's schedule with
 * s2 = 1 the recursion says sigma^2 = beta returns the data distribution
 * (§3.2: "the first choice is optimal for x0 ~ N(0, I)"), and so must the
 * sampler. The other tests: the literal Algorithm 2 line, eps/x0/mu models
 * and learned variance agree, clipping, seeds, shared latents, interpolation.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "08_sampler.h"
#include "gauss_model.h"

#ifdef DDPM_DOUBLE
#define TOL 1e-9
#else
#define TOL 2e-5
#endif

typedef GaussFixture Fixture;   // tests/gauss_model.h

// Mean and variance of the sampler's output by the recursion
// M <- A M + B, V <- A^2 V + sigma^2 (sigma = 0 at the last step), from
// x_T ~ N(0, 1); A, B from x0_hat = m + c (x - sqrt(abar) m) and Eq. 7.
static void expected_moments(const Fixture *f, double *M, double *V)
{
    const Schedule *s = &f->sched;
    double m = f->g.m, s2 = f->g.s2;
    *M = 0;
    *V = 1;
    for (int t = s->T - 1; t >= 0; t--) {
        double ab = s->alphas_cumprod[t], c = sqrt(ab) * s2 / (ab * s2 + 1 - ab);
        double c1 = s->posterior_mean_coef1[t], c2 = s->posterior_mean_coef2[t];
        double A = c1 * c + c2, B = c1 * (m - c * sqrt(ab) * m);
        double var = t == 0 ? 0 : exp(diffusion_fixed_logvar(&f->df, t));
        *M = A * *M + B;
        *V = A * A * *V + var;
    }
}

static void moments(const real *x, size_t n, double *mean, double *var)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *var = s2 / (n - 1);
}

// Samples N images of 1x16x16 and compares their moments with the recursion;
// returns the expected variance.
static double check_moments(Fixture *f, int N, uint64_t seed)
{
    size_t n = (size_t)N * 256;
    real *x = malloc(n * sizeof(real));
    Error err;
    ck_assert_msg(sample_images(&f->s, x, N, 1, 16, 16, seed, 0, &err) == 0, "%s", err.msg);
    double M, V, mean, var;
    expected_moments(f, &M, &V);
    moments(x, n, &mean, &var);
    double se_mean = sqrt(V / n), se_var = V * sqrt(2.0 / n);
    ck_assert_msg(fabs(mean - M) < 5 * se_mean, "mean %.5f, expected %.5f (SE %.5f)", mean, M, se_mean);
    ck_assert_msg(fabs(var - V) < 5 * se_var, "variance %.5f, expected %.5f (SE %.5f)", var, V, se_var);
    free(x);
    return V;
}

/* ---- the distribution of the samples --------------------------------------- */

// A coarse 20-step schedule, where beta and beta~ give very different
// answers: the sampler must follow the right one for each choice.
START_TEST(gaussian_data_both_variances)
{
    double s2s[2] = {1.0, 0.25};
    for (int k = 0; k < 2; k++) {
        Fixture large, small;
        gauss_fixture(&large, 20, 0.01, 0.5, "eps", "fixedlarge", 0.3, s2s[k], 16);
        gauss_fixture(&small, 20, 0.01, 0.5, "eps", "fixedsmall", 0.3, s2s[k], 16);
        double Vl = check_moments(&large, 64, 1), Vs = check_moments(&small, 64, 2);
        // The two predictions are > 20 standard errors apart, so a sampler
        // that used the wrong variance would fail above.
        ck_assert_msg(Vl - Vs > 20 * Vl * sqrt(2.0 / (64 * 256)), "beta %.4f vs beta~ %.4f", Vl, Vs);
        schedule_free(&large.sched);
        schedule_free(&small.sched);
    }
}
END_TEST

// The paper's schedule (T = 1000), data N(0.3, 1), sigma^2 = beta: the
// samples have the data's mean and variance (1 - beta_1 exactly, since the
// last step adds no noise).
START_TEST(paper_schedule_returns_the_data)
{
    Fixture f;
    gauss_fixture(&f, 1000, 1e-4, 0.02, "eps", "fixedlarge", 0.3, 1.0, 16);
    double M, V;
    expected_moments(&f, &M, &V);
    ck_assert_msg(fabs(V - (1 - 1e-4)) < 1e-6 && fabs(M - 0.3) < 1e-4, "recursion: %.8f %.8f", M, V);
    check_moments(&f, 64, 3);
    schedule_free(&f.sched);
}
END_TEST

// Data that is a single point: x0_hat is the point at every step, and the
// last step returns the posterior mean at t = 1, which is x0_hat itself.
START_TEST(point_data_lands_on_the_point)
{
    Fixture f;
    gauss_fixture(&f, 1000, 1e-4, 0.02, "eps", "fixedsmall", -0.4, 0.0, 8);
    real x[4 * 64];
    Error err;
    ck_assert_msg(sample_images(&f.s, x, 4, 1, 8, 8, 5, 0, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 4 * 64; i++) ck_assert_msg(fabs(x[i] + 0.4) < 1e-4, "x[%d] = %g", i, x[i]);
    schedule_free(&f.sched);
}
END_TEST

/* ---- one step --------------------------------------------------------------- */

// With an eps model and no clipping, p_sample's mean is Algorithm 2's line 4
// as printed: (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z.
START_TEST(step_is_algorithm_2)
{
    Fixture f;
    gauss_fixture(&f, 1000, 1e-4, 0.02, "eps", "fixedlarge", 0.3, 0.5, 4);
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);
    int ts_[5] = {999, 600, 100, 1, 0};
    for (int k = 0; k < 5; k++) {
        int t = ts_[k], tv[2] = {t, t};
        real x[32], x_new[32], z[32];
        Rng r, rz;
        rng_seed(&r, 11, (uint64_t)k);
        rng_fill_normal(&r, x, 32, 0, 1);
        vec_copy(x_new, x, 32);
        Rng rngs[2];
        rng_seed(&rngs[0], 7, 0);
        rng_seed(&rngs[1], 7, 1);
        p_sample(&tp, &f.s, x_new, 2, 1, 4, 4, t, rngs, NULL);
        Tensor *xt = tensor_4d(&ar, 2, 1, 4, 4);
        vec_copy(xt->data, x, 32);
        Tensor *eps = f.model.forward(&tp, f.model.ctx, xt, tv, NULL);
        double beta = f.sched.betas[t], ab = f.sched.alphas_cumprod[t];
        for (int n = 0; n < 2; n++) {
            rng_seed(&rz, 7, (uint64_t)n);
            rng_fill_normal(&rz, z + 16 * n, 16, 0, 1);
        }
        for (int i = 0; i < 32; i++) {
            double mu = (x[i] - beta / sqrt(1 - ab) * eps->data[i]) / sqrt(1 - beta);
            double want = mu + (t > 0 ? sqrt(beta) * z[i] : 0);
            ck_assert_msg(fabs(x_new[i] - want) < TOL * 10 * (1 + fabs(want)),
                          "t = %d, i = %d: %.8f vs Algorithm 2 %.8f", t, i, x_new[i], want);
        }
        arena_reset(&ar);
    }
    tape_free(&tp);
    arena_free(&ar);
    schedule_free(&f.sched);
}
END_TEST

/* ---- variants agree -------------------------------------------------------- */

static void sample_with(const char *mean, const char *var, double v, int clip, real *x)
{
    Fixture f;
    gauss_fixture(&f, 50, 1e-3, 0.2, mean, var, 0.3, 0.5, 8);
    f.g.v = v;
    f.s.clip = clip;
    f.s.batch = 3;
    Error err;
    ck_assert_msg(sample_images(&f.s, x, 6, 1, 8, 8, 9, 0, &err) == 0, "%s", err.msg);
    schedule_free(&f.sched);
}

static void assert_same(const real *a, const real *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) < 1e-4, "%s: [%zu] %.7f vs %.7f", what, i, a[i], b[i]);
}

// The same optimal denoiser expressed as eps, x0 or mu~ gives the same
// samples with the same noise; learned variance at v = +1 is beta, at
// v = -1 beta~ (improved DDPM's interpolation; at t = 0 no noise is added).
START_TEST(mean_and_variance_types_agree)
{
    real eps[6 * 64], x0[6 * 64], mu[6 * 64], lv[6 * 64], small[6 * 64], lvs[6 * 64];
    for (int clip = 0; clip <= 1; clip++) {
        sample_with("eps", "fixedlarge", 0, clip, eps);
        sample_with("x0", "fixedlarge", 0, clip, x0);
        assert_same(eps, x0, 6 * 64, "x0 model");
        sample_with("eps", "learned", 1, clip, lv);
        assert_same(eps, lv, 6 * 64, "learned v = 1");
        sample_with("eps", "fixedsmall", 0, clip, small);
        sample_with("eps", "learned", -1, clip, lvs);
        assert_same(small, lvs, 6 * 64, "learned v = -1");
    }
    sample_with("mu", "fixedlarge", 0, 0, mu);   // (mu models are never clipped)
    sample_with("eps", "fixedlarge", 0, 0, eps);
    assert_same(eps, mu, 6 * 64, "mu model");
}
END_TEST

// With clipping the last step returns clip(x0_hat), inside [-1, 1]; the
// data N(0.3, 0.5) puts many unclipped samples outside.
START_TEST(clipping_keeps_samples_in_range)
{
    real x[6 * 64];
    int outside = 0;
    sample_with("eps", "fixedlarge", 0, 1, x);
    for (int i = 0; i < 6 * 64; i++) ck_assert(x[i] >= -1 && x[i] <= 1);
    sample_with("eps", "fixedlarge", 0, 0, x);
    for (int i = 0; i < 6 * 64; i++) outside += x[i] < -1 || x[i] > 1;
    ck_assert_msg(outside > 20, "only %d of 384 unclipped values outside [-1, 1]", outside);
}
END_TEST

// Image i depends on the seed and i only: any batch size, any N.
START_TEST(samples_depend_on_seed_and_index_only)
{
    Fixture f;
    gauss_fixture(&f, 30, 1e-3, 0.2, "eps", "fixedlarge", 0.1, 0.5, 4);
    real a[5 * 16], b[3 * 16], c[5 * 16];
    Error err;
    f.s.batch = 5;
    ck_assert(sample_images(&f.s, a, 5, 1, 4, 4, 42, 0, &err) == 0);
    f.s.batch = 2;
    ck_assert(sample_images(&f.s, b, 3, 1, 4, 4, 42, 0, &err) == 0);
    ck_assert(memcmp(a, b, sizeof b) == 0);
    ck_assert(sample_images(&f.s, c, 5, 1, 4, 4, 43, 0, &err) == 0);
    ck_assert(memcmp(a, c, sizeof c) != 0);
    ck_assert_int_eq(sample_images(&f.s, c, 0, 1, 4, 4, 1, 0, &err), -1);
    ck_assert_int_eq(p_sample_loop(&f.s, c, 1, 1, 4, 4, 30, 0, NULL, &err), -1);
    ck_assert_int_eq(p_sample_loop(&f.s, c, 1, 3, 4, 4, 29, 0, NULL, &err), -1);   // 3 channels
    ck_assert_ptr_nonnull(strstr(err.msg, "network takes 1x4x4"));
    schedule_free(&f.sched);
}
END_TEST

/* ---- figures 6, 7, 8 ------------------------------------------------------ */

// Fig. 6: the snapshots are the x0_hat of steps T-1 and every k-th, and the
// last one (t = 0) is the sample itself when x0_hat is clipped (see above).
START_TEST(progressive_snapshots)
{
    Fixture f;
    gauss_fixture(&f, 30, 1e-3, 0.2, "eps", "fixedlarge", 0.1, 0.5, 4);
    f.s.clip = 1;
    int S = sample_n_snapshots(30, 10), ts[8];
    ck_assert_int_eq(S, 4);   // t = 29, 20, 10, 0
    real x[2 * 16], snaps[4 * 2 * 16], y[2 * 16];
    Error err;
    ck_assert(sample_progressive(&f.s, x, snaps, ts, 2, 1, 4, 4, 8, 10, &err) == 0);
    ck_assert(ts[0] == 29 && ts[1] == 20 && ts[2] == 10 && ts[3] == 0);
    ck_assert(sample_images(&f.s, y, 2, 1, 4, 4, 8, 0, &err) == 0);
    ck_assert(memcmp(x, y, sizeof x) == 0);                  // the hook changes nothing
    assert_same(snaps + 3 * 32, x, 32, "x0_hat at t = 0 is x_0");
    real rows[2 * 4 * 16];   // one row per image: its last snapshot is its sample
    sample_snapshot_rows(rows, snaps, 4, 2, 2, 16);
    assert_same(rows + 3 * 16, x, 16, "row 0 ends with image 0");
    assert_same(rows + 7 * 16, x + 16, 16, "row 1 ends with image 1");
    assert_same(rows + 4 * 16, snaps + 1 * 16, 16, "row 1 starts with image 1 at t = T-1");
    schedule_free(&f.sched);
}
END_TEST

// Fig. 7: at t = T-1 the shared x is x_T itself, so the branches are fresh
// samples; at t = 0 every branch takes the same last (noise-free) step.
START_TEST(shared_latents)
{
    Fixture f;
    gauss_fixture(&f, 30, 1e-3, 0.2, "eps", "fixedlarge", 0.1, 0.5, 4);
    real out[3 * 16], xt[16], x0[16];
    Error err;
    ck_assert(sample_shared_latent(&f.s, out, xt, x0, 3, 1, 4, 4, 0, 5, &err) == 0);
    ck_assert(memcmp(out, out + 16, 16 * sizeof(real)) == 0);
    ck_assert(memcmp(out, out + 32, 16 * sizeof(real)) == 0);
    ck_assert(sample_shared_latent(&f.s, out, xt, x0, 3, 1, 4, 4, 15, 5, &err) == 0);
    ck_assert(memcmp(out, out + 16, 16 * sizeof(real)) != 0);
    for (int i = 0; i < 16; i++)   // x0_hat is the model's formula at x
        ck_assert(fabs(x0[i] - gauss_posterior_x0(&f.g, xt[i], 15)) < 1e-5);
    ck_assert_int_eq(sample_shared_latent(&f.s, out, xt, x0, 3, 1, 4, 4, 30, 5, &err), -1);
    schedule_free(&f.sched);
}
END_TEST

// Fig. 8: lambda = 0 and 1 reproduce the two end points, and a mix in
// between is what the sampler makes of the mixed latent.
START_TEST(interpolation_end_points)
{
    Fixture f;
    gauss_fixture(&f, 30, 1e-3, 0.2, "eps", "fixedlarge", 0.1, 0.5, 4);
    real a[16], b[16], out[3 * 16], xa[16], xb[16], mix[16];
    for (int i = 0; i < 16; i++) a[i] = (real)(i / 8.0 - 1), b[i] = (real)(1 - i / 8.0);
    double lambda[3] = {0, 1, 0.25};
    Error err;
    int t = 20;
    ck_assert(sample_interpolate(&f.s, out, a, b, 1, 4, 4, t, lambda, 3, 3, &err) == 0);
    Rng r, rev;
    rng_seed(&r, 3, 0);
    rng_fill_normal(&r, xa, 16, 0, 1);
    rng_fill_normal(&r, xb, 16, 0, 1);
    q_sample(xa, a, xa, &t, 1, 16, &f.sched);
    q_sample(xb, b, xb, &t, 1, 16, &f.sched);
    real *ends[3] = {xa, xb, mix};
    for (int i = 0; i < 16; i++) mix[i] = (real)0.75 * xa[i] + (real)0.25 * xb[i];
    for (int l = 0; l < 3; l++) {
        rng_seed(&rev, 3, 1);
        ck_assert(p_sample_loop(&f.s, ends[l], 1, 1, 4, 4, t, 0, &rev, &err) == 0);
        assert_same(out + 16 * l, ends[l], 16, "interpolation");
    }
    schedule_free(&f.sched);
}
END_TEST

Suite *suite_08_sampler(void)
{
    Suite *s = suite_create("08_sampler");
    TCase *tc = tcase_create("sampler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gaussian_data_both_variances);
    tcase_add_test(tc, paper_schedule_returns_the_data);
    tcase_add_test(tc, point_data_lands_on_the_point);
    tcase_add_test(tc, step_is_algorithm_2);
    tcase_add_test(tc, mean_and_variance_types_agree);
    tcase_add_test(tc, clipping_keeps_samples_in_range);
    tcase_add_test(tc, samples_depend_on_seed_and_index_only);
    tcase_add_test(tc, progressive_snapshots);
    tcase_add_test(tc, shared_latents);
    tcase_add_test(tc, interpolation_end_points);
    suite_add_tcase(s, tc);
    return s;
}
