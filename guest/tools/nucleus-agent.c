/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nucleus-agent - debug CLI for the guest agent, over libguest (guest/guest.h).
 *
 *   nucleus-agent (--vsock UDS [--port N] | --unix PATH) COMMAND [ARGS]
 *     run [--timeout S] [--cwd DIR] [--env K=V]... [--id N] [--stdin] -- CMD [ARG]...
 *         streams the command's stdout/stderr; exits with its code (128+N for signal N)
 *     read PATH            file contents to stdout
 *     write PATH [--mode 0644] < data
 *     ls PATH | stat PATH
 *     kill ID [SIGNAL]     signal (default TERM) the command started by request ID
 *     ping | shutdown
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest/guest.h"

static const char *const ftype_names[] = {"?", "file", "dir", "link", "chr", "blk", "fifo", "sock"};

static int usage(void)
{
	fprintf(stderr,
		"usage: nucleus-agent (--vsock UDS [--port N] | --unix PATH) COMMAND\n"
		"  run [--timeout S] [--cwd DIR] [--env K=V]... [--id N] [--stdin] -- CMD...\n"
		"  read PATH | write PATH [--mode 0644] < data | ls PATH | stat PATH\n"
		"  kill ID [SIGNAL] | ping | shutdown\n");
	return 2;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "nucleus-agent: %s: %s\n", what, strerror(-r));
	return 1;
}

static int write_out(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int to_stdout(void *opaque, const void *data, size_t len)
{
	return write_out(STDOUT_FILENO, data, len);
}

static int to_stderr(void *opaque, const void *data, size_t len)
{
	return write_out(STDERR_FILENO, data, len);
}

static void on_started(void *opaque, uint64_t id, uint32_t pid)
{
	if (*(bool *)opaque)
		fprintf(stderr, "nucleus-agent: started id %" PRIu64 " pid %u\n", id, pid);
}

/* Reads all of stdin (bounded by what a RUN frame can carry). */
static int slurp_stdin(char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			char *nb = cap >= GUEST_PAYLOAD_MAX ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return cap >= GUEST_PAYLOAD_MAX ? -E2BIG : -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int cmd_run(struct guest *g, int argc, char **argv)
{
	struct guest_run_req req = {0};
	struct guest_run_cbs cbs = {on_started, to_stdout, to_stderr};
	struct guest_run_result res;
	const char **envp = calloc((size_t)argc + 1, sizeof(char *));
	char *in = NULL;
	bool verbose = false, use_stdin = false;
	int i, nenv = 0, r;

	if (!envp)
		return fail("run", -ENOMEM);
	for (i = 0; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			req.timeout_ms = (uint32_t)(strtod(argv[++i], NULL) * 1000);
		else if (!strcmp(argv[i], "--cwd") && i + 1 < argc)
			req.cwd = argv[++i];
		else if (!strcmp(argv[i], "--env") && i + 1 < argc)
			envp[nenv++] = argv[++i];
		else if (!strcmp(argv[i], "--id") && i + 1 < argc)
			req.id = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--stdin"))
			use_stdin = true;
		else if (!strcmp(argv[i], "-v"))
			verbose = true;
		else
			break;
	}
	if (i >= argc - 1 || strcmp(argv[i], "--")) {
		free(envp);
		return usage();
	}
	req.argv = (const char *const *)&argv[i + 1];
	req.envp = nenv ? envp : NULL;
	if (use_stdin) {
		r = slurp_stdin(&in, &req.stdin_len);
		if (r < 0) {
			free(envp);
			return fail("stdin", r);
		}
		req.stdin_data = in;
	}
	r = guest__run(g, &req, &cbs, &verbose, &res);
	free(envp);
	free(in);
	if (r < 0)
		return fail("run", r);
	if (res.timed_out)
		fprintf(stderr, "nucleus-agent: timed out\n");
	return res.signal ? 128 + res.signal : res.exit_code;
}

static void print_stat(const char *name, const struct guest_stat *st)
{
	time_t t = (time_t)(st->mtime_ns / 1000000000);
	struct tm tm;
	char when[32] = "?";

	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-4s %04o %12" PRIu64 " %s %s\n", ftype_names[st->ftype <= 7 ? st->ftype : 0],
	       st->mode, st->size, when, name);
}

static int list_cb(void *opaque, const char *name, const struct guest_stat *st)
{
	print_stat(name, st);
	return 0;
}

static int cmd_write(struct guest *g, int argc, char **argv)
{
	uint32_t mode = 0644;
	int r;

	if (argc < 1)
		return usage();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = (uint32_t)strtoul(argv[++i], NULL, 8);
		else
			return usage();
	}
	r = guest__write_file_fd(g, argv[0], mode, STDIN_FILENO);
	return r < 0 ? fail("write", r) : 0;
}

static int cmd_kill(struct guest *g, int argc, char **argv)
{
	int sig = SIGTERM, r;

	if (argc < 1)
		return usage();
	if (argc > 1) {
		sig = atoi(argv[1]); /* a number, or a name below */
		if (sig < 0 || sig > 64)
			sig = 0;
		for (int s = 1; !sig && s < 65; s++) {
			const char *n = sigabbrev_np(s);

			if (n && (!strcmp(argv[1], n) ||
				  (!strncmp(argv[1], "SIG", 3) && !strcmp(argv[1] + 3, n))))
				sig = s;
		}
		if (!sig)
			return usage();
	}
	r = guest__kill(g, strtoull(argv[0], NULL, 0), sig);
	return r < 0 ? fail("kill", r) : 0;
}

static int dispatch(struct guest *g, int argc, char **argv)
{
	const char *cmd = argv[0];
	struct guest_stat st;
	uint32_t version;
	int r;

	argc--, argv++;
	if (!strcmp(cmd, "run"))
		return cmd_run(g, argc, argv);
	if (!strcmp(cmd, "write"))
		return cmd_write(g, argc, argv);
	if (!strcmp(cmd, "kill"))
		return cmd_kill(g, argc, argv);
	if (!strcmp(cmd, "ping")) {
		r = guest__ping(g, &version);
		if (r == 0)
			printf("version %u\n", version);
	} else if (!strcmp(cmd, "shutdown")) {
		r = guest__shutdown(g);
	} else if (argc != 1) {
		return usage();
	} else if (!strcmp(cmd, "read")) {
		r = guest__read_file(g, argv[0], to_stdout, NULL, NULL);
	} else if (!strcmp(cmd, "ls")) {
		r = guest__list(g, argv[0], list_cb, NULL);
	} else if (!strcmp(cmd, "stat")) {
		r = guest__stat(g, argv[0], &st);
		if (r == 0)
			print_stat(argv[0], &st);
	} else {
		return usage();
	}
	return r < 0 ? fail(cmd, r) : 0;
}

int main(int argc, char **argv)
{
	const char *vsock = NULL, *unix_path = NULL;
	uint32_t port = GUEST_AGENT_PORT;
	struct guest *g = NULL;
	int i, r;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--vsock") && i + 1 < argc)
			vsock = argv[++i];
		else if (!strcmp(argv[i], "--unix") && i + 1 < argc)
			unix_path = argv[++i];
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = (uint32_t)strtoul(argv[++i], NULL, 0);
		else
			return usage();
	}
	if (i >= argc || !vsock == !unix_path)
		return usage();
	r = vsock ? guest__open_vsock(vsock, port, &g) : guest__open_unix(unix_path, &g);
	if (r < 0)
		return fail("open", r);
	r = dispatch(g, argc - i, argv + i);
	guest__close(g);
	fflush(stdout);
	return r;
}
