/* fuzz_csv.c: text as a CSV dataset; the first byte picks the options. */
#include "data.h"
#include "fuzz.h"

static int
fuzz_csv(const uint8_t *data, size_t size)
{
	struct fl_csv_opts o = { 0 };
	struct fl_blobmem b;
	char err[FL_ERRLEN];

	if (size < 1)
		return 0;
	o.header = data[0] & 1;
	o.label_set = data[0] >> 1 & 1;
	o.label_column = (data[0] >> 2 & 3) - 2;	/* -2 .. 1 */
	o.targets = data[0] >> 4 & 3;
	if (fl_csv_parse(&b, (const char *)data + 1, size - 1, "fuzz.csv", &o,
	    err) == FL_OK)
		fl_blobmem_release(&b);
	return 0;
}

FL_FUZZ_ENTRY(fuzz_csv)
