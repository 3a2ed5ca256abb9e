/* test_classifier.c — the feature network of chapter 09: its three new ops
 * by hand and by gradient check (double build), the whole net's gradient,
 * training to 100% on a tiny synthetic labelled set, the file round trip,
 * and SHA-256 against the FIPS 180-4 test vectors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classifier.h"
#include "gradcheck.h"
#include "sha256.h"

START_TEST(avgpool2_by_hand)
{
    real x[16], out[4], dx[16] = {0}, dout[4] = {4, 8, -4, 0};
    for (int i = 0; i < 16; i++) x[i] = (real)i;   // one 4x4 channel
    avgpool2_forward(out, x, 1, 1, 4, 4);
    ck_assert(out[0] == (0 + 1 + 4 + 5) / (real)4 && out[3] == (10 + 11 + 14 + 15) / (real)4);
    avgpool2_backward(dx, dout, 1, 1, 4, 4);
    ck_assert(dx[0] == 1 && dx[5] == 1 && dx[2] == 2 && dx[8] == -1 && dx[15] == 0);
}
END_TEST

START_TEST(gap_by_hand)
{
    real x[8] = {1, 2, 3, 6, -1, -1, -1, -1}, out[2], dx[8] = {0}, dout[2] = {4, 8};
    gap_forward(out, x, 1, 2, 4);
    ck_assert(out[0] == 3 && out[1] == -1);
    gap_backward(dx, dout, 1, 2, 4);
    ck_assert(dx[0] == 1 && dx[3] == 1 && dx[4] == 2 && dx[7] == 2);
}
END_TEST

// Two classes, logits (0, ln 3): p = (1/4, 3/4); label 1 costs ln(4/3).
START_TEST(xent_by_hand)
{
    real z[4] = {0, (real)log(3.0), 0, 0}, p[4], dz[4] = {0};
    int y[2] = {1, 0};
    double loss = xent_forward(p, z, y, 2, 2);
    ck_assert_double_eq_tol(loss, (log(4.0 / 3) + log(2.0)) / 2, 1e-6);
    ck_assert_double_eq_tol(p[1], 0.75, 1e-6);
    xent_backward(dz, 1, p, y, 2, 2);
    ck_assert_double_eq_tol(dz[0], 0.25 / 2, 1e-6);
    ck_assert_double_eq_tol(dz[1], -0.25 / 2, 1e-6);
    ck_assert_double_eq_tol(dz[2], -0.5 / 2, 1e-6);
}
END_TEST

// Huge logits, the largest not first: the max-shifted log-sum-exp keeps
// the loss finite.
START_TEST(xent_is_stable)
{
    real z[3] = {-1000, 1000, 990}, p[3];
    int y = 2;
    double loss = xent_forward(p, z, &y, 1, 3);
    ck_assert_double_eq_tol(loss, 10 + log(1 + exp(-10.0)), 1e-4);
}
END_TEST

// FIPS 180-4 / NIST examples: "abc", the empty string, the 448-bit message
// (its padding spills into a second block), and a million 'a's.
START_TEST(sha256_vectors)
{
    static const char *msg[3] = {"abc", "",
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
    static const char *want[4] = {
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"};
    uint8_t d[32];
    char hex[65];
    for (int i = 0; i < 3; i++) {
        sha256(d, msg[i], strlen(msg[i]));
        sha256_hex(hex, d);
        ck_assert_str_eq(hex, want[i]);
    }
    static char a[1000000];
    memset(a, 'a', sizeof a);
    sha256(d, a, sizeof a);
    sha256_hex(hex, d);
    ck_assert_str_eq(hex, want[3]);
}
END_TEST

/* ---- a tiny labelled set: class k has a bright square at corner k --------- */

static void tiny_set(Dataset *d, int n, Rng *r)
{
    memset(d, 0, sizeof *d);
    d->n = n, d->c = 1, d->h = d->w = 32;
    d->pixels = calloc((size_t)n * 1024, 1);
    d->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        int k = i % 4, y0 = k / 2 * 16, x0 = k % 2 * 16;
        d->labels[i] = (unsigned char)k;
        for (int p = 0; p < 1024; p++) d->pixels[(size_t)i * 1024 + p] = (unsigned char)rng_below(r, 100);
        for (int y = 4; y < 12; y++)
            for (int x = 4; x < 12; x++) d->pixels[(size_t)i * 1024 + (y0 + y) * 32 + x0 + x] = 255;
    }
}

START_TEST(trains_to_100_percent)
{
    Rng r;
    rng_seed(&r, 90, 0);
    Dataset d;
    tiny_set(&d, 64, &r);
    ClassifierConfig cfg = {.in_ch = 1, .width = {8, 8, 16, 16}, .n_classes = 4};
    Classifier net;
    classifier_build(&net, &cfg);
    classifier_init_weights(&net, &r);
    ClassifierTrain ct;
    classifier_train_default(&ct);
    ct.steps = 60, ct.batch = 16, ct.warmup = 5, ct.quiet = 1, ct.flip = ct.crop = 0;
    double before = classifier_accuracy(&net, &d, 16);
    classifier_train(&net, &d, &ct);
    double after = classifier_accuracy(&net, &d, 16);
    printf("classifier on 64 synthetic images: train accuracy %.2f -> %.2f\n", before, after);
    ck_assert_msg(after == 1.0, "train accuracy %.3f after 60 steps", after);
    // The same images scored in batches of 7 and of 64: identical features.
    real x[64 * 1024], f1[64 * 16], f2[64 * 16];
    int idx[64];
    for (int i = 0; i < 64; i++) idx[i] = i;
    data_batch(&d, x, idx, 64, NULL);
    classifier_embed(&net, x, 64, 7, f1, NULL);
    classifier_embed(&net, x, 64, 64, f2, NULL);
    for (int i = 0; i < 64 * 16; i++) ck_assert(fabs(f1[i] - f2[i]) <= 1e-5 * (1 + fabs(f2[i])));
    // The file round trip keeps every weight and the config.
    char path[] = "/tmp/ddpm_cls_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Error err;
    Classifier back;
    ck_assert_int_eq(classifier_save(path, &net, NULL, 0, &err), 0);
    ck_assert_msg(classifier_load(path, &back, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(back.cfg.width[2], 16);
    ck_assert_int_eq(back.params.total, net.params.total);
    for (size_t i = 0; i < net.params.total; i++) ck_assert((float)back.params.data[i] == (float)net.params.data[i]);
    unlink(path);
    classifier_free(&back);
    classifier_free(&net);
    data_free(&d);
}
END_TEST

#ifdef DDPM_DOUBLE

static Tensor *f_avgpool2(Tape *tp, Tensor **in, void *c) { (void)c; return ag_avgpool2(tp, in[0]); }
static Tensor *f_gap(Tape *tp, Tensor **in, void *c) { (void)c; return ag_gap(tp, in[0]); }
static Tensor *f_xent(Tape *tp, Tensor **in, void *c) { return ag_xent(tp, in[0], c); }

START_TEST(grad_new_ops)
{
    Rng r;
    rng_seed(&r, 91, 0);
    for (int t = 0; t < 4; t++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int N = 1 + t, C = 1 + rng_below(&r, 3), H = 2 * (1 + rng_below(&r, 3)), W = 2 * (1 + rng_below(&r, 3));
        Tensor *x = gradcheck_random(&ar, &r, 4, (int[]){N, C, H, W}, 1);
        ck_assert_gradcheck("avgpool2", gradcheck(f_avgpool2, &x, 1, NULL, t));
        ck_assert_gradcheck("gap", gradcheck(f_gap, &x, 1, NULL, t));
        int K = 2 + t, y[8];
        for (int n = 0; n < N; n++) y[n] = (int)rng_below(&r, (uint32_t)K);
        Tensor *z = gradcheck_random(&ar, &r, 2, (int[]){N, K}, 2);
        ck_assert_gradcheck("xent", gradcheck(f_xent, &z, 1, y, t));
        arena_free(&ar);
    }
}
END_TEST

typedef struct NetCtx { Classifier *net; int y[2]; } NetCtx;

static Tensor *f_net(Tape *tp, Tensor **in, void *c)
{
    NetCtx *ctx = c;
    return ag_xent(tp, classifier_forward(tp, ctx->net, in[0], NULL), ctx->y);
}

// The whole network: the loss's gradient for the input and sampled weights.
START_TEST(grad_network)
{
    Rng r;
    rng_seed(&r, 92, 0);
    ClassifierConfig cfg = {.in_ch = 3, .width = {8, 8, 8, 16}, .n_classes = 3};
    Classifier net;
    classifier_build(&net, &cfg);
    classifier_init_weights(&net, &r);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tensor *in[3] = {gradcheck_random(&ar, &r, 4, (int[]){2, 3, 32, 32}, 1),
                     net.layer1.conv_weight, net.res3.conv2_weight};
    NetCtx ctx = {&net, {0, 2}};
    ck_assert_gradcheck("classifier", gradcheck_sample(f_net, in, 3, &ctx, 1, 40));
    arena_free(&ar);
    classifier_free(&net);
}
END_TEST

#endif

Suite *suite_classifier(void)
{
    Suite *s = suite_create("classifier");
    TCase *core = tcase_create("core");
    tcase_add_test(core, avgpool2_by_hand);
    tcase_add_test(core, gap_by_hand);
    tcase_add_test(core, xent_by_hand);
    tcase_add_test(core, xent_is_stable);
    tcase_add_test(core, sha256_vectors);
    tcase_add_test(core, trains_to_100_percent);
    tcase_set_timeout(core, 120);
    suite_add_tcase(s, core);
#ifdef DDPM_DOUBLE
    TCase *grad = tcase_create("grad");
    tcase_add_test(grad, grad_new_ops);
    tcase_add_test(grad, grad_network);
    tcase_set_timeout(grad, 120);
    suite_add_tcase(s, grad);
#endif
    return s;
}
