/* checkpoint.h — a U-Net in a safetensors file.
 *
 * The parameters go under their PyTorch names (so the file loads into the
 * PyTorch port with load_state_dict), the network's config into the
 * file's metadata under "ddpm.*" keys (so `ddpm forward --ckpt M` needs no
 * flags), and training state, when there is any, under "train.*" names.
 * A file without ddpm.* metadata (e.g. the paper's converted weights) loads
 * with an explicit config. A TrainedModel is such a file opened for
 * evaluation and sampling: the network with the schedule and diffusion its
 * train.* metadata describes (read through train.h's table of settings).
 */
#ifndef DDPM_CHECKPOINT_H
#define DDPM_CHECKPOINT_H

#include "04_unet.h"
#include "06_elbo.h"
#include "safetensors.h"

// Writes net's parameters, its config, and `extra` tensors (train.* state).
int ckpt_save(const char *path, const UNet *net, const StTensor *extra, int n_extra,
              const StMeta *meta, int n_meta, Error *err);

// Reads the config stored in f into cfg: 1 if there was one, 0 if the file
// has none (cfg untouched), -1 if it is malformed.
int ckpt_config(const StFile *f, UNetConfig *cfg, Error *err);

// Builds *net from the file's config (or `cfg` when the file has none, or
// when force_cfg is set) and loads its parameters.
int ckpt_load(const char *path, UNet *net, const UNetConfig *cfg, int force_cfg,
              Error *err);
// The same from a file already open (cfg is checked with unet_config_check
// by the caller; the file's own config is checked here).
int ckpt_load_file(const StFile *f, UNet *net, const UNetConfig *cfg, int force_cfg,
                   Error *err);

// Metadata `key` (or `fallback` when absent) as a number in [lo, hi], a
// whole one if `whole`: strict, since a checkpoint may come from anyone.
int ckpt_meta_num(const StFile *f, const char *key, const char *fallback, double lo,
                  double hi, int whole, double *out, Error *err);
// The network must give what the diffusion expects of it: in_ch channels
// (eps, x0 or mu), twice that with a learned variance.
int ckpt_check_out_ch(const StFile *f, const UNet *net, const Diffusion *df, Error *err);

// A trained model to evaluate or sample from: the network (its EMA weights
// when want_ema is set and the checkpoint has them), and the schedule and
// diffusion its train.* metadata describes (the paper's linear schedule,
// beta 1e-4 -> 0.02, with the file's train.T, 1000 if absent). A value
// (like Trainer, train.h): a copy keeps working.
typedef struct TrainedModel {
    UNet net;
    Schedule *sched;      // owned; df.sched points at it
    Diffusion df;
    int ema;              // the EMA weights were loaded
    long step;            // optimiser steps it was trained for (-1: not recorded)
    double ema_decay;     // 0: not recorded
    char data[64];        // the data set it was trained on ("" if not recorded)
} TrainedModel;
int  trained_model_load(TrainedModel *m, const char *path, int want_ema, Error *err);
// The same; cfg (checked by the caller) is the network when the file stores
// no config, or always when force_cfg is set (a plain state_dict).
int  trained_model_load_cfg(TrainedModel *m, const char *path, int want_ema,
                            const UNetConfig *cfg, int force_cfg, Error *err);
void trained_model_free(TrainedModel *m);

#endif
