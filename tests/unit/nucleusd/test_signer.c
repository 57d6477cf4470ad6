// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-signer as the daemon runs it (nucleusd/signer.h): the build's executable with a
 * SOCK_SEQPACKET socket as fd 3, spoken to here byte by byte. Its seals verify under the
 * key it announced over the head message (computed here independently, so the format is
 * pinned); malformed requests get errors and it goes on; it ends with the daemon's end;
 * it is locked down (no_new_privs, seccomp, not dumpable, no core, one fd).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "nucleusd/signer.h"
#include "tests/unit/th_file.h"

struct sg {
	char dir[256], key[300];
	pid_t pid;
	int fd; /* the daemon's end */
	struct signer_hello hello;
};

/* Execs the signer on @key with one end of a socket pair as fd 3; @fd: the other end. */
static pid_t spawn_signer(const char *key, int *fd)
{
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int mine = fcntl(sv[1], F_DUPFD, 10);

		if (mine < 0 || dup2(mine, SIGNER_FD) < 0)
			_exit(126);
		execl(SIGNER_PATH, SIGNER_PATH, key, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* One message of at most @len bytes within 10 s: its length, 0 at the end, -1 on timeout. */
static ssize_t recv_within(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 10000) != 1)
		return -1;
	return recv(fd, buf, len, 0);
}

static void start(struct sg *g)
{
	memset(g, 0, sizeof(*g));
	th_tmpdir(g->dir, sizeof(g->dir));
	snprintf(g->key, sizeof(g->key), "%s/audit.key", g->dir);
	g->pid = spawn_signer(g->key, &g->fd);
	cr_assert_eq(recv_within(g->fd, &g->hello, sizeof(g->hello)), (ssize_t)sizeof(g->hello));
	cr_assert_eq(g->hello.magic, SIGNER_HELLO_MAGIC);
}

static void finish(struct sg *g)
{
	if (g->fd >= 0)
		close(g->fd);
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, NULL, 0);
	}
	th_rmrf(g->dir);
}

static struct sg g;

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	start(&g);
	cr_assert_eq(g.hello.status, 0, "hello status %d", g.hello.status);
}

static void teardown(void)
{
	finish(&g);
}

TestSuite(signer, .init = setup, .fini = teardown, .timeout = 60);

/* The head message as docs/daemon.md and nucleusd/audit.c describe it, written here again. */
static void head(uint64_t seq, const uint8_t hash[32], uint8_t out[32])
{
	uint8_t in[22 + 8 + 32];

	memcpy(in, "nucleus-audit-head-v1", 22); /* with its NUL */
	for (int i = 0; i < 8; i++)
		in[22 + i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(in + 30, hash, 32);
	crypto_generichash(out, 32, in, sizeof(in), NULL, 0);
}

/* Sends @len bytes of @msg and returns the reply, which must come and be whole. */
static struct signer_reply ask(int fd, const void *msg, size_t len)
{
	struct signer_reply rep;
	uint8_t raw[sizeof(rep) + 8];

	cr_assert_eq(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
	cr_assert_eq(recv_within(fd, raw, sizeof(raw)), (ssize_t)sizeof(rep), "no whole reply");
	memcpy(&rep, raw, sizeof(rep));
	return rep;
}

static struct signer_req seal_req(uint64_t seq, uint8_t fill)
{
	struct signer_req req = {.type = SIGNER_SEAL, .seq = seq};

	memset(req.hash, fill, sizeof(req.hash));
	return req;
}

/* A valid request is sealed: the signature verifies under the announced key. */
static void expect_seal(uint64_t seq, uint8_t fill)
{
	struct signer_req req = seal_req(seq, fill);
	struct signer_reply rep = ask(g.fd, &req, sizeof(req));
	uint8_t msg[32];

	cr_assert_eq(rep.status, 0, "status %d", rep.status);
	head(seq, req.hash, msg);
	cr_assert_eq(crypto_sign_verify_detached(rep.sig, msg, sizeof(msg), g.hello.pk), 0,
		     "the seal of %llu does not verify", (unsigned long long)seq);
}

Test(signer, a_seal_verifies_under_the_key_it_announced)
{
	uint8_t pk[32];

	expect_seal(1, 0x11);
	expect_seal(UINT64_MAX, 0xee);
	/* the key it made is the file's, as readers of the public half find it */
	cr_assert_eq(signer__key_public(g.key, pk), 0);
	cr_assert_arr_eq(pk, g.hello.pk, sizeof(pk));
}

Test(signer, malformed_requests_get_errors_and_it_keeps_answering)
{
	struct signer_req req = seal_req(5, 0x22);
	uint8_t big[200] = {0};
	struct {
		const char *what;
		size_t len;
		int status;
	} cases[] = {
		{"empty", 0, -EBADMSG},		 {"one byte", 1, -EBADMSG},
		{"one short", 47, -EBADMSG},	 {"one long", 49, -EBADMSG},
		{"long", sizeof(big), -EBADMSG}, {"unknown type", 48, -EOPNOTSUPP},
		{"type 0", 48, -EOPNOTSUPP},	 {"seq 0", 48, -EINVAL},
		{"reserved set", 48, -EINVAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct signer_req bad = req;
		struct signer_reply rep;
		static const uint8_t zero[SIGNER_SIG_LEN];

		if (strcmp(cases[i].what, "unknown type") == 0)
			bad.type = 2;
		else if (strcmp(cases[i].what, "type 0") == 0)
			bad.type = 0;
		else if (strcmp(cases[i].what, "seq 0") == 0)
			bad.seq = 0;
		else if (strcmp(cases[i].what, "reserved set") == 0)
			bad.zero = 1;
		memcpy(big, &bad, sizeof(bad));
		rep = ask(g.fd, big, cases[i].len);
		cr_assert_eq(rep.status, cases[i].status, "%s: status %d, want %d", cases[i].what,
			     rep.status, cases[i].status);
		cr_assert_arr_eq(rep.sig, zero, sizeof(zero), "%s: a signature came",
				 cases[i].what);
		expect_seal(5 + i, (uint8_t)i); /* and it goes on */
	}
	cr_assert_eq(waitpid(g.pid, NULL, WNOHANG), 0, "the signer ended");
}

/* Until @pid ends (10 s at most): its status. */
static int wait_end(pid_t pid)
{
	int st = 0;

	for (int i = 0; i < 1000; i++) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		cr_assert_geq(w, 0);
		if (w == pid)
			return st;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	cr_assert_fail("the signer did not end");
	return -1;
}

Test(signer, it_ends_when_the_daemons_end_closes)
{
	int st;

	expect_seal(3, 0x33);
	close(g.fd);
	g.fd = -1;
	st = wait_end(g.pid);
	g.pid = 0;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", (unsigned)st);
}

Test(signer, it_ignores_the_signals_sent_to_the_daemons_group)
{
	kill(g.pid, SIGTERM);
	kill(g.pid, SIGINT);
	kill(g.pid, SIGHUP);
	expect_seal(9, 0x99); /* the daemon's clean stop seals last */
	cr_assert_eq(waitpid(g.pid, NULL, WNOHANG), 0, "the signer ended");
}

/* The line of /proc/@pid/@file that starts with @key, value only ("" when none). */
static const char *proc_field(pid_t pid, const char *file, const char *key)
{
	static char line[256];
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, strlen(key)) == 0) {
			char *v = line + strlen(key);

			v += strspn(v, " \t:");
			v[strcspn(v, "\n")] = '\0';
			fclose(f);
			return v;
		}
	}
	fclose(f);
	return "";
}

/*
 * As a signer's own uid (not root, which may read anything): its environment and
 * memory cannot be read, its /proc/PID files are root's. 0, or the check that failed.
 */
static int unreadable_as_same_uid(pid_t pid)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0 || errno != EACCES)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0 || errno != EACCES)
		return 2;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if (stat(path, &st) < 0 || st.st_uid != 0)
		return 3; /* not dumpable: the files of /proc/PID are root's */
	return 0;
}

/* In a child as nobody: a signer of its own, and what nobody can read of it. */
static int as_nobody(void)
{
	char dir[] = "/tmp/nucleus-test-nobody-XXXXXX", key[64];
	struct signer_hello h;
	int fd, r;
	pid_t pid;

	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0 ||
	    access(SIGNER_PATH, X_OK) < 0)
		return 77;
	if (!mkdtemp(dir))
		return 10;
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	pid = spawn_signer(key, &fd);
	if (recv_within(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) || h.status != 0)
		r = 11;
	else
		r = unreadable_as_same_uid(pid);
	close(fd);
	waitpid(pid, NULL, 0);
	unlink(key);
	rmdir(dir);
	return r;
}

Test(signer, it_is_locked_down)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	expect_seal(1, 0x01); /* past its start: the filter is in place */
	cr_assert_str_eq(proc_field(g.pid, "status", "NoNewPrivs"), "1");
	cr_assert_str_eq(proc_field(g.pid, "status", "Seccomp"), "2");
	cr_assert(strncmp(proc_field(g.pid, "limits", "Max core file size"), "0 ", 2) == 0,
		  "core limit: %s", proc_field(g.pid, "limits", "Max core file size"));
	if (geteuid() != 0) {
		cr_assert_eq(unreadable_as_same_uid(g.pid), 0, "readable by its own uid");
		return;
	}
	/* root reads /proc/PID/fd: the socket is its one fd */
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)g.pid);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			cr_assert_str_eq(e->d_name, "3", "fd %s is open in the signer", e->d_name);
			n++;
		}
	closedir(d);
	cr_assert_eq(n, 1);
	/* root may read any process: the same-uid checks run as nobody, with a signer of its own */
	{
		pid_t pid = fork();
		int st;

		cr_assert_geq(pid, 0);
		if (pid == 0)
			_exit(as_nobody());
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFEXITED(st));
		if (WEXITSTATUS(st) == 77)
			cr_log_warn("cannot run the signer as nobody here: the same-uid checks "
				    "(environ, mem, /proc ownership) were skipped");
		else
			cr_assert_eq(WEXITSTATUS(st), 0,
				     "as nobody, check %d failed (1 environ, 2 mem readable, 3 "
				     "/proc/PID/environ not root's: dumpable; 1x: its start)",
				     WEXITSTATUS(st));
	}
}

/* The key file as every daemon before the signer wrote it: magic, then libsodium's sk. */
static void write_key(const char *path, const uint8_t sk[64])
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "nucleus-audit-key-v1\n", 21), 21);
	cr_assert_eq(write(fd, sk, 64), 64);
	close(fd);
}

Test(signer, an_existing_key_file_is_used_as_it_is)
{
	uint8_t pk[32], sk[64];
	struct sg old;

	crypto_sign_keypair(pk, sk);
	th_tmpdir(old.dir, sizeof(old.dir));
	snprintf(old.key, sizeof(old.key), "%s/audit.key", old.dir);
	write_key(old.key, sk);
	old.pid = spawn_signer(old.key, &old.fd);
	cr_assert_eq(recv_within(old.fd, &old.hello, sizeof(old.hello)),
		     (ssize_t)sizeof(old.hello));
	cr_assert_eq(old.hello.status, 0);
	cr_assert_arr_eq(old.hello.pk, pk, sizeof(pk));
	{
		struct signer_req req = seal_req(42, 0x42);
		struct signer_reply rep = ask(old.fd, &req, sizeof(req));
		uint8_t msg[32], sig[64];

		cr_assert_eq(rep.status, 0);
		/* Ed25519 is deterministic: the signer's seal is the one the old daemon made */
		head(42, req.hash, msg);
		crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
		cr_assert_arr_eq(rep.sig, sig, sizeof(sig));
	}
	finish(&old);
}

Test(signer, a_key_others_may_read_is_refused_in_its_hello)
{
	struct sg bad;

	cr_assert_eq(chmod(g.key, 0640), 0);
	memset(&bad, 0, sizeof(bad));
	snprintf(bad.key, sizeof(bad.key), "%s", g.key);
	bad.pid = spawn_signer(bad.key, &bad.fd);
	cr_assert_eq(recv_within(bad.fd, &bad.hello, sizeof(bad.hello)),
		     (ssize_t)sizeof(bad.hello));
	cr_assert_eq(bad.hello.status, -EPERM);
	cr_assert_eq(recv_within(bad.fd, &bad.hello, sizeof(bad.hello)), 0, "it goes on");
	close(bad.fd);
	waitpid(bad.pid, NULL, 0);
	{
		uint8_t pk[32];

		cr_assert_eq(signer__key_public(g.key, pk), -EPERM);
	}
}
