/* model.h: models as blobs: an fl_arch in the meta, a network's parameters
 * as state-dict tensors, and the provenance keys of DESIGN.md. */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include "arch.h"
#include "blob.h"
#include "meta.h"
#include "nn.h"

/* Write a's layers ("arch": list of layer maps) and loss into meta. */
int fl_model_set_arch(struct fl_val *meta, const struct fl_arch *a);
/* Read the arch back from a model header's meta. */
int fl_model_arch(const struct fl_header *h, struct fl_arch *a, char *err);

/*
 * Fill h (initialised here) as a model of net's arch: kind "model", f32
 * tensors in state-dict order, meta arch and loss. Other meta is the
 * caller's to add.
 */
int fl_model_header(struct fl_header *h, const struct fl_net *net);
/* Check that h's tensors are exactly net's parameters by name and shape. */
int fl_model_check(const struct fl_header *h, const struct fl_net *net, char *err);
/* Read the current blob's tensors (any float dtype) into net's params. */
int fl_model_load(struct fl_reader *r, const struct fl_header *h,
    struct fl_net *net, char *err);
/* Write net's parameters as a blob with h's meta (h may be NULL). */
int fl_model_write(int fd, const char *name, const struct fl_header *h,
    const struct fl_net *net, char *err);


#endif
