// SPDX-License-Identifier: Apache-2.0
/*
 * The real nucleusd and its nucleus-signer (docs/daemon.md, "Signer"): the daemon starts
 * the signer next to it, restarts one that was killed (sealing resumes, the seals verify,
 * the failure is said once and shown in /v1/metrics and /v1/health), reaps it, ends it
 * with itself, and refuses to start without one.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <jansson.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/th_file.h"

THD_SUITE(signer);

#define BASIC "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}"

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

/* /proc/@pid/stat: its state letter and parent (false: no such process). */
static bool proc_stat(pid_t pid, char *state, pid_t *ppid, char *comm, size_t len)
{
	char path[64], buf[512], *close_paren;
	FILE *f;
	int pp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	if (!close_paren || sscanf(close_paren + 2, "%c %d", state, &pp) != 2)
		return false;
	*ppid = pp;
	if (comm) {
		char *open_paren = strchr(buf, '(');

		*close_paren = '\0';
		snprintf(comm, len, "%s", open_paren ? open_paren + 1 : "");
	}
	return true;
}

/* The daemon's nucleus-signer child that runs (0: none). */
static pid_t signer_of(pid_t daemon)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	cr_assert_not_null(proc);
	while ((e = readdir(proc)) && !found) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid;
		char state, comm[32];

		if (pid > 0 && proc_stat(pid, &state, &ppid, comm, sizeof(comm)) &&
		    ppid == daemon && strcmp(comm, "nucleus-signer") == 0 && state != 'Z')
			found = pid;
	}
	closedir(proc);
	return found;
}

/* Occurrences of @what in the daemon's log. */
static int in_log(const char *what)
{
	char *log = th_slurp(d.log), *p = log;
	int n = 0;

	while ((p = strstr(p, what))) {
		n++;
		p += strlen(what);
	}
	free(log);
	return n;
}

Test(signer, the_daemon_runs_its_signer_next_to_it)
{
	pid_t pid = signer_of(d.pid);
	struct api_response r;

	cr_assert_gt(pid, 0, "no nucleus-signer child of nucleusd %d", (int)d.pid);
	r = thd_call(&d, "GET", "/v1/health", NULL);
	{
		json_t *h = json_loads(r.body, 0, NULL);

		cr_assert_str_eq(json_string_value(json_object_get(h, "audit_sealing")), "ok", "%s",
				 r.body);
		json_decref(h);
	}
	api_response__clear(&r);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_signer_restarts_total"), 0);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_sealing_failing"), 0);
	thd_finish(&d);
}

Test(signer, a_killed_signer_is_restarted_and_sealing_resumes)
{
	pid_t first = signer_of(d.pid), again = 0, ppid;
	const char *id;
	char state;

	cr_assert_gt(first, 0);
	thd_settle(&d);
	cr_assert_eq(kill(first, SIGKILL), 0);
	id = thd_create(&d, BASIC); /* entries to seal: the seal finds the signer gone */
	/* generous: the machine may be slow; restarts are at most one a second */
	for (int i = 0; i < 1000 && thd_metric(&d, "nucleus_audit_signer_restarts_total") < 1; i++)
		sleep_ms(10);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_signer_restarts_total"), 1);
	thd_settle(&d); /* every entry sealed */
	cr_assert_geq(thd_metric(&d, "nucleus_audit_seal_failures_total"), 1);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_sealing_failing"), 0);
	thd_expect_intact(&d, id);
	again = signer_of(d.pid);
	cr_assert(again > 0 && again != first, "signer %d, before %d", (int)again, (int)first);
	/* the daemon reaped the killed one: no zombie of it is left */
	cr_assert(!proc_stat(first, &state, &ppid, NULL, 0) || ppid != d.pid,
		  "signer %d left unreaped (%c)", (int)first, state);
	cr_assert_eq(in_log("audit sealing failed"), 1, "said once");
	cr_assert_eq(in_log("is gone (it was killed by signal 9"), 1);
	cr_assert_eq(in_log("audit sealing works again"), 1);
	thd_finish(&d);
}

/* /v1/health's audit_sealing and status, as "SEALING STATUS". */
static const char *health(void)
{
	static char buf[64];
	struct api_response r = thd_call(&d, "GET", "/v1/health", NULL);
	json_t *h = json_loads(r.body, 0, NULL);

	snprintf(buf, sizeof(buf), "%s %s",
		 json_string_value(json_object_get(h, "audit_sealing")) ?: "-",
		 json_string_value(json_object_get(h, "status")) ?: "-");
	json_decref(h);
	api_response__clear(&r);
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/*
 * A key file changed under the running daemon: a restarted signer with another key is
 * refused, sealing keeps failing, and health and metrics say so until the key is back.
 */
Test(signer, sealing_fails_visibly_while_a_restart_is_refused)
{
	char key[400], *mine, other[21 + 64] = "nucleus-audit-key-v1\n";
	pid_t first = signer_of(d.pid);

	cr_assert_gt(first, 0);
	snprintf(key, sizeof(key), "%s/audit.key", d.data);
	mine = th_slurp(key);	      /* the magic and 64 bytes */
	memset(other + 21, 0x5a, 64); /* another seed (and a public half that is not its) */
	write_file(key, other, sizeof(other));
	thd_settle(&d);
	cr_assert_eq(kill(first, SIGKILL), 0);
	thd_create(&d, BASIC);
	for (int i = 0; i < 1000 && !strstr(health(), "failing"); i++)
		sleep_ms(10);
	cr_assert_str_eq(health(), "failing degraded");
	cr_assert_eq(thd_metric(&d, "nucleus_audit_sealing_failing"), 1);
	cr_assert_gt(thd_metric(&d, "nucleus_audit_unsealed_entries"), 0);
	/* restarts are tried (once a second) and refused */
	sleep_ms(1500);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_signer_restarts_total"), 0);
	cr_assert_str_eq(health(), "failing degraded");
	write_file(key, mine, sizeof(other));
	free(mine);
	thd_settle(&d); /* the next restart has the daemon's key: every entry sealed */
	cr_assert_eq(thd_metric(&d, "nucleus_audit_signer_restarts_total"), 1);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_sealing_failing"), 0);
	cr_assert_str_eq(health(), "ok degraded"); /* degraded: the fake backend */
	/* said once per error: the signer gone, then its restarts refused */
	cr_assert_eq(in_log("audit sealing failed"), 2);
	cr_assert_eq(in_log("audit sealing failed: Key was rejected by service"), 1);
	cr_assert_eq(in_log("has another public key"), 1);
	thd_finish(&d);
}

Test(signer, it_ends_with_the_daemon)
{
	pid_t pid = signer_of(d.pid);
	int i;

	cr_assert_gt(pid, 0);
	thd_stop(&d);
	for (i = 0; i < 1000 && kill(pid, 0) == 0; i++)
		sleep_ms(10);
	cr_assert_eq(kill(pid, 0), -1, "the signer %d outlived its daemon", (int)pid);
	cr_assert_eq(errno, ESRCH);
}

Test(signer, the_daemon_refuses_to_start_without_one)
{
	thd_stop(&d);
	d.extra[0] = "--signer";
	d.extra[1] = "/nonexistent/nucleus-signer";
	cr_assert_eq(thd_restart_fails(&d), 1);
	cr_assert_eq(in_log("nucleus-signer /nonexistent/nucleus-signer: No such file"), 1);
	d.extra[1] = "/bin/true"; /* runs, but is no signer */
	cr_assert_eq(thd_restart_fails(&d), 1);
	cr_assert_eq(in_log("cannot start the audit signer /bin/true"), 1);
	cr_assert_eq(in_log("Exec format error"), 2); /* -ENOEXEC, and the start's last word */
	d.extra[0] = NULL;
	thd_restart(&d); /* the same data dir and key, with the real one */
	thd_finish(&d);
}
