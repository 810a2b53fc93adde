/* avg.h: the parts of fl-avg. */
#ifndef FL_CMD_AVG_H
#define FL_CMD_AVG_H

#include "aggregate.h"
#include "client.h"

/*
 * fl-avg --on WORKER POINTER...: aggregate on WORKER with options o (its
 * base a pointer, its state a tag there); inputs on other workers are
 * copied there worker to worker first, and those copies deleted after.
 * Prints the result's pointer. Dies on failure.
 */
void avg_on(const char *worker, char *const *inputs, int n,
    struct fl_agg_opts *o, const struct fl_client_opts *co);

/*
 * An input of fl-avg that names no file but a pointer (WORKER/ID, a known
 * WORKER, or a URL) is fetched, checked as it arrives, into an unlinked
 * temporary file; path gets a name for it. 1 when s is not a pointer (a
 * file, or "-"). Dies when the fetch fails.
 */
int avg_fetch(const char *s, const struct fl_client_opts *co, char *path,
    size_t n);

#endif
