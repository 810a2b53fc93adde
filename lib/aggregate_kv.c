/* aggregate_kv.c: fl-avg's options as a protocol map, for aggregation on a
 * worker (POST /v1/aggregate): the client encodes what fl-avg's command
 * line said, the worker decodes it with the same bounds and checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "value.h"

static const char *const rule_names[] = {
	[FL_AGG_MEAN] = "mean",
	[FL_AGG_MEDIAN] = "median",
	[FL_AGG_TRIMMED] = "trimmed-mean",
	[FL_AGG_KRUM] = "krum",
};

int
fl_agg_rule_parse(const char *s, enum fl_agg_rule *rule)
{
	if (!strcmp(s, "fedavg")) {
		*rule = FL_AGG_MEAN;
		return 0;
	}
	for (size_t i = 0; i < sizeof(rule_names) / sizeof(rule_names[0]); i++)
		if (!strcmp(s, rule_names[i])) {
			*rule = (enum fl_agg_rule)i;
			return 0;
		}
	return -1;
}

int
fl_agg_opts_check(const struct fl_agg_opts *o, int server_set, char *err)
{
	if (o->weighting == FL_W_GIVEN && (!o->weights || !o->nweights))
		return fl_err(err, FL_EUSAGE, "weights: none given");
	if ((o->byzantine || o->multi) && o->rule != FL_AGG_KRUM)
		return fl_err(err, FL_EUSAGE, "--byzantine and --multi go with "
		    "--method krum");
	if ((server_set || o->state) && !o->base)
		return fl_err(err, FL_EUSAGE, "--server-opt, --server-lr and "
		    "--state need --base");
	if (o->clip > 0 && !o->base)
		return fl_err(err, FL_EUSAGE, "--clip needs --base (the update is "
		    "the input minus the base)");
	return FL_OK;
}

int
fl_agg_opts_encode(const struct fl_agg_opts *o, struct fl_val *m)
{
	struct fl_val w, x, b;
	int rc = 0;

	fl_val_map(m);
	rc |= fl_map_set_str(m, "method", rule_names[o->rule]);
	rc |= fl_map_set_str(m, "weighting", o->weighting == FL_W_UNIFORM ?
	    "uniform" : o->weighting == FL_W_GIVEN ? "given" : "samples");
	if (o->weighting == FL_W_GIVEN) {
		fl_val_array(&w);
		for (size_t i = 0; i < o->nweights; i++) {
			fl_val_float(&x, o->weights[i]);
			rc |= fl_array_push(&w, &x);
		}
		rc |= fl_map_set(m, "weights", &w);
	}
	rc |= fl_map_set_float(m, "trim", o->trim);
	rc |= fl_map_set_uint(m, "byzantine", o->byzantine);
	rc |= fl_map_set_uint(m, "multi", o->multi);
	fl_val_bool(&b, o->skip_bad);
	rc |= fl_map_set(m, "skip_bad", &b);
	if (o->base)
		rc |= fl_map_set_str(m, "base", o->base);
	if (o->state)
		rc |= fl_map_set_str(m, "state", o->state);
	rc |= fl_map_set_str(m, "server_opt", fl_server_opt_name(o->opt));
	rc |= fl_map_set_float(m, "server_lr", o->sp.lr);
	rc |= fl_map_set_float(m, "server_momentum", o->sp.beta1);
	rc |= fl_map_set_float(m, "server_beta2", o->sp.beta2);
	rc |= fl_map_set_float(m, "tau", o->sp.tau);
	rc |= fl_map_set_float(m, "clip", o->clip);
	rc |= fl_map_set_float(m, "noise", o->noise);
	if (o->seeded)
		rc |= fl_map_set_uint(m, "seed", o->seed);
	return rc ? FL_EFAIL : FL_OK;
}

/* A number in [lo, hi]; -1 means "default" for the server parameters. */
static int
get_num(const struct fl_val *m, const char *key, double lo, double hi,
    int dflt_ok, double *out, char *err)
{
	const struct fl_val *v = fl_map_get(m, key);
	double d;

	if (!v)
		return FL_OK;
	if (fl_val_get_double(v, &d) || isnan(d) ||
	    !((d >= lo && d <= hi) || (dflt_ok && d == -1)))
		return fl_err(err, FL_EUSAGE, "%s: expected a number in [%g, %g]",
		    key, lo, hi);
	*out = d;
	return FL_OK;
}

static int
get_count(const struct fl_val *m, const char *key, uint64_t max, size_t *out,
    char *err)
{
	const struct fl_val *v = fl_map_get(m, key);
	uint64_t u;

	if (!v)
		return FL_OK;
	if (fl_val_get_u64(v, &u) || u > max)
		return fl_err(err, FL_EUSAGE, "%s: expected a whole number up to %llu",
		    key, (unsigned long long)max);
	*out = (size_t)u;
	return FL_OK;
}

int
fl_agg_opts_decode(struct fl_agg_opts *o, const struct fl_val *m,
    double **weights, char *err)
{
	static const char *const known[] = {
		"method", "weighting", "weights", "trim", "byzantine", "multi",
		"skip_bad", "base", "state", "server_opt", "server_lr",
		"server_momentum", "server_beta2", "tau", "clip", "noise", "seed",
		"inputs", "tag",
	};
	const struct fl_val *v;
	const char *s;
	int rc, server_set = 0;

	*weights = NULL;
	memset(o, 0, sizeof(*o));
	o->sp.lr = o->sp.beta1 = o->sp.beta2 = o->sp.tau = -1;
	o->trim = 0.1;
	if (m->type != FL_V_MAP)
		return fl_err(err, FL_EUSAGE, "expected a map of options");
	for (size_t i = 0; i < m->v.a.n; i += 2) {
		const char *k = fl_val_get_str(&m->v.a.items[i]);
		size_t j = 0;
		while (k && j < sizeof(known) / sizeof(known[0]) && strcmp(k, known[j]))
			j++;
		if (!k || j == sizeof(known) / sizeof(known[0]))
			return fl_err(err, FL_EUSAGE, "%.64s: not an option of "
			    "aggregation", k ? k : "(a key that is not a string)");
	}
	if ((s = fl_map_get_str(m, "method")) && fl_agg_rule_parse(s, &o->rule))
		return fl_err(err, FL_EUSAGE, "method: unknown rule '%.64s' (mean, "
		    "median, trimmed-mean, krum)", s);
	if ((s = fl_map_get_str(m, "weighting"))) {
		if (!strcmp(s, "samples"))
			o->weighting = FL_W_SAMPLES;
		else if (!strcmp(s, "uniform"))
			o->weighting = FL_W_UNIFORM;
		else if (!strcmp(s, "given"))
			o->weighting = FL_W_GIVEN;
		else
			return fl_err(err, FL_EUSAGE, "weighting: '%.64s' (samples, "
			    "uniform, given)", s);
	}
	if ((v = fl_map_get(m, "weights"))) {
		if (v->type != FL_V_ARRAY || !v->v.a.n || v->v.a.n > 100000)
			return fl_err(err, FL_EUSAGE, "weights: expected a list of "
			    "numbers");
		if (!(*weights = malloc(v->v.a.n * sizeof(double))))
			return fl_err(err, FL_EFAIL, "out of memory");
		for (size_t i = 0; i < v->v.a.n; i++) {
			double d;
			if (fl_val_get_double(&v->v.a.items[i], &d) || !(d >= 0 &&
			    d <= 1e300))
				return fl_err(err, FL_EUSAGE, "weights: expected "
				    "numbers in [0, 1e300]");
			(*weights)[i] = d;
		}
		o->weights = *weights;
		o->nweights = v->v.a.n;
	}
	if ((rc = get_num(m, "trim", 0, 0.4999999, 0, &o->trim, err)) ||
	    (rc = get_count(m, "byzantine", 1000, &o->byzantine, err)) ||
	    (rc = get_count(m, "multi", 100000, &o->multi, err)) ||
	    (rc = get_num(m, "server_lr", 0, 1e6, 1, &o->sp.lr, err)) ||
	    (rc = get_num(m, "server_momentum", 0, 1, 1, &o->sp.beta1, err)) ||
	    (rc = get_num(m, "server_beta2", 0, 1, 1, &o->sp.beta2, err)) ||
	    (rc = get_num(m, "tau", 0, 1e6, 1, &o->sp.tau, err)) ||
	    (rc = get_num(m, "noise", 0, 1e6, 0, &o->noise, err)))
		return rc;
	if ((v = fl_map_get(m, "clip")) && (rc = get_num(m, "clip", 0, 1e300, 0,
	    &o->clip, err)))
		return rc;
	if ((v = fl_map_get(m, "skip_bad")))
		o->skip_bad = v->type == FL_V_BOOL ? v->v.b : 0;
	if ((v = fl_map_get(m, "seed"))) {
		if (fl_val_get_u64(v, &o->seed))
			return fl_err(err, FL_EUSAGE, "seed: expected a whole number");
		o->seeded = 1;
	}
	if ((s = fl_map_get_str(m, "server_opt"))) {
		if (fl_server_opt_parse(s, &o->opt))
			return fl_err(err, FL_EUSAGE, "server_opt: unknown optimizer "
			    "'%.64s' (sgd, momentum, adam, yogi, adagrad)", s);
		server_set = o->opt != FL_SOPT_SGD || o->sp.lr != -1;
	}
	o->base = fl_map_get_str(m, "base");
	o->state = fl_map_get_str(m, "state");
	return fl_agg_opts_check(o, server_set, err);
}
