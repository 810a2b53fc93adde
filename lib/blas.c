/* blas.c: cblas_sgemm and OpenBLAS's thread count through dlopen(3), at
 * the first use. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "blas.h"
#include "util.h"

#ifndef FL_BLAS_LIB
#define FL_BLAS_LIB "libopenblas.so.0"
#endif

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
    const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
    const float, const float *, const blasint, const float *, const blasint,
    const float, float *, const blasint);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sgemm_fn sgemm;
static void (*set_threads)(int);
static int (*get_threads)(void);
static char why[FL_ERRLEN];

static void
load(void)
{
	const char *e;
	void *h;
	int set = 0;

	if (!(e = getenv("OPENBLAS_NUM_THREADS")) || !*e)
		set = !setenv("OPENBLAS_NUM_THREADS", "1", 1);
	h = dlopen(FL_BLAS_LIB, RTLD_NOW | RTLD_LOCAL);
	if (set)
		unsetenv("OPENBLAS_NUM_THREADS");	/* not for our children */
	if (!h) {
		e = dlerror();
		snprintf(why, sizeof(why), "cannot load %s: %s (install "
		    "Debian's libopenblas0)", FL_BLAS_LIB, e ? e : "unknown error");
		return;
	}
	*(void **)&set_threads = dlsym(h, "openblas_set_num_threads");
	*(void **)&get_threads = dlsym(h, "openblas_get_num_threads");
	*(void **)&sgemm = dlsym(h, "cblas_sgemm");
	if (!sgemm)
		snprintf(why, sizeof(why), "%s has no cblas_sgemm", FL_BLAS_LIB);
}

int
fl_blas_load(char *err)
{
	pthread_once(&once, load);
	return sgemm ? FL_OK : fl_err(err, FL_EFAIL, "%s", why);
}

void
fl_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	pthread_once(&once, load);
	if (!sgemm)
		abort();	/* fl_blas_load said why */
	sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	    tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta,
	    C, ldc);
}

void
fl_blas_set_threads(int n)
{
	pthread_once(&once, load);
	if (set_threads && n >= 1)
		set_threads(n);
}

int
fl_blas_threads(void)
{
	pthread_once(&once, load);
	return get_threads ? get_threads() : 1;
}
