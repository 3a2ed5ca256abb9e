/* ddpm.c — the command-line program that composes the chapters.
 *
 *   ddpm <command> [--flags]     results on stdout, progress on stderr,
 *                                exit status 0 only on success.
 *
 * Commands are added as the chapters that provide them land: `version` and
 * `help` now; `init`, `forward`, `params` (chapter 04), `train`, `bpd`
 * (chapter 06), `rd` (chapter 07) and `sample` (chapter 08) later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "npy.h"

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

static const Command commands[] = {
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
    if (net_config(&nf, &cfg, &err) < 0) return fail("params", &err);
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
    else if (!strcmp(flag, "seed")) {
        char *end;
        f->seed = strtoull(value, &end, 10);
        f->bad_seed = *end != 0 || end == value;
    } else return net_flag(&f->net, flag, value);
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
    if (net_config(&f.net, &cfg, &err) < 0) return fail("init", &err);
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
    if (x->ndim != 4 || x->shape[1] != c->in_ch || x->shape[2] != c->resolution ||
        x->shape[3] != c->resolution)
        return error_set(err, "%s: x must have shape [N, %d, %d, %d] for this network", f->x,
                         c->in_ch, c->resolution, c->resolution);
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
    if (net_config(&f.net, &cfg, &err) < 0) return fail("forward", &err);
    UNet net;
    if (ckpt_load(f.ckpt, &net, &cfg, f.net.config != NULL, &err) < 0) return fail("forward", &err);
    NpyArray x = {0}, t = {0};
    int *ts = NULL;
    rc = -1;
    if (npy_read(f.x, &x, &err) == 0 && npy_read(f.t, &t, &err) == 0 &&
        (ts = malloc(sizeof(int) * (t.size + 1))) &&
        check_inputs(&f, &x, &t, &net.cfg, ts, &err) == 0) {
        Arena arena;
        arena_init(&arena, 64 << 20);
        Tape tp;
        tape_init(&tp, &arena);
        tape_set_recording(&tp, 0);
        Tensor *in = tensor_4d(&arena, (int)x.shape[0], (int)x.shape[1], (int)x.shape[2],
                               (int)x.shape[3]);
        vec_copy(in->data, x.data, in->size);
        Tensor *y = unet_forward(&tp, &net, in, ts, NULL, 0);
        rc = npy_write(f.out, y->data, y->ndim, y->shape, &err);
        if (rc == 0) printf("wrote %s [%d,%d,%d,%d]\n", f.out, y->shape[0], y->shape[1],
                            y->shape[2], y->shape[3]);
        tape_free(&tp);
        arena_free(&arena);
    }
    free(ts);
    npy_free(&x);
    npy_free(&t);
    unet_free(&net);
    return rc < 0 ? fail("forward", &err) : 0;
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
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    if (argc < 2) {
        cmd_help(argc, argv);
        return 2;   // no command is a usage error
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return cmd_help(argc, argv);
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ddpm: unknown command '%s' (see ddpm --help)\n", argv[1]);
    return 2;
}
