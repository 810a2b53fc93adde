/* fl-fit: train, evaluate or run a model on a local dataset, or have
 * workers train or evaluate it on theirs (fit_remote.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "common.h"
#include "fit.h"
#include "data.h"
#include "model.h"
#include "train.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s --local DATASET [-qv] [-o FILE] [--epochs N] [--batch N] [--lr X]\n"
	    "              [--optimizer sgd|adam] [--momentum M] [--nesterov]\n"
	    "              [--weight-decay W] [--prox MU] [--seed N] [--max-steps N]\n"
	    "              [--threads N] [--client NAME] < MODEL\n"
	    "       %s --dataset KEY [training options] [--pointers] [--min N]\n"
	    "              [--timeout SECS] [--parallel N] [network options] WORKER... < MODEL\n"
	    "       %s --eval --local DATASET [--json] [--batch N] [--threads N] < MODEL\n"
	    "       %s --eval --dataset KEY [--json] [--batch N] [--min N] [--timeout SECS]\n"
	    "              [--parallel N] WORKER... < MODEL\n"
	    "       %s --predict --local INPUTS [-o FILE] [--mc-dropout N] [--seed N]\n"
	    "              [--batch N] [--threads N] < MODEL\n"
	    "Network: --connect-timeout SECS, --retry N, --cacert FILE, --insecure.\n",
	    progname, progname, progname, progname, progname);
	exit(FL_EUSAGE);
}

static void
help(void)
{
	printf("usage: %s --local DATASET [options] < model.blob > model.blob\n"
	    "       %s --dataset KEY [options] WORKER... < model.blob | fl-avg -\n"
	    "       %s --eval --local DATASET [--json] < model.blob\n"
	    "       %s --eval --dataset KEY [--json] WORKER... < model.blob\n"
	    "       %s --predict --local INPUTS [--mc-dropout N] [-o FILE] < model.blob\n"
	    "Train the model read from standard input on a dataset blob, or evaluate\n"
	    "it, or print its predictions; or have workers train or evaluate it on\n"
	    "their dataset KEY, all at once.\n"
	    "\n"
	    "  -l, --local FILE          the dataset blob (- for standard input is not\n"
	    "                            allowed: the model comes from there)\n"
	    "  -d, --dataset KEY         the workers' dataset to train or evaluate on;\n"
	    "                            the trained models come back to back\n"
	    "      --pointers            print WORKER/ID of each trained model instead\n"
	    "                            of fetching it (to aggregate there)\n"
	    "      --min N               succeed when N workers answered (all)\n"
	    "      --timeout SECS        stop waiting SECS after the start (none)\n"
	    "      --parallel N          workers asked at once (16)\n"
	    "      --connect-timeout S   seconds to connect to a worker (10)\n"
	    "      --retry N             retries of idempotent requests (2)\n"
	    "      --cacert FILE         CA certificates for https workers\n"
	    "      --insecure            do not verify TLS certificates\n"
	    "  -o, --output FILE         write the blob to FILE atomically\n"
	    "      --epochs N            passes over the data (1)\n"
	    "      --batch N             examples per step (32; 256 for --eval, --predict)\n"
	    "      --lr X                learning rate (sgd 0.01, adam 0.001)\n"
	    "      --optimizer NAME      sgd or adam (sgd)\n"
	    "      --momentum M          SGD momentum (0)\n"
	    "      --nesterov            Nesterov momentum\n"
	    "      --weight-decay W      L2 penalty added to the gradient (0)\n"
	    "      --prox MU             FedProx: add MU/2 |w - w0|^2, w0 the input model\n"
	    "      --seed N              shuffle order and dropout masks (0)\n"
	    "      --max-steps N         stop after N optimizer steps\n"
	    "      --threads N           threads splitting each batch (2); for --eval\n"
	    "                            and --predict, threads for the dense math (1)\n"
	    "      --client NAME         meta client (default: the host name)\n"
	    "      --eval                print loss, accuracy and samples on DATASET\n"
	    "      --json                print them as JSON\n"
	    "      --predict             print outputs per row of INPUTS as CSV\n"
	    "      --mc-dropout N        N passes with dropout on: mean, std, entropy\n"
	    "  -q, --quiet               no progress line\n"
	    "  -v, --verbose             a line per epoch, or per worker\n"
	    "  -h, --help                this help\n"
	    "      --version             print the version\n",
	    progname, progname, progname, progname, progname);
	finish_stdout();
	exit(0);
}

enum {
	OPT_EPOCHS = 256, OPT_BATCH, OPT_LR, OPT_OPTIMIZER, OPT_MOMENTUM,
	OPT_NESTEROV, OPT_WD, OPT_PROX, OPT_SEED, OPT_MAXSTEPS, OPT_THREADS,
	OPT_CLIENT, OPT_EVAL, OPT_JSON, OPT_PREDICT, OPT_MC, OPT_POINTERS,
	OPT_MIN, OPT_ROUND_TIMEOUT, OPT_PARALLEL, OPT_VERSION,
};

static const struct option longopts[] = {
	{ "local", required_argument, NULL, 'l' },
	{ "output", required_argument, NULL, 'o' },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "lr", required_argument, NULL, OPT_LR },
	{ "optimizer", required_argument, NULL, OPT_OPTIMIZER },
	{ "momentum", required_argument, NULL, OPT_MOMENTUM },
	{ "nesterov", no_argument, NULL, OPT_NESTEROV },
	{ "weight-decay", required_argument, NULL, OPT_WD },
	{ "prox", required_argument, NULL, OPT_PROX },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "max-steps", required_argument, NULL, OPT_MAXSTEPS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "client", required_argument, NULL, OPT_CLIENT },
	{ "eval", no_argument, NULL, OPT_EVAL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "predict", no_argument, NULL, OPT_PREDICT },
	{ "mc-dropout", required_argument, NULL, OPT_MC },
	{ "dataset", required_argument, NULL, 'd' },
	{ "pointers", no_argument, NULL, OPT_POINTERS },
	{ "min", required_argument, NULL, OPT_MIN },
	{ "timeout", required_argument, NULL, OPT_ROUND_TIMEOUT },
	{ "parallel", required_argument, NULL, OPT_PARALLEL },
	/* the network options, but --timeout: here it is the round's */
	{ "connect-timeout", required_argument, NULL, FL_OPT_CONNECT_TIMEOUT },
	{ "retry", required_argument, NULL, FL_OPT_RETRY },
	{ "cacert", required_argument, NULL, FL_OPT_CACERT },
	{ "insecure", no_argument, NULL, FL_OPT_INSECURE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void
read_model(struct fl_header *h, struct fl_net *net, int maxbatch)
{
	struct fl_reader r;
	struct fl_arch arch;
	char err[FL_ERRLEN];
	int rc;

	if (isatty(0))
		die(FL_EUSAGE, "expected a model blob on standard input "
		    "(fl-fit --local DATASET < model.blob)");
	fl_reader_fd(&r, 0, "<stdin>");
	rc = fl_reader_next(&r, h, err);
	if (rc == FL_EOF)
		die(FL_EBLOB, "<stdin>: empty: expected a model blob");
	if (rc)
		die(rc, "%s", err);
	if ((rc = fl_model_arch(h, &arch, err)))
		die(rc, "<stdin>: %s", err);
	if ((rc = fl_net_init(net, &arch, maxbatch, err)) ||
	    (rc = fl_model_check(h, net, err)))
		die(rc, "<stdin>: %s", err);
	/* Errors from here on come from the reader, naming the stream. */
	if ((rc = fl_model_load(&r, h, net, err)))
		die(rc, "%s", err);
	fl_reader_close(&r);
}

struct progress_state {
	double last;
};

static int
on_progress(void *arg, const struct fl_train_progress *p)
{
	struct progress_state *ps = arg;
	double now = fl_monotonic();
	char acc[32] = "";

	if (!isnan(p->accuracy))
		snprintf(acc, sizeof(acc), " acc %.1f%%", 100 * p->accuracy);
	if (p->epoch_done)
		note("epoch %d/%d: loss %.4f%s, %.0f samples/s", p->epoch,
		    p->epochs, p->loss, acc, p->rate);
	if (now - ps->last >= 0.1 || p->step == p->steps) {
		ps->last = now;
		progress("epoch %d/%d step %llu/%llu loss %.4f%s %.0f samples/s",
		    p->epoch, p->epochs, (unsigned long long)p->step,
		    (unsigned long long)p->steps, p->loss, acc, p->rate);
	}
	return 0;
}

static void
load_dataset(struct fl_dataset *d, const char *path, const struct fl_net *net)
{
	char err[FL_ERRLEN];
	int rc;

	if ((rc = fl_dataset_load(d, path, err)))
		die(rc, "%s", err);
	if ((rc = fl_train_check(net, d, err)))
		die(rc, "%s: %s", path, err);
}

/* Meta of the trained model: the input's, with the new figures. */
static void
stamp(struct fl_val *meta, const struct fl_train_opts *o,
    const struct fl_train_result *res, const char *client)
{
	char host[256];

	if (!client) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		client = host;
	}
	if (fl_train_stamp(meta, o, res, client))
		die(FL_EFAIL, "out of memory");
}

/* CPU time of the process, all threads: for benchmarks on busy machines. */
static double
cpu_seconds(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
do_train(const char *path, const char *outpath, struct fl_train_opts *o,
    const char *client)
{
	struct fl_header h;
	struct fl_net net;
	struct fl_dataset d;
	struct fl_train_result res;
	struct progress_state ps = { 0 };
	struct output out;
	char err[FL_ERRLEN];
	double cpu;
	int rc;

	read_model(&h, &net, o->batch);
	load_dataset(&d, path, &net);
	output_open(&out, outpath);
	if (progress_enabled() || verbose > 0) {
		o->progress = on_progress;
		o->arg = &ps;
	}
	cpu = cpu_seconds();
	rc = fl_fit(&net, &d, o, &res, err);
	cpu = cpu_seconds() - cpu;
	o->progress = NULL;	/* ps dies with this frame */
	o->arg = NULL;
	progress_done();
	if (rc)
		die(rc, "%s: %s", path, err);
	note("%llu steps, %llu examples, loss %.4f, %.3f s (%.3f s CPU), "
	    "%.0f samples/s", (unsigned long long)res.steps,
	    (unsigned long long)res.samples, res.loss, res.seconds, cpu, res.rate);
	stamp(&h.meta, o, &res, client);
	if ((rc = fl_model_write(out.fd, out.name, &h, &net, err)))
		die(rc, "%s", err);
	output_close(&out);
	fl_dataset_release(&d);
	fl_net_release(&net);
	fl_header_release(&h);
}

static void
print_number(const char *fmt, double v, int json)
{
	if (isfinite(v))
		printf(fmt, v);
	else
		fputs(json ? "null" : isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", stdout);
}

static void
do_eval(const char *path, int batch, int json)
{
	struct fl_header h;
	struct fl_net net;
	struct fl_dataset d;
	struct fl_eval_result res;
	char err[FL_ERRLEN];
	int rc;

	read_model(&h, &net, batch);
	load_dataset(&d, path, &net);
	if ((rc = fl_eval(&net, &d, &res, err)))
		die(rc, "%s: %s", path, err);
	if (json) {
		fputs("{\"loss\":", stdout);
		print_number("%.6g", res.loss, 1);
		if (!isnan(res.accuracy)) {
			fputs(",\"accuracy\":", stdout);
			print_number("%.6g", res.accuracy, 1);
		}
		printf(",\"samples\":%llu}\n", (unsigned long long)res.samples);
	} else {
		fputs("loss      ", stdout);
		print_number("%.6g", res.loss, 0);
		if (!isnan(res.accuracy)) {
			fputs("\naccuracy  ", stdout);
			print_number("%.6g", res.accuracy, 0);
		}
		printf("\nsamples   %llu\n", (unsigned long long)res.samples);
	}
	fl_dataset_release(&d);
	fl_net_release(&net);
	fl_header_release(&h);
}

static void
write_csv(const float *mean, const float *std, const float *ent, uint64_t n,
    int C)
{
	const char *p = std ? "mean" : "p";

	for (int c = 0; c < C; c++)
		printf("%s%s%d", c ? "," : "", p, c);
	if (std)
		for (int c = 0; c < C; c++)
			printf(",std%d", c);
	if (ent)
		fputs(",entropy", stdout);
	putchar('\n');
	for (uint64_t i = 0; i < n; i++) {
		for (int c = 0; c < C; c++)
			printf("%s%.6g", c ? "," : "", mean[i * C + c]);
		if (std)
			for (int c = 0; c < C; c++)
				printf(",%.6g", std[i * C + c]);
		if (ent)
			printf(",%.6g", ent[i]);
		putchar('\n');
	}
}

static void
write_predictions(const char *outpath, const char *inputs,
    const struct fl_header *model, int passes, const float *mean,
    const float *std, const float *ent, uint64_t n, int C)
{
	struct fl_header h;
	struct output out;
	const void *data[3] = { mean, std, ent };
	const char *id = fl_map_get_str(&model->meta, "model_id");
	const char *loss = fl_map_get_str(&model->meta, "loss");
	uint64_t shape[2] = { n, (uint64_t)C };
	char err[FL_ERRLEN], prod[64];
	int rc;

	snprintf(prod, sizeof(prod), "fl-fit %s", FL_VERSION);
	if (fl_header_init(&h, "predictions") ||
	    fl_header_add(&h, "output", FL_F32, 2, shape) < 0 ||
	    (std && fl_header_add(&h, "std", FL_F32, 2, shape) < 0) ||
	    (ent && fl_header_add(&h, "entropy", FL_F32, 1, shape) < 0) ||
	    (id && fl_map_set_str(&h.meta, "model_id", id)) ||
	    (loss && fl_map_set_str(&h.meta, "loss", loss)) ||
	    fl_map_set_str(&h.meta, "source", inputs) ||
	    fl_map_set_uint(&h.meta, "samples", n) ||
	    (passes && fl_map_set_uint(&h.meta, "mc_dropout", (uint64_t)passes)) ||
	    fl_map_set_uint(&h.meta, "created", (uint64_t)fl_now()) ||
	    fl_map_set_str(&h.meta, "producer", prod))
		die(FL_EFAIL, "out of memory");
	output_open(&out, outpath);
	if ((rc = fl_blob_write(out.fd, out.name, &h, data, 6, err)))
		die(rc, "%s", err);
	output_close(&out);
	fl_header_release(&h);
}

static void
do_predict(const char *path, const char *outpath, int batch, int passes,
    uint64_t seed)
{
	struct fl_header h;
	struct fl_net net;
	float *x, *mean, *std = NULL, *ent = NULL;
	uint64_t n, features;
	char err[FL_ERRLEN];
	int rc, C, ce;

	read_model(&h, &net, batch);
	if ((rc = fl_inputs_load(path, &x, &n, &features, err)))
		die(rc, "%s", err);
	if (features != (uint64_t)fl_arch_in(&net.arch))
		die(FL_EDATA, "%s: inputs have %llu features per example, the "
		    "model takes %d", path, (unsigned long long)features,
		    fl_arch_in(&net.arch));
	C = fl_arch_out(&net.arch);
	ce = net.arch.loss == FL_LOSS_SOFTMAX_CE;
	if (n > SIZE_MAX / sizeof(float) / (size_t)C ||
	    !(mean = malloc(n * C * sizeof(float))) ||
	    (passes && !(std = malloc(n * C * sizeof(float)))) ||
	    (passes && ce && !(ent = malloc(n * sizeof(float)))))
		die(FL_EFAIL, "out of memory for %llu predictions",
		    (unsigned long long)n);
	if ((rc = fl_predict(&net, x, n, passes, seed, mean, std, ent, err)))
		die(rc, "%s", err);
	if (outpath)
		write_predictions(outpath, path, &h, passes, mean, std, ent, n, C);
	else
		write_csv(mean, std, ent, n, C);
	free(x);
	free(mean);
	free(std);
	free(ent);
	fl_net_release(&net);
	fl_header_release(&h);
}

/* A training option for the workers: "key=value" onto the query. */
static void
add_query(struct fl_buf *q, const char *key, const char *val)
{
	if ((q->len && fl_buf_add(q, "&", 1)) || fl_buf_addstr(q, key) ||
	    fl_buf_add(q, "=", 1) || fl_buf_addurl(q, val))
		die(FL_EFAIL, "out of memory");
}

int
main(int argc, char *argv[])
{
	struct fl_train_opts o;
	const char *local = NULL, *outpath = NULL, *client = NULL, *dataset = NULL;
	struct remote_opts ro = { .co = { .retries = -1 } };
	struct fl_buf query;
	const char *train_opt = NULL;	/* a training option, for messages */
	double lr = NAN, momentum = NAN, wd = NAN;
	enum fl_optim_kind kind = FL_OPTIM_SGD;
	int c, eval = 0, predict = 0, json = 0, nesterov = 0, threads = 0;
	int batch = 0, passes = 0, rc;
	struct fl_optim check;
	char err[FL_ERRLEN];

	setprogname(argv[0]);
	fl_train_defaults(&o);
	fl_buf_init(&query, 4096);
	while ((c = getopt_long(argc, argv, "l:d:o:qvh", longopts, NULL)) != -1) {
		/* the training options travel to workers as they were given */
		switch (c) {
		case OPT_EPOCHS: add_query(&query, "epochs", optarg); break;
		case OPT_BATCH: add_query(&query, "batch", optarg); break;
		case OPT_LR: add_query(&query, "lr", optarg); break;
		case OPT_OPTIMIZER: add_query(&query, "optimizer", optarg); break;
		case OPT_MOMENTUM: add_query(&query, "momentum", optarg); break;
		case OPT_NESTEROV: add_query(&query, "nesterov", "1"); break;
		case OPT_WD: add_query(&query, "weight-decay", optarg); break;
		case OPT_PROX: add_query(&query, "prox", optarg); break;
		case OPT_SEED: add_query(&query, "seed", optarg); break;
		case OPT_MAXSTEPS: add_query(&query, "max-steps", optarg); break;
		}
		switch (c) {
		case 'l': local = optarg; break;
		case 'd': dataset = optarg; break;
		case OPT_POINTERS: ro.pointers = 1; break;
		case OPT_MIN: ro.min = opt_count("--min", optarg, 1, 1000000); break;
		case OPT_ROUND_TIMEOUT:
			ro.timeout = opt_num("--timeout", optarg, 0.001, 1e9);
			break;
		case OPT_PARALLEL:
			ro.parallel = opt_count("--parallel", optarg, 1, 1024);
			break;
		case FL_OPT_CONNECT_TIMEOUT:
		case FL_OPT_RETRY:
		case FL_OPT_CACERT:
		case FL_OPT_INSECURE:
			if ((rc = fl_client_opt(&ro.co, c, optarg, err)))
				die(rc, "%s", err);
			break;
		case 'o': outpath = optarg; break;
		case OPT_EPOCHS:
			o.epochs = (int)opt_count("--epochs", optarg, 1, 1000000);
			train_opt = "--epochs";
			break;
		case OPT_BATCH: batch = (int)opt_count("--batch", optarg, 1, 1 << 20); break;
		case OPT_LR:
			lr = opt_num("--lr", optarg, 0, INFINITY);
			train_opt = "--lr";
			break;
		case OPT_OPTIMIZER:
			if (fl_optim_parse(optarg, &kind))
				die(FL_EUSAGE, "--optimizer: unknown optimizer '%s' "
				    "(sgd, adam)", optarg);
			train_opt = "--optimizer";
			break;
		case OPT_MOMENTUM:
			momentum = opt_num("--momentum", optarg, 0, 1);
			train_opt = "--momentum";
			break;
		case OPT_NESTEROV: nesterov = 1; train_opt = "--nesterov"; break;
		case OPT_WD:
			wd = opt_num("--weight-decay", optarg, 0, INFINITY);
			train_opt = "--weight-decay";
			break;
		case OPT_PROX:
			o.prox = opt_num("--prox", optarg, 0, 1e30);
			train_opt = "--prox";
			break;
		case OPT_SEED: o.seed = opt_count("--seed", optarg, 0, UINT64_MAX); break;
		case OPT_MAXSTEPS:
			o.max_steps = opt_count("--max-steps", optarg, 1, UINT64_MAX);
			train_opt = "--max-steps";
			break;
		case OPT_THREADS: threads = (int)opt_count("--threads", optarg, 1, 256); break;
		case OPT_CLIENT: client = optarg; train_opt = "--client"; break;
		case OPT_EVAL: eval = 1; break;
		case OPT_JSON: json = 1; break;
		case OPT_PREDICT: predict = 1; break;
		case OPT_MC: passes = (int)opt_count("--mc-dropout", optarg, 1, 100000); break;
		case 'q': verbose = -1; break;
		case 'v': verbose++; break;
		case 'h': help(); break;
		case OPT_VERSION: print_version(); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (dataset) {
		if (local)
			die(FL_EUSAGE, "--local and --dataset exclude each other");
		if (argc < 1)
			die(FL_EUSAGE, "--dataset %s: name the workers to ask", dataset);
		if (predict)
			die(FL_EUSAGE, "--predict runs on a local file: a worker's "
			    "rows never leave it, nor do per-row outputs");
		if (threads)
			die(FL_EUSAGE, "--threads: each worker decides its own");
		if (client)
			die(FL_EUSAGE, "--client: each worker names itself");
		if (eval && train_opt)
			die(FL_EUSAGE, "%s applies to training, not to --eval", train_opt);
		if (eval && (ro.pointers || outpath))
			die(FL_EUSAGE, "--eval prints a table: no %s",
			    ro.pointers ? "--pointers" : "-o");
		if (json && !eval)
			die(FL_EUSAGE, "--json goes with --eval");
		if (ro.min > (size_t)argc)
			die(FL_EUSAGE, "--min %zu: only %d workers named", ro.min, argc);
		if (ro.co.insecure)
			warn("--insecure: TLS certificates are NOT verified; anyone on "
			    "the path can read and change what is sent");
		ro.dataset = dataset;
		ro.workers = argv;
		ro.nworkers = (size_t)argc;
		ro.eval = eval;
		ro.json = json;
		ro.outpath = outpath;
		if (fl_buf_add(&query, "", 1))
			die(FL_EFAIL, "out of memory");
		ro.query = (const char *)query.data;
		remote_run(&ro);
		fl_buf_release(&query);
		finish_stdout();
		return 0;
	}
	if (argc > 0)
		die(FL_EUSAGE, "%s: workers go with --dataset KEY (or train on a "
		    "local file with --local DATASET.blob)", argv[0]);
	if (ro.pointers || ro.min || ro.timeout > 0 || ro.parallel ||
	    ro.co.connect_timeout > 0 || ro.co.retries >= 0 || ro.co.cacert ||
	    ro.co.insecure)
		die(FL_EUSAGE, "--pointers, --min, --timeout, --parallel and the "
		    "network options go with --dataset KEY WORKER...");
	fl_buf_release(&query);
	if (!local) {
		warn("no dataset: give --local DATASET.blob or --dataset KEY WORKER...");
		usage();
	}
	if (!strcmp(local, "-"))
		die(FL_EUSAGE, "--local: the dataset must be a file, standard "
		    "input carries the model");
	if (eval && predict)
		die(FL_EUSAGE, "--eval and --predict exclude each other");
	if ((eval || predict) && train_opt)
		die(FL_EUSAGE, "%s applies to training, not to --%s", train_opt,
		    eval ? "eval" : "predict");
	if (json && !eval)
		die(FL_EUSAGE, "--json goes with --eval");
	if (passes && !predict)
		die(FL_EUSAGE, "--mc-dropout goes with --predict");
	if (eval && outpath)
		die(FL_EUSAGE, "-o: --eval prints to standard output");
	/*
	 * Unless told, training splits each batch between two threads, which
	 * is faster than one wherever there are two cores; a fixed number
	 * keeps a run's result the same on every machine. Evaluation and
	 * prediction run on one OpenBLAS thread, or OPENBLAS_NUM_THREADS.
	 */
	fl_train_threads(threads ? threads :
	    getenv("OPENBLAS_NUM_THREADS") ? 0 : 1);

	if (eval) {
		do_eval(local, batch ? batch : 256, json);
		finish_stdout();
		return 0;
	}
	if (predict) {
		do_predict(local, outpath, batch ? batch : 256, passes, o.seed);
		finish_stdout();
		return 0;
	}

	fl_optim_defaults(&o.optim, kind);
	if (!isnan(lr))
		o.optim.lr = lr;
	if (!isnan(wd))
		o.optim.weight_decay = wd;
	if (kind != FL_OPTIM_SGD && (!isnan(momentum) || nesterov))
		die(FL_EUSAGE, "--momentum and --nesterov go with --optimizer sgd");
	if (!isnan(momentum))
		o.optim.momentum = momentum;
	o.optim.nesterov = nesterov;
	if (nesterov && !(o.optim.momentum > 0))
		die(FL_EUSAGE, "--nesterov needs --momentum above 0");
	if ((rc = fl_optim_init(&check, &o.optim, 1, err)))
		die(rc, "%s", err);
	fl_optim_release(&check);
	if (batch)
		o.batch = batch;
	o.threads = threads ? threads : 2;
	do_train(local, outpath, &o, client);
	finish_stdout();
	return 0;
}
