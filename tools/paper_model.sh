#!/bin/bash
# paper_model.sh — the paper's released CIFAR-10 model, converted and timed
# on this machine, and the commands that reproduce the paper's numbers with
# it (book: appendix_paper_model.md). Run by `make paper-model CKPT=path`.
#
#   tools/paper_model.sh DDPM CKPT OUTDIR [DATA]
#
# CKPT: pytorch_diffusion's model-790000.ckpt (or its EMA variant), or
# diffusers' diffusion_pytorch_model.bin / .safetensors of
# google/ddpm-cifar10-32 (with its config.json beside it). The converted
# file goes to OUTDIR/<name>.safetensors. The time estimates come from
# timing `ddpm forward` here, on two threads (OMP_NUM_THREADS=2): nothing is
# assumed about the machine.
set -eu
DDPM=$1 CKPT=$2 OUT=$3 DATA=${4:-}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT"
base=$(basename "$CKPT"); base=${base%.*}
case "$CKPT" in   # the two released files share a base name; the folder tells them apart
    *ema_diffusion_cifar10_model/*) base=ema_$base ;;
esac
[ "$base" = diffusion_pytorch_model ] && base=$(basename "$(dirname "$(readlink -f "$CKPT")")")
M=$OUT/$base.safetensors

echo "== converting $CKPT"
"$PY" tools/import_weights.py "$CKPT" --out "$M" --config paper --trained-on CIFAR-10

echo "== timing the network on this machine (two threads, 1 and then 33 images)"
"$PY" -c "
import numpy as np, sys
r = np.random.RandomState(0)
for n in (1, 33):
    np.save('$OUT/time_x%d.npy' % n, r.randn(n, 3, 32, 32).astype(np.float32))
    np.save('$OUT/time_t%d.npy' % n, r.randint(0, 1000, n).astype(np.float32))"
now() { date +%s.%N; }
fwd() { OMP_NUM_THREADS=2 "$DDPM" forward --ckpt "$M" --x "$OUT/time_x$1.npy" \
          --t "$OUT/time_t$1.npy" --out "$OUT/time_y.npy" > /dev/null; }
fwd 1   # warm-up: the file into the page cache
a=$(now); fwd 1; b=$(now); fwd 33; c=$(now)
# Seconds per image per step: the 32 extra images of the second run, so
# that loading the file (in both runs) cancels.
per=$(awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { p = ((c - b) - (b - a)) / 32;
        if (p <= 0) p = (c - b) / 33; printf "%.5f", p }')
echo "one forward pass of the paper's U-Net: $per s per image (batch 32, two threads)"
est() {   # est IMAGES: the time of IMAGES x 1000 network calls
    awk -v n="$1" -v p="$per" 'BEGIN { s = n * 1000 * p;
        if (s < 5400) printf "%.0f min", s / 60; else if (s < 172800) printf "%.1f h", s / 3600;
        else printf "%.1f days", s / 86400 }'
}
D=${DATA:-path/to/cifar-10-batches-bin}
cat <<EOF

== the paper's CIFAR-10 model, ready: $M
Estimated times below are for two threads, from the measurement above; they
scale with the number of images (--n). More cores: set OMP_NUM_THREADS.

Samples (Algorithm 2, 1000 steps; the paper's Figures 1 and 6):     ~$(est 64)
  $DDPM sample --ckpt $M --n 64 --seed 1 --out $OUT/samples.png \\
      --progressive $OUT/progressive.png

Bits/dim, the bound on 100 test images (Table 1: <= 3.75 on all 10,000): ~$(est 100)
  $DDPM bpd --ckpt $M --data $D --n 100 --csv $OUT/bpd.csv

Table 4 beside the paper's rows, and the bound's total too (same loop as bpd): ~$(est 100)
  $DDPM rd --ckpt $M --data $D --n 100 --csv $OUT/rd.csv

Figure 5 drawn from this model (rewrites figures/ch07_*; same cost):      ~$(est 100)
  make chapter7 CKPT=$M EVAL_N=100${DATA:+ DATA=$DATA}

Sample quality with the book's classifier (chapter 09; not Inception's FID) ~$(est 1000)
  $DDPM sample --ckpt $M --n 1000 --seed 1 --out $OUT/samples1000.png --score 1 --data $D
EOF
[ -n "$DATA" ] || echo "(DATA=path/to/cifar-10-batches-bin fills in the data path; make data fetches it)"
