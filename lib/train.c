/* train.c: fit, eval and predict loops: shuffled batches gathered into one
 * buffer, an optimizer step each, FedProx, metrics, MC dropout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "blob.h"
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
}

void
fl_train_threads(int n)
{
	if (n >= 1)
		openblas_set_num_threads(n);
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

int
fl_fit(struct fl_net *net, const struct fl_dataset *d,
    const struct fl_train_opts *o, struct fl_train_result *res, char *err)
{
	const int ce = net->arch.loss == FL_LOSS_SOFTMAX_CE;
	const int C = fl_arch_out(&net->arch);
	const size_t F = (size_t)d->features, K = (size_t)d->k;
	struct fl_train_progress p = { 0 };
	struct fl_rng rs, rd;
	struct fl_optim opt;
	uint32_t *perm = NULL;
	float *xb = NULL, *tb = NULL, *w0 = NULL;
	int32_t *yb = NULL;
	uint64_t steps, step = 0, maxseen = 0, examples = 0;
	double t0 = fl_monotonic(), lsum = 0;
	uint64_t correct = 0, seen = 0;
	int rc, e;

	if (res)
		memset(res, 0, sizeof(*res));
	if ((rc = check_opts(net, o, err)) || (rc = fl_train_check(net, d, err)))
		return rc;
	if (d->n > UINT32_MAX)
		return fl_err(err, FL_ELIMIT, "dataset has more than %u examples",
		    UINT32_MAX);
	if ((rc = fl_optim_init(&opt, &o->optim, net->nparams, err)))
		return rc;
	perm = malloc(d->n * sizeof(*perm));
	xb = malloc((size_t)o->batch * F * sizeof(*xb) + 1);
	if (ce)
		yb = malloc((size_t)o->batch * sizeof(*yb));
	else
		tb = malloc((size_t)o->batch * K * sizeof(*tb) + 1);
	if (o->prox > 0 && (w0 = malloc(net->nparams * sizeof(*w0))))
		memcpy(w0, net->params, net->nparams * sizeof(*w0));
	if (!perm || !xb || (ce ? !yb : !tb) || (o->prox > 0 && !w0)) {
		rc = fl_err(err, FL_EFAIL, "out of memory for training buffers");
		goto out;
	}
	for (uint64_t i = 0; i < d->n; i++)
		perm[i] = (uint32_t)i;
	fl_rng_seed(&rs, o->seed);
	fl_rng_seed(&rd, o->seed ^ DROPOUT_STREAM);
	steps = total_steps(d->n, o);
	p.epochs = o->epochs;
	p.steps = steps;

	for (e = 0; e < o->epochs && step < steps; e++) {
		fl_rng_shuffle(&rs, perm, d->n);
		lsum = 0;
		correct = seen = 0;
		for (uint64_t i = 0; i < d->n && step < steps; i += (uint64_t)o->batch) {
			int b = d->n - i < (uint64_t)o->batch ? (int)(d->n - i) : o->batch;
			const float *out;
			float l;

			for (int j = 0; j < b; j++) {
				uint32_t r = perm[i + (uint64_t)j];
				memcpy(xb + (size_t)j * F, d->x + (size_t)r * F,
				    F * sizeof(*xb));
				if (ce)
					yb[j] = d->y[r];
				else
					memcpy(tb + (size_t)j * K,
					    d->targets + (size_t)r * K,
					    K * sizeof(*tb));
			}
			fl_net_zero_grad(net);
			if (!(out = fl_net_forward(net, xb, b, 1, &rd))) {
				rc = fl_err(err, FL_EFAIL, "forward pass failed "
				    "(batch %d)", b);
				goto out;
			}
			l = fl_net_backward(net, ce ? (const void *)yb :
			    (const void *)tb, b);
			if (!isfinite(l)) {
				rc = fl_err(err, FL_EDATA, "the loss became %s at "
				    "epoch %d, step %llu (try a smaller learning "
				    "rate)", isnan(l) ? "NaN" : "infinite", e + 1,
				    (unsigned long long)step + 1);
				goto out;
			}
			if (ce)
				correct += (uint64_t)fl_count_correct(out, yb, b, C);
			if (w0)
				fl_prox_grad(net->grads, net->params, w0,
				    (float)o->prox, net->nparams);
			fl_optim_step(&opt, net->params, net->grads);
			step++;
			seen += (uint64_t)b;
			examples += (uint64_t)b;
			lsum += (double)l * b;
			if (o->progress) {
				double dt = fl_monotonic() - t0;
				p.epoch = e + 1;
				p.step = step;
				p.seen = seen;
				p.loss = lsum / (double)seen;
				p.accuracy = ce ? (double)correct / (double)seen : NAN;
				p.rate = dt > 0 ? (double)examples / dt : 0;
				p.epoch_done = seen == d->n || step == steps;
				if (o->progress(o->arg, &p)) {
					rc = fl_err(err, FL_EFAIL, "training stopped");
					goto out;
				}
			}
		}
		if (seen > maxseen)
			maxseen = seen;
	}
	if (res) {
		res->samples = maxseen;
		res->steps = step;
		res->epochs = e;
		res->loss = seen ? lsum / (double)seen : NAN;
		res->accuracy = ce && seen ? (double)correct / (double)seen : NAN;
		res->seconds = fl_monotonic() - t0;
		res->rate = res->seconds > 0 ? (double)examples / res->seconds : 0;
	}
	rc = FL_OK;
out:
	fl_optim_release(&opt);
	free(perm);
	free(xb);
	free(yb);
	free(tb);
	free(w0);
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
	*x = d.x;	/* taken over from d */
	d.x = NULL;
	*n = d.n;
	*features = d.features;
	fl_dataset_release(&d);
	return FL_OK;
}
