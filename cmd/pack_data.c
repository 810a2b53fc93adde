/* pack_data.c: fl-pack dataset (CSV and IDX files into a dataset blob) and
 * fl-pack split (a dataset among N workers, IID or Dirichlet label skew). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data.h"
#include "pack.h"

static const char dataset_usage[] =
    "usage: fl-pack dataset --csv FILE [--label-column N] [--targets K] [--header] [-o FILE]\n"
    "       fl-pack dataset --idx IMAGES LABELS [--normalize] [-o FILE]\n";

static const char split_usage[] =
    "usage: fl-pack split --parts N [--dirichlet ALPHA] [--seed S] [--prefix P] [--json] [DATASET|-]\n";

static int
parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
pack_dataset(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csv", required_argument, NULL, 'c' },
		{ "idx", required_argument, NULL, 'i' },
		{ "label-column", required_argument, NULL, 'l' },
		{ "targets", required_argument, NULL, 't' },
		{ "header", no_argument, NULL, 'H' },
		{ "normalize", no_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	struct fl_csv_opts co = { .label_column = -1 };
	const char *csv = NULL, *idx = NULL, *out = NULL;
	int normalize = 0, c, rc;
	char err[FL_ERRLEN];
	struct fl_blobmem b;
	struct output o;
	long v;

	optind = 0;
	while ((c = getopt_long(argc, argv, "o:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'c': csv = optarg; break;
		case 'i': idx = optarg; break;
		case 'o': out = optarg; break;
		case 'H': co.header = 1; break;
		case 'n': normalize = 1; break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		case 'h': return usage_text(dataset_usage, 0);
		case 'l':
			if (parse_int(optarg, -FL_CSV_MAX_COLS, FL_CSV_MAX_COLS - 1, &v))
				die(FL_EUSAGE, "--label-column: '%s' is not a column number",
				    optarg);
			co.label_column = (int)v;
			co.label_set = 1;
			break;
		case 't':
			if (parse_int(optarg, 1, FL_CSV_MAX_COLS - 1, &v))
				die(FL_EUSAGE, "--targets: '%s' is not a positive number",
				    optarg);
			co.targets = (int)v;
			break;
		default:
			return usage_text(dataset_usage, FL_EUSAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (!csv == !idx)
		die(FL_EUSAGE, "say either --csv FILE or --idx IMAGES LABELS");
	if (csv && (argc != 0 || normalize))
		return usage_text(dataset_usage, FL_EUSAGE);
	if (idx && (argc != 1 || co.header || co.label_set || co.targets))
		return usage_text(dataset_usage, FL_EUSAGE);
	if (csv)
		rc = fl_csv_read(&b, csv, &co, err);
	else
		rc = fl_idx_read(&b, idx, argv[0], normalize, err);
	if (rc)
		die(rc, "%s", err);
	output_open(&o, out);
	if ((rc = fl_blobmem_write(o.fd, o.name, &b, err)))
		die(rc, "%s", err);
	output_close(&o);
	{
		uint64_t n = 0, k = 0;
		fl_val_get_u64(fl_map_get(&b.h.meta, "samples"), &n);
		fl_val_get_u64(fl_map_get(&b.h.meta, "classes"), &k);
		note("%s: %llu examples, %llu classes", o.name, (unsigned long long)n,
		    (unsigned long long)k);
	}
	fl_blobmem_release(&b);
	return 0;
}

/* Print each part's class histogram, as a table or as JSON. */
static void
print_histograms(char **paths, const uint64_t *hist, const uint64_t *sizes,
    uint32_t parts, uint32_t classes, int json)
{
	size_t w = 4;

	if (json) {
		printf("[");
		for (uint32_t p = 0; p < parts; p++) {
			struct fl_buf s;
			fl_buf_init(&s, 0);
			fl_json_str(&s, paths[p], strlen(paths[p]));
			printf("%s\n  {\"part\": %u, \"file\": %.*s, \"samples\": %llu", p ? "," : "",
			    p + 1, (int)s.len, (const char *)s.data,
			    (unsigned long long)sizes[p]);
			fl_buf_release(&s);
			if (classes) {
				printf(", \"classes\": [");
				for (uint32_t k = 0; k < classes; k++)
					printf("%s%llu", k ? ", " : "",
					    (unsigned long long)hist[(size_t)p * classes + k]);
				printf("]");
			}
			printf("}");
		}
		printf("\n]\n");
		return;
	}
	for (uint32_t p = 0; p < parts; p++)
		if (strlen(paths[p]) > w)
			w = strlen(paths[p]);
	printf("%-*s %8s", (int)w, "file", "samples");
	for (uint32_t k = 0; k < classes; k++)
		printf(" %6u", k);
	printf("\n");
	for (uint32_t p = 0; p < parts; p++) {
		printf("%-*s %8llu", (int)w, paths[p], (unsigned long long)sizes[p]);
		for (uint32_t k = 0; k < classes; k++)
			printf(" %6llu", (unsigned long long)hist[(size_t)p * classes + k]);
		printf("\n");
	}
}

int
pack_split(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "parts", required_argument, NULL, 'n' },
		{ "dirichlet", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	const char *prefix = "part", *in = "-";
	uint64_t parts = 0, seed = 0, n, *hist = NULL, *sizes;
	double alpha = 0;
	int json = 0, c, rc;
	char err[FL_ERRLEN], **paths;
	struct fl_reader r;
	struct fl_header h;
	struct fl_blobmem b;
	struct fl_atomic *tmp;
	uint32_t *part, classes = 0;
	int32_t *y = NULL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:s:p:hqv", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (fl_parse_u64(optarg, FL_MAX_PARTS, &parts) || parts == 0)
				die(FL_EUSAGE, "--parts: '%s' is not a number from 1 to %d",
				    optarg, FL_MAX_PARTS);
			break;
		case 'd':
			if (fl_parse_double(optarg, &alpha) || alpha <= 0)
				die(FL_EUSAGE, "--dirichlet: '%s' is not a positive number",
				    optarg);
			break;
		case 's':
			if (fl_parse_u64(optarg, UINT64_MAX, &seed))
				die(FL_EUSAGE, "--seed: '%s' is not a number", optarg);
			break;
		case 'p': prefix = optarg; break;
		case 'j': json = 1; break;
		case 'q': verbose--; break;
		case 'v': verbose++; break;
		case 'h': return usage_text(split_usage, 0);
		default: return usage_text(split_usage, FL_EUSAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1 || parts == 0)
		return usage_text(split_usage, FL_EUSAGE);
	if (argc == 1)
		in = argv[0];
	if ((rc = fl_reader_open(&r, in, err)))
		die(rc, "%s", err);
	if ((rc = fl_reader_next(&r, &h, err)) == FL_EOF)
		die(FL_EBLOB, "%s: empty: no blob", r.name);
	if (rc)
		die(rc, "%s", err);
	if (strcmp(h.kind, "dataset"))
		die(FL_EDATA, "%s: a %s blob, not a dataset", r.name, h.kind);
	if ((rc = fl_blobmem_read(&b, &r, &h, err)))
		die(rc, "%s", err);
	fl_header_release(&h);
	n = b.h.t[0].ndim ? b.h.t[0].shape[0] : 0;
	{
		int xi = fl_header_find(&b.h, "x");
		if (xi >= 0 && b.h.t[xi].ndim)
			n = b.h.t[xi].shape[0];
	}
	rc = fl_blobmem_labels(&b, &y, &classes, err);
	if (rc && alpha > 0)
		die(rc, "%s: %s", r.name, err);
	if (rc)
		classes = 0;	/* targets: no histogram, IID only */
	if (!(part = malloc(n ? n * sizeof(*part) : 1)) ||
	    !(paths = calloc(parts, sizeof(*paths))) ||
	    !(tmp = calloc(parts, sizeof(*tmp))) ||
	    !(sizes = calloc(parts, sizeof(*sizes))) ||
	    !(hist = calloc(parts * (classes ? classes : 1), sizeof(*hist))))
		die(FL_EFAIL, "out of memory");
	if ((rc = fl_split(part, n, y, classes, (uint32_t)parts, alpha, seed, err)))
		die(rc, "%s: %s", r.name, err);
	for (uint64_t i = 0; i < n; i++) {
		sizes[part[i]]++;
		if (classes)
			hist[(size_t)part[i] * classes + (uint32_t)y[i]]++;
	}
	/* Write every part to a temporary file; rename them all only then. */
	rc = FL_OK;
	for (uint32_t p = 0; p < parts && !rc; p++) {
		struct fl_blobmem pb;
		size_t len = strlen(prefix) + 32;
		if (!(paths[p] = malloc(len)))
			die(FL_EFAIL, "out of memory");
		snprintf(paths[p], len, "%s%u.blob", prefix, p + 1);
		if ((rc = fl_atomic_open(&tmp[p], paths[p], err)))
			break;	/* tmp[p].path is NULL: nothing to abort */
		if (!(rc = fl_blobmem_part(&pb, &b, part, (uint32_t)parts, p, err))) {
			rc = fl_blobmem_write(tmp[p].fd, paths[p], &pb, err);
			fl_blobmem_release(&pb);
		}
	}
	for (uint32_t p = 0; p < parts; p++) {
		if (!tmp[p].path)
			continue;
		if (rc)
			fl_atomic_abort(&tmp[p]);
		else if ((rc = fl_atomic_commit(&tmp[p], err)))
			for (uint32_t q = p + 1; q < parts; q++)
				fl_atomic_abort(&tmp[q]);
	}
	if (rc)
		die(rc, "%s", err);
	if (verbose >= 0 || json)
		print_histograms(paths, hist, sizes, (uint32_t)parts, classes, json);
	finish_stdout();
	for (uint32_t p = 0; p < parts; p++)
		free(paths[p]);
	free(paths);
	free(tmp);
	free(sizes);
	free(hist);
	free(part);
	free(y);
	fl_blobmem_release(&b);
	fl_reader_close(&r);
	return 0;
}
