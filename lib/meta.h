/* meta.h: the provenance keys every program writes into a blob's meta. */
#ifndef FL_META_H
#define FL_META_H

#include "value.h"

/*
 * Give meta a new model_id (the old one becomes parent_id), created and
 * producer ("fl-fit 0.1.0").
 */
int fl_meta_stamp(struct fl_val *meta, const char *program);

#endif
