// SPDX-License-Identifier: Apache-2.0
/*
 * The hardening of the HTTP edge, black-box against a real nucleusd: a refused peer is
 * answered at accept without its request being read; the connection limit and fd
 * exhaustion pause accepting (clients wait in the backlog, the condition is logged once,
 * no busy loop) and the daemon serves again once connections close; a head or body
 * that trickles in is cut at its deadline with 408.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

static struct thd d;

static void cleanup(void)
{
	thd_cleanup(&d);
}

TestSuite(edge, .fini = cleanup, .timeout = 300);

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected socket to the daemon (no request sent), or -errno. */
static int dial(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, d.sock, strlen(d.sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Reads until EOF (or a reset after data, or @timeout_ms of silence); NUL-terminated. */
static size_t read_all(int fd, char *buf, size_t cap, int timeout_ms, bool *eof)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	size_t got = 0;
	ssize_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < cap - 1 && (n = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	*eof = n == 0 || (n < 0 && errno == ECONNRESET);
	return got;
}

/* How often @needle occurs in the daemon's log. */
static int log_count(const char *needle)
{
	char *log = th_slurp(d.log);
	int count = 0;

	for (const char *p = log; (p = strstr(p, needle)); p++)
		count++;
	free(log);
	return count;
}

/* CPU time the daemon used so far, in clock ticks. */
static long cpu_ticks(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)d.pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	cr_assert_not_null(p);
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
	 * stime */
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
		     2);
	return (long)(ut + st);
}

static long metric(const char *name)
{
	struct api_response r = thd_call(&d, "GET", "/v1/metrics", NULL);
	const char *p = strstr(r.body, name);
	long v = p ? atol(p + strlen(name)) : -1;

	api_response__clear(&r);
	return v;
}

/* ---- peer credentials at accept ---- */

/*
 * In a child running as nobody: connects, sends @send (may be empty), and checks that a
 * 403 {"error":"forbidden"} arrives, then EOF. Returns "" or what went wrong.
 */
static const char *refused_as_nobody(const char *send_first)
{
	static char why[512];
	ssize_t n;
	int pfd;
	pid_t pid = th_fork_piped(&pfd);

	if (pid == 0) {
		char buf[4096], msg[512] = "";
		bool eof = false;
		int fd;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
			snprintf(msg, sizeof(msg), "cannot become nobody: %s", strerror(errno));
		} else if ((fd = dial()) < 0) {
			snprintf(msg, sizeof(msg), "connect: %s", strerror(-fd));
		} else {
			if (*send_first &&
			    send(fd, send_first, strlen(send_first), MSG_NOSIGNAL) < 0)
				snprintf(msg, sizeof(msg), "send: %s", strerror(errno));
			read_all(fd, buf, sizeof(buf), 20000, &eof);
			close(fd);
			if (!*msg && strncmp(buf, "HTTP/1.1 403 ", 13) != 0)
				snprintf(msg, sizeof(msg), "no 403: '%.300s'", buf);
			else if (!*msg && !strstr(buf, "{\"error\":\"forbidden\""))
				snprintf(msg, sizeof(msg), "not the JSON error: '%.300s'", buf);
			else if (!*msg && !eof)
				snprintf(msg, sizeof(msg), "no EOF after the 403: '%.300s'", buf);
		}
		n = write(pfd, msg, strlen(msg) + 1);
		_exit(n > 0 ? 0 : 1);
	}
	n = read(pfd, why, sizeof(why) - 1);
	close(pfd);
	waitpid(pid, NULL, 0);
	why[n > 0 ? n : 0] = '\0';
	return n > 0 ? why : "the child said nothing";
}

Test(edge, a_refused_peer_gets_403_before_its_request_is_read)
{
	const char *why;

	if (getuid() != 0)
		cr_skip_test("needs root to run a client as another uid (nobody)");
	memset(&d, 0, sizeof(d));
	thd_start(&d);
	cr_assert_eq(chmod(d.sock, 0666), 0); /* the file mode would stop it earlier */
	/* Nothing sent at all: the answer comes at accept. */
	why = refused_as_nobody("");
	cr_assert_str_empty(why, "%s", why);
	/* A head that declares 1 MiB and stops after a line: answered, never read. */
	why = refused_as_nobody("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 1048576\r\n");
	cr_assert_str_empty(why, "%s", why);
	why = refused_as_nobody("POST /v1/sandboxes HTTP/1.1\r\n");
	cr_assert_str_empty(why, "%s", why);
	/* Counted each time, logged once (rate-limited), and nothing reached the database. */
	for (int i = 0; i < 10; i++) {
		why = refused_as_nobody("GET /v1/health HTTP/1.1\r\n\r\n");
		cr_assert_str_empty(why, "%s", why);
	}
	cr_assert_eq(metric("\nnucleus_http_peer_denied_total "), 13);
	cr_assert_eq(log_count("refused request from uid 65534"), 1);
	thd_finish(&d);
}

/* ---- the connection limit ---- */

Test(edge, the_connection_limit_holds_clients_in_the_backlog)
{
	static const char health[] = "GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n";
	int idle[4], waiting[6];
	char buf[4096];
	bool eof;

	memset(&d, 0, sizeof(d));
	d.extra[0] = "--max-connections";
	d.extra[1] = "4";
	thd_start(&d);
	for (int i = 0; i < 4; i++) {
		idle[i] = dial();
		cr_assert_geq(idle[i], 0);
	}
	/* Connected (the backlog took them) but not accepted: no answer while 4 are open. */
	for (int i = 0; i < 6; i++) {
		waiting[i] = dial();
		cr_assert_geq(waiting[i], 0, "connect: %s", strerror(-waiting[i]));
		cr_assert_eq(send(waiting[i], health, sizeof(health) - 1, MSG_NOSIGNAL),
			     (ssize_t)sizeof(health) - 1);
	}
	cr_assert_eq(read_all(waiting[0], buf, sizeof(buf), 500, &eof), 0, "answered: %s", buf);
	cr_assert(!eof);
	/* Each connection that closes lets one more in; each of those is answered. */
	for (int i = 0; i < 4; i++)
		close(idle[i]);
	for (int i = 0; i < 6; i++) {
		read_all(waiting[i], buf, sizeof(buf), 60000, &eof);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "client %d: '%s'", i, buf);
		cr_assert(eof);
		close(waiting[i]);
	}
	/* The limit was reached again and again; the log says so once. */
	cr_assert_eq(log_count("connections open, the limit (--max-connections)"), 1);
	thd_finish(&d);
}

/* ---- fd exhaustion ---- */

Test(edge, out_of_fds_accepting_pauses_without_a_busy_loop)
{
	enum { N = 90 };
	int fds[N];
	long ticks;
	struct api_response r;

	/*
	 * 160 fds, 100 of them taken by fds the daemon inherited: its connection limit is
	 * 160 - 64 = 96, but accept() runs out of fds at about 45 connections.
	 */
	memset(&d, 0, sizeof(d));
	d.rlimit_nofile = 160;
	d.hold_fds = 100;
	thd_start(&d);
	for (int i = 0; i < N; i++) {
		fds[i] = dial();
		cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(-fds[i]));
	}
	for (int i = 0; i < 1000 && log_count("accept: Too many open files") == 0; i++)
		sleep_ms(10);
	cr_assert_eq(log_count("accept: Too many open files"), 1, "never out of fds?");
	/*
	 * Paused, with a retry every 500 ms: next to no CPU in 2 s (a busy loop takes all it
	 * gets, a large share of a second even on a loaded machine).
	 */
	ticks = cpu_ticks();
	sleep_ms(2000);
	ticks = cpu_ticks() - ticks;
	cr_assert_lt(ticks, sysconf(_SC_CLK_TCK) / 10, "%ld ticks in 2 s while paused", ticks);
	/* Room again: the clients in the backlog and a new one are served. */
	for (int i = 0; i < 60; i++)
		close(fds[i]);
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	for (int i = 60; i < N; i++)
		close(fds[i]);
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	/* Retried several times meanwhile (each failing), logged once. */
	cr_assert_eq(log_count("accept: Too many open files"), 1);
	thd_finish(&d);
}

/* ---- deadlines ---- */

/*
 * Sends @head at once, then @trickle one byte per 200 ms (faster than the idle pause
 * of 30 s, so only the deadline can cut it); returns when the daemon answered.
 */
static void trickle(const char *head, const char *slow, char *buf, size_t cap, double *elapsed,
		    size_t *sent)
{
	int fd = dial();
	double t0 = now_s();
	bool eof = false;
	size_t i = 0;

	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
	for (; slow[i]; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1)
			break;
		if (poll(&p, 1, 200) > 0)
			break;
		cr_assert_lt(now_s() - t0, 60, "never cut");
	}
	read_all(fd, buf, cap, 20000, &eof);
	*elapsed = now_s() - t0;
	*sent = i;
	close(fd);
	cr_assert(eof, "not closed after: %s", buf);
}

Test(edge, a_trickling_head_or_body_is_cut_with_408)
{
	static char slow[400];
	char buf[4096];
	double elapsed;
	size_t sent;
	struct api_response r;

	memset(&d, 0, sizeof(d));
	d.extra[0] = "--request-timeout";
	d.extra[1] = "2";
	d.extra[2] = "--timeout";
	d.extra[3] = "1";
	thd_start(&d);
	memset(slow, 'a', sizeof(slow) - 1);
	/* a head that never ends */
	trickle("GET /v1/health HTTP/1.1\r\nX-Slow: ", slow, buf, sizeof(buf), &elapsed, &sent);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 408 ", 13), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "{\"error\":\"request_timeout\""), "%s", buf);
	cr_assert_not_null(strstr(buf, "request head"), "%s", buf);
	cr_assert_geq(elapsed, 1.9, "cut before the deadline: %.2f s", elapsed);
	cr_assert_lt(sent, sizeof(slow) - 1);
	/* a body that never ends (its head came at once) */
	trickle("POST /v1/sandboxes HTTP/1.1\r\nContent-Type: application/json\r\n"
		"Content-Length: 300\r\n\r\n",
		slow, buf, sizeof(buf), &elapsed, &sent);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 408 ", 13), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "request body"), "%s", buf);
	cr_assert_geq(elapsed, 1.9, "cut before the deadline: %.2f s", elapsed);
	cr_assert_lt(sent, 300);
	/* between requests, a keep-alive connection idle for --timeout is closed silently */
	{
		static const char get[] = "GET /v1/health HTTP/1.1\r\n\r\n";
		int fd = dial();
		double t0 = now_s();
		const char *cl;
		bool eof = false;
		size_t got;

		cr_assert_geq(fd, 0);
		cr_assert_eq(send(fd, get, sizeof(get) - 1, MSG_NOSIGNAL),
			     (ssize_t)sizeof(get) - 1);
		got = read_all(fd, buf, sizeof(buf), 20000, &eof);
		close(fd);
		cr_assert(eof, "still open: %s", buf);
		cr_assert_geq(now_s() - t0, 0.9);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "%s", buf);
		cl = strstr(buf, "Content-Length: ");
		cr_assert_not_null(cl);
		cr_assert_eq(got,
			     (size_t)(strstr(buf, "\r\n\r\n") + 4 - buf) +
				     strtoul(cl + 16, NULL, 10),
			     "more than the reply: %s", buf);
	}
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	thd_finish(&d);
}
