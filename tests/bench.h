/* bench.h — timing helpers shared by the tests/bench_*.c programs.
 * Benchmarks report; they never assert. Each number is the best of a few
 * repeats (the least disturbed by a noisy machine). */
#ifndef DDPM_BENCH_H
#define DDPM_BENCH_H

#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Seconds per call of `stmt`: repeats until ~`budget` seconds have passed
 * (at least 3 calls) and keeps the fastest call. */
#define BENCH_BEST(secs, budget, stmt)                                  \
    do {                                                                \
        double best_ = 1e30, start_ = bench_now();                      \
        int calls_ = 0;                                                 \
        while (calls_ < 3 || bench_now() - start_ < (budget)) {         \
            double t0_ = bench_now();                                   \
            stmt;                                                       \
            double dt_ = bench_now() - t0_;                             \
            if (dt_ < best_) best_ = dt_;                               \
            if (++calls_ >= 1000) break;                                \
        }                                                               \
        (secs) = best_;                                                 \
    } while (0)

#endif
