// SPDX-License-Identifier: Apache-2.0
/*
 * The REST server's edge: a small HTTP/1.1 server of our own (api/http.c parses the
 * request heads) on libevent bufferevents, on an AF_UNIX socket (mode 0660). A peer's
 * credentials (SO_PEERCRED) are checked when it is accepted, before a byte is read;
 * every error is JSON {"error", "message"}. docs/daemon.md, "Running", describes the
 * limits and timeouts.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "api/api-internal.h"
#include "api/http.h"

/* Unsent output above which a streamed reply stops taking data from its producer. */
#define STREAM_HIGH_WATER (256u << 10)
/* File descriptors the connection limit leaves to the rest of the daemon. */
#define FD_RESERVE 64
/* Connections accepted per wakeup of the listener, so that others get their turn. */
#define ACCEPT_BATCH 64
/* After accept() failed for want of fds or memory, it is tried again after this long. */
#define ACCEPT_RETRY_MS 500
/* A refused peer's socket is closed when it closes its end, or after this long. */
#define REFUSED_LINGER_S 2
/* Log intervals of the conditions that may repeat at a high rate. */
#define LOG_DENIED_S 10
#define LOG_ACCEPT_S 60

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

static void logf_limited(struct api_server *srv, struct api_ratelimit *rl, int interval_s,
			 enum api_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void logf_limited(struct api_server *srv, struct api_ratelimit *rl, int interval_s,
			 enum api_log_level lvl, const char *fmt, ...)
{
	struct timespec ts;
	char msg[400];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (rl->next_s && ts.tv_sec < rl->next_s) {
		rl->missed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rl->missed)
		api__logf(srv, lvl, "%s (and %lu more times since the last report)", msg,
			  rl->missed);
	else
		api__logf(srv, lvl, "%s", msg);
	rl->missed = 0;
	rl->next_s = ts.tv_sec + interval_s;
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

/* ---- connections ---- */

enum conn_state {
	CONN_IDLE,    /* waiting for the first byte of a request */
	CONN_HEAD,    /* its head is arriving */
	CONN_BODY,    /* its body is arriving (c->req is set) */
	CONN_BUSY,    /* a handler has c->req */
	CONN_CLOSING, /* the last reply is being written; then the connection is closed */
	CONN_REFUSED, /* a refused peer: 403 sent, waiting for it to close (no bufferevent) */
};

struct api_conn {
	struct api_server *srv;
	struct bufferevent *bev; /* NULL when CONN_REFUSED */
	int fd;			 /* the socket (owned by bev when there is one) */
	struct event *timer;	 /* head/body deadline; for CONN_REFUSED its close watch */
	enum conn_state state;
	struct nd_caller who;
	struct api_http_head head;	    /* the head being parsed (CONN_HEAD) */
	struct api_req *req;		    /* CONN_BODY, CONN_BUSY */
	int minor;			    /* HTTP/1.<minor> of the current request */
	bool keep_alive;		    /* another request may follow the current one */
	bool chunked;			    /* the streamed reply is chunked (else ends at close) */
	bool processing;		    /* conn_process() runs: replies do not re-enter it */
	void (*flushed)(struct api_req *r); /* called once the output drained */
	struct api_conn *next, **pprev;
};

static void conn_process(struct api_conn *c);

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
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
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 400 ? "OK" : "Error";
	}
}

/* How a reply's body is framed. */
enum framing { FRAME_LENGTH, FRAME_CHUNKED, FRAME_UNTIL_CLOSE };

/* The status line and headers of a reply. */
static void add_head(struct evbuffer *out, int status, const char *ctype, enum framing framing,
		     size_t length, bool close, bool keep_alive_10, const char *allow)
{
	time_t now = time(NULL);
	char date[64] = "";
	struct tm tm;

	if (gmtime_r(&now, &tm))
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
			    "Cache-Control: no-store\r\n",
			    status, reason_phrase(status), date, ctype);
	if (allow)
		evbuffer_add_printf(out, "Allow: %s\r\n", allow);
	if (framing == FRAME_LENGTH)
		evbuffer_add_printf(out, "Content-Length: %zu\r\n", length);
	else if (framing == FRAME_CHUNKED)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	if (close)
		evbuffer_add_printf(out, "Connection: close\r\n");
	else if (keep_alive_10)
		evbuffer_add_printf(out, "Connection: keep-alive\r\n");
	evbuffer_add(out, "\r\n", 2);
}

static struct timeval seconds(int s)
{
	return (struct timeval){.tv_sec = s};
}

static void accept_resume(struct api_server *srv);
static void req_free(struct api_req *r);

/* Closes @c; a request a handler still holds stays, with r->conn NULL. */
static void conn_free(struct api_conn *c)
{
	struct api_server *srv = c->srv;
	struct api_req *r = c->req;

	c->req = NULL;
	if (r && c->state == CONN_BUSY) {
		r->conn = NULL;
		if (r->paused) { /* nobody will read: let the producer run on (output is dropped) */
			r->paused = false;
			nucleusd__stream_resume(srv->nd, r->stream);
		}
	} else {
		req_free(r); /* not handled yet */
	}
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev); /* closes the socket */
	else if (c->fd >= 0)
		close(c->fd);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	srv->nconns--;
	free(c);
	if (!srv->closing)
		accept_resume(srv);
}

/* Waiting for the next request: the idle timeout runs, the head parser starts afresh. */
static void conn_idle(struct api_conn *c)
{
	struct timeval idle = seconds(c->srv->timeout_s), wr = idle;

	c->state = CONN_IDLE;
	memset(&c->head, 0, sizeof(c->head));
	c->keep_alive = false;
	c->minor = 1;
	evtimer_del(c->timer);
	bufferevent_set_timeouts(c->bev, &idle, &wr);
	bufferevent_enable(c->bev, EV_READ);
}

/* No more reading: once the output is written (or the write timeout hit), @c is closed. */
static void conn_closing(struct api_conn *c)
{
	struct timeval wr = seconds(c->srv->timeout_s);

	c->state = CONN_CLOSING;
	evtimer_del(c->timer);
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL, &wr);
	if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
		bufferevent_trigger(c->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The request of @c was answered (its reply is in the output). */
static void conn_done(struct api_conn *c)
{
	c->req = NULL;
	c->flushed = NULL;
	c->chunked = false;
	if (!c->keep_alive) {
		conn_closing(c);
		return;
	}
	conn_idle(c);
	/*
	 * A pipelined request may wait in the input. Not from here: this may be a handler's
	 * callback deep inside nucleusd; the read callback runs it from the loop.
	 */
	if (!c->processing && evbuffer_get_length(bufferevent_get_input(c->bev)))
		bufferevent_trigger(c->bev, EV_READ,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- requests and replies ---- */

static struct api_req *req_new(struct api_conn *c)
{
	struct api_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->srv = c->srv;
	r->conn = c;
	r->who = c->who;
	c->req = r;
	return r;
}

static void req_free(struct api_req *r)
{
	if (!r)
		return;
	if (r->pprev) {
		*r->pprev = r->next;
		if (r->next)
			r->next->pprev = r->pprev;
	}
	free(r->head);
	free(r->text);
	json_decref(r->body);
	free(r);
}

void api__req_hold(struct api_req *r)
{
	r->next = r->srv->held;
	if (r->next)
		r->next->pprev = &r->next;
	r->pprev = &r->srv->held;
	r->srv->held = r;
}

/* The whole reply (status, headers, body) to @r; frees @r. */
static void reply(struct api_req *r, int status, const char *ctype, const char *text, size_t len,
		  const char *allow)
{
	struct api_conn *c = r->conn;

	if (status >= 100 && status < 600)
		r->srv->requests[status / 100]++;
	if (c) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		add_head(out, status, ctype, FRAME_LENGTH, len, !c->keep_alive,
			 c->keep_alive && c->minor == 0, allow);
		if (!r->head_only)
			evbuffer_add(out, text, len);
		conn_done(c);
	}
	req_free(r);
}

void api__reply_text(struct api_req *r, int status, const char *ctype, const char *text)
{
	reply(r, status, ctype, text, strlen(text), NULL);
}

void api__stream_start(struct api_req *r, const char *ctype)
{
	struct api_conn *c = r->conn;

	if (!c)
		return;
	/* HTTP/1.0 has no chunks: the body ends with the connection. */
	c->chunked = c->minor == 1;
	if (!c->chunked)
		c->keep_alive = false;
	add_head(bufferevent_get_output(c->bev), 200, ctype,
		 c->chunked ? FRAME_CHUNKED : FRAME_UNTIL_CLOSE, 0, !c->keep_alive, false, NULL);
}

bool api__stream_chunk(struct api_req *r, const void *data, size_t len,
		       void (*flushed)(struct api_req *r))
{
	struct api_conn *c = r->conn;
	struct evbuffer *out;

	if (!c || !len)
		return false;
	out = bufferevent_get_output(c->bev);
	if (c->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (c->chunked)
		evbuffer_add(out, "\r\n", 2);
	if (evbuffer_get_length(out) <= STREAM_HIGH_WATER)
		return false;
	c->flushed = flushed;
	return true;
}

void api__stream_end(struct api_req *r)
{
	struct api_conn *c = r->conn;

	r->srv->requests[2]++;
	if (c) {
		if (c->chunked)
			evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
		conn_done(c);
	}
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

__attribute__((format(printf, 6, 0))) static void reply_error_v(struct api_req *r, int status,
								const char *code, json_t *extra,
								const char *allow, const char *fmt,
								va_list ap)
{
	char msg[512], *text = NULL;
	json_t *o, *m;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	m = json_string(msg);
	if (!m) {
		/* Not UTF-8 (a client's bytes quoted, or a character cut at the end): the
		 * message must still be there, in ASCII. */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		m = json_string(msg);
	}
	o = extra ? json_deep_copy(extra) : json_object();
	if (o) {
		json_object_set_new(o, "error", json_string(code));
		json_object_set_new(o, "message", m);
		m = NULL;
		text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	}
	json_decref(o);
	json_decref(m);
	if (text)
		reply(r, status, "application/json", text, strlen(text), allow);
	else
		api__reply_text(r, 500, "application/json",
				"{\"error\":\"internal\",\"message\":\"out of memory\"}");
	free(text);
}

void api__reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, status, code, NULL, NULL, fmt, ap);
	va_end(ap);
}

static void reply_error_extra(struct api_req *r, int status, const char *code, json_t *extra,
			      const char *allow, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void reply_error_extra(struct api_req *r, int status, const char *code, json_t *extra,
			      const char *allow, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, status, code, extra, allow, fmt, ap);
	va_end(ap);
}

void api__reply_nd_error(struct api_req *r, int rc, const struct nd_err *e, json_t *extra)
{
	const char *code = e && e->code[0] ? e->code : "internal";
	const char *msg = e && e->msg[0] ? e->msg : strerror(rc < 0 ? -rc : rc);

	reply_error_extra(r, api__status(rc), code, extra, NULL, "%s", msg);
}

/* ---- body and query ---- */

static bool content_type_json(const struct api_req *r)
{
	size_t n = strlen("application/json");

	return r->ctype && strncasecmp(r->ctype, "application/json", n) == 0 &&
	       (r->ctype[n] == '\0' || r->ctype[n] == ';' || r->ctype[n] == ' ');
}

bool api__req_body(struct api_req *r, const struct api_field *spec, bool required)
{
	struct api_verr verr = {0};
	json_error_t jerr;

	/* Its size was checked against --max-body before it was read (api/http.c). */
	if (r->text_len == 0) {
		if (!required)
			return true;
		api__reply_error(r, 400, "missing_body", "this request needs a JSON body");
		return false;
	}
	if (!content_type_json(r)) {
		api__reply_error(r, 415, "unsupported_media_type",
				 "request bodies must be Content-Type: application/json");
		return false;
	}
	if (!spec) {
		api__reply_error(r, 400, "unexpected_body", "this request takes no body");
		return false;
	}
	r->body = json_loadb(r->text, r->text_len, JSON_REJECT_DUPLICATES, &jerr);
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

const char *api__query_get(const struct api_query *q, const char *key)
{
	for (int i = 0; i < q->n; i++)
		if (strcmp(q->key[i], key) == 0)
			return q->val[i];
	return NULL;
}

void api__query_clear(struct api_query *q)
{
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

bool api__req_query(struct api_req *r, const char *const *allowed, struct api_query *out)
{
	char *p;

	memset(out, 0, sizeof(*out));
	if (!r->query || !*r->query)
		return true;
	out->buf = strdup(r->query);
	if (!out->buf) {
		api__reply_error(r, 500, "internal", "out of memory");
		return false;
	}
	for (p = out->buf; p;) {
		char *amp = strchr(p, '&'), *eq;
		const char *const *a = allowed;
		size_t n;

		if (amp)
			*amp = '\0';
		eq = strchr(p, '=');
		if (!eq || eq == p || out->n == API_QUERY_MAX)
			goto bad;
		*eq = '\0';
		if (api__http_unescape(p, (size_t)(eq - p), true, p, &n) < 0 ||
		    api__http_unescape(eq + 1, strlen(eq + 1), true, eq + 1, &n) < 0)
			goto bad;
		while (a && *a && strcmp(*a, p) != 0)
			a++;
		if (!a || !*a) {
			api__reply_error(r, 400, "unknown_field", "unknown query parameter '%s'",
					 p);
			api__query_clear(out);
			return false;
		}
		if (api__query_get(out, p)) {
			api__reply_error(r, 400, "bad_query", "query parameter '%s' given twice",
					 p);
			api__query_clear(out);
			return false;
		}
		out->key[out->n] = p;
		out->val[out->n++] = eq + 1;
		p = amp ? amp + 1 : NULL;
	}
	return true;
bad:
	api__query_clear(out);
	api__reply_error(r, 400, "bad_query", "malformed query string (want name=value&...)");
	return false;
}

/* ---- reading requests ---- */

static bool route_match(const struct api_route *rt, const struct api_req *r)
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

/* Splits the path (NUL-terminated, in r->head) into decoded segments, in place. */
static bool split_path(struct api_req *r, char *path)
{
	char *p = path + 1;

	if (path[0] != '/')
		return false;
	while (*p) {
		char *end = strchrnul(p, '/');
		bool last = *end == '\0';
		size_t n;

		if (end == p || r->nsegs == 8)
			return false;
		*end = '\0';
		/* no NUL, no bad escape, no '/' inside a segment */
		if (api__http_unescape(p, (size_t)(end - p), false, p, &n) < 0 || memchr(p, '/', n))
			return false;
		r->segs[r->nsegs++] = p;
		if (last)
			break;
		p = end + 1;
		if (!*p)
			return false; /* a trailing '/' */
	}
	return true;
}

/* RFC 9110's methods and PATCH: one we do not know may frame its message otherwise. */
static bool method_known(const char *m)
{
	static const char *const known[] = {"GET",     "HEAD",	  "POST",  "PUT",  "DELETE",
					    "CONNECT", "OPTIONS", "TRACE", "PATCH"};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i], m) == 0)
			return true;
	return false;
}

/*
 * Finds the handler of @r (r->handler); false after replying 404 or 405 (with Allow;
 * an unknown method also closes the connection), or 400 for a body on a method that
 * takes none.
 */
static bool route(struct api_req *r, const struct api_http_head *h)
{
	char *path = r->head + h->path.off;
	const char *m = r->method;

	path[h->path.len] = '\0';
	if (!split_path(r, path))
		goto notfound;
	for (size_t i = 0; i < api__nroutes; i++) {
		const struct api_route *rt = &api__routes[i];
		char allow[32];

		if (!route_match(rt, r))
			continue;
		r->handler = strcmp(m, "GET") == 0	? rt->get
			     : strcmp(m, "POST") == 0	? rt->post
			     : strcmp(m, "DELETE") == 0 ? rt->del
							: NULL;
		if (!r->handler) {
			snprintf(allow, sizeof(allow), "%s%s%s", rt->get ? "GET, " : "",
				 rt->post ? "POST, " : "", rt->del ? "DELETE, " : "");
			allow[strlen(allow) - 2] = '\0';
			if (!method_known(m))
				r->conn->keep_alive = false;
			reply_error_extra(r, 405, "method_not_allowed", NULL, allow,
					  "%.32s is not allowed here; allowed: %s", m, allow);
			return false;
		}
		if (h->length > 0 && strcmp(m, "POST") != 0) {
			api__reply_error(r, 400, "unexpected_body", "this method takes no body");
			return false;
		}
		return true;
	}
notfound:
	api__reply_error(r, 404, "not_found", "no such route");
	return false;
}

/* Starts (or restarts) the deadline of the head or body arriving. */
static void deadline_start(struct api_conn *c)
{
	struct timeval tv = seconds(c->srv->request_timeout_s);

	evtimer_add(c->timer, &tv);
}

/* The head or body did not arrive in time: 408, then the connection is closed. */
static void request_timeout(struct api_conn *c)
{
	struct api_req *r = c->req ? c->req : req_new(c);
	bool body = c->state == CONN_BODY;

	c->keep_alive = false;
	if (!r) {
		conn_free(c);
		return;
	}
	api__reply_error(r, 408, "request_timeout",
			 "the request %s did not arrive in time (the limit is %d s, an idle "
			 "pause %d s)",
			 body ? "body" : "head", c->srv->request_timeout_s, c->srv->timeout_s);
}

/* Handles the request of @c, now complete. */
static void dispatch(struct api_conn *c)
{
	struct api_req *r = c->req;

	c->state = CONN_BUSY;
	evtimer_del(c->timer);
	/* Reading goes on (to see the client leave) but no read timeout applies now. */
	bufferevent_set_timeouts(c->bev, NULL, &(struct timeval){.tv_sec = c->srv->timeout_s});
	r->handler(r);
}

/* The head of @c became complete: moves it into a new request; false after a reply. */
static bool head_complete(struct api_conn *c, struct evbuffer *in)
{
	const struct api_http_head *h = &c->head;
	const struct api_http_field *ct;
	struct api_req *r = req_new(c);

	if (!r || !(r->head = malloc(h->len + 1))) {
		c->keep_alive = false;
		if (r)
			api__reply_error(r, 500, "internal", "out of memory");
		else
			conn_closing(c);
		return false;
	}
	evbuffer_remove(in, r->head, h->len);
	r->head[h->len] = '\0';
	c->minor = h->minor;
	/* A body is only read for a request that gets that far. */
	c->keep_alive = h->keep_alive && h->length == 0;
	/* NUL-terminate the pieces in place (each is followed by a space or a line end) */
	ct = api__http_field(h, r->head, "Content-Type");
	if (ct) {
		r->ctype = r->head + ct->value.off;
		r->head[ct->value.off + ct->value.len] = '\0';
	}
	if (h->has_query) {
		r->query = r->head + h->query.off;
		r->head[h->query.off + h->query.len] = '\0';
	}
	r->method = r->head + h->method.off;
	r->head[h->method.off + h->method.len] = '\0';
	r->head_only = strcmp(r->method, "HEAD") == 0;
	if (!route(r, h))
		return false;
	c->keep_alive = h->keep_alive;
	if (h->length == 0) {
		dispatch(c);
		return true;
	}
	c->state = CONN_BODY;
	deadline_start(c);
	if (h->expect_continue && h->minor == 1 && evbuffer_get_length(in) < h->length)
		evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	r->text_len = h->length;
	return true;
}

/* Parses what arrived of a head; false when it waits for more. */
static bool head_step(struct api_conn *c, struct evbuffer *in)
{
	struct api_server *srv = c->srv;
	const struct api_http_limits lim = {srv->max_headers, srv->max_body};
	size_t n = evbuffer_get_length(in);
	const char *p;
	struct api_req *r;

	if (n == 0)
		return false;
	if (n > srv->max_headers + 1)
		n = srv->max_headers + 1; /* enough to tell a head over the limit */
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	switch (p ? api__http_parse(p, n, &lim, &c->head) : API_HTTP_ERROR) {
	case API_HTTP_NEED_MORE:
		return false;
	case API_HTTP_COMPLETE:
		head_complete(c, in);
		return true;
	case API_HTTP_ERROR:
		break;
	}
	/* Refused: what follows on this connection cannot be framed; it is closed. */
	c->keep_alive = false;
	r = req_new(c);
	if (!r) {
		conn_closing(c);
		return false;
	}
	if (!p)
		api__reply_error(r, 500, "internal", "out of memory");
	else
		api__reply_error(r, c->head.status, c->head.code, "%s", c->head.msg);
	return true;
}

/* Moves the complete body into the request and dispatches it; false while it arrives. */
static bool body_step(struct api_conn *c, struct evbuffer *in)
{
	struct api_req *r = c->req;

	if (evbuffer_get_length(in) < r->text_len)
		return false;
	r->text = malloc(r->text_len + 1);
	if (!r->text) {
		r->text_len = 0;
		c->keep_alive = false;
		api__reply_error(r, 500, "internal", "out of memory");
		return true;
	}
	evbuffer_remove(in, r->text, r->text_len);
	r->text[r->text_len] = '\0';
	dispatch(c);
	return true;
}

/* Takes what the input holds as far as it can: heads, bodies, dispatch. */
static void conn_process(struct api_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	bool more = true;

	c->processing = true;
	while (more) {
		switch (c->state) {
		case CONN_IDLE:
			more = evbuffer_get_length(in) > 0;
			if (more) {
				c->state = CONN_HEAD;
				deadline_start(c);
			}
			break;
		case CONN_HEAD:
			more = head_step(c, in);
			break;
		case CONN_BODY:
			more = body_step(c, in);
			break;
		default:
			more = false;
		}
	}
	c->processing = false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct api_conn *c = arg;
	void (*flushed)(struct api_req * r) = c->flushed;

	if (evbuffer_get_length(bufferevent_get_output(bev)))
		return;
	if (c->state == CONN_CLOSING) {
		conn_free(c);
		return;
	}
	if (flushed && c->req) {
		c->flushed = NULL;
		flushed(c->req);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct api_conn *c = arg;

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    (c->state == CONN_HEAD || c->state == CONN_BODY)) {
		request_timeout(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->state != CONN_BUSY &&
	    evbuffer_get_length(bufferevent_get_output(bev))) {
		/* The client is done sending; it still gets what was written for it. */
		req_free(c->req);
		c->req = NULL;
		conn_closing(c);
		return;
	}
	/* EOF or error (a held request's client went away), idle or write timeout */
	conn_free(c);
}

static void on_deadline(evutil_socket_t unused, short what, void *arg)
{
	struct api_conn *c = arg;

	if (c->state == CONN_HEAD || c->state == CONN_BODY)
		request_timeout(c);
}

/* ---- accepting ---- */

static void on_refused_closed(evutil_socket_t fd, short what, void *arg)
{
	conn_free(arg);
}

/*
 * A peer that may not use the API: its 403 goes out at once, nothing it sends is read,
 * and its socket is closed when it closes its end (or after REFUSED_LINGER_S): closing
 * ours first would make its kernel report a reset before it read the 403.
 */
static void refuse(struct api_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void refuse(struct api_conn *c, const char *fmt, ...)
{
	struct timeval tv = seconds(REFUSED_LINGER_S);
	struct evbuffer *out = evbuffer_new();
	char msg[160], *text = NULL;
	json_t *o;
	va_list ap;

	c->state = CONN_REFUSED;
	c->srv->requests[4]++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{ss ss}", "error", "forbidden", "message", msg);
	text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(o);
	if (out && text) {
		add_head(out, 403, "application/json", FRAME_LENGTH, strlen(text), true, false,
			 NULL);
		evbuffer_add(out, text, strlen(text));
		/* A new socket's buffer takes these few hundred bytes whole. */
		evbuffer_write(out, c->fd);
	}
	free(text);
	if (out)
		evbuffer_free(out);
	shutdown(c->fd, SHUT_WR);
	c->timer = event_new(c->srv->base, c->fd, EV_CLOSED, on_refused_closed, c);
	if (!c->timer || event_add(c->timer, &tv) < 0)
		conn_free(c);
}

/* Whether the peer (@cred, supplementary groups @groups) is in group @gid. */
static bool peer_in_group(const struct ucred *cred, const gid_t *groups, size_t n, gid_t gid)
{
	if (gid == API_NO_GID)
		return false;
	if (cred->gid == gid)
		return true;
	for (size_t i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * The peer's supplementary groups (SO_PEERGROUPS), once per connection, into @buf or,
 * when more than @cap, a malloc'd array in *@ret (free it when it is not @buf). Unknown
 * groups count as none.
 */
static size_t peer_groups(int fd, gid_t *buf, size_t cap, gid_t **ret)
{
	socklen_t len = (socklen_t)(cap * sizeof(gid_t));

	*ret = buf;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) == 0)
		return len / sizeof(gid_t);
	if (errno != ERANGE || !(*ret = malloc(len)) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, *ret, &len) < 0) {
		if (*ret != buf)
			free(*ret);
		*ret = buf;
		return 0;
	}
	return len / sizeof(gid_t);
}

static void conn_new(struct api_server *srv, int fd)
{
	struct api_conn *c = calloc(1, sizeof(*c));
	gid_t gbuf[64], *groups = gbuf;
	size_t ngroups = 0;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	bool allowed;

	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->next = srv->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &srv->conns;
	srv->conns = c;
	srv->nconns++;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		logf_limited(srv, &srv->rl_denied, LOG_DENIED_S, API_LOG_ERR,
			     "cannot read peer credentials: %s", strerror(errno));
		refuse(c, "cannot identify the peer");
		return;
	}
	if (cred.uid != 0 && (srv->admin_gid != API_NO_GID || srv->owner_gid != API_NO_GID))
		ngroups = peer_groups(fd, gbuf, sizeof(gbuf) / sizeof(gbuf[0]), &groups);
	c->who = (struct nd_caller){.uid = cred.uid,
				    .gid = cred.gid,
				    .pid = cred.pid,
				    .admin = cred.uid == 0 ||
					     peer_in_group(&cred, groups, ngroups, srv->admin_gid)};
	allowed = c->who.admin || cred.uid == srv->owner_uid ||
		  peer_in_group(&cred, groups, ngroups, srv->owner_gid);
	if (groups != gbuf)
		free(groups);
	if (!allowed) {
		srv->peer_denied++;
		logf_limited(srv, &srv->rl_denied, LOG_DENIED_S, API_LOG_WARN,
			     "refused request from uid %u gid %u pid %d: not the owner",
			     (unsigned)cred.uid, (unsigned)cred.gid, (int)cred.pid);
		refuse(c, "uid %u may not use this nucleusd", (unsigned)cred.uid);
		return;
	}
	c->timer = evtimer_new(srv->base, on_deadline, c);
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->timer || !c->bev) {
		conn_free(c); /* closes fd */
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	/* What one request may need; beyond that a connection's input waits in the kernel. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, srv->max_headers + srv->max_body);
	conn_idle(c);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void accept_pause(struct api_server *srv, bool retry)
{
	struct timeval tv = {.tv_usec = ACCEPT_RETRY_MS * 1000};

	if (srv->accepting) {
		event_del(srv->accept_ev);
		srv->accepting = false;
	}
	if (retry)
		evtimer_add(srv->accept_retry, &tv);
}

static void accept_resume(struct api_server *srv)
{
	if (srv->accepting || srv->nconns >= srv->max_conns)
		return;
	if (event_add(srv->accept_ev, NULL) == 0)
		srv->accepting = true;
}

static void on_accept_retry(evutil_socket_t unused, short what, void *arg)
{
	accept_resume(arg);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct api_server *srv = arg;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd, e;

		if (srv->nconns >= srv->max_conns) {
			/* Pending clients wait in the backlog until a connection closes. */
			accept_pause(srv, false);
			logf_limited(srv, &srv->rl_cap, LOG_ACCEPT_S, API_LOG_WARN,
				     "%u connections open, the limit (--max-connections): "
				     "accepting no more until one closes",
				     srv->nconns);
			return;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(srv, fd);
			continue;
		}
		e = errno;
		if (e == EINTR || e == ECONNABORTED)
			continue;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		/* EMFILE, ENFILE, ENOBUFS, ENOMEM...: no busy loop on a listener that stays ready
		 */
		accept_pause(srv, true);
		logf_limited(srv, &srv->rl_accept, LOG_ACCEPT_S, API_LOG_ERR,
			     "accept: %s (%u connections open): accepting again when one closes, "
			     "or in %d ms",
			     strerror(e), srv->nconns, ACCEPT_RETRY_MS);
		return;
	}
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
	/* The file's group: the owner group, else the admin group (API_NO_GID: unchanged). */
	if (geteuid() == 0 &&
	    chown(srv->path, srv->owner_uid,
		  srv->owner_gid != API_NO_GID ? srv->owner_gid : srv->admin_gid) < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	unlink(srv->path);
	return r;
}

int api_server__bind(const struct api_server_config *cfg, int *fd)
{
	char def[108];
	struct api_server tmp = {.owner_uid = cfg->owner_uid,
				 .owner_gid = cfg->owner_gid,
				 .admin_gid = cfg->admin_gid};

	tmp.path = (char *)(cfg->socket_path ? cfg->socket_path
					     : api__default_socket(def, sizeof(def)));
	return bind_socket(&tmp, fd);
}

int api_server__new(struct event_base *base, struct nucleusd *nd,
		    const struct api_server_config *cfg, struct api_server **ret)
{
	char def[108];
	struct api_server *srv;
	struct rlimit rl;
	int r = -ENOMEM;

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		if (cfg->prebound)
			close(cfg->bound_fd);
		return -ENOMEM;
	}
	srv->base = base;
	srv->nd = nd;
	srv->listen_fd = cfg->prebound ? cfg->bound_fd : -1;
	srv->owner_uid = cfg->owner_uid;
	srv->owner_gid = cfg->owner_gid;
	srv->admin_gid = cfg->admin_gid;
	srv->max_body = cfg->max_body ? cfg->max_body : 1 << 20;
	srv->max_headers = cfg->max_headers ? cfg->max_headers : 16384;
	srv->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 30;
	srv->request_timeout_s = cfg->request_timeout_s > 0 ? cfg->request_timeout_s : 10;
	srv->max_conns = cfg->max_conns ? cfg->max_conns : 512;
	srv->log = cfg->log;
	srv->log_arg = cfg->log_arg;
	/* Connections may not take the fds the database, the VMs and the logs need. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    srv->max_conns + (rlim_t)FD_RESERVE > rl.rlim_cur) {
		unsigned room = rl.rlim_cur > FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 1;

		api__logf(srv, API_LOG_WARN,
			  "at most %u connections (not %u): RLIMIT_NOFILE is %llu and %d file "
			  "descriptors stay for the rest of the daemon",
			  room, srv->max_conns, (unsigned long long)rl.rlim_cur, FD_RESERVE);
		srv->max_conns = room;
	}
	srv->path =
		strdup(cfg->socket_path ? cfg->socket_path : api__default_socket(def, sizeof(def)));
	if (!srv->path)
		goto fail;
	r = cfg->prebound ? 0 : bind_socket(srv, &srv->listen_fd);
	if (r < 0) {
		free(srv->path); /* not ours to unlink */
		srv->path = NULL;
		goto fail;
	}
	srv->accept_ev = event_new(base, srv->listen_fd, EV_READ | EV_PERSIST, on_accept, srv);
	srv->accept_retry = evtimer_new(base, on_accept_retry, srv);
	if (!srv->accept_ev || !srv->accept_retry) {
		r = -ENOMEM;
		goto fail;
	}
	if (listen(srv->listen_fd, SOMAXCONN) < 0) {
		r = -errno;
		goto fail;
	}
	accept_resume(srv);
	if (!srv->accepting) {
		r = -EIO;
		goto fail;
	}
	*ret = srv;
	return 0;
fail:
	api_server__free(srv);
	return r;
}

void api_server__free(struct api_server *srv)
{
	if (!srv)
		return;
	srv->closing = true;
	if (srv->accept_ev)
		event_free(srv->accept_ev);
	if (srv->accept_retry)
		event_free(srv->accept_retry);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	while (srv->conns)
		conn_free(srv->conns);
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
