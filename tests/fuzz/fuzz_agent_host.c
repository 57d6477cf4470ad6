// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the agent protocol, host side: libguest (guest/client/client.c and the
 * codec proto.c), as nucleusd's VM backend uses it, against a hostile guest agent. A
 * server thread plays the agent: it reads the client's request header, then sends the
 * fuzz input as the reply stream and hangs up. Request ids are random, so a reply
 * header whose id field is 1 gets the request's id (any other id is sent as it is).
 *
 * Input: [0] picks the call (ping, run, read_file, read_file_all, write_file, stat,
 * list, kill, shutdown); the rest is the agent's reply stream.
 *
 * Invariants: every call returns (the client never waits past the agent's hang-up); a
 * result is 0 (or a count) or a negative errno (-EPROTO, -ECONNRESET, or the 1..4095 an
 * ERROR frame carried), never a timeout; a run that returns 0 has exactly one of an exit
 * code of 0..255 and a signal of 1..128; callbacks get only non-empty chunks that add
 * up to no more than the agent sent, and a read's size is what the callback got; a
 * whole-file read stays within its limit; stat and list entries have a known file
 * type, permission bits only and a name without '/'; list returns its callback count;
 * nothing leaks (LeakSanitizer).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guest/guest.h"
#include "tests/fuzz/fuzz.h"

static struct {
	char path[108];
	int lfd;
	sem_t go, done;
	uint8_t *reply; /* the server's own copy */
	size_t len;
	uint64_t req_id;
	bool got_req;
	volatile int step; /* where the server is, for the report of a hang */
} srv;

static void patch_ids(uint8_t *p, size_t len, uint64_t id)
{
	size_t pos = 0;

	while (len - pos >= GUEST_HDR_SIZE) {
		uint64_t v = 0;
		uint32_t plen = 0;

		for (int i = 7; i >= 0; i--)
			v = v << 8 | p[pos + 8 + i];
		if (v == 1)
			for (int i = 0; i < 8; i++)
				p[pos + 8 + i] = (uint8_t)(id >> (8 * i));
		for (int i = 3; i >= 0; i--)
			plen = plen << 8 | p[pos + 4 + i];
		if (plen > len - pos - GUEST_HDR_SIZE)
			break;
		pos += GUEST_HDR_SIZE + plen;
	}
}

static void *server(void *arg)
{
	for (;;) {
		uint8_t hdr[GUEST_HDR_SIZE], sink[4096];
		struct guest_hdr h;
		size_t got = 0;
		int fd;

		srv.step = 0;
		sem_wait(&srv.go);
		srv.step = 1;
		fd = accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			abort();
		srv.got_req = false;
		srv.step = 2;
		while (got < sizeof(hdr)) {
			ssize_t n = read(fd, hdr + got, sizeof(hdr) - got);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got == sizeof(hdr) && guest_hdr__decode(hdr, &h) == 0) {
			srv.got_req = true;
			srv.req_id = h.id;
			patch_ids(srv.reply, srv.len, h.id);
		}
		srv.step = 3;
		for (size_t off = 0; off < srv.len;) {
			ssize_t n = send(fd, srv.reply + off, srv.len - off, MSG_NOSIGNAL);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		shutdown(fd, SHUT_WR);
		srv.step = 4;
		while (read(fd, sink, sizeof(sink)) > 0)
			;
		close(fd);
		sem_post(&srv.done);
	}
	return arg;
}

static void cleanup(void)
{
	unlink(srv.path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	sigset_t all, old;
	pthread_t t;

	atexit(cleanup);

	if (snprintf(srv.path, sizeof(srv.path), "%s/nucleus-fuzz-agent-%d.sock",
		     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		     (int)getpid()) >= (int)sizeof(srv.path))
		abort(); /* $TMPDIR too long for a socket path */
	unlink(srv.path);
	strcpy(sa.sun_path, srv.path);
	srv.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(srv.lfd, 4) < 0)
		abort();
	sem_init(&srv.go, 0, 0);
	sem_init(&srv.done, 0, 0);
	/* The server thread takes no signal (libFuzzer's SIGALRM watchdog goes to main). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&t, NULL, server, NULL) != 0)
		abort();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_detach(t);
	return 0;
}

static struct {
	uint64_t bytes, chunks, started, entries;
	bool stop_early;
	uint8_t mode;
} cb;

static void started(void *opaque, uint64_t id, uint32_t pid)
{
	if (id != srv.req_id)
		fz_fail("started() for id %llu, the run is %llu", (unsigned long long)id,
			(unsigned long long)srv.req_id);
	cb.started++;
}

static int chunk(void *opaque, const void *data, size_t len)
{
	if (!len || !data)
		fz_fail("a callback got an empty chunk");
	cb.bytes += len;
	cb.chunks++;
	return cb.stop_early && cb.chunks == 2 ? -ECANCELED : 0;
}

static int entry(void *opaque, const char *name, const struct guest_stat *st)
{
	if (!name || !*name || strchr(name, '/'))
		fz_fail("list entry named '%s'", name ? name : "(null)");
	if (st->ftype > GUEST_FT_SOCK || st->mode > 07777)
		fz_fail("list entry of type %u mode %o", st->ftype, st->mode);
	cb.entries++;
	return 0;
}

static void check_rc(int r, size_t sent)
{
	if (r == -ETIMEDOUT)
		fz_fail("the client timed out on a closed connection");
	if (r < -4095)
		fz_fail("result %d", r);
	if (cb.bytes > sent)
		fz_fail("callbacks got %llu bytes of a %zu-byte stream",
			(unsigned long long)cb.bytes, sent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const argv[] = {"true", NULL};
	struct guest *g = NULL;
	struct timespec ts;
	int r = 0;

	if (size < 1 || size > (1u << 20))
		return 0;
	memset(&cb, 0, sizeof(cb));
	cb.mode = data[0];
	cb.stop_early = data[0] & 0x80;
	srv.len = size - 1;
	srv.reply = malloc(size);
	memcpy(srv.reply, data + 1, size - 1);
	if (guest__open_unix(srv.path, &g) < 0)
		abort();
	guest__set_timeouts(g, 5000, 5000);
	sem_post(&srv.go);
	switch ((data[0] & 0x7f) % 9) {
	case 0: {
		uint32_t v = 0;

		r = guest__ping(g, &v);
		if (r == 0 && v == 0)
			fz_fail("ping: version 0");
		break;
	}
	case 1: {
		struct guest_run_req req = {.argv = argv, .timeout_ms = 1000};
		struct guest_run_cbs cbs = {started, chunk, chunk};
		struct guest_run_result res = {.exit_code = 999, .signal = 999};

		r = guest__run(g, &req, &cbs, NULL, &res);
		if (r == 0 && !((res.exit_code >= 0 && res.exit_code <= 255 && res.signal == 0) ||
				(res.exit_code == -1 && res.signal >= 1 && res.signal <= 128)))
			fz_fail("run: exit %d signal %d", res.exit_code, res.signal);
		if (r == -ECANCELED && !cb.stop_early)
			fz_fail("run: -ECANCELED nobody asked for");
		break;
	}
	case 2: {
		uint64_t sz = 12345;

		r = guest__read_file(g, "/f", chunk, NULL, &sz);
		if (r == 0 && sz != cb.bytes)
			fz_fail("read: size %llu, the callback got %llu", (unsigned long long)sz,
				(unsigned long long)cb.bytes);
		break;
	}
	case 3: {
		void *p = NULL;
		size_t len = 0;

		r = guest__read_file_all(g, "/f", 100, &p, &len);
		if (r == 0 && (!p || len > 100))
			fz_fail("read_all: %zu bytes of at most 100", len);
		if (r == 0)
			free(p);
		break;
	}
	case 4:
		r = guest__write_file(g, "/f", 0644, "hello", 5);
		break;
	case 5: {
		struct guest_stat st = {99, 0xffffff, 0, 0};

		r = guest__stat(g, "/f", &st);
		if (r == 0 && (st.ftype > GUEST_FT_SOCK || st.mode > 07777))
			fz_fail("stat: type %u mode %o", st.ftype, st.mode);
		break;
	}
	case 6:
		r = guest__list(g, "/d", entry, NULL);
		if (r >= 0 && (uint64_t)r != cb.entries)
			fz_fail("list: %d entries, the callback got %llu", r,
				(unsigned long long)cb.entries);
		break;
	case 7:
		r = guest__kill(g, 77, 9);
		break;
	default:
		r = guest__shutdown(g);
		break;
	}
	check_rc(r, srv.len);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30; /* generous: a loaded machine is no finding */
	/* libFuzzer's -timeout watchdog is a SIGALRM each second: EINTR is no answer */
	while ((r = sem_timedwait(&srv.done, &ts)) < 0 && errno == EINTR)
		;
	if (r < 0)
		fz_fail("the agent's connection did not end: server at step %d (0 waiting, 1 "
			"accept, "
			"2 request, 3 reply, 4 drain)",
			srv.step);
	if (!srv.got_req)
		fz_fail("the client sent no request header");
	guest__close(g);
	free(srv.reply);
	return 0;
}
