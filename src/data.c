/* data.c — the images a model learns from.
 *
 * (About 650 lines: three input formats, each validated byte by byte.)
 *
 * The book's appendix on data (book/appendix_data.md) walks through it.
 * Three formats come in; one thing comes out, a Dataset of n images
 * [n, c, 32, 32] as bytes 0..255 (and labels when the format has them):
 *
 *   CIFAR-10   data_batch_1..5.bin (train) or test_batch.bin (test), each
 *              exactly 10,000 records of 3073 bytes: 1 label (0..9), then
 *              the red, green and blue planes of a 32x32 image, row-major.
 *   IDX        MNIST's format, also Fashion-MNIST's: {train,t10k}-images-
 *              idx3-ubyte and -labels-idx1-ubyte, plain or gzipped (zlib's
 *              gzread reads both). A big-endian header (magic 0x803 or
 *              0x801, then one count per dimension), then the bytes.
 *   PNG        every *.png of a folder, sorted by name; grey or colour.
 *
 * 28x28 images (MNIST, Fashion-MNIST, small PNGs) are padded with 2 pixels
 * of background (0) on each side, so every data set is 32x32 and the same
 * U-Net runs on all of them.
 *
 * data_batch turns chosen images into reals: x / 127.5 - 1 maps {0..255}
 * onto [-1, 1], the paper's "scaled linearly to [-1, 1]" (§3.3), which puts
 * the data on the same scale as the N(0, I) noise of the forward process.
 * Each image is flipped left-right with probability 1/2 (Appendix B's
 * random flips), one rng_below(2) per image, so a seeded run repeats.
 * image_write_grid (image.h) goes the other way, [-1, 1] -> a PNG of a grid.
 *
 * Nothing in a file is trusted: existence, sizes, record counts, magic
 * numbers, dimensions and labels are checked before they are used, and a
 * problem comes back as one sentence naming the file (Error), never a
 * crash. There is no global state: the Rng is passed in.
 */
#include "data.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fileio.h"

#define DATA_SIZE 32                      // every image comes out 32x32
#define DATA_PAD 2                        // (32 - 28) / 2 on each side
#define CIFAR_PIXELS 3072                 // 3 planes of 32x32
#define CIFAR_RECORD (1 + CIFAR_PIXELS)   // label byte + pixels
#ifndef CIFAR_RECORDS                     // (the CIFAR-10 fuzz harness shrinks it)
#define CIFAR_RECORDS 10000               // records in every batch file
#endif
#define IDX_SIDE 28                       // MNIST's images are 28x28
#define IDX_MAX_BYTES ((size_t)1 << 30)   // larger decompressed IDX files are refused
#define README_MAX_BYTES ((size_t)1 << 20)   // a data folder's README.md, read for its name

#define DATA_BUILD_CIFAR "build/data/cifar-10-batches-bin"
#define DATA_FASHION_MNIST "/usr/share/datasets/fashion-mnist"

/* ---- Small helpers ------------------------------------------------------- */

// out = dir/name; fails (naming dir) if it does not fit.
static int path_join(char *out, size_t cap, const char *dir, const char *name,
                     Error *err)
{
    size_t len = strlen(dir);
    const char *sep = (len > 0 && dir[len - 1] == '/') ? "" : "/";
    int k = snprintf(out, cap, "%s%s%s", dir, sep, name);
    if (k < 0 || (size_t)k >= cap) return error_set(err, "%s: path too long", dir);
    return 0;
}

static int is_file(const char *path, size_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if (size) *size = (size_t)st.st_size;
    return 1;
}

// Does hay[0..n) contain the string needle? (case-sensitive or not)
static int bytes_contain(const char *hay, size_t n, const char *needle, int nocase)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m && (nocase ? tolower((unsigned char)hay[i + j]) ==
                                      tolower((unsigned char)needle[j])
                                : hay[i + j] == needle[j]))
            j++;
        if (j == m) return 1;
    }
    return 0;
}

static int ends_with_nocase(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && bytes_contain(s + n - m, m, suffix, 1);
}

// n images of c x 32 x 32, zeroed (the padding's background), labels if asked.
static int dataset_alloc(Dataset *d, int n, int c, int with_labels,
                         const char *path, Error *err)
{
    size_t bytes = (size_t)n * (size_t)c * DATA_SIZE * DATA_SIZE;
    d->pixels = calloc(bytes ? bytes : 1, 1);
    d->labels = with_labels ? calloc((size_t)n ? (size_t)n : 1, 1) : NULL;
    if (!d->pixels || (with_labels && !d->labels))
        return error_set(err, "%s: cannot allocate %zu bytes for %d images", path, bytes, n);
    d->n = n;
    d->c = c;
    d->h = d->w = DATA_SIZE;
    return 0;
}

// One plane of side x side bytes into the middle of a zeroed 32x32 plane.
static void plane_place(unsigned char *dst, const unsigned char *src, int side)
{
    int off = (DATA_SIZE - side) / 2;
    for (int y = 0; y < side; y++)
        memcpy(dst + (size_t)(y + off) * DATA_SIZE + off, src + (size_t)y * side,
               (size_t)side);
}

/* ---- CIFAR-10 binary ----------------------------------------------------- */

static const char *const cifar_train_files[] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin"};
static const char *const cifar_test_files[] = {"test_batch.bin"};

// Before reading anything: every batch of the split is there (else list the
// missing ones), and each holds exactly 10,000 whole records.
static int cifar_check_files(const char *dir, const char *const *names, int count,
                             const char *split, Error *err)
{
    char path[4096], missing[256] = "";
    size_t size = 0;
    for (int i = 0; i < count; i++) {
        if (path_join(path, sizeof path, dir, names[i], err)) return -1;
        if (!is_file(path, NULL))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", names[i]);
    }
    if (missing[0])
        return error_set(err, "%s: the CIFAR-10 %s split is incomplete: missing %s",
                         dir, split, missing);
    for (int i = 0; i < count; i++) {
        if (path_join(path, sizeof path, dir, names[i], err)) return -1;
        if (!is_file(path, &size)) return error_set(err, "%s: vanished while loading", path);
        if (size % CIFAR_RECORD != 0)
            return error_set(err, "%s: %zu bytes is not a whole number of %d-byte records "
                             "(1 label + 3072 pixels); the file looks truncated",
                             path, size, CIFAR_RECORD);
        if (size / CIFAR_RECORD != CIFAR_RECORDS)
            return error_set(err, "%s: holds %zu records (%zu bytes); a CIFAR-10 batch "
                             "holds exactly %d", path, size / CIFAR_RECORD, size,
                             CIFAR_RECORDS);
    }
    return 0;
}

// Read one batch file into images [first, first + 10000) of d.
static int cifar_read_batch(Dataset *d, const char *path, int first, Error *err)
{
    unsigned char *bytes;
    size_t size;
    if (file_read(path, &bytes, &size, err)) return -1;
    if (size != (size_t)CIFAR_RECORDS * CIFAR_RECORD) {   // changed since the check
        free(bytes);
        return error_set(err, "%s: is %zu bytes, expected %d records of %d bytes",
                         path, size, CIFAR_RECORDS, CIFAR_RECORD);
    }
    for (int r = 0; r < CIFAR_RECORDS; r++) {
        const unsigned char *rec = bytes + (size_t)r * CIFAR_RECORD;
        if (rec[0] > 9) {
            error_set(err, "%s: record %d has label %d; CIFAR-10 labels are 0..9",
                      path, r, rec[0]);
            free(bytes);
            return -1;
        }
        d->labels[first + r] = rec[0];
        memcpy(d->pixels + (size_t)(first + r) * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
    }
    free(bytes);
    return 0;
}

// "CIFAR-10", or "CIFAR-10 (JPEG q75 copy)" when the folder's README.md
// says it holds a JPEG-decoded copy (bits/dim are not comparable).
static void cifar_name(Dataset *d, const char *dir)
{
    char path[4096];
    unsigned char *bytes;
    size_t size;
    Error ignored;
    strcpy(d->name, "CIFAR-10");
    if (path_join(path, sizeof path, dir, "README.md", &ignored) || !is_file(path, NULL) ||
        file_read_max(path, README_MAX_BYTES, &bytes, &size, &ignored))
        return;
    if (bytes_contain((const char *)bytes, size, "JPEG", 0))
        strcpy(d->name, "CIFAR-10 (JPEG q75 copy)");
    free(bytes);
}

// The training split (5 batches, 50,000 images) or the test split (10,000).
static int cifar_load(Dataset *d, const char *dir, int train, Error *err)
{
    const char *const *names = train ? cifar_train_files : cifar_test_files;
    int count = train ? 5 : 1;
    if (cifar_check_files(dir, names, count, train ? "training" : "test", err)) return -1;
    if (dataset_alloc(d, count * CIFAR_RECORDS, 3, 1, dir, err)) return -1;
    char path[4096];
    for (int i = 0; i < count; i++) {
        if (path_join(path, sizeof path, dir, names[i], err) ||
            cifar_read_batch(d, path, i * CIFAR_RECORDS, err))
            return -1;
    }
    cifar_name(d, dir);
    return 0;
}

/* ---- MNIST / Fashion-MNIST IDX ------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// What the IDX header at b [len] promises: the whole file's size in bytes
// (header + data), or 0 when the header is short, has the wrong magic
// number or promises more than IDX_MAX_BYTES (idx_check then says which).
static size_t idx_promised(const unsigned char *b, size_t len, int images)
{
    size_t head = images ? 16 : 8, per = images ? IDX_SIDE * IDX_SIDE : 1;
    if (len < head || be32(b) != (images ? 0x803u : 0x801u)) return 0;
    size_t total = head + (size_t)be32(b + 4) * per;   // at most 2^32 * 784: no overflow
    return total <= IDX_MAX_BYTES ? total : 0;
}

// An IDX file through zlib into a malloc'd buffer: gzip is decompressed,
// a plain file passes through. The header is read first and bounds the
// rest: at most one byte more than it promises is decompressed (so a small
// gzip bomb cannot fill memory). A corrupt or truncated stream is an error.
static int gz_read_all(const char *path, int images, unsigned char **out, size_t *len,
                       Error *err)
{
    *out = NULL;
    *len = 0;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) return error_set(err, "%s: cannot open: %s", path,
                              errno ? strerror(errno) : "out of memory");
    size_t head = images ? 16 : 8, limit = head, cap = head, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        gzclose(gz);
        return error_set(err, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    int code = Z_OK;
    while (code == Z_OK) {
        if (n == head && limit == head) {   // the header is in: how much may follow
            size_t promised = idx_promised(buf, n, images);
            limit = promised ? promised + 1 : head;
        }
        if (n == cap) {
            size_t want = cap < ((size_t)1 << 20) ? (size_t)1 << 20 : 2 * cap;
            want = want < limit ? want : limit;
            unsigned char *bigger = want > cap ? realloc(buf, want) : NULL;
            if (!bigger) break;
            buf = bigger;
            cap = want;
        }
        size_t room = (n < head ? head : cap) - n;
        int got = gzread(gz, buf + n, (unsigned)(room < (1u << 30) ? room : 1u << 30));
        if (got <= 0) {
            gzerror(gz, &code);           // Z_BUF_ERROR: the stream ended early
            if (got == 0 && code == Z_OK) break;
            if (code == Z_OK) code = Z_ERRNO;
        } else {
            n += (size_t)got;
        }
    }
    const char *why = code == Z_OK ? NULL : code == Z_ERRNO ? strerror(errno)
                                                              : gzerror(gz, &code);
    size_t plen = strlen(path);   // zlib's message starts "PATH: "
    if (why && strncmp(why, path, plen) == 0 && strncmp(why + plen, ": ", 2) == 0)
        why += plen + 2;
    char reason[128];
    snprintf(reason, sizeof reason, "%s", why ? why : "");
    gzclose(gz);
    if (why) {
        free(buf);
        return error_set(err, "%s: cannot decompress (corrupt or truncated gzip?): %s",
                         path, reason);
    }
    if (n == cap && cap < limit) {
        free(buf);
        return error_set(err, "%s: out of memory after %zu bytes", path, n);
    }
    *out = buf;
    *len = n;   // idx_check compares it with the header
    return 0;
}

// Check an IDX header of unsigned bytes: images (magic 0x803, n x 28 x 28)
// or labels (magic 0x801, n); the data after it must be exactly that long.
static int idx_check(const char *path, const unsigned char *b, size_t len, int images,
                     uint32_t *n, Error *err)
{
    uint32_t magic = images ? 0x803 : 0x801;
    size_t head = images ? 16 : 8, per = images ? IDX_SIDE * IDX_SIDE : 1;
    const char *what = images ? "images" : "labels";
    if (len < head)
        return error_set(err, "%s: %zu bytes is too short for an IDX %s header (%zu bytes)",
                         path, len, what, head);
    if (len > IDX_MAX_BYTES)
        return error_set(err, "%s: more than %zu bytes; not an MNIST-sized IDX file", path,
                         IDX_MAX_BYTES);
    if (be32(b) != magic)
        return error_set(err, "%s: magic number 0x%08x, expected 0x%08x (IDX %s of "
                         "unsigned bytes)", path, be32(b), magic, what);
    *n = be32(b + 4);
    if (images && (be32(b + 8) != IDX_SIDE || be32(b + 12) != IDX_SIDE))
        return error_set(err, "%s: images are %ux%u; MNIST-format images must be 28x28",
                         path, be32(b + 8), be32(b + 12));
    if ((size_t)*n * per > IDX_MAX_BYTES - head)
        return error_set(err, "%s: header says %u %s, more than the %zu bytes an IDX file "
                         "may hold here", path, *n, what, IDX_MAX_BYTES);
    if ((len - head) / per != *n || (len - head) % per != 0)
        return error_set(err, "%s: header says %u %s (%zu bytes of data) but the file "
                         "holds %s%zu bytes of data", path, *n, what, (size_t)*n * per,
                         len - head == (size_t)*n * per + 1 ? "more: " : "", len - head);
    return 0;
}

// dir/PREFIX-KIND, plain or .gz (the plain file wins when both are there).
static int idx_find(char *out, size_t cap, const char *dir, const char *prefix,
                    const char *kind, Error *err)
{
    char name[64];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(name, sizeof name, "%s-%s%s", prefix, kind, gz ? ".gz" : "");
        if (path_join(out, cap, dir, name, err)) return -1;
        if (is_file(out, NULL)) return 0;
    }
    return error_set(err, "%s: no %s-%s[.gz]; an MNIST-format folder holds "
                     "%s-images-idx3-ubyte and %s-labels-idx1-ubyte (or .gz)",
                     dir, prefix, kind, prefix, prefix);
}

// Copy validated IDX bytes into d: pad each 28x28 image, check labels 0..9.
static int idx_fill(Dataset *d, const unsigned char *img, const unsigned char *lab,
                    const char *lab_path, Error *err)
{
    for (int i = 0; i < d->n; i++) {
        if (lab[i] > 9)
            return error_set(err, "%s: label %d of image %d; labels are 0..9",
                             lab_path, lab[i], i);
        d->labels[i] = lab[i];
        plane_place(d->pixels + (size_t)i * DATA_SIZE * DATA_SIZE,
                    img + (size_t)i * IDX_SIDE * IDX_SIDE, IDX_SIDE);
    }
    return 0;
}

// One split of MNIST / Fashion-MNIST: images and labels, counts agreeing.
static int idx_load(Dataset *d, const char *dir, int train, Error *err)
{
    const char *prefix = train ? "train" : "t10k";
    char ipath[4096], lpath[4096];
    if (idx_find(ipath, sizeof ipath, dir, prefix, "images-idx3-ubyte", err) ||
        idx_find(lpath, sizeof lpath, dir, prefix, "labels-idx1-ubyte", err))
        return -1;
    unsigned char *img = NULL, *lab = NULL;
    size_t ilen, llen;
    uint32_t ni, nl;
    int rc = -1;
    if (gz_read_all(ipath, 1, &img, &ilen, err) || idx_check(ipath, img, ilen, 1, &ni, err) ||
        gz_read_all(lpath, 0, &lab, &llen, err) || idx_check(lpath, lab, llen, 0, &nl, err))
        goto done;
    if (ni != nl) {
        error_set(err, "%s holds %u images but %s holds %u labels", ipath, ni, lpath, nl);
        goto done;
    }
    if (ni == 0) {
        error_set(err, "%s: holds no images", ipath);
        goto done;
    }
    if (dataset_alloc(d, (int)ni, 1, 1, dir, err) ||
        idx_fill(d, img + 16, lab + 8, lpath, err))
        goto done;
    strcpy(d->name, bytes_contain(dir, strlen(dir), "fashion", 1) ? "Fashion-MNIST" : "MNIST");
    rc = 0;
done:
    free(img);
    free(lab);
    return rc;
}

/* ---- A folder of PNGs ---------------------------------------------------- */

typedef struct PngIn {       // what png_decode found out about one file
    char msg[256];           // libpng's complaint, when it had one
    png_uint_32 w, h;
    int c;                   // 1 grey, 3 RGB (after expanding, alpha dropped)
} PngIn;

static void png_on_error(png_structp png, png_const_charp msg)
{
    PngIn *in = png_get_error_ptr(png);
    snprintf(in->msg, sizeof in->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;   // e.g. "iCCP: known incorrect sRGB profile": harmless here
    (void)msg;
}

// Decode fp into hwc [h, w, c] as 8-bit grey or RGB: palettes and low bit
// depths expanded, 16 bits scaled to 8, alpha dropped. Returns 0, 1 when the
// size is not 32x32 or 28x28 (nothing decoded), -1 on a libpng error.
static int png_decode(FILE *fp, unsigned char *hwc, PngIn *in)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, in, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        snprintf(in->msg, sizeof in->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, fp);
    png_read_info(png, info);
    in->w = png_get_image_width(png, info);
    in->h = png_get_image_height(png, info);
    in->c = (png_get_color_type(png, info) & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    int status = 1;
    if (in->w == in->h && (in->w == DATA_SIZE || in->w == IDX_SIDE)) {
        png_set_expand(png);
        png_set_scale_16(png);
        png_set_strip_alpha(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        if (png_get_rowbytes(png, info) != (size_t)in->w * (size_t)in->c)
            png_error(png, "unexpected row size after conversion to 8-bit grey/RGB");
        png_bytep rows[DATA_SIZE];
        for (png_uint_32 y = 0; y < in->h; y++) rows[y] = hwc + (size_t)y * in->w * in->c;
        png_read_image(png, rows);
        png_read_end(png, NULL);
        status = 0;
    }
    png_destroy_read_struct(&png, &info, NULL);
    return status;
}

static int png_read_small(const char *path, unsigned char *hwc, PngIn *in, Error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    in->msg[0] = '\0';
    int status = png_decode(fp, hwc, in);
    fclose(fp);
    if (status < 0) return error_set(err, "%s: not a readable PNG: %s", path, in->msg);
    if (status > 0)
        return error_set(err, "%s: image is %ux%u; images must be 32x32 (or 28x28, "
                         "padded to 32x32)", path, in->w, in->h);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

// The *.png names of a folder (case-insensitive suffix), sorted by strcmp.
static int png_list(const char *dir, char ***out, int *count, Error *err)
{
    DIR *dp = opendir(dir);
    if (!dp) return error_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, ok = 1;
    for (struct dirent *e; ok && (e = readdir(dp));) {
        if (e->d_name[0] == '.' || !ends_with_nocase(e->d_name, ".png")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(names, sizeof *names * (size_t)cap);
            ok = bigger != NULL;
            if (ok) names = bigger;
        }
        if (ok && (names[n] = strdup(e->d_name)) != NULL) n++;
        else ok = 0;
    }
    closedir(dp);
    if (!ok) {
        names_free(names, n);
        return error_set(err, "%s: out of memory while listing its *.png files", dir);
    }
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    *out = names;
    *count = n;
    return 0;
}

static const char *png_kind(int c)
{
    return c == 1 ? "grey" : "colour (RGB)";
}

// Image i of d from hwc [side, side, c]: split the channels into planes, pad.
static void png_place(Dataset *d, int i, const unsigned char *hwc, int side)
{
    unsigned char plane[DATA_SIZE * DATA_SIZE];
    for (int ch = 0; ch < d->c; ch++) {
        for (int k = 0; k < side * side; k++) plane[k] = hwc[(size_t)k * d->c + ch];
        plane_place(d->pixels + ((size_t)i * d->c + ch) * DATA_SIZE * DATA_SIZE, plane, side);
    }
}

// Every *.png of dir in name order: all grey (c = 1) or all colour (c = 3).
static int png_load(Dataset *d, const char *dir, Error *err)
{
    char **names = NULL, path[4096];
    int n = 0, rc = 0;
    if (png_list(dir, &names, &n, err)) return -1;
    if (n == 0) rc = error_set(err, "%s: no *.png files", dir);
    unsigned char hwc[DATA_SIZE * DATA_SIZE * 3];
    PngIn in;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = path_join(path, sizeof path, dir, names[i], err);
        if (rc == 0) rc = png_read_small(path, hwc, &in, err);
        if (rc == 0 && i == 0) rc = dataset_alloc(d, n, in.c, 0, dir, err);
        if (rc == 0 && in.c != d->c)
            rc = error_set(err, "%s: is %s but the first image, %s, is %s; the images of "
                           "a folder must all be grey or all colour", path, png_kind(in.c),
                           names[0], png_kind(d->c));
        if (rc == 0) png_place(d, i, hwc, (int)in.w);
    }
    names_free(names, n);
    if (rc == 0) strcpy(d->name, "PNG folder");
    return rc;
}

/* ---- Loading: find out which format a folder holds ----------------------- */

typedef enum DataFormat { DATA_NONE, DATA_CIFAR, DATA_IDX, DATA_PNG } DataFormat;

// Which format dir holds, by the names in it: CIFAR-10 batches first, then
// IDX files, then PNGs.
static int data_detect(const char *dir, DataFormat *fmt, Error *err)
{
    *fmt = DATA_NONE;
    DIR *dp = opendir(dir);
    if (!dp) return error_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int cifar = 0, idx = 0, png = 0, sub = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        const char *s = e->d_name;
        cifar |= strcmp(s, "test_batch.bin") == 0 ||
                 (strncmp(s, "data_batch_", 11) == 0 && ends_with_nocase(s, ".bin"));
        idx |= strncmp(s, "train-images-idx3-ubyte", 23) == 0 ||
               strncmp(s, "t10k-images-idx3-ubyte", 22) == 0;
        png |= s[0] != '.' && ends_with_nocase(s, ".png");
        sub |= strcmp(s, "cifar-10-batches-bin") == 0;
    }
    closedir(dp);
    *fmt = cifar ? DATA_CIFAR : idx ? DATA_IDX : png ? DATA_PNG : DATA_NONE;
    if (*fmt != DATA_NONE) return 0;
    return error_set(err, "%s: no data set found: no CIFAR-10 batches (data_batch_1.bin ..., "
                     "test_batch.bin), no MNIST-format files (train-images-idx3-ubyte[.gz] "
                     "...) and no *.png files%s", dir,
                     sub ? " (the CIFAR-10 files are in its subfolder cifar-10-batches-bin)" : "");
}

const char *data_default_path(void)
{
    const char *env = getenv("DDPM_DATA");
    if (env && *env) return env;
    if (is_file(DATA_BUILD_CIFAR "/data_batch_1.bin", NULL)) return DATA_BUILD_CIFAR;
    return DATA_FASHION_MNIST;
}

int data_load(Dataset *d, const char *path, int train, Error *err)
{
    memset(d, 0, sizeof *d);
    int fallback = !path || !*path;
    if (fallback) path = data_default_path();
    if (strlen(path) >= sizeof d->path)
        return error_set(err, "%.60s...: data path too long (at most %zu characters)",
                         path, sizeof d->path - 1);
    DataFormat fmt;
    if (data_detect(path, &fmt, err)) {
        if (!fallback) return -1;
        char why[sizeof err->msg];
        memcpy(why, err->msg, sizeof why);
        return error_set(err, "%.300s (the default data set: make deps installs "
                         "Fashion-MNIST, make data fetches CIFAR-10, DDPM_DATA names "
                         "another folder)", why);
    }
    int rc = fmt == DATA_CIFAR ? cifar_load(d, path, train, err)
           : fmt == DATA_IDX   ? idx_load(d, path, train, err)
                               : png_load(d, path, err);
    if (rc != 0) {
        data_free(d);
        return -1;
    }
    strcpy(d->path, path);
    return 0;
}

void data_free(Dataset *d)
{
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* ---- Batches: bytes -> [-1, 1], random flips ----------------------------- */

// x [B, c, h, w] = images idx[0..B) as x / 127.5 - 1 (§3.3), each mirrored
// left-right when rng_below(rng, 2) is 1 (random flips, Appendix B).
void data_batch(const Dataset *d, real *x, const int *idx, int B, Rng *rng)
{
    const int w = d->w;
    const size_t rows = (size_t)d->c * d->h, image = rows * w;
    for (int b = 0; b < B; b++) {
        DDPM_CHECK(idx[b] >= 0 && idx[b] < d->n, "image index %d outside [0, %d)",
                   idx[b], d->n);
        const unsigned char *src = d->pixels + (size_t)idx[b] * image;
        real *dst = x + (size_t)b * image;
        int flip = rng ? rng_below(rng, 2) == 1 : 0;   // one draw per image
        for (size_t r = 0; r < rows; r++) {
            const unsigned char *s = src + r * w;
            real *o = dst + r * w;
            for (int j = 0; j < w; j++) o[j] = (real)(s[flip ? w - 1 - j : j] / 127.5 - 1.0);
        }
    }
}
