/* data.c: whole blobs in memory, CSV and IDX readers, datasets as floats. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

/* Blobs in memory. */

int
fl_blobmem_init(struct fl_blobmem *b, const char *kind)
{
	b->data = NULL;
	b->map = NULL;
	b->maplen = 0;
	return fl_header_init(&b->h, kind);
}

void
fl_blobmem_release(struct fl_blobmem *b)
{
	const unsigned char *lo = b->map;

	for (size_t i = 0; b->data && i < b->h.ntensors; i++)
		if (!(lo && b->data[i] >= lo && b->data[i] < lo + b->maplen))
			free(b->data[i]);
	free(b->data);
	b->data = NULL;
	if (b->map)
		munmap(b->map, b->maplen);
	b->map = NULL;
	b->maplen = 0;
	fl_header_release(&b->h);
}


/* Declare a tensor whose bytes p (malloc'd) the blob takes over. */
static int
adopt(struct fl_blobmem *b, const char *name, enum fl_dtype dtype, int ndim,
    const uint64_t *shape, void *p, char *err)
{
	unsigned char **d;
	int i;

	if (!(d = realloc(b->data, (b->h.ntensors + 1) * sizeof(*d))))
		return fl_err(err, FL_EFAIL, "out of memory");
	b->data = d;
	if ((i = fl_header_add(&b->h, name, dtype, ndim, shape)) < 0)
		return fl_err(err, FL_EFAIL, "out of memory");
	b->data[i] = p;
	return i;
}

int
fl_blobmem_add(struct fl_blobmem *b, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape, const struct fl_limits *lim, char *err)
{
	uint64_t nb = fl_shape_bytes(dtype, ndim, shape);
	void *p;
	int i;

	if (ndim < 0 || ndim > FL_MAX_DIMS)
		return -fl_err(err, FL_ELIMIT, "tensor %s: %d dimensions (at most %d)",
		    name, ndim, FL_MAX_DIMS);
	if (nb == UINT64_MAX || (lim && nb > lim->tensor) || nb > SIZE_MAX / 2)
		return -fl_err(err, FL_ELIMIT, "tensor %s: too large", name);
	if (!(p = calloc(1, nb ? (size_t)nb : 1)))
		return -fl_err(err, FL_EFAIL, "tensor %s: out of memory", name);
	if ((i = adopt(b, name, dtype, ndim, shape, p, err)) < 0) {
		free(p);
		return -FL_EFAIL;
	}
	/* The analyzer misses that adopt() kept p in b->data[i]. */
	return i;	/* NOLINT(clang-analyzer-unix.Malloc) */
}

int
fl_blobmem_add_ref(struct fl_blobmem *b, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape, const void *p, const struct fl_limits *lim,
    char *err)
{
	uint64_t nb = fl_shape_bytes(dtype, ndim, shape);

	if (ndim < 0 || ndim > FL_MAX_DIMS)
		return -fl_err(err, FL_ELIMIT, "tensor %s: %d dimensions (at most %d)",
		    name, ndim, FL_MAX_DIMS);
	if (nb == UINT64_MAX || (lim && nb > lim->tensor))
		return -fl_err(err, FL_ELIMIT, "tensor %s: too large", name);
	/* Empty: p may lie at the mapping's end, where release would not
	 * know it from a pointer of its own. */
	if (nb == 0)
		return fl_blobmem_add(b, name, dtype, ndim, shape, lim, err);
	return adopt(b, name, dtype, ndim, shape, (void *)p, err) < 0 ? -FL_EFAIL :
	    (int)b->h.ntensors - 1;
}

int
fl_blobmem_read(struct fl_blobmem *b, struct fl_reader *r,
    const struct fl_header *h, char *err)
{
	int rc;

	b->data = NULL;
	b->map = NULL;
	b->maplen = 0;
	if (fl_header_copy(&b->h, h))
		return fl_err(err, FL_EFAIL, "out of memory");
	if (!(b->data = calloc(h->ntensors + 1, sizeof(*b->data)))) {
		fl_blobmem_release(b);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (size_t i = 0; i < h->ntensors; i++) {
		uint64_t nb = fl_tensor_nbytes(&h->t[i]);
		if (nb > SIZE_MAX / 2 || !(b->data[i] = malloc(nb ? (size_t)nb : 1))) {
			fl_blobmem_release(b);
			return fl_err(err, FL_EFAIL, "%s: tensor %s: out of memory",
			    r->name, h->t[i].name);
		}
		if ((rc = fl_reader_tensor(r, i, b->data[i], err))) {
			fl_blobmem_release(b);
			return rc;
		}
	}
	return FL_OK;
}

int
fl_blobmem_write(int fd, const char *name, const struct fl_blobmem *b, char *err)
{
	return fl_blob_write(fd, name, &b->h, (const void *const *)b->data, 6, err);
}

/* Read a whole file ("-": stdin) into buf, at most max bytes. */
static int
slurp(struct fl_buf *buf, const char *path, uint64_t max, char *err)
{
	int fd = 0, rc = FL_OK;
	ssize_t k;

	if (strcmp(path, "-") && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fl_errno(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s", path);
	fl_buf_init(buf, max > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)max);
	for (;;) {
		if ((rc = fl_buf_reserve(buf, 1 << 16))) {
			if (rc == FL_ELIMIT)
				fl_err(err, rc, "%s: larger than the limit of %llu bytes",
				    path, (unsigned long long)max);
			else
				fl_err(err, rc, "%s: out of memory", path);
			break;
		}
		k = read(fd, buf->data + buf->len, buf->cap - buf->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = fl_errno(err, FL_EIO, "%s: read failed", path);
			break;
		}
		if (k == 0)
			break;
		buf->len += (size_t)k;
	}
	if (fd != 0)
		close(fd);
	if (rc)
		fl_buf_release(buf);
	return rc;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s && s[1] ? s + 1 : path;
}

/* CSV. */

struct csv_field {
	const char *p;		/* into the text, or into the line's unquote buffer */
	size_t n;
};

/*
 * Split one line into fields. Quoted fields are unquoted into q, whose
 * storage must not move while the fields are in use: it is reserved for
 * the whole line first.
 */
static int
csv_split(const char *s, size_t len, struct fl_buf *q, struct csv_field **f,
    size_t *cap, size_t *nf, const char *name, uint64_t line, char *err)
{
	const char *end = s + len;

	q->len = 0;
	if (fl_buf_reserve(q, len + 1))
		return fl_err(err, FL_EFAIL, "out of memory");
	*nf = 0;
	for (;;) {
		struct csv_field fld;

		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		if (s < end && *s == '"') {
			fld.p = (const char *)q->data + q->len;
			for (s++;; s++) {
				if (s == end)
					return fl_err(err, FL_EBLOB, "%s: line %llu, field %zu: "
					    "unterminated quote", name, (unsigned long long)line,
					    *nf + 1);
				if (*s == '"') {
					if (s + 1 < end && s[1] == '"')
						s++;
					else
						break;
				}
				q->data[q->len++] = (unsigned char)*s;
			}
			fld.n = (size_t)((const char *)q->data + q->len - fld.p);
			for (s++; s < end && (*s == ' ' || *s == '\t'); s++)
				;
			if (s < end && *s != ',')
				return fl_err(err, FL_EBLOB, "%s: line %llu, field %zu: text "
				    "after a closing quote", name, (unsigned long long)line,
				    *nf + 1);
		} else {
			fld.p = s;
			while (s < end && *s != ',')
				s++;
			fld.n = (size_t)(s - fld.p);
			while (fld.n && (fld.p[fld.n - 1] == ' ' || fld.p[fld.n - 1] == '\t'))
				fld.n--;
		}
		if (*nf == FL_CSV_MAX_COLS)
			return fl_err(err, FL_ELIMIT, "%s: line %llu: more than %d fields",
			    name, (unsigned long long)line, FL_CSV_MAX_COLS);
		if (*nf == *cap) {
			size_t nc = *cap ? 2 * *cap : 64;
			struct csv_field *g = realloc(*f, nc * sizeof(*g));
			if (!g)
				return fl_err(err, FL_EFAIL, "out of memory");
			*f = g;
			*cap = nc;
		}
		(*f)[(*nf)++] = fld;
		if (s == end)
			return FL_OK;
		s++;	/* the comma */
	}
}

/* A field as a finite number: 0, or -1 when it is not one. */
static int
field_number(const struct csv_field *f, double *v)
{
	char tmp[256];

	if (f->n == 0 || f->n >= sizeof(tmp))
		return -1;
	memcpy(tmp, f->p, f->n);
	tmp[f->n] = 0;
	return fl_parse_double(tmp, v) ? -1 : 0;
}

/* Quote a field for a message, shortened. */
static const char *
field_show(const struct csv_field *f, char *out, size_t outlen)
{
	size_t n = f->n < 40 ? f->n : 40;

	snprintf(out, outlen, "%.*s%s", (int)n, f->p, f->n > n ? "..." : "");
	return out;
}

struct csv_labels {
	struct fl_buf text;	/* each label, NUL-terminated */
	uint64_t *off;		/* per row: offset into text */
	uint64_t *line;		/* per row: its line, for messages */
	size_t cap;
	int all_numbers;
};

static const char *sort_base;

static int
cmp_label(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return strcmp(sort_base + x, sort_base + y);
}

/* Turn the collected labels into class indices in y; names into meta. */
static int
csv_classes(struct csv_labels *L, uint64_t n, int32_t *y, struct fl_val *meta,
    const char *name, char *err)
{
	uint64_t *sorted, ndistinct = 0;
	uint32_t maxc = 0;
	struct fl_val names, s;

	if (L->all_numbers) {
		for (uint64_t i = 0; i < n; i++) {
			const char *t = (const char *)L->text.data + L->off[i];
			double v;
			fl_parse_double(t, &v);
			if (v < 0 || v >= FL_MAX_CLASSES || v != floor(v))
				return fl_err(err, FL_EDATA, "%s: line %llu: label '%.40s' is "
				    "not a class index (0 to %d); use --targets for numeric "
				    "targets", name, (unsigned long long)L->line[i], t,
				    FL_MAX_CLASSES - 1);
			y[i] = (int32_t)v;
			if ((uint32_t)y[i] + 1 > maxc)
				maxc = (uint32_t)y[i] + 1;
		}
		return fl_map_set_uint(meta, "classes", maxc);
	}
	/* Class names: sorted distinct labels become 0, 1, ... */
	if (!(sorted = malloc(n * sizeof(*sorted))))
		return fl_err(err, FL_EFAIL, "out of memory");
	memcpy(sorted, L->off, n * sizeof(*sorted));
	sort_base = (const char *)L->text.data;
	qsort(sorted, n, sizeof(*sorted), cmp_label);
	fl_val_array(&names);
	for (uint64_t i = 0; i < n; i++) {
		if (i && !strcmp(sort_base + sorted[i], sort_base + sorted[i - 1]))
			continue;
		if (ndistinct == FL_MAX_CLASSES) {
			free(sorted);
			fl_val_release(&names);
			return fl_err(err, FL_ELIMIT, "%s: more than %d distinct labels "
			    "in the label column", name, FL_MAX_CLASSES);
		}
		if (fl_val_str(&s, sort_base + sorted[i]) || fl_array_push(&names, &s)) {
			free(sorted);
			fl_val_release(&names);
			return fl_err(err, FL_EFAIL, "out of memory");
		}
		ndistinct++;
	}
	free(sorted);
	for (uint64_t i = 0; i < n; i++) {
		/* Binary search of the row's label among the names. */
		const char *t = sort_base + L->off[i];
		size_t lo = 0, hi = names.v.a.n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strcmp(names.v.a.items[mid].v.s.p, t);
			if (c == 0) {
				lo = mid;
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		y[i] = (int32_t)lo;
	}
	if (fl_map_set_uint(meta, "classes", ndistinct) ||
	    fl_map_set(meta, "class_names", &names)) {
		fl_val_release(&names);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	return FL_OK;
}

static int
labels_add(struct csv_labels *L, uint64_t row, const struct csv_field *f,
    uint64_t line)
{
	double v;

	if (row == L->cap) {
		size_t nc = L->cap ? 2 * L->cap : 1024;
		uint64_t *o = realloc(L->off, nc * sizeof(*o));
		if (!o)
			return FL_EFAIL;
		L->off = o;
		if (!(o = realloc(L->line, nc * sizeof(*o))))
			return FL_EFAIL;
		L->line = o;
		L->cap = nc;
	}
	L->off[row] = L->text.len;
	L->line[row] = line;
	if (field_number(f, &v))
		L->all_numbers = 0;
	if (fl_buf_add(&L->text, f->p, f->n) || fl_buf_add(&L->text, "", 1))
		return FL_EFAIL;
	return FL_OK;
}

int
fl_csv_parse(struct fl_blobmem *b, const char *text, size_t len,
    const char *name, const struct fl_csv_opts *o, char *err)
{
	struct fl_limits lim;
	struct fl_buf xs, ts, q;
	struct csv_labels L;
	struct csv_field *f = NULL;
	size_t fcap = 0, nf = 0, ncols = 0, lc = 0, nlab;
	uint64_t line = 0, n = 0;
	const char *s = text, *end = text + len;
	int skip_header = o->header, rc = FL_OK, k = o->targets;
	char show[64];

	fl_limits_default(&lim);
	memset(&L, 0, sizeof(L));
	L.all_numbers = 1;
	fl_buf_init(&L.text, (size_t)(lim.tensor > SIZE_MAX / 2 ? SIZE_MAX / 2 : lim.tensor));
	fl_buf_init(&xs, (size_t)(lim.tensor > SIZE_MAX / 2 ? SIZE_MAX / 2 : lim.tensor));
	fl_buf_init(&ts, xs.max);
	fl_buf_init(&q, 0);
	nlab = k > 0 ? (size_t)k : 1;
	if (k < 0)
		return fl_err(err, FL_EUSAGE, "targets must not be negative");
	if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3;	/* a UTF-8 byte order mark */
	while (s < end) {
		const char *e = memchr(s, '\n', (size_t)(end - s)), *ls = s;
		size_t ll;
		int blank = 1;

		if (!e)
			e = end;
		s = e < end ? e + 1 : end;
		line++;
		ll = (size_t)(e - ls);
		if (ll && ls[ll - 1] == '\r')
			ll--;
		if (ll > FL_CSV_MAX_LINE) {
			rc = fl_err(err, FL_ELIMIT, "%s: line %llu: longer than %d bytes",
			    name, (unsigned long long)line, FL_CSV_MAX_LINE);
			goto out;
		}
		for (size_t i = 0; i < ll && blank; i++)
			if (ls[i] != ' ' && ls[i] != '\t')
				blank = 0;
		if (blank)
			continue;
		if (memchr(ls, 0, ll)) {
			rc = fl_err(err, FL_EBLOB, "%s: line %llu: a NUL byte (not a text "
			    "file?)", name, (unsigned long long)line);
			goto out;
		}
		if ((rc = csv_split(ls, ll, &q, &f, &fcap, &nf, name, line, err)))
			goto out;
		if (skip_header) {
			skip_header = 0;
			continue;
		}
		if (ncols == 0) {
			long c;
			ncols = nf;
			if (ncols < nlab + 1) {
				rc = fl_err(err, FL_EDATA, "%s: line %llu: %zu field%s; a "
				    "dataset needs at least one feature and %zu label "
				    "column%s", name, (unsigned long long)line, nf,
				    nf == 1 ? "" : "s", nlab, nlab == 1 ? "" : "s");
				goto out;
			}
			c = !o->label_set ? (long)(ncols - nlab) : o->label_column < 0 ?
			    (long)ncols + o->label_column : o->label_column;
			if (c < 0 || (size_t)c + nlab > ncols) {
				rc = fl_err(err, FL_EUSAGE, "%s: label column %d is out of "
				    "range: lines have %zu fields", name, o->label_column,
				    ncols);
				goto out;
			}
			lc = (size_t)c;
		}
		if (nf != ncols) {
			rc = fl_err(err, FL_EBLOB, "%s: line %llu: %zu field%s, expected "
			    "%zu as on the first line", name, (unsigned long long)line,
			    nf, nf == 1 ? "" : "s", ncols);
			goto out;
		}
		for (size_t i = 0; i < nf; i++) {
			double v;
			float fv;
			int islabel = i >= lc && i < lc + nlab;

			if (islabel && k == 0) {
				if (labels_add(&L, n, &f[i], line)) {
					rc = fl_err(err, FL_ELIMIT, "%s: line %llu: too much "
					    "label text", name, (unsigned long long)line);
					goto out;
				}
				continue;
			}
			if (field_number(&f[i], &v)) {
				rc = fl_err(err, FL_EBLOB, "%s: line %llu, field %zu: '%s' is "
				    "not a number%s", name, (unsigned long long)line, i + 1,
				    field_show(&f[i], show, sizeof(show)),
				    n == 0 && !o->header ? " (a header line? use --header)" : "");
				goto out;
			}
			fv = (float)v;
			if (!isfinite(fv)) {
				rc = fl_err(err, FL_EDATA, "%s: line %llu, field %zu: '%s' is "
				    "out of float range", name, (unsigned long long)line,
				    i + 1, field_show(&f[i], show, sizeof(show)));
				goto out;
			}
			if (fl_buf_add(islabel ? &ts : &xs, &fv, sizeof(fv))) {
				rc = fl_err(err, FL_ELIMIT, "%s: line %llu: the dataset exceeds "
				    "the limit of %llu bytes per tensor", name,
				    (unsigned long long)line, (unsigned long long)lim.tensor);
				goto out;
			}
		}
		n++;
	}
	if (n == 0) {
		rc = fl_err(err, FL_EBLOB, "%s: no data rows (%s)", name,
		    line ? "only blank or header lines" : "empty file");
		goto out;
	}
	{
		uint64_t xsh[2] = { n, ncols - nlab }, ysh[2] = { n, (uint64_t)k };
		int32_t *y = NULL;

		if ((rc = fl_blobmem_init(b, "dataset"))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto out;
		}
		if ((rc = adopt(b, "x", FL_F32, 2, xsh, xs.data, err)) < 0) {
			rc = FL_EFAIL;
			goto fail;
		}
		fl_buf_init(&xs, 0);
		if (k > 0) {
			if ((rc = adopt(b, "y", FL_F32, 2, ysh, ts.data, err)) < 0) {
				rc = FL_EFAIL;
				goto fail;
			}
			fl_buf_init(&ts, 0);
			rc = FL_OK;
		} else {
			if (!(y = malloc(n * sizeof(*y))) ||
			    adopt(b, "y", FL_I32, 1, ysh, y, err) < 0) {
				free(y);
				rc = fl_err(err, FL_EFAIL, "out of memory");
				goto fail;
			}
			if ((rc = csv_classes(&L, n, y, &b->h.meta, name, err)))
				goto fail;
		}
		if (fl_map_set_uint(&b->h.meta, "samples", n) ||
		    fl_map_set_uint(&b->h.meta, "features", ncols - nlab) ||
		    (k > 0 && fl_map_set_uint(&b->h.meta, "targets", (uint64_t)k)) ||
		    fl_map_set_str(&b->h.meta, "source", o->source ? o->source : base_name(name))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto fail;
		}
		goto out;
	}
fail:
	/* It frees what adopt() kept, which the analyzer misses. */
	fl_blobmem_release(b);	/* NOLINT(clang-analyzer-unix.Malloc) */
out:
	free(f);
	free(L.off);
	free(L.line);
	fl_buf_release(&L.text);
	fl_buf_release(&xs);
	fl_buf_release(&ts);
	fl_buf_release(&q);
	return rc;
}

int
fl_csv_read(struct fl_blobmem *b, const char *path, const struct fl_csv_opts *o,
    char *err)
{
	struct fl_limits lim;
	struct fl_buf text;
	const char *name = strcmp(path, "-") ? path : "<stdin>";
	int rc;

	fl_limits_default(&lim);
	if ((rc = slurp(&text, path, lim.tensor, err)))
		return rc;
	rc = fl_csv_parse(b, (const char *)text.data, text.len, name, o, err);
	fl_buf_release(&text);
	return rc;
}

/* IDX. */

struct idx {
	gzFile gz;
	const char *path;
	int ndim;
	uint64_t shape[4];
	uint64_t nbytes;
};

static int
gz_fail(gzFile gz, const char *path, const char *what, char *err)
{
	int errnum;
	const char *msg = gzerror(gz, &errnum);

	if (errnum == Z_ERRNO)
		return fl_errno(err, FL_EIO, "%s: read failed", path);
	return fl_err(err, FL_EBLOB, "%s: %s: %s", path, what,
	    errnum == Z_BUF_ERROR ? "truncated" : msg);
}

/* Read up to n bytes; the count read, or -1 (err set). */
static int64_t
gz_read(gzFile gz, void *p, uint64_t n, const char *path, char *err)
{
	uint64_t got = 0;

	while (got < n) {
		unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
		int k = gzread(gz, (unsigned char *)p + got, chunk);
		if (k < 0) {
			gz_fail(gz, path, "corrupt gzip data", err);
			return -1;
		}
		if (k == 0)
			break;
		got += (uint64_t)k;
	}
	return (int64_t)got;
}

static int
idx_open(struct idx *x, const char *path, int want_ndim, uint64_t max, char *err)
{
	unsigned char hd[4 + 4 * 4];
	struct stat st;
	int64_t k;
	uint32_t magic;
	int fd;

	memset(x, 0, sizeof(*x));
	x->path = path;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fl_errno(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		st.st_size = -1;
	if (!(x->gz = gzdopen(fd, "rb"))) {
		close(fd);
		return fl_err(err, FL_EFAIL, "%s: out of memory", path);
	}
	if ((k = gz_read(x->gz, hd, 4, path, err)) < 0)
		return FL_EBLOB;
	if (k == 0)
		return fl_err(err, FL_EBLOB, "%s: empty file", path);
	if (k < 4)
		return fl_err(err, FL_EBLOB, "%s: truncated in the magic number", path);
	magic = (uint32_t)hd[0] << 24 | (uint32_t)hd[1] << 16 | (uint32_t)hd[2] << 8 | hd[3];
	if (hd[0] || hd[1] || hd[2] != 0x08 || hd[3] == 0 || hd[3] > 4)
		return fl_err(err, FL_EBLOB, "%s: bad magic 0x%08x: not an IDX file of "
		    "unsigned bytes (0x00000801 labels, 0x00000803 images)", path, magic);
	x->ndim = hd[3];
	if ((want_ndim == 1 && x->ndim != 1) || (want_ndim > 1 && x->ndim < 2))
		return fl_err(err, FL_EBLOB, "%s: magic 0x%08x: %s, expected %s", path,
		    magic, x->ndim == 1 ? "a labels file" : "an images file",
		    want_ndim == 1 ? "labels (0x00000801)" : "images (0x00000803)");
	if ((k = gz_read(x->gz, hd + 4, 4 * (uint64_t)x->ndim, path, err)) < 0)
		return FL_EBLOB;
	if (k < 4 * x->ndim)
		return fl_err(err, FL_EBLOB, "%s: truncated in the dimensions", path);
	x->nbytes = 1;
	for (int i = 0; i < x->ndim; i++) {
		const unsigned char *p = hd + 4 + 4 * i;
		x->shape[i] = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
		    (uint64_t)p[2] << 8 | p[3];
		if (x->shape[i] == 0)
			return fl_err(err, FL_EBLOB, "%s: dimension %d is zero", path, i);
		x->nbytes *= x->shape[i];	/* at most 2^32 each, and 4 checked below */
		if (x->nbytes > max)
			return fl_err(err, FL_ELIMIT, "%s: declares more than the limit "
			    "of %llu bytes", path, (unsigned long long)max);
	}
	/* Check the declared size against the file before allocating it. */
	if (st.st_size >= 0 && gzdirect(x->gz) &&
	    x->nbytes > (uint64_t)st.st_size - (uint64_t)k - 4)
		return fl_err(err, FL_EBLOB, "%s: truncated: the header declares %llu "
		    "data bytes, the file holds %lld", path,
		    (unsigned long long)x->nbytes, (long long)st.st_size - k - 4);
	if (st.st_size >= 0 && !gzdirect(x->gz) &&
	    x->nbytes / FL_DEFLATE_MAX_RATIO > (uint64_t)st.st_size)
		return fl_err(err, FL_EBLOB, "%s: truncated: the header declares %llu "
		    "data bytes, more than %lld gzipped bytes can hold", path,
		    (unsigned long long)x->nbytes, (long long)st.st_size);
	return FL_OK;
}

static int
idx_data(struct idx *x, unsigned char *p, char *err)
{
	unsigned char extra;
	int64_t k;

	if ((k = gz_read(x->gz, p, x->nbytes, x->path, err)) < 0)
		return FL_EBLOB;
	if ((uint64_t)k < x->nbytes)
		return fl_err(err, FL_EBLOB, "%s: truncated: the header declares %llu "
		    "data bytes, the file holds %lld", x->path,
		    (unsigned long long)x->nbytes, (long long)k);
	if ((k = gz_read(x->gz, &extra, 1, x->path, err)) < 0)
		return FL_EBLOB;
	if (k)
		return fl_err(err, FL_EBLOB, "%s: data after the %llu bytes the header "
		    "declares", x->path, (unsigned long long)x->nbytes);
	return FL_OK;
}

int
fl_idx_read(struct fl_blobmem *b, const char *images, const char *labels,
    int normalize, char *err)
{
	struct fl_limits lim;
	struct idx xi, yi;
	unsigned char *px = NULL;
	uint64_t n, feat;
	uint32_t classes = 10;
	int rc, i;

	fl_limits_default(&lim);
	memset(&yi, 0, sizeof(yi));
	if ((rc = idx_open(&xi, images, 3, lim.tensor / (normalize ? 4 : 1), err)))
		goto out;
	if ((rc = idx_open(&yi, labels, 1, lim.tensor, err)))
		goto out;
	n = xi.shape[0];
	feat = xi.nbytes / n;
	if (yi.shape[0] != n) {
		rc = fl_err(err, FL_EBLOB, "%s holds %llu images but %s holds %llu "
		    "labels", images, (unsigned long long)n, labels,
		    (unsigned long long)yi.shape[0]);
		goto out;
	}
	if ((rc = fl_blobmem_init(b, "dataset"))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	if ((i = fl_blobmem_add(b, "x", normalize ? FL_F32 : FL_U8, xi.ndim, xi.shape,
	    &lim, err)) < 0) {
		rc = -i;
		goto fail;
	}
	if (normalize && !(px = malloc(xi.nbytes))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto fail;
	}
	if ((rc = idx_data(&xi, normalize ? px : b->data[i], err)))
		goto fail;
	if (normalize) {
		/* cppcheck-suppress invalidPointerCast ; calloc'd for this f32 tensor */
		float *x = (float *)b->data[i];
		for (uint64_t j = 0; j < xi.nbytes; j++)
			x[j] = px[j] / 255.0f;
	}
	if ((i = fl_blobmem_add(b, "y", FL_U8, 1, yi.shape, &lim, err)) < 0) {
		rc = -i;
		goto fail;
	}
	if ((rc = idx_data(&yi, b->data[i], err)))
		goto fail;
	for (uint64_t j = 0; j < n; j++)
		if (b->data[i][j] + 1u > classes)
			classes = b->data[i][j] + 1u;
	if (fl_map_set_uint(&b->h.meta, "samples", n) ||
	    fl_map_set_uint(&b->h.meta, "features", feat) ||
	    fl_map_set_uint(&b->h.meta, "classes", classes) ||
	    fl_map_set_str(&b->h.meta, "source", base_name(images))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto fail;
	}
	goto out;
fail:
	fl_blobmem_release(b);
out:
	free(px);
	if (xi.gz)
		gzclose(xi.gz);
	if (yi.gz)
		gzclose(yi.gz);
	return rc;
}

/* Datasets as floats. */

void
fl_dataset_init(struct fl_dataset *d)
{
	memset(d, 0, sizeof(*d));
	fl_val_map(&d->meta);
}

void
fl_dataset_release(struct fl_dataset *d)
{
	if (d->xmap.base)
		fl_map_release(&d->xmap);
	else
		free(d->x);
	free(d->y);
	free(d->targets);
	fl_val_release(&d->meta);
	fl_dataset_init(d);
}

static int
is_int_dtype(enum fl_dtype t)
{
	return t == FL_I8 || t == FL_U8 || t == FL_I32 || t == FL_I64;
}

/*
 * x into d: a raw float32 tensor of a file is mapped from the page cache
 * (read-only, shared with every process that maps it: a worker's fits and
 * a local fl-fit start at once) and checked by its CRC-32 here; any other
 * is read and converted into memory of its own.
 */
static int
read_x(struct fl_dataset *d, struct fl_reader *r, size_t xi, uint64_t numel,
    char *err)
{
	const struct fl_tensor *t = &r->h->t[xi];
	int rc;

	if (t->dtype == FL_F32 && t->enc == FL_RAW) {
		rc = fl_reader_map(r, xi, &d->xmap, err);
		if (rc == FL_OK) {
			if (fl_crc32(0, d->xmap.data, d->xmap.size) != t->crc) {
				fl_map_release(&d->xmap);
				return fl_err(err, FL_EBLOB, "%s: tensor %s: crc mismatch",
				    r->name, t->name);
			}
			d->x = (float *)(uintptr_t)d->xmap.data;
			return FL_OK;
		}
		if (rc != FL_EFAIL)
			return rc;
		/* not mappable (a pipe): read it */
	}
	if (!(d->x = malloc(numel ? numel * sizeof(float) : 1)))
		return fl_err(err, FL_EFAIL, "out of memory");
	return fl_reader_tensor_f32(r, xi, d->x, err);
}

/* Find x and y of a dataset header and check they agree. */
static int
dataset_tensors(const struct fl_header *h, const char *name, int *xi, int *yi,
    uint64_t *n, int need_y, char *err)
{
	const struct fl_tensor *x, *y;

	if (strcmp(h->kind, "dataset"))
		return fl_err(err, FL_EDATA, "%s: a %s blob, not a dataset", name, h->kind);
	*xi = fl_header_find(h, "x");
	*yi = need_y ? fl_header_find(h, "y") : -1;
	if (*xi < 0 || (need_y && *yi < 0))
		return fl_err(err, FL_EDATA, "%s: dataset has no tensor %s", name,
		    *xi < 0 ? "x" : "y");
	x = &h->t[*xi];
	if (!need_y) {
		if (x->ndim < 1)
			return fl_err(err, FL_EDATA, "%s: dataset tensor x needs shape "
			    "[n, features...]", name);
		*n = x->shape[0];
		return FL_OK;
	}
	y = &h->t[*yi];
	if (x->ndim < 1 || y->ndim < 1 || y->ndim > 2)
		return fl_err(err, FL_EDATA, "%s: dataset tensors x and y need shapes "
		    "[n, features...] and [n] or [n, k]", name);
	if (x->shape[0] != y->shape[0])
		return fl_err(err, FL_EDATA, "%s: x has %llu rows but y has %llu", name,
		    (unsigned long long)x->shape[0], (unsigned long long)y->shape[0]);
	if (!is_int_dtype(y->dtype) && !fl_dtype_is_float(y->dtype))
		return fl_err(err, FL_EDATA, "%s: y has dtype %s", name,
		    fl_dtype_name(y->dtype));
	if (is_int_dtype(y->dtype) && y->ndim != 1)
		return fl_err(err, FL_EDATA, "%s: integer labels y must have shape [n]",
		    name);
	*n = x->shape[0];
	return FL_OK;
}

/* Integer labels (n, any integer dtype) into int32 class indices. */
static int
to_classes(int32_t *y, const void *src, enum fl_dtype dt, uint64_t n,
    const struct fl_val *meta, uint32_t *classes, const char *name, char *err)
{
	uint64_t declared = 0;
	int64_t maxv = -1;
	int have = !fl_val_get_u64(fl_map_get(meta, "classes"), &declared);

	for (uint64_t i = 0; i < n; i++) {
		int64_t v;
		switch (dt) {
		case FL_I8: v = ((const int8_t *)src)[i]; break;
		case FL_U8: v = ((const uint8_t *)src)[i]; break;
		case FL_I32: v = ((const int32_t *)src)[i]; break;
		default: v = ((const int64_t *)src)[i]; break;
		}
		if (v < 0 || v >= FL_MAX_CLASSES || (have && (uint64_t)v >= declared))
			return fl_err(err, FL_EDATA, "%s: example %llu has label %lld, not "
			    "a class index (0 to %llu)", name, (unsigned long long)i,
			    (long long)v, (unsigned long long)(have && declared <=
			    FL_MAX_CLASSES ? declared : FL_MAX_CLASSES) - 1);
		y[i] = (int32_t)v;
		if (v > maxv)
			maxv = v;
	}
	*classes = have ? (uint32_t)declared : (uint32_t)(maxv + 1);
	return FL_OK;
}

/* need_y 0: the inputs only (x), for prediction; y is not read. */
static int
dataset_read(struct fl_dataset *d, struct fl_reader *r,
    const struct fl_header *h, int need_y, char *err)
{
	const struct fl_tensor *x, *y;
	uint64_t n, numel;
	void *tmp = NULL;
	int xi, yi, rc;

	fl_dataset_init(d);
	if ((rc = dataset_tensors(h, r->name, &xi, &yi, &n, need_y, err)))
		return rc;
	x = &h->t[xi];
	y = yi >= 0 ? &h->t[yi] : NULL;
	if (n == 0)
		return fl_err(err, FL_EDATA, "%s: dataset has no examples", r->name);
	numel = fl_tensor_numel(x);
	if (numel > SIZE_MAX / sizeof(float) / 2)
		return fl_err(err, FL_ELIMIT, "%s: x is too large", r->name);
	d->n = n;
	d->features = numel / n;
	d->xndim = x->ndim;
	memcpy(d->xshape, x->shape, sizeof(d->xshape));
	if (fl_val_copy(&d->meta, &h->meta)) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto fail;
	}
	if (!y) {
		/* inputs only */
	} else if (fl_dtype_is_float(y->dtype)) {
		d->k = y->ndim == 2 ? y->shape[1] : 1;
		if (!(d->targets = malloc(n * d->k * sizeof(float) + 1))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto fail;
		}
	} else if (!(d->y = malloc(n * sizeof(int32_t))) ||
	    !(tmp = malloc(fl_tensor_nbytes(y)))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto fail;
	}
	/* The reader serves tensors in header order. */
	for (int pass = 0; pass < (y ? 2 : 1); pass++) {
		int i = !y || (pass == 0) == (xi < yi) ? xi : yi;
		if (i == xi)
			rc = read_x(d, r, (size_t)xi, numel, err);
		else if (d->targets)
			rc = fl_reader_tensor_f32(r, (size_t)yi, d->targets, err);
		else
			rc = fl_reader_tensor(r, (size_t)yi, tmp, err);
		if (rc)
			goto fail;
	}
	if (y && d->y && (rc = to_classes(d->y, tmp, y->dtype, n, &h->meta, &d->classes,
	    r->name, err)))
		goto fail;
	free(tmp);
	return FL_OK;
fail:
	free(tmp);
	fl_dataset_release(d);
	return rc;
}

int
fl_dataset_read(struct fl_dataset *d, struct fl_reader *r,
    const struct fl_header *h, char *err)
{
	return dataset_read(d, r, h, 1, err);
}

static int
dataset_load(struct fl_dataset *d, const char *path, int need_y, char *err)
{
	struct fl_reader r;
	struct fl_header h;
	int rc;

	fl_dataset_init(d);
	if ((rc = fl_reader_open(&r, path, err)))
		return rc;
	rc = fl_reader_next(&r, &h, err);
	if (rc == FL_EOF)
		rc = fl_err(err, FL_EBLOB, "%s: empty (no blob)", r.name);
	if (rc == FL_OK) {
		rc = dataset_read(d, &r, &h, need_y, err);
		fl_header_release(&h);
	}
	fl_reader_close(&r);
	return rc;
}

int
fl_dataset_load(struct fl_dataset *d, const char *path, char *err)
{
	return dataset_load(d, path, 1, err);
}

int
fl_dataset_load_inputs(struct fl_dataset *d, const char *path, char *err)
{
	return dataset_load(d, path, 0, err);
}

int
fl_blobmem_labels(const struct fl_blobmem *b, int32_t **y, uint32_t *classes,
    char *err)
{
	uint64_t n;
	int xi, yi, rc;

	*y = NULL;
	if ((rc = dataset_tensors(&b->h, "dataset", &xi, &yi, &n, 1, err)))
		return rc;
	if (!is_int_dtype(b->h.t[yi].dtype))
		return fl_err(err, FL_EDATA, "the dataset has float targets, not class "
		    "labels");
	if (!(*y = malloc(n ? n * sizeof(int32_t) : 1)))
		return fl_err(err, FL_EFAIL, "out of memory");
	if ((rc = to_classes(*y, b->data[yi], b->h.t[yi].dtype, n, &b->h.meta,
	    classes, "dataset", err))) {
		free(*y);
		*y = NULL;
	}
	return rc;
}
