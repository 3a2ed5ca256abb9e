/* config.h — one table per configuration.
 *
 * A configuration (the U-Net's shape, a training run's settings, a
 * command's options) is a C struct; its table lists, once, each field's key,
 * type, place in the struct, allowed range and one line of help. The same
 * rows then drive everything that reads or writes the struct as text: the
 * command-line flags (cli.h), the checkpoint's metadata in both directions
 * (checkpoint.c, train.c), the printed config line and the usage text, so a
 * key, a range or a default is written in exactly one place.
 *
 * Appendix: book/appendix_io.md.
 */
#ifndef DDPM_CONFIG_H
#define DDPM_CONFIG_H

#include <stddef.h>

#include "00_tensor.h"

typedef enum KeyType {
    KEY_STR,      // const char *: any text (a path, a name)
    KEY_INT,      // int, a whole number in [lo, hi]
    KEY_LONG,     // long, a whole number in [lo, hi]
    KEY_U64,      // unsigned long long, any whole number 0 .. 2^64-1 (seeds)
    KEY_DOUBLE,   // double in [lo, hi]
    KEY_REAL,     // real in [lo, hi]
    KEY_INTS,     // int[max] "A,B,...", each in [lo, hi]; the count in the int at `aux`;
                  // "none" (count 0) when lo_count is 0
    KEY_ENUM,     // int: one of the names of `names` (NULL-terminated), stored as its index
    KEY_FUNC,     // set(field, text, err) parses it (e.g. --config NAME loads a preset);
                  // the field is a char array, printed as it is
} KeyType;

#define KEY_NO_DEFAULT 1   // flags: usage prints no default (it is computed later)
#define KEY_FIRST 2        // applied before the other flags of the command line
#define KEY_STORED 4       // part of what a checkpoint stores (train.*)

typedef struct ConfigKey {
    const char *key;         // the flag without "--" and the metadata key after its prefix
    KeyType type;
    size_t off;              // offsetof the field in the struct
    double lo, hi;           // range (KEY_INTS: of each element)
    const char *meta;        // the value's placeholder in usage: "N", "A,B,...", "0|1"
    const char *help;        // one line
    int flags;               // KEY_NO_DEFAULT | KEY_FIRST | KEY_STORED
    const char *store;       // metadata key when it differs from `key` (else NULL)
    size_t aux;              // KEY_INTS: offsetof the count; KEY_ENUM: unused
    int max, lo_count;       // KEY_INTS: most and fewest elements
    const char *const *names;                              // KEY_ENUM
    int (*set)(void *field, const char *text, Error *err); // KEY_FUNC
} ConfigKey;

// A table ends with a {0} row. A row: the seven fields every row has, then any of the others by name,
// e.g. KEY("clip", KEY_DOUBLE, offsetof(TrainConfig, grad_clip), 0, 1e9, "C",
// "gradient-norm clip", .flags = KEY_STORED, .store = "grad_clip").
#define KEY(key_, type_, off_, lo_, hi_, meta_, help_, ...) \
    {.key = (key_), .type = (type_), .off = (off_), .lo = (lo_), .hi = (hi_), .meta = (meta_), \
     .help = (help_), __VA_ARGS__}

// The row of `key` in a table, or NULL.
const ConfigKey *config_find(const ConfigKey *table, const char *key);

// Parse `text` into the field of `obj` that row k describes, checked against
// its type and range. On a bad value the field is untouched and err says
// "bad value 'TEXT' for --KEY: want ..." (the allowed range).
int  config_set(const ConfigKey *k, void *obj, const char *text, Error *err);

// The field as text, the form config_set reads back exactly (floating
// point: the fewest digits that do). "" for a KEY_STR that is NULL.
void config_format(const ConfigKey *k, const void *obj, char *buf, size_t len);

// What a row accepts, e.g. "a whole number in 1..4096", "eps, x0 or mu".
void config_allowed(const ConfigKey *k, char *buf, size_t len);

// The metadata key of row k: prefix + (store ? store : key).
void config_store_key(const ConfigKey *k, const char *prefix, char *buf, size_t len);

// "key value, key value, ..." for every row (those with `flags` set, when
// flags is not 0), KEY_FUNC rows left out: the printed config line.
void config_line(const ConfigKey *table, const void *obj, int flags, char *buf, size_t len);

#endif
