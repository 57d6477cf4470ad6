// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/th_budget.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

/*
 * LeakSanitizer (sanitizer builds): criterion's own per-test timeout bookkeeping
 * (BoxFort's bxfi_push_timeout) may leave one 48-byte request behind when the run ends
 * before its watchdog thread freed the last cancelled one. That race is criterion's, not
 * ours; it made a green suite fail now and then.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcriterion.so\n";
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void spawn(struct thd *d)
{
	const char *argv[24] = {NUCLEUSD_PATH, "--fake-backend", "--data-dir",
				d->data,       "--socket",	 d->sock};
	int n = 6, fd;

	for (int i = 0; i < 8 && d->extra[i]; i++)
		argv[n++] = d->extra[i];
	argv[n] = NULL;
	d->pid = fork();
	cr_assert_geq(d->pid, 0);
	if (d->pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		for (int i = 0; i < d->hold_fds; i++)
			if (open("/dev/null", O_RDONLY) < 0)
				_exit(126);
		if (d->rlimit_nofile > 0) {
			struct rlimit rl = {(rlim_t)d->rlimit_nofile, (rlim_t)d->rlimit_nofile};

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

/* Until /v1/health answers (true) or the daemon exits (false, its exit code in *@code). */
static bool ready_or_exit(struct thd *d, int *code)
{
	struct api_client *c = NULL;
	int status;

	cr_assert_eq(api_client__new(d->sock, &c), 0);
	/* Generous: the machine may be very slow; this is no timing assertion. */
	for (int i = 0; i < 6000; i++) {
		struct api_response r = {0};

		if (api_client__call(c, "GET", "/v1/health", NULL, &r) == 0 && r.status == 200) {
			api_response__clear(&r);
			api_client__free(c);
			return true;
		}
		api_response__clear(&r);
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			api_client__free(c);
			*code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			return false;
		}
		sleep_ms(10);
	}
	api_client__free(c);
	cr_assert_fail("nucleusd did not answer (see %s)", d->log);
	return false;
}

static void wait_ready(struct thd *d)
{
	int code;

	cr_assert(ready_or_exit(d, &code), "nucleusd exited (%d) during start (see %s)", code,
		  d->log);
}

int thd_restart_fails(struct thd *d)
{
	int code = 0;

	cr_assert_eq(d->pid, 0, "daemon still running");
	spawn(d);
	cr_assert_not(ready_or_exit(d, &code), "nucleusd started (see %s)", d->log);
	return code;
}

void thd_start(struct thd *d)
{
	th_tmpdir(d->dir, sizeof(d->dir));
	snprintf(d->data, sizeof(d->data), "%s/data", d->dir);
	snprintf(d->sock, sizeof(d->sock), "%s/nucleusd.sock", d->dir);
	snprintf(d->db, sizeof(d->db), "%s/nucleus.db", d->data);
	snprintf(d->log, sizeof(d->log), "%s/nucleusd.log", d->dir);
	spawn(d);
	wait_ready(d);
}

void thd_restart(struct thd *d)
{
	cr_assert_eq(d->pid, 0, "daemon still running");
	spawn(d);
	wait_ready(d);
}

static void stop_with(struct thd *d, int sig)
{
	int status;

	if (d->pid <= 0)
		return;
	kill(d->pid, sig);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
}

void thd_stop(struct thd *d)
{
	stop_with(d, SIGTERM);
}

void thd_kill9(struct thd *d)
{
	stop_with(d, SIGKILL);
}

/* A sanitizer build's daemon reports leaks and errors in its log at exit. */
static void check_log(const struct thd *d)
{
	static char buf[1 << 16];
	FILE *f = fopen(d->log, "r");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert_null(strstr(buf, "Sanitizer"), "nucleusd log: %s", buf);
	cr_assert_null(strstr(buf, "runtime error"), "nucleusd log: %s", buf);
}

void thd_finish(struct thd *d)
{
	thd_stop(d); /* a clean exit, so LeakSanitizer runs */
	check_log(d);
}

void thd_cleanup(struct thd *d)
{
	thd_kill9(d); /* no-op after thd_finish */
	th_rmrf(d->dir);
}

struct api_response thd_call(struct thd *d, const char *method, const char *path,
			     const char *json_body)
{
	struct api_response r = {0};
	struct api_client *c = NULL;
	json_t *body = NULL;
	json_error_t err;

	if (json_body) {
		body = json_loads(json_body, 0, &err);
		cr_assert_not_null(body, "test JSON: %s", err.text);
	}
	cr_assert_eq(api_client__new(d->sock, &c), 0);
	cr_assert_eq(api_client__call(c, method, path, body, &r), 0, "%s %s: no response", method,
		     path);
	api_client__free(c);
	json_decref(body);
	return r;
}

void thd_expect(struct thd *d, const char *method, const char *path, const char *json_body,
		int status)
{
	struct api_response r = thd_call(d, method, path, json_body);

	cr_assert_eq(r.status, status, "%s %s: %d %s", method, path, r.status, r.body);
	api_response__clear(&r);
}

void thd_expect_intact(struct thd *d, const char *id)
{
	char path[160];
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit/verify", id);
	r = thd_call(d, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s: %s", path, r.body);
	api_response__clear(&r);
}

json_t *thd_sandboxes(const struct api_response *r)
{
	json_t *a = json_object_get(r->json, "sandboxes");

	cr_assert(json_is_array(a), "not a page of sandboxes: %s", r->body);
	return a;
}

static void write_all(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(4);
}

static void read_all(int fd, void *p, size_t n)
{
	cr_assert_eq(read(fd, p, n), (ssize_t)n, "the client child said nothing");
}

struct api_response thd_call_as(const struct thd *d, const struct thd_peer *p, const char *method,
				const char *path, const char *json_body)
{
	struct api_response r = {0};
	size_t len;
	int fd;
	pid_t pid = th_fork_piped(&fd);

	if (pid == 0) {
		struct api_client *c = NULL;
		struct api_response x = {0};
		json_t *b = json_body ? json_loads(json_body, 0, NULL) : NULL;
		int st;

		if (setgroups(p->extra ? 1 : 0, &p->extra) < 0 || setgid(p->gid) < 0 ||
		    setuid(p->uid) < 0)
			_exit(3);
		st = api_client__new(d->sock, &c);
		if (st == 0)
			st = api_client__call(c, method, path, b, &x);
		if (st == 0)
			st = x.status;
		len = x.body ? x.len : 0;
		write_all(fd, &st, sizeof(st));
		write_all(fd, &len, sizeof(len));
		write_all(fd, x.body ? x.body : "", len);
		_exit(0);
	}
	read_all(fd, &r.status, sizeof(r.status));
	read_all(fd, &len, sizeof(len));
	r.body = calloc(1, len + 1);
	cr_assert_not_null(r.body);
	if (len)
		read_all(fd, r.body, len);
	r.len = len;
	r.json = json_loads(r.body, 0, NULL);
	close(fd);
	waitpid(pid, NULL, 0);
	return r;
}

int thd_dial(const struct thd *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {20, 0};
	int fd;

	cr_assert_lt(strlen(d->sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s: %s", d->sock,
		     strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

struct api_response thd_raw(struct thd *d, const char *request, size_t len)
{
	struct api_response r = {0};
	char *buf = malloc(1 << 20), *sep;
	size_t got = 0;
	ssize_t n;
	int fd;

	cr_assert_not_null(buf);
	fd = thd_dial(d);
	for (size_t off = 0; off < len; off += (size_t)n) {
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the server may answer (413) before reading everything */
	}
	while (got < (1 << 20) - 1 && (n = recv(fd, buf + got, (1 << 20) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &r.status), 1, "no HTTP response: '%s'", buf);
	sep = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(sep);
	r.body = strdup(sep + 4);
	r.len = strlen(r.body);
	r.json = json_loads(r.body, 0, NULL);
	*sep = '\0';
	/* Keep the headers reachable for content-type checks. */
	if (r.json && strcasestr(buf, "Content-Type: application/json"))
		json_object_set_new(r.json, "__json_content_type", json_true());
	free(buf);
	return r;
}

/* The value of an unlabelled gauge in the metrics text, or -1 when it is missing. */
static long long gauge(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return atoll(p + n + 1);
	return -1;
}

long long thd_metric(struct thd *d, const char *name)
{
	struct api_response r = thd_call(d, "GET", "/v1/metrics", NULL);
	long long v;

	cr_assert_eq(r.status, 200, "metrics: %d", r.status);
	v = gauge(r.body, name);
	api_response__clear(&r);
	return v;
}

void thd_settle(struct thd *d)
{
	long long unsealed = -1, ops = -1;

	/* Generous: the machine may be very slow; this is no timing assertion. */
	for (int i = 0; i < 3000; i++) {
		struct api_response r = thd_call(d, "GET", "/v1/metrics", NULL);

		cr_assert_eq(r.status, 200, "metrics: %d", r.status);
		unsealed = gauge(r.body, "nucleus_audit_unsealed_entries");
		ops = gauge(r.body, "nucleus_operations_in_flight");
		api_response__clear(&r);
		cr_assert(unsealed >= 0 && ops >= 0, "metrics lack the idle gauges");
		if (unsealed == 0 && ops == 0)
			return;
		sleep_ms(10);
	}
	cr_assert_fail("nucleusd never settled: %lld unsealed entries, %lld operations in flight",
		       unsealed, ops);
}

char *thd_dump(struct thd *d)
{
	thd_settle(d);
	return th_dump(d->db);
}

void thd_assert_same_db(char *before, char *after, const char *what)
{
	const char *a = before, *b = after;
	char diff[512] = "";
	bool same = strcmp(before, after) == 0;

	if (!same) {
		/* The first line that differs, from both sides, for the message. */
		while (*a && *a == *b)
			a++, b++;
		while (a > before && a[-1] != '\n')
			a--, b--;
		snprintf(diff, sizeof(diff), "before: %.*s | after: %.*s", (int)strcspn(a, "\n"), a,
			 (int)strcspn(b, "\n"), b);
	}
	free(before);
	free(after);
	cr_assert(same, "%s: %s", what, diff);
}

json_t *thd_last_entry(struct thd *d, const char *id, const char *kind)
{
	char path[160];
	struct api_response r;
	json_t *en, *body = NULL;
	size_t i;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit", id);
	r = thd_call(d, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_array_foreach(r.json, i, en)
	{
		if (strcmp(json_string_value(json_object_get(en, "kind")), kind) == 0)
			body = json_object_get(en, "body");
	}
	json_incref(body);
	api_response__clear(&r);
	return body;
}

const char *thd_path(const char *id, const char *suffix)
{
	static char buf[8][160];
	static int i;
	char *p = buf[i++ % 8];

	snprintf(p, 160, "/v1/sandboxes/%s%s", id, suffix);
	return p;
}

long long thd_budget(struct thd *d, const char *id, const char *kind, const char *field)
{
	const char *path = thd_path(id, "/budget");
	struct api_response r;
	long long n;

	r = thd_call(d, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
	n = th_budget_field(r.json, kind, field);
	api_response__clear(&r);
	return n;
}

const char *thd_create(struct thd *d, const char *json_body)
{
	static char id[32];
	struct api_response r = thd_call(d, "POST", "/v1/sandboxes", json_body);

	cr_assert_eq(r.status, 201, "create: %d %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
	api_response__clear(&r);
	return id;
}

struct thd_run *thd_ctl(const char *sock, ...)
{
	static struct thd_run r;
	const char *argv[32] = {NUCLEUSCTL_PATH, "--socket", sock};
	int out[2], err[2], n = 3, status;
	va_list ap;
	pid_t pid;

	va_start(ap, sock);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	free(r.out);
	free(r.err);
	r.out = th_slurp_fd(out[0]);
	r.err = th_slurp_fd(err[0]);
	close(out[0]);
	close(err[0]);
	waitpid(pid, &status, 0);
	r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return &r;
}
