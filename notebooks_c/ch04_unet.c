/* ch04_unet.c — the experiments of chapter 04 (make chapter4).
 *
 * 1. The architecture of the tiny and paper configs, drawn by Graphviz from
 *    the model's own structure (unet_write_dot) -> figures/ch04_arch_*.{png,svg}
 * 2. Where the parameters are: per block, for the paper's model
 *    -> figures/ch04_params.{png,svg}, and the totals of all configs on stdout
 * 3. A fresh network's output is ~0 (the 1e-10 initialisation), printed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "04_unet.h"

static void arch(const char *config)
{
    UNetConfig c;
    unet_config(&c, config, NULL);
    UNet net;
    unet_build(&net, &c);
    char path[128];
    snprintf(path, sizeof path, "figures/data/ch04_arch_%s.dot", config);
    FILE *f = fopen(path, "w");
    unet_write_dot(&net, f);
    fclose(f);
    printf("%-6s %12zu parameters  -> %s\n", config, net.params.total, path);
    unet_free(&net);
}

// Sum the parameters of each top-level part: temb, conv_in, down.i, mid, up.i, out.
static void params_per_part(void)
{
    UNetConfig c;
    unet_config(&c, "paper", NULL);
    UNet net;
    unet_build(&net, &c);
    const char *parts[] = {"temb", "conv_in", "down.0", "down.1", "down.2", "down.3", "mid",
                           "up.3", "up.2", "up.1", "up.0", "norm_out", "conv_out"};
    FILE *f = fopen("figures/data/ch04_params.dat", "w");
    fprintf(f, "# part  parameters (paper config)\n");
    for (int k = 0; k < 13; k++) {
        size_t n = 0, len = strlen(parts[k]);
        for (int i = 0; i < net.params.count; i++) {
            const char *name = net.params.params[i]->name;
            if (!strncmp(name, parts[k], len) && (name[len] == '.' || !name[len]))
                n += net.params.params[i]->size;
        }
        fprintf(f, "\"%s\" %zu\n", parts[k], n);
    }
    fclose(f);
    f = fopen("figures/data/ch04_params.gp", "w");
    fprintf(f,
        "set style data histograms\nset style fill solid 0.8 border -1\nset boxwidth 0.7\n"
        "set xtics rotate by -35 noenhanced\nset grid ytics\nunset key\n"
        "set ylabel 'parameters (millions)'\n"
        "set title 'Where the paper model''s 35.7M parameters are (down/up levels at 32, 16, 8, 4)'\n"
        "p = \"plot 'figures/data/ch04_params.dat' u ($2/1e6):xtic(1) lc rgb '#4a7ab5'\"\n"
        "set terminal pngcairo size 900,520 font 'Sans,11'\nset output 'figures/ch04_params.png'\n@p\n"
        "set terminal svg size 900,520 font 'Sans,11'\nset output 'figures/ch04_params.svg'\n@p\n");
    fclose(f);
    unet_free(&net);
}

static void fresh_output(void)
{
    UNetConfig c;
    unet_config(&c, "tiny", NULL);
    UNet net;
    unet_build(&net, &c);
    Rng rng;
    rng_seed(&rng, 0, 0);
    unet_init_weights(&net, &rng);
    Arena ar;
    arena_init(&ar, 1 << 24);
    Tape tp;
    tape_init(&tp, &ar);
    tape_set_recording(&tp, 0);
    Tensor *x = tensor_4d(&ar, 4, 3, 32, 32);
    rng_fill_normal(&rng, x->data, x->size, 0, 1);
    Tensor *y = unet_forward(&tp, &net, x, (int[]){0, 10, 500, 999}, NULL, 0);
    double m = 0;
    for (size_t i = 0; i < y->size; i++) m = fmax(m, fabs(y->data[i]));
    printf("fresh tiny network, x ~ N(0, I): max |eps_theta(x, t)| = %.3g\n", m);
    tape_free(&tp);
    arena_free(&ar);
    unet_free(&net);
}

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    const char *configs[] = {"tiny", "small", "paper"};
    for (int i = 0; i < 3; i++) arch(configs[i]);
    params_per_part();
    fresh_output();
    return 0;
}
