/* fl-send: store a blob or a reference on a worker, send a custom message,
 * or upload a blob to any HTTP(S) server. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "common.h"

#define MAX_DATA (64u << 20)

static const char usage_msg[] =
	    "usage: fl-send [--tag TAG] WORKER [BLOB|-]\n"
	    "       fl-send [--tag TAG] WORKER --ref POINTER|-\n"
	    "       fl-send --message NAME WORKER [--data FILE|-]\n"
	    "       fl-send --put URL [BLOB|-]\n"
	    "Network: --connect-timeout SECS, --timeout SECS, --retry N, --cacert FILE,\n"
	    "         --insecure. Also -q (--quiet), -v (--verbose), -h (--help), --version.\n";


/* The input blob: a file, or standard input (never a terminal). */
static int
open_input(const char *path, const char **name)
{
	int fd;

	if (!path || !strcmp(path, "-")) {
		if (isatty(0))
			die(FL_EUSAGE, "refusing to read a blob from a terminal "
			    "(give a file or redirect standard input)");
		*name = "<stdin>";
		return 0;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die(FL_EIO, "%s:", path);
	*name = path;
	return fd;
}

static void
read_all(const char *path, struct fl_buf *b)
{
	char buf[65536];
	int fd = 0;
	ssize_t n;

	if (strcmp(path, "-") && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die(FL_EIO, "%s:", path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fl_buf_add(b, buf, (size_t)n))
			die(FL_ELIMIT, "%s: larger than %u bytes", path, MAX_DATA);
	if (n < 0)
		die(FL_EIO, "%s:", path);
	if (fd)
		close(fd);
}

/* Print WORKER/ID for what the worker acknowledged. */
static void
print_stored(const char *worker, const struct fl_val *reply)
{
	const char *id = fl_map_get_str(reply, "id");
	size_t n = strlen(worker);

	if (!id || !fl_id_valid(id))
		die(FL_EFAIL, "%s: the reply names no valid id", worker);
	while (n > 1 && fl_is_url(worker) && worker[n - 1] == '/')
		n--;
	printf("%.*s/%s\n", (int)n, worker, id);
}

int
main(int argc, char **argv)
{
	enum { O_TAG = 256, O_REF, O_MESSAGE, O_DATA, O_PUT, O_VERSION };
	static const struct option opts[] = {
		{ "tag", required_argument, NULL, O_TAG },
		{ "ref", required_argument, NULL, O_REF },
		{ "message", required_argument, NULL, O_MESSAGE },
		{ "data", required_argument, NULL, O_DATA },
		{ "put", required_argument, NULL, O_PUT },
		FL_CLIENT_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	const char *tag = NULL, *ref = NULL, *message = NULL, *data = NULL, *put = NULL;
	struct fl_client_opts co = { .retries = -1 };
	struct fl_client cl;
	struct fl_endpoint ep;
	struct fl_val reply;
	char err[FL_ERRLEN], path[128];
	const char *name;
	int c, rc, fd;

	setprogname(argv[0]);
	while ((c = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
		switch (c) {
		case O_TAG: tag = optarg; break;
		case O_REF: ref = optarg; break;
		case O_MESSAGE: message = optarg; break;
		case O_DATA: data = optarg; break;
		case O_PUT: put = optarg; break;
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
	if ((!!ref + !!message + !!put) > 1)
		die(FL_EUSAGE, "--ref, --message and --put exclude each other");
	if (data && !message)
		die(FL_EUSAGE, "--data goes with --message");
	if (tag && (message || put))
		die(FL_EUSAGE, "--tag goes with storing on a worker");
	if (tag && !fl_tag_valid(tag))
		die(FL_EUSAGE, "--tag: '%s' is not a tag (letters, digits, '.', '_', '-')", tag);
	if (put ? argc > 1 : (argc < 1 || argc > ((ref || message) ? 1 : 2)))
		usage_exit(usage_msg, FL_EUSAGE);
	if (put && !fl_is_url(put))
		die(FL_EUSAGE, "--put: '%s' is not an http:// or https:// URL", put);
	if (co.insecure)
		warn("--insecure: TLS certificates are NOT verified; anyone on the path "
		    "can read and change what is sent");
	co.progress = progress_bytes;
	if ((rc = fl_client_init(&cl, &co, err)))
		die(rc, "%s", err);

	if (put) {
		fd = open_input(argc ? argv[0] : NULL, &name);
		rc = fl_upload(&cl, NULL, put, NULL, fd, name, NULL, err);
		progress_done();
		if (rc)
			die(rc, "%s", err);
		note("%s: stored at %s", name, put);
		if (fd)
			close(fd);
		fl_client_release(&cl);
		finish_stdout();
		return 0;
	}
	if ((rc = fl_endpoint_resolve(&ep, &cl.ws, argv[0], err)))
		die(rc, "%s", err);
	if (message) {
		struct fl_buf in, out;

		fl_buf_init(&in, MAX_DATA);
		fl_buf_init(&out, MAX_DATA);
		if (data)
			read_all(data, &in);
		rc = fl_message(&cl, &ep, message, in.data, in.len, &out, err);
		if (rc)
			die(rc, "%s", err);
		if (out.len)
			fwrite(out.data, 1, out.len, stdout);
		fl_buf_release(&in);
		fl_buf_release(&out);
	} else {
		if (tag)
			snprintf(path, sizeof(path), "/v1/objects?tag=%s", tag);
		else
			snprintf(path, sizeof(path), "/v1/objects");
		if (ref) {
			struct fl_endpoint target;
			struct fl_ptr p;
			char id[FL_ID_LEN + 1];
			FILE *tmp;

			rc = !strcmp(ref, "-") ? fl_ptr_read(&p, 0, err) :
			    fl_ptr_parse(&p, ref, err);
			if (rc)
				die(rc, "--ref: %s", err);
			if (p.kind == FL_PTR_URL)
				die(FL_EUSAGE, "--ref: %s: a reference names a worker's object, "
				    "not a URL", p.worker);
			if ((rc = fl_endpoint_resolve(&target, &cl.ws, p.worker, err)) ||
			    (rc = fl_resolve_id(&cl, &target, &p, id, err)))
				die(rc, "%s", err);
			if (!(tmp = tmpfile()))
				die(FL_EIO, "temporary file:");
			fd = fileno(tmp);
			if ((rc = fl_ref_write(fd, target.url, id, err)))
				die(rc, "%s", err);
			if (lseek(fd, 0, SEEK_SET) < 0)
				die(FL_EIO, "temporary file:");
			rc = fl_upload(&cl, &ep, path, NULL, fd, "reference", &reply, err);
			fclose(tmp);
			fl_endpoint_release(&target);
			fl_ptr_release(&p);
		} else {
			fd = open_input(argc > 1 ? argv[1] : NULL, &name);
			rc = fl_upload(&cl, &ep, path, NULL, fd, name, &reply, err);
			if (fd)
				close(fd);
		}
		progress_done();
		if (rc)
			die(rc, "%s", err);
		print_stored(argv[0], &reply);
		fl_val_release(&reply);
	}
	fl_endpoint_release(&ep);
	fl_client_release(&cl);
	finish_stdout();
	return 0;
}
