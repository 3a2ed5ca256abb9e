/* fuzz.h — what every libFuzzer harness under tests/fuzz/ shares.
 *
 * The loaders read files by path, so a harness writes the fuzzer's bytes
 * into a private temporary folder (one per process, made on first use and
 * removed at exit, in /dev/shm when it is writable) and hands the loader
 * that path. The program's own
 * messages go to a FILE that is not fd 2: sanitizer reports still reach
 * the terminal. */
#ifndef DDPM_FUZZ_H
#define DDPM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_buf[64];

static void fuzz_cleanup(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_buf);
    if (system(cmd) != 0) fprintf(stdout, "could not remove %s\n", fuzz_dir_buf);
}

// The private folder, made on the first call.
static const char *fuzz_dir(void)
{
    if (!fuzz_dir_buf[0]) {
        // tmpfs when there is one: a file written per input costs little there.
        strcpy(fuzz_dir_buf, access("/dev/shm", W_OK) == 0 ? "/dev/shm/ddpm_fuzz_XXXXXX"
                                                           : "/tmp/ddpm_fuzz_XXXXXX");
        if (!mkdtemp(fuzz_dir_buf)) abort();
        atexit(fuzz_cleanup);
    }
    return fuzz_dir_buf;
}

// fuzz_dir()/name, holding data [size] (replacing what was there).
static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[4][160];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir(), name);
    FILE *fp = fopen(p, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) abort();
    return p;
}

static void fuzz_remove(const char *name)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    unlink(p);
}

// The messages the code under test prints (usage, warnings) go nowhere.
static void fuzz_quiet(void)
{
    FILE *null = fopen("/dev/null", "w");
    if (null) stderr = null;
}

#endif
