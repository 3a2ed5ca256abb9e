/* test_robust.c — hostile input: files and numbers that come from strangers.
 *
 * A checkpoint downloaded from anywhere, a data set of unknown provenance:
 * every case here once crashed, overflowed, grew memory without bound or
 * silently changed a run, and must now fail with one sentence naming the
 * file and the key, or load correctly.
 *
 *   config_*      network configs: widths that overflow an int, networks
 *                 too large to build, the parameter count computed without
 *                 building the network
 *   meta_*        train.* metadata, parsed strictly (a loop over bad values)
 *   resume_*      --resume takes T and the schedule from the checkpoint
 *   model_*       a checkpoint without a stored config loads with one given
 *   idx_*         gzip bombs and lying IDX headers cost no memory
 *   file_*        whole-file reads refuse files over their limit
 *
 * Runs in both builds; every file goes into a fresh temporary directory.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "npy.h"
#include "train.h"

/* ---- helpers ----------------------------------------------------------------- */

static void tmp_dir(char *dir)   // dir: char[32]
{
    strcpy(dir, "/tmp/ddpm_robust_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_dir(const char *dir)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void assert_has(const Error *err, const char *phrase)
{
    ck_assert_msg(strstr(err->msg, phrase) != NULL, "message \"%s\" lacks \"%s\"", err->msg,
                  phrase);
}

static UNetConfig custom(const char *const kv[][2], int n)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    for (int i = 0; i < n; i++)
        ck_assert_msg(unet_config_set(&c, kv[i][0], kv[i][1], NULL) == 0, "%s", kv[i][0]);
    return c;
}

// The miniature network and training settings of test_train.c.
static void toy_model(UNetConfig *c, Diffusion *df, TrainConfig *tc, const char *out)
{
    const char *kv[][2] = {{"ch", "8"}, {"ch-mult", "1,2"}, {"attn", "4"}, {"in-ch", "1"},
                           {"out-ch", "1"}, {"resolution", "8"}, {"groups", "4"}};
    *c = custom(kv, 7);
    diffusion_parse(df, "eps", "fixedlarge", "simple", NULL);
    train_config_default(tc);
    tc->batch = 6;
    tc->warmup = 3;
    tc->lr = 1e-3;
    tc->ema_decay = 0.9;
    tc->seed = 42;
    tc->quiet = 1;
    tc->out_dir = out;
    tc->T = 50;
}

// A training checkpoint of the toy model after 0 steps, T = 50, at path.
static void toy_checkpoint(const char *path)
{
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, "/tmp");
    Trainer tr;
    Error err;
    ck_assert_msg(trainer_init(&tr, &c, &tc, NULL, &err) == 0, "%s", err.msg);
    ck_assert_msg(trainer_save(&tr, path, "toy", &err) == 0, "%s", err.msg);
    trainer_free(&tr);
}

// Rewrite metadata `key` of the safetensors file at path to `value` (the
// data offsets count from the data region, so the header may change length).
static void set_meta(const char *path, const char *key, const char *value)
{
    unsigned char *b;
    size_t n;
    Error err;
    ck_assert_msg(file_read(path, &b, &n, &err) == 0, "%s", err.msg);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    char *h = strndup((const char *)b + 8, hlen), pat[96];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    char *at = strstr(h, pat);
    ck_assert_msg(at != NULL, "%s has no metadata %s", path, key);
    char *v = at + strlen(pat), *end = strchr(v, '"');
    size_t pre = (size_t)(v - h), post = strlen(end), vl = strlen(value);
    size_t nh = pre + vl + post;
    unsigned char *o = malloc(8 + nh + (n - 8 - hlen));
    for (int i = 0; i < 8; i++) o[i] = (unsigned char)((uint64_t)nh >> (8 * i));
    memcpy(o + 8, h, pre);
    memcpy(o + 8 + pre, value, vl);
    memcpy(o + 8 + pre + vl, end, post);
    memcpy(o + 8 + nh, b + 8 + hlen, n - 8 - hlen);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(o, 1, 8 + nh + (n - 8 - hlen), fp), 8 + nh + (n - 8 - hlen));
    fclose(fp);
    free(o);
    free(h);
    free(b);
}

/* ---- network configs ------------------------------------------------------------ */

// unet_config_params counts exactly what unet_build allocates.
START_TEST(config_params_exact)
{
    const char *const cases[][7][2] = {
        {{"ch", "32"}},
        {{"ch", "64"}, {"ch-mult", "1,2,2,2"}, {"num-res-blocks", "2"}},
        {{"ch", "8"}, {"ch-mult", "1,2"}, {"attn", "4"}, {"in-ch", "1"}, {"out-ch", "2"},
         {"resolution", "8"}, {"groups", "4"}},
        {{"ch", "12"}, {"ch-mult", "3,1,4"}, {"attn", "32,8"}, {"num-res-blocks", "3"},
         {"groups", "4"}},
        {{"ch", "16"}, {"ch-mult", "1"}, {"attn", "none"}, {"groups", "8"}, {"in-ch", "5"}},
        {{"ch", "8"}, {"ch-mult", "1,1,2,2,4,4"}, {"groups", "2"}, {"attn", "1,2"}},
    };
    int counts[] = {1, 3, 7, 5, 5, 4};
    for (int k = 0; k < 6; k++) {
        UNetConfig c = custom(cases[k], counts[k]);
        Error err;
        ck_assert_msg(unet_config_check(&c, &err) == 0, "case %d: %s", k, err.msg);
        UNet net;
        unet_build(&net, &c);
        ck_assert_msg(unet_config_params(&c) == (double)net.params.total,
                      "case %d: counted %.0f, built %zu", k, unet_config_params(&c),
                      net.params.total);
        unet_free(&net);
    }
    const char *names[] = {"tiny", "small", "paper"};
    for (int k = 0; k < 3; k++) {   // paper: 35.7M, counted without building it
        UNetConfig c;
        unet_config(&c, names[k], NULL);
        ck_assert_int_eq(unet_config_check(&c, NULL), 0);
    }
    UNetConfig p;
    unet_config(&p, "paper", NULL);
    ck_assert_msg(unet_config_params(&p) > 35.7e6 && unet_config_params(&p) < 35.8e6, "%.0f",
                  unet_config_params(&p));
}
END_TEST

// ch x ch_mult beyond an int, widths beyond the limit, networks too large
// to allocate, resolutions and channel counts out of range: refused.
START_TEST(config_rejects_huge)
{
    const char *const bad[][3][2] = {
        {{"ch", "100000"}, {"ch-mult", "100000"}, {"groups", "1"}},   // 10^10 overflows int
        {{"ch", "65536"}, {"ch-mult", "65536,65536"}, {"groups", "1"}},
        {{"ch", "16384"}, {"ch-mult", "2"}, {"groups", "1"}},          // width 32768
        {{"ch", "16384"}, {"ch-mult", "1"}, {"groups", "1"}},          // 10^10 parameters
        {{"resolution", "65536"}, {"attn", "none"}},
        {{"in-ch", "100000"}},
        {{"out-ch", "65"}},
    };
    int counts[] = {3, 3, 3, 3, 2, 1, 1};
    for (int k = 0; k < 7; k++) {
        UNetConfig c = custom(bad[k], counts[k]);
        Error err = {{0}};
        ck_assert_msg(unet_config_check(&c, &err) == -1, "case %d accepted", k);
        ck_assert_msg(err.msg[0], "case %d: no message", k);
    }
}
END_TEST

// The same config in a checkpoint's metadata: ckpt_load fails naming the
// file and the key, before allocating anything.
START_TEST(config_meta_overflow)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    toy_checkpoint(path);
    UNet net;
    Error err;
    set_meta(path, "ddpm.ch", "100000");
    set_meta(path, "ddpm.ch-mult", "100000");
    set_meta(path, "ddpm.groups", "1");
    ck_assert_int_eq(ckpt_load(path, &net, NULL, 0, &err), -1);
    assert_has(&err, path);
    assert_has(&err, "stored config");
    // In range, but far more parameters than the file holds (paper: 35.7M).
    toy_checkpoint(path);
    set_meta(path, "ddpm.ch", "128");
    set_meta(path, "ddpm.ch-mult", "1,2,2,2");
    set_meta(path, "ddpm.num-res-blocks", "2");
    set_meta(path, "ddpm.groups", "32");
    set_meta(path, "ddpm.resolution", "32");
    set_meta(path, "ddpm.attn", "16");
    ck_assert_int_eq(ckpt_load(path, &net, NULL, 0, &err), -1);
    assert_has(&err, path);
    assert_has(&err, "bytes of tensor data");
    rm_dir(dir);
}
END_TEST

// params_add is called by the program, never with user numbers: a
// dimension <= 0 is a programming error and aborts.
START_TEST(params_add_zero_dim_aborts)
{
    ParamSet ps;
    params_init(&ps);
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));   // the expected report
    params_add(&ps, "w", 2, (int[]){3, 0});
}
END_TEST

/* ---- train.* metadata ---------------------------------------------------------- */

static const char *const bad_meta[][2] = {
    {"train.step", "-1"},          {"train.step", "1e300"},     {"train.step", "12abc"},
    {"train.step", "99999999999999999999"}, {"train.step", "2.5"},
    {"train.batch", "0"},          {"train.batch", "-3"},       {"train.batch", "100000"},
    {"train.batch", "2147483648"}, {"train.T", "1"},            {"train.T", "1000000000"},
    {"train.T", "nan"},            {"train.lr", "-1"},          {"train.lr", "inf"},
    {"train.lr", ""},              {"train.flip", "2"},         {"train.seed", "-1"},
    {"train.seed", "18446744073709551616"}, {"train.seed", " 5"},
    {"train.ema_decay", "1.5"},    {"train.warmup", "-5"},      {"train.grad_clip", "-0.1"},
};
#define N_BAD_META (int)(sizeof bad_meta / sizeof bad_meta[0])

START_TEST(meta_strict)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    toy_checkpoint(path);
    set_meta(path, bad_meta[_i][0], bad_meta[_i][1]);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, dir);
    Trainer tr;
    Error err;
    ck_assert_msg(trainer_init(&tr, &c, &tc, path, &err) == -1, "%s = '%s' accepted",
                  bad_meta[_i][0], bad_meta[_i][1]);
    assert_has(&err, path);
    assert_has(&err, bad_meta[_i][0]);
    // Evaluation and sampling read train.T, train.step and train.ema_decay.
    const char *k = bad_meta[_i][0];
    if (!strcmp(k, "train.T") || !strcmp(k, "train.step") || !strcmp(k, "train.ema_decay")) {
        TrainedModel m;
        int rc = trained_model_load(&m, path, 1, &err);
        int allowed = !strcmp(bad_meta[_i][1], "-1") && !strcmp(k, "train.step");
        ck_assert_msg(rc == (allowed ? 0 : -1), "trained_model_load: %s = '%s'", k,
                      bad_meta[_i][1]);
        if (rc == 0) trained_model_free(&m);
        else assert_has(&err, k);
    }
    rm_dir(dir);
}
END_TEST

// The good values still load (the mutation that refuses everything fails here).
START_TEST(meta_good_values_load)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    toy_checkpoint(path);
    set_meta(path, "train.step", "17");
    set_meta(path, "train.seed", "18446744073709551615");
    set_meta(path, "train.batch", "4096");
    set_meta(path, "train.lr", "1e-4");
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, dir);
    Trainer tr;
    Error err;
    ck_assert_msg(trainer_init(&tr, &c, &tc, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tr.step, 17);
    ck_assert(tr.cfg.seed == 18446744073709551615ULL);
    ck_assert_int_eq(tr.cfg.batch, 4096);
    ck_assert(tr.cfg.lr == 1e-4);
    trainer_free(&tr);
    rm_dir(dir);
}
END_TEST

/* ---- resume: the checkpoint's schedule ----------------------------------------- */

// A run trained with T = 50, resumed by a caller that passes T = 1000: the
// schedule is the checkpoint's (50 steps, the same betas).
START_TEST(resume_takes_T_from_checkpoint)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    toy_checkpoint(path);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, dir);
    Trainer a, b;
    Error err;
    ck_assert_int_eq(trainer_init(&a, &c, &tc, NULL, &err), 0);
    tc.T = 1000;
    ck_assert_msg(trainer_init(&b, &c, &tc, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(b.sched->T, 50);
    ck_assert(b.df.sched == b.sched);
    ck_assert(memcmp(a.sched->betas, b.sched->betas, 50 * sizeof *a.sched->betas) == 0);
    trainer_free(&a);
    trainer_free(&b);
    rm_dir(dir);
}
END_TEST

// train.var = learned needs twice the output channels: a checkpoint that
// says so of a network without them is refused (it would abort in a step).
START_TEST(resume_out_ch_mismatch)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    toy_checkpoint(path);
    set_meta(path, "train.var", "learned");
    set_meta(path, "train.loss", "hybrid");
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, dir);
    Trainer tr;
    Error err;
    ck_assert_int_eq(trainer_init(&tr, &c, &tc, path, &err), -1);
    assert_has(&err, "output channels");
    TrainedModel m;
    ck_assert_int_eq(trained_model_load(&m, path, 1, &err), -1);
    assert_has(&err, "output channels");
    rm_dir(dir);
}
END_TEST

/* ---- a plain state_dict: the config comes from the caller ---------------------- */

START_TEST(model_without_config)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/sd.safetensors", dir);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, dir);
    UNet net;
    unet_build(&net, &c);
    Rng r;
    rng_seed(&r, 1, 0);
    unet_init_weights(&net, &r);
    for (size_t i = 0; i < net.params.total; i++)   // what a float32 file holds exactly
        net.params.data[i] = (real)(float)net.params.data[i];
    Error err;
    ck_assert_int_eq(st_write_params(path, &net.params, NULL, 0, &err), 0);   // no ddpm.*
    TrainedModel m;
    ck_assert_int_eq(trained_model_load(&m, path, 1, &err), -1);
    assert_has(&err, "--config");
    ck_assert_msg(trained_model_load_cfg(&m, path, 1, &c, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m.sched->T, 1000);
    ck_assert_int_eq(m.ema, 0);
    ck_assert_uint_eq(m.net.params.total, net.params.total);
    ck_assert(memcmp(m.net.params.data, net.params.data, net.params.total * sizeof(real)) == 0);
    trained_model_free(&m);
    unet_free(&net);
    rm_dir(dir);
}
END_TEST

/* ---- IDX: the header bounds what is read ---------------------------------------- */

static long max_rss_kb(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static void be32_put(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

// dir/train-images-idx3-ubyte.gz: header for n images, then `bytes` zeros
// (compressed ~1000:1); dir/train-labels-idx1-ubyte: n labels.
static void write_idx_gz(const char *dir, uint32_t n, size_t bytes)
{
    char path[96];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    gzFile gz = gzopen(path, "wb9");
    ck_assert_ptr_nonnull(gz);
    unsigned char head[16];
    be32_put(head, 0x803);
    be32_put(head + 4, n);
    be32_put(head + 8, 28);
    be32_put(head + 12, 28);
    ck_assert_int_eq(gzwrite(gz, head, 16), 16);
    static unsigned char zeros[1 << 16];
    for (size_t done = 0; done < bytes;) {
        unsigned k = (unsigned)(bytes - done < sizeof zeros ? bytes - done : sizeof zeros);
        ck_assert_int_eq(gzwrite(gz, zeros, k), (int)k);
        done += k;
    }
    ck_assert_int_eq(gzclose(gz), Z_OK);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fp = fopen(path, "wb");
    unsigned char lh[8];
    be32_put(lh, 0x801);
    be32_put(lh + 4, n);
    fwrite(lh, 1, 8, fp);
    for (uint32_t i = 0; i < n && i < 100; i++) fputc(0, fp);
    fclose(fp);
}

// 128 MiB of zeros behind a header that promises one image: refused after
// reading one byte past that image, and memory does not grow by the bomb.
START_TEST(idx_gzip_bomb)
{
    char dir[32];
    tmp_dir(dir);
    write_idx_gz(dir, 1, (size_t)128 << 20);
    long before = max_rss_kb();
    Dataset d;
    Error err;
    ck_assert_int_eq(data_load(&d, dir, 1, &err), -1);
    assert_has(&err, "train-images-idx3-ubyte.gz");
    assert_has(&err, "header says 1 images");
    long grew = max_rss_kb() - before;
    ck_assert_msg(grew < 32 * 1024, "reading the bomb grew memory by %ld KiB", grew);
    rm_dir(dir);
}
END_TEST

// A header that promises 2^32 - 1 images in a file of a few bytes: refused,
// without allocating what the header promises.
START_TEST(idx_lying_header)
{
    char dir[32];
    tmp_dir(dir);
    write_idx_gz(dir, 0xffffffffu, 1000);
    long before = max_rss_kb();
    Dataset d;
    Error err;
    ck_assert_int_eq(data_load(&d, dir, 1, &err), -1);
    assert_has(&err, "train-images-idx3-ubyte.gz");
    ck_assert_msg(max_rss_kb() - before < 32 * 1024, "memory grew by %ld KiB",
                  max_rss_kb() - before);
    // And one that promises 10 images but holds 9: the count is checked.
    write_idx_gz(dir, 10, 9 * 784);
    ck_assert_int_eq(data_load(&d, dir, 1, &err), -1);
    assert_has(&err, "header says 10 images");
    // Exactly as promised: loads (labels file holds 10 zeros).
    write_idx_gz(dir, 10, 10 * 784);
    ck_assert_msg(data_load(&d, dir, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 10);
    data_free(&d);
    rm_dir(dir);
}
END_TEST

/* ---- whole-file reads ---------------------------------------------------------- */

START_TEST(file_read_limit)
{
    char dir[32], path[64];
    tmp_dir(dir);
    snprintf(path, sizeof path, "%s/f.bin", dir);
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < 100; i++) fputc(i, fp);
    fclose(fp);
    unsigned char *b;
    size_t n;
    Error err;
    ck_assert_int_eq(file_read_max(path, 99, &b, &n, &err), -1);
    assert_has(&err, path);
    assert_has(&err, "100 bytes");
    ck_assert_int_eq(file_read_max(path, 100, &b, &n, &err), 0);
    ck_assert_uint_eq(n, 100);
    free(b);
    ck_assert_int_eq(file_read(path, &b, &n, &err), 0);
    free(b);
    rm_dir(dir);
}
END_TEST

Suite *suite_robust(void)
{
    Suite *s = suite_create("robust");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, config_params_exact);
    tcase_add_test(tc, config_rejects_huge);
    tcase_add_test(tc, config_meta_overflow);
    tcase_add_test_raise_signal(tc, params_add_zero_dim_aborts, SIGABRT);
    tcase_add_loop_test(tc, meta_strict, 0, N_BAD_META);
    tcase_add_test(tc, meta_good_values_load);
    tcase_add_test(tc, resume_takes_T_from_checkpoint);
    tcase_add_test(tc, resume_out_ch_mismatch);
    tcase_add_test(tc, model_without_config);
    tcase_add_test(tc, idx_gzip_bomb);
    tcase_add_test(tc, idx_lying_header);
    tcase_add_test(tc, file_read_limit);
    suite_add_tcase(s, tc);
    return s;
}
