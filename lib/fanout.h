/* fanout.h: one task per worker, run side by side on a bounded number of
 * threads, with a deadline and a quorum: what a federated round needs of
 * its orchestration (fl-fit --dataset, fl-fit --eval). */
#ifndef FL_FANOUT_H
#define FL_FANOUT_H

#include <stddef.h>
#include <stdatomic.h>

#include "util.h"

/*
 * A task: do item i; return FL_OK or a status with err filled. It should
 * look at *cancel now and then (fl_client_opts.cancel does it for network
 * transfers) and give up with FL_ETIMEOUT once it is set.
 */
typedef int (*fl_task_fn)(void *arg, size_t i, const atomic_int *cancel,
    char *err);

struct fl_fanout_opts {
	size_t parallel;	/* tasks at once; 0: 16 */
	double timeout;		/* seconds from the start; 0: none */
	size_t min;		/* successes needed; 0: all of them */
	/* Called on the calling thread about ten times a second while tasks
	 * run (a progress display), and once a task ended (i, its status and
	 * message, under no lock). Both may be NULL. */
	void (*tick)(void *arg);
	void (*done)(void *arg, size_t i, int rc, const char *err);
	void *arg;
};

struct fl_fanout_result {
	int rc;			/* FL_OK, the task's status, or FL_ETIMEOUT */
	char err[FL_ERRLEN];	/* why, when rc is not FL_OK */
	double seconds;		/* from its start to its end */
	int started;
};

/*
 * Run fn for i in 0..n-1, at most o->parallel at once, in order of i. It
 * waits for all of them, or until o->timeout seconds have passed; then
 * tasks not yet started are not started and those running are cancelled
 * (their result FL_ETIMEOUT unless they finished anyway). res (n entries)
 * gets each task's outcome. Returns FL_OK when at least o->min (all, when
 * 0) succeeded; otherwise FL_ETIMEOUT when the deadline cut the round short,
 * else the status of the first task that failed, with err naming how many
 * succeeded.
 */
int fl_fanout(size_t n, fl_task_fn fn, void *arg, const struct fl_fanout_opts *o,
    struct fl_fanout_result *res, char *err);

#endif
