/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nucleusd: the daemon's core library (face of the nucleusd/ module).
 *
 *   store    SQLite in WAL mode, versioned migrations, one transaction helper
 *            (internal: nucleusd/store.h)
 *   audit    hash-chained, Ed25519-signed, append-only audit log (internal:
 *            nucleusd/audit.h)
 *   backend  the seam to the VMM / guest agent (struct nd_backend)
 *   nucleusd the sandbox manager: state machine, every transition a transaction
 *            with its audit entry; no state that SQLite does not also have
 *
 * The HTTP layer (api/) calls into this library; this library never speaks HTTP.
 * Errors are negative errno values; an optional struct nd_err carries a short
 * machine code and a human message for the API to return.
 */
#ifndef NUCLEUS_NUCLEUSD_H
#define NUCLEUS_NUCLEUSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

struct event_base;

/* ---- errors --------------------------------------------------------------------------- */

/*
 * Error codes used across the library (negative errno) and what the API makes of them:
 *   -EINVAL  400 bad request            -ENOENT   404 unknown id
 *   -EBUSY   409 wrong state            -EEXIST   409 conflict (e.g. name taken)
 *   -EACCES  403 policy deny / ask      -EDQUOT   402 budget exhausted
 *   -EAGAIN  503 backend unavailable    -EHOSTDOWN 502 backend (VMM/guest) failed
 *   others   500 internal
 */
struct nd_err {
	char code[32];	 /* machine code, e.g. "wrong_state" */
	char msg[256];	 /* one line for humans */
	char budget[16]; /* with code "budget_exhausted": the kind, e.g. "tokens"; else "" */
};

/* Fills @e (may be NULL) and returns @rc (a negative errno). */
int nd_err__set(struct nd_err *e, int rc, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The store and the audit log are internal: nucleusd/store.h, nucleusd/audit.h. */
struct store;
struct audit_key;

/*
 * nucleusd/env.c, for every backend. The environment of a `run` in a sandbox: its create request's
 * env
 * (@spec.env) with the call's @args.env on top, both checked against guest/guest.h's
 * limits (bad name or value -EINVAL, too many or too much -E2BIG). *@ret is NULL when
 * neither has one (the agent's default environment), else a new object.
 */
int nd_env__merge(json_t *spec, json_t *args, json_t **ret, struct nd_err *e);
/*
 * The one redaction of a create request's env (nucleusd/env.c): a new reference to
 * @spec with each value of its "env" as "sha256:<64 hex>" of the value (a value in that
 * form already is kept: redacting twice changes nothing), @spec itself when there is
 * nothing to redact; NULL when out of memory. What the audit log, every reply and a
 * stopped sandbox's stored spec hold; the plain values are kept only while the sandbox
 * may still run.
 */
json_t *nd_env__redact(json_t *spec);

/* ---- backend seam --------------------------------------------------------------------- */

/* What the backend is told about a sandbox. Valid only during the call. */
struct nd_sandbox_info {
	const char *id;
	const char *name;    /* may be NULL */
	const char *profile; /* profile name, or NULL when an inline policy is given */
	json_t *policy;	     /* the profile's body or the inline policy (object) */
	json_t *spec;	     /* the validated create request (object) */
	unsigned vcpus;
	unsigned memory_mib;
	int64_t vmm_pid;	   /* from the last boot, 0 if none */
	const char *session_id;	   /* 32 hex digits: the policy session of this sandbox */
	const char *session_state; /* its last committed state (JSON text), NULL: fresh */
};

struct nd_boot_result {
	uint32_t boot_ms;
	int64_t vmm_pid; /* recorded for re-adoption after a daemon restart; 0 if none */
};

enum nd_verdict { ND_ALLOW = 0, ND_DENY, ND_ASK };

/*
 * Completion callbacks. A backend calls each exactly once per accepted call, either
 * from inside the call or later from the event loop. @err < 0 means failure, with
 * @reason a one-line explanation. The tool result is a JSON value the callee owns
 * (the callback takes its own reference).
 */
typedef void (*nd_boot_done_fn)(void *token, int err, const struct nd_boot_result *res,
				const char *reason);
typedef void (*nd_tool_done_fn)(void *token, int err, json_t *result, const char *reason);

/*
 * Streamed output of a tool call (`run`), delivered on the event loop, in order, before
 * the completion. @fd is 1 (stdout) or 2 (stderr). The consumer returns 0, or
 * ND_STREAM_FULL when it cannot take more for now: the producer then delivers nothing
 * until nucleusd__stream_resume() (and the guest's output is not read meanwhile).
 */
#define ND_STREAM_FULL 1
typedef int (*nd_chunk_fn)(void *token, int fd, const void *data, size_t len);

struct nucleusd;

/*
 * The seam between the daemon and everything that runs sandboxes. The daemon owns the
 * state (SQLite), the audit log and policy (profiles, decisions with the policy engine,
 * its sessions and approver keys: nucleusd/decide.c); the backend owns processes and
 * guests and runs what the daemon allowed.
 * Every function returns 0 or a negative errno (and may fill @e); async calls that
 * return 0 MUST call their completion exactly once; async calls that fail synchronously
 * MUST NOT call it.
 */
struct nd_backend {
	const char *name; /* "vmm", "fake", "none" */
	bool real;	  /* false: the daemon says so in its log and /v1/health */
	void *ctx;

	/* Called once by nucleusd__new; @nd is for nucleusd__sandbox_failed(). */
	void (*attach)(void *ctx, struct event_base *base, struct nucleusd *nd);
	/* Starts the sandbox's VM and waits (asynchronously) until the guest agent answers. */
	int (*boot)(void *ctx, const struct nd_sandbox_info *sb, nd_boot_done_fn done, void *token,
		    struct nd_err *e);
	/* Stops and releases the sandbox's VM (running, paused or half-booted). */
	int (*stop)(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e);
	int (*pause)(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e);
	int (*resume)(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e);
	/*
	 * After a daemon restart: takes over a sandbox whose VM may still run
	 * (sb->vmm_pid). 0 = adopted (keeps its state), < 0 = gone (marked failed).
	 */
	int (*adopt)(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e);
	/* Runs an allowed tool call in the guest. -ENOENT: no such tool. */
	int (*tool)(void *ctx, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		    nd_tool_done_fn done, void *token, struct nd_err *e);
	/*
	 * Optional: `run` with its output delivered through @chunk as it comes (the
	 * result then has exit_code, signal, timed_out but no stdout/stderr). Completes
	 * from the event loop, never inside the call. stream_resume(@token) says the
	 * consumer can take output again; it delivers from the loop, never inside it.
	 */
	int (*tool_stream)(void *ctx, const struct nd_sandbox_info *sb, const char *tool,
			   json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
			   struct nd_err *e);
	void (*stream_resume)(void *ctx, void *token);
	/* Optional: checks the create request against what the backend has (e.g. the
	 * image) before anything is recorded; -EINVAL with @e for a 400. */
	int (*spec_check)(void *ctx, json_t *spec, struct nd_err *e);
	void (*free)(void *ctx);

	/*
	 * Optional, NULL-terminated: the backend's own tools that are not operations of the
	 * policy engine. The daemon decides each as the engine's `run` of a command named
	 * after the tool (argv [TOOL]), so a policy governs them with `levels.run` and
	 * `commands` like any command. Any other name the engine does not know is 404
	 * unknown_tool, with no decision.
	 */
	const char *const *own_tools;
};

/* Test/CLI backend: no VMs; see nucleusd/fake_backend.c for its tools and images. */
int nd_fake_backend__new(struct nd_backend **ret);
/* Refuses every boot (-EAGAIN): for unit tests of the seam and of restart recovery. */
int nd_none_backend__new(struct nd_backend **ret);
void nd_backend__free(struct nd_backend *be);

/* The real backend (nucleusd/backend-vm.c): nucleus-vmm + guest agent. */
struct nd_monitor;
struct nd_vm_config {
	const char *vmm;      /* nucleus-vmm executable */
	const char *kernel;   /* guest vmlinux */
	const char *initrd;   /* guest initramfs (nucleus-init) */
	const char *data_dir; /* per-VM run dirs in DATA/vms, persisted workspaces in
			       * DATA/workspaces */
	int boot_timeout_s;   /* the guest agent answers within it, or the boot fails (0: 600) */
	/*
	 * nucleus-jailer (vmm/jailer.c): every VMM in its jail (docs/vmm.md "The jail").
	 * NULL: no jail (--no-jail, for debugging only). Run as root, each VM gets its own
	 * uid from [jail_uid_first, jail_uid_first + jail_uid_count); otherwise a user
	 * namespace maps the daemon's uid.
	 */
	const char *jailer;
	unsigned jail_uid_first, jail_uid_count;
	/* Where jails are made and VMMs killed and reaped (nucleusd/monitor.h): the
	 * daemon's (its configuration then is the monitor's own, made from the same
	 * values by nd_vm_config__priv); NULL: the backend makes a local one. */
	struct nd_monitor *monitor;
};
struct nd_priv_cfg;
/*
 * The VM part of the privileged operations' configuration for @cfg (paths, jail mode,
 * the cgroup v2 probe, the daemon's uid and gid): what a monitor is made with (the
 * caller adds the signer's two paths).
 */
int nd_vm_config__priv(const struct nd_vm_config *cfg, uid_t daemon_uid, gid_t daemon_gid,
		       struct nd_priv_cfg *out, struct nd_err *e);
/* One line on the VM backend's jail: its mode and what is missing (to be logged). */
const char *nd_vm_backend__jail(const struct nd_backend *be);
/* Checks that the three files are readable; fills @e when not. */
int nd_vm_backend__new(const struct nd_vm_config *cfg, struct nd_backend **ret, struct nd_err *e);

/* ---- the sandbox manager -------------------------------------------------------------- */

/*
 * Who made a request (the API server reads the peer's credentials). A sandbox belongs to
 * the uid that created it; per-sandbox requests of anyone else are -ENOENT, as for an
 * unknown id, unless @admin (uid 0, or a member of the daemon's --admin-gid). A NULL
 * caller is the daemon itself.
 */
struct nd_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool admin;
};

/*
 * Completion of an asynchronous request: @body (object) is borrowed; with @rc < 0 it is
 * NULL or what the error has to show (a create's failed sandbox, a late denial's verdict
 * and reason).
 */
typedef void (*nd_reply_fn)(void *arg, int rc, const struct nd_err *e, json_t *body);

/* What the daemon has to say outside a request (the audit signer's failures), one line. */
enum nd_log_level { ND_LOG_ERR, ND_LOG_WARN, ND_LOG_INFO };
typedef void (*nd_log_fn)(void *arg, enum nd_log_level lvl, const char *msg);

struct nd_config {
	const char *data_dir; /* holds nucleus.db, audit.key */
	/*
	 * nucleus-signer (nucleusd/signer.h), which holds the audit key: started first,
	 * before the database is opened; restarted when it dies. Required.
	 */
	const char *signer;
	/* Where the privileged operations run (nucleusd/monitor.h): the separate root
	 * monitor of nucleusd --user, which starts the signer; NULL: this process. */
	struct nd_monitor *monitor;
	nd_log_fn log; /* may be NULL: nothing is said */
	void *log_arg;
	/* Budgets: metering/TTL timer period, 0 = ND_METER_INTERVAL_MS. */
	unsigned meter_interval_ms;
	const char *prices_path; /* price table JSON file (docs/budget.md); NULL: defaults */
	/* Ed25519 public keys pinned in every new policy session: whose signed approvals
	 * turn an `ask` into `allow` (docs/policy.md "Approvals"). Copied. */
	const uint8_t (*approver_keys)[32];
	size_t n_approver_keys;
	/*
	 * Online backups into DATA_DIR/ND_BACKUP_FILE (maint.c): one at start, then every
	 * this many seconds, each of a database that passed quick_check; 0: none.
	 */
	unsigned backup_interval_s;
};

/*
 * Before nucleusd__new: PRAGMA quick_check of @data_dir/nucleus.db, read-only. 0 when it
 * is sound (or there is none yet); -EBADMSG when it is corrupt, with quick_check's first
 * problem in @problem; another -errno when it cannot be read.
 */
int nucleusd__db_check_at_start(const char *data_dir, char *problem, size_t len);
/* The daemon's backup of nucleus.db, below its data directory; nucleusd's default period. */
#define ND_BACKUP_FILE		 "backup/nucleus.db"
#define ND_BACKUP_INTERVAL_S	 3600
#define ND_BACKUP_INTERVAL_MAX_S 604800

/* Takes ownership of @be (freed by nucleusd__free). Adopts or fails leftover sandboxes. */
int nucleusd__new(struct event_base *base, const struct nd_config *cfg, struct nd_backend *be,
		  struct nucleusd **ret);
void nucleusd__free(struct nucleusd *nd);

/*
 * POST /v1/sandboxes. @req was validated for shape by the API; semantic checks
 * (profile exists, name free, one of profile|policy) happen here. Returns 0 when the
 * boot started: @reply is then called exactly once (maybe before this returns) with
 * rc 0 and the sandbox, or rc < 0 (the sandbox is then 'failed').
 */
int nucleusd__sandbox_create(struct nucleusd *nd, const struct nd_caller *who, json_t *req,
			     nd_reply_fn reply, void *arg, struct nd_err *e);
/* What a sandbox list returns (GET /v1/sandboxes): one page, oldest first. */
struct nd_list_opts {
	bool all;	    /* include stopped sandboxes */
	bool all_owners;    /* every owner's (admin only, else -EACCES); false: @who's own */
	unsigned limit;	    /* at most this many; 0: every one (the daemon's own use) */
	const char *cursor; /* a page's next cursor: the page after it; NULL: the first */
};
#define ND_LIST_DEFAULT 100
#define ND_LIST_MAX	1000
/*
 * @who NULL (the daemon itself): every owner's. The page in *@ret; *@next the cursor of
 * the page after it (malloc'd, an opaque string), NULL when this one is the last.
 * -EINVAL (@e: bad_value) for a cursor that no list returned.
 */
int nucleusd__sandbox_list(struct nucleusd *nd, const struct nd_caller *who,
			   const struct nd_list_opts *o, json_t **ret, char **next,
			   struct nd_err *e);
/*
 * Every per-sandbox request takes its caller @who: a sandbox of another owner is -ENOENT
 * (not_found, the message of an unknown @ref) unless @who is admin; NULL is the daemon.
 * @ref: id, or name (the live sandbox of that name, else the newest one).
 */
int nucleusd__sandbox_get(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			  json_t **ret, struct nd_err *e);
int nucleusd__sandbox_stop(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   json_t **ret, struct nd_err *e);
int nucleusd__sandbox_pause(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			    json_t **ret, struct nd_err *e);
int nucleusd__sandbox_resume(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			     json_t **ret, struct nd_err *e);
/*
 * POST /v1/sandboxes/{id}/tools/{name}: decision (audited), then execution.
 * Returns < 0 for errors known at once (404, 409, 403 with @ret_denial set).
 * On 0 the call is under way and @reply gets {verdict:"allow", result}.
 */
int nucleusd__tool_call(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			const char *tool, json_t *args, nd_reply_fn reply, void *arg,
			json_t **ret_denial, struct nd_err *e);

/*
 * The same with the output streamed (only `run`; -EOPNOTSUPP when the backend cannot):
 * @chunk(@arg, fd, data, len) gets the output as it comes (same contract as
 * nd_chunk_fn), then @reply gets {verdict, result} without stdout/stderr. On 0,
 * *@ret_stream names the stream for nucleusd__stream_resume() until @reply is called.
 * Neither callback is called before this returns.
 */
int nucleusd__tool_call_stream(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			       const char *tool, json_t *args, nd_chunk_fn chunk, nd_reply_fn reply,
			       void *arg, void **ret_stream, json_t **ret_denial, struct nd_err *e);
/* The consumer of @stream can take output again (see ND_STREAM_FULL). */
void nucleusd__stream_resume(struct nucleusd *nd, void *stream);

/*
 * POST /v1/sandboxes/{id}/approvals: @nonce names the pending request of an `ask`
 * verdict (its row becomes 'used'); the asked call is decided again with @approval (a
 * signed policy approval, JSON, see docs/policy.md) attached, and runs when the policy
 * engine now allows it. Same return and @reply contract as nucleusd__tool_call.
 */
int nucleusd__approve(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		      const char *nonce, json_t *approval, nd_reply_fn reply, void *arg,
		      json_t **ret_denial, struct nd_err *e);
/*
 * POST /v1/sandboxes/{id}/approvals/refuse: a person says no to the pending request
 * @nonce (its row becomes 'denied'): a probe of the session like a refused call, in one
 * transaction with the audit entry approval.refused. @ret: {sandbox, nonce, state,
 * probes, quarantined}. 404 unknown_approval, 409 approval_used / approval_expired.
 */
int nucleusd__approval_refuse(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			      const char *nonce, json_t **ret, struct nd_err *e);

int nucleusd__audit_list(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			 uint64_t after, unsigned limit, json_t **ret, struct nd_err *e);
/*
 * Verifies the whole chain (after sealing what this daemon committed) on the maintenance
 * thread, off the event loop; @ref, when given, only has to exist for @who. @ref NULL
 * (the whole log, GET /v1/audit/verify) is for an admin only: -EACCES otherwise. 0:
 * @reply gets the report later (never before this returns). -EAGAIN when the
 * maintenance queue is full.
 */
int nucleusd__audit_verify(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   nd_reply_fn reply, void *arg, struct nd_err *e);
/*
 * Audit entries this daemon found unsealed at its start (a killed daemon's last ones, or
 * a tampered tail): named by its audit.epoch entry, never sealed as its own. False: none.
 */
bool nucleusd__audit_found_at_start(struct nucleusd *nd, uint64_t *from, uint64_t *to);

/*
 * POST /v1/db/check: PRAGMA quick_check on the maintenance thread. 0: @reply gets
 * {"ok", "problems": [...], "backup": {"path", "at_us"} or null} later; -EACCES when
 * @who may not check, -EAGAIN when the maintenance queue is full.
 */
int nucleusd__db_check(struct nucleusd *nd, const struct nd_caller *who, nd_reply_fn reply,
		       void *arg, struct nd_err *e);

int nucleusd__health(struct nucleusd *nd, json_t **ret);
/* Prometheus text exposition of the daemon's counters (malloc'd). */
int nucleusd__metrics(struct nucleusd *nd, char **ret);

/* Called by the backend when a sandbox's VM died: the sandbox becomes 'failed'. */
void nucleusd__sandbox_failed(struct nucleusd *nd, const char *id, const char *reason);

const char *nd_verdict__name(enum nd_verdict v);

/* ---- budgets (nucleusd/spend.c; docs/budget.md) --------------------------------------- */

#define ND_METER_INTERVAL_MS 1000

/*
 * POST /v1/sandboxes/{id}/usage {"key", "model"?, "input_tokens", "output_tokens"}:
 * charges tokens and their price under the client's idempotency key. 0: @ret is
 * {"sandbox", "status": "charged"|"duplicate", "charged": {...}, "spent": {...}}.
 * -EEXIST: the key was used for another report (409). -EDQUOT: the report passes a
 * limit; the budget is then exhausted (audited, committed) and every later call is 402.
 */
int nucleusd__usage(struct nucleusd *nd, const struct nd_caller *who, const char *ref, json_t *req,
		    json_t **ret, struct nd_err *e);
/*
 * The policy's life (policylife.c, docs/api.md): GET /v1/sandboxes/{id}/policy (the policy
 * in force, its versions, the session); POST .../policy/narrow (@policy: profile JSON; the
 * meet, one transaction, audited policy.narrow); POST .../policy/widen: -EACCES
 * widen_refused (audited policy.widen_refused, @ret_denial names the reason) unless
 * @approval is a valid widen approval of a pinned approver key (then audited policy.widen).
 * Both reply with the GET view plus "narrowed"/"widened": {before, given, after, changed,
 * denied_ops}. -EBUSY wrong_state: the sandbox has no open session (stopped).
 */
int nucleusd__policy_show(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			  json_t **ret, struct nd_err *e);
int nucleusd__policy_narrow(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			    json_t *policy, json_t **ret, struct nd_err *e);
int nucleusd__policy_widen(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   json_t *policy, json_t *approval, json_t **ret, json_t **ret_denial,
			   struct nd_err *e);
/* GET /v1/sandboxes/{id}/budget: limits, spent, remaining per kind (budget__view). */
int nucleusd__budget(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		     json_t **ret, struct nd_err *e);
/* The budget kind named by a 402 (code "budget_exhausted", e->budget), or NULL. */
const char *nd_err__budget_kind(const struct nd_err *e);
/* Runs the metering and TTL timer's work now (also run every meter interval). */
void nucleusd__meter_tick(struct nucleusd *nd);

/* ---- the tool catalogue (nucleusd/tools.c; docs/api.md "Tools") ---------------------- */

/*
 * THE list of tools a sandbox can be asked to run: every operation of the policy engine,
 * with the engine operation it is decided as, whether the guest agent performs it, its
 * argument schema and its limits. The API checks a call's args against it before any
 * decision (nd_tool__check: 400 bad_args naming the field); the vmm backend dispatches
 * on it; docs/api.md documents every row (tests/unit/nucleusd/test_tools.c checks that).
 * Constant data: any thread may read it.
 */
enum nd_arg_type {
	ND_ARG_STRING,	/* a string without NUL */
	ND_ARG_INT,	/* an integer in [min, max] */
	ND_ARG_STRINGS, /* a non-empty array of strings without NUL */
	ND_ARG_OBJECT,	/* an object (its content is checked by whoever uses it) */
};

/* One argument; lists end with a NULL name. */
struct nd_tool_arg {
	const char *name;
	enum nd_arg_type type;
	bool required;
	int64_t min, max;	   /* ND_ARG_INT: inclusive bounds */
	const char *const *one_of; /* ND_ARG_STRING: the allowed values (NULL-ended), or NULL */
};

struct nd_tool {
	const char *name;  /* the {name} of POST /v1/sandboxes/{id}/tools/{name} */
	int op;		   /* the policy engine operation it is decided as (enum policy_op) */
	bool guest;	   /* performed by the guest agent; else decided, then 501 */
	bool streams;	   /* may stream its output ("stream": true) */
	size_t result_max; /* guest tools: bytes kept of what the guest returns (per stream) */
	/* Argument schema (guest and daemon tools). Arguments it does not name are left to
	 * the policy engine (e.g. "target") and the backend. NULL: only the engine parses
	 * them. */
	const struct nd_tool_arg *args;
	bool daemon; /* performed by the daemon itself, not a backend (spawn_agent) */
};

extern const struct nd_tool nd_tools[];
extern const size_t nd_n_tools;

/* The catalogue's row for @name, or NULL. */
const struct nd_tool *nd_tool__find(const char *name);
/*
 * Checks @args (an object, or NULL for none) of a call of @name against its schema:
 * 0 when they fit or @name is not a catalogue tool with a schema (the backend answers
 * for those); -EINVAL with code "bad_args" and a message naming the field otherwise.
 */
int nd_tool__check(const char *name, json_t *args, struct nd_err *e);

/* ---- the policy engine for clients (nucleusd/explain.c; docs/api.md, "Policies") ------ */

/*
 * POST /v1/policy/check: checks @policy (a profile or inline policy) with the engine.
 * 0 with @ret {"ok": true}, or {"ok": false, "problem": "$.paths.read[2]: ..."}.
 */
int nucleusd__policy_check(struct nucleusd *nd, json_t *policy, json_t **ret, struct nd_err *e);
/*
 * POST /v1/policy/explain: decides @req's "call" (the engine's call object, {"op", ...})
 * in a fresh session of @req's "profile" (a name in the profiles table) or "policy"
 * (inline), exactly one of them. @ret: {"verdict", "reason", "explanation"}. -EINVAL
 * with unknown_profile, invalid_policy or invalid_call. Nothing is stored or audited.
 */
int nucleusd__policy_explain(struct nucleusd *nd, json_t *req, json_t **ret, struct nd_err *e);

#endif
