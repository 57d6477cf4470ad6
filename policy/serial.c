// SPDX-License-Identifier: Apache-2.0
/*
 * JSON forms: sessions (persisted by the daemon, restored after a restart), calls (for
 * `nucleusctl policy explain` and the scenario corpus), trace records, explanations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

static const char *const leg_names[] = {"private", "untrusted", "exfil"};

static json_t *legs_json(unsigned legs)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < 3; i++)
		if (legs & (1u << i))
			json_array_append_new(a, json_string(leg_names[i]));
	return a;
}

static int legs_parse(json_t *v, const char *path, unsigned *out, struct policy_error *err)
{
	size_t i;
	json_t *e;

	*out = 0;
	if (!json_is_array(v)) {
		perr(err, path, "expected array");
		return -EINVAL;
	}
	json_array_foreach(v, i, e)
	{
		unsigned k = 0;
		char sub[64];

		while (k < 3 && (!json_is_string(e) || strcmp(json_string_value(e), leg_names[k])))
			k++;
		if (k == 3) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			perr(err, sub, "expected \"private\", \"untrusted\" or \"exfil\"");
			return -EINVAL;
		}
		*out |= 1u << k;
	}
	return 0;
}

static json_t *hex_json(const uint8_t *b, size_t n)
{
	char buf[2 * 64 + 1];

	hex__encode(b, n, buf);
	return json_string(buf);
}

/* ---- sessions ---- */

/*
 * The session as JSON, sorted keys, compact. The envelope is most of it and changes only
 * when the session narrows or widens, while the rest changes with every call: its text
 * is made once per envelope and spliced in at its sorted place ("counters" < "envelope"
 * < "id"), so each call serializes only the small part. The result is byte for byte
 * what json_dumps(JSON_SORT_KEYS | JSON_COMPACT) of the whole object gives.
 */
static json_t *session_json(const struct policy_session *s)
{
	json_t *keys = json_array(), *nonces = json_array(), *root;

	for (size_t i = 0; keys && i < s->nkeys; i++)
		json_array_append_new(keys, hex_json(s->keys[i], 32));
	for (size_t i = 0; nonces && i < s->nnonces; i++)
		json_array_append_new(nonces,
				      json_pack("{s:o, s:I}", "nonce",
						hex_json(s->nonces[i].nonce, POLICY_NONCE_LEN),
						"expires", (json_int_t)s->nonces[i].expires));
	root = json_pack("{s:i, s:o, s:I, s:o, s:b, s:I, s:{s:I, s:I, s:I}, s:o, s:o}", "version",
			 1, "id", hex_json(s->id, POLICY_SESSION_ID_LEN), "seq", (json_int_t)s->seq,
			 "legs", legs_json(s->legs), "quarantined", s->quarantined, "suspicion",
			 (json_int_t)s->suspicion, "counters", "calls", (json_int_t)s->n_calls,
			 "net", (json_int_t)s->n_net, "spawn", (json_int_t)s->n_spawn,
			 "approver_keys", keys, "nonces", nonces);
	return root;
}

static int envelope_text(struct policy_session *s)
{
	json_t *j;

	if (s->env_text)
		return 0;
	j = policy__json(s->env, true);
	s->env_text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	json_decref(j);
	return s->env_text ? 0 : -ENOMEM;
}

int policy__session_to_json(struct policy_session *s, char **ret)
{
	static const char at[] = ",\"id\":";
	char *rest = NULL, *out = NULL, *cut;
	size_t n_env, n_rest;
	json_t *j;
	int r = -ENOMEM;

	if (!s || !ret)
		return -EINVAL;
	j = session_json(s);
	if (j)
		rest = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(j);
	if (!rest || envelope_text(s) < 0)
		goto out;
	cut = strstr(rest, at); /* keys before "id" are counters, approver_keys: no "id" text */
	r = -EPROTO;
	if (!cut)
		goto out;
	n_env = strlen(s->env_text);
	n_rest = strlen(rest);
	r = -ENOMEM;
	out = malloc(n_rest + n_env + sizeof(",\"envelope\":"));
	if (!out)
		goto out;
	memcpy(out, rest, (size_t)(cut - rest));
	sprintf(out + (cut - rest), ",\"envelope\":%s%s", s->env_text, cut);
	*ret = out;
	r = 0;
out:
	free(rest);
	return r;
}

static int get_uint(json_t *o, const char *key, const char *path, uint64_t *out,
		    struct policy_error *err)
{
	json_t *v = json_object_get(o, key);
	char sub[64];

	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		perr(err, sub, "expected a non-negative integer");
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int check_keys(json_t *o, const char *path, const char *const *known,
		      struct policy_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o)) {
		perr(err, path, "expected object");
		return -EINVAL;
	}
	json_object_foreach(o, key, v)
	{
		const char *const *k = known;
		char sub[128];

		while (*k && strcmp(*k, key))
			k++;
		if (!*k) {
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			perr(err, sub, "unknown key");
			return -EINVAL;
		}
	}
	for (const char *const *k = known; *k; k++) {
		if (!json_object_get(o, *k)) {
			char sub[128];

			snprintf(sub, sizeof(sub), "%s.%s", path, *k);
			perr(err, sub, "missing");
			return -EINVAL;
		}
	}
	return 0;
}

static int load_keys(struct policy_session *s, json_t *arr, struct policy_error *err)
{
	size_t i;
	json_t *e;

	if (!json_is_array(arr)) {
		perr(err, "$.approver_keys", "expected array");
		return -EINVAL;
	}
	s->keys = calloc(json_array_size(arr) + 1, sizeof(*s->keys));
	if (!s->keys)
		return -ENOMEM;
	json_array_foreach(arr, i, e)
	{
		char sub[64];

		snprintf(sub, sizeof(sub), "$.approver_keys[%zu]", i);
		if (!json_is_string(e) || hex__decode(json_string_value(e), s->keys[i], 32) < 0) {
			perr(err, sub, "expected 32 hex bytes");
			return -EINVAL;
		}
		s->nkeys++;
	}
	return 0;
}

static int load_nonces(struct policy_session *s, json_t *arr, struct policy_error *err)
{
	static const char *const known[] = {"nonce", "expires", NULL};
	size_t i;
	json_t *e;

	if (!json_is_array(arr)) {
		perr(err, "$.nonces", "expected array");
		return -EINVAL;
	}
	json_array_foreach(arr, i, e)
	{
		uint8_t nonce[POLICY_NONCE_LEN];
		json_t *ex = json_object_get(e, "expires");
		char sub[64];
		int rc;

		snprintf(sub, sizeof(sub), "$.nonces[%zu]", i);
		rc = check_keys(e, sub, known, err);
		if (rc < 0)
			return rc;
		if (hex__decode(json_string_value(json_object_get(e, "nonce")), nonce,
				sizeof(nonce)) < 0 ||
		    !json_is_integer(ex)) {
			perr(err, sub, "expected {\"nonce\": hex, \"expires\": integer}");
			return -EINVAL;
		}
		rc = session__remember_nonce(s, nonce, json_integer_value(ex));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int load_session(struct policy_session *s, json_t *j, struct policy_error *err)
{
	static const char *const known[] = {"version",	   "id",	"seq",	    "legs",
					    "quarantined", "suspicion", "counters", "approver_keys",
					    "nonces",	   "envelope",	NULL};
	static const char *const ckeys[] = {"calls", "net", "spawn", NULL};
	json_t *counters = json_object_get(j, "counters"), *q = json_object_get(j, "quarantined");
	uint64_t v = 0, susp = 0;
	int rc;

	if ((rc = check_keys(j, "$", known, err)) < 0)
		return rc;
	if (get_uint(j, "version", "$", &v, err) < 0 || v != 1) {
		perr(err, "$.version", "unsupported version");
		return -EINVAL;
	}
	if (hex__decode(json_string_value(json_object_get(j, "id")), s->id, sizeof(s->id)) < 0) {
		perr(err, "$.id", "expected %d hex bytes", POLICY_SESSION_ID_LEN);
		return -EINVAL;
	}
	if (!json_is_boolean(q)) {
		perr(err, "$.quarantined", "expected boolean");
		return -EINVAL;
	}
	s->quarantined = json_is_true(q);
	if ((rc = get_uint(j, "seq", "$", &s->seq, err)) < 0 ||
	    (rc = get_uint(j, "suspicion", "$", &susp, err)) < 0 ||
	    (rc = legs_parse(json_object_get(j, "legs"), "$.legs", &s->legs, err)) < 0 ||
	    (rc = check_keys(counters, "$.counters", ckeys, err)) < 0 ||
	    (rc = get_uint(counters, "calls", "$.counters", &s->n_calls, err)) < 0 ||
	    (rc = get_uint(counters, "net", "$.counters", &s->n_net, err)) < 0 ||
	    (rc = get_uint(counters, "spawn", "$.counters", &s->n_spawn, err)) < 0 ||
	    (rc = load_keys(s, json_object_get(j, "approver_keys"), err)) < 0 ||
	    (rc = load_nonces(s, json_object_get(j, "nonces"), err)) < 0)
		return rc;
	s->suspicion = susp > UINT32_MAX ? UINT32_MAX : (uint32_t)susp;
	return 0;
}

int policy__session_from_json(const char *json_text, struct policy_session **ret,
			      struct policy_error *err)
{
	struct policy_session *s = NULL;
	struct policy *env = NULL;
	json_error_t je;
	json_t *j = json_loads(json_text ? json_text : "", JSON_REJECT_DUPLICATES, &je);
	int rc = -EINVAL;

	if (!j) {
		perr(err, "$", "JSON syntax error at line %d column %d: %s", je.line, je.column,
		     je.text);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out;
	}
	rc = load_session(s, j, err);
	if (rc < 0)
		goto out;
	rc = policy__from_json(json_object_get(j, "envelope"), "$.envelope", &env, err);
	if (rc < 0)
		goto out;
	session__set_envelope(s, env);
	*ret = s;
	s = NULL;
out:
	policy__session_free(s);
	json_decref(j);
	return rc;
}

/* ---- calls ---- */

struct policy_call_owned {
	struct policy_call call;
	json_t *root;
	const char **argv;
};

static int call_str(json_t *v, const char *key, const char **out, struct policy_error *err)
{
	char path[64];

	snprintf(path, sizeof(path), "$.%s", key);
	if (!json_is_string(v)) {
		perr(err, path, "expected string");
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

static int call_field(struct policy_call_owned *c, const char *key, json_t *v,
		      struct policy_error *err)
{
	struct policy_call *k = &c->call;
	json_t *e;
	size_t i;

	if (!strcmp(key, "op")) {
		int op = json_is_string(v) ? policy__op_from_name(json_string_value(v)) : -1;

		if (op < 0) {
			perr(err, "$.op", "unknown operation");
			return -EINVAL;
		}
		k->op = (enum policy_op)op;
		return 0;
	}
	if (!strcmp(key, "argv")) {
		if (!json_is_array(v) || json_array_size(v) == 0) {
			perr(err, "$.argv", "expected a non-empty array of strings");
			return -EINVAL;
		}
		c->argv = calloc(json_array_size(v) + 1, sizeof(*c->argv));
		if (!c->argv)
			return -ENOMEM;
		json_array_foreach(v, i, e)
		{
			char path[64];

			snprintf(path, sizeof(path), "$.argv[%zu]", i);
			if (!json_is_string(e)) {
				perr(err, path, "expected string");
				return -EINVAL;
			}
			c->argv[i] = json_string_value(e);
		}
		k->argv = c->argv;
		k->argc = json_array_size(v);
		return 0;
	}
	if (!strcmp(key, "port") || !strcmp(key, "body_len")) {
		json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

		if (n < 0 || (key[0] == 'p' && n > 65535)) {
			perr(err, key[0] == 'p' ? "$.port" : "$.body_len", "expected integer");
			return -EINVAL;
		}
		if (key[0] == 'p')
			k->port = (uint16_t)n;
		else
			k->body_len = (size_t)n;
		return 0;
	}
	if (!strcmp(key, "path"))
		return call_str(v, key, &k->path, err);
	if (!strcmp(key, "url"))
		return call_str(v, key, &k->url, err);
	if (!strcmp(key, "method"))
		return call_str(v, key, &k->method, err);
	if (!strcmp(key, "query"))
		return call_str(v, key, &k->query, err);
	if (!strcmp(key, "host"))
		return call_str(v, key, &k->host, err);
	if (!strcmp(key, "remote"))
		return call_str(v, key, &k->remote, err);
	if (!strcmp(key, "ref"))
		return call_str(v, key, &k->ref, err);
	if (!strcmp(key, "target"))
		return call_str(v, key, &k->target, err);
	{
		char path[128];

		snprintf(path, sizeof(path), "$.%s", key);
		perr(err, path, "unknown key");
	}
	return -EINVAL;
}

void policy__call_free(struct policy_call_owned *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c->argv);
	free(c);
}

int policy__call_parse(const char *json_text, struct policy_call_owned **ret,
		       struct policy_error *err)
{
	struct policy_call_owned *c;
	json_error_t je;
	const char *key;
	json_t *v;
	int rc = 0;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->root = json_loads(json_text ? json_text : "", JSON_REJECT_DUPLICATES, &je);
	if (!c->root) {
		perr(err, "$", "JSON syntax error at line %d column %d: %s", je.line, je.column,
		     je.text);
		rc = -EINVAL;
	} else if (!json_is_object(c->root) || !json_object_get(c->root, "op")) {
		perr(err, "$", "expected an object with \"op\"");
		rc = -EINVAL;
	}
	if (rc == 0) {
		json_object_foreach(c->root, key, v)
		{
			rc = call_field(c, key, v, err);
			if (rc < 0)
				break;
		}
	}
	if (rc < 0) {
		policy__call_free(c);
		return rc;
	}
	*ret = c;
	return 0;
}

const struct policy_call *policy__call_get(const struct policy_call_owned *c)
{
	return &c->call;
}

/* ---- trace records and explanations ---- */

static const char *const event_names[] = {"call", "narrow", "widen"};

json_t *policy__trace_json(const struct policy_trace *t)
{
	if (!t || t->event > POLICY_EV_WIDEN || t->reason >= POLICY_R_COUNT ||
	    t->verdict > POLICY_ALLOW || t->op >= POLICY_OP_COUNT)
		return NULL;
	return json_pack(
		"{s:I, s:I, s:s, s:s?, s:s, s:s, s:o, s:o, s:o, s:b, s:o, s:o, s:o}", "seq",
		(json_int_t)t->seq, "time", (json_int_t)t->time, "event", event_names[t->event],
		"op", t->event == POLICY_EV_CALL ? policy__op_name(t->op) : NULL, "verdict",
		policy__level_name(t->verdict), "reason", policy__reason_name(t->reason),
		"legs_before", legs_json(t->legs_before), "legs_after", legs_json(t->legs_after),
		"call_legs", legs_json(t->call_legs), "quarantined", t->quarantined, "args_digest",
		hex_json(t->args_digest, POLICY_DIGEST_LEN), "envelope_before",
		hex_json(t->envelope_before, POLICY_DIGEST_LEN), "envelope_after",
		hex_json(t->envelope_after, POLICY_DIGEST_LEN));
}

int policy__trace_to_json(const struct policy_trace *t, char **ret)
{
	if (!t || t->event > POLICY_EV_WIDEN || t->reason >= POLICY_R_COUNT ||
	    t->verdict > POLICY_ALLOW || t->op >= POLICY_OP_COUNT)
		return -EINVAL;
	return json__dump_take(policy__trace_json(t), JSON_SORT_KEYS | JSON_COMPACT, ret);
}

static void legs_text(unsigned legs, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 3; i++)
		if (legs & (1u << i))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "+" : "", leg_names[i]);
	if (n == 0)
		snprintf(buf, len, "none");
}

int policy__explain(const struct policy_decision *d, char *buf, size_t len)
{
	char call[40], before[40], after[40], what[64];
	const struct policy_trace *t;
	int n;

	if (!d || !buf || d->reason >= POLICY_R_COUNT || d->verdict > POLICY_ALLOW ||
	    d->trace.event > POLICY_EV_WIDEN || d->trace.op >= POLICY_OP_COUNT)
		return -EINVAL;
	t = &d->trace;
	legs_text(d->call_legs, call, sizeof(call));
	legs_text(t->legs_before, before, sizeof(before));
	legs_text(t->legs_after, after, sizeof(after));
	if (t->event == POLICY_EV_CALL)
		snprintf(what, sizeof(what), "%s", policy__op_name(t->op));
	else
		snprintf(what, sizeof(what), "%s request", event_names[t->event]);
	n = snprintf(buf, len, "#%llu %s: %s (%s): %s%s%s%s; exposure: call %s, session %s -> %s%s",
		     (unsigned long long)t->seq, what, policy__level_name(d->verdict),
		     policy__reason_name(d->reason), policy__reason_message(d->reason),
		     d->detail[0] ? " [" : "", d->detail, d->detail[0] ? "]" : "", call, before,
		     after, t->quarantined ? "; session quarantined" : "");
	if (n < 0)
		return -EINVAL;
	return (size_t)n < len ? 0 : -ENOSPC;
}
