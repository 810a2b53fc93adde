/* test_interop.c: safetensors and .npz against PyTorch's and numpy's files,
 * round trips through blobs, and the corruptions the readers must name. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "interop.h"
#include "model.h"
#include "unit.h"

#define FIX "tests/fixtures/"

static char dir[] = "/tmp/flkit-test-interop.XXXXXX";
static char err[FL_ERRLEN];

static unsigned char *
slurp(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	unsigned char *b = malloc(1 << 20);

	*n = 0;
	if (f) {
		*n = fread(b, 1, 1 << 20, f);
		fclose(f);
	}
	return b;
}

/* Reference values "tensor init.NAME dims... \n values" of mlp_ce.txt. */
static int
golden(const char *name, float *out, size_t max)
{
	FILE *f = fopen(FIX "golden/mlp_ce.txt", "r");
	char line[1 << 14], want[64];
	size_t n = 0;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "tensor init.%s ", name);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		if (!fgets(line, sizeof(line), f))
			break;
		for (char *s = line, *e; n < max; s = e) {
			float v = strtof(s, &e);
			if (e == s)
				break;
			out[n++] = v;
		}
		break;
	}
	fclose(f);
	return (int)n;
}

static void
check_golden(const struct fl_blobmem *b, const char *what)
{
	static const char *names[] = { "0.weight", "0.bias", "2.weight", "2.bias" };
	float ref[64];

	CHECK(b->h.ntensors == 4, "%s: 4 tensors", what);
	for (int i = 0; i < 4; i++) {
		int j = fl_header_find(&b->h, names[i]);
		int n = golden(names[i], ref, 64);
		CHECK(j >= 0 && n > 0 && (uint64_t)n == fl_tensor_numel(&b->h.t[j]) &&
		    b->h.t[j].dtype == FL_F32 &&
		    unit_maxrel((const float *)b->data[j], ref, (size_t)n, 1e-6) == 0,
		    "%s: %s equals PyTorch's", what, names[i]);
	}
}

static void
test_read_golden(void)
{
	struct fl_blobmem b;
	struct fl_arch a;
	enum fl_format f;
	char spec[64];
	int assumed;

	CHECK(fl_import_read(&b, FIX "mlp_ce.safetensors", &f, err) == FL_OK &&
	    f == FL_FMT_SAFETENSORS, "safetensors: read golden: %s", err);
	check_golden(&b, "safetensors");
	CHECK(!strcmp(b.h.t[0].name, "0.weight") && !strcmp(b.h.t[3].name, "2.bias"),
	    "safetensors: tensors in data order");
	CHECK(fl_arch_infer(&b.h, &a, &assumed, err) == FL_OK && assumed == 1 &&
	    !fl_arch_format(&a, spec, sizeof(spec)) && !strcmp(spec, "4,8,relu,3"),
	    "infer: 4,8,relu,3 with one ReLU assumed");
	fl_blobmem_release(&b);

	CHECK(fl_import_read(&b, FIX "mlp_ce.npz", &f, err) == FL_OK && f == FL_FMT_NPZ,
	    "npz: read golden (numpy.savez, zip64 extra): %s", err);
	check_golden(&b, "npz");
	fl_blobmem_release(&b);
	CHECK(fl_import_read(&b, FIX "mlp_ce_compressed.npz", &f, err) == FL_OK,
	    "npz: read numpy.savez_compressed: %s", err);
	check_golden(&b, "npz deflated");
	fl_blobmem_release(&b);
	CHECK(fl_import_read(&b, FIX "ints.npz", &f, err) == FL_OK &&
	    b.h.t[0].dtype == FL_I32 && b.h.t[0].shape[1] == 3 &&
	    ((int32_t *)b.data[0])[5] == 5, "npz: int32 array read as i32");
	fl_blobmem_release(&b);
}

static void
test_arch(void)
{
	struct fl_blobmem b;
	struct fl_arch a;
	enum fl_format f;
	int assumed;
	uint64_t s2[2] = { 3, 4 }, s1[1] = { 3 };

	fl_import_read(&b, FIX "mlp_ce.safetensors", &f, err);
	fl_arch_parse(&a, "4,8,relu,3", err);
	/* Put the tensors out of order; matching restores state-dict order. */
	{
		struct fl_tensor t = b.h.t[0];
		unsigned char *d = b.data[0];
		b.h.t[0] = b.h.t[3];
		b.data[0] = b.data[3];
		b.h.t[3] = t;
		b.data[3] = d;
	}
	CHECK(fl_arch_match(&b, &a, err) == FL_OK && !strcmp(b.h.t[0].name, "0.weight") &&
	    !strcmp(b.h.t[3].name, "2.bias"), "match: reorders to state-dict order");
	check_golden(&b, "match");
	fl_arch_parse(&a, "4,9,relu,3", err);
	CHECK(fl_arch_match(&b, &a, err) == FL_EDATA && strstr(err, "0.weight") &&
	    strstr(err, "[8,4]") && strstr(err, "[9,4]"), "match: shape named: %s", err);
	fl_arch_parse(&a, "4,8,relu,3,relu,5", err);
	CHECK(fl_arch_match(&b, &a, err) == FL_EDATA && strstr(err, "4.weight"),
	    "match: missing tensor: %s", err);
	fl_arch_parse(&a, "4,8", err);
	CHECK(fl_arch_match(&b, &a, err) == FL_EDATA && strstr(err, "not in the arch"),
	    "match: extra tensor: %s", err);
	fl_blobmem_release(&b);

	fl_blobmem_init(&b, "model");
	fl_blobmem_add(&b, "0.weight", FL_F32, 2, s2, NULL, err);
	fl_blobmem_add(&b, "0.bias", FL_F32, 1, s1, NULL, err);
	fl_blobmem_add(&b, "encoder.w", FL_F32, 1, s1, NULL, err);
	CHECK(fl_arch_infer(&b.h, &a, &assumed, err) == FL_EDATA &&
	    strstr(err, "encoder.w"), "infer: other names: %s", err);
	fl_blobmem_release(&b);
	fl_blobmem_init(&b, "model");
	fl_blobmem_add(&b, "0.weight", FL_F32, 2, s2, NULL, err);
	CHECK(fl_arch_infer(&b.h, &a, &assumed, err) == FL_EDATA && strstr(err, "bias"),
	    "infer: weight without bias: %s", err);
	fl_blobmem_release(&b);
	fl_blobmem_init(&b, "model");
	fl_blobmem_add(&b, "0.weight", FL_F32, 2, s2, NULL, err);
	fl_blobmem_add(&b, "0.bias", FL_F32, 1, s1, NULL, err);
	fl_blobmem_add(&b, "1.weight", FL_F32, 2, s2, NULL, err);
	fl_blobmem_add(&b, "1.bias", FL_F32, 1, s1, NULL, err);
	CHECK(fl_arch_infer(&b.h, &a, &assumed, err) == FL_EDATA &&
	    strstr(err, "takes 4 inputs"), "infer: widths disagree: %s", err);
	fl_blobmem_release(&b);
}

/* Write b as a blob file, export it with fn and parse the result back. */
static int
export_back(const struct fl_blobmem *b, enum fl_format f, struct fl_blobmem *out,
    unsigned char **bytes, size_t *n)
{
	char p[256], q[256];
	struct fl_reader r;
	struct fl_header h;
	int fd, rc;

	snprintf(p, sizeof(p), "%s/in.blob", dir);
	snprintf(q, sizeof(q), "%s/out", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	fl_blobmem_write(fd, p, b, err);
	close(fd);
	fl_reader_open(&r, p, err);
	fl_reader_next(&r, &h, err);
	fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = f == FL_FMT_NPZ ? fl_npz_write(fd, q, &r, &h, err) :
	    fl_safetensors_write(fd, q, &r, &h, err);
	close(fd);
	fl_header_release(&h);
	fl_reader_close(&r);
	if (rc)
		return rc;
	*bytes = slurp(q, n);
	return f == FL_FMT_NPZ ? fl_npz_parse(out, *bytes, *n, "out", err) :
	    fl_safetensors_parse(out, *bytes, *n, "out", err);
}

static void
test_round_trip(void)
{
	struct fl_blobmem b, o;
	unsigned char *bytes = NULL;
	size_t n;
	uint64_t s[2] = { 2, 3 }, u = 0;
	enum fl_format f;
	int i;

	fl_import_read(&b, FIX "mlp_ce.safetensors", &f, err);
	fl_map_set_uint(&b.h.meta, "samples", 600);
	fl_map_set_str(&b.h.meta, "client", "alice");
	{
		struct fl_arch a;
		fl_arch_parse(&a, "4,8,relu,3", err);
		fl_model_set_arch(&b.h.meta, &a);
	}
	/* Every dtype both formats hold. */
	i = fl_blobmem_add(&b, "u8", FL_U8, 2, s, NULL, err);
	b.data[i][5] = 200;
	i = fl_blobmem_add(&b, "i32", FL_I32, 1, s, NULL, err);
	((int32_t *)b.data[i])[1] = -7;
	i = fl_blobmem_add(&b, "f64", FL_F64, 2, s, NULL, err);
	((double *)b.data[i])[4] = 1e-300;
	i = fl_blobmem_add(&b, "bf16", FL_BF16, 1, s, NULL, err);
	((uint16_t *)b.data[i])[0] = fl_float_to_bf16(1.5f);
	i = fl_blobmem_add(&b, "scalar", FL_F32, 0, s, NULL, err);
	((float *)b.data[i])[0] = 3.25f;

	for (int k = 0; k < 2; k++) {
		enum fl_format fmt = k ? FL_FMT_NPZ : FL_FMT_SAFETENSORS;
		const char *what = fl_format_name(fmt);
		int ok = 1;

		CHECK(export_back(&b, fmt, &o, &bytes, &n) == FL_OK, "%s: export and read "
		    "back: %s", what, err);
		CHECK(o.h.ntensors == b.h.ntensors, "%s: every tensor", what);
		for (size_t t = 0; t < b.h.ntensors && o.h.ntensors == b.h.ntensors; t++) {
			int j = fl_header_find(&o.h, b.h.t[t].name);
			char s1[64], s2[64];
			if (j < 0) {
				ok = 0;
				continue;
			}
			fl_shape_str(&b.h.t[t], s1, sizeof(s1));
			fl_shape_str(&o.h.t[j], s2, sizeof(s2));
			if (strcmp(s1, s2))
				ok = 0;
			if (b.h.t[t].dtype == FL_BF16 && fmt == FL_FMT_NPZ) {
				ok &= o.h.t[j].dtype == FL_F32 && ((float *)o.data[j])[0] == 1.5f;
				continue;
			}
			ok &= o.h.t[j].dtype == b.h.t[t].dtype &&
			    !memcmp(o.data[j], b.data[t], fl_tensor_nbytes(&b.h.t[t]));
		}
		CHECK(ok, "%s: names, dtypes, shapes and bytes survive", what);
		if (fmt == FL_FMT_SAFETENSORS) {
			CHECK(!fl_val_get_u64(fl_map_get(&o.h.meta, "samples"), &u) && u == 600,
			    "safetensors: numeric meta comes back a number");
			CHECK(fl_map_get_str(&o.h.meta, "client") &&
			    !strcmp(fl_map_get_str(&o.h.meta, "client"), "alice") &&
			    fl_map_get_str(&o.h.meta, "arch") &&
			    !strcmp(fl_map_get_str(&o.h.meta, "arch"), "4,8,relu,3") &&
			    !fl_map_get(&o.h.meta, "format") && !strcmp(o.h.kind, "model"),
			    "safetensors: meta, arch spec and kind in __metadata__");
		} else {
			/* Fixed date, stored entries: byte-identical on a rerun. */
			CHECK(bytes[8] == 0 && bytes[12] == 0x21, "npz: stored, dated 1980");
		}
		free(bytes);
		fl_blobmem_release(&o);
	}
	fl_blobmem_release(&b);
}

/* A safetensors file from a header text and data bytes. */
static int
st(const char *json, size_t dlen, uint64_t hlen_override)
{
	static unsigned char buf[4096];
	struct fl_blobmem b;
	size_t hl = strlen(json);
	uint64_t hlen = hlen_override ? hlen_override : hl;
	int rc;

	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(hlen >> (8 * i));
	memcpy(buf + 8, json, hl);
	memset(buf + 8 + hl, 0, dlen);
	err[0] = 0;
	rc = fl_safetensors_parse(&b, buf, 8 + hl + dlen, "t.safetensors", err);
	if (!rc)
		fl_blobmem_release(&b);
	return rc;
}

static void
test_safetensors_bad(void)
{
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0)
	    == FL_OK, "st: a minimal file");
	/* Found by fuzzing: an empty tensor at the end of a mapped file was
	 * referenced there, then freed as if it were allocated. */
	{
		static const char h[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],"
		    "\"data_offsets\":[0,0]}}  ";
		unsigned char buf[8 + sizeof(h) - 1] = { sizeof(h) - 1 };
		struct fl_blobmem b;
		enum fl_format f;
		char p[300];
		int fd;

		memcpy(buf + 8, h, sizeof(h) - 1);
		snprintf(p, sizeof(p), "%s/empty-at-end.safetensors", dir);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		CHECK(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
		    sizeof(buf) % 4 == 0, "st: write a file ending in an empty tensor");
		close(fd);
		CHECK(fl_import_read(&b, p, &f, err) == FL_OK && b.h.ntensors == 1 &&
		    b.h.t[0].shape[0] == 0, "st: mapped, an empty tensor at the end: %s",
		    err);
		fl_blobmem_release(&b);
	}
	/* Found by fuzzing: no tensors passed a null array to qsort. */
	CHECK(st("{}", 0, 0) == FL_OK, "st: a header without tensors: %s", err);
	CHECK(st("{\"__metadata__\":{}}", 3, 0) == FL_EBLOB && strstr(err, "after"),
	    "st: no tensors but data: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
	    1000) == FL_EBLOB && strstr(err, "larger than the file"),
	    "st: header length beyond the file: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
	    UINT64_MAX) == FL_EBLOB, "st: header length 2^64-1");
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0)
	    == FL_EBLOB && strstr(err, "out of range"), "st: offsets beyond the data: %s",
	    err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0)
	    == FL_EBLOB && strstr(err, "overlap"), "st: overlapping tensors: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0)
	    == FL_EBLOB && strstr(err, "unused"), "st: a hole: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0)
	    == FL_EBLOB && strstr(err, "needs 12 bytes"), "st: shape disagrees with "
	    "offsets: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0)
	    == FL_EBLOB, "st: reversed offsets");
	CHECK(st("{\"a\":{\"dtype\":\"X9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0)
	    == FL_EBLOB && strstr(err, "unknown dtype"), "st: unknown dtype: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, 0)
	    == FL_EDATA && strstr(err, "not supported"), "st: unsupported dtype: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, 0)
	    == FL_EBLOB && strstr(err, "bad JSON"), "st: trailing comma: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, 0)
	    == FL_EBLOB, "st: unclosed object");
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, 0)
	    == FL_EBLOB, "st: fractional dimension");
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", 8, 0)
	    == FL_EBLOB && strstr(err, "offsets"), "st: unknown key: %s", err);
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", 8, 0)
	    == FL_EBLOB && strstr(err, "twice"), "st: a name twice: %s", err);
	CHECK(st("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
	    "\"data_offsets\":[0,8]}}", 8, 0) == FL_EBLOB && strstr(err, "__metadata__"),
	    "st: non-string metadata: %s", err);
	CHECK(st("{\"__metadata__\":{\"k\\u00e9\":\"v\\n\"},\"a\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[0,8]}}  ", 8, 0) == FL_OK,
	    "st: escapes and padding");
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9],"
	    "\"data_offsets\":[0,8]}}", 8, 0) == FL_EBLOB, "st: too many dims");
	CHECK(st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
	    "\"data_offsets\":[0,8]}}", 8, 0) == FL_EBLOB, "st: shape overflow");
	CHECK(st("[1]", 0, 0) == FL_EBLOB && strstr(err, "not a safetensors"),
	    "st: not an object: %s", err);
	CHECK(st("", 0, 0) == FL_EBLOB, "st: empty header");
	{
		struct fl_blobmem b;
		CHECK(fl_safetensors_parse(&b, (const unsigned char *)"abc", 3, "t", err) ==
		    FL_EBLOB && strstr(err, "truncated"), "st: 3 bytes: %s", err);
	}
}

static int
npz(unsigned char *buf, size_t n)
{
	struct fl_blobmem b;
	int rc;

	err[0] = 0;
	rc = fl_npz_parse(&b, buf, n, "t.npz", err);
	if (!rc)
		fl_blobmem_release(&b);
	return rc;
}

/* Find the n-th occurrence of needle. */
static unsigned char *
find(unsigned char *buf, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(buf + i, needle, k))
			return buf + i;
	return NULL;
}

/* After editing the first (stored) entry, make its crc32 right again. */
static void
fix_crc(unsigned char *c, size_t n)
{
	size_t nl = c[26] | c[27] << 8, xl = c[28] | c[29] << 8;
	size_t size = c[18] | c[19] << 8 | (size_t)c[20] << 16;
	uint32_t crc = (uint32_t)crc32(0, c + 30 + nl + xl, (uInt)size);
	unsigned char *cd = find(c, n, "PK\x01\x02");

	for (int i = 0; i < 4; i++)
		c[14 + i] = cd[16 + i] = (unsigned char)(crc >> (8 * i));
}

static void
test_npz_bad(void)
{
	size_t n;
	unsigned char *g = slurp(FIX "mlp_ce.npz", &n), *c = malloc(n), *p;

	CHECK(npz(g, n) == FL_OK, "npz: golden parses");
	CHECK(npz((unsigned char *)"hello world", 11) == FL_EBLOB &&
	    strstr(err, "not a zip"), "npz: not a zip: %s", err);
	CHECK(npz(g, n - 10) == FL_EBLOB && strstr(err, "truncated"),
	    "npz: truncated: %s", err);
	memcpy(c, g, n);
	c[400] ^= 1;	/* inside the second array's data */
	CHECK(npz(c, n) == FL_EBLOB && strstr(err, "crc mismatch"),
	    "npz: flipped byte: %s", err);
	memcpy(c, g, n);
	p = find(c, n, "<f4");
	memcpy(p, "<c8", 3);
	fix_crc(c, n);
	CHECK(npz(c, n) == FL_EDATA && strstr(err, "not supported"),
	    "npz: complex dtype: %s", err);
	memcpy(c, g, n);
	p = find(c, n, "<f4");
	memcpy(p, ">f4", 3);
	fix_crc(c, n);
	CHECK(npz(c, n) == FL_EDATA && strstr(err, "big-endian"),
	    "npz: big-endian: %s", err);
	memcpy(c, g, n);
	p = find(c, n, "'shape': (8, 4)");
	memcpy(p, "'shape': (8, 5)", 15);
	fix_crc(c, n);
	CHECK(npz(c, n) == FL_EBLOB && strstr(err, "0.weight") && strstr(err, "needing"),
	    "npz: shape disagrees with the entry: %s", err);
	memcpy(c, g, n);
	p = find(c, n, "'fortran_order': False");
	memcpy(p, "'fortran_order': True ", 22);
	fix_crc(c, n);
	CHECK(npz(c, n) == FL_EDATA && strstr(err, "Fortran"),
	    "npz: fortran order: %s", err);
	memcpy(c, g, n);
	p = find(c + n / 2, n - n / 2, "0.weight.npy");	/* central directory */
	memcpy(p, "0.weight.txt", 12);
	CHECK(npz(c, n) == FL_EBLOB && strstr(err, "not a .npy"),
	    "npz: an entry that is not .npy: %s", err);
	memcpy(c, g, n);
	p = find(c, n, "PK\x05\x06");
	p[16] ^= 0x40;	/* central directory offset */
	CHECK(npz(c, n) == FL_EBLOB, "npz: bad central directory offset: %s", err);
	free(g);
	free(c);
	g = slurp(FIX "mlp_ce_compressed.npz", &n);
	c = malloc(n);
	memcpy(c, g, n);
	c[100] ^= 0x55;
	CHECK(npz(c, n) == FL_EBLOB, "npz: corrupt deflate data: %s", err);
	/* Found by fuzz_npz: a small deflated entry declaring 2 GiB was
	 * allocated before inflating failed. */
	memcpy(c, g, n);
	p = find(c, n, "PK\x01\x02");
	memcpy(p + 24, "\0\0\0\x7f", 4);	/* uncompressed size */
	CHECK(npz(c, n) == FL_EBLOB && strstr(err, "cannot inflate"),
	    "npz: deflated entry declaring 2 GiB: %s", err);
	free(g);
	free(c);
}

int
main(void)
{
	char cmd[300];

	if (!mkdtemp(dir))
		return 1;
	test_read_golden();
	test_arch();
	test_round_trip();
	test_safetensors_bad();
	test_npz_bad();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return unit_done();
}
