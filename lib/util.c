/* util.c: error buffers, bounded buffers, full reads and writes, atomic files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <libdeflate.h>

#include "util.h"

#undef fl_err		/* the analyzer's stand-ins in util.h */
#undef fl_errno

static int
verr(char *err, int code, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	size_t n;

	if (!err)
		return code;
	vsnprintf(err, FL_ERRLEN, fmt, ap);
	n = strlen(err);
	if (with_errno && n < FL_ERRLEN)
		snprintf(err + n, FL_ERRLEN - n, ": %s", strerror(saved));
	errno = saved;
	return code;
}

int
fl_err(char *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int
fl_errno(char *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(err, code, 1, fmt, ap);
	va_end(ap);
	return code;
}

void
fl_err_prefix(char *err, const char *fmt, ...)
{
	char old[FL_ERRLEN], pre[FL_ERRLEN];
	size_t n, m;
	va_list ap;

	if (!err)
		return;
	memcpy(old, err, FL_ERRLEN);
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	n = strlen(pre);
	if (n > FL_ERRLEN - 3)
		n = FL_ERRLEN - 3;
	memcpy(err, pre, n);
	memcpy(err + n, ": ", 2);
	m = strnlen(old, FL_ERRLEN - 1);
	if (m > FL_ERRLEN - 3 - n)
		m = FL_ERRLEN - 3 - n;
	memcpy(err + n + 2, old, m);
	err[n + 2 + m] = 0;
}

void
fl_buf_init(struct fl_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max ? max : SIZE_MAX;
}

void
fl_buf_release(struct fl_buf *b)
{
	free(b->data);
	fl_buf_init(b, b->max);
}

int
fl_buf_reserve(struct fl_buf *b, size_t extra)
{
	size_t need, cap;
	unsigned char *p;

	if (extra > b->max - b->len)
		return FL_ELIMIT;
	need = b->len + extra + 1;	/* room for a NUL terminator */
	if (need <= b->cap)
		return FL_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (!(p = realloc(b->data, cap)))
		return FL_EFAIL;
	b->data = p;
	b->cap = cap;
	return FL_OK;
}

int
fl_buf_add(struct fl_buf *b, const void *p, size_t n)
{
	int rc;

	if ((rc = fl_buf_reserve(b, n)))
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return FL_OK;
}

int
fl_buf_addstr(struct fl_buf *b, const char *s)
{
	return fl_buf_add(b, s, strlen(s));
}

/* s percent-encoded for a URL's path or query: all but RFC 3986's
 * unreserved characters, as curl_easy_escape. */
int
fl_buf_addurl(struct fl_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		    c == '~')
			rc = fl_buf_add(b, s, 1);
		else
			rc = fl_buf_add(b, (char[3]){ '%', hex[c >> 4], hex[c & 15] }, 3);
		if (rc)
			return rc;
	}
	return FL_OK;
}

int
fl_buf_printf(struct fl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return FL_EFAIL;
	if ((rc = fl_buf_reserve(b, (size_t)n)))
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return FL_OK;
}

ssize_t
fl_read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, (char *)p + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
fl_write_full(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

int
fl_tmpfile(const char *dir, char *err)
{
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/flkit.XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0) {
		fl_errno(err, FL_EIO, "%s: cannot make a temporary file", dir);
		return -1;
	}
	unlink(path);
	return fd;
}

#define SPOOL_MEM_ONE (16u << 20)
#define SPOOL_MEM_ALL (64u << 20)
int
fl_spoolfile(const char *dir, uint64_t n, uint64_t *inmem, char *err)
{
	int fd;

	if (n <= SPOOL_MEM_ONE && *inmem + n <= SPOOL_MEM_ALL &&
	    (fd = memfd_create("flkit spool", MFD_CLOEXEC)) >= 0) {
		*inmem += n;
		return fd;
	}
	return fl_tmpfile(dir, err);
}

void
fl_spool_init(struct fl_spool *s, size_t max_mem)
{
	fl_buf_init(&s->mem, 0);
	s->fd = -1;
	s->max_mem = max_mem;
	s->len = 0;
}

int
fl_spool_write(struct fl_spool *s, const void *p, size_t n, char *err)
{
	if (s->fd < 0 && s->mem.len + n <= s->max_mem) {
		if (fl_buf_add(&s->mem, p, n))
			return fl_err(err, FL_EFAIL, "out of memory");
	} else {
		if (s->fd < 0) {
			if ((s->fd = fl_tmpfile(NULL, err)) < 0)
				return FL_EIO;
			if (fl_write_full(s->fd, s->mem.data, s->mem.len) < 0)
				return fl_errno(err, FL_EIO, "temporary file");
			fl_buf_release(&s->mem);
			fl_buf_init(&s->mem, 0);
		}
		if (fl_write_full(s->fd, p, n) < 0)
			return fl_errno(err, FL_EIO, "temporary file");
	}
	s->len += n;
	return FL_OK;
}

int
fl_spool_copy(struct fl_spool *s, int fd, const char *name, char *err)
{
	unsigned char buf[1 << 16];
	off_t off = 0;
	ssize_t n;

	if (s->fd < 0) {
		if (fl_write_full(fd, s->mem.data, s->mem.len) < 0)
			return fl_errno(err, FL_EIO, "%s", name);
		return FL_OK;
	}
	while ((n = pread(s->fd, buf, sizeof(buf), off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fl_errno(err, FL_EIO, "temporary file");
		}
		if (fl_write_full(fd, buf, (size_t)n) < 0)
			return fl_errno(err, FL_EIO, "%s", name);
		off += n;
	}
	return FL_OK;
}

int
fl_spool_reset(struct fl_spool *s, char *err)
{
	s->mem.len = 0;
	s->len = 0;
	if (s->fd >= 0 && (ftruncate(s->fd, 0) || lseek(s->fd, 0, SEEK_SET) < 0))
		return fl_errno(err, FL_EIO, "temporary file");
	return FL_OK;
}

void
fl_spool_release(struct fl_spool *s)
{
	fl_buf_release(&s->mem);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->len = 0;
}

int
fl_atomic_open(struct fl_atomic *a, const char *path, char *err)
{
	size_t n = strlen(path);
	struct stat st;
	int exists = stat(path, &st) == 0;
	/* A device or a FIFO (-o /dev/null, a named pipe) is written in place:
	 * a file renamed over it would replace the device itself. */
	int in_place = exists && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);

	a->fd = -1;
	a->path = strdup(path);
	a->tmp = in_place ? NULL : malloc(n + 16);
	if (!a->path || (!in_place && !a->tmp)) {
		free(a->path);
		free(a->tmp);
		a->path = a->tmp = NULL;
		return fl_err(err, FL_EFAIL, "%s: out of memory", path);
	}
	if (in_place)
		a->fd = open(path, O_WRONLY | O_CLOEXEC);
	else {
		snprintf(a->tmp, n + 16, "%s.tmp.XXXXXX", path);
		a->fd = mkstemp(a->tmp);
	}
	if (a->fd < 0) {
		fl_errno(err, FL_EIO, "%s", path);
		free(a->path);
		free(a->tmp);
		a->path = a->tmp = NULL;
		return FL_EIO;
	}
	if (in_place)
		return FL_OK;
	/* Keep the mode an existing file had; else the usual 0666 & ~umask. */
	if (exists) {
		fchmod(a->fd, st.st_mode & 07777);
	} else {
		mode_t um = umask(0);
		umask(um);
		fchmod(a->fd, 0666 & ~um);
	}
	return FL_OK;
}

int
fl_atomic_commit(struct fl_atomic *a, char *err)
{
	int rc = FL_OK;

	if (fsync(a->fd) < 0 && errno != EINVAL)
		rc = fl_errno(err, FL_EIO, "%s", a->path);
	if (close(a->fd) < 0 && rc == FL_OK)
		rc = fl_errno(err, FL_EIO, "%s", a->path);
	a->fd = -1;
	if (rc == FL_OK && a->tmp && rename(a->tmp, a->path) < 0)
		rc = fl_errno(err, FL_EIO, "%s", a->path);
	if (rc != FL_OK && a->tmp)
		unlink(a->tmp);
	free(a->path);
	free(a->tmp);
	a->path = a->tmp = NULL;
	return rc;
}

void
fl_atomic_abort(struct fl_atomic *a)
{
	if (a->fd >= 0)
		close(a->fd);
	if (a->tmp)
		unlink(a->tmp);
	free(a->path);
	free(a->tmp);
	a->fd = -1;
	a->path = a->tmp = NULL;
}

int
fl_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return FL_EUSAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return FL_EUSAGE;
	*out = v;
	return FL_OK;
}

int
fl_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return FL_EUSAGE;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return FL_EUSAGE;
	*out = v;
	return FL_OK;
}

int
fl_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return FL_EUSAGE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return FL_EUSAGE;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return FL_EUSAGE;
	*out = (uint64_t)v << shift;
	return FL_OK;
}

void
fl_uuid(char out[37])
{
	unsigned char b[16];
	size_t got = 0;
	ssize_t r;

	while (got < sizeof(b)) {
		r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* Fall back to the clock and pid: unique enough for ids. */
			unsigned long long t = (unsigned long long)(fl_monotonic() * 1e9);
			for (size_t i = got; i < sizeof(b); i++)
				b[i] = (unsigned char)((t >> (8 * (i % 8))) ^ (unsigned)getpid() ^ i);
			break;
		}
		got += (size_t)r;
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	    b[10], b[11], b[12], b[13], b[14], b[15]);
}

double
fl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double
fl_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint32_t
fl_crc32(uint32_t crc, const void *p, size_t n)
{
	return libdeflate_crc32(crc, p, n);
}

void
fl_size_format(char *out, size_t n, uint64_t bytes)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(out, n, "%.1f %s", v, unit[u]);
}

void
fl_progress_format(char *out, size_t n, uint64_t done, uint64_t total,
    double seconds)
{
	char d[32], t[32], r[32];

	fl_size_format(d, sizeof(d), done);
	fl_size_format(r, sizeof(r), seconds > 0 ? (uint64_t)(done / seconds) : 0);
	if (total) {
		char bar[21];
		int fill = (int)(20.0 * (double)(done > total ? total : done) / (double)total);

		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(20 - fill));
		bar[20] = 0;
		fl_size_format(t, sizeof(t), total);
		snprintf(out, n, "[%s] %s of %s (%d%%), %s/s", bar, d, t,
		    (int)(100.0 * (double)done / (double)total), r);
	} else {
		snprintf(out, n, "%s, %s/s", d, r);
	}
}
