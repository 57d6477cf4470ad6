// SPDX-License-Identifier: Apache-2.0
/*
 * The sandbox requests of the API that change a sandbox's state without a tool call
 * (pause, resume, stop), and the audit log as a client reads it (list, verify). The state
 * machine they drive, and get/list, are nucleusd/state.c; creation and tool calls are
 * nucleusd/calls.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"

static int lifecycle(struct nucleusd *nd, const struct nd_caller *who, const char *ref, nd_be_op op,
		     const struct nd_lifecycle *l, json_t **ret, struct nd_err *e)
{
	return nd__lifecycle(nd, who, ref, op, l, NULL, ret, e);
}

int nucleusd__sandbox_pause(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			    json_t **ret, struct nd_err *e)
{
	static const struct nd_lifecycle l = {SB_RUNNING, "paused", "sandbox.pause", "pause"};

	return lifecycle(nd, who, ref, nd->be->pause, &l, ret, e);
}

int nucleusd__sandbox_resume(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			     json_t **ret, struct nd_err *e)
{
	/* a sandbox whose budget is exhausted stays paused (402) */
	static const struct nd_lifecycle l = {SB_PAUSED, "running", "sandbox.resume",
					      "resume",	 false,	    nd__budget_resume_check};

	return lifecycle(nd, who, ref, nd->be->resume, &l, ret, e);
}

int nucleusd__sandbox_stop(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   json_t **ret, struct nd_err *e)
{
	static const struct nd_lifecycle l = {SB_RUNNING | SB_PAUSED | SB_FAILED, "stopped",
					      "sandbox.stop", "stop", true};

	return lifecycle(nd, who, ref, nd->be->stop, &l, ret, e);
}

/* ---- audit access ---- */

int nucleusd__audit_list(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			 uint64_t after, unsigned limit, json_t **ret, struct nd_err *e)
{
	struct sb_row row;
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	r = audit__list(nd->store, row.id, after, limit, ret);
	sb_row__clear(&row);
	if (r < 0)
		return nd_err__set(e, r, "internal", "cannot read the audit log");
	return 0;
}

static json_t *ranges_json(const struct audit_range *r, unsigned n)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_pack("{sI sI}", "from", (json_int_t)r[i].from,
							 "to", (json_int_t)r[i].to)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	return arr;
}

static json_t *verify_json(const struct audit_verify *v)
{
	json_t *o;

	o = json_pack("{sb sI sI sI sI sI so so ss}", "ok", !v->first_bad, "entries",
		      (json_int_t)v->entries, "seals", (json_int_t)v->seals, "sealed_through",
		      (json_int_t)v->sealed_through, "unsealed",
		      (json_int_t)(v->intact_through > v->sealed_through
					   ? v->intact_through - v->sealed_through
					   : 0),
		      "unsealed_at_start", (json_int_t)v->unsealed_at_start, "covered",
		      ranges_json(v->covered, v->n_covered), "not_covered",
		      ranges_json(v->not_covered, v->n_not_covered), "problem", v->problem);
	if (o && v->first_bad)
		json_object_set_new(o, "first_bad_seq", json_integer((json_int_t)v->first_bad));
	return o;
}

struct verify_job {
	struct nd_maint_job m; /* first */
	struct audit_verify v;
};

/* Maintenance thread: the key is only read (its public half). */
static int verify_run(struct nd_maint_job *m, struct store *reader)
{
	struct verify_job *j = (struct verify_job *)m;

	return audit__verify(reader, m->nd->key, &j->v);
}

static void verify_done(struct nd_maint_job *m, bool dropped)
{
	struct verify_job *j = (struct verify_job *)m;

	if (!dropped)
		nd__maint_reply(m->reply, m->arg, m->rc, m->rc < 0 ? NULL : verify_json(&j->v),
				"cannot read the audit log");
	free(j);
}

int nucleusd__audit_verify(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   nd_reply_fn reply, void *arg, struct nd_err *e)
{
	struct sb_row row;
	int r;

	if (ref) {
		r = sb_row__load(nd, who, ref, &row, e);
		if (r < 0)
			return r;
		sb_row__clear(&row);
	} else if (!nd_caller__sees_all(who)) {
		return nd_err__set(e, -EACCES, "forbidden",
				   "only an admin verifies the whole audit log");
	}
	nd__seal(nd); /* what this daemon committed is sealed before it is checked */
	return nd__maint_queue(nd, sizeof(struct verify_job), verify_run, verify_done, reply, arg,
			       e);
}

bool nucleusd__audit_found_at_start(struct nucleusd *nd, uint64_t *from, uint64_t *to)
{
	return audit__found_at_start(nd->key, from, to);
}
