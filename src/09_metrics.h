/* 09_metrics.h — judging samples: Fréchet distance, KID, an Inception-Score
 * analogue, all in the features of a fixed classifier (classifier.h).
 *
 * Chapter 09 of the book (book/09_metrics.md). The paper's Table 1 ranks its
 * models by FID (3.17) and IS (9.46), computed with Inception-v3. These are
 * the same three statistics, computed in double precision, on features of
 * the book's own classifier — so their values are comparable with each
 * other, never with the paper's.
 *
 *   Fréchet distance  ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}), the
 *                     2-Wasserstein distance between the two Gaussians with
 *                     the features' means and covariances
 *   KID               unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged
 *                     over disjoint subsets, with its standard error
 *   IS analogue       exp(E_x KL(p(y|x) || p(y))), averaged over splits
 *
 * Shapes: features [n, d] row-major (n images, d features); probabilities
 * [n, K]; covariances [d, d]. All statistics are computed in double.
 */
#ifndef DDPM_METRICS_H
#define DDPM_METRICS_H

#include <stdint.h>

#include "00_tensor.h"

// Mean [d] and unbiased covariance [d, d] (divided by n - 1) of features.
typedef struct FeatStats {
    int d;
    long n;
    double *mu;      // [d]
    double *sigma;   // [d, d]
} FeatStats;

// Fails (err set) if n < 2 or a feature is NaN or infinite.
int  metrics_stats(FeatStats *s, const real *feat, long n, int d, Error *err);
void metrics_stats_free(FeatStats *s);

// Round-off makes a covariance's smallest eigenvalues slightly negative (and
// exactly zero ones when n <= d): they are clamped to 0, counted and reported.
typedef struct SqrtmInfo {
    int n_neg;         // eigenvalues below zero, set to zero
    double most_neg;   // the most negative one (0 if none)
} SqrtmInfo;

// S [d, d] = A^{1/2} for a symmetric positive semi-definite A [d, d], from
// its eigen-decomposition A = V diag(l) V^T (LAPACK dsyevd): S = V diag(sqrt l) V^T.
int metrics_sqrtm(double *S, const double *A, int d, SqrtmInfo *info);

typedef struct FrechetResult {
    double fd;          // the distance
    double mean_term;   // ||mu1 - mu2||^2
    double trace_term;  // tr(S1 + S2 - 2 (S1 S2)^{1/2})
    SqrtmInfo neg;      // negative eigenvalues met (both square roots together)
} FrechetResult;

int metrics_frechet(FrechetResult *r, const FeatStats *a, const FeatStats *b, Error *err);

// Unbiased MMD^2 between x [m, d] and y [n, d] with the cubic kernel.
double metrics_mmd2(const real *x, long m, const real *y, long n, int d);

typedef struct KidResult {
    double kid, se;     // mean over subsets, standard error of that mean
    int n_subsets;      // disjoint subsets of each set, drawn at random
    long subset_size;
} KidResult;

// n_subsets disjoint subsets of subset_size images from each set (smaller if
// the sets are too small: at least 2 per subset). Seeded: deterministic.
int metrics_kid(KidResult *r, const real *x, long m, const real *y, long n, int d,
                int n_subsets, long subset_size, uint64_t seed, Error *err);

typedef struct IsResult {
    double is, se;      // mean over splits, standard error of that mean
    int splits;
} IsResult;

// prob [n, K]: each row a distribution p(y|x). splits consecutive splits.
int metrics_inception_score(IsResult *r, const real *prob, long n, int K, int splits,
                            Error *err);

// Both distances between two feature sets: the Fréchet distance and KID
// (KID_SUBSETS disjoint subsets of at most KID_SUBSET_SIZE images).
#define KID_SUBSETS 10
#define KID_SUBSET_SIZE 1000
typedef struct Scores {
    FrechetResult fd;
    KidResult kid;
} Scores;

int metrics_compare(Scores *s, const real *fa, long na, const real *fb, long nb, int d,
                    uint64_t seed, Error *err);

#endif
