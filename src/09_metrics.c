/* 09_metrics.c — Fréchet distance, KID and the Inception-Score analogue.
 *
 * Chapter 09 of the book (book/09_metrics.md). Each score compares two sets
 * of images through a fixed classifier (classifier.h): its penultimate
 * features for the Fréchet distance and KID, its softmax for the IS analogue.
 * Everything here is in double: a covariance of d = 192 features from a few
 * thousand images loses digits fast in float, and the Fréchet distance is a
 * small difference of large traces.
 *
 * The matrix square root. (S1 S2)^{1/2} is the square root of a product of
 * two symmetric matrices, which is not symmetric; but with R = S1^{1/2},
 * S1 S2 = R (R S2 R) R^{-1} is similar to the symmetric M = R S2 R, so
 * tr (S1 S2)^{1/2} = sum_i sqrt(l_i(M)). Two symmetric eigen-decompositions
 * (LAPACK dsyevd) and no general eigensolver: a negative eigenvalue, which
 * can only come from round-off or from a rank-deficient covariance (n <= d),
 * is set to zero and counted, and the count is reported with the score.
 *
 * Shapes: features [n, d] row-major; probabilities [n, K]; matrices [d, d].
 */
#include "09_metrics.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- feature statistics ------------------------------------------------------ */

// mu = (1/n) sum_i f_i;  sigma = (1/(n-1)) sum_i (f_i - mu)(f_i - mu)^T.
int metrics_stats(FeatStats *s, const real *feat, long n, int d, Error *err)
{
    memset(s, 0, sizeof *s);
    if (n < 2) return error_set(err, "%ld feature vectors: a covariance needs at least 2", n);
    for (size_t i = 0; i < (size_t)n * d; i++)
        if (!isfinite((double)feat[i]))
            return error_set(err, "feature %zu of image %zu is %g", i % d, i / d, (double)feat[i]);
    s->d = d, s->n = n;
    s->mu = calloc((size_t)d, sizeof(double));
    s->sigma = calloc((size_t)d * d, sizeof(double));
    double *c = calloc((size_t)n * d, sizeof(double));   // the centred features
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) s->mu[j] += feat[(size_t)i * d + j];
    for (int j = 0; j < d; j++) s->mu[j] /= (double)n;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) c[(size_t)i * d + j] = feat[(size_t)i * d + j] - s->mu[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)n, 1.0 / (double)(n - 1), c, d,
                0.0, s->sigma, d);
    for (int i = 0; i < d; i++)                     // syrk filled the upper triangle
        for (int j = 0; j < i; j++) s->sigma[(size_t)i * d + j] = s->sigma[(size_t)j * d + i];
    free(c);
    return 0;
}

void metrics_stats_free(FeatStats *s)
{
    free(s->mu);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

/* ---- the matrix square root ---------------------------------------------------- */

// Eigenvalues l [d] (ascending) and eigenvectors, the columns of V [d, d], of
// a symmetric A. Negative eigenvalues are clamped to zero and counted.
static int eigh_clamped(double *V, double *l, const double *A, int d, SqrtmInfo *info)
{
    memcpy(V, A, sizeof(double) * (size_t)d * d);
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, V, d, l) != 0) return -1;
    for (int i = 0; i < d; i++)
        if (l[i] < 0) {
            info->n_neg++;
            info->most_neg = fmin(info->most_neg, l[i]);
            l[i] = 0;
        }
    return 0;
}

int metrics_sqrtm(double *S, const double *A, int d, SqrtmInfo *info)
{
    double *V = malloc(sizeof(double) * (size_t)d * d), *W = malloc(sizeof(double) * (size_t)d * d);
    double *l = malloc(sizeof(double) * (size_t)d);
    int rc = eigh_clamped(V, l, A, d, info);
    if (rc == 0) {
        // S = V diag(sqrt l) V^T = W W^T with W = V diag(l^{1/4})
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) W[(size_t)i * d + j] = V[(size_t)i * d + j] * sqrt(sqrt(l[j]));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, W, d, W, d, 0.0, S, d);
    }
    free(V), free(W), free(l);
    return rc;
}

/* ---- the Fréchet distance ------------------------------------------------------ */

// tr (S1 S2)^{1/2} = sum_i sqrt(l_i(R S2 R)), R = S1^{1/2}.
static int trace_sqrt_product(double *tr, const double *s1, const double *s2, int d, SqrtmInfo *info)
{
    size_t dd = (size_t)d * d;
    double *R = malloc(sizeof(double) * dd), *T = malloc(sizeof(double) * dd);
    double *M = malloc(sizeof(double) * dd), *l = malloc(sizeof(double) * d);
    int rc = metrics_sqrtm(R, s1, d, info);
    if (rc == 0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, R, d, s2, d, 0.0, T, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, T, d, R, d, 0.0, M, d);
        for (int i = 0; i < d; i++)                 // symmetrise the round-off away
            for (int j = 0; j < i; j++)
                M[(size_t)i * d + j] = M[(size_t)j * d + i] = (M[(size_t)i * d + j] + M[(size_t)j * d + i]) / 2;
        rc = eigh_clamped(T, l, M, d, info);
        *tr = 0;
        for (int i = 0; i < d; i++) *tr += sqrt(l[i]);
    }
    free(R), free(T), free(M), free(l);
    return rc;
}

// FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr (S1 S2)^{1/2}.
int metrics_frechet(FrechetResult *r, const FeatStats *a, const FeatStats *b, Error *err)
{
    memset(r, 0, sizeof *r);
    if (a->d != b->d) return error_set(err, "features of %d and %d dimensions", a->d, b->d);
    int d = a->d;
    double tr_sqrt = 0;
    if (trace_sqrt_product(&tr_sqrt, a->sigma, b->sigma, d, &r->neg) < 0)
        return error_set(err, "the eigen-decomposition (LAPACK dsyevd) did not converge");
    for (int j = 0; j < d; j++) {
        double diff = a->mu[j] - b->mu[j];
        r->mean_term += diff * diff;
        r->trace_term += a->sigma[(size_t)j * d + j] + b->sigma[(size_t)j * d + j];
    }
    r->trace_term -= 2 * tr_sqrt;
    r->fd = r->mean_term + r->trace_term;
    return 0;
}

/* ---- KID: the kernel inception distance ----------------------------------------- */

// Sum of k(x_i, y_j) = (x_i.y_j / d + 1)^3 over all pairs (without i == j
// when x and y are the same set: the U-statistic leaves those out).
static double kernel_sum(const double *x, long m, const double *y, long n, int d, int same)
{
    double *G = malloc(sizeof(double) * (size_t)m * n), s = 0;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, d, 1.0 / d, x, d, y, d,
                0.0, G, (int)n);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            if (same && i == j) continue;
            double k = G[(size_t)i * n + j] + 1;
            s += k * k * k;
        }
    free(G);
    return s;
}

static double *to_double(const real *x, size_t n)
{
    double *y = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

// MMD^2_u = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (n(n-1))
//         - 2 sum_{i,j} k(x_i,y_j) / (m n)        (Gretton et al., Lemma 6)
static double mmd2_double(const double *x, long m, const double *y, long n, int d)
{
    return kernel_sum(x, m, x, m, d, 1) / ((double)m * (m - 1)) +
           kernel_sum(y, n, y, n, d, 1) / ((double)n * (n - 1)) -
           2 * kernel_sum(x, m, y, n, d, 0) / ((double)m * n);
}

double metrics_mmd2(const real *x, long m, const real *y, long n, int d)
{
    double *xd = to_double(x, (size_t)m * d), *yd = to_double(y, (size_t)n * d);
    double v = mmd2_double(xd, m, yd, n, d);
    free(xd), free(yd);
    return v;
}

// Rows perm[0..s) of x [., d] into out [s, d].
static void gather_rows(double *out, const real *x, const int *perm, long s, int d)
{
    for (long i = 0; i < s; i++)
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = x[(size_t)perm[i] * d + j];
}

static int *random_perm(long n, Rng *r)
{
    int *p = malloc(sizeof(int) * (size_t)n);
    for (long i = 0; i < n; i++) p[i] = (int)i;
    for (long i = n - 1; i > 0; i--) {
        long k = rng_below(r, (uint32_t)i + 1);
        int t = p[i];
        p[i] = p[k], p[k] = t;
    }
    return p;
}

// Disjoint subsets make the subset estimates independent, so the spread of
// them over sqrt(n_subsets) is an honest standard error of their mean.
int metrics_kid(KidResult *r, const real *x, long m, const real *y, long n, int d,
                int n_subsets, long subset_size, uint64_t seed, Error *err)
{
    memset(r, 0, sizeof *r);
    long s = subset_size, most = (m < n ? m : n) / (n_subsets > 0 ? n_subsets : 1);
    if (s > most) s = most;
    if (n_subsets < 2 || s < 2)
        return error_set(err, "KID needs at least 2 subsets of 2 images from each set "
                              "(%ld and %ld images, %d subsets)", m, n, n_subsets);
    Rng rng;
    rng_seed(&rng, seed, 9);
    int *px = random_perm(m, &rng), *py = random_perm(n, &rng);
    double *xs = malloc(sizeof(double) * (size_t)s * d), *ys = malloc(sizeof(double) * (size_t)s * d);
    double sum = 0, sum2 = 0;
    for (int b = 0; b < n_subsets; b++) {
        gather_rows(xs, x, px + (size_t)b * s, s, d);
        gather_rows(ys, y, py + (size_t)b * s, s, d);
        double v = mmd2_double(xs, s, ys, s, d);
        sum += v, sum2 += v * v;
    }
    r->n_subsets = n_subsets, r->subset_size = s;
    r->kid = sum / n_subsets;
    double var = (sum2 - n_subsets * r->kid * r->kid) / (n_subsets - 1);
    r->se = sqrt(fmax(var, 0) / n_subsets);
    free(px), free(py), free(xs), free(ys);
    return 0;
}

/* ---- the Inception-Score analogue ----------------------------------------------- */

// One split: p(y) = mean_x p(y|x); exp(mean_x sum_y p(y|x) log(p(y|x) / p(y))).
static double is_split(const real *prob, long n, int K)
{
    double *py = calloc((size_t)K, sizeof(double)), kl = 0;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < K; k++) py[k] += prob[(size_t)i * K + k] / (double)n;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            double p = prob[(size_t)i * K + k];
            if (p > 0) kl += p * log(p / py[k]);      // 0 log 0 = 0
        }
    free(py);
    return exp(kl / (double)n);
}

int metrics_inception_score(IsResult *r, const real *prob, long n, int K, int splits,
                            Error *err)
{
    memset(r, 0, sizeof *r);
    if (splits < 2 || n / splits < 2)
        return error_set(err, "%ld images in %d splits: need at least 2 splits of 2", n, splits);
    for (size_t i = 0; i < (size_t)n * K; i++)
        if (!(prob[i] >= 0 && prob[i] <= 1))
            return error_set(err, "probability %zu of image %zu is %g", i % K, i / K, (double)prob[i]);
    double sum = 0, sum2 = 0;
    for (int s = 0; s < splits; s++) {
        long lo = n * s / splits, hi = n * (s + 1) / splits;
        double v = is_split(prob + (size_t)lo * K, hi - lo, K);
        sum += v, sum2 += v * v;
    }
    r->splits = splits;
    r->is = sum / splits;
    r->se = sqrt(fmax((sum2 - splits * r->is * r->is) / (splits - 1), 0) / splits);
    return 0;
}

/* ---- both distances at once --------------------------------------------------------- */

int metrics_compare(Scores *s, const real *fa, long na, const real *fb, long nb, int d,
                    uint64_t seed, Error *err)
{
    FeatStats a, b;
    memset(s, 0, sizeof *s);
    if (metrics_stats(&a, fa, na, d, err)) return -1;
    if (metrics_stats(&b, fb, nb, d, err)) {
        metrics_stats_free(&a);
        return -1;
    }
    int rc = metrics_frechet(&s->fd, &a, &b, err);
    if (rc == 0) rc = metrics_kid(&s->kid, fa, na, fb, nb, d, KID_SUBSETS, KID_SUBSET_SIZE, seed, err);
    metrics_stats_free(&a);
    metrics_stats_free(&b);
    return rc;
}
