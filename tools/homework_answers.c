/* homework_answers.c — the numbers the homework's write-up questions ask for.
 *
 * Every number in book/homework/answers.md is printed here, computed by the
 * library's own functions (the reference solution), so the key cannot drift
 * from the code. `make homework-answers` builds it against the double build
 * and runs it; `homework_answers N` prints assignment N only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "00_tensor.h"
#include "01_autograd.h"
#include "02_conv.h"
#include "03_attention.h"
#include "05_schedule.h"
#include "06_elbo.h"
#include "07_ratedist.h"

static double silu_grad(double x)
{
    real xr = (real)x, d = 1, dx = 0;
    silu_backward(&dx, &d, &xr, 1);
    return dx;
}

static void hw1(void)
{
    printf("hw1 Q1: silu'(-1) = %.6f, silu'(0) = %.6f, silu'(1) = %.6f\n",
           silu_grad(-1), silu_grad(0), silu_grad(1));
    double lo = -3, hi = 0;   // silu' < 0 at -3, > 0 at 0: bisect for its zero
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2;
        if (silu_grad(mid) < 0) lo = mid; else hi = mid;
    }
    real x = (real)lo, y;
    silu_forward(&y, &x, 1);
    printf("hw1 Q2: silu has its minimum at x = %.6f, silu(x) = %.6f\n", lo, (double)y);
}

// How many times col2im adds into each input pixel when dout = 1 and w = 1
// (Cin = Cout = 1): dx[i] counts the (output, tap) pairs that see pixel i.
static void coverage(const char *what, int k, int stride, int pt, int pl, int pb, int pr)
{
    int H = 8, W = 8;
    ConvShape s = conv_shape(1, 1, H, W, 1, k, stride, pt, pl, pb, pr);
    Arena ar;
    arena_init(&ar, 1 << 20);
    real x[64] = {0}, w[9], dx[64] = {0};
    real *dout = arena_alloc(&ar, (size_t)s.Ho * s.Wo * sizeof(real));
    for (int i = 0; i < k * k; i++) w[i] = 1;
    for (int i = 0; i < s.Ho * s.Wo; i++) dout[i] = 1;
    conv2d_backward_im2col(dx, NULL, dout, x, w, &s, &ar);
    printf("hw2 Q1: %s on 8x8 (output %dx%d): dx at (0,0) %g, (1,1) %g, (2,2) %g, (7,7) %g\n",
           what, s.Ho, s.Wo, (double)dx[0], (double)dx[9], (double)dx[18], (double)dx[63]);
    arena_free(&ar);
}

static void hw2(void)
{
    coverage("3x3 stride 1 pad 1", 3, 1, 1, 1, 1, 1);
    coverage("3x3 stride 2 pad (0,1,0,1)", 3, 2, 0, 0, 1, 1);
    // Q2: GroupNorm's dx sums to zero over each group, and is orthogonal to xhat.
    enum { C = 4, HW = 6, G = 2 };
    real x[C * HW], out[C * HW], dout[C * HW], dx[C * HW] = {0}, mean[G], rstd[G];
    real gamma[C] = {1, 2, 3, 4}, beta[C] = {0};
    Rng r;
    rng_seed(&r, 1, 0);
    rng_fill_normal(&r, x, C * HW, 3, 2);
    rng_fill_normal(&r, dout, C * HW, 0, 1);
    group_norm_forward(out, mean, rstd, x, gamma, beta, 1, C, HW, G, (real)1e-6);
    group_norm_backward(dx, NULL, NULL, dout, x, mean, rstd, gamma, 1, C, HW, G);
    for (int g = 0; g < G; g++) {
        double s = 0, sx = 0;
        for (int i = g * (C / G) * HW; i < (g + 1) * (C / G) * HW; i++) {
            s += dx[i];
            sx += dx[i] * (x[i] - mean[g]) * rstd[g];
        }
        printf("hw2 Q2: group %d: sum of dx = %.3g, sum of dx * xhat = %.3g\n", g, s, sx);
    }
    // Q3: im2col of the paper's first 3x3 conv: [Cin k k, N Ho Wo] in float.
    ConvShape s = conv_shape(128, 128, 32, 32, 128, 3, 1, 1, 1, 1, 1);
    double entries = (double)s.Cin * s.k * s.k * s.N * s.Ho * s.Wo;
    printf("hw2 Q3: im2col(x) for 128 ch, 32x32, batch 128: %.0f entries, %.0f MiB in float\n",
           entries, entries * 4 / (1 << 20));
}

static void hw3(void)
{
    enum { n = 4 };
    real p[n], g[n] = {1, 0, 0, 0}, dx[n] = {0}, z[n] = {0};
    softmax_forward(p, z, 1, n);
    softmax_backward(dx, g, p, 1, n);
    printf("hw3 Q1: uniform p over %d, g = e_1: dx = %.4f %.4f %.4f %.4f\n", n,
           (double)dx[0], (double)dx[1], (double)dx[2], (double)dx[3]);
    int hw = 16 * 16;
    printf("hw3 Q2: one image's weights at 16x16: %d x %d = %d entries, %d KiB in float\n",
           hw, hw, hw * hw, hw * hw * 4 / 1024);
}

static void hw4(void)
{
    Schedule s;
    Error err;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, &err) != 0) { puts(err.msg); exit(1); }
    printf("hw4 Q1: abar at code t = 0, 499, 999: %.6g %.6g %.6g\n", (double)s.alphas_cumprod[0],
           (double)s.alphas_cumprod[499], (double)s.alphas_cumprod[999]);
    int half = 0;
    while (s.alphas_cumprod[half] > 0.5) half++;
    printf("hw4 Q2: first code t with abar_t <= 1/2: %d (paper t = %d)\n", half, half + 1);
    printf("hw4 Q3: beta~/beta at code t = 1, 10, 999: %.6f %.6f %.6f\n",
           (double)(s.posterior_variance[1] / s.betas[1]),
           (double)(s.posterior_variance[10] / s.betas[10]),
           (double)(s.posterior_variance[999] / s.betas[999]));
    printf("hw4 Q4: posterior coefs at code t = 999: coef1 (x0) %.6g, coef2 (xt) %.6g\n",
           (double)s.posterior_mean_coef1[999], (double)s.posterior_mean_coef2[999]);
    schedule_free(&s);
}

static void hw5(void)
{
    real kl, m1 = 0, lv1 = 0, m2 = 1, lv2 = (real)log(2.0);
    normal_kl_forward(&kl, &m1, &lv1, &m2, &lv2, 1);
    printf("hw5 Q1: KL(N(0,1) || N(1,2)) = %.6f nats\n", (double)kl);
    Schedule s;
    Error err;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, &err) != 0) { puts(err.msg); exit(1); }
    real x[3] = {0, 1, -1}, lt[3];
    for (int i = 0; i < 3; i++) prior_bpd(&lt[i], &x[i], 1, 1, &s);
    printf("hw5 Q2: L_T in bits/dim for x0 = 0, 1, -1: %.3g %.3g %.3g\n",
           (double)lt[0], (double)lt[1], (double)lt[2]);
    // The decoder at x = mean: sigma^2 = beta_1 (code t = 0 of fixed-large
    // borrows beta~ of code t = 1), or a wide sigma = 1.
    real xv = 0, mean = 0, ll;
    real lv = (real)log((double)s.posterior_variance[1]);
    discretized_gaussian_log_likelihood_forward(&ll, &xv, &mean, &lv, 1);
    printf("hw5 Q3: -log2 p(x0 = 0 | mean 0, var beta~ code 1 = %.3g) = %.4f bits\n",
           (double)s.posterior_variance[1], -(double)ll / log(2.0));
    lv = 0;
    discretized_gaussian_log_likelihood_forward(&ll, &xv, &mean, &lv, 1);
    printf("hw5 Q3: -log2 p(x0 = 0 | mean 0, var 1) = %.4f bits (uniform over 256 bins: 8)\n",
           -(double)ll / log(2.0));
    xv = 1; mean = 1;
    discretized_gaussian_log_likelihood_forward(&ll, &xv, &mean, &lv, 1);
    printf("hw5 Q3: -log2 p(x0 = 1 | mean 1, var 1) = %.4f bits (the open edge bin)\n",
           -(double)ll / log(2.0));
    schedule_free(&s);
}

static void hw6(void)
{
    Schedule s;
    Error err;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, &err) != 0) { puts(err.msg); exit(1); }
    printf("hw6 Q1: sigma_t at code t = 999: fixed-large sqrt(beta) %.6f, fixed-small sqrt(beta~) %.6f\n",
           sqrt((double)s.betas[999]), sqrt((double)s.posterior_variance[999]));
    printf("hw6 Q1: sigma_t at code t = 1: fixed-large %.6f, fixed-small %.6f\n",
           sqrt((double)s.betas[1]), sqrt((double)s.posterior_variance[1]));
    schedule_free(&s);
    // Q2: a hand-built bound, T = 3, N = 2 (the shape of tests/test_07's).
    double terms[6] = {0.5, 0.7, 0.1, 0.3, 0.2, 0.4}, mse[6] = {0.0001, 0.0001, 0.01, 0.03, 0.5, 0.7};
    double prior[2] = {0.001, 0.003}, total[2];
    for (int n = 0; n < 2; n++) total[n] = prior[n] + terms[n] + terms[2 + n] + terms[4 + n];
    BpdResult r = {.N = 2, .T = 3, .terms = terms, .mse = mse, .prior = prior, .total = total};
    RDCurve rd;
    rd_from_bpd(&rd, &r);
    for (int k = 1; k <= 3; k++)
        printf("hw6 Q2: k = %d steps received: rate %.4f bits/dim, distortion %.4f\n", k,
               rd.rate[k - 1], rd.dist[k - 1]);
    printf("hw6 Q2: decoder L_0 %.4f, total %.4f\n", rd.decoder, rd.total);
    rd_free(&rd);
}

int main(int argc, char **argv)
{
    void (*hw[])(void) = {hw1, hw2, hw3, hw4, hw5, hw6};
    int only = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < 6; i++)
        if (!only || only == i + 1) hw[i]();
    return 0;
}
