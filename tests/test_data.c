/* test_data.c — the data loaders (CIFAR-10 binary, MNIST-format IDX, PNG
 * folders), batches in [-1, 1] with flips, and PNG grids.
 *
 * Runs in both builds. Every data set is written by the test itself into a
 * fresh temporary directory (full-size CIFAR-10 batches of 10,000 records,
 * IDX files plain and gzipped with zlib, PNGs with libpng), so pixel values
 * and labels can be compared exactly. Malformed files must fail with a
 * message naming the file and the problem. Two tests read real data when it
 * is on the machine and say they skipped otherwise: Debian's Fashion-MNIST
 * (make deps installs it) and, when DDPM_TEST_JPEG_CIFAR names one, a copy of
 * CIFAR-10 decoded from JPEG in the binary format (its README says so).
 */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "00_tensor.h"
#include "data.h"
#include "image.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define REC 3073
#define NREC 10000

// For loops over every pixel: Check's ck_assert costs a pipe write per call
// (it marks the point reached), so the hot loops only call it on failure.
#define EXPECT(cond, ...) \
    do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* ---- helpers: temporary directories, raw files ------------------------------ */

typedef struct TmpDir {
    char dir[64];
    char path[256];     // the last path made by tmp_path
} TmpDir;

static void tmp_make(TmpDir *t)
{
    strcpy(t->dir, "/tmp/ddpm_test_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

static const char *tmp_path(TmpDir *t, const char *name)
{
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    return t->path;
}

static const char *tmp_subdir(TmpDir *t, const char *name)
{
    const char *p = tmp_path(t, name);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void tmp_remove(TmpDir *t)
{
    nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static void assert_msg_has(const Error *err, const char *name, const char *phrase)
{
    ck_assert_msg(strstr(err->msg, phrase) != NULL, "message \"%s\" lacks \"%s\"", err->msg,
                  phrase);
    ck_assert_msg(strstr(err->msg, name) != NULL, "message \"%s\" does not name %s", err->msg,
                  name);
}

/* ---- CIFAR-10 batches ------------------------------------------------------- */

// The pattern every synthetic CIFAR file holds: batch `file`, record r, byte k.
static unsigned char cifar_pixel(int file, int r, int k)
{
    return (unsigned char)(k * 7 + r * 13 + (r >> 8) * 5 + file * 101);
}

static int cifar_label(int file, int r)
{
    return (r * 3 + file) % 10;
}

// records records of the pattern; label bad_label at record bad_at if >= 0.
static void write_cifar(const char *path, int file, int records, int bad_at, int bad_label)
{
    unsigned char *b = malloc((size_t)records * REC);
    ck_assert_ptr_nonnull(b);
    for (int r = 0; r < records; r++) {
        unsigned char *rec = b + (size_t)r * REC;
        rec[0] = (unsigned char)(r == bad_at ? bad_label : cifar_label(file, r));
        for (int k = 0; k < 3072; k++) rec[1 + k] = cifar_pixel(file, r, k);
    }
    write_bytes(path, b, (size_t)records * REC);
    free(b);
}

static void check_cifar_images(const Dataset *d, int first_file)
{
    for (int i = 0; i < d->n; i++) {
        int file = first_file + i / NREC, r = i % NREC;
        EXPECT(d->labels[i] == cifar_label(file, r), "label of image %d: %d", i, d->labels[i]);
        const unsigned char *p = d->pixels + (size_t)i * 3072;
        for (int k = 0; k < 3072; k++)
            EXPECT(p[k] == cifar_pixel(file, r, k), "image %d byte %d: %d, expected %d", i, k,
                   p[k], cifar_pixel(file, r, k));
    }
}

START_TEST(cifar_loads_both_splits)
{
    TmpDir td;
    tmp_make(&td);
    char name[32];
    for (int f = 0; f < 5; f++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", f + 1);
        write_cifar(tmp_path(&td, name), f, NREC, -1, 0);
    }
    write_cifar(tmp_path(&td, "test_batch.bin"), 5, NREC, -1, 0);
    Dataset d;
    Error err;
    ck_assert_msg(data_load(&d, td.dir, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 50000);
    ck_assert_int_eq(d.c, 3);
    ck_assert_int_eq(d.h, 32);
    ck_assert_int_eq(d.w, 32);
    ck_assert_str_eq(d.name, "CIFAR-10");
    ck_assert_str_eq(d.path, td.dir);
    ck_assert_ptr_nonnull(d.labels);
    check_cifar_images(&d, 0);   // batches 1..5 in order
    data_free(&d);
    ck_assert_ptr_null(d.pixels);

    ck_assert_msg(data_load(&d, td.dir, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, NREC);
    check_cifar_images(&d, 5);
    data_free(&d);

    // A JPEG-decoded copy says so in its README.
    write_text(tmp_path(&td, "README.md"), "# CIFAR-10\nno mention of the codec\n");
    ck_assert_msg(data_load(&d, td.dir, 0, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(d.name, "CIFAR-10");
    data_free(&d);
    write_text(tmp_path(&td, "README.md"), "# CIFAR-10, decoded from a public JPEG copy\n");
    ck_assert_msg(data_load(&d, td.dir, 0, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(d.name, "CIFAR-10 (JPEG q75 copy)");
    data_free(&d);
    tmp_remove(&td);
}
END_TEST

/* ---- MNIST-format IDX ------------------------------------------------------- */

// An IDX file: big-endian u32 header words, then data; gzipped if gz.
static void write_idx(const char *path, int gz, const uint32_t *head, int nhead,
                      const unsigned char *data, size_t n)
{
    size_t len = 4 * (size_t)nhead + n;
    unsigned char *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < nhead; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)(head[i] >> (24 - 8 * k));
    memcpy(b + 4 * nhead, data, n);
    if (!gz) {
        write_bytes(path, b, len);
    } else {
        gzFile g = gzopen(path, "wb");
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(gzwrite(g, b, (unsigned)len), (int)len);
        ck_assert_int_eq(gzclose(g), Z_OK);
    }
    free(b);
}

static unsigned char idx_pixel(int i, int y, int x)
{
    return (unsigned char)(1 + (i * 31 + y * 28 + x) % 255);   // never 0, the padding
}

// dir/PREFIX-images-idx3-ubyte and -labels-idx1-ubyte[.gz]: n images of side
// x side (28 normally), n_labels labels (label i = (i * 7) % 10).
static void write_idx_pair(const char *dir, const char *prefix, int gz, int n, int side,
                           int n_labels)
{
    char path[512];
    unsigned char *img = malloc((size_t)n * side * side + 1), lab[64];
    ck_assert_ptr_nonnull(img);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                img[((size_t)i * side + y) * side + x] = idx_pixel(i, y, x);
    for (int i = 0; i < n_labels && i < 64; i++) lab[i] = (unsigned char)(i * 7 % 10);
    uint32_t hi[] = {0x803, (uint32_t)n, (uint32_t)side, (uint32_t)side};
    uint32_t hl[] = {0x801, (uint32_t)n_labels};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_idx(path, gz, hi, 4, img, (size_t)n * side * side);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_idx(path, gz, hl, 2, lab, (size_t)n_labels);
    free(img);
}

static void check_idx_images(const Dataset *d)
{
    ck_assert_int_eq(d->c, 1);
    ck_assert_int_eq(d->h, 32);
    ck_assert_int_eq(d->w, 32);
    for (int i = 0; i < d->n; i++) {
        EXPECT(d->labels[i] == i * 7 % 10, "label of image %d: %d", i, d->labels[i]);
        const unsigned char *p = d->pixels + (size_t)i * 1024;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int inside = y >= 2 && y < 30 && x >= 2 && x < 30;
                int want = inside ? idx_pixel(i, y - 2, x - 2) : 0;   // 2-pixel border of 0
                EXPECT(p[y * 32 + x] == want, "image %d (%d,%d): %d, expected %d", i, y, x,
                       p[y * 32 + x], want);
            }
    }
}

START_TEST(idx_loads_gzip_and_plain)
{
    TmpDir td;
    tmp_make(&td);
    const char *fashion = tmp_subdir(&td, "My-FASHION-set");
    write_idx_pair(fashion, "train", 1, 7, 28, 7);
    Dataset d;
    Error err;
    ck_assert_msg(data_load(&d, fashion, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 7);
    ck_assert_str_eq(d.name, "Fashion-MNIST");
    check_idx_images(&d);
    data_free(&d);

    const char *digits = tmp_subdir(&td, "digits");
    write_idx_pair(digits, "t10k", 0, 3, 28, 3);
    write_idx_pair(digits, "train", 1, 5, 28, 5);
    ck_assert_msg(data_load(&d, digits, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 3);
    ck_assert_str_eq(d.name, "MNIST");
    check_idx_images(&d);
    data_free(&d);
    ck_assert_msg(data_load(&d, digits, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 5);
    check_idx_images(&d);
    data_free(&d);
    tmp_remove(&td);
}
END_TEST

/* ---- PNG folders ------------------------------------------------------------ */

// A w x h PNG of the given colour type, 8 bits (16 if depth16), from samples
// interleaved as the PNG stores them; palette images use pal (256 entries).
static void write_png(const char *path, int w, int h, int type, int depth16,
                      const unsigned char *samples, const png_color *pal)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng failed to write %s", path);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth16 ? 16 : 8, type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, pal, 256);
    png_write_info(png, info);
    int ch = type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGBA ? 4
           : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t row = (size_t)w * ch * (depth16 ? 2 : 1);
    for (int y = 0; y < h; y++) png_write_row(png, (png_bytep)samples + y * row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    ck_assert_int_eq(fclose(fp), 0);
}

static unsigned char png_val(int img, int ch, int y, int x)
{
    return (unsigned char)(img * 50 + ch * 90 + y * 8 + x * 3);
}

// Image img as interleaved samples: nch channels, of which the first
// `color` carry png_val and the rest (alpha) carry noise that must vanish.
static void png_samples(unsigned char *s, int img, int side, int nch, int color)
{
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            for (int k = 0; k < nch; k++)
                s[(y * side + x) * nch + k] =
                    k < color ? png_val(img, k, y, x) : (unsigned char)(x * 37 + y);
}

// Image i of d, channel ch, is png_val(want_img, ...) of a side x side image.
static void check_png_image(const Dataset *d, int i, int want_img, int side)
{
    int off = (32 - side) / 2;
    for (int ch = 0; ch < d->c; ch++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int in = y >= off && y < off + side && x >= off && x < off + side;
                int want = in ? png_val(want_img, ch, y - off, x - off) : 0;
                int got = d->pixels[(((size_t)i * d->c + ch) * 32 + y) * 32 + x];
                EXPECT(got == want, "image %d ch %d (%d,%d): %d, expected %d", i, ch, y, x,
                       got, want);
            }
}

START_TEST(png_folder_grey_and_colour)
{
    TmpDir td;
    tmp_make(&td);
    static unsigned char s[32 * 32 * 4 * 2];
    char path[512];
    // Grey: b.png 32x32 grey, a.png 28x28 grey+alpha, c.png 32x32 grey 16-bit.
    const char *grey = tmp_subdir(&td, "grey");
    snprintf(path, sizeof path, "%s/b.png", grey);
    png_samples(s, 1, 32, 1, 1);
    write_png(path, 32, 32, PNG_COLOR_TYPE_GRAY, 0, s, NULL);
    snprintf(path, sizeof path, "%s/a.png", grey);
    png_samples(s, 0, 28, 2, 1);
    write_png(path, 28, 28, PNG_COLOR_TYPE_GRAY_ALPHA, 0, s, NULL);
    unsigned char s16[32 * 32 * 2];
    png_samples(s, 2, 32, 1, 1);
    for (int k = 0; k < 32 * 32; k++) s16[2 * k] = s16[2 * k + 1] = s[k];   // v * 257
    snprintf(path, sizeof path, "%s/c.png", grey);
    write_png(path, 32, 32, PNG_COLOR_TYPE_GRAY, 1, s16, NULL);
    snprintf(path, sizeof path, "%s/notes.txt", grey);
    write_text(path, "not an image\n");
    Dataset d;
    Error err;
    ck_assert_msg(data_load(&d, grey, 1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.c, 1);
    ck_assert_str_eq(d.name, "PNG folder");
    ck_assert_ptr_null(d.labels);
    for (int i = 0; i < 3; i++) check_png_image(&d, i, i, i == 0 ? 28 : 32);   // a, b, c
    data_free(&d);

    // Colour: 01 RGB, 02 RGBA (alpha dropped), 03 palette 28x28, given as 0 for train.
    const char *rgb = tmp_subdir(&td, "rgb");
    snprintf(path, sizeof path, "%s/02.png", rgb);
    png_samples(s, 1, 32, 4, 3);
    write_png(path, 32, 32, PNG_COLOR_TYPE_RGBA, 0, s, NULL);
    snprintf(path, sizeof path, "%s/01.png", rgb);
    png_samples(s, 0, 32, 3, 3);
    write_png(path, 32, 32, PNG_COLOR_TYPE_RGB, 0, s, NULL);
    // palette entry v = the colour png_val(2, ., y, x) for pixels where it fits
    png_color pal[256];
    for (int v = 0; v < 256; v++)
        pal[v] = (png_color){(png_byte)v, (png_byte)(v + 90), (png_byte)(v + 180)};
    png_samples(s, 2, 28, 1, 1);   // index = png_val(2, 0, y, x): channel ch = index + 90 ch
    snprintf(path, sizeof path, "%s/03.png", rgb);
    write_png(path, 28, 28, PNG_COLOR_TYPE_PALETTE, 0, s, pal);
    ck_assert_msg(data_load(&d, rgb, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 3);
    ck_assert_int_eq(d.c, 3);
    check_png_image(&d, 0, 0, 32);
    check_png_image(&d, 1, 1, 32);
    check_png_image(&d, 2, 2, 28);
    data_free(&d);
    tmp_remove(&td);
}
END_TEST

/* ---- data_batch: scaling and flips ------------------------------------------ */

static void small_dataset(Dataset *d, int n, int c)
{
    memset(d, 0, sizeof *d);
    d->n = n, d->c = c, d->h = d->w = 32;
    d->pixels = malloc((size_t)n * c * 1024);
    for (size_t k = 0; k < (size_t)n * c * 1024; k++)
        d->pixels[k] = (unsigned char)(k * 7 + k / 1024);
}

START_TEST(batch_scales_to_unit_interval)
{
    Dataset d;
    small_dataset(&d, 3, 3);
    d.pixels[0] = 0;
    d.pixels[1] = 255;
    d.pixels[2] = 128;
    int idx[] = {0, 2, 1, 0};
    real x[4 * 3 * 1024];
    data_batch(&d, x, idx, 4, NULL);
    ck_assert(x[0] == (real)-1);
    ck_assert(x[1] == (real)1);
    ck_assert(x[2] == (real)(128 / 127.5 - 1.0));
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 3 * 1024; k++) {
            unsigned char p = d.pixels[(size_t)idx[b] * 3072 + k];
            EXPECT(x[b * 3072 + k] == (real)(p / 127.5 - 1.0), "image %d value %d", b, k);
            EXPECT(x[b * 3072 + k] >= -1 && x[b * 3072 + k] <= 1, "image %d value %d", b, k);
        }
    free(d.pixels);
}
END_TEST

START_TEST(batch_flips_reproducibly)
{
    enum { B = 24, IMG = 3 * 1024 };
    Dataset d;
    small_dataset(&d, 5, 3);
    int idx[B];
    for (int b = 0; b < B; b++) idx[b] = (b * 3) % 5;
    static real plain[B * IMG], x[B * IMG], again[B * IMG];
    data_batch(&d, plain, idx, B, NULL);
    Rng r1, r2, r3;
    rng_seed(&r1, 42, 7);
    rng_seed(&r2, 42, 7);
    rng_seed(&r3, 42, 7);
    data_batch(&d, x, idx, B, &r1);
    data_batch(&d, again, idx, B, &r2);
    ck_assert(memcmp(x, again, sizeof x) == 0);   // same seed, same flips
    int flips = 0;
    for (int b = 0; b < B; b++) {
        int flip = rng_below(&r3, 2) == 1;   // one draw per image, in order
        flips += flip;
        for (int row = 0; row < 3 * 32; row++)
            for (int j = 0; j < 32; j++) {
                real want = plain[b * IMG + row * 32 + (flip ? 31 - j : j)];
                EXPECT(x[b * IMG + row * 32 + j] == want, "image %d row %d col %d", b, row, j);
            }
    }
    ck_assert_int_gt(flips, 0);
    ck_assert_int_lt(flips, B);
    ck_assert(r1.state == r3.state);   // exactly B draws
    free(d.pixels);
}
END_TEST

/* ---- image_write_grid ------------------------------------------------------- */

// Read a PNG back as 8-bit samples (grey or RGB); *w, *h, *c.
static unsigned char *read_png(const char *path, int *w, int *h, int *c)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&img, path), "%s", img.message);
    *c = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    img.format = *c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    unsigned char *b = malloc(PNG_IMAGE_SIZE(img));
    ck_assert(png_image_finish_read(&img, NULL, b, 0, NULL));
    *w = (int)img.width;
    *h = (int)img.height;
    return b;
}

START_TEST(grid_layout_and_rounding)
{
    TmpDir td;
    tmp_make(&td);
    enum { N = 5, C = 3, H = 4, W = 3 };
    real x[N * C * H * W];
    for (int k = 0; k < N * C * H * W; k++) x[k] = (real)((k % 17) / 8.0 - 1.0);
    x[0] = (real)1.7;     // clipped to 255
    x[1] = (real)-3;      // clipped to 0
    x[2] = (real)0;       // 127.5 rounds to 128
    x[3] = (real)0.5;     // 191.25 -> 191
    x[4] = (real)-0.5;    // 63.75 -> 64
    x[5] = (real)NAN;     // 0
    Error err;
    const char *path = tmp_path(&td, "grid.png");
    ck_assert_msg(image_write_grid(path, x, N, C, H, W, 2, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(count_files(td.dir), 1);   // no temp file left behind
    int gw, gh, gc;
    unsigned char *g = read_png(path, &gw, &gh, &gc);
    ck_assert_int_eq(gw, 2 * (W + 2) + 2);
    ck_assert_int_eq(gh, 3 * (H + 2) + 2);
    ck_assert_int_eq(gc, 3);
    for (int y = 0; y < gh; y++)
        for (int j = 0; j < gw; j++) {
            int r = (y - 2) / (H + 2), q = (j - 2) / (W + 2);
            int yy = (y - 2) % (H + 2), xx = (j - 2) % (W + 2), i = r * 2 + q;
            int inside = y >= 2 && j >= 2 && yy < H && xx < W && i < N;
            for (int ch = 0; ch < 3; ch++) {
                int want = 128;
                if (inside) {
                    double v = x[((i * C + ch) * H + yy) * W + xx];
                    v = isnan(v) ? -1 : v < -1 ? -1 : v > 1 ? 1 : v;
                    want = (int)floor((v + 1) * 127.5 + 0.5);
                }
                EXPECT(g[(y * gw + j) * 3 + ch] == want, "(%d,%d,%d): %d, expected %d", y, j,
                       ch, g[(y * gw + j) * 3 + ch], want);
            }
        }
    ck_assert_int_eq(g[(2 * gw + 2) * 3 + 0], 255);
    ck_assert_int_eq(g[(2 * gw + 3) * 3 + 0], 0);
    ck_assert_int_eq(g[(2 * gw + 4) * 3 + 0], 128);
    ck_assert_int_eq(g[(3 * gw + 2) * 3 + 0], 191);
    ck_assert_int_eq(g[(3 * gw + 3) * 3 + 0], 64);
    ck_assert_int_eq(g[(3 * gw + 4) * 3 + 0], 0);
    free(g);
    tmp_remove(&td);
}
END_TEST

// Bytes -> data_batch -> grid -> PNG gives the bytes back, grey and RGB.
START_TEST(grid_round_trips_bytes)
{
    TmpDir td;
    tmp_make(&td);
    for (int c = 1; c <= 3; c += 2) {
        Dataset d;
        small_dataset(&d, 2, c);
        d.pixels[0] = 0, d.pixels[1] = 255, d.pixels[2] = 1, d.pixels[3] = 254;
        static real x[2 * 3 * 1024];
        data_batch(&d, x, (int[]){0, 1}, 2, NULL);
        Error err;
        const char *path = tmp_path(&td, c == 1 ? "grey.png" : "rgb.png");
        ck_assert_msg(image_write_grid(path, x, 2, c, 32, 32, 8, &err) == 0, "%s", err.msg);
        int gw, gh, gc;
        unsigned char *g = read_png(path, &gw, &gh, &gc);
        ck_assert_int_eq(gw, 2 * 34 + 2);   // cols clamped to n
        ck_assert_int_eq(gh, 36);
        ck_assert_int_eq(gc, c);
        for (int i = 0; i < 2; i++)
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < 32; y++)
                    for (int j = 0; j < 32; j++)
                        EXPECT(g[((2 + y) * gw + 2 + i * 34 + j) * c + ch] ==
                                   d.pixels[((i * c + ch) * 32 + y) * 32 + j],
                               "c %d image %d (%d,%d,%d)", c, i, ch, y, j);
        free(g);
        free(d.pixels);
    }
    tmp_remove(&td);
}
END_TEST

START_TEST(grid_rejects_bad_requests)
{
    real x[12] = {0};
    Error err;
    ck_assert_int_eq(image_write_grid("/nonexistent-dir/grid.png", x, 1, 3, 2, 2, 1, &err), -1);
    assert_msg_has(&err, "/nonexistent-dir/grid.png", "cannot create");
    ck_assert_int_eq(image_write_grid("g.png", x, 1, 2, 2, 2, 1, &err), -1);
    assert_msg_has(&err, "g.png", "c = 1 or 3");
    ck_assert_int_eq(image_write_grid("g.png", x, 0, 3, 2, 2, 1, &err), -1);
    ck_assert_int_eq(image_write_grid("g.png", x, 1, 3, 2, 2, 0, &err), -1);
    ck_assert_int_eq(image_write_grid("g.png", x, 1, 1, 40000, 1, 1, &err), -1);
    assert_msg_has(&err, "g.png", "larger than");
}
END_TEST

/* ---- malformed inputs -------------------------------------------------------- */

typedef struct BadCase {
    const char *what;
    void (*make)(const char *dir);   // writes the files into dir
    const char *load;                // folder to load: "" = dir, else dir/load
    int train;
    const char *file;                // the name the message must contain
    const char *phrase;              // and the words it must contain
} BadCase;

static void at(char *out, const char *dir, const char *name)
{
    snprintf(out, 512, "%s/%s", dir, name);
}

static void mk_cifar_truncated(const char *dir)
{
    char p[512];
    at(p, dir, "test_batch.bin");
    write_cifar(p, 0, 10, -1, 0);
    ck_assert_int_eq(truncate(p, 10 * REC - 100), 0);
}
static void mk_cifar_count(const char *dir)
{
    char p[512];
    at(p, dir, "test_batch.bin");
    write_cifar(p, 0, 9999, -1, 0);
}
static void mk_cifar_label(const char *dir)
{
    char p[512];
    at(p, dir, "test_batch.bin");
    write_cifar(p, 0, NREC, 1234, 10);
}
static void mk_cifar_missing(const char *dir)
{
    char p[512];
    at(p, dir, "data_batch_1.bin");
    write_cifar(p, 0, 1, -1, 0);
    at(p, dir, "data_batch_4.bin");
    write_cifar(p, 0, 1, -1, 0);
}
static void mk_idx_magic(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 0, 3, 28, 3);
    at(p, dir, "t10k-images-idx3-ubyte");
    unsigned char zeros[3 * 784] = {0};
    write_idx(p, 0, (uint32_t[]){0x804, 3, 28, 28}, 4, zeros, sizeof zeros);
}
static void mk_idx_count(const char *dir) { write_idx_pair(dir, "t10k", 1, 3, 28, 4); }
static void mk_idx_dims(const char *dir) { write_idx_pair(dir, "t10k", 0, 3, 32, 3); }
static void mk_idx_short(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 0, 3, 28, 3);
    at(p, dir, "t10k-images-idx3-ubyte");
    ck_assert_int_eq(truncate(p, 16 + 2 * 784 + 5), 0);
}
static void mk_idx_label(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 1, 3, 28, 3);
    at(p, dir, "t10k-labels-idx1-ubyte.gz");
    write_idx(p, 1, (uint32_t[]){0x801, 3}, 2, (unsigned char[]){1, 10, 2}, 3);
}
static void mk_gz_corrupt(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 1, 40, 28, 40);
    at(p, dir, "t10k-images-idx3-ubyte.gz");
    FILE *fp = fopen(p, "r+b");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    for (long k = 20; k < n - 8; k += 7) {   // scribble over the deflate stream
        fseek(fp, k, SEEK_SET);
        fputc(0xA5, fp);
    }
    fclose(fp);
}
static void mk_gz_truncated(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 1, 40, 28, 40);
    at(p, dir, "t10k-images-idx3-ubyte.gz");
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(truncate(p, st.st_size / 2), 0);
}
static void mk_idx_no_labels(const char *dir)
{
    char p[512];
    write_idx_pair(dir, "t10k", 0, 3, 28, 3);
    at(p, dir, "t10k-labels-idx1-ubyte");
    ck_assert_int_eq(remove(p), 0);
}
static void mk_png_size(const char *dir)
{
    char p[512];
    static unsigned char s[32 * 32];
    at(p, dir, "a.png");
    write_png(p, 32, 32, PNG_COLOR_TYPE_GRAY, 0, s, NULL);
    at(p, dir, "b.png");
    write_png(p, 30, 30, PNG_COLOR_TYPE_GRAY, 0, s, NULL);
}
static void mk_png_mixed(const char *dir)
{
    char p[512];
    static unsigned char s[32 * 32 * 3];
    at(p, dir, "a.png");
    write_png(p, 32, 32, PNG_COLOR_TYPE_GRAY, 0, s, NULL);
    at(p, dir, "b.png");
    write_png(p, 28, 28, PNG_COLOR_TYPE_RGB, 0, s, NULL);
    at(p, dir, "c.png");
    write_png(p, 32, 32, PNG_COLOR_TYPE_GRAY, 0, s, NULL);
}
static void mk_png_garbage(const char *dir)
{
    char p[512];
    at(p, dir, "x.png");
    write_text(p, "GIF89a, honestly");
}
static void mk_nothing(const char *dir) { (void)dir; }
static void mk_unrelated(const char *dir)
{
    char p[512];
    at(p, dir, "notes.txt");
    write_text(p, "nothing to train on\n");
}

static void mk_parent_of_cifar(const char *dir)
{
    char p[512];
    at(p, dir, "cifar-10-batches-bin");
    ck_assert_int_eq(mkdir(p, 0700), 0);
}

static const BadCase bad_cases[] = {
    {"truncated CIFAR batch", mk_cifar_truncated, "", 0, "test_batch.bin",
     "30630 bytes is not a whole number of 3073-byte records"},
    {"wrong record count", mk_cifar_count, "", 0, "test_batch.bin",
     "holds 9999 records (30726927 bytes); a CIFAR-10 batch holds exactly 10000"},
    {"CIFAR label 10", mk_cifar_label, "", 0, "test_batch.bin",
     "record 1234 has label 10; CIFAR-10 labels are 0..9"},
    {"missing CIFAR batches", mk_cifar_missing, "", 1, "",
     "training split is incomplete: missing data_batch_2.bin, data_batch_3.bin, data_batch_5.bin"},
    {"missing test batch", mk_cifar_missing, "", 0, "", "test split is incomplete: missing "
     "test_batch.bin"},
    {"bad IDX magic", mk_idx_magic, "", 0, "t10k-images-idx3-ubyte",
     "magic number 0x00000804, expected 0x00000803"},
    {"IDX count mismatch", mk_idx_count, "", 0, "t10k-labels-idx1-ubyte.gz",
     "holds 3 images but"},
    {"IDX wrong dims", mk_idx_dims, "", 0, "t10k-images-idx3-ubyte",
     "images are 32x32; MNIST-format images must be 28x28"},
    {"IDX data shorter than its header says", mk_idx_short, "", 0, "t10k-images-idx3-ubyte",
     "header says 3 images (2352 bytes of data) but the file holds 1573 bytes of data"},
    {"IDX label 10", mk_idx_label, "", 0, "t10k-labels-idx1-ubyte.gz",
     "label 10 of image 1; labels are 0..9"},
    {"corrupt gzip", mk_gz_corrupt, "", 0, "t10k-images-idx3-ubyte.gz", "cannot decompress"},
    {"truncated gzip", mk_gz_truncated, "", 0, "t10k-images-idx3-ubyte.gz",
     "cannot decompress (corrupt or truncated gzip?): unexpected end of file"},
    {"IDX labels missing", mk_idx_no_labels, "", 0, "",
     "no t10k-labels-idx1-ubyte[.gz]"},
    {"PNG of the wrong size", mk_png_size, "", 1, "b.png",
     "image is 30x30; images must be 32x32 (or 28x28"},
    {"mixed grey and RGB PNGs", mk_png_mixed, "", 1, "b.png",
     "is colour (RGB) but the first image, a.png, is grey"},
    {"not a PNG", mk_png_garbage, "", 1, "x.png", "not a readable PNG: Not a PNG file"},
    {"missing folder", mk_nothing, "no-such-folder", 1, "no-such-folder",
     "cannot open folder: No such file or directory"},
    {"empty folder", mk_nothing, "", 1, "", "no data set found"},
    {"folder of other files", mk_unrelated, "", 1, "", "no data set found"},
    {"the folder above the CIFAR-10 batches", mk_parent_of_cifar, "", 1, "",
     "no *.png files (the CIFAR-10 files are in its subfolder cifar-10-batches-bin)"},
};
#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(loaders_reject_malformed)
{
    const BadCase *bc = &bad_cases[_i];
    TmpDir td;
    tmp_make(&td);
    bc->make(td.dir);
    char dir[512];
    if (bc->load[0]) at(dir, td.dir, bc->load);
    else snprintf(dir, sizeof dir, "%s", td.dir);
    Dataset d;
    Error err = {""};
    int rc = data_load(&d, dir, bc->train, &err);
    ck_assert_msg(rc == -1, "%s: loaded (n = %d) instead of failing", bc->what, d.n);
    assert_msg_has(&err, bc->file[0] ? bc->file : dir, bc->phrase);
    assert_msg_has(&err, td.dir, "");   // the message names where it looked
    ck_assert_ptr_null(d.pixels);       // nothing left allocated
    ck_assert_int_eq(d.n, 0);
    tmp_remove(&td);
}
END_TEST

/* ---- default path; real data sets when present ------------------------------ */

START_TEST(default_path_order)
{
    setenv("DDPM_DATA", "/some/where/cifar", 1);
    ck_assert_str_eq(data_default_path(), "/some/where/cifar");
    setenv("DDPM_DATA", "", 1);
    const char *p = data_default_path();
    int cifar = access("build/data/cifar-10-batches-bin/data_batch_1.bin", F_OK) == 0;
    ck_assert_str_eq(p, cifar ? "build/data/cifar-10-batches-bin" : FASHION_DIR);
    unsetenv("DDPM_DATA");
    ck_assert_str_eq(data_default_path(), p);

    // A default that is not there says how to get one.
    setenv("DDPM_DATA", "/nonexistent/data", 1);
    Dataset d;
    Error err;
    ck_assert_int_eq(data_load(&d, NULL, 1, &err), -1);
    assert_msg_has(&err, "/nonexistent/data", "the default data set: make deps installs");
    ck_assert_int_eq(data_load(&d, "", 1, &err), -1);
    assert_msg_has(&err, "/nonexistent/data", "DDPM_DATA names another folder");
    unsetenv("DDPM_DATA");
}
END_TEST

START_TEST(debian_fashion_mnist)
{
    if (access(FASHION_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "skipped debian_fashion_mnist: %s is not installed (make deps "
                "installs dataset-fashion-mnist)\n", FASHION_DIR);
        return;
    }
    Dataset d;
    Error err;
    ck_assert_msg(data_load(&d, FASHION_DIR, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 10000);
    ck_assert_int_eq(d.c, 1);
    ck_assert_int_eq(d.h, 32);
    ck_assert_int_eq(d.w, 32);
    ck_assert_str_eq(d.name, "Fashion-MNIST");
    int per_class[10] = {0}, nonzero = 0;
    for (int i = 0; i < d.n; i++) {
        per_class[d.labels[i]]++;
        const unsigned char *p = d.pixels + (size_t)i * 1024;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int border = y < 2 || y >= 30 || x < 2 || x >= 30;
                if (border) EXPECT(p[y * 32 + x] == 0, "image %d (%d,%d)", i, y, x);
                else nonzero += p[y * 32 + x] != 0;
            }
    }
    for (int k = 0; k < 10; k++) ck_assert_int_eq(per_class[k], 1000);
    ck_assert_int_gt(nonzero, d.n * 100);   // real images, not padding
    data_free(&d);
}
END_TEST

START_TEST(cifar_jpeg_copy)
{
    const char *dir = getenv("DDPM_TEST_JPEG_CIFAR");
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/test_batch.bin", dir ? dir : "");
    if (!dir || access(probe, R_OK) != 0) {
        fprintf(stderr, "skipped cifar_jpeg_copy: set DDPM_TEST_JPEG_CIFAR to a JPEG-decoded "
                "CIFAR-10 folder to run it\n");
        return;
    }
    Dataset d;
    Error err;
    ck_assert_msg(data_load(&d, dir, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 10000);
    ck_assert_int_eq(d.c, 3);
    ck_assert_msg(strstr(d.name, "JPEG") != NULL, "name \"%s\"", d.name);
    int per_class[10] = {0};
    for (int i = 0; i < d.n; i++) per_class[d.labels[i]]++;
    for (int k = 0; k < 10; k++) ck_assert_int_eq(per_class[k], 1000);
    data_free(&d);
}
END_TEST

Suite *suite_data(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);   // full-size CIFAR batches: 184 MB written and read
    tcase_add_test(tc, cifar_loads_both_splits);
    tcase_add_test(tc, idx_loads_gzip_and_plain);
    tcase_add_test(tc, png_folder_grey_and_colour);
    tcase_add_test(tc, batch_scales_to_unit_interval);
    tcase_add_test(tc, batch_flips_reproducibly);
    tcase_add_test(tc, grid_layout_and_rounding);
    tcase_add_test(tc, grid_round_trips_bytes);
    tcase_add_test(tc, grid_rejects_bad_requests);
    tcase_add_loop_test(tc, loaders_reject_malformed, 0, N_BAD_CASES);
    tcase_add_test(tc, default_path_order);
    tcase_add_test(tc, debian_fashion_mnist);
    tcase_add_test(tc, cifar_jpeg_copy);
    suite_add_tcase(s, tc);
    return s;
}
