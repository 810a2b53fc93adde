/* server.c: the worker protocol (proto.h) over libwebsockets: routing,
 * authentication, streamed uploads and downloads, events; disk, validation,
 * handlers and pushes run on a pool of threads (server_work.c). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <curl/curl.h>

#include "curl_load.h"
#include "server_int.h"

#define PAUSE_AT (8u << 20)	/* queued upload bytes that pause the socket */
#define MAX_SMALL_BODY (16u << 20)	/* message and push bodies */
#define MAX_EVENTS_QUEUED 256
#define WS_SNDBUF (64 * 1024)	/* a watcher's socket, the kernel doubles it */
#define GRACE 30		/* seconds to finish work in flight on stop */
#define FIT_QUEUE 16		/* fits waiting beyond those running */
#define MAX_FIT_ARGS 16
/* A body must move this much per timeout period to keep its connection:
 * a client trickling a byte a second is dropped, not kept forever. */
#define MIN_PROGRESS (16u << 10)
#define PAUSE_TICK 1000000	/* us: a paused upload's timeout put off */

void
srv_log(struct fl_server *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_arg, level, msg);
}

/* Tokens */

int
fl_tokens_load(const char *path, struct fl_token **out, size_t *n, char *err)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	struct fl_token *t = NULL;
	size_t cap = 0, lineno = 0;

	*out = NULL;
	*n = 0;
	if (!f)
		return fl_errno(err, FL_EIO, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		char *save, *w, *tok;
		int rights = 0;
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			fclose(f);
			fl_tokens_free(t, *n);
			return fl_err(err, FL_EDATA, "%s:%zu: line too long", path, lineno);
		}
		if ((w = strchr(line, '#')))
			*w = 0;
		if (!(tok = strtok_r(line, " \t\r\n", &save)))
			continue;
		while ((w = strtok_r(NULL, " \t\r\n", &save))) {
			if (!strcmp(w, "read"))
				rights |= FL_RIGHT_READ;
			else if (!strcmp(w, "write"))
				rights |= FL_RIGHT_WRITE;
			else {
				fclose(f);
				fl_tokens_free(t, *n);
				return fl_err(err, FL_EDATA, "%s:%zu: unknown right '%s' "
				    "(read or write)", path, lineno, w);
			}
		}
		if (strlen(tok) < 8) {
			fclose(f);
			fl_tokens_free(t, *n);
			return fl_err(err, FL_EDATA, "%s:%zu: token shorter than 8 characters",
			    path, lineno);
		}
		if (*n == cap) {
			struct fl_token *p;
			cap = cap ? 2 * cap : 8;
			if (!(p = realloc(t, cap * sizeof(*p)))) {
				fclose(f);
				fl_tokens_free(t, *n);
				return fl_err(err, FL_EFAIL, "out of memory");
			}
			t = p;
		}
		t[*n].token = strdup(tok);
		t[*n].rights = rights ? rights : FL_RIGHT_READ | FL_RIGHT_WRITE;
		(*n)++;
	}
	fclose(f);
	if (!*n)
		return fl_err(err, FL_EDATA, "%s: no token", path);
	*out = t;
	return FL_OK;
}

void
fl_tokens_free(struct fl_token *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].token)
			memset(t[i].token, 0, strlen(t[i].token));
		free(t[i].token);
	}
	free(t);
}

/* Compare without an early exit, so the time says nothing of the token. */
int
srv_ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
	unsigned char d = la != lb;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)(i < lb ? b[i] : 0);
	return d == 0;
}

/* Rights of a bearer token; -1 when none matches. Every token is compared. */
static int
token_rights(struct fl_server *s, const char *tok)
{
	int rights = -1;

	for (size_t i = 0; i < s->o.ntokens; i++)
		if (srv_ct_equal(s->o.tokens[i].token, tok))
			rights = s->o.tokens[i].rights;
	return rights;
}

/* Tickets (service thread only) */

static void
random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	size_t got = 0;

	if (nbytes > sizeof(b))
		nbytes = sizeof(b);
	while (got < nbytes) {
		ssize_t r = getrandom(b + got, nbytes - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (errno != EINTR)
			abort();
	}
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int
srv_ticket_take(struct tickets *tt, const char *t, double now)
{
	int ok = 0;

	for (size_t i = 0; i < tt->n; i++) {
		if (tt->t[i].expires < now || srv_ct_equal(tt->t[i].t, t)) {
			if (tt->t[i].expires >= now)
				ok = 1;
			tt->t[i--] = tt->t[--tt->n];
		}
	}
	return ok;
}

int
srv_ticket_issue(struct tickets *tt, double now, struct ticket *t)
{
	srv_ticket_take(tt, "", now);	/* drop the expired ones */
	if (tt->n >= MAX_TICKETS)
		return FL_ELIMIT;
	random_hex(t->t, 24);
	t->expires = now + TICKET_SECONDS;
	tt->t[tt->n++] = *t;
	return FL_OK;
}

/* Replies */

/* Whether the request's Accept names mime. */
static int
accepts(struct lws *wsi, const char *mime)
{
	char acc[256];

	if (lws_hdr_copy(wsi, acc, sizeof(acc), WSI_TOKEN_HTTP_ACCEPT) <= 0)
		return 0;
	return strstr(acc, mime) != NULL;
}

void
req_reply_val(struct req *r, int status, const struct fl_val *v)
{
	fl_buf_release(&r->out);
	fl_buf_init(&r->out, 0);
	r->status = status;
	if (r->json) {
		r->ctype = FL_JSON_MIME;
		fl_val_json(&r->out, v);
		fl_buf_add(&r->out, "\n", 1);
	} else {
		r->ctype = FL_MSGPACK_MIME;
		fl_val_encode(&r->out, v);
	}
	r->outlen = r->out.len;
}

void
req_reply_err(struct req *r, int status, const char *msg)
{
	struct fl_val v;

	fl_val_map(&v);
	fl_map_set_str(&v, "error", msg);
	req_reply_val(r, status, &v);
	fl_val_release(&v);
}

static void
req_reply_empty(struct req *r, int status)
{
	fl_buf_release(&r->out);
	fl_buf_init(&r->out, 0);
	r->status = status;
	r->ctype = NULL;
	r->outlen = 0;
}

int
status_of(int rc)
{
	switch (rc) {
	case FL_OK: return 200;
	case FL_EUSAGE: return 400;
	case FL_EBLOB: return 400;
	case FL_EDATA: return 400;
	case FL_ELIMIT: return 413;
	case FL_ENOTFOUND: return 404;
	case FL_EDENIED: return 403;
	case FL_ETIMEOUT: return 504;
	case FL_EUNREACH: return 502;
	default: return 500;
	}
}

static void
go_write(struct req *r)
{
	r->ready = 1;
	if (r->wsi)
		lws_callback_on_writable(r->wsi);
}

/* Send the reply set in r now, on the service thread, though workers may
 * still hold r (an upload's job, draining its queue). */
static void
reply_now(struct req *r)
{
	int paused;

	/* A reply before the whole body (a disk error, a body too large):
	 * the rest of the body is dropped, so the connection cannot go on. */
	if (r->body_kind != BODY_NONE && !r->body_complete)
		r->close_after = 1;
	/* lws 4.1 services no POLLOUT of a connection whose rx is flow
	 * controlled: a reply to an upload we paused would never leave, and
	 * the service thread would spin on that POLLOUT until the connection
	 * timed out. */
	pthread_mutex_lock(&r->mu);
	paused = r->paused;
	r->paused = 0;
	pthread_mutex_unlock(&r->mu);
	if (paused)
		lws_rx_flow_control(r->wsi, 1);
	go_write(r);
}

int
req_fail(struct req *r)
{
	int first;

	pthread_mutex_lock(&r->mu);
	first = !r->failed;
	r->failed = 1;
	pthread_mutex_unlock(&r->mu);
	return first;
}

/* Events */

/* Send map v to every watcher of /v1/events. */
static void
broadcast(struct fl_server *s, const struct fl_val *v)
{
	struct fl_buf mp, js;

	if (!s->wsc)
		return;
	fl_buf_init(&mp, 0);
	fl_buf_init(&js, 0);
	fl_val_encode(&mp, v);
	fl_val_json(&js, v);
	for (struct wsc *c = s->wsc; c; c = c->next) {
		struct fl_buf *src = c->json ? &js : &mp;
		struct evmsg *m;
		if (c->nq >= MAX_EVENTS_QUEUED)
			continue;	/* a client that does not read loses events */
		if (!(m = malloc(sizeof(*m) + LWS_PRE + src->len)))
			continue;
		m->next = NULL;
		m->len = src->len;
		memcpy(m->data + LWS_PRE, src->data, src->len);
		if (c->qtail)
			c->qtail->next = m;
		else
			c->qhead = m;
		c->qtail = m;
		c->nq++;
		lws_callback_on_writable(c->wsi);
	}
	fl_buf_release(&mp);
	fl_buf_release(&js);
}

void
srv_event(struct fl_server *s, const char *event, const char *id, const char *kind)
{
	struct fl_val v;

	/* Called on the service thread only. */
	if (!s->wsc)
		return;
	fl_val_map(&v);
	fl_map_set_str(&v, "event", event);
	fl_map_set_str(&v, "id", id);
	if (kind)
		fl_map_set_str(&v, "kind", kind);
	fl_map_set_float(&v, "time", fl_now());
	broadcast(s, &v);
	fl_val_release(&v);
}

void
srv_event_post(struct fl_server *s, struct fl_val *v)
{
	struct pending_event *e = malloc(sizeof(*e));
	int wake;

	if (!e) {
		fl_val_release(v);
		return;		/* an event is news, not state: drop it */
	}
	e->v = *v;
	fl_val_nil(v);
	e->next = NULL;
	pthread_mutex_lock(&s->qmu);
	/* events waiting: the service thread is woken already, and takes
	 * this one with them (flush_events takes the whole list) */
	wake = !s->evhead;
	if (s->evtail)
		s->evtail->next = e;
	else
		s->evhead = e;
	s->evtail = e;
	pthread_mutex_unlock(&s->qmu);
	if (wake)
		lws_cancel_service(s->ctx);
}

/* Send the events worker threads posted; on the service thread. */
static void
flush_events(struct fl_server *s)
{
	struct pending_event *e, *next;

	pthread_mutex_lock(&s->qmu);
	e = s->evhead;
	s->evhead = s->evtail = NULL;
	pthread_mutex_unlock(&s->qmu);
	for (; e; e = next) {
		next = e->next;
		broadcast(s, &e->v);
		fl_val_release(&e->v);
		free(e);
	}
}

/* Requests */

static struct req *
req_new(struct fl_server *s, struct lws *wsi)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->s = s;
	r->wsi = wsi;
	r->fd = -1;
	r->up.fd = -1;
	pthread_mutex_init(&r->mu, NULL);
	fl_buf_init(&r->out, 0);
	fl_buf_init(&r->body, MAX_SMALL_BODY);
	s->inflight++;
	return r;
}

void
req_free(struct req *r)
{
	struct chunk *c, *n;

	for (c = r->qhead; c; c = n) {
		n = c->next;
		srv_chunk_free(r->s, c);
	}
	for (c = r->spare; c; c = n) {
		n = c->next;
		srv_chunk_free(r->s, c);
	}
	srv_chunk_free(r->s, r->fill);
	free(r->rbuf);
	if (r->up.tmp)
		fl_store_abort(&r->up);
	if (r->fd >= 0)
		close(r->fd);
	fl_buf_release(&r->out);
	fl_buf_release(&r->body);
	free(r->tag);
	free(r->arg);
	if (r->fit_slot) {
		pthread_mutex_lock(&r->s->qmu);
		r->s->nfits--;
		pthread_mutex_unlock(&r->s->qmu);
	}
	pthread_mutex_destroy(&r->mu);
	r->s->inflight--;
	free(r);
}

/* The connection is gone: free the request unless a worker holds it or it
 * waits on the done list (a worker just let go of it): process_done frees
 * it then. */
static void
req_detach(struct req *r)
{
	int busy;

	pthread_mutex_lock(&r->mu);
	r->wsi = NULL;
	r->failed = 1;
	busy = r->jobs > 0 || r->on_done;
	pthread_mutex_unlock(&r->mu);
	if (!busy)
		req_free(r);
}

/* A worker thread finished with r: hand it back to the service thread. */
void
req_done(struct req *r, int what, int release)
{
	struct fl_server *s = r->s;

	pthread_mutex_lock(&s->qmu);
	pthread_mutex_lock(&r->mu);
	r->jobs -= release;
	r->pending_what |= what;
	if (!r->on_done) {
		r->on_done = 1;
		r->done_next = s->done;
		s->done = r;
	}
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&s->qmu);
	lws_cancel_service(s->ctx);
}

static void
process_done(struct fl_server *s)
{
	struct req *list, *r, *next;

	pthread_mutex_lock(&s->qmu);
	list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->qmu);
	for (r = list; r; r = next) {
		int what, gone, busy;
		next = r->done_next;
		pthread_mutex_lock(&r->mu);
		r->on_done = 0;
		what = r->pending_what;
		r->pending_what = 0;
		gone = r->wsi == NULL;
		busy = r->jobs > 0;
		pthread_mutex_unlock(&r->mu);
		if (what & DONE_EVENT && r->ev_name[0])
			srv_event(s, r->ev_name, r->ev_id, r->ev_kind[0] ? r->ev_kind : NULL);
		if (gone) {
			if (!busy)
				req_free(r);
			continue;
		}
		if (what & DONE_RESUME) {
			/* the pause was ours: the client gets its time afresh */
			r->window = 0;
			r->deadline = fl_monotonic() + s->o.idle_timeout;
			lws_set_timeout(r->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
			    (int)s->o.idle_timeout);
			lws_rx_flow_control(r->wsi, 1);
		}
		if (what & DONE_REPLY)
			reply_now(r);
	}
}

static const char *
method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return "GET";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return "POST";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI))
		return "PUT";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return "DELETE";
	return "OTHER";
}

/* Authorization: 0 when allowed, else the status to reply with. */
static int
authorize(struct req *r, int need, int ticket_ok)
{
	struct fl_server *s = r->s;
	char h[512];
	int rights;

	if (!s->o.ntokens)
		return 0;
	if (lws_hdr_copy(r->wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0) {
		req_reply_err(r, 401, "authentication required: send Authorization: Bearer TOKEN");
		return 401;
	}
	if (!strncasecmp(h, "Bearer ", 7)) {
		if ((rights = token_rights(s, h + 7)) < 0) {
			req_reply_err(r, 401, "unknown token");
			return 401;
		}
		if ((rights & need) != need) {
			req_reply_err(r, 403, need & ~rights & FL_RIGHT_WRITE ?
			    "this token may not write" : "this token may not read");
			return 403;
		}
		return 0;
	}
	if (!strncasecmp(h, "Ticket ", 7) && ticket_ok) {
		if (!srv_ticket_take(&s->tickets, h + 7, fl_now())) {
			req_reply_err(r, 403, "unknown, used or expired ticket");
			return 403;
		}
		return 0;
	}
	req_reply_err(r, 401, "authentication required: send Authorization: Bearer TOKEN");
	return 401;
}

static uint64_t
content_length(struct lws *wsi, int *present)
{
	char h[32];
	uint64_t v;

	*present = 0;
	if (lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
		return 0;
	if (fl_parse_u64(h, UINT64_MAX, &v))
		return 0;
	*present = 1;
	return v;
}

/* GET /v1/fits[?job=J]: the fits and evaluations under way (of job J),
 * with their last progress. */
static void
reply_fits(struct req *r, const char *job)
{
	struct fl_server *s = r->s;
	struct fl_val v, list, f;

	fl_val_map(&v);
	fl_val_array(&list);
	pthread_mutex_lock(&s->qmu);
	for (struct req *x = s->run; x; x = x->run_next) {
		if (job && strcmp(job, x->job))
			continue;
		fl_val_map(&f);
		if ((x->job[0] && fl_map_set_str(&f, "job", x->job)) ||
		    fl_map_set_str(&f, "mode", x->fit_mode == FIT_EVAL ? "eval" :
		    "fit") ||
		    fl_map_set_str(&f, "dataset", x->dsref->key) ||
		    (x->arg && fl_map_set_str(&f, "model", x->arg)) ||
		    fl_map_set_float(&f, "started", x->p_started) ||
		    (x->p_epochs && (fl_map_set_uint(&f, "epoch", (uint64_t)x->p_epoch) ||
		    fl_map_set_uint(&f, "epochs", (uint64_t)x->p_epochs) ||
		    fl_map_set_uint(&f, "step", x->p_step) ||
		    fl_map_set_uint(&f, "steps", x->p_steps) ||
		    fl_map_set_float(&f, "loss", x->p_loss))) ||
		    fl_array_push(&list, &f)) {
			fl_val_release(&f);
			break;
		}
	}
	pthread_mutex_unlock(&s->qmu);
	if (fl_map_set(&v, "fits", &list))
		fl_val_release(&list);
	req_reply_val(r, 200, &v);
	fl_val_release(&v);
}

/* Object id as the reply; a 201 (a fit's result) names it in Location. */
void
req_reply_object(struct req *r, int status, const char *id)
{
	char err[FL_ERRLEN];
	uint64_t size;
	int rc;

	if ((rc = fl_store_open_object(r->s->o.store, id, &r->fd, &size, err))) {
		req_reply_err(r, status_of(rc), err);
		return;
	}
	posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	fl_buf_release(&r->out);
	fl_buf_init(&r->out, 0);
	r->status = status;
	r->ctype = FL_BLOB_MIME;
	r->outlen = size;
	r->from_fd = 1;
	if (status == 201)
		snprintf(r->location, sizeof(r->location), "/v1/objects/%s", id);
}

/* A page of the listing as it is made: each object encoded as it comes,
 * so that a page costs its reply's bytes and no more. */
struct page {
	struct fl_buf *b;
	int json;
	uint32_t n;
};

static int
page_add(void *arg, const struct fl_val *o)
{
	struct page *p = arg;

	if (p->json && p->n && fl_buf_add(p->b, ",", 1))
		return FL_EFAIL;
	p->n++;
	return p->json ? fl_val_json(p->b, o) : fl_val_encode(p->b, o);
}

/* GET /v1/objects, on a worker: {"objects": [...], "next"} as msgpack,
 * its array's length (array 32) and the map's (1 or 2) filled in at the
 * end; or as JSON. */
static void
job_list(struct req *r)
{
	static const char head[] = "\x82\xa7objects\xdd\0\0\0\0";
	struct page p = { &r->out, r->json, 0 };
	struct fl_val t;
	char err[FL_ERRLEN] = "", next[FL_LIST_CURSOR] = "";
	int rc;

	fl_buf_release(&r->out);
	fl_buf_init(&r->out, 0);
	rc = r->json ? fl_buf_addstr(&r->out, "{\"objects\":[") :
	    fl_buf_add(&r->out, head, sizeof(head) - 1);
	if (rc == FL_OK)
		rc = fl_store_list(r->s->o.store, &r->list, page_add, &p, next, err);
	if (rc == FL_OK && r->json) {
		rc = fl_buf_addstr(&r->out, "]");
		if (rc == FL_OK && next[0])
			rc = fl_buf_printf(&r->out, ",\"next\":\"%s\"", next);
		if (rc == FL_OK)
			rc = fl_buf_addstr(&r->out, "}\n");
	} else if (rc == FL_OK) {
		for (int i = 0; i < 4; i++)
			r->out.data[10 + i] = (unsigned char)(p.n >> (24 - 8 * i));
		if (!next[0])
			r->out.data[0] = 0x81;
		else if (fl_val_str(&t, "next") == FL_OK) {
			rc = fl_val_encode(&r->out, &t);
			fl_val_release(&t);
			if (rc == FL_OK && (rc = fl_val_str(&t, next)) == FL_OK) {
				rc = fl_val_encode(&r->out, &t);
				fl_val_release(&t);
			}
		} else {
			rc = FL_EFAIL;
		}
	}
	if (rc == FL_OK) {
		r->status = 200;
		r->ctype = r->json ? FL_JSON_MIME : FL_MSGPACK_MIME;
		r->outlen = r->out.len;
	} else {
		req_reply_err(r, rc == FL_EUSAGE ? 400 : 500, err[0] ? err : "out of memory");
	}
	req_done(r, DONE_REPLY, 1);
}

/* DELETE /v1/objects/ID, PUT /v1/objects/ID/tags/TAG (r->tag set): on a
 * worker, as both wait on the disk (fsync), which the service thread
 * never does. */
static void
job_object(struct req *r)
{
	char err[FL_ERRLEN], kind[80] = "";
	int rc;

	if (r->tag) {
		if ((rc = fl_store_tag(r->s->o.store, r->arg, r->tag, err)) == FL_OK)
			fl_store_kind(r->s->o.store, r->arg, kind, sizeof(kind));
	} else {
		rc = fl_store_delete(r->s->o.store, r->arg, kind, sizeof(kind), err);
	}
	if (rc) {
		req_reply_err(r, status_of(rc), err);
		req_done(r, DONE_REPLY, 1);
		return;
	}
	req_reply_empty(r, 204);
	req_set_event(r, r->tag ? "tagged" : "deleted", r->arg, kind);
	req_done(r, DONE_REPLY | DONE_EVENT, 1);
}

static void
submit_object(struct req *r, const char *id, const char *tag)
{
	if (!(r->arg = strdup(id)) || (tag && !(r->tag = strdup(tag)))) {
		req_reply_err(r, 500, "out of memory");
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->jobs++;
	pthread_mutex_unlock(&r->mu);
	r->busy = 1;
	srv_submit(r, job_object);
}

/* GET /v1/objects[?limit=N&after=CURSOR&kind=K&tag=T]: the query read
 * here, the page built by a worker (a thousand objects take milliseconds). */
static void
list_objects(struct req *r)
{
	struct fl_store_query *q = &r->list;
	char lim[32];
	const char *p;
	uint64_t n;

	memset(q, 0, sizeof(*q));
	if ((p = lws_get_urlarg_by_name(r->wsi, "limit=", lim, sizeof(lim)))) {
		if (fl_parse_u64(p, UINT64_MAX, &n) || !n) {
			req_reply_err(r, 400, "bad limit: a count of objects, 1 or more");
			return;
		}
		q->limit = n < FL_LIST_MAX ? (size_t)n : FL_LIST_MAX;
	}
	q->kind = lws_get_urlarg_by_name(r->wsi, "kind=", r->list_arg[0], sizeof(r->list_arg[0]));
	q->tag = lws_get_urlarg_by_name(r->wsi, "tag=", r->list_arg[1], sizeof(r->list_arg[1]));
	q->after = lws_get_urlarg_by_name(r->wsi, "after=", r->list_arg[2],
	    sizeof(r->list_arg[2]));
	if (q->tag && !fl_tag_valid(q->tag)) {
		req_reply_err(r, 400, "bad tag: use letters, digits, '.', '_', '-'");
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->jobs++;
	pthread_mutex_unlock(&r->mu);
	r->busy = 1;
	srv_submit(r, job_list);
}

static void
reply_info(struct req *r)
{
	struct fl_server *s = r->s;
	struct fl_val v, a, lim, d;
	uint64_t nobj, bytes;

	fl_val_map(&v);
	fl_map_set_str(&v, "name", s->o.name);
	fl_map_set_str(&v, "version", FL_VERSION);
	fl_val_array(&a);
	for (size_t i = 0; i < s->nds; i++) {
		if (fl_val_copy(&d, &s->ds[i]) == FL_OK)
			fl_array_push(&a, &d);
	}
	fl_map_set(&v, "datasets", &a);
	fl_store_usage(s->o.store, &nobj, &bytes);
	fl_map_set_uint(&v, "objects", nobj);
	fl_map_set_uint(&v, "bytes", bytes);
	fl_val_map(&lim);
	fl_map_set_uint(&lim, "object_bytes", s->max_object);
	fl_map_set_uint(&lim, "connections", s->o.max_conns);
	fl_map_set_uint(&lim, "handler_seconds", s->o.handler_timeout);
	fl_map_set_uint(&lim, "handler_output", s->o.handler_output);
	fl_map_set(&v, "limits", &lim);
	{
		struct fl_val h;
		fl_val_array(&h);
		for (size_t i = 0; i < s->o.nhandlers; i++) {
			struct fl_val n;
			if (fl_val_str(&n, s->o.handlers[i].name) == FL_OK)
				fl_array_push(&h, &n);
		}
		fl_map_set(&v, "messages", &h);
	}
	req_reply_val(r, 200, &v);
	fl_val_release(&v);
}

static const struct fl_handler *
find_handler(struct fl_server *s, const char *name)
{
	for (size_t i = 0; i < s->o.nhandlers; i++)
		if (!strcmp(s->o.handlers[i].name, name))
			return &s->o.handlers[i];
	return NULL;
}

static const struct fl_dataset_ref *
find_dataset(struct fl_server *s, const char *key)
{
	for (size_t i = 0; i < s->o.ndatasets; i++)
		if (!strcmp(s->o.datasets[i].key, key))
			return &s->o.datasets[i];
	return NULL;
}

/* The training options of POST /v1/fit/KEY from its query string. */
static int
fit_options(struct req *r, char *err)
{
	char args[MAX_FIT_ARGS + 1][256];	/* + 1: the one refused */
	const char *keys[MAX_FIT_ARGS], *vals[MAX_FIT_ARGS];
	size_t n = 0;
	int rc;

	for (int i = 0; lws_hdr_copy_fragment(r->wsi, args[n], sizeof(args[n]),
	    WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
		char *eq;
		if (!args[n][0])
			continue;
		if (n == MAX_FIT_ARGS)
			return fl_err(err, FL_EUSAGE, "too many options (at most %d)",
			    MAX_FIT_ARGS);
		keys[n] = args[n];
		if ((eq = strchr(args[n], '='))) {
			*eq = 0;
			vals[n] = eq + 1;
		} else {
			vals[n] = "";
		}
		if (!strcmp(keys[n], "job")) {
			/* the client's name for it, in GET /v1/fits */
			if (!fl_tag_valid(vals[n]))
				return fl_err(err, FL_EUSAGE, "job: 1 to %d of "
				    "[A-Za-z0-9._-]", FL_TAG_MAX);
			snprintf(r->job, sizeof(r->job), "%s", vals[n]);
			continue;
		}
		if (!strcmp(keys[n], "model")) {
			/* the model is an object already here */
			char kind[80];
			if (r->arg)
				return fl_err(err, FL_EUSAGE, "model given twice");
			if (!fl_id_valid(vals[n]))
				return fl_err(err, FL_EUSAGE, "model: bad object id: "
				    "expected 16 lowercase hex digits");
			if (fl_store_kind(r->s->o.store, vals[n], kind, sizeof(kind)))
				return fl_err(err, FL_ENOTFOUND, "model: no object %s",
				    vals[n]);
			if (!(r->arg = strdup(vals[n])))
				return fl_err(err, FL_EFAIL, "out of memory");
			r->keep_input = 1;
			continue;
		}
		n++;
	}
	if (r->fit_mode == FIT_EVAL) {
		/* eval takes only the batch size */
		for (size_t i = 0; i < n; i++)
			if (strcmp(keys[i], "batch"))
				return fl_err(err, FL_EUSAGE, "%s: not an option of "
				    "eval (only batch)", keys[i]);
	}
	if ((rc = fl_train_opts_kv(&r->fit, keys, vals, n, err)))
		return rc;
	r->fit.threads = 1;	/* a fit per core (s->max_fits) */
	return FL_OK;
}

/* Start taking a body: into a store upload (blobs) or memory (the rest). */
static int
begin_body(struct req *r, int kind, uint64_t limit)
{
	char err[FL_ERRLEN];
	int present, rc;
	uint64_t cl = content_length(r->wsi, &present);

	r->body_kind = kind;
	r->limit = limit;
	if (present && cl > limit) {
		char m[128];
		snprintf(m, sizeof(m), "body of %llu bytes exceeds the limit of %llu",
		    (unsigned long long)cl, (unsigned long long)limit);
		req_reply_err(r, 413, m);
		r->close_after = 1;
		return 1;
	}
	if (kind == BODY_BLOB || kind == BODY_FIT) {
		if (present && (rc = fl_store_room(r->s->o.store, cl, err))) {
			req_reply_err(r, 507, err);
			r->close_after = 1;
			return 1;
		}
		if ((rc = fl_store_begin_checked(r->s->o.store, &r->up,
		    &r->s->lim, err))) {
			req_reply_err(r, 500, err);
			r->close_after = 1;
			return 1;
		}
	}
	if (!present || cl == 0) {
		/* lws 4.1 passes on a request body only up to its
		 * Content-Length: a chunked one would be read as the next
		 * request. */
		if (!present && lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
			req_reply_err(r, 411, "send the body with a Content-Length: "
			    "chunked request bodies (Transfer-Encoding) are not taken");
			r->close_after = 1;
			return 1;
		}
		if (!present && kind == BODY_BLOB) {
			/* no Content-Length is no body, a blob would be the
			 * empty one: say what is missing */
			req_reply_err(r, 411, "send the blob with a Content-Length");
			return 1;
		}
		r->body_complete = 1;
		srv_submit_body(r);
		return 1;
	}
	r->clen = cl;
	r->deadline = fl_monotonic() + r->s->o.idle_timeout;
	lws_set_timeout(r->wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)r->s->o.idle_timeout);
	return 0;
}

/* Route a request; returns 1 when a reply is ready or on its way. */
static void
route(struct req *r, const char *path)
{
	struct fl_server *s = r->s;
	const char *m = method_of(r->wsi);
	char err[FL_ERRLEN], id[FL_ID_LEN + 1], seg[4][160], arg[128];
	int nseg = 0, rc, get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
	const char *p, *q;

	r->json = accepts(r->wsi, FL_JSON_MIME);
	if (s->stopping) {
		req_reply_err(r, 503, "shutting down");
		r->close_after = 1;
		goto out;
	}
	if (strncmp(path, "/v1/", 4)) {
		req_reply_err(r, 404, "no such route (routes are under /v1/)");
		goto out;
	}
	for (p = path + 4; *p && nseg < 4; nseg++) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n >= sizeof(seg[0])) {
			req_reply_err(r, 400, "path segment too long");
			goto out;
		}
		memcpy(seg[nseg], p, n);
		seg[nseg][n] = 0;
		p = e ? e + 1 : p + n;
	}
	if (*p || !nseg) {
		req_reply_err(r, 404, "no such route");
		goto out;
	}

	if (nseg == 1 && !strcmp(seg[0], "health")) {
		struct fl_val v;
		if (!get)
			goto method;
		fl_val_map(&v);
		{
			struct fl_val t;
			fl_val_bool(&t, 1);
			fl_map_set(&v, "ok", &t);
		}
		fl_map_set_str(&v, "name", s->o.name);
		req_reply_val(r, 200, &v);
		fl_val_release(&v);
		goto out;
	}
	if (nseg == 1 && !strcmp(seg[0], "info")) {
		if (!get)
			goto method;
		if (authorize(r, FL_RIGHT_READ, 0))
			goto out;
		reply_info(r);
		goto out;
	}
	if (nseg == 1 && !strcmp(seg[0], "objects")) {
		if (get) {
			if (authorize(r, FL_RIGHT_READ, 0))
				goto out;
			list_objects(r);
			goto out;
		}
		if (!post)
			goto method;
		if (authorize(r, FL_RIGHT_WRITE, 1))
			goto out;
		if ((q = lws_get_urlarg_by_name(r->wsi, "tag=", arg, sizeof(arg)))) {
			if (!fl_tag_valid(q)) {
				req_reply_err(r, 400, "bad tag: use letters, digits, '.', '_', '-'");
				goto out;
			}
			r->tag = strdup(q);
		}
		if (begin_body(r, BODY_BLOB, s->max_object))
			goto out;
		return;	/* the body follows */
	}
	if (nseg >= 2 && !strcmp(seg[0], "objects")) {
		if (!fl_id_valid(seg[1])) {
			req_reply_err(r, 400, "bad object id: expected 16 lowercase hex digits");
			goto out;
		}
		if (nseg == 2 && get) {
			if (authorize(r, FL_RIGHT_READ, 0))
				goto out;
			req_reply_object(r, 200, seg[1]);
			goto out;
		}
		if (nseg == 2 && !strcmp(m, "DELETE")) {
			if (authorize(r, FL_RIGHT_WRITE, 0))
				goto out;
			submit_object(r, seg[1], NULL);
			goto out;
		}
		if (nseg == 3 && !strcmp(seg[2], "header") && get) {
			struct fl_val v;
			if (authorize(r, FL_RIGHT_READ, 0))
				goto out;
			if ((rc = fl_store_header(s->o.store, seg[1], &v, err)))
				req_reply_err(r, status_of(rc), err);
			else
				req_reply_val(r, 200, &v);
			fl_val_release(&v);
			goto out;
		}
		if (nseg == 4 && !strcmp(seg[2], "tags") && !strcmp(m, "PUT")) {
			if (authorize(r, FL_RIGHT_WRITE, 0))
				goto out;
			submit_object(r, seg[1], seg[3]);
			goto out;
		}
		if (nseg == 3 && !strcmp(seg[2], "push") && post) {
			/* a push reads the object out to any URL: both rights */
			if (authorize(r, FL_RIGHT_READ | FL_RIGHT_WRITE, 0))
				goto out;
			{
				char kind[80];
				if (fl_store_kind(s->o.store, seg[1], kind, sizeof(kind))) {
					req_reply_err(r, 404, "no such object");
					goto out;
				}
			}
			r->arg = strdup(seg[1]);
			if (begin_body(r, BODY_PUSH, 64 << 10))
				goto out;
			return;
		}
		goto nothere;
	}
	if ((nseg == 2 && (!strcmp(seg[0], "fit") || !strcmp(seg[0], "eval"))) ||
	    (nseg == 1 && !strcmp(seg[0], "aggregate"))) {
		int present, full, agg = !strcmp(seg[0], "aggregate");
		uint64_t cl;
		if (!post)
			goto method;
		if (authorize(r, FL_RIGHT_WRITE, 0))
			goto out;
		if (!agg && !(r->dsref = find_dataset(s, seg[1]))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "no dataset '%.100s' on this worker",
			    seg[1]);
			req_reply_err(r, 404, msg);
			goto out;
		}
		r->fit_mode = !strcmp(seg[0], "eval") ? FIT_EVAL : FIT_TRAIN;
		/* a fit's result in the reply saves the client a GET */
		r->want_blob = !agg && r->fit_mode == FIT_TRAIN &&
		    accepts(r->wsi, FL_BLOB_MIME);
		if (!agg && (rc = fit_options(r, err))) {
			req_reply_err(r, rc == FL_ENOTFOUND ? 404 : 400, err);
			goto out;
		}
		cl = content_length(r->wsi, &present);
		if (!present) {
			req_reply_err(r, 411, "send a Content-Length");
			goto out;
		}
		if (r->arg && cl) {
			req_reply_err(r, 400, "a request with ?model=ID carries no body");
			goto out;
		}
		pthread_mutex_lock(&s->qmu);
		if (!(full = s->nfits >= s->max_fits + FIT_QUEUE)) {
			s->nfits++;
			r->fit_slot = 1;
		}
		pthread_mutex_unlock(&s->qmu);
		if (full) {
			req_reply_err(r, 503, agg ? "too many jobs under way: retry later" :
			    "too many fits under way: retry later");
			r->retry_after = 10;
			goto out;
		}
		if (begin_body(r, agg ? BODY_AGG : r->arg ? BODY_FITREF : BODY_FIT,
		    agg ? 64u << 10 : s->max_object))
			goto out;
		return;
	}
	if (nseg == 1 && !strcmp(seg[0], "fits")) {
		if (!get)
			goto method;
		if (authorize(r, FL_RIGHT_READ, 0))
			goto out;
		q = lws_get_urlarg_by_name(r->wsi, "job=", arg, sizeof(arg));
		reply_fits(r, q);
		goto out;
	}
	if (nseg == 2 && !strcmp(seg[0], "tags") && get) {
		if (authorize(r, FL_RIGHT_READ, 0))
			goto out;
		if (!fl_tag_valid(seg[1]))
			req_reply_err(r, 400, "bad tag");
		else if ((rc = fl_store_lookup_tag(s->o.store, seg[1], id, err)))
			req_reply_err(r, status_of(rc), err);
		else
			req_reply_object(r, 200, id);
		goto out;
	}
	if (nseg == 1 && !strcmp(seg[0], "latest") && get) {
		const char *kind = "model";
		if (authorize(r, FL_RIGHT_READ, 0))
			goto out;
		if ((q = lws_get_urlarg_by_name(r->wsi, "kind=", arg, sizeof(arg))))
			kind = q[0] ? q : NULL;
		if ((rc = fl_store_latest(s->o.store, kind, id, err)))
			req_reply_err(r, status_of(rc), err);
		else
			req_reply_object(r, 200, id);
		goto out;
	}
	if (nseg == 1 && !strcmp(seg[0], "tickets")) {
		struct fl_val v;
		struct ticket t;
		if (!post)
			goto method;
		if (authorize(r, FL_RIGHT_WRITE, 0))
			goto out;
		if (srv_ticket_issue(&s->tickets, fl_now(), &t)) {
			req_reply_err(r, 503, "too many open tickets");
			goto out;
		}
		fl_val_map(&v);
		fl_map_set_str(&v, "ticket", t.t);
		fl_map_set_float(&v, "expires", t.expires);
		req_reply_val(r, 201, &v);
		fl_val_release(&v);
		goto out;
	}
	if (nseg == 2 && !strcmp(seg[0], "messages")) {
		if (!post)
			goto method;
		if (authorize(r, FL_RIGHT_WRITE, 0))
			goto out;
		if (!(r->handler = find_handler(s, seg[1]))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "no handler for message '%.100s'", seg[1]);
			req_reply_err(r, 404, msg);
			goto out;
		}
		if (begin_body(r, BODY_MESSAGE, MAX_SMALL_BODY))
			goto out;
		return;
	}
	if (nseg == 1 && !strcmp(seg[0], "events")) {
		req_reply_err(r, 400, "/v1/events is a WebSocket: send Upgrade: websocket");
		goto out;
	}
nothere:
	req_reply_err(r, 404, "no such route");
	goto out;
method:
	req_reply_err(r, 405, "method not allowed");
out:
	/* A body nobody will read: close after the reply rather than parse it
	 * as the next request. */
	if (r->body_kind == BODY_NONE) {
		int present;
		if (content_length(r->wsi, &present) > 0 ||
		    lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING))
			r->close_after = 1;
	}
	if (!r->busy)
		go_write(r);
}

/* Renew the body's deadline each MIN_PROGRESS bytes: -1 once it has passed.
 * (lws renews its own timeout, timeout_secs, after every piece of a body:
 * that drops a client that stops, this one that trickles.) */
static int
body_progress(struct req *r, size_t len)
{
	if ((r->window += len) >= MIN_PROGRESS) {
		r->window = 0;
		r->deadline = fl_monotonic() + r->s->o.idle_timeout;
	}
	return fl_monotonic() > r->deadline ? -1 : 0;
}

/* pread what the page cache holds of the range, never waiting for the
 * disk: -1 with EAGAIN when none of it is there. */
static ssize_t
read_cached(int fd, void *p, size_t n, uint64_t off)
{
	struct iovec v = { p, n };
	ssize_t got = preadv2(fd, &v, 1, (off_t)off, RWF_NOWAIT);

	if (got < 0 && errno == EOPNOTSUPP)	/* tmpfs: memory anyway */
		got = pread(fd, p, n, (off_t)off);
	return got;
}

/* Write what is ready of the reply; returns -1 to close, 1 when an HTTP/2
 * stream's reply is complete. A file's bytes come from the page cache here;
 * when they are not there, a worker reads them (srv_read_piece), so the disk
 * never holds up this thread.
 * One HTTP/1 request per connection: lws 4.1 mishandles a request pipelined
 * behind another on a kept-alive connection (it re-offers the end of its
 * body forever, or hands the body callback a buffer it has freed), so every
 * HTTP/1 reply says "Connection: close" and the connection closes once the
 * reply has left lws's buffers. (HTTP/2, over TLS, has streams instead.) */
static int
write_reply(struct req *r)
{
	struct lws *wsi = r->wsi;
	unsigned char *start = r->s->sendbuf + LWS_PRE, *p = start,
	    *end = start + SEND_CHUNK - 1;
	size_t n;
	ssize_t got;
	int final, reading;

	if (r->finished) {
		if (!lws_partial_buffered(wsi))
			return -1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (!r->ready)
		return 0;
	if (!r->hdr_sent) {
		if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype,
		    r->outlen, &p, end))
			return -1;
		if (r->retry_after) {
			char ra[16];
			int rn = snprintf(ra, sizeof(ra), "%d", r->retry_after);
			if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
			    (const unsigned char *)ra, rn, &p, end))
				return -1;
		}
		if (r->location[0] && lws_add_http_header_by_token(wsi,
		    WSI_TOKEN_HTTP_LOCATION, (const unsigned char *)r->location,
		    (int)strlen(r->location), &p, end))
			return -1;
		if (lws_get_network_wsi(wsi) == wsi &&
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
		    (const unsigned char *)"close", 5, &p, end))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		r->hdr_sent = 1;
		if (r->outlen == 0)
			goto complete;
		lws_callback_on_writable(wsi);
		return 0;
	}
	n = r->outlen - r->sent > SEND_CHUNK ? SEND_CHUNK :
	    (size_t)(r->outlen - r->sent);
	if (r->from_fd) {
		pthread_mutex_lock(&r->mu);
		reading = r->reading;
		if (reading == 2)
			r->reading = 0;
		pthread_mutex_unlock(&r->mu);
		if (reading == 1)
			return 0;	/* the worker asks for a write */
		if (reading == 2) {
			got = r->rgot;
			start = r->rbuf + LWS_PRE;
		} else if ((got = read_cached(r->fd, start, n, r->sent)) < 0 &&
		    errno == EAGAIN) {
			if (!r->rbuf &&
			    !(r->rbuf = malloc(LWS_PRE + SEND_CHUNK)))
				return -1;
			pthread_mutex_lock(&r->mu);
			r->reading = 1;
			r->jobs++;
			pthread_mutex_unlock(&r->mu);
			srv_read_piece(r);
			return 0;
		}
		if (got <= 0)
			return -1;	/* the file shrank: cut the reply short */
		n = (size_t)got;
	} else {
		memcpy(start, r->out.data + r->sent, n);
	}
	final = r->sent + n == r->outlen;
	if (lws_write(wsi, start, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	r->sent += n;
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)r->s->o.idle_timeout);
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
complete:
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (lws_get_network_wsi(wsi) != wsi) {		/* an HTTP/2 stream */
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		return r->close_after || r->s->stopping ? -1 : 1;
	}
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)r->s->o.idle_timeout);
	r->finished = 1;
	return write_reply(r);
}

/* Refuse a request that never becomes a struct req (an upgrade): the
 * reply is written at once, and the caller closes the connection. */
static void
refuse_now(struct fl_server *s, struct lws *wsi, int status, const char *msg)
{
	unsigned char *start = s->sendbuf + LWS_PRE, *p = start,
	    *end = start + SEND_CHUNK - 1;
	int json = accepts(wsi, FL_JSON_MIME);
	struct fl_val v;
	struct fl_buf b;

	fl_val_map(&v);
	fl_map_set_str(&v, "error", msg);
	fl_buf_init(&b, 0);
	if (json) {
		fl_val_json(&b, &v);
		fl_buf_add(&b, "\n", 1);
	} else {
		fl_val_encode(&b, &v);
	}
	fl_val_release(&v);
	if (b.len < SEND_CHUNK &&
	    !lws_add_http_common_headers(wsi, (unsigned)status,
	    json ? FL_JSON_MIME : FL_MSGPACK_MIME, b.len, &p, end) &&
	    !lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	    (const unsigned char *)"close", 5, &p, end) &&
	    !lws_finalize_write_http_header(wsi, start, &p, end)) {
		memcpy(start, b.data, b.len);
		lws_write(wsi, start, b.len, LWS_WRITE_HTTP_FINAL);
	}
	fl_buf_release(&b);
}

static int
cb_http(struct lws *wsi, enum lws_callback_reasons reason, struct pss *pss,
    void *in, size_t len)
{
	struct fl_server *s = lws_context_user(lws_get_context(wsi));
	struct req *r = pss ? pss->r : NULL;
	int rc, failed, paused;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		assert(pss);	/* lws allocates it for every HTTP connection */
		/* keep-alive: the last request is over (lws 4.1 rebinds the
		 * connection first, and HTTP_DROP_PROTOCOL let go of it) */
		if (r)
			req_detach(r);
		pss->completions = 0;
		if (!(r = pss->r = req_new(s, wsi)))
			return -1;
		srv_log(s, FL_LOG_DEBUG, "%s %s", method_of(wsi), (const char *)in);
		route(r, in);
		return 0;
	case LWS_CALLBACK_HTTP_BODY:
		if (!r || r->body_complete || r->body_kind == BODY_NONE)
			return 0;
		if (r->close_after)
			return 0;	/* replying already; drop the rest */
		pthread_mutex_lock(&r->mu);
		failed = r->failed;
		pthread_mutex_unlock(&r->mu);
		if (failed)
			return 0;	/* a worker's reply is on its way */
		if (r->received + len > r->limit) {
			/* Not reached with lws 4.1: it passes on no more of a
			 * body than its Content-Length (HTTP/2 too: a GOAWAY
			 * past it), begin_body has refused a Content-Length
			 * over the limit, and a request without one was taken
			 * as bodiless (what lws passes on then, up to 100 MB
			 * for a POST, is dropped above). Kept against another
			 * lws. An upload's job may hold r and fail too (a disk
			 * error): whichever fails r first replies. The job
			 * replies nothing after this, so the 413 can leave at
			 * once. */
			char m[128];
			r->close_after = 1;
			if (!req_fail(r))
				return 0;
			snprintf(m, sizeof(m), "body exceeds the limit of %llu bytes",
			    (unsigned long long)r->limit);
			req_reply_err(r, 413, m);
			reply_now(r);
			return 0;
		}
		r->received += len;
		if (body_progress(r, len) < 0) {
			srv_log(s, FL_LOG_DEBUG, "dropping a body slower than %u bytes "
			    "in %u s", MIN_PROGRESS, s->o.idle_timeout);
			return -1;
		}
		if ((rc = srv_body_chunk(r, in, len)) < 0)
			return -1;
		if (rc > 0) {
			/* Paused for our disk, not for the client's slowness:
			 * lws's timeout, which it set again for this piece, is
			 * put off while the pause lasts (LWS_CALLBACK_TIMER). */
			lws_rx_flow_control(wsi, 0);
			lws_set_timer_usecs(wsi, PAUSE_TICK);
		}
		return 0;
	case LWS_CALLBACK_TIMER:
		if (r) {
			pthread_mutex_lock(&r->mu);
			paused = r->paused;
			pthread_mutex_unlock(&r->mu);
			if (paused) {
				lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
				    (int)s->o.idle_timeout);
				lws_set_timer_usecs(wsi, PAUSE_TICK);
			}
		}
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* When a request came pipelined behind another, lws offers the
		 * end of its body again on every turn of its loop, from its
		 * buffer, never reading the socket: the service thread would
		 * spin there serving no one. Close such a connection instead. */
		if (pss && pss->completions++) {
			srv_log(s, FL_LOG_DEBUG, "closing a connection whose pipelined "
			    "request's body lws cannot finish");
			return -1;
		}
		/* lws says so of an empty body too ("Content-Length: 0"), to a
		 * route that takes none: submitting that would hold r forever */
		if (!r || r->body_complete || r->close_after || r->body_kind == BODY_NONE)
			return 0;
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		r->body_complete = 1;
		srv_submit_body(r);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!r)
			return 0;
		rc = write_reply(r);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			pss->r = NULL;
			req_detach(r);
			if (lws_http_transaction_completed(wsi))
				return -1;
		}
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* lws 4.1 turns a plain connection into HTTP/2 on "Upgrade:
		 * h2c": streams, many requests on one connection, which
		 * write_reply's one request per connection relies on never
		 * happening (and which lws serves badly there: bodies lost,
		 * headers missed). HTTP/2 is for TLS, by ALPN. */
		if (in && !strcasecmp(in, "websocket"))
			return 0;
		srv_log(s, FL_LOG_DEBUG, "refusing Upgrade: %s", in ? (const char *)in : "");
		refuse_now(s, wsi, 400, "Upgrade: h2c is not taken: HTTP/2 is served over "
		    "TLS only; send the request as HTTP/1.1");
		return -1;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		/* lws frees pss after this, when it rebinds the connection
		 * for another transaction (HTTP/1 keep-alive) as when it
		 * closes it; CLOSED_HTTP may come much later, or never
		 * reach this pss. */
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r) {
			pss->r = NULL;
			req_detach(r);
		}
		return 0;
	default:
		return 0;
	}
}

/* A WebSocket client is gone: forget it and its queue. */
static void
wsc_drop(struct fl_server *s, struct pss *pss)
{
	struct wsc *c = pss->ws, **pp;

	for (pp = &s->wsc; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	while (c->qhead) {
		struct evmsg *m = c->qhead;
		c->qhead = m->next;
		free(m);
	}
	free(c);
	pss->ws = NULL;
}

static int
cb_ws(struct lws *wsi, enum lws_callback_reasons reason, struct pss *pss,
    void *in, size_t len)
{
	struct fl_server *s = lws_context_user(lws_get_context(wsi));
	struct wsc *c = pss ? pss->ws : NULL;
	char uri[64], h[512], fmt[16];
	(void)in;
	(void)len;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
		    strcmp(uri, "/v1/events") || s->stopping)
			return 1;
		if (s->o.ntokens) {
			if (lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 ||
			    strncasecmp(h, "Bearer ", 7) || token_rights(s, h + 7) < 0 ||
			    !(token_rights(s, h + 7) & FL_RIGHT_READ))
				return 1;
		}
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		if (!(c = calloc(1, sizeof(*c))))
			return -1;
		c->wsi = wsi;
		/* a fixed send buffer: the kernel would grow it to megabytes
		 * for a watcher that does not read, holding thousands of
		 * events the queue's bound meant to drop */
		(void)setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF,
		    &(int){ WS_SNDBUF }, sizeof(int));
		{
			const char *q = lws_get_urlarg_by_name(wsi, "format=", fmt, sizeof(fmt));
			c->json = q && !strcmp(q, "json");
		}
		c->next = s->wsc;
		s->wsc = c;
		assert(pss);	/* lws allocates it for every WebSocket */
		pss->ws = c;
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (c && c->qhead) {
			struct evmsg *m = c->qhead;
			if (lws_write(wsi, m->data + LWS_PRE, m->len,
			    c->json ? LWS_WRITE_TEXT : LWS_WRITE_BINARY) < (int)m->len)
				return -1;
			c->qhead = m->next;
			if (!c->qhead)
				c->qtail = NULL;
			c->nq--;
			free(m);
			if (c->qhead)
				lws_callback_on_writable(wsi);
		}
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (c)
			wsc_drop(s, pss);
		return 0;
	default:
		return 0;
	}
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct pss *pss = user;
	struct fl_server *s;

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		s = lws_context_user(lws_get_context(wsi));
		if (s) {
			flush_events(s);
			process_done(s);
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* lws's last word on any connection, pss still intact, to
		 * protocols[0] (ours, though the connection may be bound to
		 * none). CLOSED_HTTP, HTTP_DROP_PROTOCOL or CLOSED have let go
		 * of the connection already; if lws skipped them, a request or
		 * a watcher keeping its wsi would call lws_callback_on_writable
		 * on freed memory once its reply or event is ready. */
		if (!pss || !lws_get_protocol(wsi) ||
		    lws_get_protocol(wsi)->callback != callback ||
		    (!pss->r && !pss->ws))
			return 0;
		s = lws_context_user(lws_get_context(wsi));
		srv_log(s, FL_LOG_WARN, "lws destroyed a connection without closing "
		    "its %s first: let go of it", pss->r ? "request" : "WebSocket");
		if (pss->r) {
			struct req *r = pss->r;
			pss->r = NULL;
			req_detach(r);
		}
		if (pss->ws)
			wsc_drop(s, pss);
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_RECEIVE:
		return cb_ws(wsi, reason, pss, in, len);
	default:
		return cb_http(wsi, reason, pss, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	/* tx_packet_size: lws would otherwise send pt_serv_buf_size at a time
	 * and copy the rest of each write aside */
	{ "flkit", callback, sizeof(struct pss), 0, 0, NULL, SEND_CHUNK },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* A dataset's description from its header alone: never its rows. */
static int
dataset_info(struct fl_val *v, const struct fl_dataset_ref *d, char *err)
{
	struct fl_reader r;
	struct fl_header h;
	struct fl_val shape, x;
	const struct fl_val *c;
	int rc, xi, yi;
	uint64_t classes;

	if ((rc = fl_reader_open(&r, d->path, err)))
		return rc;
	if ((rc = fl_reader_next(&r, &h, err))) {
		fl_reader_close(&r);
		return rc == FL_EOF ? fl_err(err, FL_EBLOB, "%s: empty", d->path) : rc;
	}
	fl_reader_close(&r);
	xi = fl_header_find(&h, "x");
	yi = fl_header_find(&h, "y");
	if (strcmp(h.kind, "dataset") || xi < 0 || h.t[xi].ndim < 1) {
		fl_header_release(&h);
		return fl_err(err, FL_EDATA, "%s: not a dataset blob (kind dataset with "
		    "tensors x and y)", d->path);
	}
	fl_val_map(v);
	fl_map_set_str(v, "key", d->key);
	fl_map_set_uint(v, "samples", h.t[xi].shape[0]);
	fl_val_array(&shape);
	for (int k = 1; k < h.t[xi].ndim; k++) {
		fl_val_uint(&x, h.t[xi].shape[k]);
		fl_array_push(&shape, &x);
	}
	fl_map_set(v, "shape", &shape);
	if ((c = fl_map_get(&h.meta, "classes")) && !fl_val_get_u64(c, &classes))
		fl_map_set_uint(v, "classes", classes);
	else if (yi >= 0 && h.t[yi].ndim == 2)
		fl_map_set_uint(v, "targets", h.t[yi].shape[1]);
	fl_header_release(&h);
	return FL_OK;
}

static void
lws_logger(int level, const char *line)
{
	(void)level;
	(void)line;
}

int
fl_server_new(struct fl_server **out, const struct fl_server_opts *o, char *err)
{
	struct fl_server *s;
	struct lws_context_creation_info info;
	struct fl_limits lim;
	int rc;

	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return fl_err(err, FL_EFAIL, "out of memory");
	if (!(s->sendbuf = malloc(LWS_PRE + SEND_CHUNK))) {
		free(s);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	s->o = *o;
	if (!s->o.max_conns)
		s->o.max_conns = 256;
	if (!s->o.idle_timeout)
		s->o.idle_timeout = 60;
	if (!s->o.handler_timeout)
		s->o.handler_timeout = 30;
	if (!s->o.handler_output)
		s->o.handler_output = 16u << 20;
	if (!s->o.threads)
		s->o.threads = 4;
	fl_limits_default(&lim);
	s->lim = lim;
	s->max_object = o->max_object_bytes ? o->max_object_bytes : lim.total;
	if (s->lim.total > s->max_object)
		s->lim.total = s->max_object;
	pthread_mutex_init(&s->qmu, NULL);
	s->work.s = s->fits.s = s;
	pthread_cond_init(&s->work.cv, NULL);
	pthread_cond_init(&s->fits.cv, NULL);
	if (o->max_fits) {
		s->max_fits = o->max_fits;
	} else {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		s->max_fits = nc < 1 ? 1 : nc > 64 ? 64 : (unsigned)nc;
	}
	/* Fits run side by side, one thread each: so does the dense math
	 * (and OpenBLAS is loaded here, before any thread of ours starts). */
	if (o->ndatasets)
		fl_train_threads(1);
	pthread_mutex_init(&s->dmu, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	if (!(s->ds = calloc(o->ndatasets + 1, sizeof(*s->ds))) ||
	    !(s->dcache = calloc(o->ndatasets + 1, sizeof(*s->dcache))) ||
	    !(s->dcached = calloc(o->ndatasets + 1, sizeof(*s->dcached)))) {
		fl_server_free(s);
		return fl_err(err, FL_EFAIL, "out of memory");
	}
	for (size_t i = 0; i < o->ndatasets; i++) {
		if ((rc = dataset_info(&s->ds[i], &o->datasets[i], err))) {
			fl_err_prefix(err, "dataset %s", o->datasets[i].key);
			fl_server_free(s);
			return rc;
		}
		s->nds++;
	}
	/* for pushes to other workers */
	if ((rc = fl_curl_load(err)) || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		if (!rc)
			rc = fl_err(err, FL_EFAIL, "cannot initialise libcurl");
		fl_server_free(s);
		return rc;
	}
	s->curl_init = 1;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);
	memset(&info, 0, sizeof(info));
	info.port = o->port;
	info.iface = o->addr;
	info.protocols = protocols;
	info.user = s;
	info.max_http_header_data = 8192;
	info.max_http_header_pool = (unsigned short)(s->o.max_conns > 1024 ? 1024 : s->o.max_conns);
	info.fd_limit_per_thread = s->o.max_conns + 16;
	info.timeout_secs = s->o.idle_timeout;
	info.timeout_secs_ah_idle = s->o.idle_timeout < 10 ? s->o.idle_timeout : 10;
	info.keepalive_timeout = 30;
	/* lws reads the socket into a buffer this large: request bodies come
	 * in pieces of up to this much */
	info.pt_serv_buf_size = SEND_CHUNK;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(o->addr, ':') == NULL);
	if (o->tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = o->tls_cert;
		info.ssl_private_key_filepath = o->tls_key;
	}
	if (!(s->ctx = lws_create_context(&info))) {
		fl_server_free(s);
		return fl_err(err, FL_EIO, "cannot listen on %s:%d (in use, or a bad "
		    "address or certificate)", o->addr, o->port);
	}
	s->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(s->ctx, "default"));
	if ((rc = srv_pool_start(s, err))) {
		fl_server_free(s);
		return rc;
	}
	*out = s;
	return FL_OK;
}

int
fl_server_port(const struct fl_server *s)
{
	return s->port;
}

void
fl_server_stop(struct fl_server *s)
{
	s->stop_flag = 1;
	if (s->ctx)
		lws_cancel_service(s->ctx);
}

int
fl_server_run(struct fl_server *s, char *err)
{
	double deadline = 0;

	(void)err;
	while (1) {
		if (s->stop_flag && !s->stopping) {
			s->stopping = 1;
			deadline = fl_monotonic() + GRACE;
			srv_log(s, FL_LOG_INFO, "stopping: finishing %u request(s) in flight",
			    s->inflight);
		}
		if (s->stopping && (s->inflight == 0 || fl_monotonic() > deadline))
			break;
		if (lws_service(s->ctx, 0) < 0)
			break;
	}
	return FL_OK;
}

void
fl_server_free(struct fl_server *s)
{
	if (!s)
		return;
	srv_pool_stop(s);
	if (s->ctx)
		lws_context_destroy(s->ctx);
	/* Requests that were still held by workers are freed with the pool. */
	process_done(s);
	while (s->evhead) {
		struct pending_event *e = s->evhead;
		s->evhead = e->next;
		fl_val_release(&e->v);
		free(e);
	}
	for (size_t i = 0; i < s->nds; i++)
		fl_val_release(&s->ds[i]);
	free(s->ds);
	for (size_t i = 0; s->dcached && i < s->o.ndatasets; i++)
		if (s->dcached[i])
			fl_dataset_release(&s->dcache[i]);
	free(s->dcache);
	free(s->dcached);
	pthread_mutex_destroy(&s->dmu);
	for (struct chunk *c = s->cpool, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	pthread_mutex_destroy(&s->cmu);
	if (s->curl_init)
		curl_global_cleanup();
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->work.cv);
	pthread_cond_destroy(&s->fits.cv);
	free(s->sendbuf);
	free(s);
}
