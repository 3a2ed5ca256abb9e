/* test_01_autograd.c — the tape, hand-computed gradients, and a gradient
 * check of every op over random shapes (double build only). */
#include <check.h>
#include <math.h>
#include <string.h>

#include "01_autograd.h"
#include "gradcheck.h"

/* ---- core: values and gradients computed by hand ----------------------- */

static Tensor *leaf(Arena *a, int n, const real *v, int grad)
{
    Tensor *t = tensor_1d(a, n);
    memcpy(t->data, v, n * sizeof(real));
    t->requires_grad = grad;
    return t;
}

// L = sum(a*b + a) with a = [1,2,3], b = [4,5,6]: L = 32 + 6 = 38,
// dL/da = b + 1 = [5,6,7], dL/db = a = [1,2,3]. `a` is used twice, so its
// gradient is the sum of two contributions.
START_TEST(backward_by_hand)
{
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *a = leaf(&ar, 3, (real[]){1, 2, 3}, 1), *b = leaf(&ar, 3, (real[]){4, 5, 6}, 1);
    Tensor *L = ag_sum(&tp, ag_add(&tp, ag_mul(&tp, a, b), a));
    ck_assert(L->data[0] == 38);
    ck_assert_int_eq(tp.len, 3);
    tape_backward(&tp, L);
    for (int i = 0; i < 3; i++) {
        ck_assert(a->grad[i] == b->data[i] + 1);
        ck_assert(b->grad[i] == a->data[i]);
    }
    tape_free(&tp);
    arena_free(&ar);
}
END_TEST

// mean(silu(x)) at x = 0: silu(0) = 0, silu'(0) = 1/2, so dL/dx = 1/(2n).
// log(exp(x)) = x: the gradient is exactly 1 up to rounding.
START_TEST(unary_by_hand)
{
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *x = leaf(&ar, 4, (real[]){0, 0, 0, 0}, 1);
    Tensor *L = ag_mean(&tp, ag_silu(&tp, x));
    tape_backward(&tp, L);
    for (int i = 0; i < 4; i++) ck_assert(x->grad[i] == (real)0.125);
    Tensor *y = leaf(&ar, 2, (real[]){-1.5, 2}, 1);
    tape_backward(&tp, ag_sum(&tp, ag_log(&tp, ag_exp(&tp, y))));
    for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(y->grad[i], 1, 1e-6);
    tape_free(&tp);
    arena_free(&ar);
}
END_TEST

// No-grad mode records nothing and allocates no gradients; inputs that do
// not require a gradient never get one.
START_TEST(no_grad_records_nothing)
{
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *w = leaf(&ar, 3, (real[]){1, 2, 3}, 1), *x = leaf(&ar, 3, (real[]){4, 5, 6}, 0);
    int was = tape_set_recording(&tp, 0);
    ck_assert_int_eq(was, 1);
    Tensor *y = ag_sum(&tp, ag_mul(&tp, w, x));
    ck_assert(y->data[0] == 32);
    ck_assert_int_eq(tp.len, 0);
    ck_assert(!y->requires_grad);
    tape_set_recording(&tp, 1);
    Tensor *z = ag_sum(&tp, ag_square(&tp, x));      // x needs no gradient:
    ck_assert_int_eq(tp.len, 0);                      // nothing to record
    ck_assert(!z->requires_grad);
    y = ag_sum(&tp, ag_mul(&tp, w, x));
    tape_backward(&tp, y);
    ck_assert_ptr_null(x->grad);
    ck_assert(w->grad[2] == 6);
    tape_free(&tp);
    arena_free(&ar);
}
END_TEST

// A training-loop shape: forward, backward, reset, several times; after the
// first step neither the arena nor the tape touches the system allocator.
START_TEST(steps_reuse_memory)
{
    Arena ar;
    arena_init(&ar, 1024);
    Tape tp;
    tape_init(&tp, &ar);
    ParamSet ps;
    params_init(&ps);
    Tensor *w = params_add(&ps, "w", 2, (int[]){16, 16});
    params_alloc(&ps);
    vec_fill(w->data, (real)0.01, w->size);
    size_t mallocs = 0;
    Node *nodes = NULL;
    for (int step = 0; step < 4; step++) {
        Tensor *x = tensor_2d(&ar, 8, 16);
        vec_fill(x->data, 1, x->size);
        Tensor *h = ag_silu(&tp, ag_matmul(&tp, x, 0, w, 1));
        tape_backward(&tp, ag_mean(&tp, ag_square(&tp, h)));
        tape_reset(&tp);
        arena_reset(&ar);
        if (step == 0) { mallocs = ar.n_mallocs; nodes = tp.nodes; }
    }
    ck_assert_uint_eq(ar.n_mallocs, mallocs);
    ck_assert_ptr_eq(tp.nodes, nodes);
    tape_free(&tp);
    arena_free(&ar);
    params_free(&ps);
}
END_TEST

START_TEST(dot_export_names_ops)
{
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *a = leaf(&ar, 3, (real[]){1, 2, 3}, 1);
    a->name = "a";
    ag_sum(&tp, ag_sigmoid(&tp, a));
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    tape_write_dot(&tp, f, "test");
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "digraph"));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"sigmoid\""));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"sum\""));
    ck_assert_ptr_nonnull(strstr(buf, "a\\n[3]"));
    tape_free(&tp);
    arena_free(&ar);
}
END_TEST

/* ---- grad: every op against central differences ------------------------- */

#ifdef DDPM_DOUBLE

typedef struct OpCase {
    const char *name;   // the op's name (and its *_backward kernel's stem)
    int n_in;
    GradFn f;
} OpCase;

static Tensor *f_add(Tape *tp, Tensor **in, void *c) { (void)c; return ag_add(tp, in[0], in[1]); }
static Tensor *f_sub(Tape *tp, Tensor **in, void *c) { (void)c; return ag_sub(tp, in[0], in[1]); }
static Tensor *f_mul(Tape *tp, Tensor **in, void *c) { (void)c; return ag_mul(tp, in[0], in[1]); }
static Tensor *f_scale(Tape *tp, Tensor **in, void *c) { (void)c; return ag_scale(tp, in[0], -1.7); }
static Tensor *f_sum(Tape *tp, Tensor **in, void *c) { (void)c; return ag_sum(tp, in[0]); }
static Tensor *f_mean(Tape *tp, Tensor **in, void *c) { (void)c; return ag_mean(tp, in[0]); }
static Tensor *f_exp(Tape *tp, Tensor **in, void *c) { (void)c; return ag_exp(tp, in[0]); }
static Tensor *f_sigmoid(Tape *tp, Tensor **in, void *c) { (void)c; return ag_sigmoid(tp, in[0]); }
static Tensor *f_silu(Tape *tp, Tensor **in, void *c) { (void)c; return ag_silu(tp, in[0]); }
static Tensor *f_square(Tape *tp, Tensor **in, void *c) { (void)c; return ag_square(tp, in[0]); }
// log on (1 + x^2) keeps the argument positive and away from the kink at 0.
static Tensor *f_log(Tape *tp, Tensor **in, void *c)
{
    (void)c;
    Tensor *one = tensor_like(tp->arena, in[0]);
    vec_fill(one->data, 1, one->size);
    return ag_log(tp, ag_add(tp, ag_square(tp, in[0]), one));
}

static const OpCase elementwise[] = {
    {"add", 2, f_add},   {"sub", 2, f_sub},         {"mul", 2, f_mul},
    {"scale", 1, f_scale}, {"sum", 1, f_sum},       {"mean", 1, f_mean},
    {"exp", 1, f_exp},   {"log", 1, f_log},         {"sigmoid", 1, f_sigmoid},
    {"silu", 1, f_silu}, {"square", 1, f_square},
};

// Random tensors of 1 to 4 dims (each dim 1..4), values N(0,1), requiring grad.
static Tensor *random_tensor(Arena *ar, Rng *r, int ndim, const int *shape)
{
    return gradcheck_random(ar, r, ndim, shape, 1);
}

START_TEST(grad_elementwise)
{
    Rng r;
    rng_seed(&r, 100 + _i, 0);
    const OpCase *oc = &elementwise[_i];
    for (int trial = 0; trial < 4; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int ndim = 1 + trial, shape[4];
        for (int d = 0; d < ndim; d++) shape[d] = 1 + rng_below(&r, 4);
        shape[0] = 2 + rng_below(&r, 2);
        Tensor *in[2];
        for (int k = 0; k < oc->n_in; k++) in[k] = random_tensor(&ar, &r, ndim, shape);
        ck_assert_gradcheck(oc->name, gradcheck(oc->f, in, oc->n_in, NULL, trial));
        arena_free(&ar);
    }
}
END_TEST

static Tensor *f_matmul(Tape *tp, Tensor **in, void *c)
{
    int *t = c;
    return ag_matmul(tp, in[0], t[0], in[1], t[1]);
}

// All four transpose cases, odd sizes; also one input without a gradient.
START_TEST(grad_matmul)
{
    Rng r;
    rng_seed(&r, 7, 0);
    for (int trial = 0; trial < 8; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int t[2] = {trial & 1, (trial >> 1) & 1};
        int M = 1 + rng_below(&r, 5), N = 1 + rng_below(&r, 5), K = 1 + rng_below(&r, 6);
        Tensor *in[2];
        in[0] = random_tensor(&ar, &r, 2, t[0] ? (int[]){K, M} : (int[]){M, K});
        in[1] = random_tensor(&ar, &r, 2, t[1] ? (int[]){N, K} : (int[]){K, N});
        if (trial >= 4) in[trial & 1]->requires_grad = 0;
        ck_assert_gradcheck("matmul", gradcheck(f_matmul, in, 2, t, trial));
        arena_free(&ar);
    }
}
END_TEST

static Tensor *f_add_channel(Tape *tp, Tensor **in, void *c) { (void)c; return ag_add_channel(tp, in[0], in[1]); }
static Tensor *f_mul_channel(Tape *tp, Tensor **in, void *c) { (void)c; return ag_mul_channel(tp, in[0], in[1]); }

// Broadcasting a [C] or [N, C] vector over [N, C, H, W] and over [N, C].
START_TEST(grad_channel_broadcast)
{
    Rng r;
    rng_seed(&r, 9, 0);
    for (int trial = 0; trial < 8; trial++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int N = 2 + rng_below(&r, 2), C = 1 + rng_below(&r, 5);
        int H = 1 + rng_below(&r, 4), W = 1 + rng_below(&r, 4);
        Tensor *in[2];
        in[0] = trial & 2 ? random_tensor(&ar, &r, 2, (int[]){N, C})
                          : random_tensor(&ar, &r, 4, (int[]){N, C, H, W});
        in[1] = trial & 4 ? random_tensor(&ar, &r, 2, (int[]){N, C})
                          : random_tensor(&ar, &r, 1, (int[]){C});
        GradFn f = trial & 1 ? f_mul_channel : f_add_channel;
        ck_assert_gradcheck(trial & 1 ? "mul_channel" : "add_channel",
                            gradcheck(f, in, 2, NULL, trial));
        arena_free(&ar);
    }
}
END_TEST

typedef struct PerSample { const real *a, *b; int op; } PerSample;

static Tensor *f_per_sample(Tape *tp, Tensor **in, void *c)
{
    PerSample *p = c;
    switch (p->op) {
    case 0: return ag_mean_flat(tp, in[0]);
    case 1: return ag_axpby_per_sample(tp, p->a, in[0], p->b, in[1]);
    case 2: return ag_axpby_per_sample(tp, p->a, in[0], NULL, NULL);
    case 3: return ag_affine_per_sample(tp, in[0], p->a, p->b);
    default: return ag_clip(tp, in[0], -1, 1);
    }
}

// The per-image ops: mean_flat, axpby (two inputs and one, a zero
// coefficient among them), affine; and clip (values kept 0.01 away from the
// kinks at -1 and 1).
START_TEST(grad_per_sample_ops)
{
    static const char *names[] = {"mean_flat", "axpby_per_sample", "axpby_per_sample (x only)",
                                  "affine_per_sample", "clip"};
    Rng r;
    rng_seed(&r, 13, 0);
    real a[3] = {0.5, -2, 0}, b[3] = {1.5, 0, 0.25};
    for (int op = 0; op < 5; op++) {
        Arena ar;
        arena_init(&ar, 1 << 16);
        int shape[4] = {3, 4, 2, 3};
        Tensor *in[2] = {gradcheck_random(&ar, &r, 4, shape, 1.5),
                         gradcheck_random(&ar, &r, 4, shape, 1)};
        if (op == 4)
            for (size_t i = 0; i < in[0]->size; i++)
                if (fabs(fabs(in[0]->data[i]) - 1) < 0.01) in[0]->data[i] *= 1.05;
        PerSample p = {a, b, op};
        ck_assert_gradcheck(names[op], gradcheck(f_per_sample, in, op == 1 ? 2 : 1, &p, op));
        arena_free(&ar);
    }
}
END_TEST

// A two-layer perceptron, mean squared error: many ops composed, tensors
// reused (x feeds two branches), gradients accumulated through the graph.
static Tensor *f_mlp(Tape *tp, Tensor **in, void *c)
{
    (void)c;
    Tensor *x = in[0], *w1 = in[1], *b1 = in[2], *w2 = in[3];
    Tensor *h = ag_silu(tp, ag_add_channel(tp, ag_matmul(tp, x, 0, w1, 1), b1));
    Tensor *y = ag_matmul(tp, h, 0, w2, 0);
    Tensor *skip = ag_mul(tp, ag_sigmoid(tp, x), x);
    return ag_mean(tp, ag_square(tp, ag_sub(tp, ag_add(tp, y, skip), x)));
}

START_TEST(grad_composite)
{
    Rng r;
    rng_seed(&r, 5, 0);
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tensor *in[4] = {
        random_tensor(&ar, &r, 2, (int[]){3, 4}), random_tensor(&ar, &r, 2, (int[]){5, 4}),
        random_tensor(&ar, &r, 1, (int[]){5}),    random_tensor(&ar, &r, 2, (int[]){5, 4}),
    };
    ck_assert_gradcheck("mlp", gradcheck(f_mlp, in, 4, NULL, 1));
    arena_free(&ar);
}
END_TEST

// The checker itself must catch a wrong gradient: an op whose forward is
// x^2 but whose backward says 2.02 x (1% off) has to fail the check.
static void square_1pct_off_node(Tape *tp, Node *nd)
{
    real *dx = tape_grad(tp, nd->in[0]);
    square_backward(dx, nd->out->grad, nd->in[0]->data, nd->out->size);
    for (size_t i = 0; i < nd->out->size; i++)
        dx[i] += (real)0.01 * 2 * nd->in[0]->data[i] * nd->out->grad[i];
}

static Tensor *f_square_1pct_off(Tape *tp, Tensor **in, void *c)
{
    (void)c;
    Tensor *out = tensor_like(tp->arena, in[0]);
    square_forward(out->data, in[0]->data, out->size);
    tape_record(tp, "square_1pct_off", square_1pct_off_node, out, 1, in);
    return out;
}

START_TEST(gradcheck_catches_wrong_gradient)
{
    Rng r;
    rng_seed(&r, 3, 0);
    Arena ar;
    arena_init(&ar, 1 << 16);
    Tensor *x = random_tensor(&ar, &r, 2, (int[]){3, 5});
    GradCheck good = gradcheck(f_square, &x, 1, NULL, 0);
    GradCheck bad = gradcheck(f_square_1pct_off, &x, 1, NULL, 0);
    ck_assert_double_le(good.worst, 1);
    ck_assert_msg(bad.worst > 1, "a 1%% wrong backward passed (score %g)", bad.worst);
    arena_free(&ar);
}
END_TEST

#endif

Suite *suite_01_autograd(void)
{
    Suite *s = suite_create("01_autograd");
    TCase *core = tcase_create("core");
    tcase_add_test(core, backward_by_hand);
    tcase_add_test(core, unary_by_hand);
    tcase_add_test(core, no_grad_records_nothing);
    tcase_add_test(core, steps_reuse_memory);
    tcase_add_test(core, dot_export_names_ops);
    suite_add_tcase(s, core);
#ifdef DDPM_DOUBLE
    TCase *grad = tcase_create("grad");
    int n_elem = (int)(sizeof elementwise / sizeof elementwise[0]);
    tcase_add_loop_test(grad, grad_elementwise, 0, n_elem);
    tcase_add_test(grad, grad_matmul);
    tcase_add_test(grad, grad_channel_broadcast);
    tcase_add_test(grad, grad_per_sample_ops);
    tcase_add_test(grad, grad_composite);
    tcase_add_test(grad, gradcheck_catches_wrong_gradient);
    tcase_set_timeout(grad, 120);
    suite_add_tcase(s, grad);
#endif
    return s;
}
