// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the agent protocol, guest side: what nucleus-init does with the bytes
 * a host (or anything that reached the agent's port) sends on one connection. The real
 * server code serves it (serve.c: frame read, dispatch, PING, KILL, error replies, and
 * the request parsers of run.c and files.c, including the DATA/END stream of a WRITE);
 * only the actions are stubs here: nothing is run, no file is read or written, and the
 * kill registry knows one command (id 42).
 *
 * Input: the whole byte stream of the connection (the request frame, then for a WRITE
 * its DATA and END frames), after which the client stops sending.
 *
 * Invariants: the replies are a sequence of well-formed frames (the host's own decoder
 * accepts them) of reply types, for the request's id (or 0 for a connection error: bad
 * magic, version, size), ending in exactly one terminal frame, nothing after it; an
 * ERROR carries an errno of 1..4095; a RUN that parses has a non-empty argv[0] and only
 * "NAME=value" environment entries within the limits of guest.h; paths are absolute;
 * a WRITE's byte count is the sum of its DATA frames up to END (counted here from the
 * input); SHUTDOWN is acknowledged exactly when it was asked for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest/guest.h"
#include "tests/fuzz/fuzz.h"

/* The handlers' real parsers, with their actions replaced below. */
#define run__serve   fz_real_run__serve
#define files__read  fz_real_files__read
#define files__write fz_real_files__write
#define files__stat  fz_real_files__stat
#define files__list  fz_real_files__list
#include "guest/init/files.c"
#include "guest/init/run.c"
#undef run__serve
#undef files__read
#undef files__write
#undef files__stat
#undef files__list

int run__serve(int fd, uint64_t id, const struct guest_buf *pl);
int files__read(int fd, uint64_t id, const struct guest_buf *pl);
int files__write(int fd, uint64_t id, const struct guest_buf *pl);
int files__stat(int fd, uint64_t id, const struct guest_buf *pl);
int files__list(int fd, uint64_t id, const struct guest_buf *pl);

static struct {
	bool write_seen;     /* a WRITE request was served */
	int write_r;	     /* receive()'s result */
	uint64_t write_size; /* its byte count */
} fz;

/* ---- the kill registry: one running command, id 42 ---- */
int registry__init(void)
{
	return 0;
}
int registry__claim(uint64_t id, pid_t pgid)
{
	return -EBUSY;
}
void registry__release(int slot)
{
}
int registry__kill(uint64_t id, int sig)
{
	if (id == 0 || sig < 1 || sig > 64)
		fz_fail("registry__kill(%llu, %d) reached", (unsigned long long)id, sig);
	return id == 42;
}
void registry__kill_all(int sig)
{
}
void registry__release_owner(pid_t owner)
{
}

/* ---- the handlers: real parsing, fake actions ---- */
int run__serve(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct run_req rq = {0};
	struct guest_buf b = {0};
	size_t total = 0;
	int r = parse_req(pl, &rq);

	if (r < 0) {
		if (r != -EPROTO && r != -EINVAL && r != -E2BIG)
			fz_fail("run: parse_req %d", r);
		r = agent__send_error(fd, id, -r, "run: malformed request");
		req_free(&rq);
		return r;
	}
	if (!rq.argc || !rq.argv || !rq.argv[0][0] || rq.argv[rq.argc])
		fz_fail("run: argv of %zu", rq.argc);
	if (rq.envc > GUEST_ENV_MAX || rq.env_bytes > GUEST_ENV_TOTAL_MAX ||
	    (rq.envp && rq.envp[rq.envc]))
		fz_fail("run: %zu env entries, %zu bytes", rq.envc, rq.env_bytes);
	for (size_t i = 0; i < rq.envc; i++) {
		const char *eq = strchr(rq.envp[i], '=');

		if (!eq || !guest_env__name_ok(rq.envp[i], (size_t)(eq - rq.envp[i])) ||
		    strlen(eq + 1) > GUEST_ENV_VALUE_MAX)
			fz_fail("run: env entry %zu '%.40s' let through", i, rq.envp[i]);
		total += strlen(rq.envp[i]);
	}
	if (total != rq.env_bytes)
		fz_fail("run: env bytes %zu counted as %zu", total, rq.env_bytes);
	if (rq.inlen && (rq.in < pl->data || rq.in + rq.inlen > pl->data + pl->len))
		fz_fail("run: stdin outside the payload");
	r = guest_buf__put_u32(&b, GUEST_TAG_PID, 1234);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_STARTED, id, &b);
	guest_buf__release(&b);
	if (r == 0)
		r = guest_buf__put_u32(&b, GUEST_TAG_EXIT_CODE, 0);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_EXIT, id, &b);
	guest_buf__release(&b);
	req_free(&rq);
	return r;
}

static int path_only(int fd, uint64_t id, const struct guest_buf *pl, const char *op,
		     uint32_t *mode, char **ret)
{
	char *path = NULL;
	int r = req_path(pl, &path, mode);

	if (r < 0) {
		if (r != -EPROTO && r != -EINVAL)
			fz_fail("%s: req_path %d", op, r);
		return r;
	}
	if (!path || path[0] != '/' || (mode && *mode > 07777))
		fz_fail("%s: path '%s' mode %o let through", op, path ? path : "(null)",
			mode ? *mode : 0);
	*ret = path;
	return 0;
}

int files__read(int fd, uint64_t id, const struct guest_buf *pl)
{
	char *path = NULL;
	int r = path_only(fd, id, pl, "read", NULL, &path);

	if (r < 0)
		return bad_request(fd, id, -r, "read");
	free(path);
	return agent__send(fd, GUEST_MSG_END, id, NULL);
}

int files__stat(int fd, uint64_t id, const struct guest_buf *pl)
{
	char *path = NULL;
	int r = path_only(fd, id, pl, "stat", NULL, &path);

	if (r < 0)
		return bad_request(fd, id, -r, "stat");
	free(path);
	return agent__send_error(fd, id, ENOENT, "stat: no such file");
}

int files__list(int fd, uint64_t id, const struct guest_buf *pl)
{
	char *path = NULL;
	int r = path_only(fd, id, pl, "list", NULL, &path);

	if (r < 0)
		return bad_request(fd, id, -r, "list");
	free(path);
	return agent__send(fd, GUEST_MSG_END, id, NULL);
}

int files__write(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	uint32_t mode = 0644;
	uint64_t size = 0;
	char *path = NULL;
	int r = path_only(fd, id, pl, "write", &mode, &path), err = 0;

	if (r < 0)
		return bad_request(fd, id, -r, "write");
	free(path);
	/* the real stream parser; -1: the data is discarded */
	r = receive(fd, id, -1, &size, &err);
	fz.write_seen = true;
	fz.write_r = r;
	fz.write_size = size;
	if (r < 0) {
		if (r == -EPROTO)
			agent__send_error(fd, id, EPROTO, "write: expected DATA or END");
		return r;
	}
	r = guest_buf__put_u64(&b, GUEST_TAG_SIZE, size);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_OK, id, &b);
	guest_buf__release(&b);
	return r;
}

/* ---- the input's own view of the stream ---- */

/* What a WRITE's DATA frames add up to, per the input: -1 when the stream breaks. */
static int64_t expected_write(const uint8_t *data, size_t size, uint64_t id, size_t first)
{
	uint64_t total = 0;
	size_t pos = first;

	for (;;) {
		struct guest_hdr h;

		if (size - pos < GUEST_HDR_SIZE || guest_hdr__decode(data + pos, &h) < 0)
			return -1;
		if (h.len > size - pos - GUEST_HDR_SIZE)
			return -1;
		if (h.id != id || (h.type != GUEST_MSG_DATA && h.type != GUEST_MSG_END))
			return -1;
		if (h.type == GUEST_MSG_END)
			return (int64_t)total;
		total += h.len;
		pos += GUEST_HDR_SIZE + h.len;
	}
}

static bool terminal(uint8_t t)
{
	return t == GUEST_MSG_OK || t == GUEST_MSG_ERROR || t == GUEST_MSG_EXIT ||
	       t == GUEST_MSG_END;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1 << 20];
	struct guest_hdr req;
	bool shutdown_asked = false, req_ok, saw_terminal = false;
	size_t got = 0, pos = 0;
	int sv[2], sz = 4 << 20;
	ssize_t n;

	if (size > (1u << 20))
		return 0;
	memset(&fz, 0, sizeof(fz));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[0], SHUT_WR);
	serve__conn(sv[1], &shutdown_asked);
	close(sv[1]);
	while ((n = read(sv[0], out + got, sizeof(out) - got)) > 0)
		got += (size_t)n;
	close(sv[0]);

	req_ok = size >= GUEST_HDR_SIZE && guest_hdr__decode(data, &req) == 0 &&
		 req.len <= size - GUEST_HDR_SIZE;
	if (shutdown_asked != (req_ok && req.type == GUEST_MSG_SHUTDOWN))
		fz_fail("shutdown %d for a request of type 0x%02x", shutdown_asked,
			req_ok ? req.type : 0);
	if (size < GUEST_HDR_SIZE || (req_ok == false && guest_hdr__decode(data, &req) == 0)) {
		/* no request: the peer left before a whole frame */
		if (got)
			fz_fail("%zu reply bytes to an incomplete request", got);
		return 0;
	}
	while (pos < got) {
		struct guest_hdr h;
		struct guest_tlv_iter it;
		const uint8_t *val;
		uint32_t len, e = 0;
		uint16_t tag;
		int r;

		if (saw_terminal)
			fz_fail("a reply frame after the terminal one");
		if (got - pos < GUEST_HDR_SIZE || guest_hdr__decode(out + pos, &h) < 0 ||
		    h.len > got - pos - GUEST_HDR_SIZE)
			fz_fail("a malformed reply frame at byte %zu of %zu", pos, got);
		if (h.type < GUEST_MSG_OK || h.type > GUEST_MSG_ENTRY)
			fz_fail("reply type 0x%02x", h.type);
		if (req_ok ? h.id != req.id : h.id != 0)
			fz_fail("reply id %llu for request %llu", (unsigned long long)h.id,
				(unsigned long long)(req_ok ? req.id : 0));
		if (h.type == GUEST_MSG_ERROR) {
			guest_tlv__init(&it, out + pos + GUEST_HDR_SIZE, h.len);
			while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0)
				if (tag == GUEST_TAG_ERRNO && guest_tlv__u32(val, len, &e) < 0)
					fz_fail("ERROR with a bad errno field");
			if (r < 0 || e == 0 || e > 4095)
				fz_fail("ERROR with errno %u", e);
		}
		saw_terminal = terminal(h.type);
		pos += GUEST_HDR_SIZE + h.len;
	}
	if (req_ok && req.type == GUEST_MSG_WRITE && fz.write_seen) {
		int64_t want = expected_write(data, size, req.id, GUEST_HDR_SIZE + req.len);

		if ((want >= 0) != (fz.write_r == 0) ||
		    (want >= 0 && (uint64_t)want != fz.write_size))
			fz_fail("write stream: %d, %llu bytes; the input says %lld", fz.write_r,
				(unsigned long long)fz.write_size, (long long)want);
	}
	if (got && !saw_terminal && !(req_ok && req.type == GUEST_MSG_WRITE))
		fz_fail("replies without a terminal frame");
	return 0;
}
