/* value.c: the value tree, its msgpack coding and its JSON form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

void
fl_val_nil(struct fl_val *v)
{
	memset(v, 0, sizeof(*v));
	v->type = FL_V_NIL;
}

void
fl_val_map(struct fl_val *v)
{
	fl_val_nil(v);
	v->type = FL_V_MAP;
}

void
fl_val_array(struct fl_val *v)
{
	fl_val_nil(v);
	v->type = FL_V_ARRAY;
}

int
fl_val_strn(struct fl_val *v, const char *s, size_t n)
{
	fl_val_nil(v);
	if (!(v->v.s.p = malloc(n + 1)))
		return FL_EFAIL;
	if (n)	/* msgpack-c gives an empty string a null pointer */
		memcpy(v->v.s.p, s, n);
	v->v.s.p[n] = 0;
	v->v.s.len = n;
	v->type = FL_V_STR;
	return FL_OK;
}

int
fl_val_str(struct fl_val *v, const char *s)
{
	return fl_val_strn(v, s, strlen(s));
}

void
fl_val_uint(struct fl_val *v, uint64_t u)
{
	fl_val_nil(v);
	v->type = FL_V_UINT;
	v->v.u = u;
}

void
fl_val_int(struct fl_val *v, int64_t i)
{
	fl_val_nil(v);
	if (i >= 0) {
		v->type = FL_V_UINT;
		v->v.u = (uint64_t)i;
	} else {
		v->type = FL_V_INT;
		v->v.i = i;
	}
}

void
fl_val_float(struct fl_val *v, double f)
{
	fl_val_nil(v);
	v->type = FL_V_FLOAT;
	v->v.f = f;
}

void
fl_val_bool(struct fl_val *v, int b)
{
	fl_val_nil(v);
	v->type = FL_V_BOOL;
	v->v.b = !!b;
}

void
fl_val_release(struct fl_val *v)
{
	size_t i, n;

	switch (v->type) {
	case FL_V_STR:
	case FL_V_BIN:
		free(v->v.s.p);
		break;
	case FL_V_ARRAY:
	case FL_V_MAP:
		n = v->type == FL_V_MAP ? 2 * v->v.a.n : v->v.a.n;
		for (i = 0; i < n; i++)
			fl_val_release(&v->v.a.items[i]);
		free(v->v.a.items);
		break;
	default:
		break;
	}
	fl_val_nil(v);
}

int
fl_val_copy(struct fl_val *dst, const struct fl_val *src)
{
	size_t i, n;

	*dst = *src;
	switch (src->type) {
	case FL_V_STR:
	case FL_V_BIN:
		if (fl_val_strn(dst, src->v.s.p, src->v.s.len))
			return FL_EFAIL;
		dst->type = src->type;
		return FL_OK;
	case FL_V_ARRAY:
	case FL_V_MAP:
		n = src->type == FL_V_MAP ? 2 * src->v.a.n : src->v.a.n;
		dst->v.a.cap = n;
		dst->v.a.items = n ? calloc(n, sizeof(struct fl_val)) : NULL;
		if (n && !dst->v.a.items) {
			fl_val_nil(dst);
			return FL_EFAIL;
		}
		for (i = 0; i < n; i++) {
			if (fl_val_copy(&dst->v.a.items[i], &src->v.a.items[i])) {
				dst->v.a.n = src->type == FL_V_MAP ? i / 2 : i;
				if (src->type == FL_V_MAP && i % 2)
					fl_val_release(&dst->v.a.items[i - 1]);
				fl_val_release(dst);
				return FL_EFAIL;
			}
		}
		return FL_OK;
	default:
		return FL_OK;
	}
}

static int
grow(struct fl_val *a, size_t slots)
{
	size_t used = a->type == FL_V_MAP ? 2 * a->v.a.n : a->v.a.n;
	size_t cap;
	struct fl_val *p;

	if (used + slots <= a->v.a.cap)
		return FL_OK;
	cap = a->v.a.cap ? 2 * a->v.a.cap : 8;
	while (cap < used + slots)
		cap *= 2;
	if (!(p = realloc(a->v.a.items, cap * sizeof(*p))))
		return FL_EFAIL;
	a->v.a.items = p;
	a->v.a.cap = cap;
	return FL_OK;
}

int
fl_array_push(struct fl_val *a, struct fl_val *item)
{
	if (grow(a, 1))
		return FL_EFAIL;
	a->v.a.items[a->v.a.n++] = *item;
	fl_val_nil(item);
	return FL_OK;
}

static struct fl_val *
map_find(const struct fl_val *m, const char *key)
{
	size_t i, n = strlen(key);

	if (!m || m->type != FL_V_MAP)
		return NULL;
	for (i = 0; i < m->v.a.n; i++) {
		struct fl_val *k = &m->v.a.items[2 * i];
		if (k->type == FL_V_STR && k->v.s.len == n && !memcmp(k->v.s.p, key, n))
			return &m->v.a.items[2 * i + 1];
	}
	return NULL;
}

const struct fl_val *
fl_map_get(const struct fl_val *m, const char *key)
{
	return map_find(m, key);
}

int
fl_map_set(struct fl_val *m, const char *key, struct fl_val *val)
{
	struct fl_val *old;

	if (m->type != FL_V_MAP)
		return FL_EFAIL;
	if ((old = map_find(m, key))) {
		fl_val_release(old);
		*old = *val;
		fl_val_nil(val);
		return FL_OK;
	}
	if (grow(m, 2))
		return FL_EFAIL;
	if (fl_val_str(&m->v.a.items[2 * m->v.a.n], key))
		return FL_EFAIL;
	m->v.a.items[2 * m->v.a.n + 1] = *val;
	m->v.a.n++;
	fl_val_nil(val);
	return FL_OK;
}

int
fl_map_set_str(struct fl_val *m, const char *key, const char *s)
{
	struct fl_val v;

	if (fl_val_str(&v, s))
		return FL_EFAIL;
	if (fl_map_set(m, key, &v)) {
		fl_val_release(&v);
		return FL_EFAIL;
	}
	return FL_OK;
}

int
fl_map_set_uint(struct fl_val *m, const char *key, uint64_t u)
{
	struct fl_val v;

	fl_val_uint(&v, u);
	return fl_map_set(m, key, &v);
}

int
fl_map_set_float(struct fl_val *m, const char *key, double f)
{
	struct fl_val v;

	fl_val_float(&v, f);
	return fl_map_set(m, key, &v);
}

void
fl_map_del(struct fl_val *m, const char *key)
{
	struct fl_val *v = map_find(m, key);
	size_t i;

	if (!v)
		return;
	i = (size_t)(v - m->v.a.items) - 1;
	fl_val_release(&m->v.a.items[i]);
	fl_val_release(&m->v.a.items[i + 1]);
	memmove(&m->v.a.items[i], &m->v.a.items[i + 2],
	    (2 * m->v.a.n - i - 2) * sizeof(struct fl_val));
	m->v.a.n--;
}

int
fl_val_get_double(const struct fl_val *v, double *out)
{
	if (!v)
		return -1;
	switch (v->type) {
	case FL_V_FLOAT: *out = v->v.f; return 0;
	case FL_V_UINT: *out = (double)v->v.u; return 0;
	case FL_V_INT: *out = (double)v->v.i; return 0;
	default: return -1;
	}
}

int
fl_val_get_u64(const struct fl_val *v, uint64_t *out)
{
	if (!v)
		return -1;
	if (v->type == FL_V_UINT) {
		*out = v->v.u;
		return 0;
	}
	if (v->type == FL_V_FLOAT && v->v.f >= 0 && v->v.f < 0x1p64 &&
	    v->v.f == floor(v->v.f)) {
		*out = (uint64_t)v->v.f;
		return 0;
	}
	return -1;
}

const char *
fl_val_get_str(const struct fl_val *v)
{
	return v && v->type == FL_V_STR ? v->v.s.p : NULL;
}

const char *
fl_map_get_str(const struct fl_val *m, const char *key)
{
	return fl_val_get_str(fl_map_get(m, key));
}

int
fl_val_pack(msgpack_packer *pk, const struct fl_val *v)
{
	size_t i;
	int rc = 0;

	switch (v->type) {
	case FL_V_NIL: return msgpack_pack_nil(pk);
	case FL_V_BOOL: return v->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case FL_V_INT: return msgpack_pack_int64(pk, v->v.i);
	case FL_V_UINT: return msgpack_pack_uint64(pk, v->v.u);
	case FL_V_FLOAT: return msgpack_pack_double(pk, v->v.f);
	case FL_V_STR:
		return msgpack_pack_str(pk, v->v.s.len) ||
		    msgpack_pack_str_body(pk, v->v.s.p, v->v.s.len);
	case FL_V_BIN:
		return msgpack_pack_bin(pk, v->v.s.len) ||
		    msgpack_pack_bin_body(pk, v->v.s.p, v->v.s.len);
	case FL_V_ARRAY:
		rc = msgpack_pack_array(pk, v->v.a.n);
		for (i = 0; !rc && i < v->v.a.n; i++)
			rc = fl_val_pack(pk, &v->v.a.items[i]);
		return rc;
	case FL_V_MAP:
		rc = msgpack_pack_map(pk, v->v.a.n);
		for (i = 0; !rc && i < 2 * v->v.a.n; i++)
			rc = fl_val_pack(pk, &v->v.a.items[i]);
		return rc;
	}
	return -1;
}

int
fl_val_from_msgpack(struct fl_val *v, const msgpack_object *o, int depth)
{
	uint32_t i;
	struct fl_val item;

	fl_val_nil(v);
	if (depth > FL_VAL_MAXDEPTH)
		return FL_ELIMIT;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return FL_OK;
	case MSGPACK_OBJECT_BOOLEAN:
		fl_val_bool(v, o->via.boolean);
		return FL_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fl_val_uint(v, o->via.u64);
		return FL_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fl_val_int(v, o->via.i64);
		return FL_OK;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		fl_val_float(v, o->via.f64);
		return FL_OK;
	case MSGPACK_OBJECT_STR:
		return fl_val_strn(v, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		if (fl_val_strn(v, o->via.bin.ptr, o->via.bin.size))
			return FL_EFAIL;
		v->type = FL_V_BIN;
		return FL_OK;
	case MSGPACK_OBJECT_ARRAY:
		fl_val_array(v);
		for (i = 0; i < o->via.array.size; i++) {
			int rc = fl_val_from_msgpack(&item, &o->via.array.ptr[i], depth + 1);
			if (rc || fl_array_push(v, &item)) {
				fl_val_release(&item);
				fl_val_release(v);
				return rc ? rc : FL_EFAIL;
			}
		}
		return FL_OK;
	case MSGPACK_OBJECT_MAP:
		fl_val_map(v);
		for (i = 0; i < o->via.map.size; i++) {
			struct fl_val k;
			int rc;

			if (grow(v, 2)) {
				fl_val_release(v);
				return FL_EFAIL;
			}
			rc = fl_val_from_msgpack(&k, &o->via.map.ptr[i].key, depth + 1);
			if (rc) {
				fl_val_release(v);
				return rc;
			}
			rc = fl_val_from_msgpack(&item, &o->via.map.ptr[i].val, depth + 1);
			if (rc) {
				fl_val_release(&k);
				fl_val_release(v);
				return rc;
			}
			v->v.a.items[2 * v->v.a.n] = k;
			v->v.a.items[2 * v->v.a.n + 1] = item;
			v->v.a.n++;
		}
		return FL_OK;
	default:
		return FL_EBLOB;	/* ext types are not used by flkit */
	}
}

static uint64_t
be(const unsigned char *p, int n)
{
	uint64_t x = 0;

	for (int i = 0; i < n; i++)
		x = x << 8 | p[i];
	return x;
}

/*
 * Walk one msgpack value at buf[*pos]; pending counts the values still to
 * be read so that no container can claim more items than bytes remain.
 */
static int
mp_walk(const unsigned char *buf, size_t len, size_t *pos, int depth,
    int maxdepth, char *err)
{
	size_t p = *pos, skip = 0;
	uint64_t items = 0;
	unsigned char c;
	int lenbytes = 0;

	if (depth > maxdepth)
		return fl_err(err, FL_ELIMIT, "nested deeper than %d", maxdepth);
	if (p >= len)
		return fl_err(err, FL_EBLOB, "truncated msgpack value");
	c = buf[p++];
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
		/* fixint, nil, bool */
	} else if (c >= 0x80 && c <= 0x8f) {
		items = 2 * (uint64_t)(c & 0x0f);
	} else if (c >= 0x90 && c <= 0x9f) {
		items = c & 0x0f;
	} else if (c >= 0xa0 && c <= 0xbf) {
		skip = c & 0x1f;
	} else {
		switch (c) {
		case 0xc4: case 0xd9: lenbytes = 1; break;
		case 0xc5: case 0xda: lenbytes = 2; break;
		case 0xc6: case 0xdb: lenbytes = 4; break;
		case 0xcc: case 0xd0: skip = 1; break;
		case 0xcd: case 0xd1: skip = 2; break;
		case 0xca: case 0xce: case 0xd2: skip = 4; break;
		case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
		case 0xdc: case 0xde:
			if (len - p < 2)
				return fl_err(err, FL_EBLOB, "truncated msgpack value");
			items = be(buf + p, 2) * (c == 0xde ? 2 : 1);
			p += 2;
			break;
		case 0xdd: case 0xdf:
			if (len - p < 4)
				return fl_err(err, FL_EBLOB, "truncated msgpack value");
			items = be(buf + p, 4) * (c == 0xdf ? 2 : 1);
			p += 4;
			break;
		default:
			return fl_err(err, FL_EBLOB, "unsupported msgpack type 0x%02x", c);
		}
	}
	if (lenbytes) {
		if (len - p < (size_t)lenbytes)
			return fl_err(err, FL_EBLOB, "truncated msgpack value");
		skip = be(buf + p, lenbytes);
		p += (size_t)lenbytes;
	}
	if (skip > len - p)
		return fl_err(err, FL_EBLOB, "truncated msgpack value");
	p += skip;
	if (items > len - p)
		return fl_err(err, FL_EBLOB, "msgpack container declares %llu items "
		    "in %zu bytes", (unsigned long long)items, len - p);
	*pos = p;
	for (uint64_t i = 0; i < items; i++) {
		int rc = mp_walk(buf, len, pos, depth + 1, maxdepth, err);
		if (rc)
			return rc;
	}
	return FL_OK;
}

int
fl_mp_check(const unsigned char *buf, size_t len, int maxdepth, char *err)
{
	size_t pos = 0;
	int rc = mp_walk(buf, len, &pos, 0, maxdepth, err);

	if (rc)
		return rc;
	if (pos != len)
		return fl_err(err, FL_EBLOB, "%zu stray bytes after msgpack value",
		    len - pos);
	return FL_OK;
}

int
fl_val_unpack(struct fl_val *v, const void *buf, size_t len, char *err)
{
	msgpack_unpacked u;
	size_t off = 0;
	int rc;

	fl_val_nil(v);
	if ((rc = fl_mp_check(buf, len, FL_VAL_MAXDEPTH, err)))
		return rc;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&u);
		return fl_err(err, FL_EBLOB, "malformed msgpack");
	}
	rc = fl_val_from_msgpack(v, &u.data, 0);
	msgpack_unpacked_destroy(&u);
	if (rc)
		return fl_err(err, rc, rc == FL_EBLOB ? "msgpack extension types are not allowed" :
		    rc == FL_ELIMIT ? "msgpack nested too deep" : "out of memory");
	return FL_OK;
}

static int
buf_write(void *data, const char *p, size_t n)
{
	return fl_buf_add(data, p, n) ? -1 : 0;
}

int
fl_val_encode(struct fl_buf *b, const struct fl_val *v)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, b, buf_write);
	return fl_val_pack(&pk, v) ? FL_ELIMIT : FL_OK;
}

int
fl_json_str(struct fl_buf *b, const char *s, size_t n)
{
	int rc = fl_buf_add(b, "\"", 1);

	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			rc = fl_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			rc = fl_buf_addstr(b, "\\n");
		else if (c == '\t')
			rc = fl_buf_addstr(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			rc = fl_buf_printf(b, "\\u%04x", c);
		else
			rc = fl_buf_add(b, &s[i], 1);
	}
	return rc ? rc : fl_buf_add(b, "\"", 1);
}

int
fl_val_json(struct fl_buf *b, const struct fl_val *v)
{
	size_t i;
	int rc = FL_OK;

	switch (v->type) {
	case FL_V_NIL: return fl_buf_addstr(b, "null");
	case FL_V_BOOL: return fl_buf_addstr(b, v->v.b ? "true" : "false");
	case FL_V_INT: return fl_buf_printf(b, "%lld", (long long)v->v.i);
	case FL_V_UINT: return fl_buf_printf(b, "%llu", (unsigned long long)v->v.u);
	case FL_V_FLOAT: {
		char num[32];
		if (!isfinite(v->v.f))
			return fl_buf_addstr(b, "null");
		/* The shortest of %.15g..%.17g that reads back the same. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(num, sizeof(num), "%.*g", prec, v->v.f);
			if (strtod(num, NULL) == v->v.f)
				break;
		}
		return fl_buf_addstr(b, num);
	}
	case FL_V_STR: return fl_json_str(b, v->v.s.p, v->v.s.len);
	case FL_V_BIN: return fl_buf_printf(b, "\"<%zu bytes>\"", v->v.s.len);
	case FL_V_ARRAY:
		rc = fl_buf_addstr(b, "[");
		for (i = 0; !rc && i < v->v.a.n; i++) {
			if (i)
				rc = fl_buf_addstr(b, ",");
			if (!rc)
				rc = fl_val_json(b, &v->v.a.items[i]);
		}
		return rc ? rc : fl_buf_addstr(b, "]");
	case FL_V_MAP:
		rc = fl_buf_addstr(b, "{");
		for (i = 0; !rc && i < v->v.a.n; i++) {
			const struct fl_val *k = &v->v.a.items[2 * i];
			if (i)
				rc = fl_buf_addstr(b, ",");
			if (rc)
				break;
			if (k->type == FL_V_STR) {
				rc = fl_json_str(b, k->v.s.p, k->v.s.len);
			} else if (k->type == FL_V_ARRAY || k->type == FL_V_MAP) {
				/* Not as JSON text: keys in keys would be escaped
				 * again at each level, doubling each time. */
				rc = fl_buf_addstr(b, k->type == FL_V_MAP ? "\"<map>\"" :
				    "\"<array>\"");
			} else {
				struct fl_buf kb;
				fl_buf_init(&kb, 0);
				rc = fl_val_json(&kb, k);
				if (!rc)
					rc = fl_json_str(b, (char *)kb.data, kb.len);
				fl_buf_release(&kb);
			}
			if (!rc)
				rc = fl_buf_addstr(b, ":");
			if (!rc)
				rc = fl_val_json(b, &v->v.a.items[2 * i + 1]);
		}
		return rc ? rc : fl_buf_addstr(b, "}");
	}
	return FL_EFAIL;
}
