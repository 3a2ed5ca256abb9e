/* ch01_autograd.c — the experiments of chapter 01 (make chapter1).
 *
 * Built against the double-precision library (as the gradient checks are).
 * 1. The tape of a small expression, drawn by Graphviz from tape_write_dot
 *    -> figures/ch01_graph.{png,svg}
 * 2. Gradient-check error per op, next to the error a 1%-wrong gradient
 *    would show -> figures/ch01_gradcheck.{png,svg}
 * 3. Finite-difference error against the step h (the "V" of truncation
 *    against rounding error) -> figures/ch01_step.{png,svg}
 */
#include <stdio.h>
#include <string.h>

#include "01_autograd.h"
#include "gradcheck.h"

// One op applied to its inputs; `which` picks it (see op_names).
static const char *op_names[] = {"add", "sub", "mul", "scale", "sum", "mean", "exp",
                                 "log", "sigmoid", "silu", "square", "matmul",
                                 "add_channel", "mul_channel"};
#define N_OPS (int)(sizeof op_names / sizeof op_names[0])

static Tensor *apply_op(Tape *tp, Tensor **in, void *ctx)
{
    int which = *(int *)ctx;
    Tensor *a = in[0], *b = in[1];
    switch (which) {
    case 0: return ag_add(tp, a, b);
    case 1: return ag_sub(tp, a, b);
    case 2: return ag_mul(tp, a, b);
    case 3: return ag_scale(tp, a, 0.3);
    case 4: return ag_sum(tp, a);
    case 5: return ag_mean(tp, a);
    case 6: return ag_exp(tp, a);
    case 7: return ag_log(tp, ag_exp(tp, a));    // log of something positive
    case 8: return ag_sigmoid(tp, a);
    case 9: return ag_silu(tp, a);
    case 10: return ag_square(tp, a);
    case 11: return ag_matmul(tp, in[2], 0, in[3], 1);
    case 12: return ag_add_channel(tp, in[4], in[5]);
    default: return ag_mul_channel(tp, in[4], in[5]);
    }
}

// Inputs for every op: a, b [3,4]; matmul [3,5] x [4,5]^T; x [2,3,2,2], v [3].
static void make_inputs(Arena *ar, Tensor **in, Rng *r)
{
    int shapes[6][4] = {{3, 4}, {3, 4}, {3, 5}, {4, 5}, {2, 3, 2, 2}, {3}};
    int ndims[6] = {2, 2, 2, 2, 4, 1};
    for (int i = 0; i < 6; i++) {
        in[i] = tensor_new(ar, ndims[i], shapes[i]);
        rng_fill_normal(r, in[i]->data, in[i]->size, 0, 1);
        in[i]->requires_grad = 1;
    }
}

static void gradcheck_table(Tensor **in)
{
    FILE *f = fopen("figures/data/ch01_gradcheck.dat", "w");
    fprintf(f, "# op  max_rel_error  max_rel_error_if_1pct_wrong\n");
    printf("%-12s %14s %18s %8s\n", "op", "max rel error", "score (<=1 passes)", "1% off");
    for (int k = 0; k < N_OPS; k++) {
        GradCheck g = gradcheck(apply_op, in, 6, &k, (uint64_t)k);
        fprintf(f, "%s %.3e %.3e\n", op_names[k], g.max_rel > 1e-16 ? g.max_rel : 1e-16,
                0.01 / 1.01);
        printf("%-12s %14.2e %18.3g %8s\n", op_names[k], g.max_rel, g.worst,
               g.worst_1pct > 1 ? "caught" : "MISSED");
    }
    fclose(f);
    f = fopen("figures/data/ch01_gradcheck.gp", "w");
    fprintf(f,
        "set style data histograms\nset style fill solid 0.8 border -1\nset boxwidth 0.7\n"
        "set logscale y\nset yrange [1e-13:1]\nset grid ytics\nset xtics rotate by -35 noenhanced\nset format y '10^{%%L}'\n"
        "set ylabel 'max relative error, analytic vs numeric'\nset key top left\n"
        "set title 'Gradient check per op (double precision, h = 1e-6)'\n"
        "p = \"plot 'figures/data/ch01_gradcheck.dat' u 2:xtic(1) t 'measured', "
        "'' u 3 t 'what a 1%% wrong gradient scores'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch01_gradcheck.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch01_gradcheck.svg'\n@p\n");
    fclose(f);
}

// Error of the central difference as h shrinks: truncation error falls as
// h^2 until rounding error (machine epsilon / h) takes over.
static void step_sweep(Tensor **in)
{
    FILE *f = fopen("figures/data/ch01_step.dat", "w");
    fprintf(f, "# h  silu  log  matmul\n");
    int ops[3] = {9, 7, 11};
    for (int e = 1; e <= 13; e++) {
        double h = 1;
        for (int i = 0; i < e; i++) h /= 10;
        fprintf(f, "%g", h);
        for (int k = 0; k < 3; k++)
            fprintf(f, " %.3e", gradcheck_h(apply_op, in, 6, &ops[k], 1, h).max_rel + 1e-17);
        fprintf(f, "\n");
    }
    fclose(f);
    f = fopen("figures/data/ch01_step.gp", "w");
    fprintf(f,
        "set logscale xy\nset grid\nset format x '10^{%%L}'\nset format y '10^{%%L}'\n"
        "set xlabel 'finite-difference step h'\nset ylabel 'max relative error'\n"
        "set title 'Central differences in double precision: truncation vs rounding'\n"
        "p = \"plot 'figures/data/ch01_step.dat' u 1:2 w lp pt 7 t 'silu', "
        "'' u 1:3 w lp pt 5 t 'log(exp(x)) = x (linear)', '' u 1:4 w lp pt 9 t 'matmul (exact for any h)'\"\n"
        "set terminal pngcairo size 900,560 font 'Sans,11'\nset output 'figures/ch01_step.png'\n@p\n"
        "set terminal svg size 900,560 font 'Sans,11'\nset output 'figures/ch01_step.svg'\n@p\n");
    fclose(f);
}

// The graph of y = mean((silu(x W^T + b) - t)^2): a one-layer regression.
static void graph_figure(Arena *ar, Rng *r)
{
    Tape tp;
    tape_init(&tp, ar);
    int sx[2] = {4, 3}, sw[2] = {2, 3}, sb[1] = {2};
    Tensor *x = tensor_new(ar, 2, sx), *w = tensor_new(ar, 2, sw), *b = tensor_new(ar, 1, sb);
    Tensor *t = tensor_new(ar, 2, (int[]){4, 2});
    rng_fill_normal(r, x->data, x->size, 0, 1);
    rng_fill_normal(r, w->data, w->size, 0, 1);
    vec_fill(b->data, 0, 2);
    vec_fill(t->data, 0, t->size);
    x->name = "x";
    w->name = "W";
    b->name = "b";
    t->name = "y";
    w->requires_grad = b->requires_grad = 1;
    Tensor *h = ag_silu(&tp, ag_add_channel(&tp, ag_matmul(&tp, x, 0, w, 1), b));
    Tensor *loss = ag_mean(&tp, ag_square(&tp, ag_sub(&tp, h, t)));
    tape_backward(&tp, loss);
    FILE *f = fopen("figures/data/ch01_graph.dot", "w");
    tape_write_dot(&tp, f, "loss = mean((silu(x W^T + b) - y)^2)");
    fclose(f);
    printf("graph: %d nodes on the tape, loss %.6f, dL/db = [%.6f, %.6f]\n",
           tp.len, loss->data[0], b->grad[0], b->grad[1]);
    tape_free(&tp);
}

int main(void)
{
    Arena ar;
    arena_init(&ar, 1 << 20);
    Rng r;
    rng_seed(&r, 2020, 0);
    Tensor *in[6];
    make_inputs(&ar, in, &r);
    gradcheck_table(in);
    step_sweep(in);
    graph_figure(&ar, &r);
    arena_free(&ar);
    return 0;
}
