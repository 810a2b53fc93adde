/* fuzz_tokens.c: text as fl-serve's token file (fl_tokens_load, through a
 * memory file: the parser reads a path). */
#include "fuzz.h"
#include "server.h"

static int
fuzz_tokens(const uint8_t *data, size_t size)
{
	struct fl_token *t;
	char err[FL_ERRLEN], path[64];
	size_t n;
	int fd;

	if ((fd = fuzz_memfd(data, size)) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (fl_tokens_load(path, &t, &n, err) == FL_OK) {
		for (size_t i = 0; i < n; i++)
			if (!t[i].token || strlen(t[i].token) < 8 || !t[i].rights)
				abort();
		fl_tokens_free(t, n);
	}
	close(fd);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_tokens)
