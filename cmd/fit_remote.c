/* fit_remote.c: fl-fit --dataset KEY WORKER...: send the model to every
 * worker at once (at most --parallel at a time), have each train on (or
 * evaluate against) its dataset KEY, and write the results to standard
 * output as they come, for `| fl-avg -`. The round waits for all of them,
 * or until --timeout, and succeeds when at least --min answered. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fanout.h"
#include "fit.h"

enum phase { P_WAIT, P_UPLOAD, P_BUSY, P_TRAIN, P_FETCH, P_DONE, P_FAILED };

static const char *const phase_name[] = {
	"waiting", "sending", "busy, waiting", "training", "fetching", "done",
	"failed",
};

/* Times a busy worker (503) is asked again: 1, 2, 4, 8, 16, then 30 s
 * apart, about 10 minutes in all. */
#define MAX_BUSY 24

/* One worker's part of the round. */
struct wstate {
	const char *name;
	atomic_int phase;
	_Atomic uint64_t done, total;	/* bytes of the current transfer */
	/* its fit's progress, polled (epochs 0: none known) */
	atomic_int epoch, epochs;
	_Atomic uint64_t step, steps;
	/* eval */
	double loss, accuracy;
	uint64_t samples;
	int has_accuracy;
	char id[FL_ID_LEN + 1];
};

struct remote {
	const struct remote_opts *o;
	struct fl_client cl;
	struct wstate *w;
	int model_fd;			/* the spooled model (unlinked) */
	char path[512];			/* the request path, with the query */
	struct output out;
	pthread_mutex_t outmu;		/* standard output and stderr */
	size_t ndone;
	char job[48];			/* the fits' ?job=, when polled */
	atomic_int stop_poll;
};

/* The model from standard input into an unlinked spool file (in memory
 * when small), checked once here rather than by every upload. */
static int
spool_model(void)
{
	struct fl_check k;
	struct fl_buf head;	/* what came before the header was whole */
	char buf[1 << 16], err[FL_ERRLEN];
	uint64_t inmem = 0;
	ssize_t n;
	int fd = -1, rc;

	if (isatty(0))
		die(FL_EUSAGE, "expected a model blob on standard input "
		    "(fl-fit --dataset KEY WORKER... < model.blob)");
	fl_check_init(&k, "<stdin>");
	fl_buf_init(&head, 0);
	while ((n = read(0, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(FL_EIO, "<stdin>:");
		}
		if ((rc = fl_check_feed(&k, buf, (size_t)n, err)))
			die(rc, "%s", err);
		if (fd < 0) {
			if (fl_buf_add(&head, buf, (size_t)n))
				die(FL_EFAIL, "out of memory");
			if (!k.have_header)
				continue;
			/* the header gives the blob's size: where to hold it */
			if ((fd = fl_spoolfile(NULL, k.h.total, &inmem, err)) < 0)
				die(FL_EIO, "%s", err);
			if (fl_write_full(fd, head.data, head.len) < 0)
				die(FL_EIO, "temporary file:");
			fl_buf_release(&head);
		} else if (fl_write_full(fd, buf, (size_t)n) < 0) {
			die(FL_EIO, "temporary file:");
		}
	}
	if (!k.pos)
		die(FL_EBLOB, "<stdin>: empty: expected a model blob");
	if ((rc = fl_check_end(&k, err)))
		die(rc, "%s", err);
	if (strcmp(k.h.kind, "model"))
		die(FL_EBLOB, "<stdin>: a blob of kind '%s', expected a model",
		    k.h.kind);
	fl_check_release(&k);
	return fd;
}

static void
on_transfer(void *arg, uint64_t done, uint64_t total)
{
	struct wstate *w = arg;

	w->done = done;
	w->total = total;
	if (w->phase == P_UPLOAD && total && done >= total)
		w->phase = P_TRAIN;
}

/* A worker's model is held (in memory, or a temp file when large) until
 * it is whole: standard output gets it whole or not at all. */
#define HOLD_IN_MEMORY (16u << 20)

static int
sink_spool(void *arg, const void *p, size_t n, char *err)
{
	return fl_spool_write(arg, p, n, err);
}

static int
task(void *arg, size_t i, const atomic_int *cancel, char *err)
{
	struct remote *R = arg;
	struct wstate *w = &R->w[i];
	struct fl_client c = R->cl;	/* its own options; shares the rest */
	struct fl_endpoint ep;
	struct fl_blob_reply br = { .sink = sink_spool };
	struct fl_spool held;
	struct fl_val reply;
	struct fl_ptr p = { 0 };
	char fdpath[64], line[600];
	const char *id;
	int fd, rc, model = !R->o->eval && !R->o->pointers;

	fl_val_nil(&reply);
	fl_spool_init(&held, HOLD_IN_MEMORY);
	c.o.cancel = cancel;
	c.o.progress = on_transfer;
	c.o.progress_arg = w;
	if ((rc = fl_endpoint_resolve(&ep, &c.ws, w->name, err)))
		return rc;
	br.arg = &held;		/* the fitted model comes back in the reply */
	/* Each upload reads the spooled model through a file of its own. A
	 * worker with too many fits queued says 503: wait and ask again. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", R->model_fd);
	for (int busy = 0;; busy++) {
		if ((fd = open(fdpath, O_RDONLY | O_CLOEXEC)) < 0) {
			rc = fl_errno(err, FL_EIO, "%s", fdpath);
			goto out;
		}
		w->phase = P_UPLOAD;
		if (model)
			rc = fl_upload_blob(&c, &ep, R->path, fd, "<stdin>", &reply,
			    &br, err);
		else
			rc = fl_upload(&c, &ep, R->path, NULL, fd, "<stdin>", &reply,
			    err);
		close(fd);
		if (!rc || c.last_http != 503 || busy >= MAX_BUSY || *cancel)
			break;
		fl_val_release(&reply);
		w->phase = P_BUSY;
		for (int t = 0; t < 10 * (busy < 5 ? 1 << busy : 30) && !*cancel; t++)
			usleep(100000);
	}
	if (rc && !(model && br.id[0] && !*cancel))
		goto out;
	if (R->o->eval) {
		const struct fl_val *v;
		if (fl_val_get_u64(fl_map_get(&reply, "samples") ?
		    fl_map_get(&reply, "samples") : &reply, &w->samples)) {
			rc = fl_err(err, FL_EFAIL, "%s: the reply holds no samples",
			    w->name);
			goto out;
		}
		w->loss = NAN;
		if ((v = fl_map_get(&reply, "loss")))
			fl_val_get_double(v, &w->loss);
		if ((v = fl_map_get(&reply, "accuracy")) &&
		    !fl_val_get_double(v, &w->accuracy))
			w->has_accuracy = 1;
		goto out;
	}
	if (model && br.id[0]) {
		memcpy(w->id, br.id, sizeof(w->id));
	} else if (!(id = fl_map_get_str(&reply, "id")) || !fl_id_valid(id)) {
		rc = fl_err(err, FL_EFAIL, "%s: the reply names no valid id", w->name);
		goto out;
	} else {
		memcpy(w->id, id, sizeof(w->id));
	}
	if (R->o->pointers) {
		/* PySyft's way: the update stays there, its pointer comes here */
		snprintf(line, sizeof(line), "%s/%s\n", w->name, w->id);
		pthread_mutex_lock(&R->outmu);
		if (fl_write_full(R->out.fd, line, strlen(line)) < 0)
			rc = fl_errno(err, FL_EIO, "%s", R->out.name);
		pthread_mutex_unlock(&R->outmu);
		goto out;
	}
	if (!br.got) {
		/* An older worker answered with the id, or the reply was cut
		 * (the model is stored there): fetch it. */
		w->phase = P_FETCH;
		w->done = w->total = 0;
		if ((rc = fl_spool_reset(&held, err)))
			goto out;
		p.kind = FL_PTR_ID;
		p.worker = (char *)w->name;
		p.name = w->id;
		if ((rc = fl_fetch(&c, &p, 1, sink_spool, &held, NULL, err)))
			goto out;
	}
	pthread_mutex_lock(&R->outmu);
	rc = *cancel ? fl_err(err, FL_ETIMEOUT, "cancelled") :
	    fl_spool_copy(&held, R->out.fd, R->out.name, err);
	pthread_mutex_unlock(&R->outmu);
out:
	fl_spool_release(&held);
	w->phase = rc ? P_FAILED : P_DONE;
	fl_val_release(&reply);
	fl_endpoint_release(&ep);
	return rc;
}

/*
 * With a progress line, what each worker's fit has done: GET /v1/fits?job=
 * of the workers training, about once a second. A worker that does not
 * answer in time shows "training" alone.
 */
static void *
poll_fits(void *arg)
{
	struct remote *R = arg;
	struct fl_client c = R->cl;
	struct fl_endpoint *ep;
	char path[96], err[FL_ERRLEN];
	size_t n = R->o->nworkers;

	c.o.timeout = c.o.connect_timeout = 2;
	c.o.retries = 0;
	c.o.progress = NULL;
	c.o.cancel = &R->stop_poll;
	if (!(ep = calloc(n, sizeof(*ep))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (fl_endpoint_resolve(&ep[i], &c.ws, R->w[i].name, err))
			ep[i].url = NULL;
	snprintf(path, sizeof(path), "/v1/fits?job=%s", R->job);
	while (!R->stop_poll) {
		for (size_t i = 0; i < n && !R->stop_poll; i++) {
			struct wstate *w = &R->w[i];
			const struct fl_val *list, *f;
			struct fl_val reply;
			uint64_t v;

			if (w->phase != P_TRAIN || !ep[i].url ||
			    fl_call(&c, &ep[i], "GET", path, NULL, &reply, err))
				continue;
			if ((list = fl_map_get(&reply, "fits")) &&
			    list->type == FL_V_ARRAY && list->v.a.n &&
			    (f = &list->v.a.items[0]) &&
			    !fl_val_get_u64(fl_map_get(f, "epochs"), &v) && v) {
				w->epochs = (int)v;
				if (!fl_val_get_u64(fl_map_get(f, "epoch"), &v))
					w->epoch = (int)v;
				if (!fl_val_get_u64(fl_map_get(f, "step"), &v))
					w->step = v;
				if (!fl_val_get_u64(fl_map_get(f, "steps"), &v))
					w->steps = v;
			}
			fl_val_release(&reply);
		}
		for (int t = 0; t < 10 && !R->stop_poll; t++)
			usleep(100000);
	}
	for (size_t i = 0; i < n; i++)
		if (ep[i].url)
			fl_endpoint_release(&ep[i]);
	free(ep);
	return NULL;
}

/* The progress line: how many are done, and what the others do. */
static void
tick(void *arg)
{
	struct remote *R = arg;
	char line[160];
	size_t len, ndone = 0;

	if (!progress_enabled())
		return;
	for (size_t i = 0; i < R->o->nworkers; i++)
		ndone += R->w[i].phase >= P_DONE;
	len = (size_t)snprintf(line, sizeof(line), "%zu/%zu done", ndone,
	    R->o->nworkers);
	for (size_t i = 0; i < R->o->nworkers && len < sizeof(line) - 1; i++) {
		struct wstate *w = &R->w[i];
		int ph = w->phase;
		if (ph == P_WAIT || ph >= P_DONE)
			continue;
		if ((ph == P_UPLOAD || ph == P_FETCH) && w->total)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    ", %s %s %.0f%%", w->name, phase_name[ph],
			    100.0 * (double)w->done / (double)w->total);
		else if (ph == P_TRAIN && w->epochs && w->steps)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    ", %s epoch %d/%d %.0f%%", w->name, (int)w->epoch,
			    (int)w->epochs, 100.0 * (double)w->step /
			    (double)w->steps);
		else
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    ", %s %s", w->name, R->o->eval && ph == P_TRAIN ?
			    "evaluating" : phase_name[ph]);
	}
	pthread_mutex_lock(&R->outmu);
	progress("%s", line);
	pthread_mutex_unlock(&R->outmu);
}

static void
task_done(void *arg, size_t i, int rc, const char *err)
{
	struct remote *R = arg;
	const char *name = R->w[i].name;
	size_t n = strlen(name);

	pthread_mutex_lock(&R->outmu);
	if (rc)
		warn("%s%s%s", strncmp(err, name, n) || err[n] != ':' ? name : "",
		    strncmp(err, name, n) || err[n] != ':' ? ": " : "", err);
	else if (!R->o->eval)
		note("%s: %s %s/%s", name, R->o->pointers ? "fitted, kept at" :
		    "fitted", name, R->w[i].id);
	pthread_mutex_unlock(&R->outmu);
}

static void
print_eval(const struct remote *R, const struct fl_fanout_result *res)
{
	double lsum = 0, asum = 0;
	uint64_t n = 0, na = 0;
	int any_acc = 0;

	for (size_t i = 0; i < R->o->nworkers; i++) {
		const struct wstate *w = &R->w[i];
		if (res[i].rc)
			continue;
		if (isfinite(w->loss)) {
			lsum += w->loss * (double)w->samples;
			n += w->samples;
		}
		if (w->has_accuracy) {
			asum += w->accuracy * (double)w->samples;
			na += w->samples;
			any_acc = 1;
		}
	}
	if (R->o->json) {
		struct fl_val v, ws, wv;
		struct fl_buf b;
		fl_val_map(&v);
		fl_val_array(&ws);
		for (size_t i = 0; i < R->o->nworkers; i++) {
			const struct wstate *w = &R->w[i];
			fl_val_map(&wv);
			fl_map_set_str(&wv, "worker", w->name);
			if (res[i].rc) {
				fl_map_set_str(&wv, "error", res[i].err);
			} else {
				if (isfinite(w->loss))
					fl_map_set_float(&wv, "loss", w->loss);
				if (w->has_accuracy)
					fl_map_set_float(&wv, "accuracy", w->accuracy);
				fl_map_set_uint(&wv, "samples", w->samples);
			}
			fl_array_push(&ws, &wv);
		}
		fl_map_set(&v, "workers", &ws);
		if (n)
			fl_map_set_float(&v, "loss", lsum / (double)n);
		if (any_acc && na)
			fl_map_set_float(&v, "accuracy", asum / (double)na);
		fl_map_set_uint(&v, "samples", n);
		fl_buf_init(&b, 0);
		if (fl_val_json(&b, &v) || fl_buf_add(&b, "\n", 1))
			die(FL_EFAIL, "out of memory");
		fwrite(b.data, 1, b.len, stdout);
		fl_buf_release(&b);
		fl_val_release(&v);
		return;
	}
	printf("%-16s %10s %10s %10s\n", "worker", "loss", "accuracy", "samples");
	for (size_t i = 0; i < R->o->nworkers; i++) {
		const struct wstate *w = &R->w[i];
		if (res[i].rc)
			continue;
		printf("%-16s %10.4f ", w->name, w->loss);
		if (w->has_accuracy)
			printf("%10.4f", w->accuracy);
		else
			printf("%10s", "-");
		printf(" %10llu\n", (unsigned long long)w->samples);
	}
	printf("%-16s %10.4f ", "total", n ? lsum / (double)n : NAN);
	if (any_acc && na)
		printf("%10.4f", asum / (double)na);
	else
		printf("%10s", "-");
	printf(" %10llu\n", (unsigned long long)n);
}

void
remote_run(const struct remote_opts *o)
{
	struct remote R = { .o = o };
	struct fl_fanout_opts fo = {
		.parallel = o->parallel, .timeout = o->timeout, .min = o->min,
		.tick = tick, .done = task_done, .arg = &R,
	};
	struct fl_fanout_result *res;
	char err[FL_ERRLEN];
	pthread_t poller;
	size_t ok = 0;
	int rc, polling;

	if (!fl_tag_valid(o->dataset))
		die(FL_EUSAGE, "--dataset: bad key '%s' (letters, digits, '.', '_', "
		    "'-')", o->dataset);
	for (size_t i = 0; i < o->nworkers; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(o->workers[i], o->workers[j]))
				die(FL_EUSAGE, "%s: named twice", o->workers[i]);
	if ((rc = fl_client_init(&R.cl, &o->co, err)))
		die(rc, "%s", err);
	/* A fit answers when it is done: no byte moves meanwhile. The round's
	 * deadline, if any, is what bounds it. */
	R.cl.o.timeout = o->timeout > 0 ? o->timeout + 10 : 7 * 86400;
	for (size_t i = 0; i < o->nworkers; i++) {
		struct fl_endpoint ep;
		if ((rc = fl_endpoint_resolve(&ep, &R.cl.ws, o->workers[i], err)))
			die(rc, "%s", err);
		fl_endpoint_release(&ep);
	}
	/* A fit's progress on a terminal: its job name for GET /v1/fits. */
	if (progress_enabled() && !o->eval)
		snprintf(R.job, sizeof(R.job), "fl-fit.%ld.%ld", (long)getpid(),
		    (long)time(NULL));
	/* the key is a name (checked above): nothing in it to escape */
	if ((size_t)snprintf(R.path, sizeof(R.path), "/v1/%s/%s%s%s%s%s",
	    o->eval ? "eval" : "fit", o->dataset,
	    o->query && *o->query ? "?" : "", o->query ? o->query : "",
	    R.job[0] ? (o->query && *o->query ? "&job=" : "?job=") : "",
	    R.job) >= sizeof(R.path))
		die(FL_EUSAGE, "too many training options");
	R.model_fd = spool_model();
	if (!(R.w = calloc(o->nworkers, sizeof(*R.w))) ||
	    !(res = calloc(o->nworkers, sizeof(*res))))
		die(FL_EFAIL, "out of memory");
	for (size_t i = 0; i < o->nworkers; i++)
		R.w[i].name = o->workers[i];
	pthread_mutex_init(&R.outmu, NULL);
	if (o->eval) {
		R.out.fd = -1;
		R.out.name = "<stdout>";
	} else if (o->pointers) {
		R.out.fd = 1;
		R.out.name = "<stdout>";
		if (o->outpath)
			output_open(&R.out, o->outpath);
	} else {
		output_open(&R.out, o->outpath);
	}
	/* A pipe to fl-avg takes a whole model at once, rather than 64 KiB
	 * at a time (a wake-up of each end for every piece); at most
	 * /proc/sys/fs/pipe-max-size, and no harm where refused. */
	if (!o->eval && R.out.fd == 1)
		fcntl(1, F_SETPIPE_SZ, 1 << 20);
	/* without the poller, no epochs are shown: nothing else changes */
	polling = R.job[0] && !pthread_create(&poller, NULL, poll_fits, &R);
	rc = fl_fanout(o->nworkers, task, &R, &fo, res, err);
	if (polling) {
		R.stop_poll = 1;
		pthread_join(poller, NULL);
	}
	progress_done();
	for (size_t i = 0; i < o->nworkers; i++)
		ok += res[i].rc == FL_OK;
	if (rc) {
		if (!o->eval && (o->outpath || !o->pointers))
			output_abort(&R.out);
		die(rc, "round failed: %s", err);
	}
	if (ok < o->nworkers)
		warn("%zu of %zu workers answered (--min %zu)", ok, o->nworkers,
		    o->min);
	if (o->eval)
		print_eval(&R, res);
	else if (o->outpath || !o->pointers)
		output_close(&R.out);
	/* the models are out: fl-avg at the pipe's end may start, while we
	 * tear down libcurl and our threads' memory */
	if (!o->eval && !o->outpath)
		close_stdout();
	close(R.model_fd);
	pthread_mutex_destroy(&R.outmu);
	free(res);
	free(R.w);
	fl_client_release(&R.cl);
}
