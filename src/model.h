/* model.h — a denoising network as the diffusion code sees it.
 *
 * Chapters 06-08 (the bound, rate-distortion, the sampler) need only one
 * thing from a network: model_out = f(x_t, t). A Model is that function and
 * the shapes it accepts. unet_model (04_unet.h) wraps the U-Net; the tests of
 * chapters 06-08 plug in a Gaussian denoiser whose answer is known in closed
 * form (tests/gauss_model.c), so the bound and the sampler are checked
 * against formulas on paper, and training runs the same code on either.
 */
#ifndef DDPM_MODEL_H
#define DDPM_MODEL_H

#include "01_autograd.h"

// model_out = f(x_t, t) on the tape. dropout_rng NULL: evaluation (no
// dropout, the same output every time); otherwise training, with dropout
// masks drawn from it. in_ch/out_ch/resolution describe its shapes.
typedef struct Model {
    Tensor *(*forward)(Tape *tp, const void *ctx, Tensor *xt, const int *t, Rng *dropout_rng);
    const void *ctx;
    int in_ch, out_ch, resolution;
} Model;

#endif
