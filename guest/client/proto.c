/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto.c - the agent wire format: frame header codec, TLV payload builder and parser,
 * and blocking frame I/O with timeouts. Shared by nucleus-init and the host client.
 * Everything read from the wire is bounds-checked here before anyone else sees it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guest/guest.h"

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void guest_hdr__encode(const struct guest_hdr *h, uint8_t out[GUEST_HDR_SIZE])
{
	put_le16(out, GUEST_MAGIC);
	out[2] = h->version;
	out[3] = h->type;
	put_le32(out + 4, h->len);
	put_le64(out + 8, h->id);
}

int guest_hdr__decode(const uint8_t in[GUEST_HDR_SIZE], struct guest_hdr *ret)
{
	struct guest_hdr h;

	if (get_le16(in) != GUEST_MAGIC)
		return -EPROTO;
	h.version = in[2];
	h.type = in[3];
	h.len = get_le32(in + 4);
	h.id = get_le64(in + 8);
	if (h.version != GUEST_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h.len > GUEST_PAYLOAD_MAX)
		return -EMSGSIZE;
	*ret = h;
	return 0;
}

void guest_buf__release(struct guest_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int buf_reserve(struct guest_buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > GUEST_PAYLOAD_MAX || b->len > GUEST_PAYLOAD_MAX - extra)
		return -EMSGSIZE;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > GUEST_PAYLOAD_MAX)
		cap = GUEST_PAYLOAD_MAX;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int guest_buf__put(struct guest_buf *b, const void *data, size_t len)
{
	int r = buf_reserve(b, len);

	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int guest_buf__put_tlv(struct guest_buf *b, uint16_t tag, const void *val, size_t len)
{
	uint8_t th[GUEST_TLV_HDR_SIZE];
	int r;

	if (len > GUEST_PAYLOAD_MAX)
		return -EMSGSIZE;
	r = buf_reserve(b, GUEST_TLV_HDR_SIZE + len);
	if (r < 0)
		return r;
	put_le16(th, tag);
	put_le32(th + 2, (uint32_t)len);
	guest_buf__put(b, th, sizeof(th));
	return guest_buf__put(b, val, len);
}

int guest_buf__put_str(struct guest_buf *b, uint16_t tag, const char *s)
{
	return guest_buf__put_tlv(b, tag, s, strlen(s));
}

int guest_buf__put_u32(struct guest_buf *b, uint16_t tag, uint32_t v)
{
	uint8_t le[4];

	put_le32(le, v);
	return guest_buf__put_tlv(b, tag, le, sizeof(le));
}

int guest_buf__put_u64(struct guest_buf *b, uint16_t tag, uint64_t v)
{
	uint8_t le[8];

	put_le64(le, v);
	return guest_buf__put_tlv(b, tag, le, sizeof(le));
}

void guest_tlv__init(struct guest_tlv_iter *it, const void *payload, size_t len)
{
	it->p = payload;
	it->left = payload ? len : 0;
}

int guest_tlv__next(struct guest_tlv_iter *it, uint16_t *ret_tag, const uint8_t **ret_val,
		    uint32_t *ret_len)
{
	uint32_t len;

	if (it->left == 0)
		return 0;
	if (it->left < GUEST_TLV_HDR_SIZE)
		return -EPROTO;
	len = get_le32(it->p + 2);
	if (len > it->left - GUEST_TLV_HDR_SIZE)
		return -EPROTO;
	*ret_tag = get_le16(it->p);
	*ret_val = it->p + GUEST_TLV_HDR_SIZE;
	*ret_len = len;
	it->p += GUEST_TLV_HDR_SIZE + len;
	it->left -= GUEST_TLV_HDR_SIZE + len;
	return 1;
}

int guest_tlv__u32(const uint8_t *val, uint32_t len, uint32_t *ret)
{
	if (len != 4)
		return -EPROTO;
	*ret = get_le32(val);
	return 0;
}

int guest_tlv__u64(const uint8_t *val, uint32_t len, uint64_t *ret)
{
	if (len != 8)
		return -EPROTO;
	*ret = get_le64(val);
	return 0;
}

int guest_tlv__str(const uint8_t *val, uint32_t len, char **ret)
{
	char *s;

	if (memchr(val, 0, len))
		return -EPROTO;
	s = malloc((size_t)len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, val, len);
	s[len] = 0;
	*ret = s;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline (< 0: none) passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int timeout, r;

	for (;;) {
		timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		r = poll(&pfd, 1, timeout);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int write_all(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			int r = wait_fd(fd, POLLOUT, deadline);

			if (r < 0)
				return r;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; returns the count read before EOF (< len) or -errno. */
static ssize_t read_full(int fd, uint8_t *p, size_t len, int64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		int r = wait_fd(fd, POLLIN, deadline);

		if (r < 0)
			return r;
		ssize_t n = read(fd, p + got, len - got);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int guest_frame__write(int fd, uint8_t type, uint64_t id, const void *payload, size_t len,
		       int timeout_ms)
{
	struct guest_hdr h = {.version = GUEST_PROTO_VERSION, .type = type, .id = id};
	uint8_t raw[GUEST_HDR_SIZE];
	int64_t deadline = deadline_of(timeout_ms);
	int r;

	if (len > GUEST_PAYLOAD_MAX)
		return -EMSGSIZE;
	h.len = (uint32_t)len;
	guest_hdr__encode(&h, raw);
	r = write_all(fd, raw, sizeof(raw), deadline);
	if (r < 0 || !len)
		return r;
	return write_all(fd, payload, len, deadline);
}

int guest_frame__read(int fd, struct guest_hdr *ret_hdr, struct guest_buf *payload, int timeout_ms)
{
	uint8_t raw[GUEST_HDR_SIZE];
	int64_t deadline = deadline_of(timeout_ms);
	struct guest_hdr h;
	ssize_t n;
	int r;

	n = read_full(fd, raw, sizeof(raw), deadline);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -EPIPE;
	if ((size_t)n < sizeof(raw))
		return -ECONNRESET;
	r = guest_hdr__decode(raw, &h);
	if (r < 0)
		return r;
	payload->len = 0;
	r = buf_reserve(payload, h.len);
	if (r < 0)
		return r;
	n = read_full(fd, payload->data, h.len, deadline);
	if (n < 0)
		return (int)n;
	if ((size_t)n < h.len)
		return -ECONNRESET;
	payload->len = h.len;
	*ret_hdr = h;
	return 0;
}
