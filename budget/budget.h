/* SPDX-License-Identifier: Apache-2.0 */
/*
 * budget: what each sandbox may spend and what it has spent (face of the budget/ module).
 *
 *   limits  per-sandbox limits from JSON (cpu_ms, mem_mib_s, mem_peak_mib, tokens, money)
 *   prices  the price table (per tool call, per 1k tokens by model, per CPU second)
 *   schema  its tables in the daemon's store (budget__schema: budget_limits, budget_ledger,
 *           budget_spent), migrated by the store (nucleusd/store.h) after the core schema
 *   ledger  debits as rows of budget_ledger, written inside the caller's open store
 *           transaction; balances are SUM(amount) per kind (budget_spent, by trigger);
 *           a child sandbox's budget carved out of its parent's and returned (credits)
 *   meter   CPU time (cgroup v2 cpu.stat or /proc/PID/task/ * /stat), RSS (/proc/PID/status
 *           or smaps_rollup), and a sampler turning successive samples into debits
 *   view    limits / spent / remaining as JSON (GET /v1/sandboxes/{id}/budget)
 *
 * Money is integer micro-USD everywhere; no floating point touches it.
 * Errors are negative errno values. The library does not print.
 */
#ifndef NUCLEUS_BUDGET_H
#define NUCLEUS_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

struct store;
struct store_schema;

/* budget/'s tables, for store__open (after the store's core schema). */
extern const struct store_schema budget__schema;

/* ---- kinds and limits ----------------------------------------------------------------- */

/* The ledger kinds; names are the strings stored in budget_ledger.kind. */
enum budget_kind {
	BUDGET_CPU_MS = 0,   /* host CPU time of the VMM, milliseconds */
	BUDGET_MEM_MIB_S,    /* memory integral, MiB x seconds */
	BUDGET_MEM_PEAK_MIB, /* peak RSS, MiB: the ledger holds increments of the high-water mark */
	BUDGET_TOKENS,	     /* model tokens, input + output */
	BUDGET_USD_MICRO,    /* money, micro-USD */
	BUDGET__N_KINDS,
};

/* Largest limit or single debit accepted (keeps every sum far from int64 overflow). */
#define BUDGET_AMOUNT_MAX 1000000000000000LL /* 1e15 */

const char *budget_kind__name(enum budget_kind k);
/* Returns the kind for @name, or -EINVAL. */
int budget_kind__from_name(const char *name);

/* A limit of 0 means "no limit" (a limit given in JSON must be positive). */
struct budget_limits {
	int64_t limit[BUDGET__N_KINDS];
};

/* Error text of the JSON parsers: names the field, e.g. "budget.cpu_ms: expected ...". */
struct budget_err {
	char msg[256];
};

/*
 * Parses limits from a JSON object (the create request's "budget"):
 *   {"cpu_ms": N, "mem_mib_s": N, "mem_peak_mib": N, "tokens": N,
 *    "usd_micro": N | "usd": "D.DDDDDD"}
 * every key optional, every N a positive integer <= BUDGET_AMOUNT_MAX; "usd" is a decimal
 * string with at most 6 fractional digits (exclusive with "usd_micro"). Unknown keys are
 * errors. @field is the path used in messages ("budget"). NULL @json: no limits.
 */
int budget__limits_parse(json_t *json, const char *field, struct budget_limits *ret,
			 struct budget_err *e);
/* The limits as the JSON object budget__limits_parse accepts (only the set ones). */
json_t *budget__limits_to_json(const struct budget_limits *l);

/* Formats micro-USD as a decimal string "D.DDDDDD" (@buf >= 32 bytes). */
void budget__usd_format(int64_t micro, char *buf, size_t len);
/* Parses "D", "D.D" .. "D.DDDDDD" into micro-USD; -EINVAL / -ERANGE. */
int budget__usd_parse(const char *s, int64_t *ret);

/* ---- price table ---------------------------------------------------------------------- */

struct budget_prices;

/*
 * The price table, JSON:
 *   {"tool_call_usd_micro": {"default": N, "<tool>": N, ...},
 *    "models": {"default": {"input_per_1k_usd_micro": N, "output_per_1k_usd_micro": N},
 *               "<model>": {...}},
 *    "cpu_per_s_usd_micro": N}
 * N are integers >= 0. Every key is optional (missing prices are 0); unknown keys are errors.
 */
int budget__prices_parse(json_t *json, const char *field, struct budget_prices **ret,
			 struct budget_err *e);
/* The documented default table (BUDGET_DEFAULT_PRICES). */
int budget__prices_default(struct budget_prices **ret);
void budget__prices_free(struct budget_prices *p);
json_t *budget__prices_to_json(const struct budget_prices *p);

extern const char BUDGET_DEFAULT_PRICES[];

/* Price of one call of @tool (its entry, else "default", else 0). */
int64_t budget__price_tool(const struct budget_prices *p, const char *tool);
/*
 * Price of a token report: ceil((in * input_per_1k + out * output_per_1k) / 1000) for
 * @model's entry (else "default"). Rounds up once per report. -EOVERFLOW past the cap.
 */
int budget__price_tokens(const struct budget_prices *p, const char *model, int64_t in, int64_t out,
			 int64_t *ret);
/* Price of @cpu_ms of CPU: ceil(cpu_ms * cpu_per_s / 1000). */
int budget__price_cpu(const struct budget_prices *p, int64_t cpu_ms, int64_t *ret);

/* ---- ledger --------------------------------------------------------------------------- */

/* Spent per kind (SUM of the ledger rows of one sandbox). */
struct budget_spent {
	int64_t spent[BUDGET__N_KINDS];
};

struct budget_debit {
	enum budget_kind kind;
	/* Amount to debit; for BUDGET_MEM_PEAK_MIB the observed peak (the row is the rise). */
	int64_t amount;
};

enum budget_status {
	BUDGET_CHARGED = 0, /* the rows were written */
	BUDGET_DUPLICATE,   /* this key was charged before: nothing written, see charged[] */
	BUDGET_REFUSED,	    /* would exceed the limit of .exhausted: nothing written */
};

struct budget_result {
	enum budget_status status;
	/* REFUSED: the kind whose limit the debit would pass; otherwise BUDGET__N_KINDS. */
	enum budget_kind exhausted;
	int64_t charged[BUDGET__N_KINDS]; /* rows written (or, DUPLICATE, written originally) */
	struct budget_spent after;	  /* spent per kind after this call */
	/* budget__meter only: kinds whose spent is now >= their limit (bit per kind). */
	unsigned over_mask;
};

/*
 * Check-and-debit, all or nothing, inside the caller's open transaction (store__tx;
 * -EINVAL outside one: BEGIN IMMEDIATE makes the check and the write see the same
 * balance). For each debit, refuses when spent + amount > limit (limit 0 =
 * none): then nothing is written and -EDQUOT is returned with @ret naming the budget.
 * @key (may be NULL) makes the call idempotent per sandbox: a second call with the same
 * key writes nothing, returns 0 and ret->status = BUDGET_DUPLICATE with the original
 * amounts; -EEXIST when the key was used for different kinds or amounts.
 * @ret is filled on 0 and on -EDQUOT. -ENOENT: no such sandbox (foreign key).
 */
int budget__charge_many(struct store *s, const char *sandbox, const struct budget_debit *d,
			size_t n, const char *key, const char *reason,
			const struct budget_limits *limits, struct budget_result *ret);
/* One kind: budget__charge_many with n = 1. */
int budget__charge(struct store *s, const char *sandbox, enum budget_kind kind, int64_t amount,
		   const char *key, const char *reason, const struct budget_limits *limits,
		   struct budget_result *ret);
/*
 * Metered usage (already consumed: CPU, memory): always written, never refused; @ret's
 * over_mask tells which budgets are now exhausted, so the caller pauses the VM. Same
 * transaction and key rules as budget__charge_many.
 */
int budget__meter(struct store *s, const char *sandbox, const struct budget_debit *d, size_t n,
		  const char *key, const char *reason, const struct budget_limits *limits,
		  struct budget_result *ret);
/*
 * After a refused *report* of usage that already happened (tokens the model used): debits
 * what is left of @kind's limit (one row, reason @reason, no key), so spent == limit and
 * budget__check refuses the sandbox's later calls. Writes nothing when the kind has no
 * limit or nothing is left. Same transaction rule; @ret as for budget__meter.
 * budget__charge itself never does this: a refused charge writes nothing.
 */
int budget__exhaust(struct store *s, const char *sandbox, enum budget_kind kind, const char *reason,
		    const struct budget_limits *limits, struct budget_result *ret);
/* SUM(amount) per kind of @sandbox. Works in or out of a transaction. */
int budget__spent(struct store *s, const char *sandbox, struct budget_spent *ret);
/*
 * Gate for a new tool call: -EDQUOT (ret_kind = the first exhausted kind) when any
 * limited kind has spent >= limit, else 0.
 */
int budget__check(struct store *s, const char *sandbox, const struct budget_limits *limits,
		  enum budget_kind *ret_kind);

/* The kinds a child's budget is carved from: every kind but mem_peak_mib (a peak, not a sum). */
bool budget_kind__carved(enum budget_kind k);
/*
 * Delegation, inside the caller's transaction (as budget__charge_many; -EINVAL outside
 * one, or when @parent and @child are the same sandbox).
 * Carve: debits @parent, for each carved kind with a @child_limits limit, by that limit
 * (reason and key "carve:CHILD"), all or nothing: -EDQUOT with @ret->exhausted naming
 * the kind when @parent_limits do not leave that much (nothing written); a kind the
 * parent does not limit is carved all the same. A second carve for the same child writes
 * nothing (0, BUDGET_DUPLICATE, the first one's amounts in @ret->charged); -EEXIST when
 * it asks for other kinds or amounts. A child with no carved limit: nothing written.
 * Return: at the child's end, credits @parent with what @child did not spend of each
 * kind carved for it: the carve row's amount minus the child's spent (budget__spent),
 * at least 0, as negative rows, reason and key "return:CHILD", one row per carved kind
 * (0 included, so that the return is made once); the amounts returned per kind in
 * @ret->charged (as positive numbers). Only once per child: a second return writes
 * nothing (0, BUDGET_DUPLICATE, the first one's amounts in @ret->charged). A kind not
 * carved (no row "carve:CHILD") is not returned; no carve at all: nothing written.
 * Both: @ret->after is @parent's spent afterwards; a carve's -ENOENT: no such parent.
 * The keys "carve:..." and "return:..." are delegation's: budget__charge* and
 * budget__meter refuse a client key beginning with either (-EINVAL).
 */
int budget__carve(struct store *s, const char *parent, const char *child,
		  const struct budget_limits *parent_limits,
		  const struct budget_limits *child_limits, struct budget_result *ret);
int budget__return(struct store *s, const char *parent, const char *child,
		   struct budget_result *ret);

/* budget_limits rows of @sandbox (written with the sandbox, in the caller's transaction). */
int budget__limits_save(struct store *s, const char *sandbox, const struct budget_limits *l);
int budget__limits_load(struct store *s, const char *sandbox, struct budget_limits *ret);

/* ---- view ----------------------------------------------------------------------------- */

/*
 * The GET /v1/sandboxes/{id}/budget body (docs/budget.md); each kind also has "carved":
 * what the sandbox's carves for children not yet returned hold (part of "spent"; 0 for
 * mem_peak_mib), and usd_micro "carved_usd".
 */
int budget__view(struct store *s, const char *sandbox, const struct budget_limits *limits,
		 json_t **ret);

/* ---- metering ------------------------------------------------------------------------- */

/* "usage_usec N" of a cgroup v2 cpu.stat text. */
int budget__parse_cpu_stat(const char *text, uint64_t *ret_usec);
/* utime + stime (clock ticks) of a /proc/PID/stat text; the comm may hold ' ' and ')'. */
int budget__parse_proc_stat(const char *text, uint64_t *ret_ticks);
/* "LABEL: N kB" of /proc/PID/status (label "VmRSS") or smaps_rollup ("Rss"). */
int budget__parse_kb_field(const char *text, const char *label, uint64_t *ret_kib);

/* CPU time of the cgroup v2 directory @cgroup (reads cpu.stat). */
int budget__cpu_usec_cgroup(const char *cgroup, uint64_t *ret_usec);
/* CPU time of all threads of @pid: sum over @proc/PID/task/ * /stat (@proc NULL = "/proc"). */
int budget__cpu_usec_pid(const char *proc, pid_t pid, uint64_t *ret_usec);
/* RSS of @pid: VmRSS of status, else Rss of smaps_rollup (@proc NULL = "/proc"). */
int budget__rss_kib_pid(const char *proc, pid_t pid, uint64_t *ret_kib);

struct budget_sample {
	uint64_t cpu_usec; /* cumulative CPU time */
	uint64_t rss_kib;  /* resident memory now */
	int64_t t_us;	   /* monotonic time of the sample, from the caller */
};

/* What a sample adds since the previous one, in whole ledger units. */
struct budget_delta {
	int64_t cpu_ms;	   /* CPU ms to debit (remainders carried to later samples) */
	int64_t mem_mib_s; /* MiB x s, trapezoid between samples (remainder carried) */
	int64_t peak_mib;  /* highest RSS seen so far, MiB rounded up (absolute) */
};

/* Turns successive samples into debits. Plain data: zero it (or _init) to start. */
struct budget_sampler {
	bool primed;
	struct budget_sample last;
	uint64_t cpu_rem_usec; /* CPU time not yet debited (< 1 ms) */
	uint64_t mem_rem;      /* KiB x us x 2 not yet debited (< 1 MiB s) */
	uint64_t peak_kib;
};

void budget_sampler__init(struct budget_sampler *s);
/*
 * Feeds one sample. The first sample only sets the baseline (all deltas 0, except the
 * peak). A CPU counter that goes backwards (a new process or cgroup) counts from 0;
 * time that does not advance adds no memory integral.
 */
void budget_sampler__step(struct budget_sampler *s, const struct budget_sample *now,
			  struct budget_delta *ret);

#endif
