// SPDX-License-Identifier: Apache-2.0
/* The REST endpoints: each checks its input, calls nucleusd, and replies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "api/api-internal.h"

static const struct api_field no_fields[] = {{NULL}};

/* nucleusd's error as the reply; a 402 also names the exhausted budget ("budget"). */
static void reply_nd(struct api_req *r, int rc, const struct nd_err *e, json_t *extra)
{
	const char *kind = rc == -EDQUOT ? nd_err__budget_kind(e) : NULL;
	json_t *o;

	if (!kind) {
		api__reply_nd_error(r, rc, e, extra);
		return;
	}
	o = extra ? json_deep_copy(extra) : json_object();
	if (o)
		json_object_set_new(o, "budget", json_string(kind));
	api__reply_nd_error(r, rc, e, o);
	json_decref(o);
}

void api__reply_result(struct api_req *r, int rc, const struct nd_err *e, json_t *o, json_t *extra)
{
	if (rc < 0)
		reply_nd(r, rc, e, extra);
	else
		api__reply_json(r, 200, o);
	json_decref(o);
	json_decref(extra);
}

void api__h_health(struct api_req *r)
{
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__health(r->srv->nd, &o);
	if (rc < 0) {
		api__reply_nd_error(r, rc, NULL, NULL);
		return;
	}
	api__reply_json(r, 200, o);
	json_decref(o);
}

void api__h_metrics(struct api_req *r)
{
	static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
	struct api_server *srv = r->srv;
	char *text = NULL, *all = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__metrics(srv->nd, &text);
	f = rc == 0 ? open_memstream(&all, &len) : NULL;
	if (!f) {
		free(text);
		api__reply_error(r, 500, "internal", "cannot render metrics");
		return;
	}
	fputs(text, f);
	fprintf(f, "# HELP nucleus_http_requests_total API requests answered, by status class.\n"
		   "# TYPE nucleus_http_requests_total counter\n");
	for (int i = 1; i <= 5; i++)
		fprintf(f, "nucleus_http_requests_total{code=\"%s\"} %llu\n", classes[i],
			(unsigned long long)srv->requests[i]);
	fprintf(f,
		"# HELP nucleus_http_peer_denied_total Requests refused by peer credentials.\n"
		"# TYPE nucleus_http_peer_denied_total counter\n"
		"nucleus_http_peer_denied_total %llu\n",
		(unsigned long long)srv->peer_denied);
	fclose(f);
	free(text);
	api__reply_text(r, 200, "text/plain; version=0.0.4", all ? all : "");
	free(all);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*ret = v;
	return true;
}

/* Query flag @name: absent or "0"/"false" false, "1"/"true" true; else a 400 (false). */
static bool query_flag(struct api_req *r, struct api_query *q, const char *name, bool *ret)
{
	const char *v = api__query_get(q, name);

	*ret = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
	if (v && !*ret && strcmp(v, "0") && strcmp(v, "false")) {
		api__reply_error(r, 400, "wrong_type", "%s: must be true or false", name);
		return false;
	}
	return true;
}

/*
 * A page of the caller's own sandboxes; every owner's with all_owners=true (admin only,
 * else 403): {"sandboxes": [...], "next_cursor": "..."} (absent on the last page).
 */
void api__h_list(struct api_req *r)
{
	static const char *const allowed[] = {"all", "all_owners", "limit", "cursor", NULL};
	struct nd_list_opts o = {.limit = ND_LIST_DEFAULT};
	struct nd_err e = {0};
	struct api_query q;
	const char *limit_s;
	uint64_t limit = ND_LIST_DEFAULT;
	json_t *arr = NULL, *page;
	char *next = NULL;
	int rc;

	if (!api__req_body(r, NULL, false) || !api__req_query(r, allowed, &q))
		return;
	if (!query_flag(r, &q, "all", &o.all) || !query_flag(r, &q, "all_owners", &o.all_owners)) {
		api__query_clear(&q);
		return;
	}
	limit_s = api__query_get(&q, "limit");
	if (limit_s && (!parse_u64(limit_s, ND_LIST_MAX, &limit) || limit == 0)) {
		api__query_clear(&q);
		api__reply_error(r, 400, "out_of_range", "limit: integer 1..%d", ND_LIST_MAX);
		return;
	}
	o.limit = (unsigned)limit;
	o.cursor = api__query_get(&q, "cursor");
	rc = nucleusd__sandbox_list(r->srv->nd, &r->who, &o, &arr, &next, &e);
	api__query_clear(&q);
	if (rc < 0) {
		api__reply_nd_error(r, rc, &e, NULL);
		return;
	}
	page = json_pack("{so s:s*}", "sandboxes", arr, "next_cursor", next);
	free(next);
	if (!page) {
		api__reply_error(r, 500, "internal", "out of memory");
		return;
	}
	api__reply_json(r, 200, page);
	json_decref(page);
}

static void created(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	struct api_req *r = arg;
	json_t *extra = NULL;

	if (rc == 0) {
		api__reply_json(r, 201, body);
		return;
	}
	if (body)
		extra = json_pack("{sO}", "sandbox", body);
	api__reply_nd_error(r, rc, e, extra);
	json_decref(extra);
}

void api__h_create(struct api_req *r)
{
	struct nd_err e = {0};
	int rc;

	if (!api__req_body(r, api__create_spec, true))
		return;
	api__req_hold(r);
	rc = nucleusd__sandbox_create(r->srv->nd, &r->who, r->body, created, r, &e);
	if (rc < 0)
		api__reply_nd_error(r, rc, &e, NULL);
	/* else: created() replies (maybe already did) and frees r */
}

void api__h_get(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__sandbox_get(r->srv->nd, &r->who, r->segs[2], &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

typedef int (*lifecycle_fn)(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			    json_t **ret, struct nd_err *e);

static void lifecycle(struct api_req *r, lifecycle_fn fn, const struct api_field *spec)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, spec, false))
		return;
	rc = fn(r->srv->nd, &r->who, r->segs[2], &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_delete(struct api_req *r)
{
	lifecycle(r, nucleusd__sandbox_stop, NULL);
}

void api__h_pause(struct api_req *r)
{
	lifecycle(r, nucleusd__sandbox_pause, no_fields);
}

void api__h_resume(struct api_req *r)
{
	lifecycle(r, nucleusd__sandbox_resume, no_fields);
}

/* The late reply of a request answered after its handler returned (a tool call, a verify). */
static void replied(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	struct api_req *r = arg;

	if (rc == 0)
		api__reply_json(r, 200, body);
	else /* a late denial's fields (verdict, reason, approval_request) */
		reply_nd(r, rc, e, body);
}

static bool tool_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* ---- streamed run: NDJSON lines over a chunked 200 ---- */

static void stream_flushed(struct api_req *r)
{
	if (r->paused) {
		r->paused = false;
		nucleusd__stream_resume(r->srv->nd, r->stream);
	}
}

/* One NDJSON line; true when the connection is above its high-water mark. */
static bool stream_line(struct api_req *r, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	bool full = false;

	if (text) {
		size_t n = strlen(text);

		text[n] = '\n'; /* the NUL becomes the line end; the length says where to stop */
		full = api__stream_chunk(r, text, n + 1, stream_flushed);
	}
	free(text);
	return full;
}

static int stream_chunk(void *arg, int fd, const void *data, size_t len)
{
	struct api_req *r = arg;
	size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64;
	json_t *o;
	bool full = false;

	if (!r->conn)
		return 0; /* the client went away: the output is dropped */
	b64 = malloc(cap);
	if (!b64)
		return 0;
	sodium_bin2base64(b64, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	o = json_pack("{ss ss}", "stream", fd == 2 ? "stderr" : "stdout", "data", b64);
	free(b64);
	full = stream_line(r, o);
	json_decref(o);
	if (!full)
		return 0;
	r->paused = true;
	return ND_STREAM_FULL;
}

/* The last line: {"exit_code":N} or {"signal":N} (+ timed_out), or {"error", "message"}. */
static void stream_replied(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	struct api_req *r = arg;
	json_t *res = json_object_get(body, "result"), *o;
	json_int_t sig = json_integer_value(json_object_get(res, "signal"));

	if (rc < 0)
		o = json_pack("{ss ss}", "error", e && e->code[0] ? e->code : "internal", "message",
			      e && e->msg[0] ? e->msg : "the call failed");
	else if (sig > 0)
		o = json_pack("{sI}", "signal", sig);
	else
		o = json_pack("{sI}", "exit_code",
			      json_integer_value(json_object_get(res, "exit_code")));
	if (o && json_is_true(json_object_get(res, "timed_out")))
		json_object_set_new(o, "timed_out", json_true());
	r->paused = false;
	r->stream = NULL;
	stream_line(r, o);
	json_decref(o);
	api__stream_end(r);
}

static void tool_stream(struct api_req *r, json_t *args)
{
	struct nd_err e = {0};
	json_t *denial = NULL;
	void *stream = NULL;
	int rc;

	api__req_hold(r);
	rc = nucleusd__tool_call_stream(r->srv->nd, &r->who, r->segs[2], r->segs[4], args,
					stream_chunk, stream_replied, r, &stream, &denial, &e);
	if (rc < 0) {
		reply_nd(r, rc, &e, denial);
	} else {
		/* Allowed and under way (no callback runs before the call returned). */
		r->stream = stream;
		api__stream_start(r, "application/x-ndjson");
	}
	json_decref(denial);
}

void api__h_tool(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *denial = NULL, *args;
	int rc;

	if (!tool_name_ok(r->segs[4])) {
		api__reply_error(r, 400, "bad_tool_name", "tool names are [a-z_][a-z0-9_]{0,63}");
		return;
	}
	if (!api__req_body(r, api__tool_spec, false))
		return;
	args = json_object_get(r->body, "args");
	args = args ? json_incref(args) : json_object();
	/* The catalogue's argument schema, before anything is decided or recorded. */
	rc = nd_tool__check(r->segs[4], args, &e);
	if (rc < 0) {
		json_decref(args);
		reply_nd(r, rc, &e, NULL);
		return;
	}
	if (json_is_true(json_object_get(r->body, "stream"))) {
		tool_stream(r, args);
		json_decref(args);
		return;
	}
	api__req_hold(r);
	rc = nucleusd__tool_call(r->srv->nd, &r->who, r->segs[2], r->segs[4], args, replied, r,
				 &denial, &e);
	json_decref(args);
	if (rc < 0)
		reply_nd(r, rc, &e, denial);
	json_decref(denial);
}

void api__h_audit(struct api_req *r)
{
	static const char *const allowed[] = {"after", "limit", NULL};
	struct nd_err e = {0};
	struct api_query q;
	const char *after_s, *limit_s;
	uint64_t after = 0, limit = 1000;
	json_t *arr = NULL;
	int rc;

	if (!api__req_body(r, NULL, false) || !api__req_query(r, allowed, &q))
		return;
	after_s = api__query_get(&q, "after");
	limit_s = api__query_get(&q, "limit");
	if ((after_s && !parse_u64(after_s, INT64_MAX, &after)) ||
	    (limit_s && (!parse_u64(limit_s, 10000, &limit) || limit == 0))) {
		api__query_clear(&q);
		api__reply_error(r, 400, "out_of_range",
				 "after: integer >= 0; limit: integer 1..10000");
		return;
	}
	api__query_clear(&q);
	rc = nucleusd__audit_list(r->srv->nd, &r->who, r->segs[2], after, (unsigned)limit, &arr,
				  &e);
	if (rc < 0) {
		api__reply_nd_error(r, rc, &e, NULL);
		return;
	}
	api__reply_json(r, 200, arr);
	json_decref(arr);
}

/* GET /v1/sandboxes/{id}/audit/verify, and GET /v1/audit/verify (the whole log: admin). */
void api__h_audit_verify(struct api_req *r)
{
	struct nd_err e = {0};
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	api__req_hold(r);
	rc = nucleusd__audit_verify(r->srv->nd, &r->who, r->nsegs > 3 ? r->segs[2] : NULL, replied,
				    r, &e);
	if (rc < 0)
		api__reply_nd_error(r, rc, &e, NULL);
}

void api__h_db_check(struct api_req *r)
{
	struct nd_err e = {0};
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	api__req_hold(r);
	rc = nucleusd__db_check(r->srv->nd, &r->who, replied, r, &e);
	if (rc < 0)
		api__reply_nd_error(r, rc, &e, NULL);
}

/* The body's "nonce" of an approval request (32 lower-case hex), or NULL after a 400. */
static const char *nonce_of(struct api_req *r)
{
	const char *nonce = json_string_value(json_object_get(r->body, "nonce"));

	if (strlen(nonce) == 32 && strspn(nonce, "0123456789abcdef") == 32)
		return nonce;
	api__reply_error(r, 400, "bad_nonce", "nonce: 32 lower-case hex digits");
	return NULL;
}

void api__h_approve(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *denial = NULL;
	const char *nonce;
	int rc;

	if (!api__req_body(r, api__approval_spec, true) || !(nonce = nonce_of(r)))
		return;
	api__req_hold(r);
	rc = nucleusd__approve(r->srv->nd, &r->who, r->segs[2], nonce,
			       json_object_get(r->body, "approval"), replied, r, &denial, &e);
	if (rc < 0)
		reply_nd(r, rc, &e, denial);
	json_decref(denial);
}

void api__h_approval_refuse(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	const char *nonce;
	int rc;

	if (!api__req_body(r, api__refusal_spec, true) || !(nonce = nonce_of(r)))
		return;
	rc = nucleusd__approval_refuse(r->srv->nd, &r->who, r->segs[2], nonce, &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_usage(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, api__usage_spec, true))
		return;
	rc = nucleusd__usage(r->srv->nd, &r->who, r->segs[2], r->body, &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_budget(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__budget(r->srv->nd, &r->who, r->segs[2], &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

/* ---- the policy engine for clients: check a policy, explain one decision ---- */

typedef int (*policy_fn)(struct nucleusd *nd, json_t *arg, json_t **ret, struct nd_err *e);

static void policy_reply(struct api_req *r, policy_fn fn, json_t *arg)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	rc = fn(r->srv->nd, arg, &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_policy_check(struct api_req *r)
{
	if (api__req_body(r, api__policy_check_spec, true))
		policy_reply(r, nucleusd__policy_check, json_object_get(r->body, "policy"));
}

void api__h_policy_explain(struct api_req *r)
{
	if (api__req_body(r, api__policy_explain_spec, true))
		policy_reply(r, nucleusd__policy_explain, r->body);
}
