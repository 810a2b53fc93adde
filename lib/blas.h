/* blas.h: the BLAS flkit calls (cblas, from OpenBLAS), loaded when the
 * first network is built rather than when a program starts: a program
 * that trains nothing (fl-fit --dataset, fl-avg) neither maps OpenBLAS nor
 * starts its threads. */
#ifndef FL_BLAS_H
#define FL_BLAS_H

/*
 * Load the library (once; thread-safe). Unless $OPENBLAS_NUM_THREADS says
 * otherwise, it starts with one thread: flkit's own threads split batches
 * (fl_fit) and fl-serve runs a fit per thread, so a pool of OpenBLAS
 * threads would only spin against them. FL_EFAIL names the library.
 * Call it before starting threads of one's own: it sets and restores an
 * environment variable around dlopen.
 */
int fl_blas_load(char *err);

/* Row-major C (M, N) = alpha op(A) (M, K) . op(B) (K, N) + beta C, as
 * cblas_sgemm; ta and tb non-zero transpose A and B. Loads the library
 * at the first call if fl_blas_load was not called (and aborts if it
 * cannot be loaded, as the dynamic loader would have at start). */
void fl_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* OpenBLAS's own threads for one call: set, and how many now. */
void fl_blas_set_threads(int n);
int fl_blas_threads(void);

#endif
