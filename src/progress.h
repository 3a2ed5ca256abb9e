/* progress.h — one line on stderr for anything that takes more than a few
 * seconds: a bar, done/total, rate, ETA and a caller's note (e.g. the loss).
 * On a terminal the line redraws in place at most 5 times a second; in a log
 * file (CI, nohup) a fresh line is printed every 15 seconds instead. */
#ifndef DDPM_PROGRESS_H
#define DDPM_PROGRESS_H

typedef struct Progress {
    const char *what;      // "train", "bpd", "sample"
    long total;            // 0 if unknown (a wall-clock budget)
    double start, last;    // seconds (monotonic)
    int tty, quiet;
} Progress;

double progress_now(void);                      // monotonic seconds
void progress_start(Progress *p, const char *what, long total, int quiet);
void progress_update(Progress *p, long done, const char *note);  // note may be NULL
void progress_end(Progress *p, long done, const char *note);
// The callback calc_bpd_loop and the sampler take, with ctx a Progress
// started with total 0: sets the total and updates the line.
void progress_callback(void *ctx, long done, long total);

#endif
