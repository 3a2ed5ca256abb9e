/* ch00_tensor.c — the experiments of chapter 00 (make chapter0).
 *
 * 1. GEMM speed vs size: the triple loop against OpenBLAS on one and two
 *    threads -> figures/ch00_gemm.{png,svg}
 * 2. How an NCHW tensor sits in memory -> figures/ch00_layout.{png,svg}
 *
 * Writes data and scripts into figures/data/; the Makefile runs gnuplot
 * and dot on them.
 */
#include <stdio.h>
#include <stdlib.h>

#include "00_tensor.h"
#include "bench.h"

static double gemm_gflops(int n, int ref, int threads, Rng *r)
{
    real *A = malloc(sizeof(real) * n * n), *B = malloc(sizeof(real) * n * n);
    real *C = malloc(sizeof(real) * n * n);
    rng_fill_normal(r, A, (size_t)n * n, 0, 1);
    rng_fill_normal(r, B, (size_t)n * n, 0, 1);
    gemm_set_threads(threads);
    double s;
    if (ref) BENCH_BEST(s, 0.2, gemm_ref(0, 0, n, n, n, 1, A, n, B, n, 0, C, n));
    else     BENCH_BEST(s, 0.2, gemm(0, 0, n, n, n, 1, A, n, B, n, 0, C, n));
    free(A); free(B); free(C);
    return 2.0 * n * n * n / s / 1e9;
}

static void gemm_curve(void)
{
    const int sizes[] = {16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
    Rng r;
    rng_seed(&r, 0, 0);
    FILE *f = fopen("figures/data/ch00_gemm.dat", "w");
    fprintf(f, "# n  ref  blas_1thread  blas_2threads   (GFLOP/s, float32)\n");
    fprintf(stderr, "GEMM GFLOP/s:     n      ref   blas-1t   blas-2t\n");
    for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
        int n = sizes[i];
        double ref = n <= 512 ? gemm_gflops(n, 1, 1, &r) : -1;
        double b1 = gemm_gflops(n, 0, 1, &r), b2 = gemm_gflops(n, 0, 2, &r);
        fprintf(f, "%d %.3f %.3f %.3f\n", n, ref, b1, b2);
        fprintf(stderr, "              %5d %8.2f %9.1f %9.1f\n", n, ref, b1, b2);
    }
    fclose(f);
    gemm_set_threads(0);

    f = fopen("figures/data/ch00_gemm.gp", "w");
    fprintf(f,
        "set datafile missing '-1.000'\n"
        "set logscale xy\nset xrange [12:1400]\nset grid\nset key top left\n"
        "set xlabel 'matrix size n (n x n times n x n)'\nset ylabel 'GFLOP/s (float32)'\n"
        "set title 'GEMM: textbook triple loop vs OpenBLAS (2 cores, AVX2+FMA)'\n"
        "p = \"plot 'figures/data/ch00_gemm.dat' u 1:($2>0?$2:1/0) w lp pt 7 t 'triple loop (gemm\\\\_ref)', "
        "'' u 1:3 w lp pt 5 t 'OpenBLAS, 1 thread', '' u 1:4 w lp pt 9 t 'OpenBLAS, 2 threads'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch00_gemm.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch00_gemm.svg'\n@p\n");
    fclose(f);
}

// A [2, 3, 2, 2] tensor: the logical view (one 2x2 plane per (n, c)) above
// the one flat array it really is, each cell labelled with its offset
// ((n*C + c)*H + h)*W + w and coloured by channel.
static void layout_figure(void)
{
    const int N = 2, C = 3, H = 2, W = 2;
    const char *colour[] = {"#f4cccc", "#d9ead3", "#cfe2f3"};
    FILE *f = fopen("figures/data/ch00_layout.dot", "w");
    fprintf(f, "digraph layout {\n  rankdir=TB; nodesep=0.25; ranksep=0.6;\n"
               "  node [shape=plaintext, fontname=\"Helvetica\", fontsize=11];\n"
               "  label=\"x[n][c][h][w] of a [N=2, C=3, H=2, W=2] tensor lives at "
               "offset ((n*C + c)*H + h)*W + w\"; labelloc=b;\n");
    for (int n = 0; n < N; n++) {
        fprintf(f, "  subgraph cluster_n%d { label=\"n = %d\"; style=rounded;\n", n, n);
        for (int c = 0; c < C; c++) {
            fprintf(f, "    p%d%d [label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"0\">"
                       "<tr><td colspan=\"%d\"><b>c = %d</b></td></tr>", n, c, W, c);
            for (int h = 0; h < H; h++) {
                fprintf(f, "<tr>");
                for (int w = 0; w < W; w++)
                    fprintf(f, "<td bgcolor=\"%s\" port=\"h%dw%d\">%d</td>", colour[c], h, w,
                            ((n * C + c) * H + h) * W + w);
                fprintf(f, "</tr>");
            }
            fprintf(f, "</table>>];\n");
        }
        fprintf(f, "  }\n");
    }
    fprintf(f, "  mem [label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"0\"><tr>"
               "<td><b>memory</b></td>");
    for (int i = 0; i < N * C * H * W; i++)
        fprintf(f, "<td bgcolor=\"%s\" port=\"o%d\">%d</td>", colour[(i / (H * W)) % C], i, i);
    fprintf(f, "</tr></table>>];\n");
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            fprintf(f, "  p%d%d -> mem:o%d [color=\"#888888\"];\n", n, c, (n * C + c) * H * W);
    fprintf(f, "}\n");
    fclose(f);
}

int main(void)
{
    gemm_curve();
    layout_figure();
    return 0;
}
