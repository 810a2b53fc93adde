/* rng.h: a small deterministic random generator (xoshiro256**) for
 * initialisation, shuffling, dropout, splits and noise. */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stdint.h>

struct fl_rng {
	uint64_t s[4];
};

void fl_rng_seed(struct fl_rng *r, uint64_t seed);
uint64_t fl_rng_u64(struct fl_rng *r);
uint64_t fl_rng_below(struct fl_rng *r, uint64_t n);	/* uniform in [0, n), unbiased */
double fl_rng_uniform(struct fl_rng *r);		/* [0, 1) with 53 bits */
float fl_rng_uniformf(struct fl_rng *r);		/* [0, 1) with 24 bits */
double fl_rng_normal(struct fl_rng *r);			/* N(0, 1) */
double fl_rng_gamma(struct fl_rng *r, double shape);	/* Gamma(shape, 1) */
void fl_rng_shuffle(struct fl_rng *r, uint32_t *a, uint64_t n);	/* Fisher-Yates */

#endif
