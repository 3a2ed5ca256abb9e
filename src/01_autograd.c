/* 01_autograd.c — reverse-mode automatic differentiation on a tape.
 *
 * Chapter 01 (book/01_autograd.md). The forward pass of a model is a
 * sequence of ops; while it runs, each op appends one Node to the tape (the
 * Wengert list): which op, its inputs, its output, the values it will need
 * for its derivative. backward() then visits the nodes in reverse order; each
 * node reads dL/d(out) and adds its contribution to dL/d(in) for every input
 * that needs one (the chain rule, one local Jacobian–vector product at a
 * time). Because gradients are accumulated with +=, a tensor used by several
 * ops receives the sum of their contributions, which is the multivariate
 * chain rule.
 *
 * The file is a table of ops. Each has
 *   - a forward kernel and a backward kernel on raw arrays (testable alone),
 *   - a small static X_node() that unpacks a Node and calls the backward
 *     kernel, and the public ag_X() that runs the forward and records.
 * Shapes: n = number of elements; for channel ops x is [N, C, HW...] and v
 * is [C] (one value per channel) or [N, C] (one per sample and channel); for
 * per-image ops x is [N, D] and a coefficient a [N] (C = 1).
 *
 * (About 680 lines: the tape, then one table of ops, each a short forward,
 * backward, node and ag_ quartet; splitting the table would scatter it.)
 */
#include "01_autograd.h"

#include <stdlib.h>
#include <string.h>
#include <tgmath.h>   // exp() and log() pick the float or double version from the type

/* ---- The tape ------------------------------------------------------------ */

void tape_init(Tape *tp, Arena *arena)
{
    memset(tp, 0, sizeof *tp);
    tp->arena = arena;
    tp->recording = 1;
}

void tape_reset(Tape *tp)
{
    tp->len = 0;
}

void tape_free(Tape *tp)
{
    free(tp->nodes);
    memset(tp, 0, sizeof *tp);
}

int tape_set_recording(Tape *tp, int on)
{
    int was = tp->recording;
    tp->recording = on;
    return was;
}

// Append a node for `out = op(in...)`, unless nothing downstream can need a
// gradient: in no-grad mode, or when no input requires one. The node array
// grows by doubling and is kept across tape_reset(), so after the first
// step recording costs no allocation.
Node *tape_record(Tape *tp, const char *op, BackwardFn fn, Tensor *out,
                  int n_in, Tensor *const *in)
{
    int needed = 0;
    for (int i = 0; i < n_in; i++) needed |= in[i]->requires_grad;
    if (!tp || !tp->recording || !needed) return NULL;
    DDPM_CHECK(n_in <= NODE_MAX_IN, "op %s has %d inputs", op, n_in);
    if (tp->len == tp->cap) {
        tp->cap = tp->cap ? 2 * tp->cap : 256;
        tp->nodes = realloc(tp->nodes, (size_t)tp->cap * sizeof *tp->nodes);
        DDPM_CHECK(tp->nodes != NULL, "out of memory growing the tape");
    }
    Node *nd = &tp->nodes[tp->len++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->backward = fn;
    nd->out = out;
    nd->n_in = n_in;
    for (int i = 0; i < n_in; i++) nd->in[i] = in[i];
    out->requires_grad = 1;
    if (!out->name) out->name = op;
    return nd;
}

real *tape_grad(Tape *tp, Tensor *t)
{
    if (!t->grad) t->grad = arena_calloc(tp->arena, t->size * sizeof(real));
    return t->grad;
}

// The input's gradient if it wants one, else NULL: backward kernels skip
// the work for a NULL destination (micrograd's needs_input_grad).
real *tape_grad_if(Tape *tp, Tensor *t)
{
    return t->requires_grad ? tape_grad(tp, t) : NULL;
}

// Seed dL/d(out) and walk the tape backwards. A node whose output never
// received a gradient (it did not influence `out`) is skipped.
void tape_backward_from(Tape *tp, Tensor *out, const real *dout)
{
    real *g = tape_grad(tp, out);
    for (size_t i = 0; i < out->size; i++) g[i] += dout[i];
    for (int i = tp->len - 1; i >= 0; i--) {
        Node *nd = &tp->nodes[i];
        if (nd->out->grad) nd->backward(tp, nd);
    }
}

void tape_backward(Tape *tp, Tensor *loss)
{
    DDPM_CHECK(loss->size == 1, "backward from a tensor of %zu elements", loss->size);
    real one = 1;
    tape_backward_from(tp, loss, &one);
}

// Graphviz: tensors are ellipses (parameters filled), ops are boxes.
void tape_write_dot(const Tape *tp, FILE *f, const char *title)
{
    char shape[64];
    fprintf(f, "digraph tape {\n  rankdir=LR; label=\"%s\"; labelloc=t;\n"
               "  node [fontname=\"Helvetica\", fontsize=11];\n", title);
    for (int i = 0; i < tp->len; i++) {
        const Node *nd = &tp->nodes[i];
        for (int j = 0; j < nd->n_in; j++) {
            const Tensor *t = nd->in[j];
            fprintf(f, "  t%p [shape=ellipse, label=\"%s\\n%s\"%s];\n", (void *)t,
                    t->name ? t->name : "input", tensor_shape_str(t, shape, sizeof shape),
                    t->requires_grad && !t->grad ? "" :
                    (t->requires_grad ? ", style=filled, fillcolor=\"#dde8f5\"" :
                                        ", style=dashed"));
            fprintf(f, "  t%p -> op%d;\n", (void *)t, i);
        }
        fprintf(f, "  op%d [shape=box, style=\"rounded,filled\", fillcolor=\"#f5e6c8\","
                   " label=\"%s\"];\n", i, nd->op);
        fprintf(f, "  t%p [shape=ellipse, label=\"%s\"];\n  op%d -> t%p;\n",
                (void *)nd->out, tensor_shape_str(nd->out, shape, sizeof shape),
                i, (void *)nd->out);
    }
    fprintf(f, "}\n");
}

/* ---- add, sub: d(a±b) = da ± db -------------------------------------------- */

void add_backward(real *da, real *db, const real *dout, size_t n)
{
    if (da) vec_axpy(da, 1, dout, n);
    if (db) vec_axpy(db, 1, dout, n);
}

void sub_backward(real *da, real *db, const real *dout, size_t n)
{
    if (da) vec_axpy(da, 1, dout, n);
    if (db) vec_axpy(db, -1, dout, n);
}

static void add_node(Tape *tp, Node *nd)
{
    add_backward(tape_grad_if(tp, nd->in[0]), tape_grad_if(tp, nd->in[1]),
                 nd->out->grad, nd->out->size);
}

static void sub_node(Tape *tp, Node *nd)
{
    sub_backward(tape_grad_if(tp, nd->in[0]), tape_grad_if(tp, nd->in[1]),
                 nd->out->grad, nd->out->size);
}

Tensor *ag_add(Tape *tp, Tensor *a, Tensor *b)
{
    tensor_check_same("add", a, b);
    Tensor *out = tensor_like(tp->arena, a);
    vec_add(out->data, a->data, b->data, a->size);
    tape_record(tp, "add", add_node, out, 2, (Tensor *[]){a, b});
    return out;
}

Tensor *ag_sub(Tape *tp, Tensor *a, Tensor *b)
{
    tensor_check_same("sub", a, b);
    Tensor *out = tensor_like(tp->arena, a);
    vec_sub(out->data, a->data, b->data, a->size);
    tape_record(tp, "sub", sub_node, out, 2, (Tensor *[]){a, b});
    return out;
}

/* ---- mul: d(a*b) = b da + a db ------------------------------------------- */

void mul_backward(real *da, real *db, const real *dout,
                  const real *a, const real *b, size_t n)
{
    if (da) for (size_t i = 0; i < n; i++) da[i] += dout[i] * b[i];
    if (db) for (size_t i = 0; i < n; i++) db[i] += dout[i] * a[i];
}

static void mul_node(Tape *tp, Node *nd)
{
    Tensor *a = nd->in[0], *b = nd->in[1];
    mul_backward(tape_grad_if(tp, a), tape_grad_if(tp, b), nd->out->grad,
                 a->data, b->data, a->size);
}

Tensor *ag_mul(Tape *tp, Tensor *a, Tensor *b)
{
    tensor_check_same("mul", a, b);
    Tensor *out = tensor_like(tp->arena, a);
    vec_mul(out->data, a->data, b->data, a->size);
    tape_record(tp, "mul", mul_node, out, 2, (Tensor *[]){a, b});
    return out;
}

/* ---- scale: d(s*x) = s dx ----------------------------------------------------- */

void scale_backward(real *dx, const real *dout, real s, size_t n)
{
    vec_axpy(dx, s, dout, n);
}

static void scale_node(Tape *tp, Node *nd)
{
    scale_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->s, nd->out->size);
}

Tensor *ag_scale(Tape *tp, Tensor *x, real s)
{
    Tensor *out = tensor_like(tp->arena, x);
    vec_scale(out->data, x->data, s, x->size);
    Node *nd = tape_record(tp, "scale", scale_node, out, 1, &x);
    if (nd) nd->s = s;
    return out;
}

/* ---- sum and mean: every input element gets dout (or dout / n) ------------- */

void sum_backward(real *dx, real dout, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout;
}

static void sum_node(Tape *tp, Node *nd)
{
    size_t n = nd->in[0]->size;
    sum_backward(tape_grad(tp, nd->in[0]), nd->out->grad[0] * nd->s, n);
}

static Tensor *reduce(Tape *tp, Tensor *x, const char *op, real factor)
{
    Tensor *out = tensor_1d(tp->arena, 1);
    out->data[0] = (real)(vec_sum(x->data, x->size) * factor);
    Node *nd = tape_record(tp, op, sum_node, out, 1, &x);
    if (nd) nd->s = factor;
    return out;
}

Tensor *ag_sum(Tape *tp, Tensor *x)  { return reduce(tp, x, "sum", 1); }
Tensor *ag_mean(Tape *tp, Tensor *x) { return reduce(tp, x, "mean", (real)1 / (real)x->size); }

/* ---- unary maps: y = f(x), dx += f'(x) dy --------------------------------- */
/* The backward uses whichever of x or y makes f' cheapest:
 *   exp:     y = e^x             f' = y
 *   log:     y = ln x            f' = 1/x
 *   sigmoid: y = 1/(1+e^-x)      f' = y (1 - y)
 *   silu:    y = x sigmoid(x)    f' = s (1 + x (1 - s)),  s = sigmoid(x)
 *   square:  y = x^2             f' = 2x                                   */

void exp_forward(real *out, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = exp(x[i]);
}

void exp_backward(real *dx, const real *dout, const real *out, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * out[i];
}

void log_forward(real *out, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = log(x[i]);
}

void log_backward(real *dx, const real *dout, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] / x[i];
}

void sigmoid_forward(real *out, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = 1 / (1 + exp(-x[i]));
}

void sigmoid_backward(real *dx, const real *dout, const real *out, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * out[i] * (1 - out[i]);
}

void silu_forward(real *out, const real *x, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] / (1 + exp_vec(-x[i]));
}

void silu_backward(real *dx, const real *dout, const real *x, size_t n)
{
    #pragma omp parallel for simd if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real s = 1 / (1 + exp_vec(-x[i]));
        dx[i] += dout[i] * s * (1 + x[i] * (1 - s));
    }
}

void square_forward(real *out, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = x[i] * x[i];
}

void square_backward(real *dx, const real *dout, const real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += 2 * x[i] * dout[i];
}

// The derivatives that need the output (exp, sigmoid) read nd->out->data;
// the ones that need the input read nd->in[0]->data. Nothing else is saved.
static void exp_node(Tape *tp, Node *nd)
{
    exp_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->out->data, nd->out->size);
}

static void log_node(Tape *tp, Node *nd)
{
    log_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->in[0]->data, nd->out->size);
}

static void sigmoid_node(Tape *tp, Node *nd)
{
    sigmoid_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->out->data,
                     nd->out->size);
}

static void silu_node(Tape *tp, Node *nd)
{
    silu_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->in[0]->data, nd->out->size);
}

static void square_node(Tape *tp, Node *nd)
{
    square_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->in[0]->data,
                    nd->out->size);
}

typedef void (*MapFn)(real *out, const real *x, size_t n);

static Tensor *unary(Tape *tp, Tensor *x, const char *op, MapFn f, BackwardFn b)
{
    Tensor *out = tensor_like(tp->arena, x);
    f(out->data, x->data, x->size);
    tape_record(tp, op, b, out, 1, &x);
    return out;
}

Tensor *ag_exp(Tape *tp, Tensor *x)     { return unary(tp, x, "exp", exp_forward, exp_node); }
Tensor *ag_log(Tape *tp, Tensor *x)     { return unary(tp, x, "log", log_forward, log_node); }
Tensor *ag_sigmoid(Tape *tp, Tensor *x) { return unary(tp, x, "sigmoid", sigmoid_forward, sigmoid_node); }
Tensor *ag_silu(Tape *tp, Tensor *x)    { return unary(tp, x, "silu", silu_forward, silu_node); }
Tensor *ag_square(Tape *tp, Tensor *x)  { return unary(tp, x, "square", square_forward, square_node); }

/* ---- matmul: C = op(A) op(B) ------------------------------------------------ */
/* With op(A) [M, K], op(B) [K, N] and dC [M, N], the chain rule gives
 *   d op(A) = dC op(B)^T      d op(B) = op(A)^T dC
 * and for a transposed operand we store the transpose of that. Each case is
 * one more GEMM with beta = 1, which accumulates into the gradient.        */

void matmul_forward(real *out, const real *a, int ta, const real *b, int tb,
                    int M, int N, int K)
{
    gemm(ta, tb, M, N, K, 1, a, ta ? M : K, b, tb ? K : N, 0, out, N);
}

void matmul_backward(real *da, real *db, const real *dout,
                     const real *a, int ta, const real *b, int tb,
                     int M, int N, int K)
{
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (da && !ta) gemm(0, !tb, M, K, N, 1, dout, N, b, ldb, 1, da, K);  // dC op(B)^T
    if (da && ta)  gemm(tb, 1, K, M, N, 1, b, ldb, dout, N, 1, da, M);   // op(B) dC^T
    if (db && !tb) gemm(!ta, 0, K, N, M, 1, a, lda, dout, N, 1, db, N);  // op(A)^T dC
    if (db && tb)  gemm(1, ta, N, K, M, 1, dout, N, a, lda, 1, db, K);   // dC^T op(A)
}

static void matmul_node(Tape *tp, Node *nd)
{
    Tensor *a = nd->in[0], *b = nd->in[1];
    int ta = nd->arg[0], tb = nd->arg[1];
    int M = nd->out->shape[0], N = nd->out->shape[1];
    int K = ta ? a->shape[0] : a->shape[1];
    matmul_backward(tape_grad_if(tp, a), tape_grad_if(tp, b), nd->out->grad,
                    a->data, ta, b->data, tb, M, N, K);
}

Tensor *ag_matmul(Tape *tp, Tensor *a, int ta, Tensor *b, int tb)
{
    DDPM_CHECK(a->ndim == 2 && b->ndim == 2, "matmul takes 2-D tensors");
    int M = ta ? a->shape[1] : a->shape[0], K = ta ? a->shape[0] : a->shape[1];
    int Kb = tb ? b->shape[1] : b->shape[0], N = tb ? b->shape[0] : b->shape[1];
    DDPM_CHECK(K == Kb, "matmul: inner sizes %d and %d differ", K, Kb);
    Tensor *out = tensor_2d(tp->arena, M, N);
    matmul_forward(out->data, a->data, ta, b->data, tb, M, N, K);
    Node *nd = tape_record(tp, "matmul", matmul_node, out, 2, (Tensor *[]){a, b});
    if (nd) { nd->arg[0] = ta; nd->arg[1] = tb; }
    return out;
}

/* ---- per-channel broadcast: out[n,c,:] = x[n,c,:] (+ or *) v[c] ------------- */
/* v[c] (per_sample = 0) or v[n,c] (per_sample = 1) is broadcast over the HW
 * positions of its channel. Its gradient sums dout over exactly the positions
 * it was broadcast to: the rule "broadcast forward = sum backward".          */

void add_channel_forward(real *out, const real *x, const real *v,
                         int N, int C, size_t HW, int per_sample)
{
    #pragma omp parallel for collapse(2) if ((size_t)N * C * HW > PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)n * C + c) * HW;
            real vc = v[per_sample ? n * C + c : c];
            #pragma omp simd
            for (size_t i = 0; i < HW; i++) out[o + i] = x[o + i] + vc;
        }
}

void add_channel_backward(real *dx, real *dv, const real *dout,
                          int N, int C, size_t HW, int per_sample)
{
    if (dx) vec_axpy(dx, 1, dout, (size_t)N * C * HW);
    if (!dv) return;
    // One channel (or one sample and channel) per iteration, the images in
    // a fixed order: the cores share the work and the sums do not depend on timing.
    #pragma omp parallel for if ((size_t)N * C * HW > PAR_MIN)
    for (int k = 0; k < (per_sample ? N * C : C); k++)
        for (int n = per_sample ? k / C : 0; n < (per_sample ? k / C + 1 : N); n++)
            dv[k] += vec_sum(dout + ((size_t)n * C + k % C) * HW, HW);
}

void mul_channel_forward(real *out, const real *x, const real *v,
                         int N, int C, size_t HW, int per_sample)
{
    #pragma omp parallel for collapse(2) if ((size_t)N * C * HW > PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)n * C + c) * HW;
            real vc = v[per_sample ? n * C + c : c];
            #pragma omp simd
            for (size_t i = 0; i < HW; i++) out[o + i] = x[o + i] * vc;
        }
}

void mul_channel_backward(real *dx, real *dv, const real *dout,
                          const real *x, const real *v,
                          int N, int C, size_t HW, int per_sample)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)n * C + c) * HW;
            int k = per_sample ? n * C + c : c;
            if (dx) vec_axpy(dx + o, v[k], dout + o, HW);
            if (dv) dv[k] += vec_dot(dout + o, x + o, HW);
        }
}

static void channel_shape(const char *op, Tensor *x, Tensor *v,
                          int *N, int *C, size_t *HW, int *per_sample)
{
    char sx[64], sv[64];
    tensor_nchw(x, N, C, HW);
    *per_sample = v->ndim == 2;
    int ok = *per_sample ? v->shape[0] == *N && v->shape[1] == *C
                         : v->ndim == 1 && v->shape[0] == *C;
    DDPM_CHECK(ok, "%s: cannot broadcast %s over the channels of %s", op,
               tensor_shape_str(v, sv, sizeof sv), tensor_shape_str(x, sx, sizeof sx));
}

static void add_channel_node(Tape *tp, Node *nd)
{
    int N, C, ps;
    size_t HW;
    channel_shape("add_channel", nd->in[0], nd->in[1], &N, &C, &HW, &ps);
    add_channel_backward(tape_grad_if(tp, nd->in[0]), tape_grad_if(tp, nd->in[1]),
                         nd->out->grad, N, C, HW, ps);
}

static void mul_channel_node(Tape *tp, Node *nd)
{
    Tensor *x = nd->in[0], *v = nd->in[1];
    int N, C, ps;
    size_t HW;
    channel_shape("mul_channel", x, v, &N, &C, &HW, &ps);
    mul_channel_backward(tape_grad_if(tp, x), tape_grad_if(tp, v), nd->out->grad,
                         x->data, v->data, N, C, HW, ps);
}

Tensor *ag_add_channel(Tape *tp, Tensor *x, Tensor *v)
{
    int N, C, ps;
    size_t HW;
    channel_shape("add_channel", x, v, &N, &C, &HW, &ps);
    Tensor *out = tensor_like(tp->arena, x);
    add_channel_forward(out->data, x->data, v->data, N, C, HW, ps);
    tape_record(tp, "add_channel", add_channel_node, out, 2, (Tensor *[]){x, v});
    return out;
}

Tensor *ag_mul_channel(Tape *tp, Tensor *x, Tensor *v)
{
    int N, C, ps;
    size_t HW;
    channel_shape("mul_channel", x, v, &N, &C, &HW, &ps);
    Tensor *out = tensor_like(tp->arena, x);
    mul_channel_forward(out->data, x->data, v->data, N, C, HW, ps);
    tape_record(tp, "mul_channel", mul_channel_node, out, 2, (Tensor *[]){x, v});
    return out;
}

/* ---- per-image ops: the per-channel ops above with C = 1 ------------------ */
/* The schedule gives one coefficient per image (its timestep's), applied to
 * all D values of that image: broadcast forward, so the gradient of x is the
 * coefficient times dout. The coefficients are constants, not learned.     */

void mean_flat_forward(real *out, const real *x, int N, size_t D)
{
    for (int n = 0; n < N; n++) out[n] = (real)(vec_sum(x + (size_t)n * D, D) / (double)D);
}

void mean_flat_backward(real *dx, const real *dout, int N, size_t D)
{
    for (int n = 0; n < N; n++) {
        real g = dout[n] / (real)D;
        for (size_t i = 0; i < D; i++) dx[(size_t)n * D + i] += g;
    }
}

void axpby_per_sample_forward(real *out, const real *a, const real *x, const real *b,
                              const real *y, int N, size_t D)
{
    for (int n = 0; n < N; n++) {
        real *o = out + (size_t)n * D;
        const real *xn = x + (size_t)n * D, *yn = y ? y + (size_t)n * D : NULL;
        real an = a[n], bn = yn ? b[n] : 0;
        // A zero coefficient skips its term rather than multiplying it (0 * inf
        // is NaN): with 0/1 coefficients this op selects, like tf.where.
        for (size_t i = 0; i < D; i++)
            o[i] = (an != 0 ? an * xn[i] : 0) + (bn != 0 ? bn * yn[i] : 0);
    }
}

void axpby_per_sample_backward(real *dx, real *dy, const real *dout, const real *a,
                               const real *b, int N, size_t D)
{
    for (int n = 0; n < N; n++) {
        if (dx) vec_axpy(dx + (size_t)n * D, a[n], dout + (size_t)n * D, D);
        if (dy) vec_axpy(dy + (size_t)n * D, b[n], dout + (size_t)n * D, D);
    }
}

void affine_per_sample_forward(real *out, const real *x, const real *a, const real *b,
                               int N, size_t D)
{
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < D; i++)
            out[(size_t)n * D + i] = a[n] * x[(size_t)n * D + i] + b[n];
}

void affine_per_sample_backward(real *dx, const real *dout, const real *a, int N, size_t D)
{
    for (int n = 0; n < N; n++) vec_axpy(dx + (size_t)n * D, a[n], dout + (size_t)n * D, D);
}

static void mean_flat_node(Tape *tp, Node *nd)
{
    int N = nd->out->shape[0];
    mean_flat_backward(tape_grad(tp, nd->in[0]), nd->out->grad, N, nd->in[0]->size / N);
}

// saved: the coefficients a [N] then b [N], copied: the caller's may not live.
static void axpby_node(Tape *tp, Node *nd)
{
    const real *ab = nd->saved;
    int N = nd->out->shape[0];
    axpby_per_sample_backward(tape_grad_if(tp, nd->in[0]),
                              nd->n_in > 1 ? tape_grad_if(tp, nd->in[1]) : NULL,
                              nd->out->grad, ab, ab + N, N, nd->out->size / N);
}

static void affine_node(Tape *tp, Node *nd)
{
    int N = nd->out->shape[0];
    affine_per_sample_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->saved, N,
                               nd->out->size / N);
}

Tensor *ag_mean_flat(Tape *tp, Tensor *x)
{
    int N = x->shape[0];
    Tensor *out = tensor_1d(tp->arena, N);
    mean_flat_forward(out->data, x->data, N, x->size / N);
    tape_record(tp, "mean_flat", mean_flat_node, out, 1, &x);
    return out;
}

static real *saved_coefs(Tape *tp, const real *a, const real *b, int N)
{
    real *ab = arena_alloc(tp->arena, 2 * (size_t)N * sizeof(real));
    memcpy(ab, a, (size_t)N * sizeof(real));
    if (b) memcpy(ab + N, b, (size_t)N * sizeof(real));
    else memset(ab + N, 0, (size_t)N * sizeof(real));
    return ab;
}

// out = a[n] x + b[n] y per image; y may be NULL (then out = a[n] x).
Tensor *ag_axpby_per_sample(Tape *tp, const real *a, Tensor *x, const real *b, Tensor *y)
{
    if (y) tensor_check_same("axpby_per_sample", x, y);
    int N = x->shape[0];
    Tensor *out = tensor_like(tp->arena, x);
    axpby_per_sample_forward(out->data, a, x->data, b, y ? y->data : NULL, N, x->size / N);
    Node *nd = tape_record(tp, "axpby_per_sample", axpby_node, out, y ? 2 : 1,
                           (Tensor *[]){x, y});
    if (nd) nd->saved = saved_coefs(tp, a, y ? b : NULL, N);
    return out;
}

Tensor *ag_affine_per_sample(Tape *tp, Tensor *x, const real *a, const real *b)
{
    int N = x->shape[0];
    Tensor *out = tensor_like(tp->arena, x);
    affine_per_sample_forward(out->data, x->data, a, b, N, x->size / N);
    Node *nd = tape_record(tp, "affine_per_sample", affine_node, out, 1, &x);
    if (nd) nd->saved = saved_coefs(tp, a, NULL, N);
    return out;
}

/* ---- clip and detach --------------------------------------------------- */

void clip_forward(real *out, const real *x, real lo, real hi, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

void clip_backward(real *dx, const real *dout, const real *x, real lo, real hi, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] >= lo && x[i] <= hi) dx[i] += dout[i];
}

// saved: the bounds lo, hi.
static void clip_node(Tape *tp, Node *nd)
{
    const real *lohi = nd->saved;
    clip_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->in[0]->data, lohi[0], lohi[1],
                  nd->out->size);
}

Tensor *ag_clip(Tape *tp, Tensor *x, real lo, real hi)
{
    Tensor *out = tensor_like(tp->arena, x);
    clip_forward(out->data, x->data, lo, hi, x->size);
    Node *nd = tape_record(tp, "clip", clip_node, out, 1, &x);
    if (nd) {
        real *lohi = arena_alloc(tp->arena, 2 * sizeof(real));
        lohi[0] = lo;
        lohi[1] = hi;
        nd->saved = lohi;
    }
    return out;
}

// The stop-gradient: a second Tensor header over the same values, with no
// gradient and no history, so nothing that uses it reaches x in backward.
Tensor *ag_detach(Tape *tp, Tensor *x)
{
    Tensor *out = arena_alloc(tp->arena, sizeof *out);
    *out = *x;
    out->grad = NULL;
    out->requires_grad = 0;
    out->name = "detach";
    return out;
}
