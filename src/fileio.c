/* fileio.c — whole-file reads and atomic writes; see fileio.h.
 * Appendix: book/appendix_io.md. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The data is copied with memcpy, which is only right on a little-endian host.
int file_host_check(const char *path, Error *err)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    if (first == 1) return 0;
    return error_set(err, "%s: this host is big-endian; the checkpoint readers "
                     "and writers assume little-endian", path);
}

// Read a whole regular file into a malloc'd buffer (*bytes, *size).
int file_read(const char *path, unsigned char **bytes, size_t *size, Error *err)
{
    return file_read_max(path, FILE_MAX_BYTES, bytes, size, err);
}

// The same, refusing a file larger than max bytes before allocating.
int file_read_max(const char *path, size_t max, unsigned char **bytes, size_t *size,
                     Error *err)
{
    *bytes = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return error_set(err, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    if (n > max) {
        fclose(fp);
        return error_set(err, "%s: %zu bytes is more than the %zu this reader accepts", path,
                         n, max);
    }
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return error_set(err, "%s: cannot allocate %zu bytes to read it", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return error_set(err, "%s: read only %zu of its %zu bytes", path, got, n);
    }
    *bytes = buf;
    *size = n;
    return 0;
}

// Make a finished rename durable: fsync the directory that holds the file.
// Best effort; some file systems do not support it, and the data is safe.
static void sync_parent_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 1;
    if (len >= sizeof dir) return;
    memcpy(dir, slash ? path : ".", len);
    dir[len] = '\0';
    if (len == 0) strcpy(dir, "/");
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

// Write PATH atomically: emit() writes PATH.tmp.PID, which is flushed,
// fsync'ed and renamed over PATH. On any failure the temp file is removed
// and an existing PATH is left as it was.
int file_write_atomic(const char *path, FileWriteFn emit, const void *ctx, Error *err)
{
    char tmp[4096];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof tmp)
        return error_set(err, "%s: path too long", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return error_set(err, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    const char *step = NULL;
    errno = 0;
    if (emit(fp, ctx) != 0) step = "write";
    else if (fflush(fp) != 0) step = "flush";
    else if (fsync(fileno(fp)) != 0) step = "fsync";
    int saved = errno;
    if (fclose(fp) != 0 && !step) step = "close", saved = errno;
    if (!step && rename(tmp, path) != 0) step = "rename", saved = errno;
    if (step) {
        remove(tmp);
        return error_set(err, "%s: %s failed (%s); the file was not changed", path, step,
                         saved ? strerror(saved) : "unknown error");
    }
    sync_parent_dir(path);
    return 0;
}

// Write n reals as little-endian float32, converting through a small buffer.
int file_write_f32(FILE *fp, const real *x, size_t n)
{
    float buf[1024];
    while (n > 0) {
        size_t k = n < 1024 ? n : 1024;
        for (size_t i = 0; i < k; i++) buf[i] = (float)x[i];
        if (fwrite(buf, sizeof(float), k, fp) != k) return -1;
        x += k;
        n -= k;
    }
    return 0;
}
