/* bench_04_unet.c — the U-Net's speed: no-grad forward, and a training step
 * (forward + backward + an Adam-sized update) per image at batch 32, for the
 * tiny and small configs; and, when Debian's python3-torch is present, the
 * same measured with tools/torch_unet.py (two threads) in this same run,
 * reported as ratios. Also the arena's peak bytes per step. Never asserts.
 *
 *   make bench            (all benches)
 *   build/bench_04_unet [--no-torch] [--batch N] [--config NAME]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "04_unet.h"
#include "bench.h"

typedef struct Timing { double forward, step; size_t arena_peak; } Timing;

// The update is a stand-in for Adam: three passes over all parameters
// (two moment updates and the step), which is what Adam costs in memory traffic.
static void fake_adam(ParamSet *ps, real *m, real *v)
{
    for (size_t i = 0; i < ps->total; i++) {
        real g = ps->grad[i];
        m[i] = (real)0.9 * m[i] + (real)0.1 * g;
        v[i] = (real)0.999 * v[i] + (real)0.001 * g * g;
        ps->data[i] -= (real)2e-4 * m[i] / ((real)1e-8 + v[i] * v[i]);
    }
}

static Timing time_c(const char *config, int B)
{
    UNetConfig c;
    unet_config(&c, config, NULL);
    UNet net;
    unet_build(&net, &c);
    Rng rng;
    rng_seed(&rng, 0, 0);
    unet_init_weights(&net, &rng);
    real *m = calloc(net.params.total, sizeof(real)), *v = calloc(net.params.total, sizeof(real));
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    int *t = malloc(sizeof(int) * B);
    for (int i = 0; i < B; i++) t[i] = (int)rng_below(&rng, 1000);
    Timing tm = {0};
    #define STEP_INPUT()                                                  \
        Tensor *x = tensor_4d(&ar, B, 3, 32, 32);                         \
        rng_fill_normal(&rng, x->data, x->size, 0, 1)
    tape_set_recording(&tp, 0);
    BENCH_BEST(tm.forward, 3.0, {
        STEP_INPUT();
        unet_forward(&tp, &net, x, t, &rng, 0);
        tape_reset(&tp);
        arena_reset(&ar);
    });
    tape_set_recording(&tp, 1);
    BENCH_BEST(tm.step, 6.0, {
        STEP_INPUT();
        params_zero_grad(&net.params);
        Tensor *eps = unet_forward(&tp, &net, x, t, &rng, 1);
        tape_backward(&tp, ag_mean(&tp, ag_square(&tp, ag_sub(&tp, eps, x))));
        fake_adam(&net.params, m, v);
        tm.arena_peak = ar.peak;
        tape_reset(&tp);
        arena_reset(&ar);
    });
    free(t); free(m); free(v);
    tape_free(&tp);
    arena_free(&ar);
    unet_free(&net);
    return tm;
}

// Runs tools/torch_unet.py bench and reads its one JSON line; 0 if unavailable.
static int time_torch(const char *config, int B, Timing *tm)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/torch_unet.py bench --config %s "
             "--batch %d --threads 2 --repeats 3 2>/dev/null", config, B);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        char *a = strstr(line, "\"train_step\": "), *b = strstr(line, "\"forward_nograd\": ");
        if (a && b) {
            tm->step = atof(a + 14);
            tm->forward = atof(b + 18);
            ok = 1;
        }
    }
    return pclose(p) == 0 && ok;
}

int main(int argc, char **argv)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    int B = 32, torch = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) only = argv[++i];
    }
    const char *configs[] = {"tiny", "small"};
    printf("U-Net at batch %d, 32x32x3, float32, 2 threads; seconds per call (best of several)\n", B);
    printf("%-6s %-10s %10s %10s %12s %12s\n", "config", "", "forward", "train step",
           "fwd ms/img", "step ms/img");
    for (int k = 0; k < 2; k++) {
        if (only && strcmp(only, configs[k])) continue;
        Timing c = time_c(configs[k], B), p;
        printf("%-6s %-10s %10.3f %10.3f %12.2f %12.2f   arena peak %.0f MB\n", configs[k],
               "C", c.forward, c.step, 1e3 * c.forward / B, 1e3 * c.step / B, c.arena_peak / 1e6);
        fflush(stdout);
        if (torch && time_torch(configs[k], B, &p)) {
            printf("%-6s %-10s %10.3f %10.3f %12.2f %12.2f\n", configs[k], "PyTorch", p.forward,
                   p.step, 1e3 * p.forward / B, 1e3 * p.step / B);
            printf("%-6s %-10s %9.2fx %9.2fx   (PyTorch time / C time; > 1 means C is faster)\n",
                   configs[k], "ratio", p.forward / c.forward, p.step / c.step);
        } else if (torch) {
            printf("%-6s %-10s (tools/torch_unet.py bench unavailable: python3-torch not installed)\n",
                   configs[k], "PyTorch");
        }
        fflush(stdout);
    }
    return 0;
}
