/* classifier.h — the feature network behind chapter 09's scores.
 *
 * Chapter 09 of the book (book/09_metrics.md). FID and IS judge samples in
 * the features of a fixed image classifier (Inception-v3 in the literature).
 * Here the classifier is built from the book's own layers: conv2d, GroupNorm
 * and SiLU from chapter 02, plus the three ops this file adds (2x2 average
 * pooling, global average pooling, softmax cross-entropy), trained with the
 * project's autograd and Adam. Its penultimate layer (global average pooling,
 * [N, D]) is the feature space of the Fréchet distance and KID; its softmax
 * p(y|x) is the Inception-Score analogue's.
 *
 * The net (a ResNet-9 in the style of Page's CIFAR-10 runs, narrower, with
 * GroupNorm for BatchNorm and average pooling for max pooling):
 *   prep   conv3x3 in -> w0, GN, SiLU                            32x32
 *   layer1 conv3x3 w0 -> w1, GN, SiLU, avgpool2, + res(w1)        16x16
 *   layer2 conv3x3 w1 -> w2, GN, SiLU, avgpool2                   8x8
 *   layer3 conv3x3 w2 -> w3, GN, SiLU, avgpool2, + res(w3)        4x4
 *   head   global avgpool -> features [N, w3] -> linear -> logits [N, K]
 * where res(w) = x + SiLU(GN(conv(SiLU(GN(conv(x)))))). The committed networks
 * use widths (16, 32, 64, 128): 128 features, about 0.4M parameters.
 *
 * Shapes: x [N, C, H, W] images in [-1, 1]; labels [N] in 0..K-1.
 */
#ifndef DDPM_CLASSIFIER_H
#define DDPM_CLASSIFIER_H

#include "02_conv.h"
#include "data.h"
#include "safetensors.h"

/* ---- the new ops: kernels ------------------------------------------------ */

// out [N, C, H/2, W/2]: the mean of each 2x2 window (H, W even).
void avgpool2_forward(real *out, const real *x, int N, int C, int H, int W);
void avgpool2_backward(real *dx, const real *dout, int N, int C, int H, int W);
// out [N, C]: the mean over all HW positions of each channel.
void gap_forward(real *out, const real *x, int N, int C, size_t HW);
void gap_backward(real *dx, const real *dout, int N, int C, size_t HW);
// loss = -(1/N) sum_n log softmax(logits_n)[y_n]; prob [N, K] saved.
double xent_forward(real *prob, const real *logits, const int *y, int N, int K);
void xent_backward(real *dlogits, real dloss, const real *prob, const int *y, int N, int K);

/* ---- the new ops: on the tape -------------------------------------------- */

Tensor *ag_avgpool2(Tape *tp, Tensor *x);
Tensor *ag_gap(Tape *tp, Tensor *x);                   // [N, C, H, W] -> [N, C]
Tensor *ag_xent(Tape *tp, Tensor *logits, const int *y); // [N, K] -> [1]

/* ---- the network ------------------------------------------------------- */

#define CLS_GROUPS 8

typedef struct ClassifierConfig {
    int in_ch;            // 3 (CIFAR-10) or 1 (Fashion-MNIST)
    int width[4];         // w0..w3 above
    int n_classes;        // 10
} ClassifierConfig;

typedef struct ResUnit {  // res(w): two conv-GN-SiLU, added to the input
    Tensor *conv1_weight, *conv1_bias, *norm1_weight, *norm1_bias;
    Tensor *conv2_weight, *conv2_bias, *norm2_weight, *norm2_bias;
} ResUnit;

typedef struct ConvUnit { // conv3x3, GN, SiLU
    Tensor *conv_weight, *conv_bias, *norm_weight, *norm_bias;
} ConvUnit;

typedef struct Classifier {
    ClassifierConfig cfg;
    ParamSet params;
    ConvUnit prep, layer1, layer2, layer3;
    ResUnit res1, res3;
    Tensor *fc_weight, *fc_bias;    // [K, w3], [K]
} Classifier;

void classifier_config_default(ClassifierConfig *cfg, int in_ch);
void classifier_build(Classifier *net, const ClassifierConfig *cfg);
void classifier_init_weights(Classifier *net, Rng *rng);
void classifier_free(Classifier *net);
int  classifier_feature_dim(const Classifier *net);

// logits [N, K]; *feat (if not NULL) gets the penultimate features [N, w3].
Tensor *classifier_forward(Tape *tp, const Classifier *net, Tensor *x, Tensor **feat);

// No-grad, in batches of `batch`: feat [n, D] and prob [n, K] (either may be
// NULL) of images x [n, C, 32, 32]. The result does not depend on `batch`.
void classifier_embed(const Classifier *net, const real *x, int n, int batch,
                      real *feat, real *prob);
// The same for the first n images of a data set (n <= d->n), no flips.
void classifier_embed_data(const Classifier *net, const Dataset *d, int n, real *feat, real *prob);
// Accuracy on a labelled data set (no flips), in [0, 1].
double classifier_accuracy(const Classifier *net, const Dataset *d, int batch);

/* ---- files -------------------------------------------------------------- */

// Parameters plus the config and `meta` in the file's metadata.
int classifier_save(const char *path, const Classifier *net, const StMeta *meta,
                    int n_meta, Error *err);
int classifier_load(const char *path, Classifier *net, Error *err);

/* ---- training ------------------------------------------------------------ */

typedef struct ClassifierTrain {
    long steps;           // total optimiser steps (fixes the lr schedule)
    long stop;            // stop after this many steps (0: at `steps`)
    double minutes;       // also stop after this much wall-clock (0: none)
    int batch;
    double lr, weight_decay;
    long warmup;          // linear warm-up, then linear decay to 0 at `steps`
    unsigned long long seed;
    int flip, crop;       // augmentation: horizontal flips, random 4-pixel shifts
    int quiet;
} ClassifierTrain;

void classifier_train_default(ClassifierTrain *ct);
// Trains net (already built and initialised) on d; returns the steps done.
long classifier_train(Classifier *net, const Dataset *d, const ClassifierTrain *ct);

#endif
