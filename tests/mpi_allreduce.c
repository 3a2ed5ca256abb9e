/* mpi_allreduce.c — how long one training step's gradient exchange takes.
 *
 *   usage: mpirun -np N build/mpi/mpi_allreduce P [REPS]
 *
 * Times dist_allreduce_sum (MPI_Allreduce, in place) of P floats — the
 * gradient of a network with P parameters — REPS times (20) after two
 * untimed rounds, and prints on rank 0 the mean time per call in seconds
 * (averaged over the ranks) and the bytes each rank sends (and receives) in
 * a ring allreduce, 2 (N - 1) / N x 4P. tests/bench_mpi.sh reads the line;
 * a measurement, never asserted.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dist.h"
#include "progress.h"

int main(int argc, char **argv)
{
    dist_init(&argc, &argv);
    if (argc < 2 || atol(argv[1]) <= 0) {
        if (dist_is_root()) fprintf(stderr, "usage: mpirun -np N mpi_allreduce P [REPS]\n");
        return dist_exit(2);
    }
    size_t P = (size_t)atol(argv[1]);
    int reps = argc > 2 ? atoi(argv[2]) : 20, N = dist_size();
    if (reps < 1) reps = 1;
    real *g = malloc(P * sizeof(real));
    if (!g) return dist_exit(1);
    for (size_t i = 0; i < P; i++) g[i] = (real)1e-3;
    for (int r = 0; r < 2; r++) dist_allreduce_sum(g, P);
    dist_all(1);   // start together
    double t0 = progress_now();
    for (int r = 0; r < reps; r++) dist_allreduce_sum(g, P);
    double t = (progress_now() - t0) / reps;
    double mean = dist_sum(t) / N;
    if (dist_is_root())
        printf("allreduce P=%zu ranks=%d seconds=%.6g ring_bytes_per_rank=%.0f\n", P, N, mean,
               2.0 * (N - 1) / N * 4.0 * (double)P);
    free(g);
    return dist_exit(0);
}
