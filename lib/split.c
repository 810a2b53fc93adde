/* split.c: partitions of a dataset among workers, IID or label-skewed by
 * a Dirichlet draw per class, and the blob of one part. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

/* Dirichlet shares of m examples of one class among parts: the examples
 * (already shuffled) are cut into runs by the cumulative shares. */
static void
dirichlet_class(uint32_t *part, const uint32_t *idx, uint64_t m, uint32_t parts,
    double alpha, double *w, struct fl_rng *rng)
{
	double sum = 0, cum = 0;
	uint64_t start = 0;

	for (uint32_t j = 0; j < parts; j++)
		sum += w[j] = fl_rng_gamma(rng, alpha);
	if (!(sum > 0)) {	/* every draw underflowed: one part takes all */
		memset(w, 0, parts * sizeof(*w));
		w[fl_rng_below(rng, parts)] = sum = 1;
	}
	for (uint32_t j = 0; j < parts; j++) {
		uint64_t stop;
		cum += w[j];
		stop = j + 1 == parts ? m : (uint64_t)floor(cum / sum * (double)m + 0.5);
		if (stop > m)
			stop = m;
		for (; start < stop; start++)
			part[idx[start]] = j;
	}
}

int
fl_split(uint32_t *part, uint64_t n, const int32_t *y, uint32_t classes,
    uint32_t parts, double alpha, uint64_t seed, char *err)
{
	struct fl_rng rng;
	uint32_t *idx;
	uint64_t *count, *first;
	double *w;
	int rc = FL_OK;

	if (parts == 0 || parts > FL_MAX_PARTS)
		return fl_err(err, FL_EUSAGE, "parts must be 1 to %d", FL_MAX_PARTS);
	if (n < parts)
		return fl_err(err, FL_EDATA, "cannot split %llu example%s into %u "
		    "non-empty parts", (unsigned long long)n, n == 1 ? "" : "s", parts);
	if (n > UINT32_MAX)
		return fl_err(err, FL_ELIMIT, "more than %u examples to split", UINT32_MAX);
	if (alpha > 0 && (!y || classes == 0))
		return fl_err(err, FL_EDATA, "a Dirichlet split needs class labels");
	fl_rng_seed(&rng, seed);
	idx = malloc(n * sizeof(*idx));
	count = calloc(parts, sizeof(*count));
	first = calloc((size_t)classes + 1, sizeof(*first));
	w = calloc(parts, sizeof(*w));
	if (!idx || !count || !first || !w) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	if (alpha <= 0) {
		for (uint64_t i = 0; i < n; i++)
			idx[i] = (uint32_t)i;
		fl_rng_shuffle(&rng, idx, n);
		for (uint64_t i = 0; i < n; i++)
			part[idx[i]] = (uint32_t)(i % parts);
		goto out;
	}
	/* Group example indices by class (a counting sort). */
	for (uint64_t i = 0; i < n; i++) {
		if (y[i] < 0 || (uint32_t)y[i] >= classes) {
			rc = fl_err(err, FL_EDATA, "example %llu has label %d, not below "
			    "%u classes", (unsigned long long)i, y[i], classes);
			goto out;
		}
		first[y[i] + 1]++;
	}
	for (uint32_t c = 0; c < classes; c++)
		first[c + 1] += first[c];
	for (uint64_t i = 0; i < n; i++)
		idx[first[y[i]]++] = (uint32_t)i;
	for (uint32_t c = classes; c > 0; c--)
		first[c] = first[c - 1];
	first[0] = 0;
	/* Redraw (a few times) until no part is empty, as FL benchmarks do. */
	for (int attempt = 0; attempt < 20; attempt++) {
		uint32_t empty = 0;
		for (uint32_t c = 0; c < classes; c++) {
			uint64_t m = first[c + 1] - first[c];
			fl_rng_shuffle(&rng, idx + first[c], m);
			dirichlet_class(part, idx + first[c], m, parts, alpha, w, &rng);
		}
		memset(count, 0, parts * sizeof(*count));
		for (uint64_t i = 0; i < n; i++)
			count[part[i]]++;
		for (uint32_t j = 0; j < parts; j++)
			empty += count[j] == 0;
		if (!empty)
			goto out;
	}
	/* Still empty parts: each takes one example from the largest part. */
	for (uint32_t j = 0; j < parts; j++) {
		uint32_t big = 0;
		if (count[j])
			continue;
		for (uint32_t k = 1; k < parts; k++)
			if (count[k] > count[big])
				big = k;
		for (uint64_t i = 0; i < n; i++) {
			if (part[i] == big) {
				part[i] = j;
				count[big]--;
				count[j]++;
				break;
			}
		}
	}
out:
	free(idx);
	free(count);
	free(first);
	free(w);
	return rc;
}

int
fl_blobmem_part(struct fl_blobmem *dst, const struct fl_blobmem *b,
    const uint32_t *part, uint32_t parts, uint32_t p, char *err)
{
	int xi = fl_header_find(&b->h, "x");
	uint64_t n, m = 0;

	if (b->h.ntensors == 0)
		return fl_err(err, FL_EDATA, "the blob has no tensors");
	if (xi < 0)
		xi = 0;
	if (b->h.t[xi].ndim < 1)
		return fl_err(err, FL_EDATA, "tensor %s has no rows", b->h.t[xi].name);
	n = b->h.t[xi].shape[0];
	for (uint64_t i = 0; i < n; i++)
		m += part[i] == p;
	if (fl_blobmem_init(dst, b->h.kind))
		return fl_err(err, FL_EFAIL, "out of memory");
	fl_val_release(&dst->h.meta);
	if (fl_val_copy(&dst->h.meta, &b->h.meta))
		goto nomem;
	for (size_t t = 0; t < b->h.ntensors; t++) {
		const struct fl_tensor *src = &b->h.t[t];
		uint64_t shape[FL_MAX_DIMS];
		int rows = src->ndim >= 1 && src->shape[0] == n, i;
		unsigned char *out;

		memcpy(shape, src->shape, sizeof(shape));
		if (rows)
			shape[0] = m;
		if ((i = fl_blobmem_add(dst, src->name, src->dtype, src->ndim, shape,
		    NULL, err)) < 0) {
			fl_blobmem_release(dst);
			return -i;
		}
		dst->h.t[i].enc = src->enc;
		out = dst->data[i];
		if (!rows) {
			memcpy(out, b->data[t], fl_tensor_nbytes(src));
			continue;
		}
		{
			size_t row = n ? fl_tensor_nbytes(src) / n : 0;
			for (uint64_t r = 0; r < n; r++) {
				if (part[r] != p)
					continue;
				memcpy(out, b->data[t] + r * row, row);
				out += row;
			}
		}
	}
	if (fl_map_set_uint(&dst->h.meta, "samples", m) ||
	    fl_map_set_uint(&dst->h.meta, "part", (uint64_t)p + 1) ||
	    fl_map_set_uint(&dst->h.meta, "parts", parts))
		goto nomem;
	return FL_OK;
nomem:
	fl_blobmem_release(dst);
	return fl_err(err, FL_EFAIL, "out of memory");
}
