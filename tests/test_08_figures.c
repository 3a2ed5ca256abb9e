/* test_08_figures.c — the grids of Figures 7 and 8 (src/08_figures.c).
 *
 * The model is tests/gauss_model.c (a denoiser known in closed form) on a
 * short schedule. Each grid must hold, cell by cell, what the sampler's own
 * functions return for that row, in the documented order; the rows must be
 * at the paper's timesteps; an out-of-range timestep is an error.
 */
#include <check.h>
#include <string.h>

#include "08_figures.h"
#include "gauss_model.h"

enum { T = 20, R4 = 4, HW = 4, D = HW * HW };

typedef GaussFixture Fixture;   // tests/gauss_model.h

// Data N(0.1, 0.5) on a T-step schedule, images 1 x HW x HW.
static void setup(Fixture *f)
{
    gauss_fixture(f, T, 1e-3, 0.2, "eps", "fixedlarge", 0.1, 0.5, HW);
}

static int same(const real *a, const real *b, size_t n)
{
    return memcmp(a, b, n * sizeof(real)) == 0;
}

START_TEST(rows_at_the_papers_timesteps)
{
    int r[4];
    ck_assert_int_eq(figure_shared_rows(1000, r), 4);
    ck_assert(r[0] == 999 && r[1] == 749 && r[2] == 499 && r[3] == 249);
    ck_assert_int_eq(figure_interp_rows(1000, r), 4);
    ck_assert(r[0] == 99 && r[1] == 249 && r[2] == 499 && r[3] == 749);
    figure_interp_rows(5, r);   // T/10 = 0: the first step, never code t = -1
    ck_assert(r[0] == 0 && r[1] == 0 && r[2] == 1 && r[3] == 2);
}
END_TEST

// Row r = [x0_hat, x_t, K samples] of sample_shared_latent at rows_t[r];
// the first row branches at x_T itself, which is the seed's first draw.
START_TEST(shared_grid_is_the_samplers_rows)
{
    Fixture f;
    setup(&f);
    enum { K = 3, COLS = K + 2 };
    int rows[R4];
    figure_shared_rows(T, rows);
    real grid[R4 * COLS * D], out[K * D], xt[D], x0[D], xT[D];
    Error err;
    ck_assert_msg(figure_shared_latents(&f.s, grid, rows, R4, K, 1, HW, HW, 7, &err) == 0, "%s", err.msg);
    for (int r = 0; r < R4; r++) {
        ck_assert(sample_shared_latent(&f.s, out, xt, x0, K, 1, HW, HW, rows[r], 7, &err) == 0);
        const real *row = grid + r * COLS * D;
        ck_assert_msg(same(row, x0, D), "row %d: x0_hat", r);
        ck_assert_msg(same(row + D, xt, D), "row %d: x_t", r);
        ck_assert_msg(same(row + 2 * D, out, K * D), "row %d: samples", r);
    }
    Rng rng;
    rng_seed(&rng, 7, 0);
    rng_fill_normal(&rng, xT, D, 0, 1);
    ck_assert_msg(same(grid + D, xT, D), "row 0 does not branch at x_T");
    ck_assert(!same(grid + 2 * D, grid + 3 * D, D));   // own noise per branch
    rows[2] = T;
    ck_assert_int_eq(figure_shared_latents(&f.s, grid, rows, R4, K, 1, HW, HW, 7, &err), -1);
    schedule_free(&f.sched);
}
END_TEST

// Row r = [a, L mixes at lambda = 1/(L+1) .. L/(L+1), b].
START_TEST(interp_grid_is_the_samplers_rows)
{
    Fixture f;
    setup(&f);
    enum { L = 3, COLS = L + 2 };
    int rows[R4];
    figure_interp_rows(T, rows);
    real a[D], b[D], grid[R4 * COLS * D], out[L * D];
    for (int i = 0; i < D; i++) a[i] = (real)(i / 8.0 - 1), b[i] = (real)(1 - i / 8.0);
    double lambda[L] = {0.25, 0.5, 0.75};
    Error err;
    ck_assert_msg(figure_interpolation(&f.s, grid, a, b, rows, R4, L, 1, HW, HW, 5, &err) == 0,
                  "%s", err.msg);
    for (int r = 0; r < R4; r++) {
        const real *row = grid + r * COLS * D;
        ck_assert(sample_interpolate(&f.s, out, a, b, 1, HW, HW, rows[r], lambda, L, 5, &err) == 0);
        ck_assert_msg(same(row, a, D), "row %d: first image", r);
        ck_assert_msg(same(row + D, out, L * D), "row %d: the mixes", r);
        ck_assert_msg(same(row + (L + 1) * D, b, D), "row %d: last image", r);
    }
    rows[1] = -1;
    ck_assert_int_eq(figure_interpolation(&f.s, grid, a, b, rows, R4, L, 1, HW, HW, 5, &err), -1);
    schedule_free(&f.sched);
}
END_TEST

Suite *suite_08_figures(void)
{
    Suite *s = suite_create("08_figures");
    TCase *tc = tcase_create("figures");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rows_at_the_papers_timesteps);
    tcase_add_test(tc, shared_grid_is_the_samplers_rows);
    tcase_add_test(tc, interp_grid_is_the_samplers_rows);
    suite_add_tcase(s, tc);
    return s;
}
