/* test_blob.c: FLB v1 round trips, streaming, and every corruption the reader
 * must name. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "unit.h"

static char path[] = "/tmp/flkit-test-blob.XXXXXX";

static void
make_header(struct fl_header *h, enum fl_enc enc)
{
	uint64_t s1[2] = { 3, 5 }, s2[1] = { 7 }, s0[1] = { 0 };

	fl_header_init(h, "model");
	fl_map_set_uint(&h->meta, "samples", 42);
	fl_map_set_str(&h->meta, "x-unknown", "kept");
	fl_header_add(h, "0.weight", FL_F32, 2, s1);
	fl_header_add(h, "0.bias", FL_F32, 1, s2);
	fl_header_add(h, "empty", FL_F16, 1, s0);
	for (size_t i = 0; i < h->ntensors; i++)
		h->t[i].enc = enc;
}

static size_t
slurp(const char *p, unsigned char **out)
{
	FILE *f = fopen(p, "rb");
	size_t n;

	*out = malloc(1 << 20);
	n = fread(*out, 1, 1 << 20, f);
	fclose(f);
	return n;
}

static void
spit(const char *p, const unsigned char *b, size_t n)
{
	FILE *f = fopen(p, "wb");

	fwrite(b, 1, n, f);
	fclose(f);
}

/* Read every blob of the file; return the first error code. */
static int
read_all(const char *p, char *err, int *nblobs)
{
	struct fl_reader r;
	struct fl_header h;
	int rc;

	*nblobs = 0;
	if ((rc = fl_reader_open(&r, p, err)))
		return rc;
	while ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
		rc = fl_reader_finish(&r, err);
		fl_header_release(&h);
		if (rc)
			break;
		(*nblobs)++;
	}
	fl_reader_close(&r);
	return rc == FL_EOF ? FL_OK : rc;
}

static void
test_roundtrip(enum fl_enc enc, int streaming, int topipe)
{
	float w[15], b[7], w2[15], b2[7];
	const void *data[3];
	struct fl_header h, g;
	struct fl_reader r;
	char err[FL_ERRLEN] = "";
	int fd, rc, n;
	const char *how = streaming ? (topipe ? "writer to pipe" : "writer to file") : "whole";

	for (int i = 0; i < 15; i++)
		w[i] = (float)i * 0.5f - 3;
	for (int i = 0; i < 7; i++)
		b[i] = (float)i;
	data[0] = w;
	data[1] = b;
	data[2] = NULL;
	make_header(&h, enc);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (!streaming) {
		rc = fl_blob_write(fd, "t", &h, data, 6, err);
		rc = rc || fl_blob_write(fd, "t", &h, data, 6, err);
	} else if (!topipe) {
		struct fl_writer wr;
		rc = fl_writer_begin(&wr, fd, "t", &h, err) ||
		    fl_writer_write(&wr, w, 20, err) || fl_writer_write(&wr, w + 5, 40, err) ||
		    fl_writer_tensor(&wr, b, err) || fl_writer_end(&wr, err);
		rc = rc || fl_writer_begin(&wr, fd, "t", &h, err) ||
		    fl_writer_write(&wr, w, 60, err) || fl_writer_write(&wr, b, 28, err) ||
		    fl_writer_end(&wr, err);
	} else {
		int p[2];
		struct fl_writer wr;
		pipe(p);
		rc = fl_writer_begin(&wr, p[1], "t", &h, err) ||
		    fl_writer_write(&wr, w, 60, err) || fl_writer_tensor(&wr, b, err) ||
		    fl_writer_end(&wr, err);
		close(p[1]);
		unsigned char buf[8192];
		ssize_t k;
		while ((k = read(p[0], buf, sizeof(buf))) > 0)
			write(fd, buf, (size_t)k);
		close(p[0]);
		rc = rc || fl_blob_write(fd, "t", &h, data, 6, err);
	}
	close(fd);
	CHECK(rc == FL_OK, "%s %s: write (%s)", enc ? "zlib" : "raw", how, err);
	fl_reader_open(&r, path, err);
	n = 0;
	while ((rc = fl_reader_next(&r, &g, err)) == FL_OK) {
		n++;
		memset(w2, 0, sizeof(w2));
		rc = fl_reader_tensor(&r, 0, w2, err);
		rc = rc || fl_reader_tensor(&r, 1, b2, err);
		rc = rc || fl_reader_finish(&r, err);
		CHECK(rc == FL_OK && !memcmp(w, w2, sizeof(w)) && !memcmp(b, b2, sizeof(b)),
		    "%s %s: blob %d data round trip (%s)", enc ? "zlib" : "raw", how, n, err);
		CHECK(!strcmp(fl_map_get_str(&g.meta, "x-unknown"), "kept") &&
		    g.ntensors == 3 && g.total % 64 == 0 && g.t[0].enc == enc,
		    "%s %s: header round trip", enc ? "zlib" : "raw", how);
		fl_header_release(&g);
		if (rc)
			break;
	}
	CHECK(rc == FL_EOF && n == 2, "%s %s: two blobs back to back, then EOF (%d, %s)",
	    enc ? "zlib" : "raw", how, n, err);
	fl_reader_close(&r);
	fl_header_release(&h);
}

static void
expect_error(const unsigned char *b, size_t n, int code, const char *needle,
    const char *what)
{
	char err[FL_ERRLEN] = "";
	int rc, nb;

	spit(path, b, n);
	rc = read_all(path, err, &nb);
	CHECK(rc == code && strstr(err, needle), "%s: code %d, message '%s'", what, rc, err);
}

static void
test_corruption(void)
{
	unsigned char *good, *b;
	size_t n;
	float w[15] = { 1 }, bb[7] = { 2 };
	const void *data[3] = { w, bb, NULL };
	struct fl_header h;
	char err[FL_ERRLEN];
	int fd;

	make_header(&h, FL_RAW);
	fd = open(path, O_WRONLY | O_TRUNC);
	fl_blob_write(fd, "t", &h, data, 6, err);
	close(fd);
	fl_header_release(&h);
	n = slurp(path, &good);
	b = malloc(n);

	memcpy(b, good, n);
	b[1] = 'X';
	expect_error(b, n, FL_EBLOB, "bad magic", "bad magic");
	expect_error(good, n - 10, FL_EBLOB, "truncated", "truncated blob");
	expect_error(good, 10, FL_EBLOB, "truncated", "truncated in the prefix");
	expect_error(good, 30, FL_EBLOB, "truncated", "truncated in the header");
	memcpy(b, good, n);
	b[n - 80] ^= 1;	/* inside tensor 0.bias' 28 bytes, padded to 64 */
	expect_error(b, n, FL_EBLOB, "crc mismatch", "flipped data byte");
	memcpy(b, good, n);
	b[n - 1] ^= 1;	/* padding after the last tensor */
	expect_error(b, n, FL_EBLOB, "nonzero padding", "flipped padding byte");
	expect_error((const unsigned char *)"", 0, FL_OK, "", "empty input is a clean EOF");

	/* A header declaring a 1 TiB tensor is refused before allocation. */
	{
		struct fl_header big;
		struct fl_buf hb;
		uint64_t shape[2] = { 1ULL << 20, 1ULL << 18 };
		fl_header_init(&big, "model");
		fl_header_add(&big, "huge", FL_F32, 2, shape);
		fd = open(path, O_WRONLY | O_TRUNC);
		struct fl_writer wr;
		fl_writer_begin(&wr, fd, "t", &big, err);
		fl_writer_abort(&wr);
		close(fd);
		free(b);
		size_t m = slurp(path, &b);
		(void)hb;
		expect_error(b, m, FL_ELIMIT, "exceeds the limit", "1 TiB tensor");
		fl_header_release(&big);
	}
	/* A zlib tensor of 64 bytes declaring 1 MiB (found by fuzz_blob: the
	 * reader allocated the declared size before inflating). */
	{
		struct fl_header z;
		struct fl_limits lim;
		struct fl_buf hb;
		struct fl_val top, ts, t, sh, u;
		char e[FL_ERRLEN] = "";
		int rc;

		fl_val_map(&top);
		fl_map_set_uint(&top, "v", 1);
		fl_map_set_str(&top, "kind", "model");
		fl_val_map(&t);
		fl_map_set_str(&t, "name", "w");
		fl_map_set_str(&t, "dtype", "u8");
		fl_val_array(&sh);
		fl_val_uint(&u, 1 << 20);
		fl_array_push(&sh, &u);
		fl_map_set(&t, "shape", &sh);
		fl_map_set_str(&t, "enc", "zlib");
		fl_map_set_uint(&t, "size", 64);
		fl_map_set_uint(&t, "crc32", 0);
		fl_val_array(&ts);
		fl_array_push(&ts, &t);
		fl_map_set(&top, "tensors", &ts);
		fl_buf_init(&hb, 0);
		fl_val_encode(&hb, &top);
		fl_limits_default(&lim);
		rc = fl_header_decode(&z, hb.data, hb.len, &lim, e);
		CHECK(rc == FL_EBLOB && strstr(e, "too small to inflate"),
		    "zlib tensor declaring 16384 times its size: %s", e);
		fl_buf_release(&hb);
		fl_val_release(&top);
	}
	/* Unknown version. */
	{
		free(b);
		size_t m = slurp(path, &b);
		unsigned char *v = memmem(b, m, "\xa1v\x01", 3);
		if (v)
			v[2] = 2;
		expect_error(b, m, FL_EBLOB, "unknown version 2", "version 2");
		/* A msgpack array claiming 4G items in a few bytes. */
		unsigned char evil[64] = "\x89" "FLB\r\n\x1a\n" "\x05\0\0\0" "\xdd\xff\xff\xff\xff";
		expect_error(evil, 64, FL_EBLOB, "declares", "msgpack count bomb");
	}
	free(b);
	free(good);
}

/* Headers only: skip tensors and release each header before the next. */
static void
test_skip(void)
{
	struct fl_reader r;
	struct fl_header h;
	char err[FL_ERRLEN] = "";
	int rc, n = 0;

	test_roundtrip(FL_RAW, 0, 0);	/* leaves two blobs in path */
	fl_reader_open(&r, path, err);
	while ((rc = fl_reader_next(&r, &h, err)) == FL_OK && n < 5) {
		n++;
		fl_header_release(&h);
	}
	fl_reader_close(&r);
	CHECK(rc == FL_EOF && n == 2, "headers only: 2 blobs then EOF (%d: %s)", n, err);
}

/* fl_reader_offset names where each blob begins; fl_reader_open_at goes
 * straight there, as fl-avg's lanes do for the blobs of one file. */
static void
test_offset(void)
{
	struct fl_reader r;
	struct fl_header h;
	uint64_t off[2] = { 0, 0 };
	float w2[15], b2[7];
	char err[FL_ERRLEN] = "";
	int rc, n = 0, p[2];

	test_roundtrip(FL_ZLIB, 1, 0);	/* two compressed blobs back to back */
	fl_reader_open(&r, path, err);
	while ((rc = fl_reader_next(&r, &h, err)) == FL_OK && n < 2) {
		off[n++] = fl_reader_offset(&r);
		fl_header_release(&h);
	}
	fl_reader_close(&r);
	CHECK(n == 2 && off[0] == 0 && off[1] > 0, "offsets of two blobs: %llu, %llu",
	    (unsigned long long)off[0], (unsigned long long)off[1]);
	rc = fl_reader_open_at(&r, path, off[1], "second", err);
	rc = rc || fl_reader_next(&r, &h, err);
	CHECK(rc == FL_OK && fl_reader_offset(&r) == off[1],
	    "open at the second blob: its header, at its offset (%s)", err);
	rc = rc || fl_reader_tensor(&r, 0, w2, err) || fl_reader_tensor(&r, 1, b2, err) ||
	    fl_reader_finish(&r, err);
	CHECK(rc == FL_OK && w2[1] == -2.5f && b2[6] == 6,
	    "open at the second blob: its tensors (%s)", err);
	fl_header_release(&h);
	CHECK(fl_reader_next(&r, &h, err) == FL_EOF, "then the end of the file");
	fl_reader_close(&r);
	if ((rc = fl_reader_open_at(&r, path, off[1] + 8, "second", err)) == FL_OK)
		rc = fl_reader_next(&r, &h, err);
	CHECK(rc == FL_EBLOB && strstr(err, "second") && strstr(err, "magic"),
	    "open at a byte where no blob begins: '%s'", err);
	fl_reader_close(&r);
	CHECK(fl_reader_open_at(&r, "/nonexistent/x.blob", 0, "x", err) == FL_ENOTFOUND,
	    "open at: a missing file (%s)", err);
	pipe(p);
	fl_reader_fd(&r, p[0], "pipe");
	CHECK(fl_reader_offset(&r) == UINT64_MAX, "a pipe has no offsets");
	fl_reader_close(&r);
	close(p[0]);
	close(p[1]);
}

/* Map the first tensor, then read the second through the stream. */
static void
test_map(void)
{
	struct fl_reader r;
	struct fl_header h;
	struct fl_map m;
	float b[7];
	char err[FL_ERRLEN] = "";
	int rc, n = 0;

	test_roundtrip(FL_RAW, 0, 0);
	fl_reader_open(&r, path, err);
	while ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
		n++;
		rc = fl_reader_map(&r, 0, &m, err);
		CHECK(rc == FL_OK && m.size == 60 && fl_crc32(0, m.data, 60) == h.t[0].crc &&
		    ((const float *)m.data)[1] == -2.5f, "blob %d: tensor 0 mapped (%s)", n, err);
		fl_map_release(&m);
		rc = fl_reader_tensor(&r, 1, b, err);
		CHECK(rc == FL_OK && b[6] == 6, "blob %d: tensor 1 read after the map (%s)", n, err);
		rc = fl_reader_finish(&r, err);
		fl_header_release(&h);
	}
	CHECK(rc == FL_EOF && n == 2, "map: both blobs");
	fl_reader_close(&r);
	/* A pipe can't be mapped: FL_EFAIL, and the reader is unharmed. */
	int p[2];
	pipe(p);
	if (fork() == 0) {
		int fd = open(path, O_RDONLY);
		char buf[4096];
		ssize_t k;
		while ((k = read(fd, buf, sizeof(buf))) > 0)
			write(p[1], buf, (size_t)k);
		_exit(0);
	}
	close(p[1]);
	fl_reader_fd(&r, p[0], "pipe");
	rc = fl_reader_next(&r, &h, err);
	CHECK(rc == FL_OK && fl_reader_map(&r, 0, &m, err) == FL_EFAIL &&
	    fl_reader_finish(&r, err) == FL_OK, "pipe: not mappable, still readable");
	fl_header_release(&h);
	fl_reader_close(&r);
	close(p[0]);
}

/* Same bytes through fl_writer_write_crc (pieces with their CRCs, one
 * spanning two tensors) after fl_writer_reserve as through fl_writer_write;
 * the reservation leaves the file's size at the blob's end. */
static void
test_writer_crc(void)
{
	float w[15], b[7];
	struct fl_header h;
	struct fl_writer wr;
	char err[FL_ERRLEN] = "", p2[] = "/tmp/flkit-test-blob2.XXXXXX";
	unsigned char *x, *y;
	size_t nx, ny;
	int fd, fd2, rc, nb = 0;
	off_t end;

	for (int i = 0; i < 15; i++)
		w[i] = (float)i * 0.25f - 1;
	for (int i = 0; i < 7; i++)
		b[i] = (float)-i;
	make_header(&h, FL_RAW);
	fd = open(path, O_WRONLY | O_TRUNC);
	rc = fl_writer_begin(&wr, fd, "t", &h, err) ||
	    fl_writer_write(&wr, w, 60, err) || fl_writer_write(&wr, b, 28, err) ||
	    fl_writer_end(&wr, err);
	close(fd);
	fd2 = mkstemp(p2);
	if (!rc) {
		rc = fl_writer_begin(&wr, fd2, "t", &h, err);
		if (!rc)
			fl_writer_reserve(&wr);
		/* 0.weight in two pieces, then one piece across into 0.bias */
		rc = rc || fl_writer_write_crc(&wr, w, 20, fl_crc32(0, w, 20), err) ||
		    fl_writer_write_crc(&wr, w + 5, 32, fl_crc32(0, w + 5, 32), err);
		unsigned char span[8 + 28];
		memcpy(span, w + 13, 8);
		memcpy(span + 8, b, 28);
		rc = rc || fl_writer_write_crc(&wr, span, sizeof(span), 12345, err) ||
		    fl_writer_end(&wr, err);
	}
	end = lseek(fd2, 0, SEEK_END);
	close(fd2);
	nx = slurp(path, &x);
	ny = slurp(p2, &y);
	CHECK(rc == FL_OK && nx == ny && !memcmp(x, y, nx) && end == (off_t)ny,
	    "write_crc after reserve: the same blob as write, size %lld (%s)",
	    (long long)end, err);
	CHECK(read_all(p2, err, &nb) == FL_OK && nb == 1, "write_crc: blob reads back (%s)",
	    err);
	free(x);
	free(y);
	unlink(p2);
	fl_header_release(&h);
}

/* Many tensors that go through the read-ahead buffer (each below the size
 * read straight into the caller's memory), from a file and from a pipe:
 * the buffer starts small and grows as it refills. */
static void
test_buffered(void)
{
	enum { NT = 24, NE = 30000 };	/* 120 KB each */
	struct fl_header h, g;
	struct fl_writer wr;
	struct fl_reader r;
	float *x = malloc(NE * sizeof(float)), *y = malloc(NE * sizeof(float));
	char err[FL_ERRLEN] = "", name[16];
	uint64_t shape[1] = { NE };
	int fd, rc, bad = 0;

	fl_header_init(&h, "model");
	for (int t = 0; t < NT; t++) {
		snprintf(name, sizeof(name), "t%d", t);
		fl_header_add(&h, name, FL_F32, 1, shape);
	}
	fd = open(path, O_WRONLY | O_TRUNC);
	rc = fl_writer_begin(&wr, fd, "t", &h, err);
	for (int t = 0; !rc && t < NT; t++) {
		for (int i = 0; i < NE; i++)
			x[i] = (float)(t * NE + i);
		rc = fl_writer_tensor(&wr, x, err);
	}
	rc = rc || fl_writer_end(&wr, err);
	close(fd);
	CHECK(rc == FL_OK, "buffered: %d tensors written (%s)", NT, err);
	for (int pipe_ = 0; pipe_ < 2; pipe_++) {
		int p[2] = { -1, -1 };
		if (pipe_) {
			pipe(p);
			if (fork() == 0) {	/* in pieces of 4 KiB */
				int in = open(path, O_RDONLY);
				char buf[4096];
				ssize_t k;
				close(p[0]);
				while ((k = read(in, buf, sizeof(buf))) > 0)
					write(p[1], buf, (size_t)k);
				_exit(0);
			}
			close(p[1]);
			fl_reader_fd(&r, p[0], "pipe");
		} else {
			fl_reader_open(&r, path, err);
		}
		rc = fl_reader_next(&r, &g, err);
		for (int t = 0; !rc && t < NT; t++) {
			rc = fl_reader_tensor(&r, (size_t)t, y, err);
			for (int i = 0; !rc && i < NE; i++)
				bad |= y[i] != (float)(t * NE + i);
		}
		rc = rc || fl_reader_finish(&r, err);
		CHECK(rc == FL_OK && !bad, "buffered from a %s: every tensor back (%s)",
		    pipe_ ? "pipe" : "file", err);
		fl_header_release(&g);
		fl_reader_close(&r);
		if (pipe_)
			close(p[0]);
	}
	free(x);
	free(y);
	fl_header_release(&h);
}

static void
test_half(void)
{
	float in[6] = { 0, 1, -2.5f, 65504, 1e-7f, 3.14159f }, out[6];
	uint16_t h[6];

	fl_convert(h, FL_F16, in, FL_F32, 6);
	fl_convert(out, FL_F32, h, FL_F16, 6);
	CHECK(out[0] == 0 && out[1] == 1 && out[2] == -2.5f && out[3] == 65504 &&
	    fabsf(out[5] - 3.14159f) < 2e-3f && fabsf(out[4] - 1e-7f) < 1e-7f,
	    "f16 round trip");
	fl_convert(h, FL_BF16, in, FL_F32, 6);
	fl_convert(out, FL_F32, h, FL_BF16, 6);
	CHECK(out[1] == 1 && out[2] == -2.5f && fabsf(out[5] - 3.14159f) < 2e-2f,
	    "bf16 round trip");
}

int
main(void)
{
	int fd = mkstemp(path);

	close(fd);
	test_roundtrip(FL_RAW, 0, 0);
	test_roundtrip(FL_ZLIB, 0, 0);
	test_roundtrip(FL_RAW, 1, 0);
	test_roundtrip(FL_ZLIB, 1, 0);
	test_roundtrip(FL_RAW, 1, 1);
	test_roundtrip(FL_ZLIB, 1, 1);
	test_corruption();
	test_half();
	test_skip();
	test_offset();
	test_map();
	test_writer_crc();
	test_buffered();
	unlink(path);
	return unit_done();
}
