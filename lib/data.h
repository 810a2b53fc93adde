/* data.h: datasets: CSV and IDX files into dataset blobs, whole blobs in
 * memory, datasets as float rows for training, and splits among workers. */
#ifndef FL_DATA_H
#define FL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "rng.h"
#include "util.h"

#define FL_MAX_CLASSES 65536
#define FL_MAX_PARTS 65536
#define FL_CSV_MAX_LINE (16 << 20)	/* bytes in one CSV line */
#define FL_CSV_MAX_COLS (1 << 20)

/*
 * A blob held whole in memory, as stored: its header and each tensor's
 * decoded bytes. The struct owns everything; release frees it.
 */
struct fl_blobmem {
	struct fl_header h;
	unsigned char **data;	/* data[i]: fl_tensor_nbytes(&h.t[i]) bytes */
	void *map;		/* a file mapping data[i] may point into */
	size_t maplen;
};

int fl_blobmem_init(struct fl_blobmem *b, const char *kind);
void fl_blobmem_release(struct fl_blobmem *b);
/* Declare a tensor and allocate its bytes (zeroed); returns its index or
 * a negative fl_status. Checks the size against lim (may be NULL). */
int fl_blobmem_add(struct fl_blobmem *b, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape, const struct fl_limits *lim, char *err);
/* Declare a tensor whose bytes stay where they are (inside b->map, which
 * the caller sets and b then owns); returns its index or a negative status. */
int fl_blobmem_add_ref(struct fl_blobmem *b, const char *name, enum fl_dtype dtype,
    int ndim, const uint64_t *shape, const void *p, const struct fl_limits *lim,
    char *err);
/* Read every tensor of the reader's current blob h (just returned by
 * fl_reader_next) into b, initialised here with a copy of h. */
int fl_blobmem_read(struct fl_blobmem *b, struct fl_reader *r,
    const struct fl_header *h, char *err);
/* Write b as one blob (raw tensors). */
int fl_blobmem_write(int fd, const char *name, const struct fl_blobmem *b,
    char *err);

/*
 * CSV: one example per line, numbers separated by commas (fields may be
 * quoted; blank lines are skipped). The label column holds class indices
 * (non-negative integers) or class names (any word: the sorted distinct
 * names become classes 0, 1, … and meta class_names); with targets > 0,
 * that many columns from the label column on are float regression targets.
 * Every other column is a feature and must be a finite number.
 *
 * Result: a dataset blob: x f32 [n, features], y i32 [n] or f32 [n, k],
 * meta samples, features, classes (labels only), source, class_names.
 */
struct fl_csv_opts {
	int header;		/* skip the first non-blank line */
	int label_column;	/* 0-based; negative counts from the end */
	int label_set;		/* else the last column(s) */
	int targets;		/* 0: class labels; k: k float target columns */
	const char *source;	/* meta source (default: the file's name) */
};

/* path "-" is standard input. Errors name the file, line and field:
 * FL_EBLOB malformed, FL_EDATA unusable (empty, bad label), FL_ELIMIT. */
int fl_csv_read(struct fl_blobmem *b, const char *path,
    const struct fl_csv_opts *o, char *err);
/* The same from text in memory; name is used in messages. */
int fl_csv_parse(struct fl_blobmem *b, const char *text, size_t len,
    const char *name, const struct fl_csv_opts *o, char *err);

/*
 * IDX (MNIST) image and label files, gzipped or not: images magic
 * 0x00000803 (u8, [n, rows, cols]), labels 0x00000801 (u8, [n]). Without
 * normalize, x is stored as u8 [n, rows, cols] (a quarter of the bytes) and
 * fl_dataset_read turns it into floats 0..255; with it, x is f32 in [0, 1].
 * y is u8 [n]; meta samples, features, classes (10, or the largest label
 * plus one if larger), source.
 */
int fl_idx_read(struct fl_blobmem *b, const char *images, const char *labels,
    int normalize, char *err);

/*
 * A dataset as float rows, for training and evaluation. Owns its arrays.
 */
struct fl_dataset {
	uint64_t n;		/* examples */
	uint64_t features;	/* floats per example */
	int xndim;		/* x's dims, xshape[0] == n */
	uint64_t xshape[FL_MAX_DIMS];
	float *x;		/* (n, features); read-only when mapped */
	struct fl_map xmap;	/* x mapped from the file (raw f32), or none */
	int32_t *y;		/* (n) class indices in [0, classes), or NULL */
	uint32_t classes;	/* 0 when the dataset has targets */
	float *targets;		/* (n, k) regression targets, or NULL */
	uint64_t k;		/* targets per example */
	struct fl_val meta;	/* the blob's meta (a map) */
};

void fl_dataset_init(struct fl_dataset *d);
void fl_dataset_release(struct fl_dataset *d);
/*
 * Read the reader's current dataset blob (h, from fl_reader_next) into d
 * (initialised here): x of any dtype as floats; y of an integer dtype as
 * class indices (checked against meta classes, else classes is the largest
 * label plus one), y of a float dtype as targets. FL_EDATA when h is not a
 * dataset or x and y disagree.
 */
int fl_dataset_read(struct fl_dataset *d, struct fl_reader *r,
    const struct fl_header *h, char *err);
/* Open path ("-": stdin) and read its first blob with fl_dataset_read. */
int fl_dataset_load(struct fl_dataset *d, const char *path, char *err);
/* The same for inputs to predict on: only x is read (y may be absent). */
int fl_dataset_load_inputs(struct fl_dataset *d, const char *path, char *err);

/*
 * Class labels of a dataset blob in memory as int32 (malloc'd, the caller
 * frees) and the number of classes; FL_EDATA when y holds targets.
 */
int fl_blobmem_labels(const struct fl_blobmem *b, int32_t **y,
    uint32_t *classes, char *err);

/*
 * Splits: part[i] in [0, parts) for each of n examples. alpha <= 0 is IID
 * (a shuffle dealt round-robin: sizes differ by at most one); alpha > 0
 * draws, per class, the parts' shares from Dirichlet(alpha) (y and classes
 * needed). Every part gets an example when n >= parts. Deterministic for a
 * seed. FL_EDATA when n < parts.
 */
int fl_split(uint32_t *part, uint64_t n, const int32_t *y, uint32_t classes,
    uint32_t parts, double alpha, uint64_t seed, char *err);
/*
 * Part p of a dataset blob in memory: the rows i with part[i] == p of every
 * tensor whose first dimension is the sample count (other tensors whole),
 * meta as b's with samples, part (p + 1 of parts) and parts set. dst is initialised here.
 */
int fl_blobmem_part(struct fl_blobmem *dst, const struct fl_blobmem *b,
    const uint32_t *part, uint32_t parts, uint32_t p, char *err);

#endif
