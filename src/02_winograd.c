/* 02_winograd.c — F(2x2, 3x3): the 3x3 convolution in 16 products per tile.
 *
 * Chapter 02 (book/02_conv.md, "Fewer flops: Winograd"). A 3x3 convolution
 * with stride 1 computes each output from a 3x3 window. Take the outputs
 * two by two: a 2x2 block of outputs reads a 4x4 block d of the input, and
 * im2col spends 2*2*9 = 36 multiplications per (input, output) channel pair
 * on it. Winograd's minimal filtering algorithm spends 16:
 *
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A        (.* elementwise, 4x4)
 *
 * with the fixed matrices below (Lavin & Gray 2016). The transforms are
 * additions only; the products .* summed over input channels are, for each
 * of the 16 positions xi of the 4x4 block, one matrix product
 *
 *   M_xi [Cout, P] = U_xi [Cout, Cin] . V_xi [Cin, P]
 *
 * over the P tiles of a chunk of images: U = G g G^T is the transformed
 * weight, V = B^T d B the transformed input. So a conv becomes 16 GEMMs of
 * inner size Cin instead of one of inner size 9 Cin: 2.25x fewer flops.
 *
 * The backward is the same three linear maps transposed, in reverse order:
 *   dM = A dY A^T,   dU_xi += dM_xi V_xi^T,   dV_xi = U_xi^T dM_xi,
 *   dd = B dV B^T (added into dx where the tile came from),  dg = G^T dU G.
 * Tiles overlap by two rows and columns, so dd of neighbouring tiles meet
 * and add, exactly as col2im adds the 9 copies im2col made.
 *
 * Tiles: th x tw per image, th = ceil(H/2); tile (ty, tx) reads input rows
 * 2ty-1 .. 2ty+2 (pad 1). Each image is first copied into a zero-bordered
 * plane so that no tile needs a bounds check. Shapes as in 02_conv.c.
 */
#include "02_winograd.h"

#include <omp.h>
#include <string.h>

#define WINO_TARGET_COLS 256   // tiles per GEMM to aim for (as conv_plan's columns)

// NOTE: with only a few input channels (conv_in reads 3), or images so small
// that a chunk holds few tiles (4x4 images: 4 tiles each, too thin a GEMM),
// the transforms cost more than the products they save; bench_02_conv shows where.
int winograd_applies(const ConvShape *s)
{
    return s->Cin >= 16 && s->H >= 6 && s->W >= 6 && s->k == 3 && s->stride == 1 && s->pad_t == 1 && s->pad_l == 1 &&
           s->pad_b == 1 && s->pad_r == 1;
}

/* ---- the three transforms, one dimension at a time --------------------------
 * Each 4x4 map M X N^T is applied as a 1-D map down the columns, then along
 * the rows. The 1-D maps, and their transposes for the backward:           */

// B^T a:  (a0 - a2, a1 + a2, a2 - a1, a1 - a3)
#define BT(a0, a1, a2, a3, o0, o1, o2, o3) \
    do { o0 = a0 - a2; o1 = a1 + a2; o2 = a2 - a1; o3 = a1 - a3; } while (0)
// B v:    (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
#define B_(v0, v1, v2, v3, o0, o1, o2, o3) \
    do { o0 = v0; o1 = v1 - v2 + v3; o2 = v1 + v2 - v0; o3 = -v3; } while (0)
// A^T m:  (m0 + m1 + m2, m1 - m2 - m3)
#define AT(m0, m1, m2, m3, o0, o1) \
    do { o0 = m0 + m1 + m2; o1 = m1 - m2 - m3; } while (0)
// A y:    (y0, y0 + y1, y0 - y1, -y1)
#define A_(y0, y1, o0, o1, o2, o3) \
    do { o0 = y0; o1 = y0 + y1; o2 = y0 - y1; o3 = -y1; } while (0)
// G g:    (g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2)
#define G_(g0, g1, g2, o0, o1, o2, o3) \
    do { o0 = g0; o1 = (real)0.5 * (g0 + g1 + g2); o2 = (real)0.5 * (g0 - g1 + g2); \
         o3 = g2; } while (0)
// G^T u:  (u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3)
#define GT(u0, u1, u2, u3, o0, o1, o2) \
    do { o0 = u0 + (real)0.5 * (u1 + u2); o1 = (real)0.5 * (u1 - u2); \
         o2 = (real)0.5 * (u1 + u2) + u3; } while (0)

/* ---- the plan: tiles, chunks, scratch ---------------------------------------- */

typedef struct WinoPlan {
    int th, tw, tiles;        // tiles per image: th x tw
    int ph;                   // rows of the zero-bordered plane: 2 th + 2
    int nb, n_chunks, threads;
    size_t v_size, m_size;    // reals per thread: V [16, Cin, P], M [16, Cout, P], P = nb tiles
} WinoPlan;

// As conv_plan: enough images side by side that each GEMM is ~256 tiles
// wide, but no more than leaves every core a chunk.
static WinoPlan wino_plan(const ConvShape *s)
{
    WinoPlan p;
    int cores = omp_get_max_threads(), per_core = (s->N + cores - 1) / cores;
    p.th = (s->H + 1) / 2;
    p.tw = (s->W + 1) / 2;
    p.tiles = p.th * p.tw;
    p.ph = 2 * p.th + 2;
    p.nb = (WINO_TARGET_COLS + p.tiles - 1) / p.tiles;
    if (p.nb > per_core) p.nb = per_core;
    p.n_chunks = (s->N + p.nb - 1) / p.nb;
    p.threads = p.n_chunks >= cores ? cores : 1;
    p.v_size = (size_t)16 * s->Cin * p.nb * p.tiles;
    p.m_size = (size_t)16 * s->Cout * p.nb * p.tiles;
    return p;
}

/* ---- weights: U = G g G^T ------------------------------------------------------ */

// U [16, Cout, Cin] from w [Cout, Cin, 3, 3].
static void weight_transform(real *U, const real *w, int Cout, int Cin)
{
    size_t plane = (size_t)Cout * Cin;
    for (size_t oc = 0; oc < plane; oc++) {
        const real *g = w + oc * 9;
        real t[4][3];   // G g: 4 rows, 3 columns
        for (int v = 0; v < 3; v++)
            G_(g[v], g[3 + v], g[6 + v], t[0][v], t[1][v], t[2][v], t[3][v]);
        for (int a = 0; a < 4; a++) {
            real *u = U + (size_t)a * 4 * plane + oc;
            G_(t[a][0], t[a][1], t[a][2], u[0], u[plane], u[2 * plane], u[3 * plane]);
        }
    }
}

// dw [Cout, Cin, 3, 3] += G^T dU G.
static void weight_transform_backward(real *dw, const real *dU, int Cout, int Cin)
{
    size_t plane = (size_t)Cout * Cin;
    for (size_t oc = 0; oc < plane; oc++) {
        real t[3][4];   // G^T dU: 3 rows, 4 columns
        for (int b = 0; b < 4; b++) {
            const real *u = dU + (size_t)b * plane + oc;
            GT(u[0], u[4 * plane], u[8 * plane], u[12 * plane], t[0][b], t[1][b], t[2][b]);
        }
        real *g = dw + oc * 9;
        for (int r = 0; r < 3; r++) {
            real o0, o1, o2;
            GT(t[r][0], t[r][1], t[r][2], t[r][3], o0, o1, o2);
            g[3 * r] += o0;
            g[3 * r + 1] += o1;
            g[3 * r + 2] += o2;
        }
    }
}

/* ---- inputs: V = B^T d B, and its transpose -----------------------------------
 * Neighbouring tiles start two columns apart, so the bordered plane is kept
 * as two half-width planes, its even and its odd columns: then what a row of
 * tiles needs is contiguous, and every inner loop below runs along tx, the
 * transform of a whole row of tiles at once (which the compiler vectorises). */

// pe, po [ph, tw+1]: the even and the odd columns of one H x W plane with its
// zero border (padded column j = ix + 1). Only the interior is written, so
// the border stays zero from one call to the next.
static void plane_split(real *pe, real *po, const real *x, const ConvShape *s, const WinoPlan *p)
{
    int h = p->tw + 1;
    for (int y = 0; y < s->H; y++) {
        const real *row = x + (size_t)y * s->W;
        real *e = pe + (size_t)(y + 1) * h, *o = po + (size_t)(y + 1) * h;
        for (int ix = 1; ix < s->W; ix += 2) e[(ix + 1) / 2] = row[ix];
        for (int ix = 0; ix < s->W; ix += 2) o[ix / 2] = row[ix];
    }
}

// V [16, Cin, P]: for image j of the chunk, channel c and tile t, the 16
// values of B^T d B at V[xi][c][j*tiles + t].
static void input_transform(real *V, const real *x, int m, const ConvShape *s,
                            const WinoPlan *p, real *work)
{
    int tw = p->tw, h = tw + 1;
    size_t P = (size_t)m * p->tiles, stride = (size_t)s->Cin * P, HW = (size_t)s->H * s->W;
    real *pe = work, *po = pe + (size_t)p->ph * h, *E = po + (size_t)p->ph * h, *O = E + 4 * h;
    for (int j = 0; j < m; j++)
        for (int c = 0; c < s->Cin; c++) {
            plane_split(pe, po, x + ((size_t)j * s->Cin + c) * HW, s, p);
            real *v = V + (size_t)c * P + (size_t)j * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                // B^T down the columns: rows 2ty .. 2ty+3 of the bordered plane
                const real *e0 = pe + (size_t)2 * ty * h, *o0 = po + (size_t)2 * ty * h;
                #pragma omp simd
                for (int k = 0; k < h; k++) {
                    BT(e0[k], e0[h + k], e0[2 * h + k], e0[3 * h + k],
                       E[k], E[h + k], E[2 * h + k], E[3 * h + k]);
                    BT(o0[k], o0[h + k], o0[2 * h + k], o0[3 * h + k],
                       O[k], O[h + k], O[2 * h + k], O[3 * h + k]);
                }
                // B^T along the rows: tile tx reads columns E[tx], O[tx], E[tx+1], O[tx+1]
                for (int a = 0; a < 4; a++) {
                    const real *Ea = E + a * h, *Oa = O + a * h;
                    real *v0 = v + (size_t)4 * a * stride + (size_t)ty * tw, *v1 = v0 + stride,
                         *v2 = v1 + stride, *v3 = v2 + stride;
                    #pragma omp simd
                    for (int tx = 0; tx < tw; tx++)
                        BT(Ea[tx], Oa[tx], Ea[tx + 1], Oa[tx + 1], v0[tx], v1[tx], v2[tx], v3[tx]);
                }
            }
        }
}

// dx += B dV B^T for every tile, added back where the tile was read from
// (bands of tiles overlap by two rows, tiles in a band by two columns).
static void input_transform_backward(real *dx, const real *dV, int m, const ConvShape *s,
                                     const WinoPlan *p, real *work)
{
    int tw = p->tw, h = tw + 1;
    size_t P = (size_t)m * p->tiles, stride = (size_t)s->Cin * P, HW = (size_t)s->H * s->W;
    size_t plane = (size_t)p->ph * h;
    real *pe = work, *po = pe + plane, *E = po + plane, *O = E + 4 * h;
    for (int j = 0; j < m; j++)
        for (int c = 0; c < s->Cin; c++) {
            memset(pe, 0, 2 * plane * sizeof(real));
            const real *v = dV + (size_t)c * P + (size_t)j * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                // B along the rows of dV: onto columns E[tx], O[tx], E[tx+1], O[tx+1]
                for (int a = 0; a < 4; a++) {
                    const real *v0 = v + (size_t)4 * a * stride + (size_t)ty * tw, *v1 = v0 + stride,
                               *v2 = v1 + stride, *v3 = v2 + stride;
                    real *Ea = E + a * h, *Oa = O + a * h;
                    #pragma omp simd
                    for (int tx = 0; tx < tw; tx++) {
                        Ea[tx] = v0[tx];
                        Oa[tx] = v1[tx] - v2[tx] + v3[tx];
                    }
                    Ea[tw] = Oa[tw] = 0;
                    #pragma omp simd
                    for (int tx = 0; tx < tw; tx++) {
                        Ea[tx + 1] += v1[tx] + v2[tx] - v0[tx];
                        Oa[tx + 1] -= v3[tx];
                    }
                }
                // B down the columns: onto rows 2ty .. 2ty+3
                real *e0 = pe + (size_t)2 * ty * h, *o0 = po + (size_t)2 * ty * h;
                #pragma omp simd
                for (int k = 0; k < h; k++) {
                    real r0, r1, r2, r3;
                    B_(E[k], E[h + k], E[2 * h + k], E[3 * h + k], r0, r1, r2, r3);
                    e0[k] += r0; e0[h + k] += r1; e0[2 * h + k] += r2; e0[3 * h + k] += r3;
                    B_(O[k], O[h + k], O[2 * h + k], O[3 * h + k], r0, r1, r2, r3);
                    o0[k] += r0; o0[h + k] += r1; o0[2 * h + k] += r2; o0[3 * h + k] += r3;
                }
            }
            real *dxc = dx + ((size_t)j * s->Cin + c) * HW;
            for (int y = 0; y < s->H; y++) {
                const real *e = pe + (size_t)(y + 1) * h, *o = po + (size_t)(y + 1) * h;
                real *dst = dxc + (size_t)y * s->W;
                for (int ix = 1; ix < s->W; ix += 2) dst[ix] += e[(ix + 1) / 2];
                for (int ix = 0; ix < s->W; ix += 2) dst[ix] += o[ix / 2];
            }
        }
}

/* ---- outputs: Y = A^T M A, and its transpose ------------------------------------ */

// out [m, Cout, H, W] = A^T M A + b, a band of tiles (two output rows) at a
// time, cut to H x W where H or W is odd. The band's even and odd output
// columns are formed apart (a vector loop along tx) and interleaved when
// written. row: scratch [4, tw].
static void output_transform(real *out, const real *M, const real *b, int m,
                             const ConvShape *s, const WinoPlan *p, real *row)
{
    int tw = p->tw;
    size_t P = (size_t)m * p->tiles, st = (size_t)s->Cout * P, HW = (size_t)s->H * s->W;
    real *e0 = row, *o0 = row + tw, *e1 = row + 2 * tw, *o1 = row + 3 * tw;
    for (int j = 0; j < m; j++)
        for (int o = 0; o < s->Cout; o++) {
            real *y = out + ((size_t)j * s->Cout + o) * HW, bo = b ? b[o] : 0;
            for (int ty = 0; ty < p->th; ty++) {
                const real *q = M + (size_t)o * P + (size_t)j * p->tiles + (size_t)ty * tw;
                #pragma omp simd
                for (int tx = 0; tx < tw; tx++) {
                    real c0, c1, c2, c3, d0, d1, d2, d3;   // A^T M down the columns
                    AT(q[tx], q[4 * st + tx], q[8 * st + tx], q[12 * st + tx], c0, d0);
                    AT(q[st + tx], q[5 * st + tx], q[9 * st + tx], q[13 * st + tx], c1, d1);
                    AT(q[2 * st + tx], q[6 * st + tx], q[10 * st + tx], q[14 * st + tx], c2, d2);
                    AT(q[3 * st + tx], q[7 * st + tx], q[11 * st + tx], q[15 * st + tx], c3, d3);
                    AT(c0, c1, c2, c3, e0[tx], o0[tx]);     // ... then along the rows
                    AT(d0, d1, d2, d3, e1[tx], o1[tx]);
                }
                for (int a = 0; a < 2 && 2 * ty + a < s->H; a++) {
                    real *dst = y + (size_t)(2 * ty + a) * s->W;
                    const real *ev = a ? e1 : e0, *od = a ? o1 : o0;
                    for (int x = 0; x < s->W; x++) dst[x] = (x & 1 ? od[x / 2] : ev[x / 2]) + bo;
                }
            }
        }
}

// dM [16, Cout, P] = A dY A^T from dout [m, Cout, H, W] (zero past an odd
// edge): each band's two rows are split into even and odd columns first.
static void output_transform_backward(real *dM, const real *dout, int m,
                                      const ConvShape *s, const WinoPlan *p, real *row)
{
    int tw = p->tw;
    size_t P = (size_t)m * p->tiles, st = (size_t)s->Cout * P, HW = (size_t)s->H * s->W;
    real *e0 = row, *o0 = row + tw, *e1 = row + 2 * tw, *o1 = row + 3 * tw;
    memset(row, 0, 4 * (size_t)tw * sizeof(real));   // past an odd edge stays zero
    for (int j = 0; j < m; j++)
        for (int o = 0; o < s->Cout; o++) {
            const real *dy = dout + ((size_t)j * s->Cout + o) * HW;
            for (int ty = 0; ty < p->th; ty++) {
                for (int a = 0; a < 2; a++) {
                    real *ev = a ? e1 : e0, *od = a ? o1 : o0;
                    if (2 * ty + a >= s->H) { memset(row + 2 * a * tw, 0, 2 * tw * sizeof(real)); continue; }
                    const real *src = dy + (size_t)(2 * ty + a) * s->W;
                    for (int x = 0; x < s->W; x++) (x & 1 ? od : ev)[x / 2] = src[x];
                }
                real *q = dM + (size_t)o * P + (size_t)j * p->tiles + (size_t)ty * tw;
                #pragma omp simd
                for (int tx = 0; tx < tw; tx++) {
                    real c0, c1, c2, c3, d0, d1, d2, d3;   // A dY down the columns (even c, odd d)
                    A_(e0[tx], e1[tx], c0, c1, c2, c3);
                    A_(o0[tx], o1[tx], d0, d1, d2, d3);
                    A_(c0, d0, q[tx], q[st + tx], q[2 * st + tx], q[3 * st + tx]);   // ... along the rows
                    A_(c1, d1, q[4 * st + tx], q[5 * st + tx], q[6 * st + tx], q[7 * st + tx]);
                    A_(c2, d2, q[8 * st + tx], q[9 * st + tx], q[10 * st + tx], q[11 * st + tx]);
                    A_(c3, d3, q[12 * st + tx], q[13 * st + tx], q[14 * st + tx], q[15 * st + tx]);
                }
            }
        }
}

/* ---- the convolution ---------------------------------------------------------------- */

typedef struct WinoScratch { real *V, *M, *in, *din, *row; } WinoScratch;

// Per thread: V, M; the split bordered planes and band rows of the input
// transform (in) and of its transpose (din); two output rows.
static size_t work_size(const WinoPlan *p)
{
    return 2 * (size_t)p->ph * (p->tw + 1) + 8 * (size_t)(p->tw + 1);
}

static WinoScratch wino_scratch(real *base, int t, const WinoPlan *p)
{
    size_t per = p->v_size + p->m_size + 2 * work_size(p) + 4 * (size_t)p->tw;
    real *b = base + (size_t)t * per, *in = b + p->v_size + p->m_size;
    return (WinoScratch){b, b + p->v_size, in, in + work_size(p), in + 2 * work_size(p)};
}

static real *scratch_alloc(Arena *a, const WinoPlan *p)
{
    size_t per = p->v_size + p->m_size + 2 * work_size(p) + 4 * (size_t)p->tw;
    return arena_calloc(a, per * p->threads * sizeof(real));   // zeroed: the plane borders
}

void winograd_forward(real *out, const real *x, const real *w, const real *b,
                      const ConvShape *s, Arena *scratch)
{
    WinoPlan p = wino_plan(s);
    size_t mark = arena_mark(scratch), xs = (size_t)s->Cin * s->H * s->W;
    size_t os = (size_t)s->Cout * s->H * s->W, wsz = (size_t)s->Cout * s->Cin;
    real *U = arena_alloc(scratch, 16 * wsz * sizeof(real)), *base = scratch_alloc(scratch, &p);
    weight_transform(U, w, s->Cout, s->Cin);
    int blas = conv_blas_serial(p.threads > 1);
    #pragma omp parallel for schedule(static) num_threads(p.threads)
    for (int c = 0; c < p.n_chunks; c++) {
        int n0 = c * p.nb, m = s->N - n0 < p.nb ? s->N - n0 : p.nb, P = m * p.tiles;
        WinoScratch sc = wino_scratch(base, omp_get_thread_num(), &p);
        input_transform(sc.V, x + n0 * xs, m, s, &p, sc.in);
        for (int xi = 0; xi < 16; xi++)   // M_xi = U_xi . V_xi
            gemm(0, 0, s->Cout, P, s->Cin, 1, U + xi * wsz, s->Cin,
                 sc.V + (size_t)xi * s->Cin * P, P, 0, sc.M + (size_t)xi * s->Cout * P, P);
        output_transform(out + n0 * os, sc.M, b, m, s, &p, sc.row);
    }
    conv_blas_restore(blas);
    arena_release(scratch, mark);
}

// Each core sums its chunks' dU in its own copy; the copies are added in a
// fixed order and turned into dw once, so the result does not depend on timing.
void winograd_backward(real *dx, real *dw, const real *dout, const real *x, const real *w,
                       const ConvShape *s, Arena *scratch)
{
    if (!dx && !dw) return;
    WinoPlan p = wino_plan(s);
    size_t mark = arena_mark(scratch), xs = (size_t)s->Cin * s->H * s->W;
    size_t os = (size_t)s->Cout * s->H * s->W, wsz = (size_t)s->Cout * s->Cin;
    real *U = arena_alloc(scratch, 16 * wsz * sizeof(real)), *base = scratch_alloc(scratch, &p);
    real *dU = dw ? arena_calloc(scratch, (size_t)p.threads * 16 * wsz * sizeof(real)) : NULL;
    weight_transform(U, w, s->Cout, s->Cin);
    int blas = conv_blas_serial(p.threads > 1);
    #pragma omp parallel for schedule(static) num_threads(p.threads)
    for (int c = 0; c < p.n_chunks; c++) {
        int t = omp_get_thread_num(), n0 = c * p.nb, m = s->N - n0 < p.nb ? s->N - n0 : p.nb;
        int P = m * p.tiles;
        WinoScratch sc = wino_scratch(base, t, &p);
        output_transform_backward(sc.M, dout + n0 * os, m, s, &p, sc.row);
        if (dw) {   // dU_xi += dM_xi . V_xi^T
            input_transform(sc.V, x + n0 * xs, m, s, &p, sc.in);
            for (int xi = 0; xi < 16; xi++)
                gemm(0, 1, s->Cout, s->Cin, P, 1, sc.M + (size_t)xi * s->Cout * P, P,
                     sc.V + (size_t)xi * s->Cin * P, P, 1, dU + ((size_t)t * 16 + xi) * wsz, s->Cin);
        }
        if (dx) {   // dV_xi = U_xi^T . dM_xi, then back through B
            for (int xi = 0; xi < 16; xi++)
                gemm(1, 0, s->Cin, P, s->Cout, 1, U + xi * wsz, s->Cin,
                     sc.M + (size_t)xi * s->Cout * P, P, 0, sc.V + (size_t)xi * s->Cin * P, P);
            input_transform_backward(dx + n0 * xs, sc.V, m, s, &p, sc.din);
        }
    }
    conv_blas_restore(blas);
    if (dw) {
        for (int t = 1; t < p.threads; t++) vec_axpy(dU, 1, dU + (size_t)t * 16 * wsz, 16 * wsz);
        weight_transform_backward(dw, dU, s->Cout, s->Cin);
    }
    arena_release(scratch, mark);
}
