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

/* A small blob of kind kind with one f32 tensor of n elements. */
static int
make_blob(struct fl_buf *out, const char *kind, size_t n, unsigned round)
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
	rc = fl_blob_write(fd, path, &h, data, 0, err);
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
store_bytes(struct fl_store *s, const void *p, size_t n, const char *tag,
    char *id, char *err)
{
	struct fl_upload u;
	struct fl_limits lim;
	int rc;

	fl_limits_default(&lim);
	if ((rc = fl_store_begin(s, &u, err)))
		return rc;
	/* in two pieces, as from a socket */
	if ((rc = fl_store_write(&u, p, n / 2, err)) ||
	    (rc = fl_store_write(&u, (const char *)p + n / 2, n - n / 2, err))) {
		fl_store_abort(&u);
		return rc;
	}
	return fl_store_commit(s, &u, &lim, tag, id, NULL, err);
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
	struct fl_store *s;
	struct fl_buf a, b, bad;
	struct fl_val v;
	const struct fl_val *objs = NULL;
	struct fl_upload u;
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
	snprintf(sub + strlen(sub), 8, "/tmp");
	CHECK(count_dir(sub) == 0, "no temp file left behind");
	sub[strlen(sub) - 4] = 0;

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
	snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
	if (system(sub))
		return 1;
	return unit_done();
}
