/* checkpoint.h — a U-Net in a safetensors file.
 *
 * The parameters go under their PyTorch names (so the file loads into the
 * PyTorch port with load_state_dict), the network's config into the
 * file's metadata under "ddpm.*" keys (so `ddpm forward --ckpt M` needs no
 * flags), and training state, when there is any, under "train.*" names.
 * A file without ddpm.* metadata (e.g. the paper's converted weights) loads
 * with an explicit config.
 */
#ifndef DDPM_CHECKPOINT_H
#define DDPM_CHECKPOINT_H

#include "04_unet.h"
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

#endif
