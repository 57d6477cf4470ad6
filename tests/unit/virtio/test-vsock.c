// SPDX-License-Identifier: Apache-2.0
/*
 * test-vsock.c - the userspace virtio-vsock device: host-initiated connections through
 * "CONNECT <port>", guest-initiated ones to <uds>_<port>, data both ways, credit-based
 * flow control and back-pressure in both directions, RST/SHUTDOWN, connection limits,
 * and hostile tx packets.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#include "tests/unit/virtio/driver.h"
#include "tests/unit/virtio/fake-vm.h"

#define RAM	 (32ULL << 20)
#define CID	 3
#define RXQ	 0
#define TXQ	 1
#define EVQ	 2
#define HDR	 ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define RXBUF	 4096
#define GUEST_BA (64U * 1024) /* the buf_alloc our fake guest advertises */

static struct vm *vm;
static struct virtio_dev *dev;
static struct tdrv d;
static char dir[] = "/tmp/nucleus-vsock-XXXXXX";
static char uds[128];
static uint64_t rx_gpa[TQ_MAX];

struct pkt {
	struct virtio_vsock_hdr h;
	uint8_t data[RXBUF];
};

static void post_rx(int n)
{
	int i;

	for (i = 0; i < n; i++) {
		uint64_t gpa = drv__alloc(&d, RXBUF);
		struct tbuf b = {gpa, RXBUF, true};
		int head = drv__add(&d, RXQ, &b, 1);

		cr_assert(head >= 0);
		rx_gpa[head] = gpa;
	}
	drv__kick(&d, RXQ);
	fake_vm__run(vm);
}

static bool recv_pkt(struct pkt *p)
{
	uint32_t id, len;

	if (!drv__used(&d, RXQ, &id, &len))
		return false;
	cr_assert(len >= HDR && len <= RXBUF, "rx used len %u", len);
	memcpy(&p->h, drv__host(&d, rx_gpa[id]), HDR);
	cr_assert_eq(p->h.len, len - HDR, "header len %u, used len %u", p->h.len, len);
	memcpy(p->data, drv__host(&d, rx_gpa[id] + HDR), p->h.len);
	cr_assert_eq(p->h.src_cid, 2);
	cr_assert_eq(p->h.dst_cid, CID);
	cr_assert_eq(p->h.type, VIRTIO_VSOCK_TYPE_STREAM);
	return true;
}

static void expect_pkt(struct pkt *p, uint16_t op)
{
	cr_assert(recv_pkt(p), "no rx packet, expected op %u", op);
	cr_assert_eq(p->h.op, op, "op %u, expected %u", p->h.op, op);
}

/* Sends a raw tx packet: header with the given fields, payload of plen bytes. */
static void send_raw(struct virtio_vsock_hdr *h, const void *data, uint32_t plen)
{
	uint64_t hg = drv__alloc(&d, HDR), pg = plen ? drv__alloc(&d, plen) : 0;
	struct tbuf b[2] = {{hg, HDR, false}, {pg, plen, false}};
	uint32_t id, len;

	memcpy(drv__host(&d, hg), h, HDR);
	if (plen)
		memcpy(drv__host(&d, pg), data, plen);
	cr_assert(drv__add(&d, TXQ, b, plen ? 2 : 1) >= 0);
	drv__kick(&d, TXQ);
	fake_vm__run(vm);
	while (drv__used(&d, TXQ, &id, &len))
		;
}

static uint32_t g_fwd; /* the fake guest's fwd_cnt, reported in every packet */

/* A tx header as our fake guest addresses it: from its CID to the host, a stream, no
 * payload, no credit; callers change what they need. */
static struct virtio_vsock_hdr tx_hdr(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct virtio_vsock_hdr){.src_cid = CID,
					 .dst_cid = 2,
					 .src_port = src_port,
					 .dst_port = dst_port,
					 .type = VIRTIO_VSOCK_TYPE_STREAM,
					 .op = op};
}

static void send_pkt(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags,
		     const void *data, uint32_t len)
{
	struct virtio_vsock_hdr h = tx_hdr(op, src_port, dst_port);

	h.len = len;
	h.flags = flags;
	h.buf_alloc = GUEST_BA;
	h.fwd_cnt = g_fwd;
	send_raw(&h, data, len);
}

static void setup(void)
{
	cr_assert(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/vsock", dir);
	vm = fake_vm__new(RAM);
	cr_assert(vm);
	cr_assert_eq(virtio_vsock__create(vm, CID, uds, &dev), 0);
	cr_assert_eq(drv__init(&d, vm, dev, 1ULL << VIRTIO_F_VERSION_1, 3, 128), 0);
	g_fwd = 0;
	post_rx(32);
}

static void teardown(void)
{
	char cmd[256];

	virtio_dev__free(dev);
	cr_assert_eq(fake_vm__ev_count(vm), 0, "event loop entries left after free");
	fake_vm__free(vm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	strcpy(dir, "/tmp/nucleus-vsock-XXXXXX");
}

TestSuite(vsock, .init = setup, .fini = teardown);

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", path,
		     strerror(errno));
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
}

/* A host client of the device's socket that has sent these bytes. */
static int client_sends(const char *bytes, size_t len)
{
	int fd = unix_connect(uds);

	write_all(fd, bytes, len);
	fake_vm__run(vm);
	return fd;
}

/* Non-blocking read of what is there now: bytes, 0 when the device closed its end
 * (EOF, or ECONNRESET when it closed with our data unread), -1 for nothing yet. */
static ssize_t read_now(int fd, void *buf, size_t len)
{
	ssize_t r = recv(fd, buf, len, MSG_DONTWAIT);

	if (r < 0 && errno == ECONNRESET)
		return 0;
	return r < 0 && errno == EAGAIN ? -1 : r;
}

/* Host client connects to guest port; the guest accepts. Returns the client fd and the
 * host port the device chose. */
static int host_connect(uint32_t gport, uint32_t *hport)
{
	char line[64] = {0}, want[64];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	int fd = client_sends(line, (size_t)n);
	struct pkt p;

	expect_pkt(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, gport);
	cr_assert(p.h.src_port >= 0x40000000);
	*hport = p.h.src_port;
	send_pkt(VIRTIO_VSOCK_OP_RESPONSE, gport, p.h.src_port, 0, NULL, 0);
	memset(line, 0, sizeof(line));
	snprintf(want, sizeof(want), "OK %u\n", p.h.src_port);
	cr_assert_eq(read_now(fd, line, strlen(want)), (ssize_t)strlen(want));
	cr_assert_str_eq(line, want);
	return fd;
}

/* The connected tests' fixture: a host client connected to guest port 1024. */
static int conn_fd = -1;
static uint32_t conn_port; /* the host port the device chose for it */

static void connect_1024(void)
{
	conn_fd = host_connect(1024, &conn_port);
}

/* Closes the client (also early, in a test where it goes away). */
static void disconnect(void)
{
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
}

Test(vsock, config_has_guest_cid)
{
	cr_assert_eq(fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG, 4), CID);
	cr_assert_eq(fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 4, 4), 0);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_DEVICE_ID), 19);
}

static int open_fds(void)
{
	DIR *dp = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(dp);
	while (readdir(dp))
		n++;
	closedir(dp);
	return n;
}

/* A create that fails gives back every fd it opened and leaves others' files alone. */
Test(vsock, failed_create_leaks_nothing)
{
	char file[160], longp[200];
	struct virtio_dev *dev2 = NULL;
	int before = open_fds(), fd;

	snprintf(file, sizeof(file), "%s/not-a-socket", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(virtio_vsock__create(vm, CID, file, &dev2), -EEXIST);
	cr_expect_eq(access(file, F_OK), 0, "a file that is not a socket was removed");
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	cr_expect_eq(virtio_vsock__create(vm, CID, longp, &dev2), -ENAMETOOLONG);
	cr_expect_eq(virtio_vsock__create(vm, 2, uds, &dev2), -EINVAL);
	cr_expect_null(dev2);
	cr_expect_eq(open_fds(), before, "fds leaked by failed creates");
}

Test(vsock, host_connect_and_data_both_ways, .init = connect_1024, .fini = disconnect)
{
	char buf[64] = {0};
	struct pkt p;

	write_all(conn_fd, "hello guest", 11);
	fake_vm__run(vm);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.h.src_port, conn_port);
	cr_assert_eq(p.h.dst_port, 1024);
	cr_assert_eq(p.h.len, 11);
	cr_assert_eq(memcmp(p.data, "hello guest", 11), 0);
	cr_assert_eq(p.h.buf_alloc, 64 * 1024);

	send_pkt(VIRTIO_VSOCK_OP_RW, 1024, conn_port, 0, "hello host", 10);
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 10);
	cr_assert_str_eq(buf, "hello host");
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(vsock, data_after_connect_line_is_kept)
{
	int fd = client_sends("CONNECT 77\nearly", 16);
	struct pkt p;

	expect_pkt(&p, VIRTIO_VSOCK_OP_REQUEST);
	send_pkt(VIRTIO_VSOCK_OP_RESPONSE, 77, p.h.src_port, 0, NULL, 0);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.h.len, 5);
	cr_assert_eq(memcmp(p.data, "early", 5), 0);
	close(fd);
}

Test(vsock, guest_refusal_closes_host_client)
{
	int fd = client_sends("CONNECT 9\n", 10);
	char buf[16];
	struct pkt p;

	expect_pkt(&p, VIRTIO_VSOCK_OP_REQUEST);
	send_pkt(VIRTIO_VSOCK_OP_RST, 9, p.h.src_port, 0, NULL, 0);
	cr_assert_eq(read_now(fd, buf, sizeof(buf)), 0, "client not closed after RST");
	close(fd);
}

Test(vsock, bad_connect_line_closes_client)
{
	int fd = client_sends("CONNECT x\n", 10);
	char buf[16];
	struct pkt p;

	cr_assert_eq(read_now(fd, buf, sizeof(buf)), 0);
	cr_assert(!recv_pkt(&p), "guest got a packet for a bad line");
	close(fd);
	fd = client_sends("CONNECTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT", 40);
	cr_assert_eq(read_now(fd, buf, sizeof(buf)), 0, "overlong line not refused");
	close(fd);
}

Test(vsock, guest_connects_to_host_port)
{
	char path[160], buf[32] = {0};
	int lfd, cfd;
	struct pkt p;

	snprintf(path, sizeof(path), "%s_5000", uds);
	lfd = unix_listen(path);
	send_pkt(VIRTIO_VSOCK_OP_REQUEST, 4321, 5000, 0, NULL, 0);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cr_assert_eq(p.h.src_port, 5000);
	cr_assert_eq(p.h.dst_port, 4321);
	cfd = accept(lfd, NULL, NULL);
	cr_assert(cfd >= 0);
	send_pkt(VIRTIO_VSOCK_OP_RW, 4321, 5000, 0, "ping", 4);
	cr_assert_eq(read_now(cfd, buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "ping");
	write_all(cfd, "pong", 4);
	fake_vm__run(vm);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(memcmp(p.data, "pong", 4), 0);
	/* host side closes: the guest learns the peer will send no more */
	close(cfd);
	fake_vm__run(vm);
	cr_assert(recv_pkt(&p));
	cr_assert(p.h.op == VIRTIO_VSOCK_OP_SHUTDOWN || p.h.op == VIRTIO_VSOCK_OP_RST);
	close(lfd);
}

Test(vsock, guest_connect_to_absent_port_gets_rst)
{
	struct pkt p;

	send_pkt(VIRTIO_VSOCK_OP_REQUEST, 4321, 6000, 0, NULL, 0);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(p.h.src_port, 6000);
	cr_assert_eq(p.h.dst_port, 4321);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(vsock, packet_for_unknown_connection_gets_rst)
{
	struct pkt p;

	send_pkt(VIRTIO_VSOCK_OP_RW, 1, 2, 0, "x", 1);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RST);
	send_pkt(VIRTIO_VSOCK_OP_RST, 1, 2, 0, NULL, 0);
	cr_assert(!recv_pkt(&p), "RST answered with RST");
}

Test(vsock, guest_rst_closes_host_side, .init = connect_1024, .fini = disconnect)
{
	char buf[8];

	send_pkt(VIRTIO_VSOCK_OP_RST, 1024, conn_port, 0, NULL, 0);
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 0);
}

Test(vsock, guest_full_shutdown_gets_rst_and_closes_host, .init = connect_1024, .fini = disconnect)
{
	char buf[8];
	struct pkt p;

	send_pkt(VIRTIO_VSOCK_OP_RW, 1024, conn_port, 0, "bye", 3);
	send_pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 1024, conn_port,
		 VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, 0);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 3, "data before shutdown lost");
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 0);
}

Test(vsock, guest_half_close_gives_host_eof_but_keeps_reading, .init = connect_1024,
     .fini = disconnect)
{
	char buf[8];
	struct pkt p;

	send_pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 1024, conn_port, VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, 0);
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 0, "no EOF after guest SHUTDOWN_SEND");
	write_all(conn_fd, "more", 4);
	fake_vm__run(vm);
	expect_pkt(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.h.len, 4);
}

Test(vsock, host_to_guest_respects_guest_credit, .init = connect_1024, .fini = disconnect)
{
	uint32_t got = 0;
	static uint8_t big[20000];
	struct pkt p;
	size_t i;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	/* guest has only 5000 bytes of room */
	struct virtio_vsock_hdr h = tx_hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1024, conn_port);

	h.buf_alloc = 5000;
	send_raw(&h, NULL, 0);
	write_all(conn_fd, big, sizeof(big));
	fake_vm__run(vm);
	while (recv_pkt(&p)) {
		cr_assert_eq(p.h.op, VIRTIO_VSOCK_OP_RW);
		cr_assert_eq(memcmp(p.data, big + got, p.h.len), 0);
		got += p.h.len;
	}
	cr_assert_eq(got, 5000, "device sent %u bytes with 5000 bytes of credit", got);
	post_rx(32);
	cr_assert(!recv_pkt(&p), "data beyond credit after new rx buffers");
	/* the guest app consumed it: credit update, the rest flows */
	h.fwd_cnt = 5000;
	h.buf_alloc = 64 * 1024;
	send_raw(&h, NULL, 0);
	while (recv_pkt(&p)) {
		cr_assert_eq(p.h.op, VIRTIO_VSOCK_OP_RW);
		cr_assert_eq(memcmp(p.data, big + got, p.h.len), 0);
		got += p.h.len;
	}
	cr_assert_eq(got, sizeof(big));
}

Test(vsock, host_to_guest_waits_for_rx_buffers, .init = connect_1024, .fini = disconnect)
{
	uint32_t got = 0;
	static uint8_t big[32 * 4096];
	struct pkt p;
	int rounds;

	memset(big, 0x5a, sizeof(big));
	/* consume the buffers posted at setup (some went to REQUEST) */
	write_all(conn_fd, big, sizeof(big));
	fake_vm__run(vm);
	while (recv_pkt(&p))
		got += p.h.len;
	cr_assert_lt(got, sizeof(big), "more data than rx buffers");
	for (rounds = 0; rounds < 100 && got < sizeof(big); rounds++) {
		post_rx(16);
		while (recv_pkt(&p))
			got += p.h.len;
		/* credit: the guest app read all of it */
		g_fwd = got;
		send_pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1024, conn_port, 0, NULL, 0);
		while (recv_pkt(&p))
			got += p.h.len;
		g_fwd = got;
	}
	cr_assert_eq(got, sizeof(big));
}

/* A guest that respects the credit it was given: sends until none is left. */
static uint32_t fill_until_no_credit(uint32_t hport, uint32_t *sent)
{
	static uint8_t chunk[16384];
	uint32_t buf_alloc = 0, fwd = 0, credit;
	struct pkt p;
	int i;

	memset(chunk, 0x42, sizeof(chunk));
	buf_alloc = 64 * 1024;
	for (i = 0; i < 10000; i++) {
		while (recv_pkt(&p)) {
			buf_alloc = p.h.buf_alloc;
			fwd = p.h.fwd_cnt;
		}
		post_rx(0);
		credit = buf_alloc - (*sent - fwd);
		if (credit == 0)
			return fwd;
		if (credit > sizeof(chunk))
			credit = sizeof(chunk);
		send_pkt(VIRTIO_VSOCK_OP_RW, 1024, hport, 0, chunk, credit);
		*sent += credit;
		if (d.q[RXQ].avail_idx - d.q[RXQ].used_seen < 8)
			post_rx(16);
	}
	cr_assert_fail("credit never ran out: unbounded buffering");
	return 0;
}

Test(vsock, slow_host_reader_stops_guest_sender, .init = connect_1024, .fini = disconnect)
{
	uint32_t sent = 0, fwd;
	static uint8_t sink[1 << 20];
	size_t drained = 0;
	ssize_t r;
	struct pkt p;

	fwd = fill_until_no_credit(conn_port, &sent);
	/* the device holds at most buf_alloc bytes beyond what the socket took */
	cr_assert_eq(sent - fwd, 64 * 1024);
	cr_assert_eq(fake_vm__faults(vm), 0);
	/* the reader catches up: everything arrives and the credit comes back */
	while ((r = read_now(conn_fd, sink, sizeof(sink))) > 0) {
		drained += (size_t)r;
		fake_vm__run(vm);
	}
	cr_assert_eq(drained, sent);
	post_rx(8);
	cr_assert(recv_pkt(&p), "no credit update after the reader drained");
	cr_assert_eq(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	while (recv_pkt(&p))
		;
	cr_assert(sent - p.h.fwd_cnt < 64 * 1024);
}

Test(vsock, sending_beyond_credit_is_a_fault, .init = connect_1024, .fini = disconnect)
{
	static uint8_t more[64 * 1024];
	uint32_t sent = 0;

	/* The guest's view of the credit is conservative (updates are batched), so the
	 * overflow is a full-size packet on top of a buffer the guest believes full. */
	fill_until_no_credit(conn_port, &sent);
	send_pkt(VIRTIO_VSOCK_OP_RW, 1024, conn_port, 0, more, sizeof(more));
	cr_assert_eq(fake_vm__faults(vm), 1);
	cr_assert(strstr(fake_vm__fault_msg(vm), "virtio-vsock: "));
	cr_assert(strstr(fake_vm__fault_msg(vm), "credit"), "%s", fake_vm__fault_msg(vm));
}

Test(vsock, credit_request_is_answered, .init = connect_1024, .fini = disconnect)
{
	struct pkt p;

	send_pkt(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1024, conn_port, 0, NULL, 0);
	expect_pkt(&p, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(p.h.buf_alloc, 64 * 1024);
}

Test(vsock, connections_are_bounded)
{
	int fds[80], i, closed = 0, reqs = 0;
	char buf[4];
	struct pkt p;

	post_rx(64);
	for (i = 0; i < 80; i++)
		fds[i] = client_sends("CONNECT 1\n", 10);
	while (recv_pkt(&p))
		reqs += p.h.op == VIRTIO_VSOCK_OP_REQUEST;
	for (i = 0; i < 80; i++) {
		closed += read_now(fds[i], buf, sizeof(buf)) == 0;
		close(fds[i]);
	}
	cr_assert_eq(reqs, 64, "%d requests", reqs);
	cr_assert_eq(closed, 16);
	fake_vm__run(vm);
}

Test(vsock, device_reset_closes_connections, .init = connect_1024, .fini = disconnect)
{
	char buf[4];

	drv__wr(&d, VIRTIO_MMIO_STATUS, 0);
	fake_vm__run(vm);
	cr_assert_eq(read_now(conn_fd, buf, sizeof(buf)), 0);
}

Test(vsock, host_client_vanishing_resets_guest, .init = connect_1024, .fini = disconnect)
{
	struct pkt p;
	bool rst = false;

	disconnect();
	fake_vm__run(vm);
	while (recv_pkt(&p)) {
		if (p.h.op == VIRTIO_VSOCK_OP_SHUTDOWN)
			continue;
		rst = p.h.op == VIRTIO_VSOCK_OP_RST;
	}
	cr_assert(rst, "guest not told the host side went away");
}

Test(vsock, other_cid_is_refused_not_faulted)
{
	struct virtio_vsock_hdr h = tx_hdr(VIRTIO_VSOCK_OP_REQUEST, 1, 2);
	struct pkt p;
	uint32_t id, len;

	h.dst_cid = 7;
	send_raw(&h, NULL, 0);
	cr_assert(drv__used(&d, RXQ, &id, &len));
	memcpy(&p.h, drv__host(&d, rx_gpa[id]), HDR);
	cr_assert_eq(p.h.op, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(p.h.src_cid, 7, "the RST must come from the CID the guest addressed");
	cr_assert_eq(p.h.dst_port, 1);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

/* ---- hostile packets ---- */

static void expect_vsock_fault(const char *what)
{
	cr_assert_eq(fake_vm__faults(vm), 1, "faults: %d", fake_vm__faults(vm));
	cr_assert(strstr(fake_vm__fault_msg(vm), "virtio-vsock: ") == fake_vm__fault_msg(vm));
	cr_assert(strstr(fake_vm__fault_msg(vm), what), "'%s' lacks '%s'", fake_vm__fault_msg(vm),
		  what);
	/* stopped: nothing more happens, no second fault */
	send_pkt(VIRTIO_VSOCK_OP_REQUEST, 1, 2, 0, NULL, 0);
	cr_assert_eq(fake_vm__faults(vm), 1);
}

Test(vsock, oversized_len_is_a_fault)
{
	static uint8_t big[70000];

	send_pkt(VIRTIO_VSOCK_OP_RW, 1, 2, 0, big, sizeof(big));
	expect_vsock_fault("larger than");
}

/* Headers that lie or break the rules, each on a fresh device. The cases hold no
 * pointers: criterion hands them to the test in another process. */
struct bad_hdr {
	char fault[16]; /* what the fault message says */
	uint64_t src_cid;
	uint16_t type, op;
	uint32_t len;	 /* the header's len ... */
	char payload[4]; /* ... and what really follows it */
};

ParameterizedTestParameters(vsock, bad_tx_header_is_a_fault)
{
	static struct bad_hdr cases[] = {
		{"payload bytes", CID, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW, 100, "abc"},
		{"from cid 2", 2, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_REQUEST, 0, ""},
		{"type 2", CID, VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_OP_REQUEST, 0, ""},
		{"unknown op 99", CID, VIRTIO_VSOCK_TYPE_STREAM, 99, 0, ""},
	};

	return cr_make_param_array(struct bad_hdr, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_hdr *c, vsock, bad_tx_header_is_a_fault)
{
	struct virtio_vsock_hdr h = tx_hdr(c->op, 1, 2);

	h.src_cid = c->src_cid;
	h.type = c->type;
	h.len = c->len;
	send_raw(&h, c->payload, (uint32_t)strlen(c->payload));
	expect_vsock_fault(c->fault);
}

Test(vsock, short_header_is_a_fault)
{
	uint64_t g = drv__alloc(&d, 16);
	struct tbuf b = {g, 16, false};

	drv__add(&d, TXQ, &b, 1);
	drv__kick(&d, TXQ);
	fake_vm__run(vm);
	expect_vsock_fault("shorter than the header");
}

/* Uses up the good rx buffers on a connection's data, then offers the bad one. */
static void bad_rx_buffer_is_a_fault(struct tbuf b, const char *fault)
{
	uint32_t hport;
	int fd, i;
	struct pkt p;

	fd = host_connect(1024, &hport);
	for (i = 0; i < 64 && fake_vm__faults(vm) == 0; i++) {
		write_all(fd, "z", 1);
		fake_vm__run(vm);
		if (!recv_pkt(&p))
			break;
	}
	drv__add(&d, RXQ, &b, 1);
	drv__kick(&d, RXQ);
	fake_vm__run(vm);
	expect_vsock_fault(fault);
	close(fd);
}

Test(vsock, readable_rx_buffer_is_a_fault)
{
	bad_rx_buffer_is_a_fault((struct tbuf){0x300000, 4096, false}, "rx buffer");
}

Test(vsock, rx_buffer_without_payload_room_is_a_fault)
{
	bad_rx_buffer_is_a_fault((struct tbuf){0x300000, HDR, true}, "44 writable bytes");
}

Test(vsock, host_client_waiting_for_the_guest_survives_driver_reset)
{
	int early = unix_connect(uds), fd;
	uint32_t hport;
	char buf[8];
	struct pkt p;

	fd = host_connect(1024, &hport); /* known to the guest: closed by the reset */
	/* The guest driver resets the device (as at boot) while a client waits. */
	drv__wr(&d, VIRTIO_MMIO_STATUS, 0);
	write_all(early, "CONNECT 1024\n", 13);
	fake_vm__run(vm);
	cr_assert_eq(read_now(fd, buf, sizeof(buf)), 0, "established connection kept");
	cr_assert_eq(read_now(early, buf, sizeof(buf)), -1, "waiting client was closed");
	/* the driver comes up: the request goes out now */
	cr_assert_eq(drv__init(&d, vm, dev, 1ULL << VIRTIO_F_VERSION_1, 3, 128), 0);
	post_rx(8);
	expect_pkt(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 1024);
	close(fd);
	close(early);
}

Test(vsock, data_flows_with_event_idx)
{
	uint32_t hport, got = 0;
	static uint8_t big[40000];
	char buf[16] = {0};
	struct pkt p;
	int fd;

	cr_assert_eq(drv__init(&d, vm, dev,
			       (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX), 3,
			       128),
		     0);
	post_rx(32);
	fd = host_connect(1024, &hport);
	memset(big, 0x33, sizeof(big));
	write_all(fd, big, sizeof(big));
	fake_vm__run(vm);
	while (recv_pkt(&p))
		got += p.h.len;
	post_rx(16);
	while (recv_pkt(&p))
		got += p.h.len;
	cr_assert_eq(got, sizeof(big));
	send_pkt(VIRTIO_VSOCK_OP_RW, 1024, hport, 0, "back", 4);
	cr_assert_eq(read_now(fd, buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "back");
	close(fd);
}

/*
 * With no descriptor left, accept() fails and the pending connection keeps the listener
 * readable: the device gives up its spare fd to take the connection and hang up, so the
 * event loop does not spin, and it works again once descriptors are free.
 */
Test(vsock, out_of_fds_the_listener_sheds_instead_of_spinning)
{
	static int fds[1024];
	struct rlimit old, low;
	uint32_t hport;
	int client, n = 0, runs, fd;
	char buf[4];

	post_rx(8);
	client = unix_connect(uds);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 512;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 1024 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		n++;
	cr_assert_lt(n, 1024);
	cr_assert_eq(errno, EMFILE);
	runs = fake_vm__run(vm);
	cr_expect_lt(runs, 100, "the listener spun: %d callbacks", runs);
	cr_expect_eq(read_now(client, buf, sizeof(buf)), 0, "the refused client sees a hang-up");
	while (n > 0)
		close(fds[--n]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	close(client);
	fd = host_connect(1, &hport);
	close(fd);
	fake_vm__run(vm);
}
