/* test_nn.c: layers, losses, networks and optimizers against PyTorch. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "optim.h"
#include "rng.h"
#include "util.h"
#include "unit.h"

#define GOLDEN "tests/fixtures/golden/"
#define MAXT 64

/* A fixture file: "tensor NAME DIMS..." lines, each followed by values. */
struct tensor {
	char name[64];
	int ndim, shape[4];
	size_t n;
	float *v;
};

struct golden {
	int nt;
	struct tensor t[MAXT];
};

static int
golden_load(struct golden *g, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];

	memset(g, 0, sizeof *g);
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		struct tensor *t;
		char *p, *end;

		if (strncmp(line, "tensor ", 7) != 0 || g->nt == MAXT)
			continue;
		t = &g->t[g->nt++];
		p = line + 7;
		t->n = 1;
		if (sscanf(p, "%63s", t->name) != 1)
			goto bad;
		p += strlen(t->name);
		for (;;) {
			long d = strtol(p, &end, 10);
			if (end == p)
				break;
			if (t->ndim == 4 || d < 0)
				goto bad;
			t->shape[t->ndim++] = (int)d;
			t->n *= (size_t)d;
			p = end;
		}
		if (!(t->v = malloc(t->n * sizeof *t->v)))
			goto bad;
		for (size_t i = 0; i < t->n; i++)
			if (fscanf(f, "%f", &t->v[i]) != 1)
				goto bad;
	}
	fclose(f);
	return 0;
bad:
	fclose(f);
	return -1;
}

static void
golden_free(struct golden *g)
{
	for (int i = 0; i < g->nt; i++)
		free(g->t[i].v);
}

static const struct tensor *
golden_get(const struct golden *g, const char *name)
{
	for (int i = 0; i < g->nt; i++)
		if (strcmp(g->t[i].name, name) == 0)
			return &g->t[i];
	return NULL;
}

static void
arch_add(struct fl_arch *a, enum fl_layer_type type, int out, float p)
{
	struct fl_layer *l = &a->layer[a->nlayers];

	l->type = type;
	l->in = a->nlayers ? a->layer[a->nlayers - 1].out : 0;
	l->out = type == FL_LINEAR ? out : l->in;
	l->p = p;
	a->nlayers++;
}

/* Layers after an input width: a positive number is a Linear's width. */
static struct fl_arch
make_arch(int in, enum fl_loss loss, const int *spec, int n)
{
	struct fl_arch a;

	memset(&a, 0, sizeof a);
	a.loss = loss;
	for (int i = 0; i < n; i++) {
		if (spec[i] > 0) {
			arch_add(&a, FL_LINEAR, spec[i], 0);
			if (a.nlayers == 1)
				a.layer[0].in = in;
		} else {
			arch_add(&a, (enum fl_layer_type)(-spec[i]), 0,
			    spec[i] == -FL_DROPOUT ? 0.5f : 0.0f);
		}
	}
	return a;
}

static void
load_params(struct fl_net *net, const struct golden *g, const char *prefix)
{
	char name[64];

	for (int i = 0; i < net->ntensors; i++) {
		const struct fl_param *p = fl_net_param(net, i);
		const struct tensor *t;

		snprintf(name, sizeof name, "%s.%s", prefix, p->name);
		if ((t = golden_get(g, name)) && t->n == p->n)
			memcpy(p->data, t->v, p->n * sizeof(float));
	}
}

static double
compare_params(const struct fl_net *net, const struct golden *g,
    const char *prefix, int grad)
{
	char name[64];
	double worst = 0;

	for (int i = 0; i < net->ntensors; i++) {
		const struct fl_param *p = fl_net_param(net, i);
		const struct tensor *t;
		double r;

		snprintf(name, sizeof name, "%s.%s", prefix, p->name);
		if (!(t = golden_get(g, name)) || t->n != p->n)
			return INFINITY;
		r = unit_maxrel(grad ? p->grad : p->data, t->v, p->n, 1e-3);
		if (r > worst)
			worst = r;
	}
	return worst;
}

/* The labels of a fixture as the loss wants them. */
static const void *
labels(const struct tensor *y, enum fl_loss loss, int32_t *idx)
{
	if (loss == FL_LOSS_MSE)
		return y->v;
	for (size_t i = 0; i < y->n; i++)
		idx[i] = (int32_t)y->v[i];
	return idx;
}

static void
golden_case(const char *file, const struct fl_arch *arch)
{
	struct golden g;
	struct fl_net net;
	char err[FL_ERRLEN] = "", path[256];
	const struct tensor *x, *y, *out, *loss;
	int32_t idx[64];
	const void *lab;
	const float *o;
	float l;
	int B, ok, nlin;

	snprintf(path, sizeof path, GOLDEN "%s", file);
	ok = golden_load(&g, path) == 0;
	CHECK(ok, "%s: fixture loads (run from the repository root)", file);
	x = golden_get(&g, "x");
	y = golden_get(&g, "y");
	out = golden_get(&g, "out");
	loss = golden_get(&g, "loss");
	if (!ok || !x || !y || !out || !loss || y->n > 64) {
		golden_free(&g);
		return;
	}
	B = x->shape[0];
	lab = labels(y, arch->loss, idx);
	ok = fl_net_init(&net, arch, 8, err) == FL_OK;
	CHECK(ok, "%s: net init%s%s", file, ok ? "" : ": ", ok ? "" : err);
	if (!ok) {
		golden_free(&g);
		return;
	}

	ok = 1;
	for (int i = 0; i < net.ntensors; i++) {
		const struct fl_param *p = fl_net_param(&net, i);
		char name[64];
		const struct tensor *t;

		snprintf(name, sizeof name, "init.%s", p->name);
		t = golden_get(&g, name);
		if (!t || t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
		    (p->ndim == 2 && t->shape[1] != p->shape[1]))
			ok = 0;
		if (i > 0) {
			const struct fl_param *q = fl_net_param(&net, i - 1);
			if (p->data != q->data + q->n)
				ok = 0;
		}
	}
	nlin = 0;
	for (int i = 0; i < arch->nlayers; i++)
		nlin += arch->layer[i].type == FL_LINEAR;
	CHECK(ok && net.ntensors == 2 * nlin,
	    "%s: %d tensors named and shaped as the state dict, back to back",
	    file, net.ntensors);

	load_params(&net, &g, "init");
	o = fl_net_forward(&net, x->v, B, 1, NULL);
	CHECK(o && unit_maxrel(o, out->v, out->n, 1e-3) < 1e-5,
	    "%s: forward output (maxrel %.2g)", file,
	    o ? unit_maxrel(o, out->v, out->n, 1e-3) : INFINITY);
	CHECK(fabs(fl_net_loss(&net, lab, B) - loss->v[0]) < 1e-5 * loss->v[0],
	    "%s: loss without gradients", file);
	fl_net_zero_grad(&net);
	l = fl_net_backward(&net, lab, B);
	CHECK(fabs(l - loss->v[0]) < 1e-5 * loss->v[0],
	    "%s: loss %.9g, torch %.9g", file, l, loss->v[0]);
	CHECK(compare_params(&net, &g, "grad", 1) < 1e-5,
	    "%s: gradients (maxrel %.2g)", file,
	    compare_params(&net, &g, "grad", 1));

	/* Gradients accumulate, as in PyTorch, until zeroed. */
	fl_net_forward(&net, x->v, B, 1, NULL);
	fl_net_backward(&net, lab, B);
	ok = 1;
	for (int i = 0; i < net.ntensors; i++) {
		const struct fl_param *p = fl_net_param(&net, i);
		const struct tensor *t;
		char name[64];

		snprintf(name, sizeof name, "grad.%s", p->name);
		t = golden_get(&g, name);
		for (size_t j = 0; t && j < p->n; j++)
			if (fabsf(p->grad[j] - 2 * t->v[j]) >
			    1e-5f * (fabsf(t->v[j]) + 1e-3f))
				ok = 0;
	}
	CHECK(ok, "%s: a second backward adds to the gradients", file);

	static const struct {
		const char *label;
		int steps;
		double lr, momentum;
		enum fl_optim_kind kind;
	} runs[] = {
		{ "sgd", 1, 0.1, 0, FL_OPTIM_SGD },
		{ "momentum", 2, 0.1, 0.9, FL_OPTIM_SGD },
		{ "adam", 2, 0.01, 0, FL_OPTIM_ADAM },
	};
	for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
		struct fl_optim_opts oo;
		struct fl_optim opt;
		double worst;

		fl_optim_defaults(&oo, runs[r].kind);
		oo.lr = runs[r].lr;
		oo.momentum = runs[r].momentum;
		if (fl_optim_init(&opt, &oo, net.nparams, err) != FL_OK) {
			CHECK(0, "%s: optimizer init: %s", file, err);
			continue;
		}
		load_params(&net, &g, "init");
		for (int s = 0; s < runs[r].steps; s++) {
			fl_net_zero_grad(&net);
			fl_net_forward(&net, x->v, B, 1, NULL);
			fl_net_backward(&net, lab, B);
			fl_optim_step(&opt, net.params, net.grads);
		}
		worst = compare_params(&net, &g, runs[r].label, 0);
		CHECK(worst < 1e-4,
		    "%s: parameters after %d %s step(s) (maxrel %.2g)", file,
		    runs[r].steps, runs[r].label, worst);
		fl_optim_release(&opt);
	}
	fl_net_release(&net);
	golden_free(&g);
}

static void
test_golden(void)
{
	static const int ce[] = { 8, -FL_RELU, 3 };
	static const int mse[] = { 5, -FL_TANH, 4, -FL_SIGMOID, 2 };
	struct fl_arch a;

	a = make_arch(4, FL_LOSS_SOFTMAX_CE, ce, 3);
	golden_case("mlp_ce.txt", &a);
	a = make_arch(3, FL_LOSS_MSE, mse, 5);
	golden_case("mlp_mse.txt", &a);
}

/* Optimizer options the fixtures lack, against values from torch 1.13:
 * p = Parameter(tensor(W0)); for g in G: p.grad = tensor(g); opt.step() */
static void
test_optim(void)
{
	static const float w0[3] = { 0.5f, -1.25f, 2.0f };
	static const float gs[3][3] = {
		{ 0.1f, -0.2f, 0.3f },
		{ -0.05f, 0.4f, 0.25f },
		{ 0.2f, 0.1f, -0.3f },
	};
	static const struct {
		const char *what;
		enum fl_optim_kind kind;
		double lr, momentum, dampening, wd, beta1, beta2, eps;
		int nesterov;
		float want[3];
	} cases[] = {
		{ "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)",
		    FL_OPTIM_SGD, 0.1, 0.9, 0, 0.01, 0, 0, 0, 1,
		    { 0.437227309f, -1.29863763f, 1.87040889f } },
		{ "SGD(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1)",
		    FL_OPTIM_SGD, 0.1, 0.5, 0.3, 0.1, 0, 0, 0, 0,
		    { 0.456564248f, -1.22079611f, 1.87351811f } },
		{ "Adam(lr=0.01, weight_decay=0.1)", FL_OPTIM_ADAM, 0.01, 0, 0,
		    0.1, 0.9, 0.999, 1e-8, 0,
		    { 0.475223541f, -1.23913085f, 1.97339165f } },
		{ "Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6)", FL_OPTIM_ADAM,
		    0.05, 0, 0, 0, 0.8, 0.99, 1e-6, 0,
		    { 0.404845119f, -1.24368274f, 1.89405537f } },
	};
	char err[FL_ERRLEN];

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct fl_optim_opts o;
		struct fl_optim opt;
		float w[3];

		fl_optim_defaults(&o, cases[c].kind);
		o.lr = cases[c].lr;
		o.momentum = cases[c].momentum;
		o.dampening = cases[c].dampening;
		o.weight_decay = cases[c].wd;
		o.nesterov = cases[c].nesterov;
		if (cases[c].kind == FL_OPTIM_ADAM) {
			o.beta1 = cases[c].beta1;
			o.beta2 = cases[c].beta2;
			o.eps = cases[c].eps;
		}
		memcpy(w, w0, sizeof w);
		CHECK(fl_optim_init(&opt, &o, 3, err) == FL_OK, "%s: init",
		    cases[c].what);
		for (int s = 0; s < 3; s++)
			fl_optim_step(&opt, w, gs[s]);
		CHECK(unit_maxrel(w, cases[c].want, 3, 1e-3) < 1e-5,
		    "%s: 3 steps as torch (maxrel %.2g)", cases[c].what,
		    unit_maxrel(w, cases[c].want, 3, 1e-3));
		/* After a reset it steps as a new optimizer. */
		fl_optim_reset(&opt);
		memcpy(w, w0, sizeof w);
		for (int s = 0; s < 3; s++)
			fl_optim_step(&opt, w, gs[s]);
		CHECK(unit_maxrel(w, cases[c].want, 3, 1e-3) < 1e-5,
		    "%s: the same after fl_optim_reset", cases[c].what);
		fl_optim_release(&opt);
	}

	/* By hand, one nesterov step: d = 0.1 + 0.01*0.5 = 0.105, buf = d,
	 * w = 0.5 - 0.1 * (d + 0.9 buf) = 0.48005. */
	{
		struct fl_optim_opts o;
		struct fl_optim opt;
		float w = 0.5f, g = 0.1f;

		fl_optim_defaults(&o, FL_OPTIM_SGD);
		o.lr = 0.1;
		o.momentum = 0.9;
		o.nesterov = 1;
		o.weight_decay = 0.01;
		fl_optim_init(&opt, &o, 1, err);
		fl_optim_step(&opt, &w, &g);
		CHECK(fabsf(w - 0.48005f) < 1e-6f,
		    "nesterov step by hand: %.9g", w);
		fl_optim_release(&opt);
	}

	{
		struct fl_optim_opts o;
		struct fl_optim opt;
		enum fl_optim_kind k;

		fl_optim_defaults(&o, FL_OPTIM_SGD);
		o.nesterov = 1;
		CHECK(fl_optim_init(&opt, &o, 3, err) == FL_EUSAGE && *err,
		    "nesterov without momentum refused: %s", err);
		fl_optim_defaults(&o, FL_OPTIM_ADAM);
		o.beta2 = 1.0;
		CHECK(fl_optim_init(&opt, &o, 3, err) == FL_EUSAGE,
		    "beta2 1 refused: %s", err);
		CHECK(fl_optim_parse("adam", &k) == FL_OK &&
			k == FL_OPTIM_ADAM &&
			fl_optim_parse("sgd", &k) == FL_OK &&
			k == FL_OPTIM_SGD &&
			fl_optim_parse("rmsprop", &k) == FL_EUSAGE &&
			strcmp(fl_optim_name(FL_OPTIM_ADAM), "adam") == 0,
		    "optimizer names");
	}

	/* FedProx: g += mu (w - w0). */
	{
		float g[3] = { 1, 2, 3 }, w[3] = { 1, 1, 1 },
		      ref[3] = { 0, 2, 4 };
		float want[3] = { 1.1f, 1.9f, 2.7f };

		fl_prox_grad(g, w, ref, 0.1f, 3);
		CHECK(unit_maxrel(g, want, 3, 1e-6) < 1e-6,
		    "fedprox gradient term");
	}
}

static void
test_layers(void)
{
	/* A numerically stable softmax cross-entropy. */
	{
		float logits[6] = { 1000, -1000, 0, -50, 50, 50 }, d[6] = { 0 };
		int32_t y[2] = { 0, 1 };
		float l = fl_softmax_ce(d, logits, y, 2, 3);

		/* row 0: loss 0; row 1: log(2) */
		CHECK(fabsf(l - 0.34657359f) < 1e-6f,
		    "softmax-ce stable on large logits: %g", l);
		CHECK(fabsf(d[0]) < 1e-7f && fabsf(d[4] + 0.25f) < 1e-7f &&
			fabsf(d[5] - 0.25f) < 1e-7f && fabsf(d[3]) < 1e-7f,
		    "softmax-ce gradient on large logits");
		y[1] = 3;
		CHECK(isnan(fl_softmax_ce(NULL, logits, y, 2, 3)),
		    "label out of range gives NAN");
		y[1] = -1;
		CHECK(isnan(fl_softmax_ce(NULL, logits, y, 2, 3)),
		    "negative label gives NAN");
		y[1] = 2;
		CHECK(fl_count_correct(logits, y, 2, 3) == 1, "count correct");
	}

	/* Linear by hand: out = in w^T + b, and its gradients. */
	{
		float in[2 * 3] = { 1, 2, 3, -1, 0, 1 };
		float w[2 * 3] = { 0.5f, -1, 2, 1, 1, 1 }, b[2] = { 0.25f, -1 };
		float out[4], want[4] = { 4.75f, 5, 1.75f, -1 };
		float dout[4] = { 1, 0, 0, 1 }, din[6] = { 0 }, dw[6] = { 0 },
		      db[2] = { 0 };
		float wdin[6] = { 0.5f, -1, 2, 1, 1, 1 };
		float wdw[6] = { 1, 2, 3, -1, 0, 1 }, wdb[2] = { 1, 1 };

		fl_linear_forward(out, in, w, b, 2, 3, 2);
		CHECK(unit_maxrel(out, want, 4, 1e-6) < 1e-6,
		    "linear forward by hand");
		fl_linear_backward(din, dw, db, dout, in, w, 2, 3, 2);
		CHECK(unit_maxrel(din, wdin, 6, 1e-6) < 1e-6 &&
			unit_maxrel(dw, wdw, 6, 1e-6) < 1e-6 &&
			unit_maxrel(db, wdb, 2, 1e-6) < 1e-6,
		    "linear backward by hand");
		fl_linear_backward(NULL, dw, db, dout, in, w, 2, 3, 2);
		for (int i = 0; i < 6; i++)
			wdw[i] *= 2;
		CHECK(unit_maxrel(dw, wdw, 6, 1e-6) < 1e-6,
		    "linear backward accumulates, din NULL");
		fl_linear_forward(out, in, w, NULL, 2, 3, 2);
		CHECK(fabsf(out[0] - 4.5f) < 1e-6f,
		    "linear forward without bias");
	}

	/* Dropout: deterministic, inverted scaling, identity at eval. */
	{
		enum { N = 10000 };
		static float in[N], a[N], b[N], ma[N], mb[N], din[N];
		struct fl_rng r1, r2;
		int zeros = 0, same = 1, scaled = 1, eval = 1, back = 1;

		for (int i = 0; i < N; i++)
			in[i] = (float)(i % 7) - 3.0f;
		fl_rng_seed(&r1, 42);
		fl_rng_seed(&r2, 42);
		fl_dropout_forward(a, ma, in, 0.3f, 1, &r1, N);
		fl_dropout_forward(b, mb, in, 0.3f, 1, &r2, N);
		for (int i = 0; i < N; i++) {
			same &= a[i] == b[i] && ma[i] == mb[i];
			zeros += ma[i] == 0;
			scaled &=
			    ma[i] == 0 || fabsf(a[i] - in[i] / 0.7f) < 1e-5f;
		}
		CHECK(same, "dropout is deterministic given the seed");
		CHECK(zeros > 2700 && zeros < 3300,
		    "dropout drops about p: %d of %d", zeros, N);
		CHECK(scaled, "dropout scales kept values by 1/(1-p)");
		fl_dropout_backward(din, in, ma, N);
		for (int i = 0; i < N; i++)
			back &= din[i] == in[i] * ma[i];
		CHECK(back, "dropout backward applies the mask");
		fl_dropout_forward(b, NULL, in, 0.3f, 0, NULL, N);
		for (int i = 0; i < N; i++)
			eval &= b[i] == in[i];
		CHECK(eval, "dropout is the identity at eval");
		fl_dropout_forward(b, mb, in, 1.0f, 1, &r1, N);
		zeros = 0;
		for (int i = 0; i < N; i++)
			zeros += b[i] == 0;
		CHECK(zeros == N, "dropout p 1 zeroes everything");
	}
}

/* Loss of net on (x, y) in double-checked float, for finite differences. */
static double
net_loss(
    struct fl_net *net, const float *x, const void *y, int B, uint64_t seed)
{
	struct fl_rng r;

	fl_rng_seed(&r, seed);
	fl_net_forward(net, x, B, 1, &r);
	return fl_net_loss(net, y, B);
}

/* Every layer type together against central differences. */
static void
test_gradcheck(void)
{
	static const int spec[] = { 6, -FL_TANH, -FL_DROPOUT, 5, -FL_SIGMOID, 4,
		-FL_RELU, 3 };
	struct fl_arch a = make_arch(4, FL_LOSS_SOFTMAX_CE, spec, 8);
	struct fl_net net;
	struct fl_rng r;
	char err[FL_ERRLEN];
	float x[3 * 4];
	int32_t y[3] = { 0, 2, 1 };
	double worst = 0;
	float *g;

	a.layer[2].p = 0.25f;
	if (fl_net_init(&net, &a, 3, err) != FL_OK) {
		CHECK(0, "net with every layer: %s", err);
		return;
	}
	fl_rng_seed(&r, 1);
	fl_net_init_params(&net, &r);
	for (int i = 0; i < 12; i++)
		x[i] = (float)fl_rng_normal(&r);
	fl_net_zero_grad(&net);
	fl_rng_seed(&r, 99);
	fl_net_forward(&net, x, 3, 1, &r);
	fl_net_backward(&net, y, 3);
	if (!(g = malloc(net.nparams * sizeof *g)))
		abort();
	memcpy(g, net.grads, net.nparams * sizeof *g);
	for (size_t i = 0; i < net.nparams; i++) {
		float w = net.params[i], h = 1e-2f;
		double lp, lm, num;

		net.params[i] = w + h;
		lp = net_loss(&net, x, y, 3, 99);
		net.params[i] = w - h;
		lm = net_loss(&net, x, y, 3, 99);
		net.params[i] = w;
		num = (lp - lm) / (2.0 * h);
		if (fabs(num - g[i]) / fmax(fabs(num), 1e-2) > worst)
			worst = fabs(num - g[i]) / fmax(fabs(num), 1e-2);
	}
	CHECK(worst < 2e-2,
	    "gradients with dropout, tanh, sigmoid, relu match "
	    "central differences (maxrel %.2g)",
	    worst);
	free(g);

	/* The same seed gives the same forward; another seed another mask. */
	{
		float o1[9], o2[9];

		fl_rng_seed(&r, 5);
		memcpy(o1, fl_net_forward(&net, x, 3, 1, &r), sizeof o1);
		fl_rng_seed(&r, 5);
		memcpy(o2, fl_net_forward(&net, x, 3, 1, &r), sizeof o2);
		CHECK(memcmp(o1, o2, sizeof o1) == 0,
		    "training forward deterministic given the seed");
		CHECK(fl_net_forward(&net, x, 3, 1, NULL) == NULL,
		    "training forward with dropout needs an rng");
		CHECK(fl_net_forward(&net, x, 4, 0, NULL) == NULL,
		    "batch above maxbatch refused");
		CHECK(fl_net_forward(&net, x, 0, 0, NULL) == NULL,
		    "empty batch refused");
		CHECK(fl_net_forward(&net, x, 3, 0, NULL) != NULL,
		    "eval forward needs no rng");
		CHECK(isnan(fl_net_backward(&net, y, 2)),
		    "backward with another batch size gives NAN");
	}
	fl_net_release(&net);
}

static void
test_net(void)
{
	static const int spec[] = { 128, -FL_RELU, 10 };
	struct fl_arch a = make_arch(784, FL_LOSS_SOFTMAX_CE, spec, 3);
	struct fl_net n1, n2;
	struct fl_rng r;
	char err[FL_ERRLEN];
	int ok = 1;
	float bound = 1.0f / sqrtf(784.0f);

	CHECK(fl_net_init(&n1, &a, 64, err) == FL_OK &&
		fl_net_init(&n2, &a, 64, err) == FL_OK,
	    "784,128,relu,10 init");
	CHECK(n1.nparams == 784 * 128 + 128 + 128 * 10 + 10, "nparams %zu",
	    n1.nparams);
	fl_rng_seed(&r, 3);
	fl_net_init_params(&n1, &r);
	fl_rng_seed(&r, 3);
	fl_net_init_params(&n2, &r);
	CHECK(memcmp(n1.params, n2.params, n1.nparams * sizeof(float)) == 0,
	    "init_params deterministic given the seed");
	for (size_t i = 0; i < 784 * 128 + 128; i++)
		ok &= fabsf(n1.params[i]) <= bound;
	CHECK(ok, "layer 0 params within 1/sqrt(784)");
	CHECK(fl_net_param_find(&n1, "2.weight") == fl_net_param(&n1, 2) &&
		fl_net_param(&n1, 2)->shape[0] == 10 &&
		fl_net_param(&n1, 2)->shape[1] == 128 &&
		fl_net_param(&n1, 3)->ndim == 1 &&
		fl_net_param(&n1, 3)->layer == 2 &&
		fl_net_param_find(&n1, "1.weight") == NULL &&
		fl_net_param(&n1, 4) == NULL,
	    "param accessors");
	fl_net_release(&n1);
	fl_net_release(&n2);

	a.layer[2].in = 64;
	CHECK(fl_net_init(&n1, &a, 64, err) == FL_EDATA && *err,
	    "mismatched widths refused: %s", err);
	a.layer[2].in = 128;
	a.nlayers = 0;
	CHECK(fl_net_init(&n1, &a, 64, err) == FL_EDATA,
	    "empty arch refused: %s", err);
}

/* Networks from specs as the tools write them. */
static void
test_spec(void)
{
	static const int ce[] = { 8, -FL_RELU, 3 };
	struct fl_arch a, hand = make_arch(4, FL_LOSS_SOFTMAX_CE, ce, 3);
	struct fl_net net;
	char err[FL_ERRLEN];
	int ok;

	ok = fl_arch_parse(&a, "4,8,relu,3", err) == FL_OK &&
	    a.nlayers == hand.nlayers && a.loss == hand.loss;
	for (int i = 0; ok && i < a.nlayers; i++)
		ok = a.layer[i].type == hand.layer[i].type &&
		    a.layer[i].in == hand.layer[i].in &&
		    a.layer[i].out == hand.layer[i].out;
	CHECK(ok, "spec 4,8,relu,3 as built by hand");
	if (fl_arch_parse(&a, "784,128,dropout:0.2,relu,64,tanh,10", err) !=
		FL_OK ||
	    fl_net_init(&net, &a, 32, err) != FL_OK) {
		CHECK(0, "784,128,dropout:0.2,relu,64,tanh,10: %s", err);
		return;
	}
	ok = net.ntensors == 6 && net.nparams == fl_arch_nparams(&a) &&
	    strcmp(fl_net_param(&net, 2)->name, "3.weight") == 0 &&
	    fl_net_param(&net, 2)->shape[0] == 64 &&
	    fl_net_param(&net, 2)->shape[1] == 128 &&
	    strcmp(fl_net_param(&net, 5)->name, "5.bias") == 0 &&
	    fl_net_param(&net, 5)->data + 10 == net.params + net.nparams;
	CHECK(ok,
	    "784,128,dropout:0.2,relu,64,tanh,10: state-dict names, "
	    "shapes and fl_arch_nparams");
	fl_net_release(&net);
}

/* fl_net_reinit keeps a net of the same arch and batch, remakes others. */
static void
test_reinit(void)
{
	struct fl_arch a, b, c;
	struct fl_net net;
	char err[FL_ERRLEN] = "";
	float *p;
	int rc;

	memset(&net, 0, sizeof(net));
	if (fl_arch_parse(&a, "4,8,relu,3", err) || fl_arch_parse(&b, "4,8,relu,3", err) ||
	    fl_arch_parse(&c, "4,8,dropout:0.3,relu,3", err)) {
		CHECK(0, "reinit: specs (%s)", err);
		return;
	}
	CHECK(fl_arch_equal(&a, &b) && !fl_arch_equal(&a, &c), "fl_arch_equal");
	rc = fl_net_reinit(&net, &a, 16, err);
	CHECK(rc == FL_OK && net.nparams == fl_arch_nparams(&a) &&
	    fl_net_bytes(&net) == (2 * net.nparams + net.nacts) * sizeof(float),
	    "reinit of a zeroed net sets it up (%s)", err);
	p = net.params;
	p[0] = 7;
	net.batch = 5;
	rc = fl_net_reinit(&net, &b, 16, err);
	CHECK(rc == FL_OK && net.params == p && p[0] == 7 && net.batch == 0,
	    "the same arch and batch: the same buffers kept");
	{
		float *s1 = fl_net_scratch(&net, 100), *s2;
		size_t bytes = fl_net_bytes(&net);
		s1[99] = 3;
		s2 = fl_net_scratch(&net, 50);
		CHECK(s1 && s2 == s1 && s2[99] == 3, "a smaller scratch: the same one");
		rc = fl_net_reinit(&net, &b, 16, err);
		CHECK(rc == FL_OK && net.scratch == s1 && fl_net_bytes(&net) == bytes,
		    "the scratch is kept with the net, and counted");
		s2 = fl_net_scratch(&net, 1000);
		CHECK(s2 && net.nscratch == 1000 && s2[99] == 3, "a bigger scratch keeps "
		    "what it held");
	}
	rc = fl_net_reinit(&net, &b, 32, err);
	CHECK(rc == FL_OK && net.maxbatch == 32 && net.params[0] == 0,
	    "another batch size: set up anew");
	rc = fl_net_reinit(&net, &c, 32, err);
	CHECK(rc == FL_OK && fl_arch_equal(&net.arch, &c) && net.nacts > 0 &&
	    net.layer[1].mask, "another arch: set up anew, for it");
	fl_net_release(&net);
}

int
main(void)
{
	test_golden();
	test_optim();
	test_layers();
	test_gradcheck();
	test_net();
	test_spec();
	test_reinit();
	return unit_done();
}
