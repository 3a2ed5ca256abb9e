/* gauss_model.c — see gauss_model.h. */
#include "gauss_model.h"

#include <check.h>
#include <math.h>
#include <string.h>

double gauss_posterior_x0(const GaussModel *g, double xt, int t)
{
    double abar = g->df->sched->alphas_cumprod[t];
    return g->m + sqrt(abar) * g->s2 * (xt - sqrt(abar) * g->m) / (abar * g->s2 + 1 - abar);
}

static Tensor *gauss_forward(Tape *tp, const void *ctx, Tensor *xt, const int *t,
                             Rng *dropout_rng)
{
    (void)dropout_rng;   // a formula: nothing to drop
    const GaussModel *g = ctx;
    const Schedule *s = g->df->sched;
    int N = xt->shape[0], C = xt->shape[1], learned = g->df->var == VAR_LEARNED;
    size_t D = (size_t)C * xt->shape[2] * xt->shape[3];
    Tensor *out = tensor_4d(tp->arena, N, learned ? 2 * C : C, xt->shape[2], xt->shape[3]);
    for (int n = 0; n < N; n++) {
        double abar = s->alphas_cumprod[t[n]];
        real *o = out->data + (size_t)n * (learned ? 2 : 1) * D;
        const real *x = xt->data + (size_t)n * D;
        for (size_t i = 0; i < D; i++) {
            double x0 = gauss_posterior_x0(g, x[i], t[n]);
            if (g->df->mean == MEAN_X0) o[i] = (real)x0;
            else if (g->df->mean == MEAN_EPS) o[i] = (real)((x[i] - sqrt(abar) * x0) / sqrt(1 - abar));
            else o[i] = (real)(s->posterior_mean_coef1[t[n]] * x0 + s->posterior_mean_coef2[t[n]] * x[i]);
            if (learned) o[D + i] = (real)g->v;
        }
    }
    return out;
}

Model gauss_model(const GaussModel *g)
{
    int out = g->df->var == VAR_LEARNED ? 2 * g->channels : g->channels;
    return (Model){gauss_forward, g, g->channels, out, g->resolution};
}

void gauss_fixture(GaussFixture *f, int T, double b0, double b1, const char *mean,
                   const char *var, double m, double s2, int R)
{
    Error err;
    ck_assert_msg(schedule_init(&f->sched, "linear", T, b0, b1, &err) == 0, "%s", err.msg);
    ck_assert_msg(diffusion_parse(&f->df, mean, var, strcmp(var, "learned") ? "simple" : "vlb",
                                  &err) == 0, "%s", err.msg);
    f->df.sched = &f->sched;
    f->g = (GaussModel){&f->df, m, s2, 0, 1, R};
    f->model = gauss_model(&f->g);
    f->s = (Sampler){.df = &f->df, .model = &f->model, .clip = 0, .batch = 64};
}
