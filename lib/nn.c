/* nn.c: layers, losses and sequential networks on float arrays and cblas
 * (blas.h). */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


#include "blas.h"
#include "nn.h"
#include "util.h"

/* Every activation buffer starts on a 64-byte boundary: ALIGN floats. */
#define ALIGN 16
/*
 * Elementwise loops run in blocks of BLOCK: with a trip count known at
 * compile time, gcc -O2's cheap vectorizer turns each into SIMD code.
 */
#define BLOCK 64

void
fl_linear_forward(float *out, const float *in, const float *w, const float *b,
    int B, int IN, int OUT)
{
	float beta = 0.0f;

	if (b) {
		for (int i = 0; i < B; i++)
			memcpy(out + (size_t)i * OUT, b,
			    (size_t)OUT * sizeof *b);
		beta = 1.0f;
	}
	/* out (B, OUT) = in (B, IN) . w^T (IN, OUT) [+ out] */
	fl_sgemm(0, 1, B, OUT, IN, 1.0f, in, IN, w, IN, beta, out, OUT);
}

/* Elementwise kernels, called on blocks of BLOCK and on the rest. */
static inline void
add_k(float *restrict y, const float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += x[i];
}

static inline void
relu_k(float *restrict out, const float *restrict in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

static inline void
drelu_k(float *restrict din, const float *restrict dout,
    const float *restrict out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float d = dout[i];

		din[i] += out[i] > 0.0f ? d : 0.0f;
	}
}

static inline void
dtanh_k(float *restrict din, const float *restrict dout,
    const float *restrict out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

static inline void
dsigmoid_k(float *restrict din, const float *restrict dout,
    const float *restrict out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

static inline void
mul_k(float *restrict out, const float *restrict x, const float *restrict y,
    size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = x[i] * y[i];
}

static inline void
dmul_k(float *restrict din, const float *restrict dout,
    const float *restrict mask, size_t n)
{
	for (size_t i = 0; i < n; i++)
		din[i] += dout[i] * mask[i];
}

static void
vadd(float *restrict y, const float *restrict x, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		add_k(y + i, x + i, BLOCK);
	add_k(y + i, x + i, n - i);
}

void
fl_linear_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int B, int IN, int OUT)
{
	/* din (B, IN) += dout (B, OUT) . w (OUT, IN) */
	if (din)
		fl_sgemm(0, 0, B, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, din, IN);
	/* dw (OUT, IN) += dout^T (OUT, B) . in (B, IN) */
	if (dw)
		fl_sgemm(1, 0, OUT, IN, B, 1.0f, dout, OUT, in, IN, 1.0f, dw, IN);
	if (db)
		for (int i = 0; i < B; i++)
			vadd(db, dout + (size_t)i * OUT, (size_t)OUT);
}

void
fl_relu_forward(float *out, const float *in, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		relu_k(out + i, in + i, BLOCK);
	relu_k(out + i, in + i, n - i);
}

void
fl_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		drelu_k(din + i, dout + i, out + i, BLOCK);
	drelu_k(din + i, dout + i, out + i, n - i);
}

void
fl_tanh_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = tanhf(in[i]);
}

void
fl_tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		dtanh_k(din + i, dout + i, out + i, BLOCK);
	dtanh_k(din + i, dout + i, out + i, n - i);
}

void
fl_sigmoid_forward(float *out, const float *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = 1.0f / (1.0f + expf(-in[i]));
}

void
fl_sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		dsigmoid_k(din + i, dout + i, out + i, BLOCK);
	dsigmoid_k(din + i, dout + i, out + i, n - i);
}

void
fl_dropout_forward(float *out, float *mask, const float *in, float p,
    int train, struct fl_rng *rng, size_t n)
{
	float scale;
	size_t i = 0;

	if (!train || p <= 0.0f) {
		memcpy(out, in, n * sizeof *out);
		if (train)
			for (size_t j = 0; j < n; j++)
				mask[j] = 1.0f;
		return;
	}
	scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
	for (size_t j = 0; j < n; j++)
		mask[j] = fl_rng_uniformf(rng) < p ? 0.0f : scale;
	for (; i + BLOCK <= n; i += BLOCK)
		mul_k(out + i, in + i, mask + i, BLOCK);
	mul_k(out + i, in + i, mask + i, n - i);
}

void
fl_dropout_backward(float *din, const float *dout, const float *mask, size_t n)
{
	size_t i = 0;

	for (; i + BLOCK <= n; i += BLOCK)
		dmul_k(din + i, dout + i, mask + i, BLOCK);
	dmul_k(din + i, dout + i, mask + i, n - i);
}

/*
 * The losses of B rows of a batch of N: their sum over N (the mean when
 * N == B) is the loss, and its gradient what is added into dlogits or dout.
 */
static float
softmax_ce(float *dlogits, const float *logits, const int32_t *y, int B,
    int C, int N)
{
	double total = 0;
	int bad = 0;
	float invB = 1.0f / (float)N;

	for (int i = 0; i < B; i++) {
		const float *x = logits + (size_t)i * C;
		float max = x[0], sum = 0.0f;
		int32_t k = y[i];

		if (k < 0 || k >= C) {
			bad = 1;
			continue;
		}
		for (int c = 1; c < C; c++)
			if (x[c] > max)
				max = x[c];
		for (int c = 0; c < C; c++)
			sum += expf(x[c] - max);
		total += (double)max + log((double)sum) - x[k];
		if (dlogits) {
			float *d = dlogits + (size_t)i * C;
			float s = invB / sum;
			for (int c = 0; c < C; c++)
				d[c] += expf(x[c] - max) * s;
			d[k] -= invB;
		}
	}
	return bad ? NAN : (float)(total / N);
}

float
fl_softmax_ce(float *dlogits, const float *logits, const int32_t *y, int B,
    int C)
{
	return softmax_ce(dlogits, logits, y, B, C, B);
}

static float
mse(float *dout, const float *out, const float *target, int B, int N, int M)
{
	size_t n = (size_t)B * N, m = (size_t)M * N;
	double total = 0;
	float s = 2.0f / (float)m;

	for (size_t i = 0; i < n; i++) {
		float d = out[i] - target[i];
		total += (double)d * d;
	}
	if (dout)
		for (size_t i = 0; i < n; i++)
			dout[i] += s * (out[i] - target[i]);
	return (float)(total / m);
}

float
fl_mse(float *dout, const float *out, const float *target, int B, int N)
{
	return mse(dout, out, target, B, N, B);
}

int
fl_count_correct(const float *logits, const int32_t *y, int B, int C)
{
	int correct = 0;

	for (int i = 0; i < B; i++) {
		const float *x = logits + (size_t)i * C;
		int best = 0;
		for (int c = 1; c < C; c++)
			if (x[c] > x[best])
				best = c;
		correct += best == y[i];
	}
	return correct;
}

static size_t
roundup(size_t n)
{
	return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/*
 * Zeroed, 64-byte aligned floats. Large arrays come straight from mmap,
 * whose pages are zero and cost nothing until touched (fl-pack init of a
 * big model never touches its gradients).
 */
#define FL_MAP_MIN (1u << 20)

static float *
falloc(size_t n)
{
	void *p = NULL;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX / sizeof(float))
		return NULL;
	if (n * sizeof(float) >= FL_MAP_MIN) {
		p = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		madvise(p, n * sizeof(float), MADV_HUGEPAGE);	/* fewer faults */
		return p;
	}
	if (posix_memalign(&p, 64, n * sizeof(float)) != 0)
		return NULL;
	memset(p, 0, n * sizeof(float));
	return p;
}

static void
ffree(float *p, size_t n)
{
	if (!p)
		return;
	if (n == 0)
		n = 1;
	if (n * sizeof(float) >= FL_MAP_MIN)
		munmap(p, n * sizeof(float));
	else
		free(p);
}

static int
check_arch(const struct fl_arch *a, int maxbatch, char *err)
{
	if (a->nlayers < 1 || a->nlayers > FL_MAX_LAYERS)
		return fl_err(err, FL_EDATA,
		    "arch has %d layers, expected 1 to %d", a->nlayers,
		    FL_MAX_LAYERS);
	if (maxbatch < 1 || maxbatch > (1 << 24))
		return fl_err(err, FL_ELIMIT, "batch size %d out of range",
		    maxbatch);
	if (a->loss != FL_LOSS_SOFTMAX_CE && a->loss != FL_LOSS_MSE)
		return fl_err(err, FL_EDATA, "unknown loss %d", (int)a->loss);
	for (int i = 0; i < a->nlayers; i++) {
		const struct fl_layer *l = &a->layer[i];

		if (l->in < 1 || l->out < 1 || l->in > FL_MAX_WIDTH ||
		    l->out > FL_MAX_WIDTH)
			return fl_err(err, FL_EDATA,
			    "layer %d: width %d->%d out of range", i, l->in,
			    l->out);
		if (i > 0 && l->in != a->layer[i - 1].out)
			return fl_err(err, FL_EDATA,
			    "layer %d: input width %d, previous layer gives %d",
			    i, l->in, a->layer[i - 1].out);
		switch (l->type) {
		case FL_LINEAR:
			break;
		case FL_DROPOUT:
			if (!(l->p >= 0.0f && l->p <= 1.0f))
				return fl_err(err, FL_EDATA,
				    "layer %d: dropout probability %g "
				    "not in [0, 1]", i, (double)l->p);
			/* fall through */
		case FL_RELU:
		case FL_TANH:
		case FL_SIGMOID:
			if (l->in != l->out)
				return fl_err(err, FL_EDATA,
				    "layer %d: %s maps width %d to %d", i,
				    fl_layer_name(l->type), l->in, l->out);
			break;
		default:
			return fl_err(err, FL_EDATA,
			    "layer %d: unknown type %d", i, (int)l->type);
		}
	}
	return FL_OK;
}

/* fl_net_init, over params if not NULL (borrowed) or its own. */
static int
net_init(struct fl_net *net, const struct fl_arch *arch, int maxbatch,
    float *params, char *err)
{
	int rc, L, nt = 0;
	size_t np = 0, na = 0, pp = 0, ap = 0;

	memset(net, 0, sizeof *net);
	if ((rc = check_arch(arch, maxbatch, err)) != FL_OK ||
	    (rc = fl_blas_load(err)) != FL_OK)
		return rc;
	net->arch = *arch;
	net->maxbatch = maxbatch;
	L = arch->nlayers;
	for (int i = 0; i < L; i++) {
		const struct fl_layer *l = &arch->layer[i];
		size_t act = roundup((size_t)maxbatch * (size_t)l->out);

		if (l->type == FL_LINEAR) {
			np += (size_t)l->out * (size_t)l->in + (size_t)l->out;
			nt += 2;
		}
		na += (l->type == FL_DROPOUT ? 3 : 2) * act;
	}
	net->shared = params != NULL;
	net->params = params ? params : falloc(np);
	net->grads = falloc(np);
	net->acts = falloc(na);
	net->nacts = na;
	net->tensor = calloc(nt ? nt : 1, sizeof *net->tensor);
	net->layer = calloc(L, sizeof *net->layer);
	if (!net->params || !net->grads || !net->acts || !net->tensor ||
	    !net->layer) {
		fl_net_release(net);
		return fl_err(err, FL_EFAIL,
		    "out of memory for a network of %zu parameters", np);
	}
	for (int i = 0; i < L; i++) {
		const struct fl_layer *l = &arch->layer[i];
		struct fl_net_layer *nl = &net->layer[i];
		size_t act = roundup((size_t)maxbatch * (size_t)l->out);

		if (l->type == FL_LINEAR) {
			struct fl_param *w = &net->tensor[net->ntensors++];
			struct fl_param *b = &net->tensor[net->ntensors++];

			snprintf(w->name, sizeof w->name, "%d.weight", i);
			w->layer = b->layer = i;
			w->ndim = 2;
			w->shape[0] = l->out;
			w->shape[1] = l->in;
			w->n = (size_t)l->out * (size_t)l->in;
			w->data = nl->w = net->params + pp;
			w->grad = nl->dw = net->grads + pp;
			pp += w->n;
			snprintf(b->name, sizeof b->name, "%d.bias", i);
			b->ndim = 1;
			b->shape[0] = l->out;
			b->n = (size_t)l->out;
			b->data = nl->b = net->params + pp;
			b->grad = nl->db = net->grads + pp;
			pp += b->n;
		}
		nl->out = net->acts + ap;
		ap += act;
		nl->dout = net->acts + ap;
		ap += act;
		if (l->type == FL_DROPOUT) {
			nl->mask = net->acts + ap;
			ap += act;
		}
	}
	net->nparams = np;
	return FL_OK;
}

int
fl_net_init(struct fl_net *net, const struct fl_arch *arch, int maxbatch,
    char *err)
{
	return net_init(net, arch, maxbatch, NULL, err);
}

int
fl_net_reinit(struct fl_net *net, const struct fl_arch *arch, int maxbatch,
    char *err)
{
	if (net->params && !net->shared && net->maxbatch == maxbatch &&
	    fl_arch_equal(&net->arch, arch)) {
		net->in = NULL;
		net->batch = 0;
		net->train = 0;
		return FL_OK;
	}
	if (net->params)
		fl_net_release(net);
	return net_init(net, arch, maxbatch, NULL, err);
}

size_t
fl_net_bytes(const struct fl_net *net)
{
	return (net->nparams * (net->shared ? 1 : 2) + net->nacts + net->nscratch) *
	    sizeof(float);
}

float *
fl_net_scratch(struct fl_net *net, size_t n)
{
	float *p;

	if (n <= net->nscratch)
		return net->scratch;
	if (!(p = realloc(net->scratch, n * sizeof(*p))))
		return NULL;
	net->scratch = p;
	net->nscratch = n;
	return p;
}

int
fl_net_init_shared(struct fl_net *net, const struct fl_net *base,
    int maxbatch, char *err)
{
	return net_init(net, &base->arch, maxbatch, base->params, err);
}

void
fl_net_release(struct fl_net *net)
{
	if (!net->shared)
		ffree(net->params, net->nparams);
	ffree(net->grads, net->nparams);
	ffree(net->acts, net->nacts);
	free(net->tensor);
	free(net->layer);
	free(net->scratch);
	memset(net, 0, sizeof *net);
}

void
fl_net_init_params(struct fl_net *net, struct fl_rng *rng)
{
	for (int i = 0; i < net->ntensors; i++) {
		struct fl_param *t = &net->tensor[i];
		int fanin = net->arch.layer[t->layer].in;
		float bound = 1.0f / sqrtf((float)fanin);

		for (size_t j = 0; j < t->n; j++)
			t->data[j] = bound *
			    (2.0f * fl_rng_uniformf(rng) - 1.0f);
	}
}

const float *
fl_net_forward(struct fl_net *net, const float *x, int B, int train,
    struct fl_rng *rng)
{
	const float *in = x;

	if (B < 1 || B > net->maxbatch)
		return NULL;
	for (int i = 0; i < net->arch.nlayers; i++) {
		const struct fl_layer *l = &net->arch.layer[i];
		struct fl_net_layer *nl = &net->layer[i];
		size_t n = (size_t)B * l->out;

		switch (l->type) {
		case FL_LINEAR:
			fl_linear_forward(nl->out, in, nl->w, nl->b, B, l->in,
			    l->out);
			break;
		case FL_RELU:
			fl_relu_forward(nl->out, in, n);
			break;
		case FL_TANH:
			fl_tanh_forward(nl->out, in, n);
			break;
		case FL_SIGMOID:
			fl_sigmoid_forward(nl->out, in, n);
			break;
		case FL_DROPOUT:
			if (train && l->p > 0.0f && !rng)
				return NULL;
			fl_dropout_forward(nl->out, nl->mask, in, l->p, train,
			    rng, n);
			break;
		}
		in = nl->out;
	}
	net->in = x;
	net->batch = B;
	net->train = train;
	return in;
}

/* The loss of B rows of a batch of N (see softmax_ce). */
static float
loss(const struct fl_net *net, float *dout, const void *y, int B, int N)
{
	const struct fl_net_layer *last = &net->layer[net->arch.nlayers - 1];
	int C = net->arch.layer[net->arch.nlayers - 1].out;

	if (net->arch.loss == FL_LOSS_SOFTMAX_CE)
		return softmax_ce(dout, last->out, y, B, C, N);
	return mse(dout, last->out, y, B, C, N);
}

float
fl_net_backward(struct fl_net *net, const void *y, int B)
{
	return fl_net_backward_part(net, y, B, B);
}

float
fl_net_backward_part(struct fl_net *net, const void *y, int B, int N)
{
	int L = net->arch.nlayers, first = L;
	float l;

	if (B < 1 || B != net->batch || N < B)
		return NAN;
	/* Layers before the first linear one need no input gradient. */
	for (int i = 0; i < L; i++)
		if (net->arch.layer[i].type == FL_LINEAR) {
			first = i;
			break;
		}
	memset(net->layer[L - 1].dout, 0,
	    (size_t)B * net->arch.layer[L - 1].out * sizeof(float));
	l = loss(net, net->layer[L - 1].dout, y, B, N);
	for (int i = L - 1; i >= first; i--) {
		const struct fl_layer *ly = &net->arch.layer[i];
		struct fl_net_layer *nl = &net->layer[i];
		const float *in = i > 0 ? net->layer[i - 1].out : net->in;
		float *din = i > first ? net->layer[i - 1].dout : NULL;
		size_t n = (size_t)B * ly->out;

		if (din)
			memset(din, 0, (size_t)B * ly->in * sizeof *din);
		assert(din || ly->type == FL_LINEAR);	/* layer first is linear */
		switch (ly->type) {
		case FL_LINEAR:
			fl_linear_backward(din, nl->dw, nl->db, nl->dout, in,
			    nl->w, B, ly->in, ly->out);
			break;
		case FL_RELU:
			fl_relu_backward(din, nl->dout, nl->out, n);
			break;
		case FL_TANH:
			fl_tanh_backward(din, nl->dout, nl->out, n);
			break;
		case FL_SIGMOID:
			fl_sigmoid_backward(din, nl->dout, nl->out, n);
			break;
		case FL_DROPOUT:
			if (net->train)
				fl_dropout_backward(din, nl->dout, nl->mask, n);
			else
				vadd(din, nl->dout, n);
			break;
		}
	}
	return l;
}

float
fl_net_loss(const struct fl_net *net, const void *y, int B)
{
	if (B < 1 || B != net->batch)
		return NAN;
	return loss(net, NULL, y, B, B);
}

void
fl_net_zero_grad(struct fl_net *net)
{
	memset(net->grads, 0, net->nparams * sizeof *net->grads);
}

const struct fl_param *
fl_net_param(const struct fl_net *net, int i)
{
	if (i < 0 || i >= net->ntensors)
		return NULL;
	return &net->tensor[i];
}

const struct fl_param *
fl_net_param_find(const struct fl_net *net, const char *name)
{
	for (int i = 0; i < net->ntensors; i++)
		if (strcmp(net->tensor[i].name, name) == 0)
			return &net->tensor[i];
	return NULL;
}
