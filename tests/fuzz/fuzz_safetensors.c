/* fuzz_safetensors.c: bytes as a safetensors file, in memory and through
 * the importer (which maps the file and references aligned tensors). */
#include "fuzz.h"
#include "interop.h"

static int
fuzz_safetensors(const uint8_t *data, size_t size)
{
	struct fl_blobmem b;
	char err[FL_ERRLEN];

	if (fl_safetensors_parse(&b, data, size, "fuzz.safetensors", err) == FL_OK)
		fl_blobmem_release(&b);
	fuzz_import(data, size);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_safetensors)
