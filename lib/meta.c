/* meta.c: provenance keys in a blob's meta. */
#include <stdio.h>

#include "meta.h"

int
fl_meta_stamp(struct fl_val *meta, const char *program)
{
	const char *old = fl_map_get_str(meta, "model_id");
	char id[37], prod[128];

	if (old && fl_map_set_str(meta, "parent_id", old))
		return FL_EFAIL;
	fl_uuid(id);
	snprintf(prod, sizeof(prod), "%s %s", program, FL_VERSION);
	if (fl_map_set_str(meta, "model_id", id) ||
	    fl_map_set_uint(meta, "created", (uint64_t)fl_now()) ||
	    fl_map_set_str(meta, "producer", prod))
		return FL_EFAIL;
	return FL_OK;
}
