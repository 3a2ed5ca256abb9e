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
 * MINUTES (default 20) is the whole budget: each model trains for 30% of it,
 * and each bits/dim evaluation takes roughly 10-15% on 32 test images.
 * DDPM_DATA picks the data set (make chapter6 DATA=...), default as ddpm train;
 * EVAL_N the number of test images the bound is measured on (32).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "07_ratedist.h"   // rd_mean_se
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
    Trainer tr;
    fprintf(stderr, "== training tiny on %s with loss '%s' for %.1f minutes\n", train->name,
            run->loss, minutes);
    if (trainer_init(&tr, &c, &df, 1000, &tc, NULL, &err) < 0 || train_run(&tr, train, &err) < 0) {
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
    Diffusion df;
    diffusion_parse(&df, "eps", "fixedlarge", "simple", NULL);
    if (trainer_init(&tr, NULL, &df, 1000, &tc, ckpt, &err) < 0) {
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
    rd_mean_se(r.total, n, &run->total, &run->total_se);
    rd_mean_se(r.prior, n, &run->prior, &se);
    for (int i = 0; i < n; i++) col[i] = r.terms[i];
    rd_mean_se(col, n, &run->decoder, &se);
    run->terms = run->total - run->prior - run->decoder;
    snprintf(path, sizeof path, "figures/data/ch06_terms_%s.dat", run->name);
    FILE *f = fopen(path, "w");
    fprintf(f, "# paper_t  term_bpd (mean over %d images)\n", n);
    for (int t = 0; t < r.T; t++) {
        for (int i = 0; i < n; i++) col[i] = r.terms[(size_t)t * n + i];
        double m;
        rd_mean_se(col, n, &m, &se);
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

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const char *m = getenv("MINUTES"), *en = getenv("EVAL_N");
    if (en && atoi(en) > 0) EVAL_IMAGES = atoi(en);
    double minutes = m && atof(m) > 0 ? atof(m) : 20;
    Dataset train, test;
    Error err;
    const char *path = data_default_path();
    if (data_load(&train, path, 1, &err) < 0 || data_load(&test, path, 0, &err) < 0) {
        fprintf(stderr, "ch06: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "data: %s (%s); budget %.1f minutes in all\n", train.name, train.path, minutes);
    Run runs[2] = {{.name = "simple", .loss = "simple"}, {.name = "vlb", .loss = "vlb"}};
    for (int i = 0; i < 2; i++)
        if (train_one(&runs[i], &train, 0.3 * minutes) < 0) return 1;
    for (int i = 0; i < 2; i++)
        if (evaluate(&runs[i], &test) < 0) return 1;
    write_plots(runs, train.name);
    FILE *f = fopen("figures/data/ch06_table.txt", "w");
    FILE *outs[2] = {stdout, f};
    for (int k = 0; k < 2; k++) {
        fprintf(outs[k], "%s, tiny config, %.1f minutes of training each, %d test images, "
                         "EMA weights, bits/dim\n", train.name, 0.3 * minutes, EVAL_IMAGES);
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
