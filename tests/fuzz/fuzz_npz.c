/* fuzz_npz.c: bytes as a .npz file, in memory and through
 * the importer (which maps the file and references aligned tensors). */
#include "fuzz.h"
#include "interop.h"

static int
fuzz_npz(const uint8_t *data, size_t size)
{
	struct fl_blobmem b;
	char err[FL_ERRLEN];

	if (fl_npz_parse(&b, data, size, "fuzz.npz", err) == FL_OK)
		fl_blobmem_release(&b);
	fuzz_import(data, size);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_npz)
