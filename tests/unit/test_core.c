/* test_core.c: util, value, rng, arch and model. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "model.h"
#include "rng.h"
#include "unit.h"
#include "util.h"
#include "value.h"

static void
test_util(void)
{
	struct fl_buf b;
	uint64_t v;
	double d;
	char err[FL_ERRLEN];

	fl_buf_init(&b, 8);
	CHECK(fl_buf_add(&b, "12345678", 8) == FL_OK && b.len == 8, "buf fills to its max");
	CHECK(fl_buf_add(&b, "9", 1) == FL_ELIMIT && b.len == 8, "buf refuses past its max");
	fl_buf_release(&b);
	fl_buf_init(&b, 64);
	CHECK(fl_buf_addurl(&b, "aZ09-._~") == FL_OK && b.len == 8 &&
	    !memcmp(b.data, "aZ09-._~", 8), "url escape keeps the unreserved");
	b.len = 0;
	CHECK(fl_buf_addurl(&b, "a b&c=/\xff") == FL_OK && b.len == 18 &&
	    !memcmp(b.data, "a%20b%26c%3D%2F%FF", 18), "url escape encodes the rest");
	fl_buf_release(&b);
	CHECK(fl_parse_size("64M", &v) == 0 && v == 64ULL << 20, "size 64M");
	CHECK(fl_parse_size("1GiB", &v) == 0 && v == 1ULL << 30, "size 1GiB");
	CHECK(fl_parse_size("12x", &v) != 0 && fl_parse_size("", &v) != 0 &&
	    fl_parse_size("99999999999T", &v) != 0, "bad sizes refused");
	CHECK(fl_parse_u64("18446744073709551615", UINT64_MAX, &v) == 0 &&
	    fl_parse_u64("18446744073709551616", UINT64_MAX, &v) != 0 &&
	    fl_parse_u64("-1", UINT64_MAX, &v) != 0 && fl_parse_u64("5", 4, &v) != 0,
	    "u64 bounds");
	CHECK(fl_parse_double("0.25", &d) == 0 && d == 0.25 &&
	    fl_parse_double("nan", &d) != 0 && fl_parse_double("1e999", &d) != 0,
	    "doubles: finite only");
	fl_err(err, FL_EBLOB, "tensor %s: bad", "w");
	fl_err_prefix(err, "%s", "m.blob");
	CHECK(!strcmp(err, "m.blob: tensor w: bad"), "error prefix: '%s'", err);

	char dir[] = "/tmp/flkit-core.XXXXXX", path[64];
	struct fl_atomic a;
	struct stat st;
	mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/out", dir);
	CHECK(fl_atomic_open(&a, path, err) == 0, "atomic open");
	write(a.fd, "hello", 5);
	CHECK(stat(path, &st) != 0, "atomic: nothing at the path before commit");
	CHECK(fl_atomic_commit(&a, err) == 0 && stat(path, &st) == 0 && st.st_size == 5,
	    "atomic: whole file after commit");
	fl_atomic_open(&a, path, err);
	write(a.fd, "x", 1);
	fl_atomic_abort(&a);
	CHECK(stat(path, &st) == 0 && st.st_size == 5, "atomic: abort leaves the old file");
	unlink(path);
	CHECK(rmdir(dir) == 0, "atomic: no temp files left");

	/* a spool: memory up to its bound, then a temp file; whole copies */
	struct fl_spool sp;
	char got[64];
	int pfd[2];
	ssize_t n;
	fl_spool_init(&sp, 8);
	CHECK(fl_spool_write(&sp, "abcd", 4, err) == 0 &&
	    fl_spool_write(&sp, "efgh", 4, err) == 0 && sp.fd < 0 && sp.len == 8,
	    "spool: 8 bytes stay in memory");
	pipe(pfd);
	CHECK(fl_spool_copy(&sp, pfd[1], "pipe", err) == 0 &&
	    (n = read(pfd[0], got, sizeof(got))) == 8 && !memcmp(got, "abcdefgh", 8),
	    "spool: copied from memory");
	CHECK(fl_spool_write(&sp, "ij", 2, err) == 0 && sp.fd >= 0 && sp.len == 10,
	    "spool: the ninth byte moves it to a temp file");
	CHECK(fl_spool_copy(&sp, pfd[1], "pipe", err) == 0 &&
	    (n = read(pfd[0], got, sizeof(got))) == 10 && !memcmp(got, "abcdefghij", 10),
	    "spool: copied from the file, the memory part first");
	CHECK(fl_spool_reset(&sp, err) == 0 && fl_spool_write(&sp, "k", 1, err) == 0 &&
	    fl_spool_copy(&sp, pfd[1], "pipe", err) == 0 &&
	    read(pfd[0], got, sizeof(got)) == 1 && got[0] == 'k', "spool: reset empties it");
	close(pfd[0]);
	CHECK(fl_spool_copy(&sp, pfd[1], "pipe", err) == FL_EIO &&
	    !strncmp(err, "pipe: ", 6), "spool: a closed reader is an error naming it: %s", err);
	close(pfd[1]);
	fl_spool_release(&sp);
	CHECK(fl_tmpfile("/nonexistent-dir", err) < 0 &&
	    strstr(err, "/nonexistent-dir") != NULL, "tmpfile: a bad dir is named: %s", err);

	/* Spool files: in memory up to 16 MiB each and 64 MiB in all, then in
	 * the directory (here one that is not there, so the choice shows). */
	uint64_t inmem = 0;
	char rb[3];
	int sf[5], nmem = 0;
	for (int i = 0; i < 5; i++)
		sf[i] = fl_spoolfile("/nonexistent-dir", 16u << 20, &inmem, err);
	for (int i = 0; i < 5; i++)
		nmem += sf[i] >= 0;
	CHECK(nmem == 4 && sf[4] < 0 && inmem == 64u << 20 &&
	    strstr(err, "/nonexistent-dir") != NULL,
	    "spoolfile: four of 16 MiB in memory, the fifth in the directory: %s", err);
	inmem = 0;
	CHECK(fl_spoolfile("/nonexistent-dir", (16u << 20) + 1, &inmem, err) < 0 && inmem == 0,
	    "spoolfile: over 16 MiB goes to the directory");
	CHECK(sf[0] >= 0 && write(sf[0], "xyz", 3) == 3 && pread(sf[0], rb, 3, 0) == 3 &&
	    !memcmp(rb, "xyz", 3), "spoolfile: a memory spool reads back");
	for (int i = 0; i < 5; i++)
		if (sf[i] >= 0)
			close(sf[i]);

	char u1[37], u2[37];
	fl_uuid(u1);
	fl_uuid(u2);
	CHECK(strlen(u1) == 36 && u1[14] == '4' && strcmp(u1, u2), "uuid v4: %s", u1);
	CHECK(fl_crc32(0, "123456789", 9) == 0xcbf43926, "crc32 check value");
}

static void
test_value(void)
{
	struct fl_val m, v, back, arr;
	struct fl_buf b;
	char err[FL_ERRLEN];
	double d;

	fl_val_map(&m);
	fl_map_set_str(&m, "kind", "model");
	fl_map_set_uint(&m, "samples", 600);
	fl_map_set_float(&m, "lr", 0.5);
	fl_val_int(&v, -3);
	fl_map_set(&m, "neg", &v);
	fl_val_array(&arr);
	fl_val_str(&v, "a\"b\n");
	fl_array_push(&arr, &v);
	fl_map_set(&m, "list", &arr);
	fl_map_set_uint(&m, "samples", 700);	/* replaces */
	CHECK(m.v.a.n == 5, "map keeps one entry per key");
	fl_buf_init(&b, 0);
	CHECK(fl_val_encode(&b, &m) == 0 && fl_val_unpack(&back, b.data, b.len, err) == 0,
	    "msgpack round trip");
	CHECK(!fl_val_get_double(fl_map_get(&back, "samples"), &d) && d == 700 &&
	    !strcmp(fl_map_get_str(&back, "kind"), "model") &&
	    fl_map_get(&back, "neg")->v.i == -3, "values survive");
	b.len = 0;
	fl_val_json(&b, &back);
	CHECK(!strcmp((char *)b.data, "{\"kind\":\"model\",\"samples\":700,\"lr\":0.5,"
	    "\"neg\":-3,\"list\":[\"a\\\"b\\n\"]}"), "json: %s", b.data);
	fl_map_del(&back, "kind");
	CHECK(!fl_map_get(&back, "kind") && back.v.a.n == 4, "delete a key");
	struct fl_val c;
	fl_val_copy(&c, &back);
	fl_val_release(&back);
	CHECK(fl_map_get(&c, "list")->v.a.n == 1, "deep copy outlives the original");
	fl_val_release(&c);
	fl_val_release(&m);
	fl_buf_release(&b);

	/* Untrusted bytes: counts larger than the data, deep nesting, trailing bytes. */
	CHECK(fl_val_unpack(&v, "\xdf\xff\xff\xff\xff", 5, err) == FL_EBLOB, "map count bomb");
	unsigned char deep[64];
	memset(deep, 0x91, sizeof(deep));
	deep[63] = 0x01;
	CHECK(fl_val_unpack(&v, deep, sizeof(deep), err) == FL_ELIMIT, "nesting limit");
	CHECK(fl_val_unpack(&v, "\x01\x02", 2, err) == FL_EBLOB, "stray bytes");
	CHECK(fl_val_unpack(&v, "\xa5" "ab", 3, err) == FL_EBLOB, "truncated string");
	CHECK(fl_val_unpack(&v, "\xc1", 1, err) == FL_EBLOB, "reserved byte");
	/* Found by fuzz_header: maps as keys of maps, nested, took time and
	 * space doubling with the depth to print as JSON. */
	{
		unsigned char nest[2 * 30 + 1];
		struct fl_buf j;
		size_t n = 0;

		for (int i = 0; i < 30; i++)
			nest[n++] = 0x81;	/* a map of one pair, key first */
		nest[n++] = 0xc0;
		for (int i = 0; i < 30; i++)
			nest[n++] = 0x01;	/* each map's value */
		fl_buf_init(&j, 1 << 20);
		CHECK(fl_val_unpack(&v, nest, n, err) == FL_OK &&
		    fl_val_json(&j, &v) == FL_OK && j.len == 11 &&
		    !memcmp(j.data, "{\"<map>\":1}", 11),
		    "map keys nested 30 deep as JSON: %.*s",
		    (int)(j.len < 60 ? j.len : 60), (char *)j.data);
		fl_buf_release(&j);
		fl_val_release(&v);
	}
	/* Found by fuzz_header: msgpack-c's empty strings have a null pointer. */
	CHECK(fl_val_unpack(&v, "\x81\xa0\xc4\x00", 4, err) == FL_OK &&
	    v.v.a.items[0].v.s.len == 0 && !*v.v.a.items[0].v.s.p &&
	    v.v.a.items[1].type == FL_V_BIN && v.v.a.items[1].v.s.len == 0,
	    "empty string and bin");
	fl_val_release(&v);
}

static void
test_rng(void)
{
	struct fl_rng a, b;
	double s = 0, s2 = 0, g = 0;
	int n = 200000, same = 1;
	uint32_t p[10];

	fl_rng_seed(&a, 42);
	fl_rng_seed(&b, 42);
	for (int i = 0; i < 100; i++)
		same &= fl_rng_u64(&a) == fl_rng_u64(&b);
	CHECK(same, "same seed, same stream");
	for (int i = 0; i < n; i++) {
		double x = fl_rng_normal(&a);
		s += x;
		s2 += x * x;
	}
	CHECK(fabs(s / n) < 0.01 && fabs(s2 / n - 1) < 0.02, "normal: mean %g var %g",
	    s / n, s2 / n);
	for (int i = 0; i < n; i++)
		g += fl_rng_gamma(&a, 0.5);
	CHECK(fabs(g / n - 0.5) < 0.01, "gamma(0.5) mean %g", g / n);
	for (int i = 0; i < 10; i++)
		p[i] = (uint32_t)i;
	fl_rng_shuffle(&a, p, 10);
	int sum = 0;
	for (int i = 0; i < 10; i++)
		sum += (int)p[i];
	CHECK(sum == 45, "shuffle is a permutation");
	int hits[3] = { 0 };
	for (int i = 0; i < 30000; i++)
		hits[fl_rng_below(&a, 3)]++;
	CHECK(hits[0] > 9500 && hits[1] > 9500 && hits[2] > 9500, "below(3) uniform");
}

static void
test_arch_model(void)
{
	struct fl_arch a, back;
	struct fl_header h;
	char err[FL_ERRLEN], spec[256];

	CHECK(fl_arch_parse(&a, "784,128,relu,dropout:0.2,10", err) == 0 &&
	    a.nlayers == 4 && a.layer[0].in == 784 && a.layer[3].out == 10 &&
	    a.layer[2].type == FL_DROPOUT && fabsf(a.layer[2].p - 0.2f) < 1e-6f,
	    "parse a spec");
	CHECK(fl_arch_nparams(&a) == 784 * 128 + 128 + 128 * 10 + 10, "parameter count");
	fl_arch_format(&a, spec, sizeof(spec));
	CHECK(!strcmp(spec, "784,128,relu,dropout:0.2,10"), "format: %s", spec);
	CHECK(fl_arch_parse(&a, "4,relu,3,softplus", err) == FL_EUSAGE &&
	    strstr(err, "softplus"), "unknown layer named: %s", err);
	CHECK(fl_arch_parse(&a, "0,3", err) == FL_EUSAGE, "zero width");
	CHECK(fl_arch_parse(&a, "4,dropout:1", err) == FL_EUSAGE, "dropout 1");
	CHECK(fl_arch_parse(&a, "", err) == FL_EUSAGE, "empty spec");

	fl_arch_parse(&a, "3,5,tanh,4,sigmoid,2", err);
	a.loss = FL_LOSS_MSE;
	fl_header_init(&h, "model");
	fl_model_set_arch(&h.meta, &a);
	CHECK(fl_model_arch(&h, &back, err) == 0 && back.nlayers == 5 &&
	    back.loss == FL_LOSS_MSE && back.layer[4].out == 2, "arch through meta");
	struct fl_val *layers = (struct fl_val *)fl_map_get(&h.meta, "arch");
	fl_map_set_str(&layers->v.a.items[1], "type", "swish");
	CHECK(fl_model_arch(&h, &back, err) == FL_EDATA && strstr(err, "swish"),
	    "unknown layer in a model: %s", err);
	fl_header_release(&h);

	/* A model header matches its net; a wrong shape is named. */
	struct fl_net net;
	fl_arch_parse(&a, "4,8,relu,3", err);
	fl_net_init(&net, &a, 1, err);
	fl_model_header(&h, &net);
	CHECK(fl_model_check(&h, &net, err) == 0, "header matches its net");
	h.t[2].shape[0] = 4;
	CHECK(fl_model_check(&h, &net, err) == FL_EDATA &&
	    !strcmp(err, "tensor 2.weight has shape [4,8], expected [3,8]"), "%s", err);
	fl_header_release(&h);
	fl_val_map(&h.meta);
	fl_meta_stamp(&h.meta, "test");
	char id[40];
	snprintf(id, sizeof(id), "%s", fl_map_get_str(&h.meta, "model_id"));
	fl_meta_stamp(&h.meta, "test");
	CHECK(!strcmp(fl_map_get_str(&h.meta, "parent_id"), id) &&
	    strcmp(fl_map_get_str(&h.meta, "model_id"), id), "stamp: parent is the old id");
	fl_val_release(&h.meta);
	fl_net_release(&net);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_util();
	test_value();
	test_rng();
	test_arch_model();
	return unit_done();
}
