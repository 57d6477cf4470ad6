/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a real nucleusd (fake backend, temp data dir) for black-box tests. */
#ifndef NUCLEUS_TESTS_API_DAEMON_H
#define NUCLEUS_TESTS_API_DAEMON_H

#include <string.h>
#include <sys/types.h>

#include "api/api.h"

struct thd {
	pid_t pid;
	char dir[256];
	char data[300], sock[300], db[320], log[300];
	const char *extra[8]; /* extra nucleusd arguments, NULL-terminated */
	int rlimit_nofile;    /* > 0: the daemon's RLIMIT_NOFILE (soft and hard) */
	int hold_fds;	      /* fds the daemon inherits open (as if used elsewhere) */
};

/*
 * A criterion suite whose every test gets its own daemon with the default options, as
 * `static struct thd d` (started by .init, stopped and removed by .fini). Test files
 * that include <criterion/criterion.h> use it at file scope: THD_SUITE(cli);
 */
#define THD_SUITE(name)                                                                            \
	static struct thd d;                                                                       \
	static void thd_suite_init(void)                                                           \
	{                                                                                          \
		memset(&d, 0, sizeof(d));                                                          \
		thd_start(&d);                                                                     \
	}                                                                                          \
	static void thd_suite_fini(void)                                                           \
	{                                                                                          \
		thd_cleanup(&d);                                                                   \
	}                                                                                          \
	TestSuite(name, .init = thd_suite_init, .fini = thd_suite_fini, .timeout = 300)

/* Creates the temp dir and starts the daemon; returns when /v1/health answers. */
void thd_start(struct thd *d);
/* Starts it again on the same data dir (after thd_kill9/thd_stop). */
void thd_restart(struct thd *d);
/* Starts it again and asserts that it exits without answering; its exit code. */
int thd_restart_fails(struct thd *d);
void thd_stop(struct thd *d);  /* SIGTERM, wait */
void thd_kill9(struct thd *d); /* SIGKILL, wait */
/*
 * End of a test: stops the daemon cleanly and asserts its log holds no sanitizer
 * report (fini assertions do not count in criterion, so tests call this last).
 */
void thd_finish(struct thd *d);
/* Kills the daemon if still running and removes the temp dir (fini). */
void thd_cleanup(struct thd *d);

/* One API call through the client library; asserts the transport worked. */
struct api_response thd_call(struct thd *d, const char *method, const char *path,
			     const char *json_body);
/* thd_call that asserts the reply's @status and frees the reply. */
void thd_expect(struct thd *d, const char *method, const char *path, const char *json_body,
		int status);
/* The body of sandbox @id's newest audit entry of @kind (a new reference), or NULL. */
json_t *thd_last_entry(struct thd *d, const char *id, const char *kind);
/* GET /v1/sandboxes/@id/audit/verify answers 200 with "ok": true. */
void thd_expect_intact(struct thd *d, const char *id);
/* A client as another user (tests running as root): uid, primary gid, one more group. */
struct thd_peer {
	uid_t uid;
	gid_t gid;   /* primary */
	gid_t extra; /* one supplementary group, 0: none */
};
/*
 * thd_call from a child process running as @p (setgroups, setgid, setuid). The status
 * is -errno when no response came (e.g. -EACCES: the socket's mode refused the connect).
 */
struct api_response thd_call_as(const struct thd *d, const struct thd_peer *p,
				const char *method, const char *path, const char *json_body);
/* The sandboxes of a GET /v1/sandboxes reply: every list read of the tests goes here. */
json_t *thd_sandboxes(const struct api_response *r);
/* A socket connected to the daemon, receives time out after 20 s; asserts. */
int thd_dial(const struct thd *d);
/* Raw bytes on the socket (for malformed requests); asserts a response came. */
struct api_response thd_raw(struct thd *d, const char *request, size_t len);
/* An unlabelled series of /v1/metrics (its value as an integer), -1 when it is missing. */
long long thd_metric(struct thd *d, const char *name);
/* "/v1/sandboxes/@id@suffix" in one of 8 static buffers, reused in turn. */
const char *thd_path(const char *id, const char *suffix);
/* GET /v1/sandboxes/@id/budget: budgets.@kind.@field (th_budget_field); asserts 200. */
long long thd_budget(struct thd *d, const char *id, const char *kind, const char *field);
/* POST /v1/sandboxes with @json_body; asserts 201; returns the id (static buffer). */
const char *thd_create(struct thd *d, const char *json_body);

/*
 * Waits until the daemon is idle: every audit entry it committed is sealed and no boot
 * or tool call waits for the backend (its /v1/metrics gauges say so). After that only a
 * new request changes the database, never one of the daemon's timers.
 */
void thd_settle(struct thd *d);
/* thd_settle, then every row of every table as text (malloc'd; th_dump). */
char *thd_dump(struct thd *d);
/*
 * "Nothing changed": asserts the two dumps are equal, naming the first line that differs,
 * and frees both either way.
 */
void thd_assert_same_db(char *before, char *after, const char *what);

/* What nucleusctl did: exit code (-1 if killed), stdout and stderr. */
struct thd_run {
	int code;
	char *out, *err; /* the whole stdout and stderr, freed by the next call */
};
/* Runs nucleusctl --socket SOCK ARGS... (NULL-terminated); a static result, reused. */
struct thd_run *thd_ctl(const char *sock, ...);

#endif
