#!/usr/bin/env bash
# valgrind.sh — memcheck over a short train -> resume -> sample -> bpd -> rd pipeline.
#
# The tiny U-Net, a few steps on a small synthetic MNIST-format folder, T = 10.
# Each command runs under valgrind's memcheck; any error (invalid read or
# write, use of uninitialised memory, a definite leak) or an exit status other
# than the command's own (0, or 2 and 1 for the two failing ones) fails it.
# Prints each command's error summary and heap totals. About a few minutes.
#
#   usage: tests/valgrind.sh [path/to/ddpm]      (make valgrind runs it)
set -u
DDPM=${1:-build/ddpm}
case $DDPM in /*) ;; *) DDPM=$PWD/$DDPM ;; esac
command -v valgrind > /dev/null || { echo "valgrind.sh: valgrind is not installed (make valgrind installs it)"; exit 1; }
export OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/ddpm_valgrind_XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1

be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
mkdir data
for split in train t10k; do
    { printf '\x00\x00\x08\x03'; be32 8; be32 28; be32 28
      for ((i = 0; i < 8; i++)); do
          head -c $((56 * i)) /dev/zero; head -c 84 /dev/zero | tr '\0' '\350'; head -c $((28 * (25 - 2 * i))) /dev/zero
      done; } > data/$split-images-idx3-ubyte
    { printf '\x00\x00\x08\x01'; be32 8; head -c 8 /dev/zero; } > data/$split-labels-idx1-ubyte
done

NET=(--config tiny --ch 8 --groups 4 --ch-mult 1,2 --attn 16)
fails=0
vg() {   # vg WANT NAME ddpm-args...: WANT the command's own exit status
    local want=$1 name=$2
    shift 2
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes \
        --log-file=$name.vg "$DDPM" "$@" > $name.out 2>&1
    local rc=$?
    echo "$name: exit $rc; $(grep -o 'ERROR SUMMARY: [0-9]* errors' $name.vg);" \
         "$(grep -o 'total heap usage: .*' $name.vg); $(grep -o 'definitely lost: [0-9,]* bytes' $name.vg)"
    if [ $rc -ne "$want" ] || ! grep -q 'ERROR SUMMARY: 0 errors' $name.vg; then
        fails=$((fails + 1))
        grep -A12 -m3 '^==[0-9]*== [A-Z]' $name.vg | head -40
    fi
}
vg 0 train   train --data data --out run "${NET[@]}" --batch 2 --steps 2 --T 4 --ckpt-every 1
vg 0 resume  train --resume run/ckpt.safetensors --data data --out run --steps 3
vg 0 sample  sample --ckpt run/ckpt.safetensors --n 2 --out s.png --progressive p.png --every 2
vg 0 bpd     bpd --ckpt run/ckpt.safetensors --data data --n 2 --batch 2 --csv b.csv
vg 0 rd      rd --ckpt run/ckpt.safetensors --data data --n 2 --batch 2 --csv r.csv
vg 2 badflag train --data data --steps 1 --ch 100000
vg 1 badckpt sample --ckpt data/train-images-idx3-ubyte
echo "valgrind.sh: $fails of 7 commands had memcheck errors"
[ $fails -eq 0 ]
