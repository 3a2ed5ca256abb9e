/* 08_figures.h — the grids of the paper's Figures 7 and 8 from a sampler.
 *
 * Chapter 08 of the book (book/08_sampler.md, "Shared latents" and
 * "Interpolation"). Built on sample_shared_latent and sample_interpolate of
 * 08_sampler.h; `ddpm sample --shared F --interp F` writes them, and
 * `make reproduce` puts them on its results page.
 *
 * Shapes: images [C, H, W], D = C*H*W; a grid is [R, cols, C, H, W], one row
 * of cols images per entry of rows_t (code timesteps 0..T-1).
 */
#ifndef DDPM_FIGURES_H
#define DDPM_FIGURES_H

#include "08_sampler.h"

// The rows of both figures for a T-step schedule, as the paper draws them:
// Figure 7 shares x_t at paper t = T, 3T/4, T/2, T/4 (code t = paper t - 1);
// Figure 8 mixes at paper t = T/10, T/4, T/2, 3T/4. rows_t [4]. Returns 4.
int figure_shared_rows(int T, int *rows_t);
int figure_interp_rows(int T, int *rows_t);

// Figure 7: row r = [x0_hat of the shared x_t, x_t, K samples that continue
// from x_t], x_t at code t = rows_t[r]. Every row starts from the same x_T
// (seed), so the rows differ only in how late the chain branches.
// grid [R, K + 2, C, H, W].
int figure_shared_latents(const Sampler *s, real *grid, const int *rows_t, int R, int K,
                          int C, int H, int W, uint64_t seed, Error *err);

// Figure 8: row r = [a, L mixes of x_t ~ q(x_t | a) and x'_t ~ q(x_t | b)
// at code t = rows_t[r] decoded by the reverse process, b], the mixes at
// lambda = 1/(L+1), ..., L/(L+1). grid [R, L + 2, C, H, W].
int figure_interpolation(const Sampler *s, real *grid, const real *a, const real *b,
                         const int *rows_t, int R, int L, int C, int H, int W, uint64_t seed,
                         Error *err);

#endif
