/* fuzz_checkpoint.c — a checkpoint's metadata becoming a network and a
 * training state: ckpt_config (ddpm.* keys -> UNetConfig), the trained
 * model of sampling and evaluation (train.T, train.step, train.ema_decay,
 * the EMA weights) and --resume (every train.* setting, Adam, EMA).
 * A file that stores no config gets a miniature one. Whatever loads must be
 * a network unet_config_check accepts, with the settings in range.
 * (ckpt_config runs inside both loads.) */
#include "fuzz.h"
#include "checkpoint.h"
#include "train.h"

// The trainer opens its activation arena with 64 MiB; nothing runs here, and
// under ASan each such block costs its 8 MiB of shadow on every input. The
// Makefile links this harness with -Wl,--wrap=arena_init: 4 KiB instead.
void __real_arena_init(Arena *a, size_t bytes);
void __wrap_arena_init(Arena *a, size_t bytes)
{
    (void)bytes;
    __real_arena_init(a, 4096);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static UNetConfig mini(void)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    const char *kv[][2] = {{"ch", "4"}, {"ch-mult", "1"}, {"attn", "none"}, {"in-ch", "1"},
                           {"out-ch", "1"}, {"resolution", "1"}, {"groups", "2"}};
    for (int i = 0; i < 7; i++) unet_config_set(&c, kv[i][0], kv[i][1], NULL);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("c.safetensors", data, size);
    Error err;
    UNetConfig small = mini();
    TrainedModel m;
    if (trained_model_load_cfg(&m, path, 1, &small, 0, &err) == 0) {
        if (m.sched->T < 2 || m.sched->T > TRAIN_MAX_T || unet_config_check(&m.net.cfg, &err) < 0)
            abort();
        trained_model_free(&m);
    }
    TrainConfig tc;
    train_config_default(&tc);
    tc.quiet = 1;
    tc.T = 10;
    Trainer tr;
    if (trainer_init(&tr, &small, &tc, path, &err) == 0) {
        if (tr.cfg.batch < 1 || tr.cfg.batch > TRAIN_MAX_BATCH || tr.step < 0 ||
            !(tr.cfg.lr >= 0 && tr.cfg.lr <= 1) || tr.sched->T < 2)
            abort();
        trainer_free(&tr);
    }
    return 0;
}
