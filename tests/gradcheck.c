/* gradcheck.c — see gradcheck.h. */
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// L = sum_i r_i out_i, evaluated with recording off in a scratch arena.
static double eval_loss(GradFn f, Tensor **in, void *ctx, const real *r, Arena *scratch)
{
    Tape tp;
    tape_init(&tp, scratch);
    tape_set_recording(&tp, 0);
    Tensor *out = f(&tp, in, ctx);
    double L = vec_dot(out->data, r, out->size);
    tape_free(&tp);
    arena_reset(scratch);
    return L;
}

static double score(double a, double n)
{
    double m = fabs(a) > fabs(n) ? fabs(a) : fabs(n);
    return fabs(a - n) / (GRADCHECK_ATOL + GRADCHECK_RTOL * m);
}

static GradCheck check(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed,
                       double h, size_t max_per_input)
{
    GradCheck g = {0};
    Arena arena, scratch;
    arena_init(&arena, 1 << 20);
    arena_init(&scratch, 1 << 20);

    // Analytic: one forward on the tape, one backward seeded with r.
    Tape tp;
    tape_init(&tp, &arena);
    real *kept_grad[NODE_MAX_IN * 4];
    DDPM_CHECK(n_in <= NODE_MAX_IN * 4, "gradcheck: %d inputs", n_in);
    for (int i = 0; i < n_in; i++) {
        kept_grad[i] = in[i]->grad;
        in[i]->grad = NULL;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i]->requires_grad) in[i]->grad = arena_calloc(&arena, in[i]->size * sizeof(real));
    Tensor *out = f(&tp, in, ctx);
    Rng rng;
    rng_seed(&rng, seed, 77);
    real *r = malloc(out->size * sizeof(real));
    rng_fill_normal(&rng, r, out->size, 0, 1);
    tape_backward_from(&tp, out, r);

    // Numeric: perturb one element at a time, both ways.
    for (int i = 0; i < n_in; i++) {
        if (!in[i]->requires_grad) continue;
        size_t n = in[i]->size;
        int sample = max_per_input && n > max_per_input;
        for (size_t k = 0; k < (sample ? max_per_input : n); k++) {
            size_t j = sample ? rng_below(&rng, (uint32_t)n) : k;
            real keep = in[i]->data[j];
            in[i]->data[j] = keep + h;
            double Lp = eval_loss(f, in, ctx, r, &scratch);
            in[i]->data[j] = keep - h;
            double Lm = eval_loss(f, in, ctx, r, &scratch);
            in[i]->data[j] = keep;
            double num = (Lp - Lm) / (2 * h), an = in[i]->grad[j];
            double s = score(an, num), s1 = score(1.01 * an, num);
            double m = fmax(fmax(fabs(an), fabs(num)), GRADCHECK_ATOL);
            if (fabs(an - num) / m > g.max_rel) g.max_rel = fabs(an - num) / m;
            if (s1 > g.worst_1pct) g.worst_1pct = s1;
            if (s > g.worst || g.n_checked == 0) {
                g.worst = s;
                g.where_input = i;
                g.where_index = (int)j;
                g.analytic = an;
                g.numeric = num;
            }
            g.n_checked++;
        }
    }
    free(r);
    tape_free(&tp);
    for (int i = 0; i < n_in; i++) in[i]->grad = kept_grad[i];
    arena_free(&arena);
    arena_free(&scratch);
    return g;
}

GradCheck gradcheck(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed)
{
    return check(f, in, n_in, ctx, seed, GRADCHECK_H, 0);
}

GradCheck gradcheck_h(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed, double h)
{
    return check(f, in, n_in, ctx, seed, h, 0);
}

GradCheck gradcheck_sample(GradFn f, Tensor **in, int n_in, void *ctx, uint64_t seed,
                           size_t k)
{
    return check(f, in, n_in, ctx, seed, GRADCHECK_H, k);
}

Tensor *gradcheck_random(Arena *ar, Rng *r, int ndim, const int *shape, double std)
{
    Tensor *t = tensor_new(ar, ndim, shape);
    rng_fill_normal(r, t->data, t->size, 0, (real)std);
    t->requires_grad = 1;
    return t;
}
