/* test_aggregate.c: each aggregation rule, server optimizer and DP step
 * against values computed by hand, and the streaming path end to end. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "unit.h"

static char dir[] = "/tmp/flkit-test-agg.XXXXXX";

static int
close_to(double a, double b, double tol)
{
	return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1);
}

/* A model blob with tensors "w" [2,2] and "b" [2] from v[0..5]. */
static void
mkmodel(const char *name, const float *v, double samples, const char *id)
{
	struct fl_header h;
	uint64_t sw[2] = { 2, 2 }, sb[1] = { 2 };
	const void *data[2] = { v, v + 4 };
	char path[256], err[FL_ERRLEN];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fl_header_init(&h, "model");
	fl_map_set_float(&h.meta, "samples", samples);
	fl_map_set_str(&h.meta, "model_id", id);
	fl_header_add(&h, "w", FL_F32, 2, sw);
	fl_header_add(&h, "b", FL_F32, 1, sb);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fl_blob_write(fd, path, &h, data, 6, err))
		printf("# mkmodel: %s\n", err);
	close(fd);
	fl_header_release(&h);
}

/* Run fl_agg over the named inputs into out; read its 6 values back. */
static int
run(struct fl_agg_opts *o, const char *const *names, size_t n, const char *out,
    float *vals, char *err)
{
	struct fl_agg a;
	struct fl_reader r;
	struct fl_header h;
	char path[256], spath[256];
	int fd, sfd = -1, rc;

	fl_agg_init(&a, o);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((rc = fl_agg_add(&a, path, err))) {
			fl_agg_release(&a);
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", dir, out);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (o->state) {
		snprintf(spath, sizeof(spath), "%s.new", o->state);
		sfd = open(spath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	}
	rc = fl_agg_run(&a, fd, path, sfd, spath, err);
	close(fd);
	fl_agg_release(&a);
	if (sfd >= 0) {
		close(sfd);
		if (!rc)
			rename(spath, o->state);
	}
	if (rc)
		return rc;
	if ((rc = fl_reader_open(&r, path, err)) || (rc = fl_reader_next(&r, &h, err)))
		return rc;
	rc = fl_reader_tensor_f32(&r, 0, vals, err);
	if (!rc)
		rc = fl_reader_tensor_f32(&r, 1, vals + 4, err);
	fl_header_release(&h);
	fl_reader_close(&r);
	return rc;
}

static void
test_rules(void)
{
	float a[3] = { 1, 2, 3 }, b[3] = { 10, 20, 30 }, c[3] = { -5, 7, 100 };
	float d[3] = { 4, 4, 4 };
	float *x[4] = { a, b, c, d }, out[3], scratch[4];
	double w[2] = { 1, 3 };

	fl_agg_wmean(out, x, w, 2, 3);
	CHECK(close_to(out[0], 7.75, 1e-6) && close_to(out[1], 15.5, 1e-6) &&
	    close_to(out[2], 23.25, 1e-6), "fedavg weights 1:3 give (1+30)/4 = 7.75...");
	fl_agg_median(out, x, 3, 3, scratch);
	CHECK(out[0] == 1 && out[1] == 7 && out[2] == 30, "median of three (odd)");
	fl_agg_median(out, x, 4, 3, scratch);
	CHECK(out[0] == 2.5 && out[1] == 5.5 && out[2] == 17, "median of four (even): "
	    "mean of the middle two");
	CHECK(fl_agg_trim_count(0.25, 4) == 1 && fl_agg_trim_count(0.2, 4) == 0 &&
	    fl_agg_trim_count(0.49, 3) == 1, "trim counts floor(F n)");
	fl_agg_trimmed(out, x, 4, 3, 1, scratch);
	CHECK(out[0] == 2.5 && out[1] == 5.5 && out[2] == 17, "trimmed mean of four, "
	    "one cut each end");
	fl_agg_trimmed(out, x, 3, 3, 0, scratch);
	CHECK(close_to(out[1], 29.0 / 3, 1e-6), "trimmed mean with no cut is the mean");
}

static void
test_krum(void)
{
	/* Points on a line: 0, 1, 2, 3 and an outlier at 100. */
	double p[5] = { 0, 1, 2, 3, 100 }, d2[25], score[5];
	size_t sel[5];
	char err[FL_ERRLEN];

	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++)
			d2[i * 5 + j] = (p[i] - p[j]) * (p[i] - p[j]);
	/* f = 1: each score sums the n - f - 2 = 2 nearest: 0: 1+4, 1: 1+1,
	 * 2: 1+1, 3: 1+4, 100: 97^2+98^2. */
	CHECK(fl_krum_select(d2, 5, 1, 1, sel, score, err) == FL_OK && sel[0] == 1 &&
	    score[0] == 5 && score[1] == 2 && score[2] == 2 && score[4] == 97 * 97 + 98 * 98,
	    "krum picks the input with the smallest score (ties to the first)");
	CHECK(fl_krum_select(d2, 5, 1, 3, sel, NULL, err) == FL_OK && sel[0] == 1 &&
	    sel[1] == 2 && sel[2] == 0, "multi-krum picks the three best");
	CHECK(fl_krum_select(d2, 5, 2, 1, sel, NULL, err) == FL_EUSAGE &&
	    strstr(err, "at least 7"), "krum with too many byzantine: usage error (%s)", err);
}

static void
test_server(void)
{
	struct fl_server_params sp = { 0.1, 0.9, 0.99, 1e-3 };
	float base[1] = { 1 }, agg[1] = { 0.5 }, x[1], m[1] = { 0 }, v[1] = { 0 };
	double g = 0.5, mm, vv, xx, b2;

	/* FedAdam round 1: g = 0.5, m = 0.05, v = 0.0025, x = 1 - 0.1 * 0.05 / 0.051 */
	fl_server_step(FL_SOPT_ADAM, &sp, x, base, agg, m, v, 1);
	mm = 0.1 * g;
	vv = 0.01 * g * g;
	xx = 1 - 0.1 * mm / (sqrt(vv) + 1e-3);
	CHECK(close_to(m[0], mm, 1e-6) && close_to(v[0], vv, 1e-6) &&
	    close_to(x[0], xx, 1e-6), "fedadam round 1: m %g v %g x %g", m[0], v[0], x[0]);
	/* Round 2 from x with aggregate 0.7: g = x - 0.7. */
	base[0] = x[0];
	agg[0] = 0.7f;
	g = (double)base[0] - 0.7;
	fl_server_step(FL_SOPT_ADAM, &sp, x, base, agg, m, v, 1);
	mm = 0.9 * mm + 0.1 * g;
	vv = 0.99 * vv + 0.01 * g * g;
	xx = base[0] - 0.1 * mm / (sqrt(vv) + 1e-3);
	CHECK(close_to(m[0], mm, 1e-5) && close_to(v[0], vv, 1e-5) &&
	    close_to(x[0], xx, 1e-5), "fedadam round 2: m %g v %g x %g", m[0], v[0], x[0]);

	/* FedYogi: v = v - (1 - b2) g^2 sign(v - g^2). */
	base[0] = 1;
	agg[0] = 0.5f;
	m[0] = 0;
	v[0] = 0;
	fl_server_step(FL_SOPT_YOGI, &sp, x, base, agg, m, v, 1);
	CHECK(close_to(v[0], 0.0025, 1e-6) && close_to(m[0], 0.05, 1e-6),
	    "fedyogi round 1 from v = 0: v = 0.01 g^2");
	base[0] = x[0];
	agg[0] = base[0] - 0.01f;	/* g = 0.01, g^2 = 1e-4 < v: v shrinks */
	g = (double)base[0] - agg[0];
	vv = 0.0025 - 0.01 * g * g;
	mm = 0.9 * 0.05 + 0.1 * g;
	b2 = base[0];
	fl_server_step(FL_SOPT_YOGI, &sp, x, base, agg, m, v, 1);
	CHECK(close_to(v[0], vv, 1e-5) && close_to(m[0], mm, 1e-5) &&
	    close_to(x[0], b2 - 0.1 * mm / (sqrt(vv) + 1e-3), 1e-5),
	    "fedyogi round 2: v %g (expected %g)", v[0], vv);

	base[0] = 2;
	agg[0] = 1;
	m[0] = 0.5;
	fl_server_step(FL_SOPT_MOMENTUM, &sp, x, base, agg, m, NULL, 1);
	CHECK(close_to(m[0], 1.45, 1e-6) && close_to(x[0], 2 - 0.145, 1e-6),
	    "fedavgm: m = 0.9 m + g, x = base - lr m");
	sp.lr = 1;
	fl_server_step(FL_SOPT_SGD, &sp, x, base, agg, NULL, NULL, 1);
	CHECK(x[0] == 1, "sgd with lr 1 returns the aggregate");
	v[0] = 1;
	m[0] = 0;
	fl_server_step(FL_SOPT_ADAGRAD, &sp, x, base, agg, m, v, 1);
	CHECK(close_to(v[0], 2, 1e-6), "fedadagrad: v = v + g^2");
}

static void
test_clip_noise(void)
{
	struct fl_rng r1, r2;
	float x[4] = { 0 }, y[4] = { 0 };

	CHECK(fl_clip_scale(5, 1) == 0.2 && fl_clip_scale(0.5, 1) == 1,
	    "clip scale C / norm above C, 1 below");
	fl_rng_seed(&r1, 7);
	fl_rng_seed(&r2, 7);
	fl_agg_noise(x, 4, 0.5, &r1);
	fl_agg_noise(y, 4, 0.5, &r2);
	CHECK(!memcmp(x, y, sizeof(x)) && x[0] != 0, "noise with the same seed repeats");
}

static void
test_stream(void)
{
	/* w = [1 2; 3 4], b = [5 6] and so on. */
	float m1[6] = { 1, 2, 3, 4, 5, 6 }, m2[6] = { 3, 2, 1, 0, -1, -2 };
	float m3[6] = { 2, 2, 2, 2, 2, 2 }, base[6] = { 0 }, out[6], out2[6];
	const char *two[2] = { "m1.blob", "m2.blob" };
	const char *three[3] = { "m1.blob", "m2.blob", "m3.blob" };
	struct fl_agg_opts o;
	char err[FL_ERRLEN], state[300];
	int rc;

	mkmodel("m1.blob", m1, 1, "id-1");
	mkmodel("m2.blob", m2, 3, "id-2");
	mkmodel("m3.blob", m3, 4, "id-3");
	mkmodel("base.blob", base, 0, "id-base");

	memset(&o, 0, sizeof(o));
	o.chunk = 3;	/* several chunks per tensor */
	rc = run(&o, two, 2, "avg.blob", out, err);
	CHECK(rc == 0 && out[0] == 2.5 && out[3] == 1 && out[4] == 0.5 && out[5] == 0,
	    "streamed fedavg by samples 1:3 (%s)", rc ? err : "ok");
	o.weighting = FL_W_UNIFORM;
	o.threads = 2;
	rc = run(&o, two, 2, "avg.blob", out, err);
	CHECK(rc == 0 && out[0] == 2 && out[5] == 2, "streamed uniform mean, two threads");

	o.rule = FL_AGG_MEDIAN;
	rc = run(&o, three, 3, "med.blob", out, err);
	CHECK(rc == 0 && out[0] == 2 && out[1] == 2 && out[3] == 2 && out[5] == 2,
	    "streamed median of three");

	/* Clip: update m1 - 0 has norm sqrt(91) = 9.539; clipped to 1. */
	memset(&o, 0, sizeof(o));
	o.weighting = FL_W_UNIFORM;
	snprintf(state, sizeof(state), "%s/base.blob", dir);
	o.base = state;
	o.clip = 1;
	rc = run(&o, two, 2, "clip.blob", out, err);
	double n1 = sqrt(91.0), n2 = sqrt(19.0);
	CHECK(rc == 0 && close_to(out[0], (1 / n1 + 3 / n2) / 2, 1e-5) &&
	    close_to(out[5], (6 / n1 - 2 / n2) / 2, 1e-5),
	    "clip bounds each update to norm 1 before the mean (%s)", rc ? err : "ok");
	o.noise = 1;
	o.seed = 42;
	o.seeded = 1;
	rc = run(&o, two, 2, "noise1.blob", out, err);
	rc |= run(&o, two, 2, "noise2.blob", out2, err);
	CHECK(rc == 0 && !memcmp(out, out2, sizeof(out)) &&
	    !close_to(out[0], (1 / n1 + 3 / n2) / 2, 1e-5), "noise with --seed repeats");

	/* FedAdam over two rounds through a state file. */
	memset(&o, 0, sizeof(o));
	o.weighting = FL_W_UNIFORM;
	o.base = state;
	o.opt = FL_SOPT_ADAM;
	o.sp = (struct fl_server_params){ 0.1, 0.9, 0.99, 1e-3 };
	char sp[300];
	snprintf(sp, sizeof(sp), "%s/state.blob", dir);
	o.state = sp;
	rc = run(&o, two, 2, "adam1.blob", out, err);
	/* agg w0 = 2, g = -2: m = -0.2, v = 0.04, x = 0.1 * 0.2 / 0.201 */
	CHECK(rc == 0 && close_to(out[0], 0.1 * 0.2 / 0.201, 1e-5),
	    "fedadam round 1 through the stream: %g (%s)", out[0], rc ? err : "ok");
	rc = run(&o, two, 2, "adam2.blob", out2, err);
	/* Same base and inputs again: m = -0.38, v = 0.0796. */
	CHECK(rc == 0 && close_to(out2[0], 0.1 * 0.38 / (sqrt(0.0796) + 1e-3), 1e-5),
	    "fedadam round 2 reads the state: %g (%s)", out2[0], rc ? err : "ok");
	o.opt = FL_SOPT_YOGI;
	rc = run(&o, two, 2, "yogi.blob", out, err);
	CHECK(rc == FL_EUSAGE && strstr(err, "adam"), "state of another optimizer "
	    "refused: %s", err);
}

/* A model blob with one tensor "w" [k] (big enough to be mapped). */
static void
mkbig(const char *name, const float *v, size_t k, double samples)
{
	struct fl_header h;
	uint64_t sw[1] = { k };
	const void *data[1] = { v };
	char path[256], err[FL_ERRLEN];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fl_header_init(&h, "model");
	fl_map_set_float(&h.meta, "samples", samples);
	fl_header_add(&h, "w", FL_F32, 1, sw);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fl_blob_write(fd, path, &h, data, 6, err))
		printf("# mkbig: %s\n", err);
	close(fd);
	fl_header_release(&h);
}

/* Run fl_agg over big inputs into out (k floats); the selection for Krum. */
static int
run_big(struct fl_agg_opts *o, const char *const *names, size_t n, float *out,
    size_t k, char *sel, char *err)
{
	struct fl_agg a;
	struct fl_reader r;
	struct fl_header h;
	char path[256];
	int fd, rc;

	fl_agg_init(&a, o);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((rc = fl_agg_add(&a, path, err))) {
			fl_agg_release(&a);
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/big-out.blob", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	rc = fl_agg_run(&a, fd, path, -1, NULL, err);
	close(fd);
	for (size_t i = 0; sel && i < n; i++)
		sel[i] = (char)(a.in[i].used ? '1' : '0');
	if (sel)
		sel[n] = 0;
	fl_agg_release(&a);
	if (rc)
		return rc;
	if ((rc = fl_reader_open(&r, path, err)) || (rc = fl_reader_next(&r, &h, err)))
		return rc;
	if (fl_tensor_numel(&h.t[0]) != k)
		rc = fl_err(err, FL_EDATA, "output has %llu elements",
		    (unsigned long long)fl_tensor_numel(&h.t[0]));
	else
		rc = fl_reader_tensor_f32(&r, 0, out, err);
	fl_header_release(&h);
	fl_reader_close(&r);
	return rc;
}

/*
 * The mapped path (tensors of 64 KiB and more) with a base: clipping,
 * FedAdam's first step and Krum's first pass, against sums made here in
 * double; several stripes per tensor and a tail that is not a multiple of 64.
 */
static void
test_mapped(void)
{
	enum { K = 50003, N = 4 };
	static float x[N][K], b[K], out[K];
	const char *names[N] = { "x0.blob", "x1.blob", "x2.blob", "x3.blob" };
	double norm[N] = { 0 }, s[N], want, worst = 0;
	char base[300], err[FL_ERRLEN], sel[N + 1];
	struct fl_agg_opts o;
	int rc;

	for (size_t i = 0; i < K; i++) {
		b[i] = (float)((int)(i % 13) - 6) / 8;
		for (int j = 0; j < N; j++)
			x[j][i] = b[i] + (float)((int)((i * (j + 3)) % 11) - 5) / 16 * (float)(j + 1);
	}
	for (size_t i = 0; i < K; i++)	/* input 3 is far from the others */
		x[3][i] += 4;
	for (int j = 0; j < N; j++) {
		mkbig(names[j], x[j], K, j + 1);
		for (size_t i = 0; i < K; i++)
			norm[j] += ((double)x[j][i] - b[i]) * ((double)x[j][i] - b[i]);
		norm[j] = sqrt(norm[j]);
	}
	mkbig("bigbase.blob", b, K, 0);
	snprintf(base, sizeof(base), "%s/bigbase.blob", dir);

	memset(&o, 0, sizeof(o));
	o.base = base;
	o.clip = 60;
	o.chunk = 4096;
	rc = run_big(&o, names, N, out, K, NULL, err);
	double ws = 0;
	for (int j = 0; j < N; j++) {
		s[j] = fl_clip_scale(norm[j], o.clip);
		ws += j + 1;
	}
	for (size_t i = 0; !rc && i < K; i++) {
		want = 0;
		for (int j = 0; j < N; j++)
			want += (j + 1) * (b[i] + s[j] * ((double)x[j][i] - b[i]));
		want /= ws;
		worst = fmax(worst, fabs(out[i] - want));
	}
	CHECK(rc == 0 && worst < 1e-5 && s[3] < 1 && s[0] == 1, "mapped --clip: "
	    "each update clipped to norm 60 (norms %.1f..%.1f), worst error %g (%s)",
	    norm[0], norm[3], worst, rc ? err : "ok");

	memset(&o, 0, sizeof(o));
	o.base = base;
	o.opt = FL_SOPT_ADAM;
	o.sp = (struct fl_server_params){ 0.1, 0.9, 0.99, 1e-3 };
	o.weighting = FL_W_UNIFORM;
	rc = run_big(&o, names, N, out, K, NULL, err);
	worst = 0;
	for (size_t i = 0; !rc && i < K; i++) {
		double agg = 0, g, m, v;
		for (int j = 0; j < N; j++)
			agg += x[j][i];
		g = b[i] - (float)(agg / N);
		m = 0.1 * g;
		v = 0.01 * g * g;
		want = b[i] - 0.1 * m / (sqrt(v) + 1e-3);
		worst = fmax(worst, fabs(out[i] - want));
	}
	CHECK(rc == 0 && worst < 1e-4, "mapped fedadam, first step: worst error %g (%s)",
	    worst, rc ? err : "ok");

	memset(&o, 0, sizeof(o));
	o.rule = FL_AGG_KRUM;
	o.byzantine = 0;
	o.multi = 3;
	o.chunk = 1000;
	rc = run_big(&o, names, N, out, K, sel, err);
	CHECK(rc == 0 && !strcmp(sel, "1110"), "mapped multi-krum leaves out the far "
	    "input: %s (%s)", sel, rc ? err : "ok");
}

/* The folded CRC against fl_crc32 at odd lengths, offsets and seeds. */
static void
test_crc(void)
{
	size_t n = (1 << 20) + 4099, bad = 0;
	unsigned char *b = malloc(n);
	uint32_t s = 12345;

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((s = s * 1103515245 + 12345) >> 16);
	static const size_t lens[] = { 0, 1, 255, 256, 511, 512, 513, 1000,
	    4096, 65536 + 77, (1 << 20) + 1 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t off = 0; off < 3; off++) {
			uint32_t c0 = off == 2 ? 0xdeadbeef : 0;
			if (fl_agg_crc32(c0, b + off, lens[i]) != fl_crc32(c0, b + off, lens[i]))
				bad++;
		}
	CHECK(bad == 0, "folded crc32 matches fl_crc32 (%zu mismatches)", bad);
	free(b);
}

/* Median and trimmed mean of n = 1..40 inputs (network, scalar tail and
 * quickselect) against sorting each coordinate. */
static void
test_rules_wide(void)
{
	enum { K = 37, NMAX = 40 };
	float *x[NMAX], out[K], ref[K], col[NMAX], scratch[NMAX + 1];
	uint32_t s = 7;
	int bad = 0;

	for (int j = 0; j < NMAX; j++) {
		x[j] = malloc(K * sizeof(float));
		for (int i = 0; i < K; i++)
			x[j][i] = (float)((int)((s = s * 1664525 + 1013904223) >> 20) % 41 - 20) / 4;
	}
	for (size_t n = 1; n <= NMAX; n++) {
		size_t cut = fl_agg_trim_count(0.2, n);
		for (int pass = 0; pass < 2; pass++) {
			if (pass == 0)
				fl_agg_median(out, x, n, K, scratch);
			else
				fl_agg_trimmed(out, x, n, K, cut, scratch);
			for (int i = 0; i < K; i++) {
				size_t lo = pass ? cut : (n - 1) / 2, hi = pass ? n - cut : n / 2 + 1;
				double acc = 0;
				for (size_t j = 0; j < n; j++)
					col[j] = x[j][i];
				for (size_t a = 1; a < n; a++)
					for (size_t b = a; b > 0 && col[b - 1] > col[b]; b--) {
						float t = col[b];
						col[b] = col[b - 1];
						col[b - 1] = t;
					}
				for (size_t j = lo; j < hi; j++)
					acc += col[j];
				ref[i] = (float)(acc / (double)(hi - lo));
			}
			bad += memcmp(out, ref, sizeof(out)) != 0;
		}
	}
	CHECK(bad == 0, "median and trimmed mean of 1..40 inputs match a full "
	    "sort (%d cases differ)", bad);
	for (int j = 0; j < NMAX; j++)
		free(x[j]);
}

int
main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_rules();
	test_crc();
	test_rules_wide();
	test_krum();
	test_server();
	test_clip_noise();
	test_stream();
	test_mapped();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return unit_done();
}
