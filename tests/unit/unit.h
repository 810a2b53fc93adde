/* unit.h: a minimal TAP producer for the C unit tests of lib/. */
#ifndef FL_UNIT_H
#define FL_UNIT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_n, unit_failed;

/* Record one check; prints a TAP line "ok N - what" or "not ok N - what". */
#define CHECK(cond, ...) do { \
	int ok_ = (cond) ? 1 : 0; \
	unit_n++; \
	if (!ok_) \
		unit_failed++; \
	printf("%sok %d - ", ok_ ? "" : "not ", unit_n); \
	printf(__VA_ARGS__); \
	printf("\n"); \
	if (!ok_) \
		printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
} while (0)

/* Largest relative difference between two float arrays, with an absolute
 * floor so that values near zero compare by absolute error. */
static inline double
unit_maxrel(const float *a, const float *b, size_t n, double floor)
{
	double worst = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		double m = fabs((double)b[i]);
		double r = d / (m > floor ? m : floor);
		if (r > worst || r != r)
			worst = r != r ? INFINITY : r;
	}
	return worst;
}

static inline int
unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

#endif
