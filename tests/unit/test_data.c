/* test_data.c: CSV and IDX readers, datasets as floats, splits. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "unit.h"

static char dir[] = "/tmp/flkit-test-data.XXXXXX";
static char err[FL_ERRLEN];

static int
csv(struct fl_blobmem *b, const char *text, const struct fl_csv_opts *o)
{
	static const struct fl_csv_opts def = { 0 };

	err[0] = 0;
	return fl_csv_parse(b, text, strlen(text), "t.csv", o ? o : &def, err);
}

static void
test_csv(void)
{
	struct fl_blobmem b;
	struct fl_csv_opts o = { 0 };
	const float *x;
	const int32_t *y;
	const struct fl_val *names;
	uint64_t u = 0;

	CHECK(csv(&b, "1,2,0\n3,4.5,1\n-5,6e1,2\n", NULL) == FL_OK, "csv: plain");
	CHECK(!strcmp(b.h.kind, "dataset") && b.h.ntensors == 2, "csv: dataset, two tensors");
	CHECK(b.h.t[0].dtype == FL_F32 && b.h.t[0].shape[0] == 3 &&
	    b.h.t[0].shape[1] == 2, "csv: x f32 [3,2]");
	x = (const float *)b.data[0];
	y = (const int32_t *)b.data[1];
	CHECK(x[0] == 1 && x[3] == 4.5f && x[4] == -5 && x[5] == 60, "csv: x values");
	CHECK(b.h.t[1].dtype == FL_I32 && y[0] == 0 && y[1] == 1 && y[2] == 2,
	    "csv: y i32 class indices");
	CHECK(!fl_val_get_u64(fl_map_get(&b.h.meta, "samples"), &u) && u == 3,
	    "csv: meta samples");
	CHECK(!fl_val_get_u64(fl_map_get(&b.h.meta, "classes"), &u) && u == 3,
	    "csv: meta classes");
	CHECK(!fl_val_get_u64(fl_map_get(&b.h.meta, "features"), &u) && u == 2,
	    "csv: meta features");
	fl_blobmem_release(&b);

	o.header = 1;
	CHECK(csv(&b, "\xef\xbb\xbf\"a\",\"b\",\"c\"\r\n\r\n 1 , \"2\" ,3\r\n\n4,5,0\r\n",
	    &o) == FL_OK && b.h.t[0].shape[0] == 2, "csv: BOM, header, quotes, CRLF, "
	    "blank lines");
	x = (const float *)b.data[0];
	CHECK(x[0] == 1 && x[1] == 2 && ((int32_t *)b.data[1])[0] == 3, "csv: quoted "
	    "and spaced fields");
	fl_blobmem_release(&b);

	o = (struct fl_csv_opts){ .label_set = 1, .label_column = 0 };
	CHECK(csv(&b, "2,1.5,2.5\n0,3,4\n", &o) == FL_OK, "csv: label column 0");
	x = (const float *)b.data[0];
	CHECK(((int32_t *)b.data[1])[0] == 2 && x[0] == 1.5f && x[3] == 4,
	    "csv: label column 0 values");
	fl_blobmem_release(&b);
	o = (struct fl_csv_opts){ .label_set = 1, .label_column = -2 };
	CHECK(csv(&b, "1,7,2\n3,8,4\n", &o) == FL_OK &&
	    ((int32_t *)b.data[1])[1] == 8 && ((float *)b.data[0])[1] == 2,
	    "csv: negative label column counts from the end");
	fl_blobmem_release(&b);

	CHECK(csv(&b, "5.1,setosa\n4.9,virginica\n4.7,setosa\n6,versicolor\n", NULL)
	    == FL_OK, "csv: class names");
	y = (const int32_t *)b.data[1];
	names = fl_map_get(&b.h.meta, "class_names");
	CHECK(y[0] == 0 && y[1] == 2 && y[2] == 0 && y[3] == 1, "csv: names sorted "
	    "into indices");
	CHECK(names && names->type == FL_V_ARRAY && names->v.a.n == 3 &&
	    !strcmp(names->v.a.items[2].v.s.p, "virginica"), "csv: meta class_names");
	fl_blobmem_release(&b);

	o = (struct fl_csv_opts){ .targets = 2 };
	CHECK(csv(&b, "1,2,0.5,0.25\n3,4,1.5,-2\n", &o) == FL_OK, "csv: targets");
	CHECK(b.h.t[1].dtype == FL_F32 && b.h.t[1].ndim == 2 && b.h.t[1].shape[1] == 2 &&
	    ((float *)b.data[1])[3] == -2 && b.h.t[0].shape[1] == 2,
	    "csv: y f32 [n,2] targets");
	CHECK(!fl_map_get(&b.h.meta, "classes"), "csv: no classes for targets");
	fl_blobmem_release(&b);

	/* Bad input: each names the file and line and writes nothing. */
	CHECK(csv(&b, "1,2,0\n3,4,1\n5,6\n", NULL) == FL_EBLOB &&
	    strstr(err, "t.csv: line 3") && strstr(err, "2 fields, expected 3"),
	    "csv: ragged row: %s", err);
	CHECK(csv(&b, "1,2,0\n3,abc,1\n", NULL) == FL_EBLOB &&
	    strstr(err, "line 2, field 2") && strstr(err, "'abc' is not a number"),
	    "csv: a word where a number belongs: %s", err);
	CHECK(csv(&b, "x,y,label\n1,2,0\n", NULL) == FL_EBLOB && strstr(err, "--header"),
	    "csv: a header line suggests --header: %s", err);
	CHECK(csv(&b, "", NULL) == FL_EBLOB && strstr(err, "empty"), "csv: empty: %s", err);
	CHECK(csv(&b, "\n  \n", NULL) == FL_EBLOB && strstr(err, "no data rows"),
	    "csv: blank lines only: %s", err);
	CHECK(csv(&b, "1,2,0.5\n", NULL) == FL_EDATA && strstr(err, "--targets"),
	    "csv: fractional label: %s", err);
	CHECK(csv(&b, "1,2,-1\n", NULL) == FL_EDATA, "csv: negative label");
	CHECK(csv(&b, "1,nan,1\n", NULL) == FL_EBLOB, "csv: nan is not a number");
	CHECK(csv(&b, "1,\"2,1\n", NULL) == FL_EBLOB && strstr(err, "unterminated"),
	    "csv: unterminated quote: %s", err);
	CHECK(csv(&b, "1,,1\n", NULL) == FL_EBLOB, "csv: empty field");
	CHECK(csv(&b, "1\n", NULL) == FL_EDATA, "csv: one column is not a dataset");
	o = (struct fl_csv_opts){ .label_set = 1, .label_column = 5 };
	CHECK(csv(&b, "1,2,3\n", &o) == FL_EUSAGE && strstr(err, "out of range"),
	    "csv: label column out of range: %s", err);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Write an IDX file (gzipped if gz) of n items of dims d1 x d2 (0: labels). */
static void
write_idx(const char *path, uint32_t magic, uint32_t n, uint32_t d1, uint32_t d2,
    uint32_t nbytes, int gz)
{
	unsigned char hd[16], *data = malloc(nbytes + 1);
	size_t hl = 8;

	put_be32(hd, magic);
	put_be32(hd + 4, n);
	if (d1) {
		put_be32(hd + 8, d1);
		put_be32(hd + 12, d2);
		hl = 16;
	}
	for (uint32_t i = 0; i < nbytes; i++)
		data[i] = (unsigned char)(d1 ? i * 7 : i % 3);
	if (gz) {
		gzFile f = gzopen(path, "wb");
		gzwrite(f, hd, (unsigned)hl);
		gzwrite(f, data, nbytes);
		gzclose(f);
	} else {
		FILE *f = fopen(path, "wb");
		fwrite(hd, 1, hl, f);
		fwrite(data, 1, nbytes, f);
		fclose(f);
	}
	free(data);
}

static void
test_idx(void)
{
	char im[256], lb[256], bad[256];
	struct fl_blobmem b;
	uint64_t u = 0;

	snprintf(im, sizeof(im), "%s/images.gz", dir);
	snprintf(lb, sizeof(lb), "%s/labels", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	write_idx(im, 0x803, 5, 2, 3, 30, 1);
	write_idx(lb, 0x801, 5, 0, 0, 5, 0);
	CHECK(fl_idx_read(&b, im, lb, 0, err) == FL_OK, "idx: gzipped images, plain "
	    "labels: %s", err);
	CHECK(b.h.t[0].dtype == FL_U8 && b.h.t[0].ndim == 3 && b.h.t[0].shape[0] == 5 &&
	    b.h.t[0].shape[2] == 3 && b.data[0][29] == (unsigned char)(29 * 7),
	    "idx: x u8 [5,2,3]");
	CHECK(b.h.t[1].dtype == FL_U8 && b.data[1][4] == 1, "idx: y u8");
	CHECK(!fl_val_get_u64(fl_map_get(&b.h.meta, "features"), &u) && u == 6,
	    "idx: meta features");
	CHECK(!fl_val_get_u64(fl_map_get(&b.h.meta, "classes"), &u) && u == 10,
	    "idx: meta classes");
	fl_blobmem_release(&b);
	CHECK(fl_idx_read(&b, im, lb, 1, err) == FL_OK && b.h.t[0].dtype == FL_F32 &&
	    ((float *)b.data[0])[1] == 7 / 255.0f, "idx: --normalize gives f32 in [0,1]");
	fl_blobmem_release(&b);

	write_idx(bad, 0x801, 4, 0, 0, 4, 0);
	CHECK(fl_idx_read(&b, im, bad, 0, err) == FL_EBLOB && strstr(err, "5 images") &&
	    strstr(err, "4 labels"), "idx: counts disagree: %s", err);
	write_idx(bad, 0x1234, 5, 0, 0, 5, 0);
	CHECK(fl_idx_read(&b, im, bad, 0, err) == FL_EBLOB && strstr(err, "bad magic"),
	    "idx: bad magic: %s", err);
	CHECK(fl_idx_read(&b, lb, lb, 0, err) == FL_EBLOB && strstr(err, "labels file"),
	    "idx: labels where images belong: %s", err);
	write_idx(bad, 0x803, 5, 2, 3, 29, 1);
	CHECK(fl_idx_read(&b, bad, lb, 0, err) == FL_EBLOB && strstr(err, "truncated"),
	    "idx: truncated: %s", err);
	/* Found by fuzz_idx: a few bytes declaring 4 GiB of images were
	 * allocated (16 GiB normalized) before the data was read. */
	write_idx(bad, 0x803, 4096, 1024, 1024, 10, 0);
	CHECK(fl_idx_read(&b, bad, lb, 1, err) == FL_EBLOB && strstr(err, "truncated"),
	    "idx: 4 GiB declared in a small file: %s", err);
	write_idx(bad, 0x803, 4096, 1024, 1024, 10, 1);
	CHECK(fl_idx_read(&b, bad, lb, 1, err) == FL_EBLOB && strstr(err, "gzipped"),
	    "idx: 4 GiB declared in a small gzip file: %s", err);
	write_idx(bad, 0x801, 5, 0, 0, 6, 0);
	CHECK(fl_idx_read(&b, im, bad, 0, err) == FL_EBLOB && strstr(err, "after"),
	    "idx: trailing bytes: %s", err);
	close(open(bad, O_WRONLY | O_TRUNC));
	CHECK(fl_idx_read(&b, im, bad, 0, err) == FL_EBLOB && strstr(err, "empty"),
	    "idx: empty file: %s", err);
	CHECK(fl_idx_read(&b, im, "/nonexistent/x", 0, err) == FL_ENOTFOUND,
	    "idx: missing file");
}

static void
test_dataset_load(void)
{
	char p[256];
	struct fl_blobmem b;
	struct fl_dataset d;
	struct fl_csv_opts o = { .targets = 1 };
	int fd;

	snprintf(p, sizeof(p), "%s/d.blob", dir);
	csv(&b, "1,2,3\n4,5,1\n7,8,0\n", NULL);
	fl_map_set_str(&b.h.meta, "x-unknown", "kept");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fl_blobmem_write(fd, p, &b, err) == FL_OK, "dataset: write blob");
	close(fd);
	fl_blobmem_release(&b);
	CHECK(fl_dataset_load(&d, p, err) == FL_OK, "dataset: load: %s", err);
	CHECK(d.n == 3 && d.features == 2 && d.classes == 4 && d.y && !d.targets,
	    "dataset: n, features, classes");
	CHECK(d.x[5] == 8 && d.y[0] == 3 && d.y[2] == 0, "dataset: x and y values");
	CHECK(fl_map_get_str(&d.meta, "x-unknown") != NULL, "dataset: unknown meta kept");
	CHECK(d.xmap.base != NULL, "dataset: raw f32 x is mapped from the file");
	fl_dataset_release(&d);
	/* A flipped byte of a mapped x: the crc check catches it. */
	{
		struct fl_reader r;
		struct fl_header h;
		unsigned char c;
		uint64_t off = 0;
		int xf;
		CHECK(fl_reader_open(&r, p, err) == FL_OK &&
		    fl_reader_next(&r, &h, err) == FL_OK, "dataset: header");
		for (size_t i = 0; i < h.ntensors; i++)
			if (!strcmp(h.t[i].name, "x"))
				off = r.base + r.streampos + h.t[i].offset + 4;
		fl_header_release(&h);
		fl_reader_close(&r);
		CHECK(off > 0, "dataset: x found");
		xf = open(p, O_RDWR);
		CHECK(pread(xf, &c, 1, (off_t)off) == 1, "dataset: read a byte");
		c ^= 1;
		CHECK(pwrite(xf, &c, 1, (off_t)off) == 1, "dataset: flip a byte");
		close(xf);
		CHECK(fl_dataset_load(&d, p, err) == FL_EBLOB && strstr(err, "crc"),
		    "dataset: corrupt mapped x: %s", err);
		c ^= 1;	/* and back, for the tests that follow */
		xf = open(p, O_RDWR);
		CHECK(pwrite(xf, &c, 1, (off_t)off) == 1, "dataset: unflip");
		close(xf);
	}
	/* Found by fuzz_blob: fl_blobmem_read left map as it found it, and
	 * release then took the tensors for part of a stray mapping. */
	{
		struct fl_reader r;
		struct fl_header h;
		struct fl_blobmem m;

		memset(&m, 0xa5, sizeof(m));
		CHECK(fl_reader_open(&r, p, err) == FL_OK &&
		    fl_reader_next(&r, &h, err) == FL_OK &&
		    fl_blobmem_read(&m, &r, &h, err) == FL_OK && !m.map && !m.maplen,
		    "dataset: blobmem read into an uninitialised struct: %s", err);
		fl_blobmem_release(&m);
		fl_header_release(&h);
		fl_reader_close(&r);
	}

	csv(&b, "1,2,0.5\n4,5,1.5\n", &o);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	fl_blobmem_write(fd, p, &b, err);
	close(fd);
	fl_blobmem_release(&b);
	CHECK(fl_dataset_load(&d, p, err) == FL_OK && d.targets && !d.y && d.k == 1 &&
	    d.targets[1] == 1.5f && d.classes == 0, "dataset: float targets");
	fl_dataset_release(&d);

	/* IDX u8 images become floats 0..255. */
	{
		char im[256], lb[256];
		snprintf(im, sizeof(im), "%s/images.gz", dir);
		snprintf(lb, sizeof(lb), "%s/labels", dir);
		fl_idx_read(&b, im, lb, 0, err);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		fl_blobmem_write(fd, p, &b, err);
		close(fd);
		fl_blobmem_release(&b);
		CHECK(fl_dataset_load(&d, p, err) == FL_OK && d.features == 6 &&
		    d.xndim == 3 && d.x[3] == 21 && d.y[4] == 1 && d.classes == 10,
		    "dataset: u8 images as floats");
		fl_dataset_release(&d);
	}
	/* A label beyond the declared classes. */
	csv(&b, "1,2,3\n", NULL);
	fl_map_set_uint(&b.h.meta, "classes", 2);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	fl_blobmem_write(fd, p, &b, err);
	close(fd);
	fl_blobmem_release(&b);
	CHECK(fl_dataset_load(&d, p, err) == FL_EDATA && strstr(err, "label 3"),
	    "dataset: label out of range: %s", err);
}

/* Largest share of one class in a part, averaged over the parts. */
static double
skew(const uint32_t *part, const int32_t *y, uint64_t n, uint32_t parts,
    uint32_t classes)
{
	uint64_t *h = calloc((size_t)parts * classes, sizeof(*h)), *tot = calloc(parts, 8);
	double s = 0;

	for (uint64_t i = 0; i < n; i++) {
		h[part[i] * classes + (uint32_t)y[i]]++;
		tot[part[i]]++;
	}
	for (uint32_t p = 0; p < parts; p++) {
		uint64_t m = 0;
		for (uint32_t c = 0; c < classes; c++)
			if (h[p * classes + c] > m)
				m = h[p * classes + c];
		s += tot[p] ? (double)m / (double)tot[p] : 1;
	}
	free(h);
	free(tot);
	return s / parts;
}

static void
test_split(void)
{
	enum { N = 10000, C = 10, P = 5 };
	int32_t *y = malloc(N * sizeof(*y));
	uint32_t *a = malloc(N * sizeof(*a)), *b = malloc(N * sizeof(*b));
	uint64_t cnt[P] = { 0 }, sum = 0, lo = N, hi = 0;
	struct fl_blobmem ds, part;
	int same = 1, empty = 0;
	double s_iid, s_dir;

	for (int i = 0; i < N; i++)
		y[i] = i % C;
	CHECK(fl_split(a, N, y, C, P, 0, 42, err) == FL_OK, "split: iid");
	for (int i = 0; i < N; i++)
		cnt[a[i]]++;
	for (int p = 0; p < P; p++) {
		sum += cnt[p];
		lo = cnt[p] < lo ? cnt[p] : lo;
		hi = cnt[p] > hi ? cnt[p] : hi;
	}
	CHECK(sum == N && hi - lo <= 1, "split: iid parts sum to n and differ by <= 1");
	fl_split(b, N, y, C, P, 0, 42, err);
	CHECK(!memcmp(a, b, N * sizeof(*a)), "split: same seed, same iid split");
	fl_split(b, N, y, C, P, 0, 43, err);
	CHECK(memcmp(a, b, N * sizeof(*a)), "split: another seed, another split");
	s_iid = skew(a, y, N, P, C);

	CHECK(fl_split(a, N, y, C, P, 0.1, 7, err) == FL_OK, "split: dirichlet");
	fl_split(b, N, y, C, P, 0.1, 7, err);
	for (int i = 0; i < N; i++)
		same &= a[i] == b[i];
	CHECK(same, "split: same seed, same dirichlet split");
	memset(cnt, 0, sizeof(cnt));
	for (int i = 0; i < N; i++)
		cnt[a[i]]++;
	for (int p = 0; p < P; p++)
		empty += cnt[p] == 0;
	CHECK(!empty, "split: dirichlet parts all non-empty");
	s_dir = skew(a, y, N, P, C);
	CHECK(s_dir > 2 * s_iid, "split: alpha 0.1 skews labels (%.2f vs iid %.2f)",
	    s_dir, s_iid);
	fl_split(a, N, y, C, P, 1000, 7, err);
	CHECK(skew(a, y, N, P, C) < 0.15, "split: alpha 1000 is nearly iid (%.2f)",
	    skew(a, y, N, P, C));

	/* Tiny data, extreme alpha: still one example per part. */
	CHECK(fl_split(a, 5, y, C, 5, 0.001, 1, err) == FL_OK, "split: 5 into 5");
	memset(cnt, 0, sizeof(cnt));
	for (int i = 0; i < 5; i++)
		cnt[a[i]]++;
	CHECK(cnt[0] == 1 && cnt[1] == 1 && cnt[2] == 1 && cnt[3] == 1 && cnt[4] == 1,
	    "split: every part non-empty when n == parts");
	CHECK(fl_split(a, 3, y, C, 5, 0, 1, err) == FL_EDATA && strstr(err, "non-empty"),
	    "split: more parts than examples: %s", err);
	CHECK(fl_split(a, N, NULL, 0, P, 0.5, 1, err) == FL_EDATA,
	    "split: dirichlet needs labels");

	/* A part's blob: its rows, in order, and meta. */
	csv(&ds, "0,0\n1,1\n2,0\n3,1\n4,0\n", NULL);
	{
		uint32_t pp[5] = { 1, 0, 1, 1, 0 };
		uint64_t u = 0;
		CHECK(fl_blobmem_part(&part, &ds, pp, 2, 1, err) == FL_OK &&
		    part.h.t[0].shape[0] == 3 && part.h.t[1].shape[0] == 3,
		    "split: part has 3 rows");
		CHECK(((float *)part.data[0])[1] == 2 && ((int32_t *)part.data[1])[2] == 1,
		    "split: part rows in order");
		CHECK(!fl_val_get_u64(fl_map_get(&part.h.meta, "samples"), &u) && u == 3 &&
		    !fl_val_get_u64(fl_map_get(&part.h.meta, "part"), &u) && u == 2 &&
		    fl_map_get_str(&part.h.meta, "source"), "split: part meta");
		fl_blobmem_release(&part);
	}
	{
		int32_t *yy;
		uint32_t classes;
		CHECK(fl_blobmem_labels(&ds, &yy, &classes, err) == FL_OK && classes == 2 &&
		    yy[3] == 1, "split: labels of a dataset in memory");
		free(yy);
	}
	fl_blobmem_release(&ds);
	free(y);
	free(a);
	free(b);
}

int
main(void)
{
	char cmd[300];

	if (!mkdtemp(dir))
		return 1;
	test_csv();
	test_idx();
	test_dataset_load();
	test_split();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return unit_done();
}
