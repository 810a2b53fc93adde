/* nn.h: layers, losses and a sequential network over an fl_arch: pure math
 * on float arrays and cblas, matching PyTorch's nn.Sequential. */
#ifndef FL_NN_H
#define FL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "rng.h"

/*
 * Layers, the llm.c way: outputs first, dimensions last; B is the batch.
 * Arrays are row-major: in (B, IN), out (B, OUT), w (OUT, IN) as PyTorch's
 * Linear.weight, b (OUT). Backward functions accumulate (+=) into every
 * gradient they write, as PyTorch does; a NULL gradient is not computed.
 * Activation backward functions take the forward output, not the input.
 * No output may overlap an input.
 */
void fl_linear_forward(float *out, const float *in, const float *w,
    const float *b, int B, int IN, int OUT);
void fl_linear_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int B, int IN, int OUT);

void fl_relu_forward(float *out, const float *in, size_t n);
void fl_relu_backward(float *din, const float *dout, const float *out,
    size_t n);
void fl_tanh_forward(float *out, const float *in, size_t n);
void fl_tanh_backward(float *din, const float *dout, const float *out,
    size_t n);
void fl_sigmoid_forward(float *out, const float *in, size_t n);
void fl_sigmoid_backward(float *din, const float *dout, const float *out,
    size_t n);

/*
 * Inverted dropout. At training time mask gets 0 (dropped, probability p)
 * or 1/(1-p) per element, drawn from rng in element order, and
 * out = in * mask; at evaluation (train 0) out = in and mask is untouched.
 * rng and mask may be NULL when train is 0.
 */
void fl_dropout_forward(float *out, float *mask, const float *in, float p,
    int train, struct fl_rng *rng, size_t n);
/* din += dout * mask (the mask of a training forward). */
void fl_dropout_backward(float *din, const float *dout, const float *mask,
    size_t n);

/*
 * Softmax cross-entropy of logits (B, C) against class indices y (B), each
 * in [0, C): the mean over the batch of -log softmax(logits)[y], as
 * torch.nn.functional.cross_entropy. If dlogits is not NULL, it accumulates
 * the gradient of that mean, (softmax - onehot(y)) / B. Returns the loss,
 * or NAN if a label is out of range (that row then adds no gradient).
 */
float fl_softmax_ce(float *dlogits, const float *logits, const int32_t *y,
    int B, int C);
/*
 * Mean squared error over all B*N elements against targets (B, N), as
 * torch.nn.functional.mse_loss with reduction 'mean'. If dout is not NULL,
 * it accumulates 2 (out - target) / (B N). Returns the loss.
 */
float fl_mse(float *dout, const float *out, const float *target, int B, int N);
/* Number of rows of logits (B, C) whose largest entry is at y (ties: first). */
int fl_count_correct(const float *logits, const int32_t *y, int B, int C);

/* One parameter tensor of a network, named as in PyTorch's state dict. */
struct fl_param {
	char name[24];		/* "0.weight", "0.bias", "2.weight", ... */
	int layer;		/* index in the arch (and nn.Sequential) */
	int ndim;		/* 2 for a weight, 1 for a bias */
	int shape[2];		/* [OUT, IN] or [OUT] */
	size_t n;		/* number of floats */
	float *data;		/* points into fl_net.params */
	float *grad;		/* points into fl_net.grads */
};

/* Per layer state; pointers into the network's allocations. */
struct fl_net_layer {
	float *w;		/* (OUT, IN), linear only */
	float *b;		/* (OUT) */
	float *dw;		/* (OUT, IN) */
	float *db;		/* (OUT) */
	float *out;		/* (maxbatch, OUT) forward output */
	float *dout;		/* (maxbatch, OUT) d loss / d out */
	float *mask;		/* (maxbatch, OUT), dropout only */
};

/*
 * A network: the layers of an fl_arch, with all parameters in one
 * allocation (the state-dict tensors back to back, so params is also the
 * model as one flat vector), all gradients in another, and the
 * activations for batches of up to maxbatch rows in a third.
 */
struct fl_net {
	struct fl_arch arch;
	int maxbatch;
	size_t nparams;		/* floats in params and grads */
	float *params;		/* owned */
	float *grads;		/* owned */
	float *acts;		/* owned: outputs, their gradients, masks */
	size_t nacts;		/* floats in acts */
	int ntensors;
	struct fl_param *tensor;	/* owned: ntensors entries */
	struct fl_net_layer *layer;	/* owned: arch.nlayers entries */
	const float *in;	/* input of the last forward, borrowed */
	int batch;		/* rows of the last forward */
	int train;		/* the last forward was in training mode */
	int shared;		/* params borrowed (fl_net_init_shared) */
	float *scratch;		/* owned: fl_net_scratch's */
	size_t nscratch;
};

/*
 * Set up net for arch (copied) and batches of up to maxbatch rows.
 * Parameters and gradients start at zero; see fl_net_init_params.
 * Returns FL_OK, FL_EDATA for an unusable arch, FL_ELIMIT or FL_EFAIL
 * (out of memory), filling err. Release with fl_net_release.
 */
int fl_net_init(struct fl_net *net, const struct fl_arch *arch, int maxbatch,
    char *err);
/*
 * Set up net as a second network over base's parameters: base's arch, its
 * own gradients and activations for batches of up to maxbatch rows, and
 * params pointing into base's (borrowed: base must outlive net). Threads
 * can then train parts of a batch at once (see fl_net_backward_part).
 */
int fl_net_init_shared(struct fl_net *net, const struct fl_net *base,
    int maxbatch, char *err);
/*
 * fl_net_init for a net that is zeroed (never set up) or set up before and
 * not released: when it already has arch and maxbatch, it keeps its
 * buffers, and its parameters their values, rather than mapping and
 * faulting in new ones; else it is released and set up anew.
 */
int fl_net_reinit(struct fl_net *net, const struct fl_arch *arch, int maxbatch,
    char *err);
/* Bytes of memory net holds. */
size_t fl_net_bytes(const struct fl_net *net);
/* A work buffer of n floats that lives with net (fl_fit's batch), so that
 * a net kept from one fit to the next needs no fresh memory for it; NULL
 * when out of memory. Its contents are the caller's. */
float *fl_net_scratch(struct fl_net *net, size_t n);
void fl_net_release(struct fl_net *net);
/* PyTorch's default Linear init: weight and bias U(-1/sqrt(IN), 1/sqrt(IN)). */
void fl_net_init_params(struct fl_net *net, struct fl_rng *rng);

/*
 * Forward x (B, IN), 1 <= B <= maxbatch; x must stay valid until the
 * matching fl_net_backward. train enables dropout, drawing from rng (may
 * be NULL if the arch has no dropout or train is 0). Returns the network's
 * output (B, OUT), owned by net and valid until the next forward, or NULL
 * if B is out of range or rng is needed and missing.
 */
const float *fl_net_forward(struct fl_net *net, const float *x, int B,
    int train, struct fl_rng *rng);
/*
 * Loss of the last forward against y and, added (+=) into net->grads, its
 * gradient. y is const int32_t * (B) class indices for softmax-ce and
 * const float * (B, OUT) targets for mse. B must be that of the last
 * forward. Returns the mean loss, or NAN for a bad label or B.
 */
float fl_net_backward(struct fl_net *net, const void *y, int B);
/*
 * As fl_net_backward for B rows that are part of a batch of N rows: it
 * returns their share of the batch's mean loss (the sum of their losses
 * over N) and adds its gradient, so that the shares and the gradients of
 * the parts of a batch add up to the batch's. fl_net_backward is the
 * case N = B.
 */
float fl_net_backward_part(struct fl_net *net, const void *y, int B, int N);
/* The loss of the last forward without gradients (for evaluation). */
float fl_net_loss(const struct fl_net *net, const void *y, int B);
void fl_net_zero_grad(struct fl_net *net);

/* The i-th parameter tensor, 0 <= i < net->ntensors, in state-dict order. */
const struct fl_param *fl_net_param(const struct fl_net *net, int i);
/* The tensor called name ("2.weight"), or NULL. */
const struct fl_param *fl_net_param_find(const struct fl_net *net,
    const char *name);

#endif
