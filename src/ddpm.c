/* ddpm.c — the command-line program that composes the chapters.
 *
 *   ddpm <command> [--flags]     results on stdout, progress on stderr,
 *                                exit status 0 only on success.
 *
 * Commands are added as the chapters that provide them land: `version` and
 * `help` now; `init`, `forward`, `params` (chapter 04), `train`, `bpd`
 * (chapter 06), `rd` (chapter 07) and `sample` (chapter 08) later.
 */
#include <stdio.h>
#include <string.h>

#include "00_tensor.h"

#define DDPM_VERSION "0.1.0"

typedef struct Command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} Command;

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"version", "print the version, the scalar type and the BLAS in use", cmd_version},
    {"help",    "list the commands", cmd_help},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("usage: ddpm version\n\nPrint the version, the scalar type and the BLAS.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "ddpm version: unexpected argument '%s' (see ddpm version --help)\n",
                argv[1]);
        return 2;
    }
    printf("ddpm %s (%s, BLAS: OpenBLAS cblas_%sgemm)\n", DDPM_VERSION,
           sizeof(real) == 4 ? "float32" : "float64", sizeof(real) == 4 ? "s" : "d");
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: ddpm <command> [--flags]\n\n"
           "Denoising Diffusion Probabilistic Models (Ho et al. 2020), in C.\n\n"
           "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\n'ddpm <command> --help' describes one command.\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_help(argc, argv);
        return 2;   // no command is a usage error
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return cmd_help(argc, argv);
    if (!strcmp(argv[1], "--version")) return cmd_version(1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ddpm: unknown command '%s' (see ddpm --help)\n", argv[1]);
    return 2;
}
