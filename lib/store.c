/* store.c: a worker's objects on disk (see store.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

struct entry {
	char id[FL_ID_LEN + 1];
	char *kind;
	uint64_t bytes;
	int64_t stored;		/* ns since the epoch, the file's mtime: unique */
	double created;		/* meta created, else stored */
	struct fl_val summary;	/* a few meta keys */
	unsigned ntags;		/* tags naming it */
	int dead;		/* deleted, its slot in ord not yet reclaimed */
};

struct tag {
	char name[FL_TAG_MAX + 1];
	char id[FL_ID_LEN + 1];
};

/*
 * The index: every object once in ord, oldest first by (stored, id), and
 * in a hash table by id. A deleted entry stays in ord, marked dead, until
 * dead ones are half of it; so lookups, stores and deletes cost O(1) and a
 * page of the listing O(log n) plus its length, however many objects the
 * store holds.
 */
struct fl_store {
	pthread_mutex_t mu;
	char *dir, *objdir, *tmpdir, *tagpath;
	int objfd;		/* objects/, to fsync after a rename */
	int topfd;		/* the store itself: the tags file's rename */
	uint64_t max_bytes, used;
	uint64_t reserved;	/* bytes of commits under way, counted as used */
	int64_t last;		/* the newest stored time given out */
	size_t n;		/* live objects */
	struct entry **ord;
	size_t nord, ordcap, ndead;
	struct entry **slot;	/* open addressing, linear probing */
	size_t nslot;		/* a power of two, at least twice n */
	struct tag *tags;
	size_t ntags, tagcap;
	pthread_mutex_t tagmu;	/* held while the tags file is written */
};

static const char *const summary_keys[] = {
	"round", "samples", "client", "model_id", "training_id", "parent_id",
	"metrics", "created", "worker", "id", NULL
};

static char *
join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

static int
mkdirs(const char *path, char *err)
{
	char *p = strdup(path), *s;

	if (!p)
		return fl_err(err, FL_EFAIL, "out of memory");
	for (s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0700) && errno != EEXIST) {
				fl_errno(err, FL_EIO, "%s: cannot create", p);
				free(p);
				return FL_EIO;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return FL_OK;
}

static void
entry_release(struct entry *e)
{
	free(e->kind);
	e->kind = NULL;
	fl_val_release(&e->summary);
}

/* Read an object's header into a fresh index entry. */
static int
entry_load(struct entry *e, const char *path, const char *id, char *err)
{
	struct fl_reader r;
	struct fl_header h;
	struct stat st;
	const struct fl_val *v;
	double d;
	int rc;

	memset(e, 0, sizeof(*e));
	if ((rc = fl_reader_open(&r, path, err)))
		return rc;
	if (fstat(r.fd, &st)) {
		fl_reader_close(&r);
		return fl_errno(err, FL_EIO, "%s", path);
	}
	if ((rc = fl_reader_next(&r, &h, err))) {
		fl_reader_close(&r);
		return rc == FL_EOF ? fl_err(err, FL_EBLOB, "%s: empty", path) : rc;
	}
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->kind = strdup(h.kind);
	e->bytes = (uint64_t)st.st_size;
	e->stored = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	e->created = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	if ((v = fl_map_get(&h.meta, "created")) && !fl_val_get_double(v, &d))
		e->created = d;
	fl_val_map(&e->summary);
	for (int i = 0; summary_keys[i]; i++) {
		struct fl_val c;
		if (!(v = fl_map_get(&h.meta, summary_keys[i])))
			continue;
		if (fl_val_copy(&c, v) == FL_OK && fl_map_set(&e->summary, summary_keys[i], &c))
			fl_val_release(&c);
	}
	fl_header_release(&h);
	fl_reader_close(&r);
	if (!e->kind) {
		fl_val_release(&e->summary);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	return FL_OK;
}

static size_t
id_hash(const char *id)
{
	uint64_t h = 0;

	for (int i = 0; i < FL_ID_LEN; i++)	/* FNV-1a */
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 29);
}

static struct entry *
index_find(struct fl_store *s, const char *id)
{
	size_t mask = s->nslot - 1;

	if (!s->nslot)
		return NULL;
	for (size_t i = id_hash(id) & mask; s->slot[i]; i = (i + 1) & mask)
		if (!strcmp(s->slot[i]->id, id))
			return s->slot[i];
	return NULL;
}

static void
slot_put(struct entry **slot, size_t nslot, struct entry *e)
{
	size_t i = id_hash(e->id) & (nslot - 1);

	while (slot[i])
		i = (i + 1) & (nslot - 1);
	slot[i] = e;
}

/* Take id out of the hash table, closing the gap behind it. */
static void
slot_del(struct fl_store *s, const char *id)
{
	size_t mask = s->nslot - 1, i, j, k;

	for (i = id_hash(id) & mask; s->slot[i]; i = (i + 1) & mask)
		if (!strcmp(s->slot[i]->id, id))
			break;
	if (!s->slot[i])
		return;
	for (j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
		k = id_hash(s->slot[j]->id) & mask;
		/* Move slot j into the gap at i unless its home lies in (i, j]. */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			s->slot[i] = s->slot[j];
			i = j;
		}
	}
	s->slot[i] = NULL;
}

/* Order of storing: by stored time, then by id (times are unique but for
 * objects from another store copied in by hand). */
static int
older(int64_t ta, const char *a, int64_t tb, const char *b)
{
	return ta != tb ? ta < tb : strcmp(a, b) < 0;
}

static int
by_age(const void *pa, const void *pb)
{
	const struct entry *a = *(struct entry *const *)pa, *b = *(struct entry *const *)pb;

	return older(a->stored, a->id, b->stored, b->id) ? -1 :
	    older(b->stored, b->id, a->stored, a->id) ? 1 : 0;
}

/* Where (stored, id) would go in ord: the number of entries before it. */
static size_t
ord_rank(const struct fl_store *s, int64_t stored, const char *id)
{
	size_t lo = 0, hi = s->nord;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (older(stored, id, s->ord[mid]->stored, s->ord[mid]->id))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Make room for one more object in ord and the hash table. */
static int
index_grow(struct fl_store *s)
{
	if (s->nord == s->ordcap) {
		size_t cap = s->ordcap ? 2 * s->ordcap : 64;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): arrays of pointers */
		struct entry **p = realloc(s->ord, cap * sizeof(*p));
		if (!p)
			return FL_EFAIL;
		s->ord = p;
		s->ordcap = cap;
	}
	if (2 * (s->n + 1) > s->nslot) {
		size_t nslot = s->nslot ? 2 * s->nslot : 128;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): arrays of pointers */
		struct entry **slot = calloc(nslot, sizeof(*slot));
		if (!slot)
			return FL_EFAIL;
		for (size_t i = 0; i < s->nslot; i++)
			if (s->slot[i])
				slot_put(slot, nslot, s->slot[i]);
		free(s->slot);
		s->slot = slot;
		s->nslot = nslot;
	}
	return FL_OK;
}

/* Index a copy of *e: in its place in ord when sorted, else at the end
 * (fl_store_open sorts once after reading the directory). */
static int
index_add(struct fl_store *s, struct entry *e, int sorted)
{
	struct entry *p;
	size_t at;

	if (index_grow(s) || !(p = malloc(sizeof(*p))))
		return FL_EFAIL;
	*p = *e;
	at = sorted ? ord_rank(s, p->stored, p->id) : s->nord;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): arrays of pointers */
	memmove(s->ord + at + 1, s->ord + at, (s->nord - at) * sizeof(*s->ord));
	s->ord[at] = p;
	s->nord++;
	slot_put(s->slot, s->nslot, p);
	s->n++;
	s->used += p->bytes;
	if (p->stored > s->last)
		s->last = p->stored;
	return FL_OK;
}

/* Drop e from the index; its slot in ord is reclaimed later, in bulk. */
static void
index_remove(struct fl_store *s, struct entry *e)
{
	size_t j = 0;

	slot_del(s, e->id);
	s->used -= e->bytes;
	s->n--;
	entry_release(e);
	e->dead = 1;
	if (++s->ndead < 64 || 2 * s->ndead < s->nord)
		return;
	for (size_t i = 0; i < s->nord; i++) {
		if (s->ord[i]->dead)
			free(s->ord[i]);
		else
			s->ord[j++] = s->ord[i];
	}
	s->nord = j;
	s->ndead = 0;
}

/* Point tag at id, an indexed object; called with the lock held. */
static int
tags_set(struct fl_store *s, const char *tag, const char *id)
{
	struct entry *e;

	for (size_t i = 0; i < s->ntags; i++)
		if (!strcmp(s->tags[i].name, tag)) {
			if ((e = index_find(s, s->tags[i].id)))
				e->ntags--;
			snprintf(s->tags[i].id, sizeof(s->tags[i].id), "%s", id);
			index_find(s, id)->ntags++;
			return FL_OK;
		}
	if (s->ntags == s->tagcap) {
		size_t cap = s->tagcap ? 2 * s->tagcap : 16;
		struct tag *p = realloc(s->tags, cap * sizeof(*p));
		if (!p)
			return FL_EFAIL;
		s->tags = p;
		s->tagcap = cap;
	}
	snprintf(s->tags[s->ntags].name, sizeof(s->tags[0].name), "%s", tag);
	snprintf(s->tags[s->ntags].id, sizeof(s->tags[0].id), "%s", id);
	s->ntags++;
	index_find(s, id)->ntags++;
	return FL_OK;
}

/*
 * Write the tags file: the tags as they are, with tag[k] pointed at id[k]
 * for each of the n changes; the file fsynced, renamed, its directory
 * fsynced. Only then do the changes take effect here, all of them or none:
 * a tag the disk failed to keep is not served either, and the error told
 * is the truth. Writers take turns under tagmu, each writing the tags as
 * they are when its turn comes, so that the last file holds the last
 * change; the text is made under the lock, and written outside it, so
 * that no lookup waits on the disk.
 */
static int
tags_write(struct fl_store *s, size_t n, const char *const *tag,
    const char *const *id, char *err)
{
	struct fl_atomic a;
	struct fl_buf b;
	unsigned found = 0;	/* bit k: tag[k] is an existing tag */
	int rc = FL_OK;

	fl_buf_init(&b, 0);
	pthread_mutex_lock(&s->tagmu);
	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < n && rc == FL_OK; k++)
		if (!index_find(s, id[k]))
			rc = fl_err(err, FL_ENOTFOUND, "%s: no such object", id[k]);
	for (size_t i = 0; i < s->ntags && rc == FL_OK; i++) {
		const char *to = s->tags[i].id;
		for (size_t k = 0; k < n; k++)
			if (!strcmp(s->tags[i].name, tag[k])) {
				to = id[k];
				found |= 1u << k;
			}
		if (fl_buf_printf(&b, "%s %s\n", s->tags[i].name, to))
			rc = fl_err(err, FL_EFAIL, "out of memory");
	}
	for (size_t k = 0; k < n && rc == FL_OK; k++)
		if (!(found & 1u << k) &&
		    fl_buf_printf(&b, "%s %s\n", tag[k], id[k]))
			rc = fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_unlock(&s->mu);
	if (rc == FL_OK && (rc = fl_atomic_open(&a, s->tagpath, err)) == FL_OK) {
		if (fl_write_full(a.fd, b.data, b.len)) {
			rc = fl_errno(err, FL_EIO, "tags");
			fl_atomic_abort(&a);
		} else if ((rc = fl_atomic_commit(&a, err)) == FL_OK &&
		    fsync(s->topfd) && errno != EINVAL) {
			/* the rename too is on the disk before the answer */
			rc = fl_errno(err, FL_EIO, "the store's directory: fsync");
		}
	}
	pthread_mutex_lock(&s->mu);
	/* An object deleted meanwhile took its tags along; the file names
	 * it until the delete's own write, and a tag of no object is
	 * dropped when the store opens. */
	for (size_t k = 0; k < n && rc == FL_OK; k++)
		if (index_find(s, id[k]) && tags_set(s, tag[k], id[k]))
			rc = fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->tagmu);
	fl_buf_release(&b);
	return rc;
}

static void
tags_load(struct fl_store *s)
{
	FILE *f = fopen(s->tagpath, "r");
	char line[256], tag[FL_TAG_MAX + 2], id[FL_ID_LEN + 2];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%65s %17s", tag, id) == 2 && fl_tag_valid(tag) &&
		    fl_id_valid(id) && index_find(s, id))
			tags_set(s, tag, id);
	fclose(f);
}

/* Remove what a crash left in dir: the files whose names begin with
 * prefix (tmp/'s uploads; the tags file's half-written tags.tmp.*). */
static void
clean_tmp(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = strlen(prefix);
	int dfd;

	if (!d)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !strncmp(de->d_name, prefix, n))
			unlinkat(dfd, de->d_name, 0);
	closedir(d);
}

int
fl_store_open(struct fl_store **out, const char *dir, uint64_t max_bytes,
    char *err)
{
	struct fl_store *s;
	DIR *d;
	struct dirent *de;
	int rc;

	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->tagmu, NULL);
	s->objfd = s->topfd = -1;
	s->max_bytes = max_bytes;
	s->dir = strdup(dir);
	s->objdir = join(dir, "objects");
	s->tmpdir = join(dir, "tmp");
	s->tagpath = join(dir, "tags");
	if (!s->dir || !s->objdir || !s->tmpdir || !s->tagpath) {
		fl_store_free(s);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	if ((rc = mkdirs(s->objdir, err)) || (rc = mkdirs(s->tmpdir, err))) {
		fl_store_free(s);
		return rc;
	}
	clean_tmp(s->tmpdir, "");
	clean_tmp(s->dir, "tags.tmp.");
	if ((s->topfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fl_errno(err, FL_EIO, "%s", s->dir);
		fl_store_free(s);
		return FL_EIO;
	}
	if ((s->objfd = open(s->objdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    !(d = opendir(s->objdir))) {
		fl_errno(err, FL_EIO, "%s", s->objdir);
		fl_store_free(s);
		return FL_EIO;
	}
	while ((de = readdir(d))) {
		struct entry e;
		char *p, e2[FL_ERRLEN];
		if (!fl_id_valid(de->d_name))
			continue;
		if (!(p = join(s->objdir, de->d_name)))
			continue;
		/* An object that no longer reads is left alone, not served. */
		if (entry_load(&e, p, de->d_name, e2) == FL_OK && index_add(s, &e, 0))
			entry_release(&e);
		free(p);
	}
	closedir(d);
	if (s->nord)
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): arrays of pointers */
		qsort(s->ord, s->nord, sizeof(*s->ord), by_age);
	tags_load(s);
	*out = s;
	return FL_OK;
}

void
fl_store_free(struct fl_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nord; i++) {
		entry_release(s->ord[i]);
		free(s->ord[i]);
	}
	free(s->ord);
	free(s->slot);
	free(s->tags);
	if (s->objfd >= 0)
		close(s->objfd);
	if (s->topfd >= 0)
		close(s->topfd);
	free(s->dir);
	free(s->objdir);
	free(s->tmpdir);
	free(s->tagpath);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->tagmu);
	free(s);
}

const char *
fl_store_dir(const struct fl_store *s)
{
	return s->dir;
}

void
fl_store_usage(struct fl_store *s, uint64_t *objects, uint64_t *bytes)
{
	pthread_mutex_lock(&s->mu);
	*objects = s->n;
	*bytes = s->used;
	pthread_mutex_unlock(&s->mu);
}

static int
room_locked(struct fl_store *s, uint64_t n, char *err)
{
	uint64_t used = s->used + s->reserved;

	if (s->max_bytes && (n > s->max_bytes || used > s->max_bytes - n))
		return fl_err(err, FL_ELIMIT, "store full: %llu of %llu bytes used, "
		    "%llu more asked", (unsigned long long)used,
		    (unsigned long long)s->max_bytes, (unsigned long long)n);
	return FL_OK;
}

int
fl_store_room(struct fl_store *s, uint64_t n, char *err)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = room_locked(s, n, err);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The check of a fl_store_begin_checked upload. */
struct fl_upload_check {
	struct fl_check k;
	int rc;			/* the first error */
	char err[FL_ERRLEN];
};

int
fl_store_begin(struct fl_store *s, struct fl_upload *u, char *err)
{
	u->bytes = 0;
	u->flushed = 0;
	u->check = NULL;
	u->own = 0;
	if (!(u->tmp = join(s->tmpdir, "up.XXXXXX")))
		return fl_err(err, FL_EFAIL, "out of memory");
	if ((u->fd = mkostemp(u->tmp, O_CLOEXEC)) < 0) {
		fl_errno(err, FL_EIO, "tmp: cannot make the upload's file");
		free(u->tmp);
		u->tmp = NULL;
		return FL_EIO;
	}
	return FL_OK;
}

int
fl_store_begin_own(struct fl_store *s, struct fl_upload *u, char *err)
{
	int rc = fl_store_begin(s, u, err);

	u->own = rc == FL_OK;
	return rc;
}

int
fl_store_begin_checked(struct fl_store *s, struct fl_upload *u,
    const struct fl_limits *lim, char *err)
{
	struct fl_upload_check *c;
	int rc;

	if (!(c = calloc(1, sizeof(*c))))
		return fl_err(err, FL_EFAIL, "out of memory");
	if ((rc = fl_store_begin(s, u, err))) {
		free(c);
		return rc;
	}
	fl_check_init(&c->k, "upload");
	c->k.lim = *lim;
	u->check = c;
	return FL_OK;
}

/* Written bytes go to the disk as they come, so that dirty pages stay
 * few and the fsync at the commit has little left to do. */
#define FLUSH_EVERY (8u << 20)

int
fl_store_write(struct fl_upload *u, const void *p, size_t n, char *err)
{
	struct fl_upload_check *c = u->check;

	if (c && !c->rc && (c->rc = fl_check_feed(&c->k, p, n, c->err)))
		u->bytes += n;	/* the blob is bad: keep no more of it */
	if (c && c->rc)
		return FL_OK;
	/* The temp file's path is the worker's business, not the client's. */
	if (fl_write_full(u->fd, p, n))
		return fl_errno(err, FL_EIO, "cannot write the upload to the store");
	u->bytes += n;
	if (u->bytes - u->flushed >= FLUSH_EVERY) {
		/* Start writeback of this stretch and wait for the one before
		 * (a no-op on tmpfs; errors surface at the fsync). */
		if (u->flushed >= FLUSH_EVERY)
			sync_file_range(u->fd, (off_t)(u->flushed - FLUSH_EVERY),
			    FLUSH_EVERY, SYNC_FILE_RANGE_WAIT_BEFORE |
			    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
		sync_file_range(u->fd, (off_t)u->flushed,
		    (off_t)(u->bytes - u->flushed), SYNC_FILE_RANGE_WRITE);
		u->flushed = u->bytes;
	}
	return FL_OK;
}

static void
check_free(struct fl_upload *u)
{
	if (u->check) {
		fl_check_release(&u->check->k);
		free(u->check);
		u->check = NULL;
	}
}

void
fl_store_abort(struct fl_upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	if (u->tmp)
		unlink(u->tmp);
	free(u->tmp);
	u->tmp = NULL;
	check_free(u);
}

/* What the check of a checked upload found; *again when the blob has
 * tensors it cannot vouch for alone (deflated ones must be inflated). */
static int
checked(struct fl_upload *u, int *again, char *err)
{
	struct fl_upload_check *c = u->check;
	const char *kind = c->k.h.kind;
	int rc;

	*again = 0;
	if (c->rc)
		return fl_err(err, c->rc, "%s", c->err);
	if ((rc = fl_check_end(&c->k, err)))
		return rc;
	if (!kind || !kind[0] || strlen(kind) > 64)
		return fl_err(err, FL_EBLOB, "blob kind must be 1 to 64 bytes");
	for (size_t i = 0; i < c->k.h.ntensors; i++)
		if (c->k.h.t[i].enc != FL_RAW)
			*again = 1;
	return FL_OK;
}

/* Exactly one blob, every byte checked. */
static int
validate(const char *path, uint64_t bytes, const struct fl_limits *lim, char *err)
{
	struct fl_reader r;
	struct fl_header h;
	int rc;

	if ((rc = fl_reader_open(&r, path, err)))
		return rc;
	r.lim = *lim;
	free(r.name);
	r.name = strdup("upload");
	if ((rc = fl_reader_next(&r, &h, err))) {
		fl_reader_close(&r);
		return rc == FL_EOF ? fl_err(err, FL_EBLOB, "empty body: expected a blob") : rc;
	}
	rc = fl_reader_finish(&r, err);
	if (rc == FL_OK && h.total != bytes)
		rc = fl_err(err, FL_EBLOB, "%llu bytes after the blob: send one blob per request",
		    (unsigned long long)(bytes - h.total));
	if (rc == FL_OK && (!h.kind[0] || strlen(h.kind) > 64))
		rc = fl_err(err, FL_EBLOB, "blob kind must be 1 to 64 bytes");
	fl_header_release(&h);
	fl_reader_close(&r);
	return rc;
}

static void
new_id(char *id)
{
	unsigned char b[FL_ID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0 && errno != EINTR) {
			char u[37];
			fl_uuid(u);	/* has its own fallback */
			for (size_t i = 0; i < sizeof(b); i++)
				b[i] = (unsigned char)(u[i] * 31 + u[i + 19]);
			break;
		}
		if (r > 0)
			got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(id + 2 * i, 3, "%02x", b[i]);
}

static void
unreserve(struct fl_store *s, uint64_t n)
{
	pthread_mutex_lock(&s->mu);
	s->reserved -= n;
	pthread_mutex_unlock(&s->mu);
}

int
fl_store_commit(struct fl_store *s, struct fl_upload *u,
    const struct fl_limits *lim, const char *tag, char *id, struct fl_val *info,
    char *err)
{
	struct entry e;
	struct timespec ts[2];
	const char *cid;
	char *path = NULL;
	int64_t stored;
	int rc, tries, again, reserved = 0;

	if (info)
		fl_val_nil(info);
	again = 1;
	rc = u->check ? checked(u, &again, err) : FL_OK;
	check_free(u);
	if (rc == FL_OK && again && !u->own)
		rc = validate(u->tmp, u->bytes, lim, err);
	if (rc)
		goto fail;
	/* The room is taken now, under the lock: commits running side by side
	 * would each see it free and together overfill the store. So is the
	 * time of storing, one no other object has: the order of the listing
	 * and of fl_store_latest, kept as the file's mtime across restarts. */
	clock_gettime(CLOCK_REALTIME, &ts[1]);
	stored = (int64_t)ts[1].tv_sec * 1000000000 + ts[1].tv_nsec;
	pthread_mutex_lock(&s->mu);
	if ((rc = room_locked(s, u->bytes, err)) == FL_OK) {
		s->reserved += u->bytes;
		reserved = 1;
		if (stored <= s->last)
			stored = s->last + 1;
		s->last = stored;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc)
		goto fail;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)(stored / 1000000000);
	ts[1].tv_nsec = (long)(stored % 1000000000);
	if (futimens(u->fd, ts)) {
		rc = fl_errno(err, FL_EIO, "the upload: cannot set its time");
		goto fail;
	}
	if (fsync(u->fd)) {
		rc = fl_errno(err, FL_EIO, "the upload: fsync");
		goto fail;
	}
	for (tries = 0; ; tries++) {
		new_id(id);
		free(path);
		if (!(path = join(s->objdir, id))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			goto fail;
		}
		if (renameat2(AT_FDCWD, u->tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST || tries > 8) {
			rc = fl_errno(err, FL_EIO, "objects/%s", id);
			goto fail;
		}
	}
	close(u->fd);
	u->fd = -1;
	free(u->tmp);
	u->tmp = NULL;
	/* the name too is on the disk, or the object is not acknowledged */
	if (fsync(s->objfd) && errno != EINVAL)
		rc = fl_errno(err, FL_EIO, "objects: fsync");
	else
		rc = entry_load(&e, path, id, err);
	if (rc) {
		unlink(path);
		free(path);
		unreserve(s, u->bytes);
		return rc;
	}
	e.stored = stored;	/* were the file system's clock coarser */
	if (info) {	/* e.kind is the index's once added */
		fl_val_map(info);
		fl_map_set_str(info, "id", id);
		fl_map_set_str(info, "kind", e.kind);
		fl_map_set_uint(info, "bytes", e.bytes);
	}
	pthread_mutex_lock(&s->mu);
	if (index_add(s, &e, 1)) {
		pthread_mutex_unlock(&s->mu);
		/* not acknowledged: nor served after a restart */
		unlink(path);
		free(path);
		entry_release(&e);
		unreserve(s, u->bytes);
		if (info) {
			fl_val_release(info);
			fl_val_nil(info);
		}
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	s->reserved -= u->bytes;
	pthread_mutex_unlock(&s->mu);
	free(path);
	if (!tag)
		return FL_OK;
	/* the object is stored and served: the message must say so */
	cid = id;
	if ((rc = tags_write(s, 1, &tag, &cid, err)))
		fl_err_prefix(err, "stored as %s, but not tagged %s", id, tag);
	return rc;
fail:
	free(path);
	if (reserved)
		unreserve(s, u->bytes);
	fl_store_abort(u);
	return rc;
}

int
fl_store_check(struct fl_upload *u, const struct fl_limits *lim, char *err)
{
	int rc, again = 1;

	if (u->check && (rc = checked(u, &again, err)))
		return rc;
	return again ? validate(u->tmp, u->bytes, lim, err) : FL_OK;
}

char *
fl_store_path(struct fl_store *s, const char *id)
{
	return fl_id_valid(id) ? join(s->objdir, id) : NULL;
}

/*
 * Open object id for reading, if the index has it: a file in objects/ that
 * it does not have is one that did not read at the start (a partial file
 * a crash of another program left, say), or one being committed, not yet
 * acknowledged. Neither is served. Opened under the lock, so that a delete
 * cannot come in between.
 */
static int
open_indexed(struct fl_store *s, const char *id, int *fd, char *err)
{
	char *p;
	int rc = FL_OK;

	*fd = -1;
	if (!fl_id_valid(id))
		return fl_err(err, FL_EUSAGE, "bad object id");
	if (!(p = join(s->objdir, id)))
		return fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_lock(&s->mu);
	if (!index_find(s, id))
		rc = fl_err(err, FL_ENOTFOUND, "%s: no such object", id);
	else if ((*fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		rc = errno == ENOENT ? fl_err(err, FL_ENOTFOUND, "%s: no such object",
		    id) : fl_errno(err, FL_EIO, "%s", id);
	pthread_mutex_unlock(&s->mu);
	free(p);
	return rc;
}

int
fl_store_open_object(struct fl_store *s, const char *id, int *fd,
    uint64_t *size, char *err)
{
	struct stat st;
	int rc;

	if ((rc = open_indexed(s, id, fd, err)))
		return rc;
	if (fstat(*fd, &st)) {
		close(*fd);
		*fd = -1;
		return fl_errno(err, FL_EIO, "%s", id);
	}
	*size = (uint64_t)st.st_size;
	return FL_OK;
}

int
fl_store_delete(struct fl_store *s, const char *id, char *kind, size_t kindlen,
    char *err)
{
	struct entry *e;
	char *p;
	size_t i, j;
	int rc = FL_OK, dirty = 0;

	if (!fl_id_valid(id))
		return fl_err(err, FL_EUSAGE, "bad object id");
	if (!(p = join(s->objdir, id)))
		return fl_err(err, FL_EFAIL, "out of memory");
	pthread_mutex_lock(&s->mu);
	if (!(e = index_find(s, id))) {
		pthread_mutex_unlock(&s->mu);
		free(p);
		return fl_err(err, FL_ENOTFOUND, "%s: no such object", id);
	}
	if (unlink(p) && errno != ENOENT) {
		rc = fl_errno(err, FL_EIO, "%s", id);
		pthread_mutex_unlock(&s->mu);
		free(p);
		return rc;
	}
	free(p);
	if (kind)
		snprintf(kind, kindlen, "%s", e->kind);
	index_remove(s, e);
	for (i = j = 0; i < s->ntags; i++) {
		if (!strcmp(s->tags[i].id, id)) {
			dirty = 1;
			continue;
		}
		s->tags[j++] = s->tags[i];
	}
	s->ntags = j;
	pthread_mutex_unlock(&s->mu);
	/* durable before the answer, with no lookup waiting on it */
	if (fsync(s->objfd) && errno != EINVAL)
		rc = fl_errno(err, FL_EIO, "objects: fsync");
	/* Its tags are gone here; should the file keep naming it (the disk
	 * failing now), they are dropped when the store opens, as tags of
	 * no object. The delete is done either way. */
	if (dirty) {
		char e2[FL_ERRLEN];
		tags_write(s, 0, NULL, NULL, e2);
	}
	return rc;
}

int
fl_store_tag(struct fl_store *s, const char *id, const char *tag, char *err)
{
	if (!fl_id_valid(id))
		return fl_err(err, FL_EUSAGE, "bad object id");
	if (!fl_tag_valid(tag))
		return fl_err(err, FL_EUSAGE, "bad tag: use letters, digits, '.', '_', '-'");
	return tags_write(s, 1, &tag, &id, err);
}

int
fl_store_tags(struct fl_store *s, size_t n, const char *const *tag,
    const char *const *id, char *err)
{
	if (n > FL_STORE_TAGS_MAX)
		return fl_err(err, FL_EUSAGE, "%zu tags at once: at most %d", n,
		    FL_STORE_TAGS_MAX);
	for (size_t k = 0; k < n; k++) {
		if (!fl_id_valid(id[k]))
			return fl_err(err, FL_EUSAGE, "bad object id");
		if (!fl_tag_valid(tag[k]))
			return fl_err(err, FL_EUSAGE, "bad tag: use letters, "
			    "digits, '.', '_', '-'");
	}
	return tags_write(s, n, tag, id, err);
}

int
fl_store_lookup_tag(struct fl_store *s, const char *tag, char *id, char *err)
{
	int rc = fl_err(err, FL_ENOTFOUND, "tag %s: no such tag", tag);

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->ntags; i++)
		if (!strcmp(s->tags[i].name, tag)) {
			memcpy(id, s->tags[i].id, FL_ID_LEN + 1);
			rc = FL_OK;
			break;
		}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
fl_store_latest(struct fl_store *s, const char *kind, char *id, char *err)
{
	int rc = fl_err(err, FL_ENOTFOUND, "no %s%sobject", kind ? kind : "",
	    kind ? " " : "");

	pthread_mutex_lock(&s->mu);
	for (size_t i = s->nord; i-- > 0; ) {
		const struct entry *e = s->ord[i];
		if (!e->dead && (!kind || !strcmp(e->kind, kind))) {
			memcpy(id, e->id, FL_ID_LEN + 1);
			rc = FL_OK;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
fl_store_kind(struct fl_store *s, const char *id, char *kind, size_t kindlen)
{
	struct entry *e;
	int rc = FL_ENOTFOUND;

	pthread_mutex_lock(&s->mu);
	if ((e = index_find(s, id))) {
		snprintf(kind, kindlen, "%s", e->kind);
		rc = FL_OK;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* A listing's cursor: the stored time and id of the last object shown. */
static void
cursor_format(const struct entry *e, char *buf, size_t len)
{
	snprintf(buf, len, "%lld-%s", (long long)e->stored, e->id);
}

static int
cursor_parse(const char *c, int64_t *stored, char *id)
{
	char *end;
	long long t;

	errno = 0;
	if (*c < '0' || *c > '9')
		return -1;
	t = strtoll(c, &end, 10);
	if (errno || *end != '-' || !fl_id_valid(end + 1))
		return -1;
	*stored = t;
	memcpy(id, end + 1, FL_ID_LEN + 1);
	return 0;
}

/* An index entry as the listing shows it; called with the lock held. */
static int
entry_val(const struct fl_store *s, const struct entry *e, struct fl_val *o)
{
	struct fl_val tags, c;

	fl_val_map(o);
	fl_val_array(&tags);
	for (size_t t = 0; e->ntags && t < s->ntags; t++) {
		struct fl_val ts;
		if (!strcmp(s->tags[t].id, e->id) && fl_val_str(&ts, s->tags[t].name) == FL_OK &&
		    fl_array_push(&tags, &ts))
			fl_val_release(&ts);
	}
	if (fl_map_set_str(o, "id", e->id) || fl_map_set_str(o, "kind", e->kind) ||
	    fl_map_set_uint(o, "bytes", e->bytes) || fl_map_set(o, "tags", &tags) ||
	    fl_map_set_float(o, "created", e->created) || fl_val_copy(&c, &e->summary)) {
		fl_val_release(&tags);
		fl_val_release(o);
		return FL_EFAIL;
	}
	if (fl_map_set(o, "meta", &c)) {
		fl_val_release(&c);
		fl_val_release(o);
		return FL_EFAIL;
	}
	return FL_OK;
}

/* Call each for e; called with the lock held. */
static int
list_one(const struct fl_store *s, const struct entry *e,
    int (*each)(void *arg, const struct fl_val *o), void *arg, char *err)
{
	struct fl_val o;
	int rc;

	if (entry_val(s, e, &o))
		return fl_err(err, FL_EFAIL, "out of memory");
	if ((rc = each(arg, &o)))
		fl_err(err, rc, "cannot list %s: out of memory", e->id);
	fl_val_release(&o);
	return rc;
}

int
fl_store_list(struct fl_store *s, const struct fl_store_query *q,
    int (*each)(void *arg, const struct fl_val *o), void *arg, char *next,
    char *err)
{
	const struct entry *last = NULL, *only = NULL;
	char cid[FL_ID_LEN + 1] = "";
	size_t i, limit = q->limit && q->limit < FL_LIST_MAX ? q->limit : FL_LIST_MAX, n = 0;
	int64_t ct = 0;
	int rc = FL_OK;

	next[0] = 0;
	if (q->after && cursor_parse(q->after, &ct, cid))
		return fl_err(err, FL_EUSAGE, "bad cursor '%s': pass back a listing's \"next\"",
		    q->after);
	pthread_mutex_lock(&s->mu);
	if (q->tag) {	/* a tag names one object */
		for (size_t t = 0; t < s->ntags; t++)
			if (!strcmp(s->tags[t].name, q->tag))
				only = index_find(s, s->tags[t].id);
		if (only && (!q->kind || !strcmp(only->kind, q->kind)) &&
		    (!q->after || older(only->stored, only->id, ct, cid)))
			rc = list_one(s, only, each, arg, err);
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	/* From the newest object older than the cursor's. */
	i = q->after ? ord_rank(s, ct, cid) : s->nord;
	if (q->after && i > 0 && !older(s->ord[i - 1]->stored, s->ord[i - 1]->id, ct, cid))
		i--;	/* the cursor's own object */
	while (i-- > 0 && rc == FL_OK) {
		const struct entry *e = s->ord[i];
		if (e->dead || (q->kind && strcmp(e->kind, q->kind)))
			continue;
		if (n == limit) {	/* one more is there: say where to go on */
			cursor_format(last, next, FL_LIST_CURSOR);
			break;
		}
		rc = list_one(s, e, each, arg, err);
		last = e;
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
fl_header_to_val(const struct fl_header *h, struct fl_val *v)
{
	struct fl_val meta, ts, t, shape, d;

	fl_val_map(v);
	fl_map_set_str(v, "kind", h->kind);
	if (fl_val_copy(&meta, &h->meta) == FL_OK)
		fl_map_set(v, "meta", &meta);
	fl_val_array(&ts);
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct fl_tensor *x = &h->t[i];
		fl_val_map(&t);
		fl_map_set_str(&t, "name", x->name);
		fl_map_set_str(&t, "dtype", fl_dtype_name(x->dtype));
		fl_val_array(&shape);
		for (int k = 0; k < x->ndim; k++) {
			fl_val_uint(&d, x->shape[k]);
			fl_array_push(&shape, &d);
		}
		fl_map_set(&t, "shape", &shape);
		fl_map_set_str(&t, "enc", x->enc == FL_ZLIB ? "zlib" : "raw");
		fl_map_set_uint(&t, "size", x->size);
		fl_map_set_uint(&t, "crc32", x->crc);
		fl_array_push(&ts, &t);
	}
	fl_map_set(v, "tensors", &ts);
	fl_map_set_uint(v, "bytes", h->total);
	return FL_OK;
}

int
fl_store_header(struct fl_store *s, const char *id, struct fl_val *v, char *err)
{
	struct fl_reader r;
	struct fl_header h;
	int rc, fd;

	fl_val_nil(v);
	if ((rc = open_indexed(s, id, &fd, err)))
		return rc;
	fl_reader_fd(&r, fd, id);
	r.own_fd = 1;
	if ((rc = fl_reader_next(&r, &h, err)) == FL_OK) {
		fl_header_to_val(&h, v);
		fl_header_release(&h);
	} else if (rc == FL_EOF) {
		rc = fl_err(err, FL_EBLOB, "%s: empty", id);
	}
	fl_reader_close(&r);
	return rc;
}
