/* test_07_ratedist.c — rate and distortion along the reverse process: the
 * arithmetic on a hand-built BpdResult (the index conventions of Table 4),
 * then the whole curve of the closed-form Gaussian denoiser
 * (tests/gauss_model.h) on the paper's schedule, where the first and last
 * points and the bound they add up to are known in advance. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "07_ratedist.h"
#include "gauss_model.h"

#ifdef DDPM_DOUBLE
#define ROUND 1e-9        // what arithmetic in `real` may leave behind
#define TERM_ROUND 1e-14  // how far below 0 a KL term of ~0 may come out
#else
#define ROUND 1e-3
#define TERM_ROUND 1e-6   // float: the KL's -1 + ... + exp(.) cancels to ~1e-7 per value
#endif

#define NEAR(a, b, tol) \
    ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.10g, want %.10g (tol %g)", \
                  #a, (double)(a), (double)(b), (double)(tol))

/* ---- core: the arithmetic by hand ---------------------------------------- */

// T = 3, N = 2. Code t = 0 is the decoder; the receiver of k steps holds
// code t = T - k. Per image n = 0, 1:
//   prior 0.01 0.03      terms t=2: 0.125 0.375   t=1: 0.25 0.75   t=0: 1 3
//   mse   t=2: 0.8 1.2   t=1: 0.03 0.05           t=0: 5e-5 1.5e-4
// rate(1) = mean prior = 0.02; rate(2) = + mean terms[2] = 0.27; rate(3) =
// + mean terms[1] = 0.77; dist(k) = 127.5 sqrt(mean mse[T - k]) = 127.5,
// 25.5, 1.275. Standard errors: two values at mean -+ d have standard error
// of the mean d (0.01, 0.135, 0.385); the distortion's is 127.5 se(M) / (2 sqrt(M)).
static double h_terms[] = {1, 3, 0.25, 0.75, 0.125, 0.375};
static double h_mse[] = {5e-5, 1.5e-4, 0.03, 0.05, 0.8, 1.2};
static double h_prior[] = {0.01, 0.03};
static double h_total[] = {1.385, 4.155};

static BpdResult hand_result(void)
{
    return (BpdResult){.N = 2, .T = 3, .terms = h_terms, .mse = h_mse, .prior = h_prior,
                       .total = h_total};
}

START_TEST(rd_hand_built)
{
    BpdResult r = hand_result();
    RDCurve rd;
    rd_from_bpd(&rd, &r);
    ck_assert_int_eq(rd.T, 3);
    ck_assert_int_eq(rd.N, 2);
    double rate[] = {0.02, 0.27, 0.77}, rate_se[] = {0.01, 0.135, 0.385};
    double dist[] = {127.5, 25.5, 1.275}, dist_se[] = {12.75, 3.1875, 0.31875};
    for (int k = 0; k < 3; k++) {
        NEAR(rd.rate[k], rate[k], 1e-12);
        NEAR(rd.rate_se[k], rate_se[k], 1e-12);
        NEAR(rd.dist[k], dist[k], 1e-9);
        NEAR(rd.dist_se[k], dist_se[k], 1e-9);
    }
    NEAR(rd.prior, 0.02, 1e-12);
    NEAR(rd.decoder, 2, 1e-12);
    NEAR(rd.decoder_se, 1, 1e-12);
    NEAR(rd.total, 2.77, 1e-12);
    NEAR(rd.total_se, 1.385, 1e-12);
    NEAR(rd.rate[2] + rd.decoder, rd.total, 1e-12);
    rd_free(&rd);
    ck_assert_ptr_null(rd.rate);
}
END_TEST

// The CSV: the summary line, the header, and Table 4's x axis (steps
// received = T - t + 1, t in paper numbering) row by row.
START_TEST(csv_follows_table4_columns)
{
    BpdResult r = hand_result();
    RDCurve rd;
    rd_from_bpd(&rd, &r);
    char path[] = "/tmp/test_07_rd_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    Error err;
    ck_assert_msg(rd_write_csv(path, &rd, &err) == 0, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char line[256];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_ptr_nonnull(strstr(line, "# total_bpd=2.77"));
    ck_assert_ptr_nonnull(strstr(line, "decoder_bpd=2.0"));
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "steps,t,rate_bpd,rate_se,rmse,rmse_se\n");
    for (int k = 1; k <= 3; k++) {
        int steps, t;
        double v[4];
        ck_assert_int_eq(fscanf(f, "%d,%d,%lf,%lf,%lf,%lf", &steps, &t, &v[0], &v[1], &v[2], &v[3]), 6);
        ck_assert_int_eq(steps, k);
        ck_assert_int_eq(t, 3 - k + 1);
        NEAR(v[0], rd.rate[k - 1], 1e-7);
        NEAR(v[2], rd.dist[k - 1], 1e-6);
    }
    fclose(f);
    close(fd);
    remove(path);
    ck_assert_int_eq(rd_write_csv("/nonexistent/dir/rd.csv", &rd, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/dir/rd.csv"));
    rd_free(&rd);
}
END_TEST

/* ---- core: the Gaussian denoiser on the paper's schedule ------------------ */

#define GN 32   // images
#define GD 64   // 1 x 8 x 8 values each

// GN images of values drawn from N(m, s2), clipped to [-1, 1] (with m = 0.1,
// s = 0.25 one value in ~6000 is clipped: the model stays all but exact).
static void gauss_images(real *x, double m, double s2, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed, 0);
    rng_fill_normal(&r, x, GN * GD, (real)m, (real)sqrt(s2));
    for (int i = 0; i < GN * GD; i++) x[i] = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
}

typedef struct GaussRun {
    Schedule s;
    Diffusion df;
    GaussModel g;
    real x0[GN * GD];
} GaussRun;

// T = 1000, beta 1e-4 .. 0.02 (the paper), eps-prediction, the given variance.
static void gauss_setup(GaussRun *g, double m, double s2, const char *var)
{
    ck_assert_int_eq(schedule_init(&g->s, "linear", 1000, 1e-4, 0.02, NULL), 0);
    Error err;
    ck_assert_msg(diffusion_parse(&g->df, "eps", var, "simple", &err) == 0, "%s", err.msg);
    g->df.sched = &g->s;
    g->g = (GaussModel){.df = &g->df, .m = m, .s2 = s2, .channels = 1, .resolution = 8};
    gauss_images(g->x0, m, s2, 7);
}

// The curve of the model's images (batches of 16, x0_pred clipped).
static void gauss_curve(GaussRun *g, double m, double s2, const char *var, uint64_t seed,
                        RDCurve *rd)
{
    gauss_setup(g, m, s2, var);
    Model model = gauss_model(&g->g);
    Rng rng;
    rng_seed(&rng, seed, 0);
    Error err;
    ck_assert_msg(rate_distortion(&g->df, &model, g->x0, GN, 1, 8, 8, 16, &rng, 1, rd, NULL,
                                  NULL, &err) == 0, "%s", err.msg);
}

static void gauss_done(GaussRun *g, RDCurve *rd)
{
    rd_free(rd);
    schedule_free(&g->s);
}

// Rate starts at L_T (computed here by prior_bpd, independently of the
// curve) and never falls: every term is a KL, so each step adds >= 0 (up to
// rounding: in float the terms of the first steps, ~1e-8 bits/dim, are
// below the precision of the O(1) numbers the KL formula cancels).
START_TEST(rate_starts_at_prior_and_grows)
{
    static GaussRun g;
    RDCurve rd;
    gauss_curve(&g, 0.1, 0.0625, "fixedlarge", 3, &rd);
    real prior[GN];
    prior_bpd(prior, g.x0, GN, GD, &g.s);
    double want = 0;
    for (int n = 0; n < GN; n++) want += (double)prior[n] / GN;
    NEAR(rd.rate[0], want, 1e-12);
    NEAR(rd.prior, want, 1e-12);
    for (int k = 1; k < rd.T; k++)
        ck_assert_msg(rd.rate[k] >= rd.rate[k - 1] - TERM_ROUND, "rate falls at k = %d: %g < %g", k + 1,
                      rd.rate[k], rd.rate[k - 1]);
    ck_assert(rd.rate[rd.T - 1] > 100 * rd.rate[0]);   // the terms do add something
    gauss_done(&g, &rd);
}
END_TEST

// The end of the curve is the bound: rate(T) + decoder = the mean total of
// calc_bpd_loop on the same images with the same seed (the function ddpm
// bpd calls, so also what `ddpm bpd` prints as total).
START_TEST(final_rate_plus_decoder_is_bpd_total)
{
    static GaussRun g;
    RDCurve rd;
    gauss_curve(&g, 0.1, 0.0625, "fixedlarge", 11, &rd);
    Model model = gauss_model(&g.g);
    Rng rng;
    rng_seed(&rng, 11, 0);
    BpdResult r;
    ck_assert_int_eq(calc_bpd_loop(&g.df, &model, g.x0, GN, 1, 8, 8, 16, &rng, 1, &r, NULL,
                                   NULL, NULL), 0);
    double total = 0, decoder = 0;
    for (int n = 0; n < GN; n++) {
        total += r.total[n] / GN;
        decoder += r.terms[n] / GN;
    }
    NEAR(rd.total, total, 1e-12 * total);
    NEAR(rd.decoder, decoder, 1e-12 * decoder);
    NEAR(rd.rate[rd.T - 1] + rd.decoder, total, 1e-10 * total);
    bpd_result_free(&r);
    gauss_done(&g, &rd);
}
END_TEST

// k = 1: the receiver holds only x_T. The Gaussian model's prediction is
// x0_pred = m + sqrt(abar) s2 (x_T - sqrt(abar) m) / (abar s2 + 1 - abar),
// with abar_T = 4.0e-5: |x0_pred - m| <= 0.0064 s2 |x_T| < 2e-3 for s2 =
// 0.0625 and |x_T| < 5 (x_T ~ N(0, 1), so always in practice), against an
// RMS(x0 - m) of ~0.25: distortion(1) = 127.5 RMS(x0 - m) within 1%. An
// index off by the whole range would give distortion(T) here, ~1 not ~32.
START_TEST(distortion_from_pure_noise)
{
    static GaussRun g;
    RDCurve rd;
    gauss_curve(&g, 0.1, 0.0625, "fixedlarge", 5, &rd);
    double ss = 0;
    for (int i = 0; i < GN * GD; i++) ss += ((double)g.x0[i] - 0.1) * ((double)g.x0[i] - 0.1);
    double want = 127.5 * sqrt(ss / (GN * GD));
    fprintf(stderr, "Gaussian model: distortion(1) %.4f, 127.5 RMS(x0 - m) %.4f, "
            "distortion(T) %.4f\n", rd.dist[0], want, rd.dist[rd.T - 1]);
    NEAR(rd.dist[0], want, 0.01 * want);
    ck_assert_msg(rd.dist[rd.T - 1] < 0.1 * want, "distortion(T) = %g", rd.dist[rd.T - 1]);
    gauss_done(&g, &rd);
}
END_TEST

// At every k the expected squared error of the best prediction is the
// posterior variance v_t = s2 (1 - abar_t) / (abar_t s2 + 1 - abar_t) at
// the code t = T - k the receiver holds. The measured MSE averages GN * GD
// = 2048 values of v_t chi^2_1, relative sd sqrt(2 / 2048) = 3.1%; so the
// RMSE (half that, 1.6%) must be within 4 sd = 6.3%. Near t = 0, v_t more
// than doubles per step (1 - abar grows from 1e-4 to 2.2e-4): one step of
// index error is a 48% error in the RMSE.
START_TEST(distortion_is_posterior_sd)
{
    static GaussRun g;
    RDCurve rd;
    gauss_curve(&g, 0.1, 0.0625, "fixedlarge", 9, &rd);
    int ks[] = {1, 300, 500, 700, 900, 990, 998, 999, 1000};
    double rel_sd = 0.5 * sqrt(2.0 / (GN * GD));   // of the RMSE, relative
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        int k = ks[i], t = rd.T - k;
        double ab = g.s.alphas_cumprod[t], s2 = g.g.s2;
        double want = 127.5 * sqrt(s2 * (1 - ab) / (ab * s2 + 1 - ab));
        ck_assert_msg(fabs(rd.dist[k - 1] - want) < 4 * rel_sd * want,
                      "k = %d: distortion %g, want %g", k, rd.dist[k - 1], want);
        ck_assert_msg(fabs(rd.dist_se[k - 1] / want - rel_sd) < 0.4 * rel_sd,
                      "k = %d: standard error %g, want about %g", k, rd.dist_se[k - 1],
                      rel_sd * want);
    }
    gauss_done(&g, &rd);
}
END_TEST

// Data that is one point m: the model predicts x0 = m from any x_t, so the
// distortion after all T steps is rounding error. With sigma^2 = beta~
// (fixedsmall) p(x_{t-1} | x_t) *is* q(x_{t-1} | x_t, x0), every KL is 0,
// and the rate after all T steps is L_T alone; only the decoder, which
// must say which of 256 levels x0 is in, costs bits.
START_TEST(point_data_costs_only_prior_and_decoder)
{
    static GaussRun g;
    RDCurve rd;
    gauss_curve(&g, 0.2, 0, "fixedsmall", 13, &rd);
    NEAR(g.x0[0], 0.2, 1e-7);
    NEAR(rd.dist[rd.T - 1], 0, 127.5 * ROUND * 1e-2);
    NEAR(rd.rate[rd.T - 1], rd.prior, ROUND);
    ck_assert_msg(rd.decoder > 0.5, "decoder %g bits/dim", rd.decoder);
    NEAR(rd.rate[rd.T - 1] + rd.decoder, rd.total, 1e-10 * rd.total);
    gauss_done(&g, &rd);
}
END_TEST

// Input errors come back from calc_bpd_loop; the curve is left empty.
START_TEST(rate_distortion_errors)
{
    static GaussRun g;
    gauss_setup(&g, 0.1, 0.0625, "fixedlarge");
    Model model = gauss_model(&g.g);
    Rng rng;
    rng_seed(&rng, 1, 0);
    RDCurve rd;
    Error err;
    ck_assert_int_eq(rate_distortion(&g.df, &model, g.x0, GN, 1, 8, 8, 0, &rng, 1, &rd, NULL,
                                     NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "batch"));
    ck_assert_int_eq(rate_distortion(&g.df, &model, g.x0, GN, 3, 8, 8, 4, &rng, 1, &rd, NULL,
                                     NULL, &err), -1);
    ck_assert_ptr_null(rd.rate);
    gauss_done(&g, &rd);
}
END_TEST

Suite *suite_07_ratedist(void)
{
    Suite *s = suite_create("07_ratedist");
    TCase *core = tcase_create("core");
    tcase_add_test(core, rd_hand_built);
    tcase_add_test(core, csv_follows_table4_columns);
    tcase_add_test(core, rate_starts_at_prior_and_grows);
    tcase_add_test(core, final_rate_plus_decoder_is_bpd_total);
    tcase_add_test(core, distortion_from_pure_noise);
    tcase_add_test(core, distortion_is_posterior_sd);
    tcase_add_test(core, point_data_costs_only_prior_and_decoder);
    tcase_add_test(core, rate_distortion_errors);
    tcase_set_timeout(core, 30);
    suite_add_tcase(s, core);
    return s;
}
