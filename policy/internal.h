/* SPDX-License-Identifier: Apache-2.0 */
/* policy - private structures shared by the files of the module (not a public face). */
#ifndef NUCLEUS_POLICY_INTERNAL_H
#define NUCLEUS_POLICY_INTERNAL_H

#include <jansson.h>

#include "policy/policy.h"

#define POLICY_MAX_SEGS	 256 /* deeper paths / longer argv are refused */
#define POLICY_UNLIMITED UINT64_MAX
#define POLICY_NEVER	 UINT32_MAX

/*
 * A set element type. Elements of one type form a forest under leq ("tree order"):
 * two elements with a common lower bound are comparable, so glb is one of the two or none
 * (globs, hosts); egress rules are a host tree times port sets, glb = componentwise.
 */
struct pset_ops {
	bool (*leq)(const void *a, const void *b);
	int (*glb)(const void *a, const void *b, void **ret); /* 0 = none, 1 = *ret, <0 err */
	int (*cmp)(const void *a, const void *b);
	void (*free)(void *e);
	const char *(*text)(const void *e);
};

/* Down-set lattice element: `all` (top) or a sorted antichain of maximal elements. */
struct pset {
	bool all;
	uint32_t n;
	void **e;
	const struct pset_ops *ops;
};

void pset__init(struct pset *s, const struct pset_ops *ops, bool all);
void pset__clear(struct pset *s);
int pset__add(struct pset *s, void *e); /* takes ownership; call pset__normalize after */
void pset__normalize(struct pset *s);
int pset__meet(const struct pset *a, const struct pset *b, struct pset *ret);
int pset__join(const struct pset *a, const struct pset *b, struct pset *ret);
bool pset__leq(const struct pset *a, const struct pset *b);
bool pset__eq(const struct pset *a, const struct pset *b);
int pset__copy(const struct pset *a, struct pset *ret);
json_t *pset__to_json(const struct pset *s);

/* Globs: paths ('/' separated, absolute) and commands (argv tokens, space separated). */
enum { GLOB_PATH, GLOB_CMD, GLOB_REF, SET_EGRESS };
struct span {
	const char *s;
	uint32_t len;
};
struct gseg {
	const char *s;
	uint32_t len;
	uint8_t kind; /* GSEG_LIT, GSEG_GLOB, GSEG_STARSTAR */
};
enum { GSEG_LIT, GSEG_GLOB, GSEG_STARSTAR };
struct glob {
	char *text;
	int first; /* first byte of a literal first segment, or -1: a cheap pre-filter */
	uint32_t nseg;
	struct gseg *seg;
};
extern const struct pset_ops glob_ops;
int glob__compile(const char *text, int kind, struct glob **ret, const char **why);
bool glob__match(const struct glob *g, const struct span *subj, uint32_t n);
bool glob__seg_match(const char *p, size_t plen, const char *s, size_t slen);
int path__split(const char *path, struct span *out, uint32_t max); /* <0: not canonical */
int ref__split(const char *ref, struct span *out, uint32_t max);
const struct glob *glob__set_match(const struct pset *s, const struct span *subj, uint32_t n);

/* Egress rules: host exact / *.suffix / CIDR / "*" with a port set. */
struct prange {
	uint16_t lo, hi;
};
enum { EH_ANY, EH_EXACT, EH_SUFFIX, EH_CIDR4, EH_CIDR6 };
struct erule {
	char *text; /* canonical rendering */
	uint8_t kind;
	uint8_t plen;
	char *host; /* exact / suffix (without "*."), lower case */
	uint8_t addr[16];
	uint32_t nports;
	struct prange *ports;
};
extern const struct pset_ops erule_ops;
int erule__parse(const char *text, struct erule **ret, const char **why);
struct egress_subject {
	const char *host; /* lower-cased name without trailing dot, if a name */
	uint32_t host_len;
	int family; /* 0 name, 4, 6 */
	uint8_t addr[16];
	uint16_t port;
};
int egress__subject(const char *host, size_t len, uint16_t port, struct egress_subject *out,
		    char *buf, size_t buflen);
const struct erule *egress__match(const struct pset *s, const struct egress_subject *subj);
int url__parse(const char *url, struct egress_subject *out, char *buf, size_t buflen,
	       bool *has_query);
int remote__parse(const char *remote, struct egress_subject *out, char *buf, size_t buflen);

/* The policy product. */
struct policy {
	uint8_t level[POLICY_OP_COUNT];
	struct pset read, write, path_deny; /* paths */
	struct pset cmd, cmd_deny, interp;  /* commands */
	struct pset egress;		    /* egress rules */
	struct pset refs;		    /* git refs that may be pushed */
	uint64_t max_calls, max_net, max_spawn;
	int64_t not_before, not_after;
	uint8_t uninhabitable;	   /* POLICY_DENY or POLICY_ASK */
	uint32_t quarantine_after; /* POLICY_NEVER = never */
	char *name;		   /* informational; not part of the order */
};

struct policy *policy__alloc(void);
int policy__from_json(json_t *root, const char *path, struct policy **ret,
		      struct policy_error *err);
int level__from_name(const char *name);
json_t *policy__json(const struct policy *p, bool with_name);

/* Classifier. */
enum cmd_class { CMD_PLAIN, CMD_INTERP, CMD_NET };
struct cmd_info {
	uint32_t first; /* index in argv of the effective program after unwrapping */
	struct span tok[POLICY_MAX_SEGS]; /* basename(prog), args... */
	uint32_t ntok;
	uint8_t cls;
	uint8_t legs;
};
int classify__command(const char *const *argv, size_t argc, struct cmd_info *out);
unsigned classify__legs(const struct policy_call *call, const struct cmd_info *ci, bool has_query);
bool classify__secret_path(const struct span *seg, uint32_t n);
bool classify__is_net_op(enum policy_op op);
bool classify__table_sorted(void);

/* Sessions. */
struct nonce_entry {
	uint8_t nonce[POLICY_NONCE_LEN];
	int64_t expires;
};

struct policy_session {
	uint8_t id[POLICY_SESSION_ID_LEN];
	struct policy *env;
	uint8_t env_digest[POLICY_DIGEST_LEN];
	char *env_text; /* policy__json(env, true) as compact sorted text; NULL: not made yet */
	unsigned legs;
	bool quarantined;
	uint64_t seq;
	uint32_t suspicion;
	uint64_t n_calls, n_net, n_spawn;
	uint8_t (*keys)[32];
	size_t nkeys;
	struct nonce_entry *nonces;
	size_t nnonces;
};

enum policy_reason approval__check(struct policy_session *s, const struct policy_call *call,
				   const uint8_t digest[POLICY_DIGEST_LEN], int64_t now);
/* A widen approval (policy__widen_message) of @s for the policy of @digest. */
enum policy_reason approval__check_widen(struct policy_session *s, const struct policy_approval *a,
					 const uint8_t digest[POLICY_DIGEST_LEN], int64_t now);
int session__quarantine(struct policy_session *s);
/* After a narrowing: an operation whose allow-set is empty becomes deny (visibly). */
void policy__deny_empty(struct policy *p);
/* Makes @p (owned) the session's envelope: digest, and drops the cached envelope text. */
void session__set_envelope(struct policy_session *s, struct policy *p);
int session__remember_nonce(struct policy_session *s, const uint8_t *nonce, int64_t expires);

/* JSON helpers. */
void perr(struct policy_error *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* json_dumps(@j, @flags) into *@ret; takes @j (NULL is out of memory). 0 or -ENOMEM. */
int json__dump_take(json_t *j, size_t flags, char **ret);
void hex__encode(const uint8_t *in, size_t n, char *out);
int hex__decode(const char *in, uint8_t *out, size_t n);

#endif
