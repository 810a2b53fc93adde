/* client.h: the client side of the worker protocol (proto.h): the workers
 * file, pointers, and requests over libcurl that stream blobs both ways and
 * check them as they go. Nothing here prints; errors go into err. */
#ifndef FL_CLIENT_H
#define FL_CLIENT_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "blob.h"
#include "proto.h"
#include "util.h"
#include "value.h"

/* One line of the workers file: NAME URL [TOKEN-FILE]. */
struct fl_worker {
	char *name;
	char *url;		/* without a trailing '/' */
	char *token_file;	/* NULL, or resolved against the file's directory */
	int line;
};

struct fl_workers {
	struct fl_worker *w;
	size_t n;
	char *path;		/* the file read, for messages */
};

/* Parse text (len bytes) read from path; errors name path and line. */
int fl_workers_parse(struct fl_workers *ws, const char *text, size_t len,
    const char *path, char *err);
/* Load path, or with path NULL $FL_WORKERS, else
 * ${XDG_CONFIG_HOME:-~/.config}/flkit/workers; a missing file is empty. */
int fl_workers_load(struct fl_workers *ws, const char *path, char *err);
void fl_workers_release(struct fl_workers *ws);

/* A worker ready to talk to; the caller owns the strings (release). */
struct fl_endpoint {
	char *name;		/* as the user wrote it: "alice" or a URL */
	char *url;		/* base URL, no trailing '/' */
	char *token;		/* NULL: none */
};
/* s is a worker name or a URL (a URL takes the token of a workers-file
 * entry with the same URL). FL_ENOTFOUND for an unknown name. */
int fl_endpoint_resolve(struct fl_endpoint *ep, const struct fl_workers *ws,
    const char *s, char *err);
void fl_endpoint_release(struct fl_endpoint *ep);

int fl_worker_name_valid(const char *s);
int fl_is_url(const char *s);

/*
 * A pointer: WORKER (its newest model), WORKER/ID, WORKER/TAG, or a URL of
 * any HTTP(S) server holding a blob. A worker URL ending in '/' or with no
 * path is a worker; one whose last segment is an id is WORKER/ID.
 */
enum fl_ptr_kind { FL_PTR_LATEST, FL_PTR_ID, FL_PTR_TAG, FL_PTR_URL };
struct fl_ptr {
	enum fl_ptr_kind kind;
	char *worker;		/* name or base URL; the whole URL for FL_PTR_URL */
	char *name;		/* id or tag; NULL otherwise */
};
int fl_ptr_parse(struct fl_ptr *p, const char *s, char *err);
/* "-": read one pointer line (at most 4 KiB) from fd. */
int fl_ptr_read(struct fl_ptr *p, int fd, char *err);
void fl_ptr_release(struct fl_ptr *p);
/* "worker/id" into out. */
void fl_ptr_format(const struct fl_ptr *p, char *out, size_t n);

/* Progress of a transfer: bytes done and expected (0: unknown). */
typedef void (*fl_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* Where a fetched blob goes; an error code stops the transfer. */
typedef int (*fl_sink_fn)(void *arg, const void *p, size_t n, char *err);

struct fl_client_opts {
	double connect_timeout;	/* seconds; 0: 10 */
	double timeout;		/* seconds without a byte moving; 0: 60 */
	const char *cacert;	/* NULL: $FL_CACERT, else the system store */
	int insecure;		/* skip TLS verification */
	int retries;		/* for idempotent requests; < 0: 2 */
	fl_progress_fn progress;
	void *progress_arg;
	/* When set and *cancel becomes non-zero, transfers stop (within about
	 * a second) with FL_ETIMEOUT. */
	const atomic_int *cancel;
};

/*
 * The network options every client program takes, for getopt_long:
 * FL_CLIENT_LONGOPTS in its option table, and fl_client_opt for a code
 * getopt_long returned: FL_OK when it set co, FL_EUSAGE with err filled
 * for a bad value, -1 when code is not a network option.
 */
enum {
	FL_OPT_CONNECT_TIMEOUT = 0x4000,
	FL_OPT_TIMEOUT,
	FL_OPT_RETRY,
	FL_OPT_CACERT,
	FL_OPT_INSECURE,
};
#define FL_CLIENT_LONGOPTS \
	{ "connect-timeout", required_argument, NULL, FL_OPT_CONNECT_TIMEOUT }, \
	{ "timeout", required_argument, NULL, FL_OPT_TIMEOUT }, \
	{ "retry", required_argument, NULL, FL_OPT_RETRY }, \
	{ "cacert", required_argument, NULL, FL_OPT_CACERT }, \
	{ "insecure", no_argument, NULL, FL_OPT_INSECURE }
int fl_client_opt(struct fl_client_opts *co, int code, const char *arg, char *err);

struct fl_client {
	struct fl_client_opts o;
	struct fl_workers ws;
	long last_http;		/* status of the last upload's reply (0: none) */
};

/* Loads the workers file ($FL_WORKERS or the default). */
int fl_client_init(struct fl_client *c, const struct fl_client_opts *o, char *err);
void fl_client_release(struct fl_client *c);

/* Exit status for an HTTP status (blob: the request carried a blob) and
 * for a libcurl error code. */
int fl_http_status(long http, int blob);
int fl_curl_status(int curlcode);

/*
 * A protocol request: method and path (from "/v1/"), an optional msgpack
 * body (NULL: none), the reply decoded into *reply (nil when empty; may be
 * NULL). GET and DELETE are retried on connection failures.
 */
int fl_call(struct fl_client *c, const struct fl_endpoint *ep, const char *method,
    const char *path, const struct fl_val *body, struct fl_val *reply, char *err);
/* A custom message: raw body in, raw reply (at most max bytes) out. */
int fl_message(struct fl_client *c, const struct fl_endpoint *ep, const char *name,
    const void *body, size_t len, struct fl_buf *reply, char *err);

/*
 * Upload the blob read from fd (a file or a pipe; never held whole) named
 * name: POST to the worker's path with its token (or, if ticket is not
 * NULL, with it), reply decoded into *reply; or with ep NULL, PUT to the
 * URL path. The blob is checked as it is sent: a corrupt one is FL_EBLOB
 * and the server sees a cut transfer.
 */
int fl_upload(struct fl_client *c, const struct fl_endpoint *ep, const char *path,
    const char *ticket, int fd, const char *name, struct fl_val *reply, char *err);

/*
 * Upload as fl_upload (to a worker), asking for a blob in reply (a fit's
 * result: POST /v1/fit/KEY). A blob reply is checked as it arrives and
 * passed to br->sink, its object id taken from its Location, and br->got
 * set; any other reply (an older fl-serve) is decoded into *reply as
 * fl_upload does, br->got 0. A cut blob reply fails with br->id perhaps
 * known, for the caller to fetch it again.
 */
struct fl_blob_reply {
	fl_sink_fn sink;
	void *arg;
	char id[FL_ID_LEN + 1];
	int got;
};
int fl_upload_blob(struct fl_client *c, const struct fl_endpoint *ep,
    const char *path, int fd, const char *name, struct fl_val *reply,
    struct fl_blob_reply *br, char *err);

/*
 * Fetch the blob p names, checked as it arrives, into sink. A reference
 * (a blob of kind "pointer") is followed to the data, at most FL_MAX_HOPS
 * hops, a loop refused; with follow 0 the first reference is not followed
 * but returned in *next (next->worker non-NULL) and sink sees nothing.
 */
int fl_fetch(struct fl_client *c, const struct fl_ptr *p, int follow,
    fl_sink_fn sink, void *arg, struct fl_ptr *next, char *err);

/* The id of the object p names on its worker: itself for FL_PTR_ID, else
 * looked up in the worker's list (newest model, or the tagged object). */
int fl_resolve_id(struct fl_client *c, const struct fl_endpoint *ep,
    const struct fl_ptr *p, char id[FL_ID_LEN + 1], char *err);

/*
 * Have worker src send object id straight to worker dst with a one-time
 * ticket dst issued (no worker sees another's token); with copy 0 src then
 * deletes its copy. newid gets the id on dst. The workers answer when the
 * transfer is done, so give c a timeout to match the object's size.
 */
int fl_move(struct fl_client *c, const struct fl_endpoint *src, const char *id,
    const struct fl_endpoint *dst, int copy, char newid[FL_ID_LEN + 1],
    char *err);

/* A reference blob (kind "pointer", meta {worker, id}) written to fd. */
int fl_ref_write(int fd, const char *worker, const char *id, char *err);

#endif
