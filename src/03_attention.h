/* 03_attention.h — self-attention over the positions of a feature map.
 *
 * Chapter 03 of the book (book/03_attention.md). The paper's AttnBlock
 * (official code: models/unet.py, attn_block), in three layers:
 *   softmax      over the last dimension, its own kernel pair and tape op
 *   attention    the core: q, k, v -> h, saving the softmax weights
 *   AttnBlock    GroupNorm, q/k/v 1x1 convs, attention, proj_out, residual
 *
 * Shapes: x, q, k, v, h [N, C, H, W]; one sample is read as a [C, HW]
 * matrix, one column per position (HW = H*W). Softmax weights p
 * [N, HW, HW]: row i is query position i, column j is key position j.
 */
#ifndef DDPM_ATTENTION_H
#define DDPM_ATTENTION_H

#include "02_conv.h"

/* ---- kernels ------------------------------------------------------------ */

// out[r, :] = softmax(x[r, :]) for `rows` rows of `cols` values (out may be x).
void softmax_forward(real *out, const real *x, int rows, int cols);
// dx[r, :] += p[r, :] * (dout[r, :] - <dout[r, :], p[r, :]>), p = the output.
void softmax_backward(real *dx, const real *dout, const real *p, int rows, int cols);

// out [N,C,HW] = v p^T with p [N,HW,HW] = softmax over keys of q^T k / sqrt(C).
void attention_forward(real *out, real *p, const real *q, const real *k,
                       const real *v, int N, int C, int HW);
// Accumulates into dq, dk, dv (any may be NULL); takes 2 HW*HW reals from scratch.
void attention_backward(real *dq, real *dk, real *dv, const real *dout,
                        const real *q, const real *k, const real *v, const real *p,
                        int N, int C, int HW, Arena *scratch);

/* ---- ops on the tape ---------------------------------------------------- */

Tensor *ag_softmax(Tape *tp, Tensor *x);                         // last dim
Tensor *ag_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v); // [N,C,H,W] each

/* ---- the block ---------------------------------------------------------- */

// The parameters of one AttnBlock, named as in the PyTorch state_dict
// (PREFIX.norm.weight, PREFIX.q.weight, ...).
typedef struct AttnBlock {
    int C;                                   // channels in = channels out
    int groups;                              // GroupNorm groups: 32 unless set
    real eps;                                // GroupNorm eps: 1e-6
    Tensor *norm_weight, *norm_bias;         // [C], [C]
    Tensor *q_weight, *q_bias;               // [C, C, 1, 1], [C]
    Tensor *k_weight, *k_bias;               // [C, C, 1, 1], [C]
    Tensor *v_weight, *v_bias;               // [C, C, 1, 1], [C]
    Tensor *proj_out_weight, *proj_out_bias; // [C, C, 1, 1], [C]
} AttnBlock;

// Registers the ten parameters in ps (values come after params_alloc).
void attn_block_init(AttnBlock *blk, ParamSet *ps, const char *prefix, int C);
// out [N,C,H,W] = x + proj_out(attention(q(GN(x)), k(GN(x)), v(GN(x)))).
Tensor *attn_block_forward(Tape *tp, const AttnBlock *blk, Tensor *x);

#endif
