/* interop.c: safetensors and .npz reading and writing, with a small strict
 * JSON parser for safetensors headers (flat: names to dtype, shape, offsets). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "interop.h"
#include "model.h"

int
fl_format_parse(const char *s, enum fl_format *f)
{
	if (!strcmp(s, "safetensors"))
		*f = FL_FMT_SAFETENSORS;
	else if (!strcmp(s, "npz"))
		*f = FL_FMT_NPZ;
	else
		return FL_EUSAGE;
	return FL_OK;
}

const char *
fl_format_name(enum fl_format f)
{
	return f == FL_FMT_NPZ ? "npz" : "safetensors";
}

static uint16_t
le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}


/* Add a tensor to b with a copy of its bytes, or, when borrow is set, with
 * a reference to them (in a file mapping that b will own). */
static int
add_copy(struct fl_blobmem *b, const char *name, enum fl_dtype dt, int ndim,
    const uint64_t *shape, const void *data, const struct fl_limits *lim,
    int borrow, char *err)
{
	int i;

	if (fl_header_find(&b->h, name) >= 0)
		return fl_err(err, FL_EBLOB, "tensor %s appears twice", name);
	/* Borrow only aligned data: readers may take it as an array of dt. */
	if (borrow && (uintptr_t)data % fl_dtype_size(dt) == 0) {
		i = fl_blobmem_add_ref(b, name, dt, ndim, shape, data, lim, err);
		return i < 0 ? -i : FL_OK;
	}
	if ((i = fl_blobmem_add(b, name, dt, ndim, shape, lim, err)) < 0)
		return -i;
	memcpy(b->data[i], data, fl_tensor_nbytes(&b->h.t[i]));
	return FL_OK;
}

/* A strict JSON parser for safetensors headers. */

struct jp {
	const char *p, *end;
	const char *name;	/* the file, for messages */
	char *err;
};

static int
jerr(struct jp *j, const char *what, const char *start)
{
	return fl_err(j->err, FL_EBLOB, "%s: bad JSON header at byte %td: %s", j->name,
	    j->p - start + 8, what);
}

static void
jws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r'))
		j->p++;
}

static int
jhex(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		int c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static int
put_utf8(struct fl_buf *o, unsigned long c)
{
	unsigned char u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (unsigned char)(0xc0 | c >> 6);
		u[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (unsigned char)(0xe0 | c >> 12);
		u[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | c >> 18);
		u[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return fl_buf_add(o, u, n);
}

/* A string into o (NUL-terminated; o->len excludes the NUL). */
static int
jstr(struct jp *j, struct fl_buf *o, const char *start)
{
	o->len = 0;
	if (j->p >= j->end || *j->p != '"')
		return jerr(j, "expected a string", start);
	for (j->p++;;) {
		unsigned char c;
		if (j->p >= j->end)
			return jerr(j, "unterminated string", start);
		c = (unsigned char)*j->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return jerr(j, "control character in a string", start);
		if (c != '\\') {
			if (fl_buf_add(o, &c, 1))
				return fl_err(j->err, FL_EFAIL, "out of memory");
			continue;
		}
		if (j->p >= j->end)
			return jerr(j, "unterminated string", start);
		c = (unsigned char)*j->p++;
		switch (c) {
		case '"': case '\\': case '/': break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u': {
			long u, lo;
			if (j->end - j->p < 4 || (u = jhex(j->p)) < 0)
				return jerr(j, "bad \\u escape", start);
			j->p += 4;
			if (u >= 0xd800 && u < 0xdc00) {
				if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
				    (lo = jhex(j->p + 2)) < 0xdc00 || lo > 0xdfff)
					return jerr(j, "unpaired surrogate", start);
				j->p += 6;
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			} else if (u >= 0xdc00 && u < 0xe000) {
				return jerr(j, "unpaired surrogate", start);
			}
			if (u == 0)
				return jerr(j, "NUL in a string", start);
			if (put_utf8(o, (unsigned long)u))
				return fl_err(j->err, FL_EFAIL, "out of memory");
			continue;
		}
		default:
			return jerr(j, "bad escape", start);
		}
		if (fl_buf_add(o, &c, 1))
			return fl_err(j->err, FL_EFAIL, "out of memory");
	}
	if (fl_buf_add(o, "", 1))
		return fl_err(j->err, FL_EFAIL, "out of memory");
	o->len--;
	return FL_OK;
}

static int
juint(struct jp *j, uint64_t *v, const char *start)
{
	const char *s = j->p;

	*v = 0;
	if (s >= j->end || *s < '0' || *s > '9')
		return jerr(j, "expected a non-negative integer", start);
	if (*s == '0' && s + 1 < j->end && s[1] >= '0' && s[1] <= '9')
		return jerr(j, "leading zero", start);
	for (; s < j->end && *s >= '0' && *s <= '9'; s++) {
		if (*v > (UINT64_MAX - 9) / 10)
			return jerr(j, "integer too large", start);
		*v = *v * 10 + (uint64_t)(*s - '0');
	}
	if (s < j->end && (*s == '.' || *s == 'e' || *s == 'E'))
		return jerr(j, "expected an integer", start);
	j->p = s;
	return FL_OK;
}

static int
jchar(struct jp *j, char c, const char *start)
{
	char what[32];

	jws(j);
	if (j->p >= j->end || *j->p != c) {
		snprintf(what, sizeof(what), "expected '%c'", c);
		return jerr(j, what, start);
	}
	j->p++;
	jws(j);
	return FL_OK;
}

/* '[' uint, ... ']' with at most max items. */
static int
juints(struct jp *j, uint64_t *v, int max, int *n, const char *start)
{
	int rc;

	*n = 0;
	if ((rc = jchar(j, '[', start)))
		return rc;
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return FL_OK;
	}
	for (;;) {
		if (*n == max)
			return jerr(j, "too many items in an array", start);
		if ((rc = juint(j, &v[(*n)++], start)))
			return rc;
		jws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return FL_OK;
		}
		if ((rc = jchar(j, ',', start)))
			return rc;
	}
}

struct st_entry {
	char *name;
	enum fl_dtype dtype;
	int ndim;
	uint64_t shape[FL_MAX_DIMS];
	uint64_t begin, end;
};

static const struct {
	const char *st;
	int dtype;		/* -1: a safetensors dtype flkit does not hold */
} st_dtypes[] = {
	{ "F64", FL_F64 }, { "F32", FL_F32 }, { "F16", FL_F16 }, { "BF16", FL_BF16 },
	{ "I64", FL_I64 }, { "I32", FL_I32 }, { "I8", FL_I8 }, { "U8", FL_U8 },
	{ "I16", -1 }, { "U16", -1 }, { "U32", -1 }, { "U64", -1 }, { "BOOL", -1 },
	{ "F8_E4M3", -1 }, { "F8_E5M2", -1 }, { "F8_E8M0", -1 }, { "F6_E2M3", -1 },
	{ "F6_E3M2", -1 }, { "F4", -1 }, { "C64", -1 },
};

static const char *
st_dtype_name(enum fl_dtype t)
{
	for (size_t i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++)
		if (st_dtypes[i].dtype == (int)t)
			return st_dtypes[i].st;
	return "?";
}

/* One tensor's description: {"dtype":..,"shape":[..],"data_offsets":[a,b]}. */
static int
st_tensor(struct jp *j, struct st_entry *e, struct fl_buf *tmp, const char *start)
{
	int have = 0, rc, n;
	uint64_t off[2];

	if ((rc = jchar(j, '{', start)))
		return rc;
	for (;;) {
		if ((rc = jstr(j, tmp, start)))
			return rc;
		if ((rc = jchar(j, ':', start)))
			return rc;
		if (!strcmp((char *)tmp->data, "dtype") && !(have & 1)) {
			size_t i;
			if ((rc = jstr(j, tmp, start)))
				return rc;
			for (i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++)
				if (!strcmp((char *)tmp->data, st_dtypes[i].st))
					break;
			if (i == sizeof(st_dtypes) / sizeof(st_dtypes[0]))
				return fl_err(j->err, FL_EBLOB, "%s: tensor %s: unknown dtype "
				    "'%.32s'", j->name, e->name, (char *)tmp->data);
			if (st_dtypes[i].dtype < 0)
				return fl_err(j->err, FL_EDATA, "%s: tensor %s: dtype %s is not "
				    "supported (f64 f32 f16 bf16 i64 i32 i8 u8)", j->name,
				    e->name, st_dtypes[i].st);
			e->dtype = (enum fl_dtype)st_dtypes[i].dtype;
			have |= 1;
		} else if (!strcmp((char *)tmp->data, "shape") && !(have & 2)) {
			if ((rc = juints(j, e->shape, FL_MAX_DIMS, &e->ndim, start)))
				return rc;
			have |= 2;
		} else if (!strcmp((char *)tmp->data, "data_offsets") && !(have & 4)) {
			if ((rc = juints(j, off, 2, &n, start)))
				return rc;
			if (n != 2)
				return jerr(j, "data_offsets needs two numbers", start);
			e->begin = off[0];
			e->end = off[1];
			have |= 4;
		} else {
			return fl_err(j->err, FL_EBLOB, "%s: tensor %s: unexpected or "
			    "repeated key '%.32s'", j->name, e->name, (char *)tmp->data);
		}
		jws(j);
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			break;
		}
		if ((rc = jchar(j, ',', start)))
			return rc;
	}
	if (have != 7)
		return fl_err(j->err, FL_EBLOB, "%s: tensor %s: missing %s", j->name,
		    e->name, !(have & 1) ? "dtype" : !(have & 2) ? "shape" : "data_offsets");
	return FL_OK;
}

/* A metadata value: JSON numbers become numbers; "format" is dropped. */
static int
st_meta_set(struct fl_val *meta, const char *k, const char *v)
{
	uint64_t u;
	double d;
	const char *s = v;

	if (!strcmp(k, "format"))
		return FL_OK;
	if (!strcmp(k, "flkit.kind"))
		return FL_OK;
	if (*s == '-')
		s++;
	if (*s >= '0' && *s <= '9' && strspn(s, "0123456789.eE+-") == strlen(s)) {
		if (v[0] != '-' && !fl_parse_u64(v, UINT64_MAX, &u))
			return fl_map_set_uint(meta, k, u);
		if (!fl_parse_double(v, &d))
			return fl_map_set_float(meta, k, d);
	}
	return fl_map_set_str(meta, k, v);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;

	return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 :
	    x->end < y->end ? -1 : x->end > y->end;
}

/*
 * map, when not NULL, is the file mapping buf lies in: tensors reference it
 * instead of being copied, and b owns it from here on, error or not.
 */
static int
st_parse(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, void *map, size_t maplen, char *err)
{
	int borrow = map != NULL;
	struct fl_limits lim;
	struct jp j = { .name = name, .err = err };
	struct st_entry *e = NULL;
	struct fl_buf key, val;
	size_t ne = 0, cap = 0;
	uint64_t hlen, dlen;
	const unsigned char *data;
	int rc, have_meta = 0;

	fl_limits_default(&lim);
	fl_buf_init(&key, 1 << 20);
	fl_buf_init(&val, 1 << 20);
	if (fl_blobmem_init(b, "model")) {
		if (map)
			munmap(map, maplen);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	b->map = map;
	b->maplen = maplen;
	if (len < 8) {
		rc = fl_err(err, FL_EBLOB, "%s: %s", name, len ? "truncated in the "
		    "header length" : "empty file");
		goto out;
	}
	hlen = le64(buf);
	if (hlen > len - 8) {
		rc = fl_err(err, FL_EBLOB, "%s: header length %llu is larger than the "
		    "file (%zu bytes)", name, (unsigned long long)hlen, len);
		goto out;
	}
	if (hlen > FL_ST_MAX_HEADER) {
		rc = fl_err(err, FL_ELIMIT, "%s: header of %llu bytes exceeds the limit "
		    "of %d", name, (unsigned long long)hlen, FL_ST_MAX_HEADER);
		goto out;
	}
	j.p = (const char *)buf + 8;
	j.end = j.p + hlen;
	data = buf + 8 + hlen;
	dlen = len - 8 - hlen;
	if (hlen == 0 || *j.p != '{') {
		rc = fl_err(err, FL_EBLOB, "%s: not a safetensors file (the header does "
		    "not start with '{')", name);
		goto out;
	}
	if ((rc = jchar(&j, '{', (const char *)buf + 8)))
		goto out;
	while (j.p < j.end && *j.p != '}') {
		const char *start = (const char *)buf + 8;
		if ((rc = jstr(&j, &key, start)) || (rc = jchar(&j, ':', start)))
			goto out;
		if (!strcmp((char *)key.data, "__metadata__")) {
			if (have_meta) {
				rc = jerr(&j, "__metadata__ twice", start);
				goto out;
			}
			have_meta = 1;
			if ((rc = jchar(&j, '{', start)))
				goto out;
			while (j.p < j.end && *j.p != '}') {
				if ((rc = jstr(&j, &key, start)) || (rc = jchar(&j, ':', start)))
					goto out;
				if ((rc = jstr(&j, &val, start))) {
					fl_err(err, FL_EBLOB, "%s: __metadata__ value of '%.64s' is "
					    "not a string", name, (char *)key.data);
					goto out;
				}
				if (st_meta_set(&b->h.meta, (char *)key.data, (char *)val.data)) {
					rc = fl_err(err, FL_EFAIL, "out of memory");
					goto out;
				}
				if (!strcmp((char *)key.data, "flkit.kind") && val.len &&
				    val.len < 64 && strspn((char *)val.data,
				    "abcdefghijklmnopqrstuvwxyz-_") == val.len) {
					free(b->h.kind);
					if (!(b->h.kind = strdup((char *)val.data))) {
						rc = fl_err(err, FL_EFAIL, "out of memory");
						goto out;
					}
				}
				jws(&j);
				if (j.p < j.end && *j.p == ',' && (j.p++, jws(&j), 1))
					continue;
			}
			if ((rc = jchar(&j, '}', start)))
				goto out;
		} else {
			if (ne == lim.ntensors) {
				rc = fl_err(err, FL_ELIMIT, "%s: more than %llu tensors", name,
				    (unsigned long long)lim.ntensors);
				goto out;
			}
			if (ne == cap) {
				size_t nc = cap ? 2 * cap : 16;
				struct st_entry *g = realloc(e, nc * sizeof(*g));
				if (!g) {
					rc = fl_err(err, FL_EFAIL, "out of memory");
					goto out;
				}
				e = g;
				cap = nc;
			}
			memset(&e[ne], 0, sizeof(e[ne]));
			if (key.len == 0 || key.len > FL_MAX_NAME) {
				rc = fl_err(err, FL_EBLOB, "%s: a tensor name is empty or longer "
				    "than %d bytes", name, FL_MAX_NAME);
				goto out;
			}
			if (!(e[ne].name = strdup((char *)key.data))) {
				rc = fl_err(err, FL_EFAIL, "out of memory");
				goto out;
			}
			ne++;
			if ((rc = st_tensor(&j, &e[ne - 1], &val, start)))
				goto out;
		}
		jws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			jws(&j);
			if (j.p < j.end && *j.p == '}') {
				rc = jerr(&j, "trailing comma", start);
				goto out;
			}
		} else if (j.p < j.end && *j.p != '}') {
			rc = jerr(&j, "expected ',' or '}'", start);
			goto out;
		}
	}
	if ((rc = jchar(&j, '}', (const char *)buf + 8)))
		goto out;
	if (j.p != j.end) {
		rc = jerr(&j, "data after the header's object", (const char *)buf + 8);
		goto out;
	}
	/* Offsets: each tensor's bytes, in range, tiling the data exactly. */
	if (ne > 1)
		qsort(e, ne, sizeof(*e), cmp_entry);
	for (size_t i = 0; i < ne; i++) {
		uint64_t nb = fl_shape_bytes(e[i].dtype, e[i].ndim, e[i].shape);
		if (e[i].begin > e[i].end || e[i].end > dlen) {
			rc = fl_err(err, FL_EBLOB, "%s: tensor %s: data_offsets [%llu,%llu] "
			    "out of range (%llu data bytes)", name, e[i].name,
			    (unsigned long long)e[i].begin, (unsigned long long)e[i].end,
			    (unsigned long long)dlen);
			goto out;
		}
		if (nb != e[i].end - e[i].begin) {
			rc = fl_err(err, FL_EBLOB, "%s: tensor %s: %s with %d dims needs "
			    "%llu bytes, data_offsets give %llu", name, e[i].name,
			    st_dtype_name(e[i].dtype), e[i].ndim, (unsigned long long)nb,
			    (unsigned long long)(e[i].end - e[i].begin));
			goto out;
		}
		if (i && e[i].begin < e[i - 1].end) {
			rc = fl_err(err, FL_EBLOB, "%s: tensors %s and %s overlap", name,
			    e[i - 1].name, e[i].name);
			goto out;
		}
		if (e[i].begin != (i ? e[i - 1].end : 0)) {
			rc = fl_err(err, FL_EBLOB, "%s: %llu unused bytes before tensor %s",
			    name, (unsigned long long)(e[i].begin - (i ? e[i - 1].end : 0)),
			    e[i].name);
			goto out;
		}
	}
	if ((ne ? e[ne - 1].end : 0) != dlen) {
		rc = fl_err(err, FL_EBLOB, "%s: %llu bytes after the last tensor", name,
		    (unsigned long long)(dlen - (ne ? e[ne - 1].end : 0)));
		goto out;
	}
	for (size_t i = 0; i < ne; i++) {
		if ((rc = add_copy(b, e[i].name, e[i].dtype, e[i].ndim, e[i].shape,
		    data + e[i].begin, &lim, borrow, err))) {
			fl_err_prefix(err, "%s", name);
			goto out;
		}
	}
out:
	for (size_t i = 0; i < ne; i++)
		free(e[i].name);
	free(e);
	fl_buf_release(&key);
	fl_buf_release(&val);
	if (rc)
		fl_blobmem_release(b);
	return rc;
}

/* .npy arrays. */

static const struct {
	const char *descr;	/* without the byte-order character */
	enum fl_dtype dtype;
} npy_dtypes[] = {
	{ "f4", FL_F32 }, { "f8", FL_F64 }, { "f2", FL_F16 }, { "i1", FL_I8 },
	{ "u1", FL_U8 }, { "i4", FL_I32 }, { "i8", FL_I64 },
};

/* Skip spaces; then expect c. */
static int
py_char(const char **p, const char *end, char c)
{
	while (*p < end && **p == ' ')
		(*p)++;
	if (*p >= end || **p != c)
		return -1;
	(*p)++;
	while (*p < end && **p == ' ')
		(*p)++;
	return 0;
}

/* A quoted Python string of at most outlen - 1 bytes, no escapes. */
static int
py_str(const char **p, const char *end, char *out, size_t outlen)
{
	char q;
	size_t n = 0;

	if (*p >= end || (**p != '\'' && **p != '"'))
		return -1;
	q = *(*p)++;
	while (*p < end && **p != q) {
		if (**p == '\\' || n + 1 >= outlen)
			return -1;
		out[n++] = *(*p)++;
	}
	if (*p >= end)
		return -1;
	(*p)++;
	out[n] = 0;
	return 0;
}

static int
npy_parse(struct fl_blobmem *b, const char *tname, const unsigned char *buf,
    uint64_t len, const char *name, const struct fl_limits *lim, int borrow, char *err)
{
	uint64_t hlen, hoff, shape[FL_MAX_DIMS];
	const char *p, *end;
	char key[32], descr[32];
	int have = 0, ndim = 0, fortran = 0;
	enum fl_dtype dt = FL_F32;

	if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
		return fl_err(err, FL_EBLOB, "%s: %s: not a .npy array (bad magic)", name,
		    tname);
	if (buf[6] == 1) {
		hlen = le16(buf + 8);
		hoff = 10;
	} else if (buf[6] == 2 || buf[6] == 3) {
		if (len < 12)
			return fl_err(err, FL_EBLOB, "%s: %s: truncated", name, tname);
		hlen = le32(buf + 8);
		hoff = 12;
	} else {
		return fl_err(err, FL_EDATA, "%s: %s: .npy version %d is not supported",
		    name, tname, buf[6]);
	}
	if (hlen > len - hoff)
		return fl_err(err, FL_EBLOB, "%s: %s: truncated in the .npy header", name,
		    tname);
	p = (const char *)buf + hoff;
	end = p + hlen;
	while (end > p && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\0'))
		end--;
	if (py_char(&p, end, '{'))
		goto bad;
	while (p < end && *p != '}') {
		if (py_str(&p, end, key, sizeof(key)) || py_char(&p, end, ':'))
			goto bad;
		if (!strcmp(key, "descr") && !(have & 1)) {
			size_t i;
			if (p < end && *p == '[')
				return fl_err(err, FL_EDATA, "%s: %s: structured arrays are not "
				    "supported", name, tname);
			if (py_str(&p, end, descr, sizeof(descr)))
				goto bad;
			if (descr[0] == '>' && strcmp(descr + 1, "i1") && strcmp(descr + 1, "u1"))
				return fl_err(err, FL_EDATA, "%s: %s: big-endian arrays ('%s') "
				    "are not supported", name, tname, descr);
			if (descr[0] != '<' && descr[0] != '|' && descr[0] != '=' &&
			    descr[0] != '>')
				goto baddt;
			for (i = 0; i < sizeof(npy_dtypes) / sizeof(npy_dtypes[0]); i++)
				if (!strcmp(descr + 1, npy_dtypes[i].descr))
					break;
			if (i == sizeof(npy_dtypes) / sizeof(npy_dtypes[0]))
				goto baddt;
			dt = npy_dtypes[i].dtype;
			have |= 1;
		} else if (!strcmp(key, "fortran_order") && !(have & 2)) {
			if (end - p >= 4 && !memcmp(p, "True", 4)) {
				fortran = 1;
				p += 4;
			} else if (end - p >= 5 && !memcmp(p, "False", 5)) {
				p += 5;
			} else {
				goto bad;
			}
			have |= 2;
		} else if (!strcmp(key, "shape") && !(have & 4)) {
			if (py_char(&p, end, '('))
				goto bad;
			while (p < end && *p != ')') {
				uint64_t v = 0;
				if (ndim == FL_MAX_DIMS)
					return fl_err(err, FL_ELIMIT, "%s: %s: more than %d "
					    "dimensions", name, tname, FL_MAX_DIMS);
				if (p >= end || *p < '0' || *p > '9')
					goto bad;
				for (; p < end && *p >= '0' && *p <= '9'; p++) {
					if (v > (UINT64_MAX - 9) / 10)
						goto bad;
					v = v * 10 + (uint64_t)(*p - '0');
				}
				while (p < end && *p == 'L')	/* Python 2 longs */
					p++;
				shape[ndim++] = v;
				if (py_char(&p, end, ',') && (p >= end || *p != ')'))
					goto bad;
			}
			if (py_char(&p, end, ')'))
				goto bad;
			have |= 4;
		} else {
			goto bad;
		}
		if (py_char(&p, end, ',') && (p >= end || *p != '}'))
			goto bad;
	}
	if (py_char(&p, end, '}') || p != end || have != 7)
		goto bad;
	if (fortran && ndim > 1)
		return fl_err(err, FL_EDATA, "%s: %s: Fortran-order arrays are not "
		    "supported (save with numpy.ascontiguousarray)", name, tname);
	if (fl_shape_bytes(dt, ndim, shape) != len - hoff - hlen)
		return fl_err(err, FL_EBLOB, "%s: %s: the .npy header declares %s of "
		    "%d dims needing %llu bytes, the entry holds %llu", name, tname,
		    descr, ndim, (unsigned long long)fl_shape_bytes(dt, ndim, shape),
		    (unsigned long long)(len - hoff - hlen));
	return add_copy(b, tname, dt, ndim, shape, buf + hoff + hlen, lim, borrow, err);
bad:
	return fl_err(err, FL_EBLOB, "%s: %s: bad .npy header", name, tname);
baddt:
	return fl_err(err, FL_EDATA, "%s: %s: dtype '%s' is not supported (float16/32/64, "
	    "int8/32/64, uint8)", name, tname, descr);
}

/* .npz: a zip of .npy files. */

#define ZIP_LOCAL 0x04034b50
#define ZIP_CENTRAL 0x02014b50
#define ZIP_END 0x06054b50
#define ZIP64_END 0x06064b50
#define ZIP64_LOC 0x07064b50

static int
inflate_entry(unsigned char *dst, uint64_t dlen, const unsigned char *src,
    uint64_t slen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK)
		return FL_EFAIL;
	z.next_in = (unsigned char *)src;
	z.next_out = dst;
	do {
		uInt in = slen > (1u << 30) ? 1u << 30 : (uInt)slen;
		uInt out = dlen > (1u << 30) ? 1u << 30 : (uInt)dlen;
		z.avail_in = in;
		z.avail_out = out;
		rc = inflate(&z, Z_FINISH);
		slen -= in - z.avail_in;
		dlen -= out - z.avail_out;
	} while (rc == Z_BUF_ERROR && (z.avail_in == 0 || z.avail_out == 0) &&
	    slen && dlen);
	inflateEnd(&z);
	return rc == Z_STREAM_END && dlen == 0 ? FL_OK : FL_EBLOB;
}

static int
npz_parse(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, void *map, size_t maplen, char *err)
{
	int borrow = map != NULL;
	struct fl_limits lim;
	uint64_t nent, cdoff, cdsize, pos;
	const unsigned char *eo = NULL;
	unsigned char *tmp = NULL;
	char tname[FL_MAX_NAME + 8];
	int rc = FL_OK;

	fl_limits_default(&lim);
	if (fl_blobmem_init(b, "model")) {
		if (map)
			munmap(map, maplen);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	b->map = map;
	b->maplen = maplen;
	if (len < 4 || le32(buf) != ZIP_LOCAL) {
		if (len >= 22 && le32(buf) == ZIP_END)
			rc = fl_err(err, FL_EBLOB, "%s: an empty zip file (no arrays)", name);
		else
			rc = fl_err(err, FL_EBLOB, "%s: not an .npz file (not a zip)", name);
		goto out;
	}
	for (size_t i = len >= 22 ? len - 22 : 0; len >= 22; i--) {
		if (le32(buf + i) == ZIP_END && i + 22 + le16(buf + i + 20) == len) {
			eo = buf + i;
			break;
		}
		if (i == 0 || len - i > 22 + 65535)
			break;
	}
	if (!eo) {
		rc = fl_err(err, FL_EBLOB, "%s: truncated zip (no end of central "
		    "directory)", name);
		goto out;
	}
	nent = le16(eo + 10);
	cdsize = le32(eo + 12);
	cdoff = le32(eo + 16);
	if (nent == 0xffff || cdsize == 0xffffffff || cdoff == 0xffffffff) {
		const unsigned char *loc = eo - 20, *z;
		uint64_t zo;
		if (eo - buf < 20 || len < 56 || le32(loc) != ZIP64_LOC ||
		    (zo = le64(loc + 8)) > len - 56 || le32(z = buf + zo) != ZIP64_END) {
			rc = fl_err(err, FL_EBLOB, "%s: bad zip64 end of central directory",
			    name);
			goto out;
		}
		nent = le64(z + 32);
		cdsize = le64(z + 40);
		cdoff = le64(z + 48);
	}
	if (cdoff > len || cdsize > len - cdoff) {
		rc = fl_err(err, FL_EBLOB, "%s: the zip central directory lies outside "
		    "the file", name);
		goto out;
	}
	if (nent > lim.ntensors) {
		rc = fl_err(err, FL_ELIMIT, "%s: more than %llu arrays", name,
		    (unsigned long long)lim.ntensors);
		goto out;
	}
	pos = cdoff;
	for (uint64_t k = 0; k < nent; k++) {
		const unsigned char *c = buf + pos, *x, *lh;
		uint64_t csize, usize, loff, data, nl, xl, cl;
		uint32_t crc;
		int method, flags;

		if (cdoff + cdsize - pos < 46 || le32(c) != ZIP_CENTRAL) {
			rc = fl_err(err, FL_EBLOB, "%s: bad zip central directory entry %llu",
			    name, (unsigned long long)k + 1);
			goto out;
		}
		flags = le16(c + 8);
		method = le16(c + 10);
		crc = le32(c + 16);
		csize = le32(c + 20);
		usize = le32(c + 24);
		nl = le16(c + 28);
		xl = le16(c + 30);
		cl = le16(c + 32);
		loff = le32(c + 42);
		if (46 + nl + xl + cl > cdoff + cdsize - pos) {
			rc = fl_err(err, FL_EBLOB, "%s: bad zip central directory entry %llu",
			    name, (unsigned long long)k + 1);
			goto out;
		}
		/* zip64 extra field: the sizes and offset that overflowed. */
		for (x = c + 46 + nl; x + 4 <= c + 46 + nl + xl;) {
			uint16_t id = le16(x), sz = le16(x + 2);
			const unsigned char *v = x + 4;
			if (x + 4 + sz > c + 46 + nl + xl)
				break;
			if (id == 1) {
				if (usize == 0xffffffff && v + 8 <= x + 4 + sz)
					usize = le64(v), v += 8;
				if (csize == 0xffffffff && v + 8 <= x + 4 + sz)
					csize = le64(v), v += 8;
				if (loff == 0xffffffff && v + 8 <= x + 4 + sz)
					loff = le64(v);
			}
			x += 4 + sz;
		}
		if (nl < 5 || nl > FL_MAX_NAME || memcmp(c + 46 + nl - 4, ".npy", 4)) {
			rc = fl_err(err, FL_EBLOB, "%s: zip entry '%.*s' is not a .npy array",
			    name, (int)(nl < 200 ? nl : 200), (const char *)c + 46);
			goto out;
		}
		memcpy(tname, c + 46, nl - 4);
		tname[nl - 4] = 0;
		if (memchr(tname, 0, nl - 4)) {
			rc = fl_err(err, FL_EBLOB, "%s: a zip entry name holds a NUL", name);
			goto out;
		}
		pos += 46 + nl + xl + cl;
		if (flags & 1) {
			rc = fl_err(err, FL_EDATA, "%s: %s: encrypted entries are not "
			    "supported", name, tname);
			goto out;
		}
		if (method != 0 && method != 8) {
			rc = fl_err(err, FL_EDATA, "%s: %s: zip compression method %d is not "
			    "supported (stored or deflated)", name, tname, method);
			goto out;
		}
		if (loff > len || len - loff < 30 || le32(lh = buf + loff) != ZIP_LOCAL) {
			rc = fl_err(err, FL_EBLOB, "%s: %s: bad zip local header", name, tname);
			goto out;
		}
		data = loff + 30 + le16(lh + 26) + le16(lh + 28);
		if (data > len || csize > len - data) {
			rc = fl_err(err, FL_EBLOB, "%s: %s: truncated (the entry runs past "
			    "the end of the file)", name, tname);
			goto out;
		}
		if (usize > lim.tensor + 65536 || (method == 0 && usize != csize)) {
			rc = fl_err(err, usize > lim.tensor ? FL_ELIMIT : FL_EBLOB,
			    "%s: %s: entry of %llu bytes %s", name, tname,
			    (unsigned long long)usize, method ? "exceeds the limit" :
			    "disagrees with its stored size");
			goto out;
		}
		if (method == 8 && usize / FL_DEFLATE_MAX_RATIO > csize) {
			rc = fl_err(err, FL_EBLOB, "%s: %s: %llu deflated bytes cannot "
			    "inflate to %llu", name, tname, (unsigned long long)csize,
			    (unsigned long long)usize);
			goto out;
		}
		if (method == 8) {
			free(tmp);
			if (!(tmp = malloc(usize ? (size_t)usize : 1))) {
				rc = fl_err(err, FL_EFAIL, "out of memory");
				goto out;
			}
			if ((rc = inflate_entry(tmp, usize, buf + data, csize))) {
				fl_err(err, rc, "%s: %s: corrupt deflate data", name, tname);
				goto out;
			}
		}
		if ((uint32_t)crc32_z(0, method ? tmp : buf + data, (size_t)usize) != crc) {
			rc = fl_err(err, FL_EBLOB, "%s: %s: crc mismatch", name, tname);
			goto out;
		}
		if ((rc = npy_parse(b, tname, method ? tmp : buf + data, usize, name,
		    &lim, borrow && !method, err)))
			goto out;
	}
	if (nent == 0)
		rc = fl_err(err, FL_EBLOB, "%s: no arrays in the .npz file", name);
out:
	free(tmp);
	if (rc)
		fl_blobmem_release(b);
	return rc;
}

int
fl_safetensors_parse(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, char *err)
{
	return st_parse(b, buf, len, name, NULL, 0, err);
}

int
fl_npz_parse(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, char *err)
{
	return npz_parse(b, buf, len, name, NULL, 0, err);
}

/* Parse a whole file image; map as for st_parse (buf is then map). */
static int
parse_image(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, enum fl_format *f, void *map, char *err)
{
	int zip = len >= 4 && le32(buf) == ZIP_LOCAL;

	*f = zip ? FL_FMT_NPZ : FL_FMT_SAFETENSORS;
	if (zip || (len >= 4 && le32(buf) == ZIP_END))
		return npz_parse(b, buf, len, name, map, map ? len : 0, err);
	return st_parse(b, buf, len, name, map, map ? len : 0, err);
}

int
fl_import_read(struct fl_blobmem *b, const char *path, enum fl_format *f,
    char *err)
{
	struct fl_limits lim;
	struct fl_buf buf;
	struct stat st;
	const char *name = strcmp(path, "-") ? path : "<stdin>";
	int fd = 0, rc = FL_OK;
	ssize_t k;

	fl_limits_default(&lim);
	if (strcmp(path, "-") && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fl_errno(err, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s", path);
	/* A regular file is mapped, and its tensors referenced, not copied. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= lim.total) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			if (fd)
				close(fd);
			madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
			return parse_image(b, m, (size_t)st.st_size, name, f, m, err);
		}
	}
	fl_buf_init(&buf, lim.total > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)lim.total);
	for (;;) {
		if ((rc = fl_buf_reserve(&buf, 1 << 20))) {
			fl_err(err, rc, rc == FL_ELIMIT ? "%s: larger than the limit" :
			    "%s: out of memory", name);
			break;
		}
		k = read(fd, buf.data + buf.len, buf.cap - buf.len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = fl_errno(err, FL_EIO, "%s: read failed", name);
			break;
		}
		if (k == 0)
			break;
		buf.len += (size_t)k;
	}
	if (fd)
		close(fd);
	if (!rc)
		rc = parse_image(b, buf.data, buf.len, name, f, NULL, err);
	fl_buf_release(&buf);
	return rc;
}

/* Writers. */

static int
out(int fd, const char *name, const void *p, size_t n, char *err)
{
	if (fl_write_full(fd, p, n) < 0)
		return fl_errno(err, FL_EIO, "%s: write failed", name);
	return FL_OK;
}

/* Meta for __metadata__: strings as they are, other values as JSON. */
static int
st_metadata(struct fl_buf *j, const struct fl_header *h)
{
	const struct fl_val *m = &h->meta;
	struct fl_arch a;
	struct fl_buf v;
	char spec[4096];
	int rc = FL_OK;

	rc |= fl_buf_addstr(j, "\"__metadata__\":{\"format\":\"pt\",\"flkit.kind\":");
	rc |= fl_json_str(j, h->kind, strlen(h->kind));
	if (!strcmp(h->kind, "model") && !fl_model_arch(h, &a, NULL) &&
	    !fl_arch_format(&a, spec, sizeof(spec))) {
		rc |= fl_buf_addstr(j, ",\"arch\":");
		rc |= fl_json_str(j, spec, strlen(spec));
	}
	fl_buf_init(&v, 0);
	for (size_t i = 0; m->type == FL_V_MAP && i < m->v.a.n; i++) {
		const struct fl_val *k = &m->v.a.items[2 * i], *x = &m->v.a.items[2 * i + 1];
		if (k->type != FL_V_STR || !strcmp(k->v.s.p, "format") ||
		    !strcmp(k->v.s.p, "flkit.kind") || !strcmp(k->v.s.p, "arch"))
			continue;
		rc |= fl_buf_addstr(j, ",");
		rc |= fl_json_str(j, k->v.s.p, k->v.s.len);
		rc |= fl_buf_addstr(j, ":");
		if (x->type == FL_V_STR) {
			rc |= fl_json_str(j, x->v.s.p, x->v.s.len);
		} else {
			v.len = 0;
			rc |= fl_val_json(&v, x);
			rc |= fl_json_str(j, (const char *)v.data, v.len);
		}
	}
	fl_buf_release(&v);
	rc |= fl_buf_addstr(j, "}");
	return rc ? FL_EFAIL : FL_OK;
}

int
fl_safetensors_write(int fd, const char *name, struct fl_reader *r,
    const struct fl_header *h, char *err)
{
	struct fl_buf j;
	unsigned char len8[8], *chunk = NULL;
	uint64_t off = 0, n;
	int rc = FL_OK;

	fl_buf_init(&j, FL_ST_MAX_HEADER);
	rc |= fl_buf_addstr(&j, "{");
	rc |= st_metadata(&j, h);
	for (size_t i = 0; !rc && i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		uint64_t nb = fl_tensor_nbytes(t);
		rc |= fl_buf_addstr(&j, ",");
		rc |= fl_json_str(&j, t->name, strlen(t->name));
		rc |= fl_buf_printf(&j, ":{\"dtype\":\"%s\",\"shape\":[",
		    st_dtype_name(t->dtype));
		for (int d = 0; d < t->ndim; d++)
			rc |= fl_buf_printf(&j, "%s%llu", d ? "," : "",
			    (unsigned long long)t->shape[d]);
		rc |= fl_buf_printf(&j, "],\"data_offsets\":[%llu,%llu]}",
		    (unsigned long long)off, (unsigned long long)(off + nb));
		off += nb;
	}
	rc |= fl_buf_addstr(&j, "}");
	while (!rc && j.len % 8)
		rc = fl_buf_addstr(&j, " ");
	if (rc) {
		rc = fl_err(err, FL_ELIMIT, "%s: the safetensors header is too large", name);
		goto done;
	}
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)((uint64_t)j.len >> (8 * i));
	if ((rc = out(fd, name, len8, 8, err)) || (rc = out(fd, name, j.data, j.len, err)))
		goto done;
	if (!(chunk = malloc(1 << 20))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < h->ntensors; i++) {
		if ((rc = fl_reader_begin(r, i, err)))
			goto done;
		for (n = fl_tensor_nbytes(&h->t[i]); n;) {
			size_t k = n > (1 << 20) ? 1 << 20 : (size_t)n;
			if ((rc = fl_reader_read(r, chunk, k, err)) ||
			    (rc = out(fd, name, chunk, k, err)))
				goto done;
			n -= k;
		}
	}
done:
	free(chunk);
	fl_buf_release(&j);
	return rc;
}

static void
put16(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static const char *
npy_descr(enum fl_dtype t)
{
	switch (t) {
	case FL_F64: return "<f8";
	case FL_F16: return "<f2";
	case FL_I8: return "|i1";
	case FL_U8: return "|u1";
	case FL_I32: return "<i4";
	case FL_I64: return "<i8";
	default: return "<f4";	/* f32, and bf16 widened */
	}
}

int
fl_npz_write(int fd, const char *name, struct fl_reader *r,
    const struct fl_header *h, char *err)
{
	struct fl_buf cd, hd;
	unsigned char rec[46], e[22];
	void *data = NULL;	/* a tensor's bytes, as stored or as f32 */
	uint64_t off = 0;
	int rc = FL_OK;

	fl_buf_init(&cd, 0);
	fl_buf_init(&hd, 0);
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct fl_tensor *t = &h->t[i];
		enum fl_dtype dt = t->dtype == FL_BF16 ? FL_F32 : t->dtype;
		uint64_t numel = fl_tensor_numel(t), nb = numel * fl_dtype_size(dt), size;
		size_t nl = strlen(t->name) + 4;
		uint32_t crc;

		hd.len = 0;
		/* magic, version 1.0, header length (patched below), header */
		rc = fl_buf_printf(&hd, "\x93NUMPY\x01%c%c%c{'descr': '%s', "
		    "'fortran_order': False, 'shape': (", 0, 0, 0, npy_descr(dt));
		for (int d = 0; !rc && d < t->ndim; d++)
			rc = fl_buf_printf(&hd, "%s%llu", d ? ", " : "",
			    (unsigned long long)t->shape[d]);
		rc |= fl_buf_addstr(&hd, t->ndim == 1 ? ",), }" : "), }");
		while (!rc && (hd.len + 1) % 64)
			rc = fl_buf_addstr(&hd, " ");
		rc |= fl_buf_addstr(&hd, "\n");
		if (rc) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto done;
		}
		put16(hd.data + 8, (uint32_t)(hd.len - 10));
		size = hd.len + nb;
		if (size >= 0xffffffffu || off + size + 30 + nl >= 0xffffffffu || nl > 0xffff) {
			rc = fl_err(err, FL_ELIMIT, "%s: tensor %s: an .npz over 4 GiB is not "
			    "supported", name, t->name);
			goto done;
		}
		free(data);
		if (!(data = malloc(nb ? (size_t)nb : 1))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto done;
		}
		if ((rc = dt == t->dtype ? fl_reader_tensor(r, i, data, err) :
		    fl_reader_tensor_f32(r, i, data, err)))
			goto done;
		crc = (uint32_t)crc32_z(crc32_z(0, hd.data, hd.len), data, (size_t)nb);
		/* Local header, then the central directory's record of it. */
		memset(rec, 0, sizeof(rec));
		put32(rec, ZIP_LOCAL);
		put16(rec + 4, 20);
		put16(rec + 12, 0x21);	/* 1980-01-01: reproducible output */
		put32(rec + 14, crc);
		put32(rec + 18, (uint32_t)size);
		put32(rec + 22, (uint32_t)size);
		put16(rec + 26, (uint32_t)nl);
		if ((rc = out(fd, name, rec, 30, err)) ||
		    (rc = out(fd, name, t->name, nl - 4, err)) ||
		    (rc = out(fd, name, ".npy", 4, err)) ||
		    (rc = out(fd, name, hd.data, hd.len, err)) ||
		    (rc = out(fd, name, data, (size_t)nb, err)))
			goto done;
		memset(rec, 0, sizeof(rec));
		put32(rec, ZIP_CENTRAL);
		put16(rec + 4, 20);
		put16(rec + 6, 20);
		put16(rec + 14, 0x21);
		put32(rec + 16, crc);
		put32(rec + 20, (uint32_t)size);
		put32(rec + 24, (uint32_t)size);
		put16(rec + 28, (uint32_t)nl);
		put32(rec + 38, 0644u << 16);
		put32(rec + 42, (uint32_t)off);
		if (fl_buf_add(&cd, rec, 46) || fl_buf_add(&cd, t->name, nl - 4) ||
		    fl_buf_add(&cd, ".npy", 4)) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto done;
		}
		off += 30 + nl + size;
	}
	if (h->ntensors > 0xffff || off + cd.len >= 0xffffffffu) {
		rc = fl_err(err, FL_ELIMIT, "%s: an .npz over 4 GiB or 65535 arrays is "
		    "not supported", name);
		goto done;
	}
	memset(e, 0, sizeof(e));
	put32(e, ZIP_END);
	put16(e + 8, (uint32_t)h->ntensors);
	put16(e + 10, (uint32_t)h->ntensors);
	put32(e + 12, (uint32_t)cd.len);
	put32(e + 16, (uint32_t)off);
	if ((rc = out(fd, name, cd.data, cd.len, err)))
		goto done;
	rc = out(fd, name, e, 22, err);
done:
	free(data);
	fl_buf_release(&cd);
	fl_buf_release(&hd);
	return rc;
}

/* Architectures of imported state dicts. */

/* "N.weight" or "N.bias": N, with *bias set; -1 otherwise. */
static long
sd_index(const char *s, int *bias)
{
	char *end;
	long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || n >= FL_MAX_LAYERS || (s[0] == '0' && end != s + 1))
		return -1;
	if (!strcmp(end, ".weight"))
		*bias = 0;
	else if (!strcmp(end, ".bias"))
		*bias = 1;
	else
		return -1;
	return n;
}

int
fl_arch_infer(const struct fl_header *h, struct fl_arch *a, int *assumed, char *err)
{
	int w[FL_MAX_LAYERS], bi[FL_MAX_LAYERS], prev = -1, width = -1;

	memset(a, 0, sizeof(*a));
	a->loss = FL_LOSS_SOFTMAX_CE;
	*assumed = 0;
	for (int i = 0; i < FL_MAX_LAYERS; i++)
		w[i] = bi[i] = -1;
	if (h->ntensors == 0)
		return fl_err(err, FL_EDATA, "no tensors");
	for (size_t i = 0; i < h->ntensors; i++) {
		int bias;
		long n = sd_index(h->t[i].name, &bias);
		if (n < 0)
			return fl_err(err, FL_EDATA, "tensor %s is not named N.weight or "
			    "N.bias", h->t[i].name);
		(bias ? bi : w)[n] = (int)i;
	}
	for (int n = 0; n < FL_MAX_LAYERS; n++) {
		const struct fl_tensor *tw, *tb;
		if (w[n] < 0 && bi[n] < 0)
			continue;
		if (w[n] < 0 || bi[n] < 0)
			return fl_err(err, FL_EDATA, "layer %d has a %s but no %s", n,
			    w[n] < 0 ? "bias" : "weight", w[n] < 0 ? "weight" : "bias");
		tw = &h->t[w[n]];
		tb = &h->t[bi[n]];
		if (tw->ndim != 2 || tb->ndim != 1 || tb->shape[0] != tw->shape[0] ||
		    tw->shape[0] == 0 || tw->shape[1] == 0 ||
		    tw->shape[0] > FL_MAX_WIDTH || tw->shape[1] > FL_MAX_WIDTH)
			return fl_err(err, FL_EDATA, "layer %d: weight and bias are not "
			    "a Linear layer's [out, in] and [out]", n);
		if (prev < 0 && n != 0)
			return fl_err(err, FL_EDATA, "the first Linear layer is %d, not 0", n);
		if (prev >= 0 && n - prev > 2)
			return fl_err(err, FL_EDATA, "%d layers without parameters between "
			    "layers %d and %d", n - prev - 1, prev, n);
		if (prev >= 0 && (int)tw->shape[1] != width)
			return fl_err(err, FL_EDATA, "layer %d takes %llu inputs, layer %d "
			    "gives %d", n, (unsigned long long)tw->shape[1], prev, width);
		if (prev >= 0 && n - prev == 2) {
			a->layer[a->nlayers].type = FL_RELU;
			a->layer[a->nlayers].in = a->layer[a->nlayers].out = width;
			a->nlayers++;
			(*assumed)++;
		}
		a->layer[a->nlayers].type = FL_LINEAR;
		a->layer[a->nlayers].in = (int)tw->shape[1];
		a->layer[a->nlayers].out = width = (int)tw->shape[0];
		a->nlayers++;
		prev = n;
	}
	return FL_OK;
}

int
fl_arch_match(struct fl_blobmem *b, const struct fl_arch *a, char *err)
{
	struct fl_tensor *t;
	unsigned char **d;
	size_t k = 0, want = 0;
	char nm[32], got[128], exp[128];

	for (int i = 0; i < a->nlayers; i++)
		want += a->layer[i].type == FL_LINEAR ? 2 : 0;
	if (!(t = calloc(want + 1, sizeof(*t))) || !(d = calloc(want + 1, sizeof(*d)))) {
		free(t);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (int i = 0; i < a->nlayers; i++) {
		const struct fl_layer *l = &a->layer[i];
		for (int bias = 0; l->type == FL_LINEAR && bias < 2; bias++) {
			struct fl_tensor w = { .ndim = bias ? 1 : 2 };
			int j;
			w.shape[0] = (uint64_t)l->out;
			w.shape[1] = (uint64_t)l->in;
			snprintf(nm, sizeof(nm), "%d.%s", i, bias ? "bias" : "weight");
			fl_shape_str(&w, exp, sizeof(exp));
			if ((j = fl_header_find(&b->h, nm)) < 0) {
				fl_err(err, FL_EDATA, "no tensor %s %s", nm, exp);
				goto fail;
			}
			fl_shape_str(&b->h.t[j], got, sizeof(got));
			if (strcmp(got, exp)) {
				fl_err(err, FL_EDATA, "tensor %s has shape %s, expected %s",
				    nm, got, exp);
				goto fail;
			}
			if (!fl_dtype_is_float(b->h.t[j].dtype)) {
				fl_err(err, FL_EDATA, "tensor %s is %s, not a float type", nm,
				    fl_dtype_name(b->h.t[j].dtype));
				goto fail;
			}
			t[k] = b->h.t[j];
			d[k++] = b->data[j];
		}
	}
	if (b->h.ntensors != want) {
		for (size_t j = 0; j < b->h.ntensors; j++) {
			size_t i;
			for (i = 0; i < k && strcmp(t[i].name, b->h.t[j].name); i++)
				;
			if (i == k) {
				fl_err(err, FL_EDATA, "tensor %s is not in the arch",
				    b->h.t[j].name);
				goto fail;
			}
		}
	}
	memcpy(b->h.t, t, want * sizeof(*t));
	memcpy(b->data, d, want * sizeof(*d));
	free(t);
	free(d);
	return FL_OK;
fail:
	free(t);
	free(d);
	return FL_EDATA;
}
