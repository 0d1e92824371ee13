/*
 * A small imsg peer for the interop tests and benchmarks of the Rust imsg
 * crate. It is our own program; it links against OpenBSD's imsg as shipped
 * in Debian's openbgpd source package, fetched and built at test time
 * (see fetch-and-build.sh). Nothing of OpenBSD's is committed.
 *
 * peer echo FD          answer every message on FD with type+1000, the same
 *                       peerid, pid and payload; a passed fd gets "C\n"
 *                       written to it and is passed back. Type 999 ends.
 * peer send-big FD N    raise the limit and send one N-byte payload.
 * peer compose-big N    try to compose an N-byte payload with the default
 *                       limit; exit 4 if imsg refuses it with ERANGE.
 * peer bench COUNT SIZE [RTCOUNT]
 *                       fork a C echo child and time COUNT one-way
 *                       messages and RTCOUNT (default COUNT) round trips
 *                       of SIZE bytes; either count may be 0.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg.h"

#define T_QUIT 999
#define T_BENCH_DONE 998

static void
die(const char *what)
{
	fprintf(stderr, "peer: %s: %s\n", what, strerror(errno));
	exit(3);
}

static void
flush_all(struct imsgbuf *ib)
{
	if (imsgbuf_flush(ib) == -1)
		die("flush");
}

static int
echo(int fd)
{
	struct imsgbuf ib;
	struct imsg m;
	ssize_t n;

	if (imsgbuf_init(&ib, fd) == -1)
		die("init");
	imsgbuf_allow_fdpass(&ib);
	for (;;) {
		int r = imsgbuf_read(&ib);
		if (r == -1)
			die("read");
		if (r == 0)
			return 0;
		while ((n = imsg_get(&ib, &m)) > 0) {
			uint32_t type = imsg_get_type(&m);
			int pfd = imsg_get_fd(&m);
			size_t len = imsg_get_len(&m);
			void *data = NULL;

			if (type == T_QUIT) {
				imsg_free(&m);
				return 0;
			}
			if (len > 0) {
				if ((data = malloc(len)) == NULL)
					die("malloc");
				if (imsg_get_data(&m, data, len) == -1)
					die("get_data");
			}
			if (pfd != -1 && write(pfd, "C\n", 2) != 2)
				die("write to passed fd");
			if (imsg_compose(&ib, type + 1000, imsg_get_id(&m),
			    imsg_get_pid(&m), pfd, data, len) == -1)
				die("compose");
			free(data);
			imsg_free(&m);
			flush_all(&ib);
		}
		if (n == -1)
			die("get");
	}
}

static int
send_big(int fd, size_t n)
{
	struct imsgbuf ib;
	char *p = calloc(1, n);

	if (p == NULL || imsgbuf_init(&ib, fd) == -1)
		die("init");
	if (imsgbuf_set_maxsize(&ib, 65535 - IMSG_HEADER_SIZE) == -1)
		die("set_maxsize");
	if (imsg_compose(&ib, 77, 1, 0, -1, p, n) == -1)
		die("compose");
	flush_all(&ib);
	return 0;
}

static int
compose_big(size_t n)
{
	struct imsgbuf ib;
	int sv[2];
	char *p = calloc(1, n);

	if (p == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    imsgbuf_init(&ib, sv[0]) == -1)
		die("init");
	if (imsg_compose(&ib, 77, 1, 0, -1, p, n) == -1 && errno == ERANGE)
		return 4;
	return 0;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The child of "bench": counts one-way messages, then echoes. */
static void
bench_child(int fd, long count)
{
	struct imsgbuf ib;
	struct imsg m;
	long got = 0;
	static char buf[65536];

	if (imsgbuf_init(&ib, fd) == -1)
		die("init");
	for (;;) {
		int r = imsgbuf_read(&ib);
		if (r <= 0)
			exit(r == 0 ? 0 : 3);
		while (imsg_get(&ib, &m) > 0) {
			uint32_t type = imsg_get_type(&m);
			if (type == 1) {
				if (++got == count) {
					imsg_compose(&ib, T_BENCH_DONE, 0, 0, -1,
					    NULL, 0);
					flush_all(&ib);
				}
			} else if (type == 2) {
				size_t len = imsg_get_len(&m);
				if (len > 0 && imsg_get_data(&m, buf, len) == -1)
					die("get_data");
				imsg_compose(&ib, 3, 0, 0, -1, buf, len);
				flush_all(&ib);
			} else if (type == T_QUIT) {
				exit(0);
			}
			imsg_free(&m);
		}
	}
}

/*
 * The benchmark runs each side on its own CPU (when there are two), so the
 * C, Rust and socketpair figures all come from the same placement.
 */
static void
pin(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == -1)
		die("sched_setaffinity");
}

static void
wait_type(struct imsgbuf *ib, uint32_t want)
{
	struct imsg m;

	for (;;) {
		if (imsg_get(ib, &m) > 0) {
			uint32_t type = imsg_get_type(&m);
			imsg_free(&m);
			if (type == want)
				return;
			continue;
		}
		if (imsgbuf_read(ib) != 1)
			die("bench read");
	}
}

static int
bench(long count, size_t size, long rtcount)
{
	struct imsgbuf ib;
	int sv[2], status;
	pid_t pid;
	char *p = malloc(size ? size : 1);
	double t0, oneway, rtt;
	long i;

	if (p == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair");
	/* Written bytes, as the other columns send: not the zero page. */
	for (i = 0; i < (long)size; i++)
		p[i] = i % 251;
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		pin(1);
		bench_child(sv[1], count);
	}
	close(sv[1]);
	pin(0);
	if (imsgbuf_init(&ib, sv[0]) == -1)
		die("init");

	t0 = now();
	for (i = 0; i < count; i++) {
		if (imsg_compose(&ib, 1, 0, 0, -1, p, size) == -1)
			die("compose");
		if (imsgbuf_queuelen(&ib) > 64)
			flush_all(&ib);
	}
	flush_all(&ib);
	if (count > 0)
		wait_type(&ib, T_BENCH_DONE);
	oneway = now() - t0;

	t0 = now();
	for (i = 0; i < rtcount; i++) {
		if (imsg_compose(&ib, 2, 0, 0, -1, p, size) == -1)
			die("compose");
		flush_all(&ib);
		wait_type(&ib, 3);
	}
	rtt = now() - t0;

	imsg_compose(&ib, T_QUIT, 0, 0, -1, NULL, 0);
	flush_all(&ib);
	waitpid(pid, &status, 0);
	printf("oneway_msgs_per_s %.0f rtt_us %.3f\n",
	    count > 0 ? count / oneway : 0, rtcount > 0 ? rtt / rtcount * 1e6 : 0);
	return 0;
}

int
main(int argc, char *argv[])
{
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		return echo(atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "send-big") == 0)
		return send_big(atoi(argv[2]), strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "compose-big") == 0)
		return compose_big(strtoul(argv[2], NULL, 10));
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "bench") == 0)
		return bench(atol(argv[2]), strtoul(argv[3], NULL, 10),
		    atol(argv[argc == 5 ? 4 : 2]));
	fprintf(stderr, "usage: peer echo FD | send-big FD N | "
	    "compose-big N | bench COUNT SIZE [RTCOUNT]\n");
	return 2;
}
