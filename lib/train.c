/* train.c: fit, eval and predict loops: shuffled batches gathered into one
 * buffer, an optimizer step each, FedProx, metrics, MC dropout. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "blas.h"
#include "blob.h"
#include "meta.h"
#include "train.h"

/* Dropout masks draw from their own stream, so the shuffle order does not
 * depend on the arch. */
#define DROPOUT_STREAM 0x9e3779b97f4a7c15ULL

void
fl_train_defaults(struct fl_train_opts *o)
{
	memset(o, 0, sizeof(*o));
	fl_optim_defaults(&o->optim, FL_OPTIM_SGD);
	o->epochs = 1;
	o->batch = 32;
	o->threads = 1;
}

void
fl_train_threads(int n)
{
	if (n >= 1)
		fl_blas_set_threads(n);
}

int
fl_train_check(const struct fl_net *net, const struct fl_dataset *d, char *err)
{
	int in = fl_arch_in(&net->arch), out = fl_arch_out(&net->arch);

	if (d->n == 0)
		return fl_err(err, FL_EDATA, "dataset has no examples");
	if (d->features != (uint64_t)in)
		return fl_err(err, FL_EDATA, "dataset has %llu features per "
		    "example, the model takes %d", (unsigned long long)d->features,
		    in);
	if (net->arch.loss == FL_LOSS_SOFTMAX_CE) {
		if (!d->y)
			return fl_err(err, FL_EDATA, "dataset has float targets; "
			    "the model's loss softmax-ce needs class labels");
		for (uint64_t i = 0; i < d->n; i++)
			if (d->y[i] < 0 || d->y[i] >= out)
				return fl_err(err, FL_EDATA, "example %llu has label "
				    "%d, but the model has %d outputs (classes 0 "
				    "to %d)", (unsigned long long)i, (int)d->y[i],
				    out, out - 1);
		return FL_OK;
	}
	if (!d->targets)
		return fl_err(err, FL_EDATA, "dataset has class labels; the "
		    "model's loss mse needs float targets");
	if (d->k != (uint64_t)out)
		return fl_err(err, FL_EDATA, "dataset has %llu targets per "
		    "example, the model has %d outputs", (unsigned long long)d->k,
		    out);
	return FL_OK;
}

static int
check_opts(const struct fl_net *net, const struct fl_train_opts *o, char *err)
{
	if (o->epochs < 1)
		return fl_err(err, FL_EUSAGE, "epochs must be at least 1");
	if (o->batch < 1 || o->batch > net->maxbatch)
		return fl_err(err, FL_EUSAGE, "batch size %d not in [1, %d]",
		    o->batch, net->maxbatch);
	if (!(o->prox >= 0 && isfinite(o->prox)))
		return fl_err(err, FL_EUSAGE, "prox must be a finite number >= 0");
	return FL_OK;
}

/* Steps the fit will take: ceil(n / batch) per epoch, up to max_steps. */
static uint64_t
total_steps(uint64_t n, const struct fl_train_opts *o)
{
	uint64_t per = (n + (uint64_t)o->batch - 1) / (uint64_t)o->batch;
	uint64_t all = per * (uint64_t)o->epochs;

	return o->max_steps && o->max_steps < all ? o->max_steps : all;
}

/*
 * A barrier for the threads of a fit, which meet twice a step, thousands
 * of times a second: a waiter spins a little (the other thread is usually
 * microseconds behind), then sleeps on a futex.
 */
struct barrier {
	_Atomic unsigned gen;	/* passes so far */
	_Atomic int count;	/* threads arrived in this pass */
	_Atomic int sleepers;	/* threads in futex_wait */
	int n;
};

#define SPIN 2000

static void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void
barrier_wait(struct barrier *b)
{
	unsigned g;

	if (b->n < 2)
		return;
	g = atomic_load(&b->gen);
	if (atomic_fetch_add(&b->count, 1) == b->n - 1) {
		atomic_store(&b->count, 0);
		atomic_fetch_add(&b->gen, 1);
		if (atomic_load(&b->sleepers))
			syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX,
			    NULL, NULL, 0);
		return;
	}
	for (int i = 0; i < SPIN; i++) {
		if (atomic_load_explicit(&b->gen, memory_order_acquire) != g)
			return;
		cpu_relax();
	}
	atomic_fetch_add(&b->sleepers, 1);
	while (atomic_load(&b->gen) == g)
		syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
	atomic_fetch_sub(&b->sleepers, 1);
}

/*
 * One thread's part of a fit: rows [b t / n, b (t + 1) / n) of each batch
 * on its own net over the shared parameters (part 0: the caller's net),
 * then, once all parts are done, the sum of the parts' gradients and the
 * optimizer step over its slice [lo, hi) of the parameters.
 */
struct part {
	struct fit *f;
	int t;
	struct fl_net *net;
	struct fl_net own;	/* parts above 0 */
	struct fl_rng rd;	/* dropout masks */
	struct fl_optim opt;	/* the fit's optimizer, on the slice */
	size_t lo, hi;
	int rows;		/* of the current batch */
	float loss;		/* their share of its mean loss */
	int correct;
	int failed;		/* the forward pass failed */
	pthread_t thread;
	char pad[64];		/* no false sharing between parts */
};

/* What the threads of a fit share. */
struct fit {
	struct fl_net *net;
	const struct fl_dataset *d;
	const struct fl_train_opts *o;
	int n;			/* parts (threads) */
	struct part *part;
	struct barrier bar;
	struct fl_rng rs;	/* shuffle order */
	uint32_t *perm;
	float *xb, *tb, *w0;
	int32_t *yb;
	uint64_t steps;
	/* Kept by part 0 alone. */
	struct fl_train_progress p;
	uint64_t step, maxseen, examples, correct, seen;
	double t0, lsum;
	int epochs;		/* begun */
	int rc;
	int stop;		/* part 0 tells the others after a step */
	char *err;
	/* The threads wait for all to have started, or for the word to quit. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go;			/* 1: run, -1: quit */
};

/* Forward and backward rows [lo, hi) of a batch of b at offset i of perm. */
static void
part_grad(struct part *pt, uint64_t i, int b)
{
	struct fit *f = pt->f;
	const struct fl_dataset *d = f->d;
	const int ce = f->net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const size_t F = (size_t)d->features, K = (size_t)d->k;
	int lo = (int)((int64_t)b * pt->t / f->n);
	int hi = (int)((int64_t)b * (pt->t + 1) / f->n);
	const float *out;

	for (int j = lo; j < hi; j++) {
		uint32_t r = f->perm[i + (uint64_t)j];
		memcpy(f->xb + (size_t)j * F, d->x + (size_t)r * F,
		    F * sizeof(*f->xb));
		if (ce)
			f->yb[j] = d->y[r];
		else
			memcpy(f->tb + (size_t)j * K, d->targets + (size_t)r * K,
			    K * sizeof(*f->tb));
	}
	pt->rows = hi - lo;
	pt->loss = 0;
	pt->correct = 0;
	pt->failed = 0;
	fl_net_zero_grad(pt->net);
	if (hi == lo)
		return;
	if (!(out = fl_net_forward(pt->net, f->xb + (size_t)lo * F, hi - lo, 1,
	    &pt->rd))) {
		pt->failed = 1;
		return;
	}
	pt->loss = fl_net_backward_part(pt->net, ce ? (const void *)(f->yb + lo)
	    : (const void *)(f->tb + (size_t)lo * K), hi - lo, b);
	if (ce)
		pt->correct = fl_count_correct(out, f->yb + lo, hi - lo,
		    fl_arch_out(&f->net->arch));
}

/*
 * y += x in blocks of BLOCK: with a trip count known at compile time, gcc
 * -O2's cheap vectorizer makes SIMD code of the inner loop.
 */
#define BLOCK 64

static inline void
add_k(float *restrict y, const float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += x[i];
}

static void
vadd(float *restrict y, const float *restrict x, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		add_k(y + i, x + i, BLOCK);
	add_k(y + i, x + i, n - i);
}

/* Sum the parts' gradients over the slice, in part order, and step it. */
static void
part_step(struct part *pt)
{
	struct fit *f = pt->f;
	float *g = f->net->grads, *w = f->net->params;
	size_t lo = pt->lo, len = pt->hi - pt->lo;

	for (int t = 1; t < f->n; t++)
		if (f->part[t].rows)
			vadd(g + lo, f->part[t].net->grads + lo, len);
	if (f->w0)
		fl_prox_grad(g + lo, w + lo, f->w0 + lo, (float)f->o->prox, len);
	fl_optim_step(&pt->opt, w + lo, g + lo);
}

/* Part 0's count of a step; non-zero to stop. */
static int
account(struct fit *f, int e, int b, double l)
{
	const int ce = f->net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const struct fl_train_opts *o = f->o;
	struct fl_train_progress *p = &f->p;

	for (int t = 0; t < f->n; t++)
		f->correct += (uint64_t)f->part[t].correct;
	f->step++;
	f->seen += (uint64_t)b;
	f->examples += (uint64_t)b;
	f->lsum += l * b;
	if (o->progress) {
		double dt = fl_monotonic() - f->t0;
		p->epoch = e + 1;
		p->step = f->step;
		p->seen = f->seen;
		p->loss = f->lsum / (double)f->seen;
		p->accuracy = ce ? (double)f->correct / (double)f->seen : NAN;
		p->rate = dt > 0 ? (double)f->examples / dt : 0;
		p->epoch_done = f->seen == f->d->n || f->step == f->steps;
		if (o->progress(o->arg, p)) {
			f->rc = fl_err(f->err, FL_EFAIL, "training stopped");
			return 1;
		}
	}
	return 0;
}

/*
 * The loop every part runs. The parts take the same decisions from the
 * same shared figures, so they meet at every barrier and leave together.
 */
static void
run(struct part *pt)
{
	struct fit *f = pt->f;
	const struct fl_dataset *d = f->d;
	const struct fl_train_opts *o = f->o;
	const uint64_t B = (uint64_t)o->batch;
	uint64_t step = 0;
	int e;

	for (e = 0; e < o->epochs && step < f->steps; e++) {
		if (pt->t == 0) {
			fl_rng_shuffle(&f->rs, f->perm, d->n);
			f->lsum = 0;
			f->correct = f->seen = 0;
		}
		barrier_wait(&f->bar);
		for (uint64_t i = 0; i < d->n && step < f->steps; i += B) {
			int b = d->n - i < B ? (int)(d->n - i) : (int)B;
			double l = 0;
			int failed = 0;

			part_grad(pt, i, b);
			barrier_wait(&f->bar);
			for (int t = 0; t < f->n; t++) {
				l += (double)f->part[t].loss;
				failed |= f->part[t].failed;
			}
			if (failed || !isfinite(l)) {
				if (pt->t == 0 && failed)
					f->rc = fl_err(f->err, FL_EFAIL,
					    "forward pass failed (batch %d)", b);
				else if (pt->t == 0)
					f->rc = fl_err(f->err, FL_EDATA, "the loss "
					    "became %s at epoch %d, step %llu (try "
					    "a smaller learning rate)", isnan(l) ?
					    "NaN" : "infinite", e + 1,
					    (unsigned long long)step + 1);
				return;
			}
			part_step(pt);
			step++;
			if (pt->t == 0) {
				f->stop = account(f, e, b, l);
				if (f->seen > f->maxseen)
					f->maxseen = f->seen;
			}
			barrier_wait(&f->bar);
			if (f->stop)
				return;
		}
	}
	if (pt->t == 0)
		f->epochs = e;
}

static void *
run_thread(void *arg)
{
	struct part *pt = arg;
	struct fit *f = pt->f;
	int go;

	pthread_mutex_lock(&f->lock);
	while (!(go = f->go))
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	if (go > 0)
		run(pt);
	return NULL;
}

/* Tell the threads to run (go 1) or to quit (-1). */
static void
start(struct fit *f, int go)
{
	pthread_mutex_lock(&f->lock);
	f->go = go;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* Split n floats into k slices at multiples of 16 (64 bytes). */
static size_t
slice(size_t n, int k, int t)
{
	size_t at = (size_t)((double)n * t / k) / 16 * 16;

	return t == k ? n : at;
}

int
fl_fit(struct fl_net *net, const struct fl_dataset *d,
    const struct fl_train_opts *o, struct fl_train_result *res, char *err)
{
	const int ce = net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const size_t F = (size_t)d->features, K = (size_t)d->k;
	struct fit f = { .lock = PTHREAD_MUTEX_INITIALIZER,
	    .cond = PTHREAD_COND_INITIALIZER };
	struct fl_optim opt;
	int rc, n, started, blas = 0;

	if (res)
		memset(res, 0, sizeof(*res));
	if ((rc = check_opts(net, o, err)) || (rc = fl_train_check(net, d, err)))
		return rc;
	if (d->n > UINT32_MAX)
		return fl_err(err, FL_ELIMIT, "dataset has more than %u examples",
		    UINT32_MAX);
	if ((rc = fl_optim_init(&opt, &o->optim, net->nparams, err)))
		return rc;
	n = o->threads < 1 ? 1 : o->threads < o->batch ? o->threads : o->batch;
	f.net = net;
	f.d = d;
	f.o = o;
	f.n = n;
	f.bar.n = n;
	f.err = err;
	f.t0 = fl_monotonic();
	f.perm = malloc(d->n * sizeof(*f.perm));
	f.xb = fl_net_scratch(net, (size_t)o->batch * F + 1);	/* kept with net */
	if (ce)
		f.yb = malloc((size_t)o->batch * sizeof(*f.yb));
	else
		f.tb = malloc((size_t)o->batch * K * sizeof(*f.tb) + 1);
	if (o->prox > 0 && (f.w0 = malloc(net->nparams * sizeof(*f.w0))))
		memcpy(f.w0, net->params, net->nparams * sizeof(*f.w0));
	f.part = calloc((size_t)n, sizeof(*f.part));
	if (!f.perm || !f.xb || (ce ? !f.yb : !f.tb) || (o->prox > 0 && !f.w0)
	    || !f.part) {
		rc = fl_err(err, FL_EFAIL, "out of memory for training buffers");
		goto out;
	}
	for (uint64_t i = 0; i < d->n; i++)
		f.perm[i] = (uint32_t)i;
	fl_rng_seed(&f.rs, o->seed);
	f.steps = total_steps(d->n, o);
	f.p.epochs = o->epochs;
	f.p.steps = f.steps;
	for (int t = 0; t < n; t++) {
		struct part *pt = &f.part[t];

		pt->f = &f;
		pt->t = t;
		pt->net = net;
		if (t > 0) {
			if ((rc = fl_net_init_shared(&pt->own, net,
			    (o->batch + n - 1) / n, err)))
				goto out;
			pt->net = &pt->own;
		}
		/* Part t's masks: the fit's stream for one thread, one
		 * stream per part for more. */
		fl_rng_seed(&pt->rd, (o->seed ^ DROPOUT_STREAM) +
		    (uint64_t)t * 0x632be59bd9b4e019ULL);
		pt->lo = slice(net->nparams, n, t);
		pt->hi = slice(net->nparams, n, t + 1);
		pt->opt = opt;
		pt->opt.n = pt->hi - pt->lo;
		if (opt.m)
			pt->opt.m = opt.m + pt->lo;
		if (opt.v)
			pt->opt.v = opt.v + pt->lo;
	}
	if (n > 1) {
		/* The parts are the threads: OpenBLAS's would fight them. */
		blas = fl_blas_threads();
		fl_blas_set_threads(1);
	}
	for (started = 1; started < n; started++)
		if (pthread_create(&f.part[started].thread, NULL, run_thread,
		    &f.part[started]))
			break;
	start(&f, started == n ? 1 : -1);
	if (started == n)
		run(&f.part[0]);
	else
		f.rc = fl_err(err, FL_EFAIL, "cannot start %d threads", n);
	for (int t = 1; t < started; t++)
		pthread_join(f.part[t].thread, NULL);
	if (blas)
		fl_blas_set_threads(blas);
	if ((rc = f.rc))
		goto out;
	if (res) {
		res->samples = f.maxseen;
		res->steps = f.step;
		res->epochs = f.epochs;
		res->loss = f.seen ? f.lsum / (double)f.seen : NAN;
		res->accuracy = ce && f.seen ? (double)f.correct /
		    (double)f.seen : NAN;
		res->seconds = fl_monotonic() - f.t0;
		res->rate = res->seconds > 0 ? (double)f.examples /
		    res->seconds : 0;
	}
	rc = FL_OK;
out:
	for (int t = 1; f.part && t < n; t++)
		fl_net_release(&f.part[t].own);
	free(f.part);
	fl_optim_release(&opt);
	free(f.perm);
	free(f.yb);
	free(f.tb);
	free(f.w0);
	return rc;
}

int
fl_eval(struct fl_net *net, const struct fl_dataset *d,
    struct fl_eval_result *res, char *err)
{
	const int ce = net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const int C = fl_arch_out(&net->arch);
	const size_t F = (size_t)d->features;
	double lsum = 0;
	uint64_t correct = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = fl_train_check(net, d, err)))
		return rc;
	for (uint64_t i = 0; i < d->n; i += (uint64_t)net->maxbatch) {
		int b = d->n - i < (uint64_t)net->maxbatch ? (int)(d->n - i) :
		    net->maxbatch;
		const float *out = fl_net_forward(net, d->x + i * F, b, 0, NULL);
		const void *y = ce ? (const void *)(d->y + i) :
		    (const void *)(d->targets + i * d->k);

		if (!out)
			return fl_err(err, FL_EFAIL, "forward pass failed");
		lsum += (double)fl_net_loss(net, y, b) * b;
		if (ce)
			correct += (uint64_t)fl_count_correct(out, d->y + i, b, C);
	}
	res->samples = d->n;
	res->loss = lsum / (double)d->n;
	res->accuracy = ce ? (double)correct / (double)d->n : NAN;
	return FL_OK;
}

/* Softmax of each of B rows of C logits into p. */
static void
softmax_rows(float *p, const float *x, int B, int C)
{
	for (int i = 0; i < B; i++) {
		const float *r = x + (size_t)i * C;
		float *q = p + (size_t)i * C;
		float max = r[0], sum = 0;

		for (int c = 1; c < C; c++)
			if (r[c] > max)
				max = r[c];
		for (int c = 0; c < C; c++)
			sum += q[c] = expf(r[c] - max);
		for (int c = 0; c < C; c++)
			q[c] /= sum;
	}
}

static float
entropy_of(const float *p, int C)
{
	double h = 0;

	for (int c = 0; c < C; c++)
		if (p[c] > 0)
			h -= (double)p[c] * log((double)p[c]);
	return (float)h;
}

int
fl_predict(struct fl_net *net, const float *x, uint64_t n, int passes,
    uint64_t seed, float *mean, float *std, float *entropy, char *err)
{
	const int ce = net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const int C = fl_arch_out(&net->arch);
	const size_t F = (size_t)fl_arch_in(&net->arch), M = (size_t)net->maxbatch;
	double *sum = NULL, *sq = NULL;
	float *prob = NULL;
	struct fl_rng rd;
	int rc = FL_OK;

	if (passes < 0)
		return fl_err(err, FL_EUSAGE, "passes must be >= 0");
	if (passes > 0 && (!(sum = malloc(M * C * sizeof(*sum))) ||
	    !(sq = malloc(M * C * sizeof(*sq))) ||
	    !(prob = malloc(M * C * sizeof(*prob))))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	fl_rng_seed(&rd, seed ^ DROPOUT_STREAM);
	for (uint64_t i = 0; i < n; i += M) {
		int b = n - i < M ? (int)(n - i) : (int)M;
		size_t nb = (size_t)b * C;
		float *m = mean + i * C;
		const float *out;

		if (passes == 0) {
			if (!(out = fl_net_forward(net, x + i * F, b, 0, NULL))) {
				rc = fl_err(err, FL_EFAIL, "forward pass failed");
				goto out;
			}
			if (ce)
				softmax_rows(m, out, b, C);
			else
				memcpy(m, out, nb * sizeof(*m));
			if (std)
				memset(std + i * C, 0, nb * sizeof(*std));
		} else {
			memset(sum, 0, nb * sizeof(*sum));
			memset(sq, 0, nb * sizeof(*sq));
			for (int t = 0; t < passes; t++) {
				if (!(out = fl_net_forward(net, x + i * F, b, 1, &rd))) {
					rc = fl_err(err, FL_EFAIL, "forward pass failed");
					goto out;
				}
				if (ce) {
					softmax_rows(prob, out, b, C);
					out = prob;
				}
				for (size_t j = 0; j < nb; j++) {
					sum[j] += out[j];
					sq[j] += (double)out[j] * out[j];
				}
			}
			for (size_t j = 0; j < nb; j++) {
				double mu = sum[j] / passes;
				double var = sq[j] / passes - mu * mu;
				m[j] = (float)mu;
				if (std)
					std[i * C + j] = (float)sqrt(var > 0 ? var : 0);
			}
		}
		if (ce && entropy)
			for (int r = 0; r < b; r++)
				entropy[i + (uint64_t)r] = entropy_of(m + (size_t)r * C, C);
	}
out:
	free(sum);
	free(sq);
	free(prob);
	return rc;
}

int
fl_inputs_load(const char *path, float **x, uint64_t *n, uint64_t *features,
    char *err)
{
	struct fl_dataset d;
	int rc;

	*x = NULL;
	*n = *features = 0;
	if ((rc = fl_dataset_load_inputs(&d, path, err)))
		return rc;
	if (d.xmap.base) {
		/* mapped from the file: the caller gets a copy of its own */
		size_t bytes = (size_t)(d.n * d.features) * sizeof(float);
		if (!(*x = malloc(bytes ? bytes : 1))) {
			fl_dataset_release(&d);
			return fl_err(err, FL_EFAIL, "out of memory");
		}
		memcpy(*x, d.x, bytes);
	} else {
		*x = d.x;	/* taken over from d */
		d.x = NULL;
	}
	*n = d.n;
	*features = d.features;
	fl_dataset_release(&d);
	return FL_OK;
}

int
fl_train_stamp(struct fl_val *meta, const struct fl_train_opts *o,
    const struct fl_train_result *res, const char *client)
{
	struct fl_val metrics, fit;

	fl_val_map(&metrics);
	fl_val_map(&fit);
	if (fl_map_set_float(&metrics, "train_loss", res->loss) ||
	    (!isnan(res->accuracy) &&
	    fl_map_set_float(&metrics, "train_accuracy", res->accuracy)) ||
	    fl_map_set_str(&fit, "optimizer", fl_optim_name(o->optim.kind)) ||
	    fl_map_set_float(&fit, "lr", o->optim.lr) ||
	    fl_map_set_uint(&fit, "epochs", (uint64_t)res->epochs) ||
	    fl_map_set_uint(&fit, "steps", res->steps) ||
	    fl_map_set_uint(&fit, "batch", (uint64_t)o->batch) ||
	    fl_map_set_uint(&fit, "seed", o->seed) ||
	    fl_map_set_uint(&fit, "threads", (uint64_t)o->threads) ||
	    (o->prox > 0 && fl_map_set_float(&fit, "prox", o->prox)) ||
	    fl_map_set(meta, "metrics", &metrics) ||
	    fl_map_set(meta, "fit", &fit) ||
	    fl_map_set_uint(meta, "samples", res->samples) ||
	    fl_map_set_str(meta, "client", client) ||
	    fl_meta_stamp(meta, "fl-fit"))
		return FL_EFAIL;
	return FL_OK;
}

/* A number in [lo, hi]; integers when isint. */
static int
kv_num(const char *key, const char *val, double lo, double hi, int isint,
    double *out, char *err)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (!*val || *end || errno || !(v >= lo && v <= hi) ||
	    (isint && v != floor(v)))
		return fl_err(err, FL_EUSAGE, "%s: '%.40s': expected %s from %g "
		    "to %g", key, val, isint ? "an integer" : "a number", lo, hi);
	*out = v;
	return FL_OK;
}

int
fl_train_opts_kv(struct fl_train_opts *o, const char *const *keys,
    const char *const *vals, size_t n, char *err)
{
	enum fl_optim_kind kind = FL_OPTIM_SGD;
	double lr = NAN, momentum = NAN, wd = NAN, v;
	int nesterov = 0, rc;
	struct fl_optim check;

	fl_train_defaults(o);
	for (size_t i = 0; i < n; i++) {
		const char *k = keys[i], *s = vals[i];
		if (!strcmp(k, "optimizer")) {
			if (fl_optim_parse(s, &kind))
				return fl_err(err, FL_EUSAGE, "optimizer: unknown "
				    "optimizer '%.40s' (sgd, adam)", s);
			continue;
		}
		if (!strcmp(k, "nesterov")) {
			if (strcmp(s, "1") && strcmp(s, "0") && strcmp(s, "true") &&
			    strcmp(s, "false") && *s)
				return fl_err(err, FL_EUSAGE, "nesterov: 0 or 1");
			nesterov = !strcmp(s, "1") || !strcmp(s, "true") || !*s;
			continue;
		}
		if (!strcmp(k, "epochs")) {
			if ((rc = kv_num(k, s, 1, 1000000, 1, &v, err)))
				return rc;
			o->epochs = (int)v;
		} else if (!strcmp(k, "batch")) {
			if ((rc = kv_num(k, s, 1, 1 << 20, 1, &v, err)))
				return rc;
			o->batch = (int)v;
		} else if (!strcmp(k, "lr")) {
			if ((rc = kv_num(k, s, 0, 1e30, 0, &lr, err)))
				return rc;
		} else if (!strcmp(k, "momentum")) {
			if ((rc = kv_num(k, s, 0, 1, 0, &momentum, err)))
				return rc;
		} else if (!strcmp(k, "weight-decay")) {
			if ((rc = kv_num(k, s, 0, 1e30, 0, &wd, err)))
				return rc;
		} else if (!strcmp(k, "prox")) {
			if ((rc = kv_num(k, s, 0, 1e30, 0, &o->prox, err)))
				return rc;
		} else if (!strcmp(k, "seed")) {
			if ((rc = kv_num(k, s, 0, 9007199254740992.0, 1, &v, err)))
				return rc;
			o->seed = (uint64_t)v;
		} else if (!strcmp(k, "max-steps")) {
			if ((rc = kv_num(k, s, 1, 9007199254740992.0, 1, &v, err)))
				return rc;
			o->max_steps = (uint64_t)v;
		} else {
			return fl_err(err, FL_EUSAGE, "unknown training option '%.40s' "
			    "(epochs, batch, lr, optimizer, momentum, nesterov, "
			    "weight-decay, prox, seed, max-steps)", k);
		}
	}
	fl_optim_defaults(&o->optim, kind);
	if (!isnan(lr))
		o->optim.lr = lr;
	if (!isnan(wd))
		o->optim.weight_decay = wd;
	if (kind != FL_OPTIM_SGD && (!isnan(momentum) || nesterov))
		return fl_err(err, FL_EUSAGE, "momentum and nesterov go with "
		    "optimizer sgd");
	if (!isnan(momentum))
		o->optim.momentum = momentum;
	o->optim.nesterov = nesterov;
	if (nesterov && !(o->optim.momentum > 0))
		return fl_err(err, FL_EUSAGE, "nesterov needs momentum above 0");
	if ((rc = fl_optim_init(&check, &o->optim, 1, err)))
		return rc;
	fl_optim_release(&check);
	return FL_OK;
}
