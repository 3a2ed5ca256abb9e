/* image.c — image output: a grid of images as one PNG; see image.h.
 *
 * Appendix: book/appendix_data.md ("Writing images"). Each value in
 * [-1, 1] becomes the nearest of the 256 levels (the inverse of data_batch's
 * x / 127.5 - 1, so a byte that went in comes back unchanged); the images
 * are laid out in columns with grey gutters and written atomically
 * (file_write_atomic: temp file, fsync, rename).
 */
#include "image.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

#define GRID_GUTTER 2                     // pixels between grid cells
#define GRID_GREY 128                     // the gutters' colour
#define GRID_MAX_SIDE 32768               // widest / tallest grid we write

// libpng's error handler: keep its message, return to the setjmp.
static void png_on_error(png_structp png, png_const_charp msg)
{
    snprintf(png_get_error_ptr(png), 256, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* ---- Writing a grid of images as one PNG --------------------------------- */

typedef struct Grid {
    unsigned char *pixels;   // [H, W, c] interleaved, as PNG stores rows
    int W, H, c;
} Grid;

// x in [-1, 1] -> 0..255, rounded to nearest; clipped outside, NaN -> 0.
static unsigned char image_byte(real x)
{
    double v = ((double)x + 1.0) * 127.5;
    if (!(v > 0.0)) return 0;
    if (v >= 255.0) return 255;
    return (unsigned char)(v + 0.5);
}

// Lay n images [n, c, h, w] out in cols columns with grey gutters.
static void grid_fill(Grid *g, const real *x, int n, int h, int w, int cols)
{
    memset(g->pixels, GRID_GREY, (size_t)g->W * g->H * g->c);
    for (int i = 0; i < n; i++) {
        int top = GRID_GUTTER + (i / cols) * (h + GRID_GUTTER);
        int left = GRID_GUTTER + (i % cols) * (w + GRID_GUTTER);
        for (int ch = 0; ch < g->c; ch++) {
            const real *plane = x + ((size_t)i * g->c + ch) * h * w;
            for (int y = 0; y < h; y++) {
                unsigned char *row = g->pixels + ((size_t)(top + y) * g->W + left) * g->c;
                for (int j = 0; j < w; j++)
                    row[(size_t)j * g->c + ch] = image_byte(plane[(size_t)y * w + j]);
            }
        }
    }
}

// FileWriteFn: the grid as an 8-bit grey or RGB PNG into fp.
static int grid_emit(FILE *fp, const void *ctx)
{
    const Grid *g = ctx;
    char msg[256];   // libpng's complaint (png_on_error)
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)g->W, (png_uint_32)g->H, 8,
                 g->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < g->H; y++)
        png_write_row(png, g->pixels + (size_t)y * g->W * g->c);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int image_write_grid(const char *path, const real *x, int n, int c, int h, int w,
                     int cols, Error *err)
{
    if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1)
        return error_set(err, "%s: cannot write %d images of %dx%dx%d in %d columns "
                         "(need n >= 1, c = 1 or 3, h, w, cols >= 1)", path, n, c, h, w, cols);
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    long long W = (long long)cols * (w + GRID_GUTTER) + GRID_GUTTER;
    long long H = (long long)rows * (h + GRID_GUTTER) + GRID_GUTTER;
    if (W > GRID_MAX_SIDE || H > GRID_MAX_SIDE)
        return error_set(err, "%s: a grid of %lldx%lld pixels is larger than %d on a side",
                         path, W, H, GRID_MAX_SIDE);
    Grid g = {malloc((size_t)(W * H * c)), (int)W, (int)H, c};
    if (!g.pixels) return error_set(err, "%s: cannot allocate the %lldx%lld grid", path, W, H);
    grid_fill(&g, x, n, h, w, cols);
    int rc = file_write_atomic(path, grid_emit, &g, err);
    free(g.pixels);
    return rc;
}
