/* fanout.c: bounded parallel tasks with a deadline and a quorum. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

struct fanout {
	size_t n, next, running, finished;
	fl_task_fn fn;
	void *arg;
	const struct fl_fanout_opts *o;
	struct fl_fanout_result *res;
	atomic_int cancel;
	int stop;		/* start no more tasks */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	double t0;
};

static void *
runner(void *p)
{
	struct fanout *f = p;

	pthread_mutex_lock(&f->mu);
	while (!f->stop && f->next < f->n) {
		size_t i = f->next++;
		struct fl_fanout_result *r = &f->res[i];
		double t;
		int rc;

		r->started = 1;
		pthread_mutex_unlock(&f->mu);
		t = fl_monotonic();
		rc = f->fn(f->arg, i, &f->cancel, r->err);
		if (rc && f->cancel)
			rc = fl_err(r->err, FL_ETIMEOUT, "no answer within %g s",
			    f->o->timeout);
		else if (rc && !r->err[0])
			fl_err(r->err, rc, "failed");
		r->rc = rc;
		r->seconds = fl_monotonic() - t;
		if (f->o->done)
			f->o->done(f->o->arg, i, rc, rc ? r->err : NULL);
		pthread_mutex_lock(&f->mu);
		f->finished++;
		pthread_cond_broadcast(&f->cv);
	}
	f->running--;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static void
deadline_in(struct timespec *ts, double secs)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)secs;
	ts->tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
fl_fanout(size_t n, fl_task_fn fn, void *arg, const struct fl_fanout_opts *o,
    struct fl_fanout_result *res, char *err)
{
	struct fanout f = { .n = n, .fn = fn, .arg = arg, .o = o, .res = res };
	pthread_condattr_t ca;
	pthread_t *th;
	size_t nth = o->parallel ? o->parallel : 16, ok = 0, need, i;
	int cut = 0, first = FL_OK;

	memset(res, 0, n * sizeof(*res));
	for (i = 0; i < n; i++)
		res[i].rc = FL_ETIMEOUT;	/* until it ends */
	if (nth > n)
		nth = n;
	need = o->min && o->min < n ? o->min : n;
	if (!n)
		return FL_OK;
	if (!(th = calloc(nth, sizeof(*th))))
		return fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_init(&f.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f.cv, &ca);
	pthread_condattr_destroy(&ca);
	f.t0 = fl_monotonic();

	pthread_mutex_lock(&f.mu);
	for (i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, runner, &f))
			break;
		f.running++;
	}
	nth = i;
	if (!nth) {
		pthread_mutex_unlock(&f.mu);
		free(th);
		pthread_cond_destroy(&f.cv);
		pthread_mutex_destroy(&f.mu);
		return fl_err(err, FL_EFAIL, "cannot start threads");
	}
	while (f.running > 0) {
		struct timespec ts;
		double left = 0.1;
		if (o->timeout > 0 && !f.stop) {
			double rest = f.t0 + o->timeout - fl_monotonic();
			if (rest <= 0) {
				/* the deadline: start nothing more, cancel the rest */
				f.stop = 1;
				f.cancel = 1;
				cut = f.finished < n;
				continue;
			}
			if (rest < left)
				left = rest;
		}
		deadline_in(&ts, left);
		pthread_cond_timedwait(&f.cv, &f.mu, &ts);
		if (o->tick) {
			pthread_mutex_unlock(&f.mu);
			o->tick(o->arg);
			pthread_mutex_lock(&f.mu);
		}
	}
	pthread_mutex_unlock(&f.mu);
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	free(th);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);

	for (i = 0; i < n; i++) {
		if (res[i].rc == FL_OK) {
			ok++;
		} else {
			if (!res[i].started)
				fl_err(res[i].err, FL_ETIMEOUT, "not asked: the "
				    "deadline of %g s came first", o->timeout);
			if (first == FL_OK && res[i].rc != FL_ETIMEOUT)
				first = res[i].rc;
		}
	}
	if (ok >= need)
		return FL_OK;
	if (cut)
		return fl_err(err, FL_ETIMEOUT, "%zu of %zu answered within %g s; "
		    "%zu needed", ok, n, o->timeout, need);
	if (first == FL_OK)
		first = FL_ETIMEOUT;
	return fl_err(err, first, "%zu of %zu succeeded, %zu needed", ok, n,
	    need);
}
