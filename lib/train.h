/* train.h: the fit, eval and predict loops over an fl_net and a dataset in
 * memory, shared by fl-fit --local and the worker. */
#ifndef FL_TRAIN_H
#define FL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "nn.h"
#include "optim.h"
#include "value.h"

/* What the progress callback sees; running figures are over the epoch so far. */
struct fl_train_progress {
	int epoch;		/* 1-based */
	int epochs;
	uint64_t step;		/* steps taken in all epochs */
	uint64_t steps;		/* steps the whole fit will take */
	uint64_t seen;		/* examples of this epoch so far */
	double loss;		/* mean loss of this epoch so far */
	double accuracy;	/* fraction right so far; NAN for mse */
	double rate;		/* examples per second since the fit began */
	int epoch_done;		/* this call ends an epoch */
};

/* Return non-zero to stop the fit (it then returns FL_EFAIL). */
typedef int (*fl_train_cb)(void *arg, const struct fl_train_progress *p);

struct fl_train_opts {
	struct fl_optim_opts optim;
	int epochs;		/* passes over the data */
	int batch;		/* rows per step, <= the net's maxbatch */
	double prox;		/* FedProx mu; 0 is off */
	uint64_t seed;		/* shuffle order and dropout masks */
	uint64_t max_steps;	/* stop after this many steps; 0: no limit */
	int threads;		/* threads splitting each batch (see fl_fit) */
	fl_train_cb progress;	/* may be NULL; called after every step */
	void *arg;
};

struct fl_train_result {
	uint64_t samples;	/* distinct examples trained on (FedAvg weight) */
	uint64_t steps;
	int epochs;		/* epochs begun */
	double loss;		/* mean training loss of the last epoch */
	double accuracy;	/* its training accuracy; NAN for mse */
	double seconds;
	double rate;		/* examples per second */
};

struct fl_eval_result {
	uint64_t samples;
	double loss;		/* mean over the examples */
	double accuracy;	/* NAN for mse */
};

/* 1 epoch, batch 32, seed 0, SGD as fl_optim_defaults, no prox, no limit,
 * 1 thread. */
void fl_train_defaults(struct fl_train_opts *o);

/* Use n threads for the dense math (OpenBLAS) outside fl_fit's threads;
 * n < 1 leaves it as it is. */
void fl_train_threads(int n);

/*
 * Check that d fits net: its width is the model's input and its labels
 * (softmax-ce) are class indices below the output width, or its targets
 * (mse) are as wide as the output. FL_EDATA with a message otherwise.
 */
int fl_train_check(const struct fl_net *net, const struct fl_dataset *d,
    char *err);

/*
 * Train net's parameters on d in place: per epoch a shuffle (from seed),
 * batches of o->batch rows (the last may be short), one optimizer step each;
 * with prox > 0 the proximal gradient towards the parameters net had on
 * entry. With o->threads n > 1, n threads (the caller's and n - 1 more)
 * each take a part of every batch on a net of their own over net's
 * parameters, OpenBLAS using one thread meanwhile; their gradients are
 * summed in a fixed order and each steps a slice of the parameters. The
 * result is the same for the same seed and n, but not the same for another
 * n (the sums run in another order, and each part draws its own dropout
 * masks). Allocates once per call, nothing per step. Returns FL_OK,
 * FL_EDATA (d does not fit, or the loss stopped being finite: net then
 * holds the parameters of the failing step), FL_EUSAGE (bad options),
 * FL_EFAIL (out of memory, or stopped by the callback), filling err.
 * res (may be NULL) gets the figures.
 */
int fl_fit(struct fl_net *net, const struct fl_dataset *d,
    const struct fl_train_opts *o, struct fl_train_result *res, char *err);

/*
 * Stamp a trained model's meta (the input's): metrics (train_loss,
 * train_accuracy), fit (the options), samples, client, then parent_id (the
 * old model_id), a new model_id, created and producer; other keys (round)
 * are kept. FL_EFAIL when out of memory.
 */
int fl_train_stamp(struct fl_val *meta, const struct fl_train_opts *o,
    const struct fl_train_result *res, const char *client);

/*
 * Training options from n key/value strings (fl-fit's long option names
 * without "--": epochs, batch, lr, optimizer, momentum, nesterov,
 * weight-decay, prox, seed, max-steps), bounded as fl-fit bounds them, over
 * fl_train_defaults. FL_EUSAGE with a message for an unknown key or a bad
 * value.
 */
int fl_train_opts_kv(struct fl_train_opts *o, const char *const *keys,
    const char *const *vals, size_t n, char *err);

/* Loss and accuracy of net on d, forward only (dropout off), in batches of
 * the net's maxbatch. */
int fl_eval(struct fl_net *net, const struct fl_dataset *d,
    struct fl_eval_result *res, char *err);

/*
 * Outputs for n rows of x (n, IN): softmax probabilities for softmax-ce,
 * the network's outputs for mse, into mean (n, OUT). With passes >= 1, that
 * many forward passes with dropout on (MC dropout, masks from seed): mean is
 * their mean, std (n, OUT; may be NULL) their standard deviation (divided
 * by passes), entropy (n; may be NULL; softmax-ce only) the predictive
 * entropy -sum mean log mean in nats. With passes 0 one pass, dropout off;
 * std is then 0 and entropy that of the probabilities.
 */
int fl_predict(struct fl_net *net, const float *x, uint64_t n, int passes,
    uint64_t seed, float *mean, float *std, float *entropy, char *err);

/*
 * Read only tensor x of the first blob at path ("-": stdin) as floats
 * (n, features), for prediction: a dataset blob, with or without y.
 * *x is malloc'd, the caller frees it.
 */
int fl_inputs_load(const char *path, float **x, uint64_t *n,
    uint64_t *features, char *err);

#endif
