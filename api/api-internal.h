/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the api/ server, shared by server.c and handlers.c. */
#ifndef NUCLEUS_API_INTERNAL_H
#define NUCLEUS_API_INTERNAL_H

#include <event2/http.h>

#include "api/api.h"
#include "nucleusd/nucleusd.h"

struct api_server {
	struct event_base *base;
	struct nucleusd *nd;
	struct evhttp *http;
	struct evconnlistener *listener;
	char *path;
	uid_t owner_uid;
	gid_t owner_gid;
	size_t max_body;
	size_t max_headers;
	api_log_fn log;
	void *log_arg;
	/* counters for /v1/metrics */
	uint64_t requests[6]; /* by status class: [1..5]xx */
	uint64_t peer_denied;
	struct api_req *held; /* async requests waiting for nucleusd */
	/* server.c: per-connection checks of the raw bytes before evhttp parses them */
	struct api_conn *conns;
	struct event *conn_fixup;
};

/* One request being handled. Async handlers keep it until nucleusd replies. */
struct api_req {
	struct api_server *srv;
	struct evhttp_request *req; /* NULL once the client went away */
	struct evhttp_connection *conn;
	struct nd_caller who;
	char *segs[8]; /* path segments (decoded) */
	int nsegs;
	const char *query;	       /* raw query string or NULL */
	json_t *body;		       /* parsed JSON body or NULL */
	void *stream;		       /* streamed tool call (nucleusd__stream_resume) */
	bool paused;		       /* the stream waits for the client to read */
	struct api_req *next, **pprev; /* on srv->held while held */
};

typedef void (*api_handler_fn)(struct api_req *r);

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
		       void (*flushed)(struct evhttp_connection *, void *));
void api__stream_end(struct api_req *r);
/* For async handlers: watches the connection so a late reply after a close is dropped. */
void api__req_hold(struct api_req *r);

/* Checks the body against @spec (or requires it to be absent when @spec is NULL). */
bool api__req_body(struct api_req *r, const struct api_field *spec, bool required);
/* Query parameters; unknown names -> 400. Returns false after replying. */
bool api__req_query(struct api_req *r, const char *const *allowed, struct evkeyvalq *out);

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
void api__h_approve(struct api_req *r);
void api__h_audit(struct api_req *r);
void api__h_audit_verify(struct api_req *r);
void api__h_usage(struct api_req *r);
void api__h_budget(struct api_req *r);
void api__h_policy_check(struct api_req *r);
void api__h_policy_explain(struct api_req *r);

#endif
