/* client.c: the workers file, pointers, and the worker protocol's requests
 * over libcurl, streaming and checking blobs both ways. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client.h"
#include "curl_load.h"

#define MAX_WORKERS_FILE (1 << 20)
#define MAX_REPLY (64u << 20)
#define MAX_ERRBODY (64u << 10)
#define MAX_REF (1u << 20)
/* libcurl's receive buffer, as curl(1)'s own: a download here runs at
 * about curl's speed with reads of 32 to 120 KiB, and at half of it with
 * reads of 128 KiB or more (1 GiB from fl-serve on loopback: a median of
 * 0.36 s against 0.67 s with 256 KiB). Why the larger reads are slower
 * we have not found: the copy out of the socket itself takes longer. */
#define RECV_BUFFER (100L << 10)

/* ---- names, ids, tags ---- */

int
fl_worker_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64 || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

int
fl_is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static char *
strndup_trim_slash(const char *s, size_t n)
{
	while (n && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

/* ---- the workers file ---- */

static char *
dir_join(const char *file, const char *rel)
{
	const char *slash = strrchr(file, '/');
	size_t d;
	char *out;

	if (rel[0] == '/' || !slash)
		return strdup(rel);
	d = (size_t)(slash - file);
	if (!(out = malloc(d + strlen(rel) + 2)))
		return NULL;
	memcpy(out, file, d);
	out[d] = '/';
	strcpy(out + d + 1, rel);
	return out;
}

void
fl_workers_release(struct fl_workers *ws)
{
	for (size_t i = 0; i < ws->n; i++) {
		free(ws->w[i].name);
		free(ws->w[i].url);
		free(ws->w[i].token_file);
	}
	free(ws->w);
	free(ws->path);
	memset(ws, 0, sizeof(*ws));
}

int
fl_workers_parse(struct fl_workers *ws, const char *text, size_t len,
    const char *path, char *err)
{
	size_t i = 0;
	int line = 0, rc = FL_OK;

	memset(ws, 0, sizeof(*ws));
	if (!(ws->path = strdup(path)))
		return fl_err(err, FL_EFAIL, "out of memory");
	while (i < len && !rc) {
		char buf[4096], *f[4], *s, *save = NULL;
		size_t e = i, nf = 0;

		line++;
		while (e < len && text[e] != '\n')
			e++;
		if (e - i >= sizeof(buf)) {
			rc = fl_err(err, FL_EBLOB, "%s:%d: line too long", path, line);
			break;
		}
		memcpy(buf, text + i, e - i);
		buf[e - i] = 0;
		i = e + 1;
		if ((s = strchr(buf, '#')))
			*s = 0;
		for (s = strtok_r(buf, " \t\r", &save); s && nf < 4;
		    s = strtok_r(NULL, " \t\r", &save))
			f[nf++] = s;
		if (nf == 0)
			continue;
		if (nf < 2 || nf > 3) {
			rc = fl_err(err, FL_EBLOB, "%s:%d: expected 'NAME URL [TOKEN-FILE]'",
			    path, line);
			break;
		}
		if (!fl_worker_name_valid(f[0])) {
			rc = fl_err(err, FL_EBLOB, "%s:%d: '%.64s' is not a worker name "
			    "(letters, digits, '.', '_', '-')", path, line, f[0]);
			break;
		}
		if (!fl_is_url(f[1])) {
			rc = fl_err(err, FL_EBLOB, "%s:%d: '%.200s' is not an http:// or "
			    "https:// URL", path, line, f[1]);
			break;
		}
		for (size_t j = 0; j < ws->n; j++) {
			if (!strcmp(ws->w[j].name, f[0])) {
				rc = fl_err(err, FL_EBLOB, "%s:%d: worker '%s' already "
				    "named on line %d", path, line, f[0], ws->w[j].line);
				break;
			}
		}
		if (rc)
			break;
		struct fl_worker *nw = realloc(ws->w, (ws->n + 1) * sizeof(*nw));
		if (!nw) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			break;
		}
		ws->w = nw;
		nw = &ws->w[ws->n++];
		memset(nw, 0, sizeof(*nw));
		nw->line = line;
		nw->name = strdup(f[0]);
		nw->url = strndup_trim_slash(f[1], strlen(f[1]));
		if (nf == 3)
			nw->token_file = dir_join(path, f[2]);
		if (!nw->name || !nw->url || (nf == 3 && !nw->token_file))
			rc = fl_err(err, FL_EFAIL, "out of memory");
	}
	if (rc)
		fl_workers_release(ws);
	return rc;
}

int
fl_workers_load(struct fl_workers *ws, const char *path, char *err)
{
	char def[4096];
	struct fl_buf b;
	const char *e;
	int fd, rc;

	if (!path && (e = getenv("FL_WORKERS")) && *e)
		path = e;
	if (!path) {
		if ((e = getenv("XDG_CONFIG_HOME")) && *e)
			snprintf(def, sizeof(def), "%s/flkit/workers", e);
		else
			snprintf(def, sizeof(def), "%s/.config/flkit/workers",
			    (e = getenv("HOME")) ? e : "");
		path = def;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT) {
			memset(ws, 0, sizeof(*ws));
			return (ws->path = strdup(path)) ? FL_OK :
			    fl_err(err, FL_EFAIL, "out of memory");
		}
		return fl_errno(err, FL_EIO, "%s", path);
	}
	fl_buf_init(&b, MAX_WORKERS_FILE);
	for (;;) {
		if ((rc = fl_buf_reserve(&b, 4096))) {
			close(fd);
			fl_buf_release(&b);
			return fl_err(err, rc, "%s: larger than %u bytes", path,
			    MAX_WORKERS_FILE);
		}
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fl_errno(err, FL_EIO, "%s", path);
			close(fd);
			fl_buf_release(&b);
			return FL_EIO;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
	}
	close(fd);
	rc = fl_workers_parse(ws, (const char *)b.data, b.len, path, err);
	fl_buf_release(&b);
	return rc;
}

/* The first word of the first line that is not blank or a comment. */
static int
read_token(const char *path, const char *worker, char **out, char *err)
{
	char line[4096];
	FILE *f;

	if (!(f = fopen(path, "re")))
		return fl_errno(err, FL_EIO, "%s: token file of worker %s", path, worker);
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *e;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#')
			continue;
		for (e = s; *e && !isspace((unsigned char)*e); e++)
			;
		*e = 0;
		fclose(f);
		return (*out = strdup(s)) ? FL_OK : fl_err(err, FL_EFAIL, "out of memory");
	}
	fclose(f);
	return fl_err(err, FL_EDATA, "%s: token file of worker %s holds no token",
	    path, worker);
}

void
fl_endpoint_release(struct fl_endpoint *ep)
{
	free(ep->name);
	free(ep->url);
	if (ep->token)
		memset(ep->token, 0, strlen(ep->token));
	free(ep->token);
	memset(ep, 0, sizeof(*ep));
}

int
fl_endpoint_resolve(struct fl_endpoint *ep, const struct fl_workers *ws,
    const char *s, char *err)
{
	const struct fl_worker *w = NULL;
	int rc;

	memset(ep, 0, sizeof(*ep));
	if (fl_is_url(s)) {
		if (!(ep->url = strndup_trim_slash(s, strlen(s))))
			return fl_err(err, FL_EFAIL, "out of memory");
		for (size_t i = 0; i < ws->n && !w; i++)
			if (!strcmp(ws->w[i].url, ep->url))
				w = &ws->w[i];
	} else {
		for (size_t i = 0; i < ws->n; i++)
			if (!strcmp(ws->w[i].name, s))
				w = &ws->w[i];
		if (!w)
			return fl_err(err, FL_ENOTFOUND, "%s: no such worker in %s "
			    "(add a line '%s URL [TOKEN-FILE]', or give a URL)",
			    s, ws->path ? ws->path : "the workers file", s);
		if (!(ep->url = strdup(w->url)))
			return fl_err(err, FL_EFAIL, "out of memory");
	}
	if (!(ep->name = strdup(s))) {
		fl_endpoint_release(ep);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	if (w && w->token_file && (rc = read_token(w->token_file, w->name, &ep->token, err))) {
		fl_endpoint_release(ep);
		return rc;
	}
	return FL_OK;
}

/* ---- pointers ---- */

void
fl_ptr_release(struct fl_ptr *p)
{
	free(p->worker);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

static int
ptr_set(struct fl_ptr *p, enum fl_ptr_kind kind, const char *w, size_t wn,
    const char *name, char *err)
{
	p->kind = kind;
	p->worker = kind == FL_PTR_URL ? strndup(w, wn) : strndup_trim_slash(w, wn);
	p->name = name ? strdup(name) : NULL;
	if (!p->worker || (name && !p->name)) {
		fl_ptr_release(p);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	return FL_OK;
}

int
fl_ptr_parse(struct fl_ptr *p, const char *s, char *err)
{
	const char *slash, *last;
	size_t n;

	memset(p, 0, sizeof(*p));
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (!n || n > 4096 || memchr(s, 0, n) != NULL)
		return fl_err(err, FL_EUSAGE, "empty pointer");
	char *t = strndup(s, n);
	if (!t)
		return fl_err(err, FL_EFAIL, "out of memory");
	int rc = FL_OK;
	if (fl_is_url(t)) {
		const char *host = strstr(t, "://") + 3;
		slash = strchr(host, '/');
		if (strpbrk(t, " \t\r\n"))
			rc = fl_err(err, FL_EUSAGE, "'%.200s' is not a URL", t);
		else if (!slash || !slash[1] || t[n - 1] == '/')
			rc = ptr_set(p, FL_PTR_LATEST, t, n, NULL, err);
		else if ((last = strrchr(t, '/')) && fl_id_valid(last + 1))
			rc = ptr_set(p, FL_PTR_ID, t, (size_t)(last - t), last + 1, err);
		else
			rc = ptr_set(p, FL_PTR_URL, t, n, NULL, err);
	} else {
		slash = strchr(t, '/');
		size_t wn = slash ? (size_t)(slash - t) : n;
		char *w = strndup(t, wn);
		if (!w) {
			free(t);
			return fl_err(err, FL_EFAIL, "out of memory");
		}
		if (!fl_worker_name_valid(w))
			rc = fl_err(err, FL_EUSAGE, "'%.200s' is not a pointer "
			    "(WORKER, WORKER/ID, WORKER/TAG or a URL)", t);
		else if (!slash || !slash[1])
			rc = ptr_set(p, FL_PTR_LATEST, w, wn, NULL, err);
		else if (fl_id_valid(slash + 1))
			rc = ptr_set(p, FL_PTR_ID, w, wn, slash + 1, err);
		else if (fl_tag_valid(slash + 1))
			rc = ptr_set(p, FL_PTR_TAG, w, wn, slash + 1, err);
		else
			rc = fl_err(err, FL_EUSAGE, "'%.200s' is not a pointer: '%.100s' is "
			    "neither an id (%d hex digits) nor a tag", t, slash + 1, FL_ID_LEN);
		free(w);
	}
	free(t);
	return rc;
}

int
fl_ptr_read(struct fl_ptr *p, int fd, char *err)
{
	char buf[4097];
	size_t n = 0;

	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fl_errno(err, FL_EIO, "<stdin>");
		if (r == 0 || buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	if (!n)
		return fl_err(err, FL_EUSAGE, "<stdin>: no pointer");
	return fl_ptr_parse(p, buf, err);
}

void
fl_ptr_format(const struct fl_ptr *p, char *out, size_t n)
{
	if (p->name)
		snprintf(out, n, "%s/%s", p->worker, p->name);
	else
		snprintf(out, n, "%s", p->worker);
}

/* ---- status mapping ---- */

int
fl_http_status(long http, int blob)
{
	if (http >= 200 && http < 300)
		return FL_OK;
	switch (http) {
	case 400: return blob ? FL_EBLOB : FL_EUSAGE;
	case 401: case 403: return FL_EDENIED;
	case 404: case 410: return FL_ENOTFOUND;
	case 408: case 504: return FL_ETIMEOUT;
	case 413: case 507: return FL_ELIMIT;
	case 502: case 503: return FL_EUNREACH;
	}
	return FL_EFAIL;
}

int
fl_curl_status(int code)
{
	switch ((CURLcode)code) {
	case CURLE_OK:
		return FL_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return FL_EUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return FL_ETIMEOUT;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return FL_EUSAGE;
	case CURLE_FILESIZE_EXCEEDED:
		return FL_ELIMIT;
	default:
		return FL_EFAIL;
	}
}

/* ---- requests ---- */

int
fl_client_init(struct fl_client *c, const struct fl_client_opts *o, char *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	if (o)
		c->o = *o;
	if (c->o.connect_timeout <= 0)
		c->o.connect_timeout = 10;
	if (c->o.timeout <= 0)
		c->o.timeout = 60;
	if (c->o.retries < 0)
		c->o.retries = 2;
	const char *ca = getenv("FL_CACERT");
	if (!c->o.cacert && ca && *ca)
		c->o.cacert = ca;
	if ((rc = fl_curl_load(err)))
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return fl_err(err, FL_EFAIL, "cannot initialise libcurl");
	if ((rc = fl_workers_load(&c->ws, NULL, err))) {
		curl_global_cleanup();
		return rc;
	}
	return FL_OK;
}

void
fl_client_release(struct fl_client *c)
{
	fl_workers_release(&c->ws);
	curl_global_cleanup();
}

/* One transfer's state, shared by the callbacks. */
struct xfer {
	struct fl_client *c;
	CURL *h;
	const char *who;	/* for messages: worker name or URL */
	char *err;
	long http;
	int rc;			/* an error a callback raised */
	/* download */
	struct fl_buf *body;	/* reply body (msgpack, message, error) */
	struct fl_buf errbody;
	struct fl_check *check;	/* blob download: check and pass to sink */
	int follow;		/* hold a reference rather than pass it on */
	int is_ref;
	int passed;		/* bytes went to sink: no retry */
	fl_sink_fn sink;
	void *arg;
	/* upload */
	int fd;
	uint64_t size, sent;
	const unsigned char *pre;	/* bytes already read from fd */
	size_t prelen;
	struct fl_check *upcheck;
	/* an upload whose reply may be a blob (fl_upload_blob) */
	struct fl_blob_reply *br;
	struct fl_check *brcheck;
	int reply_kind;		/* 0: not known yet, 1: a blob, 2: other */
};

static long
status_now(struct xfer *x)
{
	long code = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static size_t
on_write(char *p, size_t sz, size_t nm, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nm;
	int rc;

	x->http = status_now(x);
	if (x->http < 200 || x->http >= 300) {
		/* An error's body: keep its start for the message. */
		size_t room = MAX_ERRBODY - x->errbody.len;
		fl_buf_add(&x->errbody, p, n < room ? n : room);
		return n;
	}
	if (x->br && !x->reply_kind) {
		char *ct = NULL;
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
		x->reply_kind = ct && !strncmp(ct, FL_BLOB_MIME,
		    strlen(FL_BLOB_MIME)) ? 1 : 2;
		if (x->reply_kind == 1) {
			x->check = x->brcheck;
			x->sink = x->br->sink;
			x->arg = x->br->arg;
		}
	}
	if (!x->check) {
		if ((rc = fl_buf_add(x->body, p, n))) {
			x->rc = fl_err(x->err, rc, "%s: reply larger than %zu bytes",
			    x->who, x->body->max);
			return 0;
		}
		return n;
	}
	int had = x->check->have_header;
	if ((rc = fl_check_feed(x->check, p, n, x->err))) {
		x->rc = rc;
		return 0;
	}
	if (!x->check->have_header)
		return n;
	if (!had) {
		x->is_ref = x->follow && !strcmp(x->check->h.kind, "pointer");
		if (x->is_ref && x->check->h.total > MAX_REF) {
			x->rc = fl_err(x->err, FL_EBLOB, "%s: a reference of %llu bytes",
			    x->who, (unsigned long long)x->check->h.total);
			return 0;
		}
		if (x->is_ref)
			return n;
		/* The header is checked: pass on what was held, then the rest
		 * of this chunk (all of it came after the header). */
		size_t held = x->check->head.len;
		size_t tail = (size_t)(x->check->pos - held);
		x->passed = 1;
		if ((rc = x->sink(x->arg, x->check->head.data, held, x->err)) ||
		    (tail && (rc = x->sink(x->arg, p + n - tail, tail, x->err)))) {
			x->rc = rc;
			return 0;
		}
		return n;
	}
	if (!x->is_ref && (rc = x->sink(x->arg, p, n, x->err))) {
		x->rc = rc;
		return 0;
	}
	return n;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct xfer *x = arg;

	if (x->c->o.cancel && *x->c->o.cancel) {
		x->rc = fl_err(x->err, FL_ETIMEOUT, "%s: cancelled", x->who);
		return 1;
	}
	if (x->c->o.progress) {
		if (ultotal > 0)
			x->c->o.progress(x->c->o.progress_arg, (uint64_t)ulnow,
			    (uint64_t)ultotal);
		else if (dlnow > 0)
			x->c->o.progress(x->c->o.progress_arg, (uint64_t)dlnow,
			    (uint64_t)(dltotal > 0 ? dltotal : 0));
	}
	return 0;
}

static size_t
on_read(char *buf, size_t sz, size_t nm, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nm, got = 0;
	int rc;

	if (x->sent >= x->size)
		return 0;
	if (n > x->size - x->sent)
		n = (size_t)(x->size - x->sent);
	if (x->prelen) {
		got = n < x->prelen ? n : x->prelen;
		memcpy(buf, x->pre, got);
		x->pre += got;
		x->prelen -= got;
		x->sent += got;
		return got;
	} else {
		ssize_t r;
		while ((r = read(x->fd, buf, n)) < 0 && errno == EINTR)
			;
		if (r < 0) {
			x->rc = fl_errno(x->err, FL_EIO, "%s", x->upcheck->name);
			return CURL_READFUNC_ABORT;
		}
		if (r == 0) {
			x->rc = fl_err(x->err, FL_EBLOB, "%s: truncated after %llu bytes",
			    x->upcheck->name, (unsigned long long)x->sent);
			return CURL_READFUNC_ABORT;
		}
		got = (size_t)r;
	}
	if ((rc = fl_check_feed(x->upcheck, buf, got, x->err))) {
		x->rc = rc;
		return CURL_READFUNC_ABORT;
	}
	x->sent += got;
	return got;
}

static CURL *
easy(struct xfer *x, const char *url, const char *token, const char *ticket,
    int plain, const char *accept, const char *ctype, struct curl_slist **hl, char *ebuf)
{
	struct fl_client *c = x->c;
	struct curl_slist *l = NULL, *t;
	char line[4200];
	CURL *h;

	if (!(h = curl_easy_init()))
		return NULL;
	x->h = h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "flkit/" FL_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->o.connect_timeout * 1000));
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(c->o.timeout + 0.999));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, RECV_BUFFER);
	if (c->o.cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->o.cacert);
	if (c->o.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (plain) {
		/* A plain web server: presigned URLs and CDNs redirect. */
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	if (ticket)
		snprintf(line, sizeof(line), "Authorization: Ticket %s", ticket);
	else if (token)
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
	if ((ticket || token) && !(l = curl_slist_append(l, line)))
		goto fail;
	snprintf(line, sizeof(line), "Accept: %s", accept);
	if (!(t = curl_slist_append(l, line)))
		goto fail;
	l = t;
	if (!(t = curl_slist_append(l, "Expect:")))
		goto fail;
	l = t;
	if (ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		if (!(t = curl_slist_append(l, line)))
			goto fail;
		l = t;
	}
	memset(line, 0, sizeof(line));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	*hl = l;
	return h;
fail:
	memset(line, 0, sizeof(line));
	curl_slist_free_all(l);
	curl_easy_cleanup(h);
	x->h = NULL;
	return NULL;
}

/* The error a finished transfer ended with, as a status and message. */
static int
xfer_error(struct xfer *x, CURLcode cc, const char *ebuf, const char *url, int blob)
{
	int rc;

	if (x->rc)
		return x->rc;
	if (cc != CURLE_OK) {
		const char *why = ebuf[0] ? ebuf : curl_easy_strerror(cc);
		rc = fl_curl_status(cc);
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
			return fl_err(x->err, rc, "%s: cannot reach %s: %s (is the worker "
			    "running?)", x->who, url, why);
		case CURLE_OPERATION_TIMEDOUT:
			return fl_err(x->err, rc, "%s: timed out: %s (see --timeout and "
			    "--connect-timeout)", x->who, why);
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
			return fl_err(x->err, rc, "%s: TLS: %s (give the CA with --cacert "
			    "or $FL_CACERT)", x->who, why);
		default:
			return fl_err(x->err, rc, "%s: %s", x->who, why);
		}
	}
	if (x->http < 200 || x->http >= 300) {
		struct fl_val v;
		const char *msg = NULL;
		char tmp[FL_ERRLEN];

		rc = fl_http_status(x->http, blob);
		if (x->errbody.len && !fl_val_unpack(&v, x->errbody.data,
		    x->errbody.len, tmp)) {
			if (v.type == FL_V_MAP && (msg = fl_map_get_str(&v, "error")))
				fl_err(x->err, rc, "%s: %.300s (HTTP %ld)", x->who, msg, x->http);
			fl_val_release(&v);
		}
		if (!msg) {
			const char *what;
			switch (rc) {
			case FL_EDENIED: what = x->http == 401 ?
			    "no token or a wrong one (see the workers file's TOKEN-FILE)" :
			    "permission denied"; break;
			case FL_ENOTFOUND: what = "not found"; break;
			case FL_ELIMIT: what = "too large for the server"; break;
			case FL_ETIMEOUT: what = "the server timed out"; break;
			case FL_EBLOB: what = "the server refused the blob"; break;
			default: what = "request failed"; break;
			}
			fl_err(x->err, rc, "%s: %s (HTTP %ld)", x->who, what, x->http);
		}
		return rc;
	}
	return FL_OK;
}

static int
retryable(CURLcode cc, long http)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_GOT_NOTHING ||
	    cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
	    (cc == CURLE_OK && (http == 502 || http == 503));
}

static void
backoff(int attempt)
{
	struct timespec ts;
	long ms = 200L << attempt;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

static char *
make_url(const char *base, const char *path)
{
	size_t n = strlen(base) + strlen(path) + 1;
	char *u = malloc(n);

	if (u)
		snprintf(u, n, "%s%s", base, path);
	return u;
}

int
fl_call(struct fl_client *c, const struct fl_endpoint *ep, const char *method,
    const char *path, const struct fl_val *body, struct fl_val *reply, char *err)
{
	struct fl_buf out, in;
	char ebuf[CURL_ERROR_SIZE];
	int idem = !strcmp(method, "GET") || !strcmp(method, "DELETE");
	int rc = FL_OK;
	char *url;

	if (reply)
		fl_val_nil(reply);
	fl_buf_init(&out, MAX_REPLY);
	fl_buf_init(&in, MAX_REPLY);
	if (body && fl_val_encode(&in, body)) {
		fl_buf_release(&in);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	if (!(url = make_url(ep->url, path))) {
		fl_buf_release(&in);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (int attempt = 0;; attempt++) {
		struct xfer x = { .c = c, .who = ep->name, .err = err, .body = &out };
		struct curl_slist *hl = NULL;
		CURLcode cc;
		CURL *h;

		fl_buf_init(&x.errbody, MAX_ERRBODY);
		out.len = 0;
		ebuf[0] = 0;
		if (!(h = easy(&x, url, ep->token, NULL, 0, FL_MSGPACK_MIME,
		    body ? FL_MSGPACK_MIME : NULL, &hl, ebuf))) {
			rc = fl_err(err, FL_EFAIL, "out of memory");
			fl_buf_release(&x.errbody);
			break;
		}
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (!strcmp(method, "POST") || body) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, in.len ? (char *)in.data : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)in.len);
		}
		cc = curl_easy_perform(h);
		x.http = status_now(&x);
		curl_slist_free_all(hl);
		if (idem && attempt < c->o.retries && retryable(cc, x.http)) {
			curl_easy_cleanup(h);
			fl_buf_release(&x.errbody);
			backoff(attempt);
			continue;
		}
		rc = xfer_error(&x, cc, ebuf, url, 0);
		curl_easy_cleanup(h);
		fl_buf_release(&x.errbody);
		break;
	}
	free(url);
	fl_buf_release(&in);
	if (!rc && reply && out.len && (rc = fl_val_unpack(reply, out.data, out.len, err)))
		fl_err_prefix(err, "%s: bad reply", ep->name);
	fl_buf_release(&out);
	return rc;
}

int
fl_message(struct fl_client *c, const struct fl_endpoint *ep, const char *name,
    const void *body, size_t len, struct fl_buf *reply, char *err)
{
	struct xfer x = { .c = c, .who = ep->name, .err = err, .body = reply };
	char ebuf[CURL_ERROR_SIZE] = "", path[256];
	struct curl_slist *hl = NULL;
	CURLcode cc;
	char *url;
	CURL *h;
	int rc;

	if (!fl_tag_valid(name))
		return fl_err(err, FL_EUSAGE, "'%.64s' is not a message name", name);
	snprintf(path, sizeof(path), "/v1/messages/%s", name);
	if (!(url = make_url(ep->url, path)))
		return fl_err(err, FL_EFAIL, "out of memory");
	fl_buf_init(&x.errbody, MAX_ERRBODY);
	if (!(h = easy(&x, url, ep->token, NULL, 0, "*/*",
	    "application/octet-stream", &hl, ebuf))) {
		free(url);
		fl_buf_release(&x.errbody);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	cc = curl_easy_perform(h);
	x.http = status_now(&x);
	rc = xfer_error(&x, cc, ebuf, url, 0);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	fl_buf_release(&x.errbody);
	free(url);
	return rc;
}

/* Read a blob's magic, hlen and header from fd into k, to learn its size. */
static int
read_head(int fd, struct fl_check *k, char *err)
{
	unsigned char buf[4096];
	int rc;

	while (!k->have_header) {
		size_t want = sizeof(buf);
		if (k->head.len < FL_MAGIC_LEN + 4)
			want = FL_MAGIC_LEN + 4 - k->head.len;
		else {
			const unsigned char *h = k->head.data + FL_MAGIC_LEN;
			uint64_t hlen = (uint64_t)h[0] | (uint64_t)h[1] << 8 |
			    (uint64_t)h[2] << 16 | (uint64_t)h[3] << 24;
			uint64_t left = FL_MAGIC_LEN + 4 + hlen - k->head.len;
			if (left < want)
				want = (size_t)left;
		}
		ssize_t r = fl_read_full(fd, buf, want);
		if (r < 0)
			return fl_errno(err, FL_EIO, "%s", k->name);
		if ((rc = fl_check_feed(k, buf, (size_t)r, err)))
			return rc;
		if ((size_t)r < want)
			return fl_check_end(k, err);
	}
	return FL_OK;
}

/* A blob reply's object id, from its Location: /v1/objects/ID. */
static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nm, k = sizeof("location:") - 1;
	const char *obj = "/v1/objects/";
	char v[128];

	if (n > k && n - k < sizeof(v) && !strncasecmp(p, "location:", k)) {
		size_t i = k, j = 0;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (i < n && p[i] != '\r' && p[i] != '\n')
			v[j++] = p[i++];
		v[j] = 0;
		if (!strncmp(v, obj, strlen(obj)) && fl_id_valid(v + strlen(obj)))
			memcpy(x->br->id, v + strlen(obj), FL_ID_LEN + 1);
	}
	return n;
}

/*
 * The upload buffer for a body of n bytes: a 64th of it, from 64 KiB to
 * 1 MiB. Each request's buffer is new memory, and touching it costs a
 * page fault per 4 KiB (about 2 us here); a small buffer is touched once
 * and reused. A 400 KB model then goes in 7 reads and sends rather than
 * one read into 400 KB of fresh pages; a 1 GiB one still in 1 MiB pieces
 * (1,024 read and send pairs rather than 16,384).
 */
static long
upload_buffer(uint64_t n)
{
	uint64_t b = n / 64;

	return b < (64u << 10) ? 64L << 10 : b > (1u << 20) ? 1L << 20 : (long)b;
}

static int
upload(struct fl_client *c, const struct fl_endpoint *ep, const char *path,
    const char *ticket, int fd, const char *name, struct fl_val *reply,
    struct fl_blob_reply *br, char *err)
{
	struct fl_check k, rk;
	struct fl_buf out;
	struct xfer x = { .c = c, .err = err, .fd = fd, .br = br, .brcheck = &rk };
	char ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hl = NULL;
	unsigned char *pre = NULL;
	CURLcode cc;
	char *url;
	CURL *h;
	int rc;

	if (reply)
		fl_val_nil(reply);
	if (br) {
		br->id[0] = 0;
		br->got = 0;
	}
	fl_check_init(&k, name);
	fl_check_init(&rk, ep ? ep->name : path);
	if ((rc = read_head(fd, &k, err))) {
		fl_check_release(&k);
		return rc;
	}
	/* The check has seen the header (and perhaps a little more): those
	 * bytes go to curl first, the rest is checked as it is read. */
	x.prelen = (size_t)k.pos;
	if (!(pre = malloc(x.prelen ? x.prelen : 1))) {
		fl_check_release(&k);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	memcpy(pre, k.head.data, x.prelen);
	x.pre = pre;
	x.size = k.h.total;
	x.upcheck = &k;
	fl_buf_init(&out, MAX_REPLY);
	fl_buf_init(&x.errbody, MAX_ERRBODY);
	x.body = &out;
	x.who = ep ? ep->name : path;
	url = ep ? make_url(ep->url, path) : strdup(path);
	if (!url || !(h = easy(&x, url, ep ? ep->token : NULL, ticket, !ep,
	    !ep ? "*/*" : br ? FL_BLOB_MIME ", " FL_MSGPACK_MIME ";q=0.5" :
	    FL_MSGPACK_MIME, FL_BLOB_MIME, &hl, ebuf))) {
		rc = fl_err(err, FL_EFAIL, "out of memory");
		goto out;
	}
	if (br) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	}
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &x);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, upload_buffer(x.size));
	/* the reply (a fitted model) is about as large: the same reasoning */
	if (upload_buffer(x.size) < RECV_BUFFER)
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, upload_buffer(x.size));
	if (ep) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x.size);
	} else {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x.size);
	}
	cc = curl_easy_perform(h);
	x.http = status_now(&x);
	c->last_http = x.http;
	rc = xfer_error(&x, cc, ebuf, url, 1);
	if (!rc && !k.done)
		rc = fl_check_end(&k, err);
	if (!rc && br && x.reply_kind == 1) {	/* set only with br */
		if (!(rc = fl_check_end(&rk, err)) && !br->id[0])
			rc = fl_err(err, FL_EFAIL, "%s: a blob reply without a "
			    "Location naming its object", x.who);
		br->got = !rc;
	} else if (!rc && ep && reply && out.len &&
	    (rc = fl_val_unpack(reply, out.data, out.len, err))) {
		fl_err_prefix(err, "%s: bad reply", ep->name);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
out:
	free(url);
	free(pre);
	fl_buf_release(&out);
	fl_buf_release(&x.errbody);
	fl_check_release(&k);
	fl_check_release(&rk);
	return rc;
}

int
fl_upload(struct fl_client *c, const struct fl_endpoint *ep, const char *path,
    const char *ticket, int fd, const char *name, struct fl_val *reply, char *err)
{
	return upload(c, ep, path, ticket, fd, name, reply, NULL, err);
}

int
fl_upload_blob(struct fl_client *c, const struct fl_endpoint *ep,
    const char *path, int fd, const char *name, struct fl_val *reply,
    struct fl_blob_reply *br, char *err)
{
	return upload(c, ep, path, NULL, fd, name, reply, br, err);
}

/* One GET of a blob into k and, unless it is a reference, sink. */
static int
fetch_one(struct fl_client *c, const char *url, const struct fl_endpoint *ep,
    const char *who, struct fl_check *k, int *is_ref, fl_sink_fn sink, void *arg,
    char *err)
{
	char ebuf[CURL_ERROR_SIZE];
	int rc = FL_OK;

	for (int attempt = 0;; attempt++) {
		struct xfer x = { .c = c, .who = who, .err = err, .check = k,
		    .follow = 1, .sink = sink, .arg = arg };
		struct curl_slist *hl = NULL;
		CURLcode cc;
		CURL *h;

		fl_check_release(k);
		fl_check_init(k, who);
		fl_buf_init(&x.errbody, MAX_ERRBODY);
		ebuf[0] = 0;
		if (!(h = easy(&x, url, ep ? ep->token : NULL, NULL, !ep,
		    FL_BLOB_MIME ", " FL_MSGPACK_MIME ";q=0.5, */*;q=0.1", NULL, &hl,
		    ebuf))) {
			fl_buf_release(&x.errbody);
			return fl_err(err, FL_EFAIL, "out of memory");
		}
		cc = curl_easy_perform(h);
		x.http = status_now(&x);
		curl_slist_free_all(hl);
		curl_easy_cleanup(h);
		if (!x.passed && attempt < c->o.retries && retryable(cc, x.http)) {
			fl_buf_release(&x.errbody);
			backoff(attempt);
			continue;
		}
		rc = xfer_error(&x, cc, ebuf, url, 0);
		fl_buf_release(&x.errbody);
		if (!rc)
			rc = fl_check_end(k, err);
		*is_ref = x.is_ref;
		return rc;
	}
}

static int
hop_path(const struct fl_ptr *p, char *path, size_t n)
{
	switch (p->kind) {
	case FL_PTR_ID:
		return snprintf(path, n, "/v1/objects/%s", p->name) >= (int)n;
	case FL_PTR_TAG:
		return snprintf(path, n, "/v1/tags/%s", p->name) >= (int)n;
	case FL_PTR_LATEST:
		return snprintf(path, n, "/v1/latest?kind=model") >= (int)n;
	default:
		return 1;
	}
}

/* The next hop a reference's meta names. */
static int
ref_next(const struct fl_header *h, const char *who, struct fl_ptr *next, char *err)
{
	const char *w = fl_map_get_str(&h->meta, "worker");
	const char *id = fl_map_get_str(&h->meta, "id");

	memset(next, 0, sizeof(*next));
	if (!w || !id || !fl_id_valid(id) ||
	    (!fl_is_url(w) && !fl_worker_name_valid(w)))
		return fl_err(err, FL_EBLOB, "%s: a reference without a valid "
		    "meta worker and id", who);
	return ptr_set(next, FL_PTR_ID, w, strlen(w), id, err);
}

int
fl_fetch(struct fl_client *c, const struct fl_ptr *p, int follow,
    fl_sink_fn sink, void *arg, struct fl_ptr *next, char *err)
{
	char *seen[FL_MAX_HOPS + 2] = { 0 };
	char chain[FL_ERRLEN / 2] = "";
	struct fl_ptr cur;
	struct fl_check k;
	int rc = FL_OK, nseen = 0;

	if (next)
		memset(next, 0, sizeof(*next));
	if ((rc = ptr_set(&cur, p->kind, p->worker, strlen(p->worker), p->name, err)))
		return rc;
	fl_check_init(&k, p->worker);
	for (int hop = 0;; hop++) {
		struct fl_endpoint ep = { 0 };
		char path[256], who[600], *url = NULL;
		int is_ref = 0;

		fl_ptr_format(&cur, who, sizeof(who));
		if (cur.kind == FL_PTR_URL) {
			url = strdup(cur.worker);
		} else {
			if ((rc = fl_endpoint_resolve(&ep, &c->ws, cur.worker, err)))
				break;
			if (hop_path(&cur, path, sizeof(path))) {
				fl_endpoint_release(&ep);
				rc = fl_err(err, FL_EUSAGE, "%s: bad pointer", who);
				break;
			}
			url = make_url(ep.url, path);
		}
		if (!url) {
			fl_endpoint_release(&ep);
			rc = fl_err(err, FL_EFAIL, "out of memory");
			break;
		}
		size_t cl = strlen(chain), wl = strlen(who);
		if (cl + wl + 5 < sizeof(chain)) {
			if (cl)
				memcpy(chain + cl, " -> ", 4), cl += 4;
			memcpy(chain + cl, who, wl + 1);
		}
		for (int i = 0; i < nseen; i++) {
			if (!strcmp(seen[i], url)) {
				rc = fl_err(err, FL_EDATA, "reference loop: %s", chain);
				break;
			}
		}
		if (!rc && nseen > FL_MAX_HOPS)
			rc = fl_err(err, FL_ELIMIT, "more than %d references in a row: %s",
			    FL_MAX_HOPS, chain);
		if (rc) {
			free(url);
			fl_endpoint_release(&ep);
			break;
		}
		seen[nseen++] = url;
		rc = fetch_one(c, url, cur.kind == FL_PTR_URL ? NULL : &ep, who, &k,
		    &is_ref, sink, arg, err);
		fl_endpoint_release(&ep);
		if (rc || !is_ref)
			break;
		fl_ptr_release(&cur);
		if ((rc = ref_next(&k.h, who, &cur, err)))
			break;
		if (!follow) {
			if (next) {
				*next = cur;
				memset(&cur, 0, sizeof(cur));
			}
			break;
		}
	}
	for (int i = 0; i < nseen; i++)
		free(seen[i]);
	fl_ptr_release(&cur);
	fl_check_release(&k);
	return rc;
}

int
fl_resolve_id(struct fl_client *c, const struct fl_endpoint *ep,
    const struct fl_ptr *p, char id[FL_ID_LEN + 1], char *err)
{
	const struct fl_val *objs;
	const char *oid = NULL;
	struct fl_val reply;
	char path[FL_TAG_MAX + 64];
	int rc;

	if (p->kind == FL_PTR_ID) {
		snprintf(id, FL_ID_LEN + 1, "%s", p->name);
		return FL_OK;
	}
	if (p->kind == FL_PTR_URL)
		return fl_err(err, FL_EUSAGE, "%s: a URL, not a pointer to a worker's "
		    "object", p->worker);
	/* The newest model, as GET /v1/latest serves it, or what the tag names. */
	if (p->kind == FL_PTR_LATEST)
		snprintf(path, sizeof(path), "/v1/objects?kind=model&limit=1");
	else if (fl_tag_valid(p->name))
		snprintf(path, sizeof(path), "/v1/objects?tag=%s&limit=1", p->name);
	else
		return fl_err(err, FL_EUSAGE, "%s: bad tag '%s'", ep->name, p->name);
	if ((rc = fl_call(c, ep, "GET", path, NULL, &reply, err)))
		return rc;
	if ((objs = fl_map_get(&reply, "objects")) && objs->type == FL_V_ARRAY &&
	    objs->v.a.n >= 1)
		oid = fl_map_get_str(&objs->v.a.items[0], "id");
	if (!oid)
		rc = p->kind == FL_PTR_LATEST ?
		    fl_err(err, FL_ENOTFOUND, "%s: no model stored", ep->name) :
		    fl_err(err, FL_ENOTFOUND, "%s: no object tagged '%s'", ep->name,
		    p->name);
	else if (!fl_id_valid(oid))
		rc = fl_err(err, FL_EFAIL, "%s: bad object id in its listing", ep->name);
	else
		snprintf(id, FL_ID_LEN + 1, "%s", oid);
	fl_val_release(&reply);
	return rc;
}

int
fl_ref_write(int fd, const char *worker, const char *id, char *err)
{
	struct fl_header h;
	int rc;

	if (fl_header_init(&h, "pointer"))
		return fl_err(err, FL_EFAIL, "out of memory");
	if (fl_map_set_str(&h.meta, "worker", worker) || fl_map_set_str(&h.meta, "id", id) ||
	    fl_map_set_uint(&h.meta, "created", (uint64_t)fl_now())) {
		fl_header_release(&h);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	rc = fl_blob_write(fd, "reference", &h, NULL, 0, err);
	fl_header_release(&h);
	return rc;
}

int
fl_client_opt(struct fl_client_opts *co, int code, const char *arg, char *err)
{
	uint64_t u;

	switch (code) {
	case FL_OPT_CONNECT_TIMEOUT:
		if (fl_parse_double(arg, &co->connect_timeout) || co->connect_timeout <= 0)
			return fl_err(err, FL_EUSAGE, "--connect-timeout: '%s' is not a "
			    "number of seconds", arg);
		return FL_OK;
	case FL_OPT_TIMEOUT:
		if (fl_parse_double(arg, &co->timeout) || co->timeout <= 0)
			return fl_err(err, FL_EUSAGE, "--timeout: '%s' is not a number of "
			    "seconds", arg);
		return FL_OK;
	case FL_OPT_RETRY:
		if (fl_parse_u64(arg, 100, &u))
			return fl_err(err, FL_EUSAGE, "--retry: '%s' is not a count up to "
			    "100", arg);
		co->retries = (int)u;
		return FL_OK;
	case FL_OPT_CACERT:
		co->cacert = arg;
		return FL_OK;
	case FL_OPT_INSECURE:
		co->insecure = 1;
		return FL_OK;
	}
	return -1;
}

int
fl_move(struct fl_client *c, const struct fl_endpoint *src, const char *id,
    const struct fl_endpoint *dst, int copy, char newid[FL_ID_LEN + 1],
    char *err)
{
	struct fl_val body, reply, treply, v;
	const char *ticket, *nid;
	char path[64];
	int rc;

	if (!fl_id_valid(id))
		return fl_err(err, FL_EUSAGE, "%s: bad object id '%s'", src->name, id);
	if (!strcmp(src->url, dst->url))
		return fl_err(err, FL_EUSAGE, "%s and %s are the same worker",
		    src->name, dst->name);
	/* The destination issues a ticket: the source never sees its token. */
	if ((rc = fl_call(c, dst, "POST", "/v1/tickets", NULL, &treply, err)))
		return rc;
	if (!(ticket = fl_map_get_str(&treply, "ticket"))) {
		fl_val_release(&treply);
		return fl_err(err, FL_EFAIL, "%s: the reply holds no ticket",
		    dst->name);
	}
	fl_val_map(&body);
	fl_val_bool(&v, !copy);
	if (fl_map_set_str(&body, "url", dst->url) ||
	    fl_map_set_str(&body, "ticket", ticket) ||
	    fl_map_set(&body, "move", &v)) {
		fl_val_release(&body);
		fl_val_release(&treply);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	snprintf(path, sizeof(path), "/v1/objects/%s/push", id);
	rc = fl_call(c, src, "POST", path, &body, &reply, err);
	fl_val_release(&body);
	fl_val_release(&treply);
	if (rc)
		return rc;
	if (!(nid = fl_map_get_str(&reply, "id")) || !fl_id_valid(nid))
		rc = fl_err(err, FL_EFAIL, "%s: the reply names no valid id", src->name);
	else
		memcpy(newid, nid, FL_ID_LEN + 1);
	fl_val_release(&reply);
	return rc;
}
