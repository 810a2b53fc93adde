/* test_store.c: the object store: commit, validation, tags, listing,
 * deletion, limits and recovery from a crash mid-upload. */
#include <fcntl.h>
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

	CHECK(fl_store_list(s, &v, err) == FL_OK && (objs = fl_map_get(&v, "objects")) &&
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
	fl_store_free(s);
	CHECK(fl_store_open(&s, sub, 2 * a.len + 10, err) == FL_OK, "reopen");
	fl_store_usage(s, &nobj, &bytes);
	CHECK(nobj == 2 && bytes == 2 * a.len, "objects survive a restart");
	CHECK(fl_store_lookup_tag(s, "best", got, err) == FL_OK && !strcmp(got, id1),
	    "tags survive a restart");
	snprintf(sub + strlen(sub), 8, "/tmp");
	CHECK(count_dir(sub) == 0, "stale temp file removed");
	sub[strlen(sub) - 4] = 0;
	CHECK(store_bytes(s, b.data, b.len, NULL, got, err) == FL_ELIMIT, "store full: %s", err);
	CHECK(fl_store_room(s, 5, err) == FL_OK && fl_store_room(s, 11, err) == FL_ELIMIT, "room");
	fl_store_free(s);

	fl_buf_release(&a);
	fl_buf_release(&b);
	fl_buf_release(&bad);
	fl_buf_release(&z);
	snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
	if (system(sub))
		return 1;
	return unit_done();
}
