/* proto.c: the names the worker protocol allows. */
#include <stddef.h>

#include "proto.h"

int
fl_id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return i == FL_ID_LEN;
}

int
fl_tag_valid(const char *tag)
{
	size_t i;

	if (tag[0] == '.' || tag[0] == '-')
		return 0;
	for (i = 0; tag[i]; i++) {
		char c = tag[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return i > 0 && i <= FL_TAG_MAX;
}
