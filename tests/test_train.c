/* test_train.c — the trainer: exact resumption, a non-finite loss stops a
 * run without touching the weights, a few steps lower the loss, and a
 * copied Trainer or TrainedModel keeps working. Uses a miniature network on
 * a synthetic data set built in memory, so it runs in seconds. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "train.h"

// 64 grey 8x8 images: a bright square at a random place on a dark ground.
static void toy_data(Dataset *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "toy squares");
    d->n = 64;
    d->c = 1;
    d->h = d->w = 8;
    d->pixels = calloc(64 * 64, 1);
    Rng r;
    rng_seed(&r, 5, 0);
    for (int i = 0; i < 64; i++) {
        int y = (int)rng_below(&r, 5), x = (int)rng_below(&r, 5);
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) d->pixels[i * 64 + (y + a) * 8 + x + b] = 230;
    }
}

static void toy_model(UNetConfig *c, Diffusion *df, TrainConfig *tc, const char *out)
{
    unet_config(c, "tiny", NULL);
    const char *kv[][2] = {{"ch", "8"}, {"ch-mult", "1,2"}, {"attn", "4"}, {"in-ch", "1"},
                           {"out-ch", "1"}, {"resolution", "8"}, {"groups", "4"},
                           {"dropout", "0.1"}};
    for (int i = 0; i < 8; i++) unet_config_set(c, kv[i][0], kv[i][1], NULL);
    diffusion_parse(df, "eps", "fixedlarge", "simple", NULL);
    train_config_default(tc);
    tc->batch = 6;       // 64 is not a multiple: batches straddle epochs
    tc->warmup = 3;
    tc->lr = 1e-3;
    tc->ema_decay = 0.9;
    tc->seed = 42;
    tc->quiet = 1;
    tc->out_dir = out;
    tc->T = 50;
}

#ifndef DDPM_DOUBLE   // checkpoints store float32: exact only in the float build
// Twelve steps in one go, or seven, a checkpoint, a fresh process-like
// restart from it, and five more: the weights, Adam's moments and the EMA must be
// identical to the last bit.
START_TEST(resume_is_exact)
{
    Dataset d;
    toy_data(&d);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    char dir[] = "/tmp/ddpm_train_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    toy_model(&c, &df, &tc, dir);
    Error err;
    Trainer a, b;
    ck_assert_msg(trainer_init(&a, &c, &tc, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 12; i++) ck_assert_msg(trainer_step(&a, &d, &err) == 0, "%s", err.msg);

    ck_assert_int_eq(trainer_init(&b, &c, &tc, NULL, &err), 0);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(trainer_step(&b, &d, &err), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/half.safetensors", dir);
    ck_assert_msg(trainer_save(&b, path, d.name, &err) == 0, "%s", err.msg);
    trainer_free(&b);
    TrainConfig other = tc;
    other.seed = 7;   // the checkpoint's settings win over these
    other.lr = 5;
    ck_assert_msg(trainer_init(&b, &c, &other, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(b.step, 7);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(trainer_step(&b, &d, &err), 0);

    size_t n = a.net.params.total;
    ck_assert_uint_eq(n, b.net.params.total);
    ck_assert(memcmp(a.net.params.data, b.net.params.data, n * sizeof(real)) == 0);
    ck_assert(memcmp(a.adam_m, b.adam_m, n * sizeof(real)) == 0);
    ck_assert(memcmp(a.adam_v, b.adam_v, n * sizeof(real)) == 0);
    ck_assert(memcmp(a.ema, b.ema, n * sizeof(real)) == 0);
    trainer_free(&a);
    trainer_free(&b);
    unlink(path);
    rmdir(dir);
    data_free(&d);
}
END_TEST
#endif

// An absurd learning rate blows the weights up; the first step whose loss
// is not finite reports it, and leaves the weights as they were.
START_TEST(nonfinite_loss_stops)
{
    Dataset d;
    toy_data(&d);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, "/tmp");
    tc.lr = 1e30;
    tc.warmup = 0;
    tc.grad_clip = 0;
    Error err;
    Trainer tr;
    ck_assert_int_eq(trainer_init(&tr, &c, &tc, NULL, &err), 0);
    size_t n = tr.net.params.total;
    real *before = malloc(n * sizeof(real));
    int rc = 0, steps = 0;
    while (rc == 0 && steps < 20) {
        vec_copy(before, tr.net.params.data, n);
        rc = trainer_step(&tr, &d, &err);
        steps++;
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err.msg, "loss is") || strstr(err.msg, "gradient norm is"), "%s", err.msg);
    ck_assert(memcmp(before, tr.net.params.data, n * sizeof(real)) == 0);
    ck_assert_int_eq(tr.step, steps - 1);
    free(before);
    trainer_free(&tr);
    data_free(&d);
}
END_TEST

// Eighty steps on the toy squares lower L_simple well below where it began
// (about 1: a network that predicts 0 has loss E[eps^2] = 1).
START_TEST(loss_goes_down)
{
    Dataset d;
    toy_data(&d);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    toy_model(&c, &df, &tc, "/tmp");
    tc.batch = 16;
    tc.lr = 2e-3;
    Error err;
    Trainer tr;
    ck_assert_int_eq(trainer_init(&tr, &c, &tc, NULL, &err), 0);
    double first = 0, last = 0;
    for (int i = 0; i < 80; i++) {
        ck_assert_int_eq(trainer_step(&tr, &d, &err), 0);
        if (i < 5) first += tr.last_loss / 5;
        if (i >= 70) last += tr.last_loss / 10;
    }
    ck_assert_msg(first > 0.8 && last < 0.6 * first, "loss from %.3f to %.3f", first, last);
    trainer_free(&tr);
    data_free(&d);
}
END_TEST

// True when p points into the n bytes at obj.
static int points_into(const void *p, const void *obj, size_t n)
{
    return (const char *)p >= (const char *)obj && (const char *)p < (const char *)obj + n;
}

// A Trainer and a TrainedModel are values: a copy keeps working after the
// original's storage is overwritten (no pointer into the struct itself, so
// returning one by value or moving it into an array is safe). Two steps,
// a copy, the original scribbled over, two more steps on the copy: the
// same weights as four steps on one trainer; and the model loaded from its
// checkpoint, copied, still has its schedule.
START_TEST(copies_are_safe)
{
    Dataset d;
    toy_data(&d);
    UNetConfig c;
    Diffusion df;
    TrainConfig tc;
    char dir[] = "/tmp/ddpm_train_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    toy_model(&c, &df, &tc, dir);
    Error err;
    Trainer ref, a;
    ck_assert_msg(trainer_init(&ref, &c, &tc, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(trainer_init(&a, &c, &tc, NULL, &err), 0);
    ck_assert(!points_into(a.df.sched, &a, sizeof a));
    ck_assert(!points_into(a.tape.arena, &a, sizeof a));
    for (int i = 0; i < 4; i++) ck_assert_int_eq(trainer_step(&ref, &d, &err), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(trainer_step(&a, &d, &err), 0);
    Trainer b = a;
    memset(&a, 0xA5, sizeof a);
    ck_assert_int_eq(b.df.sched->T, tc.T);
    for (int i = 0; i < 2; i++) ck_assert_msg(trainer_step(&b, &d, &err) == 0, "%s", err.msg);
    size_t n = ref.net.params.total;
    ck_assert(memcmp(ref.net.params.data, b.net.params.data, n * sizeof(real)) == 0);
    ck_assert(memcmp(ref.ema, b.ema, n * sizeof(real)) == 0);

    char path[600];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert_msg(trainer_save(&b, path, d.name, &err) == 0, "%s", err.msg);
    TrainedModel m;
    ck_assert_msg(trained_model_load(&m, path, 1, &err) == 0, "%s", err.msg);
    ck_assert(!points_into(m.df.sched, &m, sizeof m));
    TrainedModel m2 = m;
    memset(&m, 0xA5, sizeof m);
    ck_assert_int_eq(m2.df.sched->T, tc.T);
    ck_assert(memcmp(m2.df.sched->betas, ref.df.sched->betas, (size_t)tc.T * sizeof(real)) == 0);
    trained_model_free(&m2);
    trainer_free(&b);
    trainer_free(&ref);
    unlink(path);
    rmdir(dir);
    data_free(&d);
}
END_TEST

Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
#ifndef DDPM_DOUBLE
    tcase_add_test(tc, resume_is_exact);
#endif
    tcase_add_test(tc, nonfinite_loss_stops);
    tcase_add_test(tc, loss_goes_down);
    tcase_add_test(tc, copies_are_safe);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
