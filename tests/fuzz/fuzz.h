/* fuzz.h: what the fuzz targets share: their entry point's prototype and
 * input written to a memory file, for the parsers that read descriptors. */
#ifndef FL_FUZZ_H
#define FL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdio.h>

#include "interop.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memory file holding data, its offset at 0; -1 when one can't be made. */
static inline int
fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fl_write_full(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}


/* The bytes as a file given to fl_import_read, which maps it and references
 * its aligned tensors: the path the in-memory parsers do not take. */
static inline void
fuzz_import(const uint8_t *data, size_t size)
{
	struct fl_blobmem b;
	enum fl_format f;
	char err[FL_ERRLEN], path[64];
	int fd;

	if ((fd = fuzz_memfd(data, size)) < 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (fl_import_read(&b, path, &f, err) == FL_OK)
		fl_blobmem_release(&b);
	close(fd);
}

/* Skip a target's entry point when the corpus replayer includes it. */
#ifdef FL_FUZZ_REPLAY
#define FL_FUZZ_ENTRY(fn)
#else
#define FL_FUZZ_ENTRY(fn) \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) \
	{ \
		return fn(data, size); \
	}
#endif

#endif
