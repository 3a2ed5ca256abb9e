/* test_09_metrics.c — the scores of chapter 09 against closed forms.
 *
 *   the matrix square root: S S = A on random SPD, near-singular and
 *     rank-one matrices; a negative eigenvalue is clamped and counted
 *   the Fréchet distance of Gaussians given by their moments, against
 *     closed forms that hold for non-commuting covariances
 *   KID: an unbiased statistic, so two samples of one distribution score
 *     within 3 standard errors of 0, shifted ones above and growing
 *   the IS analogue at its two extremes (1 and K)
 *   every score is deterministic for a fixed seed
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "09_metrics.h"

/* ---- helpers: random orthogonal matrices and SPD matrices with known roots -- */

// Q [d, d] orthogonal: Gram-Schmidt on the rows of a Gaussian matrix.
static void random_orthogonal(double *Q, int d, Rng *r)
{
    for (int i = 0; i < d; i++) {
        double *q = Q + (size_t)i * d;
        for (int j = 0; j < d; j++) q[j] = rng_normal(r);
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < i; k++) {
                double dot = 0;
                for (int j = 0; j < d; j++) dot += q[j] * Q[(size_t)k * d + j];
                for (int j = 0; j < d; j++) q[j] -= dot * Q[(size_t)k * d + j];
            }
        double n = 0;
        for (int j = 0; j < d; j++) n += q[j] * q[j];
        for (int j = 0; j < d; j++) q[j] /= sqrt(n);
    }
}

// A = Q^T diag(l) Q.
static void from_eigen(double *A, const double *Q, const double *l, int d)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += Q[(size_t)k * d + i] * l[k] * Q[(size_t)k * d + j];
            A[(size_t)i * d + j] = s;
        }
}

static void matmul(double *C, const double *A, const double *B, int d)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += A[(size_t)i * d + k] * B[(size_t)k * d + j];
            C[(size_t)i * d + j] = s;
        }
}

// max |S S - A| / max |A|
static double sqrtm_residual(const double *S, const double *A, int d)
{
    double *P = malloc(sizeof(double) * d * d), err = 0, big = 0;
    matmul(P, S, S, d);
    for (int i = 0; i < d * d; i++) {
        err = fmax(err, fabs(P[i] - A[i]));
        big = fmax(big, fabs(A[i]));
    }
    free(P);
    return err / big;
}

/* ---- the matrix square root ------------------------------------------------ */

START_TEST(sqrtm_random_spd)
{
    Rng r;
    rng_seed(&r, 70, 0);
    for (int t = 0; t < 4; t++) {
        int d = 5 + 15 * t;
        double *G = malloc(sizeof(double) * d * d), *A = malloc(sizeof(double) * d * d);
        double *S = malloc(sizeof(double) * d * d);
        for (int i = 0; i < d * d; i++) G[i] = rng_normal(&r);
        for (int i = 0; i < d; i++)                     // A = G G^T / d + 0.01 I
            for (int j = 0; j < d; j++) {
                double s = 0;
                for (int k = 0; k < d; k++) s += G[i * d + k] * G[j * d + k];
                A[i * d + j] = s / d + (i == j) * 0.01;
            }
        SqrtmInfo info = {0};
        ck_assert_int_eq(metrics_sqrtm(S, A, d, &info), 0);
        double res = sqrtm_residual(S, A, d);
        ck_assert_msg(res < 1e-12, "d = %d: |SS - A| / |A| = %g", d, res);
        ck_assert_int_eq(info.n_neg, 0);
        for (int i = 0; i < d; i++)                     // S is symmetric
            for (int j = 0; j < d; j++) ck_assert(fabs(S[i * d + j] - S[j * d + i]) < 1e-12);
        free(G), free(A), free(S);
    }
}
END_TEST

// Eigenvalues 1 ... 1e-14 and a rank-one matrix (d - 1 zero eigenvalues,
// which round-off scatters on both sides of zero).
START_TEST(sqrtm_near_singular)
{
    enum { d = 12 };
    Rng r;
    rng_seed(&r, 71, 0);
    double Q[d * d], l[d], A[d * d], S[d * d];
    random_orthogonal(Q, d, &r);
    for (int i = 0; i < d; i++) l[i] = pow(10.0, -14.0 * i / (d - 1));
    from_eigen(A, Q, l, d);
    SqrtmInfo info = {0};
    ck_assert_int_eq(metrics_sqrtm(S, A, d, &info), 0);
    ck_assert_msg(sqrtm_residual(S, A, d) < 1e-12, "near-singular: %g", sqrtm_residual(S, A, d));
    double v[d];
    for (int i = 0; i < d; i++) v[i] = rng_normal(&r);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) A[i * d + j] = v[i] * v[j];
    memset(&info, 0, sizeof info);
    ck_assert_int_eq(metrics_sqrtm(S, A, d, &info), 0);
    ck_assert_msg(sqrtm_residual(S, A, d) < 1e-7, "rank one: %g", sqrtm_residual(S, A, d));
    ck_assert(info.n_neg <= d - 1 && info.most_neg <= 0 && info.most_neg > -1e-12);
}
END_TEST

START_TEST(sqrtm_counts_negative_eigenvalues)
{
    double A[4] = {4, 0, 0, -1e-3}, S[4];
    SqrtmInfo info = {0};
    ck_assert_int_eq(metrics_sqrtm(S, A, 2, &info), 0);
    ck_assert_int_eq(info.n_neg, 1);
    ck_assert_double_eq_tol(info.most_neg, -1e-3, 1e-15);
    ck_assert_double_eq_tol(S[0], 2, 1e-14);
    ck_assert_double_eq_tol(S[3], 0, 1e-14);
}
END_TEST

/* ---- the Fréchet distance ---------------------------------------------------- */

static FeatStats stats_of(int d, const double *mu, const double *sigma)
{
    FeatStats s = {d, 1000, malloc(sizeof(double) * d), malloc(sizeof(double) * d * d)};
    memcpy(s.mu, mu, sizeof(double) * d);
    memcpy(s.sigma, sigma, sizeof(double) * d * d);
    return s;
}

// d = 2: a 2x2 matrix P with positive eigenvalues has
// tr P^{1/2} = sqrt(tr P + 2 sqrt(det P)), whether or not S1 and S2 commute.
START_TEST(frechet_2d_closed_form)
{
    double mu1[2] = {0.5, -1}, mu2[2] = {0, 1};
    double s1[4] = {2, 0.7, 0.7, 1}, s2[4] = {0.5, -0.3, -0.3, 3}, P[4];
    matmul(P, s1, s2, 2);
    ck_assert(fabs(P[1] - (s2[0] * s1[1] + s2[1] * s1[3])) > 0.1);   // S1 S2 != S2 S1
    double det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
    double tr_sqrt = sqrt(P[0] + P[3] + 2 * sqrt(det));
    double want = 0.25 + 4 + s1[0] + s1[3] + s2[0] + s2[3] - 2 * tr_sqrt;
    FeatStats a = stats_of(2, mu1, s1), b = stats_of(2, mu2, s2);
    FrechetResult r;
    Error err;
    ck_assert_int_eq(metrics_frechet(&r, &a, &b, &err), 0);
    ck_assert_msg(fabs(r.fd - want) < 1e-12, "FD %.15g, closed form %.15g", r.fd, want);
    ck_assert_double_eq_tol(r.mean_term, 4.25, 1e-14);
    metrics_stats_free(&a), metrics_stats_free(&b);
}
END_TEST

// d = 24: S1 = A and S2 = A^{-1/2} B^2 A^{-1/2} with A, B SPD in different
// bases. S1 S2 = A^{1/2} B^2 A^{-1/2} is similar to B^2, so
// tr (S1 S2)^{1/2} = tr B, and FD = |dmu|^2 + tr A + tr S2 - 2 tr B.
START_TEST(frechet_noncommuting_closed_form)
{
    enum { d = 24 };
    Rng r;
    rng_seed(&r, 72, 0);
    double Q[d * d], P[d * d], la[d], lb2[d], lr[d], A[d * d], B2[d * d], R[d * d], T[d * d];
    double S2[d * d], mu1[d], mu2[d], want = 0;
    random_orthogonal(Q, d, &r);
    random_orthogonal(P, d, &r);
    for (int i = 0; i < d; i++) {
        la[i] = 0.1 + 3 * rng_uniform(&r), lr[i] = 1 / sqrt(la[i]);
        double b = 0.2 + 2 * rng_uniform(&r);
        lb2[i] = b * b;
        want += la[i] - 2 * b;
        mu1[i] = rng_normal(&r), mu2[i] = rng_normal(&r);
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    from_eigen(A, Q, la, d);
    from_eigen(R, Q, lr, d);      // A^{-1/2}
    from_eigen(B2, P, lb2, d);
    matmul(T, R, B2, d);
    matmul(S2, T, R, d);
    for (int i = 0; i < d; i++) want += S2[i * d + i];
    FeatStats a = stats_of(d, mu1, A), b = stats_of(d, mu2, S2);
    FrechetResult res;
    Error err;
    ck_assert_int_eq(metrics_frechet(&res, &a, &b, &err), 0);
    ck_assert_msg(fabs(res.fd - want) < 1e-9 * fabs(want), "FD %.15g, closed form %.15g", res.fd, want);
    ck_assert_int_eq(res.neg.n_neg, 0);
    // The distance is symmetric, and zero from a Gaussian to itself.
    FrechetResult back, self;
    metrics_frechet(&back, &b, &a, &err);
    metrics_frechet(&self, &a, &a, &err);
    ck_assert_msg(fabs(back.fd - res.fd) < 1e-9 * fabs(want), "FD(a,b) %g, FD(b,a) %g", res.fd, back.fd);
    ck_assert_msg(fabs(self.fd) < 1e-10, "FD(a, a) = %g", self.fd);
    metrics_stats_free(&a), metrics_stats_free(&b);
}
END_TEST

// Sample statistics: the mean and the (n - 1)-normalised covariance.
START_TEST(stats_by_hand)
{
    real f[6] = {1, 2, 3, 6, 5, 4};   // 3 images, 2 features
    FeatStats s;
    Error err;
    ck_assert_int_eq(metrics_stats(&s, f, 3, 2, &err), 0);
    ck_assert_double_eq_tol(s.mu[0], 3, 1e-12);
    ck_assert_double_eq_tol(s.mu[1], 4, 1e-12);
    ck_assert_double_eq_tol(s.sigma[0], 4, 1e-12);    // (4 + 0 + 4) / 2
    ck_assert_double_eq_tol(s.sigma[1], 2, 1e-12);    // centred (-2,-2), (0,2), (2,0): (4 + 0 + 0) / 2
    ck_assert(s.sigma[2] == s.sigma[1]);
    ck_assert_double_eq_tol(s.sigma[3], 4, 1e-12);    // (4 + 4 + 0) / 2
    metrics_stats_free(&s);
    ck_assert_int_eq(metrics_stats(&s, f, 1, 2, &err), -1);
    f[3] = (real)NAN;
    ck_assert_int_eq(metrics_stats(&s, f, 3, 2, &err), -1);
    ck_assert_msg(strstr(err.msg, "image 1") != NULL, "%s", err.msg);
}
END_TEST

/* ---- KID ---------------------------------------------------------------------- */

// The U-statistic written out pair by pair.
static double mmd2_loops(const real *x, int m, const real *y, int n, int d)
{
    double sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            if (i == j) continue;
            double dot = 0;
            for (int k = 0; k < d; k++) dot += (double)x[i * d + k] * x[j * d + k];
            sxx += pow(dot / d + 1, 3);
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double dot = 0;
            for (int k = 0; k < d; k++) dot += (double)y[i * d + k] * y[j * d + k];
            syy += pow(dot / d + 1, 3);
        }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int k = 0; k < d; k++) dot += (double)x[i * d + k] * y[j * d + k];
            sxy += pow(dot / d + 1, 3);
        }
    return sxx / (m * (m - 1.0)) + syy / (n * (n - 1.0)) - 2 * sxy / ((double)m * n);
}

START_TEST(mmd2_matches_loops)
{
    enum { m = 7, n = 5, d = 3 };
    Rng r;
    rng_seed(&r, 73, 0);
    real x[m * d], y[n * d];
    rng_fill_normal(&r, x, m * d, 0, 1);
    rng_fill_normal(&r, y, n * d, (real)0.3, 1);
    double got = metrics_mmd2(x, m, y, n, d), want = mmd2_loops(x, m, y, n, d);
    ck_assert_msg(fabs(got - want) < 1e-10 * (1 + fabs(want)), "MMD^2 %.12g, loops %.12g", got, want);
}
END_TEST

static real *gaussian_set(long n, int d, double shift, Rng *r)
{
    real *x = malloc(sizeof(real) * n * d);
    rng_fill_normal(r, x, (size_t)n * d, 0, 1);
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] += (real)shift;   // the mean moves along (1, ..., 1)
    return x;
}

START_TEST(kid_same_distribution_is_zero)
{
    enum { n = 2000, d = 16 };
    Rng r;
    rng_seed(&r, 74, 0);
    for (int t = 0; t < 3; t++) {
        real *x = gaussian_set(n, d, 0, &r), *y = gaussian_set(n, d, 0, &r);
        KidResult k;
        Error err;
        ck_assert_int_eq(metrics_kid(&k, x, n, y, n, d, 10, 200, 1 + t, &err), 0);
        printf("KID same distribution: %.6f +- %.6f\n", k.kid, k.se);
        ck_assert_msg(fabs(k.kid) < 3 * k.se, "KID %g with SE %g", k.kid, k.se);
        ck_assert(k.se > 0 && k.n_subsets == 10 && k.subset_size == 200);
        free(x), free(y);
    }
}
END_TEST

START_TEST(kid_grows_with_shift)
{
    enum { n = 2000, d = 16 };
    Rng r;
    rng_seed(&r, 75, 0);
    real *x = gaussian_set(n, d, 0, &r);
    double last = 0;
    for (int t = 1; t <= 4; t++) {
        real *y = gaussian_set(n, d, 0.25 * t, &r);
        KidResult k;
        Error err;
        ck_assert_int_eq(metrics_kid(&k, x, n, y, n, d, 10, 200, 1, &err), 0);
        printf("KID shift %.2f: %.6f +- %.6f\n", 0.25 * t, k.kid, k.se);
        ck_assert_msg(k.kid > 3 * k.se && k.kid > last, "shift %g: KID %g (SE %g), previous %g",
                      0.25 * t, k.kid, k.se, last);
        last = k.kid;
        free(y);
    }
    free(x);
}
END_TEST

// The reported standard error against the spread of KID itself over 40
// independent pairs of samples: the two agree to within sampling noise.
START_TEST(kid_se_matches_spread)
{
    enum { n = 600, d = 8, T = 40 };
    Rng r;
    rng_seed(&r, 77, 0);
    double s = 0, s2 = 0, se = 0;
    for (int t = 0; t < T; t++) {
        real *x = gaussian_set(n, d, 0, &r), *y = gaussian_set(n, d, 0.1, &r);
        KidResult k;
        Error err;
        metrics_kid(&k, x, n, y, n, d, 10, 60, t, &err);
        s += k.kid, s2 += k.kid * k.kid, se += k.se / T;
        free(x), free(y);
    }
    double sd = sqrt((s2 - s * s / T) / (T - 1));
    printf("KID over %d repeats: spread %.5f, mean reported SE %.5f\n", T, sd, se);
    ck_assert_msg(se > 0.6 * sd && se < 1.6 * sd, "reported SE %g, actual spread %g", se, sd);
}
END_TEST

START_TEST(kid_is_deterministic)
{
    enum { n = 300, d = 8 };
    Rng r;
    rng_seed(&r, 76, 0);
    real *x = gaussian_set(n, d, 0, &r), *y = gaussian_set(n, d, 0.5, &r);
    KidResult a, b, c;
    Error err;
    metrics_kid(&a, x, n, y, n, d, 5, 1000, 7, &err);
    metrics_kid(&b, x, n, y, n, d, 5, 1000, 7, &err);
    metrics_kid(&c, x, n, y, n, d, 5, 1000, 8, &err);
    ck_assert(a.kid == b.kid && a.se == b.se);
    ck_assert(a.kid != c.kid);
    ck_assert_int_eq(a.subset_size, 60);                 // 300 / 5: shrunk to fit
    ck_assert_int_eq(metrics_kid(&a, x, 3, y, 3, d, 5, 100, 1, &err), -1);   // too few
    free(x), free(y);
}
END_TEST

/* ---- the IS analogue -------------------------------------------------------------- */

// Confident and balanced over K classes: KL = log K, IS = K. All alike: IS = 1.
START_TEST(inception_score_extremes)
{
    enum { n = 40, K = 4 };
    real p[n * K];
    for (int i = 0; i < n * K; i++) p[i] = (i % K) == (i / K) % K;
    IsResult r;
    Error err;
    ck_assert_int_eq(metrics_inception_score(&r, p, n, K, 5, &err), 0);
    ck_assert_double_eq_tol(r.is, K, 1e-6);
    ck_assert_double_eq_tol(r.se, 0, 1e-6);
    for (int i = 0; i < n * K; i++) p[i] = (real)0.25;
    metrics_inception_score(&r, p, n, K, 5, &err);
    ck_assert_double_eq_tol(r.is, 1, 1e-6);
    // Half confident, half uniform: KL = log 4 on half, 0 on the rest -> exp(log(4)/2) = 2.
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) p[i * K + k] = i % 2 ? (real)0.25 : (real)(k == (i / 2) % K);
    metrics_inception_score(&r, p, n, K, 5, &err);    // each split: labels 0..3 once
    ck_assert_double_eq_tol(r.is, 2, 1e-6);
    p[5] = (real)NAN;
    ck_assert_int_eq(metrics_inception_score(&r, p, n, K, 2, &err), -1);
}
END_TEST

Suite *suite_09_metrics(void)
{
    Suite *s = suite_create("09_metrics");
    TCase *core = tcase_create("core");
    tcase_add_test(core, sqrtm_random_spd);
    tcase_add_test(core, sqrtm_near_singular);
    tcase_add_test(core, sqrtm_counts_negative_eigenvalues);
    tcase_add_test(core, frechet_2d_closed_form);
    tcase_add_test(core, frechet_noncommuting_closed_form);
    tcase_add_test(core, stats_by_hand);
    tcase_add_test(core, mmd2_matches_loops);
    tcase_add_test(core, kid_same_distribution_is_zero);
    tcase_add_test(core, kid_grows_with_shift);
    tcase_add_test(core, kid_se_matches_spread);
    tcase_add_test(core, kid_is_deterministic);
    tcase_add_test(core, inception_score_extremes);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    return s;
}
