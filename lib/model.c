/* model.c: between fl_net parameters and model blobs. */
#include <stdio.h>
#include <string.h>

#include "model.h"

int
fl_model_set_arch(struct fl_val *meta, const struct fl_arch *a)
{
	struct fl_val list, m;

	fl_val_array(&list);
	for (int i = 0; i < a->nlayers; i++) {
		const struct fl_layer *l = &a->layer[i];
		fl_val_map(&m);
		if (fl_map_set_str(&m, "type", fl_layer_name(l->type)))
			goto fail;
		if (l->type == FL_LINEAR &&
		    (fl_map_set_uint(&m, "in", (uint64_t)l->in) ||
		    fl_map_set_uint(&m, "out", (uint64_t)l->out)))
			goto fail;
		if (l->type == FL_DROPOUT && fl_map_set_float(&m, "p", l->p))
			goto fail;
		if (fl_array_push(&list, &m))
			goto fail;
	}
	if (fl_map_set(meta, "arch", &list))
		goto fail2;
	return fl_map_set_str(meta, "loss", fl_loss_name(a->loss));
fail:
	fl_val_release(&m);
fail2:
	fl_val_release(&list);
	return FL_EFAIL;
}

int
fl_model_arch(const struct fl_header *h, struct fl_arch *a, char *err)
{
	const struct fl_val *list = fl_map_get(&h->meta, "arch");
	const char *loss = fl_map_get_str(&h->meta, "loss");
	int width = -1;

	memset(a, 0, sizeof(*a));
	if (strcmp(h->kind, "model"))
		return fl_err(err, FL_EDATA, "a %s blob, not a model", h->kind);
	if (!list || list->type != FL_V_ARRAY || list->v.a.n == 0)
		return fl_err(err, FL_EDATA, "model has no arch in its meta");
	if (list->v.a.n > FL_MAX_LAYERS)
		return fl_err(err, FL_ELIMIT, "model has more than %d layers", FL_MAX_LAYERS);
	if (loss && fl_loss_parse(loss, &a->loss))
		return fl_err(err, FL_EDATA, "model has unknown loss '%.32s'", loss);
	for (size_t i = 0; i < list->v.a.n; i++) {
		const struct fl_val *m = &list->v.a.items[i];
		struct fl_layer *l = &a->layer[i];
		const char *type = fl_map_get_str(m, "type");
		uint64_t in, out;
		double p;

		if (!type)
			return fl_err(err, FL_EDATA, "model layer %zu has no type", i);
		if (!strcmp(type, "linear")) {
			if (fl_val_get_u64(fl_map_get(m, "in"), &in) ||
			    fl_val_get_u64(fl_map_get(m, "out"), &out) ||
			    in == 0 || out == 0 || in > FL_MAX_WIDTH || out > FL_MAX_WIDTH)
				return fl_err(err, FL_EDATA, "model layer %zu: bad linear "
				    "widths", i);
			if (width >= 0 && (int)in != width)
				return fl_err(err, FL_EDATA, "model layer %zu takes %llu "
				    "inputs, the layer before gives %d", i,
				    (unsigned long long)in, width);
			l->type = FL_LINEAR;
			l->in = (int)in;
			l->out = width = (int)out;
			continue;
		}
		if (width < 0)
			return fl_err(err, FL_EDATA, "model layer %zu: a %.32s layer "
			    "before any linear layer", i, type);
		l->in = l->out = width;
		if (!strcmp(type, "relu")) {
			l->type = FL_RELU;
		} else if (!strcmp(type, "tanh")) {
			l->type = FL_TANH;
		} else if (!strcmp(type, "sigmoid")) {
			l->type = FL_SIGMOID;
		} else if (!strcmp(type, "dropout")) {
			l->type = FL_DROPOUT;
			l->p = 0.5f;
			if (!fl_val_get_double(fl_map_get(m, "p"), &p)) {
				if (p < 0 || p >= 1)
					return fl_err(err, FL_EDATA, "model layer %zu: dropout "
					    "p %g is not in [0, 1)", i, p);
				l->p = (float)p;
			}
		} else {
			return fl_err(err, FL_EDATA, "model layer %zu: unknown layer "
			    "type '%.32s'", i, type);
		}
	}
	a->nlayers = (int)list->v.a.n;
	return FL_OK;
}

int
fl_model_header(struct fl_header *h, const struct fl_net *net)
{
	if (fl_header_init(h, "model"))
		return FL_EFAIL;
	if (fl_model_set_arch(&h->meta, &net->arch))
		goto fail;
	for (int i = 0; i < net->ntensors; i++) {
		const struct fl_param *p = fl_net_param(net, i);
		uint64_t shape[2] = { (uint64_t)p->shape[0], (uint64_t)p->shape[1] };
		if (fl_header_add(h, p->name, FL_F32, p->ndim, shape) < 0)
			goto fail;
	}
	return FL_OK;
fail:
	fl_header_release(h);
	return FL_EFAIL;
}

int
fl_model_check(const struct fl_header *h, const struct fl_net *net, char *err)
{
	char got[128], want[128];

	for (int i = 0; i < net->ntensors; i++) {
		const struct fl_param *p = fl_net_param(net, i);
		int j = fl_header_find(h, p->name);
		struct fl_tensor w = { .ndim = p->ndim };

		w.shape[0] = (uint64_t)p->shape[0];
		w.shape[1] = (uint64_t)p->shape[1];
		fl_shape_str(&w, want, sizeof(want));
		if (j < 0)
			return fl_err(err, FL_EDATA, "model has no tensor %s %s", p->name, want);
		fl_shape_str(&h->t[j], got, sizeof(got));
		if (strcmp(got, want))
			return fl_err(err, FL_EDATA, "tensor %s has shape %s, expected %s",
			    p->name, got, want);
		if (!fl_dtype_is_float(h->t[j].dtype))
			return fl_err(err, FL_EDATA, "tensor %s is %s, not a float type",
			    p->name, fl_dtype_name(h->t[j].dtype));
	}
	if (h->ntensors != (size_t)net->ntensors) {
		for (size_t j = 0; j < h->ntensors; j++)
			if (!fl_net_param_find(net, h->t[j].name))
				return fl_err(err, FL_EDATA, "tensor %s is not in the arch",
				    h->t[j].name);
	}
	return FL_OK;
}

int
fl_model_load(struct fl_reader *r, const struct fl_header *h,
    struct fl_net *net, char *err)
{
	int rc;

	if ((rc = fl_model_check(h, net, err)))
		return rc;
	for (size_t j = 0; j < h->ntensors; j++) {
		const struct fl_param *p = fl_net_param_find(net, h->t[j].name);
		if ((rc = fl_reader_tensor_f32(r, j, p->data, err)))
			return rc;
	}
	return FL_OK;
}

int
fl_model_write(int fd, const char *name, const struct fl_header *src,
    const struct fl_net *net, char *err)
{
	struct fl_header h;
	const void *data[FL_MAX_LAYERS * 2];
	int rc;

	if (fl_model_header(&h, net))
		return fl_err(err, FL_EFAIL, "out of memory");
	if (src) {
		struct fl_val meta;
		if (fl_val_copy(&meta, &src->meta)) {
			fl_header_release(&h);
			return fl_err(err, FL_EFAIL, "out of memory");
		}
		fl_model_set_arch(&meta, &net->arch);
		fl_val_release(&h.meta);
		h.meta = meta;
	}
	for (int i = 0; i < net->ntensors; i++)
		data[i] = fl_net_param(net, i)->data;
	rc = fl_blob_write(fd, name, &h, data, 6, err);
	fl_header_release(&h);
	return rc;
}
