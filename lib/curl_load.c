/* curl_load.c: the libcurl calls flkit makes, through dlopen(3) at the
 * first use, so that a program that talks to no worker (fl-avg on files,
 * fl-fit --local, fl-pack) does not map libcurl and its thirty libraries:
 * they cost 3.6 ms of every start here, a third of a small round. */
#define CURL_DISABLE_TYPECHECK	/* these are the functions themselves */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "curl_load.h"
#include "util.h"

#ifndef FL_CURL_LIB
#define FL_CURL_LIB "libcurl.so.4"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char why[FL_ERRLEN];
static struct {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	CURLcode (*easy_perform)(CURL *);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} fn;

static void
load(void)
{
	static const struct {
		const char *name;
		void **p;
	} sym[] = {
		{ "curl_global_init", (void **)&fn.global_init },
		{ "curl_global_cleanup", (void **)&fn.global_cleanup },
		{ "curl_easy_init", (void **)&fn.easy_init },
		{ "curl_easy_setopt", (void **)&fn.easy_setopt },
		{ "curl_easy_getinfo", (void **)&fn.easy_getinfo },
		{ "curl_easy_perform", (void **)&fn.easy_perform },
		{ "curl_easy_cleanup", (void **)&fn.easy_cleanup },
		{ "curl_easy_strerror", (void **)&fn.easy_strerror },
		{ "curl_slist_append", (void **)&fn.slist_append },
		{ "curl_slist_free_all", (void **)&fn.slist_free_all },
	};
	const char *e;
	void *h;

	if (!(h = dlopen(FL_CURL_LIB, RTLD_NOW | RTLD_LOCAL))) {
		e = dlerror();
		snprintf(why, sizeof(why), "cannot load %s: %s (install "
		    "Debian's libcurl4)", FL_CURL_LIB, e ? e : "unknown error");
		return;
	}
	for (size_t i = 0; i < sizeof(sym) / sizeof(sym[0]); i++) {
		if (!(*sym[i].p = dlsym(h, sym[i].name))) {
			snprintf(why, sizeof(why), "%s has no %s", FL_CURL_LIB,
			    sym[i].name);
			fn.global_init = NULL;
			return;
		}
	}
}

int
fl_curl_load(char *err)
{
	pthread_once(&once, load);
	return fn.global_init ? FL_OK : fl_err(err, FL_EFAIL, "%s", why);
}

/* Every call below comes after fl_curl_load succeeded (fl_client_init,
 * the server's start): not loaded means a caller skipped it. */
static void
need(void)
{
	pthread_once(&once, load);
	if (!fn.global_init)
		abort();
}

CURLcode
curl_global_init(long flags)
{
	pthread_once(&once, load);
	return fn.global_init ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

void
curl_global_cleanup(void)
{
	need();
	fn.global_cleanup();
}

CURL *
curl_easy_init(void)
{
	need();
	return fn.easy_init();
}

/* The one argument after the option is read as libcurl reads it: its type
 * follows from the option's number (CURLOPTTYPE_*). */
CURLcode
curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	va_list ap;
	CURLcode rc;

	need();
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = fn.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = fn.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = fn.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode
curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;

	need();
	va_start(ap, info);
	rc = fn.easy_getinfo(h, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode
curl_easy_perform(CURL *h)
{
	need();
	return fn.easy_perform(h);
}

void
curl_easy_cleanup(CURL *h)
{
	need();
	fn.easy_cleanup(h);
}

const char *
curl_easy_strerror(CURLcode c)
{
	need();
	return fn.easy_strerror(c);
}

struct curl_slist *
curl_slist_append(struct curl_slist *l, const char *s)
{
	need();
	return fn.slist_append(l, s);
}

void
curl_slist_free_all(struct curl_slist *l)
{
	need();
	fn.slist_free_all(l);
}
