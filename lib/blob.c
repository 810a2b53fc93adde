/* blob.c: FLB v1 headers and the streaming blob reader. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zlib.h>

#include "blob.h"

#define RBUF (1 << 20)		/* read-ahead, at most */
#define RBUF_FIRST (64 << 10)	/* the first: a header seldom needs more */
#define VCHUNK (256 << 10)	/* verify in pieces that stay in L2 */

uint64_t
fl_tensor_numel(const struct fl_tensor *t)
{
	uint64_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

uint64_t
fl_tensor_nbytes(const struct fl_tensor *t)
{
	return fl_tensor_numel(t) * fl_dtype_size(t->dtype);
}

void
fl_shape_str(const struct fl_tensor *t, char *out, size_t outlen)
{
	size_t n = 0;

	n += (size_t)snprintf(out, outlen, "[");
	for (int i = 0; i < t->ndim && n < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n, "%s%llu", i ? "," : "",
		    (unsigned long long)t->shape[i]);
	if (n < outlen)
		snprintf(out + n, outlen - n, "]");
}

int
fl_header_init(struct fl_header *h, const char *kind)
{
	memset(h, 0, sizeof(*h));
	fl_val_map(&h->meta);
	if (!(h->kind = strdup(kind ? kind : "model")))
		return FL_EFAIL;
	return FL_OK;
}

void
fl_header_release(struct fl_header *h)
{
	for (size_t i = 0; i < h->ntensors; i++)
		free(h->t[i].name);
	free(h->t);
	free(h->kind);
	fl_val_release(&h->meta);
	memset(h, 0, sizeof(*h));
	fl_val_map(&h->meta);
}

int
fl_header_copy(struct fl_header *dst, const struct fl_header *src)
{
	if (fl_header_init(dst, src->kind))
		return FL_EFAIL;
	fl_val_release(&dst->meta);
	if (fl_val_copy(&dst->meta, &src->meta))
		goto fail;
	for (size_t i = 0; i < src->ntensors; i++) {
		const struct fl_tensor *t = &src->t[i];
		int j = fl_header_add(dst, t->name, t->dtype, t->ndim, t->shape);
		if (j < 0)
			goto fail;
		dst->t[j].enc = t->enc;
		dst->t[j].size = t->size;
		dst->t[j].crc = t->crc;
		dst->t[j].offset = t->offset;
	}
	dst->hlen = src->hlen;
	dst->data_off = src->data_off;
	dst->total = src->total;
	return FL_OK;
fail:
	fl_header_release(dst);
	return FL_EFAIL;
}

int
fl_header_add(struct fl_header *h, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape)
{
	struct fl_tensor *t;

	if (ndim < 0 || ndim > FL_MAX_DIMS)
		return -1;
	if (!(h->ntensors & (h->ntensors - 1)) || h->ntensors == 0) {
		size_t cap = h->ntensors ? 2 * h->ntensors : 4;
		t = realloc(h->t, cap * sizeof(*t));
		if (!t)
			return -1;
		h->t = t;
	}
	t = &h->t[h->ntensors];
	memset(t, 0, sizeof(*t));
	if (!(t->name = strdup(name)))
		return -1;
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->enc = FL_RAW;
	t->size = fl_tensor_nbytes(t);
	return (int)h->ntensors++;
}

int
fl_header_find(const struct fl_header *h, const char *name)
{
	for (size_t i = 0; i < h->ntensors; i++)
		if (!strcmp(h->t[i].name, name))
			return (int)i;
	return -1;
}

static uint64_t
align64(uint64_t x)
{
	return (x + FL_ALIGN - 1) & ~(uint64_t)(FL_ALIGN - 1);
}

void
fl_header_layout(struct fl_header *h)
{
	uint64_t off = align64(FL_MAGIC_LEN + 4 + h->hlen);

	h->data_off = off;
	for (size_t i = 0; i < h->ntensors; i++) {
		h->t[i].offset = off;
		off += align64(h->t[i].size);
	}
	h->total = off;
}

uint64_t
fl_header_nparams(const struct fl_header *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i < h->ntensors; i++)
		n += fl_tensor_numel(&h->t[i]);
	return n;
}

static uint64_t
env_size(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	uint64_t v;

	if (s && *s && fl_parse_size(s, &v) == FL_OK)
		return v;
	return def;
}

void
fl_limits_default(struct fl_limits *l)
{
	l->header = 64ULL << 20;
	l->tensor = env_size("FL_MAX_TENSOR_BYTES", 16ULL << 30);
	l->total = env_size("FL_MAX_BLOB_BYTES", 64ULL << 30);
	l->ntensors = 65536;
}

static int
decode_tensor(struct fl_tensor *t, const struct fl_val *m, size_t idx,
    const struct fl_limits *lim, char *err)
{
	const struct fl_val *shape, *v;
	const char *s;
	uint64_t u, numel = 1, nbytes;
	char where[64];

	snprintf(where, sizeof(where), "tensor #%zu", idx);
	if (m->type != FL_V_MAP)
		return fl_err(err, FL_EBLOB, "%s: not a map", where);
	s = fl_map_get_str(m, "name");
	if (!s || !*s || strlen(s) > FL_MAX_NAME)
		return fl_err(err, FL_EBLOB, "%s: missing or bad name", where);
	if (!(t->name = strdup(s)))
		return fl_err(err, FL_EFAIL, "out of memory");
	s = fl_map_get_str(m, "dtype");
	if (!s)
		return fl_err(err, FL_EBLOB, "tensor %s: missing dtype", t->name);
	if (fl_dtype_parse(s, &t->dtype))
		return fl_err(err, FL_EBLOB, "tensor %s: unknown dtype '%.32s'", t->name, s);
	shape = fl_map_get(m, "shape");
	if (!shape || shape->type != FL_V_ARRAY)
		return fl_err(err, FL_EBLOB, "tensor %s: missing shape", t->name);
	if (shape->v.a.n > FL_MAX_DIMS)
		return fl_err(err, FL_EBLOB, "tensor %s: %zu dimensions, at most %d",
		    t->name, shape->v.a.n, FL_MAX_DIMS);
	t->ndim = (int)shape->v.a.n;
	for (int i = 0; i < t->ndim; i++) {
		if (fl_val_get_u64(&shape->v.a.items[i], &u) ||
		    shape->v.a.items[i].type != FL_V_UINT)
			return fl_err(err, FL_EBLOB, "tensor %s: bad shape", t->name);
		t->shape[i] = u;
		if (u && numel > UINT64_MAX / u)
			return fl_err(err, FL_ELIMIT, "tensor %s: shape overflows", t->name);
		numel *= u;
	}
	if (numel > UINT64_MAX / 8)
		return fl_err(err, FL_ELIMIT, "tensor %s: shape overflows", t->name);
	nbytes = numel * fl_dtype_size(t->dtype);
	if (nbytes > lim->tensor)
		return fl_err(err, FL_ELIMIT, "tensor %s: %llu bytes exceeds the "
		    "limit of %llu (FL_MAX_TENSOR_BYTES)", t->name,
		    (unsigned long long)nbytes, (unsigned long long)lim->tensor);
	s = fl_map_get_str(m, "enc");
	if (!s || !strcmp(s, "raw"))
		t->enc = FL_RAW;
	else if (!strcmp(s, "zlib"))
		t->enc = FL_ZLIB;
	else
		return fl_err(err, FL_EBLOB, "tensor %s: unknown encoding '%.32s'",
		    t->name, s);
	v = fl_map_get(m, "size");
	if (fl_val_get_u64(v, &t->size))
		return fl_err(err, FL_EBLOB, "tensor %s: missing size", t->name);
	if (t->enc == FL_RAW && t->size != nbytes) {
		char sh[128];
		fl_shape_str(t, sh, sizeof(sh));
		return fl_err(err, FL_EBLOB, "tensor %s: shape %s of %s needs %llu "
		    "bytes, size says %llu", t->name, sh, fl_dtype_name(t->dtype),
		    (unsigned long long)nbytes, (unsigned long long)t->size);
	}
	if (t->enc == FL_ZLIB && t->size > compressBound(nbytes) + 64)
		return fl_err(err, FL_EBLOB, "tensor %s: compressed size %llu is "
		    "more than deflate can produce from %llu bytes", t->name,
		    (unsigned long long)t->size, (unsigned long long)nbytes);
	if (t->enc == FL_ZLIB && nbytes / FL_DEFLATE_MAX_RATIO > t->size)
		return fl_err(err, FL_EBLOB, "tensor %s: compressed size %llu is "
		    "too small to inflate to %llu bytes", t->name,
		    (unsigned long long)t->size, (unsigned long long)nbytes);
	v = fl_map_get(m, "crc32");
	if (fl_val_get_u64(v, &u) || u > 0xffffffffULL)
		return fl_err(err, FL_EBLOB, "tensor %s: missing crc32", t->name);
	t->crc = (uint32_t)u;
	return FL_OK;
}

int
fl_header_decode(struct fl_header *h, const void *buf, size_t len,
    const struct fl_limits *lim, char *err)
{
	struct fl_val top;
	const struct fl_val *v, *ts;
	const char *kind;
	uint64_t ver;
	int rc;

	memset(h, 0, sizeof(*h));
	fl_val_map(&h->meta);
	if ((rc = fl_val_unpack(&top, buf, len, err))) {
		fl_err_prefix(err, "header");
		return rc == FL_ELIMIT ? FL_ELIMIT : FL_EBLOB;
	}
	rc = FL_EBLOB;
	if (top.type != FL_V_MAP) {
		fl_err(err, rc, "header is not a map");
		goto out;
	}
	v = fl_map_get(&top, "v");
	if (fl_val_get_u64(v, &ver)) {
		fl_err(err, rc, "header has no version");
		goto out;
	}
	if (ver != 1) {
		fl_err(err, rc, "unknown version %llu (this is flkit " FL_VERSION
		    ", which reads version 1)", (unsigned long long)ver);
		goto out;
	}
	kind = fl_map_get_str(&top, "kind");
	if (!kind || !*kind || strlen(kind) > 64) {
		fl_err(err, rc, "header has no kind");
		goto out;
	}
	if (!(h->kind = strdup(kind))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	v = fl_map_get(&top, "meta");
	if (v && v->type != FL_V_MAP && v->type != FL_V_NIL) {
		fl_err(err, rc, "header meta is not a map");
		goto out;
	}
	if (v && v->type == FL_V_MAP) {
		fl_val_release(&h->meta);
		h->meta = *v;	/* move it out of top */
		fl_val_nil((struct fl_val *)v);
	}
	ts = fl_map_get(&top, "tensors");
	if (ts && ts->type != FL_V_ARRAY) {
		fl_err(err, rc, "header tensors is not an array");
		goto out;
	}
	if (ts && ts->v.a.n > lim->ntensors) {
		rc = fl_err(err, FL_ELIMIT, "%zu tensors exceeds the limit of %llu",
		    ts->v.a.n, (unsigned long long)lim->ntensors);
		goto out;
	}
	if (ts && ts->v.a.n) {
		h->t = calloc(ts->v.a.n, sizeof(*h->t));
		if (!h->t) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < ts->v.a.n; i++) {
			h->ntensors = i + 1;
			if ((rc = decode_tensor(&h->t[i], &ts->v.a.items[i], i, lim, err)))
				goto out;
			for (size_t j = 0; j < i; j++) {
				if (!strcmp(h->t[j].name, h->t[i].name)) {
					rc = fl_err(err, FL_EBLOB, "tensor %s appears twice",
					    h->t[i].name);
					goto out;
				}
			}
		}
	}
	h->hlen = len;
	fl_header_layout(h);
	if (h->total > lim->total) {
		rc = fl_err(err, FL_ELIMIT, "blob of %llu bytes exceeds the limit "
		    "of %llu (FL_MAX_BLOB_BYTES)", (unsigned long long)h->total,
		    (unsigned long long)lim->total);
		goto out;
	}
	rc = FL_OK;
out:
	fl_val_release(&top);
	if (rc)
		fl_header_release(h);
	return rc;
}

/* The reader. */

void
fl_reader_fd(struct fl_reader *r, int fd, const char *name)
{
	struct stat st;
	off_t off;

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->name = strdup(name ? name : "<stdin>");
	fl_limits_default(&r->lim);
	r->remain = UINT64_MAX;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (off = lseek(fd, 0, SEEK_CUR)) >= 0 && st.st_size >= off) {
		r->remain = (uint64_t)(st.st_size - off);
		r->base = (uint64_t)off;
	}
}

int
fl_reader_open(struct fl_reader *r, const char *path, char *err)
{
	if (!strcmp(path, "-")) {
		fl_reader_fd(r, 0, "<stdin>");
		return FL_OK;
	}
	return fl_reader_open_at(r, path, 0, path, err);
}

int
fl_reader_open_at(struct fl_reader *r, const char *path, uint64_t off,
    const char *name, char *err)
{
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fl_errno(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s", path);
	if (off && lseek(fd, (off_t)off, SEEK_SET) < 0) {
		fl_errno(err, FL_EIO, "%s: cannot seek to byte %llu", path,
		    (unsigned long long)off);
		close(fd);
		return FL_EIO;
	}
	fl_reader_fd(r, fd, name);
	r->own_fd = 1;
	return FL_OK;
}

uint64_t
fl_reader_offset(const struct fl_reader *r)
{
	return r->remain == UINT64_MAX ? UINT64_MAX : r->base + r->streampos;
}

/*
 * A reader's first buffer, kept by its thread for the next reader: a fresh
 * one is mapped and faulted in page by page (RBUF_FIRST is as big as the
 * blocks fl-serve's malloc maps), 16 pages for each blob a fit opens.
 */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void
spare_init(void)
{
	pthread_key_create(&spare_key, free);
}

static unsigned char *
buf_first(void)
{
	unsigned char *p;

	pthread_once(&spare_once, spare_init);
	if ((p = pthread_getspecific(spare_key))) {
		pthread_setspecific(spare_key, NULL);
		return p;
	}
	return malloc(RBUF_FIRST);
}

static void
buf_free(unsigned char *p, size_t cap)
{
	if (p && cap == RBUF_FIRST) {
		pthread_once(&spare_once, spare_init);
		if (!pthread_getspecific(spare_key) &&
		    pthread_setspecific(spare_key, p) == 0)
			return;
	}
	free(p);
}

void
fl_reader_close(struct fl_reader *r)
{
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	buf_free(r->buf, r->bcap);
	free(r->zbuf);
	free(r->name);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Prefix err with the blob's name (and its place in a stream of several). */
static int
rerr(struct fl_reader *r, int code, char *err)
{
	r->failed = 1;
	if (r->nblob > 1)
		fl_err_prefix(err, "%s (blob %d)", r->name, r->nblob);
	else
		fl_err_prefix(err, "%s", r->name);
	return code;
}

/* Read up to n bytes of the stream; returns bytes read or -1. */
static ssize_t
rd(struct fl_reader *r, void *dst, size_t n)
{
	size_t got = 0;
	ssize_t k;

	if (r->bpos < r->blen) {
		got = r->blen - r->bpos < n ? r->blen - r->bpos : n;
		memcpy(dst, r->buf + r->bpos, got);
		r->bpos += got;
	}
	if (got == n)
		return (ssize_t)got;
	if (n - got >= VCHUNK) {
		k = fl_read_full(r->fd, (char *)dst + got, n - got);
		return k < 0 ? -1 : (ssize_t)got + k;
	}
	/* The buffer is empty here. It starts small, so that opening a blob
	 * for its header reads (and faults in) no megabyte of tensor data it
	 * may then map, and doubles with each refill up to RBUF. */
	if (!r->buf || r->bcap < RBUF) {
		size_t cap = r->buf ? 2 * r->bcap : RBUF_FIRST;
		buf_free(r->buf, r->bcap);
		if (!(r->buf = cap == RBUF_FIRST ? buf_first() : malloc(cap))) {
			r->bcap = r->bpos = r->blen = 0;
			return -1;
		}
		r->bcap = cap;
		r->bpos = r->blen = 0;
	}
	while (got < n) {
		do
			k = read(r->fd, r->buf, r->bcap);
		while (k < 0 && errno == EINTR);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		r->bpos = 0;
		r->blen = (size_t)k;
		size_t take = r->blen < n - got ? r->blen : n - got;
		memcpy((char *)dst + got, r->buf, take);
		r->bpos = take;
		got += take;
	}
	return (ssize_t)got;
}

/* Read exactly n bytes of the current blob, or fail naming what. */
static int
rd_exact(struct fl_reader *r, void *dst, size_t n, const char *what, char *err)
{
	ssize_t k = rd(r, dst, n);

	if (k < 0)
		return rerr(r, fl_errno(err, FL_EIO, "read failed"), err);
	r->pos += (uint64_t)k;
	if ((size_t)k < n)
		return rerr(r, fl_err(err, FL_EBLOB, "truncated in %s "
		    "(%llu bytes in, %zu short)", what,
		    (unsigned long long)r->pos, n - (size_t)k), err);
	return FL_OK;
}

/* Consume bytes up to offset to, checking that they are zero padding. */
static int
rd_pad(struct fl_reader *r, uint64_t to, const char *what, char *err)
{
	unsigned char pad[FL_ALIGN];

	while (r->pos < to) {
		size_t n = to - r->pos < sizeof(pad) ? (size_t)(to - r->pos) : sizeof(pad);
		int rc = rd_exact(r, pad, n, what, err);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (pad[i])
				return rerr(r, fl_err(err, FL_EBLOB, "nonzero padding "
				    "after %s at byte %llu", what,
				    (unsigned long long)(r->pos - n + i)), err);
	}
	return FL_OK;
}

/* Discard bytes up to offset to, without looking at them. */
static int
rd_skip(struct fl_reader *r, uint64_t to, char *err)
{
	uint64_t n, inbuf = r->blen - r->bpos;
	unsigned char tmp[65536];

	if (to < r->pos)
		return rerr(r, fl_err(err, FL_EFAIL, "internal error: skip backwards"), err);
	n = to - r->pos;

	if (n <= inbuf) {
		r->bpos += (size_t)n;
		r->pos = to;
		return FL_OK;
	}
	r->bpos = r->blen;
	r->pos += inbuf;
	n -= inbuf;
	if (r->remain != UINT64_MAX && lseek(r->fd, (off_t)n, SEEK_CUR) >= 0) {
		if (r->streampos + to > r->remain)
			return rerr(r, fl_err(err, FL_EBLOB, "truncated: blob needs "
			    "%llu bytes", (unsigned long long)r->total), err);
		r->pos = to;
		return FL_OK;
	}
	while (r->pos < to) {
		size_t k = to - r->pos < sizeof(tmp) ? (size_t)(to - r->pos) : sizeof(tmp);
		int rc = rd_exact(r, tmp, k, "tensor data", err);
		if (rc)
			return rc;
	}
	return FL_OK;
}

static void
end_blob(struct fl_reader *r)
{
	r->streampos += r->pos;
	r->pos = 0;
	r->h = NULL;
	r->in_tensor = 0;
	free(r->zbuf);
	r->zbuf = NULL;
}

int
fl_reader_next(struct fl_reader *r, struct fl_header *h, char *err)
{
	unsigned char pre[FL_MAGIC_LEN + 4], *hbuf;
	uint64_t hlen;
	ssize_t k;
	int rc;

	if (r->failed)
		return fl_err(err, FL_EFAIL, "%s: read after an error", r->name);
	if (r->h) {
		/* The caller may have released the header: use our own copy
		 * of its length. */
		if ((rc = rd_skip(r, r->total, err)))
			return rc;
		end_blob(r);
	}
	memset(h, 0, sizeof(*h));
	fl_val_map(&h->meta);
	k = rd(r, pre, sizeof(pre));
	if (k < 0)
		return fl_errno(err, FL_EIO, "%s: read failed", r->name);
	if (k == 0)
		return FL_EOF;
	r->nblob++;
	r->pos = (uint64_t)k;
	if ((size_t)k < FL_MAGIC_LEN || memcmp(pre, FL_MAGIC, FL_MAGIC_LEN)) {
		if ((size_t)k >= FL_MAGIC_LEN || memcmp(pre, FL_MAGIC, (size_t)k))
			return rerr(r, fl_err(err, FL_EBLOB, "not a blob (bad magic)"), err);
		return rerr(r, fl_err(err, FL_EBLOB, "truncated in magic"), err);
	}
	if ((size_t)k < sizeof(pre))
		return rerr(r, fl_err(err, FL_EBLOB, "truncated in header length"), err);
	hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
	    (uint64_t)pre[11] << 24;
	if (hlen > r->lim.header)
		return rerr(r, fl_err(err, FL_ELIMIT, "header of %llu bytes exceeds "
		    "the limit of %llu", (unsigned long long)hlen,
		    (unsigned long long)r->lim.header), err);
	if (r->remain != UINT64_MAX && r->streampos + sizeof(pre) + hlen > r->remain)
		return rerr(r, fl_err(err, FL_EBLOB, "truncated in header "
		    "(%llu bytes declared, %llu in the file)", (unsigned long long)hlen,
		    (unsigned long long)(r->remain - r->streampos - sizeof(pre))), err);
	if (!(hbuf = malloc(hlen ? hlen : 1)))
		return rerr(r, fl_err(err, FL_EFAIL, "out of memory"), err);
	if ((rc = rd_exact(r, hbuf, hlen, "header", err))) {
		free(hbuf);
		return rc;
	}
	rc = fl_header_decode(h, hbuf, hlen, &r->lim, err);
	free(hbuf);
	if (rc)
		return rerr(r, rc, err);
	if (r->remain != UINT64_MAX && r->streampos + h->total > r->remain) {
		rc = rerr(r, fl_err(err, FL_EBLOB, "truncated: header declares %llu "
		    "bytes, the file holds %llu", (unsigned long long)h->total,
		    (unsigned long long)(r->remain - r->streampos)), err);
		fl_header_release(h);
		return rc;
	}
	r->h = h;
	r->total = h->total;
	r->next = 0;
	if ((rc = rd_pad(r, h->data_off, "header", err))) {
		r->h = NULL;
		fl_header_release(h);
		return rc;
	}
	return FL_OK;
}

static int
tensor_done(struct fl_reader *r, char *err)
{
	struct fl_tensor *t = &r->h->t[r->next];
	char what[FL_MAX_NAME + 16];

	snprintf(what, sizeof(what), "tensor %s", t->name);
	r->in_tensor = 0;
	r->next++;
	return rd_pad(r, t->offset + ((t->size + FL_ALIGN - 1) & ~(uint64_t)(FL_ALIGN - 1)),
	    what, err);
}

static int
inflate_tensor(struct fl_reader *r, struct fl_tensor *t, char *err)
{
	uint64_t nbytes = fl_tensor_nbytes(t);
	unsigned char *z = NULL, *plain = NULL;
	struct libdeflate_decompressor *d;
	enum libdeflate_result dr;
	size_t used, got;
	int rc;
	char what[FL_MAX_NAME + 16];

	snprintf(what, sizeof(what), "tensor %s", t->name);
	if (!(z = malloc(t->size ? t->size : 1)) ||
	    !(plain = malloc(nbytes ? nbytes : 1)) ||
	    !(r->zbuf = malloc(nbytes ? nbytes : 1))) {
		free(z);
		free(plain);
		return rerr(r, fl_err(err, FL_EFAIL, "%s: out of memory", what), err);
	}
	if ((rc = rd_exact(r, z, t->size, what, err)))
		goto out;
	if (fl_crc32(0, z, t->size) != t->crc) {
		rc = rerr(r, fl_err(err, FL_EBLOB, "tensor %s: crc mismatch", t->name), err);
		goto out;
	}
	/* The decoded length is known, so one call decodes the whole tensor. */
	if (!(d = libdeflate_alloc_decompressor())) {
		rc = rerr(r, fl_err(err, FL_EFAIL, "%s: out of memory", what), err);
		goto out;
	}
	dr = libdeflate_zlib_decompress_ex(d, z, t->size, plain, nbytes, &used, &got);
	libdeflate_free_decompressor(d);
	if (dr != LIBDEFLATE_SUCCESS || used != t->size || got != nbytes) {
		rc = rerr(r, fl_err(err, FL_EBLOB, "tensor %s: compressed data does "
		    "not inflate to its shape", t->name), err);
		goto out;
	}
	fl_unshuffle(r->zbuf, plain, fl_tensor_numel(t), fl_dtype_size(t->dtype));
	r->zpos = 0;
	r->zlen = nbytes;
	rc = FL_OK;
out:
	free(z);
	free(plain);
	if (rc) {
		free(r->zbuf);
		r->zbuf = NULL;
	}
	return rc;
}

int
fl_reader_begin(struct fl_reader *r, size_t i, char *err)
{
	struct fl_tensor *t;
	int rc;

	if (r->failed)
		return fl_err(err, FL_EFAIL, "%s: read after an error", r->name);
	if (!r->h || i >= r->h->ntensors || i < r->next || r->in_tensor)
		return fl_err(err, FL_EFAIL, "%s: tensors must be read in order", r->name);
	t = &r->h->t[i];
	if ((rc = rd_skip(r, t->offset, err)))
		return rc;
	r->next = i;
	r->in_tensor = 1;
	if (t->enc == FL_ZLIB && !(t->size == 0 && fl_tensor_nbytes(t) == 0)) {
		free(r->zbuf);
		r->zbuf = NULL;
		if ((rc = inflate_tensor(r, t, err))) {
			r->in_tensor = 0;
			return rc;
		}
		if (r->zlen == 0) {
			free(r->zbuf);
			r->zbuf = NULL;
			return tensor_done(r, err);
		}
		return FL_OK;
	}
	r->tleft = t->size;
	r->tcrc = 0;
	if (t->size == 0) {
		if (t->crc != 0)
			return rerr(r, fl_err(err, FL_EBLOB, "tensor %s: crc mismatch",
			    t->name), err);
		return tensor_done(r, err);
	}
	return FL_OK;
}

int
fl_reader_read(struct fl_reader *r, void *dst, size_t n, char *err)
{
	struct fl_tensor *t;
	char what[FL_MAX_NAME + 16];
	int rc;

	if (n == 0)
		return FL_OK;
	if (!r->in_tensor)
		return fl_err(err, FL_EFAIL, "%s: no tensor begun", r->name);
	t = &r->h->t[r->next];
	if (r->zbuf) {
		if (n > r->zlen - r->zpos)
			return fl_err(err, FL_EFAIL, "%s: read past tensor %s", r->name, t->name);
		memcpy(dst, r->zbuf + r->zpos, n);
		r->zpos += n;
		if (r->zpos == r->zlen) {
			free(r->zbuf);
			r->zbuf = NULL;
			return tensor_done(r, err);
		}
		return FL_OK;
	}
	if (n > r->tleft)
		return fl_err(err, FL_EFAIL, "%s: read past tensor %s", r->name, t->name);
	snprintf(what, sizeof(what), "tensor %s", t->name);
	if ((rc = rd_exact(r, dst, n, what, err)))
		return rc;
	r->tcrc = fl_crc32(r->tcrc, dst, n);
	r->tleft -= n;
	if (r->tleft == 0) {
		if (r->tcrc != t->crc)
			return rerr(r, fl_err(err, FL_EBLOB, "tensor %s: crc mismatch "
			    "(stored %08x, computed %08x)", t->name, t->crc, r->tcrc), err);
		return tensor_done(r, err);
	}
	return FL_OK;
}

int
fl_reader_tensor(struct fl_reader *r, size_t i, void *dst, char *err)
{
	int rc;

	if ((rc = fl_reader_begin(r, i, err)))
		return rc;
	if (!r->in_tensor)
		return FL_OK;
	return fl_reader_read(r, dst, fl_tensor_nbytes(&r->h->t[i]), err);
}

int
fl_reader_tensor_f32(struct fl_reader *r, size_t i, float *dst, char *err)
{
	struct fl_tensor *t;
	unsigned char *tmp;
	uint64_t n, done = 0, chunk = 1 << 18;
	size_t es;
	int rc;

	if (!r->h || i >= r->h->ntensors)
		return fl_err(err, FL_EFAIL, "%s: no tensor %zu", r->name, i);
	t = &r->h->t[i];
	if (t->dtype == FL_F32)
		return fl_reader_tensor(r, i, dst, err);
	if ((rc = fl_reader_begin(r, i, err)))
		return rc;
	n = fl_tensor_numel(t);
	es = fl_dtype_size(t->dtype);
	if (!(tmp = malloc(chunk * es)))
		return fl_err(err, FL_EFAIL, "out of memory");
	while (r->in_tensor && done < n) {
		uint64_t k = n - done < chunk ? n - done : chunk;
		if ((rc = fl_reader_read(r, tmp, k * es, err)))
			break;
		fl_convert(dst + done, FL_F32, tmp, t->dtype, k);
		done += k;
	}
	free(tmp);
	return rc;
}

/*
 * Check a raw tensor of a regular file through a mapping of the page cache:
 * no copy, so verifying runs near the speed of the checksum.
 */
static int
verify_mapped(struct fl_reader *r, size_t i, char *err)
{
	struct fl_tensor *t = &r->h->t[i];
	const uint64_t win = 16ULL << 20;
	uint64_t at, end, crc = 0;
	long pg = sysconf(_SC_PAGESIZE);
	int rc;

	if ((rc = rd_skip(r, t->offset, err)))
		return rc;
	at = r->base + r->streampos + t->offset;
	end = at + t->size;
	while (at < end) {
		uint64_t lo = at & ~(uint64_t)(pg - 1), n = end - at < win ? end - at : win;
		void *m = mmap(NULL, (size_t)(at - lo + n), PROT_READ, MAP_SHARED, r->fd, (off_t)lo);
		if (m == MAP_FAILED)
			return rerr(r, fl_errno(err, FL_EIO, "tensor %s: mmap failed", t->name), err);
		madvise(m, (size_t)(at - lo + n), MADV_SEQUENTIAL);
		crc = fl_crc32((uint32_t)crc, (unsigned char *)m + (at - lo), (size_t)n);
		munmap(m, (size_t)(at - lo + n));
		at += n;
	}
	/* Move the stream past the tensor and drop what was read ahead. */
	if (lseek(r->fd, (off_t)end, SEEK_SET) < 0)
		return rerr(r, fl_errno(err, FL_EIO, "seek failed"), err);
	r->bpos = r->blen = 0;
	r->pos = t->offset + t->size;
	if ((uint32_t)crc != t->crc)
		return rerr(r, fl_err(err, FL_EBLOB, "tensor %s: crc mismatch "
		    "(stored %08x, computed %08x)", t->name, t->crc, (uint32_t)crc), err);
	r->next = i;
	return tensor_done(r, err);
}

int
fl_reader_map(struct fl_reader *r, size_t i, struct fl_map *m, char *err)
{
	struct fl_tensor *t;
	uint64_t at, lo, end, padded;
	long pg = sysconf(_SC_PAGESIZE);
	int rc;

	memset(m, 0, sizeof(*m));
	if (r->failed || !r->h || i >= r->h->ntensors || i < r->next || r->in_tensor)
		return fl_err(err, FL_EFAIL, "%s: tensors must be read in order", r->name);
	t = &r->h->t[i];
	if (r->remain == UINT64_MAX || t->enc != FL_RAW || t->size == 0)
		return FL_EFAIL;
	if ((rc = rd_skip(r, t->offset, err)))
		return rc;
	padded = (t->size + FL_ALIGN - 1) & ~(uint64_t)(FL_ALIGN - 1);
	at = r->base + r->streampos + t->offset;
	lo = at & ~(uint64_t)(pg - 1);
	end = at + padded;
	m->len = (size_t)(end - lo);
	m->base = mmap(NULL, m->len, PROT_READ, MAP_SHARED, r->fd, (off_t)lo);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return rerr(r, fl_errno(err, FL_EIO, "tensor %s: mmap failed", t->name), err);
	}
	madvise(m->base, m->len, MADV_SEQUENTIAL);
	m->data = (const unsigned char *)m->base + (at - lo);
	m->size = t->size;
	for (uint64_t k = t->size; k < padded; k++) {
		if (m->data[k]) {
			fl_map_release(m);
			return rerr(r, fl_err(err, FL_EBLOB, "nonzero padding after "
			    "tensor %s", t->name), err);
		}
	}
	if (lseek(r->fd, (off_t)end, SEEK_SET) < 0) {
		fl_map_release(m);
		return rerr(r, fl_errno(err, FL_EIO, "seek failed"), err);
	}
	r->bpos = r->blen = 0;
	r->pos = t->offset + padded;
	r->next = i + 1;
	return FL_OK;
}

void
fl_map_release(struct fl_map *m)
{
	if (m->base)
		munmap(m->base, m->len);
	memset(m, 0, sizeof(*m));
}

int
fl_reader_finish(struct fl_reader *r, char *err)
{
	unsigned char *tmp;
	int rc = FL_OK;

	if (!r->h)
		return FL_OK;
	if (!(tmp = malloc(VCHUNK)))
		return fl_err(err, FL_EFAIL, "out of memory");
	while (rc == FL_OK && (r->in_tensor || r->next < r->h->ntensors)) {
		if (!r->in_tensor) {
			struct fl_tensor *t = &r->h->t[r->next];
			if (r->remain != UINT64_MAX && t->enc == FL_RAW && t->size >= (4u << 20))
				rc = verify_mapped(r, r->next, err);
			else
				rc = fl_reader_begin(r, r->next, err);
			continue;
		}
		uint64_t left = r->zbuf ? r->zlen - r->zpos : r->tleft;
		rc = fl_reader_read(r, tmp, left < VCHUNK ? (size_t)left : VCHUNK, err);
	}
	free(tmp);
	if (rc == FL_OK)
		rc = rd_pad(r, r->total, "last tensor", err);
	if (rc == FL_OK)
		end_blob(r);
	return rc;
}
