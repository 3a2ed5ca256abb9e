/* classifier.c — the feature network of chapter 09: three new ops, a small
 * ResNet of chapter 02 layers, its training loop and its file.
 *
 * Chapter 09 of the book (book/09_metrics.md). The new ops follow the
 * library's pattern: a forward/backward kernel pair on raw arrays, the
 * backward accumulating (+=), then the tape wrapper.
 *
 *   avgpool2  out = mean of each 2x2 window; each input pixel receives 1/4
 *             of its window's gradient
 *   gap       global average pooling: out[n,c] = mean_p x[n,c,p]; the
 *             gradient spreads evenly, dx[n,c,p] += dout[n,c] / HW
 *   xent      softmax cross-entropy, L = -(1/N) sum_n log p_n[y_n] with
 *             p_n = softmax(z_n); dL/dz_n = (p_n - onehot(y_n)) / N
 *
 * Training: Adam with decoupled weight decay (AdamW), a linear warm-up then a
 * linear decay to zero, random flips and 4-pixel shifts. Step s draws from
 * Rng(seed, s) and epoch e is shuffled by Rng(seed, 2^40 + e), so a run with
 * a fixed --steps and --seed is reproducible.
 */
#include "classifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "progress.h"

/* ---- avgpool2: the mean of each 2x2 window ----------------------------------- */

void avgpool2_forward(real *out, const real *x, int N, int C, int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for if ((size_t)N * C * H * W > PAR_MIN)
    for (size_t p = 0; p < (size_t)N * C; p++)
        for (int y = 0; y < Ho; y++) {
            const real *r0 = x + (p * H + 2 * y) * W, *r1 = r0 + W;
            real *o = out + (p * Ho + y) * Wo;
            for (int i = 0; i < Wo; i++)
                o[i] = (r0[2 * i] + r0[2 * i + 1] + r1[2 * i] + r1[2 * i + 1]) * (real)0.25;
        }
}

void avgpool2_backward(real *dx, const real *dout, int N, int C, int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for if ((size_t)N * C * H * W > PAR_MIN)
    for (size_t p = 0; p < (size_t)N * C; p++)
        for (int y = 0; y < Ho; y++) {
            real *r0 = dx + (p * H + 2 * y) * W, *r1 = r0 + W;
            const real *g = dout + (p * Ho + y) * Wo;
            for (int i = 0; i < Wo; i++) {
                real q = g[i] * (real)0.25;
                r0[2 * i] += q, r0[2 * i + 1] += q, r1[2 * i] += q, r1[2 * i + 1] += q;
            }
        }
}

static void avgpool2_node(Tape *tp, Node *nd)
{
    const int *s = nd->in[0]->shape;
    avgpool2_backward(tape_grad(tp, nd->in[0]), nd->out->grad, s[0], s[1], s[2], s[3]);
}

Tensor *ag_avgpool2(Tape *tp, Tensor *x)
{
    const int *s = x->shape;
    DDPM_CHECK(x->ndim == 4 && s[2] % 2 == 0 && s[3] % 2 == 0,
               "avgpool2: needs [N, C, H, W] with H, W even");
    Tensor *out = tensor_4d(tp->arena, s[0], s[1], s[2] / 2, s[3] / 2);
    avgpool2_forward(out->data, x->data, s[0], s[1], s[2], s[3]);
    tape_record(tp, "avgpool2", avgpool2_node, out, 1, &x);
    return out;
}

/* ---- gap: global average pooling ----------------------------------------------- */

void gap_forward(real *out, const real *x, int N, int C, size_t HW)
{
    for (size_t p = 0; p < (size_t)N * C; p++)
        out[p] = (real)(vec_sum(x + p * HW, HW) / (double)HW);
}

void gap_backward(real *dx, const real *dout, int N, int C, size_t HW)
{
    for (size_t p = 0; p < (size_t)N * C; p++) {
        real g = dout[p] / (real)HW;
        for (size_t i = 0; i < HW; i++) dx[p * HW + i] += g;
    }
}

static void gap_node(Tape *tp, Node *nd)
{
    int N, C;
    size_t HW;
    tensor_nchw(nd->in[0], &N, &C, &HW);
    gap_backward(tape_grad(tp, nd->in[0]), nd->out->grad, N, C, HW);
}

Tensor *ag_gap(Tape *tp, Tensor *x)
{
    int N, C;
    size_t HW;
    DDPM_CHECK(x->ndim >= 3, "gap: needs [N, C, H, W]");
    tensor_nchw(x, &N, &C, &HW);
    Tensor *out = tensor_2d(tp->arena, N, C);
    gap_forward(out->data, x->data, N, C, HW);
    tape_record(tp, "gap", gap_node, out, 1, &x);
    return out;
}

/* ---- xent: softmax cross-entropy -------------------------------------------------- */

// log sum_k exp(z_k), shifted by the max so that exp never overflows.
static double log_sum_exp(const real *z, int K)
{
    double m = z[0], s = 0;
    for (int k = 1; k < K; k++) m = fmax(m, (double)z[k]);
    for (int k = 0; k < K; k++) s += exp((double)z[k] - m);
    return m + log(s);
}

double xent_forward(real *prob, const real *logits, const int *y, int N, int K)
{
    double loss = 0;
    for (int n = 0; n < N; n++) {
        const real *z = logits + (size_t)n * K;
        double lse = log_sum_exp(z, K);
        for (int k = 0; k < K; k++) prob[(size_t)n * K + k] = (real)exp(z[k] - lse);
        loss += lse - z[y[n]];
    }
    return loss / N;
}

void xent_backward(real *dlogits, real dloss, const real *prob, const int *y, int N, int K)
{
    real s = dloss / (real)N;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            dlogits[(size_t)n * K + k] += s * (prob[(size_t)n * K + k] - (k == y[n]));
}

typedef struct XentSaved {
    real *prob;   // [N, K]
    int *y;       // [N]
} XentSaved;

static void xent_node(Tape *tp, Node *nd)
{
    const XentSaved *sv = nd->saved;
    Tensor *z = nd->in[0];
    xent_backward(tape_grad(tp, z), nd->out->grad[0], sv->prob, sv->y, z->shape[0], z->shape[1]);
}

Tensor *ag_xent(Tape *tp, Tensor *logits, const int *y)
{
    DDPM_CHECK(logits->ndim == 2, "xent: logits must be [N, K]");
    int N = logits->shape[0], K = logits->shape[1];
    for (int n = 0; n < N; n++)
        DDPM_CHECK(y[n] >= 0 && y[n] < K, "xent: label %d of sample %d outside 0..%d", y[n], n, K - 1);
    XentSaved *sv = arena_alloc(tp->arena, sizeof *sv);
    sv->prob = arena_alloc(tp->arena, sizeof(real) * (size_t)N * K);
    sv->y = arena_alloc(tp->arena, sizeof(int) * (size_t)N);
    memcpy(sv->y, y, sizeof(int) * (size_t)N);
    Tensor *out = tensor_1d(tp->arena, 1);
    out->data[0] = (real)xent_forward(sv->prob, logits->data, y, N, K);
    Node *nd = tape_record(tp, "xent", xent_node, out, 1, &logits);
    if (nd) nd->saved = sv;
    return out;
}

/* ---- the network --------------------------------------------------------------- */

void classifier_config_default(ClassifierConfig *cfg, int in_ch)
{
    *cfg = (ClassifierConfig){.in_ch = in_ch, .width = {16, 32, 64, 128}, .n_classes = 10};
}

static Tensor *add_param(ParamSet *ps, const char *prefix, const char *what, int ndim,
                         const int *shape)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    return params_add(ps, name, ndim, shape);
}

static void conv_unit_add(ParamSet *ps, ConvUnit *u, const char *name, int cin, int cout)
{
    u->conv_weight = add_param(ps, name, "conv.weight", 4, (int[]){cout, cin, 3, 3});
    u->conv_bias = add_param(ps, name, "conv.bias", 1, (int[]){cout});
    u->norm_weight = add_param(ps, name, "norm.weight", 1, (int[]){cout});
    u->norm_bias = add_param(ps, name, "norm.bias", 1, (int[]){cout});
}

static void res_unit_add(ParamSet *ps, ResUnit *u, const char *name, int w)
{
    u->conv1_weight = add_param(ps, name, "conv1.weight", 4, (int[]){w, w, 3, 3});
    u->conv1_bias = add_param(ps, name, "conv1.bias", 1, (int[]){w});
    u->norm1_weight = add_param(ps, name, "norm1.weight", 1, (int[]){w});
    u->norm1_bias = add_param(ps, name, "norm1.bias", 1, (int[]){w});
    u->conv2_weight = add_param(ps, name, "conv2.weight", 4, (int[]){w, w, 3, 3});
    u->conv2_bias = add_param(ps, name, "conv2.bias", 1, (int[]){w});
    u->norm2_weight = add_param(ps, name, "norm2.weight", 1, (int[]){w});
    u->norm2_bias = add_param(ps, name, "norm2.bias", 1, (int[]){w});
}

void classifier_build(Classifier *net, const ClassifierConfig *cfg)
{
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    ParamSet *ps = &net->params;
    const int *w = cfg->width;
    params_init(ps);
    conv_unit_add(ps, &net->prep, "prep", cfg->in_ch, w[0]);
    conv_unit_add(ps, &net->layer1, "layer1", w[0], w[1]);
    res_unit_add(ps, &net->res1, "res1", w[1]);
    conv_unit_add(ps, &net->layer2, "layer2", w[1], w[2]);
    conv_unit_add(ps, &net->layer3, "layer3", w[2], w[3]);
    res_unit_add(ps, &net->res3, "res3", w[3]);
    net->fc_weight = params_add(ps, "fc.weight", 2, (int[]){cfg->n_classes, w[3]});
    net->fc_bias = params_add(ps, "fc.bias", 1, (int[]){cfg->n_classes});
    params_alloc(ps);
}

// Weights: He-uniform, w ~ U(-a, a), a = sqrt(6 / fan_in) (SiLU is close to
// ReLU); GroupNorm scales 1, every bias 0.
void classifier_init_weights(Classifier *net, Rng *rng)
{
    ParamSet *ps = &net->params;
    for (int i = 0; i < ps->count; i++) {
        Tensor *p = ps->params[i];
        if (p->ndim == 1) {
            vec_fill(p->data, strstr(p->name, "norm") && strstr(p->name, "weight") ? 1 : 0, p->size);
            continue;
        }
        double fan_in = (double)p->size / p->shape[0];
        double a = sqrt(6 / fan_in);
        rng_fill_uniform(rng, p->data, p->size, (real)-a, (real)a);
    }
}

void classifier_free(Classifier *net)
{
    params_free(&net->params);
    memset(net, 0, sizeof *net);
}

int classifier_feature_dim(const Classifier *net) { return net->cfg.width[3]; }

/* ---- forward ---------------------------------------------------------------------- */

#define CLS_EPS 1e-5

static Tensor *conv_unit(Tape *tp, const ConvUnit *u, Tensor *x)
{
    Tensor *h = ag_conv3x3(tp, x, u->conv_weight, u->conv_bias);
    return ag_silu(tp, ag_group_norm(tp, h, u->norm_weight, u->norm_bias, CLS_GROUPS, CLS_EPS));
}

static Tensor *res_unit(Tape *tp, const ResUnit *u, Tensor *x)
{
    Tensor *h = ag_conv3x3(tp, x, u->conv1_weight, u->conv1_bias);
    h = ag_silu(tp, ag_group_norm(tp, h, u->norm1_weight, u->norm1_bias, CLS_GROUPS, CLS_EPS));
    h = ag_conv3x3(tp, h, u->conv2_weight, u->conv2_bias);
    h = ag_silu(tp, ag_group_norm(tp, h, u->norm2_weight, u->norm2_bias, CLS_GROUPS, CLS_EPS));
    return ag_add(tp, x, h);
}

Tensor *classifier_forward(Tape *tp, const Classifier *net, Tensor *x, Tensor **feat)
{
    Tensor *h = conv_unit(tp, &net->prep, x);                        // [N, w0, 32, 32]
    h = ag_avgpool2(tp, conv_unit(tp, &net->layer1, h));             // [N, w1, 16, 16]
    h = res_unit(tp, &net->res1, h);
    h = ag_avgpool2(tp, conv_unit(tp, &net->layer2, h));             // [N, w2, 8, 8]
    h = ag_avgpool2(tp, conv_unit(tp, &net->layer3, h));             // [N, w3, 4, 4]
    h = res_unit(tp, &net->res3, h);
    Tensor *f = ag_gap(tp, h);                                       // [N, w3]
    if (feat) *feat = f;
    return ag_linear(tp, f, net->fc_weight, net->fc_bias);          // [N, K]
}

// Softmax of each row of z [N, K] into p.
static void softmax_rows(real *p, const real *z, int N, int K)
{
    for (int n = 0; n < N; n++) {
        double lse = log_sum_exp(z + (size_t)n * K, K);
        for (int k = 0; k < K; k++) p[(size_t)n * K + k] = (real)exp(z[(size_t)n * K + k] - lse);
    }
}

void classifier_embed(const Classifier *net, const real *x, int n, int batch,
                      real *feat, real *prob)
{
    const ClassifierConfig *c = &net->cfg;
    size_t img = (size_t)c->in_ch * 32 * 32;
    int D = c->width[3], K = c->n_classes;
    Arena ar;
    Tape tp;
    arena_init(&ar, 64u << 20);
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);
    for (int i = 0; i < n; i += batch) {
        int B = n - i < batch ? n - i : batch;
        Tensor *xb = tensor_4d(&ar, B, c->in_ch, 32, 32), *f;
        memcpy(xb->data, x + (size_t)i * img, sizeof(real) * B * img);
        Tensor *z = classifier_forward(&tp, net, xb, &f);
        if (feat) memcpy(feat + (size_t)i * D, f->data, sizeof(real) * (size_t)B * D);
        if (prob) softmax_rows(prob + (size_t)i * K, z->data, B, K);
        tape_reset(&tp);
        arena_reset(&ar);
    }
    tape_free(&tp);
    arena_free(&ar);
}

void classifier_embed_data(const Classifier *net, const Dataset *d, int n, real *feat, real *prob)
{
    int D = net->cfg.width[3], K = net->cfg.n_classes, chunk = 1000;
    size_t img = (size_t)d->c * d->h * d->w;
    real *x = malloc(sizeof(real) * chunk * img);
    int *idx = malloc(sizeof(int) * chunk);
    for (int i = 0; i < n; i += chunk) {
        int B = n - i < chunk ? n - i : chunk;
        for (int j = 0; j < B; j++) idx[j] = i + j;
        data_batch(d, x, idx, B, NULL);
        classifier_embed(net, x, B, 250, feat ? feat + (size_t)i * D : NULL,
                         prob ? prob + (size_t)i * K : NULL);
    }
    free(x), free(idx);
}

double classifier_accuracy(const Classifier *net, const Dataset *d, int batch)
{
    int K = net->cfg.n_classes, correct = 0, chunk = 1000;
    size_t img = (size_t)d->c * d->h * d->w;
    real *x = malloc(sizeof(real) * chunk * img), *p = malloc(sizeof(real) * chunk * K);
    int *idx = malloc(sizeof(int) * chunk);
    for (int i = 0; i < d->n; i += chunk) {
        int B = d->n - i < chunk ? d->n - i : chunk;
        for (int j = 0; j < B; j++) idx[j] = i + j;
        data_batch(d, x, idx, B, NULL);
        classifier_embed(net, x, B, batch, NULL, p);
        for (int j = 0; j < B; j++) {
            int best = 0;
            for (int k = 1; k < K; k++) if (p[(size_t)j * K + k] > p[(size_t)j * K + best]) best = k;
            correct += best == d->labels[i + j];
        }
    }
    free(x), free(p), free(idx);
    return (double)correct / d->n;
}

/* ---- files ------------------------------------------------------------------------ */

int classifier_save(const char *path, const Classifier *net, const StMeta *meta,
                    int n_meta, Error *err)
{
    const ClassifierConfig *c = &net->cfg;
    char in[16], widths[64], classes[16];
    snprintf(in, sizeof in, "%d", c->in_ch);
    snprintf(widths, sizeof widths, "%d,%d,%d,%d", c->width[0], c->width[1], c->width[2], c->width[3]);
    snprintf(classes, sizeof classes, "%d", c->n_classes);
    StMeta all[24] = {{"classifier.in_ch", in}, {"classifier.width", widths},
                      {"classifier.n_classes", classes}, {"classifier.groups", "8"}};
    int n = 4;
    for (int i = 0; i < n_meta && n < 24; i++) all[n++] = meta[i];
    return st_write_params(path, &net->params, all, n, err);
}

// The config recorded in f's metadata.
static int config_read(const StFile *f, ClassifierConfig *c, Error *err)
{
    const char *in = st_meta(f, "classifier.in_ch"), *w = st_meta(f, "classifier.width");
    const char *k = st_meta(f, "classifier.n_classes");
    if (!in || !w || !k)
        return error_set(err, "%s: not a classifier file (no classifier.* metadata)", f->path);
    memset(c, 0, sizeof *c);
    c->in_ch = atoi(in), c->n_classes = atoi(k);
    int got = sscanf(w, "%d,%d,%d,%d", &c->width[0], &c->width[1], &c->width[2], &c->width[3]);
    int ok = got == 4 && (c->in_ch == 1 || c->in_ch == 3) && c->n_classes >= 2 && c->n_classes <= 1000;
    for (int i = 0; ok && i < 4; i++) ok = c->width[i] > 0 && c->width[i] % CLS_GROUPS == 0;
    return ok ? 0 : error_set(err, "%s: malformed classifier config (in_ch %s, width %s, classes %s)",
                              f->path, in, w, k);
}

int classifier_load(const char *path, Classifier *net, Error *err)
{
    StFile f;
    ClassifierConfig c;
    memset(net, 0, sizeof *net);
    if (st_open(path, &f, err)) return -1;
    int rc = config_read(&f, &c, err);
    if (rc == 0) {
        classifier_build(net, &c);
        rc = st_load_params(&f, &net->params, NULL, 1, err);
        if (rc) classifier_free(net);
    }
    st_close(&f);
    return rc;
}

/* ---- training --------------------------------------------------------------------- */

void classifier_train_default(ClassifierTrain *ct)
{
    *ct = (ClassifierTrain){.steps = 4000, .batch = 128, .lr = 2e-3, .weight_decay = 5e-4,
                            .warmup = 200, .seed = 1, .flip = 1, .crop = 1};
}

// Warm-up from 0 to lr over `warmup` steps, then linear decay to 0 at `steps`.
static double cls_learning_rate(const ClassifierTrain *ct, long s)
{
    if (s < ct->warmup) return ct->lr * (s + 1) / ct->warmup;
    return ct->lr * fmax(0.0, (double)(ct->steps - s) / (double)(ct->steps - ct->warmup));
}

// AdamW: Adam's bias-corrected step plus a decoupled decay lr * wd * p of the
// weights (not of GroupNorm scales and biases).
static void adamw_update(ParamSet *ps, real *m, real *v, long step, double lr, double wd)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1 / (1 - pow(b1, step + 1.0)), c2 = 1 / (1 - pow(b2, step + 1.0));
    for (int i = 0; i < ps->count; i++) {
        Tensor *t = ps->params[i];
        real *p = t->data, *g = t->grad, *mi = m + (t->data - ps->data), *vi = v + (t->data - ps->data);
        real decay = t->ndim > 1 ? (real)(lr * wd) : 0;
        for (size_t j = 0; j < t->size; j++) {
            mi[j] = (real)b1 * mi[j] + (real)(1 - b1) * g[j];
            vi[j] = (real)b2 * vi[j] + (real)(1 - b2) * g[j] * g[j];
            p[j] -= (real)lr * (mi[j] * (real)c1) / (sqrt(vi[j] * (real)c2) + (real)eps) + decay * p[j];
        }
    }
}

// Shift every image of x [B, C, H, W] by (dy, dx) in -4..4, zero (mid grey) fill.
static void batch_shift(real *x, real *tmp, int B, int C, int H, int W, Rng *rng)
{
    size_t img = (size_t)C * H * W;
    for (int b = 0; b < B; b++) {
        int dy = (int)rng_below(rng, 9) - 4, dx = (int)rng_below(rng, 9) - 4;
        real *im = x + b * img;
        memcpy(tmp, im, img * sizeof(real));
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int i = 0; i < W; i++) {
                    int sy = y - dy, sx = i - dx;
                    im[((size_t)c * H + y) * W + i] = sy < 0 || sy >= H || sx < 0 || sx >= W
                        ? 0 : tmp[((size_t)c * H + sy) * W + sx];
                }
    }
}

// The index of image j of the run: epoch j / n, shuffled by Rng(seed, 2^40 + epoch).
static int next_index(int *order, long *epoch, int n, long j, unsigned long long seed)
{
    long e = j / n;
    if (e != *epoch) {
        Rng r;
        rng_seed(&r, seed, (1ull << 40) + (unsigned long long)e);
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int k = (int)rng_below(&r, (uint32_t)i + 1), t = order[i];
            order[i] = order[k], order[k] = t;
        }
        *epoch = e;
    }
    return order[j % n];
}

// One step on images idx: forward, cross-entropy, backward. Returns the loss.
static double train_step(Classifier *net, Tape *tp, const Dataset *d, const int *idx,
                         const ClassifierTrain *ct, Rng *rng, int *correct)
{
    int B = ct->batch, K = net->cfg.n_classes, y[4096];
    Tensor *x = tensor_4d(tp->arena, B, d->c, d->h, d->w);
    data_batch(d, x->data, idx, B, ct->flip ? rng : NULL);
    if (ct->crop) {
        real *tmp = arena_alloc(tp->arena, sizeof(real) * d->c * d->h * d->w);
        batch_shift(x->data, tmp, B, d->c, d->h, d->w, rng);
    }
    for (int j = 0; j < B; j++) y[j] = d->labels[idx[j]];
    Tensor *z = classifier_forward(tp, net, x, NULL);
    for (int j = 0; j < B; j++) {
        int best = 0;
        for (int k = 1; k < K; k++) if (z->data[j * K + k] > z->data[j * K + best]) best = k;
        *correct += best == y[j];
    }
    Tensor *loss = ag_xent(tp, z, y);
    params_zero_grad(&net->params);
    tape_backward(tp, loss);
    return loss->data[0];
}

long classifier_train(Classifier *net, const Dataset *d, const ClassifierTrain *ct)
{
    DDPM_CHECK(d->labels && ct->batch <= 4096, "classifier_train: needs labels, batch <= 4096");
    ParamSet *ps = &net->params;
    real *m = calloc(ps->total, sizeof(real)), *v = calloc(ps->total, sizeof(real));
    int *order = malloc(sizeof(int) * d->n), idx[4096], correct = 0, seen = 0;
    long epoch = -1, s;
    Arena ar;
    Tape tp;
    arena_init(&ar, 256u << 20);
    tape_init(&tp, &ar);
    Progress pr;
    progress_start(&pr, "classifier", ct->steps, ct->quiet);
    double ema_loss = 0;
    for (s = 0; s < ct->steps; s++) {
        if ((ct->minutes > 0 && progress_now() - pr.start > 60 * ct->minutes) ||
            (ct->stop > 0 && s >= ct->stop)) break;
        Rng rng;
        rng_seed(&rng, ct->seed, (unsigned long long)s);
        for (int j = 0; j < ct->batch; j++)
            idx[j] = next_index(order, &epoch, d->n, s * ct->batch + j, ct->seed);
        double loss = train_step(net, &tp, d, idx, ct, &rng, &correct);
        adamw_update(ps, m, v, s, cls_learning_rate(ct, s), ct->weight_decay);
        tape_reset(&tp);
        arena_reset(&ar);
        ema_loss = s ? 0.98 * ema_loss + 0.02 * loss : loss;
        seen += ct->batch;
        char note[96];
        snprintf(note, sizeof note, "loss %.3f  train acc %.1f%%  epoch %.2f", ema_loss,
                 100.0 * correct / seen, (double)(s + 1) * ct->batch / d->n);
        if (seen >= 50 * ct->batch) correct = seen = 0;
        progress_update(&pr, s + 1, note);
    }
    progress_end(&pr, s, NULL);
    tape_free(&tp);
    arena_free(&ar);
    free(m), free(v), free(order);
    return s;
}
