/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.c - host side of the agent protocol (libguest). Every call opens its own
 * connection, sends one request and reads replies until a terminal frame. The guest
 * is not trusted: every reply is checked (id, type, field sizes) before use.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guest/guest.h"

enum guest_kind { GUEST_KIND_UNIX, GUEST_KIND_VSOCK };

struct guest {
	enum guest_kind kind;
	char *path;
	uint32_t port;
	int connect_ms;
	int io_ms;
	/* The open connections, for guest__cancel (any thread); under lock. */
	pthread_mutex_t lock;
	int *conns;
	size_t n_conns, cap_conns;
	bool cancelled;
};

static int guest_new(enum guest_kind kind, const char *path, uint32_t port, struct guest **ret)
{
	struct sockaddr_un sun;
	struct guest *g;

	if (!path || !ret || strlen(path) >= sizeof(sun.sun_path))
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->path = strdup(path);
	if (!g->path) {
		free(g);
		return -ENOMEM;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->kind = kind;
	g->port = port;
	g->connect_ms = 30000;
	g->io_ms = 60000;
	*ret = g;
	return 0;
}

int guest__open_vsock(const char *uds_path, uint32_t port, struct guest **ret)
{
	return guest_new(GUEST_KIND_VSOCK, uds_path, port, ret);
}

int guest__open_unix(const char *path, struct guest **ret)
{
	return guest_new(GUEST_KIND_UNIX, path, 0, ret);
}

void guest__close(struct guest *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g->conns);
	free(g->path);
	free(g);
}

void guest__cancel(struct guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->cancelled = true;
	for (size_t i = 0; i < g->n_conns; i++)
		shutdown(g->conns[i], SHUT_RDWR);
	pthread_mutex_unlock(&g->lock);
}

/* A connection of g is open: guest__cancel can shut it down from now on. */
static int conn_add(struct guest *g, int fd)
{
	int r = 0;

	pthread_mutex_lock(&g->lock);
	if (g->cancelled) {
		r = -ECANCELED;
	} else if (g->n_conns == g->cap_conns) {
		size_t cap = g->cap_conns ? 2 * g->cap_conns : 4;
		int *c = realloc(g->conns, cap * sizeof(*c));

		if (c) {
			g->conns = c;
			g->cap_conns = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0)
		g->conns[g->n_conns++] = fd;
	pthread_mutex_unlock(&g->lock);
	return r;
}

/* Closes a connection of g (under the lock: guest__cancel never sees a reused fd). */
static void conn_close(struct guest *g, int fd)
{
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n_conns; i++) {
		if (g->conns[i] == fd) {
			g->conns[i] = g->conns[--g->n_conns];
			break;
		}
	}
	close(fd);
	pthread_mutex_unlock(&g->lock);
}

void guest__set_timeouts(struct guest *g, int connect_ms, int io_ms)
{
	g->connect_ms = connect_ms;
	g->io_ms = io_ms;
}

uint64_t guest__new_id(void)
{
	uint64_t id = 0;

	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
			     ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&ts;
		}
	}
	return id;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	for (;;) {
		int timeout = left_ms(deadline);

		if (timeout == 0)
			return -ETIMEDOUT;
		int r = poll(&pfd, 1, timeout);

		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int unix_connect(const char *path, int64_t deadline, int *ret_fd)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int fd = -1, r;

	if (len >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		r = -errno;
		if (r == -EINTR)
			continue;
		if (r == -EINPROGRESS) {
			int err = 0;
			socklen_t el = sizeof(err);

			r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
				r = -errno;
			else if (r == 0)
				r = -err;
			if (r == 0)
				break;
			goto fail;
		}
		if (r != -EAGAIN)
			goto fail;
		/* Backlog full: try again shortly, until the deadline. */
		if (left_ms(deadline) == 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		poll(NULL, 0, 5);
	}
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* "CONNECT <port>\n" -> "OK <n>\n". The VMM closes the socket when the guest refuses. */
static int vsock_handshake(int fd, uint32_t port, int64_t deadline)
{
	char line[64];
	size_t got = 0;
	int n, r;

	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	for (int off = 0; off < n;) {
		ssize_t w = send(fd, line + off, (size_t)(n - off), MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			r = wait_fd(fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (w < 0)
			return errno == EPIPE ? -ECONNREFUSED : -errno;
		off += (int)w;
	}
	/* One byte at a time: nothing after the newline belongs to the handshake. */
	while (got < sizeof(line) - 1) {
		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
		ssize_t rd = read(fd, line + got, 1);

		if (rd < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (rd < 0)
			return errno == ECONNRESET ? -ECONNREFUSED : -errno;
		if (rd == 0)
			return -ECONNREFUSED;
		if (line[got] == '\n') {
			line[got] = 0;
			return strncmp(line, "OK ", 3) == 0 ? 0 : -ECONNREFUSED;
		}
		got++;
	}
	return -EPROTO;
}

static int guest_connect(struct guest *g, int *ret_fd)
{
	int64_t deadline = g->connect_ms < 0 ? -1 : now_ms() + g->connect_ms;
	int fd = -1, r;

	r = unix_connect(g->path, deadline, &fd);
	if (r < 0)
		return r;
	r = conn_add(g, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (g->kind == GUEST_KIND_VSOCK) {
		r = vsock_handshake(fd, g->port, deadline);
		if (r < 0) {
			conn_close(g, fd);
			return r;
		}
	}
	*ret_fd = fd;
	return 0;
}

/* Connects and sends one request frame. */
static int request(struct guest *g, uint8_t type, uint64_t id, const struct guest_buf *req,
		   int *ret_fd)
{
	int fd = -1, r;

	r = guest_connect(g, &fd);
	if (r < 0)
		return r;
	r = guest_frame__write(fd, type, id, req ? req->data : NULL, req ? req->len : 0, g->io_ms);
	if (r < 0) {
		conn_close(g, fd);
		return r == -EPIPE ? -ECONNRESET : r;
	}
	*ret_fd = fd;
	return 0;
}

/* The errno an ERROR frame carries, as a negative value. */
static int error_of(const struct guest_buf *pl)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len, e = 0;
	uint16_t tag;

	guest_tlv__init(&it, pl->data, pl->len);
	while (guest_tlv__next(&it, &tag, &val, &len) > 0)
		if (tag == GUEST_TAG_ERRNO && guest_tlv__u32(val, len, &e) < 0)
			return -EPROTO;
	if (e == 0 || e > 4095)
		return -EPROTO;
	return -(int)e;
}

/* Reads the next reply frame of request id; ERROR frames become their errno. */
static int reply(int fd, uint64_t id, int timeout_ms, struct guest_hdr *h, struct guest_buf *pl)
{
	int r = guest_frame__read(fd, h, pl, timeout_ms);

	if (r == -EPIPE)
		return -ECONNRESET;
	if (r < 0)
		return r == -EMSGSIZE || r == -EPROTONOSUPPORT ? -EPROTO : r;
	/* id 0: an error about the connection, sent before any request was read. */
	if (h->type == GUEST_MSG_ERROR && (h->id == id || h->id == 0))
		return error_of(pl);
	if (h->id != id)
		return -EPROTO;
	return 0;
}

/* For requests answered by a single OK frame. */
static int simple_call(struct guest *g, uint8_t type, const struct guest_buf *req,
		       struct guest_buf *ret_pl)
{
	uint64_t id = guest__new_id();
	struct guest_hdr h;
	int fd = -1, r;

	r = request(g, type, id, req, &fd);
	if (r < 0)
		return r;
	r = reply(fd, id, g->io_ms, &h, ret_pl);
	if (r == 0 && h.type != GUEST_MSG_OK)
		r = -EPROTO;
	conn_close(g, fd);
	return r;
}

int guest__ping(struct guest *g, uint32_t *ret_version)
{
	struct guest_buf pl = {0};
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len, v = 0;
	uint16_t tag;
	int r;

	r = simple_call(g, GUEST_MSG_PING, NULL, &pl);
	if (r < 0)
		goto out;
	guest_tlv__init(&it, pl.data, pl.len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0)
		if (tag == GUEST_TAG_VERSION && guest_tlv__u32(val, len, &v) < 0)
			r = -EPROTO;
	if (r == 0 && v == 0)
		r = -EPROTO;
	if (r == 0 && ret_version)
		*ret_version = v;
out:
	guest_buf__release(&pl);
	return r;
}

static int build_run(const struct guest_run_req *req, struct guest_buf *b)
{
	int r = 0;

	if (!req->argv || !req->argv[0])
		return -EINVAL;
	for (size_t i = 0; req->argv[i] && r == 0; i++)
		r = guest_buf__put_str(b, GUEST_TAG_ARG, req->argv[i]);
	for (size_t i = 0; req->envp && req->envp[i] && r == 0; i++)
		r = guest_buf__put_str(b, GUEST_TAG_ENV, req->envp[i]);
	if (r == 0 && req->cwd)
		r = guest_buf__put_str(b, GUEST_TAG_CWD, req->cwd);
	if (r == 0 && req->stdin_len)
		r = guest_buf__put_tlv(b, GUEST_TAG_STDIN, req->stdin_data, req->stdin_len);
	if (r == 0 && req->timeout_ms)
		r = guest_buf__put_u32(b, GUEST_TAG_TIMEOUT_MS, req->timeout_ms);
	return r;
}

static int parse_exit(const struct guest_buf *pl, struct guest_run_result *res)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len, code = UINT32_MAX, sig = 0, tmo = 0;
	uint16_t tag;
	int r;

	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		if (tag == GUEST_TAG_EXIT_CODE)
			r = guest_tlv__u32(val, len, &code);
		else if (tag == GUEST_TAG_EXIT_SIGNAL)
			r = guest_tlv__u32(val, len, &sig);
		else if (tag == GUEST_TAG_TIMED_OUT)
			r = guest_tlv__u32(val, len, &tmo);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if ((code == UINT32_MAX) == (sig == 0) || (code != UINT32_MAX && code > 255) || sig > 128)
		return -EPROTO;
	res->exit_code = code == UINT32_MAX ? -1 : (int)code;
	res->signal = (int)sig;
	res->timed_out = tmo != 0;
	return 0;
}

static int parse_u32_field(const struct guest_buf *pl, uint16_t want, uint32_t *ret)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len;
	uint16_t tag;
	int r, found = 0;

	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		if (tag != want)
			continue;
		r = guest_tlv__u32(val, len, ret);
		if (r < 0)
			return r;
		found = 1;
	}
	if (r < 0)
		return r;
	return found ? 0 : -EPROTO;
}

static int run_frame(const struct guest_hdr *h, const struct guest_buf *pl, uint64_t id,
		     const struct guest_run_cbs *cbs, void *opaque, struct guest_run_result *res)
{
	uint32_t pid;
	int r;

	switch (h->type) {
	case GUEST_MSG_STARTED:
		r = parse_u32_field(pl, GUEST_TAG_PID, &pid);
		if (r == 0 && cbs && cbs->started)
			cbs->started(opaque, id, pid);
		return r;
	case GUEST_MSG_STDOUT:
		return cbs && cbs->out && pl->len ? cbs->out(opaque, pl->data, pl->len) : 0;
	case GUEST_MSG_STDERR:
		return cbs && cbs->err && pl->len ? cbs->err(opaque, pl->data, pl->len) : 0;
	case GUEST_MSG_EXIT:
		r = parse_exit(pl, res);
		return r < 0 ? r : 1;
	default:
		return -EPROTO;
	}
}

int guest__run(struct guest *g, const struct guest_run_req *req, const struct guest_run_cbs *cbs,
	       void *opaque, struct guest_run_result *ret)
{
	struct guest_run_result res = {0};
	struct guest_buf b = {0};
	struct guest_hdr h;
	uint64_t id;
	int fd = -1, r, wait_ms;

	if (!g || !req)
		return -EINVAL;
	id = req->id ? req->id : guest__new_id();
	r = build_run(req, &b);
	if (r < 0)
		goto out;
	r = request(g, GUEST_MSG_RUN, id, &b, &fd);
	if (r < 0)
		goto out;
	wait_ms = -1;
	if (req->timeout_ms && g->io_ms >= 0)
		wait_ms = req->timeout_ms > (uint32_t)(INT32_MAX - g->io_ms)
				  ? -1
				  : (int)req->timeout_ms + g->io_ms;
	do {
		r = reply(fd, id, wait_ms, &h, &b);
		if (r == 0)
			r = run_frame(&h, &b, id, cbs, opaque, &res);
	} while (r == 0);
	if (r == 1) {
		r = 0;
		if (ret)
			*ret = res;
	}
out:
	if (fd >= 0)
		conn_close(g, fd);
	guest_buf__release(&b);
	return r;
}

int guest__read_file(struct guest *g, const char *path,
		     int (*cb)(void *opaque, const void *data, size_t len), void *opaque,
		     uint64_t *ret_size)
{
	struct guest_buf b = {0};
	struct guest_tlv_iter it;
	struct guest_hdr h;
	const uint8_t *val;
	uint64_t id = guest__new_id(), total = 0, size = UINT64_MAX;
	uint32_t len;
	uint16_t tag;
	int fd = -1, r;

	if (!path)
		return -EINVAL;
	r = guest_buf__put_str(&b, GUEST_TAG_PATH, path);
	if (r < 0)
		goto out;
	r = request(g, GUEST_MSG_READ, id, &b, &fd);
	while (r == 0) {
		r = reply(fd, id, g->io_ms, &h, &b);
		if (r < 0)
			break;
		if (h.type == GUEST_MSG_END)
			break;
		if (h.type != GUEST_MSG_DATA) {
			r = -EPROTO;
			break;
		}
		total += b.len;
		if (cb && b.len)
			r = cb(opaque, b.data, b.len);
	}
	if (r < 0)
		goto out;
	guest_tlv__init(&it, b.data, b.len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0)
		if (tag == GUEST_TAG_SIZE && guest_tlv__u64(val, len, &size) < 0)
			r = -EPROTO;
	if (r == 0 && size != total)
		r = -EPROTO; /* truncated or padded stream */
	if (r == 0 && ret_size)
		*ret_size = total;
out:
	if (fd >= 0)
		conn_close(g, fd);
	guest_buf__release(&b);
	return r;
}

struct membuf {
	uint8_t *data;
	size_t len, cap, max;
};

static int membuf_add(void *opaque, const void *data, size_t len)
{
	struct membuf *m = opaque;

	if (len > m->max - m->len)
		return -EFBIG;
	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *p;

		while (cap < m->len + len)
			cap *= 2;
		p = realloc(m->data, cap);
		if (!p)
			return -ENOMEM;
		m->data = p;
		m->cap = cap;
	}
	memcpy(m->data + m->len, data, len);
	m->len += len;
	return 0;
}

int guest__read_file_all(struct guest *g, const char *path, size_t max, void **ret_data,
			 size_t *ret_len)
{
	struct membuf m = {.max = max};
	int r;

	r = guest__read_file(g, path, membuf_add, &m, NULL);
	if (r == 0 && !m.data)
		m.data = malloc(1);
	if (r == 0 && !m.data)
		r = -ENOMEM;
	if (r < 0) {
		free(m.data);
		return r;
	}
	*ret_data = m.data;
	*ret_len = m.len;
	return 0;
}

/* Sends WRITE, then the DATA frames `next` produces (0 = EOF), then END. */
typedef ssize_t (*chunk_fn)(void *opaque, void *buf, size_t cap);

static int write_common(struct guest *g, const char *path, uint32_t mode, chunk_fn next,
			void *opaque)
{
	struct guest_buf b = {0};
	struct guest_hdr h;
	uint64_t id = guest__new_id();
	uint8_t *chunk = NULL;
	ssize_t n = 0;
	int fd = -1, r, wr = 0;

	if (!path || mode > 07777)
		return -EINVAL;
	chunk = malloc(GUEST_CHUNK);
	r = chunk ? 0 : -ENOMEM;
	if (r == 0)
		r = guest_buf__put_str(&b, GUEST_TAG_PATH, path);
	if (r == 0)
		r = guest_buf__put_u32(&b, GUEST_TAG_MODE, mode);
	if (r == 0)
		r = request(g, GUEST_MSG_WRITE, id, &b, &fd);
	if (r < 0)
		goto out;
	while (wr == 0 && (n = next(opaque, chunk, GUEST_CHUNK)) > 0)
		wr = guest_frame__write(fd, GUEST_MSG_DATA, id, chunk, (size_t)n, g->io_ms);
	if (n < 0) {
		r = (int)n; /* a local read error: the agent never renames the temp file */
		goto out;
	}
	if (wr == 0)
		wr = guest_frame__write(fd, GUEST_MSG_END, id, NULL, 0, g->io_ms);
	/* Even when sending failed, the agent may have said why before it hung up. */
	r = reply(fd, id, g->io_ms, &h, &b);
	if (r == 0 && h.type != GUEST_MSG_OK)
		r = -EPROTO;
	if (r == -ECONNRESET && wr < 0)
		r = wr;
out:
	if (fd >= 0)
		conn_close(g, fd);
	free(chunk);
	guest_buf__release(&b);
	return r;
}

struct memsrc {
	const uint8_t *p;
	size_t left;
};

static ssize_t memsrc_next(void *opaque, void *buf, size_t cap)
{
	struct memsrc *m = opaque;
	size_t n = m->left < cap ? m->left : cap;

	if (n)
		memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (ssize_t)n;
}

int guest__write_file(struct guest *g, const char *path, uint32_t mode, const void *data,
		      size_t len)
{
	struct memsrc m = {.p = data, .left = len};

	if (len && !data)
		return -EINVAL;
	return write_common(g, path, mode, memsrc_next, &m);
}

static ssize_t fdsrc_next(void *opaque, void *buf, size_t cap)
{
	int fd = *(int *)opaque;
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, (uint8_t *)buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int guest__write_file_fd(struct guest *g, const char *path, uint32_t mode, int fd)
{
	return write_common(g, path, mode, fdsrc_next, &fd);
}

static int parse_stat(const struct guest_buf *pl, struct guest_stat *st, char **ret_name)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint64_t mt = 0;
	uint32_t len;
	uint16_t tag;
	int r, seen = 0;

	*st = (struct guest_stat){0};
	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		if (tag == GUEST_TAG_FTYPE)
			r = guest_tlv__u32(val, len, &st->ftype);
		else if (tag == GUEST_TAG_MODE)
			r = guest_tlv__u32(val, len, &st->mode);
		else if (tag == GUEST_TAG_SIZE)
			r = guest_tlv__u64(val, len, &st->size);
		else if (tag == GUEST_TAG_MTIME_NS)
			r = guest_tlv__u64(val, len, &mt);
		else if (tag == GUEST_TAG_NAME && ret_name && !*ret_name)
			r = guest_tlv__str(val, len, ret_name);
		else
			continue;
		if (r < 0)
			return r;
		seen |= tag == GUEST_TAG_FTYPE;
	}
	if (r < 0)
		return r;
	st->mtime_ns = (int64_t)mt;
	if (!seen || st->ftype > GUEST_FT_SOCK || st->mode > 07777)
		return -EPROTO;
	if (ret_name && (!*ret_name || !**ret_name || strchr(*ret_name, '/')))
		return -EPROTO;
	return 0;
}

static int path_req(const char *path, struct guest_buf *b)
{
	if (!path)
		return -EINVAL;
	return guest_buf__put_str(b, GUEST_TAG_PATH, path);
}

int guest__stat(struct guest *g, const char *path, struct guest_stat *ret)
{
	struct guest_buf b = {0};
	struct guest_stat st;
	int r;

	r = path_req(path, &b);
	if (r == 0)
		r = simple_call(g, GUEST_MSG_STAT, &b, &b);
	if (r == 0)
		r = parse_stat(&b, &st, NULL);
	if (r == 0 && ret)
		*ret = st;
	guest_buf__release(&b);
	return r;
}

int guest__list(struct guest *g, const char *path,
		int (*cb)(void *opaque, const char *name, const struct guest_stat *st),
		void *opaque)
{
	struct guest_buf b = {0};
	struct guest_stat st;
	struct guest_hdr h;
	uint64_t id = guest__new_id();
	int fd = -1, r, count = 0;

	r = path_req(path, &b);
	if (r == 0)
		r = request(g, GUEST_MSG_LIST, id, &b, &fd);
	while (r == 0) {
		char *name = NULL;

		r = reply(fd, id, g->io_ms, &h, &b);
		if (r < 0 || h.type == GUEST_MSG_END)
			break;
		if (h.type != GUEST_MSG_ENTRY || count == INT32_MAX) {
			r = -EPROTO;
			break;
		}
		r = parse_stat(&b, &st, &name);
		if (r == 0 && cb)
			r = cb(opaque, name, &st);
		free(name);
		count++;
	}
	if (fd >= 0)
		conn_close(g, fd);
	guest_buf__release(&b);
	return r < 0 ? r : count;
}

int guest__kill(struct guest *g, uint64_t id, int sig)
{
	struct guest_buf b = {0};
	int r;

	if (id == 0 || sig <= 0 || sig >= 65)
		return -EINVAL;
	r = guest_buf__put_u64(&b, GUEST_TAG_TARGET, id);
	if (r == 0)
		r = guest_buf__put_u32(&b, GUEST_TAG_SIGNAL, (uint32_t)sig);
	if (r == 0)
		r = simple_call(g, GUEST_MSG_KILL, &b, &b);
	guest_buf__release(&b);
	return r;
}

int guest__shutdown(struct guest *g)
{
	struct guest_buf b = {0};
	int r = simple_call(g, GUEST_MSG_SHUTDOWN, NULL, &b);

	guest_buf__release(&b);
	return r;
}
