// SPDX-License-Identifier: Apache-2.0
/* nucleusd: the daemon executable (core in nucleusd/, HTTP in api/). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "api/api.h"
#include "nucleusd/nucleusd.h"

struct opts {
	char data_dir[PATH_MAX];
	const char *socket;
	uid_t owner_uid;
	gid_t owner_gid;
	size_t max_body;
	int timeout_s;
	bool fake;
};

static void logmsg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logmsg(const char *level, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "nucleusd[%d]: %s: ", (int)getpid(), level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void api_log(void *arg, enum api_log_level lvl, const char *msg)
{
	logmsg(lvl <= API_LOG_ERR ? "error" : lvl <= API_LOG_WARN ? "warning" : "info", "%s", msg);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nucleusd [options]\n"
		"  --data-dir DIR     state directory (default /var/lib/nucleus for root,\n"
		"                     else $XDG_DATA_HOME/nucleus or ~/.local/share/nucleus)\n"
		"  --socket PATH      API socket (default $XDG_RUNTIME_DIR/nucleus/nucleusd.sock,\n"
		"                     /run/nucleus/nucleusd.sock for root)\n"
		"  --owner-uid UID    uid allowed to use the API (default: own uid)\n"
		"  --owner-gid GID    primary gid allowed to use the API (default: own gid)\n"
		"  --max-body BYTES   request body limit (default 1048576)\n"
		"  --timeout SECONDS  connection read/write timeout (default 30)\n"
		"  --fake-backend     run sandboxes on the fake test backend (no VMs)\n");
}

static void default_data_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(buf, len, "/var/lib/nucleus");
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/nucleus", xdg);
	else
		snprintf(buf, len, "%s/.local/share/nucleus", home ? home : "/tmp");
}

static bool parse_num(const char *s, unsigned long long max, unsigned long long *ret)
{
	char *end;

	errno = 0;
	*ret = strtoull(s, &end, 10);
	return *s && !*end && !errno && *ret <= max;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"data-dir", required_argument, NULL, 'd'},
					   {"socket", required_argument, NULL, 's'},
					   {"owner-uid", required_argument, NULL, 'u'},
					   {"owner-gid", required_argument, NULL, 'g'},
					   {"max-body", required_argument, NULL, 'b'},
					   {"timeout", required_argument, NULL, 't'},
					   {"fake-backend", no_argument, NULL, 'F'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	unsigned long long v;
	int c;

	default_data_dir(o->data_dir, sizeof(o->data_dir));
	o->owner_uid = getuid();
	o->owner_gid = getgid();
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			snprintf(o->data_dir, sizeof(o->data_dir), "%s", optarg);
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'u':
		case 'g':
			if (!parse_num(optarg, UINT_MAX - 1, &v))
				goto bad;
			if (c == 'u')
				o->owner_uid = (uid_t)v;
			else
				o->owner_gid = (gid_t)v;
			break;
		case 'b':
			if (!parse_num(optarg, 1ULL << 30, &v) || v < 1024)
				goto bad;
			o->max_body = (size_t)v;
			break;
		case 't':
			if (!parse_num(optarg, 3600, &v) || v == 0)
				goto bad;
			o->timeout_s = (int)v;
			break;
		case 'F':
			o->fake = true;
			break;
		case 'h':
			usage(stdout);
			return 1; /* done: main exits 0 */
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "nucleusd: bad option value '%s'\n", optarg);
	return -EINVAL;
}

static int mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* One daemon per data directory. */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/nucleusd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;

		close(fd);
		return r;
	}
	return fd;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	logmsg("info", "signal %d: shutting down", (int)sig);
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct event_base *base = NULL;
	struct event *sigterm = NULL, *sigint = NULL;
	struct nd_backend *be = NULL;
	struct nucleusd *nd = NULL;
	struct api_server *srv = NULL;
	struct api_server_config scfg = {0};
	struct nd_config cfg = {0};
	int lock = -1, r;

	r = parse_opts(argc, argv, &o);
	if (r != 0)
		return r < 0 ? 2 : 0;
	signal(SIGPIPE, SIG_IGN);
	r = mkdirs(o.data_dir, 0700);
	if (r < 0) {
		logmsg("error", "cannot create %s: %s", o.data_dir, strerror(-r));
		goto out;
	}
	lock = lock_data_dir(o.data_dir);
	if (lock < 0) {
		r = lock;
		logmsg("error", "cannot lock %s: %s", o.data_dir,
		       r == -EADDRINUSE ? "another nucleusd uses it" : strerror(-r));
		goto out;
	}
	base = event_base_new();
	if (!base) {
		r = -ENOMEM;
		goto out;
	}
	r = o.fake ? nd_fake_backend__new(&be) : nd_none_backend__new(&be);
	if (r < 0)
		goto out;
	if (o.fake)
		logmsg("warning", "FAKE backend: no microVMs are run; for tests only");
	else
		logmsg("warning", "no VMM backend is wired into this nucleusd yet: sandboxes "
				  "cannot be created (backend 'none')");
	cfg.data_dir = o.data_dir;
	r = nucleusd__new(base, &cfg, be, &nd);
	if (r < 0) {
		nd_backend__free(be);
		logmsg("error", "cannot start on %s: %s", o.data_dir, strerror(-r));
		goto out;
	}
	scfg = (struct api_server_config){.socket_path = o.socket,
					  .owner_uid = o.owner_uid,
					  .owner_gid = o.owner_gid,
					  .max_body = o.max_body,
					  .timeout_s = o.timeout_s,
					  .log = api_log};
	r = api_server__new(base, nd, &scfg, &srv);
	if (r < 0) {
		logmsg("error", "cannot listen: %s", strerror(-r));
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		r = -ENOMEM;
		goto out;
	}
	logmsg("info", "listening on %s (data %s, owner uid %u gid %u)",
	       api_server__socket_path(srv), o.data_dir, (unsigned)o.owner_uid,
	       (unsigned)o.owner_gid);
	r = event_base_dispatch(base) < 0 ? -EIO : 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	api_server__free(srv);
	nucleusd__free(nd);
	if (base)
		event_base_free(base);
	if (lock >= 0)
		close(lock);
	return r < 0 ? 1 : 0;
}
