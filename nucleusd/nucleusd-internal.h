/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the nucleusd/ sources; not part of the module's face. */
#ifndef NUCLEUS_NUCLEUSD_INTERNAL_H
#define NUCLEUS_NUCLEUSD_INTERNAL_H

#include "nucleusd/nucleusd.h"

enum {
	SB_CREATING = 1u << 0,
	SB_RUNNING = 1u << 1,
	SB_PAUSED = 1u << 2,
	SB_STOPPED = 1u << 3,
	SB_FAILED = 1u << 4,
};

/* Upper bounds (ms) of the boot latency histogram buckets; +Inf is implied. */
#define ND_BOOT_BUCKETS 10

struct nd_metrics {
	uint64_t boots_ok, boots_failed, failures;
	uint64_t boot_bucket[ND_BOOT_BUCKETS + 1]; /* non-cumulative; last = +Inf */
	uint64_t boot_ms_sum;
	uint64_t decisions[3]; /* by enum nd_verdict */
	uint64_t tool_ok, tool_failed;
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
};

struct nucleusd {
	struct event_base *base;
	struct store *store;
	struct audit_key *key;
	struct nd_backend *be;
	struct nd_op *ops; /* pending, freed with the daemon */
	struct nd_metrics m;
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

int64_t nd__now_us(void);
int nd__transition(struct transition *t, struct nd_err *e);

int sb_row__load(struct nucleusd *nd, const char *ref, struct sb_row *r, struct nd_err *e);
void sb_row__clear(struct sb_row *r);
json_t *sb_row__json(const struct sb_row *r);
void sb_row__info(const struct sb_row *r, struct nd_sandbox_info *info);

struct nd_op *nd_op__new(struct nucleusd *nd, const char *id, nd_reply_fn reply, void *arg);
void nd_op__free(struct nd_op *op);

/* Boots left over from before a restart: adopt or fail each (daemon.c). */
int nd__recover(struct nucleusd *nd);

#endif
