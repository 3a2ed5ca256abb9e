/* 02_winograd.h — the 3x3 stride-1 convolution with fewer multiplications.
 *
 * Chapter 02 of the book (book/02_conv.md, "Fewer flops: Winograd"). Most of
 * the U-Net's arithmetic is 3x3 convolutions with stride 1 and pad 1; the
 * Winograd (Lavin & Gray 2016) minimal filtering algorithm F(2x2, 3x3)
 * computes each 2x2 block of their output from a 4x4 block of the input with
 * 16 multiplications per channel pair instead of 36. conv2d_forward and
 * conv2d_backward (02_conv.h) call these for that shape; the im2col route
 * stays as the simple version and the tests' second opinion.
 *
 * Shapes: x [N, Cin, H, W], w [Cout, Cin, 3, 3], out [N, Cout, H, W].
 */
#ifndef DDPM_WINOGRAD_H
#define DDPM_WINOGRAD_H

#include "02_conv.h"

// Whether F(2x2, 3x3) serves a convolution: 3x3, stride 1, pad 1, Cin >= 16,
// images of at least 6 x 6.
int winograd_applies(const ConvShape *s);

// out [N,Cout,H,W] = conv3x3(x, w) + b (b may be NULL). Same contract as conv2d_forward.
void winograd_forward(real *out, const real *x, const real *w, const real *b,
                      const ConvShape *s, Arena *scratch);
// Accumulates dx [N,Cin,H,W] and dw [Cout,Cin,3,3] (either may be NULL); the
// bias gradient is conv2d_backward's.
void winograd_backward(real *dx, real *dw, const real *dout, const real *x, const real *w,
                       const ConvShape *s, Arena *scratch);

#endif
