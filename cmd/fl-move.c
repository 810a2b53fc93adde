/* fl-move: have one worker send an object straight to another, with a
 * one-time ticket the destination issued. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "common.h"

static const char usage_msg[] =
	    "usage: fl-move [--copy] POINTER|- WORKER\n"
	    "Network: --connect-timeout SECS, --timeout SECS, --retry N, --cacert FILE,\n"
	    "         --insecure. Also -q (--quiet), -v (--verbose), -h (--help), --version.\n";


int
main(int argc, char **argv)
{
	enum { O_COPY = 256, O_VERSION };
	static const struct option opts[] = {
		{ "copy", no_argument, NULL, O_COPY },
		FL_CLIENT_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	struct fl_client_opts co = { .retries = -1 };
	struct fl_client cl;
	struct fl_endpoint src, dst;
	struct fl_ptr p;
	char err[FL_ERRLEN], id[FL_ID_LEN + 1], newid[FL_ID_LEN + 1];
	int c, rc, copy = 0, timeout_given = 0;
	size_t n;

	setprogname(argv[0]);
	while ((c = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
		switch (c) {
		case O_COPY: copy = 1; break;
		case 'h': usage_exit(usage_msg, 0); break;
		case O_VERSION: print_version(); break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		default:
			if ((rc = fl_client_opt(&co, c, optarg, err)) < 0)
				usage_exit(usage_msg, FL_EUSAGE);
			if (rc)
				die(rc, "%s", err);
			if (c == FL_OPT_TIMEOUT)
				timeout_given = 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		usage_exit(usage_msg, FL_EUSAGE);
	if (co.insecure)
		warn("--insecure: TLS certificates are NOT verified; anyone on the path "
		    "can read and change what is sent");
	if ((rc = fl_client_init(&cl, &co, err)))
		die(rc, "%s", err);
	rc = !strcmp(argv[0], "-") ? fl_ptr_read(&p, 0, err) : fl_ptr_parse(&p, argv[0], err);
	if (rc)
		die(rc, "%s", err);
	if (p.kind == FL_PTR_URL)
		die(FL_EUSAGE, "%s: fl-move moves a worker's object, not a URL "
		    "(fl-get it and fl-send it)", p.worker);
	if ((rc = fl_endpoint_resolve(&src, &cl.ws, p.worker, err)) ||
	    (rc = fl_endpoint_resolve(&dst, &cl.ws, argv[1], err)) ||
	    (rc = fl_resolve_id(&cl, &src, &p, id, err)))
		die(rc, "%s", err);
	if (!strcmp(src.url, dst.url))
		die(FL_EUSAGE, "%s and %s are the same worker", p.worker, argv[1]);
	/* No byte comes back until the workers are done: a large object
	 * takes longer than the usual idle limit. */
	if (!timeout_given)
		cl.o.timeout = 3600;
	if ((rc = fl_move(&cl, &src, id, &dst, copy, newid, err)))
		die(rc, "%s", err);
	n = strlen(argv[1]);
	while (n > 1 && fl_is_url(argv[1]) && argv[1][n - 1] == '/')
		n--;
	printf("%.*s/%s\n", (int)n, argv[1], newid);
	note("%s/%s %s to %.*s/%s", p.worker, id, copy ? "copied" : "moved",
	    (int)n, argv[1], newid);
	fl_endpoint_release(&src);
	fl_endpoint_release(&dst);
	fl_ptr_release(&p);
	fl_client_release(&cl);
	finish_stdout();
	return 0;
}
