/* fit.h: the parts of fl-fit. */
#ifndef FL_CMD_FIT_H
#define FL_CMD_FIT_H

#include <stddef.h>

#include "client.h"

/* fl-fit --dataset KEY WORKER...: a round's fan-out (fit_remote.c). */
struct remote_opts {
	const char *dataset;		/* KEY on every worker */
	char *const *workers;
	size_t nworkers;
	const char *query;		/* training options: "epochs=2&lr=0.1" */
	int eval, json, pointers;
	size_t min, parallel;
	double timeout;			/* the round's deadline; 0: none */
	const char *outpath;
	struct fl_client_opts co;
};

/* Run it; dies with the documented status when the round fails. */
void remote_run(const struct remote_opts *o);

#endif
