/* test_cli.c — the configuration tables (config.h) and the command-line
 * parser (cli.h): typed, range-checked values; --flag value and --flag=value;
 * a repeated flag, a missing value, an unknown flag; presets applied first;
 * the usage text with the real defaults; and the U-Net's and the trainer's
 * tables reading back exactly what they write (the checkpoint metadata). */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train.h"

typedef struct Opts {
    const char *out;
    int batch, flip, list[4], n_list, pair[2], n_pair;
    long steps;
    double lr;
    unsigned long long seed;
    int mode;
    char preset[16];
} Opts;

static const char *const modes[] = {"eps", "x0", "mu", NULL};

// --preset NAME sets batch and lr (what --config does to the U-Net's keys).
static int set_preset(void *field, const char *text, Error *err)
{
    Opts *o = (Opts *)((char *)field - offsetof(Opts, preset));
    if (strcmp(text, "big")) return error_set(err, "unknown preset '%s'", text);
    o->batch = 128;
    o->lr = 0.5;
    snprintf(o->preset, sizeof o->preset, "%s", text);
    return 0;
}

#define O(f) offsetof(Opts, f)
static const ConfigKey keys[] = {
    KEY("out", KEY_STR, O(out), 0, 0, "DIR", "output folder"),
    KEY("batch", KEY_INT, O(batch), 1, 4096, "B", "images per step"),
    KEY("steps", KEY_LONG, O(steps), 1, 1e9, "N", "steps", .flags = KEY_NO_DEFAULT),
    KEY("lr", KEY_DOUBLE, O(lr), 0, 1, "LR", "learning rate"),
    KEY("seed", KEY_U64, O(seed), 0, 0, "S", "seed"),
    KEY("flip", KEY_INT, O(flip), 0, 1, "0|1", "flips"),
    KEY("list", KEY_INTS, O(list), 1, 99, "A,B", "a list", .aux = O(n_list), .max = 4,
        .lo_count = 1),
    KEY("pair", KEY_INTS, O(pair), 0, 9, "A,B", "exactly two", .aux = O(n_pair), .max = 2,
        .lo_count = 2),
    KEY("mode", KEY_ENUM, O(mode), 0, 0, "M", "what to predict", .names = modes),
    KEY("preset", KEY_FUNC, O(preset), 0, 0, "NAME", "big", .flags = KEY_FIRST, .set = set_preset),
    {0},
};
static const CliGroup groups[] = {{NULL, keys, 0}, {0}};

static Opts defaults(void)
{
    return (Opts){.batch = 32, .lr = 2e-4, .flip = 1, .list = {16}, .n_list = 1};
}

// cli_parse on a command line given as one string (words split at spaces),
// its stderr kept in msg.
static int run(Opts *o, Cli *cli, const char *line, char *msg, size_t len)
{
    char buf[512], *argv[32] = {"cmd"};
    int argc = 1;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *w = strtok(buf, " "); w && argc < 31; w = strtok(NULL, " ")) argv[argc++] = w;
    *cli = (Cli){.cmd = "test", .usage = "usage: test\n", .groups = groups};
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(fileno(stderr));
    dup2(fileno(tmp), fileno(stderr));
    int rc = cli_parse(cli, o, argc, argv);
    fflush(stderr);
    dup2(saved, fileno(stderr));
    close(saved);
    rewind(tmp);
    size_t n = fread(msg, 1, len - 1, tmp);
    msg[n] = 0;
    fclose(tmp);
    return rc;
}

START_TEST(both_forms)
{
    Opts o = defaults();
    Cli cli;
    char msg[512];
    ck_assert_int_eq(run(&o, &cli, "--batch=64 --lr 0.001 --out=a=b --seed 18446744073709551615 "
                                   "--list 1,2,3 --mode x0", msg, sizeof msg), 0);
    ck_assert_int_eq(o.batch, 64);
    ck_assert(o.lr == 0.001);
    ck_assert_str_eq(o.out, "a=b");   // only the first '=' splits
    ck_assert(o.seed == 18446744073709551615ULL);   // exactly: no trip through a double
    ck_assert_int_eq(o.n_list, 3);
    ck_assert_int_eq(o.list[2], 3);
    ck_assert_int_eq(o.mode, 1);
    ck_assert_ptr_nonnull(cli_given(&cli, keys, "batch"));
    ck_assert_ptr_null(cli_given(&cli, keys, "flip"));
    ck_assert_str_eq(cli_given(&cli, keys, "out"), "a=b");
    ck_assert_str_eq(msg, "");
}
END_TEST

// Each misuse: status 2, a message, and the options as they were.
static const char *const misuse[][2] = {
    {"--out --batch 10", "--out needs a value, not the flag '--batch'"},
    {"--batch", "--batch needs a value"},
    {"--batch 1 --batch 2", "--batch is given twice"},
    {"--batch=1 --batch 1", "--batch is given twice"},
    {"--bogus 1", "unknown flag --bogus"},
    {"--bogus=1", "unknown flag --bogus"},
    {"positional", "expected --flag value, got 'positional'"},
    {"--", "expected --flag value, got '--'"},
    {"--batch 1.5", "bad value '1.5' for --batch: want a whole number in 1..4096"},
    {"--batch 0", "bad value '0' for --batch: want a whole number in 1..4096"},
    {"--batch 0x10", "bad value '0x10' for --batch"},
    {"--batch=", "bad value '' for --batch"},
    {"--steps 1e3", "bad value '1e3' for --steps: want a whole number in 1..1000000000"},
    {"--lr 2", "bad value '2' for --lr: want a number in 0..1"},
    {"--lr nan", "bad value 'nan' for --lr"},
    {"--lr infinity", "bad value 'infinity' for --lr"},
    {"--seed -1", "bad value '-1' for --seed: want a whole number in 0..18446744073709551615"},
    {"--seed 18446744073709551616", "bad value '18446744073709551616' for --seed"},
    {"--seed 1.5", "bad value '1.5' for --seed"},
    {"--flip 2", "bad value '2' for --flip: want a whole number in 0..1"},
    {"--list 1,,2", "bad value '1,,2' for --list: want 1 to 4 whole numbers in 1..99"},
    {"--list 1,2,3,4,5", "bad value '1,2,3,4,5' for --list"},
    {"--list none", "bad value 'none' for --list"},
    {"--list 100", "bad value '100' for --list"},
    {"--pair 5", "bad value '5' for --pair: want 2 whole numbers in 0..9"},
    {"--lr 0x1p-3", "bad value '0x1p-3' for --lr: want a number in 0..1"},
    {"--mode foo", "bad value 'foo' for --mode: want eps, x0 or mu"},
    {"--preset small", "bad value 'small' for --preset: unknown preset 'small'"},
};

START_TEST(misuse_is_refused)
{
    Opts o = defaults(), before = o;
    Cli cli;
    char msg[512];
    ck_assert_int_eq(run(&o, &cli, misuse[_i][0], msg, sizeof msg), 2);
    ck_assert_msg(strstr(msg, misuse[_i][1]) != NULL, "'%s': got '%s', want '%s'",
                  misuse[_i][0], msg, misuse[_i][1]);
    ck_assert_msg(strncmp(msg, "ddpm test: ", 11) == 0, "%s", msg);
    ck_assert_int_eq(o.batch, before.batch);
    ck_assert(o.lr == before.lr && o.seed == before.seed && o.n_list == before.n_list);
}
END_TEST

// The preset is applied first wherever it stands; the other flags win over it.
START_TEST(preset_first)
{
    Opts o = defaults();
    Cli cli;
    char msg[512];
    ck_assert_int_eq(run(&o, &cli, "--batch 8 --preset big", msg, sizeof msg), 0);
    ck_assert_int_eq(o.batch, 8);
    ck_assert(o.lr == 0.5);
    ck_assert_str_eq(o.preset, "big");
}
END_TEST

START_TEST(usage_has_real_defaults)
{
    Opts o = defaults();
    o.batch = 77;
    Cli cli = {.cmd = "test", .usage = "usage: test\n", .groups = groups, .footer = "the end\n"};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cli_usage(&cli, &o, f);
    fclose(f);
    ck_assert_msg(strstr(text, "  --batch B              images per step (default: 77)\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "learning rate (default: 0.0002)") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "steps\n") != NULL, "%s", text);   // KEY_NO_DEFAULT: none shown
    ck_assert_msg(strstr(text, "a list (default: 16)") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "what to predict (default: eps)") != NULL, "%s", text);
    ck_assert(strncmp(text, "usage: test\n", 12) == 0);
    ck_assert(strstr(text, "the end\n") != NULL);
    free(text);
    // --help anywhere prints it and says so.
    Opts p = defaults();
    char msg[512];
    FILE *out = freopen("/dev/null", "w", stdout);   // this forked child's usage text
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(run(&p, &cli, "--batch 3 --help", msg, sizeof msg), 1);
    ck_assert_int_eq(p.batch, 32);
}
END_TEST

// Format, then set from that text: the same value, for every type.
START_TEST(format_reads_back)
{
    Opts a = defaults(), b = {0};
    a.out = "x y";
    a.lr = 0.1 + 0.2;   // 0.30000000000000004: all 17 digits are needed
    a.seed = 18446744073709551615ULL;
    a.steps = 5;
    a.mode = 2;
    for (const ConfigKey *k = keys; k->key; k++) {
        char text[128], again[128];
        if (k->type == KEY_FUNC || k->type == KEY_INTS) continue;
        config_format(k, &a, text, sizeof text);
        ck_assert_msg(config_set(k, &b, text, NULL) == 0, "%s = '%s'", k->key, text);
        config_format(k, &b, again, sizeof again);
        ck_assert_str_eq(text, again);
    }
    ck_assert(b.seed == a.seed);
    ck_assert_int_eq(b.mode, 2);
    ck_assert(b.lr == a.lr);
}
END_TEST

// The U-Net's keys: a config written as ddpm.* metadata reads back as the
// same network (what checkpoint.c does with them), and a bad value is refused.
START_TEST(unet_keys_round_trip)
{
    UNetConfig a, b;
    ck_assert_int_eq(unet_config(&a, "paper", NULL), 0);
    ck_assert_int_eq(unet_config_set(&a, "attn", "none", NULL), 0);
    ck_assert_int_eq(unet_config_set(&a, "ch-mult", "1,3,5", NULL), 0);
    ck_assert_int_eq(unet_config_set(&a, "dropout", "0.25", NULL), 0);
    ck_assert_str_eq(a.name, "custom");
    ck_assert_int_eq(unet_config(&b, "tiny", NULL), 0);
    for (const ConfigKey *k = unet_keys; k->key; k++) {
        char text[128];
        if (k->type == KEY_FUNC) continue;
        config_format(k, &a, text, sizeof text);
        ck_assert_msg(config_set(k, &b, text, NULL) == 0, "%s = '%s'", k->key, text);
    }
    char la[512], lb[512];
    config_line(unet_keys, &a, 0, la, sizeof la);
    config_line(unet_keys, &b, 0, lb, sizeof lb);
    ck_assert_str_eq(la, lb);
    ck_assert_str_eq(la, "ch 128, ch-mult 1,3,5, num-res-blocks 2, attn none, dropout 0.25, "
                         "in-ch 3, out-ch 3, resolution 32, groups 32");
    ck_assert_int_eq(b.n_levels, 3);
    ck_assert_int_eq(b.n_attn, 0);
    Error err;
    ck_assert_int_eq(unet_config_set(&b, "ch", "-32", &err), -1);
    ck_assert_str_eq(err.msg, "bad value '-32' for --ch: want a whole number in 1..100000");
    ck_assert_int_eq(unet_config_set(&b, "config", "paper", &err), -1);   // not a key
    ck_assert_int_eq(b.ch, 128);
}
END_TEST

// Every key is defined once: no two rows share a flag or a metadata name,
// and the stored training settings read back exactly.
START_TEST(keys_once_and_train_round_trip)
{
    const ConfigKey *tables[] = {unet_keys, train_keys};
    for (int t = 0; t < 2; t++)
        for (const ConfigKey *k = tables[t]; k->key; k++)
            for (const ConfigKey *j = k + 1; j->key; j++) {
                ck_assert_str_ne(k->key, j->key);
                ck_assert_str_ne(k->store ? k->store : k->key, j->store ? j->store : j->key);
            }
    TrainConfig a, b;
    train_config_default(&a);
    train_config_default(&b);
    a.batch = 3, a.lr = 1e-3, a.warmup = 7, a.grad_clip = 0.5, a.ema_decay = 0.99;
    a.seed = 18446744073709551615ULL, a.flip = 0, a.T = 50;
    a.mean = MEAN_X0, a.var = VAR_LEARNED, a.loss = LOSS_HYBRID;
    int stored = 0;
    for (const ConfigKey *k = train_keys; k->key; k++) {
        char text[128], key[64];
        if (!(k->flags & KEY_STORED)) continue;
        stored++;
        config_format(k, &a, text, sizeof text);
        config_store_key(k, "train.", key, sizeof key);
        ck_assert_msg(config_set(k, &b, text, NULL) == 0, "%s = '%s'", key, text);
    }
    ck_assert_int_eq(stored, 11);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    char key[64];
    config_store_key(config_find(train_keys, "clip"), "train.", key, sizeof key);
    ck_assert_str_eq(key, "train.grad_clip");   // what older checkpoints hold
}
END_TEST

Suite *suite_cli(void)
{
    Suite *s = suite_create("cli");
    TCase *core = tcase_create("core");
    tcase_add_test(core, both_forms);
    tcase_add_loop_test(core, misuse_is_refused, 0, (int)(sizeof misuse / sizeof misuse[0]));
    tcase_add_test(core, preset_first);
    tcase_add_test(core, usage_has_real_defaults);
    tcase_add_test(core, format_reads_back);
    tcase_add_test(core, unet_keys_round_trip);
    tcase_add_test(core, keys_once_and_train_round_trip);
    suite_add_tcase(s, core);
    return s;
}
