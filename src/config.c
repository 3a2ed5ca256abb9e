/* config.c — one table per configuration; see config.h.
 *
 * Every number is read strictly: strtod alone would also take " 5", "0x10",
 * "infinity" and "1.5" for a count, and a double would round a seed above
 * 2^53, so whole numbers go through strtoll/strtoull and a character check.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k, type) ((type const *)((const char *)(obj) + (k)->off))

const ConfigKey *config_find(const ConfigKey *table, const char *key)
{
    for (const ConfigKey *k = table; k->key; k++)
        if (!strcmp(k->key, key)) return k;
    return NULL;
}

// A decimal number: digits, sign, point and exponent only.
static int parse_double(const char *v, double *out)
{
    char *end;
    if (!*v || v[strspn(v, "0123456789+-.eE")]) return -1;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

// A whole number in [lo, hi], written as digits (an optional sign first).
static int parse_whole(const char *v, double lo, double hi, long long *out)
{
    char *end;
    const char *d = v + (*v == '-' || *v == '+');
    if (*d < '0' || *d > '9') return -1;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*end || errno == ERANGE || !((double)x >= lo && (double)x <= hi)) return -1;
    *out = x;
    return 0;
}

static int parse_u64(const char *v, unsigned long long *out)
{
    char *end;
    if (*v < '0' || *v > '9') return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno == ERANGE) return -1;
    *out = x;
    return 0;
}

// "1,2,2" -> {1, 2, 2} each in [lo, hi]; "none" -> {} where allowed.
static int parse_ints(const ConfigKey *k, const char *v, int *out, int *count)
{
    int n = 0;
    if (k->lo_count == 0 && !strcmp(v, "none")) {
        *count = 0;
        return 0;
    }
    for (const char *s = v;;) {
        char item[32];
        size_t len = strcspn(s, ",");
        long long x;
        if (len == 0 || len >= sizeof item || n == k->max) return -1;
        memcpy(item, s, len);
        item[len] = 0;
        if (parse_whole(item, k->lo, k->hi, &x)) return -1;
        out[n++] = (int)x;
        if (!s[len]) break;
        s += len + 1;
    }
    if (n < (k->lo_count > 1 ? k->lo_count : 1)) return -1;
    *count = n;
    return 0;
}

static void range_text(double lo, double hi, char *buf, size_t len)
{
    snprintf(buf, len, "%.15g..%.15g", lo, hi);
}

void config_allowed(const ConfigKey *k, char *buf, size_t len)
{
    char r[80];
    range_text(k->lo, k->hi, r, sizeof r);
    switch (k->type) {
    case KEY_INT: case KEY_LONG: snprintf(buf, len, "a whole number in %s", r); break;
    case KEY_U64: snprintf(buf, len, "a whole number in 0..18446744073709551615"); break;
    case KEY_DOUBLE: case KEY_REAL: snprintf(buf, len, "a number in %s", r); break;
    case KEY_INTS:
        if (k->lo_count == k->max) snprintf(buf, len, "%d whole numbers in %s", k->max, r);
        else snprintf(buf, len, "%d to %d whole numbers in %s", k->lo_count > 1 ? k->lo_count : 1,
                      k->max, r);
        snprintf(buf + strlen(buf), len - strlen(buf), " separated by commas%s",
                 k->lo_count == 0 ? ", or none" : "");
        break;
    case KEY_ENUM: {
        size_t used = 0;
        buf[0] = 0;
        for (int i = 0; k->names[i] && used < len; i++)
            used += snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : k->names[i + 1] ? ", " : " or ",
                             k->names[i]);
        break;
    }
    default: snprintf(buf, len, "a value"); break;
    }
}

int config_set(const ConfigKey *k, void *obj, const char *text, Error *err)
{
    long long w = 0;
    double x = 0;
    int bad = 0;
    switch (k->type) {
    case KEY_STR: *FIELD(obj, k, const char *) = text; return 0;
    case KEY_FUNC: {
        Error e;
        if (k->set(FIELD(obj, k, char), text, &e) == 0) return 0;
        return error_set(err, "bad value '%.100s' for --%s: %s", text, k->key, e.msg);
    }
    case KEY_INT: case KEY_LONG:
        if (!(bad = parse_whole(text, k->lo, k->hi, &w))) {
            if (k->type == KEY_INT) *FIELD(obj, k, int) = (int)w;
            else *FIELD(obj, k, long) = (long)w;
        }
        break;
    case KEY_U64: bad = parse_u64(text, FIELD(obj, k, unsigned long long)); break;
    case KEY_DOUBLE: case KEY_REAL:
        bad = parse_double(text, &x) || !(x >= k->lo && x <= k->hi);
        if (!bad && k->type == KEY_DOUBLE) *FIELD(obj, k, double) = x;
        else if (!bad) *FIELD(obj, k, real) = (real)x;
        break;
    case KEY_INTS: {
        int v[64], n = 0;
        bad = k->max > 64 || parse_ints(k, text, v, &n);
        if (!bad) {
            memcpy(FIELD(obj, k, int), v, sizeof(int) * (size_t)n);
            *(int *)((char *)obj + k->aux) = n;
        }
        break;
    }
    case KEY_ENUM:
        bad = 1;
        for (int i = 0; k->names[i]; i++)
            if (!strcmp(k->names[i], text)) {
                *FIELD(obj, k, int) = i;
                bad = 0;
            }
        break;
    }
    if (!bad) return 0;
    char want[200];
    config_allowed(k, want, sizeof want);
    return error_set(err, "bad value '%.100s' for --%s: want %s", text, k->key, want);
}

// The shortest "%.Ng" that reads back to x exactly (as a real when `as_real`):
// 2e-4 stays "0.0002", a float 0.1 is "0.1", not "0.100000001".
static void shortest(char *buf, size_t len, double x, int as_real)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, x);
        double y = strtod(buf, NULL);
        if (as_real ? (real)y == (real)x : y == x) return;
    }
}

void config_format(const ConfigKey *k, const void *obj, char *buf, size_t len)
{
    buf[0] = 0;
    switch (k->type) {
    case KEY_STR: {
        const char *s = *CFIELD(obj, k, const char *);   // a const pointer to it
        snprintf(buf, len, "%s", s ? s : "");
        break;
    }
    case KEY_FUNC: snprintf(buf, len, "%s", CFIELD(obj, k, char)); break;
    case KEY_INT: snprintf(buf, len, "%d", *CFIELD(obj, k, int)); break;
    case KEY_LONG: snprintf(buf, len, "%ld", *CFIELD(obj, k, long)); break;
    case KEY_U64: snprintf(buf, len, "%llu", *CFIELD(obj, k, unsigned long long)); break;
    case KEY_DOUBLE: shortest(buf, len, *CFIELD(obj, k, double), 0); break;
    case KEY_REAL: shortest(buf, len, (double)*CFIELD(obj, k, real), 1); break;
    case KEY_INTS: {
        int n = *(const int *)((const char *)obj + k->aux);
        const int *v = CFIELD(obj, k, int);
        size_t used = 0;
        for (int i = 0; i < n && used < len; i++)
            used += snprintf(buf + used, len - used, i ? ",%d" : "%d", v[i]);
        if (n == 0) snprintf(buf, len, "none");
        break;
    }
    case KEY_ENUM: snprintf(buf, len, "%s", k->names[*CFIELD(obj, k, int)]); break;
    }
}

void config_store_key(const ConfigKey *k, const char *prefix, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", prefix, k->store ? k->store : k->key);
}

void config_line(const ConfigKey *table, const void *obj, int flags, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (const ConfigKey *k = table; k->key && used < len; k++) {
        if (k->type == KEY_FUNC || (flags && !(k->flags & flags))) continue;   // not the name
        char v[256];
        config_format(k, obj, v, sizeof v);
        used += snprintf(buf + used, len - used, "%s%s %s", used ? ", " : "", k->key, v);
    }
}
