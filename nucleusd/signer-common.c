// SPDX-License-Identifier: Apache-2.0
/*
 * What both ends of the audit signer share (nucleusd/signer.h): the head message a seal
 * signs, and the key file's public half. Linked into nucleus-signer and the daemon.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "nucleusd/signer.h"

void signer__head_message(uint64_t seq, const uint8_t hash[SIGNER_HASH_LEN],
			  uint8_t out[SIGNER_HASH_LEN])
{
	static const char tag[] = "nucleus-audit-head-v1";
	crypto_generichash_state st;
	uint8_t be[8];

	for (int i = 7; i >= 0; i--, seq >>= 8)
		be[i] = (uint8_t)(seq & 0xff);
	crypto_generichash_init(&st, NULL, 0, SIGNER_HASH_LEN);
	crypto_generichash_update(&st, (const unsigned char *)tag, sizeof(tag)); /* + NUL */
	crypto_generichash_update(&st, be, sizeof(be));
	crypto_generichash_update(&st, hash, SIGNER_HASH_LEN);
	crypto_generichash_final(&st, out, SIGNER_HASH_LEN);
}

int signer__pread_full(int fd, void *buf, size_t len, off_t at)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, at + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		got += (size_t)n;
	}
	return 0;
}

int signer__key_open(const char *path, bool own)
{
	char magic[SIGNER_KEY_MAGIC_LEN];
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	r = -EPERM;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || (own && st.st_uid != geteuid()))
		goto fail;
	r = -EBADMSG;
	if (st.st_size < (off_t)(SIGNER_KEY_MAGIC_LEN + crypto_sign_SECRETKEYBYTES))
		goto fail;
	r = signer__pread_full(fd, magic, sizeof(magic), 0);
	if (r < 0)
		goto fail;
	r = -EBADMSG;
	if (memcmp(magic, SIGNER_KEY_MAGIC, sizeof(magic)) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return r;
}

int signer__key_public(const char *path, uint8_t pk[SIGNER_PK_LEN])
{
	int fd = signer__key_open(path, false), r;

	if (fd < 0)
		return fd;
	/* libsodium's secret key is seed || public key: the seed is never read here */
	r = signer__pread_full(
		fd, pk, SIGNER_PK_LEN,
		(off_t)(SIGNER_KEY_MAGIC_LEN + crypto_sign_SECRETKEYBYTES - SIGNER_PK_LEN));
	close(fd);
	return r;
}
