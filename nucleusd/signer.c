// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-signer: the process that holds the audit key (nucleusd/signer.h; docs/daemon.md,
 * "Signer"). nucleusd execs it at start-up, before it listens or starts a VM:
 *
 *   nucleus-signer KEYFILE     fd SIGNER_FD (3): the daemon's SOCK_SEQPACKET socket
 *
 * Start-up: not dumpable and no core file before the key is read; the key loaded from
 * KEYFILE, or made there on first start (magic + libsodium secret key, 0600, never
 * overwritten); no_new_privs, every other fd closed, the seccomp filter; then the hello
 * with the public key (or the -errno of what failed, and exit). From then on it only
 * receives fixed-size requests on fd 3 and answers each: a seal of the head message it
 * builds itself, or an error. It never signs bytes the daemon chose and parses nothing
 * else. It ends when the daemon's end closes; SIGTERM, SIGINT, SIGHUP and SIGQUIT are
 * ignored (they reach the daemon's whole group or cgroup at once, and the daemon's
 * clean stop seals last), SIGKILL is what the daemon uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "nucleusd/signer.h"

/* A sanitized build (gcc says __SANITIZE_ADDRESS__, clang before 16 only __has_feature) */
#if defined(__SANITIZE_ADDRESS__)
#define SIGNER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIGNER_SANITIZED 1
#endif
#endif

struct key {
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

_Static_assert(crypto_sign_PUBLICKEYBYTES == SIGNER_PK_LEN, "public key size");
_Static_assert(crypto_sign_BYTES == SIGNER_SIG_LEN, "signature size");

static int write_full(int fd, const void *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = write(fd, (const char *)buf + put, len - put);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		put += (size_t)n;
	}
	return 0;
}

/* The key file as the daemon wrote it before the signer existed: the same checks. */
static int key_read(const char *path, struct key *k)
{
	int fd = signer__key_open(path, true), r;

	if (fd < 0)
		return fd;
	r = signer__pread_full(fd, k->sk, sizeof(k->sk), (off_t)SIGNER_KEY_MAGIC_LEN);
	if (r == 0)
		r = crypto_sign_ed25519_sk_to_pk(k->pk, k->sk) == 0 ? 0 : -EBADMSG;
	close(fd);
	return r;
}

static int key_create(const char *path, struct key *k)
{
	char tmp[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	crypto_sign_keypair(k->pk, k->sk);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	r = write_full(fd, SIGNER_KEY_MAGIC, SIGNER_KEY_MAGIC_LEN);
	if (r == 0)
		r = write_full(fd, k->sk, sizeof(k->sk));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	/* link() fails if another signer created the key meanwhile: never overwrite a key. */
	if (r == 0 && link(tmp, path) < 0)
		r = -errno;
	unlink(tmp);
	return r;
}

static int key_load(const char *path, struct key *k)
{
	int r = key_read(path, k);

	if (r == -ENOENT) {
		r = key_create(path, k);
		if (r == -EEXIST)
			r = key_read(path, k);
	}
	return r;
}

/* Before the key is in memory: no core file, no ptrace or /proc/PID/mem by the same uid. */
static int undumpable(void)
{
	static const int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE};
	const struct rlimit none = {0, 0};

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &none) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (signal(ignored[i], SIG_IGN) == SIG_ERR)
			return -errno;
	return 0;
}

/* Every fd but the socket, stdin to stderr included: nothing but fd 3 is left to use. */
static int close_others(void)
{
	for (int fd = 0; fd < SIGNER_FD; fd++)
		close(fd);
	if (close_range(SIGNER_FD + 1, ~0U, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	for (long fd = SIGNER_FD + 1, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
		close((int)fd);
	return 0;
}

/*
 * The allow-list: what the loop calls as glibc makes it (recv is recvfrom, send is
 * sendto) on fd 3 only, poll (telling an empty message from the daemon's end closing),
 * and the exits. Signing (BLAKE2b, Ed25519 of a key already in memory) calls nothing.
 * Anything else, and a call of another ABI, kills the process. A sanitized build's
 * signer has the same list and sigaltstack (its runtime's _exit); a sanitizer report
 * in the loop could not be written (no fd 2) and would end it: a failed seal.
 */
static int lock_calls(void)
{
	const struct scmp_arg_cmp on_fd = SCMP_A0_32(SCMP_CMP_EQ, SIGNER_FD);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (!ctx)
		return -ENOMEM;
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvfrom), 1, on_fd);
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 1, on_fd);
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(poll), 0);
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(exit_group), 0);
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(exit), 0);
#if defined(SIGNER_SANITIZED)
	/* sanitized builds only (build-asan, build-fuzz): the runtime's _exit reads the
	 * signal stack */
	if (r == 0)
		r = seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 0);
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	/*
	 * Once loaded, the context is kept: freeing it could make free() trim the heap, a
	 * call the filter refuses. Before, it goes with the failure.
	 */
	if (r < 0)
		seccomp_release(ctx);
	return r;
}

static int lock_down(void)
{
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	r = close_others();
	return r < 0 ? r : lock_calls();
}

/* The status of one request of @n bytes: 0 when it is a seal to make. */
static int32_t check(const struct signer_req *req, ssize_t n)
{
	if (n != (ssize_t)sizeof(*req))
		return -EBADMSG;
	if (req->type != SIGNER_SEAL)
		return -EOPNOTSUPP;
	if (req->zero != 0 || req->seq == 0)
		return -EINVAL;
	return 0;
}

/* After an empty message: true when the daemon's end is closed (not an empty request). */
static bool daemon_gone(void)
{
	struct pollfd p = {.fd = SIGNER_FD, .events = POLLIN};

	return poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void serve(const struct key *k)
{
	for (;;) {
		union {
			struct signer_req req;
			uint8_t raw[sizeof(struct signer_req) + 1]; /* a longer one is seen */
		} in;
		struct signer_reply rep;
		uint8_t msg[SIGNER_HASH_LEN];
		ssize_t n;

		memset(&in, 0, sizeof(in));
		n = recv(SIGNER_FD, &in, sizeof(in), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && daemon_gone()))
			return;
		memset(&rep, 0, sizeof(rep));
		rep.status = check(&in.req, n);
		if (rep.status == 0) {
			signer__head_message(in.req.seq, in.req.hash, msg);
			crypto_sign_detached(rep.sig, NULL, msg, sizeof(msg), k->sk);
		}
		do
			n = send(SIGNER_FD, &rep, sizeof(rep), MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(rep))
			return;
	}
}

int main(int argc, char **argv)
{
	struct signer_hello hello = {.magic = SIGNER_HELLO_MAGIC};
	struct key *k = NULL;
	struct stat st;
	ssize_t n;
	int r;

	if (argc != 2 || fstat(SIGNER_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "usage: nucleus-signer KEYFILE (started by nucleusd, with its "
				"socket as fd 3)\n");
		return 2;
	}
	r = undumpable();
	if (r == 0 && sodium_init() < 0)
		r = -EIO;
	if (r == 0) {
		/* guard pages around it, locked in memory where the limit allows */
		k = sodium_malloc(sizeof(*k));
		r = k ? key_load(argv[1], k) : -ENOMEM;
	}
	if (r == 0 && sodium_mprotect_readonly(k) < 0)
		r = -errno;
	if (r == 0)
		r = lock_down();
	hello.status = r;
	if (r == 0)
		memcpy(hello.pk, k->pk, sizeof(hello.pk));
	do
		n = send(SIGNER_FD, &hello, sizeof(hello), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (r == 0 && n == (ssize_t)sizeof(hello))
		serve(k);
	/* no atexit handlers, no stdio flush: exit_group, the one exit the filter allows */
	_exit(r < 0 ? 1 : 0);
}
