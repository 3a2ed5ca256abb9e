#!/bin/sh
# reproduce_test.sh — the harness of make reproduce (tools/reproduce.sh,
# tools/repro.c) on toy runs, in seconds:
#   - the stability rule on synthetic log.csv files
#   - the verdict rule on numbers whose answer is known
#   - an end-to-end toy run (TOY=1: a micro network, T = 5, 8 steps, 160
#     synthetic 28x28 images) that is interrupted after 3 stages, has one
#     training run killed half-way, and is continued: done stages are skipped,
#     the half-trained run resumes, one run whose trainer reports a NaN is
#     recorded as unstable (a stand-in ddpm prints the trainer's message for
#     that run only), the page and every figure are written
#   - a third run only rewrites the page, byte for byte the same; a run with
#     other settings in the same directory is refused; a fresh run with the
#     same seed in another directory gives the same numbers
#
#   usage: tests/reproduce_test.sh [build/ddpm] [build/repro]   (make test runs it)
set -u
export OMP_NUM_THREADS=1   # as the other program tests: two threads spin on a busy machine
DDPM=${1:-build/ddpm}
REPRO=${2:-build/repro}
ROOT=$PWD
case $DDPM in /*) ;; *) DDPM=$ROOT/$DDPM ;; esac
case $REPRO in /*) ;; *) REPRO=$ROOT/$REPRO ;; esac
W=$(mktemp -d /tmp/ddpm_repro_XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0 checks=0

ok() {   # ok DESCRIPTION COMMAND...: the command must succeed
    d=$1
    shift
    checks=$((checks + 1))
    if ! "$@" > /dev/null 2>&1; then fails=$((fails + 1)); echo "FAIL: $d"; fi
}
same() {   # same DESCRIPTION GOT WANT
    checks=$((checks + 1))
    [ "$2" = "$3" ] || { fails=$((fails + 1)); echo "FAIL: $1: got '$2', wanted '$3'"; }
}

# ---- the stability rule ---------------------------------------------------------
log() {   # log FILE: rows "step loss" on stdin become a log.csv
    { echo "step,loss,grad_norm,lr,seconds"; awk '{ printf "%d,%s,0.5,0.0002,%d\n", $1, $2, $1 }'; } > "$1"
}
stab() { "$REPRO" stability "$@"; }

awk 'BEGIN { for (s = 1; s <= 200; s++) print s, 1 / s }' | log "$W/falling.csv"
same "a falling loss is stable" "$(stab "$W/falling.csv")" "stable (200 steps)"
awk 'BEGIN { for (s = 1; s <= 200; s++) print s, (s > 100 ? 5 : 1) }' | log "$W/rise.csv"
same "a loss 5x its running minimum" "$(stab "$W/rise.csv" | cut -d: -f1)" "unstable at step 150"
awk 'BEGIN { for (s = 1; s <= 200; s++) print s, (s > 100 ? 4 : 1) }' | log "$W/edge.csv"
awk 'BEGIN { for (s = 1; s <= 200; s++) print s, (s <= 50 ? 10 : s <= 100 ? 1 : 5) }' | log "$W/fallrise.csv"
same "a rise after a fall: the minimum runs" "$(stab "$W/fallrise.csv" | cut -d: -f1)" "unstable at step 150"
same "exactly 4x is not above 4x" "$(stab "$W/edge.csv")" "stable (200 steps)"
same "a stated factor of 3" "$(stab "$W/edge.csv" --factor 3 | cut -d: -f1)" "unstable at step 150"
awk 'BEGIN { for (s = 1; s <= 200; s++) print s, (s > 50 && s % 30 == 0 ? 100 : 0.1) }' | log "$W/spikes.csv"
same "rare spikes (the decoder term) are not a divergence" "$(stab "$W/spikes.csv")" "stable (200 steps)"
awk 'BEGIN { for (s = 1; s <= 120; s++) print s, (s == 77 ? "nan" : 0.1) }' | log "$W/nan.csv"
same "a NaN loss" "$(stab "$W/nan.csv" | cut -d: -f1)" "unstable at step 77"
awk 'BEGIN { for (s = 1; s <= 120; s++) print s, (s == 90 ? "-inf" : 0.1) }' | log "$W/inf.csv"
same "an infinite loss" "$(stab "$W/inf.csv" | cut -d: -f1)" "unstable at step 90"
echo "nonfinite 42" > "$W/status"
same "the trainer's own stop on a NaN" "$(stab "$W/falling.csv" "$W/status" | cut -d: -f1)" "unstable at step 42"
# A run killed after step 100 and resumed from its checkpoint at step 50
# replays steps 51-100: the replayed rows replace the first ones.
{ awk 'BEGIN { for (s = 1; s <= 100; s++) print s, (s > 50 ? 50 : 1) }'
  awk 'BEGIN { for (s = 51; s <= 150; s++) print s, 1 }'; } | log "$W/resumed.csv"
same "a resumed log keeps the replayed rows" "$(stab "$W/resumed.csv")" "stable (150 steps)"
same "a shorter window" "$(stab "$W/nan.csv" --window 10)" \
    "unstable at step 77: the loss or gradient norm was not finite at step 77"

# ---- the verdict rule ----------------------------------------------------------------
same "paper's direction, 3.5 SE" "$("$REPRO" verdict 3.70 0.01 3.75 0.01 less)" "reproduced"
same "paper's direction, 1.4 SE" "$("$REPRO" verdict 3.73 0.01 3.75 0.01 less)" "not visible at this budget"
same "the other way, 3.5 SE" "$("$REPRO" verdict 3.80 0.01 3.75 0.01 less)" "reversed"
same "SEs add in quadrature: 0.035 > 2 x 0.0141" "$("$REPRO" verdict 3.715 0.01 3.75 0.01 less)" "reproduced"
same "greater, 3 SE" "$("$REPRO" verdict 9.46 0.11 7.67 0.5 greater)" "reproduced"
same "2 SE exactly is not enough" "$("$REPRO" verdict 0 0.3 1 0.4 less)" "not visible at this budget"

# ---- an end-to-end toy run --------------------------------------------------------------
# 160 images per split in MNIST's format: a bright disc on faint noise (seeded).
mkdir -p "$W/data"
for split in train t10k; do
    LC_ALL=C awk -v seed="$([ $split = train ] && echo 1 || echo 2)" 'BEGIN {
        srand(seed); n = 160
        printf "%c%c%c%c%c%c%c%c%c%c%c%c%c%c%c%c", 0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28
        for (i = 0; i < n; i++) {
            cx = 6 + rand() * 16; cy = 6 + rand() * 16; r = 3 + rand() * 6; v = 80 + int(rand() * 170)
            for (y = 0; y < 28; y++) for (x = 0; x < 28; x++)
                printf "%c", ((x - cx) ^ 2 + (y - cy) ^ 2 < r * r) ? v : int(rand() * 20)
        } }' > "$W/data/$split-images-idx3-ubyte"
    LC_ALL=C awk 'BEGIN { printf "%c%c%c%c%c%c%c%c", 0, 0, 8, 1, 0, 0, 0, 160
        for (i = 0; i < 160; i++) printf "%c", i % 10 }' > "$W/data/$split-labels-idx1-ubyte"
done

# The stand-in ddpm: the real one, except that training with a learned
# variance and eps prediction stops as the trainer does on a NaN loss. The
# harness reads the trainer's message, so the message must still be the
# trainer's (src/train.c).
ok "src/train.c still reports a NaN loss as the harness reads it" \
    grep -q '"the loss is %g at step %ld: stopping' "$ROOT/src/train.c"
cat > "$W/ddpm" <<EOF
#!/bin/sh
case " \$* " in
*" train "*"--mean eps --var learned"*)
    out=.; prev=
    for a in "\$@"; do [ "\$prev" = --out ] && out=\$a; prev=\$a; done
    mkdir -p "\$out"
    printf 'step,loss,grad_norm,lr,seconds\n1,0.9,0.5,0.0002,0.1\n2,0.8,0.5,0.0002,0.2\n' > "\$out/log.csv"
    echo "ddpm train: the loss is nan at step 3: stopping (the last checkpoint is kept; try a lower --lr or --clip)" >&2
    exit 1 ;;
esac
exec "$DDPM" "\$@"
EOF
chmod +x "$W/ddpm"

toy() {   # toy OUTDIR [VAR=value...]: the harness on the toy data, output in OUTDIR.log
    o=$1
    shift
    (cd "$ROOT" && env TOY=1 OUT="$o" DATA="$W/data" DDPM="$W/ddpm" REPRO="$REPRO" "$@" \
        sh tools/reproduce.sh) > "$o.log" 2>&1
}
R=$W/run
toy "$R" STOP_AFTER=3
same "STOP_AFTER=3 stops with status 3" "$?" "3"
same "three stages done" "$(ls "$R/stages" | grep -c '\.done$')" "3"
ok "the budget split is printed before the first stage" grep -q "the split" "$R.log"
# Kill the fourth stage's run half-way: train 4 of its 8 steps by hand, as the
# harness would have started it, and leave it there.
"$DDPM" train --config tiny --ch 16 --groups 8 --ch-mult 1,2 --attn none --mean mu --var learned \
    --loss vlb --T 5 --batch 4 --ema 0.5 --seed 1 --steps 4 --ckpt-every 2 --warmup 0 \
    --out "$R/runs/mu_vlb_learned" --data "$W/data" > /dev/null 2>&1
toy "$R"
same "the continued run completes" "$?" "0"
ok "stages 1-3 are skipped" grep -q "^stage 3/20 train_eps_vlb_learned: done, skipped" "$R.log"
ok "the half-trained run resumes" grep -q "resuming mu_vlb_learned" "$R.log"
same "... and ends at its planned step" "$(cat "$R/runs/mu_vlb_learned/train.status")" "finished 8"
same "the NaN run is a result" "$(cat "$R/runs/eps_vlb_learned/train.status")" "nonfinite 3"
ok "a progress line with the time left" grep -q "^stage 7/20 test_eps_simple (planned .* min), time left" "$R.log"
P=$R/results.md
ok "the page is written" test -s "$P"
ok "the NaN run is unstable in Table 2" grep -q '`eps_vlb_learned` | \*\*unstable\*\* at step 3 | – |' "$P"
ok "... which reproduces the paper's instability" \
    grep -q 'learned diagonal Σ and the true bound is unstable: \*\*reproduced\*\*' "$P"
ok "Table 1 has our bits/dim with standard errors" grep -Eq '^\| L_simple .* \| [0-9.]+ ± [0-9.]+ \([0-9.]+ ± [0-9.]+\) \| 9.46' "$P"
ok "Table 1 has our Fréchet distance and KID" grep -Eq '^\| L, fixed isotropic Σ .*\| [0-9.]+ \| [0-9.]+ ± [0-9.]+ \|' "$P"
ok "Table 4 has the paper's last row" grep -q '| 1.77581 |' "$P"
ok "every verdict is one of the three words" sh -c "awk '/^## /{on=\$0==\"## Verdicts\"} on&&/^- /' '$P' \
    | grep -v -E ': \*\*(reproduced|reversed|not visible at this budget)\*\* — ' | grep -q . && exit 1 || exit 0"
same "nine verdicts" "$(awk '/^## /{on=$0=="## Verdicts"} on&&/^- /' "$P" | wc -l | tr -d ' ')" "9"
ok "it says it is a toy" grep -q "A toy run" "$P"
for f in curves fig5 fig6 fig7 fig8 samples; do ok "figure $f.png" test -s "$R/figures/$f.png"; done
ok "no path of this machine on the page" sh -c "! grep -q '$W' '$P'"
cp "$P" "$W/page1.md"
toy "$R"
same "a finished run reruns" "$?" "0"
same "... skipping all 19 stages" "$(grep -c ': done, skipped$' "$R.log")" "19"
ok "... and writes the same page" cmp "$P" "$W/page1.md"
toy "$R" SEED=2
same "other settings in the same directory are refused" "$?" "1"
ok "... saying so" grep -q "holds a run planned with" "$R.log"

# A fresh run with the same seed, to its seventh stage (six trainings and the
# bound of eps_simple), gives the same numbers, the run that was killed and
# resumed above included.
R2=$W/run2
toy "$R2" STOP_AFTER=7
for c in eps_simple eps_vlb_fixed mu_vlb_learned mu_vlb_fixed mu_mse; do   # mu_vlb_learned: resumed
    cut -d, -f1-4 "$R/runs/$c/log.csv" > "$W/l1"
    cut -d, -f1-4 "$R2/runs/$c/log.csv" > "$W/l2"
    ok "same seed, same losses and gradient norms ($c)" cmp "$W/l1" "$W/l2"
done
ok "same seed, same test bits/dim" cmp "$R/runs/eps_simple/bpd_test.txt" "$R2/runs/eps_simple/bpd_test.txt"
ok "same seed, same rate-distortion curve" cmp "$R/runs/eps_simple/rd.csv" "$R2/runs/eps_simple/rd.csv"

if [ $fails -ne 0 ]; then
    echo "reproduce_test: $fails of $checks checks failed (logs: $R.log)"
    trap - EXIT
    exit 1
fi
echo "reproduce_test: $checks checks passed (stability and verdict rules, a toy run interrupted, resumed and rerun)"
