/* dtype.c: tensor element types, conversions between them, byte shuffling. */
#include <math.h>
#include <string.h>

#include "blob.h"

static const struct {
	const char *name;
	size_t size;
	int is_float;
} dtypes[FL_NDTYPES] = {
	[FL_F32] = { "f32", 4, 1 },
	[FL_F64] = { "f64", 8, 1 },
	[FL_F16] = { "f16", 2, 1 },
	[FL_BF16] = { "bf16", 2, 1 },
	[FL_I8] = { "i8", 1, 0 },
	[FL_U8] = { "u8", 1, 0 },
	[FL_I32] = { "i32", 4, 0 },
	[FL_I64] = { "i64", 8, 0 },
};

size_t
fl_dtype_size(enum fl_dtype t)
{
	return (unsigned)t < FL_NDTYPES ? dtypes[t].size : 0;
}

const char *
fl_dtype_name(enum fl_dtype t)
{
	return (unsigned)t < FL_NDTYPES ? dtypes[t].name : "?";
}

int
fl_dtype_is_float(enum fl_dtype t)
{
	return (unsigned)t < FL_NDTYPES && dtypes[t].is_float;
}

uint64_t
fl_shape_bytes(enum fl_dtype t, int ndim, const uint64_t *shape)
{
	uint64_t n = fl_dtype_size(t);

	for (int i = 0; i < ndim; i++) {
		if (shape[i] && n > UINT64_MAX / shape[i])
			return UINT64_MAX;
		n *= shape[i];
	}
	return n;
}

int
fl_dtype_parse(const char *s, enum fl_dtype *t)
{
	for (int i = 0; i < FL_NDTYPES; i++) {
		if (!strcmp(s, dtypes[i].name)) {
			*t = (enum fl_dtype)i;
			return FL_OK;
		}
	}
	return FL_EUSAGE;
}

float
fl_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f,
	    m = h & 0x3ff, bits;
	float f;

	if (e == 0) {
		f = ldexpf((float)m, -24);	/* zero and subnormals */
		return sign ? -f : f;
	}
	if (e == 31)
		bits = sign | 0x7f800000 | (m << 13);
	else
		bits = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t
fl_float_to_half(float f)
{
	uint32_t x, sign, mant;
	int e;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	e = (int)((x >> 23) & 0xff);
	mant = x & 0x7fffff;
	if (e == 255)	/* Inf, NaN (kept quiet) */
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
	e = e - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		/* subnormal half: shift in the implicit bit, round to even */
		if (e < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		int shift = 14 - e;
		uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1),
		    mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
	uint32_t rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;	/* may carry into the exponent, which is right */
	return (uint16_t)h;
}

float
fl_bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

uint16_t
fl_float_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);	/* quiet NaN */
	x += 0x7fff + ((x >> 16) & 1);	/* round to nearest even */
	return (uint16_t)(x >> 16);
}

static double
load(const void *p, enum fl_dtype t, uint64_t i)
{
	const unsigned char *b = (const unsigned char *)p + i * dtypes[t].size;
	uint16_t h;
	float f;
	double d;
	int32_t i32;
	int64_t i64;

	switch (t) {
	case FL_F32: memcpy(&f, b, 4); return f;
	case FL_F64: memcpy(&d, b, 8); return d;
	case FL_F16: memcpy(&h, b, 2); return fl_half_to_float(h);
	case FL_BF16: memcpy(&h, b, 2); return fl_bf16_to_float(h);
	case FL_I8: return (int8_t)b[0];
	case FL_U8: return b[0];
	case FL_I32: memcpy(&i32, b, 4); return i32;
	case FL_I64: memcpy(&i64, b, 8); return (double)i64;
	default: return 0;
	}
}

static double
clamp(double v, double lo, double hi)
{
	if (v != v)
		return 0;
	return v < lo ? lo : v > hi ? hi : v;
}

static void
store(void *p, enum fl_dtype t, uint64_t i, double v)
{
	unsigned char *b = (unsigned char *)p + i * dtypes[t].size;
	uint16_t h;
	float f;
	int32_t i32;
	int64_t i64;

	switch (t) {
	case FL_F32: f = (float)v; memcpy(b, &f, 4); break;
	case FL_F64: memcpy(b, &v, 8); break;
	case FL_F16: h = fl_float_to_half((float)v); memcpy(b, &h, 2); break;
	case FL_BF16: h = fl_float_to_bf16((float)v); memcpy(b, &h, 2); break;
	case FL_I8: b[0] = (unsigned char)(int8_t)clamp(nearbyint(v), -128, 127); break;
	case FL_U8: b[0] = (unsigned char)clamp(nearbyint(v), 0, 255); break;
	case FL_I32:
		i32 = (int32_t)clamp(nearbyint(v), INT32_MIN, INT32_MAX);
		memcpy(b, &i32, 4);
		break;
	case FL_I64:
		i64 = (int64_t)clamp(nearbyint(v), -0x1p63, 0x1p63 - 1024);
		memcpy(b, &i64, 8);
		break;
	default: break;
	}
}

int
fl_convert(void *dst, enum fl_dtype dt, const void *src, enum fl_dtype st,
    uint64_t n)
{
	uint64_t i;

	if ((unsigned)dt >= FL_NDTYPES || (unsigned)st >= FL_NDTYPES)
		return FL_EUSAGE;
	if (dt == st) {
		memmove(dst, src, n * dtypes[dt].size);
		return FL_OK;
	}
	/* The common cases, in tight loops. */
	if (dt == FL_F32 && st == FL_F16) {
		const uint16_t *s = src;
		float *d = dst;
		for (i = 0; i < n; i++)
			d[i] = fl_half_to_float(s[i]);
		return FL_OK;
	}
	if (dt == FL_F32 && st == FL_BF16) {
		const uint16_t *s = src;
		float *d = dst;
		for (i = 0; i < n; i++)
			d[i] = fl_bf16_to_float(s[i]);
		return FL_OK;
	}
	if (dt == FL_F16 && st == FL_F32) {
		const float *s = src;
		uint16_t *d = dst;
		for (i = 0; i < n; i++)
			d[i] = fl_float_to_half(s[i]);
		return FL_OK;
	}
	if (dt == FL_BF16 && st == FL_F32) {
		const float *s = src;
		uint16_t *d = dst;
		for (i = 0; i < n; i++)
			d[i] = fl_float_to_bf16(s[i]);
		return FL_OK;
	}
	/* Overlap is allowed only when dst's elements are no larger. */
	if (dtypes[dt].size <= dtypes[st].size) {
		for (i = 0; i < n; i++)
			store(dst, dt, i, load(src, st, i));
	} else {
		for (i = n; i-- > 0;)
			store(dst, dt, i, load(src, st, i));
	}
	return FL_OK;
}

/*
 * In tiles of elements, so that the interleaved side of the copy stays in
 * cache and each byte plane is read or written sequentially: one pass over
 * memory instead of one per byte of an element.
 */
#define SHUFFLE_TILE 4096

void
fl_shuffle(unsigned char *dst, const unsigned char *src, uint64_t n, size_t k)
{
	for (uint64_t t = 0; t < n; t += SHUFFLE_TILE) {
		uint64_t e = n - t < SHUFFLE_TILE ? n : t + SHUFFLE_TILE;
		for (size_t j = 0; j < k; j++)
			for (uint64_t i = t; i < e; i++)
				dst[j * n + i] = src[i * k + j];
	}
}

void
fl_unshuffle(unsigned char *dst, const unsigned char *src, uint64_t n, size_t k)
{
	for (uint64_t t = 0; t < n; t += SHUFFLE_TILE) {
		uint64_t e = n - t < SHUFFLE_TILE ? n : t + SHUFFLE_TILE;
		for (size_t j = 0; j < k; j++)
			for (uint64_t i = t; i < e; i++)
				dst[i * k + j] = src[j * n + i];
	}
}
