/* st_compare.c — how far apart two training checkpoints are, group by group.
 *
 *   usage: st_compare A.safetensors B.safetensors [TOL]
 *
 * For each group of tensors — the weights, train.adam_m.*, train.adam_v.*,
 * train.ema.* — prints the largest |a - b| and that difference relative to
 * the group's largest |a|. Exits 1 when a relative difference exceeds TOL
 * (default 0: bit-identical), when a tensor or train.step is missing or
 * different in shape, 2 on a usage or file error. tests/mpi.sh uses it to
 * compare a run on several ranks with the same run in one process.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static const char *groups[4] = {"weights", "train.adam_m.", "train.adam_v.", "train.ema."};

static int group_of(const char *name)
{
    for (int g = 1; g < 4; g++)
        if (!strncmp(name, groups[g], strlen(groups[g]))) return g;
    return strncmp(name, "train.", 6) ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: st_compare A.safetensors B.safetensors [TOL]\n");
        return 2;
    }
    double tol = argc == 4 ? atof(argv[3]) : 0;
    StFile a, b;
    Error err;
    if (st_open(argv[1], &a, &err) < 0 || st_open(argv[2], &b, &err) < 0) {
        fprintf(stderr, "st_compare: %s\n", err.msg);
        return 2;
    }
    const char *sa = st_meta(&a, "train.step"), *sb = st_meta(&b, "train.step");
    int bad = !sa || !sb || strcmp(sa, sb);
    if (bad) printf("train.step differs: %s vs %s\n", sa ? sa : "-", sb ? sb : "-");
    double diff[4] = {0}, scale[4] = {0};
    long count[4] = {0};
    for (int i = 0; i < a.n_entries; i++) {
        const StEntry *ea = &a.entries[i], *eb = st_find(&b, ea->name);
        int g = group_of(ea->name);
        if (g < 0) continue;
        if (!eb || eb->count != ea->count || ea->dtype != ST_F32 || eb->dtype != ST_F32) {
            printf("%s: missing or different in %s\n", ea->name, argv[2]);
            bad = 1;
            continue;
        }
        const float *x = (const float *)(a.data + ea->begin), *y = (const float *)(b.data + eb->begin);
        for (size_t k = 0; k < ea->count; k++) {
            float xk, yk;   // (the data region need not be aligned)
            memcpy(&xk, x + k, sizeof xk);
            memcpy(&yk, y + k, sizeof yk);
            double d = fabs((double)xk - yk);
            if (!(d <= diff[g])) diff[g] = d;   // NaN counts as the largest
            if (fabs(xk) > scale[g]) scale[g] = fabs(xk);
        }
        count[g] += (long)ea->count;
    }
    for (int g = 0; g < 4; g++) {
        if (!count[g]) continue;
        double rel = scale[g] > 0 ? diff[g] / scale[g] : diff[g];
        int over = !(rel <= tol);
        printf("%-14s %9ld values  max |a-b| %.3e  relative to max |a| (%.3e): %.3e%s\n",
               groups[g], count[g], diff[g], scale[g], rel, over ? "  > tolerance" : "");
        bad |= over;
    }
    st_close(&a);
    st_close(&b);
    return bad;
}
