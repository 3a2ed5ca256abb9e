/* 04_unet.c — the paper's U-Net, eps_theta(x_t, t).
 *
 * Chapter 04 (book/04_unet.md). The network predicts the noise eps that was
 * mixed into x_t (Eq. 11 of the paper parameterises the reverse-process mean
 * through it). It is the PixelCNN++-style U-Net of the official code
 * (models/unet.py): a timestep embedding feeds every residual block; the
 * image goes down through resolution levels (32, 16, 8, 4 for CIFAR-10),
 * through a middle block, and back up, each level on the way up taking the
 * activations of its counterpart on the way down as skip connections.
 *
 *   x [N,3,32,32] -> conv_in -> down levels (ResBlocks [+ Attn at 16x16],
 *   Downsample) -> mid (ResBlock, Attn, ResBlock) -> up levels (ResBlocks on
 *   [h, skip] [+ Attn], Upsample) -> GroupNorm -> SiLU -> conv_out -> eps
 *
 * NOTE: the network sees the integer code timestep t in 0..T-1, not t/T, as
 * in the official code (paper t = code t + 1).
 *
 * Every name passed to params_add is the PyTorch state_dict name, and the
 * parameters are registered in the order PyTorch lists them.
 */
#include "04_unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <tgmath.h>

/* ---- configurations ----------------------------------------------------- */

static const UNetConfig unet_configs[] = {
    // name     ch lv  ch_mult       nrb na attn   drop  in out res groups
    {"tiny",    32, 3, {1, 2, 2},     1, 1, {16},  0.0,  3, 3, 32, 32},
    {"small",   64, 4, {1, 2, 2, 2},  2, 1, {16},  0.1,  3, 3, 32, 32},
    {"paper",  128, 4, {1, 2, 2, 2},  2, 1, {16},  0.1,  3, 3, 32, 32},
};

int unet_config(UNetConfig *cfg, const char *name, Error *err)
{
    for (size_t i = 0; i < sizeof unet_configs / sizeof unet_configs[0]; i++)
        if (strcmp(unet_configs[i].name, name) == 0) {
            *cfg = unet_configs[i];
            return 0;
        }
    return error_set(err, "unknown config '%s' (known: tiny, small, paper)", name);
}

// --config NAME: the preset replaces the whole config (name is its first field).
static int set_preset(void *field, const char *name, Error *err)
{
    _Static_assert(offsetof(UNetConfig, name) == 0, "the preset row writes from name on");
    return unet_config(field, name, err);
}

// Every key of the config: the network flags (--ch 64), the checkpoint's
// ddpm.* metadata and the printed config line all come from these rows.
#define U(f) offsetof(UNetConfig, f)
const ConfigKey unet_keys[] = {
    KEY("config", KEY_FUNC, U(name), 0, 0, "NAME", "tiny, small or paper; sets every key below",
     .flags = KEY_FIRST, .set = set_preset),
    KEY("ch", KEY_INT, U(ch), 1, 100000, "N", "base width"),
    KEY("ch-mult", KEY_INTS, U(ch_mult), 1, 100000, "A,B,...", "width multiplier per resolution level",
     .aux = U(n_levels), .max = UNET_MAX_LEVELS, .lo_count = 1),
    KEY("num-res-blocks", KEY_INT, U(num_res_blocks), 1, 100000, "N", "ResBlocks per level on the way down"),
    KEY("attn", KEY_INTS, U(attn_res), 1, 100000, "R,...|none", "resolutions with self-attention",
     .aux = U(n_attn), .max = UNET_MAX_LEVELS, .lo_count = 0),
    KEY("dropout", KEY_REAL, U(dropout), 0, 0.999999, "P", "dropout probability in training"),
    KEY("in-ch", KEY_INT, U(in_ch), 1, 100000, "N", "image channels in"),
    KEY("out-ch", KEY_INT, U(out_ch), 1, 100000, "N", "channels out (twice in-ch for a learned variance)"),
    KEY("resolution", KEY_INT, U(resolution), 1, 100000, "N", "image size"),
    KEY("groups", KEY_INT, U(groups), 1, 100000, "N", "GroupNorm groups"),
    {0},
};
#undef U

// Override one key (--ch 64, --ch-mult 1,2,2, ...); the config becomes "custom".
int unet_config_set(UNetConfig *cfg, const char *key, const char *value, Error *err)
{
    const ConfigKey *k = config_find(unet_keys, key);
    if (!k || k->type == KEY_FUNC) return error_set(err, "unknown network option --%s", key);
    if (config_set(k, cfg, value, err) < 0) return -1;
    snprintf(cfg->name, sizeof cfg->name, "custom");
    return 0;
}

int unet_config_check(const UNetConfig *c, Error *err)
{
    if (c->n_levels < 1 || c->n_levels > UNET_MAX_LEVELS)
        return error_set(err, "ch_mult needs 1 to %d levels", UNET_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks + 1 > UNET_MAX_BLOCKS)
        return error_set(err, "num_res_blocks must be 1 to %d", UNET_MAX_BLOCKS - 1);
    if (c->in_ch < 1 || c->in_ch > UNET_MAX_IMAGE_CH || c->out_ch < 1 ||
        c->out_ch > UNET_MAX_IMAGE_CH)
        return error_set(err, "in_ch and out_ch must be 1 to %d, not %d and %d",
                         UNET_MAX_IMAGE_CH, c->in_ch, c->out_ch);
    if (c->resolution < 1 || c->resolution > UNET_MAX_RESOLUTION ||
        c->resolution % (1 << (c->n_levels - 1)))
        return error_set(err, "resolution %d is not 1 to %d or cannot be halved %d times",
                         c->resolution, UNET_MAX_RESOLUTION, c->n_levels - 1);
    if (c->ch % 2 || c->ch < 4)
        return error_set(err, "ch must be even and at least 4 (the timestep embedding "
                              "splits it into sin and cos halves), not %d", c->ch);
    if (c->groups < 1) return error_set(err, "GroupNorm needs at least 1 group, not %d", c->groups);
    for (int i = 0; i < c->n_levels; i++) {
        long long width = (long long)c->ch * c->ch_mult[i];   // in range before it is an int
        if (c->ch_mult[i] < 1 || width > UNET_MAX_WIDTH)
            return error_set(err, "ch %d x ch_mult %d is not a width of 1 to %d", c->ch,
                             c->ch_mult[i], UNET_MAX_WIDTH);
        if (width % c->groups || c->ch % c->groups)
            return error_set(err, "GroupNorm: %d groups do not divide the width %lld",
                             c->groups, width);
    }
    double n = unet_config_params(c);
    if (n > UNET_MAX_PARAMS)
        return error_set(err, "%.0f parameters is more than the %.0f this program builds",
                         n, (double)UNET_MAX_PARAMS);
    return 0;
}

void unet_config_str(const UNetConfig *c, char *buf, size_t len)
{
    size_t k = snprintf(buf, len, "%s: ", c->name);
    if (k < len) config_line(unet_keys, c, 0, buf + k, len - k);
}

/* ---- building: every parameter, named as in PyTorch --------------------- */

static Tensor *param(ParamSet *ps, const char *prefix, const char *name, int ndim,
                     const int *shape)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return params_add(ps, full, ndim, shape);
}
#define VEC(n)         1, (int[]){n}
#define MAT(o, i)      2, (int[]){o, i}
#define CONV(o, i, k)  4, (int[]){o, i, k, k}

static void resblock_build(ResBlock *b, ParamSet *ps, const char *prefix, int cin,
                           int cout, int temb_ch)
{
    b->cin = cin;
    b->cout = cout;
    b->norm1_weight = param(ps, prefix, "norm1.weight", VEC(cin));
    b->norm1_bias = param(ps, prefix, "norm1.bias", VEC(cin));
    b->conv1_weight = param(ps, prefix, "conv1.weight", CONV(cout, cin, 3));
    b->conv1_bias = param(ps, prefix, "conv1.bias", VEC(cout));
    b->temb_proj_weight = param(ps, prefix, "temb_proj.weight", MAT(cout, temb_ch));
    b->temb_proj_bias = param(ps, prefix, "temb_proj.bias", VEC(cout));
    b->norm2_weight = param(ps, prefix, "norm2.weight", VEC(cout));
    b->norm2_bias = param(ps, prefix, "norm2.bias", VEC(cout));
    b->conv2_weight = param(ps, prefix, "conv2.weight", CONV(cout, cout, 3));
    b->conv2_bias = param(ps, prefix, "conv2.bias", VEC(cout));
    b->nin_shortcut_weight = b->nin_shortcut_bias = NULL;
    if (cin != cout) {
        b->nin_shortcut_weight = param(ps, prefix, "nin_shortcut.weight", CONV(cout, cin, 1));
        b->nin_shortcut_bias = param(ps, prefix, "nin_shortcut.bias", VEC(cout));
    }
}

static int has_attn(const UNetConfig *c, int res)
{
    for (int i = 0; i < c->n_attn; i++)
        if (c->attn_res[i] == res) return 1;
    return 0;
}

static void attn_build(AttnBlock *a, ParamSet *ps, const char *prefix, int C, int groups)
{
    attn_block_init(a, ps, prefix, C);
    a->groups = groups;
}

// The way down: level i has num_res_blocks ResBlocks at width ch*ch_mult[i],
// then (except the last) a stride-2 conv. Returns the width it ends at.
static int build_down(UNet *net, int temb_ch)
{
    const UNetConfig *c = &net->cfg;
    ParamSet *ps = &net->params;
    char pre[64];
    int cin = c->ch, res = c->resolution;
    for (int i = 0; i < c->n_levels; i++) {
        UNetLevel *L = &net->down[i];
        L->res = res;
        L->n_blocks = c->num_res_blocks;
        L->has_attn = has_attn(c, res);
        int cout = c->ch * c->ch_mult[i];
        for (int j = 0; j < L->n_blocks; j++) {
            snprintf(pre, sizeof pre, "down.%d.block.%d", i, j);
            resblock_build(&L->block[j], ps, pre, cin, cout, temb_ch);
            cin = cout;
        }
        for (int j = 0; L->has_attn && j < L->n_blocks; j++) {
            snprintf(pre, sizeof pre, "down.%d.attn.%d", i, j);
            attn_build(&L->attn[j], ps, pre, cout, c->groups);
        }
        L->resample_weight = L->resample_bias = NULL;
        if (i != c->n_levels - 1) {
            snprintf(pre, sizeof pre, "down.%d.downsample.conv", i);
            L->resample_weight = param(ps, pre, "weight", CONV(cin, cin, 3));
            L->resample_bias = param(ps, pre, "bias", VEC(cin));
            res /= 2;
        }
    }
    return cin;
}

// Skip widths, in the order the way down produces them: conv_in's output,
// then each block's, then each downsample's.
static int skip_widths(const UNetConfig *c, int *w)
{
    int n = 0;
    w[n++] = c->ch;
    for (int i = 0; i < c->n_levels; i++) {
        for (int j = 0; j < c->num_res_blocks; j++) w[n++] = c->ch * c->ch_mult[i];
        if (i != c->n_levels - 1) w[n++] = c->ch * c->ch_mult[i];
    }
    return n;
}

// The way up mirrors the way down with one more ResBlock per level; each
// block's input is [h, skip] concatenated along channels.
static void build_up(UNet *net, int cin, int temb_ch)
{
    const UNetConfig *c = &net->cfg;
    int skips[1 + UNET_MAX_LEVELS * UNET_MAX_BLOCKS], n_skips = skip_widths(c, skips);
    char pre[64];
    for (int i = c->n_levels - 1; i >= 0; i--) {   // built deepest first, as the data flows
        UNetLevel *L = &net->up[i];
        L->res = net->down[i].res;
        L->n_blocks = c->num_res_blocks + 1;
        L->has_attn = has_attn(c, L->res);
        int cout = c->ch * c->ch_mult[i];
        for (int j = 0; j < L->n_blocks; j++) {
            L->block[j].cin = cin + skips[--n_skips];
            L->block[j].cout = cout;
            cin = cout;
        }
        L->resample_weight = NULL;
    }
    // Register in PyTorch's order: up.0 first (the ModuleList is indexed by level).
    for (int i = 0; i < c->n_levels; i++) {
        UNetLevel *L = &net->up[i];
        for (int j = 0; j < L->n_blocks; j++) {
            snprintf(pre, sizeof pre, "up.%d.block.%d", i, j);
            resblock_build(&L->block[j], &net->params, pre, L->block[j].cin,
                           L->block[j].cout, temb_ch);
        }
        for (int j = 0; L->has_attn && j < L->n_blocks; j++) {
            snprintf(pre, sizeof pre, "up.%d.attn.%d", i, j);
            attn_build(&L->attn[j], &net->params, pre, L->block[j].cout, c->groups);
        }
        if (i != 0) {
            int w = L->block[0].cout;
            snprintf(pre, sizeof pre, "up.%d.upsample.conv", i);
            L->resample_weight = param(&net->params, pre, "weight", CONV(w, w, 3));
            L->resample_bias = param(&net->params, pre, "bias", VEC(w));
        }
    }
}

static double resblock_params(double cin, double cout, double temb)
{
    return 2 * cin + 9 * cout * cin + cout + cout * temb + cout + 2 * cout + 9 * cout * cout +
           cout + (cin != cout ? cout * cin + cout : 0);
}

static double attn_params(double C)
{
    return 2 * C + 4 * (C * C + C);
}

// The parameter count of the network unet_build makes from c (its widths
// checked), without building it: unet_config_check refuses a network too
// large to allocate before anything is allocated.
double unet_config_params(const UNetConfig *c)
{
    int skips[1 + UNET_MAX_LEVELS * UNET_MAX_BLOCKS], n_skips = skip_widths(c, skips);
    double ch = c->ch, temb = 4 * ch, cin = ch;
    double n = temb * ch + temb + temb * temb + temb + 9 * ch * c->in_ch + ch;
    for (int i = 0, res = c->resolution; i < c->n_levels; i++, res /= 2) {
        double cout = ch * c->ch_mult[i];
        for (int j = 0; j < c->num_res_blocks; j++, cin = cout)
            n += resblock_params(cin, cout, temb) + (has_attn(c, res) ? attn_params(cout) : 0);
        if (i != c->n_levels - 1) n += 9 * cin * cin + cin;
    }
    n += 2 * resblock_params(cin, cin, temb) + attn_params(cin);
    for (int i = c->n_levels - 1; i >= 0; i--) {
        double cout = ch * c->ch_mult[i];
        int res = c->resolution >> i;
        for (int j = 0; j < c->num_res_blocks + 1; j++, cin = cout)
            n += resblock_params(cin + skips[--n_skips], cout, temb) +
                 (has_attn(c, res) ? attn_params(cout) : 0);
        if (i != 0) n += 9 * cout * cout + cout;
    }
    return n + 2 * ch + 9 * c->out_ch * ch + c->out_ch;
}

void unet_build(UNet *net, const UNetConfig *cfg)
{
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    ParamSet *ps = &net->params;
    params_init(ps);
    int ch = cfg->ch, temb_ch = 4 * ch;
    net->temb0_weight = params_add(ps, "temb.dense.0.weight", MAT(temb_ch, ch));
    net->temb0_bias = params_add(ps, "temb.dense.0.bias", VEC(temb_ch));
    net->temb1_weight = params_add(ps, "temb.dense.1.weight", MAT(temb_ch, temb_ch));
    net->temb1_bias = params_add(ps, "temb.dense.1.bias", VEC(temb_ch));
    net->conv_in_weight = params_add(ps, "conv_in.weight", CONV(ch, cfg->in_ch, 3));
    net->conv_in_bias = params_add(ps, "conv_in.bias", VEC(ch));
    int w = build_down(net, temb_ch);
    resblock_build(&net->mid_block_1, ps, "mid.block_1", w, w, temb_ch);
    attn_build(&net->mid_attn_1, ps, "mid.attn_1", w, cfg->groups);
    resblock_build(&net->mid_block_2, ps, "mid.block_2", w, w, temb_ch);
    build_up(net, w, temb_ch);
    net->norm_out_weight = params_add(ps, "norm_out.weight", VEC(ch));
    net->norm_out_bias = params_add(ps, "norm_out.bias", VEC(ch));
    net->conv_out_weight = params_add(ps, "conv_out.weight", CONV(cfg->out_ch, ch, 3));
    net->conv_out_bias = params_add(ps, "conv_out.bias", VEC(cfg->out_ch));
    params_alloc(ps);
}

void unet_free(UNet *net)
{
    params_free(&net->params);
}

/* ---- initialisation ------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// The official code's default_init: variance scaling, fan_avg, uniform, so
// w ~ U(-a, a) with a = sqrt(3 scale / ((fan_in + fan_out) / 2)). Biases are
// zero, GroupNorm scales one. The last conv of every residual branch (conv2,
// proj_out) and conv_out use scale 1e-10: each block starts as the identity
// and the whole network starts by predicting eps = 0.
void unet_init_weights(UNet *net, Rng *rng)
{
    ParamSet *ps = &net->params;
    for (int i = 0; i < ps->count; i++) {
        Tensor *p = ps->params[i];
        if (p->ndim == 1) {
            vec_fill(p->data, ends_with(p->name, "norm1.weight") ||
                              ends_with(p->name, "norm2.weight") ||
                              ends_with(p->name, "norm.weight") ||
                              !strcmp(p->name, "norm_out.weight") ? 1 : 0, p->size);
            continue;
        }
        size_t receptive = p->ndim == 4 ? (size_t)p->shape[2] * p->shape[3] : 1;
        double fan_in = (double)p->shape[1] * receptive, fan_out = (double)p->shape[0] * receptive;
        double scale = ends_with(p->name, "conv2.weight") || ends_with(p->name, "proj_out.weight") ||
                       !strcmp(p->name, "conv_out.weight") ? 1e-10 : 1.0;
        double a = sqrt(3 * scale / ((fan_in + fan_out) / 2));
        rng_fill_uniform(rng, p->data, p->size, (real)-a, (real)a);
    }
}

/* ---- the forward pass ---------------------------------------------------- */

// Transformer-style sinusoids of the timestep (official get_timestep_embedding):
// out[n, i] = sin(t_n f_i), out[n, half + i] = cos(t_n f_i),
// f_i = exp(-ln(10000) i / (half - 1)). Computed in `real`, as the official
// code does in float32, so the float build matches it to the last bits.
void timestep_embedding(real *out, const int *t, int N, int dim)
{
    int half = dim / 2;
    real step = (real)(log(10000.0) / (half - 1));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < half; i++) {
            real arg = (real)t[n] * exp((real)i * -step);
            out[(size_t)n * dim + i] = sin(arg);
            out[(size_t)n * dim + half + i] = cos(arg);
        }
}

#define GN_EPS ((real)1e-6)

// One residual block; temb_act = SiLU(temb) [N, 4ch] is shared by all blocks.
static Tensor *resblock_forward(Tape *tp, const ResBlock *b, const UNetConfig *c,
                                Tensor *x, Tensor *temb_act, Rng *rng, int train)
{
    Tensor *h = ag_silu(tp, ag_group_norm(tp, x, b->norm1_weight, b->norm1_bias,
                                          c->groups, GN_EPS));
    h = ag_conv3x3(tp, h, b->conv1_weight, b->conv1_bias);
    Tensor *proj = ag_linear(tp, temb_act, b->temb_proj_weight, b->temb_proj_bias);
    h = ag_add_channel(tp, h, proj);                       // + [N, cout] over H, W
    h = ag_silu(tp, ag_group_norm(tp, h, b->norm2_weight, b->norm2_bias, c->groups, GN_EPS));
    h = ag_dropout(tp, h, c->dropout, rng, train);
    h = ag_conv3x3(tp, h, b->conv2_weight, b->conv2_bias);
    if (b->nin_shortcut_weight)
        x = ag_conv1x1(tp, x, b->nin_shortcut_weight, b->nin_shortcut_bias);
    return ag_add(tp, x, h);
}

// A level's ResBlock j, followed by its AttnBlock where the level has one.
static Tensor *level_block(Tape *tp, const UNetLevel *L, int j, const UNetConfig *c,
                           Tensor *x, Tensor *temb_act, Rng *rng, int train)
{
    Tensor *h = resblock_forward(tp, &L->block[j], c, x, temb_act, rng, train);
    return L->has_attn ? attn_block_forward(tp, &L->attn[j], h) : h;
}

Tensor *unet_forward(Tape *tp, const UNet *net, Tensor *x, const int *t, Rng *rng, int train)
{
    const UNetConfig *c = &net->cfg;
    int N = x->shape[0];
    DDPM_CHECK(x->ndim == 4 && x->shape[1] == c->in_ch && x->shape[2] == c->resolution &&
               x->shape[3] == c->resolution, "unet_forward: input is not [N,%d,%d,%d]",
               c->in_ch, c->resolution, c->resolution);
    // Timestep embedding -> Linear -> SiLU -> Linear; blocks see SiLU of it.
    Tensor *temb = tensor_2d(tp->arena, N, c->ch);
    timestep_embedding(temb->data, t, N, c->ch);
    temb = ag_linear(tp, temb, net->temb0_weight, net->temb0_bias);
    temb = ag_linear(tp, ag_silu(tp, temb), net->temb1_weight, net->temb1_bias);
    Tensor *temb_act = ag_silu(tp, temb);

    // Down: every intermediate result is kept as a skip connection.
    Tensor *hs[1 + UNET_MAX_LEVELS * UNET_MAX_BLOCKS];
    int n = 0;
    hs[n++] = ag_conv3x3(tp, x, net->conv_in_weight, net->conv_in_bias);
    for (int i = 0; i < c->n_levels; i++) {
        const UNetLevel *L = &net->down[i];
        for (int j = 0; j < L->n_blocks; j++, n++)
            hs[n] = level_block(tp, L, j, c, hs[n - 1], temb_act, rng, train);
        if (L->resample_weight) {
            hs[n] = ag_conv3x3_down(tp, hs[n - 1], L->resample_weight, L->resample_bias);
            n++;
        }
    }
    // Middle: ResBlock, attention, ResBlock at the lowest resolution.
    Tensor *h = resblock_forward(tp, &net->mid_block_1, c, hs[n - 1], temb_act, rng, train);
    h = attn_block_forward(tp, &net->mid_attn_1, h);
    h = resblock_forward(tp, &net->mid_block_2, c, h, temb_act, rng, train);

    // Up: each block eats the most recent unused skip.
    for (int i = c->n_levels - 1; i >= 0; i--) {
        const UNetLevel *L = &net->up[i];
        for (int j = 0; j < L->n_blocks; j++)
            h = level_block(tp, L, j, c, ag_concat(tp, h, hs[--n]), temb_act, rng, train);
        if (L->resample_weight)
            h = ag_conv3x3(tp, ag_upsample2x(tp, h), L->resample_weight, L->resample_bias);
    }
    h = ag_silu(tp, ag_group_norm(tp, h, net->norm_out_weight, net->norm_out_bias,
                                  c->groups, GN_EPS));
    return ag_conv3x3(tp, h, net->conv_out_weight, net->conv_out_bias);
}

/* ---- the architecture as a picture ----------------------------------------- */

// A U drawn by Graphviz: the way down on the left (top to bottom), the way up
// on the right (bottom to top), each skip connection a dashed edge between
// the two nodes that share a rank. Built from the model's own structure.
void unet_write_dot(const UNet *net, FILE *f)
{
    const UNetConfig *c = &net->cfg;
    char cfgs[256];
    unet_config_str(c, cfgs, sizeof cfgs);
    fprintf(f, "digraph unet {\n  rankdir=TB; nodesep=0.6; ranksep=0.25;\n"
               "  label=\"%s\\n%zu parameters\"; labelloc=t;\n"
               "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
               "fontsize=10, fillcolor=\"#dde8f5\"];\n", cfgs, net->params.total);
    int n = 0, res = c->resolution;
    fprintf(f, "  d0 [label=\"conv_in 3x3\\n%d -> %d @ %dx%d\", fillcolor=\"#f5e6c8\"];\n",
            c->in_ch, c->ch, res, res);
    for (int i = 0; i < c->n_levels; i++) {
        const UNetLevel *L = &net->down[i];
        for (int j = 0; j < L->n_blocks; j++, n++)
            fprintf(f, "  d%d [label=\"down.%d.block.%d%s\\nResBlock %d -> %d @ %dx%d\"];\n"
                       "  d%d -> d%d;\n", n + 1, i, j, L->has_attn ? " + attn" : "",
                    L->block[j].cin, L->block[j].cout, L->res, L->res, n, n + 1);
        if (L->resample_weight) {
            fprintf(f, "  d%d [label=\"down.%d.downsample\\nconv 3x3 stride 2 -> %dx%d\", "
                       "fillcolor=\"#f5e6c8\"];\n  d%d -> d%d;\n",
                    n + 1, i, L->res / 2, L->res / 2, n, n + 1);
            n++;
        }
    }
    int w = net->mid_block_1.cout, lo = net->down[c->n_levels - 1].res;
    fprintf(f, "  mid [label=\"mid: ResBlock, attention, ResBlock\\n%d @ %dx%d\", "
               "fillcolor=\"#e6d5f0\"];\n  d%d -> mid;\n", w, lo, lo, n);
    char prev[16] = "mid", cur[16];
    for (int i = c->n_levels - 1; i >= 0; i--) {
        const UNetLevel *L = &net->up[i];
        for (int j = 0; j < L->n_blocks; j++) {
            snprintf(cur, sizeof cur, "u%d", n);
            fprintf(f, "  %s [label=\"up.%d.block.%d%s%s\\nResBlock %d -> %d @ %dx%d\"];\n",
                    cur, i, j, L->has_attn ? " + attn" : "",
                    j == L->n_blocks - 1 && L->resample_weight ? " + upsample" : "",
                    L->block[j].cin, L->block[j].cout, L->res, L->res);
            fprintf(f, "  %s -> %s [dir=back];\n  { rank=same; d%d; %s; }\n"
                       "  d%d -> %s [style=dashed, color=\"#888888\", constraint=false];\n",
                    cur, prev, n, cur, n, cur);
            strcpy(prev, cur);
            n--;
        }
    }
    fprintf(f, "  out [label=\"GroupNorm, SiLU, conv_out 3x3\\n%d -> %d: eps_theta\", "
               "fillcolor=\"#f5e6c8\"];\n  out -> u0 [dir=back];\n}\n", c->ch, c->out_ch);
}

static Tensor *unet_model_forward(Tape *tp, const void *ctx, Tensor *xt, const int *t,
                                  Rng *dropout_rng)
{
    return unet_forward(tp, ctx, xt, t, dropout_rng, dropout_rng != NULL);
}

Model unet_model(const UNet *net)
{
    return (Model){unet_model_forward, net, net->cfg.in_ch, net->cfg.out_ch,
                   net->cfg.resolution};
}
