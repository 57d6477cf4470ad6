/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit signer (face of the signer module; docs/daemon.md, "Signer"): the daemon's
 * Ed25519 audit key lives only in nucleus-signer, a small process the daemon execs at
 * start-up (nucleusd/signer.c). The daemon, which parses every client and guest byte,
 * holds the public half only and asks the signer for each seal over one
 * SOCK_SEQPACKET socket, the signer's fd SIGNER_FD:
 *
 *   signer -> daemon, once:  struct signer_hello  {magic, status, pk}
 *   daemon -> signer:        struct signer_req    {type SIGNER_SEAL, 0, seq, hash}
 *   signer -> daemon:        struct signer_reply  {status, sig}
 *
 * Fixed sizes, host byte order (both ends are one machine). The signer signs only the
 * head message it builds itself from (seq, hash), never bytes the daemon chose; any
 * other message (wrong size, unknown type, seq 0, reserved field set) is answered with
 * a negative errno and no signature. It exits when the daemon's end closes.
 *
 *   signer-common.c  the head message and the key file's public half (both ends)
 *   signer.c         the nucleus-signer process: the key, the lock-down, the loop
 *   signer-client.c  the daemon's side: start, seal with a timeout, restart
 */
#ifndef NUCLEUS_NUCLEUSD_SIGNER_H
#define NUCLEUS_NUCLEUSD_SIGNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The signer's end of the socket in its process. */
#define SIGNER_FD 3

#define SIGNER_PK_LEN	32 /* crypto_sign_PUBLICKEYBYTES */
#define SIGNER_SIG_LEN	64 /* crypto_sign_BYTES */
#define SIGNER_HASH_LEN 32 /* crypto_generichash_BYTES: an audit entry's hash */

/* The key file (DATA/audit.key, 0600): this magic, then libsodium's 64-byte secret key
 * (32-byte seed, then the 32-byte public key). */
#define SIGNER_KEY_MAGIC     "nucleus-audit-key-v1\n"
#define SIGNER_KEY_MAGIC_LEN (sizeof(SIGNER_KEY_MAGIC) - 1)

#define SIGNER_HELLO_MAGIC 0x6e736731u /* "nsg1" */

/* The signer's first message. status < 0: it could not load its key (then it exits). */
struct signer_hello {
	uint32_t magic; /* SIGNER_HELLO_MAGIC */
	int32_t status; /* 0 or -errno */
	uint8_t pk[SIGNER_PK_LEN];
};

enum signer_type {
	SIGNER_SEAL = 1, /* sign the audit head (seq, hash) */
};

struct signer_req {
	uint32_t type;		       /* enum signer_type */
	uint32_t zero;		       /* reserved: 0 */
	uint64_t seq;		       /* the head's seq, >= 1 */
	uint8_t hash[SIGNER_HASH_LEN]; /* the entry's hash at seq */
};

struct signer_reply {
	int32_t status; /* 0, or -errno (-EBADMSG size, -EOPNOTSUPP type, -EINVAL fields) */
	uint8_t sig[SIGNER_SIG_LEN]; /* Ed25519 of the head message; zero on error */
};

_Static_assert(sizeof(struct signer_hello) == 40, "hello size");
_Static_assert(sizeof(struct signer_req) == 48, "request size");
_Static_assert(sizeof(struct signer_reply) == 68, "reply size");

/*
 * The message a seal signs (both ends; verify too):
 *   BLAKE2b-256("nucleus-audit-head-v1" 0x00 || be64(seq) || hash)
 */
void signer__head_message(uint64_t seq, const uint8_t hash[SIGNER_HASH_LEN],
			  uint8_t out[SIGNER_HASH_LEN]);

/*
 * The public half of the key file @path, read without the signer and without reading
 * the secret seed (offline verification, tests). -ENOENT, -EBADMSG (not a key file),
 * -EPERM (not a regular file, or group/others may read it).
 */
int signer__key_public(const char *path, uint8_t pk[SIGNER_PK_LEN]);
/* The key file @path opened and checked (a regular file no one else may read, of at
 * least a key's size, with the magic; @own: and owned by this euid): its fd, or -errno
 * as above. */
int signer__key_open(const char *path, bool own);

/* @len bytes of @fd at @at: 0, -errno, or -EBADMSG when the file ends first. */
int signer__pread_full(int fd, void *buf, size_t len, off_t at);

/* ---- the daemon's side (signer-client.c): loop thread only ---- */

struct signer;

/* A reply within this, or the signer is killed, reaped and restarted later. */
#define SIGNER_TIMEOUT_MS 2000
/* Restarts of a signer that died or hung: at most one per this. */
#define SIGNER_RESTART_MS 1000

/*
 * Execs @exe (nucleus-signer) on the key file @key_path (created there when missing)
 * and waits for its hello: the key's public half, in signer__pk(). The key's errors
 * are the signer's (-EPERM for a key others may read, ...); -ENOEXEC when @exe does
 * not speak this protocol, -ETIMEDOUT when it does not answer. @m: where it is started
 * and ended (nucleusd/monitor.h; NULL: here); a separate monitor starts the signer and
 * key of its own configuration, the same two paths, which here then only name them in
 * messages.
 */
struct nd_monitor;
int signer__start(struct nd_monitor *m, const char *exe, const char *key_path,
		  struct signer **ret);
/* Closes the socket (the signer then exits) and reaps the process. */
void signer__free(struct signer *s);
const uint8_t *signer__pk(const struct signer *s);

/*
 * Asks for the seal of (@seq, @hash) into @sig. A signer that died, answered wrong or
 * not within SIGNER_TIMEOUT_MS is killed and reaped: -EPIPE (gone), -ETIMEDOUT,
 * -EBADMSG. A later call starts it again (at most once per SIGNER_RESTART_MS; until
 * then it fails with the same error) and accepts it only with the same public key
 * (-EKEYREJECTED otherwise). A refusal of the signer itself is its -errno.
 */
int signer__seal(struct signer *s, uint64_t seq, const uint8_t hash[SIGNER_HASH_LEN],
		 uint8_t sig[SIGNER_SIG_LEN]);

/* The signer process (0: none running), its restarts, and why it last failed ("": never). */
pid_t signer__pid(const struct signer *s);
uint64_t signer__restarts(const struct signer *s);
const char *signer__problem(const struct signer *s);

#endif
