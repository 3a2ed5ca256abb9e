/* 02_conv.c — convolutions and the layers around them.
 *
 * (About 740 lines, more than the other modules: seven layer kinds live
 * here, each a short kernel pair and its tape wrapper.)
 *
 * Chapter 02 (book/02_conv.md). Every layer of the paper's U-Net except
 * attention (chapter 03) is here:
 *
 *   conv2d       out[n,o,y,x] = b[o] + sum_{c,i,j} w[o,c,i,j] x[n,c,sy+i-pt,sx+j-pl]
 *                in three shapes: 3x3 stride 1 pad 1, 1x1, and 3x3 stride 2
 *                with the official code's asymmetric pad (0 top/left, 1
 *                bottom/right) for Downsample
 *   group_norm   GroupNorm (Wu & He 2018): normalise each group of C/G
 *                channels of one sample, then a per-channel affine map
 *   upsample2x   nearest-neighbour x2 (Upsample, before its 3x3 conv)
 *   linear       y = x w^T + b (the timestep-embedding MLP, temb_proj)
 *   dropout      inverted dropout, p = 0.1 in the paper's ResBlocks
 *   concat       channel concatenation (the U-Net's skip connections), and
 *                slice_channels, its inverse (a mean and a variance in one output)
 *
 * Convolution becomes one matrix product (im2col): copy every k x k patch of
 * the input into a column of a matrix `col` [Cin*k*k, Ho*Wo]; then
 * out = w [Cout, Cin*k*k] . col. The backward is two more products: the
 * weight gradient dw = dout . col^T, and dcol = w^T . dout, which col2im
 * adds back onto the input positions the columns were copied from. Small
 * images are processed several at a time, side by side in one `col`, so that
 * each GEMM is wide enough to run at full speed (see conv_plan).
 *
 * Shape legend: N batch, Cin/Cout channels in/out, H x W input, Ho x Wo
 * output, k kernel size, K = Cin*k*k the GEMM's inner size, G groups.
 * Kernels accumulate gradients (+=); scratch memory comes from an Arena.
 */
#include "02_conv.h"
#include "02_winograd.h"

#include <omp.h>
#include <string.h>
#include <tgmath.h>   // sqrt() picks the float or double version from the type

#define CONV_TARGET_COLS 256    // GEMM width (images x positions) to aim for

// While the cores share out a conv's chunks, each GEMM must run on one
// thread (two thread pools on two cores would fight over them). These switch
// the BLAS to one thread and back to whatever the caller had set.
int conv_blas_serial(int parallel)
{
    if (!parallel || gemm_threads() == 1) return 0;
    return gemm_set_threads(1);
}

void conv_blas_restore(int was)
{
    if (was) gemm_set_threads(was);
}

/* ---- geometry ------------------------------------------------------------ */

ConvShape conv_shape(int N, int Cin, int H, int W, int Cout, int k, int stride,
                     int pad_t, int pad_l, int pad_b, int pad_r)
{
    ConvShape s = {N, Cin, H, W, Cout, k, stride, pad_t, pad_l, pad_b, pad_r, 0, 0};
    DDPM_CHECK(k >= 1 && stride >= 1, "conv: kernel %d, stride %d", k, stride);
    DDPM_CHECK(H + pad_t + pad_b >= k && W + pad_l + pad_r >= k,
               "conv: a %dx%d kernel does not fit a padded %dx%d input", k, k, H, W);
    s.Ho = (H + pad_t + pad_b - k) / stride + 1;
    s.Wo = (W + pad_l + pad_r - k) / stride + 1;
    return s;
}

double conv2d_flops(const ConvShape *s)
{
    return 2.0 * s->N * s->Cout * s->Ho * s->Wo * s->Cin * s->k * s->k;
}

// How a conv is cut into work: chunks of `nb` images side by side in one
// GEMM, `threads` chunks at a time (one per core, each with its own scratch).
typedef struct ConvPlan {
    int nb, n_chunks, threads;
    int direct;           // 1x1, stride 1, no pad: x[n] [Cin, H*W] is its own col
    size_t col_size;      // reals of col [K, nb*Ho*Wo] per thread (0 if direct)
    size_t y_size;        // reals of y [Cout, nb*Ho*Wo] per thread (0 if nb == 1)
} ConvPlan;

// A 16x16 image gives a GEMM 256 columns wide, enough; a 4x4 image only 16,
// which costs a fifth of the speed, so 16 of them are stacked (but no more
// than leaves every core a chunk). A 1x1 conv skips im2col: one image at a
// time, x[n] is multiplied as it lies. The chunks are shared out over the
// cores, each core running a one-thread GEMM; with fewer chunks than cores
// they run in turn, each with a multi-threaded GEMM.
static ConvPlan conv_plan(const ConvShape *s)
{
    ConvPlan p;
    int hw = s->Ho * s->Wo, cores = omp_get_max_threads();
    int per_core = (s->N + cores - 1) / cores;
    p.direct = s->k == 1 && s->stride == 1 && (s->pad_t | s->pad_l | s->pad_b | s->pad_r) == 0;
    p.nb = p.direct ? 1 : (CONV_TARGET_COLS + hw - 1) / hw;
    if (p.nb > per_core) p.nb = per_core;
    p.n_chunks = (s->N + p.nb - 1) / p.nb;
    p.threads = p.n_chunks >= cores ? cores : 1;
    p.col_size = p.direct ? 0 : (size_t)s->Cin * s->k * s->k * p.nb * hw;
    p.y_size = p.nb > 1 ? (size_t)s->Cout * p.nb * hw : 0;
    return p;
}

/* ---- im2col and col2im ---------------------------------------------------- */

// The input row segment that kernel column kx reads: output columns ox in
// [*lo, *hi) land inside the image (ix = ox*stride + kx - pad_l in [0, W)),
// the others read the zero pad.
static void valid_range(int *lo, int *hi, int kx, const ConvShape *s)
{
    int off = kx - s->pad_l;
    *lo = off >= 0 ? 0 : (-off + s->stride - 1) / s->stride;
    *hi = s->W - 1 - off < 0 ? 0 : (s->W - 1 - off) / s->stride + 1;
    if (*hi > s->Wo) *hi = s->Wo;
    if (*lo > *hi) *lo = *hi;
}

// col [K, m*Ho*Wo]: row r = (c, ky, kx), column j*Ho*Wo + oy*Wo + ox holds
//   x[j, c, oy*stride + ky - pad_t, ox*stride + kx - pad_l]   (0 outside)
// for the m images x [m, Cin, H, W]: each row is one shifted copy of a channel.
static void im2col(real *col, const real *x, int m, const ConvShape *s)
{
    int k = s->k, K = s->Cin * k * k;
    size_t HWo = (size_t)s->Ho * s->Wo, ld = m * HWo, HW = (size_t)s->H * s->W;
    for (int r = 0; r < K; r++) {
        int c = r / (k * k), ky = r / k % k, kx = r % k, off = kx - s->pad_l, lo, hi;
        valid_range(&lo, &hi, kx, s);
        for (int j = 0; j < m; j++) {
            const real *xc = x + ((size_t)j * s->Cin + c) * HW;
            real *dst = col + r * ld + j * HWo;
            for (int oy = 0; oy < s->Ho; oy++, dst += s->Wo) {
                int iy = oy * s->stride + ky - s->pad_t;
                if (iy < 0 || iy >= s->H) { memset(dst, 0, s->Wo * sizeof(real)); continue; }
                const real *row = xc + (size_t)iy * s->W;
                for (int ox = 0; ox < lo; ox++) dst[ox] = 0;
                if (s->stride == 1)   // a shifted copy of the input row
                    memcpy(dst + lo, row + lo + off, (hi - lo) * sizeof(real));
                else
                    for (int ox = lo; ox < hi; ox++) dst[ox] = row[ox * s->stride + off];
                for (int ox = hi; ox < s->Wo; ox++) dst[ox] = 0;
            }
        }
    }
}

// The adjoint of im2col: dx[j, c, iy, ix] += every col entry copied from
// there (a 3x3 stride-1 conv reads each pixel 9 times, so 9 terms meet).
static void col2im(real *dx, const real *col, int m, const ConvShape *s)
{
    int k = s->k, K = s->Cin * k * k;
    size_t HWo = (size_t)s->Ho * s->Wo, ld = m * HWo, HW = (size_t)s->H * s->W;
    for (int r = 0; r < K; r++) {
        int c = r / (k * k), ky = r / k % k, kx = r % k, off = kx - s->pad_l, lo, hi;
        valid_range(&lo, &hi, kx, s);
        for (int j = 0; j < m; j++) {
            real *dxc = dx + ((size_t)j * s->Cin + c) * HW;
            const real *src = col + r * ld + j * HWo;
            for (int oy = 0; oy < s->Ho; oy++, src += s->Wo) {
                int iy = oy * s->stride + ky - s->pad_t;
                if (iy < 0 || iy >= s->H) continue;
                real *row = dxc + (size_t)iy * s->W + off;
                if (s->stride == 1) {
                    #pragma omp simd
                    for (int ox = lo; ox < hi; ox++) row[ox] += src[ox];
                } else {
                    for (int ox = lo; ox < hi; ox++) row[ox * s->stride] += src[ox];
                }
            }
        }
    }
}

// A chunk of m images' outputs comes out of the GEMM as y [Cout, m, HWo];
// NCHW wants out [m, Cout, HWo]. Move it there, adding the bias on the way
// (y == out when m == 1: then only the bias is added).
static void chunk_to_nchw(real *out, const real *y, const real *b, int m, int C, size_t HWo)
{
    for (int j = 0; j < m; j++)
        for (int c = 0; c < C; c++) {
            real *o = out + ((size_t)j * C + c) * HWo;
            const real *src = y + ((size_t)c * m + j) * HWo;
            real bc = b ? b[c] : 0;
            for (size_t p = 0; p < HWo; p++) o[p] = src[p] + bc;
        }
}

// The reverse move for the backward: dy [Cout, m, HWo] from dout [m, Cout, HWo].
static void nchw_to_chunk(real *y, const real *dout, int m, int C, size_t HWo)
{
    for (int j = 0; j < m; j++)
        for (int c = 0; c < C; c++)
            memcpy(y + ((size_t)c * m + j) * HWo, dout + ((size_t)j * C + c) * HWo,
                   HWo * sizeof(real));
}

/* ---- conv2d ----------------------------------------------------------------- */

// One chunk of m images: out [m, Cout, Ho*Wo] = w [Cout, K] . col + b, with
// col = im2col(x) [K, m*Ho*Wo] (or x itself when direct) and the product
// written to y [Cout, m*Ho*Wo] (or straight into out when m == 1).
static void conv_chunk_forward(real *out, const real *x, const real *w, const real *b,
                               const ConvShape *s, int m, int direct, real *col, real *y)
{
    int K = s->Cin * s->k * s->k;
    size_t HWo = (size_t)s->Ho * s->Wo;
    int ld = (int)(m * HWo);
    if (!direct) im2col(col, x, m, s);
    if (m == 1) y = out;
    gemm(0, 0, s->Cout, ld, K, 1, w, K, direct ? x : col, ld, 0, y, ld);
    if (m > 1 || b) chunk_to_nchw(out, y, b, m, s->Cout, HWo);
}

// out [N, Cout, Ho, Wo] = conv(x [N, Cin, H, W], w [Cout, Cin, k, k]) + b,
// chunk by chunk (see conv_plan), each core with its own col and y from
// `scratch` and one-thread GEMMs.
void conv2d_forward_im2col(real *out, const real *x, const real *w, const real *b,
                           const ConvShape *s, Arena *scratch)
{
    ConvPlan p = conv_plan(s);
    size_t HWo = (size_t)s->Ho * s->Wo, xs = (size_t)s->Cin * s->H * s->W;
    size_t per = p.col_size + p.y_size, mark = arena_mark(scratch);
    real *scr = arena_alloc(scratch, per * p.threads * sizeof(real));
    int blas = conv_blas_serial(p.threads > 1);
    #pragma omp parallel for schedule(static) num_threads(p.threads)
    for (int c = 0; c < p.n_chunks; c++) {
        int n0 = c * p.nb, m = s->N - n0 < p.nb ? s->N - n0 : p.nb;
        real *col = scr + omp_get_thread_num() * per;
        conv_chunk_forward(out + (size_t)n0 * s->Cout * HWo, x + n0 * xs, w, b, s, m, p.direct,
                           col, col + p.col_size);
    }
    conv_blas_restore(blas);
    arena_release(scratch, mark);
}

// db[o] += sum over images and positions of dout[n, o, :, :], in double.
// (One plain loop: calling vec_sum per plane would enter an OpenMP region
// N*Cout times, which costs more than the sums.)
static void conv_bias_backward(real *db, const real *dout, int N, int C, size_t HW)
{
    #pragma omp parallel for if ((size_t)N * C * HW > PAR_MIN)
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) {
            const real *d = dout + ((size_t)n * C + c) * HW;
            #pragma omp simd reduction(+ : acc)
            for (size_t i = 0; i < HW; i++) acc += d[i];
        }
        db[c] += (real)acc;
    }
}

// One chunk of m images. With dy = dout as [Cout, m*Ho*Wo] and col = im2col(x):
//   dw [Cout, K]       += dy . col^T
//   dcol [K, m*Ho*Wo]   = w^T . dy,    dx += col2im(dcol)
// col is recomputed from x (cheaper than keeping 9x the input alive from the
// forward), then reused to hold dcol.
static void conv_chunk_backward(real *dx, real *dw, const real *dout, const real *x,
                                const real *w, const ConvShape *s, int m, int direct,
                                real *col, real *y)
{
    int K = s->Cin * s->k * s->k;
    size_t HWo = (size_t)s->Ho * s->Wo;
    int ld = (int)(m * HWo);
    const real *dy = dout;
    if (m > 1) {
        nchw_to_chunk(y, dout, m, s->Cout, HWo);
        dy = y;
    }
    if (dw) {
        if (!direct) im2col(col, x, m, s);
        gemm(0, 1, s->Cout, K, ld, 1, dy, ld, direct ? x : col, ld, 1, dw, K);
    }
    if (dx && direct) {
        gemm(1, 0, K, ld, s->Cout, 1, w, K, dy, ld, 1, dx, ld);
    } else if (dx) {
        gemm(1, 0, K, ld, s->Cout, 1, w, K, dy, ld, 0, col, ld);
        col2im(dx, col, m, s);
    }
}

// Accumulates into dx, dw, db (any may be NULL). Chunks are shared out as
// in the forward; each core sums its chunks' dw into its own zeroed copy
// (core 0 straight into dw), and the copies are added at the end, in a
// fixed order, so the result does not depend on timing.
void conv2d_backward_im2col(real *dx, real *dw, const real *dout, const real *x,
                            const real *w, const ConvShape *s, Arena *scratch)
{
    ConvPlan p = conv_plan(s);
    size_t HWo = (size_t)s->Ho * s->Wo, xs = (size_t)s->Cin * s->H * s->W;
    size_t nw = (size_t)s->Cout * s->Cin * s->k * s->k, per = p.col_size + p.y_size;
    if (!dx && !dw) return;
    size_t mark = arena_mark(scratch);
    real *scr = arena_alloc(scratch, per * p.threads * sizeof(real));
    real *dw_copies = dw && p.threads > 1
        ? arena_calloc(scratch, (p.threads - 1) * nw * sizeof(real)) : NULL;
    int blas = conv_blas_serial(p.threads > 1);
    #pragma omp parallel for schedule(static) num_threads(p.threads)
    for (int c = 0; c < p.n_chunks; c++) {
        int t = omp_get_thread_num(), n0 = c * p.nb, m = s->N - n0 < p.nb ? s->N - n0 : p.nb;
        real *col = scr + t * per, *dwt = dw && t ? dw_copies + (t - 1) * nw : dw;
        conv_chunk_backward(dx ? dx + n0 * xs : NULL, dwt, dout + (size_t)n0 * s->Cout * HWo,
                            x + n0 * xs, w, s, m, p.direct, col, col + p.col_size);
    }
    for (int t = 1; t < p.threads && dw; t++) vec_axpy(dw, 1, dw_copies + (t - 1) * nw, nw);
    conv_blas_restore(blas);
    arena_release(scratch, mark);
}

// The two routes: Winograd F(2x2, 3x3) for the 3x3 stride-1 convs (most of
// the U-Net's flops, 02_winograd.c), im2col for the rest.
void conv2d_forward(real *out, const real *x, const real *w, const real *b,
                    const ConvShape *s, Arena *scratch)
{
    if (winograd_applies(s)) winograd_forward(out, x, w, b, s, scratch);
    else conv2d_forward_im2col(out, x, w, b, s, scratch);
}

void conv2d_backward(real *dx, real *dw, real *db, const real *dout,
                     const real *x, const real *w, const ConvShape *s, Arena *scratch)
{
    if (db) conv_bias_backward(db, dout, s->N, s->Cout, (size_t)s->Ho * s->Wo);
    if (winograd_applies(s)) winograd_backward(dx, dw, dout, x, w, s, scratch);
    else conv2d_backward_im2col(dx, dw, dout, x, w, s, scratch);
}

static void conv2d_node(Tape *tp, Node *nd)
{
    const ConvShape *s = nd->saved;
    Tensor *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    conv2d_backward(tape_grad_if(tp, x), tape_grad_if(tp, w), b ? tape_grad_if(tp, b) : NULL,
                    nd->out->grad, x->data, w->data, s, tp->arena);
}

// x [N, Cin, H, W], w [Cout, Cin, k, k], b [Cout] or NULL.
Tensor *ag_conv2d(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int stride,
                  int pad_t, int pad_l, int pad_b, int pad_r)
{
    char sx[64], sw[64];
    DDPM_CHECK(x->ndim == 4 && w->ndim == 4 && w->shape[1] == x->shape[1] &&
               w->shape[2] == w->shape[3], "conv2d: input %s, weight %s",
               tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
    DDPM_CHECK(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]),
               "conv2d: bias of %d values for %d output channels",
               b ? b->shape[0] : 0, w->shape[0]);
    ConvShape s = conv_shape(x->shape[0], x->shape[1], x->shape[2], x->shape[3],
                             w->shape[0], w->shape[2], stride, pad_t, pad_l, pad_b, pad_r);
    Tensor *out = tensor_4d(tp->arena, s.N, s.Cout, s.Ho, s.Wo);
    conv2d_forward(out->data, x->data, w->data, b ? b->data : NULL, &s, tp->arena);
    Node *nd = tape_record(tp, "conv2d", conv2d_node, out, b ? 3 : 2, (Tensor *[]){x, w, b});
    if (nd) {
        nd->saved = arena_alloc(tp->arena, sizeof s);
        memcpy(nd->saved, &s, sizeof s);
    }
    return out;
}

Tensor *ag_conv3x3(Tape *tp, Tensor *x, Tensor *w, Tensor *b)
{
    return ag_conv2d(tp, x, w, b, 1, 1, 1, 1, 1);
}

Tensor *ag_conv1x1(Tape *tp, Tensor *x, Tensor *w, Tensor *b)
{
    return ag_conv2d(tp, x, w, b, 1, 0, 0, 0, 0);
}

// NOTE: the official code's Downsample is a 3x3 stride-2 conv with TF "SAME"
// padding, which for an even input pads 0 rows/columns at the top/left and 1
// at the bottom/right (the PyTorch port: F.pad(x, (0, 1, 0, 1))). H -> H/2.
Tensor *ag_conv3x3_down(Tape *tp, Tensor *x, Tensor *w, Tensor *b)
{
    return ag_conv2d(tp, x, w, b, 2, 0, 0, 1, 1);
}

/* ---- GroupNorm -------------------------------------------------------------- */
/* For sample n and group g, the m = (C/G)*HW values x_i (contiguous in NCHW)
 * have mean mu and variance var; with r = 1/sqrt(var + eps),
 *   xhat_i = (x_i - mu) r,      y_i = gamma_c xhat_i + beta_c.               */

// Statistics in double, two passes (mean, then squared deviations): the
// one-pass E[x^2] - E[x]^2 cancels catastrophically when |mu| >> sigma.
void group_norm_forward(real *out, real *mean, real *rstd, const real *x,
                        const real *gamma, const real *beta,
                        int N, int C, size_t HW, int G, real eps)
{
    int Cg = C / G;
    size_t m = (size_t)Cg * HW;
    #pragma omp parallel for collapse(2) if ((size_t)N * C * HW > PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            size_t o = ((size_t)n * C + (size_t)g * Cg) * HW;
            double mu = 0, var = 0;
            #pragma omp simd reduction(+ : mu)
            for (size_t i = 0; i < m; i++) mu += x[o + i];
            mu /= (double)m;
            #pragma omp simd reduction(+ : var)
            for (size_t i = 0; i < m; i++) var += (x[o + i] - mu) * (x[o + i] - mu);
            double r = 1 / sqrt(var / (double)m + eps);
            mean[n * G + g] = (real)mu;
            rstd[n * G + g] = (real)r;
            for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                real a = (real)r * gamma[c], sh = beta[c] - (real)(mu * r) * gamma[c];
                real *oc = out + ((size_t)n * C + c) * HW;
                const real *xc = x + ((size_t)n * C + c) * HW;
                #pragma omp simd
                for (size_t i = 0; i < HW; i++) oc[i] = a * xc[i] + sh;
            }
        }
}

// sum_i dy_i and sum_i dy_i xhat_i over one channel plane of HW values.
static void plane_sums(double *sdy, double *sdyx, const real *dy, const real *x,
                       size_t HW, real mu, real r)
{
    double a = 0, b = 0;
    #pragma omp simd reduction(+ : a, b)
    for (size_t i = 0; i < HW; i++) {
        a += dy[i];
        b += dy[i] * (x[i] - mu);
    }
    *sdy = a;
    *sdyx = b * r;
}

// The input part of the backward, one (sample, group) at a time. With
// gx_i = dL/dxhat_i = gamma_c dy_i and means over the group's m values,
//   dx_i += r (gx_i - mean(gx) - xhat_i mean(gx xhat))
// which, per channel, is dx_i += (r gamma_c) dy_i + b x_i + c0.
static void group_norm_backward_x(real *dx, const real *dout, const real *x,
                                  const real *mean, const real *rstd,
                                  const real *gamma, int N, int C, size_t HW, int G)
{
    int Cg = C / G;
    double m = (double)Cg * HW;
    #pragma omp parallel for collapse(2) if ((size_t)N * C * HW > PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            real mu = mean[n * G + g], r = rstd[n * G + g];
            double sg = 0, sgx = 0, sdy, sdyx;          // sums of gx and gx * xhat
            for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                size_t o = ((size_t)n * C + c) * HW;
                plane_sums(&sdy, &sdyx, dout + o, x + o, HW, mu, r);
                sg += gamma[c] * sdy;
                sgx += gamma[c] * sdyx;
            }
            real b = (real)(-r * r * sgx / m), c0 = (real)(-r * sg / m) - b * mu;
            for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                size_t o = ((size_t)n * C + c) * HW;
                real a = r * gamma[c];
                #pragma omp simd
                for (size_t i = 0; i < HW; i++) dx[o + i] += a * dout[o + i] + b * x[o + i] + c0;
            }
        }
}

// GroupNorm backward: dx as above, and for the affine parameters, summed over
// every sample and position of channel c,
//   dgamma_c += sum dy_i xhat_i,      dbeta_c += sum dy_i
void group_norm_backward(real *dx, real *dgamma, real *dbeta, const real *dout,
                         const real *x, const real *mean, const real *rstd,
                         const real *gamma, int N, int C, size_t HW, int G)
{
    int Cg = C / G;
    if (dx) group_norm_backward_x(dx, dout, x, mean, rstd, gamma, N, C, HW, G);
    if (!dgamma && !dbeta) return;
    #pragma omp parallel for if ((size_t)N * C * HW > PAR_MIN)
    for (int c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0, a, b;
        for (int n = 0; n < N; n++) {
            size_t o = ((size_t)n * C + c) * HW;
            plane_sums(&a, &b, dout + o, x + o, HW, mean[n * G + c / Cg], rstd[n * G + c / Cg]);
            sdy += a;
            sdyx += b;
        }
        if (dbeta) dbeta[c] += (real)sdy;
        if (dgamma) dgamma[c] += (real)sdyx;
    }
}

// nd->saved holds mean [N*G] followed by rstd [N*G]; nd->arg[0] = G.
static void group_norm_node(Tape *tp, Node *nd)
{
    Tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int N, C, G = nd->arg[0];
    size_t HW;
    tensor_nchw(x, &N, &C, &HW);
    const real *mean = nd->saved, *rstd = mean + (size_t)N * G;
    group_norm_backward(tape_grad_if(tp, x), tape_grad_if(tp, gamma), tape_grad_if(tp, beta),
                        nd->out->grad, x->data, mean, rstd, gamma->data, N, C, HW, G);
}

// x [N, C, ...], gamma and beta [C]. The paper: groups = 32, eps = 1e-6.
Tensor *ag_group_norm(Tape *tp, Tensor *x, Tensor *gamma, Tensor *beta, int groups, real eps)
{
    int N, C;
    size_t HW;
    DDPM_CHECK(x->ndim >= 2, "group_norm: input needs a channel dimension");
    tensor_nchw(x, &N, &C, &HW);
    DDPM_CHECK(groups >= 1 && C % groups == 0, "group_norm: %d channels in %d groups",
               C, groups);
    DDPM_CHECK(gamma->size == (size_t)C && beta->size == (size_t)C,
               "group_norm: gamma %zu and beta %zu values for %d channels",
               gamma->size, beta->size, C);
    Tensor *out = tensor_like(tp->arena, x);
    real *stats = arena_alloc(tp->arena, 2 * (size_t)N * groups * sizeof(real));
    group_norm_forward(out->data, stats, stats + (size_t)N * groups, x->data,
                       gamma->data, beta->data, N, C, HW, groups, eps);
    Node *nd = tape_record(tp, "group_norm", group_norm_node, out, 3,
                           (Tensor *[]){x, gamma, beta});
    if (nd) {
        nd->saved = stats;
        nd->arg[0] = groups;
    }
    return out;
}

/* ---- nearest-neighbour upsampling x2 ------------------------------------------ */
/* out[n, c, y, x] = in[n, c, y/2, x/2]; each input pixel feeds a 2x2 block,
 * so its gradient is the sum of that block's four gradients.                 */

void upsample2x_forward(real *out, const real *x, int N, int C, int H, int W)
{
    int Wo = 2 * W;
    #pragma omp parallel for if ((size_t)N * C * H * W > PAR_MIN / 4)
    for (size_t p = 0; p < (size_t)N * C; p++)
        for (int y = 0; y < H; y++) {
            const real *src = x + (p * H + y) * W;
            real *r0 = out + (p * 2 * H + 2 * y) * Wo, *r1 = r0 + Wo;
            for (int i = 0; i < W; i++) r0[2 * i] = r0[2 * i + 1] = src[i];
            memcpy(r1, r0, Wo * sizeof(real));
        }
}

void upsample2x_backward(real *dx, const real *dout, int N, int C, int H, int W)
{
    int Wo = 2 * W;
    #pragma omp parallel for if ((size_t)N * C * H * W > PAR_MIN / 4)
    for (size_t p = 0; p < (size_t)N * C; p++)
        for (int y = 0; y < H; y++) {
            real *dst = dx + (p * H + y) * W;
            const real *r0 = dout + (p * 2 * H + 2 * y) * Wo, *r1 = r0 + Wo;
            for (int i = 0; i < W; i++)
                dst[i] += r0[2 * i] + r0[2 * i + 1] + r1[2 * i] + r1[2 * i + 1];
        }
}

static void upsample2x_node(Tape *tp, Node *nd)
{
    const int *sh = nd->in[0]->shape;
    upsample2x_backward(tape_grad(tp, nd->in[0]), nd->out->grad, sh[0], sh[1], sh[2], sh[3]);
}

Tensor *ag_upsample2x(Tape *tp, Tensor *x)
{
    const int *sh = x->shape;
    DDPM_CHECK(x->ndim == 4, "upsample2x: input has %d dims, not 4", x->ndim);
    Tensor *out = tensor_4d(tp->arena, sh[0], sh[1], 2 * sh[2], 2 * sh[3]);
    upsample2x_forward(out->data, x->data, sh[0], sh[1], sh[2], sh[3]);
    tape_record(tp, "upsample2x", upsample2x_node, out, 1, &x);
    return out;
}

/* ---- linear: out = x w^T + b ---------------------------------------------------- */
/* The matmul rule of chapter 01 with B = w^T: dx = dout w, dw = dout^T x,
 * and the bias, broadcast over the batch, sums dout over it.                */

void linear_forward(real *out, const real *x, const real *w, const real *b,
                    int N, int in, int out_f)
{
    gemm(0, 1, N, out_f, in, 1, x, in, w, in, 0, out, out_f);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out_f; o++) out[(size_t)n * out_f + o] += b[o];
}

void linear_backward(real *dx, real *dw, real *db, const real *dout,
                     const real *x, const real *w, int N, int in, int out_f)
{
    if (dx) gemm(0, 0, N, in, out_f, 1, dout, out_f, w, in, 1, dx, in);
    if (dw) gemm(1, 0, out_f, in, N, 1, dout, out_f, x, in, 1, dw, in);
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out_f; o++) db[o] += dout[(size_t)n * out_f + o];
}

static void linear_node(Tape *tp, Node *nd)
{
    Tensor *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    linear_backward(tape_grad_if(tp, x), tape_grad_if(tp, w), b ? tape_grad_if(tp, b) : NULL,
                    nd->out->grad, x->data, w->data, x->shape[0], x->shape[1], w->shape[0]);
}

// x [N, in], w [out, in], b [out] or NULL -> [N, out].
Tensor *ag_linear(Tape *tp, Tensor *x, Tensor *w, Tensor *b)
{
    char sx[64], sw[64];
    DDPM_CHECK(x->ndim == 2 && w->ndim == 2 && x->shape[1] == w->shape[1],
               "linear: input %s, weight %s", tensor_shape_str(x, sx, sizeof sx),
               tensor_shape_str(w, sw, sizeof sw));
    DDPM_CHECK(!b || b->size == (size_t)w->shape[0], "linear: bias of %zu for %d outputs",
               b ? b->size : 0, w->shape[0]);
    Tensor *out = tensor_2d(tp->arena, x->shape[0], w->shape[0]);
    linear_forward(out->data, x->data, w->data, b ? b->data : NULL,
                   x->shape[0], x->shape[1], w->shape[0]);
    tape_record(tp, "linear", linear_node, out, b ? 3 : 2, (Tensor *[]){x, w, b});
    return out;
}

/* ---- dropout ----------------------------------------------------------------------- */
/* Inverted dropout: keep each value with probability 1 - p and scale the kept
 * ones by 1/(1-p), so E[out] = x and evaluation needs no rescaling. The mask
 * is the op's derivative: dx = dout * mask.                                  */

// One 32-bit draw per element: dropped when it falls below p * 2^32.
void dropout_forward(real *out, real *mask, const real *x, size_t n, real p, Rng *rng)
{
    uint32_t thresh = (uint32_t)((double)p * 4294967296.0);
    real keep = 1 / (1 - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = rng_u32(rng) < thresh ? 0 : keep;
        out[i] = x[i] * mask[i];
    }
}

void dropout_backward(real *dx, const real *dout, const real *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * mask[i];
}

static void dropout_node(Tape *tp, Node *nd)
{
    dropout_backward(tape_grad(tp, nd->in[0]), nd->out->grad, nd->saved, nd->out->size);
}

// In evaluation (train = 0) or with p = 0 dropout is the identity: x itself
// is returned, nothing is drawn from rng and nothing is recorded.
Tensor *ag_dropout(Tape *tp, Tensor *x, real p, Rng *rng, int train)
{
    DDPM_CHECK(p >= 0 && p < 1, "dropout: p = %g is outside [0, 1)", (double)p);
    if (!train || p == 0) return x;
    Tensor *out = tensor_like(tp->arena, x);
    real *mask = arena_alloc(tp->arena, x->size * sizeof(real));
    rng_skip_batch(rng, x->size / x->shape[0], 0);   // a batch split across processes:
    dropout_forward(out->data, mask, x->data, x->size, p, rng);
    rng_skip_batch(rng, x->size / x->shape[0], 1);   // the others' masks are not ours
    Node *nd = tape_record(tp, "dropout", dropout_node, out, 1, &x);
    if (nd) nd->saved = mask;
    return out;
}

/* ---- channel concatenation -------------------------------------------------------- */
/* In NCHW, sample n of the output is a[n] (Ca*HW values) followed by b[n]
 * (Cb*HW values): two copies per sample, and the backward splits the same way. */

void concat_forward(real *out, const real *a, const real *b, int N, int Ca, int Cb, size_t HW)
{
    size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
    for (int n = 0; n < N; n++) {
        memcpy(out + n * (sa + sb), a + n * sa, sa * sizeof(real));
        memcpy(out + n * (sa + sb) + sa, b + n * sb, sb * sizeof(real));
    }
}

void concat_backward(real *da, real *db, const real *dout, int N, int Ca, int Cb, size_t HW)
{
    size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
    for (int n = 0; n < N; n++) {
        if (da) vec_axpy(da + n * sa, 1, dout + n * (sa + sb), sa);
        if (db) vec_axpy(db + n * sb, 1, dout + n * (sa + sb) + sa, sb);
    }
}

static void concat_node(Tape *tp, Node *nd)
{
    Tensor *a = nd->in[0], *b = nd->in[1];
    int N, Ca, Cb;
    size_t HW;
    tensor_nchw(a, &N, &Ca, &HW);
    Cb = b->shape[1];
    concat_backward(tape_grad_if(tp, a), tape_grad_if(tp, b), nd->out->grad, N, Ca, Cb, HW);
}

// a [N, Ca, ...] and b [N, Cb, ...] with equal other dims -> [N, Ca+Cb, ...].
Tensor *ag_concat(Tape *tp, Tensor *a, Tensor *b)
{
    char sa[64], sb[64];
    int ok = a->ndim == b->ndim && a->ndim >= 2 && a->shape[0] == b->shape[0];
    for (int i = 2; ok && i < a->ndim; i++) ok = a->shape[i] == b->shape[i];
    DDPM_CHECK(ok, "concat: cannot stack %s and %s along channels",
               tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb));
    int shape[TENSOR_MAX_DIMS], N, Ca;
    size_t HW;
    memcpy(shape, a->shape, sizeof shape);
    shape[1] = a->shape[1] + b->shape[1];
    Tensor *out = tensor_new(tp->arena, a->ndim, shape);
    tensor_nchw(a, &N, &Ca, &HW);
    concat_forward(out->data, a->data, b->data, N, Ca, b->shape[1], HW);
    tape_record(tp, "concat", concat_node, out, 2, (Tensor *[]){a, b});
    return out;
}

/* ---- channel slices: the inverse of concat ------------------------------ */

void slice_channels_forward(real *out, const real *x, int N, int C, size_t HW, int c0, int nc)
{
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * nc * HW, x + ((size_t)n * C + c0) * HW,
               (size_t)nc * HW * sizeof(real));
}

void slice_channels_backward(real *dx, const real *dout, int N, int C, size_t HW, int c0, int nc)
{
    for (int n = 0; n < N; n++)
        vec_axpy(dx + ((size_t)n * C + c0) * HW, 1, dout + (size_t)n * nc * HW, (size_t)nc * HW);
}

static void slice_node(Tape *tp, Node *nd)
{
    Tensor *x = nd->in[0];
    int N, C;
    size_t HW;
    tensor_nchw(x, &N, &C, &HW);
    slice_channels_backward(tape_grad(tp, x), nd->out->grad, N, C, HW, nd->arg[0], nd->arg[1]);
}

Tensor *ag_slice_channels(Tape *tp, Tensor *x, int c0, int nc)
{
    int N, C;
    size_t HW;
    tensor_nchw(x, &N, &C, &HW);
    DDPM_CHECK(x->ndim == 4 && c0 >= 0 && nc > 0 && c0 + nc <= C,
               "slice_channels: channels %d..%d of %d", c0, c0 + nc - 1, C);
    Tensor *out = tensor_4d(tp->arena, N, nc, x->shape[2], x->shape[3]);
    slice_channels_forward(out->data, x->data, N, C, HW, c0, nc);
    Node *nd = tape_record(tp, "slice_channels", slice_node, out, 1, &x);
    if (nd) { nd->arg[0] = c0; nd->arg[1] = nc; }
    return out;
}
