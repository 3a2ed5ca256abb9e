/* ddpm.c — the command-line program that composes the chapters.
 *
 * (About 1,350 lines: eleven commands, each an options struct with its
 * table of flags and its usage text, a parse step and a run function that
 * takes the parsed options; the work itself is in the numbered modules, the
 * flag parsing in cli.c.)
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

#include <stddef.h>

#include "checkpoint.h"
#include "cli.h"
#include "npy.h"
#include "progress.h"
#include "07_ratedist.h"
#include "08_sampler.h"
#include "08_figures.h"
#include "train.h"
#include "09_metrics.h"
#include "classifier.h"
#include "dist.h"
#include "image.h"
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


/* ---- flags: every command goes through cli_parse (cli.h) -------------------- */

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

// Parse a command line into opts (holding the defaults); 0 to go on, else the
// exit status (0 after --help, 2 on misuse).
static int parse(Cli *cli, void *opts, int argc, char **argv, int *status)
{
    int rc = cli_parse(cli, opts, argc, argv);
    *status = rc == 1 ? 0 : rc;
    return rc;
}

// The network flags: a UNetConfig (the --config preset, tiny by default, with
// the other keys on top) and whether any of them was given.
typedef struct NetOpts {
    UNetConfig cfg;
    int given, config_given;
} NetOpts;

#define NET_TITLE \
    "network (defaults from --config; a checkpoint's stored config wins unless\n" \
    "--config is given):"
#define NET_GROUP(type, field) {NET_TITLE, unet_keys, offsetof(type, field.cfg)}

// For the commands that load a trained model.
#define MODEL_NET_NOTE \
    "\nA checkpoint that stores no network config (e.g. converted PyTorch weights)\n" \
    "needs the network flags; --config also overrides a stored config.\n"

static void net_default(NetOpts *n)
{
    memset(n, 0, sizeof *n);
    unet_config(&n->cfg, "tiny", NULL);
}

// After parsing: which network flags were given; a key on top of the preset
// makes the config "custom". Then the config must be buildable.
static int net_finish(NetOpts *n, const Cli *cli, Error *err)
{
    n->config_given = cli_given(cli, unet_keys, "config") != NULL;
    n->given = cli_given_any(cli, unet_keys);
    for (const ConfigKey *k = unet_keys; k->key; k++)
        if (k->type != KEY_FUNC && cli_given(cli, unet_keys, k->key))
            snprintf(n->cfg.name, sizeof n->cfg.name, "custom");
    return n->given ? unet_config_check(&n->cfg, err) : 0;
}

static int load_data(const char *cmd, const char *path, int train, Dataset *d)
{
    Error err;
    if (!path || !*path) path = data_default_path();
    if (data_load(d, path, train, &err) < 0) return fail(cmd, &err);
    fprintf(stderr, "data: %s, %s split, %d images of %dx%dx%d (%s)\n", d->name,
            train ? "training" : "test", d->n, d->c, d->h, d->w, d->path);
    return 0;
}

/* ---- ddpm params ---------------------------------------------------------- */

typedef struct ParamsOpts {
    NetOpts net;
} ParamsOpts;

static const CliGroup params_groups[] = {NET_GROUP(ParamsOpts, net), {0}};

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

static int params_run(const ParamsOpts *o)
{
    const UNetConfig *cfg = &o->net.cfg;
    UNet net;
    unet_build(&net, cfg);
    char desc[512], block[64], prev[64] = "";
    unet_config_str(cfg, desc, sizeof desc);
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

static int cmd_params(int argc, char **argv)
{
    ParamsOpts o;
    net_default(&o.net);
    Cli cli = {.cmd = "params", .groups = params_groups,
               .usage = "usage: ddpm params [--config NAME] [network flags]\n\n"
                        "Print the U-Net's parameter count per block and in total.\n"};
    int status;
    Error err;
    if (parse(&cli, &o, argc, argv, &status)) return status;
    if (net_finish(&o.net, &cli, &err) < 0) return misuse("params", &err);
    return params_run(&o);
}

/* ---- ddpm init ------------------------------------------------------------ */

typedef struct InitOpts {
    const char *out;
    unsigned long long seed;
    NetOpts net;
} InitOpts;

static const ConfigKey init_keys[] = {
    KEY("out", KEY_STR, offsetof(InitOpts, out), 0, 0, "M.safetensors", "the file to write (required)"),
    KEY("seed", KEY_U64, offsetof(InitOpts, seed), 0, 0, "S", "seed of the initial weights"),
    {0},
};
static const CliGroup init_groups[] = {{NULL, init_keys, 0}, NET_GROUP(InitOpts, net), {0}};

static int init_run(const InitOpts *o)
{
    Error err;
    const UNetConfig *cfg = &o->net.cfg;
    UNet net;
    unet_build(&net, cfg);
    Rng rng;
    rng_seed(&rng, o->seed, 0);
    unet_init_weights(&net, &rng);
    int rc = ckpt_save(o->out, &net, NULL, 0, NULL, 0, &err);
    if (rc == 0) printf("wrote %s: %s config, %zu parameters, seed %llu\n", o->out, cfg->name,
                        net.params.total, o->seed);
    unet_free(&net);
    return rc < 0 ? fail("init", &err) : 0;
}

static int cmd_init(int argc, char **argv)
{
    InitOpts o = {0};
    net_default(&o.net);
    Cli cli = {.cmd = "init", .groups = init_groups,
               .usage = "usage: ddpm init --out M.safetensors [--seed S] [--config NAME] "
                        "[network flags]\n\n"
                        "Write a U-Net initialised as in the paper's code (fan-avg uniform;\n"
                        "the last conv of every residual branch and conv_out near zero).\n\n"};
    int status;
    Error err;
    if (parse(&cli, &o, argc, argv, &status)) return status;
    if (!o.out) { fprintf(stderr, "ddpm init: --out is required\n"); return 2; }
    if (net_finish(&o.net, &cli, &err) < 0) return misuse("init", &err);
    return init_run(&o);
}

/* ---- ddpm forward ------------------------------------------------------------ */

#define FORWARD_CHUNK 64   // images per network call

typedef struct ForwardOpts {
    const char *ckpt, *x, *t, *out;
    NetOpts net;
} ForwardOpts;

#define F(f) offsetof(ForwardOpts, f)
static const ConfigKey forward_keys[] = {
    KEY("ckpt", KEY_STR, F(ckpt), 0, 0, "M.safetensors", "the network (required)"),
    KEY("x", KEY_STR, F(x), 0, 0, "X.npy", "images [N, C, H, W] (required)"),
    KEY("t", KEY_STR, F(t), 0, 0, "T.npy", "code timesteps [N], whole numbers 0..T-1 (required)"),
    KEY("out", KEY_STR, F(out), 0, 0, "Y.npy", "where to write eps_theta(x, t) (required)"),
    {0},
};
#undef F
static const CliGroup forward_groups[] = {{NULL, forward_keys, 0}, NET_GROUP(ForwardOpts, net), {0}};

// x must be [N, in_ch, R, R] and t [N] whole numbers in 0..9999.
static int check_inputs(const ForwardOpts *f, const NpyArray *x, const NpyArray *t,
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


static int forward_run(const ForwardOpts *o)
{
    const ForwardOpts *f = o;
    Error err;
    UNet net;
    if (ckpt_load(f->ckpt, &net, &o->net.cfg, o->net.config_given, &err) < 0)
        return fail("forward", &err);
    NpyArray x = {0}, t = {0};
    int *ts = NULL, rc = -1;
    if (npy_read(f->x, &x, &err) == 0 && npy_read(f->t, &t, &err) == 0 &&
        ((ts = malloc(sizeof(int) * (t.size + 1))) ||
         error_set(&err, "%s: out of memory for %zu timesteps", f->t, t.size) == 0) &&
        check_inputs(f, &x, &t, &net.cfg, ts, &err) == 0) {
        // FORWARD_CHUNK images at a time: the activations of a whole large
        // file at once could exhaust memory.
        int N = (int)x.shape[0], C = (int)x.shape[1], R = (int)x.shape[2];
        int shape[4] = {N, net.cfg.out_ch, R, R};
        size_t din = (size_t)C * R * R, dout = (size_t)net.cfg.out_ch * R * R;
        real *out = malloc(sizeof(real) * (size_t)N * dout);
        if (!out) rc = error_set(&err, "%s: out of memory for %d outputs", f->x, N);
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
        if (out) rc = npy_write(f->out, out, 4, shape, &err);
        if (rc == 0) printf("wrote %s [%d,%d,%d,%d]\n", f->out, shape[0], shape[1], shape[2],
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

static int cmd_forward(int argc, char **argv)
{
    ForwardOpts o = {0};
    net_default(&o.net);
    Cli cli = {.cmd = "forward", .groups = forward_groups,
               .usage = "usage: ddpm forward --ckpt M.safetensors --x X.npy --t T.npy --out Y.npy\n"
                        "                    [--config NAME] [network flags]\n\n"
                        "Run the network once in evaluation mode (no dropout) and write\n"
                        "eps_theta(x, t) as .npy. x: [N, C, H, W] float; t: [N] integer code\n"
                        "timesteps 0..T-1.\n\n"};
    int status;
    Error err;
    if (parse(&cli, &o, argc, argv, &status)) return status;
    if (!o.ckpt || !o.x || !o.t || !o.out) {
        fprintf(stderr, "ddpm forward: --ckpt, --x, --t and --out are required\n");
        return 2;
    }
    if (net_finish(&o.net, &cli, &err) < 0) return misuse("forward", &err);
    return forward_run(&o);
}

/* ---- ddpm train -------------------------------------------------------------- */

typedef struct TrainOpts {
    const char *data, *resume;
    TrainConfig tc;   // its rows: train_keys (train.h)
    NetOpts net;
} TrainOpts;

static const ConfigKey train_cmd_keys[] = {
    KEY("data", KEY_STR, offsetof(TrainOpts, data), 0, 0, "PATH",
     "CIFAR-10 batches, MNIST IDX or PNG folder (default: $DDPM_DATA,\n"
     "                         build/data/cifar-10-batches-bin, else Fashion-MNIST)"),
    KEY("resume", KEY_STR, offsetof(TrainOpts, resume), 0, 0, "CKPT",
     "continue the run of CKPT exactly, with its settings"),
    {0},
};
static const CliGroup train_groups[] = {
    {NULL, train_cmd_keys, 0},
    {NULL, train_keys, offsetof(TrainOpts, tc)},
    NET_GROUP(TrainOpts, net),
    {0},
};

// On --resume the run continues with the checkpoint's settings: a stored
// setting given on the command line with another value is refused, naming
// the checkpoint's value (the budget, --out, --ckpt-every and --data are
// honoured). Returns 0 or 2.
static int resume_conflicts(const TrainOpts *o, const Cli *cli, const Trainer *tr)
{
    for (const ConfigKey *k = train_keys; k->key; k++) {
        char want[256], have[256];
        if (!(k->flags & KEY_STORED) || !cli_given(cli, train_keys, k->key)) continue;
        config_format(k, &o->tc, want, sizeof want);
        config_format(k, &tr->cfg, have, sizeof have);
        if (strcmp(want, have)) {
            fprintf(stderr, "ddpm train: --%s conflicts with %s, which was trained with %s = %s; "
                            "a resumed run keeps the checkpoint's settings (drop --%s, or start "
                            "a new run)\n", k->key, o->resume, k->key, have, k->key);
            return 2;
        }
    }
    if (!o->net.given) return 0;
    // The network flags must describe the stored network: its config with
    // the flags applied on top (--config keeps the channels, which the data
    // set and --var set).
    UNetConfig c = tr->net.cfg;
    Error err;
    int bad = 0;
    if (o->net.config_given) {
        c = o->net.cfg;
        bad = unet_config(&c, cli_given(cli, unet_keys, "config"), &err) < 0;
        c.in_ch = tr->net.cfg.in_ch;
        c.out_ch = tr->net.cfg.out_ch;
    }
    for (const ConfigKey *k = unet_keys; k->key && !bad; k++) {
        const char *v = cli_given(cli, unet_keys, k->key);
        if (v && k->type != KEY_FUNC) bad = config_set(k, &c, v, &err) < 0;
    }
    if (bad) return misuse("train", &err);
    char d1[512], d2[512];
    config_line(unet_keys, &c, 0, d1, sizeof d1);
    config_line(unet_keys, &tr->net.cfg, 0, d2, sizeof d2);
    if (strcmp(d1, d2)) {
        fprintf(stderr, "ddpm train: the network flags describe %s, but %s holds %s; drop "
                        "them on --resume\n", d1, o->resume, d2);
        return 2;
    }
    return 0;
}

// Train with the parsed options; cli tells which flags were given (a resumed
// run refuses those that contradict its checkpoint).
static int train_main(const TrainOpts *o, const Cli *cli)
{
    Error err;
    Dataset data;
    if (load_data("train", o->data, 1, &data)) return 1;
    UNetConfig ucfg = o->net.cfg;
    ucfg.in_ch = data.c;
    Trainer tr;
    if (trainer_init(&tr, &ucfg, &o->tc, o->resume, &err) < 0) {
        data_free(&data);
        return fail("train", &err);
    }
    int rc;
    if (o->resume && (rc = resume_conflicts(o, cli, &tr))) {
        trainer_free(&tr);
        data_free(&data);
        return rc;
    }
    if (tr.net.cfg.in_ch != data.c || tr.net.cfg.resolution != data.h) {
        error_set(&err, "the model takes %dx%dx%d images but %s has %dx%dx%d", tr.net.cfg.in_ch,
                  tr.net.cfg.resolution, tr.net.cfg.resolution, data.name, data.c, data.h, data.w);
        rc = 1;
    } else {
        char desc[512];
        unet_config_str(&tr.net.cfg, desc, sizeof desc);
        fprintf(stderr, "model: %s; %zu parameters\n", desc, tr.net.params.total);
        config_line(train_keys, &tr.cfg, KEY_STORED, desc, sizeof desc);
        fprintf(stderr, "training: from step %ld, %s -> %s/\n", tr.step, desc, tr.cfg.out_dir);
        rc = train_run(&tr, &data, &err) < 0;
        if (!rc) printf("trained to step %ld, last loss %.5f: %s/ckpt.safetensors, %s/log.csv\n",
                        tr.step, tr.last_loss, tr.cfg.out_dir, tr.cfg.out_dir);
    }
    trainer_free(&tr);
    data_free(&data);
    return rc ? fail("train", &err) : 0;
}

// The options of ddpm train: the program's defaults (batch 32, EMA 0.999)
// rather than the paper's, for runs of minutes on a CPU.
static void train_defaults(TrainOpts *o)
{
    memset(o, 0, sizeof *o);
    train_config_default(&o->tc);
    o->tc.batch = 32;
    o->tc.ema_decay = 0.999;
    net_default(&o->net);
}

static int train_parse(TrainOpts *o, Cli *cli, int argc, char **argv, int *status)
{
    *cli = (Cli){.cmd = "train", .groups = train_groups,
        .usage = "usage: ddpm train [--data PATH] [--out DIR] [--steps N | --minutes M] [flags]\n\n"
                 "Train eps_theta with Algorithm 1. Writes DIR/ckpt.safetensors (weights, Adam,\n"
                 "EMA, step, settings; atomically, every --ckpt-every steps and at the end) and\n"
                 "DIR/log.csv. Ctrl-C saves and stops; --resume continues a run exactly.\n\n",
        .footer = "\n--resume continues with the checkpoint's settings (batch, lr, warmup, clip,\n"
                  "ema, loss, mean, var, T, seed, flip): a flag that contradicts them is\n"
                  "refused; --steps, --minutes, --out, --ckpt-every and --data apply.\n"};
    Error err;
    if (parse(cli, o, argc, argv, status)) return -1;
    *status = 2;
    if (!o->resume && o->tc.steps <= 0 && o->tc.minutes <= 0) {
        fprintf(stderr, "ddpm train: give a budget: --steps N and/or --minutes M\n");
        return -1;
    }
    if (!cli_given(cli, train_keys, "warmup"))
        o->tc.warmup = o->tc.steps > 0 ? (o->tc.steps / 10 < 5000 ? o->tc.steps / 10 : 5000) : 200;
    Diffusion df;
    if (net_finish(&o->net, cli, &err) < 0 ||
        diffusion_parse(&df, mean_type_name(o->tc.mean), var_type_name(o->tc.var),
                        loss_type_name(o->tc.loss), &err) < 0) {
        misuse("train", &err);
        return -1;
    }
    *status = 0;
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    TrainOpts o;
    Cli cli;
    int status;
    train_defaults(&o);
    if (train_parse(&o, &cli, argc, argv, &status)) return status;
    return train_main(&o, &cli);
}

/* ---- ddpm bpd ------------------------------------------------------------------ */

// The options of the commands that load a trained model: ddpm bpd and rd use
// all of them, ddpm sample all but --csv.
typedef struct EvalOpts {
    const char *cmd, *ckpt, *data, *csv, *split;   // split: bpd and rd, test or train
    int n, batch, clip_x0, use_ema;
    unsigned long long seed;
    NetOpts net;   // for a checkpoint that stores no config (a converted state_dict)
} EvalOpts;

#define E(f) offsetof(EvalOpts, f)
static const ConfigKey eval_keys[] = {
    KEY("ckpt", KEY_STR, E(ckpt), 0, 0, "M", "the trained model (required)"),
    KEY("data", KEY_STR, E(data), 0, 0, "PATH", "the data set (default as ddpm train)"),
    KEY("n", KEY_INT, E(n), 1, 1e7, "N", "how many images"),
    KEY("batch", KEY_INT, E(batch), 1, TRAIN_MAX_BATCH, "B", "images per network call"),
    KEY("clip-x0", KEY_INT, E(clip_x0), 0, 1, "0|1",
     "clip x0_hat to [-1, 1] before the posterior mean, as the\n"
     "                         official code does; 0 is the paper's Algorithm 2 as printed"),
    KEY("use-ema", KEY_INT, E(use_ema), 0, 1, "0|1", "the EMA weights when the checkpoint has them"),
    KEY("seed", KEY_U64, E(seed), 0, 0, "S", "seed of the noise"),
    {0},
};
static const ConfigKey bpd_keys[] = {
    KEY("csv", KEY_STR, E(csv), 0, 0, "FILE", "also write the per-t terms and MSE of x0_pred"),
    KEY("split", KEY_STR, E(split), 0, 0, "test|train",
     "the images: the first N of the test split (default) or of\n"
     "                         the training split (Table 1's train column)"),
    {0},
};
static const ConfigKey rd_keys[] = {
    KEY("csv", KEY_STR, E(csv), 0, 0, "FILE", "the whole curve, one row per k (required)"),
    KEY("split", KEY_STR, E(split), 0, 0, "test|train", "the images, as in ddpm bpd"),
    {0},
};
#undef E
static const CliGroup bpd_groups[] = {
    {NULL, eval_keys, 0}, {NULL, bpd_keys, 0}, NET_GROUP(EvalOpts, net), {0}};
static const CliGroup rd_groups[] = {
    {NULL, eval_keys, 0}, {NULL, rd_keys, 0}, NET_GROUP(EvalOpts, net), {0}};

static EvalOpts eval_defaults(const char *cmd, int n, int batch)
{
    EvalOpts o = {.cmd = cmd, .n = n, .batch = batch, .clip_x0 = 1, .use_ema = 1};
    net_default(&o.net);
    return o;
}

// The checkpoint's model; the network flags, when given, describe a file
// that stores no config (and --config overrides a stored one, as in forward).
static int model_load(const EvalOpts *o, TrainedModel *m, Error *err)
{
    if (!o->net.given) return trained_model_load(m, o->ckpt, o->use_ema, err);
    return trained_model_load_cfg(m, o->ckpt, o->use_ema, &o->net.cfg, o->net.config_given, err);
}

// Parse, then: --ckpt is required (and --csv where `need_csv`).
// opts is the command's options struct, o the EvalOpts inside it.
static int eval_parse(void *opts, EvalOpts *o, Cli *cli, int argc, char **argv, int need_csv,
                      int *status)
{
    Error err;
    if (parse(cli, opts, argc, argv, status)) return -1;
    *status = 2;
    if (!o->ckpt || (need_csv && !o->csv)) {
        fprintf(stderr, "ddpm %s: %s required\n", o->cmd,
                need_csv ? "--ckpt and --csv are" : "--ckpt is");
        return -1;
    }
    if (net_finish(&o->net, cli, &err) < 0) {
        misuse(o->cmd, &err);
        return -1;
    }
    if (o->split && strcmp(o->split, "test") && strcmp(o->split, "train")) {
        fprintf(stderr, "ddpm %s: bad value '%s' for --split (test or train)\n", o->cmd, o->split);
        return -1;
    }
    *status = 0;
    return 0;
}

// What ddpm bpd and ddpm rd evaluate: the checkpoint's network (its EMA
// weights unless --use-ema 0), its diffusion, and the first n test images.
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

static int eval_open(const EvalOpts *f, EvalSet *e)
{
    Error err;
    memset(e, 0, sizeof *e);
    if (model_load(f, &e->m, &err) < 0) return fail(f->cmd, &err);
    int train = f->split && !strcmp(f->split, "train");
    if (load_data(f->cmd, f->data, train, &e->data)) { eval_close(e); return 1; }
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
            e->m.sched->T, e->m.ema ? "EMA" : "raw", f->clip_x0 ? "" : "not ");
    return 0;
}

// The bound's terms for every image and t (calc_bpd_loop), with a progress
// line: all that ddpm bpd and ddpm rd compute.
static int eval_bound(const EvalOpts *f, const EvalSet *e, BpdResult *r, Error *err)
{
    Rng rng;
    rng_seed(&rng, f->seed, 0);
    Progress pr;
    progress_start(&pr, f->cmd, 0, 0);
    Model model = unet_model(&e->m.net);
    int rc = dist_calc_bpd_loop(&e->m.df, &model, e->x0, e->n, e->data.c, e->data.h, e->data.w,
                           f->batch, &rng, f->clip_x0, r, progress_callback, &pr, err);
    if (rc == 0) progress_end(&pr, pr.total, NULL);
    return rc;
}

static int bpd_run(const EvalOpts *o)
{
    const EvalOpts *f = o;
    EvalSet e;
    int rc;
    if ((rc = eval_open(f, &e))) return rc;
    Error err;
    BpdResult r;
    rc = eval_bound(f, &e, &r, &err);
    if (rc == 0) {
        printf("# %s, %d %s images, %s\n", f->ckpt, e.n,
               f->split && !strcmp(f->split, "train") ? "training" : "test", e.data.name);
        if (bpd_print_summary(stdout, &r, &err) < 0 ||
            (f->csv && bpd_write_csv(f->csv, &r, &err) < 0))
            rc = -1;
        else if (f->csv)
            fprintf(stderr, "wrote %s\n", f->csv);
        bpd_result_free(&r);
    }
    eval_close(&e);
    return rc < 0 ? fail("bpd", &err) : 0;
}

static int cmd_bpd(int argc, char **argv)
{
    EvalOpts o = eval_defaults("bpd", 100, 50);
    int status;
    Cli cli = {.cmd = "bpd", .groups = bpd_groups, .footer = MODEL_NET_NOTE,
        .usage =
        "usage: ddpm bpd --ckpt M [--data PATH] [--n N] [--batch B] [--clip-x0 0|1]\n"
        "                [--use-ema 0|1] [--seed S] [--csv FILE]\n\n"
        "The variational bound (Eq. 5) in bits/dim on the first N test images:\n"
        "all T terms, a fresh x_t for every t (the official calc_bpd_loop), x0_pred\n"
        "clipped to [-1, 1] unless --clip-x0 0, the EMA weights when the checkpoint has\n"
        "them unless --use-ema 0. Prints total, prior (L_T), terms (L_1..L_{T-1}) and\n"
        "decoder (L_0) with standard errors over images; --csv writes the per-t terms\n"
        "and the per-t mean squared error of x0_pred (chapter 07 reads it).\n\n"};
    if (eval_parse(&o, &o, &cli, argc, argv, 0, &status)) return status;
    return bpd_run(&o);
}

/* ---- ddpm rd ------------------------------------------------------------------- */

static int rd_run(const EvalOpts *o)
{
    const EvalOpts *f = o;
    EvalSet e;
    int rc;
    if ((rc = eval_open(f, &e))) return rc;
    Error err;
    BpdResult r;
    rc = eval_bound(f, &e, &r, &err);
    if (rc == 0) {   // the bound (split over MPI ranks), then chapter 07's report of it
        printf("# %s, %d %s images, %s; paper: CIFAR-10, 35.7M params\n", f->ckpt, e.n,
               f->split && !strcmp(f->split, "train") ? "training" : "test", e.data.name);
        rc = rd_report(stdout, f->csv, &r, &err);
        if (rc == 0) fprintf(stderr, "wrote %s\n", f->csv);
        bpd_result_free(&r);
    }
    eval_close(&e);
    return rc < 0 ? fail("rd", &err) : 0;
}

static int cmd_rd(int argc, char **argv)
{
    EvalOpts o = eval_defaults("rd", 100, 50);
    int status;
    Cli cli = {.cmd = "rd", .groups = rd_groups, .footer = MODEL_NET_NOTE,
        .usage =
        "usage: ddpm rd --ckpt M [--data PATH] [--n N] [--batch B] [--seed S]\n"
        "               [--clip-x0 0|1] [--use-ema 0|1] --csv FILE\n\n"
        "Progressive lossy coding (Algorithms 3 and 4, Figure 5, Table 4): after k of\n"
        "the T reverse steps the receiver has been sent L_T + L_{T-1} + ... bits/dim\n"
        "(the rate) and holds x_t, t = T - k + 1, from which it predicts x0 (the\n"
        "distortion: RMSE of x0_pred on [0, 255] over all N images). The numbers come\n"
        "from the same loop as ddpm bpd (same flags and defaults; the same seed gives\n"
        "the same bound). --csv writes the whole curve, one row per k; stdout gets the\n"
        "summary and the rows of Table 4 next to the paper's values.\n\n"};
    if (eval_parse(&o, &o, &cli, argc, argv, 1, &status)) return status;
    return rd_run(&o);
}

/* ---- ddpm sample --------------------------------------------------------------- */

typedef struct SampleOpts {
    EvalOpts m;   // --ckpt --data --n --batch --clip-x0 --use-ema --seed, the network
    const char *out, *var, *progressive, *classifier, *shared, *interp;
    int cols, every, score;
} SampleOpts;

#define S(f) offsetof(SampleOpts, f)
static const ConfigKey sample_keys[] = {
    KEY("out", KEY_STR, S(out), 0, 0, "FILE.png", "the grid; the images go to FILE.npy"),
    KEY("var", KEY_STR, S(var), 0, 0, "V",
     "sigma_t^2 = beta_t (fixedlarge) or beta~_t (fixedsmall);\n"
     "                         default: what the model was trained with"),
    KEY("progressive", KEY_STR, S(progressive), 0, 0, "F",
     "also write x0_hat (Eq. 15) every K steps of the first\n"
     "                         8 images to F, one row per image (Figure 6)"),
    KEY("every", KEY_INT, S(every), 1, 1e6, "K", "steps between those snapshots"),
    KEY("shared", KEY_STR, S(shared), 0, 0, "F",
     "also write Figure 7 to F: rows branch at t = T, 3T/4, T/2,\n"
     "                         T/4: x0_hat, the shared x_t, 6 samples that continue from it"),
    KEY("interp", KEY_STR, S(interp), 0, 0, "F",
     "also write Figure 8 to F: test images 0 and 1 of --data,\n"
     "                         9 mixes of their x_t ~ q at t = T/10, T/4, T/2, 3T/4, decoded"),
    KEY("cols", KEY_INT, S(cols), 1, 1000, "C", "grid columns (default: a square grid)",
     .flags = KEY_NO_DEFAULT),
    KEY("score", KEY_INT, S(score), 0, 1, "0|1",
     "then score the .npy as `ddpm score` does against the test\n"
     "                         split of --data PATH"),
    KEY("classifier", KEY_STR, S(classifier), 0, 0, "F", "the classifier of --score, as in ddpm score"),
    {0},
};
#undef S
static const CliGroup sample_groups[] = {
    {NULL, sample_keys, 0}, {NULL, eval_keys, offsetof(SampleOpts, m)},
    NET_GROUP(SampleOpts, m.net), {0}};

static int score_samples(const char *samples, const char *data, const char *classifier);

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
static int write_figures(const SampleOpts *f, const Sampler *sm, int C, int R, Error *err)
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

static int sample_run(const SampleOpts *o)
{
    Error err;
    TrainedModel tm;
    int rc;
    if (model_load(&o->m, &tm, &err) < 0) return fail("sample", &err);
    Diffusion df = tm.df;
    if (o->var) {
        if (df.var == VAR_LEARNED || (strcmp(o->var, "fixedlarge") && strcmp(o->var, "fixedsmall"))) {
            fprintf(stderr, "ddpm sample: --var %s: %s\n", o->var, df.var == VAR_LEARNED
                    ? "the model learned its variance" : "want fixedlarge or fixedsmall");
            trained_model_free(&tm);
            return 2;
        }
        df.var = strcmp(o->var, "fixedlarge") ? VAR_FIXED_SMALL : VAR_FIXED_LARGE;
    }
    // The official EMA starts from the initial weights: after n steps a
    // share decay^n of it is still random, which shows as noise in samples.
    double share = tm.ema && tm.step > 0 ? pow(tm.ema_decay, (double)tm.step) : 0;
    if (share > 0.01)
        fprintf(stderr, "warning: %.0f%% of these EMA weights are still the random initial ones "
                        "(decay^steps); expect noisy samples: train longer, use a smaller --ema "
                        "in training, or sample with --use-ema 0\n", 100 * share);
    const UNet *net = &tm.net;
    const Schedule *sc = tm.sched;
    int C = net->cfg.in_ch, R = net->cfg.resolution, P = o->m.n < 8 ? o->m.n : 8;
    size_t D = (size_t)C * R * R;
    fprintf(stderr, "sample: %d images of %dx%dx%d, T = %d steps, %s weights, sigma^2 = %s, "
                    "x0_hat %sclipped, seed %llu\n", o->m.n, C, R, R, sc->T, tm.ema ? "EMA" : "raw",
            df.var == VAR_FIXED_LARGE ? "beta" : df.var == VAR_FIXED_SMALL ? "beta~" : "learned",
            o->m.clip_x0 ? "" : "not ", o->m.seed);
    Model model = unet_model(net);
    Progress pr;
    progress_start(&pr, "sample", 0, 0);
    Sampler sm = {.df = &df, .model = &model, .clip = o->m.clip_x0, .batch = o->m.batch,
                  .progress = progress_callback, .progress_ctx = &pr};
    int S = sample_n_snapshots(sc->T, o->every), *ts = malloc(sizeof(int) * (size_t)S);
    real *x = malloc(sizeof(real) * (size_t)o->m.n * D), *snaps = NULL;
    if (o->progressive) snaps = malloc(sizeof(real) * (size_t)S * o->m.n * D);
    if (!x || !ts || (o->progressive && !snaps)) {
        free(x);
        free(ts);
        free(snaps);
        trained_model_free(&tm);
        fprintf(stderr, "ddpm sample: --n %d: out of memory for that many images%s\n", o->m.n,
                o->progressive ? " and their snapshots (--progressive)" : "");
        return 1;
    }
    rc = o->progressive ? dist_sample_progressive(&sm, x, snaps, ts, o->m.n, C, R, R, o->m.seed, o->every, &err)
                       : dist_sample_images(&sm, x, o->m.n, C, R, R, o->m.seed, 0, &err);
    if (rc == 0) {
        progress_end(&pr, pr.total, NULL);
        double secs = progress_now() - pr.start;
        fprintf(stderr, "sampled %d images in %.1f s: %.3f images/s, %.2f ms per image-step\n",
                o->m.n, secs, o->m.n / secs, 1e3 * secs / (double)pr.total);   // total: image-steps
        char npy[4096];
        npy_path(o->out, npy, sizeof npy);
        int shape[4] = {o->m.n, C, R, R};
        int cols = o->cols ? o->cols : (int)ceil(sqrt((double)o->m.n));   // square by default
        rc = image_write_grid(o->out, x, o->m.n, C, R, R, cols, &err);
        if (rc == 0) rc = npy_write(npy, x, 4, shape, &err);
        if (rc == 0) printf("wrote %s (grid of %d) and %s\n", o->out, o->m.n, npy);
        if (rc == 0 && o->progressive) {
            rc = write_progressive(o->progressive, snaps, S, o->m.n, P, C, R, R, &err);
            if (rc == 0) printf("wrote %s (x0_hat at t = %d, %d, ..., %d; one row per image)\n",
                                o->progressive, ts[0] + 1, ts[1] + 1, ts[S - 1] + 1);
        }
        if (rc == 0 && (o->shared || o->interp)) rc = write_figures(o, &sm, C, R, &err);
    }
    free(snaps);
    free(ts);
    free(x);
    trained_model_free(&tm);
    if (rc < 0) return fail("sample", &err);
    if (o->score) {
        char npy[4096];
        npy_path(o->out, npy, sizeof npy);
        return score_samples(npy, o->m.data, o->classifier);
    }
    return 0;
}

static int cmd_sample(int argc, char **argv)
{
    SampleOpts o = {.m = eval_defaults("sample", 64, 32), .out = "samples.png", .every = 100};
    int status;
    Cli cli = {.cmd = "sample", .groups = sample_groups, .footer = MODEL_NET_NOTE,
        .usage =
        "usage: ddpm sample --ckpt M [--n N] [--out FILE.png] [--seed S] [--use-ema 0|1]\n"
        "                   [--clip-x0 0|1] [--var fixedlarge|fixedsmall] [--batch B]\n"
        "                   [--cols C] [--progressive FILE.png] [--every K]\n"
        "                   [--shared FILE.png] [--interp FILE.png]\n\n"
        "Generate N images with Algorithm 2: x_T ~ N(0, I), then T steps of the\n"
        "learned reverse process. Writes a PNG grid and the images as an .npy next\n"
        "to it ([N, C, H, W] float32 in [-1, 1]). Image i depends only on --seed\n"
        "and i, so --n 16 gives the first 16 of --n 64.\n\n"};
    if (eval_parse(&o, &o.m, &cli, argc, argv, 0, &status)) return status;
    return sample_run(&o);
}

/* ---- ddpm classifier train | eval (chapter 09) --------------------------------- */

typedef struct ClsOpts {
    ClassifierTrain ct;
    const char *data, *out, *classifier;
    int width[4], n_width;
} ClsOpts;

#define K(f) offsetof(ClsOpts, f)
static const ConfigKey cls_keys[] = {
    KEY("out", KEY_STR, K(out), 0, 0, "F", "train: the file to write (required)"),
    KEY("classifier", KEY_STR, K(classifier), 0, 0, "F", "eval: the classifier (required)"),
    KEY("data", KEY_STR, K(data), 0, 0, "PATH", "CIFAR-10 batches or MNIST-format IDX (default as ddpm train)"),
    KEY("steps", KEY_LONG, K(ct.steps), 1, 1e9, "N", "optimiser steps; fixes the learning-rate schedule"),
    KEY("minutes", KEY_DOUBLE, K(ct.minutes), 0.01, 1e6, "M", "... and stop early after M minutes of training",
     .flags = KEY_NO_DEFAULT),
    KEY("stop", KEY_LONG, K(ct.stop), 1, 1e9, "N", "... or after N steps (the schedule still runs to --steps)",
     .flags = KEY_NO_DEFAULT),
    KEY("batch", KEY_INT, K(ct.batch), 1, 4096, "B", "images per step"),
    KEY("lr", KEY_DOUBLE, K(ct.lr), 0, 1, "LR", "peak AdamW learning rate"),
    KEY("warmup", KEY_LONG, K(ct.warmup), 0, 1e9, "N", "linear warm-up steps"),
    KEY("wd", KEY_DOUBLE, K(ct.weight_decay), 0, 1, "W", "decoupled weight decay"),
    KEY("width", KEY_INTS, K(width), 1, 100000, "A,B,C,D", "channel widths, each a multiple of the groups",
     .aux = K(n_width), .max = 4, .lo_count = 4),
    KEY("seed", KEY_U64, K(ct.seed), 0, 0, "S", "seed of everything random"),
    KEY("flip", KEY_INT, K(ct.flip), 0, 1, "0|1", "random horizontal flips"),
    KEY("shift", KEY_INT, K(ct.crop), 0, 1, "0|1", "random 4-pixel shifts"),
    {0},
};
#undef K
static const CliGroup cls_groups[] = {{NULL, cls_keys, 0}, {0}};

#define CLS_USAGE \
    "usage: ddpm classifier train --out F [--data PATH] [--steps N] [--minutes M] [flags]\n" \
    "       ddpm classifier eval --classifier F [--data PATH]\n\n" \
    "train: fit the feature network of `ddpm score` (a small ResNet of chapter 02\n" \
    "layers, AdamW, flips and shifts) on the labels of the training split, then\n" \
    "print its test accuracy and write F (safetensors, config in its metadata).\n" \
    "eval: print the test accuracy of F and its SHA-256.\n\n"

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

static int cls_train(const ClsOpts *f)
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
    memcpy(cfg.width, f->width, sizeof cfg.width);
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

static int cls_eval(const ClsOpts *f)
{
    Error err;
    Classifier net;
    if (classifier_load(f->classifier, &net, &err)) return fail("classifier eval", &err);
    int rc = cls_report("classifier eval", &net, f->classifier, f->data);
    classifier_free(&net);
    return rc;
}

static int cmd_classifier(int argc, char **argv)
{
    ClsOpts o = {0};
    classifier_train_default(&o.ct);
    ClassifierConfig cc;
    classifier_config_default(&cc, 3);   // the widths do not depend on the channels
    memcpy(o.width, cc.width, sizeof o.width);
    o.n_width = 4;
    Cli cli = {.cmd = "classifier", .groups = cls_groups, .usage = CLS_USAGE};
    int status;
    if (argc < 2 || (strcmp(argv[1], "train") && strcmp(argv[1], "eval"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
            return parse(&cli, &o, argc, argv, &status), status;
        cli_usage(&cli, &o, stderr);
        return 2;
    }
    if (parse(&cli, &o, argc - 1, argv + 1, &status)) return status;
    for (int i = 0; i < o.n_width; i++)
        if (o.width[i] % CLS_GROUPS) {
            fprintf(stderr, "ddpm classifier: bad value '%s' for --width: want widths that %d "
                            "groups divide\n", cli_given(&cli, cls_keys, "width"), CLS_GROUPS);
            return 2;
        }
    return !strcmp(argv[1], "train") ? cls_train(&o)
           : o.classifier ? cls_eval(&o)
           : (fprintf(stderr, "ddpm classifier eval: --classifier F is required\n"), 2);
}

/* ---- ddpm score (chapter 09) ------------------------------------------------------ */

typedef struct ScoreOpts {
    const char *samples, *ref, *classifier, *features, *data, *ref_features;
    unsigned long long seed;
    int splits;
} ScoreOpts;

#define K(f) offsetof(ScoreOpts, f)
static const ConfigKey score_keys[] = {
    KEY("samples", KEY_STR, K(samples), 0, 0, "S.npy", "the images to judge (required)"),
    KEY("ref", KEY_STR, K(ref), 0, 0, "R",
     "test (default) or train: that split of --data; or R.npy:\n"
     "                         images [M, C, 32, 32] or features [M, D] (from --features)"),
    KEY("classifier", KEY_STR, K(classifier), 0, 0, "F",
     "default models/classifier_cifar10.safetensors for 3\n"
     "                         channels, models/classifier_fashion_mnist.safetensors for 1"),
    KEY("features", KEY_STR, K(features), 0, 0, "OUT.npy", "write the samples' features [N, D]"),
    KEY("ref-features", KEY_STR, K(ref_features), 0, 0, "OUT.npy",
     "write the reference's features [M, D] (then --ref OUT.npy\n"
     "                         scores against them without embedding again)"),
    KEY("data", KEY_STR, K(data), 0, 0, "PATH", "the data set of --ref test|train (default as ddpm train)"),
    KEY("seed", KEY_U64, K(seed), 0, 0, "S", "seed of KID's subsets"),
    KEY("splits", KEY_INT, K(splits), 2, 1000, "K", "splits of the IS analogue"),
    {0},
};
#undef K
static const CliGroup score_groups[] = {{NULL, score_keys, 0}, {0}};

#define SCORE_USAGE \
    "usage: ddpm score --samples S.npy [--ref test|train|R.npy] [--classifier F]\n" \
    "                  [--features OUT.npy] [--ref-features OUT.npy] [--data PATH]\n" \
    "                  [--seed S] [--splits K]\n\n" \
    "Judge images in the features of a fixed classifier (chapter 09): the Frechet\n" \
    "distance and KID against a reference set, and the Inception-Score analogue.\n" \
    "S.npy holds [N, C, 32, 32] images in [-1, 1] (what ddpm sample writes). The\n" \
    "classifier's SHA-256 is printed: two scores are comparable only when it matches.\n" \
    "These are not the paper's FID / IS (those use Inception-v3 on CIFAR-10).\n\n"

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
static int embed_ref(const ScoreOpts *f, const Classifier *net, FeatSet *s, Error *err)
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

static int score_run(const ScoreOpts *f, const Classifier *net, const char *cls_path, Error *err)
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

static int score_main(ScoreOpts f)
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
    return score_main((ScoreOpts){.samples = samples, .data = data, .classifier = classifier,
                                   .seed = 1, .splits = 10});
}

static int cmd_score(int argc, char **argv)
{
    ScoreOpts o = {.seed = 1, .splits = 10};
    Cli cli = {.cmd = "score", .groups = score_groups, .usage = SCORE_USAGE};
    int status;
    if (parse(&cli, &o, argc, argv, &status)) return status;
    if (!o.samples) { fprintf(stderr, "ddpm score: --samples S.npy is required\n"); return 2; }
    return score_main(o);
}

/* ---- ddpm version ---------------------------------------------------------- */

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
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
