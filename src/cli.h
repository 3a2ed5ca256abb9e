/* cli.h — the command-line parser of the ddpm program.
 *
 * A command's options are a struct; its flags are the rows of one or more
 * configuration tables (config.h), each table placed at an offset inside
 * that struct (the U-Net's keys inside the command's UNetConfig, the
 * training settings inside its TrainConfig). The parser takes
 * `--flag value` and `--flag=value`, checks each value's type and range
 * (an error states the allowed range), refuses an unknown flag, a repeated
 * flag and a flag without its value (`--out --steps 10`), applies the rows
 * marked KEY_FIRST (--config) before the rest, and writes the usage text
 * from the same rows with the real defaults.
 *
 * Appendix: book/appendix_io.md.
 */
#ifndef DDPM_CLI_H
#define DDPM_CLI_H

#include <stdio.h>

#include "config.h"

#define CLI_MAX_KEYS 96

typedef struct CliGroup {
    const char *title;        // heading of the group's rows in the usage (NULL: none)
    const ConfigKey *keys;    // a table ending with a {0} row
    size_t base;              // offsetof the table's struct in the options struct
} CliGroup;

typedef struct Cli {
    const char *cmd;          // "train": messages start "ddpm train: "
    const char *usage;        // synopsis and description, printed before the rows
    const CliGroup *groups;   // ending with a {0} group
    const char *footer;       // printed after the rows (may be NULL)
    const char *given[CLI_MAX_KEYS];   // after cli_parse: each row's text, NULL if absent
} Cli;

// Parse argv[1..argc-1] into opts (which holds the defaults on entry).
// Returns 0 to go on, 1 after printing the usage (--help or -h anywhere), 2 on
// misuse after printing one line to stderr.
int  cli_parse(Cli *cli, void *opts, int argc, char **argv);

// The text given on the command line for `key` of `table`, or NULL.
const char *cli_given(const Cli *cli, const ConfigKey *table, const char *key);
// 1 if any row of `table` (KEY_FUNC rows too) was given.
int  cli_given_any(const Cli *cli, const ConfigKey *table);

// The usage: cli->usage, then one line per row with its default as held by
// `defaults` (an options struct), then cli->footer.
void cli_usage(const Cli *cli, const void *defaults, FILE *f);

#endif
