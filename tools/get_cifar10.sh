#!/bin/sh
# get_cifar10.sh OUTDIR — fetch CIFAR-10 (binary version) for `make data`.
#
# Leaves OUTDIR/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, the
# folder data_default_path() (src/data.c) looks for first. Steps:
#
#   1. already there                      -> say so, exit 0
#   2. OUTDIR/cifar-10-binary.tar.gz there -> (placed by hand) check, extract
#   3. else download it (curl or wget, 30 s to connect / to stall), check the
#      size and MD5 of the original archive, extract, delete the archive
#
# A machine that cannot reach the address is not an error: the script says
# how to place the files by hand and that the project falls back to
# Fashion-MNIST, and exits 0. A download whose MD5 is wrong is deleted, exit 1.
# This is the only place the project downloads anything; builds and tests
# never do. Set CIFAR10_URL to fetch from a mirror instead.
set -u

out=${1:-build/data}
dir=$out/cifar-10-batches-bin
url=${CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}
md5_want=c32a1d4ab5d03f1284b67883e8d87530
size_want=170052171
tgz=$out/cifar-10-binary.tar.gz

say() { printf 'make data: %s\n' "$*"; }

if [ -f "$dir/data_batch_1.bin" ]; then
    say "CIFAR-10 is already in $dir"
    exit 0
fi
mkdir -p "$out" || { say "cannot create $out"; exit 1; }

# MD5 of a file with whichever tool this system has.
md5_of() {
    if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
    elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
    elif command -v openssl >/dev/null 2>&1; then openssl md5 "$1" | sed 's/.*= *//'
    else echo "no-md5-tool"
    fi
}

# Download $url to $1; 0 on success. Gives up after 30 s without progress.
download() {
    if command -v curl >/dev/null 2>&1; then
        curl -fSL --progress-bar --connect-timeout 30 --speed-limit 1024 --speed-time 30 \
             --retry 0 -o "$1" "$url"
    elif command -v wget >/dev/null 2>&1; then
        wget --timeout=30 --tries=1 -O "$1" "$url"
    else
        say "neither curl nor wget is installed"
        return 1
    fi
}

offline_help() {
    cat <<EOF
make data: this machine could not reach
    $url
  CIFAR-10 was not downloaded. To place it by hand:
    1. on a machine with internet access, download cifar-10-binary.tar.gz
       from the address above ($size_want bytes);
    2. check it:   md5sum cifar-10-binary.tar.gz
       must print  $md5_want
    3. copy it here and unpack it:
           mkdir -p $out && tar xzf cifar-10-binary.tar.gz -C $out
       which gives $dir/data_batch_1.bin ... test_batch.bin
       (or put the archive at $tgz and run make data again).
  A copy elsewhere works too: DATA=/path/to/cifar-10-batches-bin (make) or
  DDPM_DATA=/path/to/cifar-10-batches-bin (environment) points the programs at it.
  Without CIFAR-10 the project uses Fashion-MNIST from Debian's
  dataset-fashion-mnist (make deps installs it in /usr/share/datasets/fashion-mnist).
EOF
}

# Check the archive's size and MD5; on a mismatch say so and return 1.
verify() {
    size=$(wc -c < "$1" | tr -d ' ')
    sum=$(md5_of "$1")
    if [ "$size" = "$size_want" ] && [ "$sum" = "$md5_want" ]; then return 0; fi
    say "$1 is not the CIFAR-10 binary archive:"
    say "  size $size bytes (expected $size_want), MD5 $sum (expected $md5_want)"
    return 1
}

if [ -f "$tgz" ]; then
    say "using $tgz (found in $out)"
    if ! verify "$tgz"; then
        say "delete it (rm $tgz) or replace it with a good copy, then run make data again"
        exit 1
    fi
else
    say "downloading $url"
    if ! download "$tgz.part"; then
        rm -f "$tgz.part"
        offline_help
        exit 0
    fi
    if ! verify "$tgz.part"; then
        rm -f "$tgz.part"
        say "the download was deleted; try again, or fetch the archive by hand and check its MD5"
        exit 1
    fi
    mv "$tgz.part" "$tgz" || exit 1
fi

say "unpacking into $out"
if ! tar xzf "$tgz" -C "$out" || [ ! -f "$dir/data_batch_1.bin" ]; then
    say "unpacking $tgz failed (disk full?); $dir is incomplete"
    exit 1
fi
rm -f "$tgz"
say "CIFAR-10 is in $dir (data_batch_1..5.bin, test_batch.bin)"
