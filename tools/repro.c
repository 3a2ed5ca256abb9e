/* repro.c — the judgements of `make reproduce`: the stability rule, the
 * verdict rule and the results page, read from a run directory that
 * tools/reproduce.sh fills by calling `ddpm`.
 *
 *   repro stability LOG.csv [STATUS] [--window W] [--factor F]
 *       "stable (N steps)" or "unstable at step S: why" (exit 0 either way)
 *   repro verdict A SE_A B SE_B less|greater
 *       the verdict on the paper's claim "A is less (greater) than B"
 *   repro page RUNDIR PAGE.md FIGDIR FIGLINK
 *       the results page from RUNDIR; FIGDIR/data/ gets the figures' data and
 *       gnuplot scripts (the shell runs them), FIGLINK is FIGDIR as the page
 *       links it
 *
 * The rules, as the page states them:
 * - Stability: a run is unstable if its loss or gradient norm is not finite
 *   (the trainer stops there), or if the median loss of a window of W
 *   consecutive steps (W = 50) exceeds F (= 4) times the lowest median of the
 *   windows before it. The median, not the mean: the true bound's loss jumps
 *   by orders of magnitude when a batch happens to draw t = 1 (the decoder
 *   term), and a mean over a window would call that a divergence.
 * - Verdicts: "reproduced" when our difference is in the paper's direction
 *   and larger than twice its standard error (the two errors added in
 *   quadrature); "reversed" when it is that large the other way; otherwise
 *   "not visible at this budget".
 *
 * Everything printed depends on the run's data only, except the lines that
 * report wall-clock (marked as timing on the page): the same run gives the
 * same page.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 50
#define FACTOR 4.0

/* ---- the stability rule ------------------------------------------------------ */

typedef struct Stability {
    int stable;
    long steps;        // steps in the log
    long step;         // where it failed
    char why[256];
} Stability;

typedef struct Curve {
    long n, cap;
    double *loss, *grad;   // [n], index = step - 1
} Curve;

static void curve_free(Curve *c) { free(c->loss), free(c->grad); }

// log.csv (step,loss,grad_norm,...). A resumed run replays the steps after
// its last checkpoint, so a row for step s replaces every row from s on.
static int curve_read(const char *path, Curve *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *p = line, *e;
        long s = strtol(p, &e, 10);
        if (e == p || *e != ',' || s < 1) continue;   // the header, or junk
        double loss = strtod(e + 1, &p);
        double grad = *p == ',' ? strtod(p + 1, &e) : NAN;
        if (s > c->cap) {
            long cap = c->cap ? c->cap : 1024;
            while (cap < s) cap *= 2;
            c->loss = realloc(c->loss, sizeof(double) * cap);
            c->grad = realloc(c->grad, sizeof(double) * cap);
            if (!c->loss || !c->grad) { fclose(f); return -1; }
            c->cap = cap;
        }
        for (long i = c->n; i < s - 1; i++) c->loss[i] = c->grad[i] = NAN;   // a gap
        c->loss[s - 1] = loss, c->grad[s - 1] = grad;
        c->n = s;
    }
    fclose(f);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *x, long n)
{
    double *s = malloc(sizeof(double) * n);
    memcpy(s, x, sizeof(double) * n);
    qsort(s, n, sizeof(double), cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

// status: the harness's one-line record of how training ended ("finished N",
// "capped N", "nonfinite N"); may be NULL.
static void stability(const Curve *c, const char *status, int W, double F, Stability *st)
{
    memset(st, 0, sizeof *st);
    st->stable = 1;
    st->steps = c->n;
    long bad = 0;
    if (status && sscanf(status, "nonfinite %ld", &bad) == 1) {
        st->stable = 0, st->step = bad;
        snprintf(st->why, sizeof st->why, "the loss or gradient norm was not finite at step %ld "
                 "(training stopped there)", bad);
    }
    for (long i = 0; i < c->n; i++)
        if (!isfinite(c->loss[i]) || !isfinite(c->grad[i])) {
            if (st->stable || i + 1 < st->step) {
                st->stable = 0, st->step = i + 1;
                snprintf(st->why, sizeof st->why, "the loss or gradient norm was not finite at "
                         "step %ld", i + 1);
            }
            break;
        }
    double lowest = INFINITY;
    for (long w = 0; (w + 1) * W <= c->n; w++) {
        long end = (w + 1) * (long)W;
        if (!st->stable && st->step <= end) break;
        double m = median(c->loss + w * W, W);
        if (m > F * lowest) {
            st->stable = 0, st->step = end;
            snprintf(st->why, sizeof st->why, "the median loss of steps %ld-%ld, %.4g, is above "
                     "%g x the lowest earlier window median, %.4g", w * W + 1, end, m, F, lowest);
            break;
        }
        if (m < lowest) lowest = m;
    }
}

/* ---- the verdict rule -------------------------------------------------------- */

// The paper says a < b (less = 1) or a > b (less = 0).
static const char *verdict(double a, double sa, double b, double sb, int less)
{
    double d = less ? b - a : a - b, se = sqrt(sa * sa + sb * sb);
    if (!isfinite(d) || !isfinite(se)) return "not visible at this budget";
    if (d > 2 * se) return "reproduced";
    if (d < -2 * se) return "reversed";
    return "not visible at this budget";
}

/* ---- the run directory -------------------------------------------------------- */

typedef struct Kv { char key[64], value[512]; } Kv;
static Kv plan[128];
static int n_plan;

static void plan_read(const char *dir, const char *file)
{
    char path[1024], line[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (n_plan < 128 && fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        *eq = 0;
        line[strcspn(line, "\n")] = 0;
        eq[1 + strcspn(eq + 1, "\n")] = 0;
        snprintf(plan[n_plan].key, sizeof plan[n_plan].key, "%.63s", line);
        snprintf(plan[n_plan].value, sizeof plan[n_plan].value, "%.511s", eq + 1);
        n_plan++;
    }
    fclose(f);
}

static const char *P(const char *key)
{
    for (int i = 0; i < n_plan; i++)
        if (!strcmp(plan[i].key, key)) return plan[i].value;
    return "?";
}

// The first line of a file (without its newline), or "" if absent.
static int read_line(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (!f) return -1;
    if (!fgets(out, (int)len, f)) out[0] = 0;
    out[strcspn(out, "\n")] = 0;
    fclose(f);
    return 0;
}

// The numbers after `prefix` on the first line that starts with it.
static int grep_nums(const char *path, const char *prefix, const char *fmt, ...)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int got = 0;
    while (!got && fgets(line, sizeof line, f))
        if (!strncmp(line, prefix, strlen(prefix))) {
            va_list ap;
            va_start(ap, fmt);
            got = vsscanf(line + strlen(prefix), fmt, ap);
            va_end(ap);
        }
    fclose(f);
    return got;
}

typedef struct Run {
    const char *name, *pred, *objective;
    double paper_is, paper_is_se, paper_fid;   // < 0: "–" in the paper
    int table1;                                // its row in Table 1 (0: none)
    double paper_nll, paper_nll_train;
    char status[128];
    Stability st;
    Curve curve;
    int have_test, have_train, have_score;
    double test, test_se, train, train_se;
    double fd, kid, kid_se, is, is_se;
} Run;

// Table 2 of the paper, and Table 1's two rows.
static Run runs[] = {
    {.name = "eps_simple", .pred = "ε", .objective = "L_simple = ‖ε − ε_θ‖²", .paper_is = 9.46, .paper_is_se = 0.11, .paper_fid = 3.17,
     .table1 = 1, .paper_nll = 3.75, .paper_nll_train = 3.72},
    {.name = "eps_vlb_fixed", .pred = "ε", .objective = "L, fixed isotropic Σ", .paper_is = 7.67, .paper_is_se = 0.13, .paper_fid = 13.51,
     .table1 = 2, .paper_nll = 3.70, .paper_nll_train = 3.69},
    {.name = "eps_vlb_learned", .pred = "ε", .objective = "L, learned diagonal Σ", .paper_is = -1, .paper_is_se = 0, .paper_fid = -1,
     .table1 = 0, .paper_nll = 0, .paper_nll_train = 0},
    {.name = "mu_vlb_learned", .pred = "μ̃", .objective = "L, learned diagonal Σ", .paper_is = 7.28, .paper_is_se = 0.10, .paper_fid = 23.69,
     .table1 = 0, .paper_nll = 0, .paper_nll_train = 0},
    {.name = "mu_vlb_fixed", .pred = "μ̃", .objective = "L, fixed isotropic Σ", .paper_is = 8.06, .paper_is_se = 0.09, .paper_fid = 13.22,
     .table1 = 0, .paper_nll = 0, .paper_nll_train = 0},
    {.name = "mu_mse", .pred = "μ̃", .objective = "‖μ̃ − μ̃_θ‖²", .paper_is = -1, .paper_is_se = 0, .paper_fid = -1,
     .table1 = 0, .paper_nll = 0, .paper_nll_train = 0},
};
#define N_RUNS (int)(sizeof runs / sizeof runs[0])

static Run *run(const char *name)
{
    for (int i = 0; i < N_RUNS; i++)
        if (!strcmp(runs[i].name, name)) return &runs[i];
    return NULL;
}

static void run_read(const char *dir, Run *r)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/runs/%s/train.status", dir, r->name);
    read_line(p, r->status, sizeof r->status);
    snprintf(p, sizeof p, "%s/runs/%s/log.csv", dir, r->name);
    curve_read(p, &r->curve);
    stability(&r->curve, r->status, WINDOW, FACTOR, &r->st);
    if (!r->status[0]) r->st.stable = -1;   // not trained
    snprintf(p, sizeof p, "%s/runs/%s/bpd_test.txt", dir, r->name);
    r->have_test = grep_nums(p, "total", "%lf +- %lf", &r->test, &r->test_se) == 2;
    snprintf(p, sizeof p, "%s/runs/%s/bpd_train.txt", dir, r->name);
    r->have_train = grep_nums(p, "total", "%lf +- %lf", &r->train, &r->train_se) == 2;
    snprintf(p, sizeof p, "%s/runs/%s/score.txt", dir, r->name);
    r->have_score = grep_nums(p, "Frechet distance", "%lf", &r->fd) == 1 &&
                    grep_nums(p, "KID", "%lf +- %lf", &r->kid, &r->kid_se) == 2 &&
                    grep_nums(p, "IS analogue", "%lf +- %lf", &r->is, &r->is_se) == 2;
}

/* ---- the page ----------------------------------------------------------------- */

typedef struct Rd {
    int ok, T, images;
    double total, total_se, decoder, decoder_se;
    double *rate, *rate_se, *rmse, *rmse_se;   // [T], index k - 1 = steps received
} Rd;

static void rd_read(const char *dir, Rd *rd)
{
    char p[1024], line[512];
    memset(rd, 0, sizeof *rd);
    snprintf(p, sizeof p, "%s/runs/eps_simple/rd.csv", dir);
    FILE *f = fopen(p, "r");
    if (!f) return;
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "# total_bpd=%lf total_se=%lf decoder_bpd=%lf decoder_se=%lf prior_bpd=%*f "
               "images=%d T=%d", &rd->total, &rd->total_se, &rd->decoder, &rd->decoder_se,
               &rd->images, &rd->T) != 6 || rd->T < 1 || rd->T > 100000) {
        fclose(f);
        return;
    }
    rd->rate = calloc(rd->T, sizeof(double)), rd->rate_se = calloc(rd->T, sizeof(double));
    rd->rmse = calloc(rd->T, sizeof(double)), rd->rmse_se = calloc(rd->T, sizeof(double));
    int rows = 0, k, t;
    double a, b, c, d;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%d,%d,%lf,%lf,%lf,%lf", &k, &t, &a, &b, &c, &d) == 6 && k >= 1 && k <= rd->T) {
            rd->rate[k - 1] = a, rd->rate_se[k - 1] = b, rd->rmse[k - 1] = c, rd->rmse_se[k - 1] = d;
            rows++;
        }
    fclose(f);
    rd->ok = rows == rd->T;
}

static void num(FILE *f, int ok, double x, double se, const char *fmt)
{
    if (!ok) { fprintf(f, "–"); return; }
    fprintf(f, fmt, x);
    if (se >= 0) { fprintf(f, " ± "); fprintf(f, fmt, se); }
}

static const char *stable_word(const Run *r)
{
    return r->st.stable < 0 ? "not trained" : r->st.stable ? "stable" : "**unstable**";
}

// Paper values of Table 4 (reverse steps received of T = 1000).
static const struct { int k; double rate, rmse; } table4[] = {
    {100, 0.00000, 67.60}, {300, 0.00081, 54.19}, {500, 0.00716, 38.03},
    {700, 0.02866, 24.44}, {900, 0.11994, 12.02}, {1000, 1.77581, 0.95},
};

static int steps_at(int T, int k1000)
{
    int k = (int)lround((double)k1000 * T / 1000.0);
    return k < 1 ? 1 : k > T ? T : k;
}

static void write_gnuplot(const char *dir, const char *figdir, const Rd *rd)
{
    char p[1024];
    // Loss and gradient-norm curves: medians of windows of about n/100 steps.
    snprintf(p, sizeof p, "%s/data/curves.dat", figdir);
    FILE *f = fopen(p, "w");
    if (!f) return;
    for (int i = 0; i < N_RUNS; i++) {
        const Curve *c = &runs[i].curve;
        long w = c->n / 100 > 1 ? c->n / 100 : 1;
        fprintf(f, "# %s\n", runs[i].name);
        for (long s = 0; s + w <= c->n; s += w)
            fprintf(f, "%ld %.6g %.6g\n", s + w, median(c->loss + s, w), median(c->grad + s, w));
        fprintf(f, "%s\n\n", c->n < 1 ? "0 nan nan" : "");
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/data/curves.gp", figdir);
    f = fopen(p, "w");
    if (!f) return;
    fprintf(f, "set terminal pngcairo size 1000,420 font 'Sans,10' noenhanced\nset output '%s/curves.png'\n"
            "set multiplot layout 1,2\nset logscale y\nset grid\nset key top right font ',8'\n"
            "set xlabel 'training step'\n", figdir);
    for (int panel = 0; panel < 2; panel++) {
        fprintf(f, "set title '%s (medians over windows)'\nset ylabel '%s'\nplot ",
                panel ? "gradient norm before clipping" : "training loss",
                panel ? "gradient norm" : "loss (each run its own objective)");
        for (int i = 0; i < N_RUNS; i++)
            fprintf(f, "%s'%s/data/curves.dat' index %d u 1:%d w l lw 1.5 t '%s'", i ? ", " : "",
                    figdir, i, panel ? 3 : 2, runs[i].name);
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    if (!rd->ok) return;
    // Figure 5: distortion and rate against steps, distortion against rate.
    snprintf(p, sizeof p, "%s/data/fig5_paper.dat", figdir);
    f = fopen(p, "w");
    if (!f) return;
    for (size_t i = 0; i < sizeof table4 / sizeof table4[0]; i++)
        fprintf(f, "%d,%.5f,%.2f\n", table4[i].k, table4[i].rate, table4[i].rmse);
    fclose(f);
    snprintf(p, sizeof p, "%s/data/fig5.gp", figdir);
    f = fopen(p, "w");
    if (!f) return;
    fprintf(f, "set terminal pngcairo size 1200,380 font 'Sans,10' noenhanced\nset output '%s/fig5.png'\n"
            "set datafile separator ','\nset multiplot layout 1,3\nset grid\nset key top right font ',8'\n"
            "ours = '%s/runs/eps_simple/rd.csv'\npaper = '%s/data/fig5_paper.dat'\n"
            "sc = %d / 1000.0\n"
            "set xlabel 'reverse steps received (of T = %d)'\nset ylabel 'distortion (RMSE, [0,255])'\n"
            "plot ours u 1:5 w l lw 2 t 'ours', paper u ($1*sc):3 w lp pt 7 t 'paper (T = 1000, scaled)'\n"
            "set ylabel 'rate (bits/dim)'\n"
            "plot ours u 1:3 w l lw 2 t 'ours', paper u ($1*sc):2 w lp pt 7 t 'paper'\n"
            "set xlabel 'rate (bits/dim)'\nset ylabel 'distortion (RMSE, [0,255])'\n"
            "plot ours u 3:5 w l lw 2 t 'ours', paper u 2:3 w lp pt 7 t 'paper'\n"
            "unset multiplot\n", figdir, dir, figdir, rd->T, rd->T);
    fclose(f);
}

static void write_provenance(FILE *f, const char *dir)
{
    fprintf(f, "## The run\n\n| | |\n|---|---|\n");
    fprintf(f, "| command | `make reproduce HOURS=%s%s` |\n", P("HOURS"), strcmp(P("TOY"), "1") ? "" : " TOY=1");
    fprintf(f, "| code | commit `%s` |\n", P("COMMIT"));
    fprintf(f, "| date (start; timing) | %s |\n", P("DATE"));
    fprintf(f, "| data | %s |\n", P("DATA_LABEL"));
    fprintf(f, "| machine | %s |\n", P("MACHINE"));
    fprintf(f, "| budget | %s hours in all: training, evaluation, sampling, this page |\n", P("HOURS"));
    fprintf(f, "| network | `%s` (%s parameters) |\n", P("NET_DESC"), P("PARAMS"));
    fprintf(f, "| training, every run | %s steps of batch %s, Adam lr 2e-4, warm-up %s, clip 1, EMA %s, "
               "T = %s, seed %s, random flips |\n", P("STEPS"), P("BATCH"), P("WARMUP"), P("EMA"),
            P("T"), P("SEED"));
    fprintf(f, "| bits/dim | the first %s test images and the first %s training images, EMA weights, "
               "x̂_0 clipped, seed %s |\n", P("N_EVAL"), P("N_EVAL"), P("SEED"));
    fprintf(f, "| samples | %s per scored run (Algorithm 2, T = %s steps, EMA weights, seed %s); "
               "scored runs: %s |\n", P("N_SAMPLES"), P("T"), P("SEED"), P("SCORED"));
    fprintf(f, "| scores | chapter 09's classifier `%s`, SHA-256 `%s`; reference: the test split |\n\n",
            P("CLASSIFIER"), P("CLASSIFIER_SHA"));
    fprintf(f, "Wall-clock per stage (timing: these lines differ between runs):\n\n"
               "| stage | planned | took |\n|---|---:|---:|\n");
    char p[1024], line[256];
    snprintf(p, sizeof p, "%s/stages.txt", dir);
    FILE *s = fopen(p, "r");
    double total = 0;
    while (s && fgets(line, sizeof line, s)) {
        char name[128], q[1200], done[128];
        double planned, took = -1;
        if (sscanf(line, "%127s %lf", name, &planned) != 2) continue;
        snprintf(q, sizeof q, "%s/stages/%s.done", dir, name);
        if (read_line(q, done, sizeof done) == 0) sscanf(done, "seconds=%lf", &took);
        if (took >= 0) total += took;
        fprintf(f, "| %s | %.1f min | ", name, planned / 60);
        if (took >= 0) fprintf(f, "%.1f min |\n", took / 60);
        else fprintf(f, "not run |\n");
    }
    if (s) fclose(s);
    fprintf(f, "| all stages | %.1f min | %.1f min |\n\n", 60 * atof(P("HOURS")), total / 60);
}

static void write_rules(FILE *f)
{
    fprintf(f, "## The rules\n\n"
        "- **Stable** means: the loss and the gradient norm stayed finite (the trainer stops at the "
        "first that is not), and no window of %d consecutive steps has a median loss above %g times "
        "the lowest median of the windows before it (from `log.csv`). An unstable run is a result: "
        "its numbers are shown as \"–\", as in the paper, and it is not evaluated further.\n"
        "- **Verdicts** compare two of our numbers in the direction the paper found: "
        "**reproduced** when the difference points the paper's way and exceeds twice its standard "
        "error (the two standard errors added in quadrature; images and samples are not paired), "
        "**reversed** when it exceeds that the other way, otherwise **not visible at this budget**.\n"
        "- Standard errors are over images (bits/dim), over disjoint subsets (KID) and over splits "
        "(IS analogue). The Fréchet distance has no standard error and is biased at small N "
        "(chapter 09): sample quality verdicts use KID.\n"
        "- Our scores are chapter 09's: features of a small CIFAR-10 (or Fashion-MNIST) classifier, "
        "not Inception-v3; compare directions with the paper's FID and IS, never values.\n\n",
        WINDOW, FACTOR);
}

static void verdict_line(FILE *f, const char *what, const char *v, const char *detail)
{
    fprintf(f, "- %s: **%s** — %s\n", what, v, detail);
}

// Why a number is absent.
static const char *missing(const Run *r, int have)
{
    if (have) return "measured";
    if (r->st.stable == 0) return "unstable";
    if (r->st.stable < 0) return "not trained";
    return "not measured at this budget";
}

// Both runs stable and measured: the verdict on "a < b" (less) or "a > b".
static void compare(FILE *f, const char *what, const Run *ra, int ha, double a, double sa,
                    const Run *rb, int hb, double b, double sb, int less, const char *unit)
{
    char d[512];
    if (!ha || !hb) {
        snprintf(d, sizeof d, "%s %s, %s %s", ra->name, missing(ra, ha), rb->name, missing(rb, hb));
        verdict_line(f, what, "not visible at this budget", d);
        return;
    }
    snprintf(d, sizeof d, "%s %.4g ± %.2g vs %s %.4g ± %.2g %s: difference %.3g, 2 SE = %.3g",
             ra->name, a, sa, rb->name, b, sb, unit, less ? b - a : a - b,
             2 * sqrt(sa * sa + sb * sb));
    verdict_line(f, what, verdict(a, sa, b, sb, less), d);
}

static void write_verdicts(FILE *f, const Rd *rd)
{
    Run *s = run("eps_simple"), *l = run("eps_vlb_fixed"), *el = run("eps_vlb_learned"),
        *ml = run("mu_vlb_learned"), *mf = run("mu_vlb_fixed"), *mm = run("mu_mse");
    fprintf(f, "## Verdicts\n\n");
    compare(f, "Table 1: the true bound L (fixed isotropic Σ) gives the better test bits/dim "
            "than L_simple (paper 3.70 vs 3.75)", l, l->have_test, l->test, l->test_se, s,
            s->have_test, s->test, s->test_se, 1, "bits/dim");
    compare(f, "Table 1: L_simple gives the better samples, lower KID (paper FID 3.17 vs 13.51)",
            s, s->have_score, s->kid, s->kid_se, l, l->have_score, l->kid, l->kid_se, 1, "KID");
    compare(f, "Table 1: L_simple's training bits/dim sit below its test bits/dim (paper 3.72 vs 3.75)",
            s, s->have_train, s->train, s->train_se, s, s->have_test, s->test, s->test_se, 1, "bits/dim");
    compare(f, "Table 1: the same for L, fixed isotropic Σ (paper 3.69 vs 3.70)", l, l->have_train,
            l->train, l->train_se, l, l->have_test, l->test, l->test_se, 1, "bits/dim");
    // Table 2: learned variances with the true bound.
    char d[512];
    snprintf(d, sizeof d, "eps_vlb_learned is %s%s%s", stable_word(el), el->st.stable == 0 ? ": " : "",
             el->st.stable == 0 ? el->st.why : "");
    verdict_line(f, "Table 2: ε prediction with a learned diagonal Σ and the true bound is unstable",
                 el->st.stable == 0 ? "reproduced" : "not visible at this budget", d);
    snprintf(d, sizeof d, "mu_vlb_learned is %s%s%s", stable_word(ml), ml->st.stable == 0 ? ": " : "",
             ml->st.stable == 0 ? ml->st.why : "");
    verdict_line(f, "Table 2: μ̃ prediction with a learned diagonal Σ trains (paper: IS 7.28, FID 23.69)",
                 ml->st.stable == 1 ? "reproduced" : ml->st.stable == 0 ? "reversed"
                                                                          : "not visible at this budget", d);
    // Table 2: eps + L_simple has the best samples of every scored run.
    int better = 0, worse = 0, scored = 0;
    char list[1024] = "";
    for (int i = 0; i < N_RUNS; i++) {
        Run *r = &runs[i];
        if (r == s || !r->have_score || !s->have_score) continue;
        scored++;
        const char *v = verdict(s->kid, s->kid_se, r->kid, r->kid_se, 1);
        better += !strcmp(v, "reproduced");
        worse += !strcmp(v, "reversed");
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s KID %.4g ± %.2g (%s)",
                 scored > 1 ? "; " : "", r->name, r->kid, r->kid_se, v);
    }
    snprintf(d, sizeof d, "eps_simple KID %.4g ± %.2g against %d other scored runs: %s",
             s->have_score ? s->kid : NAN, s->have_score ? s->kid_se : NAN, scored, scored ? list : "none");
    verdict_line(f, "Table 2: ε prediction with L_simple has the best samples of all the cells",
                 worse ? "reversed" : scored && better == scored ? "reproduced" : "not visible at this budget", d);
    // Table 2: mu~ works only with the true bound.
    if (mm->st.stable == 0) {
        snprintf(d, sizeof d, "mu_mse is unstable: %s", mm->st.why);
        verdict_line(f, "Table 2: μ̃ prediction works only with the true bound, not with ‖μ̃ − μ̃_θ‖²",
                     "reproduced", d);
    } else
        compare(f, "Table 2: μ̃ prediction works only with the true bound: L (fixed Σ) has lower KID "
                "than ‖μ̃ − μ̃_θ‖²", mf, mf->have_score, mf->kid, mf->kid_se, mm, mm->have_score,
                mm->kid, mm->kid_se, 1, "KID");
    // Figure 5: most of the rate goes to the last steps.
    if (rd->ok) {
        int k9 = steps_at(rd->T, 900);
        if (k9 >= rd->T && rd->T > 1) k9 = rd->T - 1;   // a tiny T: at least the last step
        double a = rd->rate[rd->T - 1] - rd->rate[k9 - 1], b = rd->rate[k9 - 1];
        double sa = sqrt(rd->rate_se[rd->T - 1] * rd->rate_se[rd->T - 1] +
                         rd->rate_se[k9 - 1] * rd->rate_se[k9 - 1]);
        snprintf(d, sizeof d, "rate in the last %d of %d steps %.4g ± %.2g vs before them %.4g ± %.2g "
                 "bits/dim (%.1f%% of the rate; paper 93.2%%)", rd->T - k9, rd->T, a, sa, b,
                 rd->rate_se[k9 - 1], 100 * a / rd->rate[rd->T - 1]);
        verdict_line(f, "Figure 5 / §4.3: most of the rate is spent on the last 10% of the steps, "
                     "on imperceptible detail", verdict(a, sa, b, rd->rate_se[k9 - 1], 0), d);
    } else
        verdict_line(f, "Figure 5 / §4.3: most of the rate is spent on the last 10% of the steps",
                     "not visible at this budget", "no rate-distortion curve (eps_simple unstable or not run)");
    fprintf(f, "\n");
}

static void write_table1(FILE *f)
{
    fprintf(f, "## Table 1: sample quality and bits/dim\n\n"
        "| model | IS analogue | Fréchet distance | KID | NLL test (train), bits/dim | "
        "paper IS | paper FID | paper NLL test (train) |\n|---|---|---|---|---|---|---|---|\n");
    for (int row = 1; row <= 2; row++)
        for (int i = 0; i < N_RUNS; i++) {
            Run *r = &runs[i];
            if (r->table1 != row) continue;
            int ok = r->st.stable == 1;
            fprintf(f, "| %s (`%s`) | ", r->objective, r->name);
            num(f, ok && r->have_score, r->is, r->is_se, "%.3f");
            fprintf(f, " | ");
            num(f, ok && r->have_score, r->fd, -1, "%.3f");
            fprintf(f, " | ");
            num(f, ok && r->have_score, r->kid, r->kid_se, "%.4f");
            fprintf(f, " | ");
            num(f, ok && r->have_test, r->test, r->test_se, "%.3f");
            fprintf(f, " (");
            num(f, ok && r->have_train, r->train, r->train_se, "%.3f");
            fprintf(f, ") | %.2f ± %.2f | %.2f | %.2f (%.2f) |\n", r->paper_is, r->paper_is_se,
                    r->paper_fid, r->paper_nll, r->paper_nll_train);
        }
    fprintf(f, "\n");
}

static void write_table2(FILE *f)
{
    fprintf(f, "## Table 2: what the network predicts and what it is trained on\n\n"
        "| prediction | objective | run | training | NLL test, bits/dim | IS analogue | "
        "Fréchet distance | KID | paper IS | paper FID |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < N_RUNS; i++) {
        Run *r = &runs[i];
        int ok = r->st.stable == 1;
        fprintf(f, "| %s | %s | `%s` | %s", r->pred, r->objective, r->name, stable_word(r));
        if (r->st.stable == 0) fprintf(f, " at step %ld", r->st.step);
        else if (!strncmp(r->status, "capped", 6)) fprintf(f, " (time cap: %s steps)", r->status + 7);
        fprintf(f, " | ");
        num(f, ok && r->have_test, r->test, r->test_se, "%.3f");
        fprintf(f, " | ");
        num(f, ok && r->have_score, r->is, r->is_se, "%.3f");
        fprintf(f, " | ");
        num(f, ok && r->have_score, r->fd, -1, "%.3f");
        fprintf(f, " | ");
        num(f, ok && r->have_score, r->kid, r->kid_se, "%.4f");
        if (r->paper_is < 0) fprintf(f, " | – | – |\n");
        else fprintf(f, " | %.2f ± %.2f | %.2f |\n", r->paper_is, r->paper_is_se, r->paper_fid);
    }
    fprintf(f, "\nFlags of each run (`ddpm train`): eps_simple `--mean eps --var fixedlarge --loss simple`; "
        "eps_vlb_fixed `--mean eps --var fixedlarge --loss vlb`; eps_vlb_learned `--mean eps --var learned "
        "--loss vlb`; mu_vlb_learned `--mean mu --var learned --loss vlb`; mu_vlb_fixed `--mean mu --var "
        "fixedlarge --loss vlb`; mu_mse `--mean mu --var fixedlarge --loss simple` (the unweighted squared "
        "error of what the network predicts). Fixed isotropic Σ is σ_t² = β_t, the official CIFAR-10 "
        "setting. A \"–\" in our columns: the run was unstable, or that number was not measured at this "
        "budget (samples are drawn for the runs listed under *samples* in *The run* below).\n\n");
    int any = 0;
    for (int i = 0; i < N_RUNS; i++)
        if (runs[i].st.stable == 0) {
            if (!any++) fprintf(f, "Unstable runs:\n\n");
            fprintf(f, "- `%s`: %s.\n", runs[i].name, runs[i].st.why);
        }
    if (any) fprintf(f, "\n");
}

static void write_table4(FILE *f, const Rd *rd, const char *link)
{
    fprintf(f, "## Table 4 and Figure 5: progressive lossy coding (`eps_simple`)\n\n");
    if (!rd->ok) {
        fprintf(f, "No rate-distortion curve: the L_simple run is unstable or was not evaluated.\n\n");
        return;
    }
    fprintf(f, "Rate = L_T plus the bound terms received after k reverse steps; distortion = RMSE of "
        "the clipped x̂_0 on [0, 255]; over the first %d test images (`ddpm rd`). The paper's rows are "
        "at k of T = 1000; ours at the same fraction of T = %d.\n\n"
        "| steps k | our rate (bits/dim) | paper rate | our distortion (RMSE) | paper distortion |\n"
        "|---:|---|---:|---|---:|\n", rd->images, rd->T);
    for (size_t i = 0; i < sizeof table4 / sizeof table4[0]; i++) {
        int k = steps_at(rd->T, table4[i].k);
        fprintf(f, "| %d | %.5f ± %.5f | %.5f | %.2f ± %.2f | %.2f |\n", k, rd->rate[k - 1],
                rd->rate_se[k - 1], table4[i].rate, rd->rmse[k - 1], rd->rmse_se[k - 1], table4[i].rmse);
    }
    fprintf(f, "\nThe bound: %.4f ± %.4f bits/dim in all, of which the decoder L_0 %.4f ± %.4f "
            "(paper: 3.75 and 1.97).\n\n![Figure 5: distortion against steps, rate against steps, "
            "distortion against rate; ours and the paper's Table 4](%s/fig5.png)\n\n",
            rd->total, rd->total_se, rd->decoder, rd->decoder_se, link);
}

static int page(const char *dir, const char *out, const char *figdir, const char *link)
{
    plan_read(dir, "plan.env");
    plan_read(dir, "page.env");
    for (int i = 0; i < N_RUNS; i++) run_read(dir, &runs[i]);
    Rd rd;
    rd_read(dir, &rd);
    write_gnuplot(dir, figdir, &rd);
    FILE *f = fopen(out, "w");
    if (!f) { fprintf(stderr, "repro: %s: cannot write\n", out); return 1; }
    fprintf(f, "# Results: the paper's analyses at reduced wall-clock\n\n");
    if (!strcmp(P("TOY"), "1"))
        fprintf(f, "> **A toy run** (`TOY=1`): a micro network trained for a few steps, to test the "
                   "harness. None of its numbers is a result.\n\n");
    fprintf(f, "This page is written by `make reproduce` from the data of one run; nothing on it is "
        "edited by hand. It sets six training runs of the same network — the six cells of the paper's "
        "Table 2 — against the paper's Tables 1, 2 and 4 and Figures 5–8, at a budget of %s hours on "
        "this machine instead of the paper's 10.6 hours on a TPU v3-8 for 800k steps of a 35.7M-parameter "
        "network. Rerun it with `make reproduce HOURS=%s%s`; a rerun finds every stage done and rewrites "
        "only this page.\n\n", P("HOURS"), P("HOURS"), strcmp(P("TOY"), "1") ? "" : " TOY=1");
    write_verdicts(f, &rd);
    write_table1(f);
    write_table2(f);
    fprintf(f, "## Training curves\n\n![Loss and gradient norm of the six runs](%s/curves.png)\n\n", link);
    write_table4(f, &rd, link);
    fprintf(f, "## Figures 6–8 and samples (`eps_simple`)\n\n"
        "![Figure 6: x̂_0 predicted every T/10 steps while sampling, one row per image](%s/fig6.png)\n\n"
        "![Figure 7: rows branch at t = T, 3T/4, T/2, T/4: x̂_0 of the shared x_t, x_t, six samples that "
        "share it](%s/fig7.png)\n\n"
        "![Figure 8: two test images (first and last column) encoded to x_t with q, mixed, decoded; rows "
        "at t = T/10, T/4, T/2, 3T/4](%s/fig8.png)\n\n"
        "![Samples of eps_simple (Algorithm 2)](%s/samples.png)\n\n", link, link, link, link);
    fprintf(f, "## Where ours differs from the paper, and why\n\n"
        "- **Budget.** Each run here has %s steps of batch %s against the paper's 800,000 of 128: "
        "bits/dim and scores are far from converged, so absolute values differ from the paper's by a "
        "wide margin; only directions are compared, and a direction the budget cannot resolve is "
        "reported as \"not visible\".\n"
        "- **Network.** `%s`, not the paper's 35.7M-parameter U-Net.\n"
        "- **Scores.** Chapter 09's classifier features and %s samples, not Inception-v3 and 50,000: "
        "values are on another scale, and the Fréchet distance carries a bias of order 1/N.\n"
        "- **Data.** %s.\n"
        "- **EMA.** Decay %s instead of 0.9999, which would still be mostly the initial weights after "
        "this few steps.\n\n", P("STEPS"), P("BATCH"), P("NET_DESC"), P("N_SAMPLES"), P("DATA_LABEL"), P("EMA"));
    write_rules(f);
    write_provenance(f, dir);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "stability")) {
        int W = WINDOW;
        double F = FACTOR;
        const char *status_path = NULL;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--window") && i + 1 < argc) W = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--factor") && i + 1 < argc) F = atof(argv[++i]);
            else status_path = argv[i];
        }
        Curve c;
        if (W < 1 || curve_read(argv[2], &c) < 0) {
            fprintf(stderr, "repro stability: %s: cannot read the log\n", argv[2]);
            return 1;
        }
        char status[128] = "";
        if (status_path) read_line(status_path, status, sizeof status);
        Stability st;
        stability(&c, status, W, F, &st);
        if (st.stable) printf("stable (%ld steps)\n", st.steps);
        else printf("unstable at step %ld: %s\n", st.step, st.why);
        curve_free(&c);
        return 0;
    }
    if (argc == 7 && !strcmp(argv[1], "verdict")) {
        printf("%s\n", verdict(atof(argv[2]), atof(argv[3]), atof(argv[4]), atof(argv[5]),
                               !strcmp(argv[6], "less")));
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "page")) return page(argv[2], argv[3], argv[4], argv[5]);
    fprintf(stderr, "usage: repro stability LOG.csv [STATUS] [--window W] [--factor F]\n"
                    "       repro verdict A SE_A B SE_B less|greater\n"
                    "       repro page RUNDIR PAGE.md FIGDIR FIGLINK\n");
    return 2;
}
