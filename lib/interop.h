/* interop.h: tensors from and to safetensors and numpy .npz files, and the
 * architecture of an imported PyTorch state dict. */
#ifndef FL_INTEROP_H
#define FL_INTEROP_H

#include "arch.h"
#include "data.h"

#define FL_ST_MAX_HEADER (100 << 20)	/* as the safetensors library */

enum fl_format {
	FL_FMT_SAFETENSORS,
	FL_FMT_NPZ,
};

/* "safetensors" or "npz"; FL_EUSAGE otherwise. */
int fl_format_parse(const char *s, enum fl_format *f);
const char *fl_format_name(enum fl_format f);

/*
 * Parse a whole file held in memory into b (initialised here; kind
 * "model" unless the file says otherwise). Tensors keep their dtype
 * (f32 f64 f16 bf16 i8 u8 i32 i64) and come in the order of their data.
 * safetensors: the header is checked strictly (JSON syntax, dtypes,
 * shapes against offsets, offsets in range, without overlap or holes);
 * __metadata__ goes into meta (values that are JSON numbers become
 * numbers, "arch" stays a spec string, "format" is dropped). npz: stored
 * or deflated entries, crc32 checked, each a .npy array (v1 to v3,
 * little-endian, C order). name is used in messages. FL_EBLOB malformed,
 * FL_EDATA unsupported (dtype, compression, Fortran order), FL_ELIMIT.
 */
int fl_safetensors_parse(struct fl_blobmem *b, const unsigned char *buf,
    size_t len, const char *name, char *err);
int fl_npz_parse(struct fl_blobmem *b, const unsigned char *buf, size_t len,
    const char *name, char *err);
/* Read path ("-": stdin), telling the formats apart by their first bytes. */
int fl_import_read(struct fl_blobmem *b, const char *path, enum fl_format *f,
    char *err);

/*
 * Write the reader's current blob (h, from fl_reader_next) to fd, a tensor
 * at a time. safetensors: __metadata__ holds "format": "pt", kind as
 * "flkit.kind", the model's arch as a spec string and each other meta key
 * (strings as they are, other values as JSON text). npz: stored entries
 * NAME.npy as numpy.savez writes them (bf16 becomes f32); at most 4 GiB.
 */
int fl_safetensors_write(int fd, const char *name, struct fl_reader *r,
    const struct fl_header *h, char *err);
int fl_npz_write(int fd, const char *name, struct fl_reader *r,
    const struct fl_header *h, char *err);

/*
 * Infer a plain stack of Linear layers from state-dict names "N.weight"
 * [out, in] and "N.bias" [out]: a gap of one index between two Linear
 * layers is taken for a ReLU (*assumed counts them). FL_EDATA says why
 * when the tensors are not such a stack.
 */
int fl_arch_infer(const struct fl_header *h, struct fl_arch *a, int *assumed,
    char *err);
/*
 * Check that b's tensors are exactly a's parameters by name and shape, of
 * a float dtype, and put them in state-dict order. FL_EDATA otherwise.
 */
int fl_arch_match(struct fl_blobmem *b, const struct fl_arch *a, char *err);

#endif
