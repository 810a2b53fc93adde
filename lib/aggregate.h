/* aggregate.h: combining models tensor by tensor on streams: FedAvg, robust
 * rules (median, trimmed mean, Krum), server optimizers and central DP. */
#ifndef FL_AGGREGATE_H
#define FL_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "rng.h"
#include "value.h"

enum fl_agg_rule {
	FL_AGG_MEAN,		/* weighted mean (FedAvg) */
	FL_AGG_MEDIAN,		/* coordinate-wise median */
	FL_AGG_TRIMMED,		/* coordinate-wise trimmed mean */
	FL_AGG_KRUM,		/* Krum / Multi-Krum, then a weighted mean */
};

enum fl_agg_weighting {
	FL_W_SAMPLES,		/* meta "samples" */
	FL_W_UNIFORM,
	FL_W_GIVEN,		/* opts.weights, one per input */
};

enum fl_server_opt {
	FL_SOPT_SGD,		/* x = base - lr g */
	FL_SOPT_MOMENTUM,	/* FedAvgM: m = b1 m + g */
	FL_SOPT_ADAM,		/* FedAdam (Reddi et al., no bias correction) */
	FL_SOPT_YOGI,
	FL_SOPT_ADAGRAD,
};

struct fl_server_params {
	double lr, beta1, beta2, tau;
};

struct fl_agg_opts {
	enum fl_agg_rule rule;
	enum fl_agg_weighting weighting;
	const double *weights;	/* FL_W_GIVEN: one per input, in order */
	size_t nweights;
	double trim;		/* trimmed mean: fraction cut at each end */
	size_t byzantine;	/* Krum: f */
	size_t multi;		/* Krum: models averaged (1: Krum) */
	const char *base;	/* global model the inputs started from */
	const char *state;	/* server-optimizer state to read, if present */
	enum fl_server_opt opt;
	struct fl_server_params sp;	/* lr, tau <= 0, betas < 0: defaults */
	double clip;		/* > 0: L2 bound on each update (needs base) */
	double noise;		/* noise multiplier z: sigma = z clip / n */
	uint64_t seed;
	int seeded;
	int skip_bad;		/* leave out inputs holding NaN or Inf */
	int threads;		/* 0: one per CPU, at most 4; one for
				 * inputs under 16 MiB in all */
	size_t chunk;		/* elements read per input at a time; 0: default */
	const char *tmpdir;	/* spool for standard input; NULL: $TMPDIR */
	/* Called with the fraction done and with warnings; may be NULL. */
	void (*progress)(void *arg, double frac);
	void (*warn)(void *arg, const char *msg);
	void *cbarg;
};

struct fl_agg_input {
	char *label;		/* "a.blob", "<stdin> (blob 2)" */
	char *path;		/* NULL when spooled */
	int fd;			/* spool file (unlinked), or -1 */
	int blob;		/* which blob of path, from 0 */
	uint64_t off;		/* where it begins in path, or UINT64_MAX */
	struct fl_header h;
	double weight;
	double scale;		/* clip factor, 1 when not clipped */
	int bad;		/* left out: NaN or Inf */
	int used;		/* takes part in the final mean or rule */
};

struct fl_agg {
	struct fl_agg_opts o;
	struct fl_agg_input *in;
	size_t n;
	int stdin_used;
	int stdin_pending;	/* standard input, not read yet: fl_agg_run
				 * folds its blobs in as they come */
	int streamed;		/* and fl_agg_run did (not spooled: too big) */
	uint64_t spooled_mem;	/* bytes of standard input spooled in memory */
	struct fl_header base;
	int has_base;
	double *gram;		/* n x n: <u_i, u_j> (base) or |x_i - x_j|^2 */
	uint64_t step;		/* server-optimizer step, from the state */
};

/* o is copied (its pointers must outlive a). */
void fl_agg_init(struct fl_agg *a, const struct fl_agg_opts *o);
void fl_agg_release(struct fl_agg *a);
/*
 * Add an input: a blob file, or "-" for every blob on standard input,
 * spooled to unlinked temporary files so that all inputs can be read in
 * lockstep and more than once. Standard input as the first input of a
 * weighted mean (no base, clip or --skip-bad) is left to fl_agg_run, which
 * folds its blobs into the sum as they arrive, with no spool, unless
 * another input follows it; a->n counts its blobs only then.
 */
int fl_agg_add(struct fl_agg *a, const char *path, char *err);
/* As fl_agg_add, but messages call path's blobs name ("alice/ID", an
 * object's id) rather than the path of the file that holds them. */
int fl_agg_add_as(struct fl_agg *a, const char *path, const char *name,
    char *err);
/*
 * Aggregate into a blob on out_fd; the new server-optimizer state goes to
 * state_fd when it is >= 0. Meta: samples, round, model_id, parents,
 * contributors, rule, and the dp, server_opt and skipped keys.
 */
int fl_agg_run(struct fl_agg *a, int out_fd, const char *out_name,
    int state_fd, const char *state_name, char *err);

const char *fl_agg_rule_name(const struct fl_agg_opts *o);
int fl_server_opt_parse(const char *s, enum fl_server_opt *opt);
const char *fl_server_opt_name(enum fl_server_opt opt);
/* Fill in defaults: lr and tau <= 0, beta1 and beta2 < 0. */
void fl_server_defaults(enum fl_server_opt opt, struct fl_server_params *p);

/* The rules on k coordinates of n inputs x[0..n-1]; w are weights
 * (normalised here), scratch holds n floats. */
void fl_agg_wmean(float *out, float *const *x, const double *w, size_t n,
    size_t k);
void fl_agg_median(float *out, float *const *x, size_t n, size_t k,
    float *scratch);
/* Mean of what is left after cut values are dropped at each end. */
void fl_agg_trimmed(float *out, float *const *x, size_t n, size_t k,
    size_t cut, float *scratch);
/* Values cut at each end for a fraction trim of n inputs. */
size_t fl_agg_trim_count(double trim, size_t n);
/*
 * Krum on an n x n matrix of squared distances: each input's score is the
 * sum of its n - f - 2 smallest distances to the others; the m best are
 * written to sel (best first) and scores to score (may be NULL).
 * FL_EUSAGE unless n >= 2f + 3 and 1 <= m <= n.
 */
int fl_krum_select(const double *d2, size_t n, size_t f, size_t m,
    size_t *sel, double *score, char *err);
/* One server-optimizer step on k coordinates: x = base - lr * f(g) with
 * g = base - agg; m and v are the state (unused ones may be NULL). */
void fl_server_step(enum fl_server_opt opt, const struct fl_server_params *p,
    float *x, const float *base, const float *agg, float *m, float *v,
    size_t k);
/* Factor that brings an update of L2 norm norm within clip. */
double fl_clip_scale(double norm, double clip);
/* CRC-32 as fl_crc32 computes it, folded 256 bytes at a time with AVX-512
 * VPCLMULQDQ when the CPU has it (and $FL_AGG_GENERIC is unset). */
uint32_t fl_agg_crc32(uint32_t crc, const void *p, size_t n);
/* x += sigma * N(0, 1), in order. */
void fl_agg_noise(float *x, size_t k, double sigma, struct fl_rng *r);

/*
 * fl-avg's options as a protocol map (aggregate_kv.c), for aggregation on
 * a worker: method, weighting, weights, trim, byzantine, multi, skip_bad,
 * base and state (as the caller names them: object id, tag), server_opt,
 * server_lr, server_momentum, server_beta2, tau, clip, noise, seed.
 */
int fl_agg_rule_parse(const char *s, enum fl_agg_rule *rule);
/* The checks fl-avg makes of a whole set of options. */
int fl_agg_opts_check(const struct fl_agg_opts *o, int server_set, char *err);
int fl_agg_opts_encode(const struct fl_agg_opts *o, struct fl_val *m);
/* Decode m (bounded as fl-avg bounds its options) over the defaults; keys
 * "inputs" and "tag" are the caller's. *weights is malloc'd (free it);
 * o->base and o->state point into m. */
int fl_agg_opts_decode(struct fl_agg_opts *o, const struct fl_val *m,
    double **weights, char *err);

#endif
