/* dist.c — data parallelism with MPI; see dist.h.
 *
 * Appendix "Many processes" (book/appendix_mpi.md). Only the first part,
 * the process group and its collectives, differs between the builds: with
 * DDPM_MPI it calls MPI, without it it is rank 0 of 1. Everything after it
 * (the training hooks, the split evaluation) is written once on top of
 * those collectives and reduces to the one-process code for one rank.
 */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DDPM_MPI
#include <mpi.h>

#define MPI_REAL_T (sizeof(real) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE)

static void finalize_at_exit(void)
{
    int done = 0, started = 0;
    MPI_Initialized(&started);
    if (started) MPI_Finalized(&done);
    if (started && !done) MPI_Finalize();
}

void dist_init(int *argc, char ***argv)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);   // OpenMP threads never call MPI
    atexit(finalize_at_exit);
    if (dist_rank() != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "rank %d: cannot silence stdout\n", dist_rank());
}

int dist_exit(int rc)
{
    if (rc != 0 && dist_size() > 1) {
        fprintf(stderr, "rank %d failed (exit status %d): stopping all %d ranks\n", dist_rank(),
                rc, dist_size());
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    finalize_at_exit();
    return rc;
}

int dist_rank(void)
{
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int dist_size(void)
{
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

// MPI counts are int: long arrays go in pieces.
#define CHUNK (1 << 30)

void dist_allreduce_sum(real *x, size_t n)
{
    if (dist_size() == 1) return;
    for (size_t i = 0; i < n; i += CHUNK) {
        int k = (int)(n - i < CHUNK ? n - i : CHUNK);
        MPI_Allreduce(MPI_IN_PLACE, x + i, k, MPI_REAL_T, MPI_SUM, MPI_COMM_WORLD);
    }
}

double dist_sum(double x)
{
    double s = x;
    MPI_Allreduce(&x, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

int dist_all(int ok)
{
    int all = ok != 0;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

void dist_bcast(void *buf, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += CHUNK) {
        int k = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
        MPI_Bcast((char *)buf + i, k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

void dist_gather(double *all, const double *mine, size_t n_mine)
{
    int size = dist_size(), root = dist_rank() == 0;
    DDPM_CHECK(n_mine < INT_MAX, "dist_gather: %zu values from one rank", n_mine);
    int n = (int)n_mine, *counts = NULL, *displs = NULL;
    if (root) {
        counts = malloc(sizeof(int) * (size_t)size);
        displs = malloc(sizeof(int) * (size_t)size);
        DDPM_CHECK(counts && displs, "out of memory");
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (root) {
        long total = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = (int)total;
            total += counts[r];
        }
        DDPM_CHECK(total < INT_MAX, "dist_gather: %ld values in all", total);
    }
    MPI_Gatherv(mine, n, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}

int dist_check_same(uint64_t h, const char *what, Error *err)
{
    int size = dist_size();
    if (size == 1) return 0;
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)size);
    DDPM_CHECK(all != NULL, "out of memory");
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int bad = 0;
    while (bad < size && all[bad] == all[0]) bad++;
    int rc = 0;
    if (bad < size)
        rc = error_set(err, "the ranks disagree on %s: rank %d's hash is %016llx, rank 0's "
                            "%016llx (were all ranks started with the same flags, data and "
                            "program?)", what, bad, (unsigned long long)all[bad],
                       (unsigned long long)all[0]);
    free(all);
    return rc;
}

// Every rank but 0 stops here once its share of an evaluation is sent.
static void worker_done(void)
{
    if (dist_rank() == 0) return;
    fflush(NULL);
    finalize_at_exit();
    exit(0);
}

#else   /* one process: rank 0 of 1 */

void dist_init(int *argc, char ***argv) { (void)argc, (void)argv; }
int  dist_exit(int rc) { return rc; }
int  dist_rank(void) { return 0; }
int  dist_size(void) { return 1; }
void dist_allreduce_sum(real *x, size_t n) { (void)x, (void)n; }
double dist_sum(double x) { return x; }
int  dist_all(int ok) { return ok != 0; }
void dist_bcast(void *buf, size_t bytes) { (void)buf, (void)bytes; }
void dist_gather(double *all, const double *mine, size_t n_mine)
{
    if (all != mine) memcpy(all, mine, n_mine * sizeof(double));
}
int  dist_check_same(uint64_t h, const char *what, Error *err) { (void)h, (void)what, (void)err; return 0; }
static void worker_done(void) {}

#endif

/* ---- shared by both builds ------------------------------------------------------ */

int dist_is_root(void)
{
    return dist_rank() == 0;
}

void dist_share(long n, int rank, long *lo, long *hi)
{
    long size = dist_size();
    *lo = (n * rank + size - 1) / size;   // ceil: the larger shares come first
    *hi = (n * (rank + 1) + size - 1) / size;
}

uint64_t dist_hash(uint64_t h, const void *x, size_t bytes)
{
    const unsigned char *p = x;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

int dist_root_status(int rc, Error *err)
{
    if (dist_size() == 1) return rc;
    struct { int rc; Error err; } s = {rc, *err};
    dist_bcast(&s, sizeof s);
    if (s.rc < 0 && !dist_is_root()) *err = s.err;
    return s.rc;
}

/* ---- training -------------------------------------------------------------------- */

int dist_train_begin(Trainer *tr, Error *err)
{
    if (dist_size() == 1) return 0;
    if (tr->cfg.batch < dist_size())
        return error_set(err, "--batch %d cannot be split across %d ranks (each needs an "
                              "image): give --batch %d or more", tr->cfg.batch, dist_size(),
                         dist_size());
    if (!dist_is_root()) tr->cfg.quiet = 1;
    return dist_check_trainer(tr, 0, err);
}

// Image j of this rank's share is image lo + j of the batch.
static Tensor *slice(Arena *a, const Tensor *x, long lo, long n)
{
    size_t D = x->size / (size_t)x->shape[0];
    Tensor *s = tensor_4d(a, (int)n, x->shape[1], x->shape[2], x->shape[3]);
    vec_copy(s->data, x->data + (size_t)lo * D, (size_t)n * D);
    return s;
}

void dist_batch_slice(Arena *a, Tensor **x0, Tensor **noise, int *t, Rng *rng)
{
    if (dist_size() == 1) return;
    int B = (*x0)->shape[0];
    long lo, hi;
    dist_share(B, dist_rank(), &lo, &hi);
    *x0 = slice(a, *x0, lo, hi - lo);
    *noise = slice(a, *noise, lo, hi - lo);
    memmove(t, t + lo, sizeof(int) * (size_t)(hi - lo));
    rng->skip_before = (uint32_t)lo;
    rng->skip_after = (uint32_t)(B - hi);
}

// Mean over the batch = sum over ranks of (share / B) x the share's mean.
static double share_weight(int B)
{
    long lo, hi;
    dist_share(B, dist_rank(), &lo, &hi);
    return (double)(hi - lo) / B;
}

double dist_batch_loss(double local_mean, int B)
{
    if (dist_size() == 1) return local_mean;
    return dist_sum(local_mean * share_weight(B));
}

void dist_batch_grad(ParamSet *ps, int B)
{
    if (dist_size() == 1) return;
    vec_scale(ps->grad, ps->grad, (real)share_weight(B), ps->total);
    dist_allreduce_sum(ps->grad, ps->total);
}

int dist_check_trainer(const Trainer *tr, int every, Error *err)
{
    if (dist_size() == 1 || (every && tr->step % DIST_CHECK_EVERY != 0)) return 0;
    size_t bytes = tr->net.params.total * sizeof(real);
    uint64_t h = dist_hash(DIST_HASH_START, &tr->step, sizeof tr->step);
    h = dist_hash(h, tr->net.params.data, bytes);
    h = dist_hash(h, tr->adam_m, bytes);
    h = dist_hash(h, tr->adam_v, bytes);
    h = dist_hash(h, tr->ema, bytes);
    char what[96];
    snprintf(what, sizeof what, "the weights, Adam moments and EMA at step %ld", tr->step);
    return dist_check_same(h, what, err);
}

/* ---- evaluation ------------------------------------------------------------------- */

// Which images [*lo, *hi) of N this rank takes when they go in whole
// batches: the rounding of a network call can depend on how many images it
// holds, so every call must see the same images as in one process.
static void batch_share(int N, int batch, long *lo, long *hi)
{
    long b_lo, b_hi;
    dist_share((N + batch - 1) / batch, dist_rank(), &b_lo, &b_hi);
    *lo = b_lo * batch < N ? b_lo * batch : N;
    *hi = b_hi * batch < N ? b_hi * batch : N;
}

// bits/dim: the ranks take whole batches, so every network call sees the
// same images as in one process, and each rank jumps its generator to where
// one process would be when it reached the rank's first image: every image
// before it drew T x D normals.
int dist_calc_bpd_loop(const Diffusion *df, const Model *m, const real *x0, int N, int C,
                       int H, int W, int batch, Rng *rng, int clip, BpdResult *res,
                       void (*progress)(void *ctx, long done, long total), void *ctx,
                       Error *err)
{
    if (dist_size() == 1)
        return calc_bpd_loop(df, m, x0, N, C, H, W, batch, rng, clip, res, progress, ctx, err);
    if (N <= 0 || batch <= 0)
        return calc_bpd_loop(df, m, x0, N, C, H, W, batch, rng, clip, res, progress, ctx, err);
    int T = df->sched->T;
    size_t D = (size_t)C * H * W, per = 2 * (size_t)T + 2;   // terms, mse, prior, total
    long lo, hi;
    batch_share(N, batch, &lo, &hi);
    int n = (int)(hi - lo);
    double *mine = malloc(sizeof(double) * per * (size_t)(n > 0 ? n : 1));
    DDPM_CHECK(mine != NULL, "out of memory for bits/dim of %d images", n);
    Rng r = *rng;
    rng_advance(&r, (uint64_t)lo * T * D * RNG_NORMAL_DRAWS);
    if (n > 0) {
        BpdResult part;
        if (calc_bpd_loop(df, m, x0 + (size_t)lo * D, n, C, H, W, batch, &r, clip, &part,
                          dist_is_root() ? progress : NULL, ctx, err) < 0) {
            free(mine);
            return -1;
        }
        for (int i = 0; i < n; i++) {   // image by image: rank order is image order
            double *o = mine + (size_t)i * per;
            for (int t = 0; t < T; t++) {
                o[t] = part.terms[(size_t)t * n + i];
                o[T + t] = part.mse[(size_t)t * n + i];
            }
            o[2 * T] = part.prior[i];
            o[2 * T + 1] = part.total[i];
        }
        bpd_result_free(&part);
    }
    double *all = dist_is_root() ? malloc(sizeof(double) * per * (size_t)N) : NULL;
    DDPM_CHECK(!dist_is_root() || all, "out of memory for bits/dim of %d images", N);
    dist_gather(all, mine, per * (size_t)n);
    free(mine);
    worker_done();
    memset(res, 0, sizeof *res);
    res->N = N;
    res->T = T;
    res->terms = malloc(sizeof(double) * (size_t)T * N);
    res->mse = malloc(sizeof(double) * (size_t)T * N);
    res->prior = malloc(sizeof(double) * (size_t)N);
    res->total = malloc(sizeof(double) * (size_t)N);
    DDPM_CHECK(res->terms && res->mse && res->prior && res->total,
               "out of memory for bits/dim of %d images", N);
    for (int i = 0; i < N; i++) {
        const double *o = all + (size_t)i * per;
        for (int t = 0; t < T; t++) {
            res->terms[(size_t)t * N + i] = o[t];
            res->mse[(size_t)t * N + i] = o[T + t];
        }
        res->prior[i] = o[2 * T];
        res->total[i] = o[2 * T + 1];
    }
    free(all);
    rng_advance(rng, (uint64_t)N * T * D * RNG_NORMAL_DRAWS);   // where one process ends
    return 0;
}

// The x0_hat snapshots of Figure 6 (what sample_progressive keeps).
typedef struct Snaps { int every, T, S; real *snaps; int *ts; size_t size; } Snaps;
static void keep_snapshot(void *ctx, int t, const real *x, const real *x0_hat, int N)
{
    (void)x;
    (void)N;
    Snaps *k = ctx;
    if (!sample_is_snapshot(k->T, k->every, t)) return;
    vec_copy(k->snaps + (size_t)k->S * k->size, x0_hat, k->size);
    k->ts[k->S++] = t;
}

// Sampling: image i has its own generator Rng(seed, first + i), so a rank
// samples its share [lo, hi) as images first + lo ... of the same run, in the
// same batches. With `every` > 0 the snapshots [S, N, D] of Figure 6 come along.
static int sample_split(const Sampler *s, real *out, real *snaps, int *ts, int N, int C,
                        int H, int W, uint64_t seed, uint64_t first, int every, Error *err)
{
    int T = s->df->sched->T, S = every > 0 ? sample_n_snapshots(T, every) : 0;
    size_t D = (size_t)C * H * W, per = D * (size_t)(1 + S);
    long lo, hi;
    batch_share(N, s->batch, &lo, &hi);
    int n = (int)(hi - lo);
    real *x = malloc(sizeof(real) * D * (size_t)(n > 0 ? n : 1));
    real *sn = S ? malloc(sizeof(real) * (size_t)S * D * (size_t)(n > 0 ? n : 1)) : NULL;
    int *my_ts = malloc(sizeof(int) * (size_t)(S > 0 ? S : 1));
    double *mine = malloc(sizeof(double) * per * (size_t)(n > 0 ? n : 1));
    DDPM_CHECK(x && (!S || sn) && my_ts && mine, "out of memory for %d samples", n);
    Sampler mys = *s;
    if (!dist_is_root()) mys.progress = NULL;
    Snaps k = {every, T, 0, sn, my_ts, (size_t)n * D};
    if (S) {
        mys.on_step = keep_snapshot;
        mys.step_ctx = &k;
    }
    int rc = n > 0 ? sample_images(&mys, x, n, C, H, W, seed, first + (uint64_t)lo, err) : 0;
    if (rc < 0) {
        free(x), free(sn), free(my_ts), free(mine);
        return -1;
    }
    for (int i = 0; i < n; i++) {   // image by image: its sample, then its snapshots
        double *o = mine + (size_t)i * per;
        for (size_t j = 0; j < D; j++) o[j] = x[(size_t)i * D + j];
        for (int q = 0; q < S; q++)
            for (size_t j = 0; j < D; j++)
                o[(size_t)(1 + q) * D + j] = sn[((size_t)q * n + i) * D + j];
    }
    double *all = dist_is_root() ? malloc(sizeof(double) * per * (size_t)N) : NULL;
    DDPM_CHECK(!dist_is_root() || all, "out of memory for %d samples", N);
    dist_gather(all, mine, per * (size_t)n);
    free(x), free(sn), free(mine);
    worker_done();
    for (int i = 0; i < N; i++) {
        const double *o = all + (size_t)i * per;
        for (size_t j = 0; j < D; j++) out[(size_t)i * D + j] = (real)o[j];
        for (int q = 0; q < S; q++)
            for (size_t j = 0; j < D; j++)
                snaps[((size_t)q * N + i) * D + j] = (real)o[(size_t)(1 + q) * D + j];
    }
    if (S) memcpy(ts, my_ts, sizeof(int) * (size_t)S);   // rank 0 has images, so its ts
    free(my_ts);
    free(all);
    return 0;
}

int dist_sample_images(const Sampler *s, real *out, int N, int C, int H, int W,
                       uint64_t seed, uint64_t first, Error *err)
{
    if (dist_size() == 1 || N <= 0 || s->batch <= 0) return sample_images(s, out, N, C, H, W, seed, first, err);
    return sample_split(s, out, NULL, NULL, N, C, H, W, seed, first, 0, err);
}

int dist_sample_progressive(const Sampler *s, real *out, real *snaps, int *ts, int N, int C,
                            int H, int W, uint64_t seed, int every, Error *err)
{
    if (dist_size() == 1 || N <= 0 || s->batch <= 0 || every <= 0)
        return sample_progressive(s, out, snaps, ts, N, C, H, W, seed, every, err);
    return sample_split(s, out, snaps, ts, N, C, H, W, seed, 0, every, err);
}
