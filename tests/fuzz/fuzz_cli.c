/* fuzz_cli.c — the ddpm program's flag parsing on arbitrary command lines.
 *
 * The input is a command line: words separated by newlines, the first byte
 * choosing the command (train, sample, bpd, rd, init, forward, params).
 * The flags are parsed exactly as ddpm.c does (parse_flags with each
 * command's table, then the network config and the diffusion flags) but
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
    int cmd = data[0] % 6, rc;
    Error err;
    UNetConfig cfg;
    if (cmd == 0) {
        TrainFlags f = {0};
        train_config_default(&f.tc);
        f.T = 1000;
        rc = parse_flags(argc, argv, "train", TRAIN_USAGE, take_train, &f);
        if (rc == 0 && !f.bad) {
            if (f.tc.batch < 1 || f.tc.batch > TRAIN_MAX_BATCH || f.T < 2 || f.T > TRAIN_MAX_T ||
                f.tc.steps < 0 || f.tc.warmup < 0 || !(f.tc.lr >= 0 && f.tc.lr <= 1) ||
                !(f.tc.ema_decay >= 0 && f.tc.ema_decay <= 1) || f.tc.flip < 0 || f.tc.flip > 1)
                abort();
            Diffusion df;
            if (net_config(&f.net, &cfg, &err) == 0 && unet_config_check(&cfg, &err) < 0) abort();
            (void)diffusion_parse(&df, f.mean ? f.mean : "eps", f.var ? f.var : "fixedlarge",
                                  f.loss ? f.loss : "simple", &err);
        }
    } else if (cmd <= 2) {
        SampleFlags f = {.m = {.cmd = "sample", .n = 64, .batch = 32, .clip = 1, .ema = 1},
                         .every = 100};
        rc = cmd == 1 ? parse_flags(argc, argv, "sample", SAMPLE_USAGE, take_sample, &f)
                      : parse_flags(argc, argv, "bpd", "", take_bpd, &f.m);
        if (rc == 0 && !f.m.bad) {
            if (f.m.n < 1 || f.m.n > 1e7 || f.m.batch < 1 || f.m.batch > TRAIN_MAX_BATCH ||
                f.every < 1 || f.cols < 0 || (f.m.clip | 1) != 1 || (f.m.ema | 1) != 1)
                abort();
            if ((f.m.net.config || f.m.net.n) && net_config(&f.m.net, &cfg, &err) == 0 &&
                unet_config_check(&cfg, &err) < 0)
                abort();
        }
    } else if (cmd == 3) {
        InitFlags f = {0};
        rc = parse_flags(argc, argv, "init", "", take_init, &f);
        if (rc == 0 && net_config(&f.net, &cfg, &err) == 0 &&
            (unet_config_check(&cfg, &err) < 0 || unet_config_params(&cfg) > UNET_MAX_PARAMS))
            abort();
    } else if (cmd == 4) {
        ForwardFlags f = {0};
        rc = parse_flags(argc, argv, "forward", "", take_forward, &f);
        if (rc == 0) (void)net_config(&f.net, &cfg, &err);
    } else {
        NetFlags nf = {0};
        rc = parse_flags(argc, argv, "params", "", take_net, &nf);
        if (rc == 0) (void)net_config(&nf, &cfg, &err);
    }
    // The number readers on their own: what they accept is in range.
    for (int i = 1; i < argc; i++) {
        double x;
        unsigned long long u;
        if (num(argv[i], -5, 7, &x) == 0 && !(x >= -5 && x <= 7)) abort();
        if (whole(argv[i], 0, 1e9, &x) == 0 && (x != (long)x || x < 0)) abort();
        (void)seed_num(argv[i], &u);
    }
    free(text);
    return 0;
}
