/* fl-avg: aggregate models: FedAvg, robust rules, server optimizers, DP. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "avg.h"
#include "common.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-qv] [-o FILE] [--uniform | --weights W1,W2,...]\n"
	    "              [--method mean|median|trimmed-mean|krum] [--trim F]\n"
	    "              [--byzantine F] [--multi M] [--skip-bad]\n"
	    "              [--base GLOBAL.blob] [--server-opt sgd|momentum|adam|yogi|adagrad]\n"
	    "              [--server-lr X] [--server-momentum B] [--server-beta2 B]\n"
	    "              [--tau T] [--state STATE.blob]\n"
	    "              [--clip C] [--noise Z] [--seed N] [--threads N]\n"
	    "              INPUT...\n"
	    "       %s --on WORKER [rule, server and DP options] POINTER...|-\n"
	    "Network: --connect-timeout SECS, --timeout SECS, --retry N, --cacert FILE,\n"
	    "         --insecure.\n", progname, progname);
	exit(FL_EUSAGE);
}

static void
help(void)
{
	printf("usage: %s [options] INPUT... > model.blob\n"
	    "       %s --on WORKER [options] POINTER...\n"
	    "Aggregate model blobs (files, - for blobs on standard input, or pointers\n"
	    "to workers' objects, fetched and checked); or\n"
	    "have WORKER aggregate objects (pointers, or - for pointers on standard\n"
	    "input), printing the result's pointer.\n"
	    "\n"
	    "      --on WORKER           aggregate there: inputs elsewhere are copied\n"
	    "                            to it worker to worker; no update comes here\n"
	    "  -o, --output FILE         write the model to FILE atomically\n"
	    "      --uniform             weigh every input alike\n"
	    "      --weights W1,W2,...   weigh the inputs as given\n"
	    "      --method RULE         mean (FedAvg, by meta samples), median,\n"
	    "                            trimmed-mean, krum\n"
	    "      --trim F              fraction cut at each end (trimmed-mean)\n"
	    "      --byzantine F         Byzantine inputs tolerated (krum)\n"
	    "      --multi M             average the M best (multi-krum)\n"
	    "      --skip-bad            leave out inputs holding NaN or Inf\n"
	    "      --base FILE           the global model the inputs started from\n"
	    "                            (with --on, a pointer)\n"
	    "      --server-opt OPT      sgd, momentum, adam, yogi, adagrad\n"
	    "      --server-lr X         server learning rate\n"
	    "      --server-momentum B   momentum, or Adam's beta1 (0.9)\n"
	    "      --server-beta2 B      second-moment decay (0.99)\n"
	    "      --tau T               adaptivity (1e-3)\n"
	    "      --state FILE          server-optimizer state, read and rewritten\n"
	    "                            (with --on, a tag on WORKER)\n"
	    "      --clip C              bound each update's L2 norm (needs --base)\n"
	    "      --noise Z             add N(0, (Z C / n)^2) to the aggregate\n"
	    "      --seed N              seed the noise\n"
	    "      --threads N           threads reading inputs (default: CPUs;\n"
	    "                            one for inputs under 16 MiB)\n"
	    "      --connect-timeout S   for pointers: seconds to connect (10)\n"
	    "      --timeout S           seconds a request may stall (3600 with --on)\n"
	    "      --retry N             retries of idempotent requests (2)\n"
	    "      --cacert FILE         CA certificates for https workers\n"
	    "      --insecure            do not verify TLS certificates\n"
	    "  -q, --quiet               no warnings, no progress\n"
	    "  -v, --verbose             say more\n"
	    "  -h, --help                this help\n"
	    "      --version             print the version\n", progname, progname);
	finish_stdout();
	exit(0);
}

enum {
	OPT_UNIFORM = 256, OPT_WEIGHTS, OPT_METHOD, OPT_TRIM, OPT_BYZ, OPT_MULTI,
	OPT_SKIPBAD, OPT_BASE, OPT_SOPT, OPT_SLR, OPT_SMOM, OPT_SBETA2, OPT_TAU,
	OPT_STATE, OPT_CLIP, OPT_NOISE, OPT_SEED, OPT_THREADS, OPT_CHUNK,
	OPT_ON, OPT_VERSION,
};

static const struct option longopts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "uniform", no_argument, NULL, OPT_UNIFORM },
	{ "weights", required_argument, NULL, OPT_WEIGHTS },
	{ "method", required_argument, NULL, OPT_METHOD },
	{ "trim", required_argument, NULL, OPT_TRIM },
	{ "byzantine", required_argument, NULL, OPT_BYZ },
	{ "multi", required_argument, NULL, OPT_MULTI },
	{ "skip-bad", no_argument, NULL, OPT_SKIPBAD },
	{ "base", required_argument, NULL, OPT_BASE },
	{ "server-opt", required_argument, NULL, OPT_SOPT },
	{ "server-lr", required_argument, NULL, OPT_SLR },
	{ "server-momentum", required_argument, NULL, OPT_SMOM },
	{ "server-beta2", required_argument, NULL, OPT_SBETA2 },
	{ "tau", required_argument, NULL, OPT_TAU },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "clip", required_argument, NULL, OPT_CLIP },
	{ "noise", required_argument, NULL, OPT_NOISE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "on", required_argument, NULL, OPT_ON },
	FL_CLIENT_LONGOPTS,
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static size_t
parse_weights(const char *s, double **out)
{
	char *copy = strdup(s), *tok, *save = NULL;
	size_t n = 0;

	if (!copy || !(*out = malloc((strlen(s) / 2 + 1) * sizeof(double))))
		die(FL_EFAIL, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		(*out)[n++] = opt_num("--weights", tok, 0, 1e300);
	free(copy);
	if (n == 0)
		die(FL_EUSAGE, "--weights: no weights given");
	return n;
}

static void
on_progress(void *arg, double frac)
{
	(void)arg;
	progress("averaging %3.0f%%", 100 * frac);
}

static void
on_warn(void *arg, const char *msg)
{
	(void)arg;
	if (verbose >= 0)
		warn("%s", msg);
}

int
main(int argc, char *argv[])
{
	struct fl_agg_opts o;
	struct fl_agg a;
	struct output out;
	struct fl_atomic st;
	const char *outpath = NULL, *method = "mean", *on = NULL;
	struct fl_client_opts co = { .retries = -1 };
	double *weights = NULL;
	char err[FL_ERRLEN];
	int c, rc, uniform = 0, server_set = 0, has_state_out = 0, pending;

	setprogname(argv[0]);
	memset(&o, 0, sizeof(o));
	o.sp.lr = o.sp.beta1 = o.sp.beta2 = o.sp.tau = -1;
	o.trim = 0.1;
	while ((c = getopt_long(argc, argv, "o:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': outpath = optarg; break;
		case OPT_UNIFORM: uniform = 1; break;
		case OPT_WEIGHTS: o.nweights = parse_weights(optarg, &weights); break;
		case OPT_METHOD: method = optarg; break;
		case OPT_TRIM: o.trim = opt_num("--trim", optarg, 0, 0.4999999); break;
		case OPT_BYZ: o.byzantine = opt_count("--byzantine", optarg, 0, 1000); break;
		case OPT_MULTI: o.multi = opt_count("--multi", optarg, 0, 100000); break;
		case OPT_SKIPBAD: o.skip_bad = 1; break;
		case OPT_BASE: o.base = optarg; break;
		case OPT_SOPT:
			if (fl_server_opt_parse(optarg, &o.opt))
				die(FL_EUSAGE, "--server-opt: unknown optimizer '%s' (sgd, "
				    "momentum, adam, yogi, adagrad)", optarg);
			server_set = 1;
			break;
		case OPT_SLR: o.sp.lr = opt_num("--server-lr", optarg, 0, 1e6); server_set = 1; break;
		case OPT_SMOM: o.sp.beta1 = opt_num("--server-momentum", optarg, 0, 1); break;
		case OPT_SBETA2: o.sp.beta2 = opt_num("--server-beta2", optarg, 0, 1); break;
		case OPT_TAU: o.sp.tau = opt_num("--tau", optarg, 0, 1e6); break;
		case OPT_STATE: o.state = optarg; break;
		case OPT_CLIP: o.clip = opt_num("--clip", optarg, 1e-300, 1e300); break;
		case OPT_NOISE: o.noise = opt_num("--noise", optarg, 0, 1e6); break;
		case OPT_SEED:
			o.seed = opt_count("--seed", optarg, 0, UINT64_MAX);
			o.seeded = 1;
			break;
		case OPT_THREADS: o.threads = (int)opt_count("--threads", optarg, 0, 64); break;
		case OPT_CHUNK: o.chunk = opt_count("--chunk", optarg, 0, 1 << 26); break;
		case OPT_ON: on = optarg; break;
		case 'q': verbose = -1; break;
		case 'v': verbose++; break;
		case 'h': help(); break;
		case OPT_VERSION: print_version(); break;
		default:
			if ((rc = fl_client_opt(&co, c, optarg, err)) < 0)
				usage();
			if (rc)
				die(rc, "%s", err);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();

	if (fl_agg_rule_parse(method, &o.rule))
		die(FL_EUSAGE, "--method: unknown rule '%s' (mean, median, "
		    "trimmed-mean, krum)", method);
	if (uniform && weights)
		die(FL_EUSAGE, "--uniform and --weights exclude each other");
	o.weighting = weights ? FL_W_GIVEN : uniform ? FL_W_UNIFORM : FL_W_SAMPLES;
	o.weights = weights;
	if ((rc = fl_agg_opts_check(&o, server_set, err)))
		die(rc, "%s", err);
	if (o.chunk && o.chunk < 1)
		o.chunk = 1;
	if (on) {
		if (outpath)
			die(FL_EUSAGE, "-o: with --on the result stays on %s; its "
			    "pointer is printed", on);
		if (o.threads || o.chunk)
			die(FL_EUSAGE, "--threads and --chunk: with --on the worker "
			    "decides");
		if (co.insecure)
			warn("--insecure: TLS certificates are NOT verified; anyone "
			    "on the path can read and change what is sent");
		avg_on(on, argv, argc, &o, &co);
		free(weights);
		finish_stdout();
		return 0;
	}

	o.progress = on_progress;
	o.warn = on_warn;

	fl_agg_init(&a, &o);
	for (int i = 0; i < argc; i++) {
		char path[64];
		/* messages name the pointer, not the spool */
		if (!avg_fetch(argv[i], &co, path, sizeof(path)))
			rc = fl_agg_add_as(&a, path, argv[i], err);
		else
			rc = fl_agg_add(&a, argv[i], err);
		if (rc)
			die(rc, "%s", err);
	}
	if (!a.stdin_pending)
		note("%zu inputs", a.n);
	output_open(&out, outpath);
	if (o.state && o.opt != FL_SOPT_SGD) {
		if (fl_atomic_open(&st, o.state, err))
			die(FL_EIO, "%s", err);
		has_state_out = 1;
	}
	pending = a.stdin_pending;
	rc = fl_agg_run(&a, out.fd, out.name, has_state_out ? st.fd : -1,
	    o.state, err);
	progress_done();
	if (rc) {
		if (has_state_out)
			fl_atomic_abort(&st);
		die(rc, "%s", err);
	}
	if (a.streamed)
		note("%zu inputs, folded in as they came", a.n);
	else if (pending)
		note("%zu inputs", a.n);
	output_close(&out);
	if (has_state_out && fl_atomic_commit(&st, err))
		die(FL_EIO, "%s", err);
	if (o.base && o.opt != FL_SOPT_SGD && !o.state)
		note("no --state: the server optimizer's state is not kept");
	fl_agg_release(&a);
	free(weights);
	finish_stdout();
	return 0;
}
