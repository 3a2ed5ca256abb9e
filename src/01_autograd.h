/* 01_autograd.h — reverse-mode automatic differentiation on a tape.
 *
 * Chapter 01 of the book (book/01_autograd.md).
 *
 * Every differentiable op comes in three layers, in this order in the .c file:
 *   X_forward(out, ..., sizes)         plain kernel on raw arrays
 *   X_backward(dx, ..., dout, saved)   plain kernel; ACCUMULATES (+=) into dx
 *   ag_X(tape, inputs...)              runs X_forward and, when the tape is
 *                                      recording, appends a Node whose
 *                                      backward calls X_backward
 * tape_backward(loss) walks the nodes in reverse. With recording off (no-grad
 * mode: sampling, evaluation) ag_X only runs the forward and records nothing.
 *
 * Gradients of intermediate tensors are allocated lazily from the tape's arena
 * on first use; parameters bring their own (see ParamSet). Later modules add
 * their ops (conv, GroupNorm, attention) with the same three layers.
 */
#ifndef DDPM_AUTOGRAD_H
#define DDPM_AUTOGRAD_H

#include <stdio.h>
#include "00_tensor.h"

typedef struct Tape Tape;
typedef struct Node Node;
typedef void (*BackwardFn)(Tape *tp, Node *nd);

#define NODE_MAX_IN 4

struct Node {
    const char *op;            // "mul", "matmul", ...: for DOT and errors
    Tensor *out;
    Tensor *in[NODE_MAX_IN];   // inputs; only those with requires_grad get a grad
    int n_in;
    BackwardFn backward;       // reads out->grad, accumulates into in[i]->grad
    void *saved;               // op-specific values kept from the forward
    real s;                    // a scalar argument (e.g. the factor of scale)
    int arg[4];                // small integer arguments (e.g. transposes)
};

struct Tape {
    Arena *arena;   // outputs, saved values and gradient buffers of one step
    Node *nodes;    // [cap] the Wengert list, in execution order
    int len, cap;
    int recording;  // 0 = no-grad mode
};

void  tape_init(Tape *tp, Arena *arena);
void  tape_reset(Tape *tp);             // forget all nodes; pair with arena_reset
void  tape_free(Tape *tp);
int   tape_set_recording(Tape *tp, int on);   // returns the previous setting
Node *tape_record(Tape *tp, const char *op, BackwardFn fn, Tensor *out,
                  int n_in, Tensor *const *in);  // NULL if nothing to record
real *tape_grad(Tape *tp, Tensor *t);   // t->grad, allocated zeroed if missing
real *tape_grad_if(Tape *tp, Tensor *t);  // the same if t requires a grad, else NULL
void  tape_backward(Tape *tp, Tensor *loss);   // loss has one element
void  tape_backward_from(Tape *tp, Tensor *out, const real *dout);
void  tape_write_dot(const Tape *tp, FILE *f, const char *title);

/* ---- kernels: forward / backward pairs on raw arrays ------------------- */

void add_backward(real *da, real *db, const real *dout, size_t n);
void sub_backward(real *da, real *db, const real *dout, size_t n);
void mul_backward(real *da, real *db, const real *dout,
                  const real *a, const real *b, size_t n);
void scale_backward(real *dx, const real *dout, real s, size_t n);
void sum_backward(real *dx, real dout, size_t n);
void exp_forward(real *out, const real *x, size_t n);
void exp_backward(real *dx, const real *dout, const real *out, size_t n);
void log_forward(real *out, const real *x, size_t n);
void log_backward(real *dx, const real *dout, const real *x, size_t n);
void sigmoid_forward(real *out, const real *x, size_t n);
void sigmoid_backward(real *dx, const real *dout, const real *out, size_t n);
void silu_forward(real *out, const real *x, size_t n);
void silu_backward(real *dx, const real *dout, const real *x, size_t n);
void square_forward(real *out, const real *x, size_t n);
void square_backward(real *dx, const real *dout, const real *x, size_t n);
void matmul_forward(real *out, const real *a, int ta, const real *b, int tb,
                    int M, int N, int K);
void matmul_backward(real *da, real *db, const real *dout,
                     const real *a, int ta, const real *b, int tb,
                     int M, int N, int K);
void add_channel_forward(real *out, const real *x, const real *v,
                         int N, int C, size_t HW, int per_sample);
void add_channel_backward(real *dx, real *dv, const real *dout,
                          int N, int C, size_t HW, int per_sample);
void mul_channel_forward(real *out, const real *x, const real *v,
                         int N, int C, size_t HW, int per_sample);
void mul_channel_backward(real *dx, real *dv, const real *dout,
                          const real *x, const real *v,
                          int N, int C, size_t HW, int per_sample);
// Per-image ops, the per-channel ops with C = 1: v[n] over all D values of
// image n. out [N] = mean of x [N, D] over each image.
void mean_flat_forward(real *out, const real *x, int N, size_t D);
void mean_flat_backward(real *dx, const real *dout, int N, size_t D);
// out [N, D] = a[n] x + b[n] y (y may be NULL); a zero coefficient skips its term.
void axpby_per_sample_forward(real *out, const real *a, const real *x, const real *b,
                              const real *y, int N, size_t D);
void axpby_per_sample_backward(real *dx, real *dy, const real *dout, const real *a,
                               const real *b, int N, size_t D);
// out [N, D] = a[n] x + b[n].
void affine_per_sample_forward(real *out, const real *x, const real *a, const real *b,
                               int N, size_t D);
void affine_per_sample_backward(real *dx, const real *dout, const real *a, int N, size_t D);
// out = min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
void clip_forward(real *out, const real *x, real lo, real hi, size_t n);
void clip_backward(real *dx, const real *dout, const real *x, real lo, real hi, size_t n);

/* ---- ops on the tape ---------------------------------------------------- */

Tensor *ag_add(Tape *tp, Tensor *a, Tensor *b);       // same shapes
Tensor *ag_sub(Tape *tp, Tensor *a, Tensor *b);
Tensor *ag_mul(Tape *tp, Tensor *a, Tensor *b);
Tensor *ag_scale(Tape *tp, Tensor *x, real s);
Tensor *ag_sum(Tape *tp, Tensor *x);                  // -> [1]
Tensor *ag_mean(Tape *tp, Tensor *x);                 // -> [1]
Tensor *ag_exp(Tape *tp, Tensor *x);
Tensor *ag_log(Tape *tp, Tensor *x);
Tensor *ag_sigmoid(Tape *tp, Tensor *x);
Tensor *ag_silu(Tape *tp, Tensor *x);
Tensor *ag_square(Tape *tp, Tensor *x);
Tensor *ag_matmul(Tape *tp, Tensor *a, int ta, Tensor *b, int tb); // 2-D
Tensor *ag_add_channel(Tape *tp, Tensor *x, Tensor *v); // v: [C] or [N, C]
Tensor *ag_mul_channel(Tape *tp, Tensor *x, Tensor *v); // v: [C] or [N, C]
Tensor *ag_mean_flat(Tape *tp, Tensor *x);              // [N, ...] -> [N]
// a, b [N]: one coefficient per image, constants (copied onto the tape).
Tensor *ag_axpby_per_sample(Tape *tp, const real *a, Tensor *x, const real *b, Tensor *y);
Tensor *ag_affine_per_sample(Tape *tp, Tensor *x, const real *a, const real *b);
Tensor *ag_clip(Tape *tp, Tensor *x, real lo, real hi);
Tensor *ag_detach(Tape *tp, Tensor *x);   // same values, no gradient flows back

#endif
