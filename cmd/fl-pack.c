/* fl-pack: create, inspect, convert and split blobs and datasets. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "common.h"
#include "model.h"
#include "nn.h"
#include "pack.h"
#include "rng.h"

static const char usage_msg[] =
	    "usage: fl-pack init --arch SPEC [--seed N] [--loss softmax-ce|mse] [-o FILE]\n"
	    "       fl-pack info [--json] [BLOB|-]...\n"
	    "       fl-pack verify BLOB...\n"
	    "       fl-pack convert [--dtype f32|f16|bf16] [--compress|--no-compress] [-o FILE] [BLOB|-]\n"
	    "       fl-pack dataset --csv FILE [--label-column N] [--targets K] [--header] [-o FILE]\n"
	    "       fl-pack dataset --idx IMAGES LABELS [--normalize] [-o FILE]\n"
	    "       fl-pack split --parts N [--dirichlet ALPHA] [--seed S] [--prefix P] [--json] [DATASET|-]\n"
	    "       fl-pack export --to safetensors|npz [-o FILE] [BLOB|-]\n"
	    "       fl-pack import [--arch SPEC] [--loss softmax-ce|mse] [-o FILE] FILE|-\n"
	    "Every command takes -q (--quiet), -v (--verbose) and -h (--help).\n";


/* Options every subcommand takes. */
static int
common_opt(int c)
{
	switch (c) {
	case 'h':
		usage_exit(usage_msg, 0);
		break;
	case 'V':
		print_version();
		break;
	case 'q':
		verbose--;
		return 1;
	case 'v':
		verbose++;
		return 1;
	}
	return 0;
}

#define COMMON_LONGOPTS \
	{ "help", no_argument, NULL, 'h' }, \
	{ "version", no_argument, NULL, 'V' }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "verbose", no_argument, NULL, 'v' }

static int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 's' },
		{ "loss", required_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		COMMON_LONGOPTS, { 0 }
	};
	const char *spec = NULL, *loss = NULL, *out = NULL;
	char err[FL_ERRLEN];
	struct fl_arch arch;
	struct fl_net net;
	struct fl_header h;
	struct fl_rng rng;
	struct output o;
	uint64_t seed = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "a:s:l:o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'a': spec = optarg; break;
		case 'l': loss = optarg; break;
		case 'o': out = optarg; break;
		case 's':
			if (fl_parse_u64(optarg, UINT64_MAX, &seed))
				die(FL_EUSAGE, "--seed: '%s' is not a number", optarg);
			break;
		default:
			if (!common_opt(c))
				usage_exit(usage_msg, FL_EUSAGE);
		}
	}
	if (optind != argc || !spec)
		usage_exit(usage_msg, FL_EUSAGE);
	if (fl_arch_parse(&arch, spec, err))
		die(FL_EUSAGE, "%s", err);
	if (loss && fl_loss_parse(loss, &arch.loss))
		die(FL_EUSAGE, "--loss: '%s' is not softmax-ce or mse", loss);
	if ((rc = fl_net_init(&net, &arch, 1, err)))
		die(rc, "%s", err);
	fl_rng_seed(&rng, seed);
	fl_net_init_params(&net, &rng);
	if (fl_model_header(&h, &net) || fl_meta_stamp(&h.meta, "fl-pack") ||
	    fl_map_set_uint(&h.meta, "round", 0) || fl_map_set_uint(&h.meta, "seed", seed))
		die(FL_EFAIL, "out of memory");
	output_open(&o, out);
	if ((rc = fl_model_write(o.fd, o.name, &h, &net, err)))
		die(rc, "%s", err);
	output_close(&o);
	fl_header_release(&h);
	fl_net_release(&net);
	return 0;
}

/* A meta value as short text for the table view. */
static void
meta_text(struct fl_buf *b, const char *key, const struct fl_val *v)
{
	struct fl_header h = { .kind = "model" };
	struct fl_arch a;
	char spec[4096];

	if (!strcmp(key, "arch")) {
		h.meta.type = FL_V_MAP;
		h.meta.v.a.n = 1;
		struct fl_val kv[2];
		fl_val_nil(&kv[0]);
		kv[0].type = FL_V_STR;
		kv[0].v.s.p = "arch";
		kv[0].v.s.len = 4;
		kv[1] = *v;
		h.meta.v.a.items = kv;
		if (!fl_model_arch(&h, &a, NULL) && !fl_arch_format(&a, spec, sizeof(spec))) {
			fl_buf_addstr(b, spec);
			return;
		}
	}
	if (v->type == FL_V_STR)
		fl_buf_add(b, v->v.s.p, v->v.s.len);
	else
		fl_val_json(b, v);
}

/* The first 8 characters of a model id, as git shortens hashes. */
static void
short_id(char out[9], const char *id)
{
	snprintf(out, 9, "%s", id ? id : "?");
}

/*
 * Where a model came from, from its meta: trained by a client from a parent
 * model, or aggregated from parents (paired with their contributors, in
 * the order fl-avg records them).
 */
static void
info_lineage(const struct fl_header *h)
{
	const char *id = fl_map_get_str(&h->meta, "model_id");
	const char *parent = fl_map_get_str(&h->meta, "parent_id");
	const char *client = fl_map_get_str(&h->meta, "client");
	const char *rule = fl_map_get_str(&h->meta, "rule");
	const struct fl_val *parents = fl_map_get(&h->meta, "parents");
	const struct fl_val *contrib = fl_map_get(&h->meta, "contributors");
	const struct fl_val *rv = fl_map_get(&h->meta, "round");
	char a[9], b[9], round[32] = "";
	uint64_t r;

	if (!id || (!parent && !parents))
		return;
	if (rv && !fl_val_get_u64(rv, &r))
		snprintf(round, sizeof(round), " in round %llu", (unsigned long long)r);
	short_id(a, id);
	printf("lineage:\n");
	if (parents && parents->type == FL_V_ARRAY) {
		printf("  %s  %s of %zu model%s%s", a, rule ? rule : "aggregate",
		    parents->v.a.n, parents->v.a.n == 1 ? "" : "s", round);
		if (parent) {
			short_id(b, parent);
			printf(", on base %s", b);
		}
		printf(":\n");
		for (size_t i = 0; i < parents->v.a.n; i++) {
			const char *c = contrib && contrib->type == FL_V_ARRAY &&
			    i < contrib->v.a.n ? fl_val_get_str(&contrib->v.a.items[i]) :
			    NULL;
			short_id(b, fl_val_get_str(&parents->v.a.items[i]));
			printf("  %-8s    %s%s%s%s\n", "", b, c ? " (" : "", c ? c : "",
			    c ? ")" : "");
		}
		return;
	}
	short_id(b, parent);
	printf("  %s  trained%s%s%s from %s\n", a, client ? " by " : "",
	    client ? client : "", round, b);
}

static void
info_table(const char *name, const struct fl_header *h)
{
	struct fl_buf b;
	size_t w = 4;
	char shape[256];

	printf("%s: %s, %" PRIu64 " %s, %" PRIu64 " bytes\n", name, h->kind,
	    fl_header_nparams(h), strcmp(h->kind, "model") ? "elements" : "parameters",
	    h->total);
	if (h->meta.v.a.n)
		printf("meta:\n");
	fl_buf_init(&b, 0);
	for (size_t i = 0; i < h->meta.v.a.n; i++) {
		const struct fl_val *k = &h->meta.v.a.items[2 * i];
		b.len = 0;
		meta_text(&b, k->type == FL_V_STR ? k->v.s.p : "", &h->meta.v.a.items[2 * i + 1]);
		printf("  %-12s %s\n", k->type == FL_V_STR ? k->v.s.p : "?",
		    b.data ? (char *)b.data : "");
	}
	fl_buf_release(&b);
	if (!strcmp(h->kind, "model"))
		info_lineage(h);
	if (!h->ntensors)
		return;
	for (size_t i = 0; i < h->ntensors; i++)
		if (strlen(h->t[i].name) > w)
			w = strlen(h->t[i].name);
	printf("tensors:\n  %-*s %-5s %-16s %12s %s\n", (int)w, "NAME", "DTYPE", "SHAPE",
	    "BYTES", "ENC");
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		fl_shape_str(t, shape, sizeof(shape));
		printf("  %-*s %-5s %-16s %12" PRIu64 " %s\n", (int)w, t->name,
		    fl_dtype_name(t->dtype), shape, t->size, t->enc == FL_ZLIB ? "zlib" : "raw");
	}
}

static void
info_json(const struct fl_header *h)
{
	struct fl_buf b;

	fl_buf_init(&b, 0);
	fl_buf_addstr(&b, "{\"kind\":");
	fl_json_str(&b, h->kind, strlen(h->kind));
	fl_buf_printf(&b, ",\"params\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"meta\":",
	    fl_header_nparams(h), h->total);
	fl_val_json(&b, &h->meta);
	fl_buf_addstr(&b, ",\"tensors\":[");
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		fl_buf_addstr(&b, i ? ",{\"name\":" : "{\"name\":");
		fl_json_str(&b, t->name, strlen(t->name));
		fl_buf_printf(&b, ",\"dtype\":\"%s\",\"shape\":[", fl_dtype_name(t->dtype));
		for (int d = 0; d < t->ndim; d++)
			fl_buf_printf(&b, d ? ",%" PRIu64 : "%" PRIu64, t->shape[d]);
		fl_buf_printf(&b, "],\"size\":%" PRIu64 ",\"enc\":\"%s\",\"crc32\":%" PRIu32 "}",
		    t->size, t->enc == FL_ZLIB ? "zlib" : "raw", t->crc);
	}
	fl_buf_addstr(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	fl_buf_release(&b);
}

static int
cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		COMMON_LONGOPTS, { 0 }
	};
	static char *stdin_only[] = { "-" };
	char err[FL_ERRLEN];
	int c, json = 0, status = 0;

	while ((c = getopt_long(argc, argv, "jhqv", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (!common_opt(c))
			usage_exit(usage_msg, FL_EUSAGE);
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		argc = 1;
		argv = stdin_only;
	}
	for (int i = 0; i < argc; i++) {
		struct fl_reader r;
		struct fl_header h;
		int rc, n = 0;

		if ((rc = fl_reader_open(&r, argv[i], err))) {
			warn("%s", err);
			status = status ? status : rc;
			continue;
		}
		while ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
			n++;
			if (json)
				info_json(&h);
			else
				info_table(r.name, &h);
			fl_header_release(&h);
		}
		if (rc == FL_EOF && n == 0)
			rc = fl_err(err, FL_EBLOB, "%s: empty: no blob", r.name);
		if (rc != FL_EOF) {
			finish_stdout();
			warn("%s", err);
			status = status ? status : rc;
		}
		fl_reader_close(&r);
	}
	finish_stdout();
	return status;
}

static int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, { 0 } };
	char err[FL_ERRLEN];
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "hqv", opts, NULL)) != -1)
		if (!common_opt(c))
			usage_exit(usage_msg, FL_EUSAGE);
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage_exit(usage_msg, FL_EUSAGE);
	for (int i = 0; i < argc; i++) {
		struct fl_reader r;
		struct fl_header h;
		int rc, n = 0;

		if ((rc = fl_reader_open(&r, argv[i], err)) == FL_OK) {
			while ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
				rc = fl_reader_finish(&r, err);
				fl_header_release(&h);
				if (rc)
					break;
				n++;
			}
			if (rc == FL_EOF)
				rc = n ? FL_OK : fl_err(err, FL_EBLOB, "%s: empty: no blob", r.name);
			fl_reader_close(&r);
		}
		if (rc) {
			warn("%s", err);
			status = status ? status : rc;
		} else if (verbose >= 0) {
			printf("%s: ok (%d blob%s)\n", argv[i], n, n == 1 ? "" : "s");
		}
	}
	finish_stdout();
	return status;
}

static int
cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dtype", required_argument, NULL, 'd' },
		{ "compress", no_argument, NULL, 'z' },
		{ "no-compress", no_argument, NULL, 'Z' },
		{ "output", required_argument, NULL, 'o' },
		COMMON_LONGOPTS, { 0 }
	};
	const char *out = NULL, *in = "-";
	char err[FL_ERRLEN];
	enum fl_dtype dt = FL_F32;
	int c, rc, setdt = 0, compress = -1, n = 0;
	struct fl_reader r;
	struct fl_header h;
	struct output o;
	void *src = NULL, *dst = NULL;
	const size_t chunk = 1 << 18;	/* elements */

	while ((c = getopt_long(argc, argv, "d:o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (fl_dtype_parse(optarg, &dt) || !fl_dtype_is_float(dt))
				die(FL_EUSAGE, "--dtype: '%s' is not f32, f64, f16 or bf16", optarg);
			setdt = 1;
			break;
		case 'z': compress = 1; break;
		case 'Z': compress = 0; break;
		case 'o': out = optarg; break;
		default:
			if (!common_opt(c))
				usage_exit(usage_msg, FL_EUSAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1)
		usage_exit(usage_msg, FL_EUSAGE);
	if (argc == 1)
		in = argv[0];
	if ((rc = fl_reader_open(&r, in, err)))
		die(rc, "%s", err);
	if (!(src = malloc(chunk * 8)) || !(dst = malloc(chunk * 8)))
		die(FL_EFAIL, "out of memory");
	output_open(&o, out);
	while ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
		struct fl_header oh;
		struct fl_writer w;

		n++;
		if (fl_header_copy(&oh, &h))
			die(FL_EFAIL, "out of memory");
		for (size_t i = 0; i < oh.ntensors; i++) {
			if (setdt && fl_dtype_is_float(oh.t[i].dtype))
				oh.t[i].dtype = dt;
			if (compress >= 0)
				oh.t[i].enc = compress ? FL_ZLIB : FL_RAW;
		}
		if ((rc = fl_writer_begin(&w, o.fd, o.name, &oh, err)))
			die(rc, "%s", err);
		for (size_t i = 0; i < h.ntensors; i++) {
			uint64_t left = fl_tensor_numel(&h.t[i]);
			size_t is = fl_dtype_size(h.t[i].dtype), os = fl_dtype_size(oh.t[i].dtype);

			if ((rc = fl_reader_begin(&r, i, err)))
				die(rc, "%s", err);
			while (left) {
				size_t k = left < chunk ? (size_t)left : chunk;
				if ((rc = fl_reader_read(&r, src, k * is, err)))
					die(rc, "%s", err);
				fl_convert(dst, oh.t[i].dtype, src, h.t[i].dtype, k);
				if ((rc = fl_writer_write(&w, dst, k * os, err)))
					die(rc, "%s", err);
				left -= k;
			}
		}
		if ((rc = fl_reader_finish(&r, err)) || (rc = fl_writer_end(&w, err)))
			die(rc, "%s", err);
		fl_header_release(&oh);
		fl_header_release(&h);
	}
	if (rc != FL_EOF)
		die(rc, "%s", err);
	if (n == 0)
		die(FL_EBLOB, "%s: empty: no blob", r.name);
	output_close(&o);
	fl_reader_close(&r);
	free(src);
	free(dst);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
	{ "init", cmd_init },
	{ "info", cmd_info },
	{ "verify", cmd_verify },
	{ "convert", cmd_convert },
	{ "dataset", pack_dataset },
	{ "split", pack_split },
	{ "import", pack_import },
	{ "export", pack_export },
};

int
main(int argc, char **argv)
{
	setprogname(argv[0]);
	if (argc < 2)
		usage_exit(usage_msg, FL_EUSAGE);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		usage_exit(usage_msg, 0);
	if (!strcmp(argv[1], "--version"))
		print_version();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	die(FL_EUSAGE, "'%s' is not a command; see fl-pack --help", argv[1]);
}
