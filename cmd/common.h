/* common.h: what every fl-* program shares: messages, exit, output files. */
#ifndef FL_CMD_COMMON_H
#define FL_CMD_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

extern const char *progname;	/* "fl-pack" */
extern int verbose;		/* -v raises it, -q lowers it below 0 */

void setprogname(const char *argv0);
/* "fl-pack: msg"; a format ending in ':' appends strerror(errno). */
_Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only when verbose > 0. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_version(void);

/* Print a usage text: to stdout with status 0 for --help, else to stderr,
 * exiting with code. Returns 0 (after checking stdout) when code is 0. */
int usage_text(const char *text, int code);
/* The same, always exiting with code. */
_Noreturn void usage_exit(const char *text, int code);
/* Option values, dying with a usage error that names the option. */
double opt_num(const char *opt, const char *s, double lo, double hi);
uint64_t opt_count(const char *opt, const char *s, uint64_t lo, uint64_t max);

/*
 * Blob output: stdout (refused when it is a terminal) or a FILE written
 * atomically (temp file, fsync, rename) by -o.
 */
struct output {
	int fd;
	const char *name;	/* for messages */
	struct fl_atomic atomic;
	int is_file;
};
/* path NULL or "-" is stdout. Dies on failure. */
void output_open(struct output *o, const char *path);
/* Commit (or check stdout); dies with a message on failure. */
void output_close(struct output *o);
/* Remove a half-written file (call before dying after output_open). */
void output_abort(struct output *o);

/* Flush, check and close stdout now, so that a reader at the other end of
 * a pipe sees its end without waiting for our exit; fd 1 is then
 * /dev/null. Dies on failure. */
void close_stdout(void);

/* Flush and check stdout before exit (sbase fshut): a full disk is an error. */
void finish_stdout(void);

/* A one-line progress report on stderr, only when stderr is a terminal. */
int progress_enabled(void);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_done(void);
/* A progress callback for transfers: a bar with bytes, share and rate,
 * redrawn at most ten times a second, timed from its first call. */
void progress_bytes(void *arg, uint64_t done, uint64_t total);

#endif
