/* progress.c — see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void progress_start(Progress *p, const char *what, long total, int quiet)
{
    p->what = what;
    p->total = total;
    p->start = p->last = progress_now();
    p->tty = isatty(fileno(stderr));
    p->quiet = quiet;
}

static void fmt_time(char *buf, size_t len, double s)
{
    if (s < 0 || s > 1e7) snprintf(buf, len, "--:--");
    else if (s < 3600) snprintf(buf, len, "%02d:%02d", (int)s / 60, (int)s % 60);
    else snprintf(buf, len, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

static void draw(Progress *p, long done, const char *note, int final)
{
    double el = progress_now() - p->start, rate = el > 0 ? done / el : 0;
    char bar[24] = "", eta[16], ela[16];
    fmt_time(ela, sizeof ela, el);
    fmt_time(eta, sizeof eta, p->total > 0 && rate > 0 ? (p->total - done) / rate : -1);
    if (p->total > 0) {
        int fill = (int)(20.0 * done / p->total);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "%s%s [%s] %ld/%ld  %.2f/s  %s elapsed, ETA %s%s%s%s", p->tty ? "\r" : "",
                p->what, bar, done, p->total, rate, ela, eta, note ? "  " : "", note ? note : "",
                p->tty ? "\033[K" : "");
    } else {
        fprintf(stderr, "%s%s %ld  %.2f/s  %s elapsed%s%s%s", p->tty ? "\r" : "", p->what, done,
                rate, ela, note ? "  " : "", note ? note : "", p->tty ? "\033[K" : "");
    }
    if (final || !p->tty) fputc('\n', stderr);
    fflush(stderr);
}

void progress_update(Progress *p, long done, const char *note)
{
    double now = progress_now();
    if (p->quiet || now - p->last < (p->tty ? 0.2 : 15.0)) return;
    p->last = now;
    draw(p, done, note, 0);
}

void progress_end(Progress *p, long done, const char *note)
{
    if (!p->quiet) draw(p, done, note, 1);
}

void progress_callback(void *ctx, long done, long total)
{
    Progress *p = ctx;
    p->total = total;
    progress_update(p, done, NULL);
}
