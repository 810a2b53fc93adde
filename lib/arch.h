/* arch.h: a model's architecture, a sequence of layers as in PyTorch's
 * nn.Sequential, parsed from a spec like "784,128,relu,10". */
#ifndef FL_ARCH_H
#define FL_ARCH_H

#include <stddef.h>

enum fl_layer_type {
	FL_LINEAR,
	FL_RELU,
	FL_TANH,
	FL_SIGMOID,
	FL_DROPOUT,
};

enum fl_loss {
	FL_LOSS_SOFTMAX_CE,	/* softmax cross-entropy over class indices */
	FL_LOSS_MSE,		/* mean squared error over targets */
};

struct fl_layer {
	enum fl_layer_type type;
	int in, out;		/* widths; equal for activations and dropout */
	float p;		/* dropout probability */
};

#define FL_MAX_LAYERS 256
#define FL_MAX_WIDTH (1 << 24)

struct fl_arch {
	int nlayers;
	struct fl_layer layer[FL_MAX_LAYERS];
	enum fl_loss loss;
};

/*
 * spec: the input width, then per layer an output width (Linear), an
 * activation (relu, tanh, sigmoid) or dropout[:P] (default P 0.5).
 */
int fl_arch_parse(struct fl_arch *a, const char *spec, char *err);
/* Write the spec form back ("784,128,relu,10"). */
int fl_arch_format(const struct fl_arch *a, char *out, size_t outlen);
/* 1 when a and b are the same network: layers, widths, dropout, loss. */
int fl_arch_equal(const struct fl_arch *a, const struct fl_arch *b);
int fl_arch_in(const struct fl_arch *a);	/* input width */
int fl_arch_out(const struct fl_arch *a);	/* output width */
/* Number of parameters (floats) of the whole model. */
size_t fl_arch_nparams(const struct fl_arch *a);
const char *fl_layer_name(enum fl_layer_type t);	/* "linear", "relu", ... */
const char *fl_loss_name(enum fl_loss l);		/* "softmax-ce", "mse" */
int fl_loss_parse(const char *s, enum fl_loss *l);

#endif
