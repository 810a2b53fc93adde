/* server_work.c: fl-serve's worker threads: uploads to disk and their
 * validation, custom message handlers, pushes to other workers, and on
 * threads of their own fits, evaluations and aggregations. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "aggregate.h"
#include "model.h"
#include "server_int.h"

#define PAUSE_AT (8u << 20)
#define RESUME_AT (2u << 20)
#define CHUNK_CAP (1u << 20)	/* upload bytes go to disk this much at once */
/* Written chunks kept for an upload's next bytes: as many as can be queued
 * (PAUSE_AT) and one being filled, so that a big upload goes round the same
 * 9 MiB. fl-serve's malloc maps blocks this big and unmaps them when freed:
 * with 2 kept, a 1 GiB upload took 100,000 more page faults. */
#define MAX_SPARE (PAUSE_AT / CHUNK_CAP + 1)
/*
 * Chunks of CHUNK_CAP that uploads are done with wait in a pool of the
 * server's, a few, for the next upload: a fresh one is mapped and faulted
 * in page by page (fl-serve's malloc maps blocks over 64 KiB), 2 us a page
 * here, 0.2 ms for the 400 KB model of every fit. Bodies over POOL_MIN get
 * a chunk of that size, the smaller ones one of their own.
 */
#define POOL_MAX 4
#define POOL_MIN (64u << 10)
#define IS_UPLOAD(r) ((r)->body_kind == BODY_BLOB || (r)->body_kind == BODY_FIT)

extern char **environ;

/*
 * A fit thread's network, kept from one job to the next when it is small:
 * a run of short fits on one arch then maps and faults in no new memory
 * for it (about 1 MB a fit of a 784-128-10 model; with fl_store_begin_own,
 * 0.7 ms of the 3.7-4.3 ms of CPU a tiny fit took here). A bigger one is
 * released after its job, as its training dwarfs that, and it is memory
 * the worker should not hold while idle.
 */
static __thread struct fl_net kept_net;
#define KEEP_NET_MAX (64u << 20)

/* A thread of queue q: run its jobs until the server quits. */
static void *
queue_main(void *arg)
{
	struct jobq *q = arg;
	struct fl_server *s = q->s;
	struct job *j;

	for (;;) {
		pthread_mutex_lock(&s->qmu);
		while (!q->head && !s->quit)
			pthread_cond_wait(&q->cv, &s->qmu);
		if (!q->head) {
			pthread_mutex_unlock(&s->qmu);
			if (kept_net.params)
				fl_net_release(&kept_net);
			return NULL;
		}
		j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		pthread_mutex_unlock(&s->qmu);
		j->fn(j->r);
		free(j);
	}
}

int
srv_pool_start(struct fl_server *s, char *err)
{
	if (!(s->fthreads = calloc(s->max_fits, sizeof(*s->fthreads))))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (s->nfthreads = 0; s->nfthreads < s->max_fits; s->nfthreads++)
		if (pthread_create(&s->fthreads[s->nfthreads], NULL, queue_main,
		    &s->fits))
			return fl_errno(err, FL_EFAIL, "cannot start a thread");
	if (!(s->threads = calloc(s->o.threads, sizeof(*s->threads))))
		return fl_err(err, FL_EFAIL, "out of memory");
	for (s->nthreads = 0; s->nthreads < s->o.threads; s->nthreads++)
		if (pthread_create(&s->threads[s->nthreads], NULL, queue_main,
		    &s->work))
			return fl_errno(err, FL_EFAIL, "cannot start a thread");
	return FL_OK;
}

void
srv_pool_stop(struct fl_server *s)
{
	pthread_mutex_lock(&s->qmu);
	__atomic_store_n(&s->quit, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->work.cv);
	pthread_cond_broadcast(&s->fits.cv);
	pthread_mutex_unlock(&s->qmu);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	for (unsigned i = 0; i < s->nfthreads; i++)
		pthread_join(s->fthreads[i], NULL);
	free(s->fthreads);
	s->fthreads = NULL;
	s->nfthreads = 0;
	free(s->threads);
	s->threads = NULL;
	s->nthreads = 0;
}

/* The reply to a write into the store that failed just now, by its errno:
 * 507 when the disk or the quota is full, 500 for any other fault (EIO).
 * The errno is the write's: fl_errno and free keep it. */
static int
disk_status(void)
{
	return errno == ENOSPC || errno == EDQUOT ? 507 : 500;
}

/* Queue fn(r) on q; the caller has counted the job in r->jobs. */
static void
push_job(struct jobq *q, struct req *r, void (*fn)(struct req *))
{
	struct fl_server *s = r->s;
	struct job *j = malloc(sizeof(*j));

	if (!j) {
		/* Run it here rather than lose it: slow, but never wrong. */
		fn(r);
		return;
	}
	j->fn = fn;
	j->r = r;
	j->next = NULL;
	pthread_mutex_lock(&s->qmu);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&s->qmu);
}

/* Disk, validation, handlers, pushes and listings go to the worker
 * threads. */
void
srv_submit(struct req *r, void (*fn)(struct req *))
{
	push_job(&r->s->work, r, fn);
}

void
req_set_event(struct req *r, const char *ev, const char *id, const char *kind)
{
	snprintf(r->ev_name, sizeof(r->ev_name), "%s", ev);
	snprintf(r->ev_id, sizeof(r->ev_id), "%s", id);
	snprintf(r->ev_kind, sizeof(r->ev_kind), "%s", kind ? kind : "");
}

static void job_fit(struct req *r);
static void job_aggregate(struct req *r);

/* CPU-bound work (fits, evaluations, aggregations) goes to the fit
 * threads, one per --max-fits. */
static void
submit_fit(struct req *r, void (*fn)(struct req *))
{
	push_job(&r->s->fits, r, fn);
}

/* A chunk for at least want bytes of the body: a spare one, or new. */
static struct chunk *
chunk_get(struct req *r, size_t want)
{
	struct chunk *c;
	size_t cap = want < CHUNK_CAP ? want : CHUNK_CAP;

	pthread_mutex_lock(&r->mu);
	if ((c = r->spare) && c->cap >= cap)
		r->spare = c->next;
	else
		c = NULL;
	pthread_mutex_unlock(&r->mu);
	if (!c && cap >= POOL_MIN) {
		struct fl_server *s = r->s;
		pthread_mutex_lock(&s->cmu);
		if ((c = s->cpool)) {
			s->cpool = c->next;
			s->ncpool--;
		}
		pthread_mutex_unlock(&s->cmu);
		cap = CHUNK_CAP;
	}
	if (!c && (c = malloc(sizeof(*c) + cap)))
		c->cap = cap;
	if (c) {
		c->next = NULL;
		c->len = 0;
	}
	return c;
}

/* A written chunk: kept for the next bytes (a few), else freed. */
static void
chunk_put(struct req *r, struct chunk *c)
{
	size_t n = 0;

	pthread_mutex_lock(&r->mu);
	for (struct chunk *x = r->spare; x; x = x->next)
		n++;
	if (c->cap == CHUNK_CAP && n < MAX_SPARE && !r->body_done) {
		c->next = r->spare;
		r->spare = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	if (c)
		srv_chunk_free(r->s, c);
}

void
srv_chunk_free(struct fl_server *s, struct chunk *c)
{
	if (c && c->cap == CHUNK_CAP) {
		pthread_mutex_lock(&s->cmu);
		if (s->ncpool < POOL_MAX) {
			c->next = s->cpool;
			s->cpool = c;
			s->ncpool++;
			c = NULL;
		}
		pthread_mutex_unlock(&s->cmu);
	}
	free(c);
}

/* Uploads: chunks go to the temp file in order; when the body is whole,
 * the file is validated and committed. One job at a time per upload. */
static void
job_upload(struct req *r)
{
	char err[FL_ERRLEN] = "";
	int werr = 0;

	for (;;) {
		struct chunk *c;
		int resume = 0, failed, mine;

		pthread_mutex_lock(&r->mu);
		failed = r->failed;
		if ((c = r->qhead)) {
			r->qhead = c->next;
			if (!r->qhead)
				r->qtail = NULL;
			r->qbytes -= c->len;
			if (r->paused && r->qbytes < RESUME_AT) {
				r->paused = 0;
				resume = 1;
			}
		}
		if (!c) {
			int done = r->body_done;
			r->scheduled = 0;
			pthread_mutex_unlock(&r->mu);
			if (!done || failed) {
				req_done(r, 0, 1);
				return;
			}
			break;
		}
		pthread_mutex_unlock(&r->mu);
		if (!werr && !failed && r->up.fd >= 0 &&
		    fl_store_write(&r->up, c->data, c->len, err))
			werr = disk_status();
		chunk_put(r, c);
		if (resume)
			req_done(r, DONE_RESUME, 0);
		if (werr) {
			/* The service thread may be failing r too (a body
			 * over its limit): the first to fail it replies. Once
			 * failed, r gets no more chunks, so no job after us. */
			mine = req_fail(r);
			pthread_mutex_lock(&r->mu);
			r->scheduled = 0;
			pthread_mutex_unlock(&r->mu);
			if (mine)
				req_reply_err(r, werr, err);
			req_done(r, mine ? DONE_REPLY : 0, 1);
			return;
		}
	}
	/* The whole body is on disk. */
	{
		char id[FL_ID_LEN + 1];
		struct fl_val info;
		int rc;
		if (r->body_kind == BODY_FIT) {
			/* A model to train or evaluate is used once: checked, read
			 * from its temp file, never stored (nor fsynced). */
			if ((rc = fl_store_check(&r->up, &r->s->lim, err)) == FL_OK) {
				submit_fit(r, job_fit);
				return;
			}
			fl_val_nil(&info);
		} else {
			rc = fl_store_commit(r->s->o.store, &r->up, &r->s->lim, r->tag,
			    id, &info, err);
		}
		if (rc == FL_OK) {
			req_reply_val(r, 201, &info);
			req_set_event(r, "stored", id, fl_map_get_str(&info, "kind"));
			srv_log(r->s, FL_LOG_INFO, "stored %s (%s, %llu bytes)", id,
			    fl_map_get_str(&info, "kind"), (unsigned long long)r->received);
			fl_val_release(&info);
			req_done(r, DONE_REPLY | DONE_EVENT, 1);
			return;
		}
		fl_val_release(&info);
		srv_log(r->s, FL_LOG_INFO, "upload refused: %s", err);
		req_reply_err(r, rc == FL_ELIMIT && strstr(err, "store full") ? 507 :
		    status_of(rc), err);
		req_done(r, DONE_REPLY, 1);
	}
}

/* Queue the filled chunk for the disk; 1 when the socket should pause. */
static int
chunk_queue(struct req *r)
{
	struct chunk *c = r->fill;
	int pause = 0;

	if (!c || !c->len)
		return 0;
	r->fill = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->qtail)
		r->qtail->next = c;
	else
		r->qhead = c;
	r->qtail = c;
	r->qbytes += c->len;
	if (!r->paused && r->qbytes > PAUSE_AT)
		pause = r->paused = 1;
	if (!r->scheduled && !r->body_done) {
		r->scheduled = 1;
		r->jobs++;
		pthread_mutex_unlock(&r->mu);
		srv_submit(r, job_upload);
		return pause;
	}
	pthread_mutex_unlock(&r->mu);
	return pause;
}

/* Body bytes gather in chunks of up to CHUNK_CAP, each written whole by a
 * worker: few wake-ups and large writes whatever size lws delivers. */
int
srv_body_chunk(struct req *r, const void *p, size_t n)
{
	const unsigned char *b = p;
	int pause = 0;

	if (!IS_UPLOAD(r))
		return fl_buf_add(&r->body, p, n) ? -1 : 0;
	while (n) {
		struct chunk *c = r->fill;
		size_t take;
		if (!c) {
			/* the body's bytes not yet in a chunk (received counts
			 * all of this piece already) */
			uint64_t left = r->clen - (r->received - n);
			if (left < n)
				left = n;
			if (left > CHUNK_CAP)
				left = CHUNK_CAP;
			if (!(c = r->fill = chunk_get(r, (size_t)left)))
				return -1;
		}
		take = c->cap - c->len < n ? c->cap - c->len : n;
		memcpy(c->data + c->len, b, take);
		c->len += take;
		b += take;
		n -= take;
		if (c->len == c->cap)
			pause |= chunk_queue(r);
	}
	return pause;
}

/* The next piece of a reply from a file the page cache did not hold. */
static void
job_read(struct req *r)
{
	uint64_t left = r->outlen - r->sent;
	size_t n = left > SEND_CHUNK ? SEND_CHUNK : (size_t)left;
	ssize_t got;

	while ((got = pread(r->fd, r->rbuf + LWS_PRE, n, (off_t)r->sent)) < 0 &&
	    errno == EINTR)
		;
	r->rgot = got;
	pthread_mutex_lock(&r->mu);
	r->reading = 2;
	pthread_mutex_unlock(&r->mu);
	req_done(r, DONE_REPLY, 1);
}

void
srv_read_piece(struct req *r)
{
	srv_submit(r, job_read);
}

/* Custom messages: PROGRAM with the body on stdin, its stdout the reply. */
static void
job_message(struct req *r)
{
	struct fl_server *s = r->s;
	const struct fl_handler *h = r->handler;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, rc;
	posix_spawn_file_actions_t fa;
	char *argv[2] = { (char *)h->program, NULL };
	struct fl_buf o;
	size_t off = 0;
	pid_t pid;
	double deadline = fl_monotonic() + s->o.handler_timeout;
	int timed_out = 0, too_big = 0;
	char msg[512];

	fl_buf_init(&o, 0);
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		req_reply_err(r, 500, "cannot make a pipe");
		goto done;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	rc = posix_spawn(&pid, h->program, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if (rc) {
		snprintf(msg, sizeof(msg), "handler %s: cannot run %s: %s", h->name,
		    h->program, strerror(rc));
		req_reply_err(r, 502, msg);
		goto done;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (r->body.len == 0) {
		close(in[1]);
		in[1] = -1;
	}
	while (out[0] >= 0) {
		struct pollfd pf[2];
		int np = 0, ms = (int)((deadline - fl_monotonic()) * 1000);
		if (ms <= 0) {
			timed_out = 1;
			break;
		}
		pf[np++] = (struct pollfd){ .fd = out[0], .events = POLLIN };
		if (in[1] >= 0)
			pf[np++] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
		if (poll(pf, (nfds_t)np, ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (np > 1 && pf[1].revents) {
			ssize_t w = write(in[1], r->body.data + off, r->body.len - off);
			if (w > 0)
				off += (size_t)w;
			if (w < 0 && errno != EAGAIN) {
				close(in[1]);	/* it stopped reading: fine */
				in[1] = -1;
			} else if (off == r->body.len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (pf[0].revents) {
			unsigned char buf[65536];
			ssize_t got = read(out[0], buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(out[0]);
				out[0] = -1;
				break;
			}
			if (o.len + (size_t)got > s->o.handler_output) {
				too_big = 1;
				break;
			}
			fl_buf_add(&o, buf, (size_t)got);
		}
	}
	if (timed_out || too_big)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		snprintf(msg, sizeof(msg), "handler %s: no reply within %u s", h->name,
		    s->o.handler_timeout);
		req_reply_err(r, 504, msg);
	} else if (too_big) {
		snprintf(msg, sizeof(msg), "handler %s: reply exceeds %zu bytes", h->name,
		    s->o.handler_output);
		req_reply_err(r, 502, msg);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		if (WIFEXITED(status))
			snprintf(msg, sizeof(msg), "handler %s: exited with status %d",
			    h->name, WEXITSTATUS(status));
		else
			snprintf(msg, sizeof(msg), "handler %s: killed by signal %d",
			    h->name, WTERMSIG(status));
		req_reply_err(r, 502, msg);
	} else {
		fl_buf_release(&r->out);
		r->out = o;
		fl_buf_init(&o, 0);
		r->status = 200;
		r->ctype = "application/octet-stream";
		r->outlen = r->out.len;
	}
	if (timed_out || too_big)
		srv_log(s, FL_LOG_WARN, "%s", msg);
done:
	fl_buf_release(&o);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	req_done(r, DONE_REPLY, 1);
}

/* A flat JSON object of strings and booleans: enough for a push body. */
static int
json_flat(struct fl_val *v, const char *p, size_t n)
{
	const char *e = p + n;
	char key[64], val[2048];

	fl_val_map(v);
	while (p < e && *p != '{')
		p++;
	if (p++ >= e)
		return -1;
	for (;;) {
		size_t k = 0;
		while (p < e && strchr(" \t\r\n,", *p))
			p++;
		if (p < e && *p == '}')
			return 0;
		if (p >= e || *p++ != '"')
			return -1;
		while (p < e && *p != '"' && k < sizeof(key) - 1)
			key[k++] = *p++;
		key[k] = 0;
		if (p >= e || *p++ != '"')
			return -1;
		while (p < e && strchr(" \t\r\n:", *p))
			p++;
		if (p < e && *p == '"') {
			size_t l = 0;
			p++;
			while (p < e && *p != '"' && l < sizeof(val) - 1) {
				if (*p == '\\' && p + 1 < e)
					p++;
				val[l++] = *p++;
			}
			val[l] = 0;
			if (p >= e || *p++ != '"')
				return -1;
			fl_map_set_str(v, key, val);
		} else if (e - p >= 4 && !strncmp(p, "true", 4)) {
			struct fl_val b;
			fl_val_bool(&b, 1);
			fl_map_set(v, key, &b);
			p += 4;
		} else if (e - p >= 5 && !strncmp(p, "false", 5)) {
			struct fl_val b;
			fl_val_bool(&b, 0);
			fl_map_set(v, key, &b);
			p += 5;
		} else {
			return -1;
		}
	}
}

struct push_src {
	int fd;
	uint64_t off;
};

static size_t
push_read(char *buf, size_t size, size_t n, void *arg)
{
	struct push_src *src = arg;
	ssize_t got = pread(src->fd, buf, size * n, (off_t)src->off);

	if (got < 0)
		return CURL_READFUNC_ABORT;
	src->off += (uint64_t)got;
	return (size_t)got;
}

static size_t
push_write(char *buf, size_t size, size_t n, void *arg)
{
	return fl_buf_add(arg, buf, size * n) ? 0 : size * n;
}

static void
job_push(struct req *r)
{
	struct fl_server *s = r->s;
	struct fl_val body, reply, res;
	const struct fl_val *mv;
	const char *url, *ticket, *newid;
	char err[FL_ERRLEN], msg[FL_ERRLEN + 128], *full = NULL, kind[80] = "";
	struct curl_slist *hdrs = NULL;
	struct push_src src = { -1, 0 };
	struct fl_buf got;
	uint64_t size;
	long code = 0;
	int move = 0, rc;
	CURL *c = NULL;
	CURLcode cc;

	fl_val_nil(&body);
	fl_val_nil(&reply);
	fl_buf_init(&got, 1 << 20);
	if (r->body.len && r->body.data[0] == '{')
		rc = json_flat(&body, (const char *)r->body.data, r->body.len) ? FL_EBLOB : FL_OK;
	else
		rc = fl_val_unpack(&body, r->body.data, r->body.len, err);
	if (rc || body.type != FL_V_MAP || !(url = fl_map_get_str(&body, "url")) ||
	    !(ticket = fl_map_get_str(&body, "ticket"))) {
		req_reply_err(r, 400, "push body: a map {\"url\", \"ticket\", \"move\"} "
		    "(msgpack or JSON)");
		goto done;
	}
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		req_reply_err(r, 400, "push url: http:// or https:// expected");
		goto done;
	}
	if ((mv = fl_map_get(&body, "move")) && mv->type == FL_V_BOOL)
		move = mv->v.b;
	if ((rc = fl_store_open_object(s->o.store, r->arg, &src.fd, &size, err))) {
		req_reply_err(r, status_of(rc), err);
		goto done;
	}
	fl_store_kind(s->o.store, r->arg, kind, sizeof(kind));
	if (!(full = malloc(strlen(url) + 16)))
		goto oom;
	strcpy(full, url);
	while (full[0] && full[strlen(full) - 1] == '/')
		full[strlen(full) - 1] = 0;
	if (!strstr(full, "/v1/objects"))
		strcat(full, "/v1/objects");
	snprintf(msg, sizeof(msg), "Authorization: Ticket %s", ticket);
	hdrs = curl_slist_append(hdrs, msg);
	hdrs = curl_slist_append(hdrs, "Content-Type: " FL_BLOB_MIME);
	hdrs = curl_slist_append(hdrs, "Accept: " FL_MSGPACK_MIME);
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (!(c = curl_easy_init()) || !hdrs)
		goto oom;
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, push_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &src);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, push_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->o.idle_timeout);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (getenv("FL_CACERT"))
		curl_easy_setopt(c, CURLOPT_CAINFO, getenv("FL_CACERT"));
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		snprintf(msg, sizeof(msg), "push to %s: %s", url, curl_easy_strerror(cc));
		req_reply_err(r, 502, msg);
		goto done;
	}
	fl_val_nil(&reply);
	if (got.len && got.data[0] != '{')
		fl_val_unpack(&reply, got.data, got.len, err);
	if (code != 201 || !(newid = fl_map_get_str(&reply, "id")) || !fl_id_valid(newid)) {
		const char *e = fl_map_get_str(&reply, "error");
		snprintf(msg, sizeof(msg), "push to %s: HTTP %ld%s%s", url, code,
		    e ? ": " : "", e ? e : "");
		req_reply_err(r, 502, msg);
		goto done;
	}
	fl_val_map(&res);
	fl_map_set_str(&res, "id", newid);
	if (move) {
		/* Only now that the destination holds it. */
		if ((rc = fl_store_delete(s->o.store, r->arg, NULL, 0, err))) {
			fl_map_set_str(&res, "warning", err);
		} else {
			req_set_event(r, "deleted", r->arg, kind);
		}
	}
	req_reply_val(r, 200, &res);
	fl_val_release(&res);
	goto done;
oom:
	req_reply_err(r, 500, "out of memory");
done:
	if (c)
		curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (src.fd >= 0)
		close(src.fd);
	free(full);
	fl_buf_release(&got);
	fl_val_release(&body);
	fl_val_release(&reply);
	req_done(r, DONE_REPLY | DONE_EVENT, 1);
}

/*
 * Training progress for the watchers of /v1/events (and GET /v1/fits): an
 * event a second within an epoch, and one at an epoch's end, but not
 * within EPOCH_GAP seconds of the last: a fit of 500000 epochs of ten
 * samples posted 100000 events a second, and the service thread spent a
 * core sending them. The last epoch's end is always told.
 */
#define EPOCH_GAP 0.05
static int
fit_progress(void *arg, const struct fl_train_progress *p)
{
	struct req *r = arg;
	struct fl_val v;
	double now = fl_monotonic();
	int last = p->epoch_done && (p->epoch == p->epochs || p->step == p->steps);

	/* The server is being freed (its grace period is over): stop, or
	 * joining this thread would wait for the whole fit. */
	if (__atomic_load_n(&r->s->quit, __ATOMIC_RELAXED))
		return 1;
	if (!last && now - r->last_progress < (p->epoch_done ? EPOCH_GAP : 1))
		return 0;
	r->last_progress = now;
	pthread_mutex_lock(&r->s->qmu);	/* for GET /v1/fits */
	r->p_epoch = p->epoch;
	r->p_epochs = p->epochs;
	r->p_step = p->step;
	r->p_steps = p->steps;
	r->p_loss = p->loss;
	pthread_mutex_unlock(&r->s->qmu);
	fl_val_map(&v);
	if (fl_map_set_str(&v, "event", "progress") ||
	    fl_map_set_str(&v, "dataset", r->dsref->key) ||
	    (r->arg && fl_map_set_str(&v, "model", r->arg)) ||
	    fl_map_set_uint(&v, "epoch", (uint64_t)p->epoch) ||
	    fl_map_set_uint(&v, "epochs", (uint64_t)p->epochs) ||
	    fl_map_set_uint(&v, "step", p->step) ||
	    fl_map_set_uint(&v, "steps", p->steps) ||
	    fl_map_set_float(&v, "loss", p->loss) ||
	    (!isnan(p->accuracy) && fl_map_set_float(&v, "accuracy", p->accuracy)) ||
	    fl_map_set_float(&v, "rate", p->rate) ||
	    (p->epoch_done && fl_map_set_uint(&v, "epoch_done", 1)) ||
	    fl_map_set_float(&v, "time", fl_now())) {
		fl_val_release(&v);
		return 0;
	}
	srv_event_post(r->s, &v);
	return 0;
}

/*
 * The dataset of ref for a fit: the one kept since an earlier fit, or
 * loaded now into own. One whose x is mapped from the file is then kept
 * for the fits to come (it holds no memory of the worker's own, only page
 * cache); *owned says whether the caller must release own.
 */
static int
dataset_get(struct fl_server *s, const struct fl_dataset_ref *ref,
    const struct fl_dataset **d, struct fl_dataset *own, int *owned, char *err)
{
	size_t i = (size_t)(ref - s->o.datasets);
	int rc;

	*owned = 0;
	pthread_mutex_lock(&s->dmu);
	if (s->dcached[i]) {
		*d = &s->dcache[i];
		pthread_mutex_unlock(&s->dmu);
		return FL_OK;
	}
	pthread_mutex_unlock(&s->dmu);
	if ((rc = fl_dataset_load(own, ref->path, err)))
		return rc;
	pthread_mutex_lock(&s->dmu);
	if (!s->dcached[i] && own->xmap.base) {
		s->dcache[i] = *own;
		s->dcached[i] = 1;
		fl_dataset_init(own);
	}
	if (s->dcached[i]) {
		*d = &s->dcache[i];
		pthread_mutex_unlock(&s->dmu);
		fl_dataset_release(own);	/* another fit kept its own first */
		return FL_OK;
	}
	pthread_mutex_unlock(&s->dmu);
	*d = own;
	*owned = 1;
	return FL_OK;
}

/* Evaluation's reply: {"dataset", "loss", "accuracy", "samples"}. */
static void
reply_eval(struct req *r, const struct fl_eval_result *res)
{
	struct fl_val v;

	fl_val_map(&v);
	fl_map_set_str(&v, "dataset", r->dsref->key);
	if (isfinite(res->loss))
		fl_map_set_float(&v, "loss", res->loss);
	if (isfinite(res->accuracy))
		fl_map_set_float(&v, "accuracy", res->accuracy);
	fl_map_set_uint(&v, "samples", res->samples);
	req_reply_val(r, 200, &v);
	fl_val_release(&v);
}

/* Put r on the list of fits under way (GET /v1/fits), or take it off. */
static void
run_list(struct req *r, int on)
{
	struct fl_server *s = r->s;

	pthread_mutex_lock(&s->qmu);
	if (on) {
		r->p_started = fl_now();
		r->run_next = s->run;
		s->run = r;
		r->running = 1;
	} else if (r->running) {
		struct req **pp = &s->run;
		while (*pp != r)
			pp = &(*pp)->run_next;
		*pp = r->run_next;
		r->running = 0;
	}
	pthread_mutex_unlock(&s->qmu);
}

/*
 * A fit or an evaluation of model object r->arg (uploaded, or named with
 * ?model=ID and then kept) on dataset r->dsref, with the same code as
 * fl-fit --local. A fit's result is stored tagged "latest-fit" before the
 * reply, so a client that left loses nothing.
 */
static void
job_fit(struct req *r)
{
	struct fl_server *s = r->s;
	struct fl_reader rd;
	struct fl_header h;
	struct fl_arch arch;
	struct fl_net *net = &kept_net;
	struct fl_dataset own;
	const struct fl_dataset *d;
	struct fl_train_result res;
	struct fl_eval_result eres;
	struct fl_upload up;
	struct fl_val info, m;
	const struct fl_val *mv;
	char err[FL_ERRLEN], id[FL_ID_LEN + 1], *path;
	int rc, status = 400, ropen = 0, hopen = 0, nopen = 0, dopen = 0;
	int eval = r->fit_mode == FIT_EVAL;
	off_t end;

	fl_val_nil(&info);
	run_list(r, 1);
	if (!r->keep_input)
		path = NULL;	/* the upload's temp file */
	else if (!(path = fl_store_path(s->o.store, r->arg))) {
		status = 500;
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	rc = fl_reader_open(&rd, path ? path : r->up.tmp, err);
	free(path);
	if (rc) {
		char kind[80];
		if (r->keep_input && fl_store_kind(s->o.store, r->arg, kind,
		    sizeof(kind))) {
			/* deleted since the request named it */
			status = 404;
			snprintf(err, sizeof(err), "model: no object %s", r->arg);
		} else {
			status = 500;
		}
		goto fail;
	}
	ropen = 1;
	if ((rc = fl_reader_next(&rd, &h, err))) {
		status = status_of(rc);
		goto fail;
	}
	hopen = 1;
	if ((rc = fl_model_arch(&h, &arch, err)) ||
	    (rc = fl_net_reinit(net, &arch, eval ? 256 : r->fit.batch, err))) {
		fl_err_prefix(err, "not a model");
		status = rc == FL_EFAIL ? 500 : 400;
		goto fail;
	}
	nopen = 1;
	if ((rc = fl_model_check(&h, net, err)) ||
	    (rc = fl_model_load(&rd, &h, net, err))) {
		status = status_of(rc);
		goto fail;
	}
	fl_reader_close(&rd);
	ropen = 0;
	if ((rc = dataset_get(s, r->dsref, &d, &own, &dopen, err))) {
		status = 500;
		goto fail;
	}
	if ((rc = fl_train_check(net, d, err))) {
		fl_err_prefix(err, "the model does not fit dataset %s",
		    r->dsref->key);
		status = 422;
		goto fail;
	}
	if (eval) {
		if ((rc = fl_eval(net, d, &eres, err))) {
			status = status_of(rc);
			goto fail;
		}
		reply_eval(r, &eres);
		srv_log(s, FL_LOG_INFO, "evaluated %s on %s: loss %.4f, %llu samples",
		    r->arg ? r->arg : "a model", r->dsref->key, eres.loss,
		    (unsigned long long)eres.samples);
		goto done;
	}
	srv_log(s, FL_LOG_INFO, "fit of %s on %s: %d epoch(s), batch %d",
	    r->arg ? r->arg : "a model", r->dsref->key, r->fit.epochs, r->fit.batch);
	r->fit.progress = fit_progress;
	r->fit.arg = r;
	r->last_progress = fl_monotonic();
	rc = fl_fit(net, d, &r->fit, &res, err);
	r->fit.progress = NULL;
	if (rc) {
		status = rc == FL_EDATA ? 422 : status_of(rc);
		goto fail;
	}
	if (fl_train_stamp(&h.meta, &r->fit, &res, s->o.name)) {
		status = 500;
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if ((rc = fl_store_begin_own(s->o.store, &up, err))) {
		status = 500;
		goto fail;
	}
	if ((rc = fl_model_write(up.fd, up.tmp, &h, net, err)) ||
	    (end = lseek(up.fd, 0, SEEK_END)) < 0) {
		status = disk_status();
		if (!rc)
			fl_errno(err, FL_EIO, "%s", up.tmp);
		fl_store_abort(&up);
		goto fail;
	}
	up.bytes = (uint64_t)end;
	if ((rc = fl_store_commit(s->o.store, &up, &s->lim, "latest-fit", id, &info,
	    err))) {
		status = rc == FL_ELIMIT ? 507 : 500;
		goto fail;
	}
	fl_map_set_uint(&info, "samples", res.samples);
	if ((mv = fl_map_get(&h.meta, "metrics")) && fl_val_copy(&m, mv) == FL_OK)
		fl_map_set(&info, "metrics", &m);
	if (r->want_blob)
		req_reply_object(r, 201, id);
	else
		req_reply_val(r, 201, &info);
	req_set_event(r, "fitted", id, fl_map_get_str(&info, "kind"));
	srv_log(s, FL_LOG_INFO, "fitted %s on %s: %s, %llu samples, loss %.4f, "
	    "%.3f s", r->arg ? r->arg : "a model", r->dsref->key, id,
	    (unsigned long long)res.samples,
	    res.loss, res.seconds);
	goto done;
fail:
	srv_log(s, FL_LOG_INFO, "%s refused: %s", eval ? "evaluation" : "fit", err);
	req_reply_err(r, status, err);
done:
	if (ropen)
		fl_reader_close(&rd);
	if (dopen)
		fl_dataset_release(&own);
	if (nopen && fl_net_bytes(net) > KEEP_NET_MAX)
		fl_net_release(net);
	if (hopen)
		fl_header_release(&h);
	fl_val_release(&info);
	if (r->up.tmp)
		fl_store_abort(&r->up);
	run_list(r, 0);
	req_done(r, DONE_REPLY | DONE_EVENT, 1);
}

/* The store path of object id, or of what tag names; FL_ENOTFOUND. */
static int
object_path(struct fl_server *s, const char *name, int is_tag, char **path,
    char *err)
{
	char id[FL_ID_LEN + 1], kind[80];
	int rc;

	*path = NULL;
	if (is_tag) {
		if (!fl_tag_valid(name))
			return fl_err(err, FL_EUSAGE, "bad tag '%.64s'", name);
		if ((rc = fl_store_lookup_tag(s->o.store, name, id, err)))
			return rc;
		name = id;
	} else if (!fl_id_valid(name)) {
		return fl_err(err, FL_EUSAGE, "bad object id '%.64s': expected 16 "
		    "lowercase hex digits", name);
	}
	if (fl_store_kind(s->o.store, name, kind, sizeof(kind)))
		return fl_err(err, FL_ENOTFOUND, "no object %s", name);
	if (!(*path = fl_store_path(s->o.store, name)))
		return fl_err(err, FL_EFAIL, "out of memory");
	return FL_OK;
}

/* Warnings of an aggregation go to the log. */
static void
agg_warn(void *arg, const char *msg)
{
	struct req *r = arg;

	srv_log(r->s, FL_LOG_WARN, "aggregate: %s", msg);
}

/* Take back the objects a failed aggregate stored (ids[0] just after its
 * commit, ids[1] after the state's); one the store could not remove is
 * named in the error. */
static void
unstore(struct fl_server *s, const char *const *ids, size_t n, char *err)
{
	char e2[FL_ERRLEN], kind[80];

	if (!n)
		return;
	for (size_t k = 0; k < n; k++)
		if (fl_store_delete(s->o.store, ids[k], NULL, 0, e2) &&
		    fl_store_kind(s->o.store, ids[k], kind, sizeof(kind)) == FL_OK)
			fl_err_prefix(err, "%s stored, untagged", ids[k]);
}

/*
 * POST /v1/aggregate: {"inputs": [ID...], fl-avg's options (aggregate_kv.c),
 * "base": ID, "state": TAG, "tag": TAG}: aggregate objects of this worker
 * with the same code as fl-avg, store the result (tagged, default
 * "latest-aggregate") and the new server-optimizer state (tagged state),
 * then 201 {"id", "kind", "bytes", "inputs", "state"}.
 */
static void
job_aggregate(struct req *r)
{
	struct fl_server *s = r->s;
	struct fl_val body, info, sinfo;
	const struct fl_val *in;
	struct fl_agg_opts o;
	struct fl_agg a;
	struct fl_upload up, sup;
	const char *tag = "latest-aggregate", *stag = NULL, *tags[2], *ids[2];
	char err[FL_ERRLEN], id[FL_ID_LEN + 1], sid[FL_ID_LEN + 1];
	size_t ntags = 0;
	char *base = NULL, *state = NULL, *path = NULL;
	double *weights = NULL;
	int rc, status = 400, aopen = 0, upopen = 0, supopen = 0, has_state = 0;
	off_t end;

	fl_val_nil(&body);
	fl_val_nil(&info);
	fl_val_nil(&sinfo);
	up.fd = sup.fd = -1;
	if ((rc = fl_val_unpack(&body, r->body.data, r->body.len, err)))
		goto fail;
	if ((rc = fl_agg_opts_decode(&o, &body, &weights, err)))
		goto fail;
	if (!(in = fl_map_get(&body, "inputs")) || in->type != FL_V_ARRAY ||
	    !in->v.a.n) {
		snprintf(err, sizeof(err), "inputs: expected a list of object ids");
		goto fail;
	}
	if (fl_map_get(&body, "tag") && (!(tag = fl_map_get_str(&body, "tag")) ||
	    !fl_tag_valid(tag))) {
		snprintf(err, sizeof(err), "tag: use letters, digits, '.', '_', '-'");
		goto fail;
	}
	if (o.base && (rc = object_path(s, o.base, 0, &base, err))) {
		fl_err_prefix(err, "base");
		status = status_of(rc);
		goto fail;
	}
	o.base = base;
	if (o.state) {
		/* the state is kept under a tag: absent the first round */
		if (!fl_tag_valid(o.state)) {
			snprintf(err, sizeof(err), "state: a tag: use letters, "
			    "digits, '.', '_', '-'");
			goto fail;
		}
		has_state = o.opt != FL_SOPT_SGD;
		stag = o.state;
		if (has_state && !strcmp(stag, tag)) {
			snprintf(err, sizeof(err), "state: the tag %s is the "
			    "aggregate's own", tag);
			goto fail;
		}
		if ((rc = object_path(s, o.state, 1, &state, err)) &&
		    rc != FL_ENOTFOUND) {
			status = status_of(rc);
			goto fail;
		}
		o.state = state;
	}
	o.warn = agg_warn;
	o.cbarg = r;
	o.threads = 1;		/* one job per core (s->max_fits) */
	fl_agg_init(&a, &o);
	aopen = 1;
	for (size_t i = 0; i < in->v.a.n; i++) {
		const char *iid = fl_val_get_str(&in->v.a.items[i]);
		if (!iid) {
			snprintf(err, sizeof(err), "inputs: expected object ids");
			goto fail;
		}
		/* messages name the object, not its path here */
		if ((rc = object_path(s, iid, 0, &path, err)) ||
		    (rc = fl_agg_add_as(&a, path, iid, err))) {
			status = status_of(rc);
			goto fail;
		}
		free(path);
		path = NULL;
	}
	if ((rc = fl_store_begin_own(s->o.store, &up, err))) {
		status = 500;
		goto fail;
	}
	upopen = 1;
	if (has_state) {
		if ((rc = fl_store_begin_own(s->o.store, &sup, err))) {
			status = 500;
			goto fail;
		}
		supopen = 1;
	}
	srv_log(s, FL_LOG_INFO, "aggregating %zu objects (%s)", a.n,
	    fl_agg_rule_name(&o));
	if ((rc = fl_agg_run(&a, up.fd, up.tmp, has_state ? sup.fd : -1,
	    has_state ? sup.tmp : NULL, err))) {
		status = rc == FL_EIO ? disk_status() : status_of(rc);
		goto fail;
	}
	if ((end = lseek(up.fd, 0, SEEK_END)) < 0) {
		fl_errno(err, FL_EIO, "%s", up.tmp);
		status = 500;
		goto fail;
	}
	up.bytes = (uint64_t)end;
	upopen = 0;
	/* Stored untagged, then tagged together: a failed aggregate moves
	 * neither its tag nor the state's, and leaves no object behind. */
	if ((rc = fl_store_commit(s->o.store, &up, &s->lim, NULL, id, &info,
	    err))) {
		status = rc == FL_ELIMIT ? 507 : 500;
		goto fail;
	}
	tags[0] = tag;
	ids[0] = id;
	ntags = 1;
	if (has_state) {
		if ((end = lseek(sup.fd, 0, SEEK_END)) < 0) {
			fl_errno(err, FL_EIO, "%s", sup.tmp);
			status = 500;
			goto unstore;
		}
		sup.bytes = (uint64_t)end;
		supopen = 0;
		if ((rc = fl_store_commit(s->o.store, &sup, &s->lim, NULL, sid,
		    &sinfo, err))) {
			status = rc == FL_ELIMIT ? 507 : 500;
			goto unstore;
		}
		tags[1] = stag;
		ids[1] = sid;
		ntags = 2;
		fl_map_set_str(&info, "state", sid);
	}
	if (fl_store_tags(s->o.store, ntags, tags, ids, err)) {
		status = 500;
		goto unstore;
	}
	fl_map_set_uint(&info, "inputs", a.n);
	req_reply_val(r, 201, &info);
	req_set_event(r, "aggregated", id, fl_map_get_str(&info, "kind"));
	srv_log(s, FL_LOG_INFO, "aggregated %zu objects into %s", a.n, id);
	goto done;
unstore:
	unstore(s, ids, ntags, err);
fail:
	srv_log(s, FL_LOG_INFO, "aggregation refused: %s", err);
	req_reply_err(r, status, err);
done:
	if (upopen)
		fl_store_abort(&up);
	if (supopen)
		fl_store_abort(&sup);
	if (aopen)
		fl_agg_release(&a);
	free(path);
	free(base);
	free(state);
	free(weights);
	fl_val_release(&sinfo);
	fl_val_release(&info);
	fl_val_release(&body);
	req_done(r, DONE_REPLY | DONE_EVENT, 1);
}

void
srv_submit_body(struct req *r)
{
	if (IS_UPLOAD(r))
		chunk_queue(r);
	pthread_mutex_lock(&r->mu);
	r->body_done = 1;
	r->busy = 1;
	if (IS_UPLOAD(r) && r->scheduled) {
		/* the running job sees body_done when the queue is empty */
		pthread_mutex_unlock(&r->mu);
		return;
	}
	if (IS_UPLOAD(r))
		r->scheduled = 1;
	r->jobs++;
	pthread_mutex_unlock(&r->mu);
	switch (r->body_kind) {
	case BODY_BLOB:
	case BODY_FIT:
		srv_submit(r, job_upload);
		break;
	case BODY_MESSAGE:
		srv_submit(r, job_message);
		break;
	case BODY_PUSH:
		srv_submit(r, job_push);
		break;
	case BODY_FITREF:
		submit_fit(r, job_fit);
		break;
	case BODY_AGG:
		submit_fit(r, job_aggregate);
		break;
	}
}
