/* ch06_elbo.c — the experiment of chapter 06 (make chapter6).
 *
 * The paper's Table 1 and 2 in miniature: two tiny models trained for the
 * same wall-clock budget on the same data, one on L_simple (Eq. 14), one on
 * the true variational bound with fixed isotropic variance (sigma^2 = beta),
 * then both evaluated with the full bound in bits/dim (EMA weights, x0_pred
 * clipped, the official evaluation).
 *   figures/ch06_curves.{png,svg}   the two training losses against time
 *   figures/ch06_terms.{png,svg}    the per-t bound terms of both models
 *   figures/data/ch06_table.txt     total / prior / terms / decoder, both
 *
 * MINUTES (default 6) is the training time of each model, as everywhere in the
 * Makefile; each bits/dim evaluation on 32 test images adds a few minutes.
 * Arguments run only the named cheap sections, which need no training:
 *   build/nb/ch06_elbo weights   the weights of Eq. (12), summed by range of t
 *   build/nb/ch06_elbo zero      the bound of a network with eps_theta = 0
 * DDPM_DATA picks the data set (make chapter6 DATA=...), default as ddpm train;
 * EVAL_N the number of test images the bound is measured on (32).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "05_schedule.h"
#include "06_elbo.h"     // approx_std_normal_cdf
#include "train.h"

static int EVAL_IMAGES = 32;   // EVAL_N in the environment changes it (e.g. for a quick try)

typedef struct Run {
    const char *name, *loss;
    char dir[128];
    double total, total_se, prior, terms, decoder;
} Run;

static int train_one(Run *run, const Dataset *train, double minutes)
{
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    Error err;
    unet_config(&c, "tiny", NULL);
    c.in_ch = train->c;
    diffusion_parse(&df, "eps", "fixedlarge", run->loss, NULL);
    train_config_default(&tc);
    tc.batch = 32;
    tc.minutes = minutes;
    tc.warmup = 200;
    tc.ema_decay = 0.995;
    tc.seed = 2020;
    snprintf(run->dir, sizeof run->dir, "build/ch06/%s", run->name);
    tc.out_dir = run->dir;
    tc.loss = df.loss;
    Trainer tr;
    fprintf(stderr, "== training tiny on %s with loss '%s' for %.1f minutes\n", train->name,
            run->loss, minutes);
    if (trainer_init(&tr, &c, &tc, NULL, &err) < 0 || train_run(&tr, train, &err) < 0) {
        fprintf(stderr, "ch06: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "   %ld steps, last loss %.4f\n", tr.step, tr.last_loss);
    trainer_free(&tr);
    return 0;
}

// Bits/dim of the run's EMA weights on the first EVAL_IMAGES test images;
// per-t terms into figures/data/ch06_terms_NAME.dat.
static int evaluate(Run *run, const Dataset *test)
{
    char ckpt[160], path[160];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", run->dir);
    Error err;
    Trainer tr;
    TrainConfig tc;
    train_config_default(&tc);
    if (trainer_init(&tr, NULL, &tc, ckpt, &err) < 0) {
        fprintf(stderr, "ch06: %s\n", err.msg);
        return -1;
    }
    vec_copy(tr.net.params.data, tr.ema, tr.net.params.total);   // evaluate the EMA weights
    int n = EVAL_IMAGES < test->n ? EVAL_IMAGES : test->n, D = test->c * test->h * test->w;
    real *x0 = malloc(sizeof(real) * (size_t)n * D);
    int *idx = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) idx[i] = i;
    data_batch(test, x0, idx, n, NULL);
    Rng rng;
    rng_seed(&rng, 1, 0);
    BpdResult r;
    Model model = unet_model(&tr.net);
    fprintf(stderr, "== bits/dim of '%s' on %d test images (T = 1000 forward passes)\n", run->name, n);
    if (calc_bpd_loop(&tr.df, &model, x0, n, test->c, test->h, test->w, n, &rng, 1, &r, NULL,
                      NULL, &err) < 0) {
        fprintf(stderr, "ch06: %s\n", err.msg);
        return -1;
    }
    double *col = malloc(sizeof(double) * n), se;
    bpd_mean_se(r.total, n, &run->total, &run->total_se);
    bpd_mean_se(r.prior, n, &run->prior, &se);
    for (int i = 0; i < n; i++) col[i] = r.terms[i];
    bpd_mean_se(col, n, &run->decoder, &se);
    run->terms = run->total - run->prior - run->decoder;
    snprintf(path, sizeof path, "figures/data/ch06_terms_%s.dat", run->name);
    FILE *f = fopen(path, "w");
    fprintf(f, "# paper_t  term_bpd (mean over %d images)\n", n);
    for (int t = 0; t < r.T; t++) {
        for (int i = 0; i < n; i++) col[i] = r.terms[(size_t)t * n + i];
        double m;
        bpd_mean_se(col, n, &m, &se);
        fprintf(f, "%d %.8g\n", t + 1, m);
    }
    fclose(f);
    free(col);
    free(x0);
    free(idx);
    bpd_result_free(&r);
    trainer_free(&tr);
    return 0;
}

/* ---- Section "weights": the weights of Eq. (12) ------------------------------
 * The true bound's term for eps-prediction is w_t E||eps - eps_theta||^2 with
 * w_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)); L_simple sets w_t = 1.
 * With sigma_t^2 = beta_t this is beta_t / (2 alpha_t (1 - abar_t)). Prints a
 * few w_t and the share of sum_t w_t that falls on small, middle and large t. */
static void section_weights(void)
{
    Schedule s;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, NULL) < 0) return;
    double w[1000], total = 0, part[3] = {0, 0, 0};
    int lo = 0;
    for (int t = 0; t < s.T; t++) {   // code t; paper t = code t + 1
        double beta = s.betas[t], abar = s.alphas_cumprod[t];
        w[t] = beta / (2 * (1 - beta) * (1 - abar));
        total += w[t];
        if (w[t] < w[lo]) lo = t;
        part[t < 10 ? 0 : t < 100 ? 1 : 2] += w[t];
    }
    printf("Eq. (12) weights, sigma_t^2 = beta_t, linear schedule 1e-4 -> 0.02, T = 1000\n");
    const int show[] = {1, 2, 3, 5, 10, 20, 50, 100, 300, 500, 1000};
    for (size_t i = 0; i < sizeof show / sizeof *show; i++)
        printf("  w_%-4d = %.4f\n", show[i], w[show[i] - 1]);
    printf("  smallest: w_%d = %.4f\n", lo + 1, w[lo]);
    printf("  sum over t <= 10        %.3f  (%4.1f%%)\n", part[0], 100 * part[0] / total);
    printf("  sum over 10 < t <= 100  %.3f  (%4.1f%%)\n", part[1], 100 * part[1] / total);
    printf("  sum over t > 100        %.3f  (%4.1f%%)\n", part[2], 100 * part[2] / total);
    printf("  sum over all t          %.3f  (L_simple: 1000)\n", total);
    schedule_free(&s);
}

/* ---- Section "zero": the bound of a network that outputs eps_theta = 0 -------
 * A freshly initialised U-Net outputs ~0 (its last conv starts at zero). Then
 * mu_theta(x_t) = x_t / sqrt(alpha_t), and every term has a closed form on the
 * paper's schedule with fixed-large variance (the closed form that
 * tests/test_06_elbo.c's zero_net_bound_closed_form checks calc_bpd_loop against
 * on a small schedule). Per dimension, in bits:
 *   KL term t >= 2: (-1 + lv2 - lv1 + e^(lv1 - lv2) + c e^-lv2) / 2 / ln 2,
 *     lv1 = log beta~_t, lv2 = log beta_t, c = beta_t^2 / ((1 - abar_t) alpha_t)
 *   decoder t = 1: E over z of -log2 P(bin of x0 | mean x0 + s z, beta~_2),
 *     s = sqrt(beta_1 / alpha_1), one value inside (-1, 1), one at an edge
 *   prior: KL(q(x_T|x0) || N(0, I)), ~0.                                      */
static double zero_decoder_bits(int edge, double s, double lv)
{
    double m = 0, h = 1e-3, b = 1 / 255.0, sd = exp(0.5 * lv);
    for (int k = -10000; k <= 10000; k++) {   // trapezoid rule over z in [-10, 10]
        double z = k * h, c = -s * z;
        double p = edge ? approx_std_normal_cdf((real)((c + b) / sd))
                        : approx_std_normal_cdf((real)((c + b) / sd)) -
                          approx_std_normal_cdf((real)((c - b) / sd));
        double wz = h * exp(-0.5 * z * z) / sqrt(2 * M_PI) * (abs(k) == 10000 ? 0.5 : 1);
        m += wz * -log(fmax(p, 1e-12));
    }
    return m / log(2.0);
}

static void section_zero(void)
{
    Schedule s;
    if (schedule_init(&s, "linear", 1000, 1e-4, 0.02, NULL) < 0) return;
    double kl = 0;
    for (int t = 1; t < s.T; t++) {   // code t >= 1: the KL terms L_1 .. L_{T-1}
        double beta = s.betas[t], abar = s.alphas_cumprod[t], abar_prev = s.alphas_cumprod[t - 1];
        double lv1 = log(beta * (1 - abar_prev) / (1 - abar)), lv2 = log(beta);
        double c = beta * beta / ((1 - abar) * (1 - beta));
        kl += 0.5 * (-1 + lv2 - lv1 + exp(lv1 - lv2) + c * exp(-lv2)) / log(2.0);
    }
    double b0 = s.betas[0], b1 = s.betas[1];
    double lv0 = log(b1 * b0 / (1 - (1 - b0) * (1 - b1)));   // beta~ of code t = 1
    double sz = sqrt(b0 / (1 - b0));
    double inside = zero_decoder_bits(0, sz, lv0), edge = zero_decoder_bits(1, sz, lv0);
    printf("A network with eps_theta = 0, paper schedule, fixed-large variance, bits/dim\n");
    printf("  KL terms L_1 .. L_{T-1}, summed     %.3f  (whatever x0 is)\n", kl);
    printf("  decoder L_0, a pixel inside (-1,1)  %.3f\n", inside);
    printf("  decoder L_0, a pixel at -1 or +1    %.3f\n", edge);
    printf("  bound, no pixel at 0 or 255         %.3f  (raw bytes: 8)\n", kl + inside);
    schedule_free(&s);
}

static void write_plots(const Run *runs, const char *data_name)
{
    FILE *f = fopen("figures/data/ch06_curves.gpi", "w");
    fprintf(f,
        "set datafile separator ','\nset grid\nset key top right\nset xlabel 'minutes of training'\n"
        "set multiplot layout 1,2 title 'Two tiny models, same budget, %s'\n"
        "set title 'L_{simple} (mean squared error of {/Symbol e})'\nset logscale y\n"
        "plot '%s/log.csv' skip 1 u ($5/60):2 w l lc rgb '#b8cce4' t 'trained on L_{simple}', "
        "'' skip 1 u ($5/60):2 smooth bezier w l lw 2 lc rgb '#1f4e79' t 'smoothed'\n"
        "set title 'L_{vlb} (bits/dim, one random t per image)'\n"
        "plot '%s/log.csv' skip 1 u ($5/60):2 w l lc rgb '#e6b9b8' t 'trained on the bound', "
        "'' skip 1 u ($5/60):2 smooth bezier w l lw 2 lc rgb '#943634' t 'smoothed'\n"
        "unset multiplot\n", data_name, runs[0].dir, runs[1].dir);
    fclose(f);
    // loaded twice (png, then svg) by the script below; .gpi so make does not run it alone
    f = fopen("figures/data/ch06_curves_out.gp", "w");
    fprintf(f, "set terminal pngcairo size 1000,480 font 'Sans,11'\nset output 'figures/ch06_curves.png'\n"
               "load 'figures/data/ch06_curves.gpi'\n"
               "set terminal svg size 1000,480 font 'Sans,11'\nset output 'figures/ch06_curves.svg'\n"
               "load 'figures/data/ch06_curves.gpi'\n");
    fclose(f);
    f = fopen("figures/data/ch06_terms_out.gp", "w");
    fprintf(f,
        "set logscale xy\nset grid\nset format y '10^{%%L}'\nset xlabel 'timestep t (paper numbering)'\n"
        "set ylabel 'bound term L_{t-1} (bits/dim)'\nset key top right\n"
        "set title 'Where the bits are: per-step terms of the bound (%s)'\n"
        "p = \"plot 'figures/data/ch06_terms_simple.dat' u 1:2 w l lw 2 lc rgb '#4a7ab5' t 'trained on L_{simple}', "
        "'figures/data/ch06_terms_vlb.dat' u 1:2 w l lw 2 lc rgb '#c0504d' t 'trained on the bound'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch06_terms.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch06_terms.svg'\n@p\n", data_name);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc > 1) {   // just the named cheap sections: "weights", "zero"
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "weights") == 0) section_weights();
            else if (strcmp(argv[i], "zero") == 0) section_zero();
            else {
                fprintf(stderr, "ch06: unknown section '%s' (weights, zero)\n", argv[i]);
                return 2;
            }
        }
        return 0;
    }
    section_weights();
    section_zero();
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const char *m = getenv("MINUTES"), *en = getenv("EVAL_N");
    if (en && atoi(en) > 0) EVAL_IMAGES = atoi(en);
    double minutes = m && atof(m) > 0 ? atof(m) : 6;   // per model
    Dataset train, test;
    Error err;
    const char *path = data_default_path();
    if (data_load(&train, path, 1, &err) < 0 || data_load(&test, path, 0, &err) < 0) {
        fprintf(stderr, "ch06: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "data: %s (%s); %.1f minutes of training per model\n", train.name, train.path,
            minutes);
    Run runs[2] = {{.name = "simple", .loss = "simple"}, {.name = "vlb", .loss = "vlb"}};
    for (int i = 0; i < 2; i++)
        if (train_one(&runs[i], &train, minutes) < 0) return 1;
    for (int i = 0; i < 2; i++)
        if (evaluate(&runs[i], &test) < 0) return 1;
    write_plots(runs, train.name);
    FILE *f = fopen("figures/data/ch06_table.txt", "w");
    FILE *outs[2] = {stdout, f};
    for (int k = 0; k < 2; k++) {
        fprintf(outs[k], "%s, tiny config, %.1f minutes of training each, %d test images, "
                         "EMA weights, bits/dim\n", train.name, minutes, EVAL_IMAGES);
        fprintf(outs[k], "%-22s %16s %9s %9s %9s\n", "trained on", "total", "prior", "terms",
                "decoder");
        for (int i = 0; i < 2; i++)
            fprintf(outs[k], "%-22s %8.3f ± %5.3f %9.4f %9.3f %9.3f\n",
                    i == 0 ? "L_simple" : "L (true bound, beta)", runs[i].total, runs[i].total_se,
                    runs[i].prior, runs[i].terms, runs[i].decoder);
    }
    fclose(f);
    data_free(&train);
    data_free(&test);
    return 0;
}
