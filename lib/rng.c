/* rng.c: xoshiro256** seeded by splitmix64, with the draws flkit needs. */
#include <math.h>

#include "rng.h"

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
fl_rng_seed(struct fl_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

uint64_t
fl_rng_u64(struct fl_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

uint64_t
fl_rng_below(struct fl_rng *r, uint64_t n)
{
	uint64_t x, lim;

	if (n <= 1)
		return 0;
	lim = -n % n;	/* 2^64 mod n: reject the short last bucket */
	do
		x = fl_rng_u64(r);
	while (x < lim);
	return x % n;
}

double
fl_rng_uniform(struct fl_rng *r)
{
	return (double)(fl_rng_u64(r) >> 11) * 0x1.0p-53;
}

float
fl_rng_uniformf(struct fl_rng *r)
{
	return (float)(fl_rng_u64(r) >> 40) * 0x1.0p-24f;
}

double
fl_rng_normal(struct fl_rng *r)
{
	double u, v, s;

	/* Marsaglia's polar method; the second value is dropped so that
	 * each call depends only on the generator's state. */
	do {
		u = 2 * fl_rng_uniform(r) - 1;
		v = 2 * fl_rng_uniform(r) - 1;
		s = u * u + v * v;
	} while (s >= 1 || s == 0);
	return u * sqrt(-2 * log(s) / s);
}

double
fl_rng_gamma(struct fl_rng *r, double shape)
{
	double d, c, x, v, u;

	if (shape < 1) {
		/* Gamma(a) = Gamma(a + 1) * U^(1/a) */
		u = fl_rng_uniform(r);
		return fl_rng_gamma(r, shape + 1) * pow(u > 0 ? u : 0x1.0p-53, 1 / shape);
	}
	/* Marsaglia and Tsang, "A simple method for generating gamma variables" */
	d = shape - 1.0 / 3;
	c = 1 / sqrt(9 * d);
	for (;;) {
		do {
			x = fl_rng_normal(r);
			v = 1 + c * x;
		} while (v <= 0);
		v = v * v * v;
		u = fl_rng_uniform(r);
		if (u < 1 - 0.0331 * x * x * x * x)
			return d * v;
		if (log(u) < 0.5 * x * x + d * (1 - v + log(v)))
			return d * v;
	}
}

void
fl_rng_shuffle(struct fl_rng *r, uint32_t *a, uint64_t n)
{
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = fl_rng_below(r, i);
		uint32_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}
