/* fuzz_workers.c: text as a workers file (fl_workers_parse); then each of
 * its lines as a pointer (fl_ptr_parse, what fl-get reads from stdin) and,
 * when it parses, its worker resolved against the file (fl_endpoint_resolve),
 * except for workers with a token file: that would read a path the input
 * names. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fuzz.h"

static int
fuzz_workers(const uint8_t *data, size_t size)
{
	struct fl_workers ws;
	char err[FL_ERRLEN], line[4200];
	const char *text = (const char *)data;
	size_t i = 0;
	int parsed;

	parsed = fl_workers_parse(&ws, text, size, "fuzz-workers", err) == FL_OK;
	if (!parsed)
		memset(&ws, 0, sizeof(ws));
	for (size_t k = 0; k < ws.n; k++)
		if (!ws.w[k].name || !ws.w[k].url || ws.w[k].line < 1)
			abort();
	while (i < size) {
		struct fl_ptr p;
		struct fl_endpoint ep;
		size_t e = i, n;
		int has_token = 0;

		while (e < size && text[e] != '\n')
			e++;
		n = e - i < sizeof(line) - 1 ? e - i : sizeof(line) - 1;
		memcpy(line, text + i, n);
		line[n] = 0;
		i = e + 1;
		if (fl_ptr_parse(&p, line, err) != FL_OK)
			continue;
		if (!p.worker || ((p.kind == FL_PTR_ID || p.kind == FL_PTR_TAG) && !p.name))
			abort();
		fl_ptr_format(&p, line, sizeof(line));
		for (size_t k = 0; k < ws.n; k++)
			has_token |= ws.w[k].token_file != NULL;
		if (!has_token && p.kind != FL_PTR_URL &&
		    fl_endpoint_resolve(&ep, &ws, p.worker, err) == FL_OK)
			fl_endpoint_release(&ep);
		fl_ptr_release(&p);
	}
	if (parsed)
		fl_workers_release(&ws);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_workers)
