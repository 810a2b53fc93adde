/* fuzz_server.c: the input as the raw bytes of one TCP connection to an
 * in-process fl_server on a loopback port (requests, pipelined or not:
 * path, query, headers, body, WebSocket handshake and frames).
 *
 * Why a real server rather than its parsing pieces factored out: fl-serve's
 * request handling is spread over lws's HTTP and WebSocket parsers, route(),
 * authorize(), begin_body(), the upload queue that the worker threads drain
 * into the store and validate, the push body decoder, the fit options and
 * keep-alive. The bugs that matter live where these meet (a body that keeps
 * coming after a 413, the next request parsed out of an unread body, a reply
 * while a worker still holds the request), and only the whole server shows
 * them. The server runs for the whole process (one service thread and its
 * pool); every input gets a fresh connection that is written, half-closed
 * and read to the end. Every 64 inputs, GET /v1/health must answer within
 * 5 s: a wedged service thread aborts like a crash. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "data.h"
#include "fuzz.h"
#include "server.h"
#include "store.h"

#define FUZZ_RW "fuzz-rw-token-0123456789"
#define FUZZ_RO "fuzz-ro-token-0123456789"

static struct {
	struct fl_server *s;
	struct fl_store *st;
	pthread_t th;
	int port, started;
	unsigned long n;
	char dir[64], ds[96];
	struct fl_token tok[2];
	struct fl_handler h[1];
	struct fl_dataset_ref d[1];
} fz;

static void *
serve_main(void *arg)
{
	char err[FL_ERRLEN];

	(void)arg;
	fl_server_run(fz.s, err);
	return NULL;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
fuzz_server_stop(void)
{
	if (!fz.started)
		return;
	fl_server_stop(fz.s);
	pthread_join(fz.th, NULL);
	fl_server_free(fz.s);
	fl_store_free(fz.st);
	nftw(fz.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	fz.started = 0;
}

/* A small dataset so that POST /v1/fit/train reaches the fit options. */
static int
write_dataset(const char *path)
{
	static const char csv[] = "0.1,0.2,0.3,0.4,0\n0.5,0.6,0.7,0.8,1\n"
	    "0.9,0.1,0.2,0.3,0\n0.4,0.5,0.6,0.7,1\n";
	struct fl_csv_opts o = { 0 };
	struct fl_blobmem b;
	char err[FL_ERRLEN];
	int fd, rc;

	if (fl_csv_parse(&b, csv, sizeof(csv) - 1, "fuzz.csv", &o, err))
		return -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		fl_blobmem_release(&b);
		return -1;
	}
	rc = fl_blobmem_write(fd, path, &b, err);
	fl_blobmem_release(&b);
	close(fd);
	return rc ? -1 : 0;
}

static void
fuzz_server_start(void)
{
	struct fl_server_opts o;
	char err[FL_ERRLEN];

	signal(SIGPIPE, SIG_IGN);
	snprintf(fz.dir, sizeof(fz.dir), "/tmp/flkit-fuzz-server.XXXXXX");
	if (!mkdtemp(fz.dir))
		abort();
	snprintf(fz.ds, sizeof(fz.ds), "%s/train.blob", fz.dir);
	if (write_dataset(fz.ds))
		abort();
	{
		char st[128];
		snprintf(st, sizeof(st), "%s/store", fz.dir);
		if (fl_store_open(&fz.st, st, 64u << 20, err)) {
			fprintf(stderr, "fuzz_server: %s\n", err);
			abort();
		}
	}
	fz.tok[0] = (struct fl_token){ FUZZ_RW, FL_RIGHT_READ | FL_RIGHT_WRITE };
	fz.tok[1] = (struct fl_token){ FUZZ_RO, FL_RIGHT_READ };
	fz.h[0] = (struct fl_handler){ "echo", "/bin/cat" };
	fz.d[0] = (struct fl_dataset_ref){ "train", fz.ds };
	memset(&o, 0, sizeof(o));
	o.name = "fuzz";
	o.addr = "127.0.0.1";
	o.port = 0;
	o.store = fz.st;
	o.datasets = fz.d;
	o.ndatasets = 1;
	o.tokens = fz.tok;
	o.ntokens = 2;
	o.handlers = fz.h;
	o.nhandlers = 1;
	o.max_object_bytes = 1u << 20;
	o.max_conns = 64;
	o.idle_timeout = 2;
	o.handler_timeout = 1;
	o.handler_output = 64u << 10;
	o.threads = 2;
	if (fl_server_new(&fz.s, &o, err)) {
		fprintf(stderr, "fuzz_server: %s\n", err);
		abort();
	}
	fz.port = fl_server_port(fz.s);
	if (pthread_create(&fz.th, NULL, serve_main, NULL))
		abort();
	fz.started = 1;
	atexit(fuzz_server_stop);
}

/* Write data on a fresh connection, half-close, read until the server
 * closes or wait_ms pass; the bytes read into reply (up to n), or -1. */
static ssize_t
exchange(const uint8_t *data, size_t size, int wait_ms, char *reply, size_t n)
{
	struct sockaddr_in a;
	struct timeval tv = { 1, 0 };
	size_t off = 0, got = 0;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)fz.port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	while (off < size) {
		ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;	/* closed on us, or not reading: fine */
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	for (double end = fl_monotonic() + wait_ms / 1000.0; fl_monotonic() < end;) {
		struct pollfd p = { fd, POLLIN, 0 };
		char buf[4096];
		ssize_t r;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((r = recv(fd, buf, sizeof(buf), 0)) <= 0)
			break;
		if (reply && got < n) {
			size_t k = (size_t)r < n - got ? (size_t)r : n - got;
			memcpy(reply + got, buf, k);
			got += k;
		}
	}
	close(fd);
	return (ssize_t)got;
}

static void
check_alive(void)
{
	static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";
	char reply[64];
	ssize_t n = exchange((const uint8_t *)req, sizeof(req) - 1, 5000, reply,
	    sizeof(reply) - 1);

	if (n < 12 || memcmp(reply, "HTTP/1.1 200", 12)) {
		fprintf(stderr, "fuzz_server: the server no longer answers "
		    "/v1/health (%zd bytes)\n", n);
		abort();
	}
}

static int
fuzz_server(const uint8_t *data, size_t size)
{
	if (!fz.started)
		fuzz_server_start();
	exchange(data, size, 300, NULL, 0);	/* most replies close at once */
#ifdef FL_FUZZ_REPLAY
	check_alive();		/* a corpus is short: check after each input */
#else
	if (++fz.n % 64 == 0)
		check_alive();
#endif
	return 0;
}

FL_FUZZ_ENTRY(fuzz_server)
