/* json.h — a bounded JSON reader for file headers.
 *
 * Support file; the safetensors reader (safetensors.c) is built on it and
 * the book's appendix (book/appendix_io.md) explains it. A small
 * recursive-descent reader of exactly what a header needs: objects, strings
 * with every escape (UTF-8 checked, no NUL), integers that fit an int64 and
 * arrays of them; no floats, no nesting beyond what the caller walks. It
 * never reads past the text it is given. Each function returns 0 (or what
 * it says), or -1 with "PATH: malformed JSON header at byte B: ..." in
 * j->err, B counted from the start of the file.
 */
#ifndef DDPM_JSON_H
#define DDPM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "00_tensor.h"

typedef struct Json {
    const char *s;        // the header text, not NUL-terminated
    size_t n, pos;        // its length, the read position
    size_t base;          // where the text starts in the file (for messages)
    const char *path;
    Error *err;
} Json;

int json_fail(Json *j, const char *fmt, ...);                 // always -1
const char *json_found(const Json *j, char *buf, size_t len);  // what is at pos, for messages
int json_peek(Json *j);                       // skip whitespace; the next char or -1 at the end
int json_expect(Json *j, char c, const char *where);
int json_string(Json *j, char **out);         // a malloc'd, NUL-terminated UTF-8 copy
int json_int(Json *j, int64_t *v);            // no fraction, no exponent
int json_int_array(Json *j, int64_t *out, int max, int *count, const char *what);
int json_next(Json *j, const char *where);    // after a member: 1 at ',', 0 at '}', else -1

#endif
