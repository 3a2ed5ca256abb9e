/* test_00_tensor.c — arena, tensors, parameters, RNG, vector kernels, GEMM.
 *
 * Runs in both builds; tolerances scale with the scalar type (TOL). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "00_tensor.h"

#ifdef DDPM_DOUBLE
#define TOL 1e-12
#else
#define TOL 2e-6
#endif

/* ---- core: arena --------------------------------------------------------- */

START_TEST(arena_aligns_and_grows)
{
    Arena a;
    arena_init(&a, 4096);
    for (int i = 1; i < 200; i++) {
        void *p = arena_alloc(&a, (size_t)i * 37);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        memset(p, 0xab, (size_t)i * 37);   // ASan would catch an overrun here
    }
    ck_assert_uint_gt(a.n_mallocs, 1);      // it had to grow
    ck_assert_uint_ge(a.peak, a.used);
    arena_free(&a);
}
END_TEST

// The promise the training loop relies on: after the first step, a step that
// allocates the same amounts causes no further system allocation.
START_TEST(arena_steady_state_has_no_mallocs)
{
    Arena a;
    arena_init(&a, 1024);
    size_t after_first = 0;
    for (int step = 0; step < 5; step++) {
        for (int k = 0; k < 50; k++) arena_alloc(&a, 1000 + (size_t)k * 100);
        arena_reset(&a);
        if (step == 0) after_first = a.n_mallocs;
    }
    ck_assert_uint_eq(a.n_mallocs, after_first);
    ck_assert_uint_eq(a.used, 0);
    arena_free(&a);
}
END_TEST

START_TEST(arena_calloc_zeroes_reused_memory)
{
    Arena a;
    arena_init(&a, 1 << 16);
    unsigned char *p = arena_alloc(&a, 1000);
    memset(p, 0xff, 1000);
    arena_reset(&a);
    unsigned char *q = arena_calloc(&a, 1000);
    ck_assert_ptr_eq(p, q);   // same memory handed out again...
    for (int i = 0; i < 1000; i++) ck_assert_uint_eq(q[i], 0);   // ...but zeroed
    arena_free(&a);
}
END_TEST

/* ---- core: tensors and parameters ------------------------------------------- */

START_TEST(tensor_shapes)
{
    Arena a;
    arena_init(&a, 1 << 16);
    Tensor *t = tensor_4d(&a, 2, 3, 4, 5);
    ck_assert_int_eq(t->ndim, 4);
    ck_assert_uint_eq(t->size, 120);
    ck_assert_ptr_null(t->grad);
    int n, c;
    size_t hw;
    tensor_nchw(t, &n, &c, &hw);
    ck_assert(n == 2 && c == 3 && hw == 20);
    char buf[32];
    ck_assert_str_eq(tensor_shape_str(t, buf, sizeof buf), "[2,3,4,5]");
    Tensor *z = tensor_zeros(&a, 2, (int[]){7, 9});
    ck_assert_double_eq(vec_sum(z->data, z->size), 0);
    ck_assert(!tensor_same_shape(t, z));
    ck_assert(tensor_same_shape(t, tensor_like(&a, t)));
    arena_free(&a);
}
END_TEST

START_TEST(params_are_one_block)
{
    ParamSet ps;
    params_init(&ps);
    Tensor *w = params_add(&ps, "conv_in.weight", 4, (int[]){8, 3, 3, 3});
    Tensor *b = params_add(&ps, "conv_in.bias", 1, (int[]){8});
    params_alloc(&ps);
    ck_assert_uint_eq(ps.total, 8 * 27 + 8);
    ck_assert_ptr_eq(w->data, ps.data);
    ck_assert_ptr_eq(b->data, ps.data + 216);     // carved back to back
    ck_assert_ptr_eq(b->grad, ps.grad + 216);
    ck_assert_ptr_eq(params_find(&ps, "conv_in.bias"), b);
    ck_assert_ptr_null(params_find(&ps, "conv_out.bias"));
    ck_assert(w->requires_grad);
    vec_fill(ps.grad, 3, ps.total);
    params_zero_grad(&ps);
    ck_assert_double_eq(vec_sum(ps.grad, ps.total), 0);
    params_free(&ps);
}
END_TEST

/* ---- core: random numbers ------------------------------------------------------ */

// The first outputs of the PCG32 reference implementation (pcg32-demo,
// seed 42, stream 54). Matching them means the same stream on every machine.
START_TEST(rng_matches_pcg32_reference)
{
    static const uint32_t expect[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330,
                                       0x83d2f293, 0xbfa4784b, 0xcbed606e};
    Rng r;
    rng_seed(&r, 42, 54);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(rng_u32(&r), expect[i]);
}
END_TEST

START_TEST(rng_is_reproducible_and_streams_differ)
{
    Rng a, b, c;
    rng_seed(&a, 7, 1);
    rng_seed(&b, 7, 1);
    rng_seed(&c, 7, 2);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = rng_u32(&a);
        ck_assert_uint_eq(x, rng_u32(&b));
        same_c += x == rng_u32(&c);
    }
    ck_assert_int_lt(same_c, 3);
}
END_TEST

// rng_advance(n) lands where n calls of rng_u32 land, for n = 0, 1, and
// counts with many bits set; a normal takes RNG_NORMAL_DRAWS draws, which
// is what lets a process skip to its share of a stream of normals.
START_TEST(rng_advance_matches_stepping)
{
    static const uint64_t ns[] = {0, 1, 2, 3, 7, 1000, 12345};
    for (int k = 0; k < 7; k++) {
        Rng a, b;
        rng_seed(&a, 9, 5);
        rng_seed(&b, 9, 5);
        for (uint64_t i = 0; i < ns[k]; i++) rng_u32(&a);
        rng_advance(&b, ns[k]);
        ck_assert_uint_eq(a.state, b.state);
        ck_assert_uint_eq(rng_u32(&a), rng_u32(&b));
    }
    Rng a, b;
    rng_seed(&a, 3, 1);
    rng_seed(&b, 3, 1);
    for (int i = 0; i < 37; i++) rng_normal(&a);
    rng_advance(&b, 37 * RNG_NORMAL_DRAWS);
    ck_assert(rng_normal(&a) == rng_normal(&b));
    // the batch window: images 2..4 of 7, 10 draws per image
    rng_seed(&a, 3, 2);
    rng_seed(&b, 3, 2);
    ck_assert_uint_eq(b.skip_before + b.skip_after, 0);
    b.skip_before = 2;
    b.skip_after = 2;
    for (int i = 0; i < 20; i++) rng_u32(&a);
    rng_skip_batch(&b, 10, 0);
    for (int i = 0; i < 30; i++) ck_assert_uint_eq(rng_u32(&a), rng_u32(&b));
    for (int i = 0; i < 20; i++) rng_u32(&a);
    rng_skip_batch(&b, 10, 1);
    ck_assert_uint_eq(rng_u32(&a), rng_u32(&b));
}
END_TEST

// Moments of 200k draws, each within 5 standard errors of its true value.
START_TEST(rng_distributions)
{
    Rng r;
    rng_seed(&r, 1234, 0);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, sn4 = 0;
    int counts[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        ck_assert(u >= 0 && u < 1);
        su += u;
        double z = rng_normal(&r);
        sn += z;
        sn2 += z * z;
        sn4 += z * z * z * z;
        counts[rng_below(&r, 10)]++;
    }
    ck_assert_double_le(fabs(su / n - 0.5), 5 * sqrt(1.0 / 12 / n));
    ck_assert_double_le(fabs(sn / n), 5 * sqrt(1.0 / n));
    ck_assert_double_le(fabs(sn2 / n - 1), 5 * sqrt(2.0 / n));
    ck_assert_double_le(fabs(sn4 / n - 3), 5 * sqrt(96.0 / n));   // Var(z^4) = 96
    for (int k = 0; k < 10; k++)
        ck_assert_double_le(fabs(counts[k] - n / 10.0), 5 * sqrt(n * 0.09));
}
END_TEST

/* ---- core: vector kernels --------------------------------------------------- */

START_TEST(vec_kernels)
{
    Arena ar;
    arena_init(&ar, 1 << 20);
    Rng r;
    rng_seed(&r, 3, 0);
    size_t sizes[] = {1, 7, 100, 70000};   // the last crosses the OpenMP threshold
    for (int s = 0; s < 4; s++) {
        size_t n = sizes[s];
        real *a = arena_alloc(&ar, n * sizeof(real)), *b = arena_alloc(&ar, n * sizeof(real));
        real *o = arena_alloc(&ar, n * sizeof(real));
        rng_fill_normal(&r, a, n, 0, 1);
        rng_fill_uniform(&r, b, n, -2, 2);
        vec_add(o, a, b, n);
        for (size_t i = 0; i < n; i++) ck_assert(o[i] == a[i] + b[i]);
        vec_sub(o, a, b, n);
        for (size_t i = 0; i < n; i++) ck_assert(o[i] == a[i] - b[i]);
        vec_mul(o, a, b, n);
        for (size_t i = 0; i < n; i++) ck_assert(o[i] == a[i] * b[i]);
        vec_scale(o, a, (real)0.5, n);
        for (size_t i = 0; i < n; i++) ck_assert(o[i] == (real)0.5 * a[i]);
        vec_copy(o, b, n);
        vec_axpy(o, 3, a, n);
        for (size_t i = 0; i < n; i++) ck_assert(o[i] == b[i] + 3 * a[i]);
        double sum = 0, dot = 0;
        for (size_t i = 0; i < n; i++) { sum += a[i]; dot += (double)a[i] * b[i]; }
        ck_assert_double_eq_tol(vec_sum(a, n), sum, 1e-9 * (1 + n));
        ck_assert_double_eq_tol(vec_mean(a, n), sum / n, 1e-9);
        ck_assert_double_eq_tol(vec_dot(a, b, n), dot, 1e-9 * (1 + n));
        vec_fill(o, 2, n);
        ck_assert_double_eq(vec_sum(o, n), 2.0 * n);
    }
    arena_free(&ar);
}
END_TEST

// A float sum of 10^7 values of 0.1 is off by percents; ours accumulates in
// double and is exact to float's precision.
START_TEST(vec_sum_is_accurate)
{
    size_t n = 10000000;
    real *x = malloc(n * sizeof(real));
    vec_fill(x, (real)0.1, n);
    ck_assert_double_eq_tol(vec_sum(x, n), n * (double)(real)0.1, 1e-6 * n * 0.1);
    free(x);
}
END_TEST

/* ---- core: GEMM against the triple loop ----------------------------------------- */

// Every transpose combination, odd sizes, alpha/beta, and leading dimensions
// larger than the row (a sub-matrix), so that no stride mix-up can hide.
// exp_vec against libm's exp in double, on a fine grid of [-87, 88] and
// at the points where the range reduction switches n (x = (k + 1/2) ln 2):
// relative error below 3e-7 (the float build; the double build is libm).
// Beyond the clamp it stays finite and positive.
START_TEST(exp_vec_is_accurate)
{
    double worst = 0;
    for (int i = 0; i <= 175000; i++) {
        double x = -87.0 + i * 1e-3;
        worst = fmax(worst, fabs(exp_vec((real)x) - exp((double)(real)x)) / exp((double)(real)x));
    }
    for (int k = -125; k <= 126; k++) {
        double x = (k + 0.5) * log(2.0);
        if (x < -87 || x > 88) continue;
        worst = fmax(worst, fabs(exp_vec((real)x) - exp((double)(real)x)) / exp((double)(real)x));
    }
    ck_assert_msg(worst < 3e-7, "exp_vec: worst relative error %g", worst);
    ck_assert(exp_vec(-200) > 0 && exp_vec(-200) < 1e-37);
    ck_assert(isfinite(exp_vec(200)) && exp_vec(200) > 1e38);
    ck_assert_double_eq(exp_vec(0), 1);
}
END_TEST

START_TEST(gemm_matches_reference)
{
    Rng r;
    rng_seed(&r, 11, 0);
    for (int trial = 0; trial < 40; trial++) {
        int ta = trial & 1, tb = (trial >> 1) & 1;
        int M = 1 + rng_below(&r, 40), N = 1 + rng_below(&r, 40), K = 1 + rng_below(&r, 70);
        int pad = trial % 3;
        int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
        size_t nc = (size_t)M * ldc;
        real *A = malloc(na * sizeof(real)), *B = malloc(nb * sizeof(real));
        real *C1 = malloc(nc * sizeof(real)), *C2 = malloc(nc * sizeof(real));
        rng_fill_normal(&r, A, na, 0, 1);
        rng_fill_normal(&r, B, nb, 0, 1);
        rng_fill_normal(&r, C1, nc, 0, 1);
        vec_copy(C2, C1, nc);
        real alpha = (real)(0.5 + rng_uniform(&r)), beta = trial % 4 == 0 ? 0 : (real)0.7;
        gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double x = C1[i * ldc + j], y = C2[i * ldc + j];
                ck_assert_msg(fabs(x - y) <= TOL * 10 * sqrt(K) * (1 + fabs(y)),
                              "ta=%d tb=%d M=%d N=%d K=%d C[%d,%d]: %g vs %g",
                              ta, tb, M, N, K, i, j, x, y);
            }
        free(A); free(B); free(C1); free(C2);
    }
}
END_TEST

// A tiny case computed by hand: [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50].
START_TEST(gemm_by_hand)
{
    real A[] = {1, 2, 3, 4}, B[] = {5, 6, 7, 8}, C[4], R[4];
    gemm(0, 0, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2);
    gemm_ref(0, 0, 2, 2, 2, 1, A, 2, B, 2, 0, R, 2);
    real expect[] = {19, 22, 43, 50};
    for (int i = 0; i < 4; i++) {
        ck_assert(C[i] == expect[i]);
        ck_assert(R[i] == expect[i]);
    }
    gemm(1, 0, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2);   // A^T B = [26 30; 38 44]
    ck_assert(C[0] == 26 && C[1] == 30 && C[2] == 38 && C[3] == 44);
}
END_TEST

Suite *suite_00_tensor(void)
{
    Suite *s = suite_create("00_tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, arena_aligns_and_grows);
    tcase_add_test(tc, arena_steady_state_has_no_mallocs);
    tcase_add_test(tc, arena_calloc_zeroes_reused_memory);
    tcase_add_test(tc, tensor_shapes);
    tcase_add_test(tc, params_are_one_block);
    tcase_add_test(tc, rng_matches_pcg32_reference);
    tcase_add_test(tc, rng_is_reproducible_and_streams_differ);
    tcase_add_test(tc, rng_distributions);
    tcase_add_test(tc, rng_advance_matches_stepping);
    tcase_add_test(tc, vec_kernels);
    tcase_add_test(tc, vec_sum_is_accurate);
    tcase_add_test(tc, exp_vec_is_accurate);
    tcase_add_test(tc, gemm_matches_reference);
    tcase_add_test(tc, gemm_by_hand);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
