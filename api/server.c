// SPDX-License-Identifier: Apache-2.0
/*
 * The REST server: libevent evhttp bound through an evconnlistener on an AF_UNIX
 * socket (mode 0660). Every request's peer credentials (SO_PEERCRED) are checked
 * against the configured owner; errors are always JSON {"error", "message"}.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <ctype.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api/api-internal.h"

void api__logf(struct api_server *srv, enum api_log_level lvl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!srv->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv->log(srv->log_arg, lvl, msg);
}

int api__status(int rc)
{
	switch (rc) {
	case -EINVAL:
	case -E2BIG:
		return 400;
	case -EDQUOT:
		return 402;
	case -EACCES:
	case -EPERM:
		return 403;
	case -ENOENT:
		return 404;
	case -EBUSY:
	case -EEXIST:
		return 409;
	case -EHOSTDOWN:
	case -EIO:
	case -ESRCH:
		return 502;
	case -EAGAIN:
		return 503;
	case -ENOSYS:
	case -EOPNOTSUPP:
		return 501;
	default:
		return 500;
	}
}

/* ---- requests and replies ---- */

static void req_free(struct api_req *r)
{
	if (!r)
		return;
	if (r->pprev) {
		*r->pprev = r->next;
		if (r->next)
			r->next->pprev = r->pprev;
	}
	for (int i = 0; i < r->nsegs; i++)
		free(r->segs[i]);
	json_decref(r->body);
	free(r);
}

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
	struct api_req *r = arg;

	/*
	 * libevent frees the request with its connection, unless it already detached an
	 * unfinished request from a failed connection: that one is left to us.
	 */
	if (r->req && !evhttp_request_get_connection(r->req))
		evhttp_request_free(r->req);
	r->req = NULL;
	r->conn = NULL;
	if (r->paused) { /* nobody will read: let the producer run on (output is dropped) */
		r->paused = false;
		nucleusd__stream_resume(r->srv->nd, r->stream);
	}
}

void api__req_hold(struct api_req *r)
{
	if (r->conn)
		evhttp_connection_set_closecb(r->conn, on_conn_close, r);
	r->next = r->srv->held;
	if (r->next)
		r->next->pprev = &r->next;
	r->pprev = &r->srv->held;
	r->srv->held = r;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 431:
		return "Request Header Fields Too Large";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return status < 400 ? "OK" : "Error";
	}
}

void api__reply_text(struct api_req *r, int status, const char *ctype, const char *text)
{
	struct evbuffer *buf;

	if (r->conn)
		evhttp_connection_set_closecb(r->conn, NULL, NULL);
	if (r->req) {
		buf = evbuffer_new();
		if (buf) {
			evbuffer_add(buf, text, strlen(text));
			evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
					  ctype);
			evhttp_add_header(evhttp_request_get_output_headers(r->req),
					  "Cache-Control", "no-store");
			evhttp_send_reply(r->req, status, reason_phrase(status), buf);
			evbuffer_free(buf);
		} else {
			evhttp_send_error(r->req, 500, NULL);
		}
	}
	if (status >= 100 && status < 600)
		r->srv->requests[status / 100]++;
	req_free(r);
}

/* Unsent output above which a streamed reply stops taking data from its producer. */
#define STREAM_HIGH_WATER (256u << 10)

void api__stream_start(struct api_req *r, const char *ctype)
{
	if (!r->req)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type", ctype);
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
	evhttp_send_reply_start(r->req, 200, reason_phrase(200));
}

bool api__stream_chunk(struct api_req *r, const void *data, size_t len,
		       void (*flushed)(struct evhttp_connection *, void *))
{
	struct evbuffer *buf;
	struct bufferevent *bev;

	if (!r->req || !r->conn)
		return false;
	buf = evbuffer_new();
	if (!buf)
		return false;
	evbuffer_add(buf, data, len);
	evhttp_send_reply_chunk_with_cb(r->req, buf, flushed, r);
	evbuffer_free(buf);
	bev = evhttp_connection_get_bufferevent(r->conn);
	return bev && evbuffer_get_length(bufferevent_get_output(bev)) > STREAM_HIGH_WATER;
}

void api__stream_end(struct api_req *r)
{
	if (r->conn)
		evhttp_connection_set_closecb(r->conn, NULL, NULL);
	if (r->req)
		evhttp_send_reply_end(r->req);
	r->srv->requests[2]++;
	req_free(r);
}

void api__reply_json(struct api_req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	if (!text) {
		api__reply_text(r, 500, "application/json",
				"{\"error\":\"internal\",\"message\":\"out of memory\"}");
		return;
	}
	api__reply_text(r, status, "application/json", text);
	free(text);
}

static void reply_error_v(struct api_req *r, int status, const char *code, json_t *extra,
			  const char *fmt, va_list ap)
{
	char msg[512];
	json_t *o;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	o = extra ? json_deep_copy(extra) : json_object();
	if (o) {
		json_object_set_new(o, "error", json_string(code));
		json_object_set_new(o, "message", json_string(msg));
	}
	api__reply_json(r, status, o);
	json_decref(o);
}

void api__reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, status, code, NULL, fmt, ap);
	va_end(ap);
}

static void reply_error_extra(struct api_req *r, int status, const char *code, json_t *extra,
			      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, status, code, extra, fmt, ap);
	va_end(ap);
}

void api__reply_nd_error(struct api_req *r, int rc, const struct nd_err *e, json_t *extra)
{
	const char *code = e && e->code[0] ? e->code : "internal";
	const char *msg = e && e->msg[0] ? e->msg : strerror(rc < 0 ? -rc : rc);

	reply_error_extra(r, api__status(rc), code, extra, "%s", msg);
}

/* ---- body and query ---- */

static bool content_type_json(struct evhttp_request *req)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t n = strlen("application/json");

	return ct && strncasecmp(ct, "application/json", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static bool read_body(struct api_req *r, char **ret, size_t *ret_len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	char *text;

	if (len > r->srv->max_body) {
		api__reply_error(r, 413, "body_too_large",
				 "request body is %zu bytes; the limit is "
				 "%zu",
				 len, r->srv->max_body);
		return false;
	}
	text = malloc(len + 1);
	if (!text) {
		api__reply_error(r, 500, "internal", "out of memory");
		return false;
	}
	evbuffer_remove(in, text, len);
	text[len] = '\0';
	*ret = text;
	*ret_len = len;
	return true;
}

bool api__req_body(struct api_req *r, const struct api_field *spec, bool required)
{
	struct api_verr verr = {0};
	json_error_t jerr;
	size_t len;
	char *text;

	if (!read_body(r, &text, &len))
		return false;
	if (len == 0) {
		free(text);
		if (!required)
			return true;
		api__reply_error(r, 400, "missing_body", "this request needs a JSON body");
		return false;
	}
	if (!content_type_json(r->req)) {
		free(text);
		api__reply_error(r, 415, "unsupported_media_type",
				 "request bodies must be Content-Type: application/json");
		return false;
	}
	if (!spec) {
		free(text);
		api__reply_error(r, 400, "unexpected_body", "this request takes no body");
		return false;
	}
	r->body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!r->body) {
		api__reply_error(r, 400, "malformed_json", "line %d column %d: %s", jerr.line,
				 jerr.column, jerr.text);
		return false;
	}
	if (api__validate(r->body, spec, &verr) < 0) {
		api__reply_error(r, 400, verr.code, "%s", verr.msg);
		return false;
	}
	return true;
}

bool api__req_query(struct api_req *r, const char *const *allowed, struct evkeyvalq *out)
{
	struct evkeyval *kv;

	TAILQ_INIT(out);
	if (!r->query || !*r->query)
		return true;
	if (evhttp_parse_query_str(r->query, out) < 0) {
		api__reply_error(r, 400, "bad_query", "malformed query string");
		return false;
	}
	TAILQ_FOREACH(kv, out, next)
	{
		const char *const *a = allowed;

		while (a && *a && strcmp(*a, kv->key) != 0)
			a++;
		if (!a || !*a) {
			api__reply_error(r, 400, "unknown_field", "unknown query parameter '%s'",
					 kv->key);
			evhttp_clear_headers(out);
			return false;
		}
	}
	return true;
}

/* ---- routing ---- */

struct route {
	const char *segs[6];
	api_handler_fn get, post, del;
};

static const struct route routes[] = {
	{{"v1", "health"}, .get = api__h_health},
	{{"v1", "metrics"}, .get = api__h_metrics},
	{{"v1", "sandboxes"}, .get = api__h_list, .post = api__h_create},
	{{"v1", "sandboxes", "*"}, .get = api__h_get, .del = api__h_delete},
	{{"v1", "sandboxes", "*", "pause"}, .post = api__h_pause},
	{{"v1", "sandboxes", "*", "resume"}, .post = api__h_resume},
	{{"v1", "sandboxes", "*", "tools", "*"}, .post = api__h_tool},
	{{"v1", "sandboxes", "*", "approvals"}, .post = api__h_approve},
	{{"v1", "sandboxes", "*", "audit"}, .get = api__h_audit},
	{{"v1", "sandboxes", "*", "audit", "verify"}, .get = api__h_audit_verify},
	{{"v1", "sandboxes", "*", "usage"}, .post = api__h_usage},
	{{"v1", "sandboxes", "*", "budget"}, .get = api__h_budget},
	{{"v1", "policy", "check"}, .post = api__h_policy_check},
	{{"v1", "policy", "explain"}, .post = api__h_policy_explain},
};

static bool route_match(const struct route *rt, const struct api_req *r)
{
	int i;

	for (i = 0; i < 6 && rt->segs[i]; i++) {
		if (i >= r->nsegs)
			return false;
		if (strcmp(rt->segs[i], "*") != 0 && strcmp(rt->segs[i], r->segs[i]) != 0)
			return false;
	}
	return i == r->nsegs;
}

/* Splits and decodes the path. Returns false (after replying) on a bad path. */
static bool parse_path(struct api_req *r)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *p, *end;
	char *raw;

	r->query = uri ? evhttp_uri_get_query(uri) : NULL;
	if (!path || path[0] != '/')
		goto notfound;
	for (p = path + 1; *p; p = *end ? end + 1 : end) {
		size_t n;

		end = strchrnul(p, '/');
		if (end == p || r->nsegs == 8)
			goto notfound;
		raw = strndup(p, (size_t)(end - p));
		r->segs[r->nsegs] = raw ? evhttp_uridecode(raw, 0, &n) : NULL;
		free(raw);
		if (!r->segs[r->nsegs])
			goto notfound;
		r->nsegs++;
		if (strlen(r->segs[r->nsegs - 1]) != n || strchr(r->segs[r->nsegs - 1], '/'))
			goto notfound;
		if (*end == '/' && end[1] == '\0')
			goto notfound;
	}
	return true;
notfound:
	api__reply_error(r, 404, "not_found", "no such route");
	return false;
}

static void dispatch(struct api_req *r)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(r->req);
	api_handler_fn h;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];
		char allow[32];

		if (!route_match(rt, r))
			continue;
		h = m == EVHTTP_REQ_GET	     ? rt->get
		    : m == EVHTTP_REQ_POST   ? rt->post
		    : m == EVHTTP_REQ_DELETE ? rt->del
					     : NULL;
		if (h) {
			h(r);
			return;
		}
		snprintf(allow, sizeof(allow), "%s%s%s", rt->get ? "GET " : "",
			 rt->post ? "POST " : "", rt->del ? "DELETE " : "");
		allow[strlen(allow) - 1] = '\0';
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", allow);
		api__reply_error(r, 405, "method_not_allowed", "allowed: %s", allow);
		return;
	}
	api__reply_error(r, 404, "not_found", "no such route");
}

/* ---- transport checks ---- */

/*
 * libevent 2.1 answers what its HTTP parser rejects (a malformed request line or header
 * line, an oversize head or body, an unknown method, a bad Content-Length, an unknown
 * Expect) with its own HTML page, and has no hook to replace it (2.2 has
 * evhttp_set_errorcb). So every connection's raw bytes are checked here first: each
 * request's head is held back until it is complete, checked, then let through, and its
 * body follows up to its Content-Length. A request that fails the checks is replaced by
 * a synthetic one (GET /, Connection: close, TRANSPORT_HEADER: status code message) that
 * on_request() answers in JSON; what follows it on that connection is dropped. Clients
 * may not send TRANSPORT_HEADER themselves. evhttp's own limits stay above ours, so it
 * never sees a request it would refuse.
 *
 * The state lives in a struct api_conn per connection (the bufferevent comes from our
 * evhttp_set_bevcb callback; the check is a callback on its input buffer, which runs
 * before evhttp's read callback). 2.1 tells nobody when evhttp frees a connection, so a
 * conn remembers its socket (fd + inode) and is collected once that socket is gone.
 */
#define TRANSPORT_HEADER "X-Nucleus-Transport-Error"

enum conn_state { CONN_HEAD, CONN_BODY, CONN_DEAD };

struct api_conn {
	struct api_server *srv;
	struct bufferevent *bev;
	struct evbuffer_cb_entry *cb;
	struct evbuffer *raw; /* received, not yet let through */
	enum conn_state state;
	uint64_t body_left;
	bool busy; /* in on_input: our own changes to the input buffer are not news */
	int fd;	   /* -1 until conn_fixup() ran (we hold a reference on bev until then) */
	dev_t dev;
	ino_t ino;
	struct api_conn *next;
};

struct head_check {
	int status;
	char code[32];
	char msg[160];
	bool body_method;
	bool has_length;
	uint64_t length;
};

static bool fail_head(struct head_check *h, int status, const char *code, const char *msg)
{
	h->status = status;
	snprintf(h->code, sizeof(h->code), "%s", code);
	snprintf(h->msg, sizeof(h->msg), "%s", msg);
	return false;
}

static bool is_tchar(char c)
{
	return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool has_ctl(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return true;
	return false;
}

static bool check_request_line(const char *p, size_t n, struct head_check *h)
{
	static const char *const methods[] = {"GET",	 "POST",  "HEAD",    "PUT",  "DELETE",
					      "OPTIONS", "TRACE", "CONNECT", "PATCH"};
	const char *sp1 = memchr(p, ' ', n), *sp2;
	char uri[4096];
	struct evhttp_uri *u;
	size_t mlen, ulen, vlen;
	bool known = false;

	if (!sp1 || has_ctl(p, n))
		return fail_head(h, 400, "bad_request_line", "malformed request line");
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p));
	if (!sp2 || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - p)))
		return fail_head(h, 400, "bad_request_line",
				 "malformed request line (want METHOD URI HTTP/1.x)");
	mlen = (size_t)(sp1 - p);
	ulen = (size_t)(sp2 - sp1 - 1);
	vlen = n - (size_t)(sp2 + 1 - p);
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(p[i]))
			return fail_head(h, 400, "bad_request_line", "malformed method");
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && !known; i++)
		known = strlen(methods[i]) == mlen && memcmp(methods[i], p, mlen) == 0;
	if (!mlen || !known) {
		char msg[80];

		snprintf(msg, sizeof(msg), "unknown method '%.*s'", (int)(mlen < 32 ? mlen : 32),
			 p);
		return fail_head(h, mlen ? 405 : 400,
				 mlen ? "method_not_allowed" : "bad_request_line", msg);
	}
	h->body_method = (mlen == 4 && memcmp(p, "POST", 4) == 0) ||
			 (mlen == 3 && memcmp(p, "PUT", 3) == 0) ||
			 (mlen == 5 && memcmp(p, "PATCH", 5) == 0);
	if (!ulen || ulen >= sizeof(uri))
		return fail_head(h, 400, "bad_request_line", "malformed request target");
	memcpy(uri, sp1 + 1, ulen);
	uri[ulen] = '\0';
	u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
	if (!u)
		return fail_head(h, 400, "bad_request_line", "malformed request target");
	evhttp_uri_free(u);
	if (vlen == 8 &&
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0))
		return true;
	if (vlen == 8 && memcmp(sp2 + 1, "HTTP/", 5) == 0 && isdigit((unsigned char)sp2[6]) &&
	    sp2[7] == '.' && isdigit((unsigned char)sp2[8]))
		return fail_head(h, 505, "http_version_not_supported",
				 "only HTTP/1.0 and HTTP/1.1 are spoken here");
	return fail_head(h, 400, "bad_request_line", "malformed HTTP version");
}

static bool header_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

static bool check_header(const char *p, size_t n, struct head_check *h)
{
	const char *colon = memchr(p, ':', n), *v, *end = p + n;
	size_t nlen;

	if (n && (p[0] == ' ' || p[0] == '\t'))
		return fail_head(h, 400, "bad_header", "folded header lines are not accepted");
	if (!colon || colon == p)
		return fail_head(h, 400, "bad_header", "malformed header line");
	nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar(p[i]))
			return fail_head(h, 400, "bad_header", "malformed header name");
	if (has_ctl(colon + 1, (size_t)(end - colon - 1)))
		return fail_head(h, 400, "bad_header", "control character in a header value");
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (header_is(p, nlen, TRANSPORT_HEADER))
		return fail_head(h, 400, "bad_header", TRANSPORT_HEADER " is reserved");
	if (header_is(p, nlen, "Transfer-Encoding"))
		return fail_head(h, 411, "length_required",
				 "request bodies need Content-Length (no Transfer-Encoding)");
	if (header_is(p, nlen, "Expect") &&
	    !((size_t)(end - v) == 12 && strncasecmp(v, "100-continue", 12) == 0))
		return fail_head(h, 417, "expectation_failed",
				 "only Expect: 100-continue is known");
	if (header_is(p, nlen, "Content-Length")) {
		uint64_t len = 0;

		if (h->has_length)
			return fail_head(h, 400, "bad_content_length",
					 "more than one Content-Length");
		if (v == end || end - v > 18)
			return fail_head(h, 400, "bad_content_length", "malformed Content-Length");
		for (const char *c = v; c < end; c++) {
			if (!isdigit((unsigned char)*c))
				return fail_head(h, 400, "bad_content_length",
						 "malformed Content-Length");
			len = len * 10 + (uint64_t)(*c - '0');
		}
		h->has_length = true;
		h->length = len;
	}
	return true;
}

/*
 * Checks the complete head @p (@n bytes, with its empty last line). Lines end in LF
 * with an optional CR before it, as evhttp reads them.
 */
static bool check_head(struct api_server *srv, const char *p, size_t n, struct head_check *h)
{
	bool first = true;
	char msg[160];

	*h = (struct head_check){0};
	if (n > srv->max_headers) {
		snprintf(msg, sizeof(msg),
			 "request line and headers are %zu bytes or more; the "
			 "limit is %zu",
			 n, srv->max_headers);
		return fail_head(h, 431, "headers_too_large", msg);
	}
	for (size_t pos = 0; pos < n;) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t len = (size_t)(nl - (p + pos));

		if (len && p[pos + len - 1] == '\r')
			len--;
		if (!len)
			break; /* the empty line */
		if (first ? !check_request_line(p + pos, len, h) : !check_header(p + pos, len, h))
			return false;
		first = false;
		pos = (size_t)(nl - p) + 1;
	}
	if (h->has_length && h->length > srv->max_body) {
		snprintf(msg, sizeof(msg), "request body is %llu bytes; the limit is %zu",
			 (unsigned long long)h->length, srv->max_body);
		return fail_head(h, 413, "body_too_large", msg);
	}
	if (!h->body_method && h->length > 0)
		return fail_head(h, 400, "unexpected_body", "this method takes no body");
	return true;
}

/* Replaces the rest of the connection's input with the synthetic error request. */
static void conn_fail(struct api_conn *c, struct evbuffer *in, const struct head_check *h)
{
	evbuffer_drain(c->raw, evbuffer_get_length(c->raw));
	evbuffer_add_printf(
		in,
		"GET / HTTP/1.1\r\nHost: nucleusd\r\nConnection: close\r\n" TRANSPORT_HEADER
		": %d %s %s\r\n\r\n",
		h->status, h->code, h->msg);
	c->state = CONN_DEAD;
}

/* Length of the complete head at the start of @p, 0 while it is incomplete. */
static size_t head_length(const char *p, size_t n)
{
	for (size_t pos = 0; pos < n;) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t len;

		if (!nl)
			return 0;
		len = (size_t)(nl - (p + pos));
		if (len == 0 || (len == 1 && p[pos] == '\r'))
			return (size_t)(nl - p) + 1;
		pos = (size_t)(nl - p) + 1;
	}
	return 0;
}

/* Lets through what is complete and valid in c->raw; see the comment above. */
static void check_input(struct api_conn *c, struct evbuffer *in)
{
	struct head_check h;
	size_t avail, n;
	char *p;

	for (;;) {
		avail = evbuffer_get_length(c->raw);
		if (c->state == CONN_DEAD) {
			evbuffer_drain(c->raw, avail);
			return;
		}
		if (!avail)
			return;
		if (c->state == CONN_BODY) {
			n = avail < c->body_left ? avail : (size_t)c->body_left;
			evbuffer_remove_buffer(c->raw, in, n);
			c->body_left -= n;
			if (!c->body_left)
				c->state = CONN_HEAD;
			continue;
		}
		/* Empty lines before a request line are ignored (RFC 9112, 2.2). */
		p = (char *)evbuffer_pullup(c->raw, avail < 2 ? (ev_ssize_t)avail : 2);
		if (p && (p[0] == '\n' || (avail >= 2 && p[0] == '\r' && p[1] == '\n'))) {
			evbuffer_drain(c->raw, p[0] == '\n' ? 1 : 2);
			continue;
		}
		n = avail < c->srv->max_headers + 2 ? avail : c->srv->max_headers + 2;
		p = (char *)evbuffer_pullup(c->raw, (ev_ssize_t)n);
		if (!p)
			return; /* out of memory: try again with the next read */
		n = head_length(p, n);
		if (!n) {
			if (avail <= c->srv->max_headers)
				return;			  /* wait for the rest */
			check_head(c->srv, p, avail, &h); /* too large: 431 */
			conn_fail(c, in, &h);
			continue;
		}
		if (!check_head(c->srv, p, n, &h)) {
			conn_fail(c, in, &h);
			continue;
		}
		if (h.body_method && !h.has_length) {
			/* No Content-Length: no body (RFC 9112); evhttp would read until EOF. */
			size_t eol = p[n - 2] == '\r' ? 2 : 1;

			evbuffer_remove_buffer(c->raw, in, n - eol);
			evbuffer_drain(c->raw, eol);
			evbuffer_add(in, "Content-Length: 0\r\n\r\n", 21);
			continue;
		}
		evbuffer_remove_buffer(c->raw, in, n);
		c->body_left = h.length;
		c->state = c->body_left ? CONN_BODY : CONN_HEAD;
	}
}

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct api_conn *c = arg;
	size_t len = evbuffer_get_length(in);

	if (c->busy || !info->n_added || info->n_added > len)
		return;
	c->busy = true;
	/* Everything already in @in was let through; the news is at its end. */
	if (len == info->n_added) {
		evbuffer_add_buffer(c->raw, in);
	} else {
		struct evbuffer *keep = evbuffer_new();

		if (keep) {
			evbuffer_remove_buffer(in, keep, len - info->n_added);
			evbuffer_add_buffer(c->raw, in);
			evbuffer_add_buffer(in, keep);
			evbuffer_free(keep);
		}
	}
	check_input(c, in);
	c->busy = false;
}

static void conn_free(struct api_conn *c)
{
	evbuffer_free(c->raw);
	free(c);
}

/* Frees the conns whose socket is gone (evhttp freed the connection and closed it). */
static void conns_collect(struct api_server *srv)
{
	struct api_conn **pc = &srv->conns;
	struct stat st;

	while (*pc) {
		struct api_conn *c = *pc;

		if (c->fd >= 0 &&
		    (fstat(c->fd, &st) < 0 || st.st_dev != c->dev || st.st_ino != c->ino)) {
			*pc = c->next;
			conn_free(c);
			continue;
		}
		pc = &c->next;
	}
}

/*
 * Runs once the loop is back, after evhttp gave new connections their socket: records
 * it and drops our reference. A connection evhttp already gave up on (its callbacks are
 * cleared) goes with that reference.
 */
static void conn_fixup(evutil_socket_t unused, short what, void *arg)
{
	struct api_server *srv = arg;
	struct api_conn **pc = &srv->conns;

	while (*pc) {
		struct api_conn *c = *pc;
		bufferevent_event_cb ecb = NULL;
		struct stat st;
		int fd;

		if (c->fd >= 0) {
			pc = &c->next;
			continue;
		}
		bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
		fd = ecb ? bufferevent_getfd(c->bev) : -1;
		if (fd >= 0 && fstat(fd, &st) == 0) {
			c->fd = fd;
			c->dev = st.st_dev;
			c->ino = st.st_ino;
			bufferevent_decref(c->bev);
			pc = &c->next;
			continue;
		}
		/* Gone, or no socket to recognize it by: stop checking it. */
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->cb);
		bufferevent_decref(c->bev);
		*pc = c->next;
		conn_free(c);
	}
}

/* evhttp's bevcb: the bufferevent of a new connection, with the input check on it. */
static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
	struct api_server *srv = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct api_conn *c = NULL;

	if (!bev)
		return NULL;
	conns_collect(srv);
	c = calloc(1, sizeof(*c));
	if (c)
		c->raw = evbuffer_new();
	if (c && c->raw)
		c->cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
	if (!c || !c->raw || !c->cb) {
		if (c)
			evbuffer_free(c->raw);
		free(c);
		bufferevent_free(bev);
		return NULL; /* evhttp makes its own: that connection goes unchecked */
	}
	c->srv = srv;
	c->bev = bev;
	c->fd = -1;
	bufferevent_incref(bev); /* until conn_fixup() */
	c->next = srv->conns;
	srv->conns = c;
	event_active(srv->conn_fixup, EV_TIMEOUT, 0);
	return bev;
}

static void conns_free(struct api_server *srv)
{
	while (srv->conns) {
		struct api_conn *c = srv->conns;

		srv->conns = c->next;
		if (c->fd < 0)
			bufferevent_decref(c->bev);
		conn_free(c);
	}
}

/* Answers the synthetic request of a failed check (true), or returns false. */
static bool transport_error(struct api_req *r)
{
	const char *v =
		evhttp_find_header(evhttp_request_get_input_headers(r->req), TRANSPORT_HEADER);
	char code[32];
	int status, off = 0;

	if (!v)
		return false;
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Connection", "close");
	if (sscanf(v, "%d %31s %n", &status, code, &off) < 2 || !off || status < 400 ||
	    status > 599)
		api__reply_error(r, 400, "bad_request", "malformed request");
	else
		api__reply_error(r, status, code, "%s", v + off);
	return true;
}

/* ---- peer credentials ---- */

static bool peer_allowed(struct api_server *srv, struct api_req *r)
{
	struct bufferevent *bev = r->conn ? evhttp_connection_get_bufferevent(r->conn) : NULL;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		api__logf(srv, API_LOG_ERR, "cannot read peer credentials: %s", strerror(errno));
		api__reply_error(r, 403, "forbidden", "cannot identify the peer");
		return false;
	}
	r->who = (struct nd_caller){.uid = cred.uid, .gid = cred.gid, .pid = cred.pid};
	if (cred.uid == 0 || cred.uid == srv->owner_uid || cred.gid == srv->owner_gid)
		return true;
	srv->peer_denied++;
	api__logf(srv, API_LOG_WARN, "refused request from uid %u gid %u pid %d: not the owner",
		  (unsigned)cred.uid, (unsigned)cred.gid, (int)cred.pid);
	api__reply_error(r, 403, "forbidden", "uid %u may not use this nucleusd",
			 (unsigned)cred.uid);
	return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct api_server *srv = arg;
	struct api_req *r = calloc(1, sizeof(*r));

	if (!r) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->srv = srv;
	r->req = req;
	r->conn = evhttp_request_get_connection(req);
	if (!peer_allowed(srv, r))
		return;
	if (transport_error(r))
		return;
	if (!parse_path(r))
		return;
	dispatch(r);
}

/* ---- socket ---- */

static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file nobody listens on is stale; one that answers belongs to a live daemon. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	return unlink(sa->sun_path) < 0 ? -errno : 0;
}

static int bind_socket(struct api_server *srv, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(srv->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, srv->path);
	r = make_parent(srv->path);
	if (r < 0)
		return r;
	r = clear_stale(&sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	/* Not listening yet: nobody can connect before the mode is right. */
	if (chmod(srv->path, 0660) < 0)
		goto fail;
	if (geteuid() == 0 && chown(srv->path, srv->owner_uid, srv->owner_gid) < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	unlink(srv->path);
	return r;
}

int api_server__new(struct event_base *base, struct nucleusd *nd,
		    const struct api_server_config *cfg, struct api_server **ret)
{
	char def[108];
	struct api_server *srv;
	int fd = -1, r = -ENOMEM;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->base = base;
	srv->nd = nd;
	srv->owner_uid = cfg->owner_uid;
	srv->owner_gid = cfg->owner_gid;
	srv->max_body = cfg->max_body ? cfg->max_body : 1 << 20;
	srv->log = cfg->log;
	srv->log_arg = cfg->log_arg;
	srv->path =
		strdup(cfg->socket_path ? cfg->socket_path : api__default_socket(def, sizeof(def)));
	srv->http = evhttp_new(base);
	if (!srv->path || !srv->http)
		goto fail;
	/*
	 * Our limits are enforced on the raw bytes (check_input: JSON 413/431); evhttp's
	 * own (HTML) limits stay far above them so it never applies them.
	 */
	srv->max_headers = cfg->max_headers ? cfg->max_headers : 16384;
	evhttp_set_max_body_size(
		srv->http, (ev_ssize_t)(srv->max_body < (1u << 20) ? 4u << 20 : srv->max_body * 4));
	evhttp_set_max_headers_size(srv->http, (ev_ssize_t)(srv->max_headers * 4));
	evhttp_set_timeout(srv->http, cfg->timeout_s > 0 ? cfg->timeout_s : 30);
	evhttp_set_allowed_methods(srv->http, 0xffff); /* 405s are ours, in JSON */
	evhttp_set_gencb(srv->http, on_request, srv);
	srv->conn_fixup = event_new(base, -1, 0, conn_fixup, srv);
	if (!srv->conn_fixup)
		goto fail;
	evhttp_set_bevcb(srv->http, conn_new, srv);
	r = bind_socket(srv, &fd);
	if (r < 0)
		goto fail;
	srv->listener = evconnlistener_new(base, NULL, NULL,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (!srv->listener) {
		r = -errno ? -errno : -EIO;
		close(fd);
		unlink(srv->path);
		goto fail;
	}
	if (!evhttp_bind_listener(srv->http, srv->listener)) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
		unlink(srv->path);
		r = -EIO;
		goto fail;
	}
	*ret = srv;
	return 0;
fail:
	free(srv->path);
	srv->path = NULL;
	api_server__free(srv);
	return r;
}

void api_server__free(struct api_server *srv)
{
	if (!srv)
		return;
	if (srv->http)
		evhttp_free(srv->http); /* frees the listener and connections (closecb) */
	conns_free(srv);
	if (srv->conn_fixup)
		event_free(srv->conn_fixup);
	/* Requests still waiting for nucleusd: nucleusd__free() never replies to them. */
	while (srv->held)
		req_free(srv->held);
	if (srv->path)
		unlink(srv->path);
	free(srv->path);
	free(srv);
}

const char *api_server__socket_path(const struct api_server *srv)
{
	return srv->path;
}
