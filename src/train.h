/* train.h — Algorithm 1 as a program: the optimiser and the training loop.
 *
 * Chapter 06 of the book (book/06_elbo.md, "Training"). Adam with the
 * paper's settings, linear learning-rate warm-up, gradient clipping by
 * global norm, an exponential moving average of the weights, checkpoints
 * that hold the whole training state, exact resumption, a clean stop on
 * Ctrl-C and on a non-finite loss.
 *
 * Reproducibility without saved RNG state: step s draws its timesteps, noise,
 * flips and dropout masks from Rng(seed, stream = s), and the data order of
 * epoch e is a shuffle drawn from Rng(seed, stream = 2^40 + e). Resuming at
 * step s therefore replays exactly what an uninterrupted run would have done.
 */
#ifndef DDPM_TRAIN_H
#define DDPM_TRAIN_H

#include "04_unet.h"
#include "06_elbo.h"
#include "data.h"
#include "safetensors.h"

typedef struct TrainConfig {
    long steps;            // stop after this many steps in total (0: no limit)
    double minutes;        // ... or after this much wall-clock time (0: no limit)
    int batch;             // 128 in the paper
    double lr;             // 2e-4
    long warmup;           // 5000: lr grows linearly from 0 over this many steps
    double grad_clip;      // 1.0: clip the global gradient norm to this
    double ema_decay;      // 0.9999 in the paper; shorter runs want less
    double adam_b1, adam_b2, adam_eps;   // 0.9, 0.999, 1e-8
    unsigned long long seed;
    int flip;              // random horizontal flips (the paper: on for CIFAR-10)
    long ckpt_every;       // write the checkpoint every this many steps (0: only at the end)
    const char *out_dir;   // ckpt.safetensors, log.csv
    int quiet;             // no progress line
    int T;                 // diffusion steps: 1000 (the paper's linear schedule)
    MeanType mean;         // what the network predicts: eps
    VarType var;           // fixedlarge
    LossType loss;         // simple (Eq. 14)
} TrainConfig;

void train_config_default(TrainConfig *tc);

// The settings as rows (config.h): the flags of ddpm train, and, for the rows
// marked KEY_STORED, the checkpoint's train.* metadata both ways and the
// settings a resumed run keeps.
extern const ConfigKey train_keys[];

// The settings a checkpoint stores (the KEY_STORED rows of its train.*
// metadata) into c, each checked against the range the command line allows;
// a key the file lacks takes the value of train_config_default.
int train_config_read(const StFile *f, TrainConfig *c, Error *err);
// The diffusion of the settings (refusing the combinations that cannot
// train); df->sched is left for the caller.
int train_config_diffusion(const TrainConfig *c, Diffusion *df, Error *err);

// The ranges trainer_init accepts from a checkpoint's train.* metadata
// (the same as the command line's).
#define TRAIN_MAX_STEPS 1e9
#define TRAIN_MAX_BATCH 4096
#define TRAIN_MAX_T 100000

// A Trainer is a value: everything a member points at is on the heap (the
// schedule df.sched uses, the arena the tape draws from), so a copy of the
// struct, or the struct moved elsewhere, keeps working. trainer_free frees
// it all, once, through any one copy.
typedef struct Trainer {
    TrainConfig cfg;
    Schedule *sched;         // owned; df.sched points at it
    Diffusion df;
    UNet net;
    real *adam_m, *adam_v;   // [params.total] Adam's moment estimates
    real *ema;               // [params.total] EMA of the weights
    long step;               // optimiser steps done
    double last_loss, last_grad_norm;
    Arena *arena;            // owned: one step's activations, reset after each step
    Tape tape;               // draws from *arena
    int *t;                  // [batch] timesteps of the step
    int *order;              // [n] the current epoch's shuffled image order
    long order_epoch;        // which epoch `order` holds (-1: none)
} Trainer;

// A fresh model (official initialisation) or, with resume_path, the exact
// state of a checkpoint written by trainer_save (config, weights, Adam, EMA,
// step, and the stored settings, T and the diffusion included, which replace
// those of tc). The noise schedule is the paper's linear one with tc->T
// steps. On failure nothing stays allocated.
int  trainer_init(Trainer *tr, const UNetConfig *ucfg, const TrainConfig *tc,
                  const char *resume_path, Error *err);
void trainer_free(Trainer *tr);

// One step of Algorithm 1 on the next batch of `data`. Returns 0, or -1 with
// err set if the loss is not finite (the parameters are then left untouched).
int  trainer_step(Trainer *tr, const Dataset *data, Error *err);

// The whole state, atomically. Metadata records the step, the data set, the
// diffusion settings and the training flags.
int  trainer_save(const Trainer *tr, const char *path, const char *data_name, Error *err);

// The loop: steps / minutes budget, progress line, log.csv, periodic and
// final checkpoints, Ctrl-C (SIGINT/SIGTERM) saves and stops cleanly.
// Returns 0 on a normal or interrupted end, -1 on an error (err set).
int  train_run(Trainer *tr, const Dataset *data, Error *err);

#endif
