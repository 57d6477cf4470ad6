/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy - the lattice-guard engine: the face of the module.
 *
 * A pure library: it parses what it is given (JSON text) and decides; it does no I/O,
 * keeps no mutable globals and never prints. Time is always passed in by the caller.
 * One session must not be used from two threads at once; distinct sessions and the
 * read-only policies may be shared freely. See docs/policy.md for the model.
 */
#ifndef NUCLEUS_POLICY_H
#define NUCLEUS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_op {
	POLICY_OP_READ_FILE,
	POLICY_OP_WRITE_FILE,
	POLICY_OP_LIST,
	POLICY_OP_SEARCH,
	POLICY_OP_RUN,
	POLICY_OP_WEB_FETCH,
	POLICY_OP_WEB_SEARCH,
	POLICY_OP_NET_CONNECT,
	POLICY_OP_GIT_COMMIT,
	POLICY_OP_GIT_PUSH,
	POLICY_OP_CREATE_PR,
	POLICY_OP_SPAWN_AGENT,
	POLICY_OP_MANAGE_SANDBOX,
	POLICY_OP_COUNT
};

/* Per-operation levels, ordered deny < ask < allow; also the verdict of a decision. */
enum policy_level { POLICY_DENY = 0, POLICY_ASK = 1, POLICY_ALLOW = 2 };

/* Exposure legs (bit set). All three together is the uninhabitable state. */
enum {
	POLICY_LEG_PRIVATE = 1u << 0,
	POLICY_LEG_UNTRUSTED = 1u << 1,
	POLICY_LEG_EXFIL = 1u << 2,
	POLICY_LEGS_ALL = 7u,
};

/* Stable reason codes; policy__reason_name() gives the stable upper-case name. */
enum policy_reason {
	POLICY_R_ALLOWED,
	POLICY_R_APPROVED,
	POLICY_R_OP_DENIED,
	POLICY_R_OP_ASK,
	POLICY_R_BAD_ARGS,
	POLICY_R_PATH_NOT_CANONICAL,
	POLICY_R_PATH_DENIED,
	POLICY_R_PATH_NOT_ALLOWED,
	POLICY_R_CMD_DENIED,
	POLICY_R_CMD_NOT_ALLOWED,
	POLICY_R_INTERP_NOT_ALLOWED,
	POLICY_R_BAD_URL,
	POLICY_R_EGRESS_NOT_ALLOWED,
	POLICY_R_REF_NOT_ALLOWED,
	POLICY_R_UNINHABITABLE,
	POLICY_R_UNINHABITABLE_ASK,
	POLICY_R_QUARANTINED,
	POLICY_R_NOT_YET_VALID,
	POLICY_R_EXPIRED,
	POLICY_R_BUDGET_EXHAUSTED,
	POLICY_R_APPROVAL_BAD_SIG,
	POLICY_R_APPROVAL_EXPIRED,
	POLICY_R_APPROVAL_TOO_LONG,
	POLICY_R_APPROVAL_REPLAY,
	POLICY_R_APPROVAL_WRONG_OP,
	POLICY_R_APPROVAL_WRONG_ARGS,
	POLICY_R_APPROVAL_WRONG_SESSION,
	POLICY_R_NARROWED,
	POLICY_R_WIDEN_REFUSED,
	POLICY_R_WIDENED,
	POLICY_R_COUNT
};

/* What a trace record describes. */
enum policy_event { POLICY_EV_CALL, POLICY_EV_NARROW, POLICY_EV_WIDEN };

#define POLICY_DIGEST_LEN	32
#define POLICY_SESSION_ID_LEN	16
#define POLICY_NONCE_LEN	16
#define POLICY_APPROVAL_MAX_TTL 300 /* seconds */
#define POLICY_DETAIL_LEN	96

struct policy;
struct policy_session;

/* A tool call. Pointers are borrowed for the duration of the call only. */
struct policy_call {
	enum policy_op op;
	const char *path;	 /* read_file, write_file, list, search: canonical absolute */
	const char *const *argv; /* run */
	size_t argc;
	const char *url;			/* web_fetch: http(s)://host[:port]/... */
	const char *method;			/* web_fetch: NULL = GET */
	size_t body_len;			/* web_fetch: bytes sent in the request body */
	const char *query;			/* web_search */
	const char *host;			/* net_connect: name or IP literal */
	uint16_t port;				/* net_connect */
	const char *remote;			/* git_push, create_pr: remote URL */
	const char *ref;			/* git_push: ref pushed (refs/heads/x or x) */
	const char *target;			/* spawn_agent, manage_sandbox: free text */
	const struct policy_approval *approval; /* optional: turns an `ask` into `allow` */
};

/* Approval: Ed25519 signature over policy__approval_message(). */
struct policy_approval {
	uint8_t session_id[POLICY_SESSION_ID_LEN];
	uint8_t op; /* enum policy_op */
	uint8_t args_digest[POLICY_DIGEST_LEN];
	uint8_t nonce[POLICY_NONCE_LEN];
	int64_t expires; /* caller's clock, seconds */
	uint8_t sig[64];
};

/* Canonical signed message: "nucleus-approval-v1" NUL, id, op, digest, nonce, expiry BE64. */
#define POLICY_APPROVAL_MSG_LEN                                                                    \
	(20 + POLICY_SESSION_ID_LEN + 1 + POLICY_DIGEST_LEN + POLICY_NONCE_LEN + 8)

/* The audit record of one decision, narrowing or widening request. */
struct policy_trace {
	uint64_t seq;
	int64_t time;
	uint8_t event; /* enum policy_event */
	uint8_t op;    /* enum policy_op (calls only) */
	uint8_t verdict;
	uint8_t reason;
	uint8_t legs_before, legs_after, call_legs;
	bool quarantined;			/* after this step */
	uint8_t args_digest[POLICY_DIGEST_LEN]; /* calls: digest of the arguments */
	uint8_t envelope_before[POLICY_DIGEST_LEN];
	uint8_t envelope_after[POLICY_DIGEST_LEN];
};

struct policy_decision {
	enum policy_level verdict;
	enum policy_reason reason;
	uint8_t call_legs;
	char detail[POLICY_DETAIL_LEN]; /* the rule, program or host the reason is about */
	struct policy_trace trace;
};

struct policy_error {
	char msg[256]; /* "$.paths.read[2]: expected string" */
};

/* Names. All return NULL / negative for unknown values. */
const char *policy__op_name(enum policy_op op);
int policy__op_from_name(const char *name);
const char *policy__level_name(enum policy_level l);
const char *policy__reason_name(enum policy_reason r);
int policy__reason_from_name(const char *name);
const char *policy__reason_message(enum policy_reason r);

/* Profiles and policies. */
int policy__profile_parse(const char *json_text, struct policy **ret, struct policy_error *err);
int policy__profile_check(const char *json_text, struct policy_error *err);
int policy__profile_builtin(const char *name, struct policy **ret);
const char *policy__builtin_json(const char *name);
const char *const *policy__builtin_names(void);		 /* NULL-terminated */
int policy__to_json(const struct policy *p, char **ret); /* canonical, malloc'd */
const char *policy__name(const struct policy *p);
void policy__digest(const struct policy *p, uint8_t out[POLICY_DIGEST_LEN]);
void policy__free(struct policy *p);
int policy__dup(const struct policy *p, struct policy **ret);

/* The lattice. */
int policy__meet(const struct policy *a, const struct policy *b, struct policy **ret);
int policy__join(const struct policy *a, const struct policy *b, struct policy **ret);
bool policy__leq(const struct policy *a, const struct policy *b);
bool policy__eq(const struct policy *a, const struct policy *b);
int policy__top(struct policy **ret);
int policy__read_only(struct policy **ret); /* what quarantine meets with */
enum policy_level policy__level(const struct policy *p, enum policy_op op);

/* Classifier: the exposure legs of a call (also classifies commands). */
unsigned policy__classify(const struct policy_call *call);

/* Sessions. */
struct policy_session_config {
	uint8_t id[POLICY_SESSION_ID_LEN];
	const uint8_t (*approver_keys)[32]; /* pinned Ed25519 public keys */
	size_t n_approver_keys;
};

int policy__session_new(const struct policy *profile, const struct policy_session_config *cfg,
			struct policy_session **ret);
void policy__session_free(struct policy_session *s);
/*
 * Delegation: a new session for a sub-agent of @parent. Its envelope is the meet of the
 * parent's envelope and @requested (NULL: the parent's envelope as it is), with every
 * operation whose allow-set the meet left empty denied, as a narrowing does
 * (policy__deny_empty). It inherits the parent's exposure legs, suspicion (probe count) and
 * quarantine, so a sub-agent neither forgets untrusted content nor restarts the count
 * toward quarantine; its id and approver keys are @cfg's, its seq and call counters start
 * at 0 and it has no used approval nonces. @parent is not changed.
 */
int policy__session_delegate(const struct policy_session *parent, const struct policy *requested,
			     const struct policy_session_config *cfg, struct policy_session **ret);
int policy__decide(struct policy_session *s, const struct policy_call *call, int64_t now,
		   struct policy_decision *ret);
int policy__narrow(struct policy_session *s, const struct policy *p, int64_t now,
		   struct policy_decision *ret);
int policy__request_widen(struct policy_session *s, const struct policy *p, int64_t now,
			  struct policy_decision *ret);
/*
 * Widening signed by a pinned approver: @p becomes the envelope as it is (legs, counters
 * and quarantine stay) when @a is a valid widen approval for this session and @p's digest
 * (policy__widen_message); else WIDEN_REFUSED or the APPROVAL_* reason, counted as a probe
 * like every refused widening; @a NULL: always WIDEN_REFUSED (recorded, a probe), even for
 * a policy below the envelope. @a's op is not part of the message (set it to 0).
 */
int policy__widen(struct policy_session *s, const struct policy *p, const struct policy_approval *a,
		  int64_t now, struct policy_decision *ret);
/*
 * An ask of this session that nobody approved (it expired, or a person refused it): a
 * probe, like a refused call (counted once untrusted content is among the legs; may
 * quarantine the session). The caller tracks its asks (the daemon's approval requests).
 */
void policy__ask_expired(struct policy_session *s);
const struct policy *policy__session_envelope(const struct policy_session *s);
unsigned policy__session_legs(const struct policy_session *s);
bool policy__session_quarantined(const struct policy_session *s);
uint64_t policy__session_seq(const struct policy_session *s);
uint32_t policy__session_suspicion(const struct policy_session *s);
const uint8_t *policy__session_id(const struct policy_session *s);
/* Not const: the session keeps its envelope's text for the next call. */
int policy__session_to_json(struct policy_session *s, char **ret);
int policy__session_from_json(const char *json_text, struct policy_session **ret,
			      struct policy_error *err);

/* Approvals. */
/*
 * Signed message of a widen approval: "nucleus-widen-v1" NUL (17 bytes), session id (16),
 * policy digest (32, in args_digest), nonce (16), expiry BE64: POLICY_WIDEN_MSG_LEN bytes.
 */
#define POLICY_WIDEN_MSG_LEN (17 + POLICY_SESSION_ID_LEN + POLICY_DIGEST_LEN + POLICY_NONCE_LEN + 8)
void policy__widen_message(const struct policy_approval *a, uint8_t out[POLICY_WIDEN_MSG_LEN]);
int policy__widen_sign(struct policy_approval *a, const uint8_t secret_key[64]);
/* {"session", "policy_digest", "nonce", "expires", "sig"} (hex, expires an integer). */
int policy__widen_approval_to_json(const struct policy_approval *a, char **ret);
int policy__widen_approval_from_json(const char *json_text, struct policy_approval *ret,
				     struct policy_error *err);
int policy__call_digest(const struct policy_call *call, uint8_t out[POLICY_DIGEST_LEN]);
void policy__approval_message(const struct policy_approval *a,
			      uint8_t out[POLICY_APPROVAL_MSG_LEN]);
int policy__approval_sign(struct policy_approval *a, const uint8_t secret_key[64]);
int policy__approval_to_json(const struct policy_approval *a, char **ret);
int policy__approval_from_json(const char *json_text, struct policy_approval *ret,
			       struct policy_error *err);

/* Calls as JSON (for the CLI's `policy explain` and the scenario corpus). */
struct policy_call_owned;
int policy__call_parse(const char *json_text, struct policy_call_owned **ret,
		       struct policy_error *err);
const struct policy_call *policy__call_get(const struct policy_call_owned *c);
void policy__call_free(struct policy_call_owned *c);

/* Human explanation of a decision, and the trace record as JSON. */
int policy__explain(const struct policy_decision *d, char *buf, size_t len);
int policy__trace_to_json(const struct policy_trace *t, char **ret);
/* The same record as a jansson object (new reference; NULL on a bad record or OOM). */
struct json_t;
struct json_t *policy__trace_json(const struct policy_trace *t);

#endif
