/* fuzz_safetensors.c: bytes as a safetensors file, in memory and through
 * the importer (which maps the file and references aligned tensors). */
#include <stdio.h>

#include "fuzz.h"
#include "interop.h"

static int
fuzz_safetensors(const uint8_t *data, size_t size)
{
	struct fl_blobmem b;
	enum fl_format f;
	char err[FL_ERRLEN], path[64];
	int fd;

	if (fl_safetensors_parse(&b, data, size, "fuzz.safetensors", err) == FL_OK)
		fl_blobmem_release(&b);
	if ((fd = fuzz_memfd(data, size)) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (fl_import_read(&b, path, &f, err) == FL_OK)
		fl_blobmem_release(&b);
	close(fd);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_safetensors)
