/* aggregate_rules.c: the aggregation rules and server optimizers as pure
 * math on float arrays. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"

void
fl_agg_wmean(float *out, float *const *x, const double *w, size_t n, size_t k)
{
	double sum = 0;

	for (size_t j = 0; j < n; j++)
		sum += w[j];
	for (size_t i = 0; i < k; i++) {
		double acc = 0;
		for (size_t j = 0; j < n; j++)
			acc += w[j] * x[j][i];
		out[i] = (float)(acc / sum);
	}
}

/*
 * Median and trimmed mean are "the mean of the sorted values lo..hi-1" at
 * each coordinate. For up to NET_MAX inputs, 16 coordinates at a time go
 * through a Batcher odd-even merge sorting network on vectors (min and max
 * lane by lane, no branches); leftover coordinates and more inputs use a
 * scalar sort or quickselect.
 */
#define NET_MAX 32
#define NET_CMAX 512

typedef float v16sf __attribute__((vector_size(64)));
typedef int v16si __attribute__((vector_size(64)));
typedef double v16df __attribute__((vector_size(128)));

/* Comparators (i, j), i < j, of Batcher's network for n inputs. */
static size_t
batcher(size_t n, unsigned char (*c)[2])
{
	size_t m = 0;

	for (size_t p = 1; p < n; p <<= 1)
		for (size_t k = p; k >= 1; k >>= 1)
			for (size_t j = k % p; j + k < n; j += 2 * k)
				for (size_t i = 0; i < k && i + j + k < n; i++)
					if ((i + j) / (2 * p) == (i + j + k) / (2 * p) &&
					    m < NET_CMAX) {
						c[m][0] = (unsigned char)(i + j);
						c[m][1] = (unsigned char)(i + j + k);
						m++;
					}
	return m;
}

/* Returns the coordinates done (a multiple of 16). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static size_t
net_mean(float *out, float *const *x, size_t n, size_t k, size_t lo,
    size_t hi, const unsigned char (*c)[2], size_t nc)
{
	v16sf v[NET_MAX];
	const double div = (double)(hi - lo);
	size_t i;

	for (i = 0; i + 16 <= k; i += 16) {
		for (size_t j = 0; j < n; j++)
			memcpy(&v[j], x[j] + i, sizeof(v[j]));
		for (size_t m = 0; m < nc; m++) {
			v16sf a = v[c[m][0]], b = v[c[m][1]];
			v16si lt = a < b;
			v[c[m][0]] = (v16sf)((lt & (v16si)a) | (~lt & (v16si)b));
			v[c[m][1]] = (v16sf)((lt & (v16si)b) | (~lt & (v16si)a));
		}
		v16df s = __builtin_convertvector(v[lo], v16df);
		for (size_t j = lo + 1; j < hi; j++)
			s += __builtin_convertvector(v[j], v16df);
		s = s / div;
		v16sf r = __builtin_convertvector(s, v16sf);
		memcpy(out + i, &r, sizeof(r));
	}
	return i;
}

static void
sort_small(float *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		float t = v[i];
		size_t j = i;
		while (j > 0 && v[j - 1] > t) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = t;
	}
}

/* Quickselect: v[k] is the k-th smallest, with nothing larger before it and
 * nothing smaller after it. */
static void
select_nth(float *v, size_t n, size_t k)
{
	ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;

	while (hi > lo) {
		float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi], piv;
		piv = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
		ptrdiff_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < piv)
				i++;
			while (v[j] > piv)
				j--;
			if (i <= j) {
				float t = v[i];
				v[i++] = v[j];
				v[j--] = t;
			}
		}
		if (kk <= j)
			hi = j;
		else if (kk >= i)
			lo = i;
		else
			return;
	}
}

static void
sorted_mean(float *out, float *const *x, size_t n, size_t k, size_t lo,
    size_t hi, float *scratch)
{
	unsigned char c[NET_CMAX][2];
	size_t i = 0;

	if (n == 1) {
		memmove(out, x[0], k * sizeof(float));
		return;
	}
	if (n <= NET_MAX)
		i = net_mean(out, x, n, k, lo, hi, (const unsigned char (*)[2])c,
		    batcher(n, c));
	for (; i < k; i++) {
		double acc = 0;
		for (size_t j = 0; j < n; j++)
			scratch[j] = x[j][i];
		if (n <= NET_MAX) {
			sort_small(scratch, n);
		} else {
			select_nth(scratch, n, lo);
			select_nth(scratch + lo, n - lo, hi - 1 - lo);
			if (hi - lo == 2 && scratch[lo] > scratch[lo + 1]) {
				float t = scratch[lo];
				scratch[lo] = scratch[lo + 1];
				scratch[lo + 1] = t;
			}
		}
		for (size_t j = lo; j < hi; j++)
			acc += scratch[j];
		out[i] = (float)(acc / (double)(hi - lo));
	}
}

void
fl_agg_median(float *out, float *const *x, size_t n, size_t k, float *scratch)
{
	sorted_mean(out, x, n, k, (n - 1) / 2, n / 2 + 1, scratch);
}

size_t
fl_agg_trim_count(double trim, size_t n)
{
	size_t cut = (size_t)floor(trim * (double)n + 1e-9);

	return 2 * cut < n ? cut : (n - 1) / 2;
}

void
fl_agg_trimmed(float *out, float *const *x, size_t n, size_t k, size_t cut,
    float *scratch)
{
	sorted_mean(out, x, n, k, cut, n - cut, scratch);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
fl_krum_select(const double *d2, size_t n, size_t f, size_t m, size_t *sel,
    double *score, char *err)
{
	double *s, *row;
	size_t *order;

	if (n < 2 * f + 3)
		return fl_err(err, FL_EUSAGE, "krum with %zu byzantine inputs needs "
		    "at least %zu inputs, got %zu", f, 2 * f + 3, n);
	if (m < 1 || m > n)
		return fl_err(err, FL_EUSAGE, "multi-krum of %zu models out of %zu "
		    "inputs", m, n);
	s = malloc(n * sizeof(*s));
	row = malloc(n * sizeof(*row));
	order = malloc(n * sizeof(*order));
	if (!s || !row || !order) {
		free(s);
		free(row);
		free(order);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		size_t c = 0;
		for (size_t j = 0; j < n; j++)
			if (j != i)
				row[c++] = d2[i * n + j];
		qsort(row, c, sizeof(*row), cmp_double);
		s[i] = 0;
		for (size_t j = 0; j < n - f - 2; j++)
			s[i] += row[j];
		order[i] = i;
	}
	/* Stable selection: lowest score first, ties to the earlier input. */
	for (size_t i = 1; i < n; i++) {
		size_t t = order[i], j = i;
		while (j > 0 && s[order[j - 1]] > s[t]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = t;
	}
	for (size_t i = 0; i < m; i++)
		/* order[0..n) is set above and m <= n: the analyzer loses track */
		/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign) */
		sel[i] = order[i];
	if (score)
		memcpy(score, s, n * sizeof(*s));
	free(s);
	free(row);
	free(order);
	return FL_OK;
}

int
fl_server_opt_parse(const char *s, enum fl_server_opt *opt)
{
	static const char *names[] = { "sgd", "momentum", "adam", "yogi", "adagrad" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*opt = (enum fl_server_opt)i;
			return FL_OK;
		}
	return FL_EUSAGE;
}

const char *
fl_server_opt_name(enum fl_server_opt opt)
{
	switch (opt) {
	case FL_SOPT_SGD: return "sgd";
	case FL_SOPT_MOMENTUM: return "momentum";
	case FL_SOPT_ADAM: return "adam";
	case FL_SOPT_YOGI: return "yogi";
	case FL_SOPT_ADAGRAD: return "adagrad";
	}
	return "?";
}

void
fl_server_defaults(enum fl_server_opt opt, struct fl_server_params *p)
{
	int adaptive = opt == FL_SOPT_ADAM || opt == FL_SOPT_YOGI ||
	    opt == FL_SOPT_ADAGRAD;

	if (p->lr <= 0)
		p->lr = adaptive ? 0.01 : 1.0;
	if (p->beta1 < 0)
		p->beta1 = 0.9;
	if (p->beta2 < 0)
		p->beta2 = 0.99;
	if (p->tau <= 0)
		p->tau = 1e-3;
}

void
fl_server_step(enum fl_server_opt opt, const struct fl_server_params *p,
    float *x, const float *base, const float *agg, float *m, float *v, size_t k)
{
	const float lr = (float)p->lr, b1 = (float)p->beta1, b2 = (float)p->beta2;
	const float tau = (float)p->tau;

	for (size_t i = 0; i < k; i++) {
		float g = base[i] - agg[i], g2 = g * g;
		switch (opt) {
		case FL_SOPT_SGD:
			x[i] = base[i] - lr * g;
			continue;
		case FL_SOPT_MOMENTUM:
			m[i] = b1 * m[i] + g;
			x[i] = base[i] - lr * m[i];
			continue;
		case FL_SOPT_ADAM:
			v[i] = b2 * v[i] + (1 - b2) * g2;
			break;
		case FL_SOPT_YOGI:
			v[i] = v[i] - (1 - b2) * g2 *
			    (float)((v[i] > g2) - (v[i] < g2));
			break;
		case FL_SOPT_ADAGRAD:
			v[i] = v[i] + g2;
			break;
		}
		m[i] = b1 * m[i] + (1 - b1) * g;
		x[i] = base[i] - lr * m[i] / (sqrtf(v[i]) + tau);
	}
}

double
fl_clip_scale(double norm, double clip)
{
	if (clip <= 0 || norm <= clip)
		return 1.0;
	return clip / norm;
}

void
fl_agg_noise(float *x, size_t k, double sigma, struct fl_rng *r)
{
	for (size_t i = 0; i < k; i++)
		x[i] += (float)(sigma * fl_rng_normal(r));
}
