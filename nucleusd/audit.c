// SPDX-License-Identifier: Apache-2.0
/*
 * The audit log: append-only, hash-chained, sealed.
 *
 *   canonical = "nucleus-audit-v1" 0x00 || be64(seq) || be64(at_us) || be64(actor_uid)
 *               || lp(sandbox_id) || lp(kind) || lp(body)        lp(x) = be32(len) || x
 *   hash      = BLAKE2b-256(prev_hash || canonical)     prev_hash of seq 1 = 32 zero bytes
 *   seal      = (seq, hash, Ed25519(BLAKE2b-256("nucleus-audit-head-v1" 0x00 || be64(seq)
 *               || hash))) by the daemon's key, in audit_seals
 *
 * The secret half of the key is never in this process: nucleus-signer holds it and
 * signs the head message it builds itself from (seq, hash) (nucleusd/signer.h); the
 * daemon keeps the public half, which is all verify needs.
 *
 * An entry is appended in the transaction of its effect and only hashed there; a
 * signature (16 us here) in every transaction was a third of the gate's latency. The
 * daemon seals the head it committed (never the one it reads back) within
 * ND_AUDIT_SEAL_MS, in a transaction of its own: a seal at seq S signs every entry up to
 * S through the chain. Editing, reordering or deleting an entry breaks the chain at that
 * entry; re-hashing the chain after it (without the key) no longer matches the next
 * seal; deleting sealed entries at the end leaves a seal past the last entry.
 * A writer never seals entries it did not commit without saying so: entries after the
 * newest matching seal at attach are named by an "audit.epoch" entry (chained, then
 * sealed), and verify reports them as not covered by a seal made while they were known.
 * body is stored as the exact canonical JSON text that was hashed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/audit.h"
#include "nucleusd/clock.h"
#include "nucleusd/nucleusd.h"
#include "nucleusd/signer.h"

#define HASH_LEN crypto_generichash_BYTES /* 32 */
#define SIG_LEN	 crypto_sign_BYTES	  /* 64 */

struct audit_key {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	/* nucleus-signer, which holds the secret half; NULL: a key to verify with only */
	struct signer *signer;

	/* The writer's side (audit__attach): the head it committed and what it sealed. */
	struct store *store;
	bool staged; /* an entry appended in the open transaction */
	uint64_t staged_seq, head_seq, sealed_seq;
	uint64_t found_from, found_to; /* named by attach's audit.epoch (0: none) */
	unsigned char staged_hash[HASH_LEN], head_hash[HASH_LEN];
	void (*unsealed)(void *arg);
	void *unsealed_arg;
};

_Static_assert(HASH_LEN == SIGNER_HASH_LEN && SIG_LEN == SIGNER_SIG_LEN &&
		       crypto_sign_PUBLICKEYBYTES == SIGNER_PK_LEN,
	       "the signer's sizes");

static int key_new(const char *dir, char path[4096], struct audit_key **ret)
{
	if (sodium_init() < 0)
		return -EIO;
	if (snprintf(path, 4096, "%s/audit.key", dir) >= 4096)
		return -ENAMETOOLONG;
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

int audit__key_load(const char *dir, const char *signer, struct nd_monitor *m,
		    struct audit_key **ret)
{
	struct audit_key *k = NULL;
	char path[4096];
	int r;

	r = key_new(dir, path, &k);
	if (r == 0)
		r = signer__start(m, signer, path, &k->signer);
	if (r < 0) {
		free(k);
		return r;
	}
	memcpy(k->pk, signer__pk(k->signer), sizeof(k->pk));
	*ret = k;
	return 0;
}

int audit__key_load_public(const char *dir, struct audit_key **ret)
{
	struct audit_key *k = NULL;
	char path[4096];
	int r;

	r = key_new(dir, path, &k);
	if (r == 0)
		r = signer__key_public(path, k->pk);
	if (r < 0) {
		free(k);
		return r;
	}
	*ret = k;
	return 0;
}

void audit__key_free(struct audit_key *k)
{
	if (!k)
		return;
	signer__free(k->signer);
	free(k);
}

void audit__key_public_hex(const struct audit_key *k, char out[65])
{
	sodium_bin2hex(out, 65, k->pk, sizeof(k->pk));
}

const struct signer *audit__signer(const struct audit_key *k)
{
	return k ? k->signer : NULL;
}

/* ---- canonical bytes ---- */

struct canon {
	crypto_generichash_state st;
};

static void put_be64(struct canon *c, uint64_t v)
{
	unsigned char b[8];

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)(v & 0xff);
	crypto_generichash_update(&c->st, b, sizeof(b));
}

static void put_lp(struct canon *c, const void *data, size_t len)
{
	unsigned char b[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
			      (unsigned char)(len >> 8), (unsigned char)len};

	crypto_generichash_update(&c->st, b, sizeof(b));
	if (len)
		crypto_generichash_update(&c->st, data, len);
}

struct entry {
	uint64_t seq;
	int64_t at_us;
	int64_t actor_uid;
	const char *sandbox; /* NULL = none (hashed as length 0xffffffff) */
	const char *kind;
	const char *body;
	size_t body_len;
	const unsigned char *prev;
};

static void entry_hash(const struct entry *e, unsigned char out[HASH_LEN])
{
	static const char tag[] = "nucleus-audit-v1";
	struct canon c;
	static const unsigned char none[4] = {0xff, 0xff, 0xff, 0xff};

	crypto_generichash_init(&c.st, NULL, 0, HASH_LEN);
	crypto_generichash_update(&c.st, e->prev, HASH_LEN);
	crypto_generichash_update(&c.st, (const unsigned char *)tag, sizeof(tag)); /* + NUL */
	put_be64(&c, e->seq);
	put_be64(&c, (uint64_t)e->at_us);
	put_be64(&c, (uint64_t)e->actor_uid);
	if (e->sandbox)
		put_lp(&c, e->sandbox, strlen(e->sandbox));
	else
		crypto_generichash_update(&c.st, none, sizeof(none));
	put_lp(&c, e->kind, strlen(e->kind));
	put_lp(&c, e->body, e->body_len);
	crypto_generichash_final(&c.st, out, HASH_LEN);
}

/* ---- append ---- */

static int last_entry(struct store *s, uint64_t *seq, unsigned char hash[HASH_LEN])
{
	static const char sql[] = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r = -EBADMSG;
		if (sqlite3_column_bytes(st, 1) == HASH_LEN) {
			*seq = (uint64_t)sqlite3_column_int64(st, 0);
			memcpy(hash, sqlite3_column_blob(st, 1), HASH_LEN);
			r = 0;
		}
	} else if (rc == SQLITE_DONE) {
		*seq = 0;
		memset(hash, 0, HASH_LEN);
	} else {
		r = store__errno(rc);
	}
	store__stmt_done(st);
	return r;
}

static int insert_entry(struct store *s, const struct entry *e, const unsigned char *hash)
{
	static const char sql[] = "INSERT INTO audit_log(seq, at_us, sandbox_id, actor_uid, "
				  "kind, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)";
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	/* the first failure is the one reported */
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)e->seq);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, e->at_us);
	if (rc == SQLITE_OK && e->sandbox)
		rc = sqlite3_bind_text(st, 3, e->sandbox, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && e->actor_uid >= 0)
		rc = sqlite3_bind_int64(st, 4, e->actor_uid);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 5, e->kind, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, e->body, (int)e->body_len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 7, e->prev, HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 8, hash, HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = store__errno(rc);
	store__stmt_done(st);
	return r;
}

int audit__append(struct store *s, struct audit_key *k, const char *sandbox, int64_t actor_uid,
		  const char *kind, json_t *body, uint64_t *ret_seq)
{
	unsigned char prev[HASH_LEN], hash[HASH_LEN];
	struct entry e = {0};
	char *text;
	int r;

	if (!s || !k || !kind || !json_is_object(body) || k->store != s)
		return -EINVAL;
	if (!store__in_tx(s))
		return -EINVAL; /* an entry belongs to the transaction of its effect */
	text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (!text)
		return -ENOMEM;
	r = last_entry(s, &e.seq, prev);
	if (r < 0)
		goto out;
	/* Entries only this writer appends: anything else means the log was changed. */
	r = -EBADMSG;
	if (!k->staged && (e.seq != k->head_seq || memcmp(prev, k->head_hash, HASH_LEN) != 0))
		goto out;
	e.seq++;
	e.at_us = nd_clock__wall_us();
	e.actor_uid = actor_uid < 0 ? -1 : actor_uid;
	e.sandbox = sandbox;
	e.kind = kind;
	e.body = text;
	e.body_len = strlen(text);
	e.prev = prev;
	entry_hash(&e, hash);
	r = insert_entry(s, &e, hash);
	if (r < 0)
		goto out;
	k->staged = true;
	k->staged_seq = e.seq;
	memcpy(k->staged_hash, hash, HASH_LEN);
	if (ret_seq)
		*ret_seq = e.seq;
out:
	free(text);
	return r;
}

/* ---- seals ---- */

static void tx_end(void *arg, bool committed)
{
	struct audit_key *k = arg;
	bool was_sealed = k->head_seq == k->sealed_seq;

	if (committed && k->staged) {
		k->head_seq = k->staged_seq;
		memcpy(k->head_hash, k->staged_hash, HASH_LEN);
		if (was_sealed && k->unsealed)
			k->unsealed(k->unsealed_arg);
	}
	k->staged = false;
}

static bool seal_signed(const struct audit_key *k, uint64_t seq, const void *hash, int hash_len,
			const void *sig, int sig_len)
{
	unsigned char msg[HASH_LEN];

	if (hash_len != HASH_LEN || sig_len != SIG_LEN)
		return false;
	signer__head_message(seq, hash, msg);
	return crypto_sign_verify_detached(sig, msg, sizeof(msg), k->pk) == 0;
}

/*
 * The newest seal at or before @head signed by @k whose hash is the stored entry's at
 * its seq (0: none). Seals past the head, forged or not matching are passed over here;
 * audit__verify reports them.
 */
static int newest_matching_seal(struct store *s, const struct audit_key *k, uint64_t head,
				uint64_t *ret)
{
	static const char sql[] = "SELECT s.seq, s.hash, s.sig, l.hash FROM audit_seals s "
				  "JOIN audit_log l ON l.seq = s.seq WHERE s.seq <= ?1 "
				  "ORDER BY s.seq DESC";
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	*ret = 0;
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)head);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		uint64_t seq;

		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		seq = (uint64_t)sqlite3_column_int64(st, 0);
		if (seal_signed(k, seq, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
				sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2)) &&
		    sqlite3_column_bytes(st, 3) == HASH_LEN &&
		    memcmp(sqlite3_column_blob(st, 1), sqlite3_column_blob(st, 3), HASH_LEN) == 0) {
			*ret = seq;
			break;
		}
	}
	r = rc == SQLITE_ROW ? 0 : store__errno(rc);
	store__stmt_done(st);
	return r;
}

#define EPOCH_KIND "audit.epoch"

struct epoch_tx {
	struct audit_key *k;
	uint64_t from, to;
};

static int epoch_tx(struct store *s, void *arg)
{
	struct epoch_tx *x = arg;
	json_t *body;
	int r;

	body = json_pack("{ss sI sI}", "reason", "entries found unsealed at start", "unsealed_from",
			 (json_int_t)x->from, "unsealed_to", (json_int_t)x->to);
	if (!body)
		return -ENOMEM;
	r = audit__append(s, x->k, NULL, -1, EPOCH_KIND, body, NULL);
	json_decref(body);
	return r;
}

int audit__attach(struct audit_key *k, struct store *s, void (*unsealed)(void *arg), void *arg)
{
	uint64_t seq, sealed;
	unsigned char hash[HASH_LEN];
	int r;

	if (!k || !s || store__in_tx(s))
		return -EINVAL;
	r = last_entry(s, &seq, hash);
	if (r < 0)
		return r;
	r = newest_matching_seal(s, k, seq, &sealed);
	if (r < 0)
		return r;
	k->store = s;
	k->staged = false;
	k->head_seq = seq;
	memcpy(k->head_hash, hash, HASH_LEN);
	k->sealed_seq = sealed;
	k->found_from = k->found_to = 0;
	k->unsealed = unsealed;
	k->unsealed_arg = arg;
	store__on_tx_end(s, tx_end, k);
	if (sealed < seq) {
		/*
		 * Entries this writer did not commit (a killed daemon's last ones, or a tail
		 * rewritten with its seals deleted): a seal covers them only from here on,
		 * and the epoch entry (chained, then sealed) says so for good.
		 */
		struct epoch_tx x = {k, sealed + 1, seq};

		r = store__tx(s, epoch_tx, &x);
		if (r == 0) {
			k->found_from = x.from;
			k->found_to = x.to;
		}
	}
	return r;
}

bool audit__found_at_start(const struct audit_key *k, uint64_t *from, uint64_t *to)
{
	*from = k->found_from;
	*to = k->found_to;
	return k->found_from != 0;
}

uint64_t audit__unsealed(const struct audit_key *k)
{
	return k && k->head_seq > k->sealed_seq ? k->head_seq - k->sealed_seq : 0;
}

struct seal_tx {
	uint64_t seq;
	unsigned char hash[HASH_LEN], sig[SIG_LEN];
};

static int seal_tx(struct store *s, void *arg)
{
	static const char sql[] = "INSERT INTO audit_seals(seq, hash, sig, at_us) VALUES (?,?,?,?)";
	struct seal_tx *x = arg;
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)x->seq);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 2, x->hash, HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 3, x->sig, SIG_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, nd_clock__wall_us());
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = store__errno(rc);
	store__stmt_done(st);
	return r;
}

int audit__seal(struct store *s, struct audit_key *k)
{
	struct seal_tx x;
	int r;

	if (!s || !k || k->store != s || store__in_tx(s))
		return -EINVAL;
	if (k->head_seq == k->sealed_seq)
		return 0;
	if (!k->signer)
		return -ENOKEY; /* audit__key_load_public: verify only */
	x.seq = k->head_seq;
	memcpy(x.hash, k->head_hash, HASH_LEN);
	r = signer__seal(k->signer, x.seq, x.hash, x.sig);
	if (r < 0)
		return r;
	r = store__tx(s, seal_tx, &x);
	if (r < 0 && r != -EEXIST)
		return r;
	/* -EEXIST: a seal at this seq is there already (a log cut back to it); verify says more. */
	k->sealed_seq = x.seq;
	return r < 0 ? r : 1;
}

/* ---- verify ---- */

static void bad(struct audit_verify *v, uint64_t seq, const char *problem)
{
	if (v->first_bad)
		return;
	v->first_bad = seq;
	snprintf(v->problem, sizeof(v->problem), "%s", problem);
}

/* Checks one row against the expected seq and link. Returns true if intact. */
static bool check_row(sqlite3_stmt *st, uint64_t want_seq, unsigned char prev[HASH_LEN],
		      struct audit_verify *v)
{
	unsigned char hash[HASH_LEN];
	struct entry e = {0};
	uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);

	if (seq != want_seq) {
		bad(v, seq > want_seq ? want_seq : seq,
		    seq > want_seq ? "entry missing (deleted)" : "sequence out of order");
		return false;
	}
	if (sqlite3_column_bytes(st, 6) != HASH_LEN || sqlite3_column_bytes(st, 7) != HASH_LEN ||
	    sqlite3_column_type(st, 4) != SQLITE_TEXT ||
	    sqlite3_column_type(st, 5) != SQLITE_TEXT) {
		bad(v, seq, "malformed entry");
		return false;
	}
	if (memcmp(sqlite3_column_blob(st, 6), prev, HASH_LEN) != 0) {
		bad(v, seq, "broken link to previous entry (reordered, deleted or edited)");
		return false;
	}
	e.seq = seq;
	e.at_us = sqlite3_column_int64(st, 1);
	e.sandbox = (const char *)sqlite3_column_text(st, 2);
	e.actor_uid = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
	e.kind = (const char *)sqlite3_column_text(st, 4);
	e.body = (const char *)sqlite3_column_text(st, 5);
	e.body_len = (size_t)sqlite3_column_bytes(st, 5);
	e.prev = prev;
	entry_hash(&e, hash);
	if (memcmp(hash, sqlite3_column_blob(st, 7), HASH_LEN) != 0) {
		bad(v, seq, "hash mismatch (entry edited or moved)");
		return false;
	}
	memcpy(prev, hash, HASH_LEN);
	return true;
}

/* The seals, walked alongside the entries; seal = the next one not yet reached. */
struct seal_walk {
	sqlite3_stmt *st;
	bool have;
	uint64_t seq, good; /* good: the newest seal that matched */
	int rc;
};

static void seal_next(struct seal_walk *w)
{
	w->rc = sqlite3_step(w->st);
	w->have = w->rc == SQLITE_ROW;
	w->seq = w->have ? (uint64_t)sqlite3_column_int64(w->st, 0) : 0;
}

/* Entry @seq (intact, hash @hash) was reached: checks the seal made at it, if any. */
static bool check_seal(struct seal_walk *w, const struct audit_key *k, uint64_t seq,
		       const unsigned char hash[HASH_LEN], struct audit_verify *v)
{
	char what[96];

	if (!w->have || w->seq != seq)
		return true;
	if (sqlite3_column_bytes(w->st, 1) != HASH_LEN ||
	    sqlite3_column_bytes(w->st, 2) != SIG_LEN) {
		snprintf(what, sizeof(what), "malformed seal at seq %llu", (unsigned long long)seq);
		bad(v, w->good + 1, what);
		return false;
	}
	if (!seal_signed(k, seq, sqlite3_column_blob(w->st, 1), HASH_LEN,
			 sqlite3_column_blob(w->st, 2), SIG_LEN)) {
		snprintf(what, sizeof(what), "bad signature on the seal at seq %llu",
			 (unsigned long long)seq);
		bad(v, w->good + 1, what);
		return false;
	}
	if (memcmp(sqlite3_column_blob(w->st, 1), hash, HASH_LEN) != 0) {
		snprintf(what, sizeof(what),
			 "entries rewritten: the chain no longer matches the seal at seq %llu",
			 (unsigned long long)seq);
		bad(v, w->good + 1, what);
		return false;
	}
	w->good = seq;
	v->seals++;
	seal_next(w);
	return true;
}

/* Adds [from, to] to the sorted, disjoint @r (*n of them), merging what touches it. */
static void range_add(struct audit_range *r, unsigned *n, uint64_t from, uint64_t to)
{
	unsigned i = 0, j;

	while (i < *n && r[i].to + 1 < from)
		i++;
	/* r[i..j) overlap or touch [from, to]: they become one */
	for (j = i; j < *n && r[j].from <= to + 1; j++) {
		from = r[j].from < from ? r[j].from : from;
		to = r[j].to > to ? r[j].to : to;
	}
	if (i == j && *n == AUDIT_RANGES) { /* full: widen the neighbour instead */
		i = j = i == *n ? i - 1 : i;
		from = r[i].from < from ? r[i].from : from;
		to = r[i].to > to ? r[i].to : to;
		j++;
	}
	memmove(&r[i + 1], &r[j], (*n - j) * sizeof(*r));
	*n = *n - (j - i) + 1;
	r[i].from = from;
	r[i].to = to;
}

/* An intact audit.epoch entry at @seq: the range it found unsealed. */
static void note_epoch(sqlite3_stmt *st, uint64_t seq, struct audit_verify *v)
{
	json_int_t from = 0, to = 0;
	json_t *body;

	if (strcmp((const char *)sqlite3_column_text(st, 4), EPOCH_KIND) != 0)
		return;
	body = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
	/* the daemon writes both; anything else reads as "everything before it" */
	if (json_unpack(body, "{sI sI}", "unsealed_from", &from, "unsealed_to", &to) < 0 ||
	    from < 1 || to < from || (uint64_t)to >= seq) {
		from = 1;
		to = (json_int_t)seq - 1;
	}
	json_decref(body);
	if (to >= from)
		range_add(v->not_covered, &v->n_not_covered, (uint64_t)from, (uint64_t)to);
}

/* From the found ranges (in not_covered) and sealed_through: covered, tail, the problem. */
static void coverage(struct audit_verify *v)
{
	uint64_t next = 1, missing = 0;

	for (unsigned i = 0; i < v->n_not_covered; i++) {
		const struct audit_range *f = &v->not_covered[i];

		v->unsealed_at_start += f->to - f->from + 1;
		if (f->from > next && next <= v->sealed_through)
			v->covered[v->n_covered++] = (struct audit_range){
				next,
				f->from - 1 < v->sealed_through ? f->from - 1 : v->sealed_through};
		next = f->to + 1;
	}
	if (next <= v->sealed_through)
		v->covered[v->n_covered++] = (struct audit_range){next, v->sealed_through};
	if (v->intact_through > v->sealed_through)
		range_add(v->not_covered, &v->n_not_covered, v->sealed_through + 1,
			  v->intact_through);
	for (unsigned i = 0; i < v->n_not_covered; i++)
		missing += v->not_covered[i].to - v->not_covered[i].from + 1;
	if (!v->first_bad && missing)
		snprintf(v->problem, sizeof(v->problem),
			 "intact as a chain, but %llu entries are not covered by a seal made "
			 "while they were known (not_covered)",
			 (unsigned long long)missing);
}

/* A damaged page or file, by the one SQLite -> errno map. */
static bool corrupt(int rc)
{
	return store__errno(rc) == -EBADMSG;
}

static void bad_corrupt(struct audit_verify *v, uint64_t seq)
{
	char what[160];

	snprintf(what, sizeof(what),
		 "database corrupt: cannot read the audit log at seq %llu; restore nucleus.db "
		 "from a backup",
		 (unsigned long long)seq);
	bad(v, seq, what);
	v->corrupt = true;
}

int audit__verify(struct store *s, const struct audit_key *k, struct audit_verify *ret)
{
	static const char sql[] = "SELECT seq, at_us, sandbox_id, actor_uid, kind, body, "
				  "prev_hash, hash FROM audit_log ORDER BY seq";
	static const char seals[] = "SELECT seq, hash, sig FROM audit_seals ORDER BY seq";
	unsigned char prev[HASH_LEN] = {0};
	struct audit_verify v = {0};
	struct seal_walk w = {0};
	sqlite3_stmt *st = NULL;
	uint64_t want = 1;
	int r, rc = SQLITE_DONE;

	r = store__stmt(s, sql, &st);
	if (r == 0)
		r = store__stmt(s, seals, &w.st);
	if (r < 0)
		goto out;
	seal_next(&w);
	while (w.rc == SQLITE_ROW || w.rc == SQLITE_DONE) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		v.entries++;
		if (!check_row(st, want, prev, &v))
			break;
		note_epoch(st, want, &v);
		if (!check_seal(&w, k, want, prev, &v))
			break;
		v.intact_through = want++;
	}
	if (corrupt(rc) || corrupt(w.rc)) {
		bad_corrupt(&v, want);
	} else if ((rc != SQLITE_ROW && rc != SQLITE_DONE) ||
		   (w.rc != SQLITE_ROW && w.rc != SQLITE_DONE)) {
		r = store__errno(rc != SQLITE_ROW && rc != SQLITE_DONE ? rc : w.rc);
		goto out;
	}
	if (!v.first_bad && w.have)
		bad(&v, w.seq >= want ? want : w.good + 1,
		    w.seq >= want
			    ? "entry missing (deleted at the end: a seal is past the last entry)"
			    : "a seal matches no entry");
	v.sealed_through = w.good;
	if (!v.first_bad)
		snprintf(v.problem, sizeof(v.problem), "intact");
	coverage(&v);
	*ret = v;
out:
	store__stmt_done(st);
	store__stmt_done(w.st);
	return r;
}

/* ---- list ---- */

static json_t *row_json(sqlite3_stmt *st)
{
	char hex[HASH_LEN * 2 + 1];
	json_t *o, *body;

	body = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
	sodium_bin2hex(hex, sizeof(hex), sqlite3_column_blob(st, 6),
		       sqlite3_column_bytes(st, 6) == HASH_LEN ? HASH_LEN : 0);
	o = json_pack("{sI sI s:s? s:o? ss so ss}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
		      "at_us", (json_int_t)sqlite3_column_int64(st, 1), "sandbox",
		      (const char *)sqlite3_column_text(st, 2), "actor_uid",
		      sqlite3_column_type(st, 3) == SQLITE_NULL
			      ? NULL
			      : json_integer(sqlite3_column_int64(st, 3)),
		      "kind", (const char *)sqlite3_column_text(st, 4), "body",
		      body ? body : json_null(), "hash", hex);
	return o;
}

static int row_append(sqlite3_stmt *st, void *arr)
{
	return json_array_append_new(arr, row_json(st)) < 0 ? -ENOMEM : 0;
}

/* Every row of @st (bound, not stepped yet; @rc: the binds' result) in a new array *@ret. */
static int collect(sqlite3_stmt *st, int rc, json_t **ret)
{
	json_t *arr;
	int r;

	if (rc != SQLITE_OK)
		return store__errno(rc);
	arr = json_array();
	if (!arr)
		return -ENOMEM;
	r = store__rows(st, row_append, arr);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}

/*
 * Two statements, so that each reads an index: one sandbox's entries through
 * audit_log_sandbox (sandbox_id, seq), every entry through the primary key. One
 * statement with "(?2 IS NULL OR sandbox_id = ?2)" walked every entry past @after.
 */
int audit__list(struct store *s, const char *sandbox, uint64_t after, unsigned limit, json_t **ret)
{
	static const char one[] = "SELECT seq, at_us, sandbox_id, actor_uid, kind, body, hash "
				  "FROM audit_log WHERE sandbox_id = ?2 AND seq > ?1 "
				  "ORDER BY seq LIMIT ?3";
	static const char every[] = "SELECT seq, at_us, sandbox_id, actor_uid, kind, body, hash "
				    "FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?3";
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(s, sandbox ? one : every, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
	if (rc == SQLITE_OK && sandbox)
		rc = sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit);
	r = collect(st, rc, ret);
	store__stmt_done(st);
	return r;
}

int audit__list_kinds(struct store *s, const char *sandbox, const char *kind_glob, json_t **ret)
{
	static const char sql[] = "SELECT seq, at_us, sandbox_id, actor_uid, kind, body, hash "
				  "FROM audit_log WHERE sandbox_id = ?1 AND kind GLOB ?2 "
				  "ORDER BY seq";
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt_text(s, sql, sandbox, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 2, kind_glob, -1, SQLITE_STATIC);
	r = collect(st, rc, ret);
	store__stmt_done(st);
	return r;
}
