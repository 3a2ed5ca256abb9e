/* bench_04_unet.c — the whole network's speed, against PyTorch in the same run.
 *
 * What it measures, each in a fresh child process (so that its peak resident
 * memory is its own):
 *   forward   the no-grad forward of sampling and evaluation, unet_forward
 *   step      the trainer's real step, trainer_step: q_sample, the network,
 *             L_simple, backward, gradient clipping, Adam, EMA
 * for the tiny and small configs at batch 32 (the forward also at 64) and the
 * paper config at batch 8; then a scaling table, batch 8 / 32 / 128. Beside
 * every C number the same measured with tools/torch_unet.py bench (Debian's
 * python3-torch, two threads), as PyTorch time / C time: > 1 means C is
 * faster. Throughput is in GFLOP/s of the direct convolution's flops (what
 * the network is, not what Winograd computes), against the machine's FMA peak
 * measured here by a register-only loop. Every time is the best of a few
 * calls after one warm-up call. Reports, never asserts.
 *
 *   make bench                      (all benches; installs python3-torch first)
 *   build/bench_04_unet [--no-torch] [--quick]
 *   build/bench_04_unet --child CONFIG BATCH    (one measurement, internal)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "train.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- the machine's peak ------------------------------------------------------ */

#if defined(__x86_64__)
// Ten independent chains of 8-wide FMAs, in named registers, enough to keep
// both FMA units busy through their latency: 10 * 8 * 2 flops per iteration.
__attribute__((target("avx2,fma"))) static double fma_flops(long iters)
{
    __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2),
           a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5),
           a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8),
           a9 = _mm256_set1_ps(9);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c);
        a2 = _mm256_fmadd_ps(a2, b, c); a3 = _mm256_fmadd_ps(a3, b, c);
        a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c);
        a8 = _mm256_fmadd_ps(a8, b, c); a9 = _mm256_fmadd_ps(a9, b, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(a8, a9));
    float sink[8];
    _mm256_storeu_ps(sink, s);
    return sink[0] == 12345.f ? 0 : 10.0 * 8 * 2 * iters;   // keeps the loop alive
}
#endif

// GFLOP/s of float FMAs on every core at once; 0 where not measurable.
static double fma_peak(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("fma")) return 0;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double flops = 0, t0 = bench_now();
        #pragma omp parallel reduction(+ : flops)
        flops += fma_flops(50000000);
        double g = flops / (bench_now() - t0) * 1e-9;
        if (g > best) best = g;
    }
    return best;
#else
    return 0;
#endif
}

/* ---- one measurement (in the child) ------------------------------------------- */

// Flops of one forward of one image, from the tape of a recorded forward:
// convolutions (direct count), linear layers and the attention products.
static double forward_flops(const UNetConfig *c)
{
    UNet net;
    unet_build(&net, c);
    Arena ar;
    arena_init(&ar, 1 << 20);
    Tape tp;
    tape_init(&tp, &ar);
    Rng rng;
    rng_seed(&rng, 0, 0);
    unet_init_weights(&net, &rng);
    Tensor *x = tensor_4d(&ar, 1, c->in_ch, c->resolution, c->resolution);
    rng_fill_normal(&rng, x->data, x->size, 0, 1);
    int t = 500;
    unet_forward(&tp, &net, x, &t, &rng, 0);
    double f = 0;
    for (int i = 0; i < tp.len; i++) {
        const Node *nd = &tp.nodes[i];
        int N, C;
        size_t HW;
        if (!strcmp(nd->op, "conv2d")) f += conv2d_flops(nd->saved);
        else if (!strcmp(nd->op, "linear"))
            f += 2.0 * nd->in[0]->shape[0] * nd->in[1]->shape[0] * nd->in[1]->shape[1];
        else if (!strcmp(nd->op, "attention")) {
            tensor_nchw(nd->in[0], &N, &C, &HW);
            f += 4.0 * N * (double)HW * HW * C;   // q k^T and w v
        }
    }
    tape_free(&tp);
    arena_free(&ar);
    unet_free(&net);
    return f;
}

// Prints "forward step flops": seconds per no-grad forward and per
// trainer_step at batch B, and the forward flops per image.
static int child(const char *config, int B)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work (chapter 00)
    Error err;
    UNetConfig c;
    if (unet_config(&c, config, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    Dataset data = {.n = 256, .c = 3, .h = 32, .w = 32};
    snprintf(data.name, sizeof data.name, "random pixels");
    data.pixels = malloc((size_t)data.n * 3 * 32 * 32);
    for (size_t i = 0; i < (size_t)data.n * 3 * 32 * 32; i++) data.pixels[i] = (unsigned char)(i * 2654435761u >> 24);
    TrainConfig tc;
    train_config_default(&tc);
    tc.batch = B;
    tc.quiet = 1;
    tc.ema_decay = 0.9999;
    Trainer tr;
    if (trainer_init(&tr, &c, &tc, NULL, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double step, fwd;
    if (trainer_step(&tr, &data, &err) < 0) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    BENCH_BEST(step, 0, {
        if (trainer_step(&tr, &data, &err) < 0) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    });
    // The no-grad forward, on the trainer's own arena and tape.
    Tensor *x = NULL;
    int *t = malloc(sizeof(int) * B);
    Rng rng;
    rng_seed(&rng, 1, 0);
    for (int i = 0; i < B; i++) t[i] = (int)rng_below(&rng, 1000);
    tape_set_recording(&tr.tape, 0);
    for (int warm = 1; warm >= 0; warm--) BENCH_BEST(fwd, 0, {
        x = tensor_4d(tr.arena, B, 3, 32, 32);
        rng_fill_normal(&rng, x->data, x->size, 0, 1);
        unet_forward(&tr.tape, &tr.net, x, t, &rng, 0);
        tape_reset(&tr.tape);
        arena_reset(tr.arena);
    });
    printf("%.6f %.6f %.6g\n", fwd, step, forward_flops(&tr.net.cfg));
    free(t);
    free(data.pixels);
    trainer_free(&tr);
    return 0;
}

/* ---- the parent: run children, print tables ------------------------------------ */

typedef struct Result { int ok; double fwd, step, flops, rss_mb; } Result;

// Runs this program as `--child config B`; its peak RSS comes from wait4.
static Result measure_c(const char *self, const char *config, int B)
{
    Result r = {0};
    int fd[2];
    if (pipe(fd) < 0) return r;
    char b[16];
    snprintf(b, sizeof b, "%d", B);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execl(self, self, "--child", config, b, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    r.ok = f && fscanf(f, "%lf %lf %lf", &r.fwd, &r.step, &r.flops) == 3;
    if (f) fclose(f);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) r.ok = 0;
    r.rss_mb = ru.ru_maxrss / 1024.0;
    return r;
}

// tools/torch_unet.py bench in its own process; its JSON line has seconds and peak RSS.
static Result measure_torch(const char *config, int B)
{
    Result r = {0};
    char cmd[512], line[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/torch_unet.py bench --config %s "
             "--batch %d --threads 2 --repeats 3 2>/dev/null", config, B);
    FILE *p = popen(cmd, "r");
    if (!p) return r;
    while (fgets(line, sizeof line, p)) {
        char *a = strstr(line, "\"train_step\": "), *f = strstr(line, "\"forward_nograd\": ");
        char *m = strstr(line, "\"peak_rss_mb\": ");
        if (a && f && m) {
            r.step = atof(a + 14);
            r.fwd = atof(f + 18);
            r.rss_mb = atof(m + 15);
            r.ok = 1;
        }
    }
    if (pclose(p) != 0) r.ok = 0;
    return r;
}

static int torch_present(void)
{
    return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

static void row(const char *config, int B, const Result *c, const Result *p, double peak)
{
    double step_gflops = 3 * c->flops * B / c->step * 1e-9;   // backward ~ 2x the forward
    printf("%-6s %5d | %8.3f %8.3f %6.2fx | %8.3f %8.3f %6.2fx | %7.1f %4.0f%% | %7.0f %7.0f\n",
           config, B, c->fwd, p->ok ? p->fwd : 0, p->ok ? p->fwd / c->fwd : 0, c->step,
           p->ok ? p->step : 0, p->ok ? p->step / c->step : 0, step_gflops,
           peak > 0 ? 100 * step_gflops / peak : 0, c->rss_mb, p->ok ? p->rss_mb : 0);
    fflush(stdout);
}

static void header(void)
{
    printf("%-6s %5s | %8s %8s %7s | %8s %8s %7s | %7s %5s | %7s %7s\n", "config", "batch",
           "fwd C", "PyTorch", "ratio", "step C", "PyTorch", "ratio", "GFLOP/s", "peak",
           "MB C", "PyTorch");
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--child")) return child(argv[2], atoi(argv[3]));
    int torch = 1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: bench_04_unet [--no-torch] [--quick]\n");
            return 2;
        }
    }
    if (torch && !torch_present()) {
        fprintf(stderr, "bench_04_unet: PyTorch is not installed, so there is nothing to compare with.\n"
                        "  install it:  sudo apt-get install -y python3-torch python3-numpy\n"
                        "  or run without the comparison:  build/bench_04_unet --no-torch\n");
        return 1;
    }
    const char *self = "/proc/self/exe";
    char exe[4096];
    ssize_t n = readlink(self, exe, sizeof exe - 1);
    if (n > 0) { exe[n] = 0; self = exe; }

    double peak = fma_peak();
    printf("machine: %d threads; float FMA peak measured now: %.1f GFLOP/s "
           "(10 chains of 8-wide FMAs on every thread)\n\n", omp_get_max_threads(), peak);
    printf("seconds per call, best of several after a warm-up; ratio = PyTorch time / C time\n"
           "(> 1: C is faster). fwd = no-grad forward (sampling); step = the whole training\n"
           "step (forward, L_simple, backward, clip, Adam, EMA). GFLOP/s of the step counts\n"
           "3x the forward's direct-convolution, linear and attention flops; peak = its\n"
           "share of the FMA peak above. MB = peak resident memory of the process.\n\n");
    header();
    struct { const char *config; int B; } main_rows[] = {
        {"tiny", 32}, {"tiny", 64}, {"small", 32}, {"small", 64}, {"paper", 8},
    };
    for (int i = 0; i < (int)(sizeof main_rows / sizeof main_rows[0]); i++) {
        if (quick && main_rows[i].B != 32) continue;
        Result c = measure_c(self, main_rows[i].config, main_rows[i].B);
        if (!c.ok) { fprintf(stderr, "bench_04_unet: the C measurement failed\n"); return 1; }
        Result p = torch ? measure_torch(main_rows[i].config, main_rows[i].B) : (Result){0};
        if (torch && !p.ok) fprintf(stderr, "bench_04_unet: tools/torch_unet.py bench failed\n");
        row(main_rows[i].config, main_rows[i].B, &c, &p, peak);
    }
    if (quick) return 0;
    printf("\nscaling with the batch: the same columns for batch 8, 32, 128\n");
    header();
    const char *configs[] = {"tiny", "small"};
    int batches[] = {8, 32, 128};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++) {
            Result c = measure_c(self, configs[k], batches[j]);
            if (!c.ok) { fprintf(stderr, "bench_04_unet: the C measurement failed\n"); return 1; }
            Result p = torch ? measure_torch(configs[k], batches[j]) : (Result){0};
            row(configs[k], batches[j], &c, &p, peak);
        }
    Result s = measure_c(self, "tiny", 64);
    printf("\nsampling (Algorithm 2, 1000 network calls) of 64 tiny images from the batch-64\n"
           "forward above: %.0f s, %.2f ms per image-step (ddpm sample prints its own)\n",
           1000 * s.fwd, 1e3 * s.fwd / 64);
    return 0;
}
