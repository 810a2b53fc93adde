/* fuzz_blob.c: every blob of a stream through the reader, three ways:
 * tensors as floats, mapped (else read in chunks), and whole datasets. */
#include <stdlib.h>

#include "blob.h"
#include "data.h"
#include "fuzz.h"

#define FUZZ_MAX_ALLOC (64u << 20)

static void
blob_tensors(struct fl_reader *r, struct fl_header *h, int mode, char *err)
{
	unsigned char chunk[1000];

	for (size_t i = 0; i < h->ntensors; i++) {
		uint64_t numel = fl_tensor_numel(&h->t[i]);
		struct fl_map m;
		float *f;
		int rc;

		if (mode == 0) {
			if (numel > FUZZ_MAX_ALLOC / sizeof(float))
				continue;
			if (!(f = malloc(numel ? numel * sizeof(float) : 1)))
				return;
			rc = fl_reader_tensor_f32(r, i, f, err);
			free(f);
			if (rc)
				return;
			continue;
		}
		rc = fl_reader_map(r, i, &m, err);
		if (rc == FL_OK) {
			volatile uint32_t crc = fl_crc32(0, m.data, (size_t)m.size);
			(void)crc;
			fl_map_release(&m);
			continue;
		}
		if (r->failed || fl_reader_begin(r, i, err))
			return;
		while (r->in_tensor)
			if (fl_reader_read(r, chunk, r->zbuf ?
			    (size_t)(r->zlen - r->zpos < sizeof(chunk) ? r->zlen - r->zpos :
			    sizeof(chunk)) : (size_t)(r->tleft < sizeof(chunk) ? r->tleft :
			    sizeof(chunk)), err))
				return;
	}
}

static int
fuzz_blob(const uint8_t *data, size_t size)
{
	char err[FL_ERRLEN];
	int fd = fuzz_memfd(data, size);

	if (fd < 0)
		return 0;
	for (int mode = 0; mode < 3; mode++) {
		struct fl_reader r;
		struct fl_header h;
		int rc;

		if (lseek(fd, 0, SEEK_SET) < 0)
			break;
		fl_reader_fd(&r, fd, "fuzz");
		for (int n = 0; n < 16 && (rc = fl_reader_next(&r, &h, err)) == FL_OK; n++) {
			if (mode == 2) {
				struct fl_dataset d;
				struct fl_blobmem b;
				if (n % 2 == 0 && fl_dataset_read(&d, &r, &h, err) == FL_OK)
					fl_dataset_release(&d);
				else if (n % 2 == 1 && fl_blobmem_read(&b, &r, &h, err) == FL_OK)
					fl_blobmem_release(&b);
			} else {
				blob_tensors(&r, &h, mode, err);
			}
			if (!r.failed)
				fl_reader_finish(&r, err);
			fl_header_release(&h);
			if (r.failed)
				break;
		}
		fl_reader_close(&r);
	}
	close(fd);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_blob)
