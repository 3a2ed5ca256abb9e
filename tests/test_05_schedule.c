/* test_05_schedule.c — the noise schedule and the forward process q.
 *
 * Runs in both builds. The schedule's tables are computed in double and
 * stored as `real`, so the float build must agree with a double reference to
 * one rounding (2^-24 relative) and the double build to a few ulps. There is
 * no backward here, hence no gradient check.
 *
 * Reference values come from three places: NumPy running the official
 * code's formulas (pasted below, with how they were made), the same formulas
 * written out again in double in this file, and formulas that reach the
 * same numbers another way (abar as exp of a sum of log1p, the cosine
 * schedule's closed form, the posterior mean through eps, Eq. (10)).
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "05_schedule.h"

#ifdef DDPM_DOUBLE
#define REL 1e-14        // the same double operations as NumPy: a few ulps (libm) at most
#define REL_INDEP 1e-13  // a different route to the same number (seen: 1e-14)
#define EPS_REAL DBL_EPSILON
#else
#define REL 1.2e-7       // one rounding of the double value to float: 2^-24 = 6e-8 relative
#define REL_INDEP 1.2e-7
#define EPS_REAL FLT_EPSILON
#endif

enum { T_PAPER = 1000 };

static void check_rel(double got, double want, double rel, const char *what, int t)
{
    ck_assert_msg(fabs(got - want) <= rel * fabs(want),
                  "%s[%d] = %.17g, expected %.17g (relative error %.3g > %.3g)", what, t, got,
                  want, fabs(got - want) / fabs(want), rel);
}

static Schedule linear(void)
{
    Schedule s;
    Error err;
    ck_assert_msg(schedule_init(&s, "linear", T_PAPER, 1e-4, 0.02, &err) == 0, "%s", err.msg);
    return s;
}

static Schedule cosine(void)
{
    Schedule s;
    Error err;
    ck_assert_msg(schedule_init(&s, "cosine", T_PAPER, 0, 0, &err) == 0, "%s", err.msg);
    return s;
}

/* ---- core: values ---------------------------------------------------------- */

// Made with /usr/bin/python3 and NumPy 1.24.2, the official code's formulas
// (diffusion_utils_2.py, GaussianDiffusion2.__init__):
//   b = np.linspace(1e-4, 0.02, 1000, dtype=np.float64); a = 1 - b
//   ac = np.cumprod(a); acp = np.append(1., ac[:-1])
//   pv = b * (1 - acp) / (1 - ac); plv = np.log(np.append(pv[1], pv[1:]))
//   c1 = b * np.sqrt(acp) / (1 - ac); c2 = (1 - acp) * np.sqrt(a) / (1 - ac)
// printed with repr() at code t = 0, 1, 499, 999.
static const double numpy_linear[4][7] = {
    // t  betas  alphas_cumprod  posterior_variance  posterior_log_variance_clipped  coef1  coef2
    {0, 0.0001, 0.9999, 0.0, -9.81672513529567, 1.0000000000001101, 0.0},
    {1, 0.00011991991991991993, 0.9997800920720721, 5.4531876613021935e-05,
     -9.81672513529567, 0.5452914995102903, 0.4547084989905303},
    {499, 0.010040040040040039, 0.07858724288177824, 0.010031355414613688,
     -4.602039550085138, 0.0030700711142649766, 0.9941066702101666},
    {999, 0.02, 4.035829765375676e-05, 0.01999998352656061, -3.9120238291004545,
     0.00012835148717224682, 0.9899486782675173},
};

START_TEST(linear_matches_numpy)
{
    Schedule s = linear();
    const real *tables[6] = {s.betas, s.alphas_cumprod, s.posterior_variance,
                             s.posterior_log_variance_clipped, s.posterior_mean_coef1,
                             s.posterior_mean_coef2};
    const char *names[6] = {"betas", "alphas_cumprod", "posterior_variance",
                            "posterior_log_variance_clipped", "posterior_mean_coef1",
                            "posterior_mean_coef2"};
    for (int r = 0; r < 4; r++) {
        int t = (int)numpy_linear[r][0];
        for (int k = 0; k < 6; k++)
            check_rel(tables[k][t], numpy_linear[r][k + 1], REL, names[k], t);
    }
    schedule_free(&s);
}
END_TEST

// The official constructor written out again in double, for every table at
// every t: betas as np.linspace, then each formula as the official code has it.
static void reference_tables(double ref[12][T_PAPER], double beta_start, double beta_end)
{
    int T = T_PAPER;
    double step = (beta_end - beta_start) / (T - 1), prev = 1;
    for (int t = 0; t < T; t++) {
        double b = t == T - 1 ? beta_end : t * step + beta_start, a = 1 - b, ac = prev * a;
        double r[12] = {b, ac, prev, sqrt(ac), sqrt(1 - ac), log(1 - ac), sqrt(1 / ac),
                        sqrt(1 / ac - 1), b * (1 - prev) / (1 - ac), 0,
                        b * sqrt(prev) / (1 - ac), (1 - prev) * sqrt(a) / (1 - ac)};
        for (int k = 0; k < 12; k++) ref[k][t] = r[k];
        prev = ac;
    }
    for (int t = 0; t < T; t++) ref[9][t] = log(ref[8][t == 0 ? 1 : t]);
}

START_TEST(linear_matches_official_formulas)
{
    Schedule s = linear();
    static double ref[12][T_PAPER];
    reference_tables(ref, 1e-4, 0.02);
    const real *tables[12] = {
        s.betas, s.alphas_cumprod, s.alphas_cumprod_prev, s.sqrt_alphas_cumprod,
        s.sqrt_one_minus_alphas_cumprod, s.log_one_minus_alphas_cumprod,
        s.sqrt_recip_alphas_cumprod, s.sqrt_recipm1_alphas_cumprod, s.posterior_variance,
        s.posterior_log_variance_clipped, s.posterior_mean_coef1, s.posterior_mean_coef2};
    for (int k = 0; k < 12; k++)
        for (int t = 0; t < T_PAPER; t++) {
            char what[32];
            snprintf(what, sizeof what, "table %d", k);
            check_rel(tables[k][t], ref[k][t], REL, what, t);
        }
    schedule_free(&s);
}
END_TEST

// By hand: the ends of the linspace, the first steps of the product, and
// what t = 0 means for the posterior (x_{-1} is x_0 itself: mean x0, no
// variance), and abar by another route: exp(sum log(1 - beta_s)).
START_TEST(linear_by_hand)
{
    Schedule s = linear();
    check_rel(s.betas[0], 1e-4, REL, "betas", 0);
    check_rel(s.betas[999], 0.02, REL, "betas", 999);
    check_rel(s.betas[1], 1e-4 + 0.0199 / 999, REL_INDEP, "betas", 1);
    check_rel(s.alphas_cumprod[0], 0.9999, REL, "alphas_cumprod", 0);
    check_rel(s.alphas_cumprod[1], 0.9999 * (1 - (1e-4 + 0.0199 / 999)), REL_INDEP,
              "alphas_cumprod", 1);
    ck_assert(s.alphas_cumprod_prev[0] == 1);
    check_rel(s.sqrt_one_minus_alphas_cumprod[0], 0.01, 1e-11 + REL, "sqrt(1-abar)", 0);
    ck_assert(s.posterior_variance[0] == 0);
    ck_assert(s.posterior_mean_coef2[0] == 0);
    check_rel(s.posterior_mean_coef1[0], 1, 1e-12 + REL, "posterior_mean_coef1", 0);
    ck_assert(s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]);
    double logsum = 0;
    for (int t = 0; t < T_PAPER; t++) {
        logsum += log1p(-(1e-4 + t * (0.02 - 1e-4) / 999));
        if (t == 0 || t == 499 || t == 999)
            check_rel(s.alphas_cumprod[t], exp(logsum), REL_INDEP, "alphas_cumprod", t);
    }
    schedule_free(&s);
}
END_TEST

// Made with /usr/bin/python3 as Improved DDPM's betas_for_alpha_bar:
//   f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
//   b = [min(1 - f((i + 1) / 1000) / f(i / 1000), 0.999) for i in range(1000)]
//   ac = np.cumprod(1 - np.array(b))
// printed with repr() at code t = 0, 499, 998, 999: {t, betas, alphas_cumprod}.
static const double numpy_cosine[4][3] = {
    {0, 4.128422482196914e-05, 0.999958715775178},
    {499, 0.0031458862304780677, 0.4938435904406382},
    {998, 0.7499993929011166, 2.4287669070348544e-06},
    {999, 0.999, 2.4287669070348567e-09},
};

static double cosine_f(double u)
{
    double c = cos((u + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

// Nichol & Dhariwal define abar_t = f(t/T) / f(0) (paper t): with the clip
// only the last beta (which would be 1) changes, so the closed form holds
// for every code t < T - 1, and abar_{T-1} = abar_{T-2} (1 - 0.999).
START_TEST(cosine_matches_closed_form)
{
    Schedule s = cosine();
    ck_assert_str_eq(s.kind, "cosine");
    for (int t = 0; t < T_PAPER; t++) ck_assert(s.betas[t] <= (real)0.999);
    ck_assert(s.betas[T_PAPER - 1] == (real)0.999);
    ck_assert(s.betas[T_PAPER - 2] < (real)0.999);
    for (int t = 0; t < T_PAPER - 1; t++)
        check_rel(s.alphas_cumprod[t], cosine_f((t + 1.0) / T_PAPER) / cosine_f(0),
                  REL_INDEP, "cosine alphas_cumprod", t);
    check_rel(s.alphas_cumprod[T_PAPER - 1],
              (double)s.alphas_cumprod[T_PAPER - 2] * (1 - 0.999), 3 * REL, "alphas_cumprod",
              T_PAPER - 1);
    for (int r = 0; r < 4; r++) {
        int t = (int)numpy_cosine[r][0];
        check_rel(s.betas[t], numpy_cosine[r][1], REL_INDEP, "cosine betas", t);
        check_rel(s.alphas_cumprod[t], numpy_cosine[r][2], REL_INDEP, "cosine alphas_cumprod", t);
    }
    schedule_free(&s);
}
END_TEST

// Both schedules: beta increases, abar decreases inside (0, 1), and the
// posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) lies
// strictly between 0 and beta_t for t >= 1 (abar_{t-1} > abar_t).
START_TEST(schedules_are_monotone)
{
    Schedule both[2] = {linear(), cosine()};
    for (int k = 0; k < 2; k++) {
        const Schedule *s = &both[k];
        for (int t = 0; t < s->T; t++) {
            ck_assert_msg(s->alphas_cumprod[t] > 0 && s->alphas_cumprod[t] < 1, "%s t=%d",
                          s->kind, t);
            if (t == 0) continue;
            ck_assert_msg(s->betas[t] > s->betas[t - 1], "%s betas not increasing at %d",
                          s->kind, t);
            ck_assert_msg(s->alphas_cumprod[t] < s->alphas_cumprod[t - 1], "%s abar at %d",
                          s->kind, t);
            ck_assert_msg(s->posterior_variance[t] > 0 && s->posterior_variance[t] < s->betas[t],
                          "%s posterior variance at %d", s->kind, t);
            ck_assert(s->alphas_cumprod_prev[t] == s->alphas_cumprod[t - 1]);
        }
    }
    schedule_free(&both[0]);
    schedule_free(&both[1]);
}
END_TEST

/* ---- core: q applied to a batch ------------------------------------------- */

// Each image at its own t: x0 = 1, noise = 0 picks sqrt(abar_t); x0 = 0,
// noise = 1 picks sqrt(1 - abar_t). And in place gives the same.
START_TEST(q_sample_by_hand)
{
    Schedule s = linear();
    enum { N = 4, D = 3 };
    int t[N] = {0, 1, 500, 999};
    real ones[N * D], zeros[N * D], xt[N * D], y[N * D];
    for (int i = 0; i < N * D; i++) ones[i] = 1, zeros[i] = 0;
    q_sample(xt, ones, zeros, t, N, D, &s);
    for (int i = 0; i < N * D; i++) ck_assert(xt[i] == s.sqrt_alphas_cumprod[t[i / D]]);
    q_sample(xt, zeros, ones, t, N, D, &s);
    for (int i = 0; i < N * D; i++) ck_assert(xt[i] == s.sqrt_one_minus_alphas_cumprod[t[i / D]]);
    Rng rng;
    rng_seed(&rng, 5, 0);
    rng_fill_normal(&rng, y, N * D, 0, 1);
    rng_fill_normal(&rng, xt, N * D, 0, 1);
    real ref[N * D];
    q_sample(ref, y, xt, t, N, D, &s);
    q_sample(y, y, xt, t, N, D, &s);   // xt = q(x0) written over x0
    for (int i = 0; i < N * D; i++) ck_assert(y[i] == ref[i]);
    schedule_free(&s);
}
END_TEST

// For one x0 and many noise draws, x_t ~ N(sqrt(abar) x0, (1 - abar) I)
// (Eq. (4)): the sample mean within 5 standard errors sqrt((1-abar)/n), the
// sample variance within 5 of its standard errors (1-abar) sqrt(2/(n-1)).
START_TEST(q_sample_moments)
{
    Schedule s = linear();
    enum { N = 40000, D = 5 };
    const real x0[D] = {-1, -0.5, 0, 0.5, 1};
    real *x = malloc(sizeof(real) * N * D), *noise = malloc(sizeof(real) * N * D);
    int *t = malloc(sizeof(int) * N);
    Rng rng;
    rng_seed(&rng, 11, 0);
    const int steps[4] = {0, 99, 499, 999};
    for (int k = 0; k < 4; k++) {
        for (int n = 0; n < N; n++) t[n] = steps[k];
        for (int n = 0; n < N; n++) memcpy(x + (size_t)n * D, x0, sizeof x0);
        rng_fill_normal(&rng, noise, (size_t)N * D, 0, 1);
        q_sample(x, x, noise, t, N, D, &s);
        double abar = s.alphas_cumprod[steps[k]];
        for (int d = 0; d < D; d++) {
            double m = 0, v = 0;
            for (int n = 0; n < N; n++) m += x[(size_t)n * D + d];
            m /= N;
            for (int n = 0; n < N; n++) v += pow(x[(size_t)n * D + d] - m, 2);
            v /= N - 1;
            double se_m = sqrt((1 - abar) / N), se_v = (1 - abar) * sqrt(2.0 / (N - 1));
            ck_assert_msg(fabs(m - sqrt(abar) * x0[d]) < 5 * se_m, "t=%d mean %g, expected %g",
                          steps[k], m, sqrt(abar) * x0[d]);
            ck_assert_msg(fabs(v - (1 - abar)) < 5 * se_v, "t=%d variance %g, expected %g",
                          steps[k], v, 1 - abar);
        }
    }
    free(x);
    free(noise);
    free(t);
    schedule_free(&s);
}
END_TEST

// The posterior mean (Eq. (7)) of x_t = q_sample(x0, eps) equals the form
// the paper's Eq. (10) writes through eps:
//   mu~(x_t, x_0) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t),
// computed here in double from the double reference tables. Also: var and
// logvar are the tables at each image's t, and either may be NULL.
// Tolerance: a few roundings of each term, plus the cancellation in
// 1 - abar_t, which every coefficient divides by: one double rounding of
// abar_t is DBL_EPSILON / (1 - abar_t) relative in 1 - abar_t (2e-12 at
// t = 0, where posterior_mean_coef1 is 1.0000000000001101, not 1).
START_TEST(posterior_mean_through_eps)
{
    Schedule s = linear();
    static double ref[12][T_PAPER];
    reference_tables(ref, 1e-4, 0.02);
    enum { N = 8, D = 50 };
    int t[N] = {0, 1, 2, 10, 100, 499, 998, 999};
    real x0[N * D], eps[N * D], xt[N * D], mean[N * D], var[N], logvar[N];
    Rng rng;
    rng_seed(&rng, 3, 0);
    rng_fill_uniform(&rng, x0, N * D, -1, 1);
    rng_fill_normal(&rng, eps, N * D, 0, 1);
    q_sample(xt, x0, eps, t, N, D, &s);
    q_posterior_mean_variance(mean, var, logvar, x0, xt, t, N, D, &s);
    for (int i = 0; i < N * D; i++) {
        int tn = t[i / D];
        double beta = ref[0][tn], abar = ref[1][tn];
        double want = (xt[i] - beta / sqrt(1 - abar) * eps[i]) / sqrt(1 - beta);
        double rel = EPS_REAL + DBL_EPSILON / (1 - abar);
        double tol = 8 * rel * (fabs(x0[i]) + fabs(xt[i]) + fabs(eps[i]));
        ck_assert_msg(fabs(mean[i] - want) <= tol, "t=%d: mu~ %.9g, via eps %.9g", tn,
                      (double)mean[i], want);
    }
    for (int n = 0; n < N; n++) {
        ck_assert(var[n] == s.posterior_variance[t[n]]);
        ck_assert(logvar[n] == s.posterior_log_variance_clipped[t[n]]);
    }
    real mean2[N * D];
    q_posterior_mean_variance(mean2, NULL, NULL, x0, xt, t, N, D, &s);
    ck_assert(memcmp(mean, mean2, sizeof mean) == 0);
    schedule_free(&s);
}
END_TEST

// predict_x0_from_eps undoes q_sample up to rounding, at every t. The error
// is a few roundings of each term: |x0|, |xt| / sqrt(abar) (largest at
// t = 999, where 1/sqrt(abar) = 157), and sqrt(1/abar - 1) |eps|, plus the
// cancellation in 1 - abar_t (see posterior_mean_through_eps).
START_TEST(predict_x0_inverts_q_sample)
{
    Schedule both[2] = {linear(), cosine()};
    enum { N = 7, D = 1000 };
    int t[N] = {0, 1, 10, 100, 500, 900, 999};
    real *x0 = malloc(sizeof(real) * N * D), *eps = malloc(sizeof(real) * N * D);
    real *xt = malloc(sizeof(real) * N * D), *back = malloc(sizeof(real) * N * D);
    Rng rng;
    rng_seed(&rng, 9, 0);
    rng_fill_uniform(&rng, x0, N * D, -1, 1);
    rng_fill_normal(&rng, eps, N * D, 0, 1);
    for (int k = 0; k < 2; k++) {
        const Schedule *s = &both[k];
        q_sample(xt, x0, eps, t, N, D, s);
        predict_x0_from_eps(back, xt, eps, t, N, D, s);
        for (int i = 0; i < N * D; i++) {
            int tn = t[i / D];
            double a = s->sqrt_recip_alphas_cumprod[tn], b = s->sqrt_recipm1_alphas_cumprod[tn];
            double rel = EPS_REAL + DBL_EPSILON / (1 - s->alphas_cumprod[tn]);
            double tol = 8 * rel * (fabs(x0[i]) + a * fabs(xt[i]) + b * fabs(eps[i]));
            ck_assert_msg(fabs(back[i] - x0[i]) <= tol, "%s t=%d: x0 %.9g, recovered %.9g",
                          s->kind, tn, (double)x0[i], (double)back[i]);
        }
    }
    free(x0), free(eps), free(xt), free(back);
    schedule_free(&both[0]);
    schedule_free(&both[1]);
}
END_TEST

/* ---- core: errors -------------------------------------------------------- */

START_TEST(schedule_errors)
{
    struct { const char *kind; int T; double b0, b1; const char *msg; } bad[] = {
        {"quad", 1000, 1e-4, 0.02, "unknown beta schedule 'quad'"},
        {NULL, 1000, 1e-4, 0.02, "unknown beta schedule"},
        {"linear", 0, 1e-4, 0.02, "at least T = 2 steps (got T = 0)"},
        {"linear", 1, 1e-4, 0.02, "at least T = 2 steps (got T = 1)"},
        {"cosine", -5, 0, 0, "at least T = 2 steps"},
        {"linear", 1000, 0, 0.02, "0 < beta_start <= beta_end < 1"},
        {"linear", 1000, -1e-4, 0.02, "0 < beta_start <= beta_end < 1"},
        {"linear", 1000, 0.02, 1e-4, "0 < beta_start <= beta_end < 1"},
        {"linear", 1000, 1e-4, 1.0, "beta_end = 1"},
        {"linear", 1000, NAN, 0.02, "0 < beta_start <= beta_end < 1"},
        {"linear", 1000, 1e-20, 0.02, "1 - beta_start rounds to 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Schedule s;
        Error err = {{0}};
        ck_assert_int_eq(schedule_init(&s, bad[i].kind, bad[i].T, bad[i].b0, bad[i].b1, &err), -1);
        ck_assert_msg(strstr(err.msg, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err.msg,
                      bad[i].msg);
        ck_assert_ptr_null(s.betas);
        schedule_free(&s);   // safe after a failure
    }
    Schedule s;   // the edge cases that are allowed: T = 2, a constant beta
    ck_assert_int_eq(schedule_init(&s, "linear", 2, 0.1, 0.1, NULL), 0);
    ck_assert(s.betas[0] == (real)0.1 && s.betas[1] == (real)0.1);
    check_rel(s.alphas_cumprod[1], 0.81, REL_INDEP, "alphas_cumprod", 1);
    check_rel(s.posterior_variance[1], 0.1 * 0.1 / 0.19, REL_INDEP, "posterior_variance", 1);
    schedule_free(&s);
}
END_TEST

// A timestep outside 0..T-1 is a programming error: the check aborts.
START_TEST(bad_timestep_aborts)
{
    Schedule s = linear();
    real x[2] = {0, 0}, y[2];
    freopen("/dev/null", "w", stderr);   // this forked child's message is expected
    q_sample(y, x, x, (int[]){1000}, 1, 2, &s);
}
END_TEST

Suite *suite_05_schedule(void)
{
    Suite *s = suite_create("05_schedule");
    TCase *core = tcase_create("core");
    tcase_add_test(core, linear_matches_numpy);
    tcase_add_test(core, linear_matches_official_formulas);
    tcase_add_test(core, linear_by_hand);
    tcase_add_test(core, cosine_matches_closed_form);
    tcase_add_test(core, schedules_are_monotone);
    tcase_add_test(core, q_sample_by_hand);
    tcase_add_test(core, q_sample_moments);
    tcase_add_test(core, posterior_mean_through_eps);
    tcase_add_test(core, predict_x0_inverts_q_sample);
    tcase_add_test(core, schedule_errors);
    tcase_add_test_raise_signal(core, bad_timestep_aborts, SIGABRT);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    return s;
}
