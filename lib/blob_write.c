/* blob_write.c: writing FLB v1 blobs, whole or a tensor at a time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zlib.h>

#include "blob.h"

static const unsigned char zeros[FL_ALIGN];

static int
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int
buf_write(void *data, const char *p, size_t n)
{
	return fl_buf_add(data, p, n) ? -1 : 0;
}

/*
 * Encode h's header. Sizes and crcs take fixed-width fields, so a header
 * re-encoded after its tensors are written has the same length.
 */
static int
encode_header(struct fl_buf *b, const struct fl_header *h)
{
	msgpack_packer pk;
	int rc;

	b->len = 0;
	msgpack_packer_init(&pk, b, buf_write);
	rc = msgpack_pack_map(&pk, 4) ||
	    pack_cstr(&pk, "v") || msgpack_pack_uint8(&pk, 1) ||
	    pack_cstr(&pk, "kind") || pack_cstr(&pk, h->kind) ||
	    pack_cstr(&pk, "meta") || fl_val_pack(&pk, &h->meta) ||
	    pack_cstr(&pk, "tensors") || msgpack_pack_array(&pk, h->ntensors);
	for (size_t i = 0; !rc && i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		rc = msgpack_pack_map(&pk, 6) ||
		    pack_cstr(&pk, "name") || pack_cstr(&pk, t->name) ||
		    pack_cstr(&pk, "dtype") || pack_cstr(&pk, fl_dtype_name(t->dtype)) ||
		    pack_cstr(&pk, "shape") || msgpack_pack_array(&pk, (size_t)t->ndim);
		for (int d = 0; !rc && d < t->ndim; d++)
			rc = msgpack_pack_uint64(&pk, t->shape[d]);
		rc = rc || pack_cstr(&pk, "enc") ||
		    pack_cstr(&pk, t->enc == FL_ZLIB ? "zlib" : "raw") ||
		    pack_cstr(&pk, "size") || msgpack_pack_fix_uint64(&pk, t->size) ||
		    pack_cstr(&pk, "crc32") || msgpack_pack_fix_uint32(&pk, t->crc);
	}
	if (rc)
		return FL_EFAIL;
	if (b->len > 0xffffffffULL)
		return FL_ELIMIT;
	return FL_OK;
}

static int
put(int fd, const char *name, const void *p, size_t n, char *err)
{
	if (fl_write_full(fd, p, n) < 0)
		return fl_errno(err, FL_EIO, "%s: write failed", name);
	return FL_OK;
}

/* Magic, header length, header and padding. */
static int
put_header(int fd, const char *name, const struct fl_buf *hdr, char *err)
{
	unsigned char pre[FL_MAGIC_LEN + 4];
	uint64_t n = hdr->len, pad;
	int rc;

	memcpy(pre, FL_MAGIC, FL_MAGIC_LEN);
	pre[8] = (unsigned char)n;
	pre[9] = (unsigned char)(n >> 8);
	pre[10] = (unsigned char)(n >> 16);
	pre[11] = (unsigned char)(n >> 24);
	pad = (FL_ALIGN - (sizeof(pre) + n) % FL_ALIGN) % FL_ALIGN;
	if ((rc = put(fd, name, pre, sizeof(pre), err)) ||
	    (rc = put(fd, name, hdr->data, hdr->len, err)) ||
	    (rc = put(fd, name, zeros, (size_t)pad, err)))
		return rc;
	return FL_OK;
}

/* Deflate n elements of size k, byte-shuffled; *out is malloc'd. */
static int
deflate_tensor(unsigned char **out, uint64_t *outlen, const void *data,
    uint64_t n, size_t k, int level, char *err)
{
	uint64_t nbytes = n * k, bound;
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
	unsigned char *sh, *z;
	size_t got;

	if (!c)
		return fl_err(err, FL_EFAIL, "out of memory");
	bound = libdeflate_zlib_compress_bound(c, nbytes);
	sh = malloc(nbytes ? nbytes : 1);
	z = malloc(bound);

	if (!sh || !z) {
		libdeflate_free_compressor(c);
		free(sh);
		free(z);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	fl_shuffle(sh, data, n, k);
	got = libdeflate_zlib_compress(c, sh, nbytes, z, bound);
	libdeflate_free_compressor(c);
	free(sh);
	if (got == 0) {
		free(z);
		return fl_err(err, FL_EFAIL, "deflate failed");
	}
	*out = z;
	*outlen = got;
	return FL_OK;
}

int
fl_blob_write(int fd, const char *name, const struct fl_header *src,
    const void *const *data, int level, char *err)
{
	struct fl_header h;
	struct fl_buf hdr;
	unsigned char **z;
	int rc;

	if (fl_header_copy(&h, src))
		return fl_err(err, FL_EFAIL, "out of memory");
	fl_buf_init(&hdr, 0);
	if (!(z = calloc(h.ntensors + 1, sizeof(*z)))) {
		fl_header_release(&h);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	rc = FL_OK;
	for (size_t i = 0; !rc && i < h.ntensors; i++) {
		struct fl_tensor *t = &h.t[i];
		if (t->enc == FL_ZLIB) {
			rc = deflate_tensor(&z[i], &t->size, data[i], fl_tensor_numel(t),
			    fl_dtype_size(t->dtype), level, err);
			if (!rc)
				t->crc = fl_crc32(0, z[i], t->size);
		} else {
			t->size = fl_tensor_nbytes(t);
			t->crc = fl_crc32(0, data[i], t->size);
		}
	}
	if (!rc && (rc = encode_header(&hdr, &h)))
		fl_err(err, rc, "%s: cannot encode header", name);
	if (!rc)
		rc = put_header(fd, name, &hdr, err);
	for (size_t i = 0; !rc && i < h.ntensors; i++) {
		struct fl_tensor *t = &h.t[i];
		rc = put(fd, name, z[i] ? z[i] : data[i], t->size, err);
		if (!rc)
			rc = put(fd, name, zeros, (FL_ALIGN - t->size % FL_ALIGN) % FL_ALIGN, err);
	}
	for (size_t i = 0; i < h.ntensors; i++)
		free(z[i]);
	free(z);
	fl_buf_release(&hdr);
	fl_header_release(&h);
	return rc;
}

/* The streaming writer. */

static int
spool_open(char *err)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/flkit-spool.XXXXXX", dir);
	if ((fd = mkstemp(path)) < 0)
		return fl_errno(err, FL_EIO, "%s: cannot make a spool file", dir), -1;
	unlink(path);
	return fd;
}

static int
out_fd(struct fl_writer *w)
{
	return w->spool >= 0 ? w->spool : w->fd;
}

/* Finish tensors of no bytes at once. */
static void
skip_empty(struct fl_writer *w)
{
	while (w->cur < w->h.ntensors && fl_tensor_nbytes(&w->h.t[w->cur]) == 0) {
		w->h.t[w->cur].size = 0;
		w->h.t[w->cur].crc = 0;
		w->cur++;
	}
	if (w->cur < w->h.ntensors)
		w->cur_left = fl_tensor_nbytes(&w->h.t[w->cur]);
	w->crc = 0;
	w->zfill = 0;
}

int
fl_writer_begin(struct fl_writer *w, int fd, const char *name,
    const struct fl_header *h, char *err)
{
	struct stat st;
	off_t off;
	int rc, fl;

	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->spool = -1;
	w->level = 6;
	fl_buf_init(&w->hdr, 0);
	if (!(w->name = strdup(name)) || fl_header_copy(&w->h, h)) {
		free(w->name);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (size_t i = 0; i < w->h.ntensors; i++) {
		w->h.t[i].size = w->h.t[i].enc == FL_RAW ? fl_tensor_nbytes(&w->h.t[i]) : 0;
		w->h.t[i].crc = 0;
	}
	if ((rc = encode_header(&w->hdr, &w->h))) {
		fl_err(err, rc, "%s: cannot encode header", name);
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	w->seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    fl >= 0 && !(fl & O_APPEND) && (off = lseek(fd, 0, SEEK_CUR)) >= 0;
	if (w->seekable) {
		w->start = (uint64_t)lseek(fd, 0, SEEK_CUR);
		if ((rc = put_header(fd, name, &w->hdr, err)))
			goto fail;
	} else if ((w->spool = spool_open(err)) < 0) {
		rc = FL_EIO;
		goto fail;
	}
	skip_empty(w);
	return FL_OK;
fail:
	fl_writer_abort(w);
	return rc;
}

static int
tensor_end(struct fl_writer *w, char *err)
{
	struct fl_tensor *t = &w->h.t[w->cur];
	int rc;

	if (t->enc == FL_ZLIB) {
		unsigned char *z;
		rc = deflate_tensor(&z, &t->size, w->zin, fl_tensor_numel(t),
		    fl_dtype_size(t->dtype), w->level, err);
		free(w->zin);
		w->zin = NULL;
		if (rc)
			return rc;
		t->crc = fl_crc32(0, z, t->size);
		rc = put(out_fd(w), w->name, z, t->size, err);
		free(z);
		if (rc)
			return rc;
	} else {
		t->crc = w->crc;
	}
	rc = put(out_fd(w), w->name, zeros, (FL_ALIGN - t->size % FL_ALIGN) % FL_ALIGN, err);
	if (rc)
		return rc;
	w->cur++;
	skip_empty(w);
	return FL_OK;
}

int
fl_writer_write(struct fl_writer *w, const void *data, size_t n, char *err)
{
	struct fl_tensor *t;
	int rc;

	while (n > 0) {
		if (w->cur >= w->h.ntensors)
			return fl_err(err, FL_EFAIL, "%s: more data than tensors", w->name);
		t = &w->h.t[w->cur];
		size_t k = n < w->cur_left ? n : (size_t)w->cur_left;
		if (t->enc == FL_ZLIB) {
			if (!w->zin && !(w->zin = malloc(fl_tensor_nbytes(t))))
				return fl_err(err, FL_EFAIL, "tensor %s: out of memory", t->name);
			memcpy(w->zin + w->zfill, data, k);
			w->zfill += k;
		} else {
			w->crc = fl_crc32(w->crc, data, k);
			if ((rc = put(out_fd(w), w->name, data, k, err)))
				return rc;
		}
		w->cur_left -= k;
		data = (const char *)data + k;
		n -= k;
		if (w->cur_left == 0 && (rc = tensor_end(w, err)))
			return rc;
	}
	return FL_OK;
}

int
fl_writer_write_crc(struct fl_writer *w, const void *data, size_t n,
    uint32_t crc, char *err)
{
	int rc;

	if (n == 0 || w->cur >= w->h.ntensors ||
	    w->h.t[w->cur].enc != FL_RAW || n > w->cur_left)
		return fl_writer_write(w, data, n, err);
	if ((rc = put(out_fd(w), w->name, data, n, err)))
		return rc;
	w->crc = (uint32_t)crc32_combine(w->crc, crc, (z_off_t)n);
	w->cur_left -= n;
	if (w->cur_left == 0)
		return tensor_end(w, err);
	return FL_OK;
}

void
fl_writer_reserve(struct fl_writer *w)
{
	uint64_t total = 0;
	off_t at;

	if (!w->seekable || w->cur >= w->h.ntensors)
		return;
	for (size_t i = 0; i < w->h.ntensors; i++) {
		if (w->h.t[i].enc != FL_RAW)
			return;
		total += (fl_tensor_nbytes(&w->h.t[i]) + FL_ALIGN - 1) &
		    ~(uint64_t)(FL_ALIGN - 1);
	}
	/* Only before the first tensor byte, right after the header. */
	if ((at = lseek(w->fd, 0, SEEK_CUR)) < 0 || (uint64_t)at != w->start +
	    ((FL_MAGIC_LEN + 4 + w->hdr.len + FL_ALIGN - 1) & ~(uint64_t)(FL_ALIGN - 1)))
		return;
	(void)fallocate(w->fd, FALLOC_FL_KEEP_SIZE, at, (off_t)total);
}

int
fl_writer_tensor(struct fl_writer *w, const void *data, char *err)
{
	if (w->cur >= w->h.ntensors)
		return fl_err(err, FL_EFAIL, "%s: more data than tensors", w->name);
	return fl_writer_write(w, data, (size_t)w->cur_left, err);
}

static int
copy_spool(struct fl_writer *w, char *err)
{
	unsigned char *b;
	ssize_t k;
	int rc = FL_OK;

	if (lseek(w->spool, 0, SEEK_SET) < 0)
		return fl_errno(err, FL_EIO, "spool file");
	if (!(b = malloc(1 << 20)))
		return fl_err(err, FL_EFAIL, "out of memory");
	while ((k = read(w->spool, b, 1 << 20)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			rc = fl_errno(err, FL_EIO, "spool file");
			break;
		}
		if ((rc = put(w->fd, w->name, b, (size_t)k, err)))
			break;
	}
	free(b);
	return rc;
}

int
fl_writer_end(struct fl_writer *w, char *err)
{
	struct fl_buf hdr;
	int rc;

	if (w->cur < w->h.ntensors) {
		rc = fl_err(err, FL_EFAIL, "%s: blob ended before tensor %s was written",
		    w->name, w->h.t[w->cur].name);
		fl_writer_abort(w);
		return rc;
	}
	fl_buf_init(&hdr, 0);
	if ((rc = encode_header(&hdr, &w->h)) || hdr.len != w->hdr.len) {
		rc = fl_err(err, FL_EFAIL, "%s: header changed length", w->name);
		goto out;
	}
	if (w->seekable) {
		off_t end = lseek(w->fd, 0, SEEK_CUR);
		if (pwrite(w->fd, hdr.data, hdr.len, (off_t)w->start + FL_MAGIC_LEN + 4) !=
		    (ssize_t)hdr.len) {
			rc = fl_errno(err, FL_EIO, "%s: write failed", w->name);
			goto out;
		}
		if (end < 0 || lseek(w->fd, end, SEEK_SET) < 0) {
			rc = fl_errno(err, FL_EIO, "%s: seek failed", w->name);
			goto out;
		}
	} else {
		if ((rc = put_header(w->fd, w->name, &hdr, err)) || (rc = copy_spool(w, err)))
			goto out;
	}
	rc = FL_OK;
out:
	fl_buf_release(&hdr);
	fl_writer_abort(w);
	return rc;
}

void
fl_writer_abort(struct fl_writer *w)
{
	if (w->spool >= 0)
		close(w->spool);
	w->spool = -1;
	free(w->zin);
	w->zin = NULL;
	free(w->name);
	w->name = NULL;
	fl_buf_release(&w->hdr);
	fl_header_release(&w->h);
}
