/* dist.h — data parallelism across processes with MPI, and nothing without it.
 *
 * Appendix "Many processes" of the book (book/appendix_mpi.md). Built with
 * `make MPI=1` (mpicc, -DDDPM_MPI) the program runs as N copies started by
 * `mpirun -np N`, the ranks 0..N-1 of MPI_COMM_WORLD; without DDPM_MPI every
 * function here is the single-process case (rank 0 of 1) and nothing links
 * MPI. The call sites are one-line hooks, the same code in both builds.
 *
 * Training: every rank holds the whole model and optimiser. Each step, every
 * rank draws the whole global batch exactly as one process would (images,
 * flips, t, eps: they cost nothing next to the network), keeps its share of
 * B images, runs the network on it, and the ranks sum their gradients with
 * MPI_Allreduce before the clip; dropout masks of the other ranks' images are
 * stepped over (rng_skip_batch). So clip, Adam and the EMA see the gradient
 * one process would have computed, up to the order of the sums, and every
 * rank applies the same update. Rank 0 alone writes the checkpoint, log and
 * progress; the ranks compare a hash of their whole state every
 * DIST_CHECK_EVERY steps and before every checkpoint.
 *
 * Evaluation (bpd, rd, sample): the images are split across the ranks, each
 * rank's noise is the part of the one-process stream its images would have
 * drawn (per-image generators for sampling; a jump ahead in the stream for
 * bits/dim), and rank 0 gathers the results: the same output as one process.
 */
#ifndef DDPM_DIST_H
#define DDPM_DIST_H

#include "08_sampler.h"
#include "train.h"

// The ranks compare their state every this many training steps.
#define DIST_CHECK_EVERY 100

/* ---- the process group ------------------------------------------------------ */

// MPI_Init (call first in main). On ranks other than 0, stdout goes to
// /dev/null: results are printed once; errors (stderr) from any rank show.
void dist_init(int *argc, char ***argv);
// The end of a command with exit status rc: MPI_Finalize and rc, or, when a
// rank fails, MPI_Abort, which stops every rank (none is left waiting).
int  dist_exit(int rc);
int  dist_rank(void);
int  dist_size(void);
int  dist_is_root(void);   // rank 0: writes files and prints results

/* ---- collectives (no-ops for one process) -------------------------------------- */

void   dist_allreduce_sum(real *x, size_t n);       // x <- the sum of every rank's x
double dist_sum(double x);                           // the sum of every rank's x
int    dist_all(int ok);                             // 1 when ok on every rank
void   dist_bcast(void *buf, size_t bytes);          // rank 0's bytes to all
// Rank 0 receives every rank's `mine` (n_mine doubles each, in rank order)
// into all [sum of n_mine]; other ranks may pass all = NULL.
void   dist_gather(double *all, const double *mine, size_t n_mine);
// Rank rank's share [*lo, *hi) of n items: contiguous, in rank order, sizes
// differing by at most 1, the larger shares first (rank 0 has one if n > 0).
void   dist_share(long n, int rank, long *lo, long *hi);

// A 64-bit hash (FNV-1a over the bytes) of n values, continuing from h
// (start with DIST_HASH_START).
#define DIST_HASH_START 14695981039346656037ULL
uint64_t dist_hash(uint64_t h, const void *x, size_t bytes);
// -1 (on every rank, the same message) unless every rank passed the same h.
int  dist_check_same(uint64_t h, const char *what, Error *err);
// Rank 0's result rc (and its message) on every rank: after rank 0 alone did
// something that can fail.
int  dist_root_status(int rc, Error *err);

/* ---- training hooks (train.c) ------------------------------------------------------ */

// Before the loop: the batch splits (at least one image per rank), ranks
// other than 0 go quiet, and the ranks hold the same state.
int    dist_train_begin(Trainer *tr, Error *err);
// After the whole batch is drawn: keep this rank's images of x0, noise
// [B, C, H, W] (new tensors from the arena) and t [B] (moved to the front),
// and set rng's window so that dropout draws this rank's masks.
void   dist_batch_slice(Arena *a, Tensor **x0, Tensor **noise, int *t, Rng *rng);
// The loss of the whole batch B from this rank's mean over its share.
double dist_batch_loss(double local_mean, int B);
// The gradient of the whole batch's mean loss in ps->grad on every rank,
// from each rank's gradient of its share's mean (MPI_Allreduce).
void   dist_batch_grad(ParamSet *ps, int B);
// The hash of everything that must agree (weights, Adam moments, EMA, step),
// compared across the ranks: always, or (every = 1) every DIST_CHECK_EVERY steps.
int    dist_check_trainer(const Trainer *tr, int every, Error *err);

/* ---- evaluation (ddpm bpd, rd, sample) --------------------------------------------- */
/* The same arguments and results as the one-process functions. On ranks other
 * than 0 these do not return on success: once a rank's share is sent, it
 * finalises MPI and exits with status 0, and rank 0 prints and writes.    */

int dist_calc_bpd_loop(const Diffusion *df, const Model *m, const real *x0, int N, int C,
                       int H, int W, int batch, Rng *rng, int clip, BpdResult *res,
                       void (*progress)(void *ctx, long done, long total), void *ctx,
                       Error *err);
int dist_sample_images(const Sampler *s, real *out, int N, int C, int H, int W,
                       uint64_t seed, uint64_t first, Error *err);
int dist_sample_progressive(const Sampler *s, real *out, real *snaps, int *ts, int N, int C,
                            int H, int W, uint64_t seed, int every, Error *err);

#endif
