/* blob.h: the FLB v1 container (fl-blob(5)): a msgpack header, then
 * 64-byte-aligned tensors, read and written a tensor at a time. */
#ifndef FL_BLOB_H
#define FL_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "value.h"

#define FL_MAGIC "\x89" "FLB\r\n\x1a\n"
#define FL_MAGIC_LEN 8
#define FL_ALIGN 64
#define FL_MAX_DIMS 8
#define FL_MAX_NAME 1024
/* Deflate turns a byte into at most this many (a 258-byte match in two
 * bits), so a compressed size bounds the decoded size it may declare. */
#define FL_DEFLATE_MAX_RATIO 1032

enum fl_dtype {
	FL_F32, FL_F64, FL_F16, FL_BF16, FL_I8, FL_U8, FL_I32, FL_I64,
	FL_NDTYPES
};

enum fl_enc {
	FL_RAW,
	FL_ZLIB,	/* byte-shuffled, then deflated (zlib format) */
};

size_t fl_dtype_size(enum fl_dtype t);
const char *fl_dtype_name(enum fl_dtype t);
int fl_dtype_parse(const char *s, enum fl_dtype *t);
int fl_dtype_is_float(enum fl_dtype t);
/* Bytes of a tensor of this dtype and shape, or UINT64_MAX on overflow. */
uint64_t fl_shape_bytes(enum fl_dtype t, int ndim, const uint64_t *shape);

struct fl_tensor {
	char *name;
	enum fl_dtype dtype;
	int ndim;
	uint64_t shape[FL_MAX_DIMS];
	enum fl_enc enc;
	uint64_t size;		/* stored bytes, before padding */
	uint32_t crc;		/* crc32 of the stored bytes */
	uint64_t offset;	/* of the stored bytes, from the blob's start */
};

uint64_t fl_tensor_numel(const struct fl_tensor *t);
uint64_t fl_tensor_nbytes(const struct fl_tensor *t);	/* decoded bytes */
/* "[128,784]" into out. */
void fl_shape_str(const struct fl_tensor *t, char *out, size_t outlen);

struct fl_header {
	char *kind;
	struct fl_val meta;	/* a map; keys a tool doesn't know are kept */
	size_t ntensors;
	struct fl_tensor *t;
	uint64_t hlen;		/* header bytes */
	uint64_t data_off;	/* first tensor's offset from the blob's start */
	uint64_t total;		/* the whole blob's bytes */
};

/* Init sets kind and an empty meta map; release frees everything. */
int fl_header_init(struct fl_header *h, const char *kind);
void fl_header_release(struct fl_header *h);
int fl_header_copy(struct fl_header *dst, const struct fl_header *src);
/* Append a tensor declaration; returns its index or -1 (out of memory). */
int fl_header_add(struct fl_header *h, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape);
/* Index of the tensor named name, or -1. */
int fl_header_find(const struct fl_header *h, const char *name);
/* Offsets and total from the tensors' sizes (done by readers and writers). */
void fl_header_layout(struct fl_header *h);
uint64_t fl_header_nparams(const struct fl_header *h);

/* Bounds on what a reader accepts before it allocates anything. */
struct fl_limits {
	uint64_t header;	/* header bytes */
	uint64_t tensor;	/* one tensor's decoded bytes */
	uint64_t total;		/* one blob's bytes */
	uint64_t ntensors;
};
/* Defaults (64 MiB header, 16 GiB tensor, 64 GiB blob, 65536 tensors),
 * raised or lowered by $FL_MAX_TENSOR_BYTES and $FL_MAX_BLOB_BYTES. */
void fl_limits_default(struct fl_limits *l);

/* Parse a header from its msgpack bytes (after magic and hlen). */
int fl_header_decode(struct fl_header *h, const void *buf, size_t len,
    const struct fl_limits *lim, char *err);

/*
 * A reader takes blobs back to back from one file descriptor. Tensors are
 * read in header order; any may be skipped. Errors name the blob (by its
 * stream name and, after the first, its position) and the tensor.
 */
struct fl_reader {
	int fd;
	int own_fd;
	char *name;		/* "model.blob", "<stdin>" */
	struct fl_limits lim;
	unsigned char *buf;	/* read-ahead */
	size_t bpos, blen, bcap;
	uint64_t pos;		/* bytes consumed of the current blob */
	uint64_t streampos;	/* bytes consumed of the stream before it */
	uint64_t remain;	/* bytes left in a regular file, or UINT64_MAX */
	uint64_t base;		/* the file's offset when the reader began */
	struct fl_header *h;	/* current blob's header (the caller's; keep it
				 * until its tensors are read) */
	uint64_t total;		/* current blob's length */
	size_t next;		/* next tensor to read */
	int nblob;		/* blobs started so far */
	int in_tensor;		/* a chunked read is under way */
	int failed;		/* an error ended the stream */
	uint64_t tleft;		/* stored bytes left of it */
	uint32_t tcrc;
	unsigned char *zbuf;	/* decoded compressed tensor being served */
	uint64_t zpos, zlen;
	char label[FL_ERRLEN / 2];
};

/* path "-" is standard input. */
int fl_reader_open(struct fl_reader *r, const char *path, char *err);
/* Open regular file path at byte off, where a blob begins (a value of
 * fl_reader_offset): straight to the blob rather than through those before
 * it. name labels the reader's errors. */
int fl_reader_open_at(struct fl_reader *r, const char *path, uint64_t off,
    const char *name, char *err);
void fl_reader_fd(struct fl_reader *r, int fd, const char *name);
/* Where the current blob begins in a regular file; UINT64_MAX in a pipe. */
uint64_t fl_reader_offset(const struct fl_reader *r);
void fl_reader_close(struct fl_reader *r);
/* Read the next blob's header into h (initialised by this call); skips
 * what is left of the current blob. FL_EOF at a clean end of stream. */
int fl_reader_next(struct fl_reader *r, struct fl_header *h, char *err);
/* Read tensor i (>= the next) decoded into dst (fl_tensor_nbytes bytes). */
int fl_reader_tensor(struct fl_reader *r, size_t i, void *dst, char *err);
/* Same, converted to float32: dst holds fl_tensor_numel floats. */
int fl_reader_tensor_f32(struct fl_reader *r, size_t i, float *dst, char *err);
/* Chunked: begin tensor i, then read its decoded bytes n at a time; the
 * crc is checked when the last byte has been read. */
int fl_reader_begin(struct fl_reader *r, size_t i, char *err);
int fl_reader_read(struct fl_reader *r, void *dst, size_t n, char *err);
/*
 * Zero-copy access to a raw tensor of a regular file: map tensor i (>= the
 * next) read-only from the page cache and move the reader past it. The
 * bytes are NOT checked: the caller computes fl_crc32 over them as it uses
 * them and compares with h->t[i].crc before trusting its result. Returns
 * FL_EFAIL without side effects when the tensor cannot be mapped (a pipe, a
 * compressed tensor); read it with fl_reader_begin/fl_reader_read then.
 */
struct fl_map {
	void *base;		/* the mapping, for munmap */
	size_t len;
	const unsigned char *data;	/* the tensor's stored bytes */
	uint64_t size;
};
int fl_reader_map(struct fl_reader *r, size_t i, struct fl_map *m, char *err);
void fl_map_release(struct fl_map *m);

/* Verify (crc, padding) and discard the rest of the current blob. */
int fl_reader_finish(struct fl_reader *r, char *err);

/*
 * A writer emits one blob a tensor at a time. The header carries each
 * tensor's size and crc32, which are known only once it is written, so the
 * writer leaves fixed-width fields in the header and patches them: in place
 * when the output is a seekable file, else through a temporary spool file.
 */
struct fl_writer {
	int fd;
	char *name;
	struct fl_header h;
	int level;		/* zlib level for FL_ZLIB tensors */
	int seekable;
	int spool;		/* spool file descriptor, or -1 */
	uint64_t start;		/* blob's offset in fd when seekable */
	struct fl_buf hdr;	/* encoded header */
	size_t *fixups;		/* per tensor: offset of size field in hdr */
	size_t cur;		/* tensor being written */
	uint64_t cur_left;	/* decoded bytes still expected for cur */
	uint32_t crc;
	unsigned char *zin;	/* whole decoded tensor for FL_ZLIB */
	uint64_t zfill;
	uint64_t pos;		/* bytes written of this blob */
};

/* h gives kind, meta and each tensor's name, dtype, shape and enc. */
int fl_writer_begin(struct fl_writer *w, int fd, const char *name,
    const struct fl_header *h, char *err);
/* Write tensor w->cur whole (decoded bytes). */
int fl_writer_tensor(struct fl_writer *w, const void *data, char *err);
/* Or in pieces: n decoded bytes of the current tensor at a time. */
int fl_writer_write(struct fl_writer *w, const void *data, size_t n, char *err);
/* The same, for a caller that has computed crc = fl_crc32(0, data, n) as it
 * made the bytes: the writer folds it in with crc32_combine instead of
 * reading them again. Falls back to fl_writer_write when the piece is not
 * within one raw tensor. */
int fl_writer_write_crc(struct fl_writer *w, const void *data, size_t n,
    uint32_t crc, char *err);
/*
 * Best effort, after begin: reserve the disk blocks of the rest of the blob
 * (fallocate, FALLOC_FL_KEEP_SIZE) when the output is a seekable file and
 * every tensor is raw, so the writes that follow find their blocks
 * allocated (on ext4 a third less time than delayed allocation). A failed
 * blob is truncated to w->start by its caller, which frees them.
 */
void fl_writer_reserve(struct fl_writer *w);
int fl_writer_end(struct fl_writer *w, char *err);
void fl_writer_abort(struct fl_writer *w);

/* Write a blob whose tensors are all in memory: data[i] holds tensor i
 * decoded. */
int fl_blob_write(int fd, const char *name, const struct fl_header *h,
    const void *const *data, int level, char *err);

/*
 * Incremental blob check: bytes are fed as they arrive; the header is held
 * until it is whole and decoded, then each tensor's crc32 and the padding
 * are checked on the fly, and bytes after the blob's end are refused
 * (blob_check.c).
 */
struct fl_check {
	const char *name;
	struct fl_limits lim;
	struct fl_buf head;	/* magic, hlen and header, until decoded */
	struct fl_header h;
	int have_header;
	int done;
	uint64_t pos;		/* bytes of the blob seen */
	size_t cur;		/* tensor whose bytes come next */
	uint32_t crc;
};
void fl_check_init(struct fl_check *k, const char *name);
void fl_check_release(struct fl_check *k);
/* Feed n bytes; more after the end is an error (FL_EBLOB). */
int fl_check_feed(struct fl_check *k, const void *p, size_t n, char *err);
/* At the end of the stream: FL_EBLOB when the blob is short. */
int fl_check_end(struct fl_check *k, char *err);

/* Float conversions between dtypes (n elements). */
int fl_convert(void *dst, enum fl_dtype dt, const void *src, enum fl_dtype st,
    uint64_t n);
float fl_half_to_float(uint16_t h);
uint16_t fl_float_to_half(float f);
float fl_bf16_to_float(uint16_t h);
uint16_t fl_float_to_bf16(float f);

/* Byte shuffle of n elements of size k: all first bytes, then seconds... */
void fl_shuffle(unsigned char *dst, const unsigned char *src, uint64_t n, size_t k);
void fl_unshuffle(unsigned char *dst, const unsigned char *src, uint64_t n, size_t k);

#endif
