/* avg_mem.c: the memory-bandwidth bound for bench/avg.sh: the fedavg
 * weighted sum done on arrays already in this process's memory, with none
 * of the work of getting the inputs there (no files, no page cache, no
 * mapping, no page faults, no write(2)). N anonymous f32 arrays of P
 * elements and the output are allocated and every page touched before any
 * clock starts (base pages, as a mapping of the page cache has). The arithmetic is fl-avg's: acc = sum_l w_l x_l in double,
 * out = (float)(acc / sum w), w_l = 100 l as bench/avg_numpy.py weighs.
 *
 * Loop shapes (variants[]), each timed RUNS times after a warm-up run
 * (median), with 1 and 2 threads, each thread taking a contiguous half.
 * All work through blocks of 2048 elements (acc in L1) and sum in lane
 * order: lanes (a block of one lane at a time, fl-avg's generic order),
 * group4 (four lanes at a time, as fl-avg's AVX-512 loop), elem (all lanes
 * for one element at a time); -pf adds software prefetch of the next
 * block, -nt writes the output with non-temporal stores (no read for
 * ownership of its lines). The bound for a thread count is the fastest
 * variant. Also reported: a read-only vectorised pass (the sum of every
 * input element, N x P x 4 bytes read) in GB/s, the kind of figure the
 * issue's "9-13 GB/s" is.
 *
 * Usage: avg_mem N P RUNS
 * Prints lines "NAME THREADS SECONDS" and "read THREADS GB/S".
 * Build: cc -O3 -march=native -pthread, as bench/avg.sh does (GCC 12 at
 * -O2 leaves the double loops scalar, twice as slow: a loose bound). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define BLK 2048
#define MAXN 64
#ifndef PF
#define PF BLK		/* prefetched ahead: the next block of the lane */
#endif

enum kind { LANES, GROUP4, ELEM, READ };

struct variant {
	const char *name;
	enum kind kind;
	int pf;			/* software prefetch of the next block */
	int nt;			/* non-temporal stores of the output */
};

static const struct variant variants[] = {
	{ "lanes", LANES, 0, 0 },
	{ "lanes-pf", LANES, 1, 0 },
	{ "group4", GROUP4, 0, 0 },
	{ "group4-pf", GROUP4, 1, 0 },
	{ "group4-pf-nt", GROUP4, 1, 1 },
	{ "elem", ELEM, 0, 0 },
	{ "elem-nt", ELEM, 0, 1 },
	{ "read", READ, 0, 0 },		/* last */
};
#define NV (sizeof(variants) / sizeof(variants[0]))

struct job {
	const struct variant *v;
	float *const *x;
	float *out;
	const double *w;
	size_t n, lo, hi;
	double wsum;
	double sum;		/* read: keeps the loads */
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* acc / wsum as fl-avg computes it (lib/aggregate.c, quotient): the
 * product by the reciprocal, corrected once by its residual. */
static inline float
mean_of(double a, double d, double inv)
{
	double q = a * inv;

	return (float)__builtin_fma(__builtin_fma(-q, d, a), inv, q);
}

/* The output block: (float)(acc / wsum), stored plainly or streamed. */
static void
put_block(struct job *j, const double *acc, size_t i, size_t k, int nt)
{
	float tmp[BLK] __attribute__((aligned(64)));
	float *o = j->out + i;
	double d = j->wsum, inv = 1 / d;

	if (!nt) {
		for (size_t e = 0; e < k; e++)
			o[e] = mean_of(acc[e], d, inv);
		return;
	}
	for (size_t e = 0; e < k; e++)
		tmp[e] = mean_of(acc[e], d, inv);
#ifdef __AVX512F__
	if (k == BLK && ((uintptr_t)o & 63) == 0) {
		for (size_t e = 0; e < k; e += 16)
			_mm512_stream_ps(o + e, _mm512_load_ps(tmp + e));
		return;
	}
#endif
	memcpy(o, tmp, k * sizeof(float));
}

static void
prefetch(const float *x, size_t k)
{
	for (size_t e = 0; e < k; e += 16)
		__builtin_prefetch(x + e + PF);
}

/*
 * Every kind sums in lane order (w_0 x_0 + w_1 x_1 + ...), as fl-avg does:
 * LANES a block of one lane at a time into acc, GROUP4 four lanes at a
 * time, ELEM all lanes for one element at a time.
 */
static void
run_avg(struct job *j, const struct variant *v)
{
	double acc[BLK] __attribute__((aligned(64)));
	const double *w = j->w;
	const size_t n = j->n;

	for (size_t i = j->lo; i < j->hi; i += BLK) {
		size_t k = j->hi - i < BLK ? j->hi - i : BLK;
		const float *x[MAXN];
		for (size_t l = 0; l < n; l++) {
			x[l] = j->x[l] + i;
			if (v->pf)
				prefetch(x[l], k);
		}
		if (v->kind == ELEM) {
			for (size_t e = 0; e < k; e++) {
				double a = w[0] * x[0][e];
				for (size_t l = 1; l < n; l++)
					a += w[l] * x[l][e];
				acc[e] = a;
			}
		} else if (v->kind == LANES) {
			for (size_t e = 0; e < k; e++)
				acc[e] = w[0] * x[0][e];
			for (size_t l = 1; l < n; l++)
				for (size_t e = 0; e < k; e++)
					acc[e] += w[l] * x[l][e];
		} else {
			size_t l = 0;
			for (; l + 4 <= n; l += 4) {
				const float *a = x[l], *b = x[l + 1], *c = x[l + 2], *d = x[l + 3];
				const double wa = w[l], wb = w[l + 1], wc = w[l + 2], wd = w[l + 3];
				if (l == 0)
					for (size_t e = 0; e < k; e++)
						acc[e] = wa * a[e] + wb * b[e] + wc * c[e] + wd * d[e];
				else
					for (size_t e = 0; e < k; e++)
						acc[e] = acc[e] + wa * a[e] + wb * b[e] + wc * c[e] +
						    wd * d[e];
			}
			for (; l < n; l++)
				for (size_t e = 0; e < k; e++)
					acc[e] = (l ? acc[e] : 0) + w[l] * x[l][e];
		}
		put_block(j, acc, i, k, v->nt);
	}
#ifdef __AVX512F__
	if (v->nt)
		_mm_sfence();
#endif
}

static void
run_read(struct job *j)
{
	float s[16] = { 0 };

	for (size_t l = 0; l < j->n; l++) {
		const float *xl = j->x[l];
		for (size_t i = j->lo; i + 16 <= j->hi; i += 16)
			for (int q = 0; q < 16; q++)
				s[q] += xl[i + q];
	}
	for (int q = 0; q < 16; q++)
		j->sum += s[q];
}

static void *
thread_main(void *arg)
{
	struct job *j = arg;

	if (j->v->kind == READ)
		run_read(j);
	else
		run_avg(j, j->v);
	return NULL;
}

/* One timed run of variant v with t threads; seconds. */
static double
timed(const struct variant *v, int t, float *const *x, float *out,
    const double *w, size_t n, size_t p, double wsum, double *sum)
{
	struct job j[2];
	pthread_t th;
	size_t half = (p / 2) & ~(size_t)(BLK - 1);
	double t0;

	j[0] = (struct job){ v, x, out, w, n, 0, t == 2 ? half : p, wsum, 0 };
	j[1] = (struct job){ v, x, out, w, n, half, p, wsum, 0 };
	t0 = now();
	if (t == 2 && pthread_create(&th, NULL, thread_main, &j[1])) {
		perror("pthread_create");
		exit(111);
	}
	thread_main(&j[0]);
	if (t == 2)
		pthread_join(th, NULL);
	*sum += j[0].sum + j[1].sum;
	return now() - t0;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void *
anon(size_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (m == MAP_FAILED) {
		perror("mmap");
		exit(111);
	}
	return m;
}

int
main(int argc, char **argv)
{
	size_t n, p;
	int runs;
	float *x[MAXN], *out;
	double w[MAXN], wsum = 0, sum = 0, *ts;

	if (argc != 4 || (n = strtoul(argv[1], NULL, 10)) < 1 || n > MAXN ||
	    (p = strtoul(argv[2], NULL, 10)) < 2 * BLK || (runs = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: avg_mem N P RUNS (N <= %d, P >= %d)\n", MAXN,
		    2 * BLK);
		return 100;
	}
	if (!(ts = malloc((size_t)runs * sizeof(*ts))))
		return 111;
	for (size_t l = 0; l < n; l++) {
		x[l] = anon(p * sizeof(float));
		for (size_t i = 0; i < p; i++)	/* every page written: faulted in */
			x[l][i] = (float)((i * 2654435761u + l) % 1000) / 1000 - 0.5f;
		w[l] = 100.0 * (double)(l + 1);
		wsum += w[l];
	}
	out = anon(p * sizeof(float));
	memset(out, 0, p * sizeof(float));
	for (const struct variant *v = variants; v < variants + NV; v++) {
		for (int t = 1; t <= 2; t++) {
			timed(v, t, x, out, w, n, p, wsum, &sum);	/* warm up */
			for (int r = 0; r < runs; r++)
				ts[r] = timed(v, t, x, out, w, n, p, wsum, &sum);
			qsort(ts, (size_t)runs, sizeof(*ts), cmp);
			if (v->kind == READ)
				printf("read %d %.2f\n", t,
				    (double)n * (double)p * sizeof(float) / ts[runs / 2] / 1e9);
			else
				printf("%s %d %.4f\n", v->name, t, ts[runs / 2]);
			fflush(stdout);
		}
	}
	/* Keep the results: a wrong sum would show the compiler dropped work. */
	if (!(out[p / 3] == out[p / 3]) || sum == 1.5)
		return 1;
	return 0;
}
