/* optim.h: optimizers over flat float vectors, stepping exactly as
 * torch.optim.SGD and torch.optim.Adam (PyTorch 1.13), and FedProx. */
#ifndef FL_OPTIM_H
#define FL_OPTIM_H

#include <stddef.h>

enum fl_optim_kind {
	FL_OPTIM_SGD,
	FL_OPTIM_ADAM,
};

struct fl_optim_opts {
	enum fl_optim_kind kind;
	/* Doubles, as Python floats: torch computes 1 - beta in double. */
	double lr;
	double weight_decay;	/* L2: weight_decay * w added to the gradient */
	/* SGD */
	double momentum;
	double dampening;
	int nesterov;		/* needs momentum > 0 and dampening 0 */
	/* Adam */
	double beta1, beta2;
	double eps;
};

/*
 * An optimizer for a vector of n parameters. The state (momentum buffer,
 * Adam moments) is owned; release it with fl_optim_release.
 */
struct fl_optim {
	struct fl_optim_opts o;
	size_t n;
	long step;		/* steps taken */
	float *m;		/* (n) SGD momentum or Adam first moment */
	float *v;		/* (n) Adam second moment */
};

/* PyTorch's defaults for kind (SGD, which has none for lr, gets 0.01). */
void fl_optim_defaults(struct fl_optim_opts *o, enum fl_optim_kind kind);
/* Returns FL_OK, FL_EUSAGE for invalid options or FL_EFAIL, filling err. */
int fl_optim_init(struct fl_optim *opt, const struct fl_optim_opts *o,
    size_t n, char *err);
void fl_optim_release(struct fl_optim *opt);
/* Forget the state, as a newly made torch optimizer. */
void fl_optim_reset(struct fl_optim *opt);
/* One step: update w (n) from gradients g (n); g is not modified. */
void fl_optim_step(struct fl_optim *opt, float *w, const float *g);

/* "sgd" or "adam"; fl_optim_parse returns FL_OK or FL_EUSAGE. */
const char *fl_optim_name(enum fl_optim_kind kind);
int fl_optim_parse(const char *s, enum fl_optim_kind *kind);

/*
 * FedProx: g += mu (w - w0), the gradient of the proximal term
 * mu/2 ||w - w0||^2 that keeps a client's w near the global model w0.
 */
void fl_prox_grad(float *g, const float *w, const float *w0, float mu,
    size_t n);

#endif
