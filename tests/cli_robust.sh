#!/usr/bin/env bash
# cli_robust.sh — the bad-input table of the ddpm program.
#
# Every command with missing, repeated, malformed, out-of-range and
# contradictory flags, and the loaders with missing, truncated, empty and
# wrong-typed files. Each row: the exit status wanted (2 misuse, 1 failure,
# 0 success), a phrase the message must contain, the command line. A row
# fails when the status differs, the phrase is missing, the program died of
# a signal (status > 128) or printed "internal error" (an assertion).
#
#   usage: tests/cli_robust.sh [path/to/ddpm]      (make test runs it)
set -u
DDPM=${1:-build/ddpm}
case $DDPM in /*) ;; *) DDPM=$PWD/$DDPM ;; esac
export OMP_NUM_THREADS=1
W=$(mktemp -d /tmp/ddpm_cli_XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
fails=0 rows=0

row() {   # row WANT PHRASE ddpm-args...
    local want=$1 phrase=$2
    shift 2
    "$DDPM" "$@" > out.txt 2> err.txt < /dev/null
    local rc=$?
    rows=$((rows + 1))
    local why=""
    if [ $rc -gt 128 ]; then why="killed by signal $((rc - 128))"
    elif [ $rc -ne "$want" ]; then why="exit $rc, wanted $want"
    elif grep -q "internal error" err.txt; then why="an assertion fired"
    elif ! grep -qF -- "$phrase" err.txt out.txt; then why="no \"$phrase\" in the output"
    fi
    if [ -n "$why" ]; then
        fails=$((fails + 1))
        echo "FAIL: ddpm $*: $why"
        sed 's/^/    /' err.txt | head -5
    fi
}

# ---- files the rows use --------------------------------------------------------

be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }

# A small MNIST-format folder: n 28x28 images (a bright square), n labels.
idx_folder() {   # idx_folder DIR N
    mkdir -p "$1"
    for split in train t10k; do
        { printf '\x00\x00\x08\x03'; be32 "$2"; be32 28; be32 28
          for ((i = 0; i < $2; i++)); do
              head -c 300 /dev/zero; head -c 184 /dev/zero | tr '\0' '\310'; head -c 300 /dev/zero
          done; } > "$1/$split-images-idx3-ubyte"
        { printf '\x00\x00\x08\x01'; be32 "$2"; head -c "$2" /dev/zero; } > "$1/$split-labels-idx1-ubyte"
    done
}

# A float32 .npy of the given shape ("0, 1, 32, 32"), filled with zeros.
npy_zeros() {   # npy_zeros FILE "SHAPE" COUNT
    local h="{'descr': '<f4', 'fortran_order': False, 'shape': ($2), }"
    while [ $(( (10 + ${#h} + 1) % 64 )) -ne 0 ]; do h="$h "; done
    { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(((${#h} + 1) & 255)))\\x$(printf %02x $(((${#h} + 1) >> 8)))"
      printf '%s\n' "$h"; head -c $((4 * $3)) /dev/zero; } > "$1"
}

NET=(--config tiny --ch 16 --groups 8 --ch-mult 1,2 --attn none)
idx_folder data 8
"$DDPM" init --out m.safetensors "${NET[@]}" --in-ch 1 --out-ch 1 > /dev/null || exit 1
"$DDPM" train --data data --out run "${NET[@]}" --batch 2 --steps 2 --T 10 --ema 0.5 \
    > /dev/null 2>&1 || { echo "cli_robust: the tiny training run failed"; exit 1; }
cp run/ckpt.safetensors t.safetensors
head -c 1000 m.safetensors > truncated.safetensors
: > empty.safetensors
npy_zeros x0.npy "0, 1, 32, 32" 0
npy_zeros t0.npy "0," 0
npy_zeros x1.npy "1, 1, 32, 32" 1024
npy_zeros t2.npy "2," 2
printf '\x93NUMPY\x01\x00\x20\x00{junk' > bad.npy
printf '\x00\x00\x00\x00\x00\x00\x00\x00' > zero_header.safetensors
mkdir -p adir
# A checkpoint without config metadata (a plain state_dict): the init file
# with its ddpm.* keys renamed, so the reader does not see them.
sed 's/"ddpm\./"xxxx./g' m.safetensors > sd.safetensors

# ---- the table -------------------------------------------------------------------

# No command, unknown command, help and version.
row 2 "usage: ddpm <command>"
row 2 "unknown command 'bogus'"              bogus
row 0 "commands:"                             help
row 0 "ddpm 0.1.0"                            version
row 2 "unexpected argument"                   version extra
# Flag syntax, shared by every command.
for cmd in train sample bpd rd init forward params; do
    row 2 "unknown flag --bogus"              $cmd --bogus 1
    row 2 "--config needs a value"            $cmd --config
    row 2 "expected --flag value"             $cmd positional
    row 0 "usage: ddpm $cmd"                  $cmd --help
    row 2 "--ch needs a value, not the flag '--groups'" $cmd --ch --groups 8
    row 2 "bad value '-4' for --ch: want a whole number in 1..100000" $cmd --ch=-4
done
row 2 "--ckpt needs a value"                  sample --ckpt
row 2 "--out needs a value, not the flag '--steps'" train --out --steps 10
row 2 "expected --flag value, got '--=5'"     train --=5
row 0 "wrote e.safetensors"                   init --out=e.safetensors --seed=3 "${NET[@]}"
row 0 "--batch B"                             train --help
row 0 "images per step; the paper: 128 (default: 32)" train --help
row 0 "--clip-x0 0|1"                         sample --help
row 2 "unknown flag --clip"                   sample --ckpt t.safetensors --clip 0
row 2 "unknown flag --ema"                    bpd --ckpt t.safetensors --ema 0
row 2 "--steps is given twice"                train --steps 1 --steps 2
row 2 "--ckpt is given twice"                 sample --ckpt a --ckpt b
row 2 "--ch is given twice"                   params --ch 32 --ch 64
# ddpm params / init: the network flags.
row 0 "total"                                 params "${NET[@]}"
row 2 "ch must be even"                       params --ch 7
row 2 "bad value '1,,2' for --ch-mult"        params --ch-mult 1,,2
row 2 "bad value '' for --attn"               params --attn ""
row 2 "bad value '1' for --dropout"           params --dropout 1
row 2 "bad value 'nan' for --dropout"         params --dropout nan
row 2 "bad value '0' for --resolution"        params --resolution 0
row 2 "bad value '-32' for --ch"              params --ch -32
row 2 "bad value '99999999999' for --ch"      params --ch 99999999999
row 2 "is not a width of"                     params --ch 100000 --ch-mult 100000 --groups 1
row 2 "parameters is more than"               params --ch 16384 --ch-mult 1 --groups 1
row 2 "GroupNorm"                             params --ch 48 --groups 32
row 2 "cannot be halved"                      params --resolution 30
row 2 "bad value 'huge' for --config: unknown config 'huge'" params --config huge
row 2 "--out is required"                     init
row 2 "bad value '-1' for --seed: want a whole number in 0..18446744073709551615" init --out x.safetensors --seed -1
row 2 "bad value '1.5' for --seed"          init --out x.safetensors --seed 1.5
row 2 "bad value '18446744073709551616' for --seed" init --out x.safetensors --seed 18446744073709551616
row 1 "cannot create"                         init --out nodir/x.safetensors "${NET[@]}"
# ddpm classifier: whole numbers where a count is asked for.
row 2 "bad value '1.5' for --batch"           classifier train --out c.safetensors --batch 1.5
row 2 "bad value '2.5' for --steps"           classifier train --out c.safetensors --steps 2.5
# ddpm train: budgets and values.
row 2 "give a budget"                         train --data data
for bad in "steps 0" "steps -5" "steps 1.5" "steps abc" "steps 1e30" "steps 0x10" \
           "batch 0" "batch 5000" "batch 2.5" "lr -1" "lr nan" "lr 2" "T 1" "T 100001" \
           "seed -1" "seed 18446744073709551616" "seed 1e3" "flip 2" "ema 1.5" "minutes 0" \
           "warmup -1" "clip -1" "ckpt-every -1" "ckpt-every 0.5" "steps +-1" "lr infinity" \
           "steps 1e" "batch 0x10"; do
    set -- $bad
    row 2 "bad value '$2' for --$1"           train --data data --$1 $2
done
row 2 "bad value 'foo' for --mean: want eps, x0 or mu" train --data data --steps 1 --mean foo
row 2 "is not a width of"                     train --data data --steps 1 --ch 100000
row 1 "cannot open folder"                    train --data nosuch --steps 1
row 1 "no data set found"                     train --data adir --steps 1
# ddpm train --resume: the checkpoint's settings win; conflicting flags are refused.
# (Each row has a budget: were the flag accepted, the row ends instead of training on.)
row 2 "which was trained with T = 10"         train --data data --resume t.safetensors --T 1000 --steps 3 --out run9
row 2 "which was trained with batch = 2"      train --data data --resume t.safetensors --batch 4 --steps 3 --out run9
row 2 "which was trained with ema = 0.5"      train --data data --resume t.safetensors --ema 0.9 --steps 3 --out run9
row 2 "which was trained with seed = 0"       train --data data --resume t.safetensors --seed 3 --steps 3 --out run9
row 2 "which was trained with var = fixedlarge" train --data data --resume t.safetensors --var fixedsmall --steps 3 --out run9
row 2 "drop them on --resume"                 train --data data --resume t.safetensors --ch 32 --steps 3 --out run9
row 2 "drop them on --resume"                 train --data data --resume t.safetensors --config small --steps 3 --out run9
row 0 "trained to step 3"                     train --data data --resume t.safetensors --out run2 --steps 3 --T 10 --batch 2 "${NET[@]}"
row 1 "not a training checkpoint"             train --data data --resume m.safetensors --out run3
row 1 "cannot open"                           train --data data --resume nosuch.safetensors
row 1 "runs past the end of the file"         train --data data --resume truncated.safetensors
# ddpm forward: inputs.
row 2 "--ckpt, --x, --t and --out are required" forward --ckpt m.safetensors
row 1 "N >= 1"                                forward --ckpt m.safetensors --x x0.npy --t t0.npy --out y.npy
npy_zeros t1.npy "1," 1
npy_zeros x130.npy "130, 1, 32, 32" $((130 * 1024))
npy_zeros t130.npy "130," 130
row 0 "wrote y3.npy [130,1,32,32]"            forward --ckpt m.safetensors --x x130.npy --t t130.npy --out y3.npy
row 0 "wrote y.npy"                           forward --ckpt m.safetensors --x x1.npy --t t1.npy --out y.npy
row 1 "one timestep per image"                forward --ckpt m.safetensors --x x1.npy --t t2.npy --out y.npy
row 1 "cannot open"                           forward --ckpt m.safetensors --x nosuch.npy --t t0.npy --out y.npy
row 1 "not a regular file"                    forward --ckpt m.safetensors --x adir --t t0.npy --out y.npy
row 1 "bad.npy"                               forward --ckpt m.safetensors --x bad.npy --t t0.npy --out y.npy
row 1 "x must have shape"                     forward --ckpt m.safetensors --x t2.npy --t t2.npy --out y.npy
row 1 "empty"                                 forward --ckpt empty.safetensors --x x1.npy --t t0.npy --out y.npy
row 1 "runs past the end of the file"         forward --ckpt truncated.safetensors --x x1.npy --t t0.npy --out y.npy
row 1 "header length"                         forward --ckpt zero_header.safetensors --x x1.npy --t t0.npy --out y.npy
row 1 "has 1113955 parameters but the file holds only" forward --ckpt sd.safetensors --x x1.npy --t t0.npy --out y.npy
row 0 "wrote y2.npy"                          forward --ckpt sd.safetensors --x x1.npy --t t1.npy --out y2.npy "${NET[@]}" --in-ch 1 --out-ch 1
row 1 "x1.npy: header length"                 forward --ckpt x1.npy --x x1.npy --t t0.npy --out y.npy
# ddpm sample / bpd / rd.
row 2 "--ckpt is required"                    sample
row 2 "--ckpt is required"                    bpd
row 2 "--ckpt and --csv are required"         rd --ckpt t.safetensors
for bad in "n 0" "n -1" "n 1e8" "n 2.5" "batch 0" "batch 4097" "clip-x0 2" "use-ema -1" "seed -1"; do
    set -- $bad
    for cmd in sample bpd; do row 2 "bad value '$2' for --$1" $cmd --ckpt t.safetensors --$1 $2; done
done
row 2 "bad value 'val' for --split"          bpd --ckpt t.safetensors --split val
row 2 "bad value 'val' for --split"          rd --ckpt t.safetensors --csv r.csv --split val
row 0 "training split, 8 images"              bpd --ckpt t.safetensors --data data --n 2 --split train
row 1 "--interp: no test images"              sample --ckpt t.safetensors --n 1 --interp i.png --data nowhere
row 2 "bad value '0' for --every"             sample --ckpt t.safetensors --every 0
row 2 "bad value '0' for --cols"              sample --ckpt t.safetensors --cols 0
row 2 "want fixedlarge or fixedsmall"         sample --ckpt t.safetensors --var bogus --n 1
row 1 "cannot open"                           sample --ckpt nosuch.safetensors
row 1 "cannot open"                           bpd --ckpt nosuch.safetensors
row 1 "header length"                         sample --ckpt zero_header.safetensors
row 0 "wrote s.png"                           sample --ckpt t.safetensors --n 2 --out s.png
row 1 "cannot create"                         sample --ckpt t.safetensors --n 1 --out nodir/s.png
# A checkpoint without config: the network flags are accepted and describe it
# (the data folder is missing, so the run stops after loading the model).
row 1 "stores no network config"              bpd --ckpt sd.safetensors --data data
row 1 "cannot open folder"                    bpd --ckpt sd.safetensors "${NET[@]}" --in-ch 1 --out-ch 1 --data nosuch
row 1 "cannot open folder"                    rd --ckpt sd.safetensors "${NET[@]}" --in-ch 1 --out-ch 1 --data nosuch --csv r.csv
row 2 "ch must be even"                       sample --ckpt sd.safetensors --ch 7
row 1 "conv_in.weight"                        bpd --ckpt t.safetensors --data data "${NET[@]}"
row 0 "total"                                 bpd --ckpt t.safetensors --data data --n 2 "${NET[@]}" --in-ch 1 --out-ch 1
row 0 "total"                                 bpd --ckpt t.safetensors --data data --n 2
row 0 "wrote r.csv"                           rd --ckpt t.safetensors --data data --n 2 --csv r.csv
# Out of memory for a size the user chose: a message naming the flag, exit 1.
# (Not under AddressSanitizer, whose shadow memory cannot live under ulimit -v.)
if ! grep -q __asan_init "$DDPM"; then
    ulimit -v 4000000
    row 1 "--n 10000000: out of memory"       sample --ckpt t.safetensors --n 10000000
fi

echo "cli_robust: $rows rows, $fails failed"
[ $fails -eq 0 ]
