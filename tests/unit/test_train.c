/* test_train.c: the fit, eval and predict loops on small in-memory data. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "blob.h"
#include "train.h"
#include "unit.h"

static char err[FL_ERRLEN];

static int
mknet(struct fl_net *net, const char *spec, int maxbatch, uint64_t seed)
{
	struct fl_arch a;
	struct fl_rng r;

	if (fl_arch_parse(&a, spec, err) || fl_net_init(net, &a, maxbatch, err))
		return -1;
	fl_rng_seed(&r, seed);
	fl_net_init_params(net, &r);
	return 0;
}

/* n examples of 4 features in 3 separable classes: class c has +2 on
 * feature c, plus noise. */
static void
toy(struct fl_dataset *d, uint64_t n)
{
	struct fl_rng r;

	fl_dataset_init(d);
	fl_rng_seed(&r, 42);
	d->n = n;
	d->features = 4;
	d->xndim = 2;
	d->xshape[0] = n;
	d->xshape[1] = 4;
	d->x = malloc(n * 4 * sizeof(float));
	d->y = malloc(n * sizeof(int32_t));
	d->classes = 3;
	for (uint64_t i = 0; i < n; i++) {
		d->y[i] = (int32_t)(i % 3);
		for (int j = 0; j < 4; j++)
			d->x[i * 4 + j] = 0.3f * (float)fl_rng_normal(&r);
		d->x[i * 4 + (size_t)d->y[i]] += 2.0f;
	}
}

static double
dist(const float *a, const float *b, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return sqrt(s);
}

static void
test_loss_decreases(void)
{
	struct fl_net net;
	struct fl_dataset d;
	struct fl_train_opts o;
	struct fl_train_result res;
	struct fl_eval_result e0, e1;
	int rc;

	toy(&d, 300);
	mknet(&net, "4,16,relu,3", 16, 1);
	fl_eval(&net, &d, &e0, err);
	fl_train_defaults(&o);
	o.epochs = 10;
	o.batch = 16;
	o.optim.lr = 0.1;
	rc = fl_fit(&net, &d, &o, &res, err);
	CHECK(rc == FL_OK, "fit on a separable toy problem (%s)", rc ? err : "ok");
	fl_eval(&net, &d, &e1, err);
	CHECK(e1.loss < e0.loss / 4, "loss falls from %.4f to %.4f", e0.loss, e1.loss);
	CHECK(e1.accuracy == 1.0, "all examples right after training (%.3f)",
	    e1.accuracy);
	CHECK(res.steps == 10 * 19 && res.epochs == 10 && res.samples == 300,
	    "10 epochs of 19 steps over 300 examples (%llu steps, %d, %llu)",
	    (unsigned long long)res.steps, res.epochs,
	    (unsigned long long)res.samples);
	CHECK(fabs(res.loss - e1.loss) < 0.2 && res.accuracy > 0.95,
	    "training figures of the last epoch (%.4f, %.3f)", res.loss,
	    res.accuracy);
	fl_net_release(&net);

	/* Adam trains too. */
	mknet(&net, "4,16,tanh,3", 16, 1);
	fl_optim_defaults(&o.optim, FL_OPTIM_ADAM);
	o.optim.lr = 0.01;
	rc = fl_fit(&net, &d, &o, &res, err);
	fl_eval(&net, &d, &e1, err);
	CHECK(rc == FL_OK && e1.loss < e0.loss / 4, "adam: loss %.4f", e1.loss);
	fl_net_release(&net);
	fl_dataset_release(&d);
}

static void
test_determinism(void)
{
	struct fl_net a, b, c;
	struct fl_dataset d;
	struct fl_train_opts o;

	toy(&d, 100);
	mknet(&a, "4,8,relu,dropout:0.3,3", 8, 5);
	mknet(&b, "4,8,relu,dropout:0.3,3", 8, 5);
	mknet(&c, "4,8,relu,dropout:0.3,3", 8, 5);
	fl_train_defaults(&o);
	o.epochs = 3;
	o.batch = 8;
	o.seed = 7;
	fl_fit(&a, &d, &o, NULL, err);
	fl_fit(&b, &d, &o, NULL, err);
	o.seed = 8;
	fl_fit(&c, &d, &o, NULL, err);
	CHECK(!memcmp(a.params, b.params, a.nparams * sizeof(float)),
	    "the same seed gives the same parameters, bit for bit");
	CHECK(memcmp(a.params, c.params, a.nparams * sizeof(float)),
	    "another seed gives other parameters");
	fl_net_release(&a);
	fl_net_release(&b);
	fl_net_release(&c);
	fl_dataset_release(&d);
}

static void
test_prox(void)
{
	struct fl_net a, b;
	struct fl_dataset d;
	struct fl_train_opts o;
	float *w0;
	double da, db;

	toy(&d, 120);
	mknet(&a, "4,8,relu,3", 8, 3);
	mknet(&b, "4,8,relu,3", 8, 3);
	w0 = malloc(a.nparams * sizeof(float));
	memcpy(w0, a.params, a.nparams * sizeof(float));
	fl_train_defaults(&o);
	o.epochs = 5;
	o.batch = 8;
	o.optim.lr = 0.1;
	fl_fit(&a, &d, &o, NULL, err);
	o.prox = 5.0;
	CHECK(fl_fit(&b, &d, &o, NULL, err) == FL_OK, "fit with prox");
	da = dist(a.params, w0, a.nparams);
	db = dist(b.params, w0, b.nparams);
	CHECK(db < da / 2, "prox 5 keeps w nearer w0 (%.4f against %.4f)", db, da);

	/* At w = w0 the proximal gradient is zero: the first step is plain. */
	memcpy(b.params, w0, b.nparams * sizeof(float));
	o.prox = 1.0;
	o.max_steps = 1;
	fl_fit(&b, &d, &o, NULL, err);
	memcpy(a.params, w0, a.nparams * sizeof(float));
	o.prox = 0;
	fl_fit(&a, &d, &o, NULL, err);
	CHECK(dist(a.params, b.params, a.nparams) < 1e-7,
	    "the first step (w = w0) is the same with and without prox");
	free(w0);
	fl_net_release(&a);
	fl_net_release(&b);
	fl_dataset_release(&d);
}

static void
test_eval_by_hand(void)
{
	struct fl_net net;
	struct fl_dataset d;
	struct fl_eval_result e;
	float x[6] = { 1, 0, 0, 1, 2, 0 };
	int32_t y[3] = { 0, 0, 0 };
	float xm[4] = { 1, 2, 3, 4 }, t[2] = { 3, 5 };
	double want;

	/* 2,2 with identity weights: logits are the inputs. */
	mknet(&net, "2,2", 2, 0);
	memset(net.params, 0, net.nparams * sizeof(float));
	net.params[0] = net.params[3] = 1;
	fl_dataset_init(&d);
	d.n = 3;
	d.features = 2;
	d.x = malloc(sizeof(x));
	d.y = malloc(sizeof(y));
	memcpy(d.x, x, sizeof(x));
	memcpy(d.y, y, sizeof(y));
	d.classes = 2;
	want = (log(1 + exp(-1.0)) + log(1 + exp(1.0)) + log(1 + exp(-2.0))) / 3;
	CHECK(fl_eval(&net, &d, &e, err) == FL_OK, "eval in batches of 2 and 1");
	CHECK(fabs(e.loss - want) < 1e-6, "loss %.6f, by hand %.6f", e.loss, want);
	CHECK(fabs(e.accuracy - 2.0 / 3) < 1e-9 && e.samples == 3,
	    "accuracy 2/3 of 3 samples (%.4f, %llu)", e.accuracy,
	    (unsigned long long)e.samples);
	fl_net_release(&net);
	fl_dataset_release(&d);

	/* mse: 2,1 with w [1,1]: outputs 3 and 7 against 3 and 5. */
	{
		struct fl_arch a;
		fl_arch_parse(&a, "2,1", err);
		fl_loss_parse("mse", &a.loss);
		fl_net_init(&net, &a, 4, err);
	}
	net.params[0] = net.params[1] = 1;
	net.params[2] = 0;
	fl_dataset_init(&d);
	d.n = 2;
	d.features = 2;
	d.k = 1;
	d.x = malloc(sizeof(xm));
	d.targets = malloc(sizeof(t));
	memcpy(d.x, xm, sizeof(xm));
	memcpy(d.targets, t, sizeof(t));
	CHECK(fl_eval(&net, &d, &e, err) == FL_OK && fabs(e.loss - 2.0) < 1e-6 &&
	    isnan(e.accuracy), "mse eval: loss 2, no accuracy (%.6f)", e.loss);
	fl_net_release(&net);
	fl_dataset_release(&d);
}

static void
test_predict(void)
{
	struct fl_net net;
	struct fl_dataset d;
	enum { N = 50, C = 3 };
	float det[N * C], mean[N * C], std[N * C], ent[N];
	double worst = 0, sstd = 0;
	int ok = 1;

	toy(&d, N);
	mknet(&net, "4,32,relu,dropout:0,3", 16, 9);
	CHECK(fl_predict(&net, d.x, N, 0, 0, det, NULL, ent, err) == FL_OK,
	    "predict without dropout");
	for (int i = 0; i < N; i++) {
		double s = 0;
		for (int c = 0; c < C; c++)
			s += det[i * C + c];
		ok &= fabs(s - 1) < 1e-5 && ent[i] >= 0 && ent[i] <= log(3.0) + 1e-6;
	}
	CHECK(ok, "probabilities sum to 1, entropy in [0, log 3]");
	fl_predict(&net, d.x, N, 20, 1, mean, std, ent, err);
	CHECK(!memcmp(det, mean, sizeof(det)), "MC dropout with p 0: mean is "
	    "the deterministic output");
	fl_net_release(&net);

	mknet(&net, "4,32,relu,dropout:0.0001,3", 16, 9);
	fl_predict(&net, d.x, N, 0, 0, det, NULL, NULL, err);
	fl_predict(&net, d.x, N, 30, 1, mean, std, ent, err);
	worst = unit_maxrel(mean, det, N * C, 1);
	CHECK(worst < 1e-2, "MC dropout with p 1e-4: mean near the "
	    "deterministic output (%.2g)", worst);
	fl_net_release(&net);

	mknet(&net, "4,32,relu,dropout:0.5,3", 16, 9);
	fl_predict(&net, d.x, N, 30, 1, mean, std, ent, err);
	for (int i = 0; i < N * C; i++)
		sstd += std[i];
	CHECK(sstd > 0.01 * N, "MC dropout with p 0.5: outputs spread (mean "
	    "std %.3f)", sstd / (N * C));
	{
		float m2[N * C], s2[N * C];
		fl_predict(&net, d.x, N, 30, 1, m2, s2, NULL, err);
		CHECK(!memcmp(m2, mean, sizeof(m2)), "MC dropout is deterministic "
		    "for a seed");
	}
	fl_net_release(&net);
	fl_dataset_release(&d);
}

/* mse targets for d: onehot(y) * 2 - 1 over 3 outputs. */
static void
to_mse(struct fl_dataset *d)
{
	d->targets = malloc(d->n * 3 * sizeof(float));
	d->k = 3;
	for (uint64_t i = 0; i < d->n; i++)
		for (int c = 0; c < 3; c++)
			d->targets[i * 3 + (uint64_t)c] = d->y[i] == c ? 1.0f : -1.0f;
	free(d->y);
	d->y = NULL;
}

/* Params after fitting spec with threads 1 and 2 from the same start. */
static double
fit_pair(const char *spec, struct fl_dataset *d, struct fl_train_opts *o,
    struct fl_train_result *r1, struct fl_train_result *r2)
{
	struct fl_net a, b;
	double worst;
	int rc1, rc2;

	mknet(&a, spec, o->batch, 4);
	mknet(&b, spec, o->batch, 4);
	o->threads = 1;
	rc1 = fl_fit(&a, d, o, r1, err);
	o->threads = 2;
	rc2 = fl_fit(&b, d, o, r2, err);
	worst = rc1 || rc2 ? INFINITY : unit_maxrel(b.params, a.params,
	    a.nparams, 1e-3);
	fl_net_release(&a);
	fl_net_release(&b);
	return worst;
}

static void
test_threads(void)
{
	struct fl_net a, b, c;
	struct fl_dataset d;
	struct fl_train_opts o;
	struct fl_train_result r1, r2;
	struct fl_eval_result e1, e2;
	const char *spec = "4,16,relu,dropout:0.2,3";
	double worst;

	/* Halves of a batch sum to its gradient: one step agrees. */
	toy(&d, 100);
	fl_train_defaults(&o);
	o.batch = 16;
	o.optim.lr = 0.5;
	o.max_steps = 1;
	worst = fit_pair("4,16,tanh,3", &d, &o, &r1, &r2);
	CHECK(worst < 1e-5 && fabs(r1.loss - r2.loss) < 1e-6, "softmax-ce: one "
	    "step on 2 threads is one on 1 (%.2g, loss %.6f, %.6f)", worst,
	    r1.loss, r2.loss);
	o.batch = 7;	/* odd: parts of 3 and 4 rows */
	o.max_steps = 0;
	o.epochs = 2;
	o.prox = 0.5;
	o.optim.momentum = 0.9;
	o.optim.lr = 0.05;
	worst = fit_pair("4,16,relu,3", &d, &o, &r1, &r2);
	CHECK(worst < 1e-3 && r1.steps == 30 && r2.steps == 30, "batches of 7 "
	    "with momentum and prox: 2 epochs agree (%.2g)", worst);
	fl_optim_defaults(&o.optim, FL_OPTIM_ADAM);
	o.prox = 0;
	worst = fit_pair("4,16,relu,3", &d, &o, &r1, &r2);
	CHECK(worst < 1e-3, "adam steps its slices as one (%.2g)", worst);
	to_mse(&d);
	fl_train_defaults(&o);
	o.batch = 16;
	o.optim.lr = 0.1;
	o.max_steps = 1;
	{
		struct fl_arch ar;
		struct fl_net m1, m2;
		struct fl_rng r;

		fl_arch_parse(&ar, "4,8,sigmoid,3", err);
		fl_loss_parse("mse", &ar.loss);
		fl_net_init(&m1, &ar, 16, err);
		fl_net_init(&m2, &ar, 16, err);
		fl_rng_seed(&r, 1);
		fl_net_init_params(&m1, &r);
		memcpy(m2.params, m1.params, m1.nparams * sizeof(float));
		o.threads = 1;
		fl_fit(&m1, &d, &o, &r1, err);
		o.threads = 2;
		CHECK(fl_fit(&m2, &d, &o, &r2, err) == FL_OK, "mse on 2 threads");
		worst = unit_maxrel(m2.params, m1.params, m1.nparams, 1e-3);
		CHECK(worst < 1e-5 && fabs(r1.loss - r2.loss) < 1e-6, "mse: one "
		    "step on 2 threads is one on 1 (%.2g, loss %.6f, %.6f)",
		    worst, r1.loss, r2.loss);
		fl_net_release(&m1);
		fl_net_release(&m2);
	}
	fl_dataset_release(&d);

	/* Training with dropout: repeatable, and as good as on 1 thread. */
	toy(&d, 300);
	mknet(&a, spec, 16, 1);
	mknet(&b, spec, 16, 1);
	mknet(&c, spec, 16, 1);
	fl_train_defaults(&o);
	o.epochs = 10;
	o.batch = 16;
	o.optim.lr = 0.1;
	o.seed = 5;
	o.threads = 1;
	fl_fit(&a, &d, &o, &r1, err);
	o.threads = 2;
	CHECK(fl_fit(&b, &d, &o, &r2, err) == FL_OK, "fit on 2 threads");
	fl_fit(&c, &d, &o, NULL, err);
	CHECK(!memcmp(b.params, c.params, b.nparams * sizeof(float)),
	    "2 threads: the same seed gives the same parameters, bit for bit");
	CHECK(memcmp(a.params, b.params, a.nparams * sizeof(float)),
	    "2 threads draw other masks than 1");
	fl_eval(&a, &d, &e1, err);
	fl_eval(&b, &d, &e2, err);
	CHECK(e2.accuracy == 1.0 && e1.accuracy == 1.0 &&
	    fabs(e2.loss - e1.loss) < 0.02 && fabs(r2.loss - r1.loss) < 0.02,
	    "2 threads train as well as 1 (loss %.4f, %.4f; training %.4f, "
	    "%.4f)", e2.loss, e1.loss, r2.loss, r1.loss);
	CHECK(r2.steps == r1.steps && r2.samples == 300, "the same steps "
	    "(%llu)", (unsigned long long)r2.steps);

	/* More threads than rows in the last batch (300 = 37 * 8 + 4). */
	o.batch = 8;
	o.threads = 6;
	o.epochs = 1;
	CHECK(fl_fit(&c, &d, &o, &r2, err) == FL_OK && r2.steps == 38,
	    "6 threads over batches of 8 and a last of 4 (%llu steps)",
	    (unsigned long long)r2.steps);
	o.threads = 64;	/* capped at the batch */
	CHECK(fl_fit(&c, &d, &o, &r2, err) == FL_OK && isfinite(r2.loss),
	    "64 threads for batches of 8");
	o.optim.lr = 1e30;
	o.threads = 2;
	CHECK(fl_fit(&c, &d, &o, NULL, err) == FL_EDATA && strstr(err, "NaN"),
	    "2 threads: a loss turning NaN stops the fit (%s)", err);
	fl_net_release(&a);
	fl_net_release(&b);
	fl_net_release(&c);
	fl_dataset_release(&d);
}

static int
count_cb(void *arg, const struct fl_train_progress *p)
{
	int *c = arg;

	c[0]++;
	c[1] += p->epoch_done;
	return c[2] && c[0] >= c[2];
}

static void
test_errors_and_limits(void)
{
	struct fl_net net;
	struct fl_dataset d;
	struct fl_train_opts o;
	struct fl_train_result res;
	int calls[3] = { 0, 0, 0 }, rc;

	toy(&d, 100);
	mknet(&net, "4,8,relu,3", 8, 2);
	fl_train_defaults(&o);
	o.batch = 8;
	o.optim.lr = 1e30;
	rc = fl_fit(&net, &d, &o, NULL, err);
	CHECK(rc == FL_EDATA && strstr(err, "NaN"), "lr 1e30: the loss turns "
	    "NaN: FL_EDATA (%s)", err);
	fl_net_release(&net);

	mknet(&net, "5,8,relu,3", 8, 2);
	rc = fl_fit(&net, &d, &o, NULL, err);
	CHECK(rc == FL_EDATA && strstr(err, "4 features"), "width 4 for a model "
	    "taking 5: FL_EDATA (%s)", err);
	fl_net_release(&net);

	mknet(&net, "4,8,relu,2", 8, 2);
	rc = fl_fit(&net, &d, &o, NULL, err);
	CHECK(rc == FL_EDATA && strstr(err, "label 2"), "label 2 for 2 outputs: "
	    "FL_EDATA (%s)", err);
	fl_net_release(&net);

	mknet(&net, "4,8,relu,3", 8, 2);
	o.optim.lr = 0.01;
	o.batch = 9;
	CHECK(fl_fit(&net, &d, &o, NULL, err) == FL_EUSAGE, "batch above the "
	    "net's maxbatch: FL_EUSAGE (%s)", err);
	o.batch = 8;
	o.epochs = 3;
	o.max_steps = 5;
	o.progress = count_cb;
	o.arg = calls;
	rc = fl_fit(&net, &d, &o, &res, err);
	CHECK(rc == FL_OK && res.steps == 5 && res.samples == 40 && calls[0] == 5
	    && calls[1] == 1, "max_steps 5: 5 steps over 40 examples, 5 calls, "
	    "the last ending the fit (%llu, %llu, %d, %d)",
	    (unsigned long long)res.steps, (unsigned long long)res.samples,
	    calls[0], calls[1]);
	o.max_steps = 0;
	calls[0] = calls[1] = 0;
	fl_fit(&net, &d, &o, &res, err);
	CHECK(calls[0] == 39 && calls[1] == 3 && res.samples == 100,
	    "3 epochs of 13 steps: 39 calls, 3 epoch ends (%d, %d)", calls[0],
	    calls[1]);
	calls[0] = 0;
	calls[2] = 4;
	CHECK(fl_fit(&net, &d, &o, &res, err) == FL_EFAIL, "the callback stops "
	    "the fit");
	fl_net_release(&net);
	fl_dataset_release(&d);
}

/* The callback runs on the caller's thread, and can stop a threaded fit. */
static void
test_threads_progress(void)
{
	struct fl_net net;
	struct fl_dataset d;
	struct fl_train_opts o;
	struct fl_train_result res;
	int calls[3] = { 0, 0, 0 };

	toy(&d, 100);
	mknet(&net, "4,8,relu,3", 8, 2);
	fl_train_defaults(&o);
	o.batch = 8;
	o.epochs = 3;
	o.threads = 2;
	o.progress = count_cb;
	o.arg = calls;
	fl_fit(&net, &d, &o, &res, err);
	CHECK(calls[0] == 39 && calls[1] == 3 && res.samples == 100,
	    "2 threads: 39 calls, 3 epoch ends (%d, %d)", calls[0], calls[1]);
	calls[0] = 0;
	calls[2] = 4;
	CHECK(fl_fit(&net, &d, &o, &res, err) == FL_EFAIL && calls[0] == 4,
	    "the callback stops a fit on 2 threads (%d calls)", calls[0]);
	fl_net_release(&net);
	fl_dataset_release(&d);
}

static void
test_inputs_load(void)
{
	char path[] = "/tmp/test_train.XXXXXX";
	struct fl_header h;
	float x[6] = { 1, 2, 3, 4, 5, 6 }, *got = NULL;
	const void *data[1] = { x };
	uint64_t shape[2] = { 3, 2 }, n, f;
	int fd = mkstemp(path), rc;

	fl_header_init(&h, "dataset");
	fl_header_add(&h, "x", FL_F32, 2, shape);
	fl_blob_write(fd, path, &h, data, 6, err);
	close(fd);
	fl_header_release(&h);
	rc = fl_inputs_load(path, &got, &n, &f, err);
	CHECK(rc == FL_OK && n == 3 && f == 2 && got && !memcmp(got, x, sizeof(x)),
	    "inputs without y load as 3 rows of 2 (%s)", rc ? err : "ok");
	free(got);

	fd = open(path, O_WRONLY | O_TRUNC);
	fl_header_init(&h, "model");
	fl_header_add(&h, "x", FL_F32, 2, shape);
	fl_blob_write(fd, path, &h, data, 6, err);
	close(fd);
	fl_header_release(&h);
	rc = fl_inputs_load(path, &got, &n, &f, err);
	CHECK(rc == FL_EDATA && strstr(err, "not a dataset"), "a model blob is "
	    "not inputs (%s)", err);
	unlink(path);
}

int
main(void)
{
	fl_train_threads(1);
	test_loss_decreases();
	test_determinism();
	test_prox();
	test_eval_by_hand();
	test_predict();
	test_errors_and_limits();
	test_threads_progress();
	test_threads();
	test_inputs_load();
	return unit_done();
}
