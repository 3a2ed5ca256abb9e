/* ddpm.c — the command-line program that composes the chapters.
 *
 * (About 1,400 lines, the longest file: one flag parser and usage text per
 * command; the work itself is in the numbered modules.)
 *
 *   ddpm <command> [--flags]     results on stdout, progress on stderr,
 *                                exit status 0 only on success.
 *
 * Each command comes from a chapter: `init`, `forward`, `params` (04),
 * `train`, `bpd` (06), `rd` (07), `sample` (08), `classifier` and `score` (09);
 * plus `version` and `help`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <math.h>
#include <signal.h>

#include "checkpoint.h"
#include "npy.h"
#include "progress.h"
#include "07_ratedist.h"
#include "08_sampler.h"
#include "08_figures.h"
#include "train.h"
#include "09_metrics.h"
#include "classifier.h"
#include "dist.h"
#include "sha256.h"

#define DDPM_VERSION "0.1.0"

typedef struct Command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} Command;

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_params(int argc, char **argv);
static int cmd_init(int argc, char **argv);
static int cmd_forward(int argc, char **argv);
static int cmd_train(int argc, char **argv);
static int cmd_bpd(int argc, char **argv);
static int cmd_rd(int argc, char **argv);
static int cmd_sample(int argc, char **argv);
static int cmd_classifier(int argc, char **argv);
static int cmd_score(int argc, char **argv);

static const Command commands[] = {
    {"train",   "train a model (Algorithm 1): L_simple, the true bound, or hybrid", cmd_train},
    {"sample",  "generate images (Algorithm 2): a PNG grid and an .npy", cmd_sample},
    {"bpd",     "the variational bound in bits/dim on test images", cmd_bpd},
    {"rd",      "rate and distortion of progressive coding (Alg. 3-4, Figure 5)", cmd_rd},
    {"classifier", "train or evaluate the feature network of the scores (chapter 09)", cmd_classifier},
    {"score",   "Frechet distance, KID and the IS analogue of samples (chapter 09)", cmd_score},
    {"init",    "write a freshly initialised U-Net to a checkpoint", cmd_init},
    {"forward", "run the U-Net once: eps_theta(x, t) from .npy files", cmd_forward},
    {"params",  "print the parameter count per block and in total", cmd_params},
    {"version", "print the version, the scalar type and the BLAS in use", cmd_version},
    {"help",    "list the commands", cmd_help},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* ---- flags ------------------------------------------------------------- */

#define NET_FLAGS_HELP \
    "network (defaults from --config; a checkpoint's stored config wins unless\n" \
    "--config is given):\n" \
    "  --config NAME          tiny, small or paper\n" \
    "  --ch N                 base width\n" \
    "  --ch-mult A,B,...      width multiplier per resolution level\n" \
    "  --num-res-blocks N     ResBlocks per level on the way down\n" \
    "  --attn R,... | none    resolutions with self-attention\n" \
    "  --dropout P            dropout probability in training\n" \
    "  --in-ch N, --out-ch N  image channels in and out\n" \
    "  --resolution N         image size\n" \
    "  --groups N             GroupNorm groups\n"

// For the commands that load a trained model.
#define MODEL_NET_FLAGS \
    "A checkpoint that stores no network config (e.g. converted PyTorch weights)\n" \
    "needs the network flags; --config also overrides a stored config.\n" NET_FLAGS_HELP

// The network flags of a command line, applied after --config wherever they appear.
typedef struct NetFlags {
    const char *config;
    const char *key[16], *value[16];
    int n;
} NetFlags;

static int net_flag(NetFlags *nf, const char *flag, const char *value)
{
    static const char *keys[] = {"ch", "ch-mult", "num-res-blocks", "attn", "dropout",
                                 "in-ch", "out-ch", "resolution", "groups"};
    if (!strcmp(flag, "config")) { nf->config = value; return 1; }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(flag, keys[i]) && nf->n < 16) {
            nf->key[nf->n] = keys[i];
            nf->value[nf->n++] = value;
            return 1;
        }
    return 0;
}

static int net_config(const NetFlags *nf, UNetConfig *cfg, Error *err)
{
    if (unet_config(cfg, nf->config ? nf->config : "tiny", err) < 0) return -1;
    for (int i = 0; i < nf->n; i++)
        if (unet_config_set(cfg, nf->key[i], nf->value[i], err) < 0) return -1;
    return unet_config_check(cfg, err);
}

// Walks "--flag value" pairs; `take` returns 1 if it used the flag, 0 if the
// flag is unknown. Returns 0 to go on, 1 after printing help, 2 on misuse.
static int parse_flags(int argc, char **argv, const char *cmd, const char *usage,
                       int (*take)(void *ctx, const char *flag, const char *value), void *ctx)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "ddpm %s: expected --flag value, got '%s' (see ddpm %s --help)\n",
                    cmd, argv[i], cmd);
            return 2;
        }
        for (int j = 1; j < i; j += 2)
            if (!strcmp(argv[j], argv[i])) {
                fprintf(stderr, "ddpm %s: %s is given twice\n", cmd, argv[i]);
                return 2;
            }
        if (!take(ctx, argv[i] + 2, argv[i + 1])) {
            fprintf(stderr, "ddpm %s: unknown flag %s (see ddpm %s --help)\n", cmd, argv[i], cmd);
            return 2;
        }
        i++;
    }
    return 0;
}

static int fail(const char *cmd, const Error *err)
{
    fprintf(stderr, "ddpm %s: %s\n", cmd, err->msg);
    return 1;
}

// A flag's value was refused (exit status 2, as for any misuse).
static int misuse(const char *cmd, const Error *err)
{
    fail(cmd, err);
    return 2;
}

// A decimal number in [lo, hi] (a whole one for the flags that count
// things); strtod alone would also take " 5", "0x10" and "infinity".
static int num(const char *v, double lo, double hi, double *out)
{
    char *end;
    if (!*v || v[strspn(v, "0123456789+-.eE")]) return -1;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !(x >= lo && x <= hi)) return -1;
    *out = x;
    return 0;
}

static int whole(const char *v, double lo, double hi, double *out)
{
    return num(v, lo, hi, out) || *out != floor(*out) ? -1 : 0;
}

// A seed: any whole number 0 .. 2^64-1, exactly (a double would round it).
static int seed_num(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno == ERANGE || v[0] < '0' || v[0] > '9') return -1;
    *out = x;
    return 0;
}

/* ---- ddpm params ---------------------------------------------------------- */

static int take_net(void *ctx, const char *flag, const char *value)
{
    return net_flag(ctx, flag, value);
}

// The block a parameter belongs to: its name cut before the field inside
// the block (down.0.block.1, down.0.downsample, mid.attn_1, temb, conv_in).
static void block_of(const char *name, char *out, size_t len)
{
    int parts = 1;
    if (!strncmp(name, "down.", 5) || !strncmp(name, "up.", 3))
        parts = strstr(name, ".block.") || strstr(name, ".attn.") ? 4 : 3;
    else if (!strncmp(name, "mid.", 4))
        parts = 2;
    size_t i = 0;
    for (int dots = 0; name[i] && i + 1 < len; i++) {
        if (name[i] == '.' && ++dots == parts) break;
        out[i] = name[i];
    }
    out[i] = 0;
}

static void print_count(const char *what, size_t n)
{
    char digits[32], out[48];
    int len = snprintf(digits, sizeof digits, "%zu", n), k = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
    printf("%-28s %12s\n", what, out);
}

static int cmd_params(int argc, char **argv)
{
    NetFlags nf = {0};
    int rc = parse_flags(argc, argv, "params",
                         "usage: ddpm params [--config NAME] [network flags]\n\n"
                         "Print the U-Net's parameter count per block and in total.\n\n"
                         NET_FLAGS_HELP, take_net, &nf);
    if (rc) return rc == 1 ? 0 : rc;
    UNetConfig cfg;
    Error err;
    if (net_config(&nf, &cfg, &err) < 0) return misuse("params", &err);
    UNet net;
    unet_build(&net, &cfg);
    char desc[256], block[64], prev[64] = "";
    unet_config_str(&cfg, desc, sizeof desc);
    printf("# %s\n", desc);
    size_t sum = 0;
    for (int i = 0; i < net.params.count; i++) {
        const Tensor *p = net.params.params[i];
        block_of(p->name, block, sizeof block);
        if (strcmp(block, prev) && prev[0]) { print_count(prev, sum); sum = 0; }
        strcpy(prev, block);
        sum += p->size;
    }
    print_count(prev, sum);
    print_count("total", net.params.total);
    unet_free(&net);
    return 0;
}

/* ---- ddpm init ------------------------------------------------------------ */

typedef struct InitFlags {
    NetFlags net;
    const char *out;
    unsigned long long seed;
    int bad_seed;
} InitFlags;

static int take_init(void *ctx, const char *flag, const char *value)
{
    InitFlags *f = ctx;
    if (!strcmp(flag, "out")) f->out = value;
    else if (!strcmp(flag, "seed")) f->bad_seed = seed_num(value, &f->seed);
    else return net_flag(&f->net, flag, value);
    return 1;
}

static int cmd_init(int argc, char **argv)
{
    InitFlags f = {0};
    int rc = parse_flags(argc, argv, "init",
                         "usage: ddpm init --out M.safetensors [--seed S] [--config NAME] "
                         "[network flags]\n\n"
                         "Write a U-Net initialised as in the paper's code (fan-avg uniform;\n"
                         "the last conv of every residual branch and conv_out near zero).\n\n"
                         NET_FLAGS_HELP, take_init, &f);
    if (rc) return rc == 1 ? 0 : rc;
    Error err;
    if (!f.out) { fprintf(stderr, "ddpm init: --out is required\n"); return 2; }
    if (f.bad_seed) { fprintf(stderr, "ddpm init: --seed takes a whole number\n"); return 2; }
    UNetConfig cfg;
    if (net_config(&f.net, &cfg, &err) < 0) return misuse("init", &err);
    UNet net;
    unet_build(&net, &cfg);
    Rng rng;
    rng_seed(&rng, f.seed, 0);
    unet_init_weights(&net, &rng);
    rc = ckpt_save(f.out, &net, NULL, 0, NULL, 0, &err);
    if (rc == 0) printf("wrote %s: %s config, %zu parameters, seed %llu\n", f.out, cfg.name,
                        net.params.total, f.seed);
    unet_free(&net);
    return rc < 0 ? fail("init", &err) : 0;
}

/* ---- ddpm forward ------------------------------------------------------------ */

#define FORWARD_CHUNK 64   // images per network call

typedef struct ForwardFlags {
    NetFlags net;
    const char *ckpt, *x, *t, *out;
} ForwardFlags;

static int take_forward(void *ctx, const char *flag, const char *value)
{
    ForwardFlags *f = ctx;
    if (!strcmp(flag, "ckpt")) f->ckpt = value;
    else if (!strcmp(flag, "x")) f->x = value;
    else if (!strcmp(flag, "t")) f->t = value;
    else if (!strcmp(flag, "out")) f->out = value;
    else return net_flag(&f->net, flag, value);
    return 1;
}

// x must be [N, in_ch, R, R] and t [N] whole numbers in 0..9999.
static int check_inputs(const ForwardFlags *f, const NpyArray *x, const NpyArray *t,
                        const UNetConfig *c, int *ts, Error *err)
{
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != c->in_ch ||
        x->shape[2] != c->resolution || x->shape[3] != c->resolution)
        return error_set(err, "%s: x must have shape [N, %d, %d, %d], N >= 1, for this network",
                         f->x, c->in_ch, c->resolution, c->resolution);
    if (t->ndim != 1 || t->shape[0] != x->shape[0])
        return error_set(err, "%s: t must have shape [%d], one timestep per image", f->t,
                         (int)x->shape[0]);
    for (size_t i = 0; i < t->size; i++) {
        real v = t->data[i];
        if (!(v >= 0 && v < 10000) || v != (int)v)
            return error_set(err, "%s: t[%zu] = %g is not a whole number in 0..9999", f->t, i,
                             (double)v);
        ts[i] = (int)v;
    }
    return 0;
}

static int cmd_forward(int argc, char **argv)
{
    ForwardFlags f = {0};
    int rc = parse_flags(argc, argv, "forward",
                         "usage: ddpm forward --ckpt M.safetensors --x X.npy --t T.npy --out Y.npy\n"
                         "                    [--config NAME] [network flags]\n\n"
                         "Run the network once in evaluation mode (no dropout) and write\n"
                         "eps_theta(x, t) as .npy. x: [N, C, H, W] float; t: [N] integer code\n"
                         "timesteps 0..T-1.\n\n" NET_FLAGS_HELP, take_forward, &f);
    if (rc) return rc == 1 ? 0 : rc;
    if (!f.ckpt || !f.x || !f.t || !f.out) {
        fprintf(stderr, "ddpm forward: --ckpt, --x, --t and --out are required\n");
        return 2;
    }
    Error err;
    UNetConfig cfg;
    if (net_config(&f.net, &cfg, &err) < 0) return misuse("forward", &err);
    UNet net;
    if (ckpt_load(f.ckpt, &net, &cfg, f.net.config != NULL, &err) < 0) return fail("forward", &err);
    NpyArray x = {0}, t = {0};
    int *ts = NULL;
    rc = -1;
    if (npy_read(f.x, &x, &err) == 0 && npy_read(f.t, &t, &err) == 0 &&
        ((ts = malloc(sizeof(int) * (t.size + 1))) ||
         error_set(&err, "%s: out of memory for %zu timesteps", f.t, t.size) == 0) &&
        check_inputs(&f, &x, &t, &net.cfg, ts, &err) == 0) {
        // FORWARD_CHUNK images at a time: the activations of a whole large
        // file at once could exhaust memory.
        int N = (int)x.shape[0], C = (int)x.shape[1], R = (int)x.shape[2];
        int shape[4] = {N, net.cfg.out_ch, R, R};
        size_t din = (size_t)C * R * R, dout = (size_t)net.cfg.out_ch * R * R;
        real *out = malloc(sizeof(real) * (size_t)N * dout);
        if (!out) rc = error_set(&err, "%s: out of memory for %d outputs", f.x, N);
        Arena arena;
        arena_init(&arena, 64 << 20);
        Tape tp;
        tape_init(&tp, &arena);
        tape_set_recording(&tp, 0);
        for (int n0 = 0; out && n0 < N; n0 += FORWARD_CHUNK) {
            int n = N - n0 < FORWARD_CHUNK ? N - n0 : FORWARD_CHUNK;
            Tensor *in = tensor_4d(&arena, n, C, R, R);
            vec_copy(in->data, x.data + (size_t)n0 * din, in->size);
            Tensor *y = unet_forward(&tp, &net, in, ts + n0, NULL, 0);
            vec_copy(out + (size_t)n0 * dout, y->data, y->size);
            tape_reset(&tp);
            arena_reset(&arena);
        }
        if (out) rc = npy_write(f.out, out, 4, shape, &err);
        if (rc == 0) printf("wrote %s [%d,%d,%d,%d]\n", f.out, shape[0], shape[1], shape[2],
                            shape[3]);
        free(out);
        tape_free(&tp);
        arena_free(&arena);
    }
    free(ts);
    npy_free(&x);
    npy_free(&t);
    unet_free(&net);
    return rc < 0 ? fail("forward", &err) : 0;
}

/* ---- ddpm train -------------------------------------------------------------- */

typedef struct TrainFlags {
    NetFlags net;
    TrainConfig tc;
    const char *data, *resume, *mean, *var, *loss;
    int T, warmup_given, bad;
    const char *given[64];   // the flags on the command line (checked against --resume)
    int n_given;
} TrainFlags;

static int take_train(void *ctx, const char *flag, const char *v)
{
    TrainFlags *f = ctx;
    TrainConfig *c = &f->tc;
    double x = 0;
    int bad = 0;
    if (f->n_given < 64) f->given[f->n_given++] = flag;
    if (!strcmp(flag, "data")) f->data = v;
    else if (!strcmp(flag, "out")) c->out_dir = v;
    else if (!strcmp(flag, "resume")) f->resume = v;
    else if (!strcmp(flag, "mean")) f->mean = v;
    else if (!strcmp(flag, "var")) f->var = v;
    else if (!strcmp(flag, "loss")) f->loss = v;
    else if (!strcmp(flag, "steps")) { bad = whole(v, 1, TRAIN_MAX_STEPS, &x); c->steps = (long)x; }
    else if (!strcmp(flag, "minutes")) { bad = num(v, 0.01, 1e6, &x); c->minutes = x; }
    else if (!strcmp(flag, "batch")) { bad = whole(v, 1, TRAIN_MAX_BATCH, &x); c->batch = (int)x; }
    else if (!strcmp(flag, "lr")) { bad = num(v, 0, 1, &x); c->lr = x; }
    else if (!strcmp(flag, "warmup")) { bad = whole(v, 0, TRAIN_MAX_STEPS, &x); c->warmup = (long)x; f->warmup_given = 1; }
    else if (!strcmp(flag, "clip")) { bad = num(v, 0, 1e9, &x); c->grad_clip = x; }
    else if (!strcmp(flag, "ema")) { bad = num(v, 0, 1, &x); c->ema_decay = x; }
    else if (!strcmp(flag, "seed")) bad = seed_num(v, &c->seed);
    else if (!strcmp(flag, "flip")) { bad = whole(v, 0, 1, &x); c->flip = (int)x; }
    else if (!strcmp(flag, "ckpt-every")) { bad = whole(v, 0, TRAIN_MAX_STEPS, &x); c->ckpt_every = (long)x; }
    else if (!strcmp(flag, "T")) { bad = whole(v, 2, TRAIN_MAX_T, &x); f->T = (int)x; }
    else if (!net_flag(&f->net, flag, v)) { f->n_given--; return 0; }
    if (bad) {
        fprintf(stderr, "ddpm train: bad value '%s' for --%s\n", v, flag);
        f->bad = 1;
    }
    return 1;
}

#define TRAIN_USAGE \
    "usage: ddpm train [--data PATH] [--out DIR] [--steps N | --minutes M] [flags]\n\n" \
    "Train eps_theta with Algorithm 1. Writes DIR/ckpt.safetensors (weights, Adam,\n" \
    "EMA, step, settings; atomically, every --ckpt-every steps and at the end) and\n" \
    "DIR/log.csv. Ctrl-C saves and stops; --resume continues a run exactly.\n\n" \
    "  --data PATH          CIFAR-10 batches, MNIST IDX or PNG folder (default: $DDPM_DATA,\n" \
    "                       build/data/cifar-10-batches-bin, else Fashion-MNIST)\n" \
    "  --out DIR            output folder (build/run)\n" \
    "  --steps N            stop after N steps in total\n" \
    "  --minutes M          ... or after M minutes of training\n" \
    "  --batch B            images per step (32; the paper: 128)\n" \
    "  --lr LR              Adam learning rate (2e-4)\n" \
    "  --warmup N           linear warm-up steps (the paper: 5000; default min(5000, steps/10))\n" \
    "  --clip C             gradient-norm clip (1.0)\n" \
    "  --ema D              EMA decay of the weights (0.999; the paper: 0.9999)\n" \
    "  --loss L             simple (Eq. 14) | vlb (the true bound) | hybrid\n" \
    "  --mean M             eps | x0 | mu: what the network predicts\n" \
    "  --var V              fixedlarge (beta) | fixedsmall (beta~) | learned\n" \
    "  --T N                diffusion steps (1000)\n" \
    "  --seed S, --flip 0|1, --ckpt-every N, --resume CKPT\n" \
    "  (--resume continues with the checkpoint's settings, T included: a flag that\n" \
    "  contradicts them is refused; --steps, --minutes, --out, --ckpt-every and\n" \
    "  --data apply)\n\n" NET_FLAGS_HELP

static int load_data(const char *cmd, const char *path, int train, Dataset *d)
{
    Error err;
    if (!path || !*path) path = data_default_path();
    if (data_load(d, path, train, &err) < 0) return fail(cmd, &err);
    fprintf(stderr, "data: %s, %s split, %d images of %dx%dx%d (%s)\n", d->name,
            train ? "training" : "test", d->n, d->c, d->h, d->w, d->path);
    return 0;
}

static int given(const TrainFlags *f, const char *flag)
{
    for (int i = 0; i < f->n_given; i++)
        if (!strcmp(f->given[i], flag)) return 1;
    return 0;
}

static int same_g(double a, double b)   // equal as the checkpoint stores them (%.9g)
{
    char x[64], y[64];
    snprintf(x, sizeof x, "%.9g", a);
    snprintf(y, sizeof y, "%.9g", b);
    return !strcmp(x, y);
}

// On --resume the run continues with the checkpoint's settings: a flag that
// says otherwise is refused, naming the checkpoint's value (the budget,
// --out, --ckpt-every and --data are honoured). Returns 0 or 2.
static int resume_conflicts(const TrainFlags *f, const Trainer *tr, const Diffusion *df)
{
    const TrainConfig *a = &f->tc, *b = &tr->cfg;
    char have[128] = "";
    const char *flag = NULL;
    if (given(f, "batch") && a->batch != b->batch)
        flag = "batch", snprintf(have, sizeof have, "%d", b->batch);
    else if (given(f, "lr") && !same_g(a->lr, b->lr))
        flag = "lr", snprintf(have, sizeof have, "%.9g", b->lr);
    else if (given(f, "warmup") && a->warmup != b->warmup)
        flag = "warmup", snprintf(have, sizeof have, "%ld", b->warmup);
    else if (given(f, "clip") && !same_g(a->grad_clip, b->grad_clip))
        flag = "clip", snprintf(have, sizeof have, "%.9g", b->grad_clip);
    else if (given(f, "ema") && !same_g(a->ema_decay, b->ema_decay))
        flag = "ema", snprintf(have, sizeof have, "%.9g", b->ema_decay);
    else if (given(f, "seed") && a->seed != b->seed)
        flag = "seed", snprintf(have, sizeof have, "%llu", b->seed);
    else if (given(f, "flip") && a->flip != b->flip)
        flag = "flip", snprintf(have, sizeof have, "%d", b->flip);
    else if (given(f, "T") && f->T != tr->sched.T)
        flag = "T", snprintf(have, sizeof have, "%d", tr->sched.T);
    else if (given(f, "mean") && df->mean != tr->df.mean)
        flag = "mean", snprintf(have, sizeof have, "%s", mean_type_name(tr->df.mean));
    else if (given(f, "var") && df->var != tr->df.var)
        flag = "var", snprintf(have, sizeof have, "%s", var_type_name(tr->df.var));
    else if (given(f, "loss") && df->loss != tr->df.loss)
        flag = "loss", snprintf(have, sizeof have, "%s", loss_type_name(tr->df.loss));
    if (flag) {
        fprintf(stderr, "ddpm train: --%s conflicts with %s, which was trained with %s = %s; "
                        "a resumed run keeps the checkpoint's settings (drop --%s, or start "
                        "a new run)\n", flag, f->resume, flag, have, flag);
        return 2;
    }
    if (f->net.config || f->net.n) {   // the network flags must describe the stored network
        UNetConfig c = tr->net.cfg, want;
        Error err;
        int bad = f->net.config && unet_config(&c, f->net.config, &err) < 0;
        if (f->net.config) {   // the data set and --var set these, not the config
            c.in_ch = tr->net.cfg.in_ch;
            c.out_ch = tr->net.cfg.out_ch;
        }
        for (int i = 0; i < f->net.n && !bad; i++)
            bad = unet_config_set(&c, f->net.key[i], f->net.value[i], &err) < 0;
        if (bad) {
            fail("train", &err);
            return 2;
        }
        want = tr->net.cfg;
        snprintf(c.name, sizeof c.name, "%s", want.name);
        char d1[256], d2[256];
        unet_config_str(&c, d1, sizeof d1);
        unet_config_str(&want, d2, sizeof d2);
        if (strcmp(d1, d2)) {
            fprintf(stderr, "ddpm train: the network flags describe %s, but %s holds %s; drop "
                            "them on --resume\n", d1, f->resume, d2);
            return 2;
        }
    }
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    TrainFlags f = {0};
    train_config_default(&f.tc);
    f.tc.batch = 32;
    f.tc.ema_decay = 0.999;
    f.T = 1000;
    int rc = parse_flags(argc, argv, "train", TRAIN_USAGE, take_train, &f);
    if (rc || f.bad) return rc == 1 ? 0 : 2;
    if (!f.resume && f.tc.steps <= 0 && f.tc.minutes <= 0) {
        fprintf(stderr, "ddpm train: give a budget: --steps N and/or --minutes M\n");
        return 2;
    }
    if (!f.warmup_given) f.tc.warmup = f.tc.steps > 0 ? (f.tc.steps / 10 < 5000 ? f.tc.steps / 10 : 5000) : 200;
    Error err;
    Dataset data;
    if (load_data("train", f.data, 1, &data)) return 1;
    UNetConfig ucfg;
    Diffusion df;
    if (net_config(&f.net, &ucfg, &err) < 0 ||
        diffusion_parse(&df, f.mean ? f.mean : "eps", f.var ? f.var : "fixedlarge",
                        f.loss ? f.loss : "simple", &err) < 0) {
        data_free(&data);
        return misuse("train", &err);
    }
    ucfg.in_ch = data.c;
    Trainer tr;
    if (trainer_init(&tr, &ucfg, &df, f.T, &f.tc, f.resume, &err) < 0) {
        data_free(&data);
        return fail("train", &err);
    }
    if (f.resume && (rc = resume_conflicts(&f, &tr, &df))) {
        trainer_free(&tr);
        data_free(&data);
        return rc;
    }
    if (tr.net.cfg.in_ch != data.c || tr.net.cfg.resolution != data.h) {
        error_set(&err, "the model takes %dx%dx%d images but %s has %dx%dx%d", tr.net.cfg.in_ch,
                  tr.net.cfg.resolution, tr.net.cfg.resolution, data.name, data.c, data.h, data.w);
        rc = 1;
    } else {
        char desc[256];
        unet_config_str(&tr.net.cfg, desc, sizeof desc);
        fprintf(stderr, "model: %s; %zu parameters\n", desc, tr.net.params.total);
        fprintf(stderr, "training: from step %ld, batch %d, lr %g, warm-up %ld, clip %g, EMA %g, "
                        "seed %llu -> %s/\n", tr.step, tr.cfg.batch, tr.cfg.lr, tr.cfg.warmup,
                tr.cfg.grad_clip, tr.cfg.ema_decay, tr.cfg.seed, tr.cfg.out_dir);
        rc = train_run(&tr, &data, &err) < 0;
        if (!rc) printf("trained to step %ld, last loss %.5f: %s/ckpt.safetensors, %s/log.csv\n",
                        tr.step, tr.last_loss, tr.cfg.out_dir, tr.cfg.out_dir);
    }
    trainer_free(&tr);
    data_free(&data);
    return rc ? fail("train", &err) : 0;
}

/* ---- ddpm bpd ------------------------------------------------------------------ */

// The flags of the commands that load a trained model: ddpm bpd and rd use
// all of them, ddpm sample the shared ones (take_model_flag) and its own.
typedef struct BpdFlags {
    const char *cmd, *ckpt, *data, *csv;
    int n, batch, clip, ema, bad, train;   // train: --split train (bpd, rd)
    unsigned long long seed;
    NetFlags net;   // for a checkpoint that stores no config (a converted state_dict)
} BpdFlags;

// A number in [lo, hi] for --flag, or a message and f->bad set.
static double flag_num(BpdFlags *f, const char *flag, const char *v, double lo, double hi)
{
    double x = 0;
    if (whole(v, lo, hi, &x)) {
        fprintf(stderr, "ddpm %s: bad value '%s' for --%s\n", f->cmd, v, flag);
        f->bad = 1;
    }
    return x;
}

// --ckpt, --n, --batch, --clip, --ema, --seed; 0 if the flag is another one.
static int take_model_flag(BpdFlags *f, const char *flag, const char *v)
{
    if (!strcmp(flag, "ckpt")) f->ckpt = v;
    else if (!strcmp(flag, "n")) f->n = (int)flag_num(f, flag, v, 1, 1e7);
    else if (!strcmp(flag, "batch")) f->batch = (int)flag_num(f, flag, v, 1, TRAIN_MAX_BATCH);
    else if (!strcmp(flag, "clip")) f->clip = (int)flag_num(f, flag, v, 0, 1);
    else if (!strcmp(flag, "ema")) f->ema = (int)flag_num(f, flag, v, 0, 1);
    else if (!strcmp(flag, "seed")) {
        if (seed_num(v, &f->seed)) {
            fprintf(stderr, "ddpm %s: bad value '%s' for --seed\n", f->cmd, v);
            f->bad = 1;
        }
    } else return net_flag(&f->net, flag, v);
    return 1;
}

// The checkpoint's model; the network flags, when given, describe a file
// that stores no config (and --config overrides a stored one, as in forward).
static int model_load(const BpdFlags *f, TrainedModel *m, Error *err)
{
    if (!f->net.config && !f->net.n) return trained_model_load(m, f->ckpt, f->ema, err);
    UNetConfig cfg;
    if (net_config(&f->net, &cfg, err) < 0) return -2;
    return trained_model_load_cfg(m, f->ckpt, f->ema, &cfg, f->net.config != NULL, err);
}

static int take_bpd(void *ctx, const char *flag, const char *v)
{
    BpdFlags *f = ctx;
    if (!strcmp(flag, "data")) f->data = v;
    else if (!strcmp(flag, "csv")) f->csv = v;
    else if (!strcmp(flag, "split")) {
        f->train = !strcmp(v, "train");
        if (!f->train && strcmp(v, "test")) {
            fprintf(stderr, "ddpm %s: bad value '%s' for --split (test or train)\n", f->cmd, v);
            f->bad = 1;
        }
    } else return take_model_flag(f, flag, v);
    return 1;
}

static int write_bpd_csv(const char *path, const BpdResult *r, Error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return error_set(err, "%s: cannot write (%s)", path, strerror(errno));
    double m, se, *col = malloc(sizeof(double) * (size_t)r->N);
    if (!col) {
        fclose(f);
        return error_set(err, "%s: out of memory", path);
    }
    rd_mean_se(r->prior, r->N, &m, &se);
    fprintf(f, "# prior_bpd=%.8f prior_se=%.8f images=%d\n", m, se, r->N);
    fprintf(f, "t,term_bpd,term_se,mse_x0\n");
    for (int t = 0; t < r->T; t++) {
        double mm, ms;
        for (int n = 0; n < r->N; n++) col[n] = r->terms[(size_t)t * r->N + n];
        rd_mean_se(col, r->N, &m, &se);
        for (int n = 0; n < r->N; n++) col[n] = r->mse[(size_t)t * r->N + n];
        rd_mean_se(col, r->N, &mm, &ms);
        fprintf(f, "%d,%.8f,%.8f,%.8f\n", t, m, se, mm);
    }
    free(col);
    return fclose(f) == 0 ? 0 : error_set(err, "%s: write failed", path);
}

// What ddpm bpd and ddpm rd evaluate: the checkpoint's network (its EMA
// weights unless --ema 0), its diffusion, and the first n test images.
typedef struct EvalSet {
    TrainedModel m;
    Dataset data;
    real *x0;   // [n, c, h, w]
    int n;
} EvalSet;

static void eval_close(EvalSet *e)
{
    free(e->x0);
    data_free(&e->data);
    trained_model_free(&e->m);
}

static int eval_open(const BpdFlags *f, EvalSet *e)
{
    Error err;
    memset(e, 0, sizeof *e);
    int rc = model_load(f, &e->m, &err);
    if (rc < 0) return rc == -2 ? misuse(f->cmd, &err) : fail(f->cmd, &err);
    if (load_data(f->cmd, f->data, f->train, &e->data)) { eval_close(e); return 1; }
    if (e->data.c != e->m.net.cfg.in_ch || e->data.h != e->m.net.cfg.resolution) {
        error_set(&err, "%s: the model takes %dx%dx%d images but %s has %dx%dx%d", f->ckpt,
                  e->m.net.cfg.in_ch, e->m.net.cfg.resolution, e->m.net.cfg.resolution,
                  e->data.name, e->data.c, e->data.h, e->data.w);
        eval_close(e);
        return fail(f->cmd, &err);
    }
    e->n = f->n < e->data.n ? f->n : e->data.n;
    e->x0 = malloc(sizeof(real) * (size_t)e->n * e->data.c * e->data.h * e->data.w);
    int *idx = malloc(sizeof(int) * (size_t)e->n);
    if (!e->x0 || !idx) {
        free(idx);
        error_set(&err, "--n %d: out of memory for that many test images", e->n);
        eval_close(e);
        return fail(f->cmd, &err);
    }
    for (int i = 0; i < e->n; i++) idx[i] = i;
    data_batch(&e->data, e->x0, idx, e->n, NULL);
    free(idx);
    fprintf(stderr, "%s: %d images, T = %d, %s weights, x0_pred %sclipped\n", f->cmd, e->n,
            e->m.sched.T, e->m.ema ? "EMA" : "raw", f->clip ? "" : "not ");
    return 0;
}

// The bound's terms for every image and t (calc_bpd_loop), with a progress
// line: all that ddpm bpd and ddpm rd compute.
static int eval_bound(const BpdFlags *f, const EvalSet *e, BpdResult *r, Error *err)
{
    Rng rng;
    rng_seed(&rng, f->seed, 0);
    Progress pr;
    progress_start(&pr, f->cmd, 0, 0);
    Model model = unet_model(&e->m.net);
    int rc = dist_calc_bpd_loop(&e->m.df, &model, e->x0, e->n, e->data.c, e->data.h, e->data.w,
                           f->batch, &rng, f->clip, r, progress_callback, &pr, err);
    if (rc == 0) progress_end(&pr, pr.total, NULL);
    return rc;
}

static int cmd_bpd(int argc, char **argv)
{
    BpdFlags f = {.cmd = "bpd", .n = 100, .batch = 50, .clip = 1, .ema = 1};
    int rc = parse_flags(argc, argv, "bpd",
        "usage: ddpm bpd --ckpt M [--data PATH] [--n N] [--batch B] [--clip 0|1] [--ema 0|1]\n"
        "                [--seed S] [--csv FILE] [--split test|train]\n\n"
        "The variational bound (Eq. 5) in bits/dim on the first N test images (100):\n"
        "all T terms, a fresh x_t for every t (the official calc_bpd_loop), x0_pred\n"
        "clipped to [-1, 1] unless --clip 0, the EMA weights when the checkpoint has\n"
        "them unless --ema 0. Prints total, prior (L_T), terms (L_1..L_{T-1}) and\n"
        "decoder (L_0) with standard errors over images; --csv writes the per-t terms\n"
        "and the per-t mean squared error of x0_pred (chapter 07 reads it). --split train\n"
        "takes the first N training images instead (Table 1's train column).\n\n"
        MODEL_NET_FLAGS, take_bpd, &f);
    if (rc || f.bad) return rc == 1 ? 0 : 2;
    if (!f.ckpt) { fprintf(stderr, "ddpm bpd: --ckpt is required\n"); return 2; }
    EvalSet e;
    if ((rc = eval_open(&f, &e))) return rc;
    Error err;
    BpdResult r;
    rc = eval_bound(&f, &e, &r, &err);
    if (rc == 0) {
        int n = e.n;
        double *col = malloc(sizeof(double) * (size_t)n), m, se;
        if (!col) {
            bpd_result_free(&r);
            eval_close(&e);
            error_set(&err, "--n %d: out of memory", n);
            return fail("bpd", &err);
        }
        printf("# %s, %d %s images, %s\n", f.ckpt, n, f.train ? "training" : "test", e.data.name);
        rd_mean_se(r.total, n, &m, &se);
        printf("total   %.5f +- %.5f bits/dim\n", m, se);
        rd_mean_se(r.prior, n, &m, &se);
        printf("prior   %.5f +- %.5f bits/dim\n", m, se);
        for (int i = 0; i < n; i++) {
            col[i] = 0;
            for (int t = 1; t < r.T; t++) col[i] += r.terms[(size_t)t * n + i];
        }
        rd_mean_se(col, n, &m, &se);
        printf("terms   %.5f +- %.5f bits/dim\n", m, se);
        rd_mean_se(r.terms, n, &m, &se);   // code t = 0: the decoder
        printf("decoder %.5f +- %.5f bits/dim\n", m, se);
        free(col);
        if (f.csv && write_bpd_csv(f.csv, &r, &err) < 0) rc = -1;
        else if (f.csv) fprintf(stderr, "wrote %s\n", f.csv);
        bpd_result_free(&r);
    }
    eval_close(&e);
    return rc < 0 ? fail("bpd", &err) : 0;
}

/* ---- ddpm rd ------------------------------------------------------------------- */

static int cmd_rd(int argc, char **argv)
{
    BpdFlags f = {.cmd = "rd", .n = 100, .batch = 50, .clip = 1, .ema = 1};
    int rc = parse_flags(argc, argv, "rd",
        "usage: ddpm rd --ckpt M [--data PATH] [--n N] [--batch B] [--seed S] [--clip 0|1]\n"
        "               [--ema 0|1] [--split test|train] --csv FILE\n\n"
        "Progressive lossy coding (Algorithms 3 and 4, Figure 5, Table 4): after k of\n"
        "the T reverse steps the receiver has been sent L_T + L_{T-1} + ... bits/dim\n"
        "(the rate) and holds x_t, t = T - k + 1, from which it predicts x0 (the\n"
        "distortion: RMSE of x0_pred on [0, 255] over all N images). The numbers come\n"
        "from the same loop as ddpm bpd (same flags and defaults; the same seed gives\n"
        "the same bound). --csv writes the whole curve, one row per k; stdout gets the\n"
        "summary and the rows of Table 4 next to the paper's values.\n\n"
        MODEL_NET_FLAGS, take_bpd, &f);
    if (rc || f.bad) return rc == 1 ? 0 : 2;
    if (!f.ckpt || !f.csv) { fprintf(stderr, "ddpm rd: --ckpt and --csv are required\n"); return 2; }
    EvalSet e;
    if ((rc = eval_open(&f, &e))) return rc;
    Error err;
    BpdResult r;
    rc = eval_bound(&f, &e, &r, &err);
    if (rc == 0) {
        RDCurve rd;
        rd_from_bpd(&rd, &r);   // what rate_distortion does
        bpd_result_free(&r);
        printf("# %s, %d test images, %s; paper: CIFAR-10, 35.7M params\n", f.ckpt, e.n,
               e.data.name);
        rd_print_summary(stdout, &rd);
        rc = rd_write_csv(f.csv, &rd, &err);
        if (rc == 0) fprintf(stderr, "wrote %s\n", f.csv);
        rd_free(&rd);
    }
    eval_close(&e);
    return rc < 0 ? fail("rd", &err) : 0;
}

/* ---- ddpm sample --------------------------------------------------------------- */

typedef struct SampleFlags {
    BpdFlags m;   // --ckpt --n --batch --clip --ema --seed
    const char *out, *var, *progressive, *classifier, *shared, *interp;
    int cols, every, score;
} SampleFlags;

static int score_samples(const char *samples, const char *data, const char *classifier);

static int take_sample(void *ctx, const char *flag, const char *v)
{
    SampleFlags *f = ctx;
    if (!strcmp(flag, "out")) f->out = v;
    else if (!strcmp(flag, "var")) f->var = v;
    else if (!strcmp(flag, "progressive")) f->progressive = v;
    else if (!strcmp(flag, "shared")) f->shared = v;
    else if (!strcmp(flag, "interp")) f->interp = v;
    else if (!strcmp(flag, "cols")) f->cols = (int)flag_num(&f->m, flag, v, 1, 1000);
    else if (!strcmp(flag, "every")) f->every = (int)flag_num(&f->m, flag, v, 1, 1e6);
    else if (!strcmp(flag, "score")) f->score = (int)flag_num(&f->m, flag, v, 0, 1);
    else if (!strcmp(flag, "classifier")) f->classifier = v;
    else if (!strcmp(flag, "data")) f->m.data = v;
    else return take_model_flag(&f->m, flag, v);
    return 1;
}

#define SAMPLE_USAGE \
    "usage: ddpm sample --ckpt M [--n N] [--out FILE.png] [--seed S] [--ema 0|1]\n" \
    "                   [--clip 0|1] [--var fixedlarge|fixedsmall] [--batch B]\n" \
    "                   [--cols C] [--progressive FILE.png] [--every K]\n" \
    "                   [--shared FILE.png] [--interp FILE.png]\n\n" \
    "Generate N images (64) with Algorithm 2: x_T ~ N(0, I), then T steps of the\n" \
    "learned reverse process. Writes a PNG grid (samples.png) and the images as\n" \
    "an .npy next to it ([N, C, H, W] float32 in [-1, 1]). Image i depends only on\n" \
    "--seed and i, so --n 16 gives the first 16 of --n 64.\n\n" \
    "  --ema 0|1          the EMA weights when the checkpoint has them (1)\n" \
    "  --clip 0|1         clip x0_hat to [-1, 1] before the posterior mean, as the\n" \
    "                     official code does (1); 0 is the paper's Algorithm 2 as printed\n" \
    "  --var V            sigma_t^2 = beta_t (fixedlarge) or beta~_t (fixedsmall);\n" \
    "                     default: what the model was trained with\n" \
    "  --progressive F    also write x0_hat (Eq. 15) every K steps of the first\n" \
    "                     8 images to F, one row per image (Figure 6)\n" \
    "  --every K          steps between those snapshots (100)\n" \
    "  --shared F         also write Figure 7 to F: rows branch at t = T, 3T/4, T/2,\n" \
    "                     T/4: x0_hat, the shared x_t, 6 samples that continue from it\n" \
    "  --interp F         also write Figure 8 to F: test images 0 and 1 of --data,\n" \
    "                     9 mixes of their x_t ~ q at t = T/10, T/4, T/2, 3T/4, decoded\n" \
    "  --batch B          images per network call (32); --cols C grid columns\n" \
    "  --score 0|1        then score the .npy as `ddpm score` does against the test\n" \
    "                     split of --data PATH (0); --classifier F as in ddpm score\n\n" \
    MODEL_NET_FLAGS

// FILE.png -> FILE.npy (or FILE + .npy).
static void npy_path(const char *png, char *out, size_t len)
{
    size_t n = strlen(png);
    if (n > 4 && !strcmp(png + n - 4, ".png")) n -= 4;
    snprintf(out, len, "%.*s.npy", (int)n, png);
}

// Snapshots [S, N, ...] of the first P images, reordered into rows (one per image).
static int write_progressive(const char *path, const real *snaps, int S, int N, int P,
                             int C, int H, int W, Error *err)
{
    size_t D = (size_t)C * H * W;
    real *grid = malloc(sizeof(real) * (size_t)S * P * D);
    if (!grid) return error_set(err, "%s: out of memory for the progressive grid", path);
    sample_snapshot_rows(grid, snaps, S, N, P, D);
    int rc = image_write_grid(path, grid, S * P, C, H, W, S, err);
    free(grid);
    return rc;
}

// Figures 7 and 8 (--shared, --interp) from the sampler of ddpm sample.
static int write_figures(const SampleFlags *f, const Sampler *sm, int C, int R, Error *err)
{
    enum { K = 6, L = 9, ROWS = 4 };
    int T = sm->df->sched->T, rows_t[ROWS], rc = 0;
    size_t D = (size_t)C * R * R;
    real *grid = malloc(sizeof(real) * ROWS * (L + 2) * D);
    if (!grid) return error_set(err, "out of memory for the figures");
    Progress *pr = sm->progress_ctx;
    if (f->shared) {
        figure_shared_rows(T, rows_t);
        progress_start(pr, "Figure 7", 0, 0);
        rc = figure_shared_latents(sm, grid, rows_t, ROWS, K, C, R, R, f->m.seed, err);
        if (rc == 0) progress_end(pr, pr->total, NULL);
        if (rc == 0) rc = image_write_grid(f->shared, grid, ROWS * (K + 2), C, R, R, K + 2, err);
        if (rc == 0) printf("wrote %s (shared x_t at t = %d, %d, %d, %d: x0_hat, x_t, %d samples)\n",
                            f->shared, rows_t[0] + 1, rows_t[1] + 1, rows_t[2] + 1, rows_t[3] + 1, K);
    }
    Dataset test;
    if (rc == 0 && f->interp && load_data("sample", f->m.data, 0, &test))
        rc = error_set(err, "--interp: no test images to interpolate");
    else if (rc == 0 && f->interp) {
        real *ab = malloc(sizeof(real) * 2 * D);
        if (test.c != C || test.h != R || test.n < 2 || !ab)
            rc = error_set(err, "--interp: %s has %d images of %dx%dx%d; the model takes %dx%dx%d",
                           test.name, test.n, test.c, test.h, test.w, C, R, R);
        if (rc == 0) {
            data_batch(&test, ab, (int[]){0, 1}, 2, NULL);
            figure_interp_rows(T, rows_t);
            progress_start(pr, "Figure 8", 0, 0);
            rc = figure_interpolation(sm, grid, ab, ab + D, rows_t, ROWS, L, C, R, R, f->m.seed, err);
        }
        if (rc == 0) progress_end(pr, pr->total, NULL);
        if (rc == 0) rc = image_write_grid(f->interp, grid, ROWS * (L + 2), C, R, R, L + 2, err);
        if (rc == 0) printf("wrote %s (test images 0 and 1 of %s mixed at t = %d, %d, %d, %d)\n",
                            f->interp, test.name, rows_t[0] + 1, rows_t[1] + 1, rows_t[2] + 1, rows_t[3] + 1);
        free(ab);
        data_free(&test);
    }
    free(grid);
    return rc;
}

static int cmd_sample(int argc, char **argv)
{
    SampleFlags f = {.m = {.cmd = "sample", .n = 64, .batch = 32, .clip = 1, .ema = 1},
                     .out = "samples.png", .every = 100};
    int rc = parse_flags(argc, argv, "sample", SAMPLE_USAGE, take_sample, &f);
    if (rc || f.m.bad) return rc == 1 ? 0 : 2;
    if (!f.m.ckpt) { fprintf(stderr, "ddpm sample: --ckpt is required\n"); return 2; }
    Error err;
    TrainedModel tm;
    if ((rc = model_load(&f.m, &tm, &err)) < 0)
        return rc == -2 ? misuse("sample", &err) : fail("sample", &err);
    Diffusion df = tm.df;
    if (f.var) {
        if (df.var == VAR_LEARNED || (strcmp(f.var, "fixedlarge") && strcmp(f.var, "fixedsmall"))) {
            fprintf(stderr, "ddpm sample: --var %s: %s\n", f.var, df.var == VAR_LEARNED
                    ? "the model learned its variance" : "want fixedlarge or fixedsmall");
            trained_model_free(&tm);
            return 2;
        }
        df.var = strcmp(f.var, "fixedlarge") ? VAR_FIXED_SMALL : VAR_FIXED_LARGE;
    }
    // The official EMA starts from the initial weights: after n steps a
    // share decay^n of it is still random, which shows as noise in samples.
    double share = tm.ema && tm.step > 0 ? pow(tm.ema_decay, (double)tm.step) : 0;
    if (share > 0.01)
        fprintf(stderr, "warning: %.0f%% of these EMA weights are still the random initial ones "
                        "(decay^steps); expect noisy samples: train longer, use a smaller --ema "
                        "in training, or sample with --ema 0\n", 100 * share);
    const UNet *net = &tm.net;
    const Schedule *sc = &tm.sched;
    int C = net->cfg.in_ch, R = net->cfg.resolution, P = f.m.n < 8 ? f.m.n : 8;
    size_t D = (size_t)C * R * R;
    fprintf(stderr, "sample: %d images of %dx%dx%d, T = %d steps, %s weights, sigma^2 = %s, "
                    "x0_hat %sclipped, seed %llu\n", f.m.n, C, R, R, sc->T, tm.ema ? "EMA" : "raw",
            df.var == VAR_FIXED_LARGE ? "beta" : df.var == VAR_FIXED_SMALL ? "beta~" : "learned",
            f.m.clip ? "" : "not ", f.m.seed);
    Model model = unet_model(net);
    Progress pr;
    progress_start(&pr, "sample", 0, 0);
    Sampler sm = {.df = &df, .model = &model, .clip = f.m.clip, .batch = f.m.batch,
                  .progress = progress_callback, .progress_ctx = &pr};
    int S = sample_n_snapshots(sc->T, f.every), *ts = malloc(sizeof(int) * (size_t)S);
    real *x = malloc(sizeof(real) * (size_t)f.m.n * D), *snaps = NULL;
    if (f.progressive) snaps = malloc(sizeof(real) * (size_t)S * f.m.n * D);
    if (!x || !ts || (f.progressive && !snaps)) {
        free(x);
        free(ts);
        free(snaps);
        trained_model_free(&tm);
        fprintf(stderr, "ddpm sample: --n %d: out of memory for that many images%s\n", f.m.n,
                f.progressive ? " and their snapshots (--progressive)" : "");
        return 1;
    }
    rc = f.progressive ? dist_sample_progressive(&sm, x, snaps, ts, f.m.n, C, R, R, f.m.seed, f.every, &err)
                       : dist_sample_images(&sm, x, f.m.n, C, R, R, f.m.seed, 0, &err);
    if (rc == 0) {
        progress_end(&pr, pr.total, NULL);
        double secs = progress_now() - pr.start;
        fprintf(stderr, "sampled %d images in %.1f s: %.3f images/s, %.2f ms per image-step\n",
                f.m.n, secs, f.m.n / secs, 1e3 * secs / (double)pr.total);   // total: image-steps
        char npy[4096];
        npy_path(f.out, npy, sizeof npy);
        int shape[4] = {f.m.n, C, R, R};
        int cols = f.cols ? f.cols : (int)ceil(sqrt((double)f.m.n));   // square by default
        rc = image_write_grid(f.out, x, f.m.n, C, R, R, cols, &err);
        if (rc == 0) rc = npy_write(npy, x, 4, shape, &err);
        if (rc == 0) printf("wrote %s (grid of %d) and %s\n", f.out, f.m.n, npy);
        if (rc == 0 && f.progressive) {
            rc = write_progressive(f.progressive, snaps, S, f.m.n, P, C, R, R, &err);
            if (rc == 0) printf("wrote %s (x0_hat at t = %d, %d, ..., %d; one row per image)\n",
                                f.progressive, ts[0] + 1, ts[1] + 1, ts[S - 1] + 1);
        }
        if (rc == 0 && (f.shared || f.interp)) rc = write_figures(&f, &sm, C, R, &err);
    }
    free(snaps);
    free(ts);
    free(x);
    trained_model_free(&tm);
    if (rc < 0) return fail("sample", &err);
    if (f.score) {
        char npy[4096];
        npy_path(f.out, npy, sizeof npy);
        return score_samples(npy, f.m.data, f.classifier);
    }
    return 0;
}

/* ---- ddpm classifier train | eval (chapter 09) --------------------------------- */

typedef struct ClsFlags {
    ClassifierTrain ct;
    const char *data, *out, *classifier;
    int width[4], bad;
} ClsFlags;

static int take_cls(void *ctx, const char *flag, const char *v)
{
    ClsFlags *f = ctx;
    ClassifierTrain *c = &f->ct;
    double x = 0;
    int bad = 0;
    if (!strcmp(flag, "data")) f->data = v;
    else if (!strcmp(flag, "out")) f->out = v;
    else if (!strcmp(flag, "classifier")) f->classifier = v;
    else if (!strcmp(flag, "steps")) { bad = whole(v, 1, 1e9, &x); c->steps = (long)x; }
    else if (!strcmp(flag, "minutes")) { bad = num(v, 0.01, 1e6, &x); c->minutes = x; }
    else if (!strcmp(flag, "stop")) { bad = whole(v, 1, 1e9, &x); c->stop = (long)x; }
    else if (!strcmp(flag, "batch")) { bad = whole(v, 1, 4096, &x); c->batch = (int)x; }
    else if (!strcmp(flag, "lr")) { bad = num(v, 0, 1, &x); c->lr = x; }
    else if (!strcmp(flag, "wd")) { bad = num(v, 0, 1, &x); c->weight_decay = x; }
    else if (!strcmp(flag, "warmup")) { bad = whole(v, 0, 1e9, &x); c->warmup = (long)x; }
    else if (!strcmp(flag, "seed")) { bad = whole(v, 0, 1e18, &x); c->seed = (unsigned long long)x; }
    else if (!strcmp(flag, "flip")) { bad = whole(v, 0, 1, &x); c->flip = (int)x; }
    else if (!strcmp(flag, "shift")) { bad = whole(v, 0, 1, &x); c->crop = (int)x; }
    else if (!strcmp(flag, "width"))
        bad = sscanf(v, "%d,%d,%d,%d", &f->width[0], &f->width[1], &f->width[2], &f->width[3]) != 4 ||
              f->width[0] % CLS_GROUPS || f->width[1] % CLS_GROUPS || f->width[2] % CLS_GROUPS ||
              f->width[3] % CLS_GROUPS || f->width[0] <= 0;
    else return 0;
    if (bad) {
        fprintf(stderr, "ddpm classifier: bad value '%s' for --%s\n", v, flag);
        f->bad = 1;
    }
    return 1;
}

#define CLS_USAGE \
    "usage: ddpm classifier train --out F [--data PATH] [--steps N] [--minutes M] [flags]\n" \
    "       ddpm classifier eval --classifier F [--data PATH]\n\n" \
    "train: fit the feature network of `ddpm score` (a small ResNet of chapter 02\n" \
    "layers, AdamW, flips and shifts) on the labels of the training split, then\n" \
    "print its test accuracy and write F (safetensors, config in its metadata).\n" \
    "eval: print the test accuracy of F and its SHA-256.\n\n" \
    "  --data PATH       CIFAR-10 batches or MNIST-format IDX (default as ddpm train)\n" \
    "  --steps N         optimiser steps; fixes the learning-rate schedule (4000)\n" \
    "  --minutes M       ... and stop early after M minutes of training\n" \
    "  --stop N          ... or after N steps (the schedule still runs to --steps)\n" \
    "  --batch B         images per step (128)\n" \
    "  --lr LR           peak AdamW learning rate (2e-3), --warmup N (200) steps\n" \
    "  --wd W            decoupled weight decay (5e-4)\n" \
    "  --width A,B,C,D   channel widths (16,32,64,128)\n" \
    "  --seed S          everything random (1); --flip 0|1, --shift 0|1 augmentation\n"

static int cls_report(const char *cmd, const Classifier *net, const char *path, const char *data)
{
    Error err;
    Dataset test;
    char hex[65];
    if (load_data(cmd, data, 0, &test)) return 1;
    if (test.c != net->cfg.in_ch) {
        fprintf(stderr, "ddpm %s: the classifier takes %d channels, %s has %d\n", cmd,
                net->cfg.in_ch, test.name, test.c);
        data_free(&test);
        return 1;
    }
    double t0 = progress_now(), acc = classifier_accuracy(net, &test, 250);
    printf("test accuracy %.2f%% on %d images of %s (%.0f s)\n", 100 * acc, test.n, test.name,
           progress_now() - t0);
    data_free(&test);
    if (path && sha256_file(path, hex, &err) == 0) printf("classifier %s sha256 %s\n", path, hex);
    return 0;
}

static int cls_train(ClsFlags *f)
{
    Error err;
    Dataset d;
    if (!f->out) {
        fprintf(stderr, "ddpm classifier train: --out F is required\n");
        return 2;
    }
    if (load_data("classifier train", f->data, 1, &d)) return 1;
    if (!d.labels) {
        fprintf(stderr, "ddpm classifier train: %s has no labels\n", d.path);
        data_free(&d);
        return 1;
    }
    ClassifierConfig cfg;
    classifier_config_default(&cfg, d.c);
    if (f->width[0]) memcpy(cfg.width, f->width, sizeof cfg.width);
    Classifier net;
    classifier_build(&net, &cfg);
    Rng rng;
    rng_seed(&rng, f->ct.seed, 1ull << 41);
    classifier_init_weights(&net, &rng);
    fprintf(stderr, "classifier: width %d,%d,%d,%d, %zu parameters; %ld steps of %d, lr %g, seed %llu\n",
            cfg.width[0], cfg.width[1], cfg.width[2], cfg.width[3], net.params.total, f->ct.steps,
            f->ct.batch, f->ct.lr, f->ct.seed);
    double t0 = progress_now();
    long done = classifier_train(&net, &d, &f->ct);
    double secs = progress_now() - t0;
    printf("trained %ld steps (%.2f epochs) in %.1f min: %.2f ms/image\n", done,
           (double)done * f->ct.batch / d.n, secs / 60, 1e3 * secs / ((double)done * f->ct.batch));
    char steps[32], seed[32], batch[32];
    snprintf(steps, sizeof steps, "%ld", done);
    snprintf(seed, sizeof seed, "%llu", f->ct.seed);
    snprintf(batch, sizeof batch, "%d", f->ct.batch);
    StMeta meta[] = {{"classifier.data", d.name}, {"classifier.steps", steps},
                     {"classifier.seed", seed}, {"classifier.batch", batch}};
    int rc = classifier_save(f->out, &net, meta, 4, &err);
    data_free(&d);
    if (rc == 0) rc = cls_report("classifier train", &net, f->out, f->data);
    else rc = fail("classifier train", &err);
    classifier_free(&net);
    return rc;
}

static int cmd_classifier(int argc, char **argv)
{
    ClsFlags f = {0};
    classifier_train_default(&f.ct);
    if (argc < 2 || (strcmp(argv[1], "train") && strcmp(argv[1], "eval"))) {
        if (argc >= 2 && wants_help(argc, argv)) { fputs(CLS_USAGE, stdout); return 0; }
        fputs(CLS_USAGE, stderr);
        return 2;
    }
    int rc = parse_flags(argc - 1, argv + 1, "classifier", CLS_USAGE, take_cls, &f);
    if (rc || f.bad) return rc == 1 ? 0 : 2;
    if (!strcmp(argv[1], "train")) return cls_train(&f);
    if (!f.classifier) {
        fprintf(stderr, "ddpm classifier eval: --classifier F is required\n");
        return 2;
    }
    Error err;
    Classifier net;
    if (classifier_load(f.classifier, &net, &err)) return fail("classifier eval", &err);
    rc = cls_report("classifier eval", &net, f.classifier, f.data);
    classifier_free(&net);
    return rc;
}

/* ---- ddpm score (chapter 09) ------------------------------------------------------ */

typedef struct ScoreFlags {
    const char *samples, *ref, *classifier, *features, *data, *ref_features;
    unsigned long long seed;
    int splits, bad;
} ScoreFlags;

static int take_score(void *ctx, const char *flag, const char *v)
{
    ScoreFlags *f = ctx;
    double x = 0;
    if (!strcmp(flag, "samples")) f->samples = v;
    else if (!strcmp(flag, "ref")) f->ref = v;
    else if (!strcmp(flag, "classifier")) f->classifier = v;
    else if (!strcmp(flag, "features")) f->features = v;
    else if (!strcmp(flag, "ref-features")) f->ref_features = v;
    else if (!strcmp(flag, "data")) f->data = v;
    else if (!strcmp(flag, "seed")) { f->bad |= num(v, 0, 1e18, &x); f->seed = (unsigned long long)x; }
    else if (!strcmp(flag, "splits")) { f->bad |= num(v, 2, 1000, &x); f->splits = (int)x; }
    else return 0;
    if (f->bad) fprintf(stderr, "ddpm score: bad value '%s' for --%s\n", v, flag);
    return 1;
}

#define SCORE_USAGE \
    "usage: ddpm score --samples S.npy [--ref test|train|R.npy] [--classifier F]\n" \
    "                  [--features OUT.npy] [--ref-features OUT.npy] [--data PATH]\n" \
    "                  [--seed S] [--splits K]\n\n" \
    "Judge images in the features of a fixed classifier (chapter 09): the Frechet\n" \
    "distance and KID against a reference set, and the Inception-Score analogue.\n" \
    "S.npy holds [N, C, 32, 32] images in [-1, 1] (what ddpm sample writes). The\n" \
    "classifier's SHA-256 is printed: two scores are comparable only when it matches.\n" \
    "These are not the paper's FID / IS (those use Inception-v3 on CIFAR-10).\n\n" \
    "  --ref R           test (default) or train: that split of --data; or R.npy:\n" \
    "                    images [M, C, 32, 32] or features [M, D] (from --features)\n" \
    "  --classifier F    default models/classifier_cifar10.safetensors for 3\n" \
    "                    channels, models/classifier_fashion_mnist.safetensors for 1\n" \
    "  --features OUT    write the samples' features [N, D] as .npy\n" \
    "  --ref-features F  write the reference's features [M, D] as .npy (then\n" \
    "                    --ref F scores against them without embedding again)\n" \
    "  --data PATH       the data set of --ref test|train (default as ddpm train)\n" \
    "  --seed S          KID's subsets (1); --splits K the IS analogue's splits (10)\n"

// Images [N, C, 32, 32] in [-1, 1] from an .npy, checked for the classifier.
static int load_images(const char *path, const Classifier *net, NpyArray *a, Error *err)
{
    if (npy_read(path, a, err)) return -1;
    if (a->ndim != 4 || a->shape[1] != net->cfg.in_ch || a->shape[2] != 32 || a->shape[3] != 32) {
        char sh[64] = "";
        for (int i = 0; i < a->ndim; i++)
            snprintf(sh + strlen(sh), sizeof sh - strlen(sh), i ? ",%d" : "%d", a->shape[i]);
        npy_free(a);
        return error_set(err, "%s: shape [%s]; the classifier takes [N, %d, 32, 32] images",
                         path, sh, net->cfg.in_ch);
    }
    for (size_t i = 0; i < a->size; i++)
        if (!isfinite(a->data[i])) {
            double v = a->data[i];
            npy_free(a);
            return error_set(err, "%s: value %zu (image %zu) is %g", path, i,
                             i / ((size_t)net->cfg.in_ch * 1024), v);
        }
    return 0;
}

typedef struct FeatSet {
    real *feat, *prob;   // [n, D], [n, K] (prob NULL for stored features)
    long n;
    char what[600];
} FeatSet;

static void featset_free(FeatSet *s) { free(s->feat), free(s->prob); }

static int embed_npy(const char *path, const Classifier *net, FeatSet *s, Error *err)
{
    NpyArray a;
    int D = classifier_feature_dim(net), K = net->cfg.n_classes;
    if (load_images(path, net, &a, err)) return -1;
    s->n = a.shape[0];
    s->feat = malloc(sizeof(real) * s->n * D);
    s->prob = malloc(sizeof(real) * s->n * K);
    classifier_embed(net, a.data, (int)s->n, 250, s->feat, s->prob);
    snprintf(s->what, sizeof s->what, "%s, %ld images", path, s->n);
    npy_free(&a);
    return 0;
}

// The reference: a split of the data set, stored features, or images.
static int embed_ref(const ScoreFlags *f, const Classifier *net, FeatSet *s, Error *err)
{
    const char *ref = f->ref ? f->ref : "test";
    int D = classifier_feature_dim(net);
    if (strcmp(ref, "test") && strcmp(ref, "train")) {
        NpyArray a;
        if (npy_read(ref, &a, err)) return -1;
        if (a.ndim == 2 && a.shape[1] == D) {
            s->n = a.shape[0], s->feat = a.data, s->prob = NULL;
            snprintf(s->what, sizeof s->what, "%s, features of %ld images", ref, s->n);
            return 0;
        }
        npy_free(&a);
        return embed_npy(ref, net, s, err);
    }
    Dataset d;
    if (data_load(&d, f->data && *f->data ? f->data : data_default_path(), !strcmp(ref, "train"), err))
        return -1;
    if (d.c != net->cfg.in_ch) {
        data_free(&d);
        return error_set(err, "%s has %d channels, the classifier takes %d", d.path, d.c, net->cfg.in_ch);
    }
    s->n = d.n;
    s->feat = malloc(sizeof(real) * s->n * D);
    s->prob = malloc(sizeof(real) * s->n * net->cfg.n_classes);
    classifier_embed_data(net, &d, d.n, s->feat, s->prob);
    snprintf(s->what, sizeof s->what, "%s, %s split, %d images", d.name, ref, d.n);
    data_free(&d);
    return 0;
}

static void print_scores(const Scores *sc, const IsResult *is, const IsResult *ref_is, int have_ref_is)
{
    const FrechetResult *fd = &sc->fd;
    printf("Frechet distance  %.4f   (mean term %.4f, trace term %.4f)\n", fd->fd, fd->mean_term,
           fd->trace_term);
    if (fd->neg.n_neg)
        printf("                  %d negative eigenvalues set to 0 (most negative %.3g)\n",
               fd->neg.n_neg, fd->neg.most_neg);
    printf("KID               %.5f +- %.5f   (mean +- SE over %d disjoint subsets of %ld)\n",
           sc->kid.kid, sc->kid.se, sc->kid.n_subsets, sc->kid.subset_size);
    printf("IS analogue       %.3f +- %.3f   (mean +- SE over %d splits)", is->is, is->se, is->splits);
    if (have_ref_is) printf("; reference set %.3f +- %.3f", ref_is->is, ref_is->se);
    printf("\n");
}

static int score_run(const ScoreFlags *f, const Classifier *net, const char *cls_path, Error *err)
{
    FeatSet smp = {0}, ref = {0};
    int D = classifier_feature_dim(net), K = net->cfg.n_classes;
    char hex[65];
    if (sha256_file(cls_path, hex, err)) return -1;
    printf("classifier %s sha256 %s\n", cls_path, hex);
    int rc = embed_npy(f->samples, net, &smp, err);
    if (rc == 0 && smp.n <= D)
        rc = error_set(err, "%s: %ld images; a covariance of %d features needs at least %d",
                       f->samples, smp.n, D, D + 1);
    if (rc == 0 && f->features) rc = npy_write(f->features, smp.feat, 2, (int[]){(int)smp.n, D}, err);
    if (rc == 0) rc = embed_ref(f, net, &ref, err);
    if (rc == 0 && ref.n <= D)
        rc = error_set(err, "the reference has %ld images; a covariance of %d features needs at "
                            "least %d", ref.n, D, D + 1);
    if (rc == 0 && f->ref_features)
        rc = npy_write(f->ref_features, ref.feat, 2, (int[]){(int)ref.n, D}, err);
    Scores sc;
    IsResult is, ref_is = {0};
    if (rc == 0) rc = metrics_compare(&sc, smp.feat, smp.n, ref.feat, ref.n, D, f->seed, err);
    if (rc == 0) rc = metrics_inception_score(&is, smp.prob, smp.n, K, f->splits, err);
    if (rc == 0 && ref.prob) rc = metrics_inception_score(&ref_is, ref.prob, ref.n, K, f->splits, err);
    if (rc == 0) {
        printf("samples   %s\nreference %s\n", smp.what, ref.what);
        print_scores(&sc, &is, &ref_is, ref.prob != NULL);
    }
    featset_free(&smp), featset_free(&ref);
    return rc;
}

static int score_main(ScoreFlags f)
{
    Error err;
    int rc;
    NpyArray probe;
    const char *cls = f.classifier;
    if (!cls) {   // pick the default network from the samples' channel count
        if (npy_read(f.samples, &probe, &err)) return fail("score", &err);
        int c = probe.ndim == 4 ? probe.shape[1] : 3;
        npy_free(&probe);
        cls = c == 1 ? "models/classifier_fashion_mnist.safetensors" : "models/classifier_cifar10.safetensors";
    }
    Classifier net;
    if (classifier_load(cls, &net, &err)) {
        fail("score", &err);
        if (!f.classifier) fprintf(stderr, "ddpm score: train one with `make classifier` or give --classifier F\n");
        return 1;
    }
    rc = score_run(&f, &net, cls, &err);
    classifier_free(&net);
    return rc ? fail("score", &err) : 0;
}

static int score_samples(const char *samples, const char *data, const char *classifier)
{
    return score_main((ScoreFlags){.samples = samples, .data = data, .classifier = classifier,
                                   .seed = 1, .splits = 10});
}

static int cmd_score(int argc, char **argv)
{
    ScoreFlags f = {.seed = 1, .splits = 10};
    int rc = parse_flags(argc, argv, "score", SCORE_USAGE, take_score, &f);
    if (rc || f.bad) return rc == 1 ? 0 : 2;
    if (!f.samples) { fprintf(stderr, "ddpm score: --samples S.npy is required\n"); return 2; }
    return score_main(f);
}

/* ---- ddpm version ---------------------------------------------------------- */

static int cmd_version(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: ddpm version\n\nPrint the version, the scalar type and the BLAS.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "ddpm version: unexpected argument '%s' (see ddpm version --help)\n",
                argv[1]);
        return 2;
    }
    printf("ddpm %s (%s, BLAS: OpenBLAS cblas_%sgemm)\n", DDPM_VERSION,
           sizeof(real) == 4 ? "float32" : "float64", sizeof(real) == 4 ? "s" : "d");
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: ddpm <command> [--flags]\n\n"
           "Denoising Diffusion Probabilistic Models (Ho et al. 2020), in C.\n\n"
           "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\n'ddpm <command> --help' describes one command.\n");
    return 0;
}

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);   // MPI build: one process per rank (dist.h); nothing otherwise
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported
    // by the writer, instead of killing the program in the middle of a save.
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        cmd_help(argc, argv);
        return 2;   // no command is a usage error
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return cmd_help(argc, argv);
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return dist_exit(commands[i].run(argc - 1, argv + 1));
    fprintf(stderr, "ddpm: unknown command '%s' (see ddpm --help)\n", argv[1]);
    return 2;
}
