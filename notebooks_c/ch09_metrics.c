/* ch09_metrics.c — the calibration of chapter 09 (make chapter9).
 *
 * Before a score can judge samples it has to be read against known cases:
 *   the floor      real images against real images (train split vs test
 *                  split, and test vs test on disjoint halves) at N = 500 ...
 *                  10000: what "perfect" looks like, and how the Fréchet
 *                  distance's bias falls with N while KID stays at zero
 *   noise ladder   test images plus Gaussian noise of growing sigma against
 *                  the training images: every score must grow monotonically
 *   blur ladder    the same with a Gaussian blur of growing radius
 *   checkpoints    the samples of one training run at several steps (drawn
 *                  by `make chapter9` into LADDER_DIR before this runs)
 *                  against the training images
 * Writes figures/ch09_calibration_TAG.{png,svg}, figures/data/ch09_*_TAG.dat
 * and figures/data/ch09_table_TAG.txt (the numbers, also printed), TAG the
 * data set's short name (cifar10, fashionmnist).
 *
 * DDPM_DATA is the data set (default as `ddpm train`); CLASSIFIER the
 * network (default: the committed one for the data set's channel count);
 * CAL_N (10000) the largest N of the floor; LADDER_N (1000) images per rung;
 * LADDER_DIR the folder of stepS.npy sample files and LADDER_STEPS the steps S
 * (no checkpoint rows when LADDER_DIR is unset).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "09_metrics.h"
#include "classifier.h"
#include "npy.h"
#include "progress.h"
#include "sha256.h"

typedef struct Ctx {
    Classifier net;
    int D, K;
    Dataset train, test;
    real *ftrain, *ftest;     // [CAL_N, D] features of the first CAL_N images
    int n_cal, n_ladder;
} Ctx;

// Every output carries the data set's tag (cifar10, fashionmnist, ...), so the
// runs on two data sets sit side by side: figures/data/ch09_STEM_TAG.EXT.
static char g_tag[32], g_name[64];

static const char *out_path(const char *stem, const char *ext)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "figures/data/ch09_%s_%s.%s", stem, g_tag, ext);
    return buf;
}

// "CIFAR-10 (JPEG q75 copy)" -> "cifar10": the first word, letters and digits.
static void set_tag(const char *name)
{
    snprintf(g_name, sizeof g_name, "%s", name);
    int k = 0;
    for (const char *p = name; *p && *p != ' ' && k < (int)sizeof g_tag - 1; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) g_tag[k++] = *p;
        else if (*p >= 'A' && *p <= 'Z') g_tag[k++] = (char)(*p - 'A' + 'a');
    g_tag[k] = 0;
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static void die(const Error *err)
{
    fprintf(stderr, "ch09: %s\n", err->msg);
    exit(1);
}

/* ---- the floor: real against real ------------------------------------------ */

static void floor_rows(Ctx *c, FILE *dat, FILE *tab)
{
    static const int Ns[] = {500, 1000, 2000, 5000, 10000};
    Error err;
    fprintf(dat, "# N  FD(train,test)  KID  SE  FD(test,test)  KID  SE\n");
    fprintf(tab, "floor: real images against real images (FD, KID +- SE)\n"
                 "     N   train vs test                 test vs test (disjoint halves)\n");
    for (int i = 0; i < 5 && Ns[i] <= c->n_cal; i++) {
        int N = Ns[i], half = N <= c->n_cal / 2;
        Scores a, b = {0};
        if (metrics_compare(&a, c->ftrain, N, c->ftest, N, c->D, 1, &err)) die(&err);
        if (half && metrics_compare(&b, c->ftest, N, c->ftest + (size_t)(c->n_cal / 2) * c->D, N,
                                    c->D, 1, &err)) die(&err);
        fprintf(dat, "%d %.6f %.6f %.6f %.6f %.6f %.6f\n", N, a.fd.fd, a.kid.kid, a.kid.se,
                half ? b.fd.fd : NAN, half ? b.kid.kid : NAN, half ? b.kid.se : NAN);
        fprintf(tab, "%6d   FD %8.4f  KID %8.5f +- %.5f", N, a.fd.fd, a.kid.kid, a.kid.se);
        if (half) fprintf(tab, "   FD %8.4f  KID %8.5f +- %.5f", b.fd.fd, b.kid.kid, b.kid.se);
        fprintf(tab, "\n");
    }
}

/* ---- the ladders: corrupted test images against the training images --------- */

// x += N(0, sigma^2), clipped back to [-1, 1].
static void corrupt_noise(real *x, size_t n, double sigma, Rng *r)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i] + sigma * rng_normal(r);
        x[i] = (real)(v < -1 ? -1 : v > 1 ? 1 : v);
    }
}

// Separable Gaussian blur of every 32x32 plane, radius 3 sigma, edges clamped.
static void corrupt_blur(real *x, size_t planes, double sigma)
{
    if (sigma <= 0) return;
    int R = (int)ceil(3 * sigma);
    double w[64], tot = 0;
    for (int k = -R; k <= R; k++) tot += w[k + R] = exp(-k * k / (2 * sigma * sigma));
    real tmp[1024];
    for (size_t p = 0; p < planes; p++)
        for (int pass = 0; pass < 2; pass++) {
            real *im = x + p * 1024;
            memcpy(tmp, im, sizeof tmp);
            for (int y = 0; y < 32; y++)
                for (int i = 0; i < 32; i++) {
                    double s = 0;
                    for (int k = -R; k <= R; k++) {
                        int yy = pass ? y + k : y, xx = pass ? i : i + k;
                        yy = yy < 0 ? 0 : yy > 31 ? 31 : yy, xx = xx < 0 ? 0 : xx > 31 ? 31 : xx;
                        s += w[k + R] * tmp[yy * 32 + xx];
                    }
                    im[y * 32 + i] = (real)(s / tot);
                }
        }
}

// One rung: the first LADDER_N test images corrupted, scored against train.
static void ladder_rung(Ctx *c, int blur, double level, FILE *dat, FILE *tab)
{
    int n = c->n_ladder, C = c->test.c;
    size_t img = (size_t)C * 1024;
    real *x = malloc(sizeof(real) * n * img), *f = malloc(sizeof(real) * n * c->D);
    real *p = malloc(sizeof(real) * n * c->K);
    int *idx = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) idx[i] = i;
    data_batch(&c->test, x, idx, n, NULL);
    Rng r;
    rng_seed(&r, 9, (uint64_t)(1000 * level));
    if (blur) corrupt_blur(x, (size_t)n * C, level);
    else corrupt_noise(x, (size_t)n * img, level, &r);
    classifier_embed(&c->net, x, n, 250, f, p);
    Scores s;
    IsResult is;
    Error err;
    if (metrics_compare(&s, f, n, c->ftrain, c->n_cal, c->D, 1, &err) ||
        metrics_inception_score(&is, p, n, c->K, 10, &err)) die(&err);
    fprintf(dat, "%g %.6f %.6f %.6f %.4f %.4f\n", level, s.fd.fd, s.kid.kid, s.kid.se, is.is, is.se);
    fprintf(tab, "  %-5s %5.2f   FD %9.4f  KID %8.5f +- %.5f  IS %6.3f +- %.3f\n",
            blur ? "blur" : "noise", level, s.fd.fd, s.kid.kid, s.kid.se, is.is, is.se);
    free(x), free(f), free(p), free(idx);
}

// Writes one ladder; returns 1 if FD and KID both grew at every rung.
static int ladder(Ctx *c, int blur, const double *levels, int n, const char *path, FILE *tab)
{
    FILE *dat = fopen(path, "w");
    fprintf(dat, "# level FD KID SE IS IS_SE\n");
    for (int i = 0; i < n; i++) ladder_rung(c, blur, levels[i], dat, tab);
    fclose(dat);
    // read the rungs back to judge monotonicity
    FILE *in = fopen(path, "r");
    char line[256];
    double lv, fd, kid, last_fd = -1e300, last_kid = -1e300;
    int mono = 1;
    while (fgets(line, sizeof line, in))
        if (line[0] != '#' && sscanf(line, "%lf %lf %lf", &lv, &fd, &kid) == 3) {
            mono &= fd > last_fd && kid > last_kid;
            last_fd = fd, last_kid = kid;
        }
    fclose(in);
    fprintf(tab, "  %s ladder: FD and KID grow at every rung: %s\n", blur ? "blur" : "noise",
            mono ? "yes" : "NO");
    return mono;
}

/* ---- checkpoints: one run's samples at several training steps ---------------- */

// Scores the samples LADDER_DIR/stepS.npy of every S in LADDER_STEPS against
// the training images; returns how many steps it scored.
static int checkpoint_rows(Ctx *c, FILE *tab)
{
    const char *dir = getenv("LADDER_DIR"), *steps = getenv("LADDER_STEPS");
    if (!dir || !*dir || !steps || !*steps) return 0;
    FILE *dat = fopen(out_path("checkpoints", "dat"), "w");
    fprintf(dat, "# step N FD KID SE IS IS_SE\n");
    fprintf(tab, "checkpoints of one run (%s): its samples against %d training images\n",
            dir, c->n_cal);
    int rows = 0;
    for (const char *s = steps; *s;) {
        char *end;
        long step = strtol(s, &end, 10);
        if (end == s) break;
        s = end + strspn(end, " ,");
        char path[1024];
        snprintf(path, sizeof path, "%s/step%ld.npy", dir, step);
        NpyArray a;
        Error err;
        if (npy_read(path, &a, &err)) die(&err);
        int n = a.ndim == 4 ? a.shape[0] : 0;
        if (n <= c->D || a.shape[1] != c->test.c || a.shape[2] != 32 || a.shape[3] != 32) {
            fprintf(stderr, "ch09: %s: want [N > %d, %d, 32, 32] images\n", path, c->D, c->test.c);
            exit(1);
        }
        real *f = malloc(sizeof(real) * n * c->D), *p = malloc(sizeof(real) * n * c->K);
        classifier_embed(&c->net, a.data, n, 250, f, p);
        Scores sc;
        IsResult is;
        if (metrics_compare(&sc, f, n, c->ftrain, c->n_cal, c->D, 1, &err) ||
            metrics_inception_score(&is, p, n, c->K, 10, &err)) die(&err);
        fprintf(dat, "%ld %d %.6f %.6f %.6f %.4f %.4f\n", step, n, sc.fd.fd, sc.kid.kid,
                sc.kid.se, is.is, is.se);
        fprintf(tab, "  step %6ld  N %5d   FD %9.4f  KID %8.5f +- %.5f  IS %6.3f +- %.3f\n",
                step, n, sc.fd.fd, sc.kid.kid, sc.kid.se, is.is, is.se);
        free(f), free(p), npy_free(&a);
        rows++;
    }
    fclose(dat);
    return rows;
}

/* ---- the figure --------------------------------------------------------------- */

static void write_plot(int checkpoints)
{
    FILE *f = fopen(out_path("calibration", "gpi"), "w");
    fprintf(f, "set multiplot layout 1,%d title '%s'\n", checkpoints ? 4 : 3, g_name);
    fprintf(f,
        "set grid\nset key top right\n"
        "set logscale xy\nset xlabel 'N (images per set)'\nset ylabel 'Frechet distance (log)'\n"
        "set y2label 'KID x 1000'\nset y2tics\nset ytics nomirror\n"
        "set title 'Floor: real vs real'\n");
    fprintf(f, "plot '%s' u 1:2 w lp pt 7 t 'FD train vs test', "
               "'' u 1:5 w lp pt 5 t 'FD test vs test', "
               "'' u 1:($3*1000):($4*1000) axes x1y2 w yerrorlines pt 9 t 'KID x 1000, train vs test'\n",
            out_path("floor", "dat"));
    fprintf(f, "unset logscale xy\nset xlabel 'noise sigma (pixels in [-1, 1])'\n"
               "set ylabel 'Frechet distance'\nset y2label 'KID'\nset title 'Noise ladder'\n");
    fprintf(f, "plot '%s' u 1:2 w lp pt 7 t 'FD', '' u 1:3:4 axes x1y2 w yerrorlines pt 9 t 'KID'\n",
            out_path("noise", "dat"));
    fprintf(f, "set xlabel 'blur sigma (pixels)'\nset title 'Blur ladder'\n");
    fprintf(f, "plot '%s' u 1:2 w lp pt 7 t 'FD', '' u 1:3:4 axes x1y2 w yerrorlines pt 9 t 'KID'\n",
            out_path("blur", "dat"));
    if (checkpoints)
        fprintf(f, "set xlabel 'training step'\nset title 'Checkpoints of one run'\nset logscale x\n"
                   "plot '%s' u 1:3 w lp pt 7 t 'FD', '' u 1:4:5 axes x1y2 w yerrorlines pt 9 t 'KID'\n"
                   "unset logscale x\n", out_path("checkpoints", "dat"));
    fprintf(f, "unset multiplot\n");
    fclose(f);
    char gpi[512];
    snprintf(gpi, sizeof gpi, "%s", out_path("calibration", "gpi"));
    f = fopen(out_path("calibration", "gp"), "w");
    int w = checkpoints ? 2000 : 1500;
    fprintf(f, "set terminal pngcairo size %d,470 font 'Sans,10'\n"
               "set output 'figures/ch09_calibration_%s.png'\nload '%s'\n"
               "set terminal svg size %d,470 font 'Sans,10'\n"
               "set output 'figures/ch09_calibration_%s.svg'\nload '%s'\n",
            w, g_tag, gpi, w, g_tag, gpi);
    fclose(f);
}

/* ---- main ------------------------------------------------------------------------ */

static void setup(Ctx *c)
{
    Error err;
    const char *data = getenv("DDPM_DATA");
    data = data && *data ? data : data_default_path();
    if (data_load(&c->train, data, 1, &err) || data_load(&c->test, data, 0, &err)) die(&err);
    const char *cls = getenv("CLASSIFIER");
    if (!cls || !*cls)
        cls = c->train.c == 1 ? "models/classifier_fashion_mnist.safetensors"
                              : "models/classifier_cifar10.safetensors";
    char hex[65];
    if (classifier_load(cls, &c->net, &err) || sha256_file(cls, hex, &err)) die(&err);
    c->D = classifier_feature_dim(&c->net), c->K = c->net.cfg.n_classes;
    c->n_cal = env_int("CAL_N", 10000), c->n_ladder = env_int("LADDER_N", 1000);
    if (c->n_cal > c->test.n) c->n_cal = c->test.n;
    if (c->n_ladder > c->test.n) c->n_ladder = c->test.n;
    set_tag(c->train.name);
    printf("data %s; classifier %s (sha256 %s), %d features\n", c->train.name, cls, hex, c->D);
    c->ftrain = malloc(sizeof(real) * c->n_cal * c->D);
    c->ftest = malloc(sizeof(real) * c->n_cal * c->D);
    double t0 = progress_now();
    classifier_embed_data(&c->net, &c->train, c->n_cal, c->ftrain, NULL);
    classifier_embed_data(&c->net, &c->test, c->n_cal, c->ftest, NULL);
    fprintf(stderr, "features of 2 x %d images in %.0f s\n", c->n_cal, progress_now() - t0);
}

int main(void)
{
    gemm_set_threads(1);
    Ctx c;
    memset(&c, 0, sizeof c);
    setup(&c);
    FILE *tab = fopen(out_path("table", "txt"), "w");
    FILE *dat = fopen(out_path("floor", "dat"), "w");
    floor_rows(&c, dat, tab);
    fclose(dat);
    static const double noise[] = {0, 0.02, 0.05, 0.1, 0.2, 0.4};
    static const double blur[] = {0, 0.5, 0.75, 1, 1.5, 2};
    fprintf(tab, "ladders: the first %d test images, corrupted, against %d training images\n",
            c.n_ladder, c.n_cal);
    char path[512];
    snprintf(path, sizeof path, "%s", out_path("noise", "dat"));
    int ok = ladder(&c, 0, noise, 6, path, tab);
    snprintf(path, sizeof path, "%s", out_path("blur", "dat"));
    ok &= ladder(&c, 1, blur, 6, path, tab);
    int checkpoints = checkpoint_rows(&c, tab);
    fclose(tab);
    write_plot(checkpoints);
    FILE *in = fopen(out_path("table", "txt"), "r");
    char line[256];
    while (fgets(line, sizeof line, in)) fputs(line, stdout);
    fclose(in);
    classifier_free(&c.net);
    data_free(&c.train), data_free(&c.test);
    free(c.ftrain), free(c.ftest);
    (void)ok;   // the verdict is in the table; a rung inside the noise is a finding, not a crash
    return 0;
}
