/* optim.c: SGD and Adam as torch.optim 1.13 steps them, and FedProx. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "util.h"

void
fl_optim_defaults(struct fl_optim_opts *o, enum fl_optim_kind kind)
{
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->lr = kind == FL_OPTIM_ADAM ? 1e-3 : 1e-2;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
}

static int
check_opts(const struct fl_optim_opts *o, char *err)
{
	if (o->kind != FL_OPTIM_SGD && o->kind != FL_OPTIM_ADAM)
		return fl_err(err, FL_EUSAGE, "unknown optimizer %d",
		    (int)o->kind);
	if (!(o->lr >= 0))
		return fl_err(err, FL_EUSAGE, "invalid learning rate %g",
		    o->lr);
	if (!(o->weight_decay >= 0))
		return fl_err(err, FL_EUSAGE, "invalid weight decay %g",
		    o->weight_decay);
	if (o->kind == FL_OPTIM_SGD) {
		if (!(o->momentum >= 0))
			return fl_err(err, FL_EUSAGE, "invalid momentum %g",
			    o->momentum);
		if (!(o->dampening >= 0 && o->dampening <= 1))
			return fl_err(err, FL_EUSAGE, "invalid dampening %g",
			    o->dampening);
		if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
			return fl_err(err, FL_EUSAGE,
			    "nesterov needs a momentum and zero dampening");
		return FL_OK;
	}
	if (!(o->beta1 >= 0 && o->beta1 < 1))
		return fl_err(err, FL_EUSAGE, "invalid beta1 %g", o->beta1);
	if (!(o->beta2 >= 0 && o->beta2 < 1))
		return fl_err(err, FL_EUSAGE, "invalid beta2 %g", o->beta2);
	if (!(o->eps >= 0))
		return fl_err(err, FL_EUSAGE, "invalid epsilon %g", o->eps);
	return FL_OK;
}

int
fl_optim_init(struct fl_optim *opt, const struct fl_optim_opts *o, size_t n,
    char *err)
{
	int rc;
	size_t sz = (n ? n : 1) * sizeof(float);

	memset(opt, 0, sizeof *opt);
	if ((rc = check_opts(o, err)) != FL_OK)
		return rc;
	opt->o = *o;
	opt->n = n;
	if (o->kind == FL_OPTIM_ADAM || o->momentum != 0)
		opt->m = calloc(1, sz);
	if (o->kind == FL_OPTIM_ADAM)
		opt->v = calloc(1, sz);
	if ((o->kind == FL_OPTIM_ADAM && (!opt->m || !opt->v)) ||
	    (o->momentum != 0 && !opt->m)) {
		fl_optim_release(opt);
		return fl_err(err, FL_EFAIL,
		    "out of memory for the state of %zu parameters", n);
	}
	return FL_OK;
}

void
fl_optim_release(struct fl_optim *opt)
{
	free(opt->m);
	free(opt->v);
	memset(opt, 0, sizeof *opt);
}

void
fl_optim_reset(struct fl_optim *opt)
{
	opt->step = 0;
	if (opt->m)
		memset(opt->m, 0, opt->n * sizeof *opt->m);
	if (opt->v)
		memset(opt->v, 0, opt->n * sizeof *opt->v);
}

/*
 * Elementwise loops run in blocks of BLOCK: with a trip count known at
 * compile time, gcc -O2's cheap vectorizer turns each into SIMD code.
 */
#define BLOCK 64

/*
 * torch: d = g + wd w; buf = d on the first step, then
 * buf = momentum buf + (1 - dampening) d; d = d + momentum buf (nesterov)
 * or buf; w = w - lr d. The scalars are cast to float as torch does.
 */
static inline void
sgd_plain(float *restrict w, const float *restrict g, float lr, float wd,
    size_t n)
{
	for (size_t i = 0; i < n; i++)
		w[i] += lr * (g[i] + wd * w[i]);
}

/* bm, bd: momentum and 1 - dampening, or 0 and 1 to set buf = d. */
static inline void
sgd_momentum(float *restrict w, float *restrict buf, const float *restrict g,
    float lr, float wd, float bm, float bd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float b = buf[i] * bm + bd * (g[i] + wd * w[i]);

		buf[i] = b;
		w[i] += lr * b;
	}
}

static inline void
sgd_nesterov(float *restrict w, float *restrict buf, const float *restrict g,
    float lr, float wd, float bm, float bd, float mom, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + wd * w[i];
		float b = buf[i] * bm + bd * d;

		buf[i] = b;
		w[i] += lr * (d + mom * b);
	}
}

static void
sgd_step(struct fl_optim *opt, float *w, const float *g)
{
	const struct fl_optim_opts *o = &opt->o;
	float lr = (float)-o->lr, wd = (float)o->weight_decay;
	float mom = (float)o->momentum, damp = (float)(1.0 - o->dampening);
	int first = opt->step == 0;
	/* The first step sets buf = d, computed as 0 buf + 1 d. */
	float bm = first ? 0.0f : mom, bd = first ? 1.0f : damp;
	float *buf = opt->m;
	size_t n = opt->n, i = 0;

	if (!buf) {
		for (; i + BLOCK <= n; i += BLOCK)
			sgd_plain(w + i, g + i, lr, wd, BLOCK);
		sgd_plain(w + i, g + i, lr, wd, n - i);
	} else if (o->nesterov) {
		for (; i + BLOCK <= n; i += BLOCK)
			sgd_nesterov(w + i, buf + i, g + i, lr, wd, bm, bd, mom,
			    BLOCK);
		sgd_nesterov(w + i, buf + i, g + i, lr, wd, bm, bd, mom, n - i);
	} else {
		for (; i + BLOCK <= n; i += BLOCK)
			sgd_momentum(w + i, buf + i, g + i, lr, wd, bm, bd,
			    BLOCK);
		sgd_momentum(w + i, buf + i, g + i, lr, wd, bm, bd, n - i);
	}
}

struct adam_k {
	float b1, c1, b2, c2, step, rbc2s, eps, wd;
};

static inline void
adam_block(float *restrict w, float *restrict m, float *restrict v,
    const float *restrict g, const struct adam_k *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float d = g[i] + k->wd * w[i];
		float mi = m[i] * k->b1 + k->c1 * d;
		float vi = v[i] * k->b2 + k->c2 * d * d;

		m[i] = mi;
		v[i] = vi;
		w[i] += k->step * (mi / (sqrtf(vi) * k->rbc2s + k->eps));
	}
}

/*
 * torch 1.13 Adam: d = g + wd w; m = beta1 m + (1 - beta1) d;
 * v = beta2 v + (1 - beta2) d^2;
 * w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
 * with bias corrections bc = 1 - beta^step computed in double. Dividing by
 * sqrt(bc2) becomes multiplying by its reciprocal (within an ulp of torch):
 * the divider's throughput bounds this loop.
 */
static void
adam_step(struct fl_optim *opt, float *w, const float *g)
{
	const struct fl_optim_opts *o = &opt->o;
	double t = (double)opt->step + 1;
	double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
	struct adam_k k = {
		.b1 = (float)o->beta1, .c1 = (float)(1.0 - o->beta1),
		.b2 = (float)o->beta2, .c2 = (float)(1.0 - o->beta2),
		.step = (float)(-o->lr / bc1),
		.rbc2s = (float)(1.0 / sqrt(bc2)),
		.eps = (float)o->eps, .wd = (float)o->weight_decay,
	};
	size_t n = opt->n, i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		adam_block(w + i, opt->m + i, opt->v + i, g + i, &k, BLOCK);
	adam_block(w + i, opt->m + i, opt->v + i, g + i, &k, n - i);
}

void
fl_optim_step(struct fl_optim *opt, float *w, const float *g)
{
	if (opt->o.kind == FL_OPTIM_ADAM)
		adam_step(opt, w, g);
	else
		sgd_step(opt, w, g);
	opt->step++;
}

const char *
fl_optim_name(enum fl_optim_kind kind)
{
	return kind == FL_OPTIM_ADAM ? "adam" : "sgd";
}

int
fl_optim_parse(const char *s, enum fl_optim_kind *kind)
{
	if (strcmp(s, "sgd") == 0)
		*kind = FL_OPTIM_SGD;
	else if (strcmp(s, "adam") == 0)
		*kind = FL_OPTIM_ADAM;
	else
		return FL_EUSAGE;
	return FL_OK;
}

static inline void
prox_block(float *restrict g, const float *restrict w,
    const float *restrict w0, float mu, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g[i] += mu * (w[i] - w0[i]);
}

void
fl_prox_grad(float *g, const float *w, const float *w0, float mu, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		prox_block(g + i, w + i, w0 + i, mu, BLOCK);
	prox_block(g + i, w + i, w0 + i, mu, n - i);
}
