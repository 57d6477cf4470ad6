// SPDX-License-Identifier: Apache-2.0
/*
 * Gate overhead of nucleusd: starts the daemon with the fake backend (its tool calls do
 * no guest work) on a temp dir and measures
 *   - p50/p90/p99/p99.9 round trip of a trivial allowed tool call (HTTP parsing,
 *     validation, policy decision, SQLite transactions with the audit entries, reply) over
 *     one keep-alive connection, and over one connection per request (what the client
 *     library does);
 *   - requests/s of GET /v1/sandboxes/{id} over one keep-alive connection;
 *   - the same tool call under load: 64 and 256 clients at once, each on its own
 *     keep-alive connection or a connection per request: p50/p99 and errors (refused
 *     connections, statuses other than 200).
 * Each keep-alive run is done twice: with the client and the daemon's event-loop thread
 * free to run on any CPU, and with both on one CPU. The client waits for each reply, so
 * on one CPU nothing runs in parallel anyway; what goes away is the cross-CPU wakeup of
 * every request and reply, which a VM pays as an IPI exit (~25 us each way on the 2-vCPU
 * dev VM, a few us on hardware). The daemon's other threads (WAL checkpoints) stay free.
 * Usage: bench-nucleusd NUCLEUSD [CALLS] [JSON_OUT]. Not a test: it asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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
#include "bench/nucleusd/bench.h"

/* The measured call: a trivial call that the sandbox's policy allows. */
#define BENCH_PROFILE "permissive-local"
#define BENCH_TOOL    "read_file"
static const char bench_body[] = "{\"args\":{\"path\":\"/workspace/README.md\"}}";

double now_us(void)
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

void summarize(double *lat, long n, double total_us, struct stats *s)
{
	double sum = 0;

	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	for (long i = 0; i < n; i++)
		sum += lat[i];
	s->n = n;
	s->p50 = lat[n / 2];
	s->p90 = lat[(long)(n * 0.90)];
	s->p99 = lat[(long)(n * 0.99)];
	s->p999 = lat[(long)(n * 0.999)];
	s->max = lat[n - 1];
	s->mean = sum / (double)n;
	s->per_s = (double)n / (total_us / 1e6);
}

int sock_connect(const char *path)
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

int write_all(int fd, const char *p, size_t n)
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

int read_response(int fd, char *buf, size_t cap)
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
	json_t *req =
		json_pack("{ss si si}", "profile", BENCH_PROFILE, "vcpus", 1, "memory_mib", 128);
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
	printf("%-40s %6ld %7.1f %7.1f %7.1f %8.1f %7.1f %8.1f %7.0f %6ld\n", name, s->n, s->p50,
	       s->p90, s->p99, s->p999, s->mean, s->max, s->per_s, s->errors);
}

static void json_row(FILE *f, const char *name, const struct stats *s, const char *sep)
{
	fprintf(f,
		"    \"%s\": {\"n\": %ld, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
		"\"p999_us\": %.1f, \"mean_us\": %.1f, \"max_us\": %.1f, \"per_s\": %.0f, "
		"\"errors\": %ld}%s\n",
		name, s->n, s->p50, s->p90, s->p99, s->p999, s->mean, s->max, s->per_s, s->errors,
		sep);
}

/* The daemon's main thread (tid = pid) and this process on one CPU, or back on all. */
static int pin(pid_t daemon, bool one)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (one) {
		CPU_SET(0, &set);
	} else {
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	}
	if (sched_setaffinity(daemon, sizeof(set), &set) < 0 ||
	    sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

enum {
	GATE_ANY,
	GATE_ONE,
	GATE_CONN,
	GET_ANY,
	GET_ONE,
	LOAD_64_KA,
	LOAD_256_KA,
	LOAD_64_CONN,
	LOAD_256_CONN,
	N_ROWS
};

static const char *const row_names[N_ROWS] = {
	"tool call, keep-alive, any CPU",      "tool call, keep-alive, one CPU",
	"tool call, conn/request (client)",    "GET /v1/sandboxes/{id}, any CPU",
	"GET /v1/sandboxes/{id}, one CPU",     "tool call, 64 clients, keep-alive",
	"tool call, 256 clients, keep-alive",  "tool call, 64 clients, conn/request",
	"tool call, 256 clients, conn/request"};
static const char *const row_keys[N_ROWS] = {
	"tool_call_keepalive",	 "tool_call_keepalive_one_cpu",	  "tool_call_conn_per_request",
	"get_sandbox_keepalive", "get_sandbox_keepalive_one_cpu", "load_64_keepalive",
	"load_256_keepalive",	 "load_64_conn_per_request",	  "load_256_conn_per_request"};

/* Rows LOAD_*: clients and whether each request has its own connection. */
static const struct {
	int row, clients;
	bool per_conn;
} loads[] = {
	{LOAD_64_KA, 64, false},
	{LOAD_256_KA, 256, false},
	{LOAD_64_CONN, 64, true},
	{LOAD_256_CONN, 256, true},
};

static int measure(const char *sock, pid_t daemon, struct api_client *c, const char *id, long calls,
		   struct stats st[N_ROWS])
{
	char req[512], path[128];
	json_t *jbody = json_loads(bench_body, 0, NULL);
	int r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/%s", id, BENCH_TOOL);
	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: nucleusd\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 path, strlen(bench_body), bench_body);
	/* warm-up, then the measured runs */
	r = keepalive_run(sock, req, calls / 10 + 1, &st[GATE_ANY], 200);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &st[GATE_ANY], 200);
	if (r == 0)
		r = pin(daemon, true);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &st[GATE_ONE], 200);
	if (r == 0)
		r = pin(daemon, false);
	if (r == 0)
		r = per_conn_run(c, path, jbody, calls, &st[GATE_CONN]);
	snprintf(req, sizeof(req), "GET /v1/sandboxes/%s HTTP/1.1\r\nHost: nucleusd\r\n\r\n", id);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &st[GET_ANY], 200);
	if (r == 0)
		r = pin(daemon, true);
	if (r == 0)
		r = keepalive_run(sock, req, calls, &st[GET_ONE], 200);
	if (r == 0)
		r = pin(daemon, false);
	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: nucleusd\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 path, strlen(bench_body), bench_body);
	for (size_t i = 0; r == 0 && i < sizeof(loads) / sizeof(loads[0]); i++)
		r = load_run(sock, req, calls, loads[i].clients, loads[i].per_conn, 200,
			     &st[loads[i].row]);
	json_decref(jbody);
	return r;
}

static int report(const struct stats st[N_ROWS], const char *out)
{
	FILE *f;

	printf("%-40s %6s %7s %7s %7s %8s %7s %8s %7s %6s\n",
	       "nucleusd (fake backend), " BENCH_PROFILE "/" BENCH_TOOL, "n", "p50 us", "p90",
	       "p99", "p99.9", "mean", "max", "req/s", "errors");
	for (int i = 0; i < N_ROWS; i++)
		print_row(row_names[i], &st[i]);
	printf("gate target p99 <= 200 us: one CPU %.0f us (%s), any CPU %.0f us (%s)\n",
	       st[GATE_ONE].p99, st[GATE_ONE].p99 <= 200 ? "met" : "NOT met", st[GATE_ANY].p99,
	       st[GATE_ANY].p99 <= 200 ? "met" : "NOT met");
	f = fopen(out, "w");
	if (!f)
		return -errno;
	fprintf(f, "{\n  \"benchmark\": \"nucleusd-gate\",\n  \"backend\": \"fake\",\n");
	fprintf(f, "  \"profile\": \"%s\",\n  \"tool\": \"%s\",\n", BENCH_PROFILE, BENCH_TOOL);
	fprintf(f, "  \"target_p99_us\": 200,\n  \"results\": {\n");
	for (int i = 0; i < N_ROWS; i++)
		json_row(f, row_keys[i], &st[i], i + 1 < N_ROWS ? "," : "");
	fprintf(f, "  }\n}\n");
	fclose(f);
	printf("wrote %s\n", out);
	return 0;
}

static int run(const char *sock, pid_t daemon, long calls, const char *out)
{
	struct stats st[N_ROWS] = {0};
	struct api_client *c = NULL;
	char id[32];
	int r;

	r = api_client__new(sock, &c);
	if (r < 0)
		goto out;
	r = create_sandbox(c, id);
	if (r < 0) {
		fprintf(stderr, "cannot create the sandbox: %s\n", strerror(-r));
		goto out;
	}
	r = measure(sock, daemon, c, id, calls, st);
	if (r < 0) {
		fprintf(stderr, "benchmark failed: %s\n", strerror(-r));
		goto out;
	}
	r = report(st, out);
out:
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
		r = run(sock, pid, calls, out);
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
