/* checkpoint.c — a U-Net in a safetensors file, and a trained model read
 * back from one; see checkpoint.h. Appendix: book/appendix_io.md.
 *
 * The trainer (train.c) writes and resumes its checkpoints with the
 * functions here; a trained model's settings are read with the trainer's
 * table of them (train_config_read), so the two files call each other,
 * while their headers stay apart (neither includes the other).
 */
#include "checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

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

/* ---- checked metadata ------------------------------------------------------ */

static const char *meta_or(const StFile *f, const char *key, const char *fallback)
{
    const char *v = st_meta(f, key);
    return v ? v : fallback;
}

int ckpt_meta_num(const StFile *f, const char *key, const char *fallback, double lo,
                  double hi, int whole, double *out, Error *err)
{
    const char *v = meta_or(f, key, fallback);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !(x >= lo && x <= hi) || (whole && x != floor(x)))
        return error_set(err, "%s: metadata %s = '%.40s' is not a %s in %g..%g", f->path, key,
                         v, whole ? "whole number" : "number", lo, hi);
    *out = x;
    return 0;
}

int ckpt_check_out_ch(const StFile *f, const UNet *net, const Diffusion *df, Error *err)
{
    int want = diffusion_out_channels(df, net->cfg.in_ch);
    if (net->cfg.out_ch == want) return 0;
    return error_set(err, "%s: the network has %d output channels but its diffusion (%s, %s) "
                          "needs %d", f->path, net->cfg.out_ch, mean_type_name(df->mean),
                     var_type_name(df->var), want);
}

/* ---- a trained model, for evaluation and sampling ------------------------- */

int trained_model_load(TrainedModel *m, const char *path, int want_ema, Error *err)
{
    return trained_model_load_cfg(m, path, want_ema, NULL, 0, err);
}

int trained_model_load_cfg(TrainedModel *m, const char *path, int want_ema,
                           const UNetConfig *cfg, int force_cfg, Error *err)
{
    memset(m, 0, sizeof *m);
    StFile f;
    if (st_open(path, &f, err) < 0) return -1;
    double step;
    TrainConfig c;
    train_config_default(&c);
    int rc = train_config_read(&f, &c, err) == 0 &&
             train_config_diffusion(&c, &m->df, err) == 0 &&
             ckpt_meta_num(&f, "train.step", "-1", -1, TRAIN_MAX_STEPS, 1, &step, err) == 0
                 ? 0 : -1;
    if (rc == 0 && !(m->sched = calloc(1, sizeof *m->sched)))
        rc = error_set(err, "%s: out of memory", path);
    if (rc == 0) rc = schedule_init(m->sched, "linear", c.T, 1e-4, 0.02, err);
    if (rc == 0) rc = ckpt_load_file(&f, &m->net, cfg, force_cfg, err);
    if (rc == 0) rc = ckpt_check_out_ch(&f, &m->net, &m->df, err);
    m->df.sched = m->sched;
    m->ema = want_ema && st_find(&f, "train.ema.conv_out.bias") != NULL;
    if (rc == 0 && m->ema) rc = st_load_params(&f, &m->net.params, "train.ema.", 0, err);
    if (rc == 0) {
        m->step = (long)step;
        m->ema_decay = st_meta(&f, "train.ema_decay") ? c.ema_decay : 0;
        snprintf(m->data, sizeof m->data, "%s", meta_or(&f, "train.data", ""));
    }
    st_close(&f);
    if (rc < 0) trained_model_free(m);
    return rc;
}

void trained_model_free(TrainedModel *m)
{
    unet_free(&m->net);
    if (m->sched) schedule_free(m->sched);
    free(m->sched);
    memset(m, 0, sizeof *m);
}
