/* avg_floor.c: the page-cache floor for bench/avg.sh: what any program pays
 * to read N mapped files and write one file of the first's size, with no
 * arithmetic. Two threads each take half of every input, mapped, read one
 * load per cache line, with pages dropped behind as fl-avg does, and write
 * half of the output in 256 KiB pieces from a reused buffer.
 * Usage: avg_floor OUT IN...   (prints nothing; time it from outside) */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIECE (256 << 10)
#define DROP (8 << 20)

struct job {
	const unsigned char **m;
	size_t n, lo, hi;
	int fd;
	const unsigned char *buf;
	uint64_t sum;
	int rc;
};

static void *
touch(void *arg)
{
	struct job *j = arg;
	uint64_t s = 0;

	for (size_t o = j->lo; o < j->hi; o += PIECE) {
		size_t k = j->hi - o < PIECE ? j->hi - o : PIECE;
		if (pwrite(j->fd, j->buf, k, (off_t)o) != (ssize_t)k)
			j->rc = 111;
	}
	for (size_t at = j->lo; at < j->hi; at += DROP) {
		size_t end = at + DROP < j->hi ? at + DROP : j->hi;
		for (size_t f = 0; f < j->n; f++) {
			for (size_t o = at; o < end; o += 64)
				s += j->m[f][o];
			madvise((void *)(j->m[f] + at), end - at, MADV_DONTNEED);
		}
	}
	j->sum = s;
	return NULL;
}

int
main(int argc, char **argv)
{
	size_t n = (size_t)argc - 2, len = 0;
	const unsigned char **m;
	struct job j[2];
	pthread_t th;
	unsigned char *buf;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: avg_floor OUT IN...\n");
		return 100;
	}
	if (!(m = calloc(n, sizeof(*m))) || !(buf = malloc(PIECE)))
		return 111;
	for (size_t f = 0; f < n; f++) {
		struct stat st;
		if ((fd = open(argv[2 + f], O_RDONLY)) < 0 || fstat(fd, &st) < 0) {
			perror(argv[2 + f]);
			return 111;
		}
		if (f == 0 || (size_t)st.st_size < len)
			len = (size_t)st.st_size;
		m[f] = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m[f] == MAP_FAILED) {
			perror("mmap");
			return 111;
		}
		madvise((void *)m[f], (size_t)st.st_size, MADV_SEQUENTIAL);
		close(fd);
	}
	size_t half = len / 2 & ~(size_t)(DROP - 1);
	memset(buf, 1, PIECE);
	if ((fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
		perror(argv[1]);
		return 111;
	}
	j[0] = (struct job){ m, n, 0, half, fd, buf, 0, 0 };
	j[1] = (struct job){ m, n, half, len, fd, buf, 0, 0 };
	if (pthread_create(&th, NULL, touch, &j[1]))
		return 111;
	touch(&j[0]);
	pthread_join(th, NULL);
	if (close(fd) < 0 || j[0].rc || j[1].rc) {
		perror("write");
		return 111;
	}
	return (j[0].sum + j[1].sum) == 1;	/* keep the loads */
}
