/* json.c — a bounded JSON reader for file headers; see json.h.
 * Appendix: book/appendix_io.md. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


// "malformed JSON header at byte B" counts B from the start of the file.
int json_fail(Json *j, const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(j->err, "%s: malformed JSON header at byte %zu: %s",
                     j->path, j->base + j->pos, what);
}

const char *json_found(const Json *j, char *buf, size_t len)
{
    if (j->pos >= j->n) return "the end of the header";
    unsigned char c = (unsigned char)j->s[j->pos];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, len, "'%c'", c);
    else snprintf(buf, len, "byte 0x%02x", c);
    return buf;
}

// Skip whitespace; the next character, or -1 at the end of the header.
int json_peek(Json *j)
{
    while (j->pos < j->n && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t'
                             || j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
        j->pos++;
    return j->pos < j->n ? (unsigned char)j->s[j->pos] : -1;
}

int json_expect(Json *j, char c, const char *where)
{
    char buf[16];
    if (json_peek(j) == (unsigned char)c) {
        j->pos++;
        return 0;
    }
    return json_fail(j, "expected '%c' %s, found %s", c, where, json_found(j, buf, sizeof buf));
}

// Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0.
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1fu, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0) len = 3, cp = s[0] & 0x0fu, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07u, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

// Four hex digits at s[at..at+4) (bounded by the header), or -1.
static long json_hex4(const Json *j, size_t at)
{
    long v = 0;
    for (size_t i = at; i < at + 4; i++) {
        if (i >= j->n) return -1;
        char c = j->s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

// One backslash escape at j->pos; its UTF-8 goes to o, *k advances.
static int json_escape(Json *j, char *o, size_t *k)
{
    const char *plain = "\"\\/bfnrt", *value = "\"\\/\b\f\n\r\t";
    char c = j->pos + 1 < j->n ? j->s[j->pos + 1] : '\0';
    const char *hit = c ? strchr(plain, c) : NULL;
    if (hit) {
        o[(*k)++] = value[hit - plain];
        j->pos += 2;
        return 0;
    }
    if (c != 'u') return json_fail(j, "invalid escape in a string");
    long cp = json_hex4(j, j->pos + 2), lo = -1;
    if (cp >= 0xd800 && cp <= 0xdbff && j->pos + 7 < j->n && j->s[j->pos + 6] == '\\'
        && j->s[j->pos + 7] == 'u')
        lo = json_hex4(j, j->pos + 8);
    if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff) || (cp >= 0xd800 && cp <= 0xdbff
        && (lo < 0xdc00 || lo > 0xdfff)))
        return json_fail(j, "invalid \\u escape in a string");
    if (cp == 0) return json_fail(j, "\\u0000 is not allowed in a string");
    if (lo >= 0) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00), j->pos += 6;
    *k += utf8_put(o + *k, (uint32_t)cp);
    j->pos += 6;
    return 0;
}

// A JSON string into a malloc'd, NUL-terminated UTF-8 copy at *out.
int json_string(Json *j, char **out)
{
    *out = NULL;
    if (json_expect(j, '"', "to open a string")) return -1;
    size_t end = j->pos;   // find the closing quote; decoding never grows the text
    while (end < j->n && j->s[end] != '"') end += j->s[end] == '\\' ? 2 : 1;
    if (end >= j->n) {
        j->pos = j->n;
        return json_fail(j, "unexpected end of the header inside a string");
    }
    char *o = malloc(end - j->pos + 1);
    DDPM_CHECK(o != NULL, "out of memory (%zu bytes)", end - j->pos + 1);
    size_t k = 0;
    while (j->pos < end) {
        const unsigned char *c = (const unsigned char *)j->s + j->pos;
        size_t len = *c < 0x80 ? 1 : utf8_len(c, end - j->pos);
        if (*c < 0x20 || len == 0) {
            free(o);
            return json_fail(j, *c < 0x80 ? "control character in a string"
                                          : "invalid UTF-8 in a string");
        }
        if (*c == '\\') {
            if (json_escape(j, o, &k)) return free(o), -1;
            continue;
        }
        memcpy(o + k, c, len);
        k += len;
        j->pos += len;
    }
    j->pos++;   // the closing quote
    o[k] = '\0';
    *out = o;
    return 0;
}

// A JSON integer (no fraction, no exponent) that fits in an int64.
int json_int(Json *j, int64_t *v)
{
    char buf[16];
    int c = json_peek(j), neg = c == '-';
    if (neg) c = ++j->pos < j->n ? (unsigned char)j->s[j->pos] : -1;
    if (c < '0' || c > '9')
        return json_fail(j, "expected an integer, found %s", json_found(j, buf, sizeof buf));
    if (c == '0' && j->pos + 1 < j->n && j->s[j->pos + 1] >= '0' && j->s[j->pos + 1] <= '9')
        return json_fail(j, "integer with a leading zero");
    int64_t x = 0;
    while (j->pos < j->n && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
        int digit = j->s[j->pos] - '0';
        if (x > (INT64_MAX - digit) / 10) return json_fail(j, "integer too large");
        x = 10 * x + digit;
        j->pos++;
    }
    c = j->pos < j->n ? j->s[j->pos] : 0;
    if (c == '.' || c == 'e' || c == 'E')
        return json_fail(j, "expected an integer, found a number with a fraction or exponent");
    *v = neg ? -x : x;
    return 0;
}

// [i, j, ...] with at most max integers; `what` names the array in messages.
int json_int_array(Json *j, int64_t *out, int max, int *count, const char *what)
{
    char buf[16];
    *count = 0;
    if (json_expect(j, '[', "to open an array")) return -1;
    if (json_peek(j) == ']') return j->pos++, 0;
    for (;;) {
        if (*count == max)
            return json_fail(j, "the %s has more than %d entries", what, max);
        if (json_int(j, &out[(*count)++])) return -1;
        int c = json_peek(j);
        if (c != ',' && c != ']')
            return json_fail(j, "expected ',' or ']' in the %s, found %s", what,
                             json_found(j, buf, sizeof buf));
        j->pos++;
        if (c == ']') return 0;
    }
}

// After a member of an object: 1 if another follows (','), 0 at '}', else -1.
int json_next(Json *j, const char *where)
{
    char buf[16];
    int c = json_peek(j);
    if (c == ',' || c == '}') return j->pos++, c == ',';
    return json_fail(j, "expected ',' or '}' %s, found %s", where, json_found(j, buf, sizeof buf));
}
