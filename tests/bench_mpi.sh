#!/usr/bin/env bash
# bench_mpi.sh — the scaling table of the book's MPI appendix (make bench-mpi).
#
# Measures, on this machine:
#   1. training steps/s and images/s with 1 rank (all cores as OpenMP threads)
#      and with 2 ranks (the cores split between them), same global batch;
#   2. the time of one gradient allreduce (P floats, P = the network's
#      parameter count) between 2 ranks here;
# then estimates the same run across machines, one rank per machine like this
# one: step(N) = step(1) / N + allreduce(N), the allreduce of a ring over a
# link of bandwidth b and latency a: 2 (N - 1) a + 2 (N - 1) / N x 4P / b.
# The estimate is optimistic: it assumes a rank's time per image stays the
# same as its share of the batch shrinks. All of it is a measurement, never
# asserted; on a busy machine the numbers mean little.
#
#   usage: tests/bench_mpi.sh [build/mpi/ddpm] [build/mpi/mpi_allreduce]
#   environment: CONFIG (tiny), BATCH (32), STEPS (12), DATA (the default
#   data set of ddpm train)
set -u
DDPM=${1:-build/mpi/ddpm}
AR=${2:-build/mpi/mpi_allreduce}
for v in DDPM AR; do case ${!v} in /*) ;; *) printf -v $v %s "$PWD/${!v}" ;; esac; done
CONFIG=${CONFIG:-tiny}
BATCH=${BATCH:-32}
STEPS=${STEPS:-12}
CORES=$(nproc)
RUN=(mpirun --oversubscribe --allow-run-as-root --bind-to none)   # else one rank is pinned to one core
W=$(mktemp -d /tmp/ddpm_bench_mpi_XXXXXX)
trap 'rm -rf "$W"' EXIT
die() { echo "bench-mpi: $*" >&2; exit 1; }
[ "$STEPS" -ge 3 ] || die "STEPS must be at least 3"

# run N: train STEPS steps on N ranks; prints "seconds_per_step params"
run() {
    local n=$1 threads=$((CORES / $1 > 0 ? CORES / $1 : 1))
    "${RUN[@]}" -np "$n" -x OMP_NUM_THREADS=$threads "$DDPM" train --config "$CONFIG" \
        --batch "$BATCH" --steps "$STEPS" ${DATA:+--data "$DATA"} --out "$W/run$n" \
        > /dev/null 2> "$W/err$n" || die "training on $n ranks failed: $(tail -n 3 "$W/err$n")"
    local p
    p=$(grep -o '[0-9]* parameters' "$W/err$n" | head -n 1 | cut -d' ' -f1)
    # the first step pays for allocation: time steps 2..STEPS
    awk -F, -v s="$STEPS" -v p="$p" 'NR == 2 { t1 = $5 } $1 == s { ts = $5 }
        END { printf "%.6f %s\n", (ts - t1) / (s - 1), p }' "$W/run$n/log.csv"
}

echo "== training $STEPS steps of the $CONFIG U-Net at global batch $BATCH (${DATA:-default data}), $CORES cores" >&2
read -r S1 P < <(run 1)
read -r S2 _ < <(run 2)
echo "== one allreduce of $P floats between 2 ranks" >&2
A2=$("${RUN[@]}" -np 2 -x OMP_NUM_THREADS=1 "$AR" "$P" 20 | grep -o 'seconds=[0-9.e+-]*' | cut -d= -f2)
[ -n "$A2" ] || die "the allreduce benchmark printed nothing"

awk -v s1="$S1" -v s2="$S2" -v a2="$A2" -v p="$P" -v b="$BATCH" -v cores="$CORES" -v cfg="$CONFIG" '
function row(label, step) {
    printf "| %s | %.3f | %.2f | %.1f | %.2fx |\n", label, step, 1 / step, b / step, s1 / step
}
BEGIN {
    bytes = 4 * p
    printf "Communication per step: %d parameters x 4 bytes = %.1f MB summed across the ranks\n", p, bytes / 1e6
    printf "(a ring allreduce sends and receives 2 (N-1)/N of that on every rank).\n\n"
    printf "Measured on this machine (%d cores), %s U-Net, global batch %d:\n\n", cores, cfg, b
    printf "| ranks x threads | s/step | steps/s | images/s | speed vs 1 rank |\n|---|---|---|---|---|\n"
    row(sprintf("1 x %d", cores), s1)
    row(sprintf("2 x %d", cores / 2 > 0 ? cores / 2 : 1), s2)
    printf "\nOne allreduce of the gradient between 2 ranks here: %.2f ms (%.0f%% of a 2-rank step).\n\n", 1e3 * a2, 100 * a2 / s2
    printf "Estimated across machines like this one, one rank each (step = %.3f s / N + allreduce):\n\n", s1
    printf "| machines | 10 Gb/s Ethernet: images/s | efficiency | 100 Gb/s InfiniBand: images/s | efficiency |\n|---|---|---|---|---|\n"
    split("1 2 4 8 16 32", ns, " ")
    for (k = 1; k <= 6; k++) {
        n = ns[k]
        if (n > b) break
        eth = 2 * (n - 1) * 50e-6 + 2 * (n - 1) / n * bytes / 1.25e9
        ib = 2 * (n - 1) * 2e-6 + 2 * (n - 1) / n * bytes / 12.5e9
        se = s1 / n + eth; si = s1 / n + ib
        printf "| %d | %.1f | %.0f%% | %.1f | %.0f%% |\n", n, b / se, 100 * s1 / (n * se), b / si, 100 * s1 / (n * si)
    }
    printf "\nLinks assumed: 10 Gb/s Ethernet 1.25 GB/s and 50 us per message; 100 Gb/s InfiniBand\n"
    printf "12.5 GB/s and 2 us. Efficiency = time on 1 / (N x time on N).\n"
}'
