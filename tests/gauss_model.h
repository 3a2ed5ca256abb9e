/* gauss_model.h — a denoiser known in closed form, for the tests of the
 * loss and the bound (chapter 06), rate–distortion (chapter 07) and the
 * sampler (chapter 08).
 *
 * If every value of x_0 is drawn independently from N(m, s2), then x_t and
 * x_0 are jointly Gaussian and the best possible network is a formula:
 *
 *   E[x0 | x_t]  = m + sqrt(abar) s2 (x_t - sqrt(abar) m) / (abar s2 + 1 - abar)
 *   E[eps | x_t] = (x_t - sqrt(abar) E[x0 | x_t]) / sqrt(1 - abar)       (Eq. 4)
 *   mu~          = coef1 E[x0 | x_t] + coef2 x_t                         (Eq. 7)
 *
 * The model outputs whichever of the three df->mean asks for; with learned
 * variance a second block of channels holds the constant v (v = 1 is beta_t,
 * v = -1 is beta~_t). s2 = 0 is data that is a single point m.
 */
#ifndef DDPM_GAUSS_MODEL_H
#define DDPM_GAUSS_MODEL_H

#include "06_elbo.h"
#include "08_sampler.h"

typedef struct GaussModel {
    const Diffusion *df;
    double m, s2;          // the data distribution, per value
    double v;              // the learned-variance channel, if df->var is learned
    int channels, resolution;
} GaussModel;

Model gauss_model(const GaussModel *g);
// E[x0 | x_t] for one value at code t (what the model's x0 prediction is).
double gauss_posterior_x0(const GaussModel *g, double xt, int t);

// The sampler tests' fixture: the model for data N(m, s2) on a T-step linear
// schedule (beta b0 -> b1), images 1 x R x R, the loss simple (vlb with
// learned variance), and a sampler over it without clipping. Set up in place
// and never copied: df.sched points at sched. Check fails the test on an error.
typedef struct GaussFixture {
    Schedule sched;
    Diffusion df;
    GaussModel g;
    Model model;
    Sampler s;
} GaussFixture;
void gauss_fixture(GaussFixture *f, int T, double b0, double b1, const char *mean,
                   const char *var, double m, double s2, int R);

#endif
