// SPDX-License-Identifier: Apache-2.0
/*
 * Approvals: an Ed25519 signature (libsodium) by a pinned approver key over a canonical
 * message binding the session, the operation, the digest of the call's arguments, a nonce
 * and an expiry at most five minutes ahead. Each nonce is accepted once; used nonces are
 * remembered until their approval has expired.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "policy/internal.h"

static const char call_tag[] = "nucleus-call-v1";
static const char approval_tag[20] = "nucleus-approval-v1"; /* 19 chars + NUL */
static const char widen_tag[17] = "nucleus-widen-v1";	    /* 16 chars + NUL */

/*
 * The canonical encoding of a call, fed to BLAKE2b through a small stack buffer so that
 * typical calls are hashed in one shot (the decision path computes this every time).
 */
struct enc {
	crypto_generichash_state st;
	bool streaming;
	size_t n;
	uint8_t buf[256];
};

static void enc_flush(struct enc *e)
{
	if (!e->streaming) {
		crypto_generichash_init(&e->st, NULL, 0, POLICY_DIGEST_LEN);
		e->streaming = true;
	}
	crypto_generichash_update(&e->st, e->buf, e->n);
	e->n = 0;
}

static void enc_put(struct enc *e, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		size_t k = sizeof(e->buf) - e->n;

		if (k == 0) {
			enc_flush(e);
			continue;
		}
		if (k > len)
			k = len;
		memcpy(e->buf + e->n, b, k);
		e->n += k;
		b += k;
		len -= k;
	}
}

static void enc_varint(struct enc *e, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	do {
		b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	enc_put(e, b, n);
}

static void enc_str(struct enc *e, const char *s)
{
	size_t len = strlen(s);

	enc_varint(e, len);
	enc_put(e, s, len);
}

static void enc_final(struct enc *e, uint8_t out[POLICY_DIGEST_LEN])
{
	if (!e->streaming) {
		crypto_generichash(out, POLICY_DIGEST_LEN, e->buf, e->n, NULL, 0);
		return;
	}
	enc_flush(e);
	crypto_generichash_final(&e->st, out, POLICY_DIGEST_LEN);
}

/*
 * BLAKE2b-256 of: tag, op, a presence bitmap of the fields (so absent differs from empty),
 * then every present field in a fixed order as varint length + bytes (argv: count, then
 * each argument). Numbers are present when non-zero. The approval pointer is not part of it.
 */
int policy__call_digest(const struct policy_call *c, uint8_t out[POLICY_DIGEST_LEN])
{
	const char *str[8];
	struct enc e;
	uint16_t present = 0;
	uint8_t hdr[3];

	if (!c || (unsigned)c->op >= POLICY_OP_COUNT)
		return -EINVAL;
	str[0] = c->path;
	str[1] = c->url;
	str[2] = c->method;
	str[3] = c->query;
	str[4] = c->host;
	str[5] = c->remote;
	str[6] = c->ref;
	str[7] = c->target;
	e.streaming = false;
	e.n = 0;
	for (unsigned i = 0; i < 8; i++)
		present |= (uint16_t)((str[i] != NULL) << i);
	present |=
		(uint16_t)((c->argv != NULL) << 8 | (c->body_len != 0) << 9 | (c->port != 0) << 10);
	hdr[0] = (uint8_t)c->op;
	hdr[1] = (uint8_t)present;
	hdr[2] = (uint8_t)(present >> 8);
	enc_put(&e, call_tag, sizeof(call_tag));
	enc_put(&e, hdr, sizeof(hdr));
	for (unsigned i = 0; i < 8; i++)
		if (str[i])
			enc_str(&e, str[i]);
	if (c->argv) {
		enc_varint(&e, c->argc);
		for (size_t i = 0; i < c->argc; i++)
			enc_str(&e, c->argv[i] ? c->argv[i] : "");
	}
	if (c->body_len)
		enc_varint(&e, c->body_len);
	if (c->port)
		enc_varint(&e, c->port);
	enc_final(&e, out);
	return 0;
}

static void put_tail(uint8_t *w, const struct policy_approval *a);

void policy__approval_message(const struct policy_approval *a, uint8_t out[POLICY_APPROVAL_MSG_LEN])
{
	uint8_t *w = out;

	memcpy(w, approval_tag, sizeof(approval_tag));
	w += sizeof(approval_tag);
	memcpy(w, a->session_id, POLICY_SESSION_ID_LEN);
	w += POLICY_SESSION_ID_LEN;
	*w++ = a->op;
	memcpy(w, a->args_digest, POLICY_DIGEST_LEN);
	put_tail(w + POLICY_DIGEST_LEN, a);
}

int policy__approval_sign(struct policy_approval *a, const uint8_t secret_key[64])
{
	uint8_t msg[POLICY_APPROVAL_MSG_LEN];

	if (!a || !secret_key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	policy__approval_message(a, msg);
	crypto_sign_detached(a->sig, NULL, msg, sizeof(msg), secret_key);
	return 0;
}

static void put_tail(uint8_t *w, const struct policy_approval *a)
{
	uint64_t e = (uint64_t)a->expires;

	memcpy(w, a->nonce, POLICY_NONCE_LEN);
	w += POLICY_NONCE_LEN;
	for (int i = 0; i < 8; i++)
		*w++ = (uint8_t)(e >> (56 - 8 * i));
}

void policy__widen_message(const struct policy_approval *a, uint8_t out[POLICY_WIDEN_MSG_LEN])
{
	uint8_t *w = out;

	memcpy(w, widen_tag, sizeof(widen_tag));
	w += sizeof(widen_tag);
	memcpy(w, a->session_id, POLICY_SESSION_ID_LEN);
	w += POLICY_SESSION_ID_LEN;
	memcpy(w, a->args_digest, POLICY_DIGEST_LEN);
	put_tail(w + POLICY_DIGEST_LEN, a);
}

int policy__widen_sign(struct policy_approval *a, const uint8_t secret_key[64])
{
	uint8_t msg[POLICY_WIDEN_MSG_LEN];

	if (!a || !secret_key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	policy__widen_message(a, msg);
	crypto_sign_detached(a->sig, NULL, msg, sizeof(msg), secret_key);
	return 0;
}

static bool sig_ok(const struct policy_session *s, const struct policy_approval *a,
		   const uint8_t *msg, size_t len)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (crypto_sign_verify_detached(a->sig, msg, len, s->keys[i]) == 0)
			return true;
	return false;
}

static void prune_nonces(struct policy_session *s, int64_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nnonces; i++)
		if (s->nonces[i].expires > now)
			s->nonces[k++] = s->nonces[i];
	s->nnonces = k;
}

static bool nonce_used(const struct policy_session *s, const uint8_t *nonce)
{
	for (size_t i = 0; i < s->nnonces; i++)
		if (sodium_memcmp(s->nonces[i].nonce, nonce, POLICY_NONCE_LEN) == 0)
			return true;
	return false;
}

int session__remember_nonce(struct policy_session *s, const uint8_t *nonce, int64_t expires)
{
	struct nonce_entry *n = realloc(s->nonces, (s->nnonces + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	s->nonces = n;
	memcpy(n[s->nnonces].nonce, nonce, POLICY_NONCE_LEN);
	n[s->nnonces].expires = expires;
	s->nnonces++;
	return 0;
}

/* The signature first: only a genuine approval earns a precise reason about its fields. */
/* The checks after the signature's: session, expiry, nonce (remembered when fresh). */
static enum policy_reason check_rest(struct policy_session *s, const struct policy_approval *a,
				     int64_t now)
{
	if (a->expires <= now)
		return POLICY_R_APPROVAL_EXPIRED;
	if (a->expires - now > POLICY_APPROVAL_MAX_TTL)
		return POLICY_R_APPROVAL_TOO_LONG;
	prune_nonces(s, now);
	if (nonce_used(s, a->nonce))
		return POLICY_R_APPROVAL_REPLAY;
	/* out of memory: refuse rather than accept an approval we could not remember */
	if (session__remember_nonce(s, a->nonce, a->expires) < 0)
		return POLICY_R_APPROVAL_REPLAY;
	return POLICY_R_APPROVED;
}

enum policy_reason approval__check(struct policy_session *s, const struct policy_call *call,
				   const uint8_t digest[POLICY_DIGEST_LEN], int64_t now)
{
	const struct policy_approval *a = call->approval;
	uint8_t msg[POLICY_APPROVAL_MSG_LEN];

	policy__approval_message(a, msg);
	if (!sig_ok(s, a, msg, sizeof(msg)))
		return POLICY_R_APPROVAL_BAD_SIG;
	if (memcmp(a->session_id, s->id, POLICY_SESSION_ID_LEN) != 0)
		return POLICY_R_APPROVAL_WRONG_SESSION;
	if (a->op != (uint8_t)call->op)
		return POLICY_R_APPROVAL_WRONG_OP;
	if (memcmp(a->args_digest, digest, POLICY_DIGEST_LEN) != 0)
		return POLICY_R_APPROVAL_WRONG_ARGS;
	return check_rest(s, a, now);
}

enum policy_reason approval__check_widen(struct policy_session *s, const struct policy_approval *a,
					 const uint8_t digest[POLICY_DIGEST_LEN], int64_t now)
{
	uint8_t msg[POLICY_WIDEN_MSG_LEN];

	policy__widen_message(a, msg);
	if (!sig_ok(s, a, msg, sizeof(msg)))
		return POLICY_R_APPROVAL_BAD_SIG;
	if (memcmp(a->session_id, s->id, POLICY_SESSION_ID_LEN) != 0)
		return POLICY_R_APPROVAL_WRONG_SESSION;
	if (memcmp(a->args_digest, digest, POLICY_DIGEST_LEN) != 0)
		return POLICY_R_APPROVAL_WRONG_ARGS;
	return check_rest(s, a, now);
}

/* A call approval (op, args_digest) or, with @widen, a widen approval (policy_digest). */
static int to_json(const struct policy_approval *a, bool widen, char **ret)
{
	char sid[2 * POLICY_SESSION_ID_LEN + 1], dig[2 * POLICY_DIGEST_LEN + 1];
	char non[2 * POLICY_NONCE_LEN + 1], sig[2 * 64 + 1];
	json_t *o;

	if (!widen && (unsigned)a->op >= POLICY_OP_COUNT)
		return -EINVAL;
	hex__encode(a->session_id, sizeof(a->session_id), sid);
	hex__encode(a->args_digest, sizeof(a->args_digest), dig);
	hex__encode(a->nonce, sizeof(a->nonce), non);
	hex__encode(a->sig, sizeof(a->sig), sig);
	o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "session", sid,
		      widen ? "policy_digest" : "args_digest", dig, "nonce", non, "expires",
		      (json_int_t)a->expires, "sig", sig);
	if (o && !widen && json_object_set_new(o, "op", json_string(policy__op_name(a->op))) < 0) {
		json_decref(o);
		o = NULL;
	}
	return json__dump_take(o, JSON_SORT_KEYS | JSON_COMPACT, ret);
}

int policy__approval_to_json(const struct policy_approval *a, char **ret)
{
	return to_json(a, false, ret);
}

int policy__widen_approval_to_json(const struct policy_approval *a, char **ret)
{
	return to_json(a, true, ret);
}

static int hex_field(json_t *o, const char *key, uint8_t *out, size_t n, struct policy_error *err)
{
	json_t *v = json_object_get(o, key);
	char path[64];

	snprintf(path, sizeof(path), "$.%s", key);
	if (!json_is_string(v) || hex__decode(json_string_value(v), out, n) < 0) {
		perr(err, path, "expected %zu hex bytes", n);
		return -EINVAL;
	}
	return 0;
}

static int from_json(const char *json_text, bool widen, struct policy_approval *ret,
		     struct policy_error *err)
{
	struct policy_approval a = {0};
	json_error_t je;
	json_t *j = json_loads(json_text ? json_text : "", 0, &je), *v;
	int rc = -EINVAL, op;

	if (!j) {
		perr(err, "$", "JSON syntax error at line %d column %d: %s", je.line, je.column,
		     je.text);
		return -EINVAL;
	}
	if (!json_is_object(j) || json_object_size(j) != (widen ? 5 : 6)) {
		perr(err, "$",
		     widen ? "expected exactly session, policy_digest, nonce, expires, sig"
			   : "expected exactly session, op, args_digest, nonce, expires, sig");
		goto out;
	}
	if (!widen) {
		op = policy__op_from_name(json_string_value(json_object_get(j, "op")));
		if (op < 0) {
			perr(err, "$.op", "unknown operation");
			goto out;
		}
		a.op = (uint8_t)op;
	}
	v = json_object_get(j, "expires");
	if (!json_is_integer(v)) {
		perr(err, "$.expires", "expected integer");
		goto out;
	}
	a.expires = json_integer_value(v);
	if (hex_field(j, "session", a.session_id, sizeof(a.session_id), err) < 0 ||
	    hex_field(j, widen ? "policy_digest" : "args_digest", a.args_digest,
		      sizeof(a.args_digest), err) < 0 ||
	    hex_field(j, "nonce", a.nonce, sizeof(a.nonce), err) < 0 ||
	    hex_field(j, "sig", a.sig, sizeof(a.sig), err) < 0)
		goto out;
	*ret = a;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int policy__approval_from_json(const char *json_text, struct policy_approval *ret,
			       struct policy_error *err)
{
	return from_json(json_text, false, ret, err);
}

int policy__widen_approval_from_json(const char *json_text, struct policy_approval *ret,
				     struct policy_error *err)
{
	return from_json(json_text, true, ret, err);
}
