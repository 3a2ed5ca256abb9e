/* 03_attention.c — self-attention: every position looks at every other.
 *
 * Chapter 03 (book/03_attention.md). A 3x3 convolution mixes a position with
 * its eight neighbours; self-attention mixes it with all HW positions in one
 * step, with weights computed from the data itself. For one sample, with
 * q, k, v [C, HW] three 1x1 convolutions of the same normalised input:
 *
 *   s = q^T k / sqrt(C)     [HW, HW]  s[i][j] = <q[:, i], k[:, j]> / sqrt(C)
 *   p = softmax_j(s)        [HW, HW]  row i: how much query i takes from each j
 *   h = v p^T               [C, HW]   h[:, i] = sum_j p[i][j] v[:, j]
 *
 * The paper's AttnBlock (App. B says only "self-attention blocks at the
 * 16 x 16 resolution"; the block itself is the official code's attn_block
 * in models/unet.py) wraps this in a GroupNorm before and a 1x1 projection
 * and a residual after:
 *
 *   out = x + proj_out(h),  h = attention(q(GN(x)), k(GN(x)), v(GN(x)))
 *
 * Its cost is two GEMMs of HW x HW x C per sample (4 HW^2 C flops) and an
 * HW x HW softmax: quadratic in the number of positions, so doubling the
 * resolution makes it 16 times dearer. That is why the U-Net uses it at
 * 16x16 (and in the middle, at 4x4) but not at 32x32.
 *
 * The file: softmax (kernel pair, tape op), the attention core (kernel pair,
 * tape op, the weights p saved for the backward), then the block, which is
 * only a composition of tape ops and so needs no backward of its own.
 *
 * Shapes: N batch, C channels, HW = H*W positions; q, k, v, h [N, C, HW]
 * (NCHW: one sample is a [C, HW] matrix), p [N, HW, HW] (row = query,
 * column = key).
 */
#include "03_attention.h"

#include <stdio.h>
#include <omp.h>
#include <string.h>
#include <tgmath.h>   // exp() and sqrt() follow `real`

/* ---- softmax over rows -------------------------------------------------- */

/* p_j = e^{x_j} / sum_l e^{x_l} for each row; x, out [rows, cols], out may
 * be x. Adding a constant to every x_j changes nothing (it cancels between
 * numerator and denominator), so subtract the row's maximum m first: every
 * exponent is then <= 0, exp cannot overflow, the largest term is exactly 1
 * and the sum is at least 1. With raw scores a single x_j = 89 already
 * overflows float's exp.                                                    */
void softmax_forward(real *out, const real *x, int rows, int cols)
{
    #pragma omp parallel for if ((size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const real *xr = x + (size_t)r * cols;   // [cols]
        real *pr = out + (size_t)r * cols;       // [cols]
        real m = xr[0];
        for (int j = 1; j < cols; j++) m = xr[j] > m ? xr[j] : m;
        real z = 0;
        #pragma omp simd reduction(+ : z)
        for (int j = 0; j < cols; j++) {
            pr[j] = exp_vec(xr[j] - m);
            z += pr[j];
        }
        real inv = 1 / z;
        for (int j = 0; j < cols; j++) pr[j] *= inv;
    }
}

/* The Jacobian of one row is dp_j/dx_l = p_j (delta_jl - p_l), so for an
 * incoming gradient g = dL/dp
 *   dL/dx_l = sum_j g_j p_j (delta_jl - p_l) = p_l (g_l - <g, p>):
 * subtract the p-weighted mean of g, then scale by p. One pass for the dot
 * product, one for the update; the output p is all it needs.               */
void softmax_backward(real *dx, const real *dout, const real *p, int rows, int cols)
{
    #pragma omp parallel for if ((size_t)rows * cols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const real *g = dout + (size_t)r * cols;  // [cols] dL/dp
        const real *pr = p + (size_t)r * cols;    // [cols]
        real *d = dx + (size_t)r * cols;          // [cols] dL/dx, accumulated
        real gp = 0;
        #pragma omp simd reduction(+ : gp)
        for (int j = 0; j < cols; j++) gp += g[j] * pr[j];
        #pragma omp simd
        for (int j = 0; j < cols; j++) d[j] += pr[j] * (g[j] - gp);
    }
}

// The output is p itself, so the node needs nothing else saved.
static void softmax_node(Tape *tp, Node *nd)
{
    int cols = nd->out->shape[nd->out->ndim - 1];
    int rows = (int)(nd->out->size / (size_t)cols);
    softmax_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->out->data, rows, cols);
}

Tensor *ag_softmax(Tape *tp, Tensor *x)
{
    int cols = x->shape[x->ndim - 1];
    Tensor *out = tensor_like(tp->arena, x);
    softmax_forward(out->data, x->data, (int)(x->size / (size_t)cols), cols);
    tape_record(tp, "softmax", softmax_node, out, 1, &x);
    return out;
}

/* ---- the attention core: h = v softmax(q^T k / sqrt(C))^T ----------------- */

/* q, k, v, out [N, C, HW]; p [N, HW, HW] receives the weights (saved for the
 * backward). One sample at a time, two GEMMs around a softmax. Storage is
 * NCHW, so a sample's q is a [C, HW] matrix with one column per position;
 * q^T k is then the GEMM with A transposed, and v p^T the one with B
 * transposed. Dividing by sqrt(C) keeps the scores at unit scale when q and
 * k have unit-scale entries (a dot product of C of them has variance C), so
 * the softmax does not saturate into a one-hot as C grows; it rides along as
 * GEMM's alpha, as the official code's int(C)**(-0.5). The samples are
 * independent, so the two cores take one each (one-thread GEMMs inside).    */
void attention_forward(real *out, real *p, const real *q, const real *k,
                       const real *v, int N, int C, int HW)
{
    real scale = 1 / sqrt((real)C);
    #pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C * HW;
        real *pn = p + (size_t)n * HW * HW;   // [HW, HW] this sample's weights
        // Scores: s[i][j] = <q[:, i], k[:, j]> / sqrt(C), written into pn
        gemm(1, 0, HW, HW, C, scale, q + o, HW, k + o, HW, 0, pn, HW);
        // Weights: each query's row of scores becomes a distribution over keys
        softmax_forward(pn, pn, HW, HW);
        // Mix: out[c][i] = sum_j v[c][j] p[i][j], i.e. out = v p^T
        gemm(0, 1, C, HW, HW, 1, v + o, HW, pn, HW, 0, out + o, HW);
    }
}

/* Backward, per sample, from g = dL/dh [C, HW]. Each GEMM's rule is that of
 * matmul (chapter 01): for h = v p^T,   dv = g p,  dp = g^T v;
 * through the softmax, row by row:       ds = p * (dp - <dp, p>_row);
 * for s = q^T k / sqrt(C),                dq = k ds^T / sqrt(C),
 *                                         dk = q ds / sqrt(C).
 * Four GEMMs of the same HW x HW x C size as the forward's two, all but dp
 * accumulated with beta = 1. Each core takes whole samples and gets its own
 * two [HW, HW] buffers from `scratch`, handed back at the end.             */
void attention_backward(real *dq, real *dk, real *dv, const real *dout,
                        const real *q, const real *k, const real *v, const real *p,
                        int N, int C, int HW, Arena *scratch)
{
    real scale = 1 / sqrt((real)C);
    size_t hw2 = (size_t)HW * HW, mark = arena_mark(scratch);
    int threads = omp_get_max_threads();
    real *buf = dq || dk ? arena_alloc(scratch, 2 * hw2 * threads * sizeof(real)) : NULL;
    #pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C * HW;
        const real *pn = p + n * hw2;         // [HW, HW]
        real *dp = buf ? buf + 2 * hw2 * omp_get_thread_num() : NULL;  // [HW, HW] dL/dp
        real *ds = buf ? dp + hw2 : NULL;                              // [HW, HW] dL/ds
        // dv[c][j] += sum_i g[c][i] p[i][j]
        if (dv) gemm(0, 0, C, HW, HW, 1, dout + o, HW, pn, HW, 1, dv + o, HW);
        if (!dp) continue;
        // dp[i][j] = <g[:, i], v[:, j]>
        gemm(1, 0, HW, HW, C, 1, dout + o, HW, v + o, HW, 0, dp, HW);
        // ds = softmax backward of dp (the kernel accumulates: start from 0)
        memset(ds, 0, hw2 * sizeof(real));
        softmax_backward(ds, dp, pn, HW, HW);
        // dq[c][i] += sum_j k[c][j] ds[i][j] / sqrt(C)
        if (dq) gemm(0, 1, C, HW, HW, scale, k + o, HW, ds, HW, 1, dq + o, HW);
        // dk[c][j] += sum_i q[c][i] ds[i][j] / sqrt(C)
        if (dk) gemm(0, 0, C, HW, HW, scale, q + o, HW, ds, HW, 1, dk + o, HW);
    }
    arena_release(scratch, mark);
}

static void attention_node(Tape *tp, Node *nd)
{
    Tensor *q = nd->in[0], *k = nd->in[1], *v = nd->in[2];
    int N, C;
    size_t HW;
    tensor_nchw(q, &N, &C, &HW);
    attention_backward(tape_grad_if(tp, q), tape_grad_if(tp, k), tape_grad_if(tp, v), nd->out->grad,
                       q->data, k->data, v->data, nd->saved, N, C, (int)HW, tp->arena);
}

// Saves p [N, HW, HW], the only value of the forward the backward cannot
// cheaply recompute; q, k, v are the node's inputs and stay alive anyway.
Tensor *ag_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v)
{
    char sq[64], sk[64], sv[64];
    DDPM_CHECK(q->ndim >= 3 && tensor_same_shape(q, k) && tensor_same_shape(q, v),
               "attention: q %s, k %s, v %s must all be [N, C, H, W]",
               tensor_shape_str(q, sq, sizeof sq), tensor_shape_str(k, sk, sizeof sk),
               tensor_shape_str(v, sv, sizeof sv));
    int N, C;
    size_t HW;
    tensor_nchw(q, &N, &C, &HW);
    Tensor *out = tensor_like(tp->arena, q);
    real *p = arena_alloc(tp->arena, (size_t)N * HW * HW * sizeof(real));
    attention_forward(out->data, p, q->data, k->data, v->data, N, C, (int)HW);
    Node *nd = tape_record(tp, "attention", attention_node, out, 3, (Tensor *[]){q, k, v});
    if (nd) nd->saved = p;
    return out;
}

/* ---- the block ------------------------------------------------------------- */

static Tensor *add_param(ParamSet *ps, const char *prefix, const char *what,
                         int ndim, const int *shape)
{
    char name[256];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, what);
    DDPM_CHECK(len > 0 && len < (int)sizeof name, "name '%s.%s' is too long", prefix, what);
    return params_add(ps, name, ndim, shape);
}

// Registration order is the PyTorch state_dict's: norm, q, k, v, proj_out,
// weight before bias. Initial values belong to the model (chapter 04).
void attn_block_init(AttnBlock *blk, ParamSet *ps, const char *prefix, int C)
{
    const int vec[1] = {C}, mat[4] = {C, C, 1, 1};
    blk->C = C;
    blk->groups = 32;
    blk->eps = (real)1e-6;   // NOTE: the official code's; PyTorch defaults to 1e-5
    blk->norm_weight = add_param(ps, prefix, "norm.weight", 1, vec);
    blk->norm_bias = add_param(ps, prefix, "norm.bias", 1, vec);
    blk->q_weight = add_param(ps, prefix, "q.weight", 4, mat);
    blk->q_bias = add_param(ps, prefix, "q.bias", 1, vec);
    blk->k_weight = add_param(ps, prefix, "k.weight", 4, mat);
    blk->k_bias = add_param(ps, prefix, "k.bias", 1, vec);
    blk->v_weight = add_param(ps, prefix, "v.weight", 4, mat);
    blk->v_bias = add_param(ps, prefix, "v.bias", 1, vec);
    blk->proj_out_weight = add_param(ps, prefix, "proj_out.weight", 4, mat);
    blk->proj_out_bias = add_param(ps, prefix, "proj_out.bias", 1, vec);
}

// The paper's attn_block, op by op on the tape; the tape composes the
// backward from the ops' own. Shapes: x, h, q, k, v, out all [N, C, H, W].
Tensor *attn_block_forward(Tape *tp, const AttnBlock *blk, Tensor *x)
{
    char sx[64];
    DDPM_CHECK(x->ndim == 4 && x->shape[1] == blk->C, "attn_block: input %s, expected "
               "[N, %d, H, W]", tensor_shape_str(x, sx, sizeof sx), blk->C);
    DDPM_CHECK(blk->C % blk->groups == 0, "attn_block: %d channels do not split into "
               "%d groups (set blk->groups)", blk->C, blk->groups);
    Tensor *h = ag_group_norm(tp, x, blk->norm_weight, blk->norm_bias,
                              blk->groups, blk->eps);
    Tensor *q = ag_conv1x1(tp, h, blk->q_weight, blk->q_bias);
    Tensor *k = ag_conv1x1(tp, h, blk->k_weight, blk->k_bias);
    Tensor *v = ag_conv1x1(tp, h, blk->v_weight, blk->v_bias);
    h = ag_attention(tp, q, k, v);
    h = ag_conv1x1(tp, h, blk->proj_out_weight, blk->proj_out_bias);
    return ag_add(tp, x, h);
}
