/* cli.c — the command-line parser; see cli.h. */
#include "cli.h"

#include <string.h>

// Row number `i` counted across the groups (and its group), or NULL past the end.
static const ConfigKey *row(const Cli *cli, int i, const CliGroup **group)
{
    for (const CliGroup *g = cli->groups; g->keys; g++)
        for (const ConfigKey *k = g->keys; k->key; k++)
            if (i-- == 0) {
                *group = g;
                return k;
            }
    return NULL;
}

// The row number of the flag name[0..len), or -1.
static int find(const Cli *cli, const char *name, size_t len)
{
    const CliGroup *g;
    const ConfigKey *k;
    for (int i = 0; (k = row(cli, i, &g)); i++)
        if (strlen(k->key) == len && !strncmp(k->key, name, len)) return i;
    return -1;
}

int cli_parse(Cli *cli, void *opts, int argc, char **argv)
{
    int order[CLI_MAX_KEYS], n = 0;
    const char *cmd = cli->cmd;
    memset(cli->given, 0, sizeof cli->given);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cli_usage(cli, opts, stdout);
            return 1;
        }
    // Every word: a known flag, once, with its value.
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *value;
        if (strncmp(a, "--", 2) != 0 || a[2] == 0 || a[2] == '=') {
            fprintf(stderr, "ddpm %s: expected --flag value, got '%s' (see ddpm %s --help)\n",
                    cmd, a, cmd);
            return 2;
        }
        int len = eq ? (int)(eq - a - 2) : (int)strlen(a + 2);
        int k = find(cli, a + 2, (size_t)len);
        if (k < 0) {
            fprintf(stderr, "ddpm %s: unknown flag --%.*s (see ddpm %s --help)\n", cmd, len,
                    a + 2, cmd);
            return 2;
        }
        if (eq) value = eq + 1;
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) value = argv[++i];
        else {
            fprintf(stderr, "ddpm %s: --%s needs a value%s%s%s (see ddpm %s --help)\n", cmd,
                    a + 2, i + 1 < argc ? ", not the flag '" : "", i + 1 < argc ? argv[i + 1] : "",
                    i + 1 < argc ? "'" : "", cmd);
            return 2;
        }
        if (cli->given[k]) {
            fprintf(stderr, "ddpm %s: --%.*s is given twice\n", cmd, len, a + 2);
            return 2;
        }
        cli->given[k] = value;
        order[n++] = k;
    }
    // The KEY_FIRST rows (a preset such as --config), then the rest in order.
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < n; j++) {
            const CliGroup *g;
            const ConfigKey *k = row(cli, order[j], &g);
            if ((k->flags & KEY_FIRST) ? pass == 1 : pass == 0) continue;
            Error err;
            if (config_set(k, (char *)opts + g->base, cli->given[order[j]], &err) < 0) {
                fprintf(stderr, "ddpm %s: %s\n", cmd, err.msg);
                return 2;
            }
        }
    return 0;
}

const char *cli_given(const Cli *cli, const ConfigKey *table, const char *key)
{
    const CliGroup *g;
    const ConfigKey *k;
    for (int i = 0; (k = row(cli, i, &g)); i++)
        if (g->keys == table && !strcmp(k->key, key)) return cli->given[i];
    return NULL;
}

int cli_given_any(const Cli *cli, const ConfigKey *table)
{
    const CliGroup *g;
    const ConfigKey *k;
    for (int i = 0; (k = row(cli, i, &g)); i++)
        if (g->keys == table && cli->given[i]) return 1;
    return 0;
}

void cli_usage(const Cli *cli, const void *defaults, FILE *f)
{
    fputs(cli->usage, f);
    for (const CliGroup *g = cli->groups; g->keys; g++) {
        fputs(g->title ? "\n" : "", f);
        if (g->title) fprintf(f, "%s\n", g->title);
        for (const ConfigKey *k = g->keys; k->key; k++) {
            char flag[64], def[128] = "";
            snprintf(flag, sizeof flag, "--%s %s", k->key, k->meta ? k->meta : "");
            if (!(k->flags & KEY_NO_DEFAULT))
                config_format(k, (const char *)defaults + g->base, def, sizeof def);
            fprintf(f, "  %-22s %s%s%s%s\n", flag, k->help, def[0] ? " (default: " : "", def,
                    def[0] ? ")" : "");
        }
    }
    if (cli->footer) fputs(cli->footer, f);
}
