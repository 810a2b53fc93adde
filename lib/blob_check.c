/* blob_check.c: the incremental blob check (fl_check): a blob fed in
 * pieces as it streams, checked without holding it. */
#include <string.h>

#include "blob.h"

void
fl_check_init(struct fl_check *k, const char *name)
{
	memset(k, 0, sizeof(*k));
	k->name = name;
	fl_limits_default(&k->lim);
	fl_buf_init(&k->head, (size_t)k->lim.header + FL_MAGIC_LEN + 4);
}

void
fl_check_release(struct fl_check *k)
{
	fl_buf_release(&k->head);
	if (k->have_header)
		fl_header_release(&k->h);
	k->have_header = 0;
}

static int
check_head(struct fl_check *k, const unsigned char **pp, size_t *np, char *err)
{
	size_t want = FL_MAGIC_LEN + 4, take;
	int rc, knew = k->head.len >= FL_MAGIC_LEN + 4;

	if (knew) {
		const unsigned char *h = k->head.data + FL_MAGIC_LEN;
		uint64_t hlen = (uint64_t)h[0] | (uint64_t)h[1] << 8 |
		    (uint64_t)h[2] << 16 | (uint64_t)h[3] << 24;
		if (hlen > k->lim.header)
			return fl_err(err, FL_ELIMIT, "%s: header of %llu bytes exceeds "
			    "the limit", k->name, (unsigned long long)hlen);
		want += (size_t)hlen;
	}
	take = want - k->head.len;
	if (take > *np)
		take = *np;
	if ((rc = fl_buf_add(&k->head, *pp, take)))
		return fl_err(err, rc, "%s: out of memory", k->name);
	*pp += take;
	*np -= take;
	k->pos += take;
	if (k->head.len >= FL_MAGIC_LEN &&
	    memcmp(k->head.data, FL_MAGIC, FL_MAGIC_LEN))
		return fl_err(err, FL_EBLOB, "%s: not a blob (bad magic)", k->name);
	/* Now the header's length is known (once only: a zero length loops). */
	if (!knew && k->head.len == FL_MAGIC_LEN + 4)
		return *np ? check_head(k, pp, np, err) : FL_OK;
	if (k->head.len < want)
		return FL_OK;
	if ((rc = fl_header_decode(&k->h, k->head.data + FL_MAGIC_LEN + 4,
	    k->head.len - FL_MAGIC_LEN - 4, &k->lim, err))) {
		fl_err_prefix(err, "%s", k->name);
		fl_header_release(&k->h);
		return rc;
	}
	k->have_header = 1;
	return FL_OK;
}

static int
all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int
fl_check_feed(struct fl_check *k, const void *data, size_t n, char *err)
{
	const unsigned char *p = data;
	int rc;

	if (!k->have_header && (rc = check_head(k, &p, &n, err)))
		return rc;
	while (n) {
		struct fl_tensor *t = k->cur < k->h.ntensors ? &k->h.t[k->cur] : NULL;
		uint64_t end, take;

		if (k->pos >= k->h.total)
			return fl_err(err, FL_EBLOB, "%s: data after the blob's end "
			    "(%llu bytes)", k->name, (unsigned long long)k->h.total);
		if (t && k->pos >= t->offset) {
			end = t->offset + t->size;
			take = end - k->pos < n ? end - k->pos : n;
			k->crc = fl_crc32(k->crc, p, (size_t)take);
		} else {
			end = t ? t->offset : k->h.total;
			take = end - k->pos < n ? end - k->pos : n;
			if (!all_zero(p, (size_t)take))
				return fl_err(err, FL_EBLOB, "%s: padding at byte %llu is "
				    "not zero", k->name, (unsigned long long)k->pos);
		}
		p += take;
		n -= (size_t)take;
		k->pos += take;
		if (t && k->pos == t->offset + t->size) {
			if (k->crc != t->crc)
				return fl_err(err, FL_EBLOB, "%s: tensor %s: crc32 mismatch "
				    "(stored %08x, computed %08x): corrupt data",
				    k->name, t->name, t->crc, k->crc);
			k->crc = 0;
			k->cur++;
		}
	}
	if (k->have_header && k->pos == k->h.total)
		k->done = 1;
	return FL_OK;
}

int
fl_check_end(struct fl_check *k, char *err)
{
	if (!k->have_header && k->head.len == 0)
		return fl_err(err, FL_EBLOB, "%s: empty, not a blob", k->name);
	if (!k->done)
		return fl_err(err, FL_EBLOB, "%s: truncated after %llu bytes%s", k->name,
		    (unsigned long long)k->pos, k->have_header ? "" : " of header");
	return FL_OK;
}
