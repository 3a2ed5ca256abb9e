/* 06_elbo.h — the variational bound, the simple loss, bits per dimension.
 *
 * Chapter 06 of the book (book/06_elbo.md). Paper Eq. 3, 5, 8, 10–14 and
 * Alg. 1; the official code's GaussianDiffusion2 (p_mean_variance,
 * _vb_terms_bpd, training_losses, _prior_bpd, calc_bpd_loop) with its names.
 *
 * Shapes: x0, xt, noise, the model's mean, log-variance and x0 prediction
 * [N, C, H, W]; model_out [N, C, H, W], or [N, 2C, H, W] with learned
 * variance; t [N] code timesteps 0..T-1 (paper t = code t + 1); per-image
 * values [N]; D = C*H*W. Log-likelihood kernels work in nats; everything
 * named *_bpd is in bits per dimension.
 */
#ifndef DDPM_ELBO_H
#define DDPM_ELBO_H

#include "02_conv.h"      // concat and slice_channels (the hybrid loss)
#include "05_schedule.h"
#include "model.h"

typedef enum MeanType { MEAN_EPS, MEAN_X0, MEAN_MU } MeanType;  // what the network predicts
typedef enum VarType  { VAR_FIXED_LARGE, VAR_FIXED_SMALL, VAR_LEARNED } VarType;
typedef enum LossType { LOSS_SIMPLE, LOSS_VLB, LOSS_HYBRID } LossType;

typedef struct Diffusion {
    const Schedule *sched;
    MeanType mean;             // eps: Eq. 11; x0: through mu~ (Eq. 7); mu: mu directly
    VarType var;               // beta_t, beta~_t, or learned between them
    LossType loss;             // Eq. 14, the bound (Eq. 5), or Eq. 14 + lambda L_vlb
    real hybrid_lambda;        // weight of L_vlb in hybrid (improved DDPM uses 0.001)
} Diffusion;

// Names as on the command line: mean "eps|x0|mu", var
// "fixedlarge|fixedsmall|learned", loss "simple|vlb|hybrid". Sets
// hybrid_lambda = 0.001 and leaves sched alone. Refuses simple with learned
// variance (nothing would train it) and hybrid without it.
int diffusion_parse(Diffusion *df, const char *mean, const char *var, const char *loss,
                    Error *err);
extern const char *const mean_names[], *const var_names[], *const loss_names[];  // NULL-ended
const char *mean_type_name(MeanType m);
const char *var_type_name(VarType v);
const char *loss_type_name(LossType l);
int diffusion_out_channels(const Diffusion *df, int image_channels);  // 2x for learned
// The fixed log-variance of p(x_{t-1} | x_t) at code t (VAR_FIXED_*).
double diffusion_fixed_logvar(const Diffusion *df, int t);

/* ---- kernels: forward / backward pairs on raw arrays (n elements) ------ */

// KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats.
void normal_kl_forward(real *out, const real *mean1, const real *logvar1,
                       const real *mean2, const real *logvar2, size_t n);
void normal_kl_backward(real *dmean1, real *dlogvar1, real *dmean2, real *dlogvar2,
                        const real *dout, const real *mean1, const real *logvar1,
                        const real *mean2, const real *logvar2, size_t n);
// The official code's tanh approximation of the standard normal CDF, and
// its derivative (the approximation's own, not the exact density).
real approx_std_normal_cdf(real x);
real approx_std_normal_pdf(real x);
// Eq. (13), one value at a time: log of the mass N(mean, e^logvar) puts on
// the bin of x (width 2/255; the edge bins open at -1 and +1), floored at 1e-12.
void discretized_gaussian_log_likelihood_forward(real *out, const real *x, const real *mean,
                                                 const real *logvar, size_t n);
void discretized_gaussian_log_likelihood_backward(real *dmean, real *dlogvar, const real *dout,
                                                  const real *x, const real *mean,
                                                  const real *logvar, size_t n);

/* ---- ops on the tape ---------------------------------------------------- */

Tensor *ag_normal_kl(Tape *tp, Tensor *mean1, Tensor *logvar1, Tensor *mean2, Tensor *logvar2);
Tensor *ag_discretized_gaussian_log_likelihood(Tape *tp, Tensor *x, Tensor *mean, Tensor *logvar);

/* ---- the model as the reverse process sees it ----------------------------- */

// A Model (model.h): the U-Net through unet_model (04_unet.h), or a
// denoiser known in closed form in the tests.
// -1 with a message unless images [C, H, W] fit the model and its output
// channels fit df (2C for learned variance).
int model_check(const Diffusion *df, const Model *m, int C, int H, int W, Error *err);

/* ---- the reverse process and the bound ---------------------------------- */

// The model's p(x_{t-1} | x_t) = N(mean, e^logvar) from the network output
// (official p_mean_variance), as tape ops. mean, logvar and x0 (the
// predicted x_0) are all [N, C, H, W]: for fixed variance logvar holds the
// per-image constant at every position and needs no gradient; for learned
// variance it is the improved-DDPM interpolation between log beta_t and
// log beta~_t. x0 is clipped to [-1, 1] when clip_x0 is set (sampling and
// evaluation; never in training), and then so is the mean built from it.
typedef struct PMeanVar { Tensor *mean, *logvar, *x0; } PMeanVar;
PMeanVar p_mean_variance(Tape *tp, const Diffusion *df, Tensor *model_out, Tensor *xt,
                         const int *t, int clip_x0);

// One term of the bound per image, in bits/dim (official _vb_terms_bpd):
// L_{t-1} = KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for code t > 0 (Eq. 5),
// L_0 = -log p(x0 | x_1) for code t = 0 (Eq. 13). Returns [N]; the
// predicted x_0 in *x0_pred if that is not NULL.
Tensor *vb_terms_bpd(Tape *tp, const Diffusion *df, Tensor *model_out, Tensor *x0,
                     Tensor *xt, const int *t, int clip_x0, Tensor **x0_pred);

// L_T per image in bits/dim: KL(q(x_T | x0) || N(0, I)). out [N], x0 [N, D].
void prior_bpd(real *out, const real *x0, int N, size_t D, const Schedule *s);

// The loss of one batch (Alg. 1), mean over the batch, on the tape. noise is
// the eps of q_sample (Eq. 4). Per image:
//   simple  mean over dims of (target - output)^2 (Eq. 14), the target being
//           eps, x0 or mu~ by df->mean
//   vlb     vb_terms_bpd (unclipped): the unweighted bound term at t
//   hybrid  simple on the mean channels + hybrid_lambda * T * vb_terms_bpd
//           with the mean channels detached (improved DDPM: T * the term at
//           a uniform t estimates the whole L_vlb; lambda T = 1 at T = 1000)
// per_sample [N] (may be NULL) receives each image's loss.
// dropout_rng: the model's dropout masks (NULL: none, as in evaluation).
Tensor *training_losses(Tape *tp, const Diffusion *df, const Model *m, Tensor *x0,
                        const int *t, Tensor *noise, Rng *dropout_rng, real *per_sample);

// Bits/dim of images under the model (official calc_bpd_loop): for every
// code t = T-1 .. 0 a fresh x_t ~ q(x_t | x0) (noise drawn from rng, image
// batch by image batch, t descending), the term vb_terms_bpd and the mean
// squared error of the predicted x_0; plus L_T and the total per image.
typedef struct BpdResult {
    int N, T;
    double *terms;   // [T * N], terms[t*N + n], code t = 0 is L_0 (the decoder)
    double *mse;     // [T * N]  mean over dims of (x0_pred - x0)^2
    double *prior;   // [N]      L_T
    double *total;   // [N]      prior + sum of terms
} BpdResult;
// x0 [N, C, H, W] in [-1, 1]; batch images per network call; progress (may
// be NULL) is told done/total in image-timesteps (total = N * T).
int  calc_bpd_loop(const Diffusion *df, const Model *m, const real *x0, int N, int C, int H,
                   int W, int batch, Rng *rng, int clip, BpdResult *res,
                   void (*progress)(void *ctx, long done, long total), void *ctx, Error *err);
void bpd_result_free(BpdResult *res);

// The report of ddpm bpd. bpd_mean_se: the mean of x[0..n) and its standard
// error (n - 1 in the variance). bpd_print_summary: total, prior (L_T),
// terms (L_1..L_{T-1}) and decoder (L_0) in bits/dim, each +- its standard
// error over images, one line each. bpd_write_csv: a "# prior_bpd=..." line,
// then t,term_bpd,term_se,mse_x0 for every code t (t = 0 is L_0).
void bpd_mean_se(const double *x, int n, double *mean, double *se);
int  bpd_print_summary(FILE *f, const BpdResult *r, Error *err);
int  bpd_write_csv(const char *path, const BpdResult *r, Error *err);

#endif
