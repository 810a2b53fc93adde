/* arch.c: parsing and printing model architecture specs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "util.h"

static const char *layer_names[] = {
	[FL_LINEAR] = "linear",
	[FL_RELU] = "relu",
	[FL_TANH] = "tanh",
	[FL_SIGMOID] = "sigmoid",
	[FL_DROPOUT] = "dropout",
};

const char *
fl_layer_name(enum fl_layer_type t)
{
	return (unsigned)t <= FL_DROPOUT ? layer_names[t] : "?";
}

const char *
fl_loss_name(enum fl_loss l)
{
	return l == FL_LOSS_MSE ? "mse" : "softmax-ce";
}

int
fl_loss_parse(const char *s, enum fl_loss *l)
{
	if (!strcmp(s, "softmax-ce") || !strcmp(s, "ce") || !strcmp(s, "cross-entropy"))
		*l = FL_LOSS_SOFTMAX_CE;
	else if (!strcmp(s, "mse"))
		*l = FL_LOSS_MSE;
	else
		return FL_EUSAGE;
	return FL_OK;
}

int
fl_arch_parse(struct fl_arch *a, const char *spec, char *err)
{
	char *copy, *tok, *save = NULL;
	int width = -1, first = 1;
	uint64_t n;
	double p;

	memset(a, 0, sizeof(*a));
	a->loss = FL_LOSS_SOFTMAX_CE;
	if (!(copy = strdup(spec)))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct fl_layer *l;

		if (first) {
			if (fl_parse_u64(tok, FL_MAX_WIDTH, &n) || n == 0) {
				fl_err(err, FL_EUSAGE, "arch '%s': '%s' is not an input width",
				    spec, tok);
				goto fail;
			}
			width = (int)n;
			first = 0;
			continue;
		}
		if (a->nlayers == FL_MAX_LAYERS) {
			fl_err(err, FL_EUSAGE, "arch '%s': more than %d layers", spec,
			    FL_MAX_LAYERS);
			goto fail;
		}
		l = &a->layer[a->nlayers];
		l->in = l->out = width;
		if (tok[0] >= '0' && tok[0] <= '9') {
			if (fl_parse_u64(tok, FL_MAX_WIDTH, &n) || n == 0) {
				fl_err(err, FL_EUSAGE, "arch '%s': bad width '%s' (1 to %d)",
				    spec, tok, FL_MAX_WIDTH);
				goto fail;
			}
			l->type = FL_LINEAR;
			l->out = width = (int)n;
		} else if (!strcmp(tok, "relu")) {
			l->type = FL_RELU;
		} else if (!strcmp(tok, "tanh")) {
			l->type = FL_TANH;
		} else if (!strcmp(tok, "sigmoid")) {
			l->type = FL_SIGMOID;
		} else if (!strncmp(tok, "dropout", 7) && (tok[7] == 0 || tok[7] == ':')) {
			l->type = FL_DROPOUT;
			l->p = 0.5f;
			if (tok[7] == ':') {
				if (fl_parse_double(tok + 8, &p) || p < 0 || p >= 1) {
					fl_err(err, FL_EUSAGE, "arch '%s': dropout probability "
					    "'%s' is not in [0, 1)", spec, tok + 8);
					goto fail;
				}
				l->p = (float)p;
			}
		} else {
			fl_err(err, FL_EUSAGE, "arch '%s': unknown layer '%s' (a width, "
			    "relu, tanh, sigmoid or dropout[:P])", spec, tok);
			goto fail;
		}
		a->nlayers++;
	}
	if (first) {
		fl_err(err, FL_EUSAGE, "arch is empty");
		goto fail;
	}
	if (fl_arch_nparams(a) == 0) {
		fl_err(err, FL_EUSAGE, "arch '%s' has no linear layer", spec);
		goto fail;
	}
	free(copy);
	return FL_OK;
fail:
	free(copy);
	return FL_EUSAGE;
}

int
fl_arch_format(const struct fl_arch *a, char *out, size_t outlen)
{
	size_t n;

	if (a->nlayers == 0)
		return FL_EFAIL;
	n = (size_t)snprintf(out, outlen, "%d", a->layer[0].in);
	for (int i = 0; i < a->nlayers && n < outlen; i++) {
		const struct fl_layer *l = &a->layer[i];
		if (l->type == FL_LINEAR)
			n += (size_t)snprintf(out + n, outlen - n, ",%d", l->out);
		else if (l->type == FL_DROPOUT)
			n += (size_t)snprintf(out + n, outlen - n, ",dropout:%g", l->p);
		else
			n += (size_t)snprintf(out + n, outlen - n, ",%s", fl_layer_name(l->type));
	}
	return n < outlen ? FL_OK : FL_ELIMIT;
}

int
fl_arch_equal(const struct fl_arch *a, const struct fl_arch *b)
{
	if (a->nlayers != b->nlayers || a->loss != b->loss)
		return 0;
	for (int i = 0; i < a->nlayers; i++) {
		const struct fl_layer *x = &a->layer[i], *y = &b->layer[i];
		if (x->type != y->type || x->in != y->in || x->out != y->out ||
		    x->p != y->p)
			return 0;
	}
	return 1;
}

int
fl_arch_in(const struct fl_arch *a)
{
	return a->nlayers ? a->layer[0].in : 0;
}

int
fl_arch_out(const struct fl_arch *a)
{
	return a->nlayers ? a->layer[a->nlayers - 1].out : 0;
}

size_t
fl_arch_nparams(const struct fl_arch *a)
{
	size_t n = 0;

	for (int i = 0; i < a->nlayers; i++)
		if (a->layer[i].type == FL_LINEAR)
			n += (size_t)a->layer[i].out * ((size_t)a->layer[i].in + 1);
	return n;
}
