#!/bin/sh
# reproduce.sh — make reproduce: the paper's Tables 1, 2 and 4 and Figures 5-8
# at a stated wall-clock budget, resumably, ending in a results page.
#
#   make reproduce [HOURS=2] [DATA=path] [SEED=1]    (or: sh tools/reproduce.sh)
#
# Six training runs of one network (the cells of the paper's Table 2), then
# bits/dim of each on test images and, for Table 1's two, on as many training
# images; samples and chapter 09's scores; rate-distortion (Table 4, Figure 5)
# and Figures 6-8 from the L_simple run; the page. Every stage writes its
# output under OUT atomically (a temporary name, then mv) and records itself
# in OUT/stages/NAME.done; a stage that is done is skipped, so Ctrl-C or a
# kill followed by the same command continues where it stopped (a training
# run resumes from its last checkpoint, exactly). The page is rewritten on
# every run.
#
# The budget is split before anything starts, with a cost model of the tiny
# U-Net on two cores (SEC_STEP seconds per training step of batch 32,
# SEC_IMG_STEP seconds per image per network call while sampling or
# evaluating the bound; the defaults, 0.75 and 0.006, are the README's
# measurements of make bench and make demo): training gets what evaluation
# and sampling leave.
# The split is printed and fixed in OUT/plan.env; runs train for a number
# of steps, not minutes, so the same seed gives the same page (a time cap of
# 1.5x the planned minutes stops a run on a machine much slower than the model).
#
# Settings (environment or make variables):
#   HOURS         the whole budget in hours (2)
#   DATA          data set path (default: as ddpm train); DATA_LABEL names it on the page
#   SEED          seed of training, evaluation and sampling (1)
#   OUT           run directory (build/reproduce; build/reproduce-toy with TOY=1)
#   PAGE, FIGS    the page and its figures (book/results.md, figures/results;
#                 with TOY=1: OUT/results.md, OUT/figures), FIGLINK FIGS as the page links it
#   TOY=1         a micro network, T = 5 and a few steps: tests the harness in seconds
#   STEPS N_EVAL N_SAMPLES SCORED(table1|all) SEC_STEP SEC_IMG_STEP   override the plan
#   STOP_AFTER=k  stop after k stages have run (tests use it as an interruption)
set -u
DDPM=${DDPM:-build/ddpm}
REPRO=${REPRO:-build/repro}
TOY=${TOY:-0}
SEED=${SEED:-1}
DATA=${DATA:-}
if [ "$TOY" = 1 ]; then OUT=${OUT:-build/reproduce-toy}; HOURS=${HOURS:-0.02}
else OUT=${OUT:-build/reproduce}; HOURS=${HOURS:-2}; fi
if [ "$TOY" = 1 ]; then
    PAGE=${PAGE:-$OUT/results.md}; FIGS=${FIGS:-$OUT/figures}; FIGLINK=${FIGLINK:-figures}
else
    PAGE=${PAGE:-book/results.md}; FIGS=${FIGS:-figures/results}; FIGLINK=${FIGLINK:-../figures/results}
fi
STOP_AFTER=${STOP_AFTER:-0}
CELLS="eps_simple eps_vlb_fixed eps_vlb_learned mu_vlb_learned mu_vlb_fixed mu_mse"
TABLE1="eps_simple eps_vlb_fixed"

die() { echo "reproduce: $*" >&2; exit 1; }
interrupted=0
trap 'interrupted=1' INT TERM
check_interrupt() {
    [ "$interrupted" = 0 ] && return 0
    echo "reproduce: interrupted; run the same command again to continue (done stages are kept)" >&2
    exit 130
}

# What each cell of Table 2 is, as ddpm train flags.
cell_flags() {
    case $1 in
    eps_simple)      echo "--mean eps --var fixedlarge --loss simple" ;;
    eps_vlb_fixed)   echo "--mean eps --var fixedlarge --loss vlb" ;;
    eps_vlb_learned) echo "--mean eps --var learned --loss vlb" ;;
    mu_vlb_learned)  echo "--mean mu --var learned --loss vlb" ;;
    mu_vlb_fixed)    echo "--mean mu --var fixedlarge --loss vlb" ;;
    mu_mse)          echo "--mean mu --var fixedlarge --loss simple" ;;
    esac
}

[ -x "$DDPM" ] || die "$DDPM: not built (make)"
[ -x "$REPRO" ] || die "$REPRO: not built (make build/repro)"
DATAFLAG=""
[ -n "$DATA" ] && DATAFLAG="--data $DATA"
mkdir -p "$OUT/stages" "$OUT/runs" || die "$OUT: cannot create the run directory"

# ---- the plan: fixed on the first run, checked on every later one -------------
if [ "$TOY" = 1 ]; then
    NET="--config tiny --ch 16 --groups 8 --ch-mult 1,2 --attn none"
    T=5 BATCH=4 EMA=0.5 SEC_SCORE=5 SEC_PAGE=5
    STEPS=${STEPS:-8} N_EVAL=${N_EVAL:-4} N_SAMPLES=${N_SAMPLES:-130} SCORED=${SCORED:-table1}
    SEC_STEP=${SEC_STEP:-0.1} SEC_IMG_STEP=${SEC_IMG_STEP:-0.005}
else
    NET="--config tiny"
    T=1000 BATCH=32 EMA=0.995 SEC_SCORE=60 SEC_PAGE=30
    SEC_STEP=${SEC_STEP:-0.75} SEC_IMG_STEP=${SEC_IMG_STEP:-0.006}
    N_EVAL=${N_EVAL:-$(awk -v h="$HOURS" 'BEGIN { n = int(8 * h + 0.5); print n < 4 ? 4 : n }')}
    SCORED=${SCORED:-$(awk -v h="$HOURS" 'BEGIN { print h < 6 ? "table1" : "all" }')}
    # More samples than the reference classifier has features (192 for
    # CIFAR-10, 128 for Fashion-MNIST): the Frechet distance needs a
    # covariance of full rank, and ddpm score refuses fewer.
    N_SAMPLES=${N_SAMPLES:-$(awk -v h="$HOURS" 'BEGIN { print h < 6 ? 200 : 256 }')}
fi
if [ "$SCORED" = all ]; then SCORED_CELLS=$CELLS; else SCORED_CELLS=$TABLE1; fi
n_scored=$(echo $SCORED_CELLS | wc -w)
# Seconds of everything but training; training gets the rest, split equally.
rest=$(awk -v T=$T -v c=$SEC_IMG_STEP -v ne=$N_EVAL -v ns=$N_SAMPLES -v k=$n_scored \
        -v sc=$SEC_SCORE -v pg=$SEC_PAGE \
        'BEGIN { printf "%d", c * T * (ne * 8 + ns * k + 40) + sc * k + pg }')
if [ -z "${STEPS:-}" ]; then
    STEPS=$(awk -v h="$HOURS" -v r=$rest -v s=$SEC_STEP 'BEGIN { printf "%d", (h * 3600 - r) / 6 / s }')
    [ "$STEPS" -ge 10 ] || die "HOURS=$HOURS leaves no time to train after evaluation and sampling (~$((rest / 60)) min): give more HOURS"
fi
WARMUP=$((STEPS / 10 < 5000 ? STEPS / 10 : 5000))
CKPT_EVERY=$((STEPS / 10 > 1 ? STEPS / 10 : 1))
CAP_MIN=$(awk -v s=$STEPS -v c=$SEC_STEP 'BEGIN { m = 1.5 * s * c / 60; printf "%.2f", m < 1 ? 1 : m }')
[ "$TOY" = 1 ] && CAP_MIN=60   # a toy run is a test: its steps must not depend on the machine's load

settings="HOURS=$HOURS TOY=$TOY SEED=$SEED DATA=$DATA STEPS=$STEPS N_EVAL=$N_EVAL N_SAMPLES=$N_SAMPLES SCORED=$SCORED"
if [ -f "$OUT/plan.env" ]; then
    had=$(sed -n 's/^SETTINGS=//p' "$OUT/plan.env")
    [ "$had" = "$settings" ] || die "$OUT holds a run planned with
    $had
  but this command asks for
    $settings
  rerun with the first settings to continue it, or remove $OUT to start again"
else
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with local changes)"
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    { echo "SETTINGS=$settings"
      echo "HOURS=$HOURS"; echo "TOY=$TOY"; echo "SEED=$SEED"; echo "DATA=$DATA"
      echo "STEPS=$STEPS"; echo "BATCH=$BATCH"; echo "T=$T"; echo "EMA=$EMA"; echo "WARMUP=$WARMUP"
      echo "N_EVAL=$N_EVAL"; echo "N_SAMPLES=$N_SAMPLES"; echo "SCORED=$(echo $SCORED_CELLS | sed 's/ /, /g')"
      echo "SEC_STEP=$SEC_STEP"; echo "SEC_IMG_STEP=$SEC_IMG_STEP"
      echo "COMMIT=$commit"; echo "DATE=$(date -u '+%Y-%m-%d %H:%M UTC')"
      echo "MACHINE=$(uname -sm), $(nproc 2>/dev/null || echo '?') cores${cpu:+, $cpu}"
    } > "$OUT/plan.env.tmp" && mv "$OUT/plan.env.tmp" "$OUT/plan.env" || die "$OUT/plan.env: cannot write"
fi

# ---- the stages -----------------------------------------------------------------
# One line per stage: name, planned seconds, what runs it.
img() { awk -v n=$1 -v T=$T -v c=$SEC_IMG_STEP 'BEGIN { printf "%d", n * T * c + 0.5 }'; }
{
    for c in $CELLS; do echo "train_$c $(awk -v s=$STEPS -v c=$SEC_STEP 'BEGIN { printf "%d", s * c }') train $c"; done
    for c in $CELLS; do echo "test_$c $(img $N_EVAL) bound $c test"; done
    for c in $TABLE1; do echo "trainsplit_$c $(img $N_EVAL) bound $c train"; done
    for c in $SCORED_CELLS; do echo "sample_$c $(img $N_SAMPLES) sample $c"; echo "score_$c $SEC_SCORE score $c"; done
    echo "figures $(img 40) figures eps_simple"
} > "$OUT/stages.list"
awk '{ print $1, $2 }' "$OUT/stages.list" > "$OUT/stages.txt.tmp" && mv "$OUT/stages.txt.tmp" "$OUT/stages.txt"
K=$(($(wc -l < "$OUT/stages.list") + 1))

echo "reproduce: $K stages in $OUT, budget $HOURS h ($settings)"
echo "  each run: $STEPS steps of batch $BATCH (~$(awk -v s=$STEPS -v c=$SEC_STEP 'BEGIN { printf "%.1f", s * c / 60 }') min at $SEC_STEP s/step, capped at $CAP_MIN min), T = $T, seed $SEED"
echo "  bits/dim on $N_EVAL test images per run and $N_EVAL training images for Table 1's runs; $N_SAMPLES samples for: $SCORED_CELLS"
echo "  the split (planned minutes; $SEC_IMG_STEP s per image per network call):"
awk '{ s[$3] += $2; t += $2 } END { printf "    training %.0f, bits/dim %.0f, sampling %.0f, scores %.0f, figures %.0f, page %.1f; total %.0f of %.0f\n",
        s["train"] / 60, s["bound"] / 60, s["sample"] / 60, s["score"] / 60, s["figures"] / 60, '"$SEC_PAGE"' / 60,
        (t + '"$SEC_PAGE"') / 60, '"$HOURS"' * 60 }' "$OUT/stages.list"

done_seconds() {
    cat "$OUT"/stages/*.done 2>/dev/null | sed -n 's/^seconds=//p' | awk '{ s += $1 } END { printf "%d", s }'
}

# ---- what each kind of stage does --------------------------------------------------
# Each returns 0 when its output is in place (possibly "unstable, skipped").

ckpt_of() { echo "$OUT/runs/$1/ckpt.safetensors"; }
usable() {   # the run finished (or hit its time cap) and can be evaluated
    case $(cat "$OUT/runs/$1/train.status" 2>/dev/null) in finished*|capped*) return 0 ;; esac
    return 1
}

do_train() {
    d=$OUT/runs/$1
    mkdir -p "$d"
    if [ -f "$d/ckpt.safetensors" ]; then
        echo "  resuming $1 from $d/ckpt.safetensors"
        "$DDPM" train --resume "$d/ckpt.safetensors" --out "$d" --steps $STEPS --minutes $CAP_MIN \
            --ckpt-every $CKPT_EVERY $DATAFLAG > "$d/train.out" 2> "$d/train.last.err"
    else
        # shellcheck disable=SC2046
        "$DDPM" train $NET $(cell_flags $1) --T $T --batch $BATCH --ema $EMA --seed $SEED \
            --steps $STEPS --minutes $CAP_MIN --ckpt-every $CKPT_EVERY --out "$d" $DATAFLAG \
            > "$d/train.out" 2> "$d/train.last.err"
    fi
    rc=$?
    cat "$d/train.last.err" >> "$d/train.err"
    check_interrupt
    if grep -q "^interrupted at step" "$d/train.last.err"; then
        echo "reproduce: training $1 was stopped by a signal; rerun to continue it" >&2
        return 1
    fi
    if [ $rc = 0 ]; then
        step=$(sed -n 's/^trained to step \([0-9]*\),.*/\1/p' "$d/train.out" | tail -n 1)
        [ -n "$step" ] || { tail -n 5 "$d/train.last.err" >&2; return 1; }
        if [ "$step" -ge "$STEPS" ]; then status="finished $step"; else status="capped $step"; fi
    else
        step=$(sed -n -E 's/.* is -?(nan|inf) at step ([0-9]+).*/\2/p' "$d/train.last.err" | tail -n 1)
        if [ -z "$step" ]; then
            echo "reproduce: training $1 failed (not a numerical failure):" >&2
            tail -n 5 "$d/train.last.err" >&2
            return 1
        fi
        status="nonfinite $step"
        echo "  $1: training stopped at step $step (not finite): recorded as unstable"
    fi
    echo "$status" > "$d/train.status.tmp" && mv "$d/train.status.tmp" "$d/train.status"
}

do_bound() {   # do_bound CELL test|train
    d=$OUT/runs/$1
    out=$d/bpd_$2.txt
    if ! usable $1; then echo "unstable: not evaluated" > "$out.tmp" && mv "$out.tmp" "$out"; return; fi
    if [ "$1" = eps_simple ] && [ "$2" = test ]; then   # the bound and the rate-distortion curve at once
        "$DDPM" rd --ckpt "$d/ckpt.safetensors" --n $N_EVAL --seed $SEED --csv "$d/rd.tmp.csv" \
            $DATAFLAG > "$d/rd.txt.tmp" 2> "$d/rd.err" || { check_interrupt; tail -n 3 "$d/rd.err" >&2; return 1; }
        sed -n 's/^# total_bpd=\([^ ]*\) total_se=\([^ ]*\) .*/total   \1 +- \2 bits\/dim/p' \
            "$d/rd.tmp.csv" > "$out.tmp"
        mv "$d/rd.tmp.csv" "$d/rd.csv" && mv "$d/rd.txt.tmp" "$d/rd.txt" && mv "$out.tmp" "$out"
        return
    fi
    "$DDPM" bpd --ckpt "$d/ckpt.safetensors" --n $N_EVAL --seed $SEED --split $2 $DATAFLAG \
        > "$out.tmp" 2> "$d/bpd_$2.err" || { check_interrupt; tail -n 3 "$d/bpd_$2.err" >&2; return 1; }
    mv "$out.tmp" "$out"
}

do_sample() {
    d=$OUT/runs/$1
    if ! usable $1; then echo "unstable: no samples" > "$d/samples.skip"; return; fi
    "$DDPM" sample --ckpt "$d/ckpt.safetensors" --n $N_SAMPLES --seed $SEED --out "$d/samples.tmp.png" \
        > /dev/null 2> "$d/sample.err" || { check_interrupt; tail -n 3 "$d/sample.err" >&2; return 1; }
    mv "$d/samples.tmp.npy" "$d/samples.npy" && mv "$d/samples.tmp.png" "$d/samples.png"
}

do_score() {
    d=$OUT/runs/$1
    if ! usable $1; then echo "unstable: not scored" > "$d/score.txt"; return; fi
    if [ -f "$OUT/ref_features.npy" ]; then ref="--ref $OUT/ref_features.npy"
    else ref="--ref test --ref-features $OUT/ref_features.tmp.npy"; fi
    "$DDPM" score --samples "$d/samples.npy" $ref --seed $SEED $DATAFLAG > "$d/score.txt.tmp" \
        2> "$d/score.err" || { check_interrupt; tail -n 3 "$d/score.err" >&2; return 1; }
    [ -f "$OUT/ref_features.tmp.npy" ] && mv "$OUT/ref_features.tmp.npy" "$OUT/ref_features.npy"
    mv "$d/score.txt.tmp" "$d/score.txt"
}

do_figures() {   # Figures 6, 7 and 8 from one call of ddpm sample
    d=$OUT/runs/$1
    f=$OUT/figs
    mkdir -p "$f"
    if ! usable $1; then echo "unstable: no figures" > "$f/skip"; return; fi
    every=$((T / 10 > 1 ? T / 10 : 1))
    "$DDPM" sample --ckpt "$d/ckpt.safetensors" --n 8 --seed $SEED --out "$f/grid8.tmp.png" \
        --progressive "$f/fig6.tmp.png" --every $every --shared "$f/fig7.tmp.png" \
        --interp "$f/fig8.tmp.png" $DATAFLAG > /dev/null 2> "$f/figures.err" \
        || { check_interrupt; tail -n 3 "$f/figures.err" >&2; return 1; }
    for n in 6 7 8; do mv "$f/fig$n.tmp.png" "$f/fig$n.png" || return 1; done
    rm -f "$f/grid8.tmp.png" "$f/grid8.tmp.npy"
}

# ---- run them ------------------------------------------------------------------------
k=0 ran=0
while read -r name planned kind cell arg <&3; do
    k=$((k + 1))
    if [ -f "$OUT/stages/$name.done" ]; then
        echo "stage $k/$K $name: done, skipped"
        continue
    fi
    if [ "$STOP_AFTER" -gt 0 ] && [ $ran -ge "$STOP_AFTER" ]; then
        echo "reproduce: stopping after $ran stages (STOP_AFTER); run again to continue"
        exit 3
    fi
    left=$(awk -v h="$HOURS" -v d="$(done_seconds)" 'BEGIN { l = h * 3600 - d; if (l < 0) printf "none (%d min over)", -l / 60
        else printf "%dh%02dm", l / 3600, (l % 3600) / 60 }')
    echo "stage $k/$K $name (planned $(awk -v p=$planned 'BEGIN { printf "%.1f", p / 60 }') min), time left $left of ${HOURS}h"
    t0=$(date +%s)
    case $kind in
    train)   do_train "$cell" ;;
    bound)   do_bound "$cell" "$arg" ;;
    sample)  do_sample "$cell" ;;
    score)   do_score "$cell" ;;
    figures) do_figures "$cell" ;;
    esac || die "stage $name failed (its log is under $OUT/runs/$cell/); fix and rerun to continue"
    check_interrupt
    echo "seconds=$(($(date +%s) - t0))" > "$OUT/stages/$name.tmp" && mv "$OUT/stages/$name.tmp" "$OUT/stages/$name.done"
    ran=$((ran + 1))
done 3< "$OUT/stages.list"

# ---- the page (every time) --------------------------------------------------------------
echo "stage $K/$K page: $PAGE"
mkdir -p "$FIGS/data" "$(dirname "$PAGE")" || die "$FIGS: cannot create"
s=$OUT/runs/eps_simple
model=$(sed -n 's/^model: \(.*\); \([0-9]*\) parameters$/\1|\2/p' "$s/train.err" 2>/dev/null | head -n 1)
cls=$(sed -n 's/^classifier \(.*\) sha256 \([0-9a-f]*\)$/\1|\2/p' "$OUT"/runs/*/score.txt 2>/dev/null | head -n 1)
label=${DATA_LABEL:-$(sed -n 's/^data: \([^,]*\),.*/\1/p' "$s/train.err" 2>/dev/null | head -n 1)}
{ echo "NET_DESC=${model%|*}"; echo "PARAMS=${model#*|}"; echo "DATA_LABEL=${label:-unknown}"
  echo "CLASSIFIER=${cls%|*}"; echo "CLASSIFIER_SHA=${cls#*|}"; } > "$OUT/page.env"
"$REPRO" page "$OUT" "$PAGE.tmp" "$FIGS" "$FIGLINK" || die "the page could not be written"
for gp in "$FIGS"/data/*.gp; do
    [ -e "$gp" ] || continue
    gnuplot "$gp" 2> "$FIGS/data/gnuplot.err" || { cat "$FIGS/data/gnuplot.err" >&2; die "$gp: gnuplot failed"; }
done
for n in 6 7 8; do [ -f "$OUT/figs/fig$n.png" ] && cp "$OUT/figs/fig$n.png" "$FIGS/fig$n.png"; done
[ -f "$s/samples.png" ] && cp "$s/samples.png" "$FIGS/samples.png"
mv "$PAGE.tmp" "$PAGE" || die "$PAGE: cannot write"
echo "reproduce: wrote $PAGE (figures in $FIGS); $(done_seconds) s of stages in all"
awk '/^## / { on = $0 == "## Verdicts" } on && /^- / { print "  " substr($0, 3) }' "$PAGE"
