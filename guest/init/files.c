/* SPDX-License-Identifier: Apache-2.0 */
/*
 * files.c - READ (streamed DATA frames), WRITE (atomic replace: temp file in the same
 * directory, exact mode, fsync, rename, fsync of the directory), STAT and LIST.
 * Paths must be absolute. lstat semantics: symlinks are reported, not followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/init/agent.h"

/* The PATH field of a request, NUL-terminated and absolute. */
static int req_path(const struct guest_buf *pl, char **ret_path, uint32_t *ret_mode)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	char *path = NULL;
	uint32_t len;
	uint16_t tag;
	int r;

	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		if (tag == GUEST_TAG_PATH && !path)
			r = guest_tlv__str(val, len, &path);
		else if (tag == GUEST_TAG_MODE && ret_mode)
			r = guest_tlv__u32(val, len, ret_mode);
		if (r < 0)
			break;
	}
	if (r == 0 && (!path || path[0] != '/'))
		r = -EINVAL;
	if (r == 0 && ret_mode && *ret_mode > 07777)
		r = -EINVAL;
	if (r < 0) {
		free(path);
		return r;
	}
	*ret_path = path;
	return 0;
}

static uint32_t ftype_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG:
		return GUEST_FT_REG;
	case S_IFDIR:
		return GUEST_FT_DIR;
	case S_IFLNK:
		return GUEST_FT_LNK;
	case S_IFCHR:
		return GUEST_FT_CHR;
	case S_IFBLK:
		return GUEST_FT_BLK;
	case S_IFIFO:
		return GUEST_FT_FIFO;
	case S_IFSOCK:
		return GUEST_FT_SOCK;
	default:
		return GUEST_FT_UNKNOWN;
	}
}

static int put_stat(struct guest_buf *b, const struct stat *st)
{
	int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	int r;

	r = guest_buf__put_u32(b, GUEST_TAG_FTYPE, ftype_of(st->st_mode));
	if (r == 0)
		r = guest_buf__put_u32(b, GUEST_TAG_MODE, st->st_mode & 07777);
	if (r == 0)
		r = guest_buf__put_u64(b, GUEST_TAG_SIZE, (uint64_t)st->st_size);
	if (r == 0)
		r = guest_buf__put_u64(b, GUEST_TAG_MTIME_NS, (uint64_t)mt);
	return r;
}

static int bad_request(int fd, uint64_t id, int err, const char *op)
{
	return agent__send_error(fd, id, err, "%s: %s", op,
				 err == EINVAL ? "need an absolute path" : "malformed request");
}

int files__read(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	uint8_t *chunk = NULL;
	uint64_t total = 0;
	struct stat st;
	char *path = NULL;
	int f = -1, r;
	ssize_t n;

	r = req_path(pl, &path, NULL);
	if (r < 0)
		return bad_request(fd, id, -r, "read");
	f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (f < 0 || fstat(f, &st) < 0) {
		r = agent__send_error(fd, id, errno, "read %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = agent__send_error(fd, id, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
				      "read %s: not a regular file", path);
		goto out;
	}
	fcntl(f, F_SETFL, 0);
	chunk = malloc(GUEST_CHUNK);
	if (!chunk) {
		r = agent__send_error(fd, id, ENOMEM, "read: out of memory");
		goto out;
	}
	while ((n = read(f, chunk, GUEST_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The stream ends with an ERROR instead of END: the client drops it. */
			r = agent__send_error(fd, id, errno, "read %s: %s", path, strerror(errno));
			goto out;
		}
		r = guest_frame__write(fd, GUEST_MSG_DATA, id, chunk, (size_t)n, AGENT_IO_GRACE_MS);
		if (r < 0)
			goto out;
		total += (uint64_t)n;
	}
	r = guest_buf__put_u64(&b, GUEST_TAG_SIZE, total);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_END, id, &b);
out:
	if (f >= 0)
		close(f);
	free(chunk);
	free(path);
	guest_buf__release(&b);
	return r;
}

/* Receives DATA frames into tmp (< 0: discards them) until END. A local write error
 * goes to *err (in/out, positive errno; later data is then discarded). Returns 0 once
 * END came, or < 0 when the stream broke. */
static int receive(int fd, uint64_t id, int tmp, uint64_t *ret_size, int *ret_err)
{
	struct guest_buf in = {0};
	struct guest_hdr h;
	uint64_t size = 0;
	int r, err = *ret_err;

	for (;;) {
		r = guest_frame__read(fd, &h, &in, AGENT_REQ_MS);
		if (r < 0)
			break;
		if (h.id != id || (h.type != GUEST_MSG_DATA && h.type != GUEST_MSG_END)) {
			r = -EPROTO;
			break;
		}
		if (h.type == GUEST_MSG_END)
			break;
		for (size_t off = 0; tmp >= 0 && !err && off < in.len;) {
			ssize_t n = write(tmp, in.data + off, in.len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				err = errno;
			else
				off += (size_t)n;
		}
		size += in.len;
	}
	guest_buf__release(&in);
	*ret_size = size;
	*ret_err = err;
	return r;
}

static int fsync_dir(const char *dir)
{
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (d < 0)
		return -errno;
	if (fsync(d) < 0)
		r = -errno;
	close(d);
	return r;
}

/* Temp file "DIR/.NAME.nucleus-XXXXXX" next to path. */
static int make_temp(const char *path, char **ret_tmp, char **ret_dir)
{
	char *d1, *d2, *tmp = NULL, *dir;
	int f = -1;

	errno = 0;
	d1 = strdup(path);
	d2 = strdup(path);

	if (!d1 || !d2)
		goto fail;
	dir = dirname(d1);
	if (asprintf(&tmp, "%s/.%s.nucleus-XXXXXX", strcmp(dir, "/") ? dir : "", basename(d2)) <
	    0) {
		tmp = NULL;
		goto fail;
	}
	f = mkostemp(tmp, O_CLOEXEC);
	if (f < 0)
		goto fail;
	free(d2);
	*ret_tmp = tmp;
	*ret_dir = d1;
	return f;
fail:
	f = errno ? -errno : -ENOMEM;
	free(tmp);
	free(d1);
	free(d2);
	return f;
}

static int finish_write(char *tmp, const char *path, const char *dir, int f)
{
	if (fsync(f) < 0)
		return -errno;
	if (rename(tmp, path) < 0)
		return -errno;
	tmp[0] = 0; /* nothing left to unlink */
	return fsync_dir(dir);
}

int files__write(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	char *path = NULL, *tmp = NULL, *dir = NULL;
	uint32_t mode = 0644;
	uint64_t size = 0;
	int f = -1, r, err = 0;

	r = req_path(pl, &path, &mode);
	if (r < 0)
		return bad_request(fd, id, -r, "write");
	f = make_temp(path, &tmp, &dir);
	if (f < 0) {
		err = -f;
		f = -1;
	} else if (fchmod(f, mode) < 0) {
		err = errno;
	}
	/* Take the whole stream even after a failure: the reply then reaches the client. */
	r = receive(fd, id, f, &size, &err);
	if (r < 0) {
		if (tmp && tmp[0])
			unlink(tmp);
		if (tmp)
			tmp[0] = 0;
		if (r == -EPROTO)
			agent__send_error(fd, id, EPROTO, "write: expected DATA or END");
		goto out;
	}
	if (!err && f >= 0)
		err = -finish_write(tmp, path, dir, f);
	if (err && tmp && tmp[0]) {
		unlink(tmp); /* before the reply: the client may look right after it */
		tmp[0] = 0;
	}
	if (err) {
		r = agent__send_error(fd, id, err, "write %s: %s", path, strerror(err));
		goto out;
	}
	r = guest_buf__put_u64(&b, GUEST_TAG_SIZE, size);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_OK, id, &b);
out:
	if (f >= 0)
		close(f);
	if (tmp && tmp[0])
		unlink(tmp);
	free(tmp);
	free(dir);
	free(path);
	guest_buf__release(&b);
	return r;
}

int files__stat(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	struct stat st;
	char *path = NULL;
	int r;

	r = req_path(pl, &path, NULL);
	if (r < 0)
		return bad_request(fd, id, -r, "stat");
	if (lstat(path, &st) < 0) {
		r = agent__send_error(fd, id, errno, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	r = put_stat(&b, &st);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_OK, id, &b);
out:
	free(path);
	guest_buf__release(&b);
	return r;
}

static int send_entry(int fd, uint64_t id, int dfd, const struct dirent *de, struct guest_buf *b)
{
	struct stat st;
	int r;

	b->len = 0;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Gone meanwhile: report what readdir knew. */
		memset(&st, 0, sizeof(st));
		st.st_mode = de->d_type == DT_DIR ? S_IFDIR : de->d_type == DT_REG ? S_IFREG : 0;
	}
	r = guest_buf__put_str(b, GUEST_TAG_NAME, de->d_name);
	if (r == 0)
		r = put_stat(b, &st);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_ENTRY, id, b);
	return r;
}

int files__list(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	struct dirent *de;
	uint32_t count = 0;
	char *path = NULL;
	DIR *d = NULL;
	int r;

	r = req_path(pl, &path, NULL);
	if (r < 0)
		return bad_request(fd, id, -r, "list");
	d = opendir(path);
	if (!d) {
		r = agent__send_error(fd, id, errno, "list %s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = send_entry(fd, id, dirfd(d), de, &b);
		if (r < 0)
			goto out;
		count++;
	}
	if (errno) {
		r = agent__send_error(fd, id, errno, "list %s: %s", path, strerror(errno));
		goto out;
	}
	b.len = 0;
	r = guest_buf__put_u32(&b, GUEST_TAG_COUNT, count);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_END, id, &b);
out:
	if (d)
		closedir(d);
	free(path);
	guest_buf__release(&b);
	return r;
}
