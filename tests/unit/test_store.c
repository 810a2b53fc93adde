/* test_store.c: the object store: commit, validation, tags, listing,
 * deletion, limits and recovery from a crash mid-upload. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "store.h"
#include "unit.h"

/* A small blob of kind kind with one f32 tensor of n elements, deflated
 * when enc is FL_ZLIB. */
static int
make_blob_enc(struct fl_buf *out, const char *kind, size_t n, unsigned round,
    enum fl_enc enc)
{
	char path[] = "/tmp/flkit-store-blob.XXXXXX";
	struct fl_header h;
	float *x = calloc(n, sizeof(float));
	uint64_t shape[1] = { n };
	const void *data[1] = { x };
	char err[FL_ERRLEN];
	unsigned char buf[4096];
	ssize_t r;
	int fd = mkstemp(path), rc;

	for (size_t i = 0; i < n; i++)
		x[i] = (float)i * 0.5f;
	fl_header_init(&h, kind);
	fl_map_set_uint(&h.meta, "round", round);
	fl_header_add(&h, "w", FL_F32, 1, shape);
	h.t[0].enc = enc;
	rc = fl_blob_write(fd, path, &h, data, 6, err);
	fl_header_release(&h);
	free(x);
	lseek(fd, 0, SEEK_SET);
	fl_buf_init(out, 0);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		fl_buf_add(out, buf, (size_t)r);
	close(fd);
	unlink(path);
	return rc;
}

static int
make_blob(struct fl_buf *out, const char *kind, size_t n, unsigned round)
{
	return make_blob_enc(out, kind, n, round, FL_RAW);
}

/* Store n bytes in two writes; checked: with fl_store_begin_checked. */
static int
store_upload(struct fl_store *s, const void *p, size_t n, const char *tag,
    char *id, int checked, char *err)
{
	struct fl_upload u;
	struct fl_limits lim;
	int rc;

	fl_limits_default(&lim);
	if ((rc = checked ? fl_store_begin_checked(s, &u, &lim, err) :
	    fl_store_begin(s, &u, err)))
		return rc;
	/* in two pieces, as from a socket */
	if ((rc = fl_store_write(&u, p, n / 2, err)) ||
	    (rc = fl_store_write(&u, (const char *)p + n / 2, n - n / 2, err))) {
		fl_store_abort(&u);
		return rc;
	}
	return fl_store_commit(s, &u, &lim, tag, id, NULL, err);
}

static int
store_bytes(struct fl_store *s, const void *p, size_t n, const char *tag,
    char *id, char *err)
{
	return store_upload(s, p, n, tag, id, 0, err);
}

/*
 * A deflated blob whose stored bytes are damaged with the crc32 in its
 * header made to match: only inflating the tensor finds it out.
 */
static int
make_bad_deflate(struct fl_buf *out)
{
	struct fl_check k;
	char err[FL_ERRLEN];
	uint64_t off, size;
	uint32_t old, crc;
	unsigned char pat[5];
	int rc;

	if ((rc = make_blob_enc(out, "model", 1000, 1, FL_ZLIB)))
		return rc;
	fl_check_init(&k, "zlib");
	rc = fl_check_feed(&k, out->data, out->len, err);
	off = k.h.t[0].offset;
	size = k.h.t[0].size;
	old = k.h.t[0].crc;
	fl_check_release(&k);
	if (rc || size < 8)
		return FL_EFAIL;
	memset(out->data + off + 2, 0xff, (size_t)size - 6);
	crc = fl_crc32(0, out->data + off, (size_t)size);
	pat[0] = 0xce;	/* msgpack uint32, big-endian */
	for (int i = 0; i < 4; i++)
		pat[1 + i] = (unsigned char)(old >> (24 - 8 * i));
	for (size_t i = 0; i + 5 <= off; i++)
		if (!memcmp(out->data + i, pat, 5)) {
			for (int j = 0; j < 4; j++)
				out->data[i + 1 + j] = (unsigned char)(crc >> (24 - 8 * j));
			return FL_OK;
		}
	return FL_EFAIL;
}

/* fl_store_list's callback: a copy of each object into an array. */
static int
collect(void *arg, const struct fl_val *o)
{
	struct fl_val c;

	if (fl_val_copy(&c, o))
		return FL_EFAIL;
	if (fl_array_push(arg, &c)) {
		fl_val_release(&c);
		return FL_EFAIL;
	}
	return FL_OK;
}

/* A page of q as {"objects": [...], "next"} in v (initialised here). */
static int
list_page(struct fl_store *s, const struct fl_store_query *q, struct fl_val *v,
    char *err)
{
	struct fl_val arr;
	char next[FL_LIST_CURSOR];
	int rc;

	fl_val_map(v);
	fl_val_array(&arr);
	rc = fl_store_list(s, q, collect, &arr, next, err);
	if (fl_map_set(v, "objects", &arr) || (next[0] && fl_map_set_str(v, "next", next)))
		rc = FL_EFAIL;
	fl_val_release(&arr);
	return rc;
}

/* Walk the listing of q page by page into ids (newest first); the count,
 * or -1 when a page goes wrong. */
static long
list_all(struct fl_store *s, struct fl_store_query q, char (*ids)[FL_ID_LEN + 1],
    size_t max, size_t *pages)
{
	char err[FL_ERRLEN], cursor[64];
	long n = 0;

	*pages = 0;
	for (;;) {
		struct fl_val v;
		const struct fl_val *objs;
		const char *next;
		if (list_page(s, &q, &v, err) || !(objs = fl_map_get(&v, "objects")) ||
		    objs->type != FL_V_ARRAY) {
			fl_val_release(&v);
			return -1;
		}
		(*pages)++;
		for (size_t i = 0; i < objs->v.a.n; i++, n++) {
			const char *id = fl_map_get_str(&objs->v.a.items[i], "id");
			if (!id || (size_t)n >= max) {
				fl_val_release(&v);
				return -1;
			}
			memcpy(ids[n], id, FL_ID_LEN + 1);
		}
		if (!(next = fl_map_get_str(&v, "next"))) {
			fl_val_release(&v);
			return n;
		}
		snprintf(cursor, sizeof(cursor), "%s", next);
		q.after = cursor;
		fl_val_release(&v);
	}
}

/*
 * Many objects: lookups, deletes and pages of the listing stay right past
 * the hash table's growth and the index's compaction, and the order of
 * storing survives a restart.
 */
static void
test_many(const char *dir)
{
	enum { N = 1500 };
	static char ids[N][FL_ID_LEN + 1], got[N][FL_ID_LEN + 1];
	struct fl_store_query q = { 0 };
	struct fl_store *s;
	struct fl_buf m, d;
	struct fl_val v;
	const struct fl_val *objs;
	char err[FL_ERRLEN] = "", kind[16], id[FL_ID_LEN + 1];
	size_t pages, ndata = 0, live;
	uint64_t nobj, bytes;
	long n;
	int ok;

	CHECK(fl_store_open(&s, dir, 0, err) == FL_OK, "many: open: %s", err);
	make_blob(&m, "model", 4, 1);
	make_blob(&d, "dataset", 4, 1);
	ok = 1;
	for (size_t i = 0; i < N && ok; i++) {
		ok = store_bytes(s, i % 3 ? m.data : d.data, i % 3 ? m.len : d.len,
		    NULL, ids[i], err) == FL_OK;
		ndata += !(i % 3);
	}
	CHECK(ok, "many: %d objects stored: %s", N, err);

	n = list_all(s, q, got, N, &pages);
	ok = n == N && pages == 2;
	for (size_t i = 0; ok && i < N; i++)
		ok = !strcmp(got[i], ids[N - 1 - i]);
	CHECK(ok, "many: two pages of at most %d, newest first (%ld in %zu)",
	    FL_LIST_MAX, n, pages);
	q.limit = 7;
	q.kind = "dataset";
	n = list_all(s, q, got, N, &pages);
	ok = n == (long)ndata && pages == (ndata + 6) / 7;
	for (size_t i = 0; ok && i < ndata; i++)
		ok = !strcmp(got[i], ids[3 * (ndata - 1 - i)]);
	CHECK(ok, "many: pages of 7 datasets, each once, in order (%ld in %zu)", n, pages);

	/* Delete two objects in three, and the next page goes on from a
	 * cursor whose own object is gone. */
	q.kind = NULL;
	q.limit = 10;
	CHECK(list_page(s, &q, &v, err) == FL_OK && fl_map_get_str(&v, "next"),
	    "many: a first page of 10");
	ok = 1;
	live = 0;
	for (size_t i = 0; i < N && ok; i++) {
		if (i % 3 == 0) {
			live++;
			continue;
		}
		ok = fl_store_delete(s, ids[i], kind, sizeof(kind), err) == FL_OK &&
		    !strcmp(kind, "model");
	}
	CHECK(ok, "many: %zu deleted: %s", N - live, err);
	fl_store_usage(s, &nobj, &bytes);
	CHECK(nobj == live && bytes == live * d.len, "many: usage counts what is left");
	ok = 1;
	for (size_t i = 0; i < N && ok; i++)
		ok = (fl_store_kind(s, ids[i], kind, sizeof(kind)) == FL_OK) == (i % 3 == 0);
	CHECK(ok, "many: each id found exactly when it is still there");
	q.after = fl_map_get_str(&v, "next");	/* after ids[N - 10], deleted */
	n = list_all(s, q, got, N, &pages);
	ok = n == (long)live - 3;	/* ids[N - 3], [N - 6] and [N - 9] came first */
	for (size_t i = 0; ok && i < (size_t)n; i++)
		ok = !strcmp(got[i], ids[N - 12 - 3 * i]);
	CHECK(ok, "many: the listing goes on past a deleted cursor (%ld)", n);
	fl_val_release(&v);
	q.after = "12x";
	CHECK(list_page(s, &q, &v, err) == FL_EUSAGE, "many: a bad cursor: %s", err);
	fl_val_release(&v);
	q.after = NULL;

	CHECK(fl_store_latest(s, "dataset", id, err) == FL_OK && !strcmp(id, ids[N - 3]) &&
	    fl_store_latest(s, "model", id, err) == FL_ENOTFOUND,
	    "many: the newest dataset, and no model left");
	CHECK(fl_store_tag(s, ids[300], "pick", err) == FL_OK, "many: tag one");
	q.tag = "pick";
	CHECK(list_page(s, &q, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
	    objs->v.a.n == 1 && !strcmp(fl_map_get_str(&objs->v.a.items[0], "id"), ids[300]) &&
	    fl_map_get(&objs->v.a.items[0], "tags")->v.a.n == 1 && !fl_map_get(&v, "next"),
	    "many: the object a tag names");
	fl_val_release(&v);
	q.kind = "model";
	CHECK(list_page(s, &q, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
	    objs->v.a.n == 0, "many: ... and none of another kind");
	fl_val_release(&v);
	q.tag = "nope";
	q.kind = NULL;
	CHECK(list_page(s, &q, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
	    objs->v.a.n == 0, "many: none for an unknown tag");
	fl_val_release(&v);
	q.tag = NULL;

	/* The order is the one of storing, after a restart as before. */
	for (size_t i = 0; i < 5; i++)
		CHECK(store_bytes(s, m.data, m.len, NULL, ids[3 * i + 1], err) == FL_OK,
		    "many: stored again");
	n = list_all(s, q, got, N, &pages);
	fl_store_free(s);
	CHECK(fl_store_open(&s, dir, 0, err) == FL_OK, "many: reopen");
	{
		static char again[N][FL_ID_LEN + 1];
		size_t p2;
		long n2 = list_all(s, q, again, N, &p2);
		ok = n2 == n && n == (long)live + 5 && !memcmp(again, got, (size_t)n * sizeof(*got));
		CHECK(ok, "many: the same listing after a restart (%ld, %ld)", n, n2);
	}
	CHECK(fl_store_latest(s, "model", id, err) == FL_OK && !strcmp(id, ids[13]),
	    "many: the newest model after a restart");
	CHECK(store_bytes(s, m.data, m.len, NULL, id, err) == FL_OK &&
	    list_page(s, &q, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
	    !strcmp(fl_map_get_str(&objs->v.a.items[0], "id"), id),
	    "many: stored after the restart, it comes first");
	fl_val_release(&v);
	fl_store_free(s);
	fl_buf_release(&m);
	fl_buf_release(&d);
}

/*
 * Threads that tag and delete side by side: whatever order their writes of
 * the tags file came in, the file holds what the store held last.
 */
struct racer {
	struct fl_store *s;
	const struct fl_buf *blob;
	int n, failed;
};

static void *
race_tags(void *arg)
{
	struct racer *r = arg;
	char id[FL_ID_LEN + 1], prev[FL_ID_LEN + 1] = "", own[32], err[FL_ERRLEN];

	snprintf(own, sizeof(own), "own-%p", arg);
	for (int i = 0; i < r->n; i++) {
		if (store_bytes(r->s, r->blob->data, r->blob->len, "shared", id, err) ||
		    fl_store_tag(r->s, id, own, err) ||
		    (prev[0] && i % 3 == 0 && fl_store_delete(r->s, prev, NULL, 0, err)))
			r->failed++;
		memcpy(prev, id, sizeof(prev));
	}
	return NULL;
}

static void
test_tag_race(const char *dir)
{
	enum { T = 4 };
	struct fl_store *s;
	struct fl_buf m;
	struct racer r[T];
	pthread_t th[T];
	char err[FL_ERRLEN], before[T + 1][FL_ID_LEN + 1], after[FL_ID_LEN + 1];
	char name[32];
	int failed = 0, same = 1;

	CHECK(fl_store_open(&s, dir, 0, err) == FL_OK, "race: open");
	CHECK(make_blob(&m, "model", 8, 1) == FL_OK, "race: a blob");
	for (int i = 0; i < T; i++) {
		r[i] = (struct racer){ s, &m, 40, 0 };
		pthread_create(&th[i], NULL, race_tags, &r[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		failed += r[i].failed;
	}
	CHECK(!failed, "race: every store, tag and delete succeeded (%d failed)", failed);
	for (int i = 0; i <= T; i++) {
		if (i < T)
			snprintf(name, sizeof(name), "own-%p", (void *)&r[i]);
		if (fl_store_lookup_tag(s, i < T ? name : "shared", before[i], err))
			before[i][0] = 0;
	}
	fl_store_free(s);
	CHECK(fl_store_open(&s, dir, 0, err) == FL_OK, "race: reopen");
	for (int i = 0; i <= T; i++) {
		if (i < T)
			snprintf(name, sizeof(name), "own-%p", (void *)&r[i]);
		if (fl_store_lookup_tag(s, i < T ? name : "shared", after, err))
			after[0] = 0;
		same &= before[i][0] && !strcmp(before[i], after);
	}
	CHECK(same, "race: the tags file holds the last tags after a restart");
	fl_store_free(s);
	fl_buf_release(&m);
}

static size_t
count_dir(const char *dir)
{
	char cmd[512];
	FILE *f;
	size_t n = 0;
	int c;

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
	if (!(f = popen(cmd, "r")))
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	pclose(f);
	return n;
}

int
main(void)
{
	char dir[] = "/tmp/flkit-store.XXXXXX", sub[600], err[FL_ERRLEN] = "";
	char id1[FL_ID_LEN + 1], id2[FL_ID_LEN + 1], id3[FL_ID_LEN + 1], got[FL_ID_LEN + 1];
	char id4[FL_ID_LEN + 1];
	unsigned char rbuf[4096];
	struct fl_store *s;
	struct fl_buf a, b, bad, z;
	struct fl_val v;
	const struct fl_val *objs = NULL;
	struct fl_upload u;
	struct fl_limits lim;
	struct fl_store_query all = { 0 };
	uint64_t nobj, bytes, size;
	int fd;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sub, sizeof(sub), "%s/w/store", dir);
	CHECK(make_blob(&a, "model", 100, 1) == FL_OK && make_blob(&b, "dataset", 10, 2) == FL_OK,
	    "test blobs");

	CHECK(fl_id_valid("0123456789abcdef") && !fl_id_valid("../x") &&
	    !fl_id_valid("0123456789ABCDEF") && !fl_id_valid("0123456789abcde") &&
	    !fl_id_valid(""), "ids: 16 lowercase hex digits only");
	CHECK(fl_tag_valid("best") && fl_tag_valid("round-3.v_1") && !fl_tag_valid("../x") &&
	    !fl_tag_valid(".hidden") && !fl_tag_valid("a/b") && !fl_tag_valid(""), "tags");

	CHECK(fl_store_open(&s, sub, 0, err) == FL_OK, "open creates the directory: %s", err);
	CHECK(store_bytes(s, a.data, a.len, NULL, id1, err) == FL_OK && fl_id_valid(id1),
	    "store a model: %s", id1);
	CHECK(store_bytes(s, b.data, b.len, "data", id2, err) == FL_OK, "store a dataset, tagged");
	CHECK(store_bytes(s, a.data, a.len, "best", id3, err) == FL_OK && strcmp(id1, id3),
	    "same bytes again get another id");
	fl_store_usage(s, &nobj, &bytes);
	CHECK(nobj == 3 && bytes == 2 * a.len + b.len, "usage %llu objects %llu bytes",
	    (unsigned long long)nobj, (unsigned long long)bytes);

	fl_buf_init(&bad, 0);
	fl_buf_add(&bad, a.data, a.len);
	bad.data[bad.len - 70] ^= 1;	/* inside the tensor */
	CHECK(store_bytes(s, bad.data, bad.len, NULL, got, err) == FL_EBLOB,
	    "corrupt tensor refused: %s", err);
	CHECK(store_bytes(s, a.data, a.len - 1, NULL, got, err) == FL_EBLOB, "truncated refused");
	CHECK(store_bytes(s, "hello", 5, NULL, got, err) == FL_EBLOB, "not a blob refused");
	fl_buf_add(&bad, b.data, b.len);
	memcpy(bad.data, a.data, a.len);
	CHECK(store_bytes(s, bad.data, bad.len, NULL, got, err) == FL_EBLOB,
	    "two blobs in one upload refused: %s", err);

	/* Checked uploads: the same verdicts without reading the file back. */
	CHECK(store_upload(s, a.data, a.len, NULL, id4, 1, err) == FL_OK &&
	    fl_id_valid(id4), "checked upload stored: %s", err);
	CHECK(fl_store_open_object(s, id4, &fd, &size, err) == FL_OK && size == a.len &&
	    read(fd, rbuf, sizeof(rbuf)) == (ssize_t)a.len && !memcmp(rbuf, a.data, a.len),
	    "checked upload: every byte on disk");
	close(fd);
	CHECK(fl_store_delete(s, id4, NULL, 0, err) == FL_OK, "deleted again");
	memcpy(bad.data, a.data, a.len);
	bad.data[a.len - 70] ^= 1;
	CHECK(store_upload(s, bad.data, a.len, NULL, got, 1, err) == FL_EBLOB &&
	    strstr(err, "crc32 mismatch"), "checked: corrupt tensor refused: %s", err);
	CHECK(store_upload(s, a.data, a.len - 1, NULL, got, 1, err) == FL_EBLOB &&
	    strstr(err, "truncated"), "checked: truncated refused: %s", err);
	CHECK(store_upload(s, "hello", 5, NULL, got, 1, err) == FL_EBLOB,
	    "checked: not a blob refused: %s", err);
	memcpy(bad.data, a.data, a.len);
	CHECK(store_upload(s, bad.data, bad.len, NULL, got, 1, err) == FL_EBLOB &&
	    strstr(err, "after the blob"), "checked: two blobs refused: %s", err);
	bad.data[a.len - 70] ^= 1;
	fl_limits_default(&lim);
	CHECK(fl_store_begin_checked(s, &u, &lim, err) == FL_OK &&
	    fl_store_write(&u, a.data, a.len, err) == FL_OK &&
	    fl_store_check(&u, &lim, err) == FL_OK, "check without storing: %s", err);
	fl_store_abort(&u);
	CHECK(fl_store_begin_checked(s, &u, &lim, err) == FL_OK &&
	    fl_store_write(&u, bad.data, a.len, err) == FL_OK &&
	    fl_store_check(&u, &lim, err) == FL_EBLOB && strstr(err, "crc32 mismatch"),
	    "check without storing finds the bad tensor: %s", err);
	fl_store_abort(&u);
	CHECK(make_bad_deflate(&z) == FL_OK, "a deflated blob with a bad stream");
	CHECK(store_upload(s, z.data, z.len, NULL, got, 1, err) == FL_EBLOB &&
	    strstr(err, "inflate"), "checked: deflated tensors are inflated: %s", err);
	snprintf(sub + strlen(sub), 8, "/tmp");
	CHECK(count_dir(sub) == 0, "no temp file left behind");
	sub[strlen(sub) - 4] = 0;
	fl_store_usage(s, &nobj, &bytes);
	CHECK(nobj == 3, "nothing refused was stored");

	CHECK(fl_store_latest(s, "model", got, err) == FL_OK && !strcmp(got, id3), "latest model");
	CHECK(fl_store_latest(s, NULL, got, err) == FL_OK && !strcmp(got, id3), "latest of any kind");
	CHECK(fl_store_latest(s, "pointer", got, err) == FL_ENOTFOUND, "no pointer");
	CHECK(fl_store_lookup_tag(s, "data", got, err) == FL_OK && !strcmp(got, id2), "tag lookup");
	CHECK(fl_store_tag(s, id1, "best", err) == FL_OK &&
	    fl_store_lookup_tag(s, "best", got, err) == FL_OK && !strcmp(got, id1),
	    "moving a tag");
	CHECK(fl_store_tag(s, "0000000000000000", "x", err) == FL_ENOTFOUND, "tag unknown object");
	CHECK(fl_store_tag(s, id1, "a/b", err) == FL_EUSAGE, "bad tag refused");
	{
		const char *tg[2] = { "one", "best" }, *to[2] = { id3, id1 };
		const char *none[2] = { id3, "0000000000000000" };
		CHECK(fl_store_tags(s, 2, tg, to, err) == FL_OK &&
		    fl_store_lookup_tag(s, "one", got, err) == FL_OK && !strcmp(got, id3) &&
		    fl_store_lookup_tag(s, "best", got, err) == FL_OK && !strcmp(got, id1),
		    "two tags at once");
		tg[0] = "best";
		tg[1] = "one";
		CHECK(fl_store_tags(s, 2, tg, none, err) == FL_ENOTFOUND &&
		    fl_store_lookup_tag(s, "best", got, err) == FL_OK && !strcmp(got, id1),
		    "one unknown object: no tag moves");
	}

	CHECK(list_page(s, &all, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
	    objs->type == FL_V_ARRAY && objs->v.a.n == 3, "list has three");
	CHECK(!strcmp(fl_map_get_str(&objs->v.a.items[0], "id"), id3) &&
	    !strcmp(fl_map_get_str(&objs->v.a.items[2], "id"), id1), "newest first");
	CHECK(fl_map_get(&objs->v.a.items[2], "tags")->v.a.n == 1 &&
	    fl_map_get(fl_map_get(&objs->v.a.items[2], "meta"), "round"), "tags and meta summary");
	fl_val_release(&v);

	CHECK(fl_store_header(s, id2, &v, err) == FL_OK &&
	    !strcmp(fl_map_get_str(&v, "kind"), "dataset") &&
	    fl_map_get(&v, "tensors")->v.a.n == 1, "header as a map");
	fl_val_release(&v);
	CHECK(fl_store_header(s, "0000000000000000", &v, err) == FL_ENOTFOUND, "header of none");
	CHECK(fl_store_open_object(s, id2, &fd, &size, err) == FL_OK && size == b.len, "open object");
	close(fd);
	CHECK(fl_store_open_object(s, "../../etc/passwd", &fd, &size, err) == FL_EUSAGE,
	    "no path outside the store");

	CHECK(fl_store_delete(s, id2, NULL, 0, err) == FL_OK &&
	    fl_store_open_object(s, id2, &fd, &size, err) == FL_ENOTFOUND &&
	    fl_store_lookup_tag(s, "data", got, err) == FL_ENOTFOUND, "delete takes its tags");
	CHECK(fl_store_delete(s, id2, NULL, 0, err) == FL_ENOTFOUND, "delete twice");

	/* An upload under way when the process dies: reopened, no trace. */
	CHECK(fl_store_begin(s, &u, err) == FL_OK && fl_store_write(&u, a.data, 100, err) == FL_OK,
	    "upload begun");
	close(u.fd);
	free(u.tmp);
	/* and a tags file half written: the tags are the last whole file's */
	snprintf(sub + strlen(sub), 24, "/tags.tmp.AbCdEf");
	fd = open(sub, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, "best 00", 7) == 7, "a half-written tags file");
	close(fd);
	sub[strlen(sub) - 16] = 0;
	fl_store_free(s);
	CHECK(fl_store_open(&s, sub, 2 * a.len + 10, err) == FL_OK, "reopen");
	fl_store_usage(s, &nobj, &bytes);
	CHECK(nobj == 2 && bytes == 2 * a.len, "objects survive a restart");
	CHECK(fl_store_lookup_tag(s, "best", got, err) == FL_OK && !strcmp(got, id1),
	    "tags survive a restart");
	snprintf(sub + strlen(sub), 8, "/tmp");
	CHECK(count_dir(sub) == 0, "stale temp file removed");
	sub[strlen(sub) - 4] = 0;
	CHECK(count_dir(sub) == 3, "stale tags temp file removed (objects, tags, tmp left)");
	CHECK(store_bytes(s, b.data, b.len, NULL, got, err) == FL_ELIMIT, "store full: %s", err);
	CHECK(fl_store_room(s, 5, err) == FL_OK && fl_store_room(s, 11, err) == FL_ELIMIT, "room");
	fl_store_free(s);

	fl_buf_release(&a);
	fl_buf_release(&b);
	fl_buf_release(&bad);
	fl_buf_release(&z);
	snprintf(sub, sizeof(sub), "%s/many", dir);
	test_many(sub);
	snprintf(sub, sizeof(sub), "%s/race", dir);
	test_tag_race(sub);
	snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
	if (system(sub))
		return 1;
	return unit_done();
}
