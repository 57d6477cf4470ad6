// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-vsock.c - userspace virtio-vsock device with a Unix-socket host side.
 *
 * Why userspace and not vhost-vsock: the host side must be a Unix socket per VM (the
 * daemon talks to each VM's agent without AF_VSOCK or host CID management), vhost-vsock
 * needs /dev/vhost-vsock and a host-global CID, and the traffic (agent requests and
 * command output) is small enough for one event-loop thread.
 *
 * Host side: a listener at uds_path. A client writes "CONNECT <port>\n"; we send the
 * guest an OP_REQUEST from a fresh host port and answer "OK <hostport>\n" once the guest
 * sent OP_RESPONSE (an RST closes the client). A guest OP_REQUEST to host port P
 * connects to "<uds_path>_P" (absent or refusing: RST).
 *
 * Flow control, both ways, never unbounded buffering:
 *   guest -> host: we advertise VSOCK_BUF_ALLOC per connection and buffer at most that
 *     much for a slow Unix peer; fwd_cnt counts what the peer took. The guest cannot
 *     send beyond that credit (a guest that does is faulted), so a slow peer stalls the
 *     guest's sender, not the tx queue.
 *   host -> guest: we read from the Unix socket straight into guest rx buffers, never
 *     more than the guest's credit (buf_alloc - (tx_cnt - fwd_cnt)); with no credit or
 *     no rx buffers we stop polling the socket, so the host writer blocks.
 *
 * All of it runs on the event-loop thread with dev->lock held; the transport reset
 * (vCPU thread) only flags the connections for closing on the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "vmm/virtio.h"
#include "vmm/vm-internal.h"

#define VSOCK_QUEUE_SIZE 256
#define VSOCK_MAX_CONNS	 64
#define VSOCK_BUF_ALLOC	 (64U * 1024) /* guest -> host bytes buffered per connection */
#define VSOCK_MAX_PKT	 (64U * 1024) /* largest payload in one packet, either way */
#define VSOCK_RST_RING	 128
#define VSOCK_HOST_CID	 2
#define VSOCK_PORT_BASE	 0x40000000U /* host ports for host-initiated connections */
#define VSOCK_CMD_MAX	 32
#define VSOCK_BATCH	 256
#define HDR_LEN		 ((uint32_t)sizeof(struct virtio_vsock_hdr))

enum { RXQ = 0, TXQ = 1, EVQ = 2 };

enum conn_state {
	C_FREE,
	C_HOST_CMD,   /* host client connected, its CONNECT line not read yet */
	C_CONNECTING, /* host-initiated: OP_REQUEST queued or sent, waiting for the guest */
	C_ESTABLISHED,
};

/* Control packets a connection owes the guest. */
enum {
	P_REQUEST = 1,
	P_RESPONSE = 2,
	P_CREDIT = 4,
	P_SHUTDOWN = 8,
};

struct vsock;

struct vconn {
	struct vsock *vs;
	enum conn_state state;
	int fd;
	bool in_ev;
	uint32_t ev_mask;
	uint32_t local_port, peer_port;
	uint32_t pending;
	bool request_sent;
	bool readable;	    /* socket may have data; not polled for EPOLLIN meanwhile */
	bool host_eof, hup; /* peer stopped writing / is gone */
	bool guest_shut_rcv, guest_shut_send, wr_shut;
	/* host -> guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* guest -> host */
	uint32_t rx_cnt, fwd_cnt, last_fwd_sent;
	uint8_t *buf; /* ring of VSOCK_BUF_ALLOC bytes, allocated on first need */
	uint32_t head, len;
	char cmd[VSOCK_CMD_MAX]; /* C_HOST_CMD: the start of the CONNECT line read so far */
	uint32_t cmd_len;
};

struct rst_entry {
	uint64_t src_cid;
	uint32_t src_port, dst_port;
};

struct vsock {
	struct virtio_dev *dev;
	uint64_t cid;
	char *uds_path;
	int listen_fd, reset_fd;
	int spare_fd; /* a placeholder fd, given up to shed a connection when out of fds */
	bool listen_ev, reset_ev, reset_pending;
	uint32_t next_port, rr;
	struct vconn conns[VSOCK_MAX_CONNS];
	struct rst_entry rst[VSOCK_RST_RING];
	uint32_t rst_head, rst_len;
	struct virtq_req req;
	struct iovec iov[VIRTQ_MAX_SEGS];
};

static struct vm *vs_vm(struct vsock *vs)
{
	return vs->dev->vm;
}

/* The spare fd: an eventfd, which the event loop's seccomp list lets it remake (it
 * opens no file). < 0: no shedding, no spin fix. */
static int spare_open(void)
{
	return eventfd(0, EFD_CLOEXEC);
}

/* ---- connections ---- */

static void queue_rst(struct vsock *vs, uint64_t src_cid, uint32_t src_port, uint32_t dst_port)
{
	struct rst_entry *e;

	if (vs->rst_len == VSOCK_RST_RING)
		return; /* the guest does not take rx buffers: drop, stay bounded */
	e = &vs->rst[(vs->rst_head + vs->rst_len++) % VSOCK_RST_RING];
	e->src_cid = src_cid;
	e->src_port = src_port;
	e->dst_port = dst_port;
}

static void conn_close(struct vconn *c, bool rst)
{
	struct vsock *vs = c->vs;

	if (rst && (c->state == C_ESTABLISHED || (c->state == C_CONNECTING && c->request_sent)))
		queue_rst(vs, VSOCK_HOST_CID, c->local_port, c->peer_port);
	if (c->in_ev)
		vm__ev_del(vs_vm(vs), c->fd);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->vs = vs;
	c->fd = -1;
}

static struct vconn *conn_alloc(struct vsock *vs)
{
	uint32_t i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++)
		if (vs->conns[i].state == C_FREE)
			return &vs->conns[i];
	return NULL;
}

static struct vconn *conn_find(struct vsock *vs, uint32_t local_port, uint32_t peer_port)
{
	uint32_t i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vconn *c = &vs->conns[i];

		if (c->state >= C_CONNECTING && c->local_port == local_port &&
		    c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

static bool port_in_use(struct vsock *vs, uint32_t port)
{
	uint32_t i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++)
		if (vs->conns[i].state >= C_CONNECTING && vs->conns[i].local_port == port)
			return true;
	return false;
}

static uint32_t peer_credit(const struct vconn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void conn_update_ev(struct vconn *c)
{
	uint32_t want = 0;

	if (c->state == C_FREE || c->hup)
		return;
	if (c->state == C_HOST_CMD)
		want |= EPOLLIN;
	if (c->state == C_ESTABLISHED && !c->readable && !c->host_eof && !c->guest_shut_rcv)
		want |= EPOLLIN;
	if (c->len > 0)
		want |= EPOLLOUT;
	if (c->in_ev && want != c->ev_mask && vm__ev_mod(vs_vm(c->vs), c->fd, want) == 0)
		c->ev_mask = want;
}

/* Both directions are finished (or the guest asked for a full close): RST and free. */
static void conn_maybe_finish(struct vconn *c)
{
	if (c->state != C_ESTABLISHED || c->len > 0)
		return;
	if (c->guest_shut_send && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	if ((c->guest_shut_send && c->guest_shut_rcv) || (c->guest_shut_send && c->host_eof))
		conn_close(c, true);
}

static void credit_check(struct vconn *c)
{
	if (c->fwd_cnt - c->last_fwd_sent >= VSOCK_BUF_ALLOC / 2)
		c->pending |= P_CREDIT;
}

/* Writes buffered guest data to the Unix socket. Returns -1 if the connection closed. */
static int conn_flush(struct vconn *c)
{
	while (c->len > 0) {
		struct iovec iov[2];
		struct msghdr msg = {.msg_iov = iov};
		uint32_t first = VSOCK_BUF_ALLOC - c->head;
		ssize_t r;

		if (first > c->len)
			first = c->len;
		iov[0].iov_base = c->buf + c->head;
		iov[0].iov_len = first;
		iov[1].iov_base = c->buf;
		iov[1].iov_len = c->len - first;
		msg.msg_iovlen = iov[1].iov_len ? 2 : 1;
		r = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			conn_close(c, true);
			return -1;
		}
		c->head = (c->head + (uint32_t)r) % VSOCK_BUF_ALLOC;
		c->len -= (uint32_t)r;
		c->fwd_cnt += (uint32_t)r;
	}
	if (c->len == 0) {
		/* Drained: the buffer is only needed while the peer lags behind. */
		free(c->buf);
		c->buf = NULL;
	}
	credit_check(c);
	conn_maybe_finish(c);
	return 0;
}

/* Guest payload for c: send what the socket takes now, buffer the rest (within credit). */
static int conn_write(struct vconn *c, const struct iovec *iov, uint32_t n, uint32_t len)
{
	uint32_t off = 0, tail;
	ssize_t r;

	if (c->len == 0 && !c->hup) {
		struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};

		do {
			r = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		} while (r < 0 && errno == EINTR);
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_close(c, true);
			return -1;
		}
		if (r > 0) {
			off = (uint32_t)r;
			c->fwd_cnt += off;
		}
	}
	if (off < len) {
		if (!c->buf) {
			c->buf = malloc(VSOCK_BUF_ALLOC);
			if (!c->buf) {
				conn_close(c, true);
				return -1;
			}
			c->head = 0;
		}
		tail = (c->head + c->len) % VSOCK_BUF_ALLOC;
		while (off < len) {
			uint32_t room = VSOCK_BUF_ALLOC - tail, take = len - off, got;

			if (take > room)
				take = room;
			got = (uint32_t)iov__to_buf(iov, n, off, c->buf + tail, take);
			c->len += got;
			off += got;
			tail = (tail + got) % VSOCK_BUF_ALLOC;
			if (got < take)
				break;
		}
	}
	credit_check(c);
	return 0;
}

/* ---- guest -> host (tx queue) ---- */

static void conn_cb(void *opaque, uint32_t events);

static int conn_ev_add(struct vconn *c, uint32_t mask)
{
	if (vm__ev_add(vs_vm(c->vs), c->fd, mask, conn_cb, c) != 0)
		return -1;
	c->in_ev = true;
	c->ev_mask = mask;
	return 0;
}

static void guest_request(struct vsock *vs, const struct virtio_vsock_hdr *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vconn *c;
	int fd, n;

	if (conn_find(vs, h->dst_port, h->src_port))
		goto refuse;
	c = conn_alloc(vs);
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", vs->uds_path, h->dst_port);
	if (!c || n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		goto refuse;
	}
	c->fd = fd;
	if (conn_ev_add(c, EPOLLIN) < 0) {
		close(fd);
		c->fd = -1;
		goto refuse;
	}
	c->state = C_ESTABLISHED;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = P_RESPONSE;
	return;
refuse:
	queue_rst(vs, VSOCK_HOST_CID, h->dst_port, h->src_port);
}

static void guest_response(struct vconn *c)
{
	char line[24];
	int n;

	if (c->state != C_CONNECTING || !c->request_sent) {
		conn_close(c, true);
		return;
	}
	n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	if (send(c->fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		conn_close(c, true);
		return;
	}
	c->state = C_ESTABLISHED;
	conn_update_ev(c);
}

static void guest_shutdown(struct vconn *c, uint32_t flags)
{
	if (flags & VIRTIO_VSOCK_SHUTDOWN_RCV)
		c->guest_shut_rcv = true;
	if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
		c->guest_shut_send = true;
	if (c->state != C_ESTABLISHED) {
		conn_close(c, true);
		return;
	}
	conn_maybe_finish(c);
	if (c->state != C_FREE)
		conn_update_ev(c);
}

static int guest_rw(struct vsock *vs, struct vconn *c, const struct virtio_vsock_hdr *h)
{
	struct virtq_req *req = &vs->req;
	uint32_t used = c->rx_cnt - c->fwd_cnt, n;

	if (c->state != C_ESTABLISHED || c->guest_shut_send) {
		conn_close(c, true);
		return 0;
	}
	if (h->len > VSOCK_BUF_ALLOC - used) {
		virtio__fault(vs->dev, "port %u->%u: %u bytes sent with %u bytes of credit left",
			      h->src_port, h->dst_port, h->len, VSOCK_BUF_ALLOC - used);
		return -EFAULT;
	}
	c->rx_cnt += h->len;
	if (c->hup) {
		c->fwd_cnt += h->len; /* nobody to deliver to: drop, keep credit consistent */
		return 0;
	}
	n = iov__slice(req->out, req->nout, HDR_LEN, h->len, vs->iov, VIRTQ_MAX_SEGS);
	if (conn_write(c, vs->iov, n, h->len) < 0)
		return 0;
	conn_update_ev(c);
	return 0;
}

static int check_hdr(struct vsock *vs, const struct virtq_req *req,
		     const struct virtio_vsock_hdr *h)
{
	if (h->src_cid != vs->cid) {
		virtio__fault(vs->dev, "tx packet from cid %llu (guest cid is %llu)",
			      (unsigned long long)h->src_cid, (unsigned long long)vs->cid);
		return -EFAULT;
	}
	if (h->type != VIRTIO_VSOCK_TYPE_STREAM) {
		virtio__fault(vs->dev, "tx packet of type %u (only stream)", h->type);
		return -EFAULT;
	}
	if (h->len > VSOCK_MAX_PKT) {
		virtio__fault(vs->dev, "tx packet len %u larger than %u", h->len, VSOCK_MAX_PKT);
		return -EFAULT;
	}
	if ((uint64_t)h->len != req->out_len - HDR_LEN) {
		virtio__fault(vs->dev, "tx packet len %u but %llu payload bytes in its buffers",
			      h->len, (unsigned long long)(req->out_len - HDR_LEN));
		return -EFAULT;
	}
	if (h->op < VIRTIO_VSOCK_OP_REQUEST || h->op > VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
		virtio__fault(vs->dev, "tx packet with unknown op %u", h->op);
		return -EFAULT;
	}
	if (h->op == VIRTIO_VSOCK_OP_SHUTDOWN &&
	    (h->flags & ~(uint32_t)(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND))) {
		virtio__fault(vs->dev, "shutdown flags 0x%x", h->flags);
		return -EFAULT;
	}
	return 0;
}

static int tx_one(struct vsock *vs)
{
	struct virtq_req *req = &vs->req;
	struct virtio_vsock_hdr h;
	struct vconn *c;

	if (req->nin > 0) {
		virtio__fault(vs->dev, "tx chain with %u writable buffers", req->nin);
		return -EFAULT;
	}
	if (req->out_len < HDR_LEN) {
		virtio__fault(vs->dev, "tx chain of %llu bytes, shorter than the header",
			      (unsigned long long)req->out_len);
		return -EFAULT;
	}
	iov__to_buf(req->out, req->nout, 0, &h, HDR_LEN);
	if (check_hdr(vs, req, &h) < 0)
		return -EFAULT;
	if (h.dst_cid != VSOCK_HOST_CID) {
		/* An application in the guest addressed another CID: refuse, no fault. */
		if (h.op != VIRTIO_VSOCK_OP_RST)
			queue_rst(vs, h.dst_cid, h.dst_port, h.src_port);
		return 0;
	}
	if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
		guest_request(vs, &h);
		return 0;
	}
	c = conn_find(vs, h.dst_port, h.src_port);
	if (!c) {
		if (h.op != VIRTIO_VSOCK_OP_RST)
			queue_rst(vs, VSOCK_HOST_CID, h.dst_port, h.src_port);
		return 0;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		guest_response(c);
		return 0;
	case VIRTIO_VSOCK_OP_RST:
		conn_close(c, false);
		return 0;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		guest_shutdown(c, h.flags);
		return 0;
	case VIRTIO_VSOCK_OP_RW:
		return guest_rw(vs, c, &h);
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT;
		return 0;
	default: /* CREDIT_UPDATE: the credit fields were taken above */
		return 0;
	}
}

/* ---- host -> guest (rx queue) ---- */

static void fill_hdr(struct vsock *vs, struct virtio_vsock_hdr *h, struct vconn *c, uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = vs->cid;
	h->type = VIRTIO_VSOCK_TYPE_STREAM;
	h->op = op;
	if (c) {
		h->src_port = c->local_port;
		h->dst_port = c->peer_port;
		h->buf_alloc = VSOCK_BUF_ALLOC;
		h->fwd_cnt = c->fwd_cnt;
		c->last_fwd_sent = c->fwd_cnt;
	}
}

static bool conn_has_work(const struct vconn *c)
{
	if (c->state < C_CONNECTING)
		return false;
	if (c->pending)
		return true;
	return c->state == C_ESTABLISHED && c->readable && !c->guest_shut_rcv && peer_credit(c) > 0;
}

static struct vconn *next_work(struct vsock *vs)
{
	uint32_t i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vconn *c = &vs->conns[(vs->rr + i) % VSOCK_MAX_CONNS];

		if (conn_has_work(c)) {
			vs->rr = (vs->rr + i + 1) % VSOCK_MAX_CONNS;
			return c;
		}
	}
	return NULL;
}

/* One control packet that c owes the guest; returns the bytes written. */
static uint32_t put_ctl(struct vsock *vs, struct vconn *c, struct virtio_vsock_hdr *h)
{
	if (c->pending & P_REQUEST) {
		c->pending &= ~P_REQUEST;
		c->request_sent = true;
		fill_hdr(vs, h, c, VIRTIO_VSOCK_OP_REQUEST);
	} else if (c->pending & P_RESPONSE) {
		c->pending &= ~P_RESPONSE;
		fill_hdr(vs, h, c, VIRTIO_VSOCK_OP_RESPONSE);
	} else if (c->pending & P_CREDIT) {
		c->pending &= ~P_CREDIT;
		fill_hdr(vs, h, c, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	} else {
		c->pending &= ~P_SHUTDOWN;
		fill_hdr(vs, h, c, VIRTIO_VSOCK_OP_SHUTDOWN);
		h->flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	}
	iov__from_buf(vs->req.in, vs->req.nin, 0, h, HDR_LEN);
	return HDR_LEN;
}

/* Reads socket data into the popped rx buffer. Returns the bytes written to the guest,
 * or 0 when the buffer was given back (no data now, EOF or error: state updated). */
static uint32_t put_data(struct vsock *vs, struct vconn *c, struct virtio_vsock_hdr *h)
{
	struct virtq_req *req = &vs->req;
	struct msghdr msg = {.msg_iov = vs->iov};
	uint64_t room = req->in_len - HDR_LEN;
	uint32_t credit = peer_credit(c);
	ssize_t r;

	if (room > credit)
		room = credit;
	if (room > VSOCK_MAX_PKT)
		room = VSOCK_MAX_PKT;
	msg.msg_iovlen = iov__slice(req->in, req->nin, HDR_LEN, room, vs->iov, VIRTQ_MAX_SEGS);
	do {
		r = recvmsg(c->fd, &msg, MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	if (r > 0) {
		fill_hdr(vs, h, c, VIRTIO_VSOCK_OP_RW);
		h->len = (uint32_t)r;
		c->tx_cnt += (uint32_t)r;
		iov__from_buf(req->in, req->nin, 0, h, HDR_LEN);
		return HDR_LEN + (uint32_t)r;
	}
	virtq__unpop(&vs->dev->vq[RXQ]);
	c->readable = false;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		conn_update_ev(c);
	} else if (r < 0 || c->hup) {
		conn_close(c, true);
	} else {
		c->host_eof = true;
		c->pending |= P_SHUTDOWN;
		conn_maybe_finish(c);
		if (c->state != C_FREE)
			conn_update_ev(c);
	}
	return 0;
}

static void rx_fill(struct vsock *vs)
{
	struct virtio_dev *dev = vs->dev;
	struct virtq *vq = &dev->vq[RXQ];
	struct virtq_req *req = &vs->req;
	struct virtio_vsock_hdr h;
	bool used = false;
	struct vconn *c;
	uint32_t written;
	int r;

	while (virtio__queue_live(dev, RXQ)) {
		c = vs->rst_len ? NULL : next_work(vs);
		if (!vs->rst_len && !c)
			break;
		r = virtq__pop(vq, dev->vm, dev->ops->name, req);
		if (r < 0)
			dev->broken = true;
		if (r <= 0)
			break;
		if (req->nout > 0 || req->in_len <= HDR_LEN) {
			/* A header and at least one payload byte, all device-writable. */
			virtio__fault(dev, "rx buffer with %u readable parts, %llu writable bytes",
				      req->nout, (unsigned long long)req->in_len);
			break;
		}
		if (!c) {
			struct rst_entry *e = &vs->rst[vs->rst_head];

			fill_hdr(vs, &h, NULL, VIRTIO_VSOCK_OP_RST);
			h.src_cid = e->src_cid;
			h.src_port = e->src_port;
			h.dst_port = e->dst_port;
			vs->rst_head = (vs->rst_head + 1) % VSOCK_RST_RING;
			vs->rst_len--;
			written = (uint32_t)iov__from_buf(req->in, req->nin, 0, &h, HDR_LEN);
		} else if (c->pending) {
			written = put_ctl(vs, c, &h);
		} else {
			written = put_data(vs, c, &h);
			if (!written)
				continue;
		}
		virtq__push(vq, req->head, written);
		used = true;
	}
	if (used && virtq__want_irq(vq))
		virtio_mmio__signal_used(dev);
}

/* Closes the connections; with only_known, those the guest never heard of (a host client
 * still sending its CONNECT line, or whose OP_REQUEST is not sent yet) survive. */
static void close_all(struct vsock *vs, bool only_known)
{
	uint32_t i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vconn *c = &vs->conns[i];

		if (c->state == C_FREE)
			continue;
		if (only_known &&
		    (c->state == C_HOST_CMD || (c->state == C_CONNECTING && !c->request_sent)))
			continue;
		conn_close(c, false);
	}
	vs->rst_len = 0;
}

/* A transport reset happened (maybe on a vCPU thread): drop every connection here. */
static void vs_sync(struct vsock *vs)
{
	if (!vs->reset_pending)
		return;
	vs->reset_pending = false;
	/* The guest forgot its sockets; host clients waiting for it to come up stay. */
	close_all(vs, true);
}

static void tx_process(struct vsock *vs)
{
	struct virtio_dev *dev = vs->dev;
	struct virtq *vq = &dev->vq[TXQ];
	bool used = false;
	int i, r = 0;

	for (i = 0; i < VSOCK_BATCH; i++) {
		r = virtq__pop(vq, dev->vm, dev->ops->name, &vs->req);
		if (r <= 0)
			break;
		if (tx_one(vs) < 0) {
			r = -EFAULT;
			break;
		}
		virtq__push(vq, vs->req.head, 0);
		used = true;
	}
	if (r < 0)
		dev->broken = true;
	if (used && virtq__want_irq(vq))
		virtio_mmio__signal_used(dev);
	if (r > 0 && !dev->broken)
		virtio__kick(dev, TXQ);
}

static void vsock_notify(struct virtio_dev *dev, uint32_t q)
{
	struct vsock *vs = dev->priv;

	vs_sync(vs);
	if (q == TXQ)
		tx_process(vs);
	/* rx buffers arrived, or tx changed credit / queued replies */
	if (!dev->broken)
		rx_fill(vs);
}

/* ---- host side sockets ---- */

static void host_cmd(struct vsock *vs, struct vconn *c)
{
	char line[VSOCK_CMD_MAX + 1], *nl, *end;
	uint32_t have = c->cmd_len;
	unsigned long port;
	ssize_t r, take;

	r = recv(c->fd, line + have, VSOCK_CMD_MAX - have, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0)
		goto bad;
	memcpy(line, c->cmd, have);
	line[have + (size_t)r] = '\0';
	nl = memchr(line + have, '\n', (size_t)r);
	/*
	 * Consume exactly the line: data after it stays in the socket for the guest. A line
	 * not complete yet is consumed too and kept in c->cmd, so that the socket is not
	 * readable until more comes: the loop is level-triggered, and a client that stopped
	 * mid-line would otherwise make it spin.
	 */
	take = nl ? nl - (line + have) + 1 : r;
	if (recv(c->fd, line + have, (size_t)take, MSG_DONTWAIT) != take)
		goto bad;
	if (!nl) {
		if (have + (size_t)r == VSOCK_CMD_MAX)
			goto bad;
		memcpy(c->cmd + have, line + have, (size_t)r);
		c->cmd_len += (uint32_t)r;
		return; /* wait for the rest of the line */
	}
	*nl = '\0';
	if (strncmp(line, "CONNECT ", 8) != 0 || line[8] < '0' || line[8] > '9')
		goto bad;
	errno = 0;
	port = strtoul(line + 8, &end, 10);
	if (errno || *end != '\0' || port > UINT32_MAX)
		goto bad;
	do {
		vs->next_port =
			vs->next_port + 1 < VSOCK_PORT_BASE ? VSOCK_PORT_BASE : vs->next_port + 1;
	} while (port_in_use(vs, vs->next_port));
	c->local_port = vs->next_port;
	c->peer_port = (uint32_t)port;
	c->state = C_CONNECTING;
	c->pending = P_REQUEST;
	return;
bad:
	conn_close(c, false);
}

static void conn_hup(struct vconn *c)
{
	if (c->in_ev) {
		vm__ev_del(vs_vm(c->vs), c->fd);
		c->in_ev = false;
	}
	c->hup = true;
	/* Nobody will read what we hold for the peer. */
	c->fwd_cnt += c->len;
	c->len = 0;
	if (c->state != C_ESTABLISHED || c->host_eof) {
		conn_close(c, true);
		return;
	}
	c->readable = true; /* drain what the peer wrote before it went away */
}

static void conn_cb(void *opaque, uint32_t events)
{
	struct vconn *c = opaque;
	struct vsock *vs = c->vs;

	pthread_mutex_lock(&vs->dev->lock);
	vs_sync(vs);
	if (c->state == C_FREE || vs->dev->broken)
		goto out; /* stale event for a closed connection */
	if (events & (EPOLLHUP | EPOLLERR)) {
		conn_hup(c);
	} else {
		if ((events & EPOLLIN) && c->state == C_HOST_CMD)
			host_cmd(vs, c);
		else if (events & EPOLLIN)
			c->readable = true;
		if ((events & EPOLLOUT) && c->state != C_FREE && conn_flush(c) < 0)
			goto fill;
	}
	if (c->state != C_FREE)
		conn_update_ev(c);
fill:
	rx_fill(vs);
out:
	pthread_mutex_unlock(&vs->dev->lock);
}

static void listen_cb(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	struct vconn *c;
	int fd;

	pthread_mutex_lock(&vs->dev->lock);
	vs_sync(vs);
	fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && vs->spare_fd >= 0) {
		/*
		 * Out of fds, the pending connection keeps the (level-triggered) listener
		 * readable: the loop would spin. Use the spare fd to take it and hang up.
		 */
		close(vs->spare_fd);
		fd = accept4(vs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		vs->spare_fd = spare_open();
		vm__log(vs_vm(vs), "virtio-vsock: out of file descriptors, refused a "
				   "connection");
		goto out;
	}
	if (fd < 0)
		goto out;
	c = conn_alloc(vs);
	if (!c || vs->dev->broken) {
		close(fd); /* bounded: too many connections */
		goto out;
	}
	c->fd = fd;
	c->state = C_HOST_CMD;
	if (conn_ev_add(c, EPOLLIN) < 0)
		conn_close(c, false);
out:
	pthread_mutex_unlock(&vs->dev->lock);
}

static void reset_cb(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	uint64_t cnt;

	if (read(vs->reset_fd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: already consumed */
	}
	pthread_mutex_lock(&vs->dev->lock);
	vs_sync(vs);
	pthread_mutex_unlock(&vs->dev->lock);
}

static void vsock_reset(struct virtio_dev *dev)
{
	struct vsock *vs = dev->priv;
	uint64_t one = 1;

	vs->reset_pending = true;
	if (write(vs->reset_fd, &one, sizeof(one)) < 0) {
		/* saturated: a wake-up is pending anyway */
	}
}

/* Closes the device's own fds (the listener's socket file goes too) and frees vs. */
static void vsock_release(struct vsock *vs)
{
	if (vs->listen_fd >= 0) {
		close(vs->listen_fd);
		unlink(vs->uds_path);
	}
	if (vs->reset_fd >= 0)
		close(vs->reset_fd);
	if (vs->spare_fd >= 0)
		close(vs->spare_fd);
	free(vs->uds_path);
	free(vs);
}

static void vsock_free(struct virtio_dev *dev)
{
	struct vsock *vs = dev->priv;

	close_all(vs, false);
	if (vs->listen_ev)
		vm__ev_del(dev->vm, vs->listen_fd);
	if (vs->reset_ev)
		vm__ev_del(dev->vm, vs->reset_fd);
	vsock_release(vs);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.nqueues = 3,
	.queue_max = VSOCK_QUEUE_SIZE,
	.notify = vsock_notify,
	.reset = vsock_reset,
	.free = vsock_free,
};

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* stale socket of an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static struct vsock *vsock_alloc(uint64_t cid, const char *uds_path)
{
	struct vsock *vs = calloc(1, sizeof(*vs));
	uint32_t i;

	if (!vs)
		return NULL;
	vs->cid = cid;
	vs->listen_fd = vs->reset_fd = -1;
	vs->spare_fd = spare_open();
	vs->next_port = VSOCK_PORT_BASE - 1;
	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		vs->conns[i].vs = vs;
		vs->conns[i].fd = -1;
	}
	vs->uds_path = strdup(uds_path);
	if (!vs->uds_path) {
		if (vs->spare_fd >= 0)
			close(vs->spare_fd);
		free(vs);
		return NULL;
	}
	return vs;
}

int virtio_vsock__create(struct vm *vm, uint64_t guest_cid, const char *uds_path,
			 struct virtio_dev **ret)
{
	struct virtio_dev *dev;
	struct vsock *vs;
	uint64_t cfg_cid = guest_cid; /* config space: le64 guest_cid (x86 is LE) */
	int r;

	if (guest_cid < 3 || guest_cid >= 0xffffffffULL || !uds_path)
		return -EINVAL;
	vs = vsock_alloc(guest_cid, uds_path);
	if (!vs)
		return -ENOMEM;
	vs->reset_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vs->reset_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = listen_unix(uds_path);
	if (r < 0)
		goto fail;
	vs->listen_fd = r;
	/* the transport's reset (a vCPU thread) writes reset_fd; the loop accepts */
	if ((r = vm__seccomp_fd(vm, VM_FD_VCPU_WRITE, vs->reset_fd)) < 0 ||
	    (r = vm__seccomp_fd(vm, VM_FD_LISTEN, vs->listen_fd)) < 0)
		goto fail;
	r = virtio_mmio__create(vm, &vsock_ops, vs, 1ULL << VIRTIO_RING_F_EVENT_IDX, &cfg_cid,
				sizeof(cfg_cid), &dev);
	if (r < 0)
		goto fail;
	vs->dev = dev;
	/* From here on virtio_dev__free() releases vs too. */
	r = vm__ev_add(vm, vs->reset_fd, EPOLLIN, reset_cb, vs);
	if (r < 0)
		goto fail_dev;
	vs->reset_ev = true;
	r = vm__ev_add(vm, vs->listen_fd, EPOLLIN, listen_cb, vs);
	if (r < 0)
		goto fail_dev;
	vs->listen_ev = true;
	r = virtio_mmio__activate(dev);
	if (r < 0)
		goto fail_dev;
	*ret = dev;
	return 0;
fail_dev:
	virtio_dev__free(dev);
	return r;
fail:
	vsock_release(vs);
	return r;
}
