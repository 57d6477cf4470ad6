/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the api/ server, shared by server.c, routes.c and handlers.c. */
#ifndef NUCLEUS_API_INTERNAL_H
#define NUCLEUS_API_INTERNAL_H

#include "api/api.h"
#include "nucleusd/nucleusd.h"

/* At most one log line per interval for a condition that may repeat at a high rate. */
struct api_ratelimit {
	int64_t next_s;	      /* CLOCK_MONOTONIC second from which the next line may go */
	unsigned long missed; /* lines held back since the last one */
};

struct api_server {
	struct event_base *base;
	struct nucleusd *nd;
	char *path;
	int listen_fd;
	struct event *accept_ev;    /* EV_READ on listen_fd, added while accepting */
	struct event *accept_retry; /* re-enables accepting after an accept() error */
	bool accepting;
	bool closing; /* api_server__free() runs */
	uid_t owner_uid;
	gid_t owner_gid, admin_gid; /* API_NO_GID: none */
	size_t max_body;
	size_t max_headers;
	int timeout_s;	       /* idle keep-alive, idle pause in a request, write */
	int request_timeout_s; /* deadline of a request's head, then of its body */
	unsigned max_conns, nconns;
	api_log_fn log;
	void *log_arg;
	/* counters for /v1/metrics */
	uint64_t requests[6]; /* by status class: [1..5]xx */
	uint64_t peer_denied;
	struct api_req *held;	/* async requests waiting for nucleusd */
	struct api_conn *conns; /* every open connection (server.c) */
	struct api_ratelimit rl_denied, rl_cap, rl_accept;
};

typedef void (*api_handler_fn)(struct api_req *r);

/* One request being handled. Async handlers keep it until nucleusd replies. */
struct api_req {
	struct api_server *srv;
	struct api_conn *conn; /* NULL once the client went away */
	struct nd_caller who;
	char *head;	    /* the request head as received; the strings below point in it */
	const char *method; /* "GET", ... */
	const char *query;  /* raw query string or NULL */
	const char *ctype;  /* Content-Type or NULL */
	char *segs[8];	    /* path segments (decoded) */
	int nsegs;
	api_handler_fn handler;
	char *text; /* the body as received (NUL-terminated), NULL without one */
	size_t text_len;
	bool head_only;		       /* HEAD: replies carry no body */
	json_t *body;		       /* parsed JSON body or NULL */
	void *stream;		       /* streamed tool call (nucleusd__stream_resume) */
	bool paused;		       /* the stream waits for the client to read */
	struct api_req *next, **pprev; /* on srv->held while held */
};

/* routes.c: the REST routes; "*" matches any one segment. */
struct api_route {
	const char *segs[6];
	api_handler_fn get, post, del;
};
extern const struct api_route api__routes[];
extern const size_t api__nroutes;

/* Decoded query parameters (api__req_query); api__query_clear frees them. */
#define API_QUERY_MAX 8
struct api_query {
	char *buf;
	int n;
	const char *key[API_QUERY_MAX], *val[API_QUERY_MAX];
};

void api__logf(struct api_server *srv, enum api_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Replies and frees @r. */
void api__reply_json(struct api_req *r, int status, json_t *body);
void api__reply_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api__reply_nd_error(struct api_req *r, int rc, const struct nd_err *e, json_t *extra);
void api__reply_text(struct api_req *r, int status, const char *ctype, const char *text);
/*
 * Streamed (chunked) replies: start sends 200 and the headers; each chunk returns true
 * when the connection's unsent output is above the high-water mark (the caller then
 * waits for @flushed, called once the output drained); end finishes and frees @r.
 * All three are no-ops (end just frees) once the client went away.
 */
void api__stream_start(struct api_req *r, const char *ctype);
bool api__stream_chunk(struct api_req *r, const void *data, size_t len,
		       void (*flushed)(struct api_req *r));
void api__stream_end(struct api_req *r);
/*
 * For async handlers: keeps @r on the server's list until it is answered (a client that
 * goes away meanwhile sets r->conn to NULL; the late reply is then dropped).
 */
void api__req_hold(struct api_req *r);

/* Checks the body against @spec (or requires it to be absent when @spec is NULL). */
bool api__req_body(struct api_req *r, const struct api_field *spec, bool required);
/*
 * Query parameters (percent- and '+'-decoded); unknown names, repeated names and
 * malformed pairs -> 400. Returns false after replying; else @out needs api__query_clear.
 */
bool api__req_query(struct api_req *r, const char *const *allowed, struct api_query *out);
/* The value of @key, or NULL. */
const char *api__query_get(const struct api_query *q, const char *key);
void api__query_clear(struct api_query *q);

/* handlers.c */
void api__h_health(struct api_req *r);
void api__h_metrics(struct api_req *r);
void api__h_list(struct api_req *r);
void api__h_create(struct api_req *r);
void api__h_get(struct api_req *r);
void api__h_delete(struct api_req *r);
void api__h_pause(struct api_req *r);
void api__h_resume(struct api_req *r);
void api__h_tool(struct api_req *r);
/*
 * A handler's reply to a nucleusd__* result: 200 with @o, or the error (with @extra, and
 * the budget of a 402). Consumes @o and @extra.
 */
void api__reply_result(struct api_req *r, int rc, const struct nd_err *e, json_t *o, json_t *extra);
void api__h_approve(struct api_req *r);
void api__h_approval_refuse(struct api_req *r);
void api__h_audit(struct api_req *r);
void api__h_audit_verify(struct api_req *r);
void api__h_db_check(struct api_req *r);
void api__h_usage(struct api_req *r);
void api__h_budget(struct api_req *r);
void api__h_policy_check(struct api_req *r);
void api__h_policy_explain(struct api_req *r);
/* h_policy.c: the policy of a sandbox */
void api__h_policy_show(struct api_req *r);
void api__h_policy_narrow(struct api_req *r);
void api__h_policy_widen(struct api_req *r);

#endif
