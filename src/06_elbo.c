/* 06_elbo.c — the variational bound, the simple loss, bits per dimension.
 *
 * Chapter 06 (book/06_elbo.md). Training maximises a lower bound on the
 * log-likelihood (Eq. 3), which the forward process lets us write as a sum
 * of per-step terms (Eq. 5):
 *
 *   L = L_T + sum_{t>1} L_{t-1} + L_0
 *   L_T     = KL(q(x_T | x_0) || N(0, I))               nothing to learn
 *   L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))   Gaussians: Eq. 8
 *   L_0     = -log p(x_0 | x_1)                          the decoder, Eq. 13
 *
 * The network's output becomes p(x_{t-1} | x_t) in p_mean_variance: a mean
 * (Eq. 11 when it predicts eps) and a variance (fixed or learned). The bound
 * term at one t is vb_terms_bpd; training_losses takes one t and one noise
 * draw per image (Alg. 1) and returns the bound term (the true bound), Eq.
 * 14's unweighted mean squared error (L_simple), or their improved-DDPM mix;
 * calc_bpd_loop evaluates every term of the bound for a set of images, in
 * bits per dimension.
 *
 * The file is, in order: the two ops of the bound itself (each a forward
 * and backward kernel on raw arrays plus an ag_ op, as in chapter 01: the
 * Gaussian KL and the discretised decoder), then the reverse process, the
 * losses and the bits/dim loop. The per-image ops, clip and detach it builds
 * on are chapter 01's; channel slices are chapter 02's. Names follow the official code (diffusion_utils_2.py).
 *
 * Shape legend: N images, C channels, H x W pixels, D = C*H*W values per
 * image, HW = H*W; t [N] code timesteps 0..T-1 (paper t = code t + 1).
 * Kernels accumulate gradients (+=); scratch comes from the tape's arena.
 */
#include "06_elbo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>   // exp(), log(), fabs() pick the float or double version

#define BIN_HALF ((real)1 / 255)   // half the width of one of 256 levels on [-1, 1]
#define EDGE 0.999                 // |x| beyond this is the first or the last level
#define PROB_FLOOR 1e-12           // log-probabilities are floored here (official code)

static const double LN2 = 0.69314718055994530942;

/* ---- configuration --------------------------------------------------------- */

const char *const mean_names[] = {"eps", "x0", "mu", NULL};
const char *const var_names[] = {"fixedlarge", "fixedsmall", "learned", NULL};
const char *const loss_names[] = {"simple", "vlb", "hybrid", NULL};

const char *mean_type_name(MeanType m) { return mean_names[m]; }
const char *var_type_name(VarType v)   { return var_names[v]; }
const char *loss_type_name(LossType l) { return loss_names[l]; }

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int diffusion_parse(Diffusion *df, const char *mean, const char *var, const char *loss,
                    Error *err)
{
    int m = lookup(mean, mean_names, 3), v = lookup(var, var_names, 3);
    int l = lookup(loss, loss_names, 3);
    if (m < 0) return error_set(err, "unknown mean type '%s' (known: eps, x0, mu)", mean);
    if (v < 0)
        return error_set(err, "unknown variance '%s' (known: fixedlarge, fixedsmall, learned)",
                         var);
    if (l < 0) return error_set(err, "unknown loss '%s' (known: simple, vlb, hybrid)", loss);
    if (l == LOSS_SIMPLE && v == VAR_LEARNED)
        return error_set(err, "the simple loss cannot train a learned variance: "
                              "use --loss vlb or --loss hybrid");
    if (l == LOSS_HYBRID && v != VAR_LEARNED)
        return error_set(err, "the hybrid loss only adds L_vlb to train the variance: "
                              "use it with --var learned");
    df->mean = (MeanType)m;
    df->var = (VarType)v;
    df->loss = (LossType)l;
    df->hybrid_lambda = (real)0.001;
    return 0;
}

int diffusion_out_channels(const Diffusion *df, int image_channels)
{
    return df->var == VAR_LEARNED ? 2 * image_channels : image_channels;
}

// NOTE: fixed-large is log(append(beta~[1], beta[1:])) as in the official
// code: code t = 0 borrows beta~ of t = 1, a better decoder variance than
// beta_0; fixed-small is the clipped log beta~ (the same first entry).
double diffusion_fixed_logvar(const Diffusion *df, int t)
{
    const Schedule *s = df->sched;
    DDPM_CHECK(df->var != VAR_LEARNED, "diffusion_fixed_logvar: the variance is learned");
    DDPM_CHECK(t >= 0 && t < s->T && s->T >= 2, "diffusion_fixed_logvar: t = %d", t);
    if (df->var == VAR_FIXED_SMALL) return s->posterior_log_variance_clipped[t];
    return log(t == 0 ? (double)s->posterior_variance[1] : (double)s->betas[t]);
}

/* ---- normal_kl: KL between diagonal Gaussians --------------------------- */
/* KL(N(m1, v1) || N(m2, v2)) = 1/2 (-1 + log v2 - log v1 + v1/v2 + (m1-m2)^2 / v2)
 * with v = e^logvar. Writing e = v1/v2 and g = (m1 - m2)/v2, the derivatives
 *   d/dm1 = g     d/dm2 = -g     d/dlogvar1 = (e - 1)/2
 *   d/dlogvar2 = (1 - e - (m1 - m2) g)/2
 * are as cheap as the value, so all four are offered.                       */

void normal_kl_forward(real *out, const real *mean1, const real *logvar1,
                       const real *mean2, const real *logvar2, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real d = mean1[i] - mean2[i];
        out[i] = (real)0.5 * (-1 + logvar2[i] - logvar1[i] + exp(logvar1[i] - logvar2[i])
                              + d * d * exp(-logvar2[i]));
    }
}

void normal_kl_backward(real *dmean1, real *dlogvar1, real *dmean2, real *dlogvar2,
                        const real *dout, const real *mean1, const real *logvar1,
                        const real *mean2, const real *logvar2, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real d = mean1[i] - mean2[i], g = d * exp(-logvar2[i]);
        real e = exp(logvar1[i] - logvar2[i]);
        if (dmean1) dmean1[i] += dout[i] * g;
        if (dmean2) dmean2[i] -= dout[i] * g;
        if (dlogvar1) dlogvar1[i] += dout[i] * (real)0.5 * (e - 1);
        if (dlogvar2) dlogvar2[i] += dout[i] * (real)0.5 * (1 - e - d * g);
    }
}

static void normal_kl_node(Tape *tp, Node *nd)
{
    Tensor **in = nd->in;
    normal_kl_backward(tape_grad_if(tp, in[0]), tape_grad_if(tp, in[1]),
                       tape_grad_if(tp, in[2]), tape_grad_if(tp, in[3]), nd->out->grad,
                       in[0]->data, in[1]->data, in[2]->data, in[3]->data, nd->out->size);
}

Tensor *ag_normal_kl(Tape *tp, Tensor *mean1, Tensor *logvar1, Tensor *mean2, Tensor *logvar2)
{
    tensor_check_same("normal_kl", mean1, logvar1);
    tensor_check_same("normal_kl", mean1, mean2);
    tensor_check_same("normal_kl", mean1, logvar2);
    Tensor *out = tensor_like(tp->arena, mean1);
    normal_kl_forward(out->data, mean1->data, logvar1->data, mean2->data, logvar2->data,
                      out->size);
    tape_record(tp, "normal_kl", normal_kl_node, out, 4,
                (Tensor *[]){mean1, logvar1, mean2, logvar2});
    return out;
}

/* ---- the decoder: a Gaussian discretised to 256 levels (Eq. 13) ---------- */
/* NOTE: the official code's normal CDF, Phi(x) ~ 1/2 (1 + tanh(u)) with
 * u = sqrt(2/pi) (x + 0.044715 x^3), not the exact erf. We write it as
 * sigmoid(2u), the same function, which keeps full relative precision in the
 * lower tail; the upper tail is reached through 1 - Phi(x) = Phi(-x).      */

real approx_std_normal_cdf(real x)
{
    real u = (real)0.7978845608028654 * (x + (real)0.044715 * x * x * x);
    return 1 / (1 + exp(-2 * u));
}

// d/dx sigmoid(2u) = 2 u'(x) sigmoid(2u) sigmoid(-2u): even in x, like the density.
real approx_std_normal_pdf(real x)
{
    real u = (real)0.7978845608028654 * (x + (real)0.044715 * x * x * x);
    real du = (real)0.7978845608028654 * (1 + 3 * (real)0.044715 * x * x);
    return 2 * du / ((1 + exp(-2 * u)) * (1 + exp(2 * u)));
}

// The probability of x's bin [x - 1/255, x + 1/255] in standardised units
// lo = (x - 1/255 - mean)/sigma, hi = (x + 1/255 - mean)/sigma; the first
// bin is open below, the last open above (NOTE: |x| > 0.999 as officially).
static real bin_prob(real x, real lo, real hi)
{
    if (x < -EDGE) return approx_std_normal_cdf(hi);        // (-inf, -1 + 1/255]
    if (x > EDGE) return approx_std_normal_cdf(-lo);        // [1 - 1/255, +inf)
    if (lo > 0)                                             // both ends above the mean:
        return approx_std_normal_cdf(-lo) - approx_std_normal_cdf(-hi);  // mirror
    return approx_std_normal_cdf(hi) - approx_std_normal_cdf(lo);
}

void discretized_gaussian_log_likelihood_forward(real *out, const real *x, const real *mean,
                                                 const real *logvar, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real inv_std = exp((real)-0.5 * logvar[i]), c = x[i] - mean[i];
        real p = bin_prob(x[i], inv_std * (c - BIN_HALF), inv_std * (c + BIN_HALF));
        out[i] = log(fmax(p, (real)PROB_FLOOR));
    }
}

// With P = Phi(hi) - Phi(lo) (dropping the open end's term at an edge) and
// d hi/d mean = -1/sigma, d hi/d logvar = -hi/2 (the same for lo):
//   d log P = (phi(hi) d hi - phi(lo) d lo) / P,  and 0 where P is floored.
void discretized_gaussian_log_likelihood_backward(real *dmean, real *dlogvar, const real *dout,
                                                  const real *x, const real *mean,
                                                  const real *logvar, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real inv_std = exp((real)-0.5 * logvar[i]), c = x[i] - mean[i];
        real lo = inv_std * (c - BIN_HALF), hi = inv_std * (c + BIN_HALF);
        real p = bin_prob(x[i], lo, hi);
        if (p < (real)PROB_FLOOR) continue;
        real ph = x[i] > EDGE ? 0 : approx_std_normal_pdf(hi);   // open above: no hi end
        real pl = x[i] < -EDGE ? 0 : approx_std_normal_pdf(lo);  // open below: no lo end
        real g = dout[i] / p;
        if (dmean) dmean[i] += g * -inv_std * (ph - pl);
        if (dlogvar) dlogvar[i] += g * (real)-0.5 * (ph * hi - pl * lo);
    }
}

static void dgll_node(Tape *tp, Node *nd)
{
    Tensor **in = nd->in;
    discretized_gaussian_log_likelihood_backward(
        tape_grad_if(tp, in[1]), tape_grad_if(tp, in[2]), nd->out->grad,
        in[0]->data, in[1]->data, in[2]->data, nd->out->size);
}

// x is data: it never receives a gradient.
Tensor *ag_discretized_gaussian_log_likelihood(Tape *tp, Tensor *x, Tensor *mean, Tensor *logvar)
{
    tensor_check_same("discretized_gaussian_log_likelihood", x, mean);
    tensor_check_same("discretized_gaussian_log_likelihood", x, logvar);
    DDPM_CHECK(!x->requires_grad, "discretized_gaussian_log_likelihood: x is data, "
               "it takes no gradient");
    Tensor *out = tensor_like(tp->arena, x);
    discretized_gaussian_log_likelihood_forward(out->data, x->data, mean->data, logvar->data,
                                                out->size);
    tape_record(tp, "discretized_gaussian_ll", dgll_node, out, 3, (Tensor *[]){x, mean, logvar});
    return out;
}

/* ---- the reverse process p(x_{t-1} | x_t) ---------------------------------- */

// One value per image, table[t[n]] * scale, in the tape's arena.
static real *per_image(Tape *tp, const real *table, const int *t, int N, real scale)
{
    real *v = arena_alloc(tp->arena, (size_t)N * sizeof(real));
    for (int n = 0; n < N; n++) v[n] = table[t[n]] * scale;
    return v;
}

// A constant tensor shaped like `like` holding v[n] at every position of image n.
static Tensor *fill_per_image(Tape *tp, const Tensor *like, const real *v)
{
    Tensor *out = tensor_like(tp->arena, like);
    int N = like->shape[0];
    size_t D = like->size / N;
    for (int n = 0; n < N; n++) vec_fill(out->data + (size_t)n * D, v[n], D);
    return out;
}

// Eq. (7): mu~ = coef1_t x0 + coef2_t xt, on the tape (x0 may carry a gradient).
static Tensor *posterior_mean(Tape *tp, const Schedule *s, Tensor *x0, Tensor *xt, const int *t)
{
    int N = xt->shape[0];
    return ag_axpby_per_sample(tp, per_image(tp, s->posterior_mean_coef1, t, N, 1), x0,
                               per_image(tp, s->posterior_mean_coef2, t, N, 1), xt);
}

// NOTE: improved DDPM's "learned_range" (Nichol & Dhariwal 2021), not the
// official DDPM code's raw log-variance output: the network's v interpolates
// between the two fixed choices, v = -1 giving beta~_t and v = +1 beta_t,
//   logvar = frac log beta_t + (1 - frac) log beta~_t,  frac = (v + 1)/2
//          = v (max - min)/2 + (max + min)/2.
static Tensor *learned_logvar(Tape *tp, const Schedule *s, Tensor *v, const int *t)
{
    int N = v->shape[0];
    real *a = arena_alloc(tp->arena, 2 * (size_t)N * sizeof(real)), *b = a + N;
    for (int n = 0; n < N; n++) {
        real max_log = log(s->betas[t[n]]), min_log = s->posterior_log_variance_clipped[t[n]];
        a[n] = (max_log - min_log) / 2;
        b[n] = (max_log + min_log) / 2;
    }
    return ag_affine_per_sample(tp, v, a, b);
}

static Tensor *maybe_clip(Tape *tp, Tensor *x, int clip)
{
    return clip ? ag_clip(tp, x, -1, 1) : x;
}

PMeanVar p_mean_variance(Tape *tp, const Diffusion *df, Tensor *model_out, Tensor *xt,
                         const int *t, int clip_x0)
{
    const Schedule *s = df->sched;
    int N = xt->shape[0], C = xt->shape[1];
    DDPM_CHECK(xt->ndim == 4 && model_out->ndim == 4 && model_out->shape[0] == N &&
               model_out->shape[1] == diffusion_out_channels(df, C),
               "p_mean_variance: model output has %d channels, the image %d", model_out->shape[1], C);
    PMeanVar p;
    Tensor *out = model_out;
    // Variance: fixed by the schedule, or learned in a second set of channels.
    if (df->var == VAR_LEARNED) {
        out = ag_slice_channels(tp, model_out, 0, C);
        p.logvar = learned_logvar(tp, s, ag_slice_channels(tp, model_out, C, C), t);
    } else {
        real *lv = arena_alloc(tp->arena, (size_t)N * sizeof(real));
        for (int n = 0; n < N; n++) lv[n] = (real)diffusion_fixed_logvar(df, t[n]);
        p.logvar = fill_per_image(tp, xt, lv);
    }
    // Mean: every type goes through x0, which is what gets clipped.
    switch (df->mean) {
    case MEAN_EPS:   // Eq. 4 solved for x0, into mu~ (Eq. 7): together Eq. 11
        p.x0 = ag_axpby_per_sample(tp, per_image(tp, s->sqrt_recip_alphas_cumprod, t, N, 1), xt,
                                   per_image(tp, s->sqrt_recipm1_alphas_cumprod, t, N, -1), out);
        p.x0 = maybe_clip(tp, p.x0, clip_x0);
        p.mean = posterior_mean(tp, s, p.x0, xt, t);
        break;
    case MEAN_X0:
        p.x0 = maybe_clip(tp, out, clip_x0);
        p.mean = posterior_mean(tp, s, p.x0, xt, t);
        break;
    case MEAN_MU: {  // the mean itself; x0 = (mu - coef2 xt) / coef1 for reporting
        real *a = arena_alloc(tp->arena, 2 * (size_t)N * sizeof(real)), *b = a + N;
        for (int n = 0; n < N; n++) {
            a[n] = 1 / s->posterior_mean_coef1[t[n]];
            b[n] = -s->posterior_mean_coef2[t[n]] / s->posterior_mean_coef1[t[n]];
        }
        p.mean = out;
        p.x0 = maybe_clip(tp, ag_axpby_per_sample(tp, a, out, b, xt), clip_x0);
        break;
    }
    }
    return p;
}

/* ---- the bound, term by term ------------------------------------------------- */

Tensor *vb_terms_bpd(Tape *tp, const Diffusion *df, Tensor *model_out, Tensor *x0,
                     Tensor *xt, const int *t, int clip_x0, Tensor **x0_pred)
{
    const Schedule *s = df->sched;
    int N = x0->shape[0];
    size_t D = x0->size / N;
    // The true posterior q(x_{t-1} | x_t, x0) (Eq. 6-7): constants.
    Tensor *true_mean = tensor_like(tp->arena, x0);
    real *lv = arena_alloc(tp->arena, (size_t)N * sizeof(real));
    q_posterior_mean_variance(true_mean->data, NULL, lv, x0->data, xt->data, t, N, D, s);
    Tensor *true_logvar = fill_per_image(tp, x0, lv);

    PMeanVar p = p_mean_variance(tp, df, model_out, xt, t, clip_x0);
    if (x0_pred) *x0_pred = p.x0;
    Tensor *kl = ag_mean_flat(tp, ag_normal_kl(tp, true_mean, true_logvar, p.mean, p.logvar));
    Tensor *ll = ag_mean_flat(tp, ag_discretized_gaussian_log_likelihood(tp, x0, p.mean,
                                                                          p.logvar));
    // Eq. (5): L_{t-1} = KL for t > 0 and L_0 = -log p(x0 | x1) at t = 0, in
    // bits: nats / ln 2 (per dimension already: mean_flat divided by D).
    real *a = arena_alloc(tp->arena, 2 * (size_t)N * sizeof(real)), *b = a + N;
    for (int n = 0; n < N; n++) {
        a[n] = t[n] > 0 ? (real)(1 / LN2) : 0;
        b[n] = t[n] == 0 ? (real)(-1 / LN2) : 0;
    }
    return ag_axpby_per_sample(tp, a, kl, b, ll);
}

// L_T = KL(N(sqrt(abar_T) x0, 1 - abar_T) || N(0, 1)), per dim, in bits
// (official _prior_bpd). Fixed by the schedule: no parameter touches it.
void prior_bpd(real *out, const real *x0, int N, size_t D, const Schedule *s)
{
    int T = s->T;
    double m = s->sqrt_alphas_cumprod[T - 1], lv = s->log_one_minus_alphas_cumprod[T - 1];
    for (int n = 0; n < N; n++) {
        double kl = 0;
        for (size_t i = 0; i < D; i++) {
            double mu = m * x0[(size_t)n * D + i];
            kl += 0.5 * (-1 - lv + exp(lv) + mu * mu);
        }
        out[n] = (real)(kl / (double)D / LN2);
    }
}

/* ---- the training losses (Alg. 1) ------------------------------------------- */

// Eq. (14), generalised as in the official code: the squared error of
// whatever the network predicts, eps, x0 or mu~, mean over each image.
static Tensor *mse_losses(Tape *tp, const Diffusion *df, Tensor *out, Tensor *x0, Tensor *xt,
                          const int *t, Tensor *noise)
{
    Tensor *target = df->mean == MEAN_EPS ? noise : x0;
    if (df->mean == MEAN_MU) {
        int N = x0->shape[0];
        target = tensor_like(tp->arena, x0);
        q_posterior_mean_variance(target->data, NULL, NULL, x0->data, xt->data, t, N,
                                  x0->size / N, df->sched);
    }
    return ag_mean_flat(tp, ag_square(tp, ag_sub(tp, out, target)));
}

// Improved DDPM's hybrid: the bound term sees the mean channels through a
// stop-gradient, so it trains only the variance; L_simple trains the mean.
static Tensor *hybrid_losses(Tape *tp, const Diffusion *df, Tensor *out, Tensor *x0,
                             Tensor *xt, const int *t, Tensor *noise)
{
    int N = x0->shape[0], C = x0->shape[1];
    Tensor *mean_out = ag_slice_channels(tp, out, 0, C);
    Tensor *frozen = ag_concat(tp, ag_detach(tp, mean_out), ag_slice_channels(tp, out, C, C));
    Tensor *vb = vb_terms_bpd(tp, df, frozen, x0, xt, t, 0, NULL);
    real *w = arena_alloc(tp->arena, 2 * (size_t)N * sizeof(real));
    for (int n = 0; n < N; n++) {
        w[n] = 1;
        w[N + n] = df->hybrid_lambda * (real)df->sched->T;   // lambda L_vlb, L_vlb ~ T L_t
    }
    return ag_axpby_per_sample(tp, w, mse_losses(tp, df, mean_out, x0, xt, t, noise),
                               w + N, vb);
}

Tensor *training_losses(Tape *tp, const Diffusion *df, const Model *m, Tensor *x0,
                        const int *t, Tensor *noise, Rng *dropout_rng, real *per_sample)
{
    int N = x0->shape[0];
    tensor_check_same("training_losses", x0, noise);
    DDPM_CHECK(!(df->loss == LOSS_SIMPLE && df->var == VAR_LEARNED) &&
               !(df->loss == LOSS_HYBRID && df->var != VAR_LEARNED),
               "training_losses: loss %s with variance %s", loss_type_name(df->loss),
               var_type_name(df->var));
    // x_t ~ q(x_t | x0) with the given noise (Eq. 4), then the network.
    Tensor *xt = tensor_like(tp->arena, x0);
    q_sample(xt->data, x0->data, noise->data, t, N, x0->size / N, df->sched);
    Tensor *out = m->forward(tp, m->ctx, xt, t, dropout_rng);
    Tensor *losses;
    if (df->loss == LOSS_SIMPLE) losses = mse_losses(tp, df, out, x0, xt, t, noise);
    else if (df->loss == LOSS_VLB) losses = vb_terms_bpd(tp, df, out, x0, xt, t, 0, NULL);
    else losses = hybrid_losses(tp, df, out, x0, xt, t, noise);
    if (per_sample) vec_copy(per_sample, losses->data, (size_t)N);
    return ag_mean(tp, losses);
}

/* ---- bits per dimension (official calc_bpd_loop) --------------------------- */

void bpd_result_free(BpdResult *res)
{
    free(res->terms);
    free(res->mse);
    free(res->prior);
    free(res->total);
    memset(res, 0, sizeof *res);
}

/* ---- the report of ddpm bpd -------------------------------------------------- */

void bpd_mean_se(const double *x, int n, double *mean, double *se)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *se = n > 1 ? sqrt(s2 / (n - 1) / n) : 0;
}

int bpd_print_summary(FILE *f, const BpdResult *r, Error *err)
{
    int n = r->N;
    double *col = malloc(sizeof(double) * (size_t)n), m, se;
    if (!col) return error_set(err, "out of memory for the summary of %d images", n);
    bpd_mean_se(r->total, n, &m, &se);
    fprintf(f, "total   %.5f +- %.5f bits/dim\n", m, se);
    bpd_mean_se(r->prior, n, &m, &se);
    fprintf(f, "prior   %.5f +- %.5f bits/dim\n", m, se);
    for (int i = 0; i < n; i++) {
        col[i] = 0;
        for (int t = 1; t < r->T; t++) col[i] += r->terms[(size_t)t * n + i];
    }
    bpd_mean_se(col, n, &m, &se);
    fprintf(f, "terms   %.5f +- %.5f bits/dim\n", m, se);
    bpd_mean_se(r->terms, n, &m, &se);   // code t = 0: the decoder
    fprintf(f, "decoder %.5f +- %.5f bits/dim\n", m, se);
    free(col);
    return 0;
}

int bpd_write_csv(const char *path, const BpdResult *r, Error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return error_set(err, "%s: cannot write (%s)", path, strerror(errno));
    double m, se, *col = malloc(sizeof(double) * (size_t)r->N);
    if (!col) {
        fclose(f);
        return error_set(err, "%s: out of memory", path);
    }
    bpd_mean_se(r->prior, r->N, &m, &se);
    fprintf(f, "# prior_bpd=%.8f prior_se=%.8f images=%d\n", m, se, r->N);
    fprintf(f, "t,term_bpd,term_se,mse_x0\n");
    for (int t = 0; t < r->T; t++) {
        double mm, ms;
        for (int n = 0; n < r->N; n++) col[n] = r->terms[(size_t)t * r->N + n];
        bpd_mean_se(col, r->N, &m, &se);
        for (int n = 0; n < r->N; n++) col[n] = r->mse[(size_t)t * r->N + n];
        bpd_mean_se(col, r->N, &mm, &ms);
        fprintf(f, "%d,%.8f,%.8f,%.8f\n", t, m, se, mm);
    }
    free(col);
    return fclose(f) == 0 ? 0 : error_set(err, "%s: write failed", path);
}

int model_check(const Diffusion *df, const Model *m, int C, int H, int W, Error *err)
{
    if (C != m->in_ch || H != m->resolution || W != m->resolution)
        return error_set(err, "images are %dx%dx%d but the network takes %dx%dx%d", C, H, W,
                         m->in_ch, m->resolution, m->resolution);
    int want = diffusion_out_channels(df, C);
    if (m->out_ch != want)
        return error_set(err, "the network outputs %d channels for %d input channels; "
                              "--var %s needs %d", m->out_ch, C, var_type_name(df->var), want);
    return 0;
}

static int bpd_check(const Diffusion *df, const Model *m, int N, int C, int H, int W,
                     int batch, Error *err)
{
    if (N <= 0 || batch <= 0)
        return error_set(err, "bits/dim needs at least one image and a batch size (got %d, %d)",
                         N, batch);
    return model_check(df, m, C, H, W, err);
}

// The term at code t `step` for images n0 .. n0+B-1, with the mean squared
// error of their predicted x0. The caller resets the arena after each step,
// so the images are copied in each time (B*D values, nothing next to a U-Net).
static void bpd_step(const Diffusion *df, const Model *m, const real *x0, int n0, int B,
                     int step, const int *shape, Rng *rng, int clip, BpdResult *res, Tape *tp)
{
    int N = res->N;
    size_t D = (size_t)shape[1] * shape[2] * shape[3];
    Tensor *x = tensor_4d(tp->arena, B, shape[1], shape[2], shape[3]);
    vec_copy(x->data, x0 + (size_t)n0 * D, (size_t)B * D);
    Tensor *xt = tensor_like(tp->arena, x);
    rng_fill_normal(rng, xt->data, xt->size, 0, 1);   // a fresh x_t ~ q(x_t | x0) ...
    int *t = arena_alloc(tp->arena, (size_t)B * sizeof(int));
    for (int n = 0; n < B; n++) t[n] = step;
    q_sample(xt->data, x->data, xt->data, t, B, D, df->sched);   // ... for every t (Eq. 4)
    Tensor *out = m->forward(tp, m->ctx, xt, t, NULL);
    Tensor *x0_pred;
    Tensor *vb = vb_terms_bpd(tp, df, out, x, xt, t, clip, &x0_pred);
    for (int n = 0; n < B; n++) {
        double se = 0;
        for (size_t i = 0; i < D; i++) {
            double d = (double)x0_pred->data[(size_t)n * D + i] - x->data[(size_t)n * D + i];
            se += d * d;
        }
        res->terms[(size_t)step * N + n0 + n] = vb->data[n];
        res->mse[(size_t)step * N + n0 + n] = se / (double)D;
    }
}

int calc_bpd_loop(const Diffusion *df, const Model *m, const real *x0, int N, int C, int H,
                  int W, int batch, Rng *rng, int clip, BpdResult *res,
                  void (*progress)(void *ctx, long done, long total), void *ctx, Error *err)
{
    memset(res, 0, sizeof *res);
    if (bpd_check(df, m, N, C, H, W, batch, err)) return -1;
    int T = df->sched->T, shape[4] = {N, C, H, W};
    size_t D = (size_t)C * H * W;
    res->N = N;
    res->T = T;
    res->terms = calloc((size_t)T * N, sizeof(double));
    res->mse = calloc((size_t)T * N, sizeof(double));
    res->prior = calloc((size_t)N, sizeof(double));
    res->total = calloc((size_t)N, sizeof(double));
    real *prior = malloc((size_t)N * sizeof(real));
    DDPM_CHECK(res->terms && res->mse && res->prior && res->total && prior,
               "out of memory for bits/dim of %d images", N);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);   // evaluation: no gradients, nothing recorded
    for (int n0 = 0; n0 < N; n0 += batch) {
        int B = N - n0 < batch ? N - n0 : batch;
        for (int step = T - 1; step >= 0; step--) {
            bpd_step(df, m, x0, n0, B, step, shape, rng, clip, res, &tp);
            arena_reset(&ar);
            if (progress) progress(ctx, (long)n0 * T + (long)B * (T - step), (long)N * T);
        }
    }
    // L = L_T + sum_t L_t (Eq. 5), per image.
    prior_bpd(prior, x0, N, D, df->sched);
    for (int n = 0; n < N; n++) {
        res->prior[n] = prior[n];
        res->total[n] = prior[n];
        for (int step = 0; step < T; step++) res->total[n] += res->terms[(size_t)step * N + n];
    }
    free(prior);
    tape_free(&tp);
    arena_free(&ar);
    return 0;
}
