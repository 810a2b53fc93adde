/* avg_on.c: fl-avg --on WORKER: aggregation on a trusted worker. The
 * inputs move there worker to worker (fl-move --copy's way, with a one-time
 * ticket); the worker aggregates with fl-avg's code; only a pointer to the
 * result comes back, so the coordinator never receives one client's update
 * (PySyft's "average before get"). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avg.h"
#include "common.h"

struct on_input {
	char *label;			/* as given */
	char id[FL_ID_LEN + 1];		/* on the aggregator */
	int copied;			/* a copy made for this: delete after */
};

/* Pointers from standard input: one a line. */
static char **
read_pointers(int *n)
{
	char **v = NULL, *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int k = 0;

	if (isatty(0))
		die(FL_EUSAGE, "-: expected pointers (WORKER/ID) on standard input");
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
		    line[len - 1] == ' '))
			line[--len] = 0;
		if (!len || line[0] == '#')
			continue;
		char **nv;
		if (k >= 4096)
			die(FL_ELIMIT, "-: more than 4096 pointers");
		if (!(nv = realloc(v, (size_t)(k + 1) * sizeof(*v))) ||
		    !(nv[k] = strdup(line)))
			die(FL_EFAIL, "out of memory");
		v = nv;
		k++;
	}
	free(line);
	if (ferror(stdin))
		die(FL_EIO, "<stdin>:");
	*n = k;
	return v;
}

/* The id on the aggregator of what s points to: copied there if it lives
 * elsewhere. */
static void
place(struct fl_client *cl, const struct fl_endpoint *agg, const char *s,
    struct on_input *in)
{
	struct fl_endpoint src;
	struct fl_ptr p;
	char err[FL_ERRLEN], id[FL_ID_LEN + 1];
	int rc;

	if ((rc = fl_ptr_parse(&p, s, err)))
		die(rc, "%s", err);
	if (p.kind == FL_PTR_URL)
		die(FL_EUSAGE, "%s: --on takes workers' objects (WORKER/ID), not "
		    "URLs", s);
	if ((rc = fl_endpoint_resolve(&src, &cl->ws, p.worker, err)) ||
	    (rc = fl_resolve_id(cl, &src, &p, id, err)))
		die(rc, "%s", err);
	if (!strcmp(src.url, agg->url)) {
		memcpy(in->id, id, sizeof(in->id));
	} else {
		if ((rc = fl_move(cl, &src, id, agg, 1, in->id, err)))
			die(rc, "%s: %s", s, err);
		in->copied = 1;
		note("%s copied to %s/%s", s, agg->name, in->id);
	}
	in->label = strdup(s);
	fl_endpoint_release(&src);
	fl_ptr_release(&p);
}

/* Delete the copies made for this aggregation; failures are warnings. */
static void
cleanup(struct fl_client *cl, const struct fl_endpoint *agg,
    struct on_input *in, size_t n)
{
	char err[FL_ERRLEN], path[64];

	for (size_t i = 0; i < n; i++) {
		if (!in[i].copied)
			continue;
		snprintf(path, sizeof(path), "/v1/objects/%s", in[i].id);
		if (fl_call(cl, agg, "DELETE", path, NULL, NULL, err))
			warn("%s: the copy of %s stays: %s", agg->name, in[i].label,
			    err);
		in[i].copied = 0;
	}
}

/* What to clean up should the program die half way. */
static struct fl_client *on_cl;
static const struct fl_endpoint *on_agg;
static struct on_input *on_in;
static size_t on_cap;

static void
cleanup_at_exit(void)
{
	if (on_cl)
		cleanup(on_cl, on_agg, on_in, on_cap);
}

void
avg_on(const char *worker, char *const *inputs, int n, struct fl_agg_opts *o,
    const struct fl_client_opts *co)
{
	struct fl_client cl;
	struct fl_endpoint agg;
	struct on_input *in, *base;
	struct fl_val body, ids, v, reply;
	char err[FL_ERRLEN], **list = NULL;
	const char *id;
	size_t total;
	int rc, nin = 0, from_stdin = 0;

	if ((rc = fl_client_init(&cl, co, err)))
		die(rc, "%s", err);
	/* Moves and aggregation answer when done: no byte moves meanwhile. */
	if (!co->timeout)
		cl.o.timeout = 3600;
	if ((rc = fl_endpoint_resolve(&agg, &cl.ws, worker, err)))
		die(rc, "%s", err);
	if (o->state && !fl_tag_valid(o->state))
		die(FL_EUSAGE, "--state %s: with --on the state is a tag on %s "
		    "(letters, digits, '.', '_', '-')", o->state, worker);
	for (int i = 0; i < n; i++) {
		if (!strcmp(inputs[i], "-")) {
			if (from_stdin)
				die(FL_EUSAGE, "-: standard input given twice");
			from_stdin = 1;
			list = read_pointers(&nin);
		}
	}
	total = (size_t)n - (size_t)from_stdin + (size_t)nin;
	if (!total)
		die(FL_EUSAGE, "no inputs: standard input held no pointers");
	/* the inputs, then the base */
	if (!(in = calloc(total + 1, sizeof(*in))))
		die(FL_EFAIL, "out of memory");
	base = &in[total];
	on_cl = &cl;
	on_agg = &agg;
	on_in = in;
	on_cap = total + 1;
	atexit(cleanup_at_exit);
	for (int i = 0, k = 0; i < n; i++) {
		if (strcmp(inputs[i], "-"))
			place(&cl, &agg, inputs[i], &in[k++]);
		else
			for (int j = 0; j < nin; j++)
				/* list is NULL only when nin is 0 */
				/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
				place(&cl, &agg, list[j], &in[k++]);
	}
	if (o->base)
		place(&cl, &agg, o->base, base);

	fl_val_array(&ids);
	for (size_t i = 0; i < total; i++) {
		if (fl_val_str(&v, in[i].id) || fl_array_push(&ids, &v))
			die(FL_EFAIL, "out of memory");
	}
	{
		const char *b = o->base;
		o->base = o->base ? base->id : NULL;
		rc = fl_agg_opts_encode(o, &body);
		o->base = b;
	}
	if (rc || fl_map_set(&body, "inputs", &ids))
		die(FL_EFAIL, "out of memory");
	rc = fl_call(&cl, &agg, "POST", "/v1/aggregate", &body, &reply, err);
	cleanup(&cl, &agg, in, total + 1);
	if (rc)
		die(rc, "%s", err);
	if (!(id = fl_map_get_str(&reply, "id")) || !fl_id_valid(id))
		die(FL_EFAIL, "%s: the reply names no valid id", worker);
	printf("%s/%s\n", worker, id);
	note("%zu inputs aggregated on %s", total, worker);
	fl_val_release(&reply);
	fl_val_release(&body);
	for (size_t i = 0; i <= total; i++)
		free(in[i].label);
	on_cl = NULL;
	free(in);
	for (int j = 0; j < nin; j++)
		free(list[j]);
	free(list);
	fl_endpoint_release(&agg);
	fl_client_release(&cl);
}

/* A fetched blob into the spool file. */
static int
spool_sink(void *arg, const void *p, size_t n, char *err)
{
	if (fl_write_full(*(int *)arg, p, n) < 0)
		return fl_errno(err, FL_EIO, "temporary file");
	return FL_OK;
}

int
avg_fetch(const char *s, const struct fl_client_opts *co, char *path, size_t n)
{
	static struct fl_client cl;
	static int have_cl;
	struct fl_endpoint ep;
	struct fl_ptr p;
	char err[FL_ERRLEN];
	int fd, rc;

	if (!strcmp(s, "-") || access(s, F_OK) == 0)
		return 1;	/* a file (a missing one is reported as such) */
	if (!have_cl) {
		if ((rc = fl_client_init(&cl, co, err)))
			die(rc, "%s", err);
		have_cl = 1;
	}
	if (fl_ptr_parse(&p, s, err))
		return 1;
	if (p.kind != FL_PTR_URL) {
		/* a name: a worker only if the workers file knows it */
		rc = fl_endpoint_resolve(&ep, &cl.ws, p.worker, err);
		if (rc == FL_ENOTFOUND && !strchr(s, '/')) {
			fl_ptr_release(&p);
			return 1;
		}
		if (rc)
			die(rc, "%s", err);
		fl_endpoint_release(&ep);
	}
	if ((fd = fl_tmpfile(NULL, err)) < 0)
		die(FL_EIO, "%s", err);
	if ((rc = fl_fetch(&cl, &p, 1, spool_sink, &fd, NULL, err)))
		die(rc, "%s", err);
	note("%s: fetched", s);
	fl_ptr_release(&p);
	/* the file stays open (and so alive) until the program ends */
	snprintf(path, n, "/proc/self/fd/%d", fd);
	return 0;
}
