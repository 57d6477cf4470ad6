// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon object: store + key + backend + policy (profile registry, session cache,
 * approver keys), restart recovery, health and metrics.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/signer.h"

/* The daemon's database: nucleusd's tables, then budget's (which refer to sandboxes). */
static const struct store_schema *const schemas[] = {&store__core, &budget__schema};

struct store *nucleusd__store(struct nucleusd *nd)
{
	return nd->store;
}

struct audit_key *nucleusd__key(struct nucleusd *nd)
{
	return nd->key;
}

const struct nd_backend *nucleusd__backend(struct nucleusd *nd)
{
	return nd->be;
}

static int started_tx(struct store *s, void *arg)
{
	struct nucleusd *nd = arg;
	json_t *body;
	int r;

	body = json_pack("{ss sb}", "backend", nd->be->name, "backend_real", nd->be->real);
	if (!body)
		return -ENOMEM;
	r = audit__append(s, nd->key, NULL, -1, "daemon.start", body, NULL);
	json_decref(body);
	return r;
}

int nucleusd__new(struct event_base *base, const struct nd_config *cfg, struct nd_backend *be,
		  struct nucleusd **ret)
{
	struct nucleusd *nd;
	char path[4096];
	int r;

	if (!cfg || !cfg->data_dir || !be)
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s/nucleus.db", cfg->data_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->base = base;
	nd->log = cfg->log;
	nd->log_arg = cfg->log_arg;
	/* first: the signer is exec'd before anything else is open (docs/daemon.md, "Signer") */
	r = audit__key_load(cfg->data_dir, cfg->signer, cfg->monitor, &nd->key);
	if (r < 0) {
		nd__log(nd, ND_LOG_ERR, "cannot start the audit signer %s on %s/audit.key: %s",
			cfg->signer ? cfg->signer : "(none configured)", cfg->data_dir,
			strerror(-r));
		/* a malformed key file is not a corrupt database (-EBADMSG to the caller) */
		if (r == -EBADMSG)
			r = -EKEYREJECTED;
		goto fail;
	}
	r = store__open(path, schemas, sizeof(schemas) / sizeof(schemas[0]), &nd->store);
	if (r < 0)
		goto fail;
	r = nd__maint_init(nd, cfg, path);
	if (r < 0)
		goto fail;
	r = nd__json_cache_new(nd);
	if (r < 0)
		goto fail;
	r = nd__seal_init(nd);
	if (r < 0)
		goto fail;
	nd->be = be;
	r = nd_session_cache__new(&nd->sessions);
	if (r < 0)
		goto fail;
	if (cfg->n_approver_keys) {
		nd->approver_keys = calloc(cfg->n_approver_keys, sizeof(*nd->approver_keys));
		if (!nd->approver_keys) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(nd->approver_keys, cfg->approver_keys,
		       cfg->n_approver_keys * sizeof(*nd->approver_keys));
		nd->n_approver_keys = cfg->n_approver_keys;
	}
	r = nd__budget_init(nd, cfg);
	if (r < 0)
		goto fail;
	if (be->attach)
		be->attach(be->ctx, base, nd);
	r = nd__profiles_register(nd);
	if (r < 0)
		goto fail;
	r = store__tx(nd->store, started_tx, nd);
	if (r < 0)
		goto fail;
	r = nd__recover(nd);
	if (r < 0)
		goto fail;
	*ret = nd;
	return 0;
fail:
	nd->be = NULL; /* stays the caller's on failure */
	nucleusd__free(nd);
	return r;
}

void nucleusd__free(struct nucleusd *nd)
{
	if (!nd)
		return;
	nd__maint_fini(nd); /* first: its thread reads the store and the key */
	nd__budget_fini(nd);
	nd_backend__free(nd->be); /* drops pending completions without calling them */
	while (nd->ops)
		nd_op__free(nd->ops);
	nd__seal_fini(nd);
	store__free(nd->store);
	audit__key_free(nd->key);
	nd_lru__free(nd->json_cache);
	nd_session_cache__free(nd->sessions);
	free(nd->approver_keys);
	free(nd);
}

void nd__log(struct nucleusd *nd, enum nd_log_level lvl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!nd->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nd->log(nd->log_arg, lvl, msg);
}

/* ---- restart recovery ---- */

static int recover_one(struct nucleusd *nd, struct sb_row *row)
{
	struct nd_sandbox_info info;
	struct nd_err e = {0};
	struct transition t = {.nd = nd,
			       .id = row->id,
			       .to = "failed",
			       .kind = "sandbox.failed",
			       .actor_uid = -1,
			       .boot_ms = -1};
	char reason[320];
	int r;

	sb_row__info(row, &info);
	if (strcmp(row->state, "creating") == 0) {
		/* Its boot request died with the old daemon; release what may be left. */
		if (nd->be->stop)
			nd->be->stop(nd->be->ctx, &info, NULL);
		snprintf(reason, sizeof(reason), "daemon restarted while the sandbox was booting");
	} else {
		r = nd->be->adopt ? nd->be->adopt(nd->be->ctx, &info, &e) : -ENOSYS;
		if (r == 0)
			return 0;
		snprintf(reason, sizeof(reason), "not re-adopted after a daemon restart: %s",
			 e.msg[0] ? e.msg : strerror(-r));
	}
	t.from_mask = SB_CREATING | SB_RUNNING | SB_PAUSED;
	t.reason = reason;
	return nd__transition(&t, NULL);
}

int nd__recover(struct nucleusd *nd)
{
	static const struct nd_list_opts live = {.all = false, .limit = 0}; /* every live one */
	json_t *all = NULL, *v;
	char *next = NULL; /* stays NULL: no limit, one page */
	size_t i;
	int r;

	r = nucleusd__sandbox_list(nd, NULL, &live, &all, &next, NULL);
	if (r < 0)
		return r;
	json_array_foreach(all, i, v)
	{
		const char *state = json_string_value(json_object_get(v, "state"));
		struct sb_row row;

		if (strcmp(state, "creating") && strcmp(state, "running") &&
		    strcmp(state, "paused"))
			continue;
		r = sb_row__load(nd, NULL, json_string_value(json_object_get(v, "id")), &row, NULL);
		if (r < 0)
			break;
		r = recover_one(nd, &row);
		sb_row__clear(&row);
		if (r < 0)
			break;
	}
	json_decref(all);
	return r;
}

/* ---- health and metrics ---- */

static int count_states(struct nucleusd *nd, uint64_t counts[5])
{
	static const char *const names[] = {"creating", "running", "paused", "stopped", "failed"};
	static const char sql[] = "SELECT state, count(*) FROM sandboxes GROUP BY state";
	sqlite3_stmt *st = NULL;
	int r, rc;

	memset(counts, 0, 5 * sizeof(counts[0]));
	r = store__stmt(nd->store, sql, &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);

		for (int i = 0; i < 5; i++)
			if (strcmp(s, names[i]) == 0)
				counts[i] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	r = store__errno(rc);
	store__stmt_done(st);
	return r;
}

int nucleusd__health(struct nucleusd *nd, json_t **ret)
{
	uint64_t n[5];
	char pk[65];
	json_t *o;
	int r;

	r = count_states(nd, n);
	if (r < 0)
		return r;
	audit__key_public_hex(nd->key, pk);
	o = json_pack("{ss ss s{ss sb} si ss ss s{sI sI sI sI sI}}", "status",
		      nd->be->real && !nd->seal_failing ? "ok" : "degraded", "version", "0.1.0",
		      "backend", "name", nd->be->name, "real", nd->be->real, "schema_version",
		      store__version(nd->store, store__core.module), "audit_public_key", pk,
		      "audit_sealing", nd->seal_failing ? "failing" : "ok", "sandboxes", "creating",
		      (json_int_t)n[0], "running", (json_int_t)n[1], "paused", (json_int_t)n[2],
		      "stopped", (json_int_t)n[3], "failed", (json_int_t)n[4]);
	if (!o)
		return -ENOMEM;
	if (!nd->be->real)
		json_object_set_new(
			o, "warning",
			json_sprintf("backend '%s' is not the product: no microVMs are run%s",
				     nd->be->name,
				     strcmp(nd->be->name, "fake") == 0
					     ? " (fake backend for tests)"
					     : "; sandboxes cannot be created"));
	*ret = o;
	return 0;
}

static void metrics_boot(FILE *f, const struct nd_metrics *m)
{
	uint64_t cum = 0;

	fprintf(f,
		"# HELP nucleus_boots_total Sandbox boots by result.\n"
		"# TYPE nucleus_boots_total counter\n"
		"nucleus_boots_total{result=\"ok\"} %llu\n"
		"nucleus_boots_total{result=\"failed\"} %llu\n",
		(unsigned long long)m->boots_ok, (unsigned long long)m->boots_failed);
	fprintf(f, "# HELP nucleus_boot_duration_seconds Time from boot request to a ready guest.\n"
		   "# TYPE nucleus_boot_duration_seconds histogram\n");
	for (int i = 0; i < ND_BOOT_BUCKETS; i++) {
		cum += m->boot_bucket[i];
		fprintf(f, "nucleus_boot_duration_seconds_bucket{le=\"%g\"} %llu\n",
			nd_boot_buckets_ms[i] / 1000.0, (unsigned long long)cum);
	}
	cum += m->boot_bucket[ND_BOOT_BUCKETS];
	fprintf(f,
		"nucleus_boot_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		"nucleus_boot_duration_seconds_sum %g\n"
		"nucleus_boot_duration_seconds_count %llu\n",
		(unsigned long long)cum, m->boot_ms_sum / 1000.0, (unsigned long long)cum);
}

static uint64_t ops_in_flight(const struct nucleusd *nd)
{
	uint64_t n = 0;

	for (const struct nd_op *op = nd->ops; op; op = op->next)
		n++;
	return n;
}

int nucleusd__metrics(struct nucleusd *nd, char **ret)
{
	static const char *const states[] = {"creating", "running", "paused", "stopped", "failed"};
	const struct nd_metrics *m = &nd->m;
	char *buf = NULL;
	size_t len = 0;
	uint64_t n[5];
	FILE *f;
	int r;

	r = count_states(nd, n);
	if (r < 0)
		return r;
	f = open_memstream(&buf, &len);
	if (!f)
		return -errno;
	fprintf(f, "# HELP nucleus_sandboxes Sandboxes by state.\n"
		   "# TYPE nucleus_sandboxes gauge\n");
	for (int i = 0; i < 5; i++)
		fprintf(f, "nucleus_sandboxes{state=\"%s\"} %llu\n", states[i],
			(unsigned long long)n[i]);
	metrics_boot(f, m);
	fprintf(f,
		"# HELP nucleus_sandbox_failures_total Sandboxes whose VM died.\n"
		"# TYPE nucleus_sandbox_failures_total counter\n"
		"nucleus_sandbox_failures_total %llu\n",
		(unsigned long long)m->failures);
	fprintf(f, "# HELP nucleus_decisions_total Policy decisions by verdict.\n"
		   "# TYPE nucleus_decisions_total counter\n");
	for (int v = ND_ALLOW; v <= ND_ASK; v++)
		fprintf(f, "nucleus_decisions_total{verdict=\"%s\"} %llu\n",
			nd_verdict__name((enum nd_verdict)v), (unsigned long long)m->decisions[v]);
	fprintf(f,
		"# HELP nucleus_tool_calls_total Executed tool calls by result.\n"
		"# TYPE nucleus_tool_calls_total counter\n"
		"nucleus_tool_calls_total{result=\"ok\"} %llu\n"
		"nucleus_tool_calls_total{result=\"failed\"} %llu\n"
		"# HELP nucleus_backend_real 1 when a real (VMM) backend runs sandboxes.\n"
		"# TYPE nucleus_backend_real gauge\n"
		"nucleus_backend_real{backend=\"%s\"} %d\n",
		(unsigned long long)m->tool_ok, (unsigned long long)m->tool_failed, nd->be->name,
		nd->be->real ? 1 : 0);
	fprintf(f,
		"# HELP nucleus_audit_seals_total Audit log seals (signed heads) written.\n"
		"# TYPE nucleus_audit_seals_total counter\n"
		"nucleus_audit_seals_total %llu\n"
		"# HELP nucleus_audit_seal_failures_total Audit seals that failed (retried).\n"
		"# TYPE nucleus_audit_seal_failures_total counter\n"
		"nucleus_audit_seal_failures_total %llu\n"
		"# HELP nucleus_audit_unsealed_entries Committed audit entries not sealed yet.\n"
		"# TYPE nucleus_audit_unsealed_entries gauge\n"
		"nucleus_audit_unsealed_entries %llu\n"
		"# HELP nucleus_audit_sealing_failing 1 while the last audit seal failed.\n"
		"# TYPE nucleus_audit_sealing_failing gauge\n"
		"nucleus_audit_sealing_failing %d\n"
		"# HELP nucleus_audit_signer_restarts_total Audit signers started again after "
		"one died or hung.\n"
		"# TYPE nucleus_audit_signer_restarts_total counter\n"
		"nucleus_audit_signer_restarts_total %llu\n"
		"# HELP nucleus_operations_in_flight Boots and tool calls waiting for the "
		"backend.\n"
		"# TYPE nucleus_operations_in_flight gauge\n"
		"nucleus_operations_in_flight %llu\n",
		(unsigned long long)m->seals, (unsigned long long)m->seal_failures,
		(unsigned long long)audit__unsealed(nd->key), nd->seal_failing ? 1 : 0,
		(unsigned long long)signer__restarts(audit__signer(nd->key)),
		(unsigned long long)ops_in_flight(nd));
	nd__maint_metrics(nd, f);
	r = nd__budget_metrics(nd, f);
	if (r == 0)
		r = nd__policy_metrics(nd, f);
	if (fclose(f) != 0 || r < 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}
