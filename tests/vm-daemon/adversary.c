/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adversary - a static program the vm-daemon suite writes into a guest and runs there as
 * root (#14): it tries to leave its VM and prints one line per attempt, so the test on
 * the host reads what it reached.
 *
 *   adversary net            TCP/UDP/IPv6 to addresses outside: "net: none reached" or
 *                            "net: REACHED <addr>"
 *   adversary vsock          AF_VSOCK to the host (CID 2) on well-known ports and to
 *                            every other CID a sibling sandbox or the host could have
 *                            (not its own CID, not local: that is itself):
 *                            "vsock: none reached" or "vsock: REACHED <cid>:<port>"
 *   adversary flood N        N vsock connections to the host, all opened at once and
 *                            held: "flood: N tried, C connected"
 *
 * Exit status 0 when it could run its attempts, 2 on a usage or set-up error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#define WAIT_MS 3000

/* A non-blocking connect of @fd, waited for at most WAIT_MS: 1 connected, 0 not. */
static int connected(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t el = sizeof(err);

	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return 0;
	if (connect(fd, sa, len) == 0)
		return 1;
	if (errno != EINPROGRESS)
		return 0;
	if (poll(&p, 1, WAIT_MS) != 1)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
		return 0;
	return 1;
}

/* One attempt to @sa (a stream connect, or a datagram sent): 1 and a line if it got out. */
static int attempt(int type, const struct sockaddr *sa, socklen_t len, const char *what)
{
	int fd = socket(sa->sa_family, type | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	if (type == SOCK_DGRAM)
		ok = sendto(fd, "x", 1, 0, sa, len) == 1;
	else
		ok = connected(fd, sa, len);
	close(fd);
	if (ok)
		printf("%s\n", what);
	return ok;
}

static int try_inet(int type, const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char what[80];

	snprintf(what, sizeof(what), "net: REACHED %s %s:%d", type == SOCK_DGRAM ? "udp" : "tcp",
		 ip, port);
	return inet_pton(AF_INET, ip, &a.sin_addr) == 1 &&
	       attempt(type, (struct sockaddr *)&a, sizeof(a), what);
}

static int try_inet6(const char *ip, int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	char what[80];

	snprintf(what, sizeof(what), "net: REACHED tcp6 [%s]:%d", ip, port);
	return inet_pton(AF_INET6, ip, &a.sin6_addr) == 1 &&
	       attempt(SOCK_STREAM, (struct sockaddr *)&a, sizeof(a), what);
}

static int net(void)
{
	/* the usual ways out: a NAT gateway, cloud metadata, a public resolver, the
	 * host's loopback seen from a user-mode network, IPv6 */
	static const char *const v4[] = {"10.0.2.2",	  "10.0.2.3",	"169.254.169.254",
					 "192.168.122.1", "172.17.0.1", "1.1.1.1",
					 "8.8.8.8"};
	static const int ports[] = {22, 53, 80, 443};
	int n = 0;

	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
		for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			n += try_inet(SOCK_STREAM, v4[i], ports[j]);
			n += try_inet(SOCK_DGRAM, v4[i], ports[j]);
		}
	n += try_inet6("2606:4700:4700::1111", 443);
	n += try_inet6("fe80::1", 22);
	if (!n)
		printf("net: none reached\n");
	return 0;
}

static int try_vsock(unsigned cid, unsigned port)
{
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	char what[64];

	snprintf(what, sizeof(what), "vsock: REACHED %u:%u", cid, port);
	return attempt(SOCK_STREAM, (struct sockaddr *)&a, sizeof(a), what);
}

static unsigned own_cid(void)
{
	unsigned cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
			cid = VMADDR_CID_ANY;
		close(fd);
	}
	return cid;
}

static int vsock(void)
{
	/* the host (2), the hypervisor (0), the CIDs sibling VMs get (3 and up), and the
	 * top of the range; not local (1) nor its own: that is itself */
	static const unsigned cids[] = {0, 2, 3, 4, 5, 6, 100, 0xfffffffe};
	static const unsigned ports[] = {1, 22, 52, 1024, 1025, 2049, 0x40000000u, 0x7fffffffu};
	unsigned self = own_cid();
	int n = 0;

	if (self == VMADDR_CID_ANY) {
		fprintf(stderr, "adversary: no vsock in this guest\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cids) / sizeof(cids[0]); i++) {
		if (cids[i] == self || cids[i] == VMADDR_CID_LOCAL)
			continue; /* itself (its own agent): not a way out */
		for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++)
			n += try_vsock(cids[i], ports[j]);
	}
	if (!n)
		printf("vsock: none reached\n");
	return 0;
}

static int flood(int n)
{
	struct rlimit rl = {(rlim_t)n + 64, (rlim_t)n + 64};
	int *fds = calloc((size_t)n, sizeof(int)), got = 0, tried = 0;

	if (!fds || setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "adversary: flood set-up: %s\n", strerror(errno));
		free(fds);
		return 2;
	}
	/* all requests in flight at once, then held open together */
	for (int i = 0; i < n; i++) {
		struct sockaddr_vm a = {.svm_family = AF_VSOCK,
					.svm_cid = VMADDR_CID_HOST,
					.svm_port = 1 + (unsigned)i % 4096};

		fds[i] = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fds[i] < 0)
			break;
		tried++;
		(void)connect(fds[i], (struct sockaddr *)&a, sizeof(a));
	}
	for (int i = 0; i < tried; i++) {
		struct pollfd p = {.fd = fds[i], .events = POLLOUT};
		int err = 0;
		socklen_t el = sizeof(err);

		if (poll(&p, 1, WAIT_MS) == 1 &&
		    getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &el) == 0 && !err)
			got++;
	}
	printf("flood: %d tried, %d connected\n", tried, got);
	for (int i = 0; i < tried; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "net") == 0)
		return net();
	if (argc == 2 && strcmp(argv[1], "vsock") == 0)
		return vsock();
	if (argc == 3 && strcmp(argv[1], "flood") == 0 && atoi(argv[2]) > 0)
		return flood(atoi(argv[2]));
	fprintf(stderr, "usage: adversary net | vsock | flood N\n");
	return 2;
}
