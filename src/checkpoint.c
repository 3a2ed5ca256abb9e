/* checkpoint.c — a U-Net in a safetensors file; see checkpoint.h.
 * Appendix: book/appendix_io.md. */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ConfigText {
    char name[16], ch[16], ch_mult[64], nrb[16], attn[64], dropout[32];
    char in_ch[16], out_ch[16], res[16], groups[16];
} ConfigText;

static void list_str(char *buf, size_t len, const int *v, int n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < len; i++) k += snprintf(buf + k, len - k, i ? ",%d" : "%d", v[i]);
    if (n == 0) snprintf(buf, len, "none");
}

static int config_meta(const UNetConfig *c, ConfigText *t, StMeta *m)
{
    snprintf(t->name, sizeof t->name, "%s", c->name);
    snprintf(t->ch, sizeof t->ch, "%d", c->ch);
    list_str(t->ch_mult, sizeof t->ch_mult, c->ch_mult, c->n_levels);
    snprintf(t->nrb, sizeof t->nrb, "%d", c->num_res_blocks);
    list_str(t->attn, sizeof t->attn, c->attn_res, c->n_attn);
    snprintf(t->dropout, sizeof t->dropout, "%.9g", (double)c->dropout);
    snprintf(t->in_ch, sizeof t->in_ch, "%d", c->in_ch);
    snprintf(t->out_ch, sizeof t->out_ch, "%d", c->out_ch);
    snprintf(t->res, sizeof t->res, "%d", c->resolution);
    snprintf(t->groups, sizeof t->groups, "%d", c->groups);
    StMeta list[] = {
        {"ddpm.config", t->name},     {"ddpm.ch", t->ch},         {"ddpm.ch-mult", t->ch_mult},
        {"ddpm.num-res-blocks", t->nrb}, {"ddpm.attn", t->attn},  {"ddpm.dropout", t->dropout},
        {"ddpm.in-ch", t->in_ch},     {"ddpm.out-ch", t->out_ch}, {"ddpm.resolution", t->res},
        {"ddpm.groups", t->groups},
    };
    memcpy(m, list, sizeof list);
    return (int)(sizeof list / sizeof list[0]);
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
    ConfigText text;
    int nm = config_meta(&net->cfg, &text, m);
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
    static const char *keys[] = {"ch", "ch-mult", "num-res-blocks", "attn", "dropout",
                                 "in-ch", "out-ch", "resolution", "groups"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "ddpm.%s", keys[i]);
        const char *v = st_meta(f, key);
        if (!v) return error_set(err, "%s: metadata has ddpm.config but no %s", f->path, key);
        Error e;
        if (unet_config_set(&c, keys[i], v, &e) < 0)
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
