/* server.h: the worker (fl-serve): the protocol of proto.h over
 * libwebsockets, one service thread and a small pool of worker threads. */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "util.h"

#define FL_RIGHT_READ 1
#define FL_RIGHT_WRITE 2

struct fl_token {
	char *token;
	int rights;
};

/* Read a token file: one token a line, optionally followed by "read"
 * and/or "write" (default both); '#' comments. *out is the caller's
 * (fl_tokens_free). FL_EDATA when it holds no token. */
int fl_tokens_load(const char *path, struct fl_token **out, size_t *n, char *err);
void fl_tokens_free(struct fl_token *t, size_t n);

struct fl_handler {
	const char *name;
	const char *program;	/* run with execve, no shell */
};

struct fl_dataset_ref {
	const char *key;
	const char *path;
};

enum { FL_LOG_ERR, FL_LOG_WARN, FL_LOG_INFO, FL_LOG_DEBUG };

struct fl_server_opts {
	const char *name;
	const char *addr;		/* "127.0.0.1" */
	int port;
	struct fl_store *store;		/* not owned */
	const struct fl_dataset_ref *datasets;
	size_t ndatasets;
	const struct fl_token *tokens;	/* none: no authentication */
	size_t ntokens;
	const char *tls_cert, *tls_key;
	const struct fl_handler *handlers;
	size_t nhandlers;
	uint64_t max_object_bytes;	/* 0: the blob limits' total */
	unsigned max_conns;		/* 0: 256 */
	unsigned idle_timeout;		/* seconds without progress (a body: less
					 * than 16 KiB), headers (at most 10),
					 * a push: 0: 60 */
	unsigned handler_timeout;	/* seconds: 0: 30 */
	size_t handler_output;		/* bytes: 0: 16 MiB */
	unsigned threads;		/* worker threads: 0: 4 */
	unsigned max_fits;		/* fits and aggregations at once: 0: one
					 * per CPU; as many more wait in a queue
					 * of 16, then 503 */
	/* Messages: the library never prints; this may be NULL. */
	void (*log)(void *arg, int level, const char *msg);
	void *log_arg;
};

struct fl_server;

/* Check the options, read the datasets' headers and listen. */
int fl_server_new(struct fl_server **out, const struct fl_server_opts *o,
    char *err);
/* Serve until fl_server_stop; then finish what is in flight (up to a
 * grace period), refusing new requests with 503. */
int fl_server_run(struct fl_server *s, char *err);
/* Safe from a signal handler. */
void fl_server_stop(struct fl_server *s);
void fl_server_free(struct fl_server *s);
/* The port actually bound (when opts port was 0). */
int fl_server_port(const struct fl_server *s);

#endif
