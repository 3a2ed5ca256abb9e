/* fuzz_cli.c — the ddpm program's flag parsing on arbitrary command lines.
 *
 * The input is a command line: words separated by newlines, the first byte
 * choosing the command (train, sample, bpd, init, forward, params).
 * The flags are parsed exactly as ddpm.c does (cli_parse with each
 * command's tables, then the network config and the diffusion flags) but
 * the command does not run. Whatever is accepted must be in range. */
#define main ddpm_main
#include "../../src/ddpm.c"
#undef main
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    stdout = stderr;   // usage texts too
    return 0;
}

#define MAX_WORDS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2048) return 0;
    char *text = malloc(size), *argv[MAX_WORDS + 1] = {"ddpm-command"};
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    int argc = 1;
    for (char *s = text; argc < MAX_WORDS;) {
        argv[argc++] = s;
        char *nl = strchr(s, '\n');
        if (!nl) break;
        *nl = 0;
        s = nl + 1;
    }
    argv[argc] = NULL;
    int cmd = data[0] % 6, rc, status;
    Error err;
    Cli cli;
    if (cmd == 0) {
        TrainOpts o;
        train_defaults(&o);
        rc = train_parse(&o, &cli, argc, argv, &status);
        const TrainConfig *c = &o.tc;
        if (rc == 0 && (c->batch < 1 || c->batch > TRAIN_MAX_BATCH || c->T < 2 || c->T > TRAIN_MAX_T ||
                        c->steps < 0 || c->warmup < 0 || !(c->lr >= 0 && c->lr <= 1) ||
                        !(c->ema_decay >= 0 && c->ema_decay <= 1) || c->flip < 0 || c->flip > 1 ||
                        (unsigned)c->mean > MEAN_MU || (unsigned)c->var > VAR_LEARNED ||
                        unet_config_check(&o.net.cfg, &err) < 0))
            abort();
    } else if (cmd <= 2) {
        SampleOpts o = {.m = eval_defaults("sample", 64, 32), .every = 100};
        cli = (Cli){.cmd = "x", .usage = "", .groups = cmd == 1 ? sample_groups : bpd_groups};
        rc = eval_parse(&o, &o.m, &cli, argc, argv, 0, &status);
        if (rc == 0 && (o.m.n < 1 || o.m.n > 1e7 || o.m.batch < 1 || o.m.batch > TRAIN_MAX_BATCH ||
                        o.every < 1 || o.cols < 0 || (o.m.clip_x0 | 1) != 1 ||
                        (o.m.use_ema | 1) != 1 ||
                        (o.m.net.given && unet_config_check(&o.m.net.cfg, &err) < 0)))
            abort();
    } else {
        static const CliGroup *groups[] = {init_groups, forward_groups, params_groups};
        union { InitOpts i; ForwardOpts f; ParamsOpts p; } u;
        memset(&u, 0, sizeof u);
        NetOpts *net = cmd == 3 ? &u.i.net : cmd == 4 ? &u.f.net : &u.p.net;
        net_default(net);
        cli = (Cli){.cmd = "x", .usage = "", .groups = groups[cmd - 3]};
        rc = cli_parse(&cli, &u, argc, argv);
        if (rc == 0 && net_finish(net, &cli, &err) == 0 &&
            (unet_config_check(&net->cfg, &err) < 0 || unet_config_params(&net->cfg) > UNET_MAX_PARAMS))
            abort();
    }
    // One row of each type on its own: what config_set accepts is in range.
    typedef struct { int i; double d; long l; unsigned long long u; int v[4], n; } Row;
    #define Z(f) offsetof(Row, f)
    static const ConfigKey keys[] = {
        KEY("i", KEY_INT, Z(i), -5, 7, "", ""),
        KEY("d", KEY_DOUBLE, Z(d), -5, 7, "", ""),
        KEY("l", KEY_LONG, Z(l), 0, 1e9, "", ""),
        KEY("u", KEY_U64, Z(u), 0, 0, "", ""),
        KEY("v", KEY_INTS, Z(v), 1, 9, "", "", .aux = Z(n), .max = 4, .lo_count = 0),
        {0},
    };
    for (int i = 1; i < argc; i++) {
        Row x = {0};
        for (const ConfigKey *k = keys; k->key; k++) (void)config_set(k, &x, argv[i], NULL);
        if (x.i < -5 || x.i > 7 || !(x.d >= -5 && x.d <= 7) || x.l < 0 || x.l > 1e9 || x.n < 0 ||
            x.n > 4)
            abort();
        for (int j = 0; j < x.n; j++)
            if (x.v[j] < 1 || x.v[j] > 9) abort();
    }
    free(text);
    return 0;
}
