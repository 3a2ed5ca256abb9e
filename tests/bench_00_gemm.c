/* bench_00_gemm.c — GEMM speed: the triple loop vs OpenBLAS on 1 and 2
 * threads, at square sizes and at the U-Net's im2col shapes.
 * Run with `make bench`. Reports GFLOP/s and ratios; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>

#include "00_tensor.h"
#include "bench.h"

typedef struct Shape { const char *what; int M, N, K; } Shape;

// GFLOP/s of C[M,N] = A[M,K] B[K,N]: 2MNK flops per call.
static double gflops(int M, int N, int K, int ref, int threads)
{
    real *A = malloc(sizeof(real) * M * K), *B = malloc(sizeof(real) * K * N);
    real *C = malloc(sizeof(real) * M * N);
    Rng r;
    rng_seed(&r, 1, 0);
    rng_fill_normal(&r, A, (size_t)M * K, 0, 1);
    rng_fill_normal(&r, B, (size_t)K * N, 0, 1);
    gemm_set_threads(threads);
    double s;
    if (ref) BENCH_BEST(s, 0.3, gemm_ref(0, 0, M, N, K, 1, A, K, B, N, 0, C, N));
    else     BENCH_BEST(s, 0.3, gemm(0, 0, M, N, K, 1, A, K, B, N, 0, C, N));
    free(A); free(B); free(C);
    return 2.0 * M * N * K / s / 1e9;
}

int main(void)
{
    // Square sizes, then conv-as-GEMM shapes: [Cout, Cin*9] x [Cin*9, H*W]
    // for one image (tiny: ch 32 at 32x32; paper: ch 128 at 32x32, 256 at 16x16).
    Shape shapes[] = {
        {"square 64", 64, 64, 64},         {"square 256", 256, 256, 256},
        {"square 512", 512, 512, 512},     {"square 1024", 1024, 1024, 1024},
        {"conv tiny 32x32 32->32", 32, 1024, 288},
        {"conv paper 32x32 128->128", 128, 1024, 1152},
        {"conv paper 16x16 256->256", 256, 256, 2304},
        {"conv paper 4x4 256->256", 256, 16, 2304},
    };
    int n = (int)(sizeof shapes / sizeof shapes[0]);
    printf("GEMM GFLOP/s (%s), best of repeated calls\n",
           sizeof(real) == 4 ? "float32" : "float64");
    printf("%-28s %6s %6s %6s %9s %9s %9s %8s\n", "shape", "M", "N", "K",
           "ref", "blas-1t", "blas-2t", "2t/ref");
    for (int i = 0; i < n; i++) {
        Shape s = shapes[i];
        double big = 2.0 * s.M * s.N * s.K;
        double ref = big <= 2.0 * 512 * 512 * 512 ? gflops(s.M, s.N, s.K, 1, 1) : 0;
        double b1 = gflops(s.M, s.N, s.K, 0, 1), b2 = gflops(s.M, s.N, s.K, 0, 2);
        if (ref > 0)
            printf("%-28s %6d %6d %6d %9.2f %9.1f %9.1f %7.0fx\n", s.what, s.M, s.N, s.K,
                   ref, b1, b2, b2 / ref);
        else
            printf("%-28s %6d %6d %6d %9s %9.1f %9.1f %8s\n", s.what, s.M, s.N, s.K,
                   "-", b1, b2, "-");
    }
    gemm_set_threads(0);
    return 0;
}
