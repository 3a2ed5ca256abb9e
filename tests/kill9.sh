#!/usr/bin/env bash
# kill9.sh — a training run killed with SIGKILL, again and again, loses nothing.
#
# A tiny U-Net trains on a small synthetic MNIST-format folder, writing its
# checkpoint after every step (--ckpt-every 1). The run is killed with
# SIGKILL at random moments, a third of them while a checkpoint is being
# written (the moment its temporary file appears). After every kill:
#   - ckpt.safetensors is a whole file (its header parses) holding a step that
#     was saved: no lower than the last one seen, no higher than the budget;
#   - --resume from it continues the run (and is itself killed next time).
# After the kills the run is resumed to the end, and its checkpoint must be
# byte-identical to that of the same run never interrupted.
# Then a file-size limit (ulimit -f) during a save: the save fails with a
# message saying why, the previous checkpoint stays as it was, and no
# temporary file is left.
#
#   usage: tests/kill9.sh [path/to/ddpm] [kills]     (make test runs it)
set -u
. "$(dirname "${BASH_SOURCE[0]}")/bar_data.sh"
DDPM=${1:-build/ddpm}
KILLS=${2:-24}
case $DDPM in /*) ;; *) DDPM=$PWD/$DDPM ;; esac
export OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/ddpm_kill9_XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
N=60
die() { echo "kill9: FAIL: $*"; exit 1; }

# ---- a synthetic data set: 16 images of a bright bar at different heights ----------
bar_data data || die "cannot write the synthetic data set"

FLAGS=(--data data --config tiny --ch 16 --groups 8 --ch-mult 1,2 --attn none --batch 2 --T 20
       --ema 0.9 --seed 3)
train() { "$DDPM" train "$@" > /dev/null 2>> train.err; }
step_of() {   # the train.step stored in a checkpoint's header, or nothing if unreadable
    head -c 65536 "$1" 2>/dev/null | tr -c '[:print:]' '\n' | grep -o '"train.step":"[0-9]*"' |
        head -n 1 | grep -o '[0-9]*'
}

# ---- the uninterrupted run -----------------------------------------------------------
train "${FLAGS[@]}" --steps $N --ckpt-every 1 --out ref || die "the reference run failed: $(tail -n 2 train.err)"
[ "$(step_of ref/ckpt.safetensors)" = $N ] || die "the reference checkpoint does not hold step $N"

# ---- the killed runs -------------------------------------------------------------------
kills=0 midwrite=0 chains=0
while [ $kills -lt "$KILLS" ]; do
    rm -rf run
    chains=$((chains + 1))
    # A run normally takes all the kills; runs that keep finishing first mean
    # the saves never showed a temporary file (or the machine is very fast).
    [ $chains -le 5 ] || die "only $kills kills in 5 runs: no save was caught in the act (is the checkpoint written through a temporary file?)"
    last=0
    while :; do
        if [ -f run/ckpt.safetensors ]; then   # (not through train(): $! must be ddpm itself)
            "$DDPM" train --resume run/ckpt.safetensors --data data --steps $N --ckpt-every 1 \
                --out run > /dev/null 2>> train.err &
        else
            "$DDPM" train "${FLAGS[@]}" --steps $N --ckpt-every 1 --out run > /dev/null 2>> train.err &
        fi
        pid=$!
        if [ $kills -ge "$KILLS" ]; then   # enough: let it finish
            wait $pid || die "the last resume failed: $(tail -n 2 train.err)"
            break
        fi
        if [ $((kills % 3)) -eq 2 ]; then   # mid-write: when a temporary file appears
            while kill -0 $pid 2> /dev/null && ! compgen -G "run/ckpt.safetensors.tmp.*" > /dev/null; do :; done
        else
            sleep "0.$(printf %03d $((RANDOM % 400)))"
        fi
        kill -9 $pid 2> /dev/null
        wait $pid 2> /dev/null
        rc=$?
        if [ $rc -eq 0 ]; then break; fi   # it had finished: the chain is complete
        [ $rc -eq 137 ] || die "the run failed by itself (status $rc): $(tail -n 2 train.err)"
        kills=$((kills + 1))
        if compgen -G "run/ckpt.safetensors.tmp.*" > /dev/null; then
            midwrite=$((midwrite + 1))
            rm -f run/ckpt.safetensors.tmp.*
        fi
        if [ -f run/ckpt.safetensors ]; then
            s=$(step_of run/ckpt.safetensors)
            [ -n "$s" ] || die "after kill $kills the checkpoint's header does not parse"
            [ "$s" -ge $last ] && [ "$s" -ge 1 ] && [ "$s" -le $N ] ||
                die "after kill $kills the checkpoint holds step $s (last seen $last, budget $N)"
            last=$s
        fi
    done
    [ "$(step_of run/ckpt.safetensors)" = $N ] || die "the resumed run did not reach step $N"
    cmp -s run/ckpt.safetensors ref/ckpt.safetensors ||
        die "the run resumed after $kills kills differs from the uninterrupted run"
done
[ $midwrite -ge 3 ] || die "only $midwrite of $kills kills came during a save"
echo "kill9: $kills kills with SIGKILL ($midwrite during a save, $chains runs to step $N): every checkpoint loaded, each run resumed to the uninterrupted run's checkpoint, byte for byte"

# ---- a file-size limit during a save ----------------------------------------------------
cp ref/ckpt.safetensors before.safetensors
(ulimit -f 100; "$DDPM" train --resume ref/ckpt.safetensors --data data --steps $((N + 1)) --out ref \
    > /dev/null 2> fsize.err)
rc=$?
[ $rc -eq 1 ] || die "under ulimit -f the save exited $rc, wanted 1: $(cat fsize.err)"
grep -q "ckpt.safetensors: write failed (File too large); the file was not changed" fsize.err ||
    die "under ulimit -f the message does not say why: $(tail -n 1 fsize.err)"
cmp -s before.safetensors ref/ckpt.safetensors || die "under ulimit -f the previous checkpoint changed"
! compgen -G "ref/ckpt.safetensors.tmp.*" > /dev/null || die "under ulimit -f a temporary file was left"
echo "kill9: under ulimit -f the save failed with \"$(grep -o 'write failed ([^)]*)' fsize.err)\" and the previous checkpoint was kept"
