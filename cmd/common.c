/* common.c: messages, exit codes and output files for the fl-* programs. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

const char *progname = "flkit";
int verbose;
static struct output *pending;	/* removed if we die while writing it */
static int progress_shown;

void
setprogname(const char *argv0)
{
	const char *s = strrchr(argv0, '/');

	progname = s ? s + 1 : argv0;
}

static void
vmsg(const char *fmt, va_list ap)
{
	int saved = errno;
	size_t n = strlen(fmt);

	if (progress_shown)
		progress_done();
	fprintf(stderr, "%s: ", progname);
	vfprintf(stderr, fmt, ap);
	if (n && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(saved));
	fputc('\n', stderr);
}

void
die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	if (pending)
		output_abort(pending);
	exit(code);
}

void
warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void
note(const char *fmt, ...)
{
	va_list ap;

	if (verbose <= 0)
		return;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void
print_version(void)
{
	printf("%s (flkit) %s\n", progname, FL_VERSION);
	finish_stdout();
	exit(0);
}

int
usage_text(const char *text, int code)
{
	fputs(text, code ? stderr : stdout);
	if (code)
		exit(code);
	finish_stdout();
	return 0;
}

void
usage_exit(const char *text, int code)
{
	usage_text(text, code);
	exit(code);
}

double
opt_num(const char *opt, const char *s, double lo, double hi)
{
	double d;

	if (fl_parse_double(s, &d) || !(d >= lo && d <= hi))
		die(FL_EUSAGE, "%s: expected a number in [%g, %g], got '%s'", opt, lo,
		    hi, s);
	return d;
}

uint64_t
opt_count(const char *opt, const char *s, uint64_t lo, uint64_t max)
{
	uint64_t u;

	if (fl_parse_u64(s, max, &u) || u < lo)
		die(FL_EUSAGE, "%s: expected a whole number from %llu to %llu, got "
		    "'%s'", opt, (unsigned long long)lo, (unsigned long long)max, s);
	return u;
}

void
output_open(struct output *o, const char *path)
{
	char err[FL_ERRLEN];

	memset(o, 0, sizeof(*o));
	if (!path || !strcmp(path, "-")) {
		if (isatty(1))
			die(FL_EUSAGE, "refusing to write a blob to a terminal "
			    "(redirect standard output or use -o FILE)");
		o->fd = 1;
		o->name = "<stdout>";
		return;
	}
	if (fl_atomic_open(&o->atomic, path, err))
		die(FL_EIO, "%s", err);
	o->fd = o->atomic.fd;
	o->name = path;
	o->is_file = 1;
	pending = o;
}

void
output_close(struct output *o)
{
	char err[FL_ERRLEN];

	if (o->is_file) {
		pending = NULL;
		if (fl_atomic_commit(&o->atomic, err))
			die(FL_EIO, "%s", err);
		o->is_file = 0;
	}
}

void
output_abort(struct output *o)
{
	if (o->is_file)
		fl_atomic_abort(&o->atomic);
	o->is_file = 0;
	if (pending == o)
		pending = NULL;
}

void
close_stdout(void)
{
	if (fflush(stdout) == EOF || ferror(stdout))
		die(FL_EIO, "<stdout>: write failed:");
	if (close(1))
		die(FL_EIO, "<stdout>:");
	/* fd 1 stays taken, so that no file opened later becomes stdout */
	if (open("/dev/null", O_WRONLY | O_CLOEXEC) != 1)
		die(FL_EIO, "/dev/null:");
}

void
finish_stdout(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "%s: <stdout>: write failed: %s\n", progname, strerror(errno));
		exit(FL_EIO);
	}
}

int
progress_enabled(void)
{
	static int on = -1;

	if (on < 0)
		on = isatty(2) && verbose >= 0;
	return on;
}

void
progress(const char *fmt, ...)
{
	va_list ap;

	if (!progress_enabled())
		return;
	fprintf(stderr, "\r\033[K%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = 1;
}

void
progress_done(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}

void
progress_bytes(void *arg, uint64_t done, uint64_t total)
{
	static double t0, last;
	static uint64_t shown;
	double now = fl_monotonic();
	char line[160];

	(void)arg;
	if (t0 == 0)
		t0 = now;
	if (done == shown || (now - last < 0.1 && done != total))
		return;
	last = now;
	shown = done;
	fl_progress_format(line, sizeof(line), done, total, now - t0);
	progress("%s", line);
}
