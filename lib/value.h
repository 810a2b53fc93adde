/* value.h: a small tree of msgpack-like values for blob meta and protocol
 * messages, so that keys a tool does not know survive a round trip. */
#ifndef FL_VALUE_H
#define FL_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "util.h"

enum fl_vtype {
	FL_V_NIL,
	FL_V_BOOL,
	FL_V_INT,	/* negative integers */
	FL_V_UINT,	/* non-negative integers */
	FL_V_FLOAT,
	FL_V_STR,
	FL_V_BIN,
	FL_V_ARRAY,
	FL_V_MAP,	/* items holds key, value, key, value ... */
};

struct fl_val {
	enum fl_vtype type;
	union {
		int b;
		int64_t i;
		uint64_t u;
		double f;
		struct {
			char *p;	/* NUL-terminated copy; len excludes it */
			size_t len;
		} s;
		struct {
			struct fl_val *items;
			size_t n;	/* items; pairs for a map */
			size_t cap;
		} a;
	} v;
};

#define FL_VAL_MAXDEPTH 32

/* Constructors fill *v; the caller owns the result (fl_val_release). */
void fl_val_nil(struct fl_val *v);
void fl_val_map(struct fl_val *v);
void fl_val_array(struct fl_val *v);
int fl_val_str(struct fl_val *v, const char *s);
int fl_val_strn(struct fl_val *v, const char *s, size_t n);
void fl_val_uint(struct fl_val *v, uint64_t u);
void fl_val_int(struct fl_val *v, int64_t i);	/* stored as UINT when >= 0 */
void fl_val_float(struct fl_val *v, double f);
void fl_val_bool(struct fl_val *v, int b);
void fl_val_release(struct fl_val *v);
int fl_val_copy(struct fl_val *dst, const struct fl_val *src);

/* Arrays and maps take ownership of the value appended (moved in). */
int fl_array_push(struct fl_val *a, struct fl_val *item);
const struct fl_val *fl_map_get(const struct fl_val *m, const char *key);
int fl_map_set(struct fl_val *m, const char *key, struct fl_val *val);
int fl_map_set_str(struct fl_val *m, const char *key, const char *s);
int fl_map_set_uint(struct fl_val *m, const char *key, uint64_t u);
int fl_map_set_float(struct fl_val *m, const char *key, double f);
void fl_map_del(struct fl_val *m, const char *key);

/* Typed reads: 0 when v has the type (numbers convert), -1 otherwise. */
int fl_val_get_double(const struct fl_val *v, double *out);
int fl_val_get_u64(const struct fl_val *v, uint64_t *out);
const char *fl_val_get_str(const struct fl_val *v);	/* NULL if not a string */
const char *fl_map_get_str(const struct fl_val *m, const char *key);

/* msgpack: pack with msgpack-c; decode from a checked object tree. */
int fl_val_pack(msgpack_packer *pk, const struct fl_val *v);
int fl_val_from_msgpack(struct fl_val *v, const msgpack_object *o, int depth);

/*
 * Check that buf holds exactly one well-formed msgpack value whose
 * containers each declare no more items than bytes remain and nest no
 * deeper than maxdepth, before msgpack-c allocates anything for it.
 */
int fl_mp_check(const unsigned char *buf, size_t len, int maxdepth, char *err);
/* Check then decode one msgpack value from buf into v. */
int fl_val_unpack(struct fl_val *v, const void *buf, size_t len, char *err);
/* Encode v as msgpack, appended to b. */
int fl_val_encode(struct fl_buf *b, const struct fl_val *v);

/* JSON text of v appended to b (NaN and Inf become null). */
int fl_val_json(struct fl_buf *b, const struct fl_val *v);
int fl_json_str(struct fl_buf *b, const char *s, size_t n);

#endif
