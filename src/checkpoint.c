/* checkpoint.c — a U-Net in a safetensors file; see checkpoint.h.
 * Appendix: book/appendix_io.md. */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The network's config as ddpm.* metadata, one entry per row of unet_keys
// (ddpm.config holds the name); text[] holds the values.
static int config_meta(const UNetConfig *c, char text[][64], char keys[][64], StMeta *m)
{
    int n = 0;
    for (const ConfigKey *k = unet_keys; k->key; k++, n++) {
        config_store_key(k, "ddpm.", keys[n], 64);
        config_format(k, c, text[n], 64);
        m[n] = (StMeta){keys[n], text[n]};
    }
    return n;
}

int ckpt_save(const char *path, const UNet *net, const StTensor *extra, int n_extra,
              const StMeta *meta, int n_meta, Error *err)
{
    const ParamSet *ps = &net->params;
    int n = ps->count + n_extra;
    StTensor *all = calloc((size_t)n, sizeof *all);
    StMeta *m = calloc((size_t)n_meta + 16, sizeof *m);
    if (!all || !m) { free(all); free(m); return error_set(err, "%s: out of memory", path); }
    for (int i = 0; i < ps->count; i++) {
        const Tensor *p = ps->params[i];
        all[i].name = p->name;
        all[i].ndim = p->ndim;
        memcpy(all[i].shape, p->shape, sizeof p->shape);
        all[i].data = p->data;
    }
    for (int i = 0; i < n_extra; i++) all[ps->count + i] = extra[i];
    char text[16][64], keys[16][64];
    int nm = config_meta(&net->cfg, text, keys, m);
    for (int i = 0; i < n_meta; i++) m[nm++] = meta[i];
    int rc = st_write(path, all, n, m, nm, err);
    free(all);
    free(m);
    return rc;
}

int ckpt_config(const StFile *f, UNetConfig *cfg, Error *err)
{
    const char *name = st_meta(f, "ddpm.config");
    if (!name) return 0;
    UNetConfig c;
    if (unet_config(&c, "paper", err) < 0) return -1;   // every field is overwritten below
    for (const ConfigKey *k = unet_keys; k->key; k++) {
        char key[64];
        if (k->type == KEY_FUNC) continue;   // ddpm.config: the name, read above
        config_store_key(k, "ddpm.", key, sizeof key);
        const char *v = st_meta(f, key);
        if (!v) return error_set(err, "%s: metadata has ddpm.config but no %s", f->path, key);
        Error e;
        if (config_set(k, &c, v, &e) < 0)
            return error_set(err, "%s: metadata %s: %s", f->path, key, e.msg);
    }
    snprintf(c.name, sizeof c.name, "%s", name);
    Error e;
    if (unet_config_check(&c, &e) < 0) return error_set(err, "%s: stored config: %s", f->path, e.msg);
    *cfg = c;
    return 1;
}

int ckpt_load_file(const StFile *f, UNet *net, const UNetConfig *cfg, int force_cfg, Error *err)
{
    UNetConfig c;
    int found = force_cfg ? 0 : ckpt_config(f, &c, err);
    if (found < 0) return -1;
    if (!found) {
        if (!cfg)
            return error_set(err, "%s: the file stores no network config; pass --config "
                                  "(tiny, small, paper) and any overrides", f->path);
        c = *cfg;
    }
    // Every parameter must be in the file, at 2 bytes or more each (F16):
    // a config the file cannot hold fails here, before anything is allocated.
    double n = unet_config_params(&c);
    if (n * 2 > (double)f->data_size)
        return error_set(err, "%s: the network (%s config) has %.0f parameters but the file "
                              "holds only %zu bytes of tensor data", f->path, c.name, n,
                         f->data_size);
    unet_build(net, &c);
    int rc = st_load_params(f, &net->params, "", 1, err);
    if (rc < 0) unet_free(net);
    return rc;
}

int ckpt_load(const char *path, UNet *net, const UNetConfig *cfg, int force_cfg, Error *err)
{
    StFile f;
    if (st_open(path, &f, err) < 0) return -1;
    int rc = ckpt_load_file(&f, net, cfg, force_cfg, err);
    st_close(&f);
    return rc;
}
