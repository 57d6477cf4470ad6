/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log (nucleusd/audit.c): internal to the nucleusd/ module, not part of
 * nucleusd.h. Its entries live in the daemon's store (nucleusd/store.h) and are
 * appended inside the store transaction of the effect they record.
 */
#ifndef NUCLEUS_NUCLEUSD_AUDIT_H
#define NUCLEUS_NUCLEUSD_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "nucleusd/store.h"

struct audit_key;
struct signer;

/* The daemon seals the audit log this long after an entry commits (audit__seal). */
#define ND_AUDIT_SEAL_MS 50

/*
 * The daemon's Ed25519 key @dir/audit.key, in nucleus-signer (the executable @signer,
 * nucleusd/signer.h), which loads it, generating it (mode 0600) on first start, and
 * announces its public half; the secret half never enters this process. Refuses a key
 * file that group or others can read (-EPERM); -ENOEXEC when @signer is not one. @m:
 * where the signer is started (nucleusd/monitor.h; NULL: by this process).
 */
struct nd_monitor;
int audit__key_load(const char *dir, const char *signer, struct nd_monitor *m,
		    struct audit_key **ret);
/*
 * The public half of @dir/audit.key only, read from the file without the signer and
 * without reading the secret seed: a key to verify with (offline checks, tools);
 * audit__seal with it is -ENOKEY.
 */
int audit__key_load_public(const char *dir, struct audit_key **ret);
/* Ends its signer, if any. */
void audit__key_free(struct audit_key *k);
/* Hex of the public key (64 chars + NUL). */
void audit__key_public_hex(const struct audit_key *k, char out[65]);
/* The key's signer (signer.h: its pid, restarts, last problem); NULL: verify only. */
const struct signer *audit__signer(const struct audit_key *k);

/*
 * Makes @k the writer of @s's audit log: reads the chain's head and the newest seal of
 * @k that matches the stored chain (S), then follows @s's transactions
 * (store__on_tx_end) so that what it seals is the head it committed, never one read
 * back. Entries after S were not written by this writer: they are never sealed
 * silently; attach appends (in a transaction of its own) an "audit.epoch" entry whose
 * body names them {"reason", "unsealed_from", "unsealed_to"}, so that audit__verify
 * reports them as not covered forever after (audit__unsealed() is then > 0: seal).
 * @unsealed (may be NULL) runs after a commit that leaves entries unsealed when none
 * were: the daemon arms its seal timer there.
 */
int audit__attach(struct audit_key *k, struct store *s, void (*unsealed)(void *arg), void *arg);

/*
 * Appends one entry, hash-chained (not signed: see audit__seal). MUST be called inside
 * an open store transaction (store__tx) on the store @k is attached to, so the entry
 * commits or rolls back with the effect it records (-EINVAL otherwise). @sandbox may be
 * NULL (daemon-wide event), @actor_uid < 0 when there is no peer. @body must be a JSON
 * object; it is stored in canonical form (sorted keys, compact). -EBADMSG when the log's
 * last entry is not the head @k committed (written or removed behind its back): the
 * writer stops rather than chain onto entries it did not write.
 */
int audit__append(struct store *s, struct audit_key *k, const char *sandbox, int64_t actor_uid,
		  const char *kind, json_t *body, uint64_t *ret_seq);

/*
 * Signs the committed head into audit_seals in a transaction of its own (not inside
 * one: -EINVAL). 1 when it sealed, 0 when nothing was unsealed. The signature is the
 * signer's (signer__seal): its failures (-EPIPE, -ETIMEDOUT, -EBADMSG, -EKEYREJECTED;
 * the signer is started again by a later call, at most once a second) leave the entries
 * unsealed, to be sealed by a later call.
 */
int audit__seal(struct store *s, struct audit_key *k);
/* The range attach found unsealed and named in its audit.epoch entry; false: none. */
bool audit__found_at_start(const struct audit_key *k, uint64_t *from, uint64_t *to);
/* Committed entries not sealed yet. */
uint64_t audit__unsealed(const struct audit_key *k);

/* A range of seqs, both ends included. */
struct audit_range {
	uint64_t from, to;
};

/* Ranges kept by audit__verify; more are merged into a neighbour (reported wider). */
#define AUDIT_RANGES 16

struct audit_verify {
	uint64_t entries;	 /* entries checked */
	uint64_t seals;		 /* seals that matched the chain */
	uint64_t sealed_through; /* seq of the newest matching seal (0: none) */
	uint64_t intact_through; /* seq of the last entry that checked intact */
	uint64_t first_bad;	 /* 0 when the log is intact, else the first bad seq */
	/* Entries a daemon found unsealed at its start (from the audit.epoch entries), merged. */
	uint64_t unsealed_at_start;
	/* Sealed while the daemon knew them: 1..sealed_through less the found ranges. */
	struct audit_range covered[AUDIT_RANGES + 1];
	unsigned n_covered;
	/* The found ranges, then the intact tail after sealed_through. */
	struct audit_range not_covered[AUDIT_RANGES + 1];
	unsigned n_not_covered;
	bool corrupt;	   /* the database could not be read at first_bad */
	char problem[160]; /* what is wrong with first_bad, or "intact" (and what is not covered) */
};

/*
 * Walks the whole chain and its seals. Returns 0 when it could check (see
 * ret->first_bad); a database page it cannot read (SQLITE_CORRUPT/NOTADB) is reported
 * the same way (ret->corrupt, first_bad = the first seq it could not read). Entries after
 * sealed_through are intact as a chain but not yet signed (the newest ND_AUDIT_SEAL_MS);
 * entries a daemon found unsealed at its start are signed only by seals made after
 * it found them: not_covered lists both.
 */
int audit__verify(struct store *s, const struct audit_key *k, struct audit_verify *ret);

/* Entries (of one sandbox, or all when @sandbox is NULL) with seq > @after, oldest first. */
int audit__list(struct store *s, const char *sandbox, uint64_t after, unsigned limit, json_t **ret);
/* Every entry of @sandbox whose kind matches the GLOB @kind_glob (e.g. "policy.*"), oldest first.
 */
int audit__list_kinds(struct store *s, const char *sandbox, const char *kind_glob, json_t **ret);

#endif
