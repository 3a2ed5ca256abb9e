/* 08_figures.c — Figures 7 and 8 of the paper as image grids.
 *
 * Figure 7 asks what is already decided at step t: keep one chain from x_T
 * down to x_t, then let K chains continue from it, each with its own noise.
 * Branching at t = T gives K unrelated samples; branching at t = T/4 gives
 * K variations of one image that differ only in detail. Figure 8 encodes two
 * images to x_t with q (Eq. 4), mixes the two latents and decodes each mix
 * with the reverse process: small t mixes pixels, large t mixes content.
 *
 * The sampling itself is chapter 08's (sample_shared_latent,
 * sample_interpolate); this file only lays the results out in rows.
 */
#include "08_figures.h"

#include <stdlib.h>

int figure_shared_rows(int T, int *rows_t)
{
    int paper[4] = {T, 3 * T / 4, T / 2, T / 4};
    for (int r = 0; r < 4; r++) rows_t[r] = paper[r] > 0 ? paper[r] - 1 : 0;
    return 4;
}

int figure_interp_rows(int T, int *rows_t)
{
    int paper[4] = {T / 10, T / 4, T / 2, 3 * T / 4};
    for (int r = 0; r < 4; r++) rows_t[r] = paper[r] > 0 ? paper[r] - 1 : 0;
    return 4;
}

int figure_shared_latents(const Sampler *s, real *grid, const int *rows_t, int R, int K,
                          int C, int H, int W, uint64_t seed, Error *err)
{
    size_t D = (size_t)C * H * W;
    for (int r = 0; r < R; r++) {
        real *row = grid + (size_t)r * (K + 2) * D;    // x0_hat, x_t, K samples
        if (sample_shared_latent(s, row + 2 * D, row + D, row, K, C, H, W, rows_t[r], seed,
                                 err) < 0)
            return -1;
    }
    return 0;
}

int figure_interpolation(const Sampler *s, real *grid, const real *a, const real *b,
                         const int *rows_t, int R, int L, int C, int H, int W, uint64_t seed,
                         Error *err)
{
    size_t D = (size_t)C * H * W;
    double *lambda = malloc(sizeof(double) * (size_t)(L > 0 ? L : 1));
    if (!lambda) return error_set(err, "interpolation: out of memory for %d values", L);
    for (int l = 0; l < L; l++) lambda[l] = (l + 1) / (double)(L + 1);
    int rc = 0;
    for (int r = 0; r < R && rc == 0; r++) {
        real *row = grid + (size_t)r * (L + 2) * D;    // a, L mixes, b
        vec_copy(row, a, D);
        vec_copy(row + (size_t)(L + 1) * D, b, D);
        rc = sample_interpolate(s, row + D, a, b, C, H, W, rows_t[r], lambda, L, seed, err);
    }
    free(lambda);
    return rc;
}
