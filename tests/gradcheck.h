/* gradcheck.h — compare every analytic gradient with central differences.
 *
 * Used by every test suite (and the chapter 01 notebook). Build with
 * -DDDPM_DOUBLE: in double precision a central difference with h = 1e-6 is
 * accurate to about 1e-9, so the tolerance below can be tight enough that a
 * gradient off by 1% fails — and gradcheck() verifies that claim on every
 * call by also scoring the analytic gradient scaled by 1.01.
 *
 * The function under test maps the inputs to any tensor `out`; the check
 * differentiates the scalar L = sum_i r_i out_i for a fixed random r (a
 * random projection, so that no part of the Jacobian can hide behind a sum).
 */
#ifndef DDPM_GRADCHECK_H
#define DDPM_GRADCHECK_H

#include "01_autograd.h"

typedef Tensor *(*GradFn)(Tape *tp, Tensor **in, void *ctx);

typedef struct GradCheck {
    double worst;        // max over elements of |a - n| / (atol + rtol max(|a|,|n|)); pass <= 1
    double max_rel;      // max |a - n| / max(|a|, |n|, atol): for tables and plots
    double worst_1pct;   // the same score for 1.01 * analytic: must be > 1
    int where_input, where_index;  // the element with the worst score
    double analytic, numeric;      // its two values
    size_t n_checked;
} GradCheck;

#define GRADCHECK_H    1e-6
#define GRADCHECK_ATOL 1e-7
#define GRADCHECK_RTOL 1e-5

/* Checks d(r.out)/d(in[i]) for every input with requires_grad set. A leaf
 * that f uses but that is not in `in` must not require a gradient unless it
 * owns its grad buffer (a parameter does). */
GradCheck gradcheck(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed);
GradCheck gradcheck_h(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed,
                      double h);
/* Only k random elements of each input (for networks too big to difference
 * element by element; the ops themselves are checked exhaustively). */
GradCheck gradcheck_sample(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed,
                           size_t k);

/* A tensor of N(0, std^2) values that requires a gradient: the usual input. */
Tensor *gradcheck_random(Arena *ar, Rng *r, int ndim, const int *shape, double std);

/* Check-friendly: fails the current test with a message naming the op. */
#define ck_assert_gradcheck(name, g)                                                  \
    do {                                                                              \
        GradCheck g_ = (g);                                                           \
        ck_assert_msg(g_.n_checked > 0, "%s: no gradient was checked", name);         \
        ck_assert_msg(g_.worst <= 1.0,                                                \
                      "%s: input %d element %d: analytic %.10g vs numeric %.10g "     \
                      "(score %.3g > 1)", name, g_.where_input, g_.where_index,       \
                      g_.analytic, g_.numeric, g_.worst);                             \
        ck_assert_msg(g_.worst_1pct > 1.0,                                            \
                      "%s: check too loose: a 1%% error would pass (score %.3g)",     \
                      name, g_.worst_1pct);                                           \
    } while (0)

#endif
