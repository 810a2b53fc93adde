/* aggregate.c: reading N models in lockstep, a chunk of each tensor at a
 * time, and combining them with a rule into one output blob. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>
#include <immintrin.h>
#include <zlib.h>

#include "aggregate.h"
#include "meta.h"

/* 512 KiB of f32 per input: the reader reads it straight from the file. */
#define CHUNK_DEFAULT (1 << 17)
#define MAX_THREADS 4
#define SMALL_INPUTS (16u << 20)	/* bytes of all inputs: one thread */
#ifndef STRIPE
#define STRIPE (1 << 16)	/* mapped path: elements per stripe (256 KiB of f32) */
#endif
#define MAX_INPUTS 4096

const char *
fl_agg_rule_name(const struct fl_agg_opts *o)
{
	switch (o->rule) {
	case FL_AGG_MEAN: return "fedavg";
	case FL_AGG_MEDIAN: return "median";
	case FL_AGG_TRIMMED: return "trimmed-mean";
	case FL_AGG_KRUM: return o->multi > 1 ? "multi-krum" : "krum";
	}
	return "?";
}

void
fl_agg_init(struct fl_agg *a, const struct fl_agg_opts *o)
{
	memset(a, 0, sizeof(*a));
	a->o = *o;
	fl_header_init(&a->base, "model");
}

void
fl_agg_release(struct fl_agg *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->in[i].label);
		free(a->in[i].path);
		if (a->in[i].fd >= 0)
			close(a->in[i].fd);
		fl_header_release(&a->in[i].h);
	}
	free(a->in);
	free(a->gram);
	fl_header_release(&a->base);
	memset(a, 0, sizeof(*a));
}

static struct fl_agg_input *
new_input(struct fl_agg *a, const char *label, const char *path, char *err)
{
	struct fl_agg_input *in, *p;

	if (a->n >= MAX_INPUTS)
		return fl_err(err, FL_ELIMIT, "more than %d inputs", MAX_INPUTS), NULL;
	if (!(p = realloc(a->in, (a->n + 1) * sizeof(*p))))
		return fl_err(err, FL_EFAIL, "out of memory"), NULL;
	a->in = p;
	in = &a->in[a->n];
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	in->off = UINT64_MAX;
	in->scale = 1;
	in->used = 1;
	fl_header_init(&in->h, "model");
	in->label = strdup(label);
	in->path = path ? strdup(path) : NULL;
	if (!in->label || (path && !in->path)) {
		free(in->label);
		free(in->path);
		fl_header_release(&in->h);
		return fl_err(err, FL_EFAIL, "out of memory"), NULL;
	}
	a->n++;
	return in;
}

/* Copy the reader's current blob, decoded to raw tensors, into a spool
 * file sized for it (fl_spoolfile), made here: *fd. */
static int
spool_blob(struct fl_agg *a, struct fl_reader *r, const struct fl_header *h,
    int *fd, const char *label, char *err)
{
	struct fl_header raw;
	struct fl_writer w;
	unsigned char *buf;
	const size_t bufsz = 1 << 20;
	int rc;

	if (fl_header_copy(&raw, h))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (size_t i = 0; i < raw.ntensors; i++)
		raw.t[i].enc = FL_RAW;
	fl_header_layout(&raw);
	if ((*fd = fl_spoolfile(a->o.tmpdir, raw.total, &a->spooled_mem, err)) < 0) {
		fl_header_release(&raw);
		return FL_EIO;
	}
	if (!(buf = malloc(bufsz))) {
		fl_header_release(&raw);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	if ((rc = fl_writer_begin(&w, *fd, label, &raw, err)))
		goto out;
	for (size_t i = 0; !rc && i < h->ntensors; i++) {
		uint64_t left = fl_tensor_nbytes(&h->t[i]);
		if ((rc = fl_reader_begin(r, i, err)))
			break;
		while (!rc && left > 0) {
			size_t k = left < bufsz ? (size_t)left : bufsz;
			if (!(rc = fl_reader_read(r, buf, k, err)))
				rc = fl_writer_write(&w, buf, k, err);
			left -= k;
		}
	}
	if (!rc)
		rc = fl_reader_finish(r, err);
	if (!rc)
		rc = fl_writer_end(&w, err);
	else
		fl_writer_abort(&w);
out:
	free(buf);
	fl_header_release(&raw);
	return rc;
}

/* "a.blob", then "a.blob (blob 2)" and on. */
static void
blob_label(char *label, size_t len, const char *name, int nb)
{
	if (nb == 1)
		snprintf(label, len, "%s", name);
	else
		snprintf(label, len, "%s (blob %d)", name, nb);
}

/* Input first, the first blob of several, labelled before more came:
 * "<stdin>" becomes "<stdin> (blob 1)". */
static void
number_first(struct fl_agg *a, size_t first)
{
	char *l = malloc(strlen(a->in[first].label) + 16);

	if (l) {
		sprintf(l, "%s (blob 1)", a->in[first].label);
		free(a->in[first].label);
		a->in[first].label = l;
	}
}

/* Make the reader's current blob, header h, the nb-th of path, an input
 * that messages call name (path when NULL); a blob of standard input is
 * spooled unless it is to be streamed. */
static int
add_blob(struct fl_agg *a, struct fl_reader *r, const struct fl_header *h,
    const char *path, const char *name, int nb, int stream, char *err)
{
	struct fl_agg_input *in;
	char label[FL_ERRLEN / 4];
	int stdin_ = !strcmp(path, "-");

	blob_label(label, sizeof(label), stdin_ ? "<stdin>" : name ? name : path,
	    nb);
	if (!(in = new_input(a, label, stdin_ ? NULL : path, err)))
		return FL_EFAIL;
	in->blob = nb - 1;
	in->off = fl_reader_offset(r);
	fl_header_release(&in->h);
	if (fl_header_copy(&in->h, h))
		return fl_err(err, FL_EFAIL, "out of memory");
	return stdin_ && !stream ? spool_blob(a, r, h, &in->fd, label, err) : FL_OK;
}

/*
 * The rest of r's blobs, after the nb made inputs from input first on:
 * headers go to hs[c], then hs[c ^ 1] in turn (the reader keeps the
 * current one until the next). Then the first of several blobs gets its
 * number, which its label lacked while it seemed alone.
 */
static int
add_rest(struct fl_agg *a, struct fl_reader *r, struct fl_header hs[2], int c,
    int nb, size_t first, const char *path, const char *name, char *err)
{
	int rc, stdin_ = !strcmp(path, "-");

	while ((rc = fl_reader_next(r, &hs[c], err)) == FL_OK) {
		fl_header_release(&hs[c ^ 1]);
		if ((rc = add_blob(a, r, &hs[c], path, name, ++nb, 0, err)))
			break;
		c ^= 1;
	}
	if (nb > 1 && a->n > first)
		number_first(a, first);
	if (rc == FL_EOF && nb == 0)
		return fl_err(err, FL_EBLOB, "%s: no blob in %s", stdin_ ? "<stdin>" :
		    name ? name : path, stdin_ ? "standard input" : "the file");
	return rc == FL_EOF ? FL_OK : rc;
}

/* Every blob of path as inputs, called name. */
static int
add_all(struct fl_agg *a, const char *path, const char *name, char *err)
{
	struct fl_reader r;
	struct fl_header hs[2];
	int rc;

	if ((rc = name && strcmp(path, "-") ? fl_reader_open_at(&r, path, 0, name,
	    err) : fl_reader_open(&r, path, err)))
		return rc;
	memset(hs, 0, sizeof(hs));
	rc = add_rest(a, &r, hs, 0, 0, a->n, path, name, err);
	fl_reader_close(&r);
	fl_header_release(&hs[0]);
	fl_header_release(&hs[1]);
	return rc;
}

/* Can the blobs of standard input be folded in as they come? */
static int
can_stream(const struct fl_agg_opts *o)
{
	return o->rule == FL_AGG_MEAN && !o->base && !(o->clip > 0) &&
	    !o->skip_bad && !(o->noise > 0);
}

int
fl_agg_add(struct fl_agg *a, const char *path, char *err)
{
	return fl_agg_add_as(a, path, NULL, err);
}

int
fl_agg_add_as(struct fl_agg *a, const char *path, const char *name, char *err)
{
	int rc, stdin_ = !strcmp(path, "-");

	if (stdin_ && a->stdin_used)
		return fl_err(err, FL_EUSAGE, "standard input given twice");
	a->stdin_used |= stdin_;
	/* Standard input, kept for fl_agg_run to stream, is not alone. */
	if (a->stdin_pending) {
		a->stdin_pending = 0;
		if ((rc = add_all(a, "-", NULL, err)))
			return rc;
	}
	if (stdin_ && a->n == 0 && can_stream(&a->o)) {
		a->stdin_pending = 1;
		return FL_OK;
	}
	return add_all(a, path, name, err);
}

/* Worker threads, released together for each phase of a chunk. */
struct pool {
	int n;
	pthread_t th[MAX_THREADS];
	pthread_barrier_t go, done;
	void (*fn)(void *, int);
	void *arg;
	int quit;
};

struct worker {
	struct pool *p;
	int tid;
};

static void *
pool_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->p;
	int tid = w->tid;

	free(w);
	for (;;) {
		pthread_barrier_wait(&p->go);
		if (p->quit)
			break;
		p->fn(p->arg, tid);
		pthread_barrier_wait(&p->done);
	}
	return NULL;
}

static int
pool_start(struct pool *p, int n)
{
	memset(p, 0, sizeof(*p));
	p->n = n;
	if (n <= 1)
		return FL_OK;
	pthread_barrier_init(&p->go, NULL, (unsigned)n);
	pthread_barrier_init(&p->done, NULL, (unsigned)n);
	for (int i = 1; i < n; i++) {
		struct worker *w = malloc(sizeof(*w));
		if (w) {
			w->p = p;
			w->tid = i;
		}
		if (!w || pthread_create(&p->th[i], NULL, pool_main, w)) {
			free(w);
			p->n = i;	/* run with the threads we have */
			pthread_barrier_destroy(&p->go);
			pthread_barrier_destroy(&p->done);
			pthread_barrier_init(&p->go, NULL, (unsigned)i);
			pthread_barrier_init(&p->done, NULL, (unsigned)i);
			return FL_OK;
		}
	}
	return FL_OK;
}

static void
pool_run(struct pool *p, void (*fn)(void *, int), void *arg)
{
	p->fn = fn;
	p->arg = arg;
	if (p->n > 1)
		pthread_barrier_wait(&p->go);
	fn(arg, 0);
	if (p->n > 1)
		pthread_barrier_wait(&p->done);
	p->fn = NULL;	/* arg may be the caller's local: keep no pointer to it */
	p->arg = NULL;
}

static void
pool_stop(struct pool *p)
{
	if (p->n <= 1)
		return;
	p->quit = 1;
	pthread_barrier_wait(&p->go);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_barrier_destroy(&p->go);
	pthread_barrier_destroy(&p->done);
}

/* One input (or the base) read in a pass. */
struct lane {
	struct fl_agg_input *in;	/* NULL for the base */
	const char *label;
	struct fl_reader r;
	struct fl_header h;
	int open;
	float *x;		/* this chunk as f32 */
	unsigned char *raw;	/* in the stored dtype, when not f32 */
	double w;		/* weight in the fused mean (already clipped) */
	int rc;
	char err[FL_ERRLEN];
	int64_t bad;		/* first non-finite element of the tensor, or -1 */
	size_t badtensor;
	int scan_bad;		/* scan: somewhere non-finite */
};

struct pass {
	struct fl_agg *a;
	struct pool pool;
	struct lane *lane;
	size_t nl;
	struct lane base;
	int has_base;
	int scan;		/* a first pass: check and measure, no output */
	int fused;		/* mean accumulated while reading */
	size_t chunk;
	size_t ti;		/* tensor */
	uint64_t off;		/* first element of the chunk */
	size_t k;		/* elements in the chunk */
	double *acc[MAX_THREADS];
	double *gram[MAX_THREADS];
	float *scratch[MAX_THREADS];
	float *out;
	double wsum, basecoef;	/* mean = (sum_t acc + basecoef base) / wsum */
	size_t cut;
	int64_t badel[MAX_THREADS];	/* combine: first non-finite result */
	int pend_rc;			/* a bad value in this tensor, to tell */
	char pend_err[FL_ERRLEN];	/* at its end (pass_chunk) */
	float **xsp[MAX_THREADS];	/* lanes' chunks at a thread's share */
	size_t *pairs;		/* scan: i n + j for each <u_i, u_j> needed */
	size_t npairs;
	int base_early;		/* base read before the lanes (to clip them) */
	struct fl_rng rng;
	double sigma;
	int server;		/* a server-optimizer step after the rule */
	float *m, *v;		/* server-optimizer state of the tensor */
	size_t mvcap;
	unsigned char *outraw;
	uint64_t done, total;	/* elements, for progress */
	int npasses;
	struct fl_writer *w;	/* the output, for the mapped path */
};

static int
lane_open(struct lane *l, struct fl_agg_input *in, const char *path,
    size_t chunk, char *err)
{
	int rc, skip = 0;

	memset(l, 0, sizeof(*l));
	l->in = in;
	l->label = in ? in->label : path;
	if (in && in->fd >= 0) {
		if (lseek(in->fd, 0, SEEK_SET) < 0)
			return fl_errno(err, FL_EIO, "%s: spool file", in->label);
		fl_reader_fd(&l->r, in->fd, in->label);
	} else if (in && in->off != UINT64_MAX) {
		/* Straight to the blob: a lane for each of the n blobs of
		 * one file reading its way past those before would read
		 * n^2/2 blobs' worth of read-ahead. */
		if ((rc = fl_reader_open_at(&l->r, in->path, in->off, in->label, err)))
			return rc;
	} else {
		if ((rc = fl_reader_open(&l->r, in ? in->path : path, err)))
			return rc;
		skip = in ? in->blob : 0;
	}
	l->open = 1;
	/* The reader skips a blob through its header: keep that alive. */
	struct fl_header tmp[2];
	memset(tmp, 0, sizeof(tmp));
	for (int i = 0; i <= skip; i++) {
		struct fl_header *h = i == skip ? &l->h : &tmp[i % 2];
		rc = fl_reader_next(&l->r, h, err);
		if (i)
			fl_header_release(&tmp[(i - 1) % 2]);
		if (rc) {
			fl_header_release(&tmp[0]);
			fl_header_release(&tmp[1]);
			return rc == FL_EOF ? fl_err(err, FL_EBLOB, "%s: changed while "
			    "being read", l->label) : rc;
		}
	}
	if (!(l->x = malloc(chunk * sizeof(float))) ||
	    !(l->raw = malloc(chunk * 8)))
		return fl_err(err, FL_EFAIL, "out of memory");
	l->bad = -1;
	return FL_OK;
}

static void
lane_close(struct lane *l)
{
	if (!l->open)
		return;
	fl_reader_close(&l->r);
	fl_header_release(&l->h);
	free(l->x);
	free(l->raw);
	l->open = 0;
}

static int
lane_read(struct lane *l, const struct fl_tensor *t, size_t k)
{
	if (t->dtype == FL_F32)
		return fl_reader_read(&l->r, l->x, k * sizeof(float), l->err);
	l->rc = fl_reader_read(&l->r, l->raw, k * fl_dtype_size(t->dtype), l->err);
	if (!l->rc)
		fl_convert(l->x, FL_F32, l->raw, t->dtype, k);
	return l->rc;
}

static int64_t
first_nonfinite(const float *x, size_t k)
{
	for (size_t i = 0; i < k; i++)
		if (!isfinite(x[i]))
			return (int64_t)i;
	return -1;
}


static void
clip_lane(struct lane *l, const float *b, size_t k)
{
	const double s = l->in->scale;

	for (size_t i = 0; i < k; i++)
		l->x[i] = (float)(b[i] + s * ((double)l->x[i] - b[i]));
}

/* Phase one: each thread reads its share of the lanes. */
static void
phase_read(void *arg, int tid)
{
	struct pass *p = arg;
	const struct fl_tensor *t = &p->lane[0].h.t[p->ti];
	int T = p->pool.n, check = p->scan || !p->fused;

	if (p->has_base && !p->base_early && (int)(p->nl % (size_t)T) == tid)
		p->base.rc = lane_read(&p->base, &p->base.h.t[p->ti], p->k);
	for (size_t j = (size_t)tid; j < p->nl; j += (size_t)T) {
		struct lane *l = &p->lane[j];
		int64_t b;
		if ((l->rc = lane_read(l, t, p->k)))
			continue;
		if (check && l->bad < 0 && (b = first_nonfinite(l->x, p->k)) >= 0) {
			l->bad = (int64_t)p->off + b;
			l->badtensor = p->ti;
		}
		if (p->scan)
			continue;
		if (p->base_early && l->in->scale < 1)
			clip_lane(l, p->base.x, p->k);
	}
}

static void axpy(double *acc, const float *x, size_t k, double w, int first);
static int generic_finish(float *out, const double *acc, const float *base,
    double bc, double wsum, size_t n);

/*
 * The weighted sum of the lanes at elements lo..hi-1 into acc, lane by
 * lane in their order: the same sum, to the last bit, however many
 * threads share the chunk, and the same as a stream folds (stream_blob).
 */
static void
fold_lanes(double *acc, const struct lane *lane, size_t nl, size_t lo,
    size_t hi)
{
	if (!nl) {
		memset(acc, 0, (hi - lo) * sizeof(*acc));
		return;
	}
	for (size_t j = 0; j < nl; j++)
		axpy(acc, lane[j].x + lo, hi - lo, lane[j].w, j == 0);
}

static void
krange(const struct pass *p, int tid, size_t *lo, size_t *hi)
{
	size_t T = (size_t)p->pool.n;

	*lo = p->k * (size_t)tid / T;
	*hi = p->k * (size_t)(tid + 1) / T;
}

static double pair_sum(const float *x, const float *y, const float *b, size_t k);

/* Phase two: combine the chunk, each thread a share of it. */
static void
phase_combine(void *arg, int tid)
{
	struct pass *p = arg;
	size_t lo, hi, n = p->nl;
	const float *b = p->has_base ? p->base.x : NULL;

	p->badel[tid] = -1;
	if (p->scan) {
		/* The pairs needed, dealt out to the threads. */
		double *g = p->gram[tid];
		for (size_t q = (size_t)tid; q < p->npairs; q += (size_t)p->pool.n) {
			/* pairs index an n x n matrix: n > 0 */
			/* NOLINTNEXTLINE(clang-analyzer-core.DivideZero,clang-analyzer-core.UndefinedBinaryOperatorResult) */
			size_t i = p->pairs[q] / n, j = p->pairs[q] % n;
			if (p->lane[i].bad < 0 && p->lane[j].bad < 0)
				g[i * n + j] += pair_sum(p->lane[i].x, p->lane[j].x, b, p->k);
		}
		return;
	}
	krange(p, tid, &lo, &hi);
	if (p->fused) {
		int64_t e;
		fold_lanes(p->acc[tid], p->lane, n, lo, hi);
		if (generic_finish(p->out + lo, p->acc[tid], b ? b + lo : NULL,
		    p->basecoef, p->wsum, hi - lo) &&
		    (e = first_nonfinite(p->out + lo, hi - lo)) >= 0)
			p->badel[tid] = (int64_t)lo + e;
		return;
	}
	for (size_t j = 0; j < n; j++)
		p->xsp[tid][j] = p->lane[j].x + lo;
	if (p->a->o.rule == FL_AGG_MEDIAN)
		fl_agg_median(p->out + lo, p->xsp[tid], n, hi - lo, p->scratch[tid]);
	else
		fl_agg_trimmed(p->out + lo, p->xsp[tid], n, hi - lo, p->cut,
		    p->scratch[tid]);
}

static void
pass_close(struct pass *p)
{
	pool_stop(&p->pool);
	for (size_t j = 0; j < p->nl; j++)
		lane_close(&p->lane[j]);
	free(p->lane);
	lane_close(&p->base);
	for (int t = 0; t < MAX_THREADS; t++) {
		free(p->acc[t]);
		free(p->gram[t]);
		free(p->scratch[t]);
		free(p->xsp[t]);
	}
	free(p->pairs);
	free(p->out);
	free(p->m);
	free(p->v);
	free(p->outraw);
	memset(p, 0, sizeof(*p));
}

static int
pass_open(struct pass *p, struct fl_agg *a, int scan, char *err)
{
	size_t n = 0;
	int T, rc;
	long ncpu;

	memset(p, 0, sizeof(*p));
	p->a = a;
	p->scan = scan;
	p->chunk = a->o.chunk ? a->o.chunk : CHUNK_DEFAULT;
	/* The scan sums products a stripe at a time, mapped or not, so that
	 * both ways give the same Gram matrix to the last bit. */
	if (scan)
		p->chunk = a->o.chunk ? (a->o.chunk + 63) & ~(size_t)63 : STRIPE;
	p->fused = !scan && (a->o.rule == FL_AGG_MEAN || a->o.rule == FL_AGG_KRUM);
	if (!(p->lane = calloc(a->n, sizeof(*p->lane))))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (size_t i = 0; i < a->n; i++) {
		if (!scan && !a->in[i].used)
			continue;
		if ((rc = lane_open(&p->lane[n++], &a->in[i], NULL, p->chunk, err)))
			return p->nl = n, rc;
	}
	p->nl = n;
	if ((p->has_base = a->has_base) &&
	    (rc = lane_open(&p->base, NULL, a->o.base, p->chunk, err)))
		return rc;
	p->base_early = p->has_base && !scan && !p->fused;
	if (scan && !(p->pairs = malloc(n * (n + 1) / 2 * sizeof(*p->pairs))))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (size_t i = 0; scan && i < n; i++)
		for (size_t j = i; j < n; j++)
			if (i == j ? p->has_base && (a->o.rule == FL_AGG_KRUM ||
			    a->o.clip > 0) : a->o.rule == FL_AGG_KRUM)
				p->pairs[p->npairs++] = i * n + j;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	T = a->o.threads > 0 ? a->o.threads : (int)(ncpu > 0 ? ncpu : 1);
	/* Small inputs are combined sooner by one thread than by several
	 * meeting at a barrier for every phase: 3 models of 400 KB took 5.4
	 * ms rather than 5.7, 20 of them 13.9 rather than 14.7; 3 of 7.4 MB
	 * as long either way, 3 of 134 MB 350 ms rather than 300. */
	if (a->o.threads <= 0) {
		uint64_t bytes = 0;
		for (size_t j = 0; j < n; j++)
			bytes += p->lane[j].h.total;
		if (bytes < SMALL_INPUTS)
			T = 1;
	}
	if (T > MAX_THREADS)
		T = MAX_THREADS;
	if ((size_t)T > n)
		T = (int)(n ? n : 1);
	for (int t = 0; t < T; t++) {
		if ((p->fused && !(p->acc[t] = malloc(p->chunk * sizeof(double)))) ||
		    (scan && !(p->gram[t] = calloc(n * n, sizeof(double)))) ||
		    !(p->scratch[t] = malloc((n + 1) * sizeof(float))) ||
		    !(p->xsp[t] = malloc((n + 1) * sizeof(float *))))
			return fl_err(err, FL_EFAIL, "out of memory");
	}
	if (!(p->out = malloc(p->chunk * sizeof(float))) ||
	    !(p->outraw = malloc(p->chunk * 8)))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (size_t j = 0; j < n; j++)
		p->total += fl_header_nparams(&p->lane[j].h);
	return pool_start(&p->pool, T);
}

static const char *
nonfinite_name(float x)
{
	return isnan(x) ? "NaN" : "Inf";
}

/* What holds x, not finite, at element el of its tensor tname; input:
 * one of the inputs (not the base), which --skip-bad could leave out. */
static int
bad_error(const char *label, const char *tname, int64_t el, float x,
    int input, char *err)
{
	return fl_err(err, FL_EDATA, "%s: tensor %s holds %s at element %lld%s",
	    label, tname, nonfinite_name(x), (long long)el,
	    input ? " (--skip-bad leaves such inputs out)" : "");
}

static int
lane_bad_error(struct lane *l, size_t ti, int64_t el, float x, char *err)
{
	return bad_error(l->label, l->h.t[ti].name, el, x, l->in != NULL, err);
}

static int chunk_combine(struct pass *p, char *err);

/*
 * Read and combine one chunk of tensor p->ti at element p->off. A bad
 * value (NaN, Inf, an overflowing sum) is told only once the tensor has
 * been read whole: a crc mismatch, found at a lane's last read of it, says
 * better what is wrong, and wins. Until then the chunks are read, not
 * combined.
 */
static int
pass_chunk(struct pass *p, char *err)
{
	const uint64_t numel = fl_tensor_numel(&p->lane[0].h.t[p->ti]);
	int rc;

	if (p->base_early) {
		struct lane *b = &p->base;
		if ((b->rc = lane_read(b, &b->h.t[p->ti], p->k)))
			return fl_err(err, b->rc, "%s", b->err);
	}
	pool_run(&p->pool, phase_read, p);
	for (size_t j = 0; j < p->nl; j++)
		if (p->lane[j].rc)
			return fl_err(err, p->lane[j].rc, "%s", p->lane[j].err);
	if (p->has_base && p->base.rc)
		return fl_err(err, p->base.rc, "%s", p->base.err);
	if (!p->pend_rc && (rc = chunk_combine(p, p->pend_err)))
		p->pend_rc = rc;
	if (!p->pend_rc || p->off + p->k < numel)
		return FL_OK;
	rc = p->pend_rc;
	p->pend_rc = 0;
	return fl_err(err, rc, "%s", p->pend_err);
}

/* The read chunk's values checked, and combined. */
static int
chunk_combine(struct pass *p, char *err)
{
	if (p->has_base) {
		struct lane *b = &p->base;
		int64_t e;
		if ((e = first_nonfinite(b->x, p->k)) >= 0)
			return lane_bad_error(b, p->ti, (int64_t)p->off + e, b->x[e], err);
	}
	for (size_t j = 0; j < p->nl; j++) {
		struct lane *l = &p->lane[j];
		if (l->bad >= 0 && !p->scan)
			return lane_bad_error(l, p->ti, l->bad,
			    l->x[l->bad - (int64_t)p->off], err);
		if (l->bad >= 0 && p->scan && !p->a->o.skip_bad)
			return lane_bad_error(l, p->ti, l->bad,
			    l->x[l->bad - (int64_t)p->off], err);
		if (l->bad >= 0 && p->scan) {
			l->scan_bad = 1;
			l->in->bad = 1;
		}
	}
	pool_run(&p->pool, phase_combine, p);
	for (int t = 0; t < p->pool.n; t++) {
		int64_t e = p->badel[t];
		if (e < 0)
			continue;
		for (size_t j = 0; j < p->nl; j++)
			if (!isfinite(p->lane[j].x[e]))
				return lane_bad_error(&p->lane[j], p->ti,
				    (int64_t)p->off + e, p->lane[j].x[e], err);
		return fl_err(err, FL_EDATA, "tensor %s: the weighted sum overflows "
		    "at element %lld", p->lane[0].h.t[p->ti].name,
		    (long long)p->off + e);
	}
	return FL_OK;
}


static void report(struct pass *p, int npasses, int passno);

/*
 * The mapped path. A tensor stored raw in regular files (spooled standard
 * input included) is mapped from the page cache in every lane and cut into
 * stripes; the threads take stripes in turn and, for each, run over it a
 * sub-block at a time: each lane's bytes go through the CRC and straight
 * into the rule while they are still in L1/L2, so memory is read once. The
 * stripes' CRCs are combined per lane at the end of the tensor and checked
 * before the output is committed. Finished stripes are written in order by
 * whichever thread is free, from a ring of output buffers; pages already
 * used are dropped from the mappings so that RSS stays small.
 */
#define MAP_MIN (64 << 10)	/* smaller tensors go through the reader */
#define SUBBLK 2048		/* elements per sub-block, a multiple of 64 */
#ifndef RING
#define RING 4			/* output stripes in flight */
#endif
#ifndef PF_DIST
#define PF_DIST 1024		/* floats prefetched ahead */
#endif
#ifndef DROP_EVERY
#define DROP_EVERY (2u << 20)	/* bytes per lane between madvise calls */
#endif

/*
 * CRC-32 (zlib's) folded 256 bytes at a time with 512-bit VPCLMULQDQ when
 * the CPU has it (libdeflate 1.14 stops at 128-bit PCLMUL, about 8 GB/s
 * here): four 64-byte accumulators, each 128-bit lane multiplied forward by
 * x^2048 mod P. The 256 bytes left are a message with the same CRC as what
 * was folded, finished with fl_crc32.
 */
struct crcst {
	unsigned char c[256] __attribute__((aligned(64)));
	uint32_t init;		/* ~crc xored into the first 4 bytes */
	int started;		/* c holds the fold */
	uint32_t crc;		/* generic path: fl_crc32 so far */
};

static uint64_t kfold[2] __attribute__((aligned(16)));
static int wide;
static int avx2;	/* the generic kernels by AVX2: the same bits */
static pthread_once_t wide_once = PTHREAD_ONCE_INIT;

/* x^e mod P as a reflected 64-bit PCLMUL operand (x^j at bit 63 - j). */
static uint64_t
xpow_refl(unsigned e)
{
	uint64_t r = 1, o = 0;

	for (unsigned i = 0; i < e; i++) {
		r <<= 1;
		if (r & (1ULL << 32))
			r ^= 0x104C11DB7ULL;
	}
	for (int j = 0; j < 32; j++)
		if (r >> j & 1)
			o |= 1ULL << (63 - j);
	return o;
}

static void
wide_init(void)
{
	const char *g = getenv("FL_AGG_GENERIC");

	kfold[0] = xpow_refl(2048 + 63);	/* the lane's first 8 bytes */
	kfold[1] = xpow_refl(2048 - 1);		/* its last 8 */
	__builtin_cpu_init();
	wide = __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("vpclmulqdq") && !(g && *g && strcmp(g, "0"));
	avx2 = __builtin_cpu_supports("avx2") && !(g && !strcmp(g, "scalar"));
}

#define FOLD(c, v) _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128((c), \
	k, 0x00), _mm512_clmulepi64_epi128((c), k, 0x11), (v), 0x96)

/* acc[0..15] (=, += or nothing by mode) w times the 16 floats in v. */
__attribute__((target("avx512f")))
static inline void
acc16(double *acc, __m512i v, __m512d w, int mode)
{
	__m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_castsi512_ps(v)));
	__m512d hi = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(v, 1)));

	if (mode == 0) {
		_mm512_store_pd(acc, _mm512_mul_pd(w, lo));
		_mm512_store_pd(acc + 8, _mm512_mul_pd(w, hi));
	} else if (mode == 1) {
		_mm512_store_pd(acc, _mm512_fmadd_pd(w, lo, _mm512_load_pd(acc)));
		_mm512_store_pd(acc + 8, _mm512_fmadd_pd(w, hi, _mm512_load_pd(acc + 8)));
	}
}

/*
 * nblk blocks of 64 floats of one lane: fold them into st and, by mode,
 * set (0) or add to (1) acc w times them, or only fold (2).
 */
__attribute__((target("avx512f,vpclmulqdq")))
static void
wide_lane(struct crcst *st, const float *x, size_t nblk, double *acc,
    double w, int mode)
{
	const __m512i k = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)kfold));
	const __m512d wv = _mm512_set1_pd(w);
	__m512i c0, c1, c2, c3;
	size_t b = 0;

	if (!nblk)
		return;
	if (!st->started) {
		c0 = _mm512_loadu_si512(x);
		c1 = _mm512_loadu_si512(x + 16);
		c2 = _mm512_loadu_si512(x + 32);
		c3 = _mm512_loadu_si512(x + 48);
		if (mode != 2) {
			acc16(acc, c0, wv, mode);
			acc16(acc + 16, c1, wv, mode);
			acc16(acc + 32, c2, wv, mode);
			acc16(acc + 48, c3, wv, mode);
		}
		c0 = _mm512_xor_si512(c0, _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0,
		    (long long)st->init));
		st->started = 1;
		b = 1;
	} else {
		c0 = _mm512_load_si512(st->c);
		c1 = _mm512_load_si512(st->c + 64);
		c2 = _mm512_load_si512(st->c + 128);
		c3 = _mm512_load_si512(st->c + 192);
	}
	for (; b < nblk; b++) {
		const float *p = x + 64 * b;
		double *a = acc + 64 * b;
		_mm_prefetch((const char *)(p + PF_DIST), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + PF_DIST + 16), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + PF_DIST + 32), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + PF_DIST + 48), _MM_HINT_T0);
		__m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 16);
		__m512i v2 = _mm512_loadu_si512(p + 32), v3 = _mm512_loadu_si512(p + 48);
		c0 = FOLD(c0, v0);
		c1 = FOLD(c1, v1);
		c2 = FOLD(c2, v2);
		c3 = FOLD(c3, v3);
		if (mode != 2) {
			acc16(a, v0, wv, mode);
			acc16(a + 16, v1, wv, mode);
			acc16(a + 32, v2, wv, mode);
			acc16(a + 48, v3, wv, mode);
		}
	}
	_mm512_store_si512(st->c, c0);
	_mm512_store_si512(st->c + 64, c1);
	_mm512_store_si512(st->c + 128, c2);
	_mm512_store_si512(st->c + 192, c3);
}

/*
 * L lanes (L <= 4) at once, nblk blocks of 64 floats each: their CRCs
 * folded (started here when start) and acc set (first) or added to
 * w_0 x_0 + ... + w_(L-1) x_(L-1), in lane order, so the sums are those of
 * wide_lane lane after lane while acc goes through L1 once per L lanes and
 * L streams are read at a time (about 1.5x wide_lane from memory).
 */
__attribute__((target("avx512f,vpclmulqdq"), always_inline))
static inline void
wide_group(struct crcst *st, const float *const *xs, const double *w, int L,
    size_t nblk, double *acc, int first, int start)
{
	const __m512i k = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)kfold));
	__m512i c[4][4];
	__m512d wv[4];
	size_t b = 0;

#pragma GCC unroll 4
	for (int l = 0; l < L; l++) {
		wv[l] = _mm512_set1_pd(w[l]);
#pragma GCC unroll 4
		for (int q = 0; q < 4; q++)
			c[l][q] = start ? _mm512_setzero_si512() :
			    _mm512_load_si512(st[l].c + 64 * q);
	}
	for (; b < nblk; b++) {
		const size_t o = 64 * b;
#pragma GCC unroll 4
		for (int l = 0; l < L; l++)
#pragma GCC unroll 4
			for (int q = 0; q < 4; q++)
				_mm_prefetch((const char *)(xs[l] + o + PF_DIST + 16 * q),
				    _MM_HINT_T0);
#pragma GCC unroll 4
		for (int q = 0; q < 4; q++) {
			__m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
			if (!first) {
				lo = _mm512_load_pd(acc + o + 16 * q);
				hi = _mm512_load_pd(acc + o + 16 * q + 8);
			}
#pragma GCC unroll 4
			for (int l = 0; l < L; l++) {
				__m512i v = _mm512_loadu_si512(xs[l] + o + 16 * q);
				if (start && b == 0)
					c[l][q] = q ? v : _mm512_xor_si512(v, _mm512_set_epi64(0,
					    0, 0, 0, 0, 0, 0, (long long)st[l].init));
				else
					c[l][q] = FOLD(c[l][q], v);
				__m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(
				    _mm512_castsi512_ps(v)));
				__m512d h = _mm512_cvtps_pd(_mm256_castsi256_ps(
				    _mm512_extracti64x4_epi64(v, 1)));
				if (first && l == 0) {
					lo = _mm512_mul_pd(wv[l], a);
					hi = _mm512_mul_pd(wv[l], h);
				} else {
					lo = _mm512_fmadd_pd(wv[l], a, lo);
					hi = _mm512_fmadd_pd(wv[l], h, hi);
				}
			}
			_mm512_store_pd(acc + o + 16 * q, lo);
			_mm512_store_pd(acc + o + 16 * q + 8, hi);
		}
	}
#pragma GCC unroll 4
	for (int l = 0; l < L; l++) {
#pragma GCC unroll 4
		for (int q = 0; q < 4; q++)
			_mm512_store_si512(st[l].c + 64 * q, c[l][q]);
		st[l].started |= nblk > 0;
	}
}

/* wide_group over nl lanes, four at a time: acc = sum_l w_l x_l. */
__attribute__((target("avx512f,vpclmulqdq")))
static void
wide_lanes(struct crcst *st, const float *const *xs, const double *w,
    size_t nl, size_t nblk, double *acc)
{
	if (!nblk)
		return;
	const int start = !st[0].started;
	for (size_t l = 0; l < nl; l += 4) {
		size_t L = nl - l < 4 ? nl - l : 4;
		int first = l == 0;
		switch (L) {
		case 4:
			wide_group(st + l, xs + l, w + l, 4, nblk, acc, first, start);
			break;
		case 3:
			wide_group(st + l, xs + l, w + l, 3, nblk, acc, first, start);
			break;
		case 2:
			wide_group(st + l, xs + l, w + l, 2, nblk, acc, first, start);
			break;
		default:
			wide_group(st + l, xs + l, w + l, 1, nblk, acc, first, start);
			break;
		}
	}
}

/* The CRC of what went through st, followed by n more bytes at p. */
static uint32_t
crcst_end(const struct crcst *st, const void *p, size_t n)
{
	uint32_t c = st->started ? fl_crc32(0xffffffffu, st->c, 256) : st->crc;

	return fl_crc32(c, p, n);
}

uint32_t
fl_agg_crc32(uint32_t crc, const void *p, size_t n)
{
	struct crcst st;
	size_t nblk = n / 256;

	pthread_once(&wide_once, wide_init);
	if (!wide || nblk < 2)
		return fl_crc32(crc, p, n);
	st.init = ~crc;
	st.started = 0;
	wide_lane(&st, p, nblk, NULL, 0, 2);
	return crcst_end(&st, (const unsigned char *)p + nblk * 256, n % 256);
}

/* s / d, given inv = 1 / d: the product by the reciprocal, then one
 * correction by its residual (Markstein), which makes it s / d rounded
 * correctly but in cases of measure zero. A division's throughput is a
 * fraction of a multiply's, and with the blocks in L1 the last pass over
 * them waited on it: 9 % of fl-avg's profile on 8 x 100 MB inputs. */
__attribute__((target("avx512f")))
static inline __m512d
quotient(__m512d s, __m512d d, __m512d inv)
{
	__m512d q = _mm512_mul_pd(s, inv);
	return _mm512_fmadd_pd(_mm512_fnmadd_pd(q, d, s), inv, q);
}

/* out = (acc + bc base) / wsum (base may be NULL); nonzero if a result is
 * not finite. The base term is a product and a sum, as phase_combine's. */
__attribute__((target("avx512f")))
static int
wide_finish(float *out, const double *acc, const float *base, double bc,
    double wsum, size_t n)
{
	const __m512d d = _mm512_set1_pd(wsum), c = _mm512_set1_pd(bc);
	const __m512d inv = _mm512_set1_pd(1 / wsum);
	__m512 bad = _mm512_setzero_ps();
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m512d s0 = _mm512_load_pd(acc + i), s1 = _mm512_load_pd(acc + i + 8);
		if (base) {
			s0 = _mm512_add_pd(s0, _mm512_mul_pd(c,
			    _mm512_cvtps_pd(_mm256_loadu_ps(base + i))));
			s1 = _mm512_add_pd(s1, _mm512_mul_pd(c,
			    _mm512_cvtps_pd(_mm256_loadu_ps(base + i + 8))));
		}
		__m256 lo = _mm512_cvtpd_ps(quotient(s0, d, inv));
		__m256 hi = _mm512_cvtpd_ps(quotient(s1, d, inv));
		__m512 o = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(
		    _mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
		_mm512_storeu_ps(out + i, o);
		bad = _mm512_add_ps(bad, _mm512_sub_ps(o, o));	/* NaN if not finite */
	}
	int r = _mm512_cmp_ps_mask(bad, bad, _CMP_UNORD_Q) != 0;
	for (; i < n; i++) {
		double v = acc[i];
		if (base)
			v += bc * base[i];
		out[i] = (float)(v / wsum);
		r |= !isfinite(out[i]);
	}
	return r;
}

__attribute__((target("avx512f")))
static int
any_nonfinite_wide(const float *x, size_t n)
{
	const __m512i e = _mm512_set1_epi32(0x7f800000);
	__mmask16 m = 0;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m512i v = _mm512_and_si512(_mm512_loadu_si512(x + i), e);
		m |= _mm512_cmpeq_epi32_mask(v, e);
	}
	if (i < n) {
		__mmask16 t = (__mmask16)((1u << (n - i)) - 1);
		__m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi32(t, x + i), e);
		m |= _mm512_mask_cmpeq_epi32_mask(t, v, e);
	}
	return m != 0;
}

/*
 * The generic kernels by AVX2 (no FMA): the same products, sums and
 * quotients, element by element, as their scalar loops, so the same bits;
 * FL_AGG_GENERIC=scalar keeps to the loops. Each does whole vectors and
 * returns how many elements that was: the loop does the rest.
 */
/* *bad: whether one of them is NaN or Inf. */
__attribute__((target("avx2")))
static size_t
nonfinite_avx2(const float *x, size_t n, int *bad)
{
	const __m256i m = _mm256_set1_epi32(0x7f800000);
	__m256i r = _mm256_setzero_si256();
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), m);
		r = _mm256_or_si256(r, _mm256_cmpeq_epi32(v, m));
	}
	*bad = !_mm256_testz_si256(r, r);
	return i;
}

/* acc = w x (first) or acc += w x. */
__attribute__((target("avx2")))
static size_t
axpy_avx2(double *acc, const float *x, size_t k, double w, int first)
{
	const __m256d wv = _mm256_set1_pd(w);
	size_t i = 0;

	for (; i + 4 <= k; i += 4) {
		__m256d p = _mm256_mul_pd(wv, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
		if (!first)
			p = _mm256_add_pd(_mm256_loadu_pd(acc + i), p);
		_mm256_storeu_pd(acc + i, p);
	}
	return i;
}

static void
axpy(double *acc, const float *x, size_t k, double w, int first)
{
	size_t i = avx2 ? axpy_avx2(acc, x, k, w, first) : 0;

	if (first)
		for (; i < k; i++)
			acc[i] = w * x[i];
	else
		for (; i < k; i++)
			acc[i] += w * x[i];
}

/* out = (acc + bc base) / wsum (base may be NULL). */
__attribute__((target("avx2")))
static size_t
finish_avx2(float *out, const double *acc, const float *base, double bc,
    double wsum, size_t n)
{
	const __m256d d = _mm256_set1_pd(wsum), c = _mm256_set1_pd(bc);
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		__m256d v = _mm256_loadu_pd(acc + i);
		if (base)
			v = _mm256_add_pd(v, _mm256_mul_pd(c,
			    _mm256_cvtps_pd(_mm_loadu_ps(base + i))));
		_mm_storeu_ps(out + i, _mm256_cvtpd_ps(_mm256_div_pd(v, d)));
	}
	return i;
}

/* Nonzero if any of x[0..n-1] is NaN or Inf (vectorises: no branch). */
static int
any_nonfinite(const float *x, size_t n)
{
	unsigned r = 0;
	size_t i = 0;
	int bad = 0;

	if (wide)
		return any_nonfinite_wide(x, n);
	if (avx2)
		i = nonfinite_avx2(x, n, &bad);
	if (bad)
		return 1;
	for (; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], sizeof(u));
		r |= (~u & 0x7f800000u) == 0;
	}
	return r != 0;
}

/*
 * The scan's sums: <x - b, y - b> (or |x - y|^2 without a base) over k
 * elements, into 8 partial sums ps, element e into ps[e % 8]. The wide and
 * the generic kernels do the same products and sums in the same order
 * (no fused multiply-add), so they agree to the last bit.
 */
__attribute__((target("avx512f")))
static void
pair_wide(double *ps, const float *x, const float *y, const float *b, size_t k)
{
	__m512d s = _mm512_loadu_pd(ps);
	size_t e = 0;

	if (x == y && b) {	/* |x - b|^2: the same products, one load */
		for (; e + 8 <= k; e += 8) {
			__m512d u = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + e)),
			    _mm512_cvtps_pd(_mm256_loadu_ps(b + e)));
			s = _mm512_add_pd(s, _mm512_mul_pd(u, u));
		}
	}
	for (; e + 8 <= k; e += 8) {
		__m512d u = _mm512_cvtps_pd(_mm256_loadu_ps(x + e));
		__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(y + e));
		if (b) {
			__m512d c = _mm512_cvtps_pd(_mm256_loadu_ps(b + e));
			s = _mm512_add_pd(s, _mm512_mul_pd(_mm512_sub_pd(u, c),
			    _mm512_sub_pd(v, c)));
		} else {
			__m512d d = _mm512_sub_pd(u, v);
			s = _mm512_add_pd(s, _mm512_mul_pd(d, d));
		}
	}
	_mm512_storeu_pd(ps, s);
	for (; e < k; e++) {
		double d = (double)x[e] - y[e];
		ps[e % 8] += b ? ((double)x[e] - b[e]) * ((double)y[e] - b[e]) : d * d;
	}
}

static void
pair_generic(double *ps, const float *x, const float *y, const float *b,
    size_t k)
{
	for (size_t e = 0; e < k; e++) {
		double d = (double)x[e] - y[e];
		ps[e % 8] += b ? ((double)x[e] - b[e]) * ((double)y[e] - b[e]) : d * d;
	}
}

static void
pair_acc(double *ps, const float *x, const float *y, const float *b, size_t k)
{
	if (wide)
		pair_wide(ps, x, y, b, k);
	else
		pair_generic(ps, x, y, b, k);
}

static double
pair_reduce(const double *ps)
{
	return ((ps[0] + ps[1]) + (ps[2] + ps[3])) + ((ps[4] + ps[5]) + (ps[6] + ps[7]));
}

/* One stripe's (or chunk's) sum for a pair. */
static double
pair_sum(const float *x, const float *y, const float *b, size_t k)
{
	double ps[8] = { 0 };

	pthread_once(&wide_once, wide_init);
	pair_acc(ps, x, y, b, k);
	return pair_reduce(ps);
}

static int
generic_finish(float *out, const double *acc, const float *base, double bc,
    double wsum, size_t n)
{
	for (size_t i = avx2 ? finish_avx2(out, acc, base, bc, wsum, n) : 0;
	    i < n; i++) {
		double v = acc[i];
		if (base)
			v += bc * base[i];
		out[i] = (float)(v / wsum);
	}
	return any_nonfinite(out, n);
}

struct mjob {
	struct pass *p;
	const struct fl_tensor *t;
	uint64_t numel;
	size_t S, B, nstripes;
	struct fl_map *map;	/* per lane, then the base */
	const float **x;	/* per lane: the tensor's floats */
	const float *xb;	/* the base's, or NULL */
	size_t nc;		/* lanes with a CRC: nl, + 1 with a base */
	uint32_t *scrc;		/* nstripes x nc */
	uint32_t *ocrc;		/* per stripe: its output's CRC, when final
				 * in stripe_run (no noise to add); or NULL */
	float *clipped[MAX_THREADS];	/* nl x B: clipped lanes for a rule */
	unsigned char *ready;	/* per stripe */
	float *slot[RING];
	struct crcst *st[MAX_THREADS];	/* per thread: nc, then the output's */
	double *acc[MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next, written;
	int writing;
	int stop;
	int rc;
	char err[FL_ERRLEN];
	int64_t bad;		/* first element found not finite, or -1 */
	int badbase;		/* ... in the base */
	double *sg;		/* scan: nstripes x npairs stripe sums */
	int64_t *sbad;		/* scan: nstripes x nc, first bad element or -1 */
	double *ps[MAX_THREADS];	/* scan: npairs x 8 partial sums */
	double *ws[MAX_THREADS];	/* lanes' weights */
	uint64_t dropped;	/* bytes of each lane given back */
};

/* Fold n floats of x into st's CRC (n a multiple of 64 when wide). */
static void
fold_only(struct crcst *st, const float *x, size_t n)
{
	if (wide)
		wide_lane(st, x, n / 64, NULL, 0, 2);
	else
		st->crc = fl_crc32(st->crc, x, n * sizeof(float));
}

/* The server-optimizer step on k elements of the output at element off. */
static void
server_step(struct pass *p, float *out, const float *base, uint64_t off,
    size_t k)
{
	fl_server_step(p->a->o.opt, &p->a->o.sp, out, base, out,
	    p->m ? p->m + off : NULL, p->v ? p->v + off : NULL, k);
}

/*
 * Compute stripe s into its slot; returns the first bad element or -1
 * (j->badbase set when it is the base's). Noise, when asked for, needs the
 * stripes in order: the writer adds it and takes the server step then.
 */
static int64_t
stripe_run(struct mjob *j, size_t s, int tid)
{
	struct pass *p = j->p;
	const size_t nl = p->nl, S = j->S, B = j->B;
	const uint64_t off = (uint64_t)s * S;
	const size_t k = (size_t)(j->numel - off < S ? j->numel - off : S);
	const int fused = p->fused, step = p->server && !(p->sigma > 0);
	float *out = j->slot[s % RING];
	struct crcst *st = j->st[tid];
	double *acc = j->acc[tid];
	float **xs = p->xsp[tid];
	double *ws = j->ws[tid];
	size_t tail = wide ? k % 64 : 0;

	for (size_t l = 0; l <= j->nc; l++) {
		st[l].init = 0xffffffffu;
		st[l].started = 0;
		st[l].crc = 0;
	}
	for (size_t b = 0; b < k; b += B) {
		size_t kb = k - b < B ? k - b : B, kv = wide ? kb & ~(size_t)63 : kb;
		const float *bx = j->xb ? j->xb + off + b : NULL;
		if (bx) {
			fold_only(&st[nl], bx, kv);
			if (any_nonfinite(bx, kb)) {
				j->badbase = 1;
				return (int64_t)(off + b) + first_nonfinite(bx, kb);
			}
		}
		if (fused && wide) {
			for (size_t l = 0; l < nl; l++) {
				xs[l] = (float *)(j->x[l] + off + b);
				ws[l] = p->lane[l].w;
			}
			wide_lanes(st, (const float *const *)xs, ws, nl, kv / 64, acc);
		}
		for (size_t l = 0; l < nl; l++) {
			const float *x = j->x[l] + off + b;
			const double w = p->lane[l].w;
			int mode = !fused ? 2 : l == 0 ? 0 : 1;
			if (wide && fused) {
				/* done above */
			} else if (wide) {
				wide_lane(&st[l], x, kv / 64, acc, w, mode);
			} else {
				st[l].crc = fl_crc32(st[l].crc, x, kv * sizeof(float));
				if (mode != 2)
					axpy(acc, x, kv, w, mode == 0);
			}
			for (size_t i = kv; i < kb && mode != 2; i++)
				acc[i] = (mode ? acc[i] : 0) + w * x[i];
			if (!fused) {
				xs[l] = (float *)x;
				if (any_nonfinite(x, kb))
					return (int64_t)(off + b) + first_nonfinite(x, kb);
				if (bx && p->lane[l].in->scale < 1) {
					const double sc = p->lane[l].in->scale;
					float *c = j->clipped[tid] + l * B;
					for (size_t i = 0; i < kb; i++)
						c[i] = (float)(bx[i] + sc * ((double)x[i] - bx[i]));
					xs[l] = c;
				}
			}
		}
		if (fused) {
			if (wide ? wide_finish(out + b, acc, bx, p->basecoef, p->wsum, kb) :
			    generic_finish(out + b, acc, bx, p->basecoef, p->wsum, kb))
				return (int64_t)(off + b) + first_nonfinite(out + b, kb);
		} else if (p->a->o.rule == FL_AGG_MEDIAN) {
			fl_agg_median(out + b, xs, nl, kb, p->scratch[tid]);
		} else {
			fl_agg_trimmed(out + b, xs, nl, kb, p->cut, p->scratch[tid]);
		}
		if (step)
			server_step(p, out + b, bx, off + b, kb);
		if (j->ocrc)	/* while the block is still in L1 */
			fold_only(&st[j->nc], out + b, kv);
	}
	if (j->ocrc)
		j->ocrc[s] = crcst_end(&st[j->nc], out + k - tail, tail * sizeof(float));
	for (size_t l = 0; l < nl; l++)
		j->scrc[s * j->nc + l] = crcst_end(&st[l], j->x[l] + off + k - tail,
		    tail * sizeof(float));
	if (j->xb)
		j->scrc[s * j->nc + nl] = crcst_end(&st[nl], j->xb + off + k - tail,
		    tail * sizeof(float));
	return -1;
}

/* Give back the pages of every lane below byte upto of the tensor. */
static void
drop_pages(struct mjob *j, uint64_t upto)
{
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);

	for (size_t l = 0; l < j->nc; l++) {
		uintptr_t lo = (uintptr_t)j->map[l].data + j->dropped;
		uintptr_t hi = ((uintptr_t)j->map[l].data + upto) & ~(pg - 1);
		lo = lo < (uintptr_t)j->map[l].base ? (uintptr_t)j->map[l].base :
		    (lo + pg - 1) & ~(pg - 1);
		if (hi > lo)
			madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
	j->dropped = upto;
}

/* Write stripe s (the caller is the only writer). */
static int
stripe_write(struct mjob *j, size_t s, char *err)
{
	struct pass *p = j->p;
	const uint64_t off = (uint64_t)s * j->S;
	const size_t k = (size_t)(j->numel - off < j->S ? j->numel - off : j->S);
	float *out = j->slot[s % RING];
	int rc;

	if (p->sigma > 0) {
		fl_agg_noise(out, k, p->sigma, &p->rng);
		if (p->server)
			server_step(p, out, j->xb + off, off, k);
	}
	rc = j->ocrc ? fl_writer_write_crc(p->w, out, k * sizeof(float), j->ocrc[s], err) :
	    fl_writer_write(p->w, out, k * sizeof(float), err);
	if (rc)
		return rc;
	p->done += k * p->nl;
	report(p, p->npasses, p->npasses - 1);
	if ((off + k) * sizeof(float) - j->dropped >= DROP_EVERY)
		drop_pages(j, (off + k) * sizeof(float));
	return FL_OK;
}

static void
phase_mapped(void *arg, int tid)
{
	struct mjob *j = arg;
	char err[FL_ERRLEN];

	pthread_mutex_lock(&j->mu);
	for (;;) {
		if (!j->writing && !j->stop && j->written < j->nstripes &&
		    j->ready[j->written]) {
			size_t s = j->written;
			int rc;
			j->writing = 1;
			pthread_mutex_unlock(&j->mu);
			rc = stripe_write(j, s, err);
			pthread_mutex_lock(&j->mu);
			j->writing = 0;
			j->written++;
			if (rc && !j->rc) {
				j->rc = rc;
				j->stop = 1;
				memcpy(j->err, err, sizeof(err));
			}
			pthread_cond_broadcast(&j->cv);
			continue;
		}
		if (!j->stop && j->next < j->nstripes && j->next < j->written + RING) {
			size_t s = j->next++;
			int64_t bad;
			pthread_mutex_unlock(&j->mu);
			bad = stripe_run(j, s, tid);
			pthread_mutex_lock(&j->mu);
			j->ready[s] = 1;
			if (bad >= 0) {
				j->stop = 1;
				if (j->bad < 0 || bad < j->bad)
					j->bad = bad;
			}
			pthread_cond_broadcast(&j->cv);
			continue;
		}
		if (j->written == j->nstripes || (j->stop && !j->writing))
			break;
		pthread_cond_wait(&j->cv, &j->mu);
	}
	pthread_mutex_unlock(&j->mu);
}

/* Can lane l's tensor ti, of the same shape as t, be mapped? */
static int
lane_mappable(const struct lane *l, size_t ti, const struct fl_tensor *t)
{
	const struct fl_tensor *u = &l->h.t[ti];

	return l->r.remain != UINT64_MAX && !l->r.in_tensor && l->r.next <= ti &&
	    u->dtype == FL_F32 && u->enc == FL_RAW && u->size == fl_tensor_nbytes(t);
}

/* Can tensor ti go the mapped way in every lane (and the base)? */
static int
mappable(const struct pass *p, size_t ti)
{
	const struct fl_tensor *t = &p->lane[0].h.t[ti];

	if (t->dtype != FL_F32 || fl_tensor_nbytes(t) < MAP_MIN)
		return 0;
	for (size_t j = 0; j < p->nl; j++)
		if (!lane_mappable(&p->lane[j], ti, t))
			return 0;
	return !p->has_base || lane_mappable(&p->base, ti, t);
}

static void
mjob_free(struct mjob *j)
{
	for (size_t l = 0; j->map && l < j->nc; l++)
		fl_map_release(&j->map[l]);
	free(j->map);
	free(j->x);
	free(j->scrc);
	free(j->ocrc);
	free(j->ready);
	for (int r = 0; r < RING; r++)
		free(j->slot[r]);
	for (int t = 0; t < MAX_THREADS; t++) {
		free(j->st[t]);
		free(j->acc[t]);
		free(j->clipped[t]);
		free(j->ps[t]);
		free(j->ws[t]);
	}
	free(j->sg);
	free(j->sbad);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
}

/* After a bad element: a corrupt lane is reported before the NaN. */
static int
mapped_bad(struct mjob *j, char *err)
{
	struct pass *p = j->p;
	const int64_t e = j->bad;
	const size_t ti = (size_t)(j->t - p->lane[0].h.t);

	for (size_t l = 0; l < j->nc; l++) {
		struct lane *ln = l < p->nl ? &p->lane[l] : &p->base;
		uint32_t c = fl_crc32(0, j->map[l].data, (size_t)j->map[l].size);
		if (c != ln->h.t[ti].crc)
			return fl_err(err, FL_EBLOB, "%s: tensor %s: crc mismatch "
			    "(stored %08x, computed %08x)", ln->label, j->t->name,
			    ln->h.t[ti].crc, c);
	}
	if (j->badbase)
		return lane_bad_error(&p->base, ti, e, j->xb[e], err);
	for (size_t l = 0; l < p->nl; l++)
		if (!isfinite(j->x[l][e]))
			return lane_bad_error(&p->lane[l], ti, e, j->x[l][e], err);
	return fl_err(err, FL_EDATA, "tensor %s: the weighted sum overflows at "
	    "element %lld", j->t->name, (long long)e);
}

/* Set up j for tensor ti of pass p and map it in every lane. */
static int
mjob_open(struct mjob *j, struct pass *p, size_t ti, char *err)
{
	const size_t nl = p->nl;
	size_t nc;

	pthread_once(&wide_once, wide_init);
	memset(j, 0, sizeof(*j));
	j->p = p;
	j->t = &p->lane[0].h.t[ti];
	j->numel = fl_tensor_numel(j->t);
	j->bad = -1;
	j->nc = nc = nl + (p->has_base ? 1 : 0);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	/* --chunk sets the stripe (tests); whole blocks of 64 either way. */
	j->S = p->a->o.chunk ? (p->a->o.chunk + 63) & ~(size_t)63 : STRIPE;
	j->B = j->S < SUBBLK ? j->S : SUBBLK;
	j->nstripes = (size_t)((j->numel + j->S - 1) / j->S);
	if (!(j->map = calloc(nc, sizeof(*j->map))) || !(j->x = calloc(nl, sizeof(*j->x))) ||
	    !(j->scrc = calloc(j->nstripes * nc, sizeof(*j->scrc))) ||
	    !(j->ready = calloc(j->nstripes, 1)))
		return fl_err(err, FL_EFAIL, "out of memory");
	if (p->scan) {
		if (!(j->sg = calloc(j->nstripes * p->npairs + 1, sizeof(*j->sg))) ||
		    !(j->sbad = malloc(j->nstripes * nc * sizeof(*j->sbad))))
			return fl_err(err, FL_EFAIL, "out of memory");
		for (size_t i = 0; i < j->nstripes * nc; i++)
			j->sbad[i] = -1;
	}
	if (!p->scan && !(p->sigma > 0) &&
	    !(j->ocrc = malloc(j->nstripes * sizeof(*j->ocrc))))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (int r = 0; !p->scan && r < RING; r++)
		if (!(j->slot[r] = aligned_alloc(64, j->S * sizeof(float))))
			return fl_err(err, FL_EFAIL, "out of memory");
	for (int t = 0; t < p->pool.n; t++)
		if (!(j->st[t] = aligned_alloc(64, (nc + 1) * sizeof(struct crcst))) ||
		    !(j->acc[t] = aligned_alloc(64, j->B * sizeof(double))) ||
		    !(j->ws[t] = malloc((nl + 1) * sizeof(double))) ||
		    (p->scan && !(j->ps[t] = malloc((p->npairs + 1) * 8 * sizeof(double)))) ||
		    (!p->scan && p->has_base && !p->fused &&
		    !(j->clipped[t] = malloc(nl * j->B * sizeof(float)))))
			return fl_err(err, FL_EFAIL, "out of memory");
	for (size_t l = 0; l < nc; l++) {
		struct lane *ln = l < nl ? &p->lane[l] : &p->base;
		int rc;
		if ((rc = fl_reader_map(&ln->r, ti, &j->map[l], err))) {
			if (rc == FL_EFAIL)
				fl_err_prefix(err, "%s: tensor %s: cannot map", ln->label,
				    j->t->name);
			return rc;
		}
		if (l < nl)
			j->x[l] = (const float *)(const void *)j->map[l].data;
		else
			j->xb = (const float *)(const void *)j->map[l].data;
	}
	return FL_OK;
}

static int mapped_crcs(struct mjob *j, size_t ti, char *err);

static int
mapped_tensor(struct pass *p, size_t ti, char *err)
{
	struct mjob j;
	int rc;

	if ((rc = mjob_open(&j, p, ti, err)))
		goto out;
	pool_run(&p->pool, phase_mapped, &j);
	if (j.bad >= 0)
		rc = mapped_bad(&j, err);
	else if (j.rc)
		rc = fl_err(err, j.rc, "%s", j.err);
	else
		rc = mapped_crcs(&j, ti, err);
out:
	mjob_free(&j);
	return rc;
}

/*
 * The scan, mapped: each lane's CRC and first NaN or Inf, and the sums of
 * the pairs needed, a stripe at a time, summed in stripe order after.
 */
static int
scan_stripe(struct mjob *j, size_t s, int tid)
{
	int stop = 0;
	struct pass *p = j->p;
	const size_t nl = p->nl, n = nl, S = j->S, B = j->B, nc = j->nc;
	const uint64_t off = (uint64_t)s * S;
	const size_t k = (size_t)(j->numel - off < S ? j->numel - off : S);
	struct crcst *st = j->st[tid];
	double *ps = j->ps[tid];
	size_t tail = wide ? k % 64 : 0;

	for (size_t l = 0; l < nc; l++) {
		st[l].init = 0xffffffffu;
		st[l].started = 0;
		st[l].crc = 0;
		j->sbad[s * nc + l] = -1;
	}
	memset(ps, 0, p->npairs * 8 * sizeof(double));
	for (size_t b = 0; b < k; b += B) {
		size_t kb = k - b < B ? k - b : B, kv = wide ? kb & ~(size_t)63 : kb;
		const float *bx = j->xb ? j->xb + off + b : NULL;
		for (size_t l = 0; l < nc; l++) {
			const float *x = l < nl ? j->x[l] + off + b : bx;
			fold_only(&st[l], x, kv);
			if (j->sbad[s * nc + l] < 0 && any_nonfinite(x, kb)) {
				j->sbad[s * nc + l] = (int64_t)(off + b) + first_nonfinite(x, kb);
				stop |= l == nl || !p->a->o.skip_bad;
			}
		}
		for (size_t q = 0; q < p->npairs; q++) {
			/* pairs index an n x n matrix: n > 0 */
			/* NOLINTNEXTLINE(clang-analyzer-core.DivideZero) */
			size_t a = p->pairs[q] / n, c = p->pairs[q] % n;
			pair_acc(ps + 8 * q, j->x[a] + off + b, j->x[c] + off + b, bx, kb);
		}
	}
	for (size_t q = 0; q < p->npairs; q++)
		j->sg[s * p->npairs + q] = pair_reduce(ps + 8 * q);
	for (size_t l = 0; l < nc; l++) {
		const float *x = l < nl ? j->x[l] : j->xb;
		j->scrc[s * nc + l] = crcst_end(&st[l], x + off + k - tail,
		    tail * sizeof(float));
	}
	return stop;
}

static void
phase_scan(void *arg, int tid)
{
	struct mjob *j = arg;
	struct pass *p = j->p;

	pthread_mutex_lock(&j->mu);
	while (!j->stop && j->next < j->nstripes) {
		size_t s = j->next++;
		int stop;
		pthread_mutex_unlock(&j->mu);
		stop = scan_stripe(j, s, tid);
		pthread_mutex_lock(&j->mu);
		j->stop |= stop;
		j->ready[s] = 1;
		while (j->written < j->nstripes && j->ready[j->written]) {
			uint64_t o = (uint64_t)j->written * j->S;
			size_t k = (size_t)(j->numel - o < j->S ? j->numel - o : j->S);
			p->done += k * p->nl;
			j->written++;
			if ((o + k) * sizeof(float) - j->dropped >= DROP_EVERY)
				drop_pages(j, (o + k) * sizeof(float));
		}
		report(p, p->npasses, 0);
	}
	pthread_mutex_unlock(&j->mu);
}

/* Each lane's CRC from its stripes', in order, against the header's. */
static int
mapped_crcs(struct mjob *j, size_t ti, char *err)
{
	struct pass *p = j->p;
	const size_t nl = p->nl, nc = j->nc;
	uLong op = crc32_combine_gen((z_off_t)(j->S * sizeof(float)));

	for (size_t l = 0; l < nc; l++) {
		struct lane *ln = l < nl ? &p->lane[l] : &p->base;
		uLong c = j->scrc[l];
		const uint32_t want = ln->h.t[ti].crc;
		for (size_t s = 1; s < j->nstripes; s++) {
			size_t len = (size_t)(j->numel - (uint64_t)s * j->S < j->S ?
			    j->numel - (uint64_t)s * j->S : j->S) * sizeof(float);
			c = len == j->S * sizeof(float) ?
			    crc32_combine_op(c, j->scrc[s * nc + l], op) :
			    crc32_combine(c, j->scrc[s * nc + l], (z_off_t)len);
		}
		if ((uint32_t)c != want)
			return fl_err(err, FL_EBLOB, "%s: tensor %s: crc mismatch (stored "
			    "%08x, computed %08x)", ln->label, j->t->name, want,
			    (uint32_t)c);
	}
	return FL_OK;
}

static int
mapped_scan(struct pass *p, size_t ti, char *err)
{
	struct mjob j;
	const size_t nl = p->nl;
	int rc;

	if ((rc = mjob_open(&j, p, ti, err)))
		goto out;
	pool_run(&p->pool, phase_scan, &j);
	if (j.stop) {
		/* A NaN or Inf that is an error: a corrupt lane goes first, then
		 * the first stripe's bad base or lane. */
		for (size_t l = 0; l < j.nc; l++) {
			struct lane *ln = l < nl ? &p->lane[l] : &p->base;
			uint32_t c = fl_crc32(0, j.map[l].data, (size_t)j.map[l].size);
			if (c != ln->h.t[ti].crc) {
				rc = fl_err(err, FL_EBLOB, "%s: tensor %s: crc mismatch "
				    "(stored %08x, computed %08x)", ln->label, j.t->name,
				    ln->h.t[ti].crc, c);
				goto out;
			}
		}
		for (size_t s = 0; s < j.nstripes; s++) {
			const int64_t *sb = j.sbad + s * j.nc;
			if (j.xb && sb[nl] >= 0) {
				rc = lane_bad_error(&p->base, ti, sb[nl], j.xb[sb[nl]], err);
				goto out;
			}
			for (size_t l = 0; l < nl && !p->a->o.skip_bad; l++)
				if (sb[l] >= 0) {
					rc = lane_bad_error(&p->lane[l], ti, sb[l], j.x[l][sb[l]], err);
					goto out;
				}
		}
	}
	if ((rc = mapped_crcs(&j, ti, err)))
		goto out;
	for (size_t s = 0; s < j.nstripes; s++)
		for (size_t l = 0; l < nl; l++)
			if (j.sbad[s * j.nc + l] >= 0) {
				p->lane[l].scan_bad = 1;
				p->lane[l].in->bad = 1;
			}
	/* Into the thread's Gram matrix that the chunked scan would use. */
	for (size_t q = 0; q < p->npairs; q++) {
		double *g = &p->gram[q % (size_t)p->pool.n][p->pairs[q]];
		for (size_t s = 0; s < j.nstripes; s++)
			*g += j.sg[s * p->npairs + q];
	}
out:
	mjob_free(&j);
	return rc;
}

/* Begin tensor ti in every lane. */
static int
pass_begin(struct pass *p, size_t ti, char *err)
{
	int rc;

	p->ti = ti;
	for (size_t j = 0; j < p->nl; j++) {
		p->lane[j].bad = -1;
		if ((rc = fl_reader_begin(&p->lane[j].r, ti, err)))
			return rc;
	}
	if (p->has_base && (rc = fl_reader_begin(&p->base.r, ti, err)))
		return rc;
	return FL_OK;
}

static int
pass_finish(struct pass *p, char *err)
{
	int rc;

	for (size_t j = 0; j < p->nl; j++)
		if ((rc = fl_reader_finish(&p->lane[j].r, err)))
			return rc;
	if (p->has_base && (rc = fl_reader_finish(&p->base.r, err)))
		return rc;
	return FL_OK;
}

static void
report(struct pass *p, int npasses, int passno)
{
	const struct fl_agg_opts *o = &p->a->o;

	if (!o->progress || !p->total)
		return;
	o->progress(o->cbarg, ((double)passno + (double)p->done / (double)p->total) /
	    npasses);
}

/*
 * The first pass: crcs, NaN and Inf, and the Gram matrix of the updates
 * (or the squared distances between inputs when there is no base).
 */
static int
scan(struct fl_agg *a, int npasses, char *err)
{
	struct pass p;
	const struct fl_header *h = &a->in[0].h;
	size_t n = a->n;
	int rc;

	if ((rc = pass_open(&p, a, 1, err)))
		goto out;
	p.npasses = npasses;
	for (size_t ti = 0; ti < h->ntensors; ti++) {
		uint64_t numel = fl_tensor_numel(&h->t[ti]);
		if (mappable(&p, ti)) {
			if ((rc = mapped_scan(&p, ti, err)))
				goto out;
			continue;
		}
		if ((rc = pass_begin(&p, ti, err)))
			goto out;
		for (p.off = 0; p.off < numel; p.off += p.k) {
			p.k = (size_t)(numel - p.off < p.chunk ? numel - p.off : p.chunk);
			if ((rc = pass_chunk(&p, err)))
				goto out;
			p.done += p.k * p.nl;
			report(&p, npasses, 0);
		}
	}
	if ((rc = pass_finish(&p, err)))
		goto out;
	if (!(a->gram = calloc(n * n, sizeof(double)))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	for (int t = 0; t < p.pool.n; t++)
		for (size_t i = 0; i < n; i++)
			for (size_t j = i; j < n; j++)
				a->gram[i * n + j] += p.gram[t][i * n + j];
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			a->gram[i * n + j] = a->gram[j * n + i];
out:
	pass_close(&p);
	return rc;
}

static int
needs_m(enum fl_server_opt o)
{
	return o != FL_SOPT_SGD;
}

static int
needs_v(enum fl_server_opt o)
{
	return o == FL_SOPT_ADAM || o == FL_SOPT_YOGI || o == FL_SOPT_ADAGRAD;
}

/* The state blob's header for a model header h. */
static int
state_header(struct fl_header *s, const struct fl_header *h,
    const struct fl_agg_opts *o, uint64_t step)
{
	char name[FL_MAX_NAME + 8];

	if (fl_header_init(s, "fl-avg-state") ||
	    fl_map_set_str(&s->meta, "server_opt", fl_server_opt_name(o->opt)) ||
	    fl_map_set_uint(&s->meta, "step", step) ||
	    fl_map_set_float(&s->meta, "lr", o->sp.lr) ||
	    fl_map_set_float(&s->meta, "beta1", o->sp.beta1) ||
	    fl_map_set_float(&s->meta, "beta2", o->sp.beta2) ||
	    fl_map_set_float(&s->meta, "tau", o->sp.tau))
		return FL_EFAIL;
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		snprintf(name, sizeof(name), "m/%s", t->name);
		if (needs_m(o->opt) && fl_header_add(s, name, FL_F32, t->ndim, t->shape) < 0)
			return FL_EFAIL;
		snprintf(name, sizeof(name), "v/%s", t->name);
		if (needs_v(o->opt) && fl_header_add(s, name, FL_F32, t->ndim, t->shape) < 0)
			return FL_EFAIL;
	}
	return FL_OK;
}

/* Open the state file if it exists and check it fits the model. */
static int
state_open(struct fl_agg *a, struct fl_reader *r, struct fl_header *sh,
    int *have, char *err)
{
	struct fl_header want;
	const char *opt;
	uint64_t step = 0;
	int rc;

	*have = 0;
	if (!a->o.state)
		return FL_OK;
	if ((rc = fl_reader_open(r, a->o.state, err)))
		return rc == FL_ENOTFOUND ? FL_OK : rc;
	fl_header_release(sh);	/* fl_reader_next fills it afresh */
	if ((rc = fl_reader_next(r, sh, err))) {
		fl_reader_close(r);
		return rc == FL_EOF ? fl_err(err, FL_EBLOB, "%s: empty file", a->o.state) : rc;
	}
	*have = 1;
	opt = fl_map_get_str(&sh->meta, "server_opt");
	if (strcmp(sh->kind, "fl-avg-state") || !opt)
		return fl_err(err, FL_EDATA, "%s: not an fl-avg state blob", a->o.state);
	if (strcmp(opt, fl_server_opt_name(a->o.opt)))
		return fl_err(err, FL_EUSAGE, "%s: state of server optimizer %s, not %s "
		    "(remove it to start afresh)", a->o.state, opt,
		    fl_server_opt_name(a->o.opt));
	fl_val_get_u64(fl_map_get(&sh->meta, "step"), &step);
	a->step = step;
	if (state_header(&want, &a->in[0].h, &a->o, 0)) {
		fl_header_release(&want);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	rc = FL_OK;
	if (want.ntensors != sh->ntensors)
		rc = fl_err(err, FL_EDATA, "%s: state holds %zu tensors, the model "
		    "needs %zu", a->o.state, sh->ntensors, want.ntensors);
	for (size_t i = 0; !rc && i < want.ntensors; i++) {
		const struct fl_tensor *x = &want.t[i], *y = &sh->t[i];
		char s1[128], s2[128];
		fl_shape_str(x, s1, sizeof(s1));
		fl_shape_str(y, s2, sizeof(s2));
		if (strcmp(x->name, y->name) || strcmp(s1, s2) || y->dtype != FL_F32)
			rc = fl_err(err, FL_EDATA, "%s: state tensor %s %s %s does not "
			    "fit the model (expected %s %s f32)", a->o.state, y->name, s2,
			    fl_dtype_name(y->dtype), x->name, s1);
	}
	fl_header_release(&want);
	return rc;
}

/* Weights, clipping factors and the Krum selection, after the scan. */
static int
choose(struct fl_agg *a, char *err)
{
	size_t n = a->n, ngood = 0, *idx = NULL, *sel = NULL;
	double *d2 = NULL;
	int rc = FL_OK;
	char msg[FL_ERRLEN];

	for (size_t i = 0; i < n; i++) {
		struct fl_agg_input *in = &a->in[i];
		if (in->bad) {
			in->used = 0;
			snprintf(msg, sizeof(msg), "%s: holds NaN or Inf; left out", in->label);
			if (a->o.warn)
				a->o.warn(a->o.cbarg, msg);
			continue;
		}
		if (a->o.clip > 0 && a->gram)
			in->scale = fl_clip_scale(sqrt(fmax(a->gram[i * n + i], 0)), a->o.clip);
		ngood++;
	}
	if (ngood == 0)
		return fl_err(err, FL_EDATA, "no input left: every one holds NaN or Inf");
	if (a->o.rule != FL_AGG_KRUM)
		return FL_OK;
	idx = malloc(ngood * sizeof(*idx));
	sel = malloc(ngood * sizeof(*sel));
	d2 = malloc(ngood * ngood * sizeof(*d2));
	if (!idx || !sel || !d2) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	for (size_t i = 0, c = 0; i < n; i++)
		if (!a->in[i].bad)
			idx[c++] = i;
	for (size_t i = 0; i < ngood; i++)
		for (size_t j = 0; j < ngood; j++) {
			size_t x = idx[i], y = idx[j];
			double v;
			if (a->has_base) {
				double si = a->in[x].scale, sj = a->in[y].scale;
				v = si * si * a->gram[x * n + x] + sj * sj * a->gram[y * n + y] -
				    2 * si * sj * a->gram[x * n + y];
				v = fmax(v, 0);
			} else {
				v = a->gram[x * n + y];
			}
			d2[i * ngood + j] = i == j ? 0 : v;
		}
	if ((rc = fl_krum_select(d2, ngood, a->o.byzantine,
	    a->o.multi ? a->o.multi : 1, sel, NULL, err))) {
		if (ngood < n)
			rc = FL_EDATA;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		a->in[i].used = 0;
	for (size_t i = 0; i < (a->o.multi ? a->o.multi : 1); i++)
		a->in[idx[sel[i]]].used = 1;
out:
	free(idx);
	free(sel);
	free(d2);
	return rc;
}

static int
push_str(struct fl_val *arr, const char *s)
{
	struct fl_val v;

	if (fl_val_str(&v, s))
		return FL_EFAIL;
	return fl_array_push(arr, &v);
}

/* The output's meta, from the first input's (unknown keys kept). */
static int
build_meta(struct fl_agg *a, struct fl_val *meta, size_t nused)
{
	struct fl_val parents, contrib, skipped, sel, dp, so;
	const struct fl_val *first = NULL;
	const char *bid;
	double samples = 0;
	uint64_t round = 0, r;
	int any_round = 0, any_samples = 1, rc = FL_OK;

	fl_val_array(&parents);
	fl_val_array(&contrib);
	fl_val_array(&skipped);
	fl_val_array(&sel);
	for (size_t i = 0; i < a->n; i++) {
		const struct fl_agg_input *in = &a->in[i];
		const struct fl_val *m = &in->h.meta;
		double s;
		const char *id, *cl;
		if (in->bad) {
			rc |= push_str(&skipped, in->label);
			continue;
		}
		if (!fl_val_get_u64(fl_map_get(m, "round"), &r)) {
			any_round = 1;
			round = r > round ? r : round;
		}
		if (!in->used)
			continue;
		if (!first)
			first = m;
		if (!fl_val_get_double(fl_map_get(m, "samples"), &s))
			samples += s;
		else
			any_samples = 0;
		if ((id = fl_map_get_str(m, "model_id")))
			rc |= push_str(&parents, id);
		if ((cl = fl_map_get_str(m, "client")))
			rc |= push_str(&contrib, cl);
		if (a->o.rule == FL_AGG_KRUM)
			rc |= push_str(&sel, in->label);
	}
	if (a->has_base && !fl_val_get_u64(fl_map_get(&a->base.meta, "round"), &r)) {
		any_round = 1;
		round = r > round ? r : round;
	}
	if (fl_val_copy(meta, first)) {
		rc = FL_EFAIL;
		fl_val_map(meta);
	}
	fl_map_del(meta, "client");
	fl_map_del(meta, "metrics");
	fl_map_del(meta, "fit");	/* one client's training options */
	fl_map_del(meta, "model_id");
	fl_map_del(meta, "parent_id");
	fl_map_del(meta, "samples");
	if (any_samples)
		rc |= a->o.weighting == FL_W_SAMPLES || samples == floor(samples) ?
		    fl_map_set_uint(meta, "samples", (uint64_t)samples) :
		    fl_map_set_float(meta, "samples", samples);
	rc |= fl_map_set_uint(meta, "round", any_round ? round + 1 : 1);
	rc |= fl_map_set(meta, "parents", &parents);
	rc |= fl_map_set(meta, "contributors", &contrib);
	rc |= fl_map_set_str(meta, "rule", fl_agg_rule_name(&a->o));
	if (skipped.v.a.n)
		rc |= fl_map_set(meta, "skipped", &skipped);
	else
		fl_val_release(&skipped);
	if (a->o.rule == FL_AGG_KRUM)
		rc |= fl_map_set(meta, "selected", &sel);
	else
		fl_val_release(&sel);
	if (a->o.clip > 0) {
		fl_val_map(&dp);
		rc |= fl_map_set_float(&dp, "clip", a->o.clip);
		rc |= fl_map_set_float(&dp, "noise", a->o.noise);
		rc |= fl_map_set_uint(&dp, "n", nused);
		rc |= fl_map_set(meta, "dp", &dp);
	}
	if (a->has_base) {
		fl_val_map(&so);
		rc |= fl_map_set_str(&so, "opt", fl_server_opt_name(a->o.opt));
		rc |= fl_map_set_float(&so, "lr", a->o.sp.lr);
		if (needs_m(a->o.opt))
			rc |= fl_map_set_float(&so, "beta1", a->o.sp.beta1);
		if (needs_v(a->o.opt)) {
			rc |= fl_map_set_float(&so, "beta2", a->o.sp.beta2);
			rc |= fl_map_set_float(&so, "tau", a->o.sp.tau);
		}
		rc |= fl_map_set_uint(&so, "step", a->step + 1);
		rc |= fl_map_set(meta, "server_opt", &so);
		if ((bid = fl_map_get_str(&a->base.meta, "model_id")))
			rc |= fl_map_set_str(meta, "model_id", bid);
	}
	rc |= fl_meta_stamp(meta, "fl-avg");
	return rc ? FL_EFAIL : FL_OK;
}

/* Read the whole state tensor named by index si into dst (zeros if none). */
static int
state_tensor(struct fl_reader *r, int have, size_t *si, float *dst, uint64_t n,
    char *err)
{
	if (!have) {
		memset(dst, 0, n * sizeof(float));
		return FL_OK;
	}
	return fl_reader_tensor_f32(r, (*si)++, dst, err);
}

/* The output blob's header oh (begun, of the first input's kind): meta
 * and tensors; then its writer w on out_fd, begun. */
static int
output_begin(struct fl_agg *a, struct fl_header *oh, size_t nused,
    struct fl_writer *w, int out_fd, const char *out_name, char *err)
{
	const struct fl_header *h = &a->in[0].h;
	int rc;

	fl_val_release(&oh->meta);
	if ((rc = build_meta(a, &oh->meta, nused)))
		return fl_err(err, rc, "out of memory");
	for (size_t i = 0; i < h->ntensors; i++)
		if (fl_header_add(oh, h->t[i].name, h->t[i].dtype, h->t[i].ndim,
		    h->t[i].shape) < 0)
			return fl_err(err, FL_EFAIL, "out of memory");
	if ((rc = fl_writer_begin(w, out_fd, out_name, oh, err)))
		return rc;
	fl_writer_reserve(w);
	return FL_OK;
}

/* An output given up after rc: a seekable one (stdout redirected to a
 * file) gets back what this blob wrote of it, so that no half-written
 * blob is left behind. */
static int
output_abort(struct fl_writer *w, int out_fd, int rc)
{
	if (w->seekable && ftruncate(out_fd, (off_t)w->start) < 0)
		rc = rc ? rc : FL_EIO;
	fl_writer_abort(w);
	return rc;
}

static int
main_pass(struct fl_agg *a, int npasses, int out_fd, const char *out_name,
    int state_fd, const char *state_name, char *err)
{
	struct pass p;
	struct fl_header oh, sh, sin;
	struct fl_writer w, sw;
	struct fl_reader sr;
	const struct fl_header *h = &a->in[0].h;
	int rc, wopen = 0, swopen = 0, have = 0, server, nm = needs_m(a->o.opt),
	    nv = needs_v(a->o.opt);
	size_t nused = 0, si = 0;
	double wsum = 0, wclip = 0;

	memset(&sr, 0, sizeof(sr));
	sr.fd = -1;
	fl_header_init(&oh, h->kind);
	fl_header_init(&sh, "fl-avg-state");
	fl_header_init(&sin, "fl-avg-state");
	if ((rc = pass_open(&p, a, 0, err)))
		goto out;
	p.server = server = a->has_base && (a->o.opt != FL_SOPT_SGD || a->o.sp.lr != 1);
	if (server && (rc = state_open(a, &sr, &sin, &have, err)))
		goto out;
	for (size_t j = 0; j < p.nl; j++) {
		struct fl_agg_input *in = p.lane[j].in;
		double s = a->o.rule == FL_AGG_MEAN || a->o.rule == FL_AGG_KRUM ?
		    in->weight : 1;
		p.lane[j].w = s * in->scale;
		wsum += s;
		wclip += s * in->scale;
		nused++;
	}
	if (p.fused && !(wsum > 0)) {
		rc = fl_err(err, FL_EDATA, "the inputs' weights sum to zero");
		goto out;
	}
	p.wsum = wsum;
	p.basecoef = wsum - wclip;
	p.cut = fl_agg_trim_count(a->o.trim, p.nl);
	p.sigma = a->o.noise * a->o.clip / (double)nused;
	fl_rng_seed(&p.rng, a->o.seed);

	if ((rc = output_begin(a, &oh, nused, &w, out_fd, out_name, err)))
		goto out;
	wopen = 1;
	p.w = &w;
	p.npasses = npasses;
	if (server && state_fd >= 0) {
		fl_header_release(&sh);
		if (state_header(&sh, h, &a->o, a->step + 1)) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto out;
		}
		if ((rc = fl_writer_begin(&sw, state_fd, state_name, &sh, err)))
			goto out;
		swopen = 1;
	}
	for (size_t ti = 0; ti < h->ntensors; ti++) {
		const struct fl_tensor *t = &h->t[ti];
		uint64_t numel = fl_tensor_numel(t);
		int mapped = mappable(&p, ti);
		if (!mapped && (rc = pass_begin(&p, ti, err)))
			goto out;
		if (server && numel > p.mvcap) {
			free(p.m);
			free(p.v);
			p.m = malloc(numel * sizeof(float));
			p.v = malloc(numel * sizeof(float));
			if (!p.m || !p.v) {
				rc = fl_err(err, FL_EFAIL, "tensor %s: out of memory", t->name);
				goto out;
			}
			p.mvcap = numel;
		}
		if (server && nm && (rc = state_tensor(&sr, have, &si, p.m, numel, err)))
			goto out;
		if (server && nv && (rc = state_tensor(&sr, have, &si, p.v, numel, err)))
			goto out;
		if (mapped && (rc = mapped_tensor(&p, ti, err)))
			goto out;
		for (p.off = 0; !mapped && p.off < numel; p.off += p.k) {
			p.k = (size_t)(numel - p.off < p.chunk ? numel - p.off : p.chunk);
			if ((rc = pass_chunk(&p, err)))
				goto out;
			if (p.sigma > 0)
				fl_agg_noise(p.out, p.k, p.sigma, &p.rng);
			if (server)
				fl_server_step(a->o.opt, &a->o.sp, p.out, p.base.x, p.out,
				    p.m ? p.m + p.off : NULL, p.v ? p.v + p.off : NULL, p.k);
			if (t->dtype == FL_F32) {
				rc = fl_writer_write(&w, p.out, p.k * sizeof(float), err);
			} else {
				fl_convert(p.outraw, t->dtype, p.out, FL_F32, p.k);
				rc = fl_writer_write(&w, p.outraw,
				    p.k * fl_dtype_size(t->dtype), err);
			}
			if (rc)
				goto out;
			p.done += p.k * p.nl;
			report(&p, npasses, npasses - 1);
		}
		if (swopen && nm && (rc = fl_writer_tensor(&sw, p.m, err)))
			goto out;
		if (swopen && nv && (rc = fl_writer_tensor(&sw, p.v, err)))
			goto out;
	}
	if ((rc = pass_finish(&p, err)))
		goto out;
	wopen = 0;
	if ((rc = fl_writer_end(&w, err)))
		goto out;
	if (swopen) {
		swopen = 0;
		rc = fl_writer_end(&sw, err);
	}
out:
	if (wopen)
		rc = output_abort(&w, out_fd, rc);
	if (swopen)
		fl_writer_abort(&sw);
	if (sr.fd >= 0 && sr.name)
		fl_reader_close(&sr);
	fl_header_release(&sin);
	fl_header_release(&sh);
	fl_header_release(&oh);
	pass_close(&p);
	return rc;
}

/* Do b's tensors agree with a's? what: "dtype" checked too. */
static int
agree(const struct fl_header *x, const char *xl, const struct fl_header *y,
    const char *yl, int dtypes, char *err)
{
	char s1[256], s2[256];

	for (size_t i = 0; i < x->ntensors || i < y->ntensors; i++) {
		if (i >= y->ntensors)
			return fl_err(err, FL_EDATA, "%s: has no tensor %s, which %s has",
			    yl, x->t[i].name, xl);
		if (i >= x->ntensors)
			return fl_err(err, FL_EDATA, "%s: has tensor %s, which %s has not",
			    yl, y->t[i].name, xl);
		const struct fl_tensor *a = &x->t[i], *b = &y->t[i];
		if (strcmp(a->name, b->name))
			return fl_err(err, FL_EDATA, "%s: tensor %zu is %s, expected %s "
			    "as in %s", yl, i, b->name, a->name, xl);
		fl_shape_str(a, s1, sizeof(s1));
		fl_shape_str(b, s2, sizeof(s2));
		if (strcmp(s1, s2))
			return fl_err(err, FL_EDATA, "%s: tensor %s has shape %s, expected "
			    "%s as in %s", yl, b->name, s2, s1, xl);
		if (dtypes && a->dtype != b->dtype)
			return fl_err(err, FL_EDATA, "%s: tensor %s is %s, expected %s "
			    "as in %s", yl, b->name, fl_dtype_name(b->dtype),
			    fl_dtype_name(a->dtype), xl);
	}
	return FL_OK;
}

/* Is input i a model of floats, with the tensors of the first? */
static int
check_input(const struct fl_agg *a, size_t i, char *err)
{
	const struct fl_header *h = &a->in[i].h;
	int rc;

	if (strcmp(h->kind, "model"))
		return fl_err(err, FL_EDATA, "%s: a %s blob, not a model",
		    a->in[i].label, h->kind);
	if (i && (rc = agree(&a->in[0].h, a->in[0].label, h, a->in[i].label, 1, err)))
		return rc;
	for (size_t t = 0; t < h->ntensors; t++)
		if (!fl_dtype_is_float(h->t[t].dtype))
			return fl_err(err, FL_EDATA, "%s: tensor %s is %s; only "
			    "float tensors can be averaged", a->in[i].label,
			    h->t[t].name, fl_dtype_name(h->t[t].dtype));
	return FL_OK;
}

/* Input i's weight, by the options' weighting (given weights: i of them). */
static int
input_weight(struct fl_agg *a, size_t i, char *err)
{
	struct fl_agg_input *in = &a->in[i];

	switch (a->o.weighting) {
	case FL_W_UNIFORM:
		in->weight = 1;
		break;
	case FL_W_GIVEN:
		if (i >= a->o.nweights)
			return fl_err(err, FL_EUSAGE, "%zu weights for more inputs",
			    a->o.nweights);
		in->weight = a->o.weights[i];
		break;
	case FL_W_SAMPLES:
		if (fl_val_get_double(fl_map_get(&in->h.meta, "samples"), &in->weight) ||
		    !(in->weight >= 0) || !isfinite(in->weight))
			return fl_err(err, FL_EDATA, "%s: no samples count in its meta "
			    "(use --uniform or --weights)", in->label);
		break;
	}
	return FL_OK;
}

static int
check_inputs(struct fl_agg *a, char *err)
{
	const struct fl_agg_opts *o = &a->o;
	struct fl_reader r;
	int rc;

	if (a->n == 0)
		return fl_err(err, FL_EUSAGE, "no inputs");
	for (size_t i = 0; i < a->n; i++)
		if ((rc = check_input(a, i, err)))
			return rc;
	if (o->weighting == FL_W_GIVEN && o->nweights != a->n)
		return fl_err(err, FL_EUSAGE, "%zu weights for %zu inputs",
		    o->nweights, a->n);
	for (size_t i = 0; i < a->n; i++)
		if ((rc = input_weight(a, i, err)))
			return rc;
	if (o->rule == FL_AGG_KRUM) {
		size_t m = o->multi ? o->multi : 1;
		if (a->n < 2 * o->byzantine + 3)
			return fl_err(err, FL_EUSAGE, "krum with %zu byzantine inputs needs "
			    "at least %zu inputs, got %zu", o->byzantine,
			    2 * o->byzantine + 3, a->n);
		if (m > a->n)
			return fl_err(err, FL_EUSAGE, "--multi %zu exceeds the %zu inputs",
			    m, a->n);
	}
	if (o->clip > 0 && !o->base)
		return fl_err(err, FL_EUSAGE, "--clip needs --base");
	if (o->noise > 0 && !(o->clip > 0))
		return fl_err(err, FL_EUSAGE, "--noise needs --clip");
	if (!o->base)
		return FL_OK;
	if ((rc = fl_reader_open(&r, o->base, err)))
		return rc;
	fl_header_release(&a->base);
	rc = fl_reader_next(&r, &a->base, err);
	fl_reader_close(&r);
	if (rc == FL_EOF)
		return fl_err(err, FL_EBLOB, "%s: empty file", o->base);
	if (rc)
		return rc;
	a->has_base = 1;
	return agree(&a->in[0].h, a->in[0].label, &a->base, o->base, 0, err);
}

/*
 * Streaming: standard input's blobs folded into the weighted sum as they
 * arrive, so that the mean of models coming down a pipe from fl-fit is
 * ready when the last one is, with no spool. The sum is the lockstep
 * pass's to the last bit (as it runs on spools): tensors that pass maps
 * (f32, MAP_MIN bytes or more) summed with FMA by whole blocks of 64 when
 * wide and finished by wide_finish, the others a product and a sum and a
 * division, input by input in their order.
 */
#define STREAM_CHUNK (1 << 16)	/* elements read at a time, a multiple of 64 */
#define STREAM_MAX (256u << 20)	/* bytes of the sum, at most; more: spool */
#define STREAM_SPOOLED (-2)	/* stream_run: spooled instead */

struct stream {
	double *acc;		/* the sum, each tensor 64-byte aligned */
	uint64_t *aoff;		/* per tensor: where its sum begins */
	size_t nt;		/* tensors */
	float *x;		/* a chunk as f32 */
	unsigned char *raw;	/* ... as stored, when not f32 */
	double wsum;
};

static int
stream_mapped(const struct fl_tensor *t)
{
	return t->dtype == FL_F32 && fl_tensor_nbytes(t) >= MAP_MIN;
}

/* acc = w x over n floats (first) or acc += w x: acc16, as wide_group. */
__attribute__((target("avx512f")))
static void
wide_axpy(double *acc, const float *x, size_t n, double w, int first)
{
	const __m512d wv = _mm512_set1_pd(w);

	for (size_t i = 0; i < n; i += 16)
		acc16(acc + i, _mm512_loadu_si512(x + i), wv, first ? 0 : 1);
}

/* Fold k floats of a tensor (mapped: as the mapped path would) into acc. */
static void
stream_fold(double *acc, const float *x, size_t k, double w, int first,
    int mapped)
{
	size_t kv = 0;

	if (mapped && wide) {
		kv = k & ~(size_t)63;
		wide_axpy(acc, x, kv, w, first);
		for (size_t i = kv; i < k; i++)	/* stripe_run's tail */
			acc[i] = (first ? 0 : acc[i]) + w * x[i];
	} else {
		axpy(acc, x, k, w, first);
	}
}

/* The sum's layout and buffers, for the first blob's tensors: FL_ELIMIT
 * when it would take more than STREAM_MAX. */
static int
stream_open(struct stream *st, const struct fl_header *h, char *err)
{
	uint64_t n = 0;

	pthread_once(&wide_once, wide_init);
	memset(st, 0, sizeof(*st));
	if (!(st->aoff = calloc(h->ntensors + 1, sizeof(*st->aoff))))
		return fl_err(err, FL_EFAIL, "out of memory");
	st->nt = h->ntensors;
	for (size_t i = 0; i < h->ntensors; i++) {
		n = (n + 7) & ~(uint64_t)7;
		st->aoff[i] = n;
		n += fl_tensor_numel(&h->t[i]);
	}
	if (n > STREAM_MAX / sizeof(double))
		return FL_ELIMIT;
	if (!(st->acc = aligned_alloc(64, ((n * sizeof(double) + 63) & ~(uint64_t)63) + 64)) ||
	    !(st->x = aligned_alloc(64, STREAM_CHUNK * sizeof(float))) ||
	    !(st->raw = malloc(STREAM_CHUNK * 8)))
		return fl_err(err, FL_EFAIL, "out of memory");
	return FL_OK;
}

static void
stream_close(struct stream *st)
{
	free(st->acc);
	free(st->aoff);
	free(st->x);
	free(st->raw);
}

/* Read the reader's current blob, input i (its header copied there), and
 * fold it into the sum. */
static int
stream_blob(struct fl_agg *a, struct stream *st, struct fl_reader *r, size_t i,
    char *err)
{
	struct fl_agg_input *in = &a->in[i];
	const struct fl_header *h = &in->h;
	int rc;

	if ((rc = check_input(a, i, err)) || (rc = input_weight(a, i, err)))
		return rc;
	for (size_t ti = 0; ti < h->ntensors && ti < st->nt; ti++) {
		const struct fl_tensor *t = &h->t[ti];
		const uint64_t numel = fl_tensor_numel(t);
		const int mapped = stream_mapped(t);
		if ((rc = fl_reader_begin(r, ti, err)))
			return rc;
		int64_t bad = -1;
		float badx = 0;
		for (uint64_t off = 0; off < numel; off += STREAM_CHUNK) {
			size_t k = (size_t)(numel - off < STREAM_CHUNK ? numel - off :
			    STREAM_CHUNK);
			int64_t e;
			if (t->dtype == FL_F32) {
				rc = fl_reader_read(r, st->x, k * sizeof(float), err);
			} else if (!(rc = fl_reader_read(r, st->raw,
			    k * fl_dtype_size(t->dtype), err))) {
				fl_convert(st->x, FL_F32, st->raw, t->dtype, k);
			}
			if (rc)
				return rc;
			if (bad < 0 && any_nonfinite(st->x, k) &&
			    (e = first_nonfinite(st->x, k)) >= 0) {
				bad = (int64_t)off + e;
				badx = st->x[e];
			}
			if (bad < 0)
				stream_fold(st->acc + st->aoff[ti] + off, st->x, k,
				    in->weight, i == 0, mapped);
		}
		/* told when the tensor has been read whole: a crc mismatch,
		 * found at its last read, says better what is wrong */
		if (bad >= 0)
			return bad_error(in->label, t->name, bad, badx, 1, err);
	}
	st->wsum += in->weight;
	return fl_reader_finish(r, err);
}

/* The mean, from the sum, into a blob on out_fd. */
static int
stream_write(struct fl_agg *a, struct stream *st, int out_fd,
    const char *out_name, char *err)
{
	const struct fl_header *h = &a->in[0].h;
	struct fl_header oh;
	struct fl_writer w;
	float *out = st->x;
	int rc, wopen = 0;

	fl_header_init(&oh, h->kind);
	if ((rc = output_begin(a, &oh, a->n, &w, out_fd, out_name, err)))
		goto out;
	wopen = 1;
	for (size_t ti = 0; ti < h->ntensors; ti++) {
		const struct fl_tensor *t = &h->t[ti];
		const uint64_t numel = fl_tensor_numel(t);
		const int mapped = stream_mapped(t);
		for (uint64_t off = 0; off < numel; off += STREAM_CHUNK) {
			size_t k = (size_t)(numel - off < STREAM_CHUNK ? numel - off :
			    STREAM_CHUNK);
			const double *acc = st->acc + st->aoff[ti] + off;
			int bad;
			if (mapped && wide)
				bad = wide_finish(out, acc, NULL, 0, st->wsum, k);
			else
				bad = generic_finish(out, acc, NULL, 0, st->wsum, k);
			if (bad) {
				rc = fl_err(err, FL_EDATA, "tensor %s: the weighted sum "
				    "overflows at element %lld", t->name,
				    (long long)(off + (uint64_t)first_nonfinite(out, k)));
				goto out;
			}
			if (t->dtype == FL_F32) {
				rc = fl_writer_write(&w, out, k * sizeof(float), err);
			} else {
				fl_convert(st->raw, t->dtype, out, FL_F32, k);
				rc = fl_writer_write(&w, st->raw, k * fl_dtype_size(t->dtype),
				    err);
			}
			if (rc)
				goto out;
		}
	}
	wopen = 0;
	rc = fl_writer_end(&w, err);
out:
	if (wopen)
		rc = output_abort(&w, out_fd, rc);
	fl_header_release(&oh);
	return rc;
}

/*
 * Standard input, the only input: fold each blob in as it comes, then
 * write the mean. A sum too big for STREAM_MAX spools the blobs as
 * fl_agg_add would have and returns STREAM_SPOOLED: the lockstep way then.
 */
static int
stream_run(struct fl_agg *a, int out_fd, const char *out_name, char *err)
{
	struct fl_reader r;
	struct fl_header hs[2];
	struct stream st;
	int rc, c = 0, nb = 0;

	memset(&st, 0, sizeof(st));
	memset(hs, 0, sizeof(hs));
	if ((rc = fl_reader_open(&r, "-", err)))
		return rc;
	while ((rc = fl_reader_next(&r, &hs[c], err)) == FL_OK) {
		fl_header_release(&hs[c ^ 1]);
		nb++;
		if (nb == 1 && (rc = stream_open(&st, &hs[c], err))) {
			if (rc == FL_ELIMIT &&
			    !(rc = add_blob(a, &r, &hs[c], "-", NULL, 1, 0, err)) &&
			    !(rc = add_rest(a, &r, hs, c ^ 1, 1, 0, "-", NULL, err)))
				rc = STREAM_SPOOLED;
			break;
		}
		if (nb == 2)	/* errors name it as the first of several */
			number_first(a, 0);
		if ((rc = add_blob(a, &r, &hs[c], "-", NULL, nb, 1, err)) ||
		    (rc = stream_blob(a, &st, &r, a->n - 1, err)))
			break;
		c ^= 1;
	}
	fl_reader_close(&r);
	fl_header_release(&hs[0]);
	fl_header_release(&hs[1]);
	if (rc == FL_EOF)
		rc = nb ? FL_OK : fl_err(err, FL_EBLOB, "<stdin>: no blob in "
		    "standard input");
	if (!rc && (rc = check_inputs(a, err)) == FL_OK) {
		if (!(st.wsum > 0))
			rc = fl_err(err, FL_EDATA, "the inputs' weights sum to zero");
		else
			rc = stream_write(a, &st, out_fd, out_name, err);
	}
	stream_close(&st);
	return rc;
}

int
fl_agg_run(struct fl_agg *a, int out_fd, const char *out_name, int state_fd,
    const char *state_name, char *err)
{
	int rc, npasses;

	fl_server_defaults(a->o.opt, &a->o.sp);
	if (!a->o.seeded && getrandom(&a->o.seed, sizeof(a->o.seed), 0) !=
	    sizeof(a->o.seed))
		a->o.seed = (uint64_t)(fl_monotonic() * 1e9);
	if (a->stdin_pending) {
		a->stdin_pending = 0;
		if ((rc = stream_run(a, out_fd, out_name, err)) != STREAM_SPOOLED) {
			a->streamed = rc == FL_OK;
			return rc;
		}
	}
	if ((rc = check_inputs(a, err)))
		return rc;
	npasses = a->o.skip_bad || a->o.clip > 0 || a->o.rule == FL_AGG_KRUM ? 2 : 1;
	if (npasses == 2 && (rc = scan(a, npasses, err)))
		return rc;
	if ((rc = choose(a, err)))
		return rc;
	return main_pass(a, npasses, out_fd, out_name, state_fd, state_name, err);
}
