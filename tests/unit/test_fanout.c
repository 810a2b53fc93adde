/* test_fanout.c: lib/fanout.c: the parallel bound, the quorum, the
 * deadline, cancellation and the statuses a round reports. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "fanout.h"
#include "unit.h"
#include "util.h"

struct plan {
	int rc[8];		/* what task i returns */
	int ms[8];		/* how long it takes, unless cancelled */
	atomic_int running, peak, done_calls, cancelled;
};

static int
task(void *arg, size_t i, const atomic_int *cancel, char *err)
{
	struct plan *p = arg;
	int now = atomic_fetch_add(&p->running, 1) + 1, peak;

	while ((peak = atomic_load(&p->peak)) < now &&
	    !atomic_compare_exchange_weak(&p->peak, &peak, now))
		;
	for (int t = 0; t < p->ms[i]; t += 5) {
		if (*cancel) {
			atomic_fetch_add(&p->cancelled, 1);
			atomic_fetch_sub(&p->running, 1);
			return fl_err(err, FL_EFAIL, "stopped");
		}
		usleep(5000);
	}
	atomic_fetch_sub(&p->running, 1);
	return p->rc[i] ? fl_err(err, p->rc[i], "task %zu failed", i) : FL_OK;
}

static void
on_done(void *arg, size_t i, int rc, const char *err)
{
	struct plan *p = arg;

	(void)i;
	(void)rc;
	(void)err;
	atomic_fetch_add(&p->done_calls, 1);
}

int
main(void)
{
	struct fl_fanout_result res[8];
	char err[FL_ERRLEN];
	struct plan p;
	struct fl_fanout_opts o;
	double t;
	int rc;

	/* all succeed; at most 2 at once */
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 6; i++)
		p.ms[i] = 20;
	o = (struct fl_fanout_opts){ .parallel = 2, .done = on_done, .arg = &p };
	rc = fl_fanout(6, task, &p, &o, res, err);
	CHECK(rc == FL_OK, "six tasks succeed");
	CHECK(atomic_load(&p.peak) == 2, "at most --parallel at once (peak %d)",
	    atomic_load(&p.peak));
	CHECK(atomic_load(&p.done_calls) == 6, "done called for each");
	CHECK(res[5].started && res[5].rc == FL_OK && res[5].seconds > 0.01,
	    "each result recorded");

	/* one fails: without a quorum the round fails with its status */
	memset(&p, 0, sizeof(p));
	p.rc[1] = FL_ENOTFOUND;
	o = (struct fl_fanout_opts){ .parallel = 4, .arg = &p };
	rc = fl_fanout(3, task, &p, &o, res, err);
	CHECK(rc == FL_ENOTFOUND && strstr(err, "2 of 3 succeeded, 3 needed"),
	    "a failure fails the round: %s", err);
	CHECK(res[1].rc == FL_ENOTFOUND && strstr(res[1].err, "task 1 failed"),
	    "the failure's own message kept: %s", res[1].err);
	/* ... and with min 2 it succeeds */
	o.min = 2;
	memset(&p.running, 0, sizeof(p.running));
	CHECK(fl_fanout(3, task, &p, &o, res, err) == FL_OK, "min 2 of 3 succeeds");

	/* a deadline: the slow one is cancelled; enough answered */
	memset(&p, 0, sizeof(p));
	p.ms[0] = 10;
	p.ms[1] = 10;
	p.ms[2] = 5000;
	o = (struct fl_fanout_opts){ .parallel = 3, .timeout = 0.3, .min = 2,
	    .arg = &p };
	t = fl_monotonic();
	rc = fl_fanout(3, task, &p, &o, res, err);
	t = fl_monotonic() - t;
	CHECK(rc == FL_OK && t < 2, "deadline with quorum: ok after %.2f s", t);
	CHECK(res[2].rc == FL_ETIMEOUT && strstr(res[2].err, "no answer within 0.3 s"),
	    "the slow one timed out: %s", res[2].err);
	CHECK(atomic_load(&p.cancelled) == 1, "and was cancelled");

	/* a deadline without quorum: FL_ETIMEOUT; tasks never started say so */
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 4; i++)
		p.ms[i] = 5000;
	o = (struct fl_fanout_opts){ .parallel = 1, .timeout = 0.2, .arg = &p };
	rc = fl_fanout(4, task, &p, &o, res, err);
	CHECK(rc == FL_ETIMEOUT && strstr(err, "0 of 4 answered within 0.2 s"),
	    "deadline without quorum: %s", err);
	CHECK(!res[3].started && res[3].rc == FL_ETIMEOUT &&
	    strstr(res[3].err, "not asked"), "not started: %s", res[3].err);

	/* nothing to do */
	CHECK(fl_fanout(0, task, &p, &o, res, err) == FL_OK, "no tasks: ok");
	return unit_done();
}
