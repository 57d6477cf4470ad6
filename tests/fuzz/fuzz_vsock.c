// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the userspace virtio-vsock device (vmm/virtio-vsock.c): a hostile guest
 * fills the tx queue with packets (any header fields, any op, payload lengths that may
 * lie, chains split anywhere or indirect) and gives rx buffers of any size, while host
 * programs connect through the device's Unix socket ("CONNECT <port>"), are connected
 * to by the guest (listeners at "<uds>_<port>"), write, read and hang up.
 *
 * Input: [0] bit 0 EVENT_IDX; then operations, each an op byte and its arguments:
 *   0 tx packet {flags, op, dst, src, len le16, credit} + payload: flags 1 wrong src_cid,
 *     2 another dst_cid, 4 type 2, 8 a junk fwd_cnt, 16 a header len that lies, bits 5-6
 *     the chain's shape (one buffer, header + payload, three parts, indirect)
 *   1 rx buffers {count, size}     2 kick both queues and run the event loop
 *   3 host CONNECT {port}          4 host write {socket, len} + bytes
 *   5 host close/shutdown {socket} 6 driver reset and init again   7 host reads
 *
 * Invariants: every rx packet has the host's cid as source, the guest's as destination,
 * type stream, a known op, no payload unless RW, buf_alloc 64 KiB, a used length of
 * header + payload within its buffer; what the guest gets on a connection never exceeds
 * the credit it advertised; on a connection the guest opened once, the bytes a host peer
 * reads are a prefix of what the guest sent, and the bytes the guest gets a prefix of
 * what the peer wrote; at most one guest fault; freeing the device leaves no fd, no
 * event-loop entry and no socket file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "tests/fuzz/fuzz_drv.h"
#include "tests/fuzz/fuzz_vm.h"

#define RAM	  (512u << 10)
#define QSIZE	  64
#define GUEST_CID 3
#define NLISTEN	  4
#define PORT0	  1024
#define MAX_SOCKS 16
#define MAX_PAIRS 32
#define LOG_MAX	  (96u << 10)
#define HDR	  ((uint32_t)sizeof(struct virtio_vsock_hdr))

struct blog {
	uint8_t *p;
	uint32_t len;
};

struct sock {
	int fd;
	bool client;	/* connected to the device's socket (else accepted from a listener) */
	bool junk_line; /* its CONNECT line was malformed: what it writes is not all data */
	int pair;	/* -1: unknown */
	struct blog wrote, got;
};

struct pair {
	uint32_t hport, gport;
	int nreq;
	bool rw_before_req, junk_credit;
	uint64_t max_credit;	/* largest fwd_cnt + buf_alloc the guest advertised */
	struct blog sent, recv; /* guest -> host payloads, host -> guest payloads */
};

static char dir[72], uds[80];
static int listeners[NLISTEN];
static struct {
	struct vm *vm;
	struct virtio_dev *dev;
	struct fz_drv d;
	struct sock socks[MAX_SOCKS];
	int nsocks, nclients;
	struct pair pairs[MAX_PAIRS];
	int npairs;
	uint64_t rxbuf_gpa[QSIZE];
	uint32_t rxbuf_len[QSIZE];
	int rx_out; /* rx buffers the device holds */
	bool event_idx;
} fz;

static void blog_add(struct blog *b, const void *p, size_t n)
{
	if (!b->p)
		b->p = malloc(LOG_MAX);
	if (n > LOG_MAX - b->len)
		n = LOG_MAX - b->len;
	memcpy(b->p + b->len, p, n);
	b->len += (uint32_t)n;
}

static void blog_free(struct blog *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static bool is_prefix(const struct blog *a, const struct blog *of)
{
	return a->len <= of->len && (!a->len || memcmp(a->p, of->p, a->len) == 0);
}

static int setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (snprintf(dir, sizeof(dir), "%s/nucleus-fuzz-vsock-%d",
		     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		     (int)getpid()) >= (int)sizeof(dir))
		abort(); /* $TMPDIR too long for socket paths */
	mkdir(dir, 0700);
	snprintf(uds, sizeof(uds), "%s/v", dir);
	for (int i = 0; i < NLISTEN; i++) {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%d", uds, PORT0 + i);
		unlink(sa.sun_path);
		listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (listeners[i] < 0 ||
		    bind(listeners[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(listeners[i], 64) < 0)
			abort();
	}
	return 0;
}

static struct pair *pair_of(uint32_t hport, uint32_t gport)
{
	for (int i = 0; i < fz.npairs; i++)
		if (fz.pairs[i].hport == hport && fz.pairs[i].gport == gport)
			return &fz.pairs[i];
	if (fz.npairs == MAX_PAIRS)
		return NULL;
	fz.pairs[fz.npairs] = (struct pair){.hport = hport, .gport = gport};
	return &fz.pairs[fz.npairs++];
}

static void give_rx(uint32_t count, uint32_t size)
{
	for (uint32_t i = 0; i < count && fz.rx_out < QSIZE; i++) {
		struct fz_buf b = {.len = size, .write = true};
		int head;

		b.gpa = fz_drv__alloc(&fz.d, size);
		head = fz_drv__add(&fz.d, 0, &b, 1, false);
		fz.rxbuf_gpa[head] = b.gpa;
		fz.rxbuf_len[head] = size;
		fz.rx_out++;
	}
}

static void check_rx(void)
{
	uint32_t id, len;

	while (fz_drv__used(&fz.d, 0, &id, &len)) {
		struct virtio_vsock_hdr h;
		struct pair *p;

		FZ_CHECK(id < QSIZE && fz.rxbuf_len[id], "rx used id %u was not given", id);
		fz.rx_out--;
		FZ_CHECK(len >= HDR && len <= fz.rxbuf_len[id],
			 "rx used len %u of a %u-byte buffer", len, fz.rxbuf_len[id]);
		memcpy(&h, fz.d.ram + fz.rxbuf_gpa[id], HDR);
		fz.rxbuf_len[id] = 0;
		/* an RST for a packet to another cid comes from that cid */
		FZ_CHECK((h.src_cid == 2 || h.op == VIRTIO_VSOCK_OP_RST) &&
				 h.dst_cid == GUEST_CID && h.type == VIRTIO_VSOCK_TYPE_STREAM,
			 "rx packet cid %llu -> %llu type %u", (unsigned long long)h.src_cid,
			 (unsigned long long)h.dst_cid, h.type);
		FZ_CHECK(h.op >= VIRTIO_VSOCK_OP_REQUEST && h.op <= VIRTIO_VSOCK_OP_CREDIT_UPDATE,
			 "rx op %u", h.op);
		FZ_CHECK(len == HDR + h.len, "rx used len %u for a packet of %u payload bytes", len,
			 h.len);
		if (h.op != VIRTIO_VSOCK_OP_RW)
			FZ_CHECK(h.len == 0, "rx op %u with %u payload bytes", h.op, h.len);
		else
			FZ_CHECK(h.len > 0 && h.len <= 64 * 1024, "rx RW of %u bytes", h.len);
		if (h.op != VIRTIO_VSOCK_OP_RST)
			FZ_CHECK(h.buf_alloc == 64 * 1024, "rx buf_alloc %u", h.buf_alloc);
		if (h.op == VIRTIO_VSOCK_OP_SHUTDOWN)
			FZ_CHECK(h.flags == VIRTIO_VSOCK_SHUTDOWN_SEND, "rx shutdown flags 0x%x",
				 h.flags);
		p = pair_of(h.src_port, h.dst_port);
		if (!p)
			continue;
		if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
			/* only one host client ever: the request is its */
			for (int i = 0; i < fz.nsocks && fz.nclients == 1; i++)
				if (fz.socks[i].client && fz.socks[i].pair < 0 &&
				    !fz.socks[i].junk_line)
					fz.socks[i].pair = (int)(p - fz.pairs);
		}
		if (h.op == VIRTIO_VSOCK_OP_RW) {
			blog_add(&p->recv, fz.d.ram + fz.rxbuf_gpa[id] + HDR, h.len);
			if (!p->junk_credit)
				FZ_CHECK(p->recv.len <= p->max_credit,
					 "port %u->%u: %u bytes sent to the guest, credit %llu",
					 p->hport, p->gport, p->recv.len,
					 (unsigned long long)p->max_credit);
		}
	}
}

static void host_accept(void)
{
	for (int l = 0; l < NLISTEN; l++) {
		int fd;

		while ((fd = accept4(listeners[l], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
		       0) {
			struct sock *s;
			int only = -1, n = 0;

			if (fz.nsocks == MAX_SOCKS) {
				close(fd);
				continue;
			}
			for (int i = 0; i < fz.npairs; i++)
				if (fz.pairs[i].hport == (uint32_t)(PORT0 + l) && fz.pairs[i].nreq)
					n++, only = i;
			s = &fz.socks[fz.nsocks++];
			*s = (struct sock){.fd = fd, .pair = n == 1 ? only : -1};
		}
	}
}

static void host_read(void)
{
	uint8_t buf[4096];

	for (int i = 0; i < fz.nsocks; i++) {
		ssize_t n;

		while (fz.socks[i].fd >= 0 &&
		       (n = recv(fz.socks[i].fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			blog_add(&fz.socks[i].got, buf, (size_t)n);
	}
}

static void check_streams(void)
{
	for (int i = 0; i < fz.nsocks; i++) {
		struct sock *s = &fz.socks[i];
		struct pair *p = s->pair >= 0 ? &fz.pairs[s->pair] : NULL;

		if (!p || p->nreq != 1 || p->rw_before_req)
			continue;
		if (!s->client)
			FZ_CHECK(is_prefix(&s->got, &p->sent),
				 "port %u<-%u: the host read %u bytes that the guest did not send "
				 "in that order (sent %u)",
				 p->hport, p->gport, s->got.len, p->sent.len);
		FZ_CHECK(is_prefix(&p->recv, &s->wrote),
			 "port %u->%u: the guest got %u bytes that the host did not write in that "
			 "order (wrote %u)",
			 p->hport, p->gport, p->recv.len, s->wrote.len);
	}
}

static void run(void)
{
	fz_drv__kick(&fz.d, 1);
	fz_drv__kick(&fz.d, 0);
	fz_vm__run(fz.vm);
	host_accept();
	check_rx();
	fz_vm__irqs(fz.vm);
}

static size_t tx_packet(const uint8_t *a, size_t left)
{
	struct virtio_vsock_hdr h = {0};
	struct fz_buf b[3];
	uint32_t plen, flags = a[0], shape = (flags >> 5) & 3;
	uint64_t g;
	struct pair *p;
	int n;

	plen = a[4] | a[5] << 8;
	if (plen > left - 7)
		plen = (uint32_t)(left - 7);
	h.src_cid = flags & 1 ? GUEST_CID + 1 + a[6] : GUEST_CID;
	h.dst_cid = flags & 2 ? GUEST_CID : 2;
	h.type = flags & 4 ? 2 : VIRTIO_VSOCK_TYPE_STREAM;
	h.op = a[1] & 7;
	h.dst_port = a[2] & 0x80 ? 0x40000000u + (a[2] & 7) : PORT0 + (a[2] & 7);
	h.src_port = 5000 + (a[3] & 7);
	h.len = flags & 16 ? plen ^ (1u << (a[6] & 31)) : plen;
	h.flags = a[6] & 3;
	h.buf_alloc = (uint32_t)(a[6] >> 2) << 12;
	p = pair_of(h.dst_port, h.src_port);
	h.fwd_cnt = p ? p->recv.len : 0;
	if (flags & 8)
		h.fwd_cnt = 0xfffff000u + a[6];
	if (p && !(flags & 3) && h.type == VIRTIO_VSOCK_TYPE_STREAM) {
		if (h.op == VIRTIO_VSOCK_OP_REQUEST)
			p->nreq++;
		if (h.op == VIRTIO_VSOCK_OP_RW && !p->nreq)
			p->rw_before_req = true;
		if (flags & 8)
			p->junk_credit = true;
		if (h.op != VIRTIO_VSOCK_OP_RST &&
		    (uint64_t)h.fwd_cnt + h.buf_alloc > p->max_credit)
			p->max_credit = (uint64_t)h.fwd_cnt + h.buf_alloc;
		if (h.op == VIRTIO_VSOCK_OP_RW && !(flags & 16))
			blog_add(&p->sent, a + 7, plen);
	}
	g = fz_drv__alloc(&fz.d, HDR + plen);
	memcpy(fz.d.ram + g, &h, HDR);
	memcpy(fz.d.ram + g + HDR, a + 7, plen);
	switch (shape) {
	case 0:
		b[0] = (struct fz_buf){g, HDR + plen, false};
		n = 1;
		break;
	case 1:
	case 3:
		b[0] = (struct fz_buf){g, HDR, false};
		b[1] = (struct fz_buf){g + HDR, plen, false};
		n = 2;
		break;
	default:
		b[0] = (struct fz_buf){g, HDR / 2, false};
		b[1] = (struct fz_buf){g + HDR / 2, HDR / 2 + plen / 2, false};
		b[2] = (struct fz_buf){g + HDR + plen / 2, plen - plen / 2, false};
		n = 3;
		break;
	}
	fz_drv__add(&fz.d, 1, b, n, shape == 3);
	return 7 + plen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	size_t pos = 1;
	int fd0, r;

	if (!ready)
		ready = setup() == 0;
	if (size < 1)
		return 0;
	memset(&fz, 0, sizeof(fz));
	fd0 = fz_lowest_fd();
	fz.vm = fz_vm__new(RAM);
	r = virtio_vsock__create(fz.vm, GUEST_CID, uds, &fz.dev);
	FZ_CHECK(r == 0, "virtio_vsock__create: %d", r);
	fz.event_idx = data[0] & 1;
	FZ_CHECK(fz_drv__init(&fz.d, fz.vm, fz.dev,
			      fz.event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0, 3, QSIZE) == 0,
		 "the device refused the driver");
	give_rx(8, 4096);

	while (pos < size && fz_vm__faults(fz.vm) == 0) {
		const uint8_t *a = data + pos + 1;
		size_t left = size - pos - 1;

		switch (data[pos] & 7) {
		case 0:
			if (left < 7)
				goto done;
			pos += 1 + tx_packet(a, left);
			continue;
		case 1:
			if (left < 2)
				goto done;
			give_rx(1 + a[0] % 8, a[1] < 8 ? HDR + a[1] : (uint32_t)a[1] * 64);
			pos += 3;
			continue;
		case 2:
			run();
			pos++;
			continue;
		case 3: {
			struct sockaddr_un sa = {.sun_family = AF_UNIX};
			char line[40];
			int fd, len;

			if (left < 1)
				goto done;
			pos += 2;
			if (fz.nsocks == MAX_SOCKS)
				continue;
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			strcpy(sa.sun_path, uds);
			if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			if (a[0] & 0x80)
				len = snprintf(line, sizeof(line), "CONNECT %u%s",
					       5000 + (a[0] & 7), a[0] & 0x40 ? "x\n" : "");
			else
				len = snprintf(line, sizeof(line), "CONNECT %u\n",
					       5000 + (a[0] & 7));
			if (send(fd, line, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				/* the device may have refused it already */
			}
			fz.socks[fz.nsocks++] = (struct sock){
				.fd = fd, .client = true, .junk_line = a[0] & 0x80, .pair = -1};
			fz.nclients++;
			continue;
		}
		case 4: {
			uint32_t n;
			struct sock *s;

			if (left < 2)
				goto done;
			n = a[1];
			if (n > left - 2)
				n = (uint32_t)(left - 2);
			pos += 3 + n;
			if (!fz.nsocks)
				continue;
			s = &fz.socks[a[0] % fz.nsocks];
			if (s->fd >= 0) {
				ssize_t w = send(s->fd, a + 2, n, MSG_DONTWAIT | MSG_NOSIGNAL);

				if (w > 0)
					blog_add(&s->wrote, a + 2, (size_t)w);
			}
			continue;
		}
		case 5: {
			struct sock *s;

			if (left < 1)
				goto done;
			pos += 2;
			if (!fz.nsocks)
				continue;
			s = &fz.socks[a[0] % fz.nsocks];
			if (s->fd < 0)
				continue;
			if (a[0] & 0x80) {
				shutdown(s->fd, SHUT_WR);
			} else {
				close(s->fd);
				s->fd = -1;
			}
			continue;
		}
		case 6:
			fz_drv__init(&fz.d, fz.vm, fz.dev,
				     fz.event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0, 3, QSIZE);
			memset(fz.rxbuf_len, 0, sizeof(fz.rxbuf_len));
			fz.rx_out = 0;
			for (int i = 0; i < fz.npairs; i++)
				fz.pairs[i].nreq +=
					2; /* what the guest gets after this is no prefix */
			fz_vm__run(fz.vm);
			give_rx(4, 4096);
			pos++;
			continue;
		default:
			host_read();
			pos++;
			continue;
		}
	}
done:
	run();
	host_read();
	run();
	host_read();
	FZ_CHECK(fz_vm__faults(fz.vm) <= 1, "%d guest faults", fz_vm__faults(fz.vm));
	check_streams();
	virtio_dev__free(fz.dev);
	FZ_CHECK(fz_vm__ev_count(fz.vm) == 0, "%d event-loop fds left", fz_vm__ev_count(fz.vm));
	FZ_CHECK(access(uds, F_OK) != 0, "the device's socket file is left behind");
	for (int i = 0; i < fz.nsocks; i++) {
		if (fz.socks[i].fd >= 0)
			close(fz.socks[i].fd);
		blog_free(&fz.socks[i].wrote);
		blog_free(&fz.socks[i].got);
	}
	for (int i = 0; i < fz.npairs; i++) {
		blog_free(&fz.pairs[i].sent);
		blog_free(&fz.pairs[i].recv);
	}
	for (int l = 0; l < NLISTEN; l++) {
		int fd;

		while ((fd = accept4(listeners[l], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	FZ_CHECK(fz_lowest_fd() == fd0, "fds leaked (lowest free %d, was %d)", fz_lowest_fd(), fd0);
	fz_vm__free(fz.vm);
	return 0;
}
