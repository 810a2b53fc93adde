/* fl-get: fetch a blob from a worker or any HTTP(S) server; list, describe
 * and delete a worker's objects. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "common.h"

static const char usage_msg[] =
	    "usage: fl-get [-o FILE] [--no-follow] POINTER|URL|-\n"
	    "       fl-get --list [--json] WORKER\n"
	    "       fl-get --info [--json] WORKER\n"
	    "       fl-get --delete POINTER|-\n"
	    "POINTER is WORKER (its newest model), WORKER/ID or WORKER/TAG.\n"
	    "Network: --connect-timeout SECS, --timeout SECS, --retry N, --cacert FILE,\n"
	    "         --insecure. Also -q (--quiet), -v (--verbose), -h (--help), --version.\n";


struct sink {
	struct output o;
	const char *path;
	int open;
	uint64_t bytes;
};

static int
to_output(void *arg, const void *p, size_t n, char *err)
{
	struct sink *s = arg;

	if (!s->open) {
		output_open(&s->o, s->path);
		s->open = 1;
	}
	if (fl_write_full(s->o.fd, p, n))
		return fl_errno(err, FL_EIO, "%s", s->o.name);
	s->bytes += n;
	return FL_OK;
}

static void
print_json(const struct fl_val *v)
{
	struct fl_buf b;

	fl_buf_init(&b, 0);
	if (fl_val_json(&b, v) || fl_buf_addstr(&b, "\n"))
		die(FL_EFAIL, "out of memory");
	fwrite(b.data, 1, b.len, stdout);
	fl_buf_release(&b);
}

static void
time_text(char *out, size_t n, const struct fl_val *v)
{
	double t;
	time_t tt;
	struct tm tm;

	if (fl_val_get_double(v, &t) || t <= 0) {
		snprintf(out, n, "-");
		return;
	}
	tt = (time_t)t;
	localtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
list_rows(const struct fl_val *objs)
{
	for (size_t i = 0; objs && objs->type == FL_V_ARRAY && i < objs->v.a.n; i++) {
		const struct fl_val *o = &objs->v.a.items[i], *tags = fl_map_get(o, "tags");
		const char *id = fl_map_get_str(o, "id"), *kind = fl_map_get_str(o, "kind");
		uint64_t bytes = 0;
		char when[32];

		fl_val_get_u64(fl_map_get(o, "bytes"), &bytes);
		time_text(when, sizeof(when), fl_map_get(o, "created"));
		printf("%-16s  %-8s  %12" PRIu64 "  %-19s  ", id ? id : "?",
		    kind ? kind : "?", bytes, when);
		for (size_t j = 0; tags && tags->type == FL_V_ARRAY && j < tags->v.a.n; j++) {
			const char *t = fl_val_get_str(&tags->v.a.items[j]);
			printf("%s%s", j ? "," : "", t ? t : "?");
		}
		putchar('\n');
	}
}

/* Every object of the worker, page after page as the worker serves them,
 * so that neither end holds the whole listing: a table, or with json one
 * {"objects": [...]} document. */
static void
list_objects(struct fl_client *cl, const struct fl_endpoint *ep, int json)
{
	char path[128], err[FL_ERRLEN];
	const char *next;
	size_t shown = 0;
	int rc, more = 1;

	if (json)
		fputs("{\"objects\":[", stdout);
	else
		printf("%-16s  %-8s  %12s  %-19s  %s\n", "ID", "KIND", "BYTES", "CREATED", "TAGS");
	snprintf(path, sizeof(path), "/v1/objects");
	while (more) {
		struct fl_val reply;
		const struct fl_val *objs;
		if ((rc = fl_call(cl, ep, "GET", path, NULL, &reply, err)))
			die(rc, "%s", err);
		objs = fl_map_get(&reply, "objects");
		if (!objs || objs->type != FL_V_ARRAY)
			die(FL_EFAIL, "%s: a listing without objects", ep->name);
		if (json) {
			struct fl_buf b;
			fl_buf_init(&b, 0);
			for (size_t i = 0; i < objs->v.a.n; i++)
				if ((shown + i && fl_buf_addstr(&b, ",")) ||
				    fl_val_json(&b, &objs->v.a.items[i]))
					die(FL_EFAIL, "out of memory");
			fwrite(b.data, 1, b.len, stdout);
			fl_buf_release(&b);
		} else {
			list_rows(objs);
		}
		shown += objs->v.a.n;
		next = fl_map_get_str(&reply, "next");
		if (next && (strlen(next) > 64 || strspn(next, "0123456789abcdef-") != strlen(next)))
			die(FL_EFAIL, "%s: a listing with a bad cursor", ep->name);
		if ((more = next != NULL))
			snprintf(path, sizeof(path), "/v1/objects?after=%s", next);
		fl_val_release(&reply);
	}
	if (json)
		fputs("]}\n", stdout);
}

static void
info_text(const struct fl_val *r)
{
	uint64_t u;
	const struct fl_val *ds = fl_map_get(r, "datasets");
	const char *s;
	char size[32];

	printf("name:     %s\n", (s = fl_map_get_str(r, "name")) ? s : "?");
	printf("version:  %s\n", (s = fl_map_get_str(r, "version")) ? s : "?");
	if (!fl_val_get_u64(fl_map_get(r, "objects"), &u))
		printf("objects:  %" PRIu64 "\n", u);
	if (!fl_val_get_u64(fl_map_get(r, "bytes"), &u)) {
		fl_size_format(size, sizeof(size), u);
		printf("bytes:    %" PRIu64 " (%s)\n", u, size);
	}
	if ((ds = fl_map_get(r, "messages")) && ds->type == FL_V_ARRAY && ds->v.a.n) {
		printf("messages:");
		for (size_t i = 0; i < ds->v.a.n; i++)
			printf(" %s", (s = fl_val_get_str(&ds->v.a.items[i])) ? s : "?");
		putchar('\n');
	}
	ds = fl_map_get(r, "datasets");
	for (size_t i = 0; ds && ds->type == FL_V_ARRAY && i < ds->v.a.n; i++) {
		const struct fl_val *d = &ds->v.a.items[i], *sh = fl_map_get(d, "shape");
		uint64_t samples = 0, classes = 0;

		fl_val_get_u64(fl_map_get(d, "samples"), &samples);
		printf("dataset:  %s  %" PRIu64 " samples  [", (s = fl_map_get_str(d, "key")) ?
		    s : "?", samples);
		for (size_t j = 0; sh && sh->type == FL_V_ARRAY && j < sh->v.a.n; j++) {
			fl_val_get_u64(&sh->v.a.items[j], &u);
			printf("%s%" PRIu64, j ? "," : "", u);
		}
		printf("]");
		if (!fl_val_get_u64(fl_map_get(d, "classes"), &classes) && classes)
			printf("  %" PRIu64 " classes", classes);
		putchar('\n');
	}
}

static void
get_pointer(struct fl_ptr *p, const char *arg)
{
	char err[FL_ERRLEN];
	int rc;

	if (!strcmp(arg, "-"))
		rc = fl_ptr_read(p, 0, err);
	else
		rc = fl_ptr_parse(p, arg, err);
	if (rc)
		die(rc, "%s", err);
}

int
main(int argc, char **argv)
{
	enum { LIST = 1, INFO, DELETE };
	enum { O_JSON = 256, O_NOFOLLOW, O_LIST, O_INFO, O_DELETE, O_VERSION };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "no-follow", no_argument, NULL, O_NOFOLLOW },
		{ "list", no_argument, NULL, O_LIST },
		{ "info", no_argument, NULL, O_INFO },
		{ "delete", no_argument, NULL, O_DELETE },
		{ "json", no_argument, NULL, O_JSON },
		FL_CLIENT_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	struct fl_client_opts co = { .retries = -1 };
	struct fl_client cl;
	struct fl_endpoint ep;
	struct fl_ptr p, next;
	struct fl_val reply;
	struct sink s = { 0 };
	char err[FL_ERRLEN], text[4200];
	int c, rc, mode = 0, json = 0, nofollow = 0;

	setprogname(argv[0]);
	while ((c = getopt_long(argc, argv, "o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'o': s.path = optarg; break;
		case O_NOFOLLOW: nofollow = 1; break;
		case O_LIST: mode = LIST; break;
		case O_INFO: mode = INFO; break;
		case O_DELETE: mode = DELETE; break;
		case O_JSON: json = 1; break;
		case 'h': usage_exit(usage_msg, 0); break;
		case O_VERSION: print_version(); break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		default:
			if ((rc = fl_client_opt(&co, c, optarg, err)) < 0)
				usage_exit(usage_msg, FL_EUSAGE);
			if (rc)
				die(rc, "%s", err);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		usage_exit(usage_msg, FL_EUSAGE);
	if (mode && (s.path || nofollow))
		die(FL_EUSAGE, "-o and --no-follow go with fetching, not --list, --info or --delete");
	if (json && mode != LIST && mode != INFO)
		die(FL_EUSAGE, "--json goes with --list or --info");
	if (co.insecure)
		warn("--insecure: TLS certificates are NOT verified; anyone on the path "
		    "can read and change what is sent");
	co.progress = progress_bytes;
	if ((rc = fl_client_init(&cl, &co, err)))
		die(rc, "%s", err);

	if (mode == LIST || mode == INFO) {
		if ((rc = fl_endpoint_resolve(&ep, &cl.ws, argv[0], err)))
			die(rc, "%s", err);
		if (mode == LIST) {
			list_objects(&cl, &ep, json);
		} else {
			if ((rc = fl_call(&cl, &ep, "GET", "/v1/info", NULL, &reply, err)))
				die(rc, "%s", err);
			if (json)
				print_json(&reply);
			else
				info_text(&reply);
			fl_val_release(&reply);
		}
		fl_endpoint_release(&ep);
	} else if (mode == DELETE) {
		char id[FL_ID_LEN + 1], path[64];

		get_pointer(&p, argv[0]);
		if (p.kind == FL_PTR_URL)
			die(FL_EUSAGE, "%s: --delete takes a worker's object, not a URL", p.worker);
		if ((rc = fl_endpoint_resolve(&ep, &cl.ws, p.worker, err)) ||
		    (rc = fl_resolve_id(&cl, &ep, &p, id, err)))
			die(rc, "%s", err);
		snprintf(path, sizeof(path), "/v1/objects/%s", id);
		if ((rc = fl_call(&cl, &ep, "DELETE", path, NULL, NULL, err)))
			die(rc, "%s", err);
		note("deleted %s/%s", p.worker, id);
		fl_endpoint_release(&ep);
		fl_ptr_release(&p);
	} else {
		get_pointer(&p, argv[0]);
		rc = fl_fetch(&cl, &p, !nofollow, to_output, &s, &next, err);
		progress_done();
		if (rc) {
			if (s.open)
				output_abort(&s.o);
			die(rc, "%s", err);
		}
		if (next.worker) {
			fl_ptr_format(&next, text, sizeof(text));
			printf("%s\n", text);
			fl_ptr_release(&next);
		} else {
			if (!s.open)
				die(FL_EFAIL, "%s: no blob received", argv[0]);
			output_close(&s.o);
			note("%s: %" PRIu64 " bytes", argv[0], s.bytes);
		}
		fl_ptr_release(&p);
	}
	fl_client_release(&cl);
	finish_stdout();
	return 0;
}
