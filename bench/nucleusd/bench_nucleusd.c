// SPDX-License-Identifier: Apache-2.0
/*
 * Gate overhead of nucleusd: starts the daemon with the fake backend (its tool calls do
 * no guest work) on a temp dir and measures
 *   - p50/p99 round trip of a trivial allowed tool call (HTTP parsing, validation,
 *     policy decision, SQLite transaction with the audit entries, reply) over one
 *     keep-alive connection, and over one connection per request (what the client
 *     library does);
 *   - requests/s of GET /v1/sandboxes/{id} over one keep-alive connection.
 * Usage: bench-nucleusd NUCLEUSD [CALLS] [JSON_OUT]. Not a test: it asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"

struct stats {
	double p50, p99, mean, max, per_s;
	long n;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void summarize(double *lat, long n, double total_us, struct stats *s)
{
	double sum = 0;

	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	for (long i = 0; i < n; i++)
		sum += lat[i];
	s->n = n;
	s->p50 = lat[n / 2];
	s->p99 = lat[(long)(n * 0.99)];
	s->max = lat[n - 1];
	s->mean = sum / (double)n;
	s->per_s = (double)n / (total_us / 1e6);
}

static int sock_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response (Content-Length framed) from a keep-alive connection; its status. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t have = 0, need = 0;
	char *hdr_end = NULL;
	int status;

	for (;;) {
		ssize_t n = read(fd, buf + have, cap - 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		have += (size_t)n;
		buf[have] = '\0';
		if (!hdr_end) {
			char *cl;

			hdr_end = strstr(buf, "\r\n\r\n");
			if (!hdr_end)
				continue;
			cl = strcasestr(buf, "\r\nContent-Length:");
			if (!cl || cl > hdr_end)
				return -EPROTO;
			need = (size_t)(hdr_end + 4 - buf) + strtoul(cl + 17, NULL, 10);
			if (need >= cap)
				return -E2BIG;
		}
		if (have >= need)
			break;
	}
	if (have != need || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -EPROTO;
	return status;
}

static int keepalive_run(const char *sock, const char *req, long n, struct stats *s,
			 int want_status)
{
	static char buf[1 << 16];
	double *lat = calloc((size_t)n, sizeof(*lat));
	double t0, start;
	size_t len = strlen(req);
	int fd, r = 0;

	if (!lat)
		return -ENOMEM;
	fd = sock_connect(sock);
	if (fd < 0) {
		free(lat);
		return fd;
	}
	start = now_us();
	for (long i = 0; i < n && r == 0; i++) {
		t0 = now_us();
		r = write_all(fd, req, len);
		if (r == 0) {
			int st = read_response(fd, buf, sizeof(buf));

			r = st == want_status ? 0 : st < 0 ? st : -EBADMSG;
			if (r)
				fprintf(stderr, "request %ld: status %d: %.300s\n", i, st, buf);
		}
		lat[i] = now_us() - t0;
	}
	if (r == 0)
		summarize(lat, n, now_us() - start, s);
	close(fd);
	free(lat);
	return r;
}

/* What nucleusctl does: one connection per request, through the client library. */
static int per_conn_run(struct api_client *c, const char *path, json_t *body, long n,
			struct stats *s)
{
	double *lat = calloc((size_t)n, sizeof(*lat));
	double t0, start;
	int r = 0;

	if (!lat)
		return -ENOMEM;
	start = now_us();
	for (long i = 0; i < n && r == 0; i++) {
		struct api_response resp = {0};

		t0 = now_us();
		r = api_client__call(c, "POST", path, body, &resp);
		if (r == 0 && resp.status != 200)
			r = -EBADMSG;
		lat[i] = now_us() - t0;
		api_response__clear(&resp);
	}
	if (r == 0)
		summarize(lat, n, now_us() - start, s);
	free(lat);
	return r;
}

static pid_t spawn_daemon(const char *exe, const char *data, const char *sock, const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(exe, exe, "--fake-backend", "--data-dir", data, "--socket", sock,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int wait_ready(struct api_client *c, pid_t pid)
{
	struct timespec ts = {0, 10 * 1000000};

	for (int i = 0; i < 6000; i++) {
		struct api_response r = {0};
		int st = -1;

		if (api_client__call(c, "GET", "/v1/health", NULL, &r) == 0)
			st = r.status;
		api_response__clear(&r);
		if (st == 200)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

static int create_sandbox(struct api_client *c, char id[32])
{
	json_t *req = json_pack("{ss si si}", "profile", "default", "vcpus", 1, "memory_mib", 128);
	struct api_response r = {0};
	int rc = api_client__call(c, "POST", "/v1/sandboxes", req, &r);

	json_decref(req);
	if (rc == 0 && (r.status != 201 || !json_is_string(json_object_get(r.json, "id"))))
		rc = -EBADMSG;
	if (rc == 0)
		snprintf(id, 32, "%s", json_string_value(json_object_get(r.json, "id")));
	api_response__clear(&r);
	return rc;
}

static void print_row(const char *name, const struct stats *s)
{
	printf("%-38s %8ld %9.1f %9.1f %9.1f %9.1f %10.0f\n", name, s->n, s->p50, s->p99, s->mean,
	       s->max, s->per_s);
}

static void json_row(FILE *f, const char *name, const struct stats *s, const char *sep)
{
	fprintf(f,
		"    \"%s\": {\"n\": %ld, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, "
		"\"max_us\": %.1f, \"per_s\": %.0f}%s\n",
		name, s->n, s->p50, s->p99, s->mean, s->max, s->per_s, sep);
}

static int run(const char *sock, long calls, const char *out)
{
	static const char body[] = "{\"args\":{\"path\":\"/workspace/README.md\"}}";
	struct stats gate_ka = {0}, gate_pc = {0}, get_ka = {0};
	struct api_client *c = NULL;
	char id[32], req[512], path[128];
	json_t *jbody = json_loads(body, 0, NULL);
	FILE *f;
	int r;

	r = api_client__new(sock, &c);
	if (r < 0)
		goto out;
	r = create_sandbox(c, id);
	if (r < 0) {
		fprintf(stderr, "cannot create the sandbox: %s\n", strerror(-r));
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: nucleusd\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 path, strlen(body), body);
	/* warm-up, then the measured runs */
	r = keepalive_run(sock, req, calls / 10 + 1, &gate_ka, 200);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &gate_ka, 200);
	if (r == 0)
		r = per_conn_run(c, path, jbody, calls, &gate_pc);
	snprintf(req, sizeof(req), "GET /v1/sandboxes/%s HTTP/1.1\r\nHost: nucleusd\r\n\r\n", id);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &get_ka, 200);
	if (r < 0) {
		fprintf(stderr, "benchmark failed: %s\n", strerror(-r));
		goto out;
	}
	printf("%-38s %8s %9s %9s %9s %9s %10s\n", "nucleusd (fake backend)", "n", "p50 us",
	       "p99 us", "mean us", "max us", "req/s");
	print_row("tool call echo, keep-alive", &gate_ka);
	print_row("tool call echo, conn/request (client)", &gate_pc);
	print_row("GET /v1/sandboxes/{id}, keep-alive", &get_ka);
	printf("gate target: p99 <= 200 us (%s on keep-alive)\n",
	       gate_ka.p99 <= 200 ? "met" : "NOT met");
	f = fopen(out, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fprintf(f, "{\n  \"benchmark\": \"nucleusd-gate\",\n  \"backend\": \"fake\",\n");
	fprintf(f, "  \"target_p99_us\": 200,\n  \"results\": {\n");
	json_row(f, "tool_call_keepalive", &gate_ka, ",");
	json_row(f, "tool_call_conn_per_request", &gate_pc, ",");
	json_row(f, "get_sandbox_keepalive", &get_ka, "");
	fprintf(f, "  }\n}\n");
	fclose(f);
	printf("wrote %s\n", out);
out:
	json_decref(jbody);
	api_client__free(c);
	return r;
}

static void rm_tree(const char *dir)
{
	pid_t pid = fork();

	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/bench-nucleusd-XXXXXX", data[96], sock[96], log[96];
	long calls = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
	const char *out = argc > 3 ? argv[3] : "bench-nucleusd.json";
	struct api_client *c = NULL;
	pid_t pid;
	int r;

	if (argc < 2 || calls < 100) {
		fprintf(stderr, "usage: %s NUCLEUSD [CALLS>=100] [JSON_OUT]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(sock, sizeof(sock), "%s/nucleusd.sock", dir);
	snprintf(log, sizeof(log), "%s/nucleusd.log", dir);
	pid = spawn_daemon(argv[1], data, sock, log);
	r = pid < 0 ? -errno : api_client__new(sock, &c);
	if (r == 0)
		r = wait_ready(c, pid);
	api_client__free(c);
	if (r == 0)
		r = run(sock, calls, out);
	else
		fprintf(stderr, "nucleusd did not start: %s (log %s)\n", strerror(-r), log);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (r == 0)
		rm_tree(dir);
	return r == 0 ? 0 : 1;
}
