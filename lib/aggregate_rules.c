/* aggregate_rules.c: the aggregation rules and server optimizers as pure
 * math on float arrays. */
#include <math.h>
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

/* Insertion sort: n is the number of inputs, small. */
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

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static void
sort_floats(float *v, size_t n)
{
	if (n <= 32)
		sort_small(v, n);
	else
		qsort(v, n, sizeof(*v), cmp_float);
}

void
fl_agg_median(float *out, float *const *x, size_t n, size_t k, float *scratch)
{
	for (size_t i = 0; i < k; i++) {
		for (size_t j = 0; j < n; j++)
			scratch[j] = x[j][i];
		sort_floats(scratch, n);
		if (n % 2)
			out[i] = scratch[n / 2];
		else
			out[i] = (float)(((double)scratch[n / 2 - 1] + scratch[n / 2]) / 2);
	}
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
	for (size_t i = 0; i < k; i++) {
		double acc = 0;
		for (size_t j = 0; j < n; j++)
			scratch[j] = x[j][i];
		sort_floats(scratch, n);
		for (size_t j = cut; j < n - cut; j++)
			acc += scratch[j];
		out[i] = (float)(acc / (double)(n - 2 * cut));
	}
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
