/* fl-serve: a worker: holds objects and datasets, speaks the protocol of
 * proto.h over HTTP/1.1 and WebSocket. */
#include <arpa/inet.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "proto.h"
#include "server.h"
#include "store.h"

#define MAX_LIST 64

static struct fl_server *server;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-qv] [--name NAME] [--listen ADDR:PORT] [--store DIR]\n"
	    "              [--dataset KEY=PATH]... [--token-file FILE] [--insecure]\n"
	    "              [--tls-cert FILE --tls-key FILE] [--handler NAME=PROGRAM]...\n"
	    "              [--handler-timeout SECONDS] [--max-object-bytes N]\n"
	    "              [--max-store-bytes N] [--max-connections N] [--max-fits N]\n"
	    "              [--timeout SECONDS]\n",
	    progname);
	exit(FL_EUSAGE);
}

static void
help(void)
{
	printf("usage: %s [options]\n"
	    "Serve this worker's objects and datasets over HTTP/1.1 and WebSocket.\n"
	    "\n"
	    "      --name NAME             the worker's name (the host name)\n"
	    "      --listen ADDR:PORT      where to listen (127.0.0.1:%d)\n"
	    "      --store DIR             objects (${XDG_STATE_HOME:-~/.local/state}/flkit/NAME)\n"
	    "      --dataset KEY=PATH      a dataset blob served under KEY (repeatable)\n"
	    "      --token-file FILE       bearer tokens, one a line: TOKEN [read] [write]\n"
	    "      --insecure              listen beyond loopback without tokens\n"
	    "      --tls-cert FILE         serve HTTPS with this certificate (PEM)\n"
	    "      --tls-key FILE          and this private key\n"
	    "      --handler NAME=PROGRAM  answer POST /v1/messages/NAME (repeatable)\n"
	    "      --handler-timeout SECONDS  a handler's time before SIGKILL (30)\n"
	    "      --max-object-bytes N    largest object accepted (64G; K, M, G suffixes)\n"
	    "      --max-store-bytes N     all objects together (no limit)\n"
	    "      --max-connections N     simultaneous connections (256)\n"
	    "      --max-fits N            fits and aggregations at once (one per CPU;\n"
	    "                              16 more wait, then 503)\n"
	    "      --timeout SECONDS       drop a request, or a push, that stalls this long (60)\n"
	    "  -q, --quiet                 errors only\n"
	    "  -v, --verbose               a line per request\n"
	    "  -h, --help                  this help\n"
	    "      --version               print the version\n",
	    progname, FL_DEFAULT_PORT);
	finish_stdout();
	exit(0);
}

static void
logmsg(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= FL_LOG_WARN || (level == FL_LOG_INFO && verbose >= 0) ||
	    (level == FL_LOG_DEBUG && verbose > 0))
		fprintf(stderr, "%s: %s\n", progname, msg);
}

static void
on_signal(int sig)
{
	(void)sig;
	if (server)
		fl_server_stop(server);
}

static int
is_loopback(const char *addr)
{
	struct in_addr a;

	if (!strcmp(addr, "localhost") || !strcmp(addr, "::1"))
		return 1;
	return inet_pton(AF_INET, addr, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* "NAME=VALUE" into its halves (in place). */
static void
split_eq(char *s, const char *opt, const char **name, const char **value)
{
	char *e = strchr(s, '=');

	if (!e || e == s || !e[1]) {
		warn("--%s: expected NAME=VALUE, got '%s'", opt, s);
		usage();
	}
	*e = 0;
	*name = s;
	*value = e + 1;
}

static uint64_t
size_arg(const char *opt, const char *s)
{
	uint64_t v;

	if (fl_parse_size(s, &v) || v == 0) {
		warn("--%s: bad size '%s' (a number, with K, M, G or T)", opt, s);
		usage();
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "store", required_argument, NULL, 's' },
		{ "dataset", required_argument, NULL, 'd' },
		{ "token-file", required_argument, NULL, 't' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "handler", required_argument, NULL, 'H' },
		{ "handler-timeout", required_argument, NULL, 'T' },
		{ "max-object-bytes", required_argument, NULL, 'O' },
		{ "max-store-bytes", required_argument, NULL, 'S' },
		{ "max-connections", required_argument, NULL, 'M' },
		{ "max-fits", required_argument, NULL, 'F' },
		{ "timeout", required_argument, NULL, 'I' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	struct fl_dataset_ref ds[MAX_LIST];
	struct fl_handler hs[MAX_LIST];
	struct fl_server_opts o;
	struct fl_store *store = NULL;
	struct fl_token *tokens = NULL;
	size_t ntokens = 0;
	const char *listen = NULL, *storedir = NULL, *tokenfile = NULL;
	char name[256] = "", addr[256], err[FL_ERRLEN], *defstore = NULL, *colon;
	uint64_t max_store = 0, v;
	int c, insecure = 0, rc;
	struct sigaction sa;

	setprogname(argv[0]);
	/* One malloc arena for all threads: with glibc's one per thread, the
	 * service thread's and the workers' arenas each keep their high-water
	 * mark: from request 1,000 to 200,000 of bench/load.sh RSS grew 11-25 %
	 * (3 runs). With one: +0.7 to +2.6 % in 4 runs of 5, +14.7 % in one that
	 * sampled low at request 1,000, all ending at 16-17 MiB, at the same
	 * requests per second. */
	mallopt(M_ARENA_MAX, 1);
	/* Fixed thresholds rather than glibc's sliding ones, which rise to
	 * the largest block freed so far: a request's big buffers (64 KiB
	 * and more) are mapped and given back when freed, and free memory at
	 * the heap's top over 256 KiB is returned, so that RSS follows what
	 * the requests in flight hold rather than its high-water mark. */
	mallopt(M_MMAP_THRESHOLD, 64 << 10);
	mallopt(M_TRIM_THRESHOLD, 256 << 10);
	memset(&o, 0, sizeof(o));
	while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!fl_tag_valid(optarg)) {
				warn("--name: use letters, digits, '.', '_', '-' (got '%s')", optarg);
				usage();
			}
			snprintf(name, sizeof(name), "%s", optarg);
			break;
		case 'l': listen = optarg; break;
		case 's': storedir = optarg; break;
		case 'd':
			if (o.ndatasets == MAX_LIST)
				die(FL_EUSAGE, "too many --dataset options");
			split_eq(optarg, "dataset", &ds[o.ndatasets].key, &ds[o.ndatasets].path);
			o.ndatasets++;
			break;
		case 't': tokenfile = optarg; break;
		case 'k': insecure = 1; break;
		case 'C': o.tls_cert = optarg; break;
		case 'K': o.tls_key = optarg; break;
		case 'H':
			if (o.nhandlers == MAX_LIST)
				die(FL_EUSAGE, "too many --handler options");
			split_eq(optarg, "handler", &hs[o.nhandlers].name, &hs[o.nhandlers].program);
			if (!fl_tag_valid(hs[o.nhandlers].name))
				die(FL_EUSAGE, "--handler: bad message name '%s'", hs[o.nhandlers].name);
			if (hs[o.nhandlers].program[0] != '/')
				die(FL_EUSAGE, "--handler %s: give the program's absolute path "
				    "(it runs without a shell or PATH search)", hs[o.nhandlers].name);
			if (access(hs[o.nhandlers].program, X_OK))
				die(FL_EUSAGE, "--handler %s: %s:", hs[o.nhandlers].name,
				    hs[o.nhandlers].program);
			o.nhandlers++;
			break;
		case 'T':
			if (fl_parse_u64(optarg, 86400, &v) || !v)
				die(FL_EUSAGE, "--handler-timeout: seconds from 1 to 86400, got '%s'", optarg);
			o.handler_timeout = (unsigned)v;
			break;
		case 'O': o.max_object_bytes = size_arg("max-object-bytes", optarg); break;
		case 'S': max_store = size_arg("max-store-bytes", optarg); break;
		case 'M':
			if (fl_parse_u64(optarg, 65536, &v) || !v)
				die(FL_EUSAGE, "--max-connections: 1 to 65536, got '%s'", optarg);
			o.max_conns = (unsigned)v;
			break;
		case 'F':
			if (fl_parse_u64(optarg, 64, &v) || !v)
				die(FL_EUSAGE, "--max-fits: 1 to 64, got '%s'", optarg);
			o.max_fits = (unsigned)v;
			break;
		case 'I':
			if (fl_parse_u64(optarg, 86400, &v) || !v)
				die(FL_EUSAGE, "--timeout: seconds from 1 to 86400, got '%s'", optarg);
			o.idle_timeout = (unsigned)v;
			break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		case 'h': help(); break;
		case 'V': print_version(); break;
		default: usage();
		}
	}
	if (argc != optind)
		usage();
	if (!!o.tls_cert != !!o.tls_key)
		die(FL_EUSAGE, "--tls-cert and --tls-key go together");

	if (!name[0]) {
		char *dot;
		if (gethostname(name, sizeof(name) - 1) || !name[0])
			snprintf(name, sizeof(name), "worker");
		if ((dot = strchr(name, '.')))
			*dot = 0;
		if (!fl_tag_valid(name))
			snprintf(name, sizeof(name), "worker");
	}
	snprintf(addr, sizeof(addr), "127.0.0.1");
	o.port = FL_DEFAULT_PORT;
	if (listen) {
		snprintf(addr, sizeof(addr), "%s", listen);
		if (addr[0] == '[' && (colon = strstr(addr, "]:"))) {
			memmove(addr, addr + 1, strlen(addr));
			colon--;
			*colon = 0;
			colon++;
		} else if ((colon = strrchr(addr, ':'))) {
			*colon = 0;
		}
		if (!colon || fl_parse_u64(colon + 1, 65535, &v) || !addr[0])
			die(FL_EUSAGE, "--listen: expected ADDR:PORT, got '%s'", listen);
		o.port = (int)v;
	}
	if (!tokenfile && !insecure && !is_loopback(addr))
		die(FL_EUSAGE, "refusing to listen on %s without --token-file "
		    "(or --insecure, to serve anyone who can reach it)", addr);
	if (tokenfile && (rc = fl_tokens_load(tokenfile, &tokens, &ntokens, err)))
		die(rc == FL_EDATA ? FL_EUSAGE : rc, "%s", err);
	if (insecure && !tokenfile && !is_loopback(addr))
		warn("serving %s to anyone who can reach it: no token file", addr);

	if (!storedir) {
		const char *st = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
		size_t n;
		if (!st || !st[0]) {
			if (!home || !home[0])
				die(FL_EUSAGE, "no --store, $XDG_STATE_HOME or $HOME");
			n = strlen(home) + strlen(name) + 32;
			defstore = malloc(n);
			snprintf(defstore, n, "%s/.local/state/flkit/%s", home, name);
		} else {
			n = strlen(st) + strlen(name) + 16;
			defstore = malloc(n);
			snprintf(defstore, n, "%s/flkit/%s", st, name);
		}
		storedir = defstore;
	}
	if ((rc = fl_store_open(&store, storedir, max_store, err)))
		die(rc, "%s", err);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	o.name = name;
	o.addr = addr;
	o.store = store;
	o.datasets = ds;
	o.tokens = tokens;
	o.ntokens = ntokens;
	o.handlers = hs;
	o.log = logmsg;
	if ((rc = fl_server_new(&server, &o, err))) {
		fl_store_free(store);
		die(rc, "%s", err);
	}
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	{
		uint64_t nobj, bytes;
		fl_store_usage(store, &nobj, &bytes);
		if (verbose >= 0)
			fprintf(stderr, "%s: %s listening on %s://%s:%d, %llu objects in %s\n",
			    progname, name, o.tls_cert ? "https" : "http", addr,
			    fl_server_port(server), (unsigned long long)nobj, storedir);
	}
	rc = fl_server_run(server, err);
	fl_server_free(server);
	server = NULL;
	fl_store_free(store);
	fl_tokens_free(tokens, ntokens);
	free(defstore);
	if (rc)
		die(rc, "%s", err);
	if (verbose >= 0)
		fprintf(stderr, "%s: stopped\n", progname);
	return 0;
}
