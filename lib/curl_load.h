/* curl_load.h: libcurl loaded when the first client starts rather than
 * when a program starts (curl_load.c defines the curl_* functions flkit
 * calls, each forwarding to the library). */
#ifndef FL_CURL_LOAD_H
#define FL_CURL_LOAD_H

/* Load libcurl (once; thread-safe). FL_EFAIL names the library and why.
 * Call it before the first curl_* call; curl_global_init fails with
 * CURLE_FAILED_INIT when the library cannot be loaded. */
int fl_curl_load(char *err);

#endif
