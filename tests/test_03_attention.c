/* test_03_attention.c — softmax, the attention core and the AttnBlock:
 * against hand-computed values and plain loops (both builds), and against
 * central differences (double build only). */
#include <check.h>
#include <math.h>
#include <string.h>

#include "03_attention.h"
#include "gradcheck.h"

// Rounding allowance of the build: float sums of a few dozen terms agree
// with a double reference to ~1e-6 relative; 1e-5 leaves a factor of ten.
#define TOL (sizeof(real) == 4 ? 1e-5 : 1e-12)

#define random_tensor gradcheck_random

/* ---- references: the definitions as plain loops, in double ------------- */

// out [N,C,HW]: for each query i, s_j = <q[:,i], k[:,j]> / sqrt(C),
// p = e^s / sum e^s (no max shift: the test keeps s small), out[c][i] = sum_j p_j v[c][j].
static void attention_loops(double *out, const real *q, const real *k, const real *v,
                            int N, int C, int HW)
{
    double s[64];
    ck_assert_int_le(HW, 64);
    for (int n = 0; n < N; n++) {
        const real *qn = q + (size_t)n * C * HW, *kn = k + (size_t)n * C * HW;
        const real *vn = v + (size_t)n * C * HW;
        for (int i = 0; i < HW; i++) {
            double z = 0;
            for (int j = 0; j < HW; j++) {
                double dot = 0;
                for (int c = 0; c < C; c++) dot += (double)qn[c * HW + i] * kn[c * HW + j];
                s[j] = exp(dot / sqrt((double)C));
                z += s[j];
            }
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int j = 0; j < HW; j++) acc += s[j] / z * vn[c * HW + j];
                out[((size_t)n * C + c) * HW + i] = acc;
            }
        }
    }
}

// y [N,C,HW] = w [C,C] x [N,C,HW] + b [C], per position.
static void conv1x1_loops(double *y, const double *x, const real *w, const real *b,
                          int N, int C, int HW)
{
    for (int n = 0; n < N; n++)
        for (int co = 0; co < C; co++)
            for (int i = 0; i < HW; i++) {
                double acc = b[co];
                for (int ci = 0; ci < C; ci++)
                    acc += (double)w[co * C + ci] * x[((size_t)n * C + ci) * HW + i];
                y[((size_t)n * C + co) * HW + i] = acc;
            }
}

// GroupNorm: each (sample, group of C/G channels) to mean 0, variance 1.
static void group_norm_loops(double *y, const real *x, const real *gamma, const real *beta,
                             int N, int C, int HW, int G, double eps)
{
    int cg = C / G;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const real *xg = x + ((size_t)n * C + g * cg) * HW;
            double m = 0, var = 0;
            for (int i = 0; i < cg * HW; i++) m += xg[i];
            m /= cg * HW;
            for (int i = 0; i < cg * HW; i++) var += (xg[i] - m) * (xg[i] - m);
            var /= cg * HW;
            for (int c = g * cg; c < (g + 1) * cg; c++)
                for (int i = 0; i < HW; i++) {
                    size_t o = ((size_t)n * C + c) * HW + i;
                    y[o] = (x[o] - m) / sqrt(var + eps) * gamma[c] + beta[c];
                }
        }
}

// max |a - ref| / max |ref|: the error relative to the output's scale.
static double rel_err(const real *a, const double *ref, size_t n)
{
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs(a[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    return err / scale;
}

/* ---- core: softmax ------------------------------------------------------- */

START_TEST(softmax_rows_sum_to_one)
{
    Rng r;
    rng_seed(&r, 1, 0);
    const int rows = 7, cols = 50;
    real x[7 * 50], p[7 * 50];
    rng_fill_normal(&r, x, rows * cols, 0, 10);   // spread out: near one-hot rows
    softmax_forward(p, x, rows, cols);
    for (int i = 0; i < rows; i++) {
        double z = 0;
        for (int j = 0; j < cols; j++) {
            ck_assert(p[i * cols + j] >= 0 && p[i * cols + j] <= 1);
            z += p[i * cols + j];
        }
        ck_assert_double_eq_tol(z, 1, TOL);
    }
}
END_TEST

// Scores on a grid of 1/8 are exact in float, and so are x + 1000 and the
// max subtraction: a shifted row must give bit-identical weights. Without
// the max shift, e^1000 would be inf and every weight NaN.
START_TEST(softmax_shift_invariant)
{
    Rng r;
    rng_seed(&r, 2, 0);
    const int cols = 9;
    const real shift[] = {-50, 3.5, 1000};
    real x[9], y[9], p[9], ps[9];
    for (int j = 0; j < cols; j++) x[j] = (real)((int)rng_below(&r, 64) - 32) / 8;
    softmax_forward(p, x, 1, cols);
    for (int s = 0; s < 3; s++) {
        for (int j = 0; j < cols; j++) y[j] = x[j] + shift[s];
        softmax_forward(ps, y, 1, cols);
        for (int j = 0; j < cols; j++) {
            ck_assert(isfinite(ps[j]));
            ck_assert_msg(ps[j] == p[j], "shift %g: p[%d] %.9g vs %.9g", (double)shift[s],
                          j, (double)ps[j], (double)p[j]);
        }
    }
    softmax_forward(y, x, 1, cols);   // in place (out == x) is allowed
    softmax_forward(x, x, 1, cols);
    for (int j = 0; j < cols; j++) ck_assert(x[j] == y[j]);
}
END_TEST

/* ---- core: the attention core -------------------------------------------- */

// C = 4, two positions. q[:,0] = (1,1,0,0), k[:,0] = (ln 3, ln 3, 0, 0), the
// rest 0: s[0] = (2 ln 3 / sqrt 4, 0) = (ln 3, 0) -> p[0] = (3/4, 1/4);
// s[1] = (0, 0) -> p[1] = (1/2, 1/2). With v[0] = (4, 8), v[1] = (-4, 0):
// h[0] = (3 + 2, 2 + 4) = (5, 6), h[1] = (-3, -2); channels 2, 3 of v are 0.
START_TEST(attention_by_hand)
{
    const double l3 = log(3.0);
    real q[8] = {1, 0, 1, 0, 0, 0, 0, 0};          // [C=4, HW=2], q[c*2 + i]
    real k[8] = {(real)l3, 0, (real)l3, 0, 0, 0, 0, 0};
    real v[8] = {4, 8, -4, 0, 0, 0, 0, 0};
    real h[8], p[4];
    attention_forward(h, p, q, k, v, 1, 4, 2);
    const double want_p[4] = {0.75, 0.25, 0.5, 0.5};
    const double want_h[8] = {5, 6, -3, -2, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(p[i], want_p[i], 10 * TOL);
    for (int i = 0; i < 8; i++) ck_assert_double_eq_tol(h[i], want_h[i], 10 * TOL);
}
END_TEST

// Random shapes through ag_attention against the loops; rows of p sum to 1.
START_TEST(attention_matches_loops)
{
    Rng r;
    rng_seed(&r, 3, 0);
    for (int trial = 0; trial < 8; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        Tape tp;
        tape_init(&tp, &ar);
        int N = 1 + rng_below(&r, 3), C = 1 + rng_below(&r, 9);
        int H = 1 + rng_below(&r, 5), W = 1 + rng_below(&r, 5);
        const int shape[4] = {N, C, H, W};
        Tensor *q = random_tensor(&ar, &r, 4, shape, 1);
        Tensor *k = random_tensor(&ar, &r, 4, shape, 1);
        Tensor *v = random_tensor(&ar, &r, 4, shape, 1);
        Tensor *h = ag_attention(&tp, q, k, v);
        ck_assert_int_eq(tp.len, 1);
        double ref[3 * 9 * 25];
        attention_loops(ref, q->data, k->data, v->data, N, C, H * W);
        double e = rel_err(h->data, ref, h->size);
        ck_assert_msg(e <= TOL, "N=%d C=%d H=%d W=%d: relative error %g", N, C, H, W, e);
        const real *p = tp.nodes[0].saved;   // [N, HW, HW]
        for (int row = 0; row < N * H * W; row++)
            ck_assert_double_eq_tol(vec_sum(p + (size_t)row * H * W, H * W), 1, TOL);
        tape_free(&tp);
        arena_free(&ar);
    }
}
END_TEST

// Backward kernels accumulate: a second call adds the same amount again.
START_TEST(attention_backward_accumulates)
{
    Rng r;
    rng_seed(&r, 4, 0);
    enum { N = 2, C = 3, HW = 5, SZ = N * C * HW };
    real q[SZ], k[SZ], v[SZ], g[SZ], h[SZ], p[N * HW * HW];
    real d1[3][SZ] = {{0}}, d2[3][SZ];
    rng_fill_normal(&r, q, SZ, 0, 1);
    rng_fill_normal(&r, k, SZ, 0, 1);
    rng_fill_normal(&r, v, SZ, 0, 1);
    rng_fill_normal(&r, g, SZ, 0, 1);
    Arena ar;
    arena_init(&ar, 1 << 12);
    attention_forward(h, p, q, k, v, N, C, HW);
    attention_backward(d1[0], d1[1], d1[2], g, q, k, v, p, N, C, HW, &ar);
    memcpy(d2, d1, sizeof d2);
    attention_backward(d2[0], d2[1], d2[2], g, q, k, v, p, N, C, HW, &ar);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < SZ; i++)
            ck_assert_double_eq_tol(d2[t][i], 2 * d1[t][i], TOL * (1 + fabs(d1[t][i])));
    arena_free(&ar);
}
END_TEST

/* ---- core: the block ------------------------------------------------------- */

START_TEST(attn_block_param_names)
{
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "down.1.attn.0", 64);
    params_alloc(&ps);
    const char *names[10] = {"norm.weight", "norm.bias", "q.weight", "q.bias", "k.weight",
                             "k.bias", "v.weight", "v.bias", "proj_out.weight",
                             "proj_out.bias"};
    ck_assert_int_eq(ps.count, 10);
    ck_assert_uint_eq(ps.total, 4 * 64 * 64 + 6 * 64);
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "down.1.attn.0.%s", names[i]);
        ck_assert_str_eq(ps.params[i]->name, want);
        int is_w = strstr(names[i], ".weight") && strcmp(names[i], "norm.weight") != 0;
        ck_assert_int_eq(ps.params[i]->ndim, is_w ? 4 : 1);
        ck_assert_int_eq(ps.params[i]->shape[0], 64);
    }
    ck_assert_ptr_eq(blk.q_weight, params_find(&ps, "down.1.attn.0.q.weight"));
    ck_assert_ptr_eq(blk.proj_out_bias, ps.params[9]);
    ck_assert_int_eq(blk.groups, 32);
    params_free(&ps);
}
END_TEST

static void block_fill(AttnBlock *blk, ParamSet *ps, Rng *r)
{
    for (int i = 0; i < ps->count; i++)
        rng_fill_normal(r, ps->params[i]->data, ps->params[i]->size, 0, (real)0.6);
    for (int c = 0; c < blk->C; c++) blk->norm_weight->data[c] += 1;
}

// The whole block against loops: GroupNorm, three 1x1 convs, attention,
// proj_out, residual. C = 6 in 3 groups, N = 2, 3x4 positions.
START_TEST(attn_block_matches_loops)
{
    enum { N = 2, C = 6, G = 3, H = 3, W = 4, HW = H * W, SZ = N * C * HW };
    Rng r;
    rng_seed(&r, 5, 0);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "mid.attn_1", C);
    blk.groups = G;
    params_alloc(&ps);
    block_fill(&blk, &ps, &r);
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *x = random_tensor(&ar, &r, 4, (int[]){N, C, H, W}, 2);
    Tensor *out = attn_block_forward(&tp, &blk, x);

    static double hn[SZ], q[SZ], k[SZ], v[SZ], a[SZ], ref[SZ];
    static real qr[SZ], kr[SZ], vr[SZ];
    group_norm_loops(hn, x->data, blk.norm_weight->data, blk.norm_bias->data,
                     N, C, HW, G, 1e-6);
    conv1x1_loops(q, hn, blk.q_weight->data, blk.q_bias->data, N, C, HW);
    conv1x1_loops(k, hn, blk.k_weight->data, blk.k_bias->data, N, C, HW);
    conv1x1_loops(v, hn, blk.v_weight->data, blk.v_bias->data, N, C, HW);
    for (int i = 0; i < SZ; i++) {   // the core's inputs, rounded as the library's are
        qr[i] = (real)q[i];
        kr[i] = (real)k[i];
        vr[i] = (real)v[i];
    }
    attention_loops(a, qr, kr, vr, N, C, HW);
    conv1x1_loops(ref, a, blk.proj_out_weight->data, blk.proj_out_bias->data, N, C, HW);
    for (int i = 0; i < SZ; i++) ref[i] += x->data[i];
    double e = rel_err(out->data, ref, SZ);
    ck_assert_msg(e <= TOL, "block vs loops: relative error %g", e);
    tape_free(&tp);
    arena_free(&ar);
    params_free(&ps);
}
END_TEST

// With proj_out zero (how chapter 04 initialises it) the block is exactly
// the identity: out = x + 0.
START_TEST(attn_block_zero_proj_is_identity)
{
    Rng r;
    rng_seed(&r, 6, 0);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "a", 64);
    params_alloc(&ps);
    block_fill(&blk, &ps, &r);
    vec_fill(blk.proj_out_weight->data, 0, blk.proj_out_weight->size);
    vec_fill(blk.proj_out_bias->data, 0, blk.proj_out_bias->size);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);
    Tensor *x = random_tensor(&ar, &r, 4, (int[]){2, 64, 4, 4}, 1);
    Tensor *out = attn_block_forward(&tp, &blk, x);
    ck_assert_int_eq(tp.len, 0);
    for (size_t i = 0; i < x->size; i++) ck_assert(out->data[i] == x->data[i]);
    tape_free(&tp);
    arena_free(&ar);
    params_free(&ps);
}
END_TEST

/* ---- grad: central differences (double build) ------------------------------ */

#ifdef DDPM_DOUBLE

static Tensor *f_softmax(Tape *tp, Tensor **in, void *c)
{
    (void)c;
    return ag_softmax(tp, in[0]);
}

// 2-D and 3-D inputs, rows of 2..7; scores of scale 2 so rows are far from uniform.
START_TEST(grad_softmax)
{
    Rng r;
    rng_seed(&r, 10, 0);
    for (int trial = 0; trial < 6; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int shape[3] = {1 + rng_below(&r, 3), 2 + rng_below(&r, 4), 2 + rng_below(&r, 6)};
        Tensor *x = trial & 1 ? random_tensor(&ar, &r, 3, shape, 2)
                              : random_tensor(&ar, &r, 2, shape + 1, 2);
        ck_assert_gradcheck("softmax", gradcheck(f_softmax, &x, 1, NULL, trial));
        arena_free(&ar);
    }
}
END_TEST

static Tensor *f_attention(Tape *tp, Tensor **in, void *c)
{
    (void)c;
    return ag_attention(tp, in[0], in[1], in[2]);
}

// Batch 1..3, C from 1 to 6 (not powers of two), HW from 2 to 12; in the
// last trials one of q, k, v needs no gradient (its kernel branch is skipped).
START_TEST(grad_attention)
{
    Rng r;
    rng_seed(&r, 11, 0);
    for (int trial = 0; trial < 9; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int N = 1 + rng_below(&r, 3), C = 1 + rng_below(&r, 6);
        int H = 1 + rng_below(&r, 3), W = 2 + rng_below(&r, 3);
        const int shape[4] = {N, C, H, W};
        Tensor *in[3];
        for (int i = 0; i < 3; i++) in[i] = random_tensor(&ar, &r, 4, shape, 1.3);
        if (trial >= 6) in[trial - 6]->requires_grad = 0;
        ck_assert_gradcheck("attention", gradcheck(f_attention, in, 3, NULL, trial));
        arena_free(&ar);
    }
}
END_TEST

// in[0] = x, in[1..10] = the block's parameters in registration order.
static Tensor *f_block(Tape *tp, Tensor **in, void *c)
{
    AttnBlock blk = *(const AttnBlock *)c;   // C, groups, eps
    blk.norm_weight = in[1];
    blk.norm_bias = in[2];
    blk.q_weight = in[3];
    blk.q_bias = in[4];
    blk.k_weight = in[5];
    blk.k_bias = in[6];
    blk.v_weight = in[7];
    blk.v_bias = in[8];
    blk.proj_out_weight = in[9];
    blk.proj_out_bias = in[10];
    return attn_block_forward(tp, &blk, in[0]);
}

// The block with respect to x and all ten parameters: batch 2, C = 6 in
// 1, 2 or 3 groups (C = 6 is not a power of two), 2x3 and 3x2 positions.
START_TEST(grad_attn_block)
{
    static const int cases[3][3] = {{1, 2, 3}, {2, 3, 2}, {3, 2, 3}};  // G, H, W
    Rng r;
    rng_seed(&r, 12, 0);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "attn", 6);
    params_alloc(&ps);
    for (int t = 0; t < 3; t++) {
        block_fill(&blk, &ps, &r);
        blk.groups = cases[t][0];
        Arena ar;
        arena_init(&ar, 1 << 16);
        Tensor *in[11];
        in[0] = random_tensor(&ar, &r, 4, (int[]){2, 6, cases[t][1], cases[t][2]}, 1.5);
        for (int i = 0; i < 10; i++) in[1 + i] = ps.params[i];
        ck_assert_gradcheck("attn_block", gradcheck(f_block, in, 11, &blk, t));
        arena_free(&ar);
    }
    params_free(&ps);
}
END_TEST

#endif

Suite *suite_03_attention(void)
{
    Suite *s = suite_create("03_attention");
    TCase *core = tcase_create("core");
    tcase_add_test(core, softmax_rows_sum_to_one);
    tcase_add_test(core, softmax_shift_invariant);
    tcase_add_test(core, attention_by_hand);
    tcase_add_test(core, attention_matches_loops);
    tcase_add_test(core, attention_backward_accumulates);
    tcase_add_test(core, attn_block_param_names);
    tcase_add_test(core, attn_block_matches_loops);
    tcase_add_test(core, attn_block_zero_proj_is_identity);
    suite_add_tcase(s, core);
#ifdef DDPM_DOUBLE
    TCase *grad = tcase_create("grad");
    tcase_add_test(grad, grad_softmax);
    tcase_add_test(grad, grad_attention);
    tcase_add_test(grad, grad_attn_block);
    tcase_set_timeout(grad, 120);
    suite_add_tcase(s, grad);
#endif
    return s;
}
