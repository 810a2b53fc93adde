/* pack_interop.c: fl-pack import (safetensors or .npz into a model blob)
 * and fl-pack export (a blob's tensors as safetensors or .npz). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "interop.h"
#include "model.h"
#include "pack.h"

static const char import_usage[] =
    "usage: fl-pack import [--arch SPEC] [--loss softmax-ce|mse] [-o FILE] FILE|-\n";

static const char export_usage[] =
    "usage: fl-pack export --to safetensors|npz [-o FILE] [BLOB|-]\n";

int
pack_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "loss", required_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	const char *spec = NULL, *loss = NULL, *out = NULL, *in, *name;
	char err[FL_ERRLEN], sbuf[4096];
	struct fl_blobmem b;
	struct fl_arch arch;
	struct output o;
	enum fl_format fmt;
	enum fl_loss lo = FL_LOSS_SOFTMAX_CE;
	int c, rc, have_arch = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "a:l:o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'a': spec = optarg; break;
		case 'l': loss = optarg; break;
		case 'o': out = optarg; break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		case 'h': return usage_text(import_usage, 0);
		default: return usage_text(import_usage, FL_EUSAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		return usage_text(import_usage, FL_EUSAGE);
	in = argv[0];
	name = strcmp(in, "-") ? in : "<stdin>";
	if (spec && fl_arch_parse(&arch, spec, err))
		die(FL_EUSAGE, "--arch: %s", err);
	if (loss && fl_loss_parse(loss, &lo))
		die(FL_EUSAGE, "--loss: '%s' is not softmax-ce or mse", loss);
	if ((rc = fl_import_read(&b, in, &fmt, err)))
		die(rc, "%s", err);
	if (!strcmp(b.h.kind, "model")) {
		const char *stored = fl_map_get_str(&b.h.meta, "arch");
		int assumed = 0, from_meta;

		for (size_t i = 0; i < b.h.ntensors; i++)
			if (!fl_dtype_is_float(b.h.t[i].dtype))
				die(FL_EDATA, "%s: tensor %s is %s, not a float type", name,
				    b.h.t[i].name, fl_dtype_name(b.h.t[i].dtype));
		/* A spec string in the metadata: written by fl-pack export. */
		from_meta = !spec && stored && !fl_arch_parse(&arch, stored, NULL);
		fl_map_del(&b.h.meta, "arch");
		if (spec || from_meta) {
			have_arch = 1;
		} else if ((rc = fl_arch_infer(&b.h, &arch, &assumed, err))) {
			warn("%s: no arch: %s; storing the tensors without one (give "
			    "--arch SPEC to train this model)", name, err);
		} else {
			have_arch = 1;
			fl_arch_format(&arch, sbuf, sizeof(sbuf));
			if (assumed)
				warn("%s: inferred arch %s, taking each layer between two "
				    "Linear layers for a ReLU (give --arch SPEC to say otherwise)",
				    name, sbuf);
			else
				note("%s: inferred arch %s", name, sbuf);
		}
		if (have_arch) {
			if (!loss) {
				const char *l = fl_map_get_str(&b.h.meta, "loss");
				if (!l || fl_loss_parse(l, &lo))
					lo = FL_LOSS_SOFTMAX_CE;
			}
			arch.loss = lo;
			if ((rc = fl_arch_match(&b, &arch, err)))
				die(rc, "%s: %s", name, err);
			if (fl_model_set_arch(&b.h.meta, &arch))
				die(FL_EFAIL, "out of memory");
		} else if (loss && fl_map_set_str(&b.h.meta, "loss", fl_loss_name(lo))) {
			die(FL_EFAIL, "out of memory");
		}
		if (fl_meta_stamp(&b.h.meta, "fl-pack"))
			die(FL_EFAIL, "out of memory");
	} else if (spec) {
		die(FL_EDATA, "%s: holds a %s, not a model: --arch does not apply", name,
		    b.h.kind);
	}
	output_open(&o, out);
	if ((rc = fl_blobmem_write(o.fd, o.name, &b, err)))
		die(rc, "%s", err);
	output_close(&o);
	note("%s: %zu tensors from %s", o.name, b.h.ntensors, fl_format_name(fmt));
	fl_blobmem_release(&b);
	return 0;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

int
pack_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	const char *to = NULL, *out = NULL, *in = "-";
	char err[FL_ERRLEN];
	struct fl_reader r;
	struct fl_header h;
	struct output o;
	enum fl_format fmt;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 't': to = optarg; break;
		case 'o': out = optarg; break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		case 'h': return usage_text(export_usage, 0);
		default: return usage_text(export_usage, FL_EUSAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1)
		return usage_text(export_usage, FL_EUSAGE);
	if (argc == 1)
		in = argv[0];
	if (to) {
		if (fl_format_parse(to, &fmt))
			die(FL_EUSAGE, "--to: '%s' is not safetensors or npz", to);
	} else if (out && ends_with(out, ".safetensors")) {
		fmt = FL_FMT_SAFETENSORS;
	} else if (out && ends_with(out, ".npz")) {
		fmt = FL_FMT_NPZ;
	} else {
		die(FL_EUSAGE, "say --to safetensors or --to npz");
	}
	if ((rc = fl_reader_open(&r, in, err)))
		die(rc, "%s", err);
	if ((rc = fl_reader_next(&r, &h, err)) == FL_EOF)
		die(FL_EBLOB, "%s: empty: no blob", r.name);
	if (rc)
		die(rc, "%s", err);
	output_open(&o, out);
	rc = fmt == FL_FMT_NPZ ? fl_npz_write(o.fd, o.name, &r, &h, err) :
	    fl_safetensors_write(o.fd, o.name, &r, &h, err);
	if (!rc)
		rc = fl_reader_finish(&r, err);
	if (rc)
		die(rc, "%s", err);
	output_close(&o);
	fl_header_release(&h);
	fl_reader_close(&r);
	return 0;
}
