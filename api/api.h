/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api: the wire side of Nucleus (face of the api/ module).
 *
 *   server    HTTP/1.1 (our own, on libevent bufferevents) on a Unix socket: peer
 *             credentials, limits, timeouts, routing, the JSON error model; the
 *             handlers call nucleusd/.
 *   validate  a small strict JSON request validator (field specs).
 *   client    a blocking HTTP/1.1 client over the Unix socket (nucleusctl, tests).
 *
 * Data flows api -> nucleusd: nothing in nucleusd/ knows about HTTP.
 */
#ifndef NUCLEUS_API_H
#define NUCLEUS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

struct event_base;
struct nucleusd;

/* ---- validator ---- */

enum api_type {
	API_STRING,
	API_INT,
	API_NUMBER,
	API_BOOL,
	API_OBJECT, /* nested spec in .fields, or any object when .fields is NULL */
	API_ARRAY,
	API_STRMAP, /* object whose values are all strings (env) */
};

/* One field of a JSON object. Lists end with an entry whose name is NULL. */
struct api_field {
	const char *name;
	enum api_type type;
	bool required;
	/* Bounds (inclusive) when min < max: value (int/number), length (string), count. */
	int64_t min, max;
	const struct api_field *fields; /* API_OBJECT */
	bool ident;			/* API_STRING: [A-Za-z0-9][A-Za-z0-9_.-]* */
	bool env; /* API_STRMAP: environment variables (guest/guest.h limits) */
};

struct api_verr {
	char code[32]; /* unknown_field, wrong_type, missing_field, out_of_range, bad_value */
	char msg[256]; /* names the field, with its path (e.g. "workspace.size_mib") */
};

/* 0 when @v (an object) matches @spec; -EINVAL with @err filled otherwise. */
int api__validate(json_t *v, const struct api_field *spec, struct api_verr *err);

/* The request bodies of the API. */
extern const struct api_field api__create_spec[];
extern const struct api_field api__tool_spec[];
extern const struct api_field api__approval_spec[];
extern const struct api_field api__refusal_spec[];
extern const struct api_field api__usage_spec[];	  /* POST /v1/sandboxes/{id}/usage */
extern const struct api_field api__policy_check_spec[];	  /* POST /v1/policy/check */
extern const struct api_field api__policy_explain_spec[]; /* POST /v1/policy/explain */
/* POST /v1/sandboxes/{id}/policy/widen (narrow takes api__policy_check_spec's shape) */
extern const struct api_field api__policy_widen_spec[];

/* ---- server ---- */

enum api_log_level { API_LOG_ERR = 3, API_LOG_WARN = 4, API_LOG_INFO = 6 };
typedef void (*api_log_fn)(void *arg, enum api_log_level lvl, const char *msg);

/* No group (api_server_config's owner_gid, admin_gid). */
#define API_NO_GID ((gid_t)-1)

struct api_server_config {
	const char *socket_path; /* NULL: api__default_socket() */
	/*
	 * Who may connect: uid 0, owner_uid, and the members (primary or supplementary
	 * group) of owner_gid and of admin_gid, each unless API_NO_GID. Admins (struct
	 * nd_caller's admin: every owner's sandboxes) are uid 0 and admin_gid's members.
	 */
	uid_t owner_uid;
	gid_t owner_gid;
	gid_t admin_gid;
	size_t max_body;       /* bytes; 0: 1 MiB */
	size_t max_headers;    /* bytes; 0: 16 KiB */
	int timeout_s;	       /* idle keep-alive, idle pause in a request, write; 0: 30 s */
	int request_timeout_s; /* a request's head must arrive within this of its first
				  byte, its body within this of the head; 0: 10 s */
	unsigned max_conns;    /* open connections; 0: 512; kept below RLIMIT_NOFILE - 64 */
	api_log_fn log;	       /* NULL: silent */
	void *log_arg;
	/* A socket api_server__bind() made (the server takes it, also on failure): the
	 * daemon binds as root, before it drops to its --user. */
	bool prebound;
	int bound_fd;
};

struct api_server;

/*
 * Binds the socket of @cfg (socket_path or the default; a stale one removed; mode 0660,
 * owner_uid's and the owner or admin group's when root) without listening: *fd.
 */
int api_server__bind(const struct api_server_config *cfg, int *fd);

int api_server__new(struct event_base *base, struct nucleusd *nd,
		    const struct api_server_config *cfg, struct api_server **ret);
/* Closes the socket (and unlinks it) and every connection. */
void api_server__free(struct api_server *srv);
const char *api_server__socket_path(const struct api_server *srv);

/*
 * Default socket path: $XDG_RUNTIME_DIR/nucleus/nucleusd.sock, or
 * /run/nucleus/nucleusd.sock for root (or when XDG_RUNTIME_DIR is unset).
 * NUCLEUS_SOCKET overrides both. Returns @buf.
 */
const char *api__default_socket(char *buf, size_t len);

/* Maps a negative errno from nucleusd to an HTTP status. */
int api__status(int rc);

/* ---- client ---- */

struct api_response {
	int status;
	json_t *json; /* parsed body when it is JSON, else NULL */
	char *body;   /* raw body, NUL-terminated */
	size_t len;
};

struct api_client;

/* Does not connect yet: each call opens one connection (Connection: close). */
int api_client__new(const char *socket_path, struct api_client **ret);
void api_client__free(struct api_client *c);
/* Any method and path; @body may be NULL. Returns < 0 only for transport errors. */
int api_client__call(struct api_client *c, const char *method, const char *path, json_t *body,
		     struct api_response *ret);
void api_response__clear(struct api_response *r);
/* GET /v1/sandboxes/{ref}/budget (limits, spent, remaining per kind). */
int api_client__budget(struct api_client *c, const char *ref, struct api_response *ret);

/* One NDJSON line of a streamed reply (borrowed). A return < 0 aborts the call with it. */
typedef int (*api_line_fn)(void *arg, json_t *line);
/*
 * A request whose 200 reply is a chunked NDJSON stream (tools/run with "stream": true):
 * each line goes to @line as it arrives, then @ret gets status 200 and an empty body.
 * Any other reply is returned whole in @ret, as by api_client__call.
 */
int api_client__stream(struct api_client *c, const char *method, const char *path, json_t *body,
		       api_line_fn line, void *arg, struct api_response *ret);

#endif
