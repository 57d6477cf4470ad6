/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the nucleusd/ sources; not part of the module's face. */
#ifndef NUCLEUS_NUCLEUSD_INTERNAL_H
#define NUCLEUS_NUCLEUSD_INTERNAL_H

#include <stdio.h>
#include <event2/event.h>

#include "budget/budget.h"
#include "nucleusd/audit.h"
#include "nucleusd/clock.h"
#include "nucleusd/lru.h"
#include "nucleusd/nucleusd.h"
#include "nucleusd/pool.h"
#include "nucleusd/store.h"

enum {
	SB_CREATING = 1u << 0,
	SB_RUNNING = 1u << 1,
	SB_PAUSED = 1u << 2,
	SB_STOPPED = 1u << 3,
	SB_FAILED = 1u << 4,
};

/* Sandboxes whose budget limits (spend.c) and parsed policy/spec (sandbox.c) are cached. */
#define ND_LIMITS_CACHE 64
#define ND_JSON_CACHE	64

/* Upper bounds (ms) of the boot latency histogram buckets; +Inf is implied. */
#define ND_BOOT_BUCKETS 10

struct nd_metrics {
	uint64_t boots_ok, boots_failed, failures;
	uint64_t boot_bucket[ND_BOOT_BUCKETS + 1]; /* non-cumulative; last = +Inf */
	uint64_t boot_ms_sum;
	uint64_t decisions[3]; /* by enum nd_verdict */
	uint64_t tool_ok, tool_failed;
	uint64_t exhaustions[BUDGET__N_KINDS]; /* budget enforcements by kind */
	uint64_t seals, seal_failures;	       /* audit seals written / that failed */
	uint64_t meter_errors;		       /* meter/TTL failures (spend.c), each retried */
	uint64_t backups, backup_failures;     /* online backups written / failed (maint.c) */
	int64_t backup_mono_us;		       /* when the newest one was written; 0: none */
	uint64_t quarantines;		       /* policy sessions quarantined (policylife.c) */
};

extern const unsigned nd_boot_buckets_ms[ND_BOOT_BUCKETS];

/* An asynchronous request (boot or tool call) waiting for the backend. */
struct nd_op {
	struct nd_op *next, **pprev;
	struct nucleusd *nd;
	char id[20];
	char tool[72];
	int64_t actor_uid;
	nd_reply_fn reply;
	nd_chunk_fn chunk; /* streamed tool calls */
	void *arg;
	/* a push whose remote name is being resolved (calls.c): the call, held meanwhile */
	json_t *args;
	struct nd_caller who;
	bool has_who;
	char path[1040]; /* the config read */
};

struct nucleusd {
	struct event_base *base;
	struct store *store;
	struct audit_key *key;
	struct event *seal_ev; /* armed while committed audit entries are unsealed */
	bool seal_failing;     /* the last seal failed (logged once, until one works) */
	int seal_err;	       /* ... with this error (logged again when it changes) */
	nd_log_fn log;
	void *log_arg;
	struct nd_backend *be;
	struct nd_op *ops; /* pending, freed with the daemon */
	/* policy (decide.c): the one session cache and the pinned approver keys */
	struct nd_session_cache *sessions;
	uint8_t (*approver_keys)[32];
	size_t n_approver_keys;
	struct nd_metrics m;
	/* budgets (spend.c) */
	struct budget_prices *prices;
	struct event *meter_ev;
	unsigned meter_ms;
	struct nd_meter *meters;
	/* Limits of recently used sandboxes: fixed at create, read on every tool call. */
	struct nd_lru *limits_cache; /* id -> struct budget_limits */
	/* Parsed policy and spec of recently used sandboxes (sandbox.c); never modified. */
	struct nd_lru *json_cache; /* id -> struct nd_sb_json */
	/* maintenance (maint.c): one thread with its read-only connection, off the loop */
	struct store *reader; /* the maintenance thread's only */
	struct nd_pool *maint;
	char backup_path[4096];	 /* DATA_DIR/ND_BACKUP_FILE */
	struct event *backup_ev; /* the period's timer; NULL: no backups */
	bool backup_queued;	 /* a backup job is queued or running */
};

struct sb_row {
	char id[20];
	char *name;
	char state[16];
	char *profile;
	json_t *policy, *spec;
	unsigned vcpus, memory_mib;
	int64_t boot_ms; /* -1: none */
	int64_t vmm_pid;
	char *reason;
	int64_t owner_uid, created_us, updated_us;
	char session_id[33];
	char *session_state;
	char parent_id[20]; /* "": none (not a delegated child) */
};

struct transition {
	struct nucleusd *nd;
	const char *id;
	unsigned from_mask;
	const char *to, *kind;
	int64_t actor_uid;
	int64_t boot_ms; /* -1: unchanged */
	int64_t vmm_pid; /* 0: unchanged */
	const char *reason;
	char was[16]; /* out: the state found */
};

/* The daemon's parts, for the module's unit tests (daemon.c). */
struct store *nucleusd__store(struct nucleusd *nd);
struct audit_key *nucleusd__key(struct nucleusd *nd);
const struct nd_backend *nucleusd__backend(struct nucleusd *nd);

/* ---- sandbox state (state.c) ---- */

int nd__transition(struct transition *t, struct nd_err *e);

/* True for the daemon itself (@who NULL) and an admin: every owner's sandboxes. */
bool nd_caller__sees_all(const struct nd_caller *who);
/*
 * The sandbox @ref (id or name) as @who may see it (NULL: the daemon itself). A sandbox
 * of another owner, for a caller who is not admin, is -ENOENT exactly like an unknown
 * one: the one place where per-owner access is decided.
 */
int sb_row__load(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		 struct sb_row *r, struct nd_err *e);
void sb_row__clear(struct sb_row *r);
json_t *sb_row__json(const struct sb_row *r);
void sb_row__info(const struct sb_row *r, struct nd_sandbox_info *info);
/* *@ret: the JSON of sandbox @id as @who sees it now (a request's reply). */
int nd__row_reply(struct nucleusd *nd, const struct nd_caller *who, const char *id, json_t **ret,
		  struct nd_err *e);

/* A backend operation on one sandbox (nd_backend's stop, pause, resume). */
typedef int (*nd_be_op)(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e);

/* One lifecycle step: from a state in @from_mask to @to, audited as @kind. */
struct nd_lifecycle {
	unsigned from_mask;
	const char *to, *kind, *verb;
	bool tolerate_backend_error; /* stop of a failed sandbox: the VM is gone already */
	/* Optional: may refuse the step (e.g. a resume with an exhausted budget). */
	int (*gate)(struct nucleusd *nd, const struct sb_row *row, int64_t actor_uid,
		    struct nd_err *e);
};
/*
 * Loads @ref as @who (NULL: the daemon; the actor of the audit entry), checks its state, runs @l's
 * gate, then @op (may be NULL) and the transition; @reason (may be NULL) is recorded in the row and
 * the audit entry. With
 * @ret, the sandbox's JSON afterwards.
 */
int nd__lifecycle(struct nucleusd *nd, const struct nd_caller *who, const char *ref, nd_be_op op,
		  const struct nd_lifecycle *l, const char *reason, json_t **ret, struct nd_err *e);
/*
 * Sandbox @id's children (delegation) as [{id, state}], oldest first; @live: only those
 * not ended (creating, running, paused). Works inside a transaction too.
 */
int nd__children(struct nucleusd *nd, const char *id, bool live, json_t **ret);
/* Pause (budget) or stop (TTL) from the daemon itself, with the reason recorded. */
int nd__pause_for(struct nucleusd *nd, const char *id, const char *reason);
int nd__stop_for(struct nucleusd *nd, const char *id, const char *reason);

struct nd_op *nd_op__new(struct nucleusd *nd, const char *id, nd_reply_fn reply, void *arg);
void nd_op__free(struct nd_op *op);

/* Boots left over from before a restart: adopt or fail each (daemon.c). */
int nd__recover(struct nucleusd *nd);
/* The parsed policy/spec cache of sb_row__load (state.c): made by nucleusd__new. */
int nd__json_cache_new(struct nucleusd *nd);
/* ---- the database's health (maint.c) ---- */

/* Jobs waiting for the maintenance thread at most (more: 503 busy). */
#define ND_MAINT_QUEUE 16
/*
 * A job of the maintenance thread: @run there, on the daemon's read-only connection
 * (its result in @rc), then @done on the loop thread, exactly once (@dropped: the daemon
 * is going away, no reply is wanted); @done frees the job. A job's own data follow it
 * in a larger struct that starts with this one. @reply/@arg: the request it answers
 * (NULL: none).
 */
struct nd_maint_job {
	struct nd_pool_job pj; /* the pool's */
	struct nucleusd *nd;
	int rc;
	int (*run)(struct nd_maint_job *j, struct store *reader);
	void (*done)(struct nd_maint_job *j, bool dropped);
	nd_reply_fn reply;
	void *arg;
};
/* The reader and the thread (nucleusd__new, after the store) / their end (joined). */
int nd__maint_init(struct nucleusd *nd, const struct nd_config *cfg, const char *db_path);
void nd__maint_fini(struct nucleusd *nd);
/*
 * Allocates a job of @size bytes (zeroed; a struct that starts with struct
 * nd_maint_job) and queues it: 0 (@done will run and free it), or -EAGAIN
 * maintenance_busy (the queue is full) / -errno, when nothing was queued.
 */
int nd__maint_queue(struct nucleusd *nd, size_t size,
		    int (*run)(struct nd_maint_job *j, struct store *reader),
		    void (*done)(struct nd_maint_job *j, bool dropped), nd_reply_fn reply,
		    void *arg, struct nd_err *e);
/*
 * A maintenance job's reply: @o (taken; NULL with @rc 0: out of memory) or, for @rc < 0,
 * 500 internal "@what: <strerror>".
 */
void nd__maint_reply(nd_reply_fn reply, void *arg, int rc, json_t *o, const char *what);
/* The backup series of /v1/metrics. */
void nd__maint_metrics(struct nucleusd *nd, FILE *f);
/* ---- images (images.c) ---- */

/*
 * The one image name rule of every backend (their spec_check): NULL (none) or 1-64 of
 * [a-z0-9._:-] starting with a letter or digit, so never a path ("/", a leading "."),
 * else -EINVAL with code bad_image. Whether the image exists is the backend's to say.
 */
int nd_image__check(const char *image, struct nd_err *e);

/* ---- audit seals (seal.c) ---- */

/* Makes the seal timer and attaches the daemon's key as the log's writer (nucleusd__new). */
int nd__seal_init(struct nucleusd *nd);
/* Seals what is left (a clean stop leaves nothing unsealed) and frees the timer. */
void nd__seal_fini(struct nucleusd *nd);
/*
 * Seals the audit log now; a failure is counted and retried by the timer, and said
 * once per error (with the signer's problem) until a seal works again.
 */
void nd__seal(struct nucleusd *nd);
/* One line through the daemon's log function (nd_config.log), if any. */
void nd__log(struct nucleusd *nd, enum nd_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- budgets (spend.c) ---- */

/* Per running sandbox: the sampler turning VMM readings into debits, its cgroup. */
struct nd_meter {
	struct nd_meter *next;
	char id[20];
	int64_t pid;
	char *cgroup; /* cgroup v2 directory of the VMM, or NULL: /proc/PID/task */
	struct budget_sampler s;
	struct budget_delta pend; /* metered but not yet in the ledger */
	int64_t flush_us;	  /* monotonic time of the last ledger write */
	bool seen;
};

/* Price table, timer (nucleusd__new) / their release (nucleusd__free). */
int nd__budget_init(struct nucleusd *nd, const struct nd_config *cfg);
void nd__budget_fini(struct nucleusd *nd);
/*
 * Limits of a create request: the profile's default limits (@profile_budget, as the
 * profiles table has them; NULL: none), overridden per kind by the request's.
 */
int nd__limits_for_create(const char *profile, json_t *profile_budget, json_t *req,
			  struct budget_limits *ret, struct nd_err *e);
/*
 * In decision_tx: the gate (any budget exhausted) and, for an allowed call, its price.
 * Returns < 0 on a database error; *@ret_refused is the kind that refuses the call (its
 * budget.exhausted entry is appended) or -1. @ret_charged: the price debited.
 */
int nd__budget_tool_tx(struct store *s, struct nucleusd *nd, const char *id, const char *tool,
		       int64_t actor_uid, bool allowed, int *ret_refused, int64_t *ret_charged);
/* Appends budget.debit for a tool price (after the decision's own entry). */
int nd__budget_debit_audit(struct store *s, struct nucleusd *nd, const char *id, int64_t actor_uid,
			   const char *reason, enum budget_kind kind, int64_t amount);
/* Fills @e for a 402 naming @kind. */
int nd__budget_refused(struct nucleusd *nd, const char *id, int kind, const char *what,
		       struct nd_err *e);
/* One metering sample of a running sandbox (also on each tool call). */
void nd__meter_sandbox(struct nucleusd *nd, const struct sb_row *row);
/*
 * After a boot: the VMM's meter, reading its cgroup v2 leaf when its jail placed it in one
 * (vm-proc.c: the one place that places VMMs), else /proc.
 */
void nd__meter_attach(struct nucleusd *nd, const char *id, int64_t pid);
/*
 * Enables the memory, cpu and pids controllers below the daemon's cgroup v2: 0 when a
 * leaf there can have memory.max, cpu.max and pids.max (the cgroup is writable and the
 * controllers are delegated), else -errno (no unified hierarchy, not writable, not
 * delegated). Called once, as root, before the jails are made.
 */
int nd__cgroup_enable(void);
/* The cgroup v2 leaf of sandbox @id's VMM, DAEMON_CGROUP/nucleus-ID, in @buf (its name
 * only: the jail makes and joins it, priv.c removes it). */
int nd__cgroup_leaf(const char *id, char *buf, size_t len);
/* Resume gate: -EDQUOT (audited) when a budget of @row is exhausted. */
int nd__budget_resume_check(struct nucleusd *nd, const struct sb_row *row, int64_t actor_uid,
			    struct nd_err *e);
/* The budget series of /v1/metrics. */
int nd__budget_metrics(struct nucleusd *nd, FILE *f);

/* ---- profiles (profiles.c): the daemon's one registry ---- */

/*
 * Upserts the built-in profiles into the profiles table (body and default budget): the
 * daemon's own (profiles.c), then the policy engine's built-ins under their names.
 */
int nd__profiles_register(struct nucleusd *nd);
/*
 * A profile as the profiles table has it: its policy (object) and its default budget
 * limits (object, or NULL when it has none). -EINVAL unknown_profile.
 */
int nd__profile_load(struct nucleusd *nd, const char *name, json_t **ret_policy,
		     json_t **ret_budget, struct nd_err *e);

/* ---- the policy engine's per-call decision path (decide.c) ---- */

struct nd_decision {
	enum nd_verdict verdict;
	char reason[64];   /* machine reason, e.g. "CMD_NOT_ALLOWED" */
	char message[256]; /* human explanation */
	/*
	 * Owned by the decision (the caller frees them): the policy engine's trace record,
	 * added to the audit entry as "trace", and the session's new state (JSON text),
	 * written to sessions.state. Both commit in the decision's transaction.
	 */
	json_t *trace;
	char *session_state;
	/* This decision quarantined the session (audited as policy.quarantine). */
	bool quarantined;
	uint32_t probes; /* the session's probes after it */
};

/* Parsed policy sessions keyed by the state text they were serialized to. */
struct nd_session_cache;
int nd_session_cache__new(struct nd_session_cache **ret);
void nd_session_cache__free(struct nd_session_cache *c);
/* Forgets the cached session of @session_id (hex), if any. */
void nd_session_cache__drop(struct nd_session_cache *c, const char *session_id);

/*
 * One decision of @sb's policy session for @tool(@args): the engine's verdict, reason,
 * explanation, trace and new session state (nd_decision). @approver_keys (@n_keys) are
 * pinned into a new session. @cache may be NULL (every call parses the state).
 * -ENOENT: not an operation of the engine.
 */
int nd_policy__decide(struct nd_session_cache *cache, const uint8_t (*approver_keys)[32],
		      size_t n_keys, const struct nd_sandbox_info *sb, const char *tool,
		      json_t *args, struct nd_decision *ret, struct nd_err *e);
/*
 * The daemon's decision for a tool call: nd_policy__decide with its session cache and
 * approver keys; a tool of the backend's own_tools is decided as `run` of argv [tool].
 * -ENOENT unknown_tool: neither an engine operation nor one of the backend's tools.
 */
int nd__decide(struct nucleusd *nd, const struct nd_sandbox_info *sb, const char *tool,
	       json_t *args, struct nd_decision *ret, struct nd_err *e);
/* The decision just made for @sb was not committed: its cached session goes. */
void nd__decision_abort(struct nucleusd *nd, const struct nd_sandbox_info *sb);
/* Checks a policy (profile JSON) for the engine; -EINVAL with invalid_policy. */
int nd_policy__check(json_t *policy, struct nd_err *e);
/* The engine's policy of @policy (profile JSON); -EINVAL with invalid_policy. */
struct policy;
int nd_policy__parse(json_t *policy, struct policy **ret, struct nd_err *e);
/*
 * @sb's policy session at its last committed state (the cached one, or parsed, or a new
 * one from its policy), now the caller's; -EBUSY wrong_state when it has none open (a
 * stopped sandbox). After committing its new state, nd__session_keep hands it back
 * (takes @s): the next decision starts from it.
 */
struct policy_session;
int nd__session_take(struct nucleusd *nd, const struct nd_sandbox_info *sb,
		     struct policy_session **ret, struct nd_err *e);
void nd__session_keep(struct nucleusd *nd, const struct nd_sandbox_info *sb, const char *state,
		      struct policy_session *s);
/* In a transaction: sessions.state of open session @session_id := @state (-ENOENT: none). */
int nd__session_save(struct store *s, const char *session_id, const char *state);
/* Why a session is quarantined (policy.md "Quarantine"). */
#define ND_QUARANTINE_REASON                                                                       \
	"probes (refused calls and widenings) after untrusted content reached quarantine_after"
/*
 * A session state (sessions.state) that is quarantined: {"rule": "quarantine_after",
 * "reason", "probes": N so far} (a new reference); else NULL.
 */
json_t *nd_session__quarantine_json(const char *state);

/* The canonical JSON of @p (policy__to_json, parsed): a new reference, NULL when out of memory. */
json_t *nd_policy__json(const struct policy *p);

/* ---- delegation (delegate.c; docs/api.md "Delegation") ---- */

/* What a child's create takes from its parent. */
struct nd_delegation {
	char parent_id[20];
	char session_id[33];		    /* the child's policy session */
	char *session_state;		    /* its first state (policy__session_delegate) */
	json_t *policy;			    /* the child's policy: that session's envelope */
	struct budget_limits parent_limits; /* fixed at the parent's create */
};
void nd_delegation__clear(struct nd_delegation *d);
/*
 * The child of @parent (loaded for the caller; running or paused, else -EBUSY
 * wrong_state): its session delegated from the parent's with @requested (profile JSON;
 * NULL: the parent's policy in force), its policy, the parent's limits. Nothing is
 * written; the parent's session is unchanged.
 */
int nd__delegate(struct nucleusd *nd, const struct sb_row *parent, json_t *requested,
		 struct nd_delegation *ret, struct nd_err *e);
/*
 * The child's @limits against the parent's: a kind the parent limits must be limited in
 * the child (-EINVAL budget_required), a peak at most the parent's (unset: the parent's).
 */
int nd__delegate_limits(const struct nd_delegation *d, struct budget_limits *limits,
			struct nd_err *e);
/*
 * In the create transaction: carves @limits out of the parent's budget (-EDQUOT with
 * *@ret_short the kind it has too little of) and audits sandbox.delegate on the parent.
 */
int nd__delegate_tx(struct store *s, struct nucleusd *nd, const struct nd_delegation *d,
		    const char *child, int64_t actor_uid, const struct budget_limits *limits,
		    int *ret_short);
/*
 * In the transaction that ends @child (stopped, failed): what it did not spend goes back
 * to @parent (budget.return on the parent); once per child.
 */
int nd__delegate_end_tx(struct store *s, struct nucleusd *nd, const char *parent, const char *child,
			int64_t actor_uid);

/* ---- git remote names (gitconfig.c; docs/api.md "Remote names") ---- */

/* A remote name (origin, upstream, a/b), not a URL (scheme://, host:path) or a path. */
bool nd_git__is_remote_name(const char *s);
/*
 * The URL git pushes to for remote @remote of the config text @text (@len bytes, from
 * the guest: anything): its one pushurl with insteadOf applied, else its one url with
 * pushInsteadOf, else insteadOf (the longest match). *@ret malloc'd. -ENOENT no such
 * remote, -E2BIG more than one push URL, -EOPNOTSUPP [include] in the config, -EINVAL
 * a malformed config, -EFBIG over 1 MiB; @why (@why_len bytes) says which, in a line.
 */
int nd_git__push_url(const char *text, size_t len, const char *remote, char **ret, char *why,
		     size_t why_len);

/* ---- the policy's life through the API (policylife.c) ---- */

/*
 * In a transaction: appends the policy.quarantine entry of a step that quarantined
 * @sandbox's session (@what: the tool, or "policy.widen"; @probes: the session's count;
 * @trace: the step's trace record), a new version of the policy.
 */
int nd__policy_quarantined_tx(struct store *s, struct nucleusd *nd, const char *sandbox,
			      int64_t actor_uid, const char *what, uint32_t probes, json_t *trace);
/*
 * Before a decision: @row's approval requests that expired while pending are asks
 * nobody approved, each a probe of its session (policy__ask_expired), marked 'expired'
 * and audited (approval.expired) in one transaction. 1 when the session changed (read
 * @row again), 0 when there were none, < 0 on errors.
 */
int nd__expire_asks(struct nucleusd *nd, const struct sb_row *row, struct nd_err *e);
/*
 * An approval request's @state (approvals.state) at @now_us: 0 pending and in time,
 * -ETIME expired, -EBUSY answered (-ENOMEM: no state). The one rule of calls.c and
 * policylife.c.
 */
int nd__approval_state(const char *state, int64_t expires_us, int64_t now_us);
/* The client's error for @r from a request @nonce of @sandbox (404, 409 used/expired). */
int nd__approval_err(int r, const char *nonce, const char *sandbox, struct nd_err *e);
/* The quarantine series of /v1/metrics. */
int nd__policy_metrics(struct nucleusd *nd, FILE *f);

#endif
