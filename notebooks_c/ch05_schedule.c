/* ch05_schedule.c — the experiments of chapter 05 (make chapter5).
 *
 * 1. The paper's linear schedule against the cosine one: beta_t, abar_t,
 *    SNR(t) = abar / (1 - abar) and the two coefficients of q_sample,
 *    sqrt(abar) and sqrt(1 - abar) -> figures/ch05_schedule.{png,svg}
 * 2. The numbers chapter 05 quotes (abar at the ends, the SNR range, where
 *    SNR = 1, the clipped first log-variance), printed.
 * 3. Real images pushed through q(x_t | x_0) (Eq. (4)) at paper t = 0, 50,
 *    100, 250, 500, 750, 1000 -> figures/ch05_noised.png (linear) and
 *    figures/ch05_noised_cosine.png. The data set is $DDPM_DATA (make
 *    chapter5 DATA=...) or the default of data_default_path().
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "05_schedule.h"
#include "data.h"
#include "image.h"

enum { T = 1000, ROWS = 5, COLS = 7, ZOOM = 3 };

static FILE *open_or_die(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    return f;
}

// SNR(t) = abar / (1 - abar), from the two square roots, which were computed
// in double: 1 - abar taken in float at t = 0 would keep only 3 digits.
static double snr(const Schedule *s, int t)
{
    double a = s->sqrt_alphas_cumprod[t], b = s->sqrt_one_minus_alphas_cumprod[t];
    return a * a / (b * b);
}

static void write_schedule_data(const Schedule *lin, const Schedule *cos_)
{
    FILE *f = open_or_die("figures/data/ch05_schedule.dat");
    fprintf(f, "# paper_t  linear: beta abar snr sqrt(abar) sqrt(1-abar)"
               "  cosine: beta abar snr sqrt(abar) sqrt(1-abar)\n");
    for (int t = 0; t < T; t++) {
        fprintf(f, "%d", t + 1);
        const Schedule *both[2] = {lin, cos_};
        for (int k = 0; k < 2; k++) {
            const Schedule *s = both[k];
            fprintf(f, "  %.9g %.9g %.9g %.9g %.9g", (double)s->betas[t],
                    (double)s->alphas_cumprod[t], snr(s, t), (double)s->sqrt_alphas_cumprod[t],
                    (double)s->sqrt_one_minus_alphas_cumprod[t]);
        }
        fprintf(f, "\n");
    }
    fclose(f);
}

static void write_schedule_plot(void)
{
    FILE *f = open_or_die("figures/data/ch05_schedule.gp");
    fprintf(f,
        "d = 'figures/data/ch05_schedule.dat'\n"
        "set grid\nset xrange [0:1000]\nset xtics 250\nset key font ',9' spacing 1.1\n"
        "L = \"lc rgb '#1f77b4' lw 2 t 'linear (paper)'\"\n"
        "C = \"lc rgb '#ff7f0e' lw 2 t 'cosine'\"\n"
        "do for [term in 'png svg'] {\n"
        "  if (term eq 'png') { set terminal pngcairo size 900,600 font 'Sans,10' }"
        " else { set terminal svg size 900,600 font 'Sans,10' }\n"
        "  set output 'figures/ch05_schedule.'.term\n"
        "  set multiplot layout 2,2 title 'The forward process, T = 1000 (x axis: paper t)'\n"
        "  set title 'β_t (log scale)'\n  set logscale y\n  set format y '10^{%%L}'\n"
        "  set key top left\n"
        "  plot d u 1:2 w l @L, d u 1:7 w l @C\n"
        "  set title 'ᾱ_t = Π_{s ≤ t} (1 − β_s)'\n"
        "  unset logscale y\n  set format y '%%g'\n  set key top right\n"
        "  plot d u 1:3 w l @L, d u 1:8 w l @C\n"
        "  set title 'SNR(t) = ᾱ_t / (1 − ᾱ_t) (log scale)'\n"
        "  set logscale y\n  set format y '10^{%%L}'\n  set key bottom left\n"
        "  plot d u 1:4 w l @L, d u 1:9 w l @C, 1 w l lc rgb '#888888' dt 2 t 'SNR = 1'\n"
        "  set title 'x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: solid √ᾱ_t, dashed √(1 − ᾱ_t)'\n"
        "  unset logscale y\n  set format y '%%g'\n  unset key\n"
        "  plot d u 1:5 w l lc rgb '#1f77b4' lw 2 t '√ᾱ, linear',"
        " d u 1:6 w l lc rgb '#1f77b4' lw 2 dt 2 t '√(1 − ᾱ), linear',"
        " d u 1:10 w l lc rgb '#ff7f0e' lw 2 t '√ᾱ, cosine',"
        " d u 1:11 w l lc rgb '#ff7f0e' lw 2 dt 2 t '√(1 − ᾱ), cosine'\n"
        "  unset multiplot\n"
        "}\n");
    fclose(f);
}

// The first code t with SNR below 1, i.e. abar < 1/2.
static int snr_crossing(const Schedule *s)
{
    int t = 0;
    while (t < s->T - 1 && s->alphas_cumprod[t] >= 0.5) t++;
    return t;
}

static void print_numbers(const Schedule *lin, const Schedule *cos_)
{
    const Schedule *both[2] = {lin, cos_};
    for (int k = 0; k < 2; k++) {
        const Schedule *s = both[k];
        printf("%s: beta_1 = %.6g, beta_T = %.6g; abar at paper t = 1, 500, 1000:"
               " %.6g %.6g %.6g\n",
               s->kind, (double)s->betas[0], (double)s->betas[T - 1],
               (double)s->alphas_cumprod[0], (double)s->alphas_cumprod[499],
               (double)s->alphas_cumprod[T - 1]);
        printf("  SNR from %.6g (t = 1) to %.4g (t = T), %.1f decades; SNR < 1 from paper t = %d\n",
               snr(s, 0), snr(s, T - 1), log10(snr(s, 0) / snr(s, T - 1)), snr_crossing(s) + 1);
        printf("  sqrt(abar_T) = %.5g (one grey level is 1/127.5 = %.5g)\n",
               (double)s->sqrt_alphas_cumprod[T - 1], 1 / 127.5);
    }
    printf("linear: posterior_variance[0] = %g, so log is -inf; posterior_log_variance_clipped[0]"
           " = %.6f = log(posterior_variance[1] = %.6g)\n",
           (double)lin->posterior_variance[0], (double)lin->posterior_log_variance_clipped[0],
           (double)lin->posterior_variance[1]);
    printf("linear: posterior_mean_coef1[0] = %.9g, posterior_mean_coef2[0] = %g"
           " (mu~ at t = 1 is x_0)\n",
           (double)lin->posterior_mean_coef1[0], (double)lin->posterior_mean_coef2[0]);
}

// Pick ROWS images of different classes where there are labels (the first
// image of class 0, 1, ...), else the first ROWS.
static void pick_images(const Dataset *d, int *idx)
{
    int found = 0;
    for (int want = 0; d->labels && want < 10 && found < ROWS; want++)
        for (int i = 0; i < d->n; i++)
            if (d->labels[i] == (want * 3) % 10) {   // classes 0, 3, 6, 9, 2: varied
                idx[found++] = i;
                break;
            }
    for (int i = 0; found < ROWS; i++) idx[found++] = i;
}

// Nearest-neighbour zoom of n images [n, c, h, w] -> [n, c, ZOOM h, ZOOM w],
// so that 32x32 pixels stay visible on a page.
static void zoom(real *out, const real *x, int nc, int h, int w)
{
    for (int p = 0; p < nc; p++)
        for (int y = 0; y < ZOOM * h; y++)
            for (int j = 0; j < ZOOM * w; j++)
                out[((size_t)p * ZOOM * h + y) * ZOOM * w + j] =
                    x[((size_t)p * h + y / ZOOM) * w + j / ZOOM];
}

// Row r, column c of the grid: image r at paper t = paper_t[c] (code t =
// paper t - 1; paper t = 0 is the clean image). One noise draw per image,
// shared by its columns, so a row shows how the same eps takes over.
static int noised_grid(const Dataset *d, const Schedule *s, const char *path, Error *err)
{
    static const int paper_t[COLS] = {0, 50, 100, 250, 500, 750, 1000};
    size_t D = (size_t)d->c * d->h * d->w;
    int idx[ROWS];
    pick_images(d, idx);
    real *x0 = malloc(sizeof(real) * ROWS * D), *eps = malloc(sizeof(real) * ROWS * D);
    real *grid = malloc(sizeof(real) * ROWS * COLS * D);
    data_batch(d, x0, idx, ROWS, NULL);
    Rng rng;
    rng_seed(&rng, 2020, 5);
    rng_fill_normal(&rng, eps, ROWS * D, 0, 1);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            real *cell = grid + ((size_t)r * COLS + c) * D;
            int t = paper_t[c] - 1;
            if (t < 0) vec_copy(cell, x0 + r * D, D);
            else q_sample(cell, x0 + r * D, eps + r * D, &t, 1, D, s);
        }
    real *big = malloc(sizeof(real) * ROWS * COLS * D * ZOOM * ZOOM);
    zoom(big, grid, ROWS * COLS * d->c, d->h, d->w);
    int rc = image_write_grid(path, big, ROWS * COLS, d->c, ZOOM * d->h, ZOOM * d->w, COLS, err);
    free(x0), free(eps), free(grid), free(big);
    return rc;
}

// L_T = KL(q(x_T | x_0) || N(0, I)) per dimension, in bits, averaged over
// n images: 0.5 (-log(1 - abar) - abar + abar x0^2) / ln 2 (chapter 06),
// with log1p: -log(1 - abar) - abar is abar^2 / 2, lost to cancellation otherwise.
static double prior_bits(const Dataset *d, const Schedule *s, int n)
{
    size_t D = (size_t)d->c * d->h * d->w;
    real *x = malloc(sizeof(real) * D);
    double abar = s->alphas_cumprod[s->T - 1], sum = 0;
    for (int i = 0; i < n; i++) {
        data_batch(d, x, &i, 1, NULL);
        for (size_t j = 0; j < D; j++) sum += 0.5 * (-log1p(-abar) - abar + abar * x[j] * x[j]);
    }
    free(x);
    return sum / ((double)n * D) / log(2.0);
}

int main(void)
{
    Schedule lin, cosn;
    Error err;
    if (schedule_init(&lin, "linear", T, 1e-4, 0.02, &err) ||
        schedule_init(&cosn, "cosine", T, 0, 0, &err)) {
        fprintf(stderr, "ch05: %s\n", err.msg);
        return 1;
    }
    write_schedule_data(&lin, &cosn);
    write_schedule_plot();
    print_numbers(&lin, &cosn);

    Dataset d;
    if (data_load(&d, NULL, 0, &err)) {
        fprintf(stderr, "ch05: %s\n", err.msg);
        return 1;
    }
    printf("data: %s, test split, %d images of %dx%dx%d, from %s\n", d.name, d.n, d.c, d.h, d.w,
           d.path);
    int n = d.n < 1000 ? d.n : 1000;
    printf("linear: prior term L_T = KL(q(x_T|x_0) || N(0,I)) = %.3g bits/dim"
           " (mean of %d images)\n",
           prior_bits(&d, &lin, n), n);
    if (noised_grid(&d, &lin, "figures/ch05_noised.png", &err) ||
        noised_grid(&d, &cosn, "figures/ch05_noised_cosine.png", &err)) {
        fprintf(stderr, "ch05: %s\n", err.msg);
        return 1;
    }
    printf("wrote figures/ch05_noised.png and figures/ch05_noised_cosine.png "
           "(rows: images; columns: paper t = 0, 50, 100, 250, 500, 750, 1000)\n");
    data_free(&d);
    schedule_free(&lin);
    schedule_free(&cosn);
    return 0;
}
