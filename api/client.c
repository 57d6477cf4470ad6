// SPDX-License-Identifier: Apache-2.0
/*
 * A small blocking HTTP/1.1 client over the daemon's Unix socket: one connection per
 * call (Connection: close), Content-Length or chunked responses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"

#define MAX_RESPONSE (64u << 20)

struct api_client {
	char path[108];
	int timeout_s;
};

int api_client__new(const char *socket_path, struct api_client **ret)
{
	struct api_client *c;
	char def[108];

	if (!socket_path)
		socket_path = api__default_socket(def, sizeof(def));
	if (strlen(socket_path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->path, sizeof(c->path), "%s", socket_path);
	c->timeout_s = 300;
	*ret = c;
	return 0;
}

void api_client__free(struct api_client *c)
{
	free(c);
}

void api_response__clear(struct api_response *r)
{
	if (!r)
		return;
	json_decref(r->json);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static int connect_to(const struct api_client *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = c->timeout_s};
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap + 1), *nb;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= MAX_RESPONSE) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = errno == EAGAIN ? -ETIMEDOUT : -errno;

			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Decodes a chunked body in place. */
static int unchunk(char *p, size_t len, size_t *ret_len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long n = strtoul(p + in, &end, 16);
		char *crlf = memmem(p + in, len - in, "\r\n", 2);

		if (!crlf || end == p + in)
			return -EBADMSG;
		in = (size_t)(crlf - p) + 2;
		if (n == 0)
			break;
		if (n > len - in || len - in - n < 2)
			return -EBADMSG;
		memmove(p + out, p + in, n);
		out += n;
		in += n + 2;
	}
	p[out] = '\0';
	*ret_len = out;
	return 0;
}

static const char *find_header(const char *head, const char *name)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		if (strncasecmp(l + 2, name, n) == 0 && l[2 + n] == ':')
			return l + 3 + n + strspn(l + 3 + n, " \t");
	}
	return NULL;
}

static int parse_response(char *buf, size_t len, struct api_response *ret)
{
	char *sep = memmem(buf, len, "\r\n\r\n", 4), *body;
	const char *te, *cl;
	size_t blen;
	int status, r;

	if (!sep || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -EBADMSG;
	*sep = '\0';
	body = sep + 4;
	blen = len - (size_t)(body - buf);
	te = find_header(buf, "Transfer-Encoding");
	cl = find_header(buf, "Content-Length");
	if (te && strncasecmp(te, "chunked", 7) == 0) {
		r = unchunk(body, blen, &blen);
		if (r < 0)
			return r;
	} else if (cl) {
		size_t want = strtoul(cl, NULL, 10);

		if (want > blen)
			return -EBADMSG;
		blen = want;
	}
	ret->status = status;
	ret->body = strndup(body, blen);
	if (!ret->body)
		return -ENOMEM;
	ret->len = blen;
	ret->json = json_loadb(ret->body, blen, 0, NULL);
	return 0;
}

/* Connects and sends the request; returns the connected fd. */
static int send_request(struct api_client *c, const char *method, const char *path, json_t *body)
{
	char *text = NULL, *head = NULL;
	int fd, r, n;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
	}
	n = asprintf(&head,
		     "%s %s HTTP/1.1\r\nHost: nucleusd\r\nConnection: close\r\n"
		     "%sContent-Length: %zu\r\n\r\n",
		     method, path, text ? "Content-Type: application/json\r\n" : "",
		     text ? strlen(text) : 0);
	if (n < 0) {
		free(text);
		return -ENOMEM;
	}
	fd = connect_to(c);
	r = fd < 0 ? fd : send_all(fd, head, strlen(head));
	if (r == 0 && text)
		r = send_all(fd, text, strlen(text));
	if (r < 0 && fd >= 0)
		close(fd);
	free(head);
	free(text);
	return r < 0 ? r : fd;
}

int api_client__call(struct api_client *c, const char *method, const char *path, json_t *body,
		     struct api_response *ret)
{
	struct api_response resp = {0};
	char *in = NULL;
	size_t inlen = 0;
	int fd, r;

	fd = send_request(c, method, path, body);
	if (fd < 0)
		return fd;
	r = recv_all(fd, &in, &inlen);
	close(fd);
	if (r == 0)
		r = parse_response(in, inlen, &resp);
	if (r == 0)
		*ret = resp;
	else
		api_response__clear(&resp);
	free(in);
	return r;
}

/* ---- streamed replies ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 8192;
		char *np;

		while (cap < b->len + len + 1)
			cap *= 2;
		if (cap > MAX_RESPONSE)
			return -EFBIG;
		np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->p[b->len] = '\0';
}

struct ndjson {
	struct buf raw;	 /* received, not yet de-chunked */
	struct buf line; /* de-chunked, not yet a whole line */
	size_t left;	 /* data bytes left in the current chunk */
	bool crlf;	 /* a chunk's data ended: its CRLF is next */
	bool done;	 /* the last chunk came */
	api_line_fn fn;
	void *arg;
};

static int ndjson_lines(struct ndjson *s)
{
	char *nl;

	while ((nl = memchr(s->line.p, '\n', s->line.len))) {
		size_t n = (size_t)(nl - s->line.p);
		json_t *o = json_loadb(s->line.p, n, 0, NULL);
		int r = o ? s->fn(s->arg, o) : -EBADMSG;

		json_decref(o);
		if (r < 0)
			return r;
		buf_drop(&s->line, n + 1);
	}
	return 0;
}

/* Consumes what it can of s->raw. */
static int ndjson_feed(struct ndjson *s)
{
	while (!s->done && s->raw.len) {
		if (s->crlf) {
			if (s->raw.len < 2)
				return 0;
			if (memcmp(s->raw.p, "\r\n", 2) != 0)
				return -EBADMSG;
			buf_drop(&s->raw, 2);
			s->crlf = false;
		} else if (s->left == 0) {
			char *crlf = memmem(s->raw.p, s->raw.len, "\r\n", 2), *end;
			unsigned long n;

			if (!crlf)
				return s->raw.len > 64 ? -EBADMSG : 0;
			n = strtoul(s->raw.p, &end, 16);
			if (end == s->raw.p || n > MAX_RESPONSE)
				return -EBADMSG;
			buf_drop(&s->raw, (size_t)(crlf - s->raw.p) + 2);
			s->left = n;
			s->done = n == 0;
		} else {
			size_t k = s->left < s->raw.len ? s->left : s->raw.len;
			int r = buf_add(&s->line, s->raw.p, k);

			if (r < 0)
				return r;
			buf_drop(&s->raw, k);
			s->left -= k;
			s->crlf = s->left == 0;
			r = ndjson_lines(s);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int recv_some(int fd, struct buf *b)
{
	char tmp[16384];
	ssize_t n;

	do
		n = recv(fd, tmp, sizeof(tmp), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return 0;
	return buf_add(b, tmp, (size_t)n) < 0 ? -ENOMEM : (int)n;
}

/* A whole reply after all (not a 200 stream): the rest until close, then parsed. */
static int whole_reply(int fd, struct buf *b, struct api_response *ret)
{
	struct api_response resp = {0};
	int r;

	while ((r = recv_some(fd, b)) > 0)
		;
	if (r == 0)
		r = parse_response(b->p, b->len, &resp);
	if (r == 0)
		*ret = resp;
	else
		api_response__clear(&resp);
	return r;
}

static int stream_reply(int fd, struct ndjson *s, struct api_response *ret)
{
	int r = ndjson_feed(s);

	while (r == 0 && !s->done) {
		r = recv_some(fd, &s->raw);
		if (r == 0)
			r = -ECONNRESET; /* closed before the last chunk */
		else if (r > 0)
			r = ndjson_feed(s);
	}
	if (r == 0 && s->line.len)
		r = -EBADMSG; /* a last line without its newline */
	if (r == 0) {
		ret->status = 200;
		ret->body = strdup("");
		r = ret->body ? 0 : -ENOMEM;
	}
	return r;
}

int api_client__stream(struct api_client *c, const char *method, const char *path, json_t *body,
		       api_line_fn line, void *arg, struct api_response *ret)
{
	struct ndjson s = {.fn = line, .arg = arg};
	char *sep = NULL;
	const char *te;
	int fd, r = 0, status = 0;

	fd = send_request(c, method, path, body);
	if (fd < 0)
		return fd;
	while (r >= 0 && !(sep = s.raw.p ? strstr(s.raw.p, "\r\n\r\n") : NULL)) {
		r = recv_some(fd, &s.raw);
		if (r == 0)
			r = -EBADMSG;
	}
	if (r < 0)
		goto out;
	*sep = '\0';
	te = find_header(s.raw.p, "Transfer-Encoding");
	if (sscanf(s.raw.p, "HTTP/1.%*d %d", &status) != 1 || status != 200 || !te ||
	    strncasecmp(te, "chunked", 7) != 0) {
		*sep = '\r';
		r = whole_reply(fd, &s.raw, ret);
		goto out;
	}
	buf_drop(&s.raw, (size_t)(sep - s.raw.p) + 4);
	r = stream_reply(fd, &s, ret);
out:
	close(fd);
	free(s.raw.p);
	free(s.line.p);
	return r;
}

int api_client__budget(struct api_client *c, const char *ref, struct api_response *ret)
{
	char path[256];

	/* Ids and names are [A-Za-z0-9_.-]: nothing to escape, refuse the rest. */
	if (!ref || !*ref ||
	    strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789_.-") != strlen(ref) ||
	    snprintf(path, sizeof(path), "/v1/sandboxes/%s/budget", ref) >= (int)sizeof(path))
		return -EINVAL;
	return api_client__call(c, "GET", path, NULL, ret);
}
