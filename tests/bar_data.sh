# bar_data.sh — a tiny synthetic MNIST-format data set for the program tests
# (sourced by kill9.sh and mpi.sh): 16 images of 28 x 28, image i a bright
# bar three rows high starting at row i, all labelled 0.
#
#   bar_data DIR [test]   writes DIR/train-*-idx?-ubyte (and the t10k-* copies with "test")
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
bar_data() {
    mkdir -p "$1" || return 1
    { printf '\x00\x00\x08\x03'; be32 16; be32 28; be32 28
      for ((i = 0; i < 16; i++)); do
          head -c $((28 * i)) /dev/zero; head -c 84 /dev/zero | tr '\0' '\350'; head -c $((28 * (25 - i))) /dev/zero
      done; } > "$1/train-images-idx3-ubyte"
    { printf '\x00\x00\x08\x01'; be32 16; head -c 16 /dev/zero; } > "$1/train-labels-idx1-ubyte"
    if [ "${2:-}" = test ]; then
        cp "$1/train-images-idx3-ubyte" "$1/t10k-images-idx3-ubyte"
        cp "$1/train-labels-idx1-ubyte" "$1/t10k-labels-idx1-ubyte"
    fi
}
