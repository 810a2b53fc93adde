/* server_int.h: what server.c and server_work.c share; not public. */
#ifndef FL_SERVER_INT_H
#define FL_SERVER_INT_H

#include <pthread.h>
#include <signal.h>

#include <libwebsockets.h>

#include "blob.h"
#include "data.h"
#include "proto.h"
#include "server.h"
#include "store.h"
#include "train.h"
#include "value.h"

#define MAX_TICKETS 1024
#define TICKET_SECONDS 600
#define SEND_CHUNK (256u << 10)	/* replies go out this much at a time */

enum { BODY_NONE, BODY_BLOB, BODY_MESSAGE, BODY_PUSH, BODY_FIT, BODY_FITREF, BODY_AGG };
/* What a BODY_FIT request does with its model. */
enum { FIT_TRAIN, FIT_EVAL };
enum { DONE_REPLY = 1, DONE_RESUME = 2, DONE_EVENT = 4 };

struct chunk {
	struct chunk *next;
	size_t len, cap;
	unsigned char data[];
};

/* One HTTP request. The service thread owns it, except that a worker may
 * hold it (jobs > 0); then fields under mu are shared. */
struct req {
	struct fl_server *s;
	struct lws *wsi;		/* NULL once the connection is gone */
	pthread_mutex_t mu;
	int jobs;			/* workers holding it (mu) */
	int on_done, pending_what;	/* on the done list (s->qmu) */
	struct req *done_next;
	int failed;			/* (mu) drop the body; whoever sets
					 * it first owns the reply (req_fail) */
	int body_done;			/* (mu) the whole body has arrived */
	int scheduled;			/* (mu) an upload job is queued or running */
	int paused;			/* (mu) rx flow control is off */
	struct chunk *qhead, *qtail;	/* (mu) upload bytes for the disk */
	size_t qbytes;
	struct chunk *spare;		/* (mu) written chunks, for reuse */
	struct chunk *fill;		/* the chunk the body goes into now */
	uint64_t clen;			/* the body's Content-Length */

	/* the reply */
	int busy;			/* a worker will produce it */
	int ready, hdr_sent, close_after, json, from_fd;
	int finished;			/* all written: close once flushed */
	int status;
	const char *ctype;
	struct fl_buf out;
	int fd;
	uint64_t outlen, sent;
	/* from fd: a piece a worker read when the page cache had not */
	int reading;			/* (mu) 1: a read under way, 2: done */
	unsigned char *rbuf;		/* LWS_PRE + SEND_CHUNK */
	ssize_t rgot;

	/* the request */
	int body_kind, body_complete;
	uint64_t limit, received;
	size_t window;			/* body bytes since the deadline was renewed */
	double deadline;		/* (fl_monotonic) for the next MIN_PROGRESS bytes */
	struct fl_upload up;
	struct fl_buf body;
	char *tag, *arg;
	const struct fl_handler *handler;
	/* POST /v1/fit/KEY and /v1/eval/KEY: the options, the dataset, a
	 * slot in s->nfits; with ?model=ID the model is object arg, kept */
	struct fl_train_opts fit;
	const struct fl_dataset_ref *dsref;
	int fit_mode, keep_input;
	int fit_slot, retry_after;
	int want_blob;			/* a fit's reply is its result */
	/* a fit or evaluation under way, for GET /v1/fits (s->qmu) */
	char job[FL_TAG_MAX + 1];	/* the client's ?job=, or "" */
	struct req *run_next;
	int running, p_epoch, p_epochs;
	uint64_t p_step, p_steps;
	double p_loss, p_started;
	/* GET /v1/objects: the page asked for, and its kind, tag, cursor */
	struct fl_store_query list;
	char list_arg[3][80];
	char location[FL_ID_LEN + 16];	/* a 201's Location, or "" */
	double last_progress;
	char ev_name[16], ev_id[FL_ID_LEN + 1], ev_kind[80];
};

struct evmsg {
	struct evmsg *next;
	size_t len;
	unsigned char data[];
};

/* A WebSocket client of /v1/events. */
struct wsc {
	struct wsc *next;
	struct lws *wsi;
	int json;
	struct evmsg *qhead, *qtail;
	size_t nq;
};

/* An event raised on a worker thread, for the service thread to send. */
struct pending_event {
	struct pending_event *next;
	struct fl_val v;
};

struct pss {
	struct req *r;
	int completions;		/* body completions of r seen */
	struct wsc *ws;
};

struct ticket {
	char t[49];
	double expires;
};

/* The open upload tickets (the service thread's). */
struct tickets {
	struct ticket t[MAX_TICKETS];
	size_t n;
};

struct job {
	struct job *next;
	void (*fn)(struct req *);
	struct req *r;
};

/* A queue of jobs and its threads' condition (under s->qmu). */
struct jobq {
	struct fl_server *s;
	pthread_cond_t cv;
	struct job *head, *tail;
};

struct fl_server {
	struct fl_server_opts o;
	struct lws_context *ctx;
	int port;
	unsigned char *sendbuf;		/* LWS_PRE + SEND_CHUNK (service) */
	struct fl_limits lim;
	uint64_t max_object;
	struct fl_val *ds;
	size_t nds;
	volatile sig_atomic_t stop_flag;
	int stopping;
	unsigned inflight;
	struct wsc *wsc;
	struct tickets tickets;
	int curl_init;

	pthread_mutex_t qmu;		/* the queues and the done list */
	struct jobq work;		/* disk, validation, handlers, pushes */
	struct req *done;
	struct pending_event *evhead, *evtail;
	pthread_t *threads;
	unsigned nthreads;
	int quit;
	/* fits: their own threads and queue (qmu); nfits counts the fits
	 * admitted, uploading, queued or running */
	struct jobq fits;
	pthread_t *fthreads;
	unsigned nfthreads, max_fits, nfits;
	struct req *run;		/* (qmu) fits and evaluations under way */
	/* datasets kept after their first fit, one per --dataset (dmu): only
	 * those whose x is mapped from the file, costing no memory of ours */
	pthread_mutex_t dmu;
	struct fl_dataset *dcache;
	int *dcached;
	/* upload chunks of the full size no request holds (cmu), a few, for
	 * the next upload: their pages stay faulted in (srv_chunk_free) */
	pthread_mutex_t cmu;
	struct chunk *cpool;
	unsigned ncpool;
};

/* 1 when strings a and b are equal; the time taken depends on their
 * lengths only, never on where they differ. */
int srv_ct_equal(const char *a, const char *b);
/* Tickets, at time now (fl_now's clock; the tests give their own): issue
 * one into t (fills t->t and t->expires), FL_ELIMIT when MAX_TICKETS are
 * open; take one: 1 when it is open (it is then used up), else 0. Both drop
 * the expired ones. */
int srv_ticket_issue(struct tickets *tt, double now, struct ticket *t);
int srv_ticket_take(struct tickets *tt, const char *t, double now);

void srv_log(struct fl_server *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void srv_event(struct fl_server *s, const char *event, const char *id, const char *kind);
/* From any thread: send map v (taken over, "event" and "time" set by the
 * caller) to the watchers of /v1/events. */
void srv_event_post(struct fl_server *s, struct fl_val *v);
void req_reply_val(struct req *r, int status, const struct fl_val *v);
void req_reply_err(struct req *r, int status, const char *msg);
void req_reply_object(struct req *r, int status, const char *id);
int status_of(int rc);
/* From either thread (it takes r->mu): fail r (drop its body). 1 when the
 * caller failed it first, and so owns the reply: then it sets it and has
 * it sent. 0 when another thread (or the connection's end) failed it
 * first: the caller replies nothing and only lets go of its job. */
int req_fail(struct req *r);
/* From a worker: hand r back (release: the worker lets go of it). */
void req_done(struct req *r, int what, int release);
/* On a worker: the event req_done(DONE_EVENT) sends. */
void req_set_event(struct req *r, const char *ev, const char *id, const char *kind);
void req_free(struct req *r);

/* server_work.c */
int srv_pool_start(struct fl_server *s, char *err);
void srv_pool_stop(struct fl_server *s);
/* A piece of the body: 1 when the socket should pause, -1 on failure. */
int srv_body_chunk(struct req *r, const void *p, size_t n);
/* Give back an upload chunk no request holds any more. */
void srv_chunk_free(struct fl_server *s, struct chunk *c);
/* Read r->fd's next piece of the reply into r->rbuf on a worker. */
void srv_read_piece(struct req *r);
/* The body is whole: start the work that replies. */
void srv_submit_body(struct req *r);
/* Run fn(r) on a worker thread; the caller has counted it in r->jobs. */
void srv_submit(struct req *r, void (*fn)(struct req *));

#endif
