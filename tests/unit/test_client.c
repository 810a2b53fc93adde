/* test_client.c: the workers file, pointers, status mapping and the
 * incremental blob check of lib/client.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "unit.h"

static void
test_workers(void)
{
	const char *text =
	    "# my workers\n"
	    "alice http://127.0.0.1:7450/  tokens/alice   # comment\n"
	    "\n"
	    "   bob\thttps://bob.example:8443\n";
	struct fl_workers ws;
	struct fl_endpoint ep;
	char err[FL_ERRLEN];
	int rc;

	rc = fl_workers_parse(&ws, text, strlen(text), "/etc/w", err);
	CHECK(rc == FL_OK, "workers file parses");
	CHECK(ws.n == 2, "two workers");
	CHECK(ws.n == 2 && !strcmp(ws.w[0].url, "http://127.0.0.1:7450"),
	    "trailing slash dropped");
	CHECK(ws.n == 2 && !strcmp(ws.w[0].token_file, "/etc/tokens/alice"),
	    "token file relative to the workers file");
	CHECK(ws.n == 2 && ws.w[1].token_file == NULL && ws.w[1].line == 4,
	    "no token file; line numbers kept");
	rc = fl_endpoint_resolve(&ep, &ws, "carol", err);
	CHECK(rc == FL_ENOTFOUND && strstr(err, "carol") && strstr(err, "/etc/w"),
	    "unknown worker names itself and the file: %s", err);
	rc = fl_endpoint_resolve(&ep, &ws, "bob", err);
	CHECK(rc == FL_OK && !strcmp(ep.url, "https://bob.example:8443") && !ep.token,
	    "bob resolves without a token");
	fl_endpoint_release(&ep);
	rc = fl_endpoint_resolve(&ep, &ws, "http://10.0.0.1:1/", err);
	CHECK(rc == FL_OK && !strcmp(ep.url, "http://10.0.0.1:1") &&
	    !strcmp(ep.name, "http://10.0.0.1:1/"), "a URL works as a worker");
	fl_endpoint_release(&ep);
	rc = fl_endpoint_resolve(&ep, &ws, "alice", err);
	CHECK(rc == FL_EIO && strstr(err, "/etc/tokens/alice"),
	    "missing token file is named: %s", err);
	fl_workers_release(&ws);

	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{ "a http://x\nb\n", "/w:2: expected" },
		{ "a http://x\na http://y\n", "/w:2: worker 'a' already named on line 1" },
		{ "a ftp://x\n", "/w:1: 'ftp://x' is not an http" },
		{ "a/b http://x\n", "/w:1: 'a/b' is not a worker name" },
		{ "a http://x t extra\n", "/w:1: expected" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = fl_workers_parse(&ws, bad[i].text, strlen(bad[i].text), "/w", err);
		CHECK(rc == FL_EBLOB && strstr(err, bad[i].want),
		    "bad workers file %zu: %s", i, rc ? err : "accepted");
	}
}

static void
test_token(void)
{
	char path[] = "/tmp/flkit-token-XXXXXX", text[256], err[FL_ERRLEN];
	struct fl_workers ws;
	struct fl_endpoint ep;
	int fd = mkstemp(path);

	CHECK(fd >= 0, "temp token file");
	dprintf(fd, "# a comment\n\n  s3cret  rest of line\nother\n");
	close(fd);
	snprintf(text, sizeof(text), "w http://127.0.0.1:9 %s\n", path);
	CHECK(fl_workers_parse(&ws, text, strlen(text), "wf", err) == FL_OK, "parse");
	CHECK(fl_endpoint_resolve(&ep, &ws, "w", err) == FL_OK && ep.token &&
	    !strcmp(ep.token, "s3cret"), "first token of the first token line");
	fl_endpoint_release(&ep);
	CHECK(fl_endpoint_resolve(&ep, &ws, "http://127.0.0.1:9", err) == FL_OK &&
	    ep.token && !strcmp(ep.token, "s3cret"), "a URL takes a matching entry's token");
	fl_endpoint_release(&ep);
	fl_workers_release(&ws);
	unlink(path);
}

static void
test_pointers(void)
{
	static const struct {
		const char *s;
		int rc;
		enum fl_ptr_kind kind;
		const char *worker, *name;
	} cases[] = {
		{ "alice", 0, FL_PTR_LATEST, "alice", NULL },
		{ " alice/0123456789abcdef\t", 0, FL_PTR_ID, "alice", "0123456789abcdef" },
		{ "alice/global", 0, FL_PTR_TAG, "alice", "global" },
		{ "alice/", 0, FL_PTR_LATEST, "alice", NULL },
		{ "http://h:1", 0, FL_PTR_LATEST, "http://h:1", NULL },
		{ "http://h:1/", 0, FL_PTR_LATEST, "http://h:1", NULL },
		{ "http://h:1/0123456789abcdef", 0, FL_PTR_ID, "http://h:1", "0123456789abcdef" },
		{ "https://cdn/x/model.blob", 0, FL_PTR_URL, "https://cdn/x/model.blob", NULL },
		{ "alice/../x", FL_EUSAGE, 0, NULL, NULL },
		{ "alice/0123456789ABCDEF", 0, FL_PTR_TAG, "alice", "0123456789ABCDEF" },
		{ "../x", FL_EUSAGE, 0, NULL, NULL },
		{ "", FL_EUSAGE, 0, NULL, NULL },
		{ "al ice", FL_EUSAGE, 0, NULL, NULL },
	};
	char err[FL_ERRLEN], out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fl_ptr p;
		int rc = fl_ptr_parse(&p, cases[i].s, err);
		int ok = rc == cases[i].rc;
		if (ok && !rc)
			ok = p.kind == cases[i].kind && !strcmp(p.worker, cases[i].worker) &&
			    (cases[i].name ? p.name && !strcmp(p.name, cases[i].name) : !p.name);
		CHECK(ok, "pointer '%s'", cases[i].s);
		if (!rc)
			fl_ptr_release(&p);
	}
	struct fl_ptr p;
	fl_ptr_parse(&p, "bob/00000000000000ff", err);
	fl_ptr_format(&p, out, sizeof(out));
	CHECK(!strcmp(out, "bob/00000000000000ff"), "format: %s", out);
	fl_ptr_release(&p);
	CHECK(fl_id_valid("0123456789abcdef") && !fl_id_valid("0123456789abcde") &&
	    !fl_id_valid("0123456789abcdeg") && !fl_id_valid("../../etc/passwd"),
	    "ids are 16 lowercase hex digits");
}

static void
test_status(void)
{
	CHECK(fl_http_status(200, 0) == FL_OK && fl_http_status(204, 0) == FL_OK, "2xx");
	CHECK(fl_http_status(401, 0) == FL_EDENIED && fl_http_status(403, 1) == FL_EDENIED,
	    "401/403 denied");
	CHECK(fl_http_status(404, 0) == FL_ENOTFOUND, "404 not found");
	CHECK(fl_http_status(413, 1) == FL_ELIMIT && fl_http_status(507, 1) == FL_ELIMIT,
	    "413/507 limit");
	CHECK(fl_http_status(400, 1) == FL_EBLOB && fl_http_status(400, 0) == FL_EUSAGE,
	    "400: bad blob when one was sent");
	CHECK(fl_http_status(504, 0) == FL_ETIMEOUT, "504 timeout");
	CHECK(fl_http_status(500, 0) == FL_EFAIL, "500 failure");
	CHECK(fl_curl_status(7 /* CURLE_COULDNT_CONNECT */) == FL_EUNREACH, "refused: unreachable");
	CHECK(fl_curl_status(6 /* CURLE_COULDNT_RESOLVE_HOST */) == FL_EUNREACH, "unresolved");
	CHECK(fl_curl_status(28 /* CURLE_OPERATION_TIMEDOUT */) == FL_ETIMEOUT, "timeout");
	CHECK(fl_curl_status(0) == FL_OK, "ok");
}

/* A small model blob in memory. */
static unsigned char *
make_blob(size_t *len)
{
	struct fl_header h;
	float w[6] = { 1, 2, 3, 4, 5, 6 }, b[3] = { 7, 8, 9 };
	const void *data[2] = { w, b };
	uint64_t s1[2] = { 3, 2 }, s2[1] = { 3 };
	FILE *f = tmpfile();
	unsigned char *buf;
	char err[FL_ERRLEN];
	long n;

	fl_header_init(&h, "model");
	fl_header_add(&h, "0.weight", FL_F32, 2, s1);
	fl_header_add(&h, "0.bias", FL_F32, 1, s2);
	fl_blob_write(fileno(f), "t", &h, data, 0, err);
	fl_header_release(&h);
	n = lseek(fileno(f), 0, SEEK_END);
	buf = malloc((size_t)n);
	pread(fileno(f), buf, (size_t)n, 0);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int
check_bytes(const unsigned char *p, size_t n, size_t step, char *err)
{
	struct fl_check k;
	int rc = FL_OK;

	fl_check_init(&k, "blob");
	for (size_t i = 0; i < n && !rc; i += step)
		rc = fl_check_feed(&k, p + i, n - i < step ? n - i : step, err);
	if (!rc)
		rc = fl_check_end(&k, err);
	fl_check_release(&k);
	return rc;
}

static void
test_check(void)
{
	char err[FL_ERRLEN];
	size_t n;
	unsigned char *b = make_blob(&n), *big;

	CHECK(check_bytes(b, n, 1, err) == FL_OK, "blob checks a byte at a time");
	CHECK(check_bytes(b, n, 7, err) == FL_OK, "7 at a time");
	CHECK(check_bytes(b, n, n, err) == FL_OK, "whole");
	CHECK(check_bytes(b, n - 1, 5, err) == FL_EBLOB && strstr(err, "truncated"),
	    "truncated: %s", err);
	big = calloc(1, n + 1);
	memcpy(big, b, n);
	CHECK(check_bytes(big, n + 1, 3, err) == FL_EBLOB && strstr(err, "after"),
	    "trailing byte: %s", err);
	free(big);
	b[n - 64] ^= 1;	/* the last tensor's data */
	CHECK(check_bytes(b, n, 11, err) == FL_EBLOB && strstr(err, "0.bias") &&
	    strstr(err, "crc"), "corrupt tensor named: %s", err);
	b[n - 64] ^= 1;
	b[n - 1] = 1;	/* padding */
	CHECK(check_bytes(b, n, 11, err) == FL_EBLOB && strstr(err, "padding"),
	    "dirty padding: %s", err);
	b[0] = 'x';
	CHECK(check_bytes(b, n, 11, err) == FL_EBLOB && strstr(err, "magic"),
	    "bad magic: %s", err);
	CHECK(check_bytes(b, 0, 1, err) == FL_EBLOB, "empty: %s", err);
	memcpy(b, FL_MAGIC, FL_MAGIC_LEN);
	memset(b + FL_MAGIC_LEN, 0, 5);	/* a header of 0 bytes, then a byte */
	CHECK(check_bytes(b, FL_MAGIC_LEN + 5, FL_MAGIC_LEN + 5, err) == FL_EBLOB,
	    "zero-length header refused (it used to loop): %s", err);
	free(b);

	FILE *f = tmpfile();
	CHECK(fl_ref_write(fileno(f), "http://h:1", "0123456789abcdef", err) == FL_OK,
	    "reference written");
	n = (size_t)lseek(fileno(f), 0, SEEK_END);
	b = malloc(n);
	pread(fileno(f), b, n, 0);
	fclose(f);
	struct fl_check k;
	fl_check_init(&k, "ref");
	CHECK(fl_check_feed(&k, b, n, err) == FL_OK && k.done &&
	    !strcmp(k.h.kind, "pointer") && k.h.ntensors == 0 &&
	    !strcmp(fl_map_get_str(&k.h.meta, "id"), "0123456789abcdef"),
	    "a reference is a pointer blob with meta worker and id");
	fl_check_release(&k);
	free(b);
}

int
main(void)
{
	test_workers();
	test_token();
	test_pointers();
	test_status();
	test_check();
	return unit_done();
}
