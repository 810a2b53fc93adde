/* store.h: a worker's objects on disk: blobs written to a temp file,
 * validated, fsynced and renamed into place; tags; an index in memory. */
#ifndef FL_STORE_H
#define FL_STORE_H

#include <stdint.h>

#include "blob.h"
#include "proto.h"
#include "util.h"
#include "value.h"


/*
 * Layout under the store directory:
 *   objects/ID   one blob per file, ID FL_ID_LEN lowercase hex digits
 *   tmp/         uploads under way (removed when the store opens)
 *   tags         "TAG ID" lines, replaced atomically
 * Every call is safe from several threads at once. Errors of the calls
 * after fl_store_open name the store's files by these names alone, never
 * by their paths: a worker sends them to its clients.
 */
struct fl_store;

/* Create dir (and its parents) when missing; index what it holds. max_bytes
 * bounds the objects' total (0: no bound). *out is the caller's (free). */
int fl_store_open(struct fl_store **out, const char *dir, uint64_t max_bytes,
    char *err);
void fl_store_free(struct fl_store *s);
const char *fl_store_dir(const struct fl_store *s);
void fl_store_usage(struct fl_store *s, uint64_t *objects, uint64_t *bytes);
/* FL_ELIMIT when n more bytes would pass --max-store-bytes. */
int fl_store_room(struct fl_store *s, uint64_t n, char *err);

/* An upload: bytes written to a temp file, then committed or aborted. */
struct fl_upload {
	int fd;
	char *tmp;		/* the temp file's path */
	uint64_t bytes;
	uint64_t flushed;	/* bytes handed to writeback so far */
	struct fl_upload_check *check;	/* fl_store_begin_checked's */
	int own;		/* fl_store_begin_own's */
};

int fl_store_begin(struct fl_store *s, struct fl_upload *u, char *err);
/*
 * As fl_store_begin, for a blob this process writes itself (a fitted model,
 * an aggregate) with fl_writer from a header it built: fl_store_commit does
 * not read it back to check it, as it does an upload's. The pages it would
 * read are the ones just written, so that could find only a bug of ours.
 */
int fl_store_begin_own(struct fl_store *s, struct fl_upload *u, char *err);
/*
 * As fl_store_begin, and fl_store_write checks every byte as it passes
 * (fl_check within lim), so that fl_store_commit need not read the file
 * back. Then all bytes must go through fl_store_write. A bad blob is no
 * write error: its bytes from there on are dropped and fl_store_commit
 * returns the error.
 */
int fl_store_begin_checked(struct fl_store *s, struct fl_upload *u,
    const struct fl_limits *lim, char *err);
int fl_store_write(struct fl_upload *u, const void *p, size_t n, char *err);
/*
 * Validate every byte of the upload as exactly one blob within lim (magic,
 * header, crc, padding), fsync it, rename it into objects/, fsync the
 * directory and index it (tagged tag when not NULL). Fills id (FL_ID_LEN + 1
 * bytes) and, when info is not NULL, {"id", "kind", "bytes"}. The upload
 * is finished either way: FL_EBLOB (corrupt), FL_ELIMIT (too large or the
 * store is full), FL_EIO. An error naming the id ("stored as ID, but not
 * tagged") is the one case where the object was kept: the tag was not.
 */
int fl_store_commit(struct fl_store *s, struct fl_upload *u,
    const struct fl_limits *lim, const char *tag, char *id, struct fl_val *info,
    char *err);
void fl_store_abort(struct fl_upload *u);
/* Validate the upload as fl_store_commit does, without storing it: for a
 * blob used once and thrown away (a model sent to be trained). */
int fl_store_check(struct fl_upload *u, const struct fl_limits *lim,
    char *err);

/* Open an object read-only; FL_ENOTFOUND when there is none. */
int fl_store_open_object(struct fl_store *s, const char *id, int *fd,
    uint64_t *size, char *err);
/* The object's path (malloc'd, the caller frees) or NULL. */
char *fl_store_path(struct fl_store *s, const char *id);
int fl_store_delete(struct fl_store *s, const char *id, char *kind, size_t kindlen,
    char *err);
/* Point tag at id (taking it off any other object). */
int fl_store_tag(struct fl_store *s, const char *id, const char *tag, char *err);
/* Point tag[k] at id[k] for each k < n, in one write of the tags file:
 * all of them take effect, or none does. */
#define FL_STORE_TAGS_MAX 8
int fl_store_tags(struct fl_store *s, size_t n, const char *const *tag,
    const char *const *id, char *err);
/* id of what tag names, or of the newest object of kind (NULL: any). */
int fl_store_lookup_tag(struct fl_store *s, const char *tag, char *id, char *err);
int fl_store_latest(struct fl_store *s, const char *kind, char *id, char *err);
/* kind of an object (FL_ENOTFOUND). */
int fl_store_kind(struct fl_store *s, const char *id, char *kind, size_t kindlen);

/* A page of the listing, and which objects it may show. */
#define FL_LIST_MAX 1000	/* objects a page holds at most */
struct fl_store_query {
	const char *kind;	/* of this kind only (NULL: any) */
	const char *tag;	/* only the object this tag names (NULL: any) */
	const char *after;	/* from past the cursor a page gave as "next" */
	size_t limit;		/* at most (0, or more than FL_LIST_MAX: FL_LIST_MAX) */
};

/*
 * A page of the listing: each(arg, o) for each object, newest first (by
 * the time it was stored), as many as q allows; o is {"id", "kind", "bytes",
 * "tags", "created", "meta"}, valid during the call only, made with the
 * store's lock held (each must not call the store). next (FL_LIST_CURSOR
 * bytes) gets a cursor when more objects match, "" when not: pass it back as
 * q->after for the next page. Objects stored meanwhile are newer, so never
 * appear in later pages; one deleted meanwhile is not shown. FL_EUSAGE for a
 * bad cursor; each's first non-zero return ends the page and is returned.
 */
#define FL_LIST_CURSOR 48
int fl_store_list(struct fl_store *s, const struct fl_store_query *q,
    int (*each)(void *arg, const struct fl_val *o), void *arg, char *next,
    char *err);
/* An object's header as a map {"kind", "meta", "tensors": [...]}. */
int fl_store_header(struct fl_store *s, const char *id, struct fl_val *v,
    char *err);
/* A blob header as such a map (v initialised here). */
int fl_header_to_val(const struct fl_header *h, struct fl_val *v);

#endif
