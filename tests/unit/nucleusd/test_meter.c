// SPDX-License-Identifier: Apache-2.0
/*
 * The meter over many sandboxes: every running sandbox with a VMM is sampled and gets
 * its ledger rows, however many there are (it once read 256 per tick and dropped the
 * rest). 300 fake sandboxes share one real "VMM": a child of the test that sleeps, so
 * the meter reads a real /proc entry per sandbox without 300 spinning processes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/store.h"
#include "tests/unit/nucleusd/helpers.h"

#define SANDBOXES 300

static char dir[256], db[300];
static struct event_base *base;
static struct nucleusd *nd;
static pid_t vmm;

struct reply {
	bool done;
	int rc;
};

static void on_reply(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	struct reply *r = arg;

	r->done = true;
	r->rc = rc;
}

static void setup(void)
{
	struct nd_backend *be = NULL;
	/* 1 ms: pending metering is written after 10 intervals, i.e. 10 ms */
	struct nd_config cfg = {.data_dir = dir, .signer = SIGNER_PATH, .meter_interval_ms = 1};

	th_tmpdir(dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/nucleus.db", dir);
	base = event_base_new();
	cr_assert_not_null(base);
	cr_assert_eq(nd_fake_backend__new(&be), 0);
	cr_assert_eq(nucleusd__new(base, &cfg, be, &nd), 0);
	vmm = fork();
	cr_assert_geq(vmm, 0);
	if (vmm == 0) {
		for (;;)
			pause(); /* killed by teardown */
	}
}

static void teardown(void)
{
	nucleusd__free(nd);
	event_base_free(base);
	if (vmm > 0) {
		kill(vmm, SIGKILL);
		waitpid(vmm, NULL, 0);
	}
	th_rmrf(dir);
}

TestSuite(meter, .init = setup, .fini = teardown);

static void create_running(int n)
{
	static const char req_text[] =
		"{\"profile\": \"default\", \"vcpus\": 1, \"memory_mib\": 64}";

	for (int i = 0; i < n; i++) {
		json_t *req = json_loads(req_text, 0, NULL);
		struct reply r = {0};
		struct nd_err e = {0};

		cr_assert_eq(nucleusd__sandbox_create(nd, NULL, req, on_reply, &r, &e), 0, "%s",
			     e.msg);
		json_decref(req);
		for (int k = 0; k < 1000 && !r.done; k++)
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		cr_assert(r.done && r.rc == 0, "sandbox %d did not boot", i);
	}
}

static int metered(struct store *s)
{
	return atoi(th_query(s, "SELECT count(DISTINCT sandbox_id) FROM budget_ledger WHERE "
				"reason = 'meter' AND kind = 'mem_peak_mib'"));
}

Test(meter, every_one_of_300_running_sandboxes_gets_its_ledger_rows)
{
	struct store *s = nucleusd__store(nd);
	char sql[128], *text = NULL;

	create_running(SANDBOXES);
	/* The fake backend runs no process: each sandbox's "VMM" is the sleeping child. */
	snprintf(sql, sizeof(sql), "UPDATE sandboxes SET vmm_pid = %d WHERE state = 'running'",
		 (int)vmm);
	cr_assert_eq(store__exec(s, sql), 0);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM sandboxes WHERE state = 'running' "
				     "AND vmm_pid > 0"),
			 "300");

	/* First tick: a baseline per sandbox (its peak RSS is pending). */
	nucleusd__meter_tick(nd);
	cr_assert_eq(metered(s), 0, "pending, not written yet");
	/* Ten intervals later each sandbox's pending debits are written, all 300. */
	usleep(20 * 1000);
	nucleusd__meter_tick(nd);
	cr_assert_eq(metered(s), SANDBOXES);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM budget_spent WHERE kind = "
				     "'mem_peak_mib' AND spent > 0"),
			 "300");
	cr_assert_eq(nucleusd__metrics(nd, &text), 0);
	cr_assert_not_null(strstr(text, "\nnucleus_meter_errors_total 0\n"), "%s", text);
	free(text);
}

/* The daemon leaving writes what every meter has pending: all 300 had one. */
Test(meter, leaving_writes_the_pending_metering_of_every_sandbox)
{
	char sql[128];

	create_running(SANDBOXES);
	snprintf(sql, sizeof(sql), "UPDATE sandboxes SET vmm_pid = %d WHERE state = 'running'",
		 (int)vmm);
	cr_assert_eq(store__exec(nucleusd__store(nd), sql), 0);
	nucleusd__meter_tick(nd);
	nucleusd__free(nd);
	nd = NULL;
	cr_assert_str_eq(th_query_file(db, "SELECT count(DISTINCT sandbox_id) FROM budget_ledger "
					   "WHERE reason = 'meter'"),
			 "300");
}
