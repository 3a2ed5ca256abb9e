/* test_04_unet.c — the U-Net: sizes and names, initialisation, a golden
 * comparison with an independent PyTorch implementation, and (double build)
 * a gradient check of a whole miniature network. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "04_unet.h"
#include "checkpoint.h"
#include "gradcheck.h"
#include "safetensors.h"

#ifndef DDPM_TEST_DATA
#define DDPM_TEST_DATA "tests/data"
#endif

/* ---- core ------------------------------------------------------------------ */

// The counts PyTorch gives for the same configs (tools/torch_unet.py params):
// the paper's 35.7M model is 35,746,307.
START_TEST(param_counts_match_pytorch)
{
    const char *names[] = {"tiny", "small", "paper"};
    size_t expect[] = {1113955, 8952067, 35746307};
    for (int i = 0; i < 3; i++) {
        UNetConfig c;
        Error err;
        ck_assert_int_eq(unet_config(&c, names[i], &err), 0);
        ck_assert_int_eq(unet_config_check(&c, &err), 0);
        UNet net;
        unet_build(&net, &c);
        ck_assert_msg(net.params.total == expect[i], "%s: %zu parameters, PyTorch has %zu",
                      names[i], net.params.total, expect[i]);
        unet_free(&net);
    }
}
END_TEST

// Names, shapes and order follow the PyTorch state_dict.
START_TEST(names_follow_state_dict)
{
    UNetConfig c;
    unet_config(&c, "paper", NULL);
    UNet net;
    unet_build(&net, &c);
    const ParamSet *ps = &net.params;
    ck_assert_str_eq(ps->params[0]->name, "temb.dense.0.weight");
    ck_assert_str_eq(ps->params[ps->count - 1]->name, "conv_out.bias");
    struct { const char *name; int ndim, shape[4]; } want[] = {
        {"conv_in.weight", 4, {128, 3, 3, 3}},
        {"temb.dense.1.weight", 2, {512, 512}},
        {"down.0.block.1.conv2.weight", 4, {128, 128, 3, 3}},
        {"down.1.block.0.nin_shortcut.weight", 4, {256, 128, 1, 1}},
        {"down.1.attn.1.proj_out.weight", 4, {256, 256, 1, 1}},
        {"down.2.downsample.conv.weight", 4, {256, 256, 3, 3}},
        {"mid.attn_1.norm.weight", 1, {256}},
        {"up.0.block.2.conv1.weight", 4, {128, 256, 3, 3}},    // 128 + skip 128
        {"up.3.block.0.temb_proj.weight", 2, {256, 512}},
        {"up.1.upsample.conv.bias", 1, {256}},
        {"norm_out.weight", 1, {128}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        Tensor *t = params_find(ps, want[i].name);
        ck_assert_msg(t != NULL, "no parameter %s", want[i].name);
        ck_assert_int_eq(t->ndim, want[i].ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(t->shape[d], want[i].shape[d]);
    }
    ck_assert_ptr_null(params_find(ps, "down.3.downsample.conv.weight"));  // last level
    ck_assert_ptr_null(params_find(ps, "up.0.upsample.conv.weight"));      // first level
    ck_assert_ptr_null(params_find(ps, "down.0.attn.0.q.weight"));         // 32x32: none
    unet_free(&net);
}
END_TEST

START_TEST(config_errors)
{
    UNetConfig c;
    Error err;
    ck_assert_int_eq(unet_config(&c, "huge", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown config 'huge'"));
    unet_config(&c, "tiny", NULL);
    ck_assert_int_eq(unet_config_set(&c, "ch", "48", &err), 0);
    ck_assert_int_eq(unet_config_check(&c, &err), -1);            // 48 % 32 != 0
    ck_assert_ptr_nonnull(strstr(err.msg, "GroupNorm"));
    ck_assert_int_eq(unet_config_set(&c, "ch-mult", "1,x", &err), -1);
    ck_assert_int_eq(unet_config_set(&c, "dropout", "1.5", &err), -1);
    ck_assert_int_eq(unet_config_set(&c, "depth", "3", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown network option --depth"));
    unet_config(&c, "tiny", NULL);
    unet_config_set(&c, "resolution", "20", NULL);                 // 20 -> 10 -> 5 -> ?
    unet_config_set(&c, "ch-mult", "1,2,2,2", NULL);
    ck_assert_int_eq(unet_config_check(&c, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "halved"));
}
END_TEST

// t = 0 gives sin 0 = 0 and cos 0 = 1; t = 1 gives sin(f_i), cos(f_i) with
// f_0 = 1 and f_{half-1} = 1/10000.
START_TEST(timestep_embedding_values)
{
    real e[2 * 8];
    timestep_embedding(e, (int[]){0, 1}, 2, 8);
    for (int i = 0; i < 4; i++) {
        ck_assert(e[i] == 0);
        ck_assert(e[4 + i] == 1);
    }
    ck_assert_double_eq_tol(e[8 + 0], sin(1.0), 1e-6);
    ck_assert_double_eq_tol(e[8 + 4], cos(1.0), 1e-6);
    ck_assert_double_eq_tol(e[8 + 3], sin(1e-4), 1e-9);
    ck_assert_double_eq_tol(e[8 + 1], sin(exp(-log(10000.0) / 3)), 1e-6);
}
END_TEST

// With the official initialisation the network starts by predicting ~0:
// every residual branch ends in a conv scaled by 1e-10, and so does conv_out.
START_TEST(fresh_network_predicts_zero)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    UNet net;
    unet_build(&net, &c);
    Rng rng;
    rng_seed(&rng, 1, 0);
    unet_init_weights(&net, &rng);
    ck_assert(params_find(&net.params, "down.0.block.0.norm1.weight")->data[0] == 1);
    ck_assert(params_find(&net.params, "conv_in.bias")->data[0] == 0);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);
    Tensor *x = tensor_4d(&ar, 2, 3, 32, 32);
    rng_fill_normal(&rng, x->data, x->size, 0, 1);
    Tensor *y = unet_forward(&tp, &net, x, (int[]){3, 900}, NULL, 0);
    double m = 0;
    for (size_t i = 0; i < y->size; i++) m = fmax(m, fabs(y->data[i]));
    ck_assert_msg(m < 1e-3 && m > 0, "max |eps_theta| = %g at initialisation", m);
    tape_free(&tp);
    arena_free(&ar);
    unet_free(&net);
}
END_TEST

// A checkpoint carries its config: ckpt_load needs no flags for a file that
// ckpt_save wrote, and says what is missing for one without (the paper's
// weights converted by hand, or the golden file).
START_TEST(checkpoint_round_trip)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    unet_config_set(&c, "ch", "16", NULL);
    unet_config_set(&c, "groups", "8", NULL);
    unet_config_set(&c, "attn", "8,16", NULL);
    UNet a, b;
    unet_build(&a, &c);
    Rng rng;
    rng_seed(&rng, 9, 0);
    rng_fill_normal(&rng, a.params.data, a.params.total, 0, 1);
    char path[] = "/tmp/ddpm_test_ckpt_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    Error err;
    ck_assert_msg(ckpt_save(path, &a, NULL, 0, NULL, 0, &err) == 0, "%s", err.msg);
    ck_assert_msg(ckpt_load(path, &b, NULL, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(b.cfg.ch, 16);
    ck_assert_int_eq(b.cfg.groups, 8);
    ck_assert_int_eq(b.cfg.n_attn, 2);
    ck_assert_uint_eq(b.params.total, a.params.total);
    for (size_t i = 0; i < a.params.total; i++)   // stored as float32: exact in float
        ck_assert((real)(float)a.params.data[i] == b.params.data[i]);
    unet_free(&b);
    ck_assert_int_eq(ckpt_load(DDPM_TEST_DATA "/unet_golden.safetensors", &b, NULL, 0, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "stores no network config"));
    unet_free(&a);
    unlink(path);
}
END_TEST

/* ---- golden: against tools/torch_unet.py ------------------------------------ */

#define GOLDEN DDPM_TEST_DATA "/unet_golden.safetensors"
#define REGEN "regenerate with: /usr/bin/python3 tools/torch_unet.py golden --config tiny " \
              "--ch 16 --groups 8 --batch 2 --out tests/data/unet_golden.safetensors"

typedef struct Golden {
    StFile f;
    UNet net;
    Arena ar;
    Tape tp;
    Tensor *x, *y, *r;
    int t[8];
} Golden;

// Loads the golden file's weights into the same network built here, runs
// the forward on its x and t, and the backward of sum(r * out).
static void golden_run(Golden *g)
{
    Error err;
    ck_assert_msg(st_open(GOLDEN, &g->f, &err) == 0, "%s (%s)", err.msg, REGEN);
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    unet_config_set(&c, "ch", "16", NULL);
    unet_config_set(&c, "groups", "8", NULL);
    unet_build(&g->net, &c);
    ck_assert_msg(st_load_params(&g->f, &g->net.params, "", 0, &err) == 0, "%s", err.msg);
    const StEntry *ex = st_find(&g->f, "golden.x");
    ck_assert_ptr_nonnull(ex);
    int N = (int)ex->shape[0];
    arena_init(&g->ar, 1 << 24);
    tape_init(&g->tp, &g->ar);
    g->x = tensor_4d(&g->ar, N, 3, 32, 32);
    g->x->requires_grad = 1;
    g->r = tensor_4d(&g->ar, N, 3, 32, 32);
    real tf[8];
    ck_assert_int_eq(st_read_tensor(&g->f, "golden.x", g->x->data, 4, g->x->shape, &err), 0);
    ck_assert_int_eq(st_read_tensor(&g->f, "golden.r", g->r->data, 4, g->r->shape, &err), 0);
    ck_assert_int_eq(st_read_tensor(&g->f, "golden.t", tf, 1, (int[]){N}, &err), 0);
    for (int n = 0; n < N; n++) g->t[n] = (int)tf[n];
    params_zero_grad(&g->net.params);
    g->y = unet_forward(&g->tp, &g->net, g->x, g->t, NULL, 0);
    tape_backward_from(&g->tp, g->y, g->r->data);
}

static void golden_free(Golden *g)
{
    tape_free(&g->tp);
    arena_free(&g->ar);
    unet_free(&g->net);
    st_close(&g->f);
}

// max |a - b| over a tensor, and max |b| (the tensor's scale).
static void compare(const real *a, const real *b, size_t n, double *maxdiff, double *scale)
{
    *maxdiff = 0;
    *scale = 0;
    for (size_t i = 0; i < n; i++) {
        *maxdiff = fmax(*maxdiff, fabs((double)a[i] - b[i]));
        *scale = fmax(*scale, fabs((double)b[i]));
    }
}

START_TEST(golden_forward)
{
    Golden g;
    golden_run(&g);
    real *want = malloc(g.y->size * sizeof(real));
    Error err;
    ck_assert_int_eq(st_read_tensor(&g.f, "golden.out", want, 4, g.y->shape, &err), 0);
    double d, s;
    compare(g.y->data, want, g.y->size, &d, &s);
    ck_assert_msg(d <= 1e-4, "forward: max abs error %g (output scale %g); %s", d, s, REGEN);
    ck_assert(s > 0.1);   // the golden weights are not the near-zero init
    free(want);
    golden_free(&g);
}
END_TEST

// Every parameter's gradient and the input's, each within 1e-3 of the
// PyTorch gradient relative to the largest entry of that gradient. One kind
// of gradient is zero in exact arithmetic: the attention's k.bias adds
// q_i . b to every logit of query row i, and softmax ignores a constant added
// to a row. Both sides then hold rounding noise (~1e-6), so each tensor's
// scale is floored at 1e-3 of the largest gradient anywhere in the network.
START_TEST(golden_gradients)
{
    Golden g;
    golden_run(&g);
    const ParamSet *ps = &g.net.params;
    int bad = 0;
    double worst = 0, floor = 0;
    for (size_t i = 0; i < ps->total; i++) floor = fmax(floor, 1e-3 * fabs(ps->grad[i]));
    for (int i = -1; i < ps->count; i++) {
        const Tensor *p = i < 0 ? g.x : ps->params[i];
        char name[160];
        snprintf(name, sizeof name, "golden.grad.%s", i < 0 ? "x" : p->name);
        real *want = malloc(p->size * sizeof(real));
        Error err;
        ck_assert_msg(st_read_tensor(&g.f, name, want, p->ndim, p->shape, &err) == 0, "%s", err.msg);
        double d, s;
        compare(p->grad, want, p->size, &d, &s);
        double rel = d / fmax(s, floor);
        worst = fmax(worst, rel);
        if (rel > 1e-3 && bad++ < 8)
            fprintf(stderr, "golden: %s: relative gradient error %.3g (max abs %.3g)\n",
                    name + 12, rel, d);
        free(want);
    }
    ck_assert_msg(bad == 0, "%d gradients differ from PyTorch by more than 1e-3 "
                            "(worst %.3g); %s", bad, worst, REGEN);
    golden_free(&g);
}
END_TEST

/* ---- grad: a whole miniature U-Net against central differences --------------- */

#ifdef DDPM_DOUBLE

typedef struct MiniCtx { UNet *net; Tensor *x; int t[2]; } MiniCtx;

// The inputs being checked are x or parameters; either way the network reads
// them in place, so f only needs the context.
static Tensor *f_unet(Tape *tp, Tensor **in, void *ctx)
{
    (void)in;
    MiniCtx *m = ctx;
    return unet_forward(tp, m->net, m->x, m->t, NULL, 0);
}

// ch 8, two levels, attention at 4x4, one channel in, 8x8 images: every kind
// of block, small enough to difference every parameter.
START_TEST(grad_mini_unet)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    const char *kv[][2] = {{"ch", "8"}, {"ch-mult", "1,2"}, {"attn", "4"}, {"in-ch", "1"},
                           {"out-ch", "1"}, {"resolution", "8"}, {"groups", "4"}};
    for (int i = 0; i < 7; i++) ck_assert_int_eq(unet_config_set(&c, kv[i][0], kv[i][1], NULL), 0);
    ck_assert_int_eq(unet_config_check(&c, NULL), 0);
    UNet net;
    unet_build(&net, &c);
    Rng rng;
    rng_seed(&rng, 4, 0);
    rng_fill_normal(&rng, net.params.data, net.params.total, 0, 0.3);   // no near-zero init
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tensor *x = tensor_4d(&ar, 2, 1, 8, 8);
    rng_fill_normal(&rng, x->data, x->size, 0, 1);
    x->requires_grad = 1;
    MiniCtx m = {&net, x, {5, 700}};
    ck_assert_gradcheck("unet: input x", gradcheck_sample(f_unet, &x, 1, &m, 1, 24));
    // Then every parameter tensor (4 random elements of each), 16 tensors at a
    // time (gradcheck's limit). x keeps no gradient meanwhile: a leaf outside
    // the checked list must not ask for one.
    x->requires_grad = 0;
    for (int start = 0; start < net.params.count; start += 16) {
        int n = net.params.count - start < 16 ? net.params.count - start : 16;
        char what[96];
        snprintf(what, sizeof what, "unet: %s and the next %d", net.params.params[start]->name, n - 1);
        ck_assert_gradcheck(what, gradcheck_sample(f_unet, &net.params.params[start], n, &m, 1, 4));
    }
    arena_free(&ar);
    unet_free(&net);
}
END_TEST

#endif

Suite *suite_04_unet(void)
{
    Suite *s = suite_create("04_unet");
    TCase *core = tcase_create("core");
    tcase_add_test(core, param_counts_match_pytorch);
    tcase_add_test(core, names_follow_state_dict);
    tcase_add_test(core, config_errors);
    tcase_add_test(core, timestep_embedding_values);
    tcase_add_test(core, fresh_network_predicts_zero);
    tcase_add_test(core, checkpoint_round_trip);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    TCase *golden = tcase_create("golden");
    tcase_add_test(golden, golden_forward);
    tcase_add_test(golden, golden_gradients);
    tcase_set_timeout(golden, 120);
    suite_add_tcase(s, golden);
#ifdef DDPM_DOUBLE
    TCase *grad = tcase_create("grad");
    tcase_add_test(grad, grad_mini_unet);
    tcase_set_timeout(grad, 300);
    suite_add_tcase(s, grad);
#endif
    return s;
}
