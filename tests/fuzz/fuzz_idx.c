/* fuzz_idx.c: an images file and a labels file (either may be gzipped),
 * split at the first "LABELS"; the first byte's low bit is normalize. */
#include <stdio.h>
#include <string.h>

#include "data.h"
#include "fuzz.h"

static int
fuzz_idx(const uint8_t *data, size_t size)
{
	static const char sep[] = "LABELS";
	const uint8_t *lab;
	struct fl_blobmem b;
	char err[FL_ERRLEN], xp[64], yp[64];
	int xfd, yfd;

	if (size < 1)
		return 0;
	lab = memmem(data + 1, size - 1, sep, sizeof(sep) - 1);
	if (!lab)
		return 0;
	xfd = fuzz_memfd(data + 1, (size_t)(lab - data - 1));
	lab += sizeof(sep) - 1;
	yfd = fuzz_memfd(lab, size - (size_t)(lab - data));
	if (xfd >= 0 && yfd >= 0) {
		snprintf(xp, sizeof(xp), "/proc/self/fd/%d", xfd);
		snprintf(yp, sizeof(yp), "/proc/self/fd/%d", yfd);
		if (fl_idx_read(&b, xp, yp, data[0] & 1, err) == FL_OK)
			fl_blobmem_release(&b);
	}
	if (xfd >= 0)
		close(xfd);
	if (yfd >= 0)
		close(yfd);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_idx)
