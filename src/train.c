/* train.c — Algorithm 1 as a program; see train.h.
 *
 * Chapter 06 (book/06_elbo.md, "Training"). One step:
 *   x0 ~ data (with a random flip), t ~ Uniform{0..T-1}, eps ~ N(0, I)
 *   loss = training_losses(...)                  (L_simple, L_vlb or hybrid)
 *   backward, clip the global gradient norm, Adam, EMA of the weights
 * Everything a step allocates comes from the trainer's arena, reset at the
 * end of the step: after the first step the loop makes no system allocation.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "dist.h"
#include "progress.h"

#define ORDER_STREAM (1ULL << 40)   // Rng streams of the epoch shuffles
#define INIT_STREAM (1ULL << 41)    // Rng stream of the initial weights

void train_config_default(TrainConfig *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->steps = 0;
    tc->batch = 128;
    tc->lr = 2e-4;
    tc->warmup = 5000;
    tc->grad_clip = 1.0;
    tc->ema_decay = 0.9999;
    tc->adam_b1 = 0.9;
    tc->adam_b2 = 0.999;
    tc->adam_eps = 1e-8;
    tc->seed = 0;
    tc->flip = 1;
    tc->ckpt_every = 0;
    tc->out_dir = "build/run";
    tc->T = 1000;
    tc->mean = MEAN_EPS;
    tc->var = VAR_FIXED_LARGE;
    tc->loss = LOSS_SIMPLE;
}

_Static_assert(sizeof(MeanType) == sizeof(int) && sizeof(VarType) == sizeof(int) &&
               sizeof(LossType) == sizeof(int), "KEY_ENUM rows store an int");

#define C(f) offsetof(TrainConfig, f)
const ConfigKey train_keys[] = {
    KEY("out", KEY_STR, C(out_dir), 0, 0, "DIR", "output folder: DIR/ckpt.safetensors, DIR/log.csv"),
    KEY("steps", KEY_LONG, C(steps), 1, TRAIN_MAX_STEPS, "N", "stop after N steps in total",
     .flags = KEY_NO_DEFAULT),
    KEY("minutes", KEY_DOUBLE, C(minutes), 0.01, 1e6, "M", "... or after M minutes of training",
     .flags = KEY_NO_DEFAULT),
    KEY("batch", KEY_INT, C(batch), 1, TRAIN_MAX_BATCH, "B", "images per step; the paper: 128",
     .flags = KEY_STORED),
    KEY("lr", KEY_DOUBLE, C(lr), 0, 1, "LR", "Adam learning rate", .flags = KEY_STORED),
    KEY("warmup", KEY_LONG, C(warmup), 0, TRAIN_MAX_STEPS, "N",
     "linear warm-up steps; the paper: 5000 (default: min(5000, steps/10))",
     .flags = KEY_STORED | KEY_NO_DEFAULT),
    KEY("clip", KEY_DOUBLE, C(grad_clip), 0, 1e9, "C", "gradient-norm clip", .flags = KEY_STORED, .store = "grad_clip"),
    KEY("ema", KEY_DOUBLE, C(ema_decay), 0, 1, "D", "EMA decay of the weights; the paper: 0.9999",
     .flags = KEY_STORED, .store = "ema_decay"),
    KEY("loss", KEY_ENUM, C(loss), 0, 0, "L", "simple (Eq. 14), vlb (the true bound) or hybrid",
     .flags = KEY_STORED, .names = loss_names),
    KEY("mean", KEY_ENUM, C(mean), 0, 0, "M", "what the network predicts: eps, x0 or mu",
     .flags = KEY_STORED, .names = mean_names),
    KEY("var", KEY_ENUM, C(var), 0, 0, "V", "fixedlarge (beta), fixedsmall (beta~) or learned",
     .flags = KEY_STORED, .names = var_names),
    KEY("T", KEY_INT, C(T), 2, TRAIN_MAX_T, "N", "diffusion steps", .flags = KEY_STORED),
    KEY("seed", KEY_U64, C(seed), 0, 0, "S", "seed of everything random", .flags = KEY_STORED),
    KEY("flip", KEY_INT, C(flip), 0, 1, "0|1", "random horizontal flips", .flags = KEY_STORED),
    KEY("ckpt-every", KEY_LONG, C(ckpt_every), 0, TRAIN_MAX_STEPS, "N",
     "also write the checkpoint every N steps; 0: only at the end"),
    {0},
};
#undef C

/* ---- setting up: fresh, or from a checkpoint ----------------------------- */

static int alloc_state(Trainer *tr, Error *err)
{
    size_t n = tr->net.params.total;
    tr->adam_m = calloc(n, sizeof(real));
    tr->adam_v = calloc(n, sizeof(real));
    tr->ema = malloc(n * sizeof(real));
    tr->t = malloc(sizeof(int) * (size_t)tr->cfg.batch);
    if (!tr->adam_m || !tr->adam_v || !tr->ema || !tr->t)
        return error_set(err, "out of memory for the optimiser state (%zu parameters)", n);
    vec_copy(tr->ema, tr->net.params.data, n);   // NOTE: EMA starts from the initial weights
    arena_init(tr->arena, 64 << 20);
    tape_init(&tr->tape, tr->arena);
    tr->order_epoch = -1;
    return 0;
}

// Reads train.<what>.<param name> for every parameter into dst [total].
static int read_state(const StFile *f, const ParamSet *ps, const char *what, real *dst,
                      Error *err)
{
    char name[256];
    size_t off = 0;
    for (int i = 0; i < ps->count; i++) {
        const Tensor *p = ps->params[i];
        snprintf(name, sizeof name, "train.%s.%s", what, p->name);
        if (st_read_tensor(f, name, dst + off, p->ndim, p->shape, err) < 0) return -1;
        off += p->size;
    }
    return 0;
}

int train_config_read(const StFile *f, TrainConfig *c, Error *err)
{
    TrainConfig d;
    train_config_default(&d);
    for (const ConfigKey *k = train_keys; k->key; k++) {
        if (!(k->flags & KEY_STORED)) continue;
        char key[64], text[64], want[200];
        config_store_key(k, "train.", key, sizeof key);
        const char *v = st_meta(f, key);
        if (!v) config_format(k, &d, text, sizeof text), v = text;
        if (config_set(k, c, v, NULL) < 0) {
            config_allowed(k, want, sizeof want);
            return error_set(err, "%s: metadata %s = '%.40s' is not %s", f->path, key, v, want);
        }
    }
    return 0;
}

int train_config_diffusion(const TrainConfig *c, Diffusion *df, Error *err)
{
    return diffusion_parse(df, mean_type_name(c->mean), var_type_name(c->var),
                           loss_type_name(c->loss), err);
}

// The run's settings come back from the checkpoint's metadata, so that the
// continuation is the same computation (the noise schedule too: train.T);
// only the budget (steps, minutes) and where to write come from the command
// line. The file is read once.
static int resume(Trainer *tr, const char *path, Error *err)
{
    StFile f;
    if (st_open(path, &f, err) < 0) return -1;
    int rc = -1;
    double step;
    if (!st_meta(&f, "train.step")) {
        error_set(err, "%s: not a training checkpoint (no train.step): use it with "
                       "ddpm sample/bpd, or start a new run", path);
    } else if (ckpt_meta_num(&f, "train.step", "0", 0, TRAIN_MAX_STEPS, 1, &step, err) == 0 &&
               train_config_read(&f, &tr->cfg, err) == 0 &&
               train_config_diffusion(&tr->cfg, &tr->df, err) == 0 &&
               schedule_init(tr->sched, "linear", tr->cfg.T, 1e-4, 0.02, err) == 0 &&
               ckpt_load_file(&f, &tr->net, NULL, 0, err) == 0 &&
               ckpt_check_out_ch(&f, &tr->net, &tr->df, err) == 0) {
        if (alloc_state(tr, err) == 0 && read_state(&f, &tr->net.params, "adam_m", tr->adam_m, err) == 0 &&
            read_state(&f, &tr->net.params, "adam_v", tr->adam_v, err) == 0 &&
            read_state(&f, &tr->net.params, "ema", tr->ema, err) == 0)
            rc = 0;
        tr->step = (long)step;
    }
    st_close(&f);
    return rc;
}

static int fresh(Trainer *tr, const UNetConfig *ucfg, Error *err)
{
    if (train_config_diffusion(&tr->cfg, &tr->df, err) < 0 ||
        schedule_init(tr->sched, "linear", tr->cfg.T, 1e-4, 0.02, err) < 0)
        return -1;
    UNetConfig c = *ucfg;
    c.out_ch = diffusion_out_channels(&tr->df, c.in_ch);
    if (unet_config_check(&c, err) < 0) return -1;
    if (tr->cfg.batch < 1) return error_set(err, "batch size must be at least 1");
    unet_build(&tr->net, &c);
    Rng rng;
    rng_seed(&rng, tr->cfg.seed, INIT_STREAM);
    unet_init_weights(&tr->net, &rng);
    return alloc_state(tr, err);
}

int trainer_init(Trainer *tr, const UNetConfig *ucfg, const TrainConfig *tc,
                 const char *resume_path, Error *err)
{
    memset(tr, 0, sizeof *tr);
    tr->cfg = *tc;
    tr->sched = calloc(1, sizeof *tr->sched);
    tr->arena = calloc(1, sizeof *tr->arena);
    int rc = !tr->sched || !tr->arena ? error_set(err, "out of memory for a trainer")
           : resume_path              ? resume(tr, resume_path, err)
                                      : fresh(tr, ucfg, err);
    if (rc < 0) {
        trainer_free(tr);   // whatever was allocated before the failure
        return -1;
    }
    tr->df.sched = tr->sched;
    return 0;
}

void trainer_free(Trainer *tr)
{
    free(tr->adam_m);
    free(tr->adam_v);
    free(tr->ema);
    free(tr->t);
    free(tr->order);
    tape_free(&tr->tape);
    if (tr->arena) arena_free(tr->arena);
    free(tr->arena);
    unet_free(&tr->net);
    if (tr->sched) schedule_free(tr->sched);
    free(tr->sched);
    memset(tr, 0, sizeof *tr);
}

/* ---- one step ------------------------------------------------------------- */

// Image number k of the whole run (k = step * batch + j) is image
// order_e[k mod n] of epoch e = k / n, order_e a seeded shuffle.
static int next_image(Trainer *tr, const Dataset *d, long k)
{
    long epoch = k / d->n;
    if (epoch != tr->order_epoch) {
        if (!tr->order) tr->order = malloc(sizeof(int) * (size_t)d->n);
        DDPM_CHECK(tr->order != NULL, "out of memory");
        Rng r;
        rng_seed(&r, tr->cfg.seed, ORDER_STREAM + (unsigned long long)epoch);
        for (int i = 0; i < d->n; i++) tr->order[i] = i;
        for (int i = d->n - 1; i > 0; i--) {   // Fisher-Yates
            int j = (int)rng_below(&r, (uint32_t)i + 1), tmp = tr->order[i];
            tr->order[i] = tr->order[j];
            tr->order[j] = tmp;
        }
        tr->order_epoch = epoch;
    }
    return tr->order[k % d->n];
}

// The learning rate of the update made after `done` updates: linear
// warm-up, lr * min(done / warmup, 1).
// NOTE: as in the official code, `done` counts the updates made before this
// one, so the very first update has learning rate 0 (it still feeds Adam's
// moment estimates).
static double learning_rate(const TrainConfig *c, long done)
{
    return c->lr * (c->warmup > 0 && done < c->warmup ? (double)done / c->warmup : 1);
}

// Adam (Kingma & Ba), bias-corrected, then the EMA of the weights.
static void adam_ema_update(Trainer *tr)
{
    const TrainConfig *c = &tr->cfg;
    ParamSet *ps = &tr->net.params;
    double lr = learning_rate(c, tr->step);
    double t = (double)tr->step + 1;
    real b1 = (real)c->adam_b1, b2 = (real)c->adam_b2, decay = (real)c->ema_decay;
    real c1 = (real)(1 / (1 - pow(c->adam_b1, t))), c2 = (real)(1 / (1 - pow(c->adam_b2, t)));
    real eps = (real)c->adam_eps, step = (real)lr;
    real *p = ps->data, *g = ps->grad, *m = tr->adam_m, *v = tr->adam_v, *e = tr->ema;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < ps->total; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= step * (m[i] * c1) / (sqrt(v[i] * c2) + eps);
        e[i] = decay * e[i] + (1 - decay) * p[i];
    }
}

// Clip by global norm (tf.clip_by_global_norm): scale all gradients by
// clip / max(norm, clip). Returns the norm before clipping.
static double clip_gradients(ParamSet *ps, double clip)
{
    double norm = sqrt(vec_dot(ps->grad, ps->grad, ps->total));
    if (clip > 0 && norm > clip) vec_scale(ps->grad, ps->grad, (real)(clip / norm), ps->total);
    return norm;
}

int trainer_step(Trainer *tr, const Dataset *data, Error *err)
{
    const TrainConfig *c = &tr->cfg;
    int B = c->batch;
    Rng rng;
    rng_seed(&rng, c->seed, (unsigned long long)tr->step);   // everything this step draws
    Tensor *x0 = tensor_4d(tr->arena, B, data->c, data->h, data->w);
    int *idx = arena_alloc(tr->arena, sizeof(int) * (size_t)B);
    for (int j = 0; j < B; j++) idx[j] = next_image(tr, data, tr->step * B + j);
    data_batch(data, x0->data, idx, B, c->flip ? &rng : NULL);
    for (int j = 0; j < B; j++) tr->t[j] = (int)rng_below(&rng, (uint32_t)tr->sched->T);
    Tensor *noise = tensor_like(tr->arena, x0);
    rng_fill_normal(&rng, noise->data, noise->size, 0, 1);
    dist_batch_slice(tr->arena, &x0, &noise, tr->t, &rng);   // MPI: this rank's share

    params_zero_grad(&tr->net.params);
    Model model = unet_model(&tr->net);
    Tensor *loss = training_losses(&tr->tape, &tr->df, &model, x0, tr->t, noise, &rng, NULL);
    tr->last_loss = dist_batch_loss(loss->data[0], B);   // the mean over the whole batch
    int rc = 0;
    if (!isfinite(tr->last_loss)) {
        rc = error_set(err, "the loss is %g at step %ld: stopping (the last checkpoint is "
                            "kept; try a lower --lr or --clip)", tr->last_loss, tr->step + 1);
    } else {
        tape_backward(&tr->tape, loss);
        dist_batch_grad(&tr->net.params, B);   // MPI: the sum over the ranks (dist.h)
        tr->last_grad_norm = clip_gradients(&tr->net.params, c->grad_clip);
        if (!isfinite(tr->last_grad_norm))
            rc = error_set(err, "the gradient norm is %g at step %ld: stopping (the last "
                                "checkpoint is kept)", tr->last_grad_norm, tr->step + 1);
        else {
            adam_ema_update(tr);
            tr->step++;
        }
    }
    tape_reset(&tr->tape);
    arena_reset(tr->arena);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------ */

static int save_state(const Trainer *tr, const char *path, const char *data_name, Error *err)
{
    const ParamSet *ps = &tr->net.params;
    int n = 3 * ps->count;
    StTensor *extra = calloc((size_t)n, sizeof *extra);
    char *names = malloc((size_t)n * 256);
    if (!extra || !names) {
        free(extra);
        free(names);
        return error_set(err, "%s: out of memory", path);
    }
    const char *what[3] = {"adam_m", "adam_v", "ema"};
    const real *src[3] = {tr->adam_m, tr->adam_v, tr->ema};
    for (int w = 0, k = 0; w < 3; w++) {
        size_t off = 0;
        for (int i = 0; i < ps->count; i++, k++) {
            const Tensor *p = ps->params[i];
            snprintf(names + (size_t)k * 256, 256, "train.%s.%s", what[w], p->name);
            extra[k] = (StTensor){names + (size_t)k * 256, p->ndim, {0}, src[w] + off};
            memcpy(extra[k].shape, p->shape, sizeof p->shape);
            off += p->size;
        }
    }
    // train.step, train.data, then one entry per stored setting.
    char step[32], text[16][64], keys[16][64];
    StMeta meta[18];
    int nm = 0;
    snprintf(step, sizeof step, "%ld", tr->step);
    meta[nm++] = (StMeta){"train.step", step};
    meta[nm++] = (StMeta){"train.data", data_name ? data_name : ""};
    for (const ConfigKey *k = train_keys; k->key; k++) {
        if (!(k->flags & KEY_STORED)) continue;
        config_store_key(k, "train.", keys[nm], 64);
        config_format(k, &tr->cfg, text[nm], 64);
        meta[nm] = (StMeta){keys[nm], text[nm]};
        nm++;
    }
    int rc = ckpt_save(path, &tr->net, extra, n, meta, nm, err);
    free(extra);
    free(names);
    return rc;
}

// With MPI (dist.h) the ranks first check that they hold the same state;
// rank 0 alone writes, and every rank returns its result.
int trainer_save(const Trainer *tr, const char *path, const char *data_name, Error *err)
{
    if (dist_check_trainer(tr, 0, err) < 0) return -1;
    int rc = dist_is_root() ? save_state(tr, path, data_name, err) : 0;
    return dist_root_status(rc, err);
}

/* ---- the loop ------------------------------------------------------------------ */

// Set by the signal handler, read by the loop: the one piece of global
// mutable state in the project, because a signal handler can reach nothing else.
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static int make_dir(const char *dir, Error *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s", dir);
    for (char *s = path + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(path, 0777);
            *s = '/';
        }
    if (mkdir(path, 0777) < 0 && errno != EEXIST)
        return error_set(err, "%s: cannot create the output folder (%s)", dir, strerror(errno));
    return 0;
}

static FILE *open_log(const Trainer *tr, Error *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/log.csv", tr->cfg.out_dir);
    if (!dist_is_root()) return fopen("/dev/null", "w");   // MPI: rank 0 writes the log
    FILE *f = fopen(path, tr->step > 0 ? "a" : "w");
    if (!f) {
        error_set(err, "%s: cannot write the training log (%s)", path, strerror(errno));
        return NULL;
    }
    if (tr->step == 0) fprintf(f, "step,loss,grad_norm,lr,seconds\n");
    return f;
}

int train_run(Trainer *tr, const Dataset *data, Error *err)
{
    const TrainConfig *c = &tr->cfg;
    char ckpt[600], note[96];
    if (dist_train_begin(tr, err) < 0 || make_dir(c->out_dir, err) < 0) return -1;
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", c->out_dir);
    FILE *log = open_log(tr, err);
    if (!log) return -1;
    stop_signal = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    Progress pr;
    long first = tr->step;
    progress_start(&pr, "train", c->steps > 0 ? c->steps - first : 0, c->quiet);
    int rc = 0;
    while (dist_all((c->steps <= 0 || tr->step < c->steps) && !stop_signal &&
                    (c->minutes <= 0 || progress_now() - pr.start < 60 * c->minutes))) {
        if (trainer_step(tr, data, err) < 0 || dist_check_trainer(tr, 1, err) < 0) { rc = -1; break; }
        fprintf(log, "%ld,%.6f,%.4f,%.3g,%.2f\n", tr->step, tr->last_loss, tr->last_grad_norm,
                learning_rate(c, tr->step - 1),
                progress_now() - pr.start);
        snprintf(note, sizeof note, "step %ld  loss %.4f", tr->step, tr->last_loss);
        progress_update(&pr, tr->step - first, note);
        if (c->ckpt_every > 0 && tr->step % c->ckpt_every == 0 &&
            trainer_save(tr, ckpt, data->name, err) < 0) { rc = -1; break; }
    }
    fclose(log);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    progress_end(&pr, tr->step - first, NULL);
    if (rc < 0) return -1;   // NaN or a failed write: keep the last good checkpoint
    if (trainer_save(tr, ckpt, data->name, err) < 0) return -1;
    if (stop_signal) fprintf(stderr, "interrupted at step %ld: state saved to %s (continue with --resume %s)\n",
                             tr->step, ckpt, ckpt);
    return 0;
}
