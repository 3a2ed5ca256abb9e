#!/usr/bin/env bash
# make_corpus.sh — writes the seed corpora of tests/fuzz/corpus/ (committed;
# run once, from the repository root, after `make`). Seeds are small valid
# files of each format, so the fuzzers start from inputs that get deep into
# the loaders. Uses build/ddpm and python3 (zlib, struct: standard library).
set -eu
C=tests/fuzz/corpus
D=$(mktemp -d /tmp/ddpm_corpus_XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p $C/fuzz_safetensors $C/fuzz_checkpoint $C/fuzz_npy $C/fuzz_cifar $C/fuzz_idx \
         $C/fuzz_png $C/fuzz_cli
export OMP_NUM_THREADS=1
MINI=(--config tiny --ch 4 --ch-mult 1 --attn none --groups 2 --in-ch 1 --out-ch 1)

# Checkpoints: a bare model (resolution 1: the checkpoint harness's fallback
# network) and a training checkpoint of the same widths (Adam, EMA, train.*).
build/ddpm init --out $D/init.safetensors "${MINI[@]}" --resolution 1 > /dev/null
python3 - "$D" <<'PY'
import struct, sys
d = sys.argv[1]
def idx(path, magic, dims, body):
    open(path, "wb").write(struct.pack(">I", magic) + b"".join(struct.pack(">I", x) for x in dims) + body)
idx(d + "/train-images-idx3-ubyte", 0x803, [2, 28, 28], bytes((i * 7) % 256 for i in range(2 * 784)))
idx(d + "/train-labels-idx1-ubyte", 0x801, [2], bytes([3, 9]))
PY
build/ddpm train --data $D --out $D/run "${MINI[@]}" --batch 1 --steps 1 --T 10 > /dev/null 2>&1
cp $D/init.safetensors $C/fuzz_checkpoint/model.safetensors
cp $D/run/ckpt.safetensors $C/fuzz_checkpoint/train.safetensors
cp $D/init.safetensors $C/fuzz_safetensors/model.safetensors
cp tests/data/st_reference.safetensors $C/fuzz_safetensors/reference.safetensors
cp tests/data/npy_reference_*.npy $C/fuzz_npy/

python3 - "$C" <<'PY'
import gzip, struct, sys, zlib
C = sys.argv[1]
def put(h, name, b): open(f"{C}/{h}/{name}", "wb").write(b)

# safetensors: the smallest files, metadata only, every dtype
def st(header):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h
put("fuzz_safetensors", "empty_header", st("{}"))
put("fuzz_safetensors", "meta_only", st('{"__metadata__":{"ddpm.config":"tiny","k":"v\\u00e9"}}'))
put("fuzz_safetensors", "dtypes", st('{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},'
    '"b":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]},'
    '"conv_in.weight":{"dtype":"F64","shape":[2,1,3,3],"data_offsets":[20,164]}}') + bytes(range(164)))

# .npy: scalar, empty, each dtype, Fortran order
def npy(descr, shape, body, fortran=False):
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + body
put("fuzz_npy", "scalar.npy", npy("<f4", "()", struct.pack("<f", 1.5)))
put("fuzz_npy", "empty.npy", npy("<f4", "(0, 1, 32, 32)", b""))
put("fuzz_npy", "u1.npy", npy("|u1", "(2, 3)", bytes(range(6))))
put("fuzz_npy", "i4.npy", npy("<i4", "(3,)", struct.pack("<3i", -1, 0, 7)))
put("fuzz_npy", "f8.npy", npy("<f8", "(1, 2)", struct.pack("<2d", 0.25, -3)))
put("fuzz_npy", "fortran.npy", npy("<f4", "(2, 2)", struct.pack("<4f", 1, 2, 3, 4), True))

# CIFAR-10 with 3 records per batch (the harness's size): 2-byte length + part
rec = lambda label, k: bytes([label]) + bytes((k * 31 + i) % 256 for i in range(3072))
batch = lambda k: b"".join(rec((k + r) % 10, k + r) for r in range(3))
part = lambda b: struct.pack("<H", len(b)) + b
put("fuzz_cifar", "test_only", part(batch(0)))
put("fuzz_cifar", "all_splits", b"".join(part(batch(k)) for k in range(6)))
put("fuzz_cifar", "bad_label", part(b"\x0a" + batch(1)[1:]))

# IDX: flags, 2-byte length of the images file, images, labels
def idxf(magic, dims, body):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", x) for x in dims) + body
img = idxf(0x803, [2, 28, 28], bytes((i * 5) % 256 for i in range(2 * 784)))
lab = idxf(0x801, [2], bytes([1, 8]))
put("fuzz_idx", "plain", bytes([0]) + struct.pack("<H", len(img)) + img + lab)
put("fuzz_idx", "gzipped", bytes([3]) + struct.pack("<H", len(img)) + img + lab)
gz = gzip.compress(img)
put("fuzz_idx", "raw_gzip", bytes([4]) + struct.pack("<H", len(gz)) + gz + lab)
put("fuzz_idx", "zeros_bomb", bytes([1]) + struct.pack("<H", 16) + idxf(0x803, [1, 28, 28], b"") + lab)

# PNG: grey 28x28, RGB 32x32, palette, 16-bit grey+alpha, RGBA, interlaced, 1-bit
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
def png(w, h, depth, ctype, rowbytes, interlace=0, extra=b""):
    raw = b"".join(b"\x00" + bytes((y * 13 + x) % 256 for x in range(rowbytes)) for y in range(h))
    if interlace:   # Adam7: the same bytes, just valid lengths for a smoke seed
        raw = raw * 2
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
pngs = {"grey28": png(28, 28, 8, 0, 28), "rgb32": png(32, 32, 8, 2, 96),
        "palette32": png(32, 32, 8, 3, 32, extra=chunk(b"PLTE", bytes(range(256)) * 3)),
        "grey_alpha16": png(32, 32, 16, 4, 128), "rgba32": png(32, 32, 8, 6, 128),
        "interlaced": png(32, 32, 8, 0, 32, interlace=1), "bits1": png(32, 32, 1, 0, 4),
        "too_big": png(64, 64, 8, 0, 64)}
for name, b in pngs.items():
    put("fuzz_png", name, struct.pack("<H", len(b)) + b)
put("fuzz_png", "pair", struct.pack("<H", len(pngs["grey28"])) + pngs["grey28"] + pngs["grey28"])
put("fuzz_png", "mixed", struct.pack("<H", len(pngs["grey28"])) + pngs["grey28"] + pngs["rgb32"])

# CLI: a command byte (0 train, 1 sample, 2 bpd, 3 init, 4 forward, 5 params), words by lines
cli = {"train": (0, "--steps\n10\n--batch\n4\n--lr\n1e-4\n--T\n500\n--seed\n18446744073709551615\n--ch\n32\n--ch-mult\n1,2,2\n--mean\nx0"),
       "sample": (1, "--ckpt\nm\n--n\n16\n--every\n10\n--cols\n4\n--config\ntiny\n--attn\nnone"),
       "bpd": (2, "--ckpt\nm\n--n\n100\n--batch\n50\n--clip-x0\n0\n--use-ema\n1\n--seed\n3"),
       "equals": (0, "--steps=10\n--out\n--batch=4"),
       "init": (3, "--out\nx\n--seed\n7\n--ch\n64\n--groups\n16\n--dropout\n0.1\n--resolution\n64"),
       "forward": (4, "--ckpt\nm\n--x\nx\n--t\nt\n--out\ny\n--num-res-blocks\n2"),
       "params": (5, "--config\npaper\n--ch-mult\n1,2,2,2\n--in-ch\n1\n--out-ch\n2"),
       "help": (0, "--help"), "twice": (0, "--steps\n1\n--steps\n2")}
for name, (c, words) in cli.items():
    put("fuzz_cli", name, bytes([c]) + words.encode())
PY
ls $C/* | head -80; du -sh $C
