/* 02_conv.h — convolutions and the layers around them.
 *
 * Chapter 02 of the book (book/02_conv.md). Every layer of the paper's U-Net
 * except attention: conv2d in its three shapes (3x3 pad 1, 1x1, 3x3 stride 2
 * with the asymmetric pad), GroupNorm, nearest x2 upsampling, linear,
 * dropout and channel concatenation. SiLU and the per-channel broadcast add
 * (the timestep projection inside a ResBlock) are in 01_autograd.h.
 *
 * Shapes: x [N, C, H, W]; conv weights [Cout, Cin, kh, kw] as in PyTorch;
 * linear weights [out, in]; per-channel parameters [C].
 */
#ifndef DDPM_CONV_H
#define DDPM_CONV_H

#include "01_autograd.h"

/* Geometry of one convolution (square kernel k, one stride for both axes,
 * zero padding top/left/bottom/right). */
typedef struct ConvShape {
    int N, Cin, H, W;      // input
    int Cout, k, stride;
    int pad_t, pad_l, pad_b, pad_r;
    int Ho, Wo;            // output: (H + pad_t + pad_b - k) / stride + 1, ...
} ConvShape;

ConvShape conv_shape(int N, int Cin, int H, int W, int Cout, int k, int stride,
                     int pad_t, int pad_l, int pad_b, int pad_r);
double conv2d_flops(const ConvShape *s);   // of the forward: 2 N Cout Ho Wo Cin k k

/* ---- kernels ---------------------------------------------------------- */

// out [N,Cout,Ho,Wo] = conv(x [N,Cin,H,W], w [Cout,Cin,k,k]) + b [Cout] (b may be NULL).
// `scratch` is an arena for im2col buffers (they stay allocated until its reset).
// Uses both cores itself (OpenMP, one-thread GEMMs): call it from one thread.
void conv2d_forward(real *out, const real *x, const real *w, const real *b,
                    const ConvShape *s, Arena *scratch);
// dout [N,Cout,Ho,Wo]; accumulates into dx, dw, db (any may be NULL).
void conv2d_backward(real *dx, real *dw, real *db, const real *dout,
                     const real *x, const real *w, const ConvShape *s, Arena *scratch);
// The two routes they choose between: im2col + one GEMM (any shape; below)
// and Winograd F(2x2, 3x3) for 3x3 stride 1 pad 1 (02_winograd.h).
void conv2d_forward_im2col(real *out, const real *x, const real *w, const real *b,
                           const ConvShape *s, Arena *scratch);
void conv2d_backward_im2col(real *dx, real *dw, const real *dout, const real *x,
                            const real *w, const ConvShape *s, Arena *scratch);
// While the cores share out a conv's chunks each GEMM runs on one thread:
// switch the BLAS to one thread (returns what to restore), and back.
int  conv_blas_serial(int parallel);
void conv_blas_restore(int was);

// GroupNorm on x [N, C, HW]: per sample, per group of C/G channels, normalise
// to zero mean and unit variance (eps inside the sqrt), then
// out = xhat * gamma[c] + beta[c]. mean and rstd [N*G] are saved for the backward.
void group_norm_forward(real *out, real *mean, real *rstd, const real *x,
                        const real *gamma, const real *beta,
                        int N, int C, size_t HW, int G, real eps);
void group_norm_backward(real *dx, real *dgamma, real *dbeta, const real *dout,
                         const real *x, const real *mean, const real *rstd,
                         const real *gamma, int N, int C, size_t HW, int G);

void upsample2x_forward(real *out, const real *x, int N, int C, int H, int W);
void upsample2x_backward(real *dx, const real *dout, int N, int C, int H, int W);

// out [N, out] = x [N, in] w^T [in, out] + b [out]
void linear_forward(real *out, const real *x, const real *w, const real *b,
                    int N, int in, int out_f);
void linear_backward(real *dx, real *dw, real *db, const real *dout,
                     const real *x, const real *w, int N, int in, int out_f);

// mask[i] is 0 or 1/(1-p); out = x * mask.
void dropout_forward(real *out, real *mask, const real *x, size_t n, real p, Rng *rng);
void dropout_backward(real *dx, const real *dout, const real *mask, size_t n);

// out [N, Ca+Cb, H, W] = a [N, Ca, H, W] stacked on b [N, Cb, H, W].
void concat_forward(real *out, const real *a, const real *b, int N, int Ca, int Cb, size_t HW);
void concat_backward(real *da, real *db, const real *dout, int N, int Ca, int Cb, size_t HW);
// out [N, nc, HW] = channels c0 .. c0+nc-1 of x [N, C, HW].
void slice_channels_forward(real *out, const real *x, int N, int C, size_t HW, int c0, int nc);
void slice_channels_backward(real *dx, const real *dout, int N, int C, size_t HW, int c0, int nc);

/* ---- ops on the tape -------------------------------------------------- */

Tensor *ag_conv2d(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int stride,
                  int pad_t, int pad_l, int pad_b, int pad_r);
Tensor *ag_conv3x3(Tape *tp, Tensor *x, Tensor *w, Tensor *b);       // stride 1, pad 1
Tensor *ag_conv1x1(Tape *tp, Tensor *x, Tensor *w, Tensor *b);
Tensor *ag_conv3x3_down(Tape *tp, Tensor *x, Tensor *w, Tensor *b);  // stride 2, pad (0,0,1,1)
Tensor *ag_group_norm(Tape *tp, Tensor *x, Tensor *gamma, Tensor *beta, int groups, real eps);
Tensor *ag_upsample2x(Tape *tp, Tensor *x);
Tensor *ag_linear(Tape *tp, Tensor *x, Tensor *w, Tensor *b);
Tensor *ag_dropout(Tape *tp, Tensor *x, real p, Rng *rng, int train);  // identity if !train or p == 0
Tensor *ag_concat(Tape *tp, Tensor *a, Tensor *b);                     // along channels
Tensor *ag_slice_channels(Tape *tp, Tensor *x, int c0, int nc);        // concat's inverse

#endif
