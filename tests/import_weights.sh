#!/bin/bash
# import_weights.sh — released PyTorch checkpoints, converted by
# tools/import_weights.py, run by ddpm (appendix: the paper's own model).
#
#   bash tests/import_weights.sh build/ddpm
#
# 1. Always (no PyTorch needed): tests/data/import_small.safetensors, a small
#    U-Net (ch 8, 4 groups) that tools/import_weights.py converted from
#    diffusers names, must give PyTorch's output (tests/data/import_small_y.npy)
#    to 1e-4 under `ddpm forward`, read with its stored config and with the
#    same config given as flags.
# 2. When python3-torch is installed: tests/import_weights_torch.py makes random
#    tiny and paper networks in every supported layout, imports each, and
#    compares `ddpm forward` with the PyTorch forward; broken files must be
#    refused by name. Without PyTorch this part says so and is skipped.
#
# Regenerate part 1's files (needs PyTorch):
#   /usr/bin/python3 tests/import_weights_torch.py build/ddpm build/import_test --write-committed tests/data
set -u
DDPM=${1:-build/ddpm}
PY=${PYTHON:-/usr/bin/python3}
W=$(dirname "$DDPM")/import_test
D=tests/data
mkdir -p "$W"
fail=0

# The float32 data of a version-1 .npy file, one number per line.
npy_floats() {
    head -c 128 "$1" | grep -q "'descr': '<f4'" || { echo "$1: not a float32 .npy" >&2; return 1; }
    local hl
    hl=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' ')
    od -An -v -tf4 -w4 -j$((10 + hl)) "$1"
}

# compare A.npy B.npy WHAT: true when the largest absolute difference is <= 1e-4.
compare() {
    local a b
    a=$(npy_floats "$1") && b=$(npy_floats "$2") || return 1
    paste <(echo "$a") <(echo "$b") | awk -v what="$3" '
        { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
        END { ok = (n == 6144 && m <= 1e-4)
              printf "%s %s: %d values, max |diff| %.2e\n", ok ? "ok  " : "FAIL", what, n, m
              exit !ok }'
}

run_forward() {   # run_forward WHAT [flags]: ddpm forward on the committed file
    local what=$1; shift
    rm -f "$W/small_y.npy"
    if "$DDPM" forward --ckpt $D/import_small.safetensors --x $D/import_small_x.npy \
            --t $D/import_small_t.npy --out "$W/small_y.npy" "$@" > "$W/forward.log" 2>&1; then
        compare "$W/small_y.npy" $D/import_small_y.npy "$what" || fail=1
    else
        echo "FAIL $what: ddpm forward failed:"; cat "$W/forward.log"; fail=1
    fi
}

run_forward "committed converted file, its stored config"
run_forward "committed converted file, config as flags" --config tiny --ch 8 --groups 4
# The wrong group count must change the answer: the comparison can fail.
"$DDPM" forward --ckpt $D/import_small.safetensors --x $D/import_small_x.npy \
    --t $D/import_small_t.npy --out "$W/small_y.npy" --config tiny --ch 8 --groups 2 > /dev/null 2>&1
if compare "$W/small_y.npy" $D/import_small_y.npy "wrong groups" > /dev/null; then
    echo "FAIL the comparison passed with 2 GroupNorm groups instead of 4"; fail=1
else
    echo "ok   2 GroupNorm groups instead of 4 give another answer"
fi

if "$PY" -c "import torch, numpy" > /dev/null 2>&1; then
    "$PY" tests/import_weights_torch.py "$DDPM" "$W" > "$W/torch.log" 2>&1 || fail=1
    grep -v '^ok' "$W/torch.log"
    echo "$(grep -c '^ok' "$W/torch.log") PyTorch comparisons and refusals passed"
else
    echo "skipped: the PyTorch half of the import test ($PY has no torch; Debian: python3-torch)"
fi
[ "$fail" = 0 ] && echo "import_weights: all passed" || echo "import_weights: FAILED"
exit "$fail"
