/* ch03_attention.c — the experiments of chapter 03 (make chapter3).
 *
 * An untrained AttnBlock (C = 64, the tiny config's width at 16x16) looks
 * at one 16x16 input made of two regions, a disk on a background: each
 * region has its own feature vector, plus noise. Two sets of weights:
 *   "similarity"  q = k = identity: a query attends to keys that look like it
 *   "random"      q, k with fan-avg (Glorot) scale, as at initialisation
 * 1. the attention matrix p [256, 256], positions sorted disk first
 *    -> figures/ch03_attn_matrix.{png,svg}
 * 2. one query's row of p laid back on the 16x16 grid, for a query in the
 *    disk and one in the background -> figures/ch03_query_map.{png,svg}
 * 3. the block's cost vs resolution (C = 128, batch 8) next to one 3x3
 *    convolution of the same width -> figures/ch03_cost.{png,svg}
 *
 * Writes data and gnuplot scripts into figures/data/; the Makefile runs
 * gnuplot on them from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "03_attention.h"
#include "bench.h"

enum { C = 64, S = 16, HW = S * S };

static FILE *open_or_die(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "ch03: cannot write %s (run from the repository root)\n", path);
        exit(1);
    }
    return f;
}

// Inside the disk of radius 4.5 around row 6, column 9?
static int in_disk(int pos)
{
    double dy = pos / S - 6, dx = pos % S - 9;
    return dy * dy + dx * dx <= 4.5 * 4.5;
}

// x [1, C, 16, 16]: feature a[c] inside the disk, b[c] outside, noise 0.25.
static Tensor *two_regions(Arena *ar, Rng *r)
{
    real a[C], b[C];
    rng_fill_normal(r, a, C, 0, 1);
    rng_fill_normal(r, b, C, 0, 1);
    Tensor *x = tensor_4d(ar, 1, C, S, S);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < HW; i++)
            x->data[c * HW + i] = (in_disk(i) ? a[c] : b[c]) + (real)(0.25 * rng_normal(r));
    x->requires_grad = 1;   // so that the tape records, and keeps p
    return x;
}

// Run the block on the tape and return the attention node's saved p [HW, HW].
static const real *block_weights(Tape *tp, const AttnBlock *blk, Tensor *x)
{
    tape_reset(tp);
    attn_block_forward(tp, blk, x);
    for (int i = 0; i < tp->len; i++)
        if (strcmp(tp->nodes[i].op, "attention") == 0) return tp->nodes[i].saved;
    fprintf(stderr, "ch03: no attention node on the tape\n");
    exit(1);
}

static void set_weights(AttnBlock *blk, int similarity, Rng *r)
{
    Tensor *w[4] = {blk->q_weight, blk->k_weight, blk->v_weight, blk->proj_out_weight};
    for (int i = 0; i < 4; i++) {
        // fan-avg uniform: limit sqrt(6 / (fan_in + fan_out)) = sqrt(3 / C)
        rng_fill_uniform(r, w[i]->data, w[i]->size, -sqrt(3.0 / C), sqrt(3.0 / C));
        if (similarity && i < 2) {
            vec_fill(w[i]->data, 0, w[i]->size);
            for (int c = 0; c < C; c++) w[i]->data[c * C + c] = 1;
        }
    }
    vec_fill(blk->norm_weight->data, 1, C);
}

// Matrix file for `with image`: row = query, column = key, disk first.
static void write_matrix(const char *path, const real *p, const int *order)
{
    FILE *f = open_or_die(path);
    for (int i = 0; i < HW; i++) {
        for (int j = 0; j < HW; j++)
            fprintf(f, "%.5g ", (double)p[order[i] * HW + order[j]]);
        fputc('\n', f);
    }
    fclose(f);
}

// Grid file: row h, column w, value of one query's attention on key (h, w).
static void write_grid(FILE *f, const real *row)
{
    for (int h = 0; h < S; h++) {
        for (int w = 0; w < S; w++) fprintf(f, "%.5g ", (double)row[h * S + w]);
        fputc('\n', f);
    }
    fputs("\n\n", f);
}

static const char *palette =
    "set palette defined (0 '#ffffff', 1 '#fde725', 2 '#35b779', 3 '#31688e', 4 '#440154')\n";

// Draw the multiplot `panels` (a gnuplot macro) twice: PNG, then SVG.
static void both_terminals(FILE *f, const char *name, int w, int h, const char *layout)
{
    fprintf(f, "set terminal pngcairo size %d,%d font 'Sans,10'\n"
               "set output 'figures/%s.png'\n"
               "set multiplot layout %s title t\n@panels\nunset multiplot\n", w, h, name, layout);
    fprintf(f, "set terminal svg size %d,%d font 'Sans,10'\n"
               "set output 'figures/%s.svg'\n"
               "set multiplot layout %s title t\n@panels\nunset multiplot\n", w, h, name, layout);
}

// Two heat maps side by side (log colour), the disk/background boundary dashed.
static void write_matrix_script(int n_disk)
{
    FILE *f = open_or_die("figures/data/ch03_attn_matrix.gp");
    fputs(palette, f);
    fprintf(f, "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n", HW - 1, HW - 1);
    fputs("set size ratio -1\nunset key\nset logscale cb\n"
          "set xlabel 'key position j'\nset ylabel 'query position i'\n", f);
    fprintf(f, "set arrow 1 from %d.5, graph 0 to %d.5, graph 1 nohead dt 2 lc rgb '#d62728' front\n"
               "set arrow 2 from graph 0, first %d.5 to graph 1, first %d.5 nohead dt 2 "
               "lc rgb '#d62728' front\n", n_disk - 1, n_disk - 1, n_disk - 1, n_disk - 1);
    fprintf(f, "t = 'Attention weights p[i][j] (log colour) of one 16x16 input; "
               "positions sorted: %d in the disk, then %d background'\n", n_disk, HW - n_disk);
    fputs("d = 'figures/data/ch03_attn_matrix_'\n"
          "panels = \"set cbrange [1e-5:0.3]; set title 'q = k = identity (similarity)'; "
          "plot d.'sim.dat' matrix w image; "
          "set cbrange [*:*]; set title 'q, k random (fan-avg init)'; "
          "plot d.'rand.dat' matrix w image\"\n", f);
    both_terminals(f, "ch03_attn_matrix", 1000, 540, "1,2");
    fclose(f);
}

// 2 x 3 panels: the input, then each weight set's two query maps; the query
// position is the red dot.
static void write_map_script(int q_disk, int q_back)
{
    FILE *f = open_or_die("figures/data/ch03_query_map.gp");
    fputs(palette, f);
    fprintf(f, "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n", S - 1, S - 1);
    fputs("set size ratio -1\nunset key\nset xtics 4\nset ytics 4\n"
          "d = 'figures/data/ch03_query_map.dat'\n"
          "t = 'One row of p (one query) laid back on the 16x16 grid'\n", f);
    fprintf(f, "qd = \"set label 1 '' at %d,%d point pt 7 ps 1.5 lc rgb '#d62728' front\"\n"
               "qb = \"set label 1 '' at %d,%d point pt 7 ps 1.5 lc rgb '#d62728' front\"\n",
            q_disk % S, q_disk / S, q_back % S, q_back / S);
    fputs("in = \"unset label 1; set title 'input: disk (1), background (0)'; "
          "plot d index 0 matrix w image\"\n"
          "panels = \"@in; "
          "@qd; set title 'similarity: query in the disk'; plot d index 1 matrix w image; "
          "@qb; set title 'similarity: query in the background'; plot d index 2 matrix w image; "
          "@in; "
          "@qd; set title 'random: query in the disk'; plot d index 3 matrix w image; "
          "@qb; set title 'random: query in the background'; plot d index 4 matrix w image\"\n",
          f);
    both_terminals(f, "ch03_query_map", 900, 560, "2,3");
    fclose(f);
}

static void attention_maps(void)
{
    Rng r;
    rng_seed(&r, 2020, 3);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "attn", C);
    params_alloc(&ps);
    Arena ar;
    arena_init(&ar, 1 << 24);
    Tape tp;
    tape_init(&tp, &ar);
    Tensor *x = two_regions(&ar, &r);

    int order[HW], n_disk = 0;
    for (int i = 0; i < HW; i++) if (in_disk(i)) order[n_disk++] = i;
    for (int i = 0, k = n_disk; i < HW; i++) if (!in_disk(i)) order[k++] = i;
    const int q_disk = 6 * S + 9, q_back = 13 * S + 2;   // two query positions

    FILE *grid = open_or_die("figures/data/ch03_query_map.dat");
    real mask[HW];
    for (int i = 0; i < HW; i++) mask[i] = (real)in_disk(i);
    write_grid(grid, mask);                              // index 0: the input
    for (int sim = 1; sim >= 0; sim--) {
        set_weights(&blk, sim, &r);
        const real *p = block_weights(&tp, &blk, x);
        write_matrix(sim ? "figures/data/ch03_attn_matrix_sim.dat"
                         : "figures/data/ch03_attn_matrix_rand.dat", p, order);
        write_grid(grid, p + q_disk * HW);               // index 1, 3
        write_grid(grid, p + q_back * HW);               // index 2, 4
        double on_disk = 0, on_back = 0;
        for (int j = 0; j < HW; j++) on_disk += in_disk(j) ? p[q_disk * HW + j] : 0;
        for (int j = 0; j < HW; j++) on_back += in_disk(j) ? 0 : p[q_back * HW + j];
        fprintf(stderr, "%s weights: the disk query puts %.1f%% of its attention on the "
                "disk (%d of %d positions), the background query %.1f%% on the "
                "background\n", sim ? "similarity" : "random", 100 * on_disk, n_disk, HW,
                100 * on_back);
    }
    fclose(grid);
    tape_free(&tp);
    arena_free(&ar);
    params_free(&ps);
    write_matrix_script(n_disk);
    write_map_script(q_disk, q_back);
}

/* ---- cost vs resolution --------------------------------------------------- */

// Seconds per call of the block (or, with conv3x3, of one 3x3 conv C -> C),
// forward in no-grad mode or forward+backward on the tape, batch N.
static double time_layer(int side, int N, int Cw, int conv3x3, int backward)
{
    Rng r;
    rng_seed(&r, 7, 0);
    ParamSet ps;
    params_init(&ps);
    AttnBlock blk;
    attn_block_init(&blk, &ps, "attn", Cw);
    Tensor *w = params_add(&ps, "conv.weight", 4, (int[]){Cw, Cw, 3, 3});
    Tensor *b = params_add(&ps, "conv.bias", 1, (int[]){Cw});
    params_alloc(&ps);
    rng_fill_normal(&r, ps.data, ps.total, 0, (real)(1 / sqrt((double)Cw)));
    Arena fixed, step;
    arena_init(&fixed, 1 << 20);
    arena_init(&step, 1 << 20);
    Tensor *x = tensor_4d(&fixed, N, Cw, side, side);
    real *g = arena_alloc(&fixed, x->size * sizeof(real));
    rng_fill_normal(&r, x->data, x->size, 0, 1);
    rng_fill_normal(&r, g, x->size, 0, 1);
    x->requires_grad = 1;
    Tape tp;
    tape_init(&tp, &step);
    tape_set_recording(&tp, backward);
    double s;
    BENCH_BEST(s, 0.3, {
        x->grad = NULL;
        Tensor *out = conv3x3 ? ag_conv3x3(&tp, x, w, b) : attn_block_forward(&tp, &blk, x);
        if (backward) tape_backward_from(&tp, out, g);
        tape_reset(&tp);
        arena_reset(&step);
    });
    tape_free(&tp);
    arena_free(&step);
    arena_free(&fixed);
    params_free(&ps);
    return s;
}

static void cost_curve(void)
{
    const int sides[] = {4, 8, 16, 32}, N = 8, Cw = 128;
    FILE *f = open_or_die("figures/data/ch03_cost.dat");
    fprintf(f, "# side  HW  attn_fwd_ms  attn_fwdbwd_ms  conv3x3_fwd_ms  conv3x3_fwdbwd_ms"
               "   (C = %d, batch %d, float32)\n", Cw, N);
    fprintf(stderr, "cost, C = %d, batch %d, ms per call:\n"
                    "   side   attn fwd  attn f+b  conv3x3 fwd  conv3x3 f+b\n", Cw, N);
    double last = 0;
    for (int i = 0; i < 4; i++) {
        int s = sides[i];
        double t[4];
        for (int k = 0; k < 4; k++) t[k] = 1e3 * time_layer(s, N, Cw, k >= 2, k & 1);
        fprintf(f, "%d %d %.4f %.4f %.4f %.4f\n", s, s * s, t[0], t[1], t[2], t[3]);
        fprintf(stderr, "  %2dx%-2d %9.2f %9.2f %12.2f %12.2f\n", s, s, t[0], t[1], t[2], t[3]);
        last = t[0];
    }
    fclose(f);

    f = open_or_die("figures/data/ch03_cost.gp");
    fputs("set logscale xy\nset grid\nset key top left\nset xrange [12:1400]\n"
          "set xtics ('4x4' 16, '8x8' 64, '16x16' 256, '32x32' 1024)\n"
          "set xlabel 'resolution (HW positions, log scale)'\n"
          "d = 'figures/data/ch03_cost.dat'\n", f);
    fprintf(f, "set ylabel 'ms per call, batch %d (log scale)'\n"
               "t = 'AttnBlock vs one 3x3 convolution, C = %d, float32, 2 cores'\n"
               "q(x) = %g * (x / 1024.0)**2\n", N, Cw, last);
    fputs("panels = \"plot d u 2:3 w lp pt 7 lc rgb '#1f77b4' t 'AttnBlock forward', "
          "d u 2:4 w lp pt 5 lc rgb '#1f77b4' dt 2 t 'AttnBlock forward+backward', "
          "d u 2:5 w lp pt 7 lc rgb '#ff7f0e' t 'conv 3x3 forward', "
          "d u 2:6 w lp pt 5 lc rgb '#ff7f0e' dt 2 t 'conv 3x3 forward+backward', "
          "q(x) w l lc rgb '#888888' dt 3 t '(HW)^2 through the 32x32 forward'\"\n", f);
    both_terminals(f, "ch03_cost", 900, 560, "1,1");
    fclose(f);
}

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    attention_maps();
    cost_curve();
    return 0;
}
