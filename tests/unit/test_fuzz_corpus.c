/* test_fuzz_corpus.c: every file of the fuzz corpora (seeds and the crashes
 * the fuzzers found) through the fuzz targets' own entry points, so that
 * make check, with or without sanitizers, replays them without libFuzzer. */
#define FL_FUZZ_REPLAY
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_blob.c"
#include "../fuzz/fuzz_csv.c"
#include "../fuzz/fuzz_header.c"
#include "../fuzz/fuzz_idx.c"
#include "../fuzz/fuzz_npz.c"
#include "../fuzz/fuzz_safetensors.c"
#include "../fuzz/fuzz_server.c"
#include "../fuzz/fuzz_tokens.c"
#include "../fuzz/fuzz_workers.c"
#include "unit.h"

#define CORPUS "tests/fuzz/corpus/"

static const struct {
	const char *name;
	int (*fn)(const uint8_t *, size_t);
} targets[] = {
	{ "blob", fuzz_blob },
	{ "csv", fuzz_csv },
	{ "header", fuzz_header },
	{ "idx", fuzz_idx },
	{ "npz", fuzz_npz },
	{ "safetensors", fuzz_safetensors },
	{ "server", fuzz_server },
	{ "tokens", fuzz_tokens },
	{ "workers", fuzz_workers },
};

/* Feed each regular file of dir to fn; the count fed, or -1. */
static int
replay(const char *dir, int (*fn)(const uint8_t *, size_t))
{
	struct dirent **ents;
	int n, fed = 0;

	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct fl_buf b;
		FILE *f;
		size_t k;

		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		free(ents[i]);
		if (path[strlen(dir) + 1] == '.' || !(f = fopen(path, "rb")))
			continue;
		fl_buf_init(&b, 16 << 20);
		while (fl_buf_reserve(&b, 65536) == FL_OK &&
		    (k = fread(b.data + b.len, 1, b.cap - b.len, f)) > 0)
			b.len += k;
		fclose(f);
		fn(b.data ? b.data : (const uint8_t *)"", b.len);
		fl_buf_release(&b);
		fed++;
	}
	free(ents);
	return fed;
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char dir[256];
		int n;

		snprintf(dir, sizeof(dir), CORPUS "%s", targets[i].name);
		n = replay(dir, targets[i].fn);
		CHECK(n > 0, "%s: %d inputs replayed", targets[i].name, n);
	}
	return unit_done();
}
