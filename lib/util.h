/* util.h: status codes, error buffers, bounded buffers and careful I/O. */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Every library call returns one of these; programs exit with them.
 * The table is repeated in each man page's EXIT STATUS section.
 */
enum fl_status {
	FL_EOF = -1,		/* internal: clean end of a stream, never an exit */
	FL_OK = 0,
	FL_EFAIL = 1,		/* failure not covered below */
	FL_EUSAGE = 2,		/* bad command line */
	FL_EIO = 3,		/* reading or writing a file or stream failed */
	FL_EBLOB = 4,		/* malformed or corrupt blob or input file */
	FL_ELIMIT = 5,		/* a size or count exceeds a limit */
	FL_ENOTFOUND = 6,	/* no such object, dataset or worker */
	FL_EUNREACH = 7,	/* worker unreachable */
	FL_EDENIED = 8,		/* authentication or permission refused */
	FL_ETIMEOUT = 9,	/* timed out */
	FL_EDATA = 10,		/* well-formed input unfit for the operation */
};

/* Error messages go into a buffer the caller owns, never to a stream. */
#define FL_ERRLEN 512

/* Format msg into err (may be NULL) and return code. */
int fl_err(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)". */
int fl_errno(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#ifdef __clang_analyzer__
/* clang-tidy's analyzer does not follow calls into util.c: let it see that
 * these return their code, or every `return fl_err(...)` looks like success. */
#define fl_err(err, code, ...) (fl_err((err), (code), __VA_ARGS__), (code))
#define fl_errno(err, code, ...) (fl_errno((err), (code), __VA_ARGS__), (code))
#endif
/* Prefix an existing message in err with "fmt: ". */
void fl_err_prefix(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Growable byte buffer with a hard maximum (curl's dynbuf). */
struct fl_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
	size_t max;		/* 0: SIZE_MAX */
};

void fl_buf_init(struct fl_buf *b, size_t max);
void fl_buf_release(struct fl_buf *b);
int fl_buf_reserve(struct fl_buf *b, size_t extra);	/* FL_ELIMIT or FL_EFAIL (ENOMEM) */
int fl_buf_add(struct fl_buf *b, const void *p, size_t n);
int fl_buf_addstr(struct fl_buf *b, const char *s);
int fl_buf_addurl(struct fl_buf *b, const char *s);	/* percent-encoded */
int fl_buf_printf(struct fl_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* An unlinked temp file in dir (NULL: $TMPDIR, else /tmp), O_TMPFILE or
 * mkstemp and unlink; -1 with err filled. */
int fl_tmpfile(const char *dir, char *err);
/* An unlinked file to spool n bytes in: in memory (a memfd) while n is at
 * most 16 MiB and *inmem + n at most 64 MiB (*inmem counts what the caller
 * has spooled in memory so far), so that small blobs touch no filesystem;
 * else fl_tmpfile(dir). */
int fl_spoolfile(const char *dir, uint64_t n, uint64_t *inmem, char *err);

/* Bytes held until they can be passed on whole: in memory up to max_mem,
 * beyond that in a temp file (fl_tmpfile). */
struct fl_spool {
	struct fl_buf mem;
	int fd;			/* -1 until the bytes outgrow memory */
	size_t max_mem;
	uint64_t len;
};
void fl_spool_init(struct fl_spool *s, size_t max_mem);
int fl_spool_write(struct fl_spool *s, const void *p, size_t n, char *err);
/* All of it to fd (name: for messages); FL_EIO with err filled. */
int fl_spool_copy(struct fl_spool *s, int fd, const char *name, char *err);
/* Empty again, keeping the memory. */
int fl_spool_reset(struct fl_spool *s, char *err);
void fl_spool_release(struct fl_spool *s);

/* Read exactly n bytes; returns n, fewer at end of file, -1 on error. */
ssize_t fl_read_full(int fd, void *p, size_t n);
/* Write all n bytes; 0 or -1 with errno set. */
int fl_write_full(int fd, const void *p, size_t n);

/*
 * Atomic output file: bytes go to a temporary file beside path; commit
 * fsyncs it and renames it over path; abort removes it. A path that names
 * a device or a FIFO is written in place (tmp is NULL).
 */
struct fl_atomic {
	int fd;
	char *path;
	char *tmp;
};
int fl_atomic_open(struct fl_atomic *a, const char *path, char *err);
int fl_atomic_commit(struct fl_atomic *a, char *err);
void fl_atomic_abort(struct fl_atomic *a);

/* Parse helpers: whole string must be a number in range. */
int fl_parse_u64(const char *s, uint64_t max, uint64_t *out);
int fl_parse_double(const char *s, double *out);
/* Sizes like 64M, 1G, 512K (powers of 1024). */
int fl_parse_size(const char *s, uint64_t *out);

/* CRC-32 as zlib's crc32() computes it, with libdeflate's carry-less
 * multiply (about 4x zlib's speed here). */
uint32_t fl_crc32(uint32_t crc, const void *p, size_t n);

/* "1.5 GiB" */
void fl_size_format(char *out, size_t n, uint64_t bytes);
/* "[##....] 12.5 MiB of 100 MiB (12%), 310 MiB/s" into out, for a
 * progress line; total 0 when unknown. */
void fl_progress_format(char *out, size_t n, uint64_t done, uint64_t total,
    double seconds);

/* Random identifiers: a UUID v4 string (37 bytes with NUL). */
void fl_uuid(char out[37]);

/* Seconds since the epoch, and a monotonic clock in seconds. */
double fl_now(void);
double fl_monotonic(void);

#endif
