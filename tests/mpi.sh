#!/usr/bin/env bash
# mpi.sh — two MPI ranks compute what one process computes (make test-mpi).
#
# A small U-Net (attention and dropout on) on a synthetic MNIST-format folder:
#   - training, global batch 8, K steps: 2 ranks against the program built
#     without MPI: weights, Adam moments and EMA equal to a relative 1e-5 of
#     each group's largest value (the ranks sum their gradients in another
#     order; what one rank computes alone is bit-identical), the logged loss
#     to 1e-5; only rank 0 writes (checkpoint, log, one result line);
#   - --resume with a different number of processes (1 -> 2 and 2 -> 1)
#     lands where the uninterrupted run does;
#   - bpd, rd and sample (with --progressive) on 2 ranks: the same bytes as
#     one process, with shares of unequal size;
#   - ranks that disagree (another --seed, another --lr on rank 1) stop with
#     a message naming the step; a batch smaller than the ranks is refused;
#   - SIGTERM to one rank stops every rank after the same step, rank 0 saves.
#
#   usage: tests/mpi.sh [build/ddpm] [build/mpi/ddpm] [build/st_compare]
set -u
. "$(dirname "${BASH_SOURCE[0]}")/bar_data.sh"
ONE=${1:-build/ddpm}
MPI=${2:-build/mpi/ddpm}
CMP=${3:-build/st_compare}
for v in ONE MPI CMP; do case ${!v} in /*) ;; *) printf -v $v %s "$PWD/${!v}" ;; esac; done
export OMP_NUM_THREADS=1
RUN=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
W=$(mktemp -d /tmp/ddpm_mpi_XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
pass=0
die() { echo "mpi: FAIL: $*"; exit 1; }
ok() { pass=$((pass + 1)); echo "ok $pass - $*"; }

command -v mpirun > /dev/null || die "mpirun not found (make mpi-deps)"
! ldd "$ONE" | grep -q libmpi || die "$ONE links MPI; only the MPI=1 build may"

# ---- a synthetic data set: 16 images of a bright bar at different heights ----------
bar_data data test || die "cannot write the synthetic data set"

K=6
TOL=1e-5
NET=(--data data --config tiny --ch 16 --groups 8 --ch-mult 1,2 --attn 16 --dropout 0.1 --T 20)
BASE=("${NET[@]}" --batch 8 --ema 0.9 --warmup 2)
FLAGS=("${BASE[@]}" --seed 3)
one() { "$ONE" "$@"; }
two() { "${RUN[@]}" -np 2 "$MPI" "$@"; }
same_state() {   # same_state A B what
    "$CMP" "$1" "$2" $TOL > cmp.txt || { cat cmp.txt; die "$3: the states differ beyond $TOL"; }
}

# ---- training: 2 ranks = 1 process ------------------------------------------------
one train "${FLAGS[@]}" --steps $K --out one > one.out 2> one.err || die "one process: $(tail -n 3 one.err)"
two train "${FLAGS[@]}" --steps $K --out two > two.out 2> two.err || die "2 ranks: $(tail -n 5 two.err)"
same_state one/ckpt.safetensors two/ckpt.safetensors "training $K steps"
sed 's/^/    /' cmp.txt
ok "train: $K steps of global batch 8 on 2 ranks = 1 process (weights, Adam m and v, EMA to $TOL)"
paste -d, one/log.csv two/log.csv | awk -F, 'NR > 1 { d = $2 - $7; if (d < 0) d = -d; if (d > 1e-5 || $1 != $6) bad = 1 }
    END { exit bad || NR != '$((K + 1))' }' || die "the logged losses differ: $(paste -d, one/log.csv two/log.csv)"
ok "train: rank 0's log.csv holds $K steps, each loss that of one process"
[ "$(grep -c '^trained to step' two.out)" = 1 ] || die "expected one result line, got: $(cat two.out)"
ok "train: one result line on stdout from 2 ranks"

# rank 1 told to write elsewhere writes nothing there: rank 0 alone writes
"${RUN[@]}" -np 1 "$MPI" train "${FLAGS[@]}" --steps 2 --out w0 : -np 1 "$MPI" train "${FLAGS[@]}" \
    --steps 2 --out w1 > /dev/null 2> w.err || die "2 ranks, two --out: $(tail -n 5 w.err)"
[ -f w0/ckpt.safetensors ] && [ -s w0/log.csv ] && [ ! -e w1/ckpt.safetensors ] && [ ! -e w1/log.csv ] ||
    die "rank 1 wrote a checkpoint or log (or rank 0 did not): $(ls w0 w1 2>&1)"
ok "train: only rank 0 writes the checkpoint and log.csv"

# ---- --resume with another number of processes -------------------------------------
H=$((K / 2))
one train "${FLAGS[@]}" --steps $H --out r12 > /dev/null 2> r.err || die "$(tail -n 3 r.err)"
two train --resume r12/ckpt.safetensors --data data --steps $K --out r12 > /dev/null 2> r.err || die "$(tail -n 5 r.err)"
same_state one/ckpt.safetensors r12/ckpt.safetensors "1 process for $H steps, then 2 ranks"
ok "train: $H steps on 1 process, --resume on 2 ranks to $K = $K steps on 1 process"
two train "${FLAGS[@]}" --steps $H --out r21 > /dev/null 2> r.err || die "$(tail -n 5 r.err)"
one train --resume r21/ckpt.safetensors --data data --steps $K --out r21 > /dev/null 2> r.err || die "$(tail -n 3 r.err)"
same_state one/ckpt.safetensors r21/ckpt.safetensors "2 ranks for $H steps, then 1 process"
ok "train: $H steps on 2 ranks, --resume on 1 process to $K = $K steps on 1 process"

# ---- evaluation: the same bytes ----------------------------------------------------
M=one/ckpt.safetensors
EV=(--ckpt $M --data data --n 7 --batch 2 --seed 5)   # 4 batches: 4 + 3 images
one bpd "${EV[@]}" --csv b1.csv > b1.out 2> e.err || die "bpd: $(tail -n 3 e.err)"
two bpd "${EV[@]}" --csv b2.csv > b2.out 2> e.err || die "bpd on 2 ranks: $(tail -n 5 e.err)"
cmp -s b1.out b2.out && cmp -s b1.csv b2.csv || die "bpd differs: $(diff b1.out b2.out)"
ok "bpd: 7 images on 2 ranks = 1 process (stdout and the per-t csv, byte for byte)"
one rd "${EV[@]}" --csv d1.csv > d1.out 2> e.err || die "rd: $(tail -n 3 e.err)"
two rd "${EV[@]}" --csv d2.csv > d2.out 2> e.err || die "rd on 2 ranks: $(tail -n 5 e.err)"
cmp -s d1.out d2.out && cmp -s d1.csv d2.csv || die "rd differs: $(diff d1.out d2.out)"
ok "rd: the rate-distortion curve on 2 ranks = 1 process"
SA=(--ckpt $M --n 5 --batch 2 --seed 2 --every 5)
one sample "${SA[@]}" --out s1.png --progressive p1.png > /dev/null 2> e.err || die "sample: $(tail -n 3 e.err)"
two sample "${SA[@]}" --out s2.png --progressive p2.png > s2.out 2> e.err || die "sample on 2 ranks: $(tail -n 5 e.err)"
cmp -s s1.npy s2.npy && cmp -s s1.png s2.png && cmp -s p1.png p2.png || die "the samples differ"
[ "$(grep -c '^wrote' s2.out)" = 2 ] || die "expected two 'wrote' lines, got: $(cat s2.out)"
ok "sample: 5 images and their progressive snapshots on 2 ranks = 1 process"

# ---- ranks that disagree stop, saying where -------------------------------------------
"${RUN[@]}" -np 1 "$MPI" train "${FLAGS[@]}" --steps 2 --out x1 : -np 1 "$MPI" train "${BASE[@]}" \
    --seed 4 --steps 2 --out x1 > /dev/null 2> x.err && die "ranks with different seeds trained"
grep -q "the ranks disagree on the weights, Adam moments and EMA at step 0" x.err ||
    die "no clear message for different seeds: $(tail -n 5 x.err)"
ok "train: ranks started from different weights stop at step 0, naming it"
"${RUN[@]}" -np 1 "$MPI" train "${FLAGS[@]}" --steps 4 --ckpt-every 1 --out x2 : -np 1 "$MPI" train \
    "${FLAGS[@]}" --lr 1e-3 --steps 4 --ckpt-every 1 --out x2 > /dev/null 2> x.err &&
    die "ranks with different learning rates trained"
grep -q "disagree on .* at step 2" x.err || die "no clear message for diverging ranks: $(tail -n 5 x.err)"
[ "$(head -c 65536 x2/ckpt.safetensors | tr -c '[:print:]' '\n' | grep -o '"train.step":"[0-9]*"' | head -n 1)" = '"train.step":"1"' ] ||
    die "the last checkpoint written is not step 1, the last one the ranks agreed on"
ok "train: ranks that diverge (another --lr) stop at the next check (step 2); the checkpoint stays at step 1"
two train "${NET[@]}" --batch 1 --steps 1 --out x3 > /dev/null 2> x.err && die "a batch of 1 on 2 ranks ran"
grep -q "cannot be split across 2 ranks" x.err || die "no clear message for --batch 1: $(tail -n 3 x.err)"
ok "train: --batch 1 on 2 ranks is refused with a message"

# ---- SIGTERM to one rank: every rank stops after the same step, rank 0 saves ---------
"${RUN[@]}" -np 2 "$MPI" train "${FLAGS[@]}" --steps 100000 --ckpt-every 1 --out x4 > x4.out 2> x.err &
job=$!
for ((i = 0; i < 600; i++)); do [ -f x4/ckpt.safetensors ] && break; sleep 0.1; done
[ -f x4/ckpt.safetensors ] || { kill $job; die "no checkpoint after 60 s"; }
kill -TERM "$(pgrep -P $job | tail -n 1)"   # the last rank started, not rank 0 as a rule
wait $job || die "stopping one rank with SIGTERM failed the run: $(tail -n 5 x.err)"
grep -q '^interrupted at step' x.err || die "no 'interrupted' message: $(tail -n 3 x.err)"
s=$(head -c 65536 x4/ckpt.safetensors | tr -c '[:print:]' '\n' | grep -o '"train.step":"[0-9]*"' | grep -o '[0-9]*')
[ "$s" = "$(tail -n 1 x4/log.csv | cut -d, -f1)" ] && grep -q "^trained to step $s," x4.out ||
    die "the saved step ($s) is not the last one logged and reported"
ok "train: SIGTERM to one rank stops all ranks after step $s, saved by rank 0"

echo "mpi: all $pass checks passed"
