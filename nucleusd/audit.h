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

/* The daemon seals the audit log this long after an entry commits (audit__seal). */
#define ND_AUDIT_SEAL_MS 50

/*
 * Loads the daemon's Ed25519 key from @dir/audit.key, generating it (mode 0600) on first
 * start. Refuses a key file that group or others can read (-EPERM).
 */
int audit__key_load(const char *dir, struct audit_key **ret);
void audit__key_free(struct audit_key *k);
/* Hex of the public key (64 chars + NUL). */
void audit__key_public_hex(const struct audit_key *k, char out[65]);

/*
 * Makes @k the writer of @s's audit log: reads the chain's head and newest seal, then
 * follows @s's transactions (store__on_tx_end) so that what it seals is the head it
 * committed, never one read back. @unsealed (may be NULL) runs after a commit that
 * leaves entries unsealed when none were: the daemon arms its seal timer there.
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
 * one: -EINVAL). 1 when it sealed, 0 when nothing was unsealed.
 */
int audit__seal(struct store *s, struct audit_key *k);
/* Committed entries not sealed yet. */
uint64_t audit__unsealed(const struct audit_key *k);

struct audit_verify {
	uint64_t entries;	 /* entries checked */
	uint64_t seals;		 /* seals that matched the chain */
	uint64_t sealed_through; /* seq of the newest matching seal (0: none) */
	uint64_t first_bad;	 /* 0 when the log is intact, else the first bad seq */
	char problem[96];	 /* what is wrong with first_bad */
};

/*
 * Walks the whole chain and its seals. Returns 0 when it could check (see
 * ret->first_bad). Entries after sealed_through are intact as a chain but not yet
 * signed (the newest ND_AUDIT_SEAL_MS, or what a killed daemon left).
 */
int audit__verify(struct store *s, const struct audit_key *k, struct audit_verify *ret);

/* Entries (of one sandbox, or all when @sandbox is NULL) with seq > @after, oldest first. */
int audit__list(struct store *s, const char *sandbox, uint64_t after, unsigned limit, json_t **ret);

#endif
