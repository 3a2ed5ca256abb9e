/* 04_unet.h — the paper's U-Net: eps_theta(x_t, t).
 *
 * Chapter 04 of the book (book/04_unet.md). The network of the paper's
 * CIFAR-10 model (official code: models/unet.py), with the parameter names of
 * the PyTorch port (chapter 04's naming table), so checkpoints move between the two.
 *
 * Shapes: x [N, in_ch, R, R] (R = resolution), t [N] integer timesteps in
 * 0..T-1 (code t = paper t - 1), output [N, out_ch, R, R].
 */
#ifndef DDPM_UNET_H
#define DDPM_UNET_H

#include "03_attention.h"
#include "config.h"
#include "model.h"

#define UNET_MAX_LEVELS 6
#define UNET_MAX_BLOCKS 4      // ResBlocks per level on the way up (num_res_blocks + 1)
#define UNET_MAX_WIDTH 16384   // largest ch * ch_mult[i] (the paper's: 256)
#define UNET_MAX_RESOLUTION 1024
#define UNET_MAX_IMAGE_CH 64   // in_ch, out_ch
#define UNET_MAX_PARAMS 1e9    // largest network built (the paper's: 35.7M)

typedef struct UNetConfig {
    char name[16];                 // "tiny", "small", "paper" or "custom"
    int ch;                        // base width: 128 in the paper
    int n_levels;                  // resolutions: 4 in the paper (32, 16, 8, 4)
    int ch_mult[UNET_MAX_LEVELS];  // width of level i = ch * ch_mult[i]: (1, 2, 2, 2)
    int num_res_blocks;            // ResBlocks per level going down: 2
    int n_attn;
    int attn_res[UNET_MAX_LEVELS]; // resolutions with attention: (16)
    real dropout;                  // 0.1 in the paper's CIFAR-10 model
    int in_ch, out_ch;             // image channels in and out (out = 2 in for learned Σ)
    int resolution;                // 32
    int groups;                    // GroupNorm groups: 32
} UNetConfig;

// GroupNorm → SiLU → conv3x3 → + Linear(SiLU(temb)) → GroupNorm → SiLU →
// dropout → conv3x3, plus the input (through a 1x1 conv if widths differ).
typedef struct ResBlock {
    int cin, cout;
    Tensor *norm1_weight, *norm1_bias;         // [cin]
    Tensor *conv1_weight, *conv1_bias;         // [cout, cin, 3, 3], [cout]
    Tensor *temb_proj_weight, *temb_proj_bias; // [cout, 4 ch], [cout]
    Tensor *norm2_weight, *norm2_bias;         // [cout]
    Tensor *conv2_weight, *conv2_bias;         // [cout, cout, 3, 3], [cout]
    Tensor *nin_shortcut_weight, *nin_shortcut_bias;  // [cout, cin, 1, 1] or NULL
} ResBlock;

// One resolution level, on the way down or on the way up.
typedef struct UNetLevel {
    int res;                               // spatial size at this level
    int n_blocks, has_attn;
    ResBlock block[UNET_MAX_BLOCKS];
    AttnBlock attn[UNET_MAX_BLOCKS];       // one after each block, if has_attn
    Tensor *resample_weight, *resample_bias;  // down/upsample conv, or NULL
} UNetLevel;

typedef struct UNet {
    UNetConfig cfg;
    ParamSet params;                       // every parameter, one block
    Tensor *temb0_weight, *temb0_bias;     // temb.dense.0: [4ch, ch]
    Tensor *temb1_weight, *temb1_bias;     // temb.dense.1: [4ch, 4ch]
    Tensor *conv_in_weight, *conv_in_bias; // [ch, in_ch, 3, 3]
    UNetLevel down[UNET_MAX_LEVELS];
    ResBlock mid_block_1, mid_block_2;
    AttnBlock mid_attn_1;
    UNetLevel up[UNET_MAX_LEVELS];         // up[i] works at the resolution of down[i]
    Tensor *norm_out_weight, *norm_out_bias;
    Tensor *conv_out_weight, *conv_out_bias;  // [out_ch, ch, 3, 3]
} UNet;

// The config's keys, one row each (config.h): flags, metadata, config line.
extern const ConfigKey unet_keys[];

int  unet_config(UNetConfig *cfg, const char *name, Error *err);
int  unet_config_set(UNetConfig *cfg, const char *key, const char *value, Error *err);
int  unet_config_check(const UNetConfig *cfg, Error *err);   // in range, and buildable
double unet_config_params(const UNetConfig *cfg);             // parameters, without building
void unet_config_str(const UNetConfig *cfg, char *buf, size_t len);

void unet_build(UNet *net, const UNetConfig *cfg);  // register and allocate parameters
void unet_init_weights(UNet *net, Rng *rng);        // the official initialisation
void unet_free(UNet *net);

// The sinusoidal timestep embedding: out [N, dim], half sin then half cos.
void timestep_embedding(real *out, const int *t, int N, int dim);

// eps_theta(x, t). `train` turns dropout on (drawing from rng); with the tape
// not recording this is the no-grad forward of sampling and evaluation.
Tensor *unet_forward(Tape *tp, const UNet *net, Tensor *x, const int *t, Rng *rng, int train);
// The U-Net as a Model (model.h): training (dropout) when given an rng.
Model unet_model(const UNet *net);

void unet_write_dot(const UNet *net, FILE *f);      // the architecture, for Graphviz

#endif
