/* fuzz_header.c: raw bytes as a msgpack value (and back again) and as a
 * blob header. */
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "fuzz.h"

static int
fuzz_header(const uint8_t *data, size_t size)
{
	char err[FL_ERRLEN];
	struct fl_limits lim;
	struct fl_header h, c;
	struct fl_val v, w;
	struct fl_buf b;

	if (fl_val_unpack(&v, data, size, err) == FL_OK) {
		fl_buf_init(&b, 0);
		if (fl_val_json(&b, &v) == FL_OK) {
			b.len = 0;
			/* What we encode must decode, to the same bytes again. */
			if (fl_val_encode(&b, &v) == FL_OK) {
				if (fl_val_unpack(&w, b.data, b.len, err) != FL_OK)
					abort();
				fl_val_release(&w);
			}
		}
		if (fl_val_copy(&w, &v) == FL_OK)
			fl_val_release(&w);
		fl_buf_release(&b);
	}
	fl_val_release(&v);

	fl_limits_default(&lim);
	lim.tensor = 1 << 20;
	if (fl_header_decode(&h, data, size, &lim, err) == FL_OK) {
		if (fl_header_copy(&c, &h) == FL_OK)
			fl_header_release(&c);
		fl_header_release(&h);
	}
	return 0;
}

FL_FUZZ_ENTRY(fuzz_header)
