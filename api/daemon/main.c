// SPDX-License-Identifier: Apache-2.0
/*
 * nucleusd: the daemon executable. Parses the options, picks the backend, and puts the
 * core (nucleusd/, libnucleusd) behind the HTTP server (api/, libnucleus_api). Built by
 * api/daemon/meson.build: above both libraries, so nucleusd/ never includes api/.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <event2/event.h>

#include "api/api.h"
#include "api/daemon/confine.h"
#include "nucleusd/monitor.h"
#include "nucleusd/nucleusd.h"

#ifndef ND_INSTALL_GUEST_DIR
#define ND_INSTALL_GUEST_DIR "/usr/local/share/nucleus"
#endif
#ifndef ND_BUILD_VMM
#define ND_BUILD_VMM ""
#endif
#ifndef ND_BUILD_SIGNER
#define ND_BUILD_SIGNER ""
#endif
#ifndef ND_BUILD_KERNEL
#define ND_BUILD_KERNEL ""
#endif
#ifndef ND_BUILD_INITRD
#define ND_BUILD_INITRD ""
#endif

struct opts {
	char data_dir[PATH_MAX];
	const char *socket;
	uid_t owner_uid;
	gid_t owner_gid, admin_gid; /* API_NO_GID: none */
	size_t max_body;
	int timeout_s;
	int request_timeout_s; /* --request-timeout */
	unsigned max_conns;    /* --max-connections */
	bool fake;
	const char *vmm, *kernel, *initrd;
	const char *jailer;			 /* --jailer */
	const char *signer;			 /* --signer */
	bool no_jail;				 /* --no-jail */
	unsigned jail_uid_first, jail_uid_count; /* --jail-uids; 0: the default */
	int boot_timeout_s;			 /* --boot-timeout; 0: the backend's default */
	uint8_t keys[8][32];			 /* --approver-key */
	size_t n_keys;
	unsigned meter_ms;  /* --meter-interval-ms */
	const char *prices; /* --prices */
	unsigned backup_s;  /* --backup-interval */
	bool privsep;	    /* --user: run as run_uid/run_gid, a root monitor beside */
	uid_t run_uid;
	gid_t run_gid;
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

static void nd_log(void *arg, enum nd_log_level lvl, const char *msg)
{
	logmsg(lvl <= ND_LOG_ERR ? "error" : lvl <= ND_LOG_WARN ? "warning" : "info", "%s", msg);
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
		"  --owner-gid GID    group whose members (primary or supplementary) may use\n"
		"                     the API, each seeing only their own sandboxes (default:\n"
		"                     none; uid 0 and the owner uid are always allowed)\n"
		"  --admin-gid GID    group whose members may use the API as admins: every\n"
		"                     owner's sandboxes, like uid 0 (default: none)\n"
		"  --max-body BYTES   request body limit (default 1048576)\n"
		"  --timeout SECONDS  idle keep-alive connection, idle pause within a request,\n"
		"                     unwritten reply: timeout (default 30)\n"
		"  --request-timeout SECONDS  a request's head must arrive within this of its\n"
		"                     first byte, then its body within this (default 10; 408)\n"
		"  --max-connections N  open API connections (default 512; at most\n"
		"                     RLIMIT_NOFILE - 64); more wait in the listen backlog\n"
		"  --vmm PATH         nucleus-vmm (default: $NUCLEUS_VMM, next to nucleusd,\n"
		"                     the build tree's)\n"
		"  --kernel PATH      guest vmlinux (default: $NUCLEUS_KERNEL, the build's,\n"
		"                     " ND_INSTALL_GUEST_DIR "/vmlinux)\n"
		"  --initrd PATH      guest initramfs (default: $NUCLEUS_INITRD, the build's,\n"
		"                     " ND_INSTALL_GUEST_DIR "/initramfs.cpio.gz)\n"
		"  --jailer PATH      nucleus-jailer, which puts every VMM in its jail\n"
		"                     (default: $NUCLEUS_JAILER, next to the VMM)\n"
		"  --jail-uids FIRST:COUNT  the uids of jailed VMMs, one per VM, when the\n"
		"                     daemon is root (default 200000:65536)\n"
		"  --no-jail          VMMs without a jail, as the daemon's user: debugging only\n"
		"  --user USER[:GROUP]  (root only) privilege separation: the daemon runs as\n"
		"                     USER (a name or a number; its group, or GROUP), a root\n"
		"                     monitor process beside it makes the jails and starts\n"
		"                     the signer; the data directory becomes USER's, the\n"
		"                     audit key stays root's (docs/daemon.md)\n"
		"  --signer PATH      nucleus-signer, the process that holds the audit key\n"
		"                     (default: $NUCLEUS_SIGNER, next to nucleusd, the build\n"
		"                     tree's)\n"
		"  --boot-timeout SECONDS  a guest agent that does not answer within this of\n"
		"                     its VMM's start fails the boot; the VMM is killed and its\n"
		"                     last boot phase named (default 600)\n"
		"  --approver-key HEX Ed25519 public key (64 hex) whose signed approvals turn\n"
		"                     an `ask` into `allow`; pinned in new sessions (max 8)\n"
		"  --fake-backend     run sandboxes on the fake test backend (no VMs)\n"
		"  --meter-interval-ms MS  budget metering and TTL period (default 1000)\n"
		"  --prices FILE      budget price table, JSON (docs/budget.md; default:\n"
		"                     tool calls free, tokens 3/15 USD per 1M in/out)\n"
		"  --backup-interval SECONDS  online backup of the database into\n"
		"                     DATA_DIR/" ND_BACKUP_FILE " at start and then this often\n"
		"                     (default 3600, at most 604800; 0: no backups)\n");
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

static bool parse_key(const char *hex, uint8_t out[32])
{
	unsigned v;

	if (strlen(hex) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]))
			return false;
		out[i] = (uint8_t)v;
	}
	return true;
}

/* USER[:GROUP], names or numbers; the user's own group without GROUP. */
static int parse_user(char *arg, uid_t *uid, gid_t *gid)
{
	char *colon = strchr(arg, ':');
	unsigned long long v;
	struct passwd *pw;
	struct group *gr;
	int r = 0;

	if (colon)
		*colon = '\0';
	pw = getpwnam(arg);
	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	} else if (parse_num(arg, UINT32_MAX - 1, &v) && v > 0) {
		*uid = (uid_t)v;
		*gid = (gid_t)v;
	} else {
		r = -EINVAL;
	}
	if (r == 0 && colon) {
		gr = getgrnam(colon + 1);
		if (gr)
			*gid = gr->gr_gid;
		else if (parse_num(colon + 1, UINT32_MAX - 1, &v) && v > 0)
			*gid = (gid_t)v;
		else
			r = -EINVAL;
	}
	if (r == 0 && (*uid == 0 || *gid == 0))
		r = -EINVAL; /* root is what --user leaves */
	if (colon)
		*colon = ':';
	return r;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"data-dir", required_argument, NULL, 'd'},
					   {"socket", required_argument, NULL, 's'},
					   {"owner-uid", required_argument, NULL, 'u'},
					   {"owner-gid", required_argument, NULL, 'g'},
					   {"admin-gid", required_argument, NULL, 'A'},
					   {"max-body", required_argument, NULL, 'b'},
					   {"timeout", required_argument, NULL, 't'},
					   {"request-timeout", required_argument, NULL, 'R'},
					   {"max-connections", required_argument, NULL, 'C'},
					   {"fake-backend", no_argument, NULL, 'F'},
					   {"boot-timeout", required_argument, NULL, 'B'},
					   {"vmm", required_argument, NULL, 'V'},
					   {"jailer", required_argument, NULL, 'J'},
					   {"jail-uids", required_argument, NULL, 'j'},
					   {"no-jail", no_argument, NULL, 'N'},
					   {"signer", required_argument, NULL, 'S'},
					   {"kernel", required_argument, NULL, 'K'},
					   {"initrd", required_argument, NULL, 'I'},
					   {"approver-key", required_argument, NULL, 'k'},
					   {"meter-interval-ms", required_argument, NULL, 'M'},
					   {"prices", required_argument, NULL, 'P'},
					   {"backup-interval", required_argument, NULL, 'U'},
					   {"user", required_argument, NULL, 'W'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	unsigned long long v;
	int c;

	default_data_dir(o->data_dir, sizeof(o->data_dir));
	o->owner_uid = getuid();
	o->owner_gid = API_NO_GID;
	o->admin_gid = API_NO_GID;
	o->backup_s = ND_BACKUP_INTERVAL_S;
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
		case 'A':
			if (!parse_num(optarg, UINT_MAX - 1, &v))
				goto bad;
			if (c == 'u')
				o->owner_uid = (uid_t)v;
			else if (c == 'g')
				o->owner_gid = (gid_t)v;
			else
				o->admin_gid = (gid_t)v;
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
		case 'R':
			if (!parse_num(optarg, 3600, &v) || v == 0)
				goto bad;
			o->request_timeout_s = (int)v;
			break;
		case 'C':
			if (!parse_num(optarg, 1000000, &v) || v == 0)
				goto bad;
			o->max_conns = (unsigned)v;
			break;
		case 'F':
			o->fake = true;
			break;
		case 'B':
			if (!parse_num(optarg, 86400, &v) || v == 0)
				goto bad;
			o->boot_timeout_s = (int)v;
			break;
		case 'V':
			o->vmm = optarg;
			break;
		case 'J':
			o->jailer = optarg;
			break;
		case 'N':
			o->no_jail = true;
			break;
		case 'S':
			o->signer = optarg;
			break;
		case 'j': {
			unsigned long long first, count;
			char *colon = strchr(optarg, ':');

			if (!colon)
				goto bad;
			*colon = '\0';
			if (!parse_num(optarg, UINT32_MAX - 1, &first) ||
			    !parse_num(colon + 1, UINT32_MAX - 1, &count) || first == 0 ||
			    count == 0 || first + count > UINT32_MAX) {
				*colon = ':';
				goto bad;
			}
			o->jail_uid_first = (unsigned)first;
			o->jail_uid_count = (unsigned)count;
			break;
		}
		case 'K':
			o->kernel = optarg;
			break;
		case 'I':
			o->initrd = optarg;
			break;
		case 'k':
			if (o->n_keys == 8 || !parse_key(optarg, o->keys[o->n_keys]))
				goto bad;
			o->n_keys++;
			break;
		case 'M':
			if (!parse_num(optarg, 3600000, &v) || v < 10)
				goto bad;
			o->meter_ms = (unsigned)v;
			break;
		case 'P':
			o->prices = optarg;
			break;
		case 'U':
			if (!parse_num(optarg, ND_BACKUP_INTERVAL_MAX_S, &v))
				goto bad;
			o->backup_s = (unsigned)v;
			break;
		case 'W':
			if (parse_user(optarg, &o->run_uid, &o->run_gid) < 0)
				goto bad;
			o->privsep = true;
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
	if (o->fake && (o->vmm || o->kernel || o->initrd || o->boot_timeout_s || o->jailer ||
			o->no_jail || o->jail_uid_count)) {
		fprintf(stderr,
			"nucleusd: --vmm, --kernel, --initrd, --boot-timeout, --jailer, "
			"--jail-uids and --no-jail are the VM backend's; --fake-backend runs "
			"no VMs\n");
		return -EINVAL;
	}
	if (o->no_jail && (o->jailer || o->jail_uid_count)) {
		fprintf(stderr, "nucleusd: --no-jail with --jailer or --jail-uids\n");
		return -EINVAL;
	}
	if (o->privsep && geteuid() != 0) {
		fprintf(stderr, "nucleusd: --user needs root (it is what the daemon drops to)\n");
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

/*
 * The data directory holds secrets (nucleus.db, audit.key): it must be the daemon's
 * uid's and 0700. A looser mode is narrowed (and logged); another uid's, or one that
 * others may write to (a shared directory), is refused.
 */
static int private_dir(const char *dir, uid_t uid)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -errno;
	if (st.st_uid != uid) {
		logmsg("error", "%s is owned by uid %u, not by this daemon's uid %u: refusing it",
		       dir, (unsigned)st.st_uid, (unsigned)uid);
		return -EPERM;
	}
	if ((st.st_mode & 07777) == 0700)
		return 0;
	/* a shared directory (e.g. /tmp given by mistake) is not narrowed for others */
	if (st.st_mode & (S_ISVTX | S_IWOTH)) {
		logmsg("error", "%s is mode %04o, writable by others: not a private data directory",
		       dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (chmod(dir, 0700) < 0)
		return -errno;
	logmsg("warning", "%s was mode %04o, narrowed to 0700", dir,
	       (unsigned)(st.st_mode & 07777));
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

static bool usable(const char *path)
{
	return path && *path && access(path, R_OK) == 0;
}

/* Flag, then environment, then the candidates in order; the last candidate otherwise. */
static const char *pick(const char *flag, const char *env, const char *const *cand, size_t n)
{
	const char *v = getenv(env);

	if (flag)
		return flag;
	if (v && *v)
		return v;
	for (size_t i = 0; i < n; i++)
		if (usable(cand[i]))
			return cand[i];
	return cand[n - 1];
}

/* The directory of this executable in @buf ("" when unknown). */
static void self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	buf[n > 0 ? n : 0] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

/*
 * nucleus-signer (nucleusd/signer.h): --signer, $NUCLEUS_SIGNER, next to nucleusd
 * (installed, and in the build tree, where both are BUILD/api/daemon/), the build
 * tree's path compiled in. NULL (logged) when it cannot be executed.
 */
static const char *signer_path(const struct opts *o)
{
	static char self[PATH_MAX + 32];
	char exe[PATH_MAX];
	const char *p;

	self_dir(exe, sizeof(exe));
	snprintf(self, sizeof(self), "%s/nucleus-signer", exe);
	p = pick(o->signer, "NUCLEUS_SIGNER", (const char *[]){self, ND_BUILD_SIGNER, self}, 3);
	if (access(p, X_OK) < 0) {
		logmsg("error", "nucleus-signer %s: %s (use --signer)", p, strerror(errno));
		return NULL;
	}
	return p;
}

/* The VM backend's configuration from the options (its paths live in static buffers). */
static void vm_config(const struct opts *o, struct nd_vm_config *ret)
{
	static char self_vmm[PATH_MAX + 16], tree_vmm[PATH_MAX + 32], jailer[PATH_MAX + 32];
	char exe[PATH_MAX], *slash;
	struct nd_vm_config cfg = {.data_dir = o->data_dir, .boot_timeout_s = o->boot_timeout_s};

	self_dir(exe, sizeof(exe));
	snprintf(self_vmm, sizeof(self_vmm), "%s/nucleus-vmm", exe);
	/* In the build tree this binary is BUILD/api/daemon/nucleusd. */
	snprintf(tree_vmm, sizeof(tree_vmm), "%s/../../vmm/nucleus-vmm", exe);
	{
		const char *vmms[] = {self_vmm, tree_vmm, ND_BUILD_VMM, self_vmm};
		const char *kernels[] = {ND_BUILD_KERNEL, ND_INSTALL_GUEST_DIR "/vmlinux"};
		const char *initrds[] = {ND_BUILD_INITRD,
					 ND_INSTALL_GUEST_DIR "/initramfs.cpio.gz"};

		cfg.vmm = pick(o->vmm, "NUCLEUS_VMM", vmms, 4);
		cfg.kernel = pick(o->kernel, "NUCLEUS_KERNEL", kernels, 2);
		cfg.initrd = pick(o->initrd, "NUCLEUS_INITRD", initrds, 2);
	}
	/* the jailer is built and installed next to nucleus-vmm */
	snprintf(jailer, sizeof(jailer), "%s", cfg.vmm);
	slash = strrchr(jailer, '/');
	snprintf(slash ? slash + 1 : jailer,
		 sizeof(jailer) - (size_t)(slash ? slash + 1 - jailer : 0), "nucleus-jailer");
	if (!o->no_jail)
		cfg.jailer = pick(o->jailer, "NUCLEUS_JAILER", (const char *[]){jailer}, 1);
	cfg.jail_uid_first = o->jail_uid_first;
	cfg.jail_uid_count = o->jail_uid_count;
	*ret = cfg;
}

static int vm_backend(const struct nd_vm_config *c, struct nd_monitor *mon, struct nd_backend **ret)
{
	struct nd_vm_config cfg = *c;
	struct nd_err e = {{0}};
	int r;

	cfg.monitor = mon;
	r = nd_vm_backend__new(&cfg, ret, &e);
	if (r < 0)
		logmsg("error",
		       "VMM backend: %s (use --vmm/--kernel/--initrd, or --fake-backend "
		       "for tests)",
		       e.msg[0] ? e.msg : strerror(-r));
	else {
		const char *jail = nd_vm_backend__jail(*ret);

		logmsg("info", "VMM backend: %s, kernel %s, initramfs %s", cfg.vmm, cfg.kernel,
		       cfg.initrd);
		/* what the jail lacks here is said, never silently left out */
		logmsg(strstr(jail, "NO ") || strstr(jail, "user namespace") ? "warn" : "info",
		       "%s", jail);
	}
	return r;
}

/* ---- privilege separation (--user; docs/daemon.md "Privilege separation") ---- */

static uid_t own_uid;
static char own_key[PATH_MAX + 16];

static int own_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (strcmp(path, own_key) == 0) /* root's alone: the daemon cannot read it */
		return lchown(path, 0, 0) < 0 || chmod(path, 0600) < 0 ? -1 : 0;
	/* root's (an earlier root daemon's) becomes the user's, its group kept (a run dir's
	 * is its VM uid's); a jail uid's stays */
	if (st->st_uid == 0 && lchown(path, own_uid, (gid_t)-1) < 0)
		return -1;
	return 0;
}

static bool empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	while (d && empty && (e = readdir(d)))
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	if (d)
		closedir(d);
	return d && empty;
}

/*
 * DATA becomes @uid's: what root owns in it (an earlier daemon run as root) is handed
 * over, but audit.key, which stays root's and 0600 (the signer, started by the root
 * monitor, reads it; the daemon cannot).
 */
static int own_data_dir(const char *dir, uid_t uid)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -errno;
	if (st.st_uid != 0 && st.st_uid != uid) {
		logmsg("error", "%s is owned by uid %u, neither root's nor --user's (%u)", dir,
		       (unsigned)st.st_uid, (unsigned)uid);
		return -EPERM;
	}
	/* what is handed over must be a data dir: not a shared one (private_dir refuses it
	 * after), not a directory of something else given by mistake (--data-dir /etc) */
	if (st.st_mode & (S_ISVTX | S_IWOTH)) {
		logmsg("error", "%s is mode %04o, writable by others: not a private data directory",
		       dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	snprintf(own_key, sizeof(own_key), "%s/nucleus.db", dir);
	if (st.st_uid == 0 && access(own_key, F_OK) < 0 && !empty_dir(dir)) {
		logmsg("error",
		       "%s is root's, not empty and holds no nucleus.db: not handed over "
		       "to uid %u (a data directory of its own, please)",
		       dir, (unsigned)uid);
		return -EPERM;
	}
	own_uid = uid;
	snprintf(own_key, sizeof(own_key), "%s/audit.key", dir);
	return nftw(dir, own_one, 32, FTW_PHYS | FTW_MOUNT) != 0 ? -(errno ? errno : EPERM) : 0;
}

/*
 * For good: the user's uid and gid, no other group, no capability, no_new_privs, not
 * dumpable (no core, no ptrace by the user's other processes). A sanitized build stays
 * dumpable: LeakSanitizer's check at exit ptraces the process's own threads.
 */
static int drop_to(uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (setresuid(0, 0, 0) == 0)
		return -EPERM;
#ifdef ND_SANITIZED
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
#else
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
#endif
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

/* The monitor's end closed: it is gone, and with it every privileged operation. */
static void on_monitor(evutil_socket_t fd, short what, void *arg)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	logmsg("error", "the privileged monitor is gone: stopping (no jail, VMM signal or "
			"signer could be had without it)");
	event_base_loopexit(arg, NULL);
}

/* The one message of a corrupt database: what is wrong and the way out. */
static void corrupt(const char *data_dir, const char *problem)
{
	logmsg("error",
	       "database corrupt: %s; restore %s/nucleus.db from the backup %s/" ND_BACKUP_FILE
	       " (stop nucleusd, copy the backup over it; docs/daemon.md, \"Recovery\"); "
	       "`nucleusctl db check` checks a running daemon's database",
	       problem, data_dir, data_dir);
}

/* Free space below this at a failed start: the disk is the reason, and the log says so. */
#define START_MIN_FREE (1u << 20)

/*
 * Why a start failed (@r), in one line: a full disk (SQLite then says "disk I/O error"
 * for its shared-memory index, or "No space left" for the start's own writes), a
 * corrupt database, or @what and the error.
 */
static void start_failed(const char *data_dir, const char *what, int r, const char *problem)
{
	struct statvfs v;
	unsigned long long avail;

	if (r != -EBADMSG && statvfs(data_dir, &v) == 0 &&
	    (avail = (unsigned long long)v.f_bavail * v.f_frsize) < START_MIN_FREE) {
		logmsg("error",
		       "cannot start: the file system of %s is full (%llu KiB free; %s: %s). "
		       "nucleusd writes at start (the database's WAL and shared-memory index, "
		       "its start in the audit log): free some space there and start again",
		       data_dir, avail / 1024, what, strerror(-r));
		return;
	}
	if (r == -EBADMSG)
		corrupt(data_dir, problem);
	else
		logmsg("error", "cannot start on %s (%s): %s", data_dir, what, strerror(-r));
}

/* PRAGMA quick_check before anything writes: a corrupt database refuses the start. */
static int db_check(const char *data_dir)
{
	char problem[256];
	int r = nucleusd__db_check_at_start(data_dir, problem, sizeof(problem));

	if (r < 0)
		start_failed(data_dir, "checking the database", r, problem);
	return r;
}

/* "none" or the number, in @buf. */
static const char *gid_name(gid_t g, char buf[16])
{
	if (g == API_NO_GID)
		return "none";
	snprintf(buf, 16, "%u", (unsigned)g);
	return buf;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	logmsg("info", "signal %d: shutting down", (int)sig);
	event_base_loopexit(arg, NULL);
}

/*
 * With --user: the root half of the start (the data dir handed over, the API socket
 * bound, the monitor forked), then the drop. Returns 1 in the monitor process when it
 * ended, 0 in the daemon (now the user), < 0 on failure.
 */
static int separate(const struct opts *o, const struct nd_vm_config *vm, const char *signer,
		    struct api_server_config *scfg, struct nd_monitor **mon)
{
	struct nd_priv_cfg *pc = calloc(1, sizeof(*pc));
	struct nd_err e = {{0}};
	int r;

	if (!pc)
		return -ENOMEM;
	if (vm && vm->jailer) {
		r = nd_vm_config__priv(vm, o->run_uid, o->run_gid, pc, &e);
		if (r < 0) {
			logmsg("error", "VMM backend: %s", e.msg);
			goto out;
		}
	} else {
		snprintf(pc->data_dir, sizeof(pc->data_dir), "%s", o->data_dir);
		pc->daemon_uid = o->run_uid;
		pc->daemon_gid = o->run_gid;
	}
	snprintf(pc->signer, sizeof(pc->signer), "%s", signer);
	r = snprintf(pc->key, sizeof(pc->key), "%s/audit.key", o->data_dir) >= (int)sizeof(pc->key)
		    ? -ENAMETOOLONG
		    : 0;
	/* bound as root: the socket is still the owner's (api_server__bind) */
	if (r == 0)
		r = api_server__bind(scfg, &scfg->bound_fd);
	if (r < 0) {
		logmsg("error", "cannot listen: %s", strerror(-r));
		goto out;
	}
	scfg->prebound = true;
	r = nd_monitor__fork(pc, mon);
	if (r != 0) {
		if (r < 0)
			logmsg("error", "cannot start the privileged monitor: %s", strerror(-r));
		goto out;
	}
	r = drop_to(o->run_uid, o->run_gid);
	if (r < 0)
		logmsg("error", "cannot drop to uid %u gid %u: %s", (unsigned)o->run_uid,
		       (unsigned)o->run_gid, strerror(-r));
	else if ((r = nd_confine__daemon()) < 0)
		logmsg("error", "cannot install the daemon's seccomp filter: %s", strerror(-r));
	else
		logmsg("info",
		       "privilege separation: the daemon runs as uid %u gid %u under its "
		       "seccomp filter; the root monitor (pid %d) makes the jails and starts "
		       "the signer",
		       (unsigned)o->run_uid, (unsigned)o->run_gid, (int)nd_monitor__pid(*mon));
out:
	free(pc);
	return r;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct event_base *base = NULL;
	struct event *sigterm = NULL, *sigint = NULL, *monev = NULL;
	struct nd_backend *be = NULL;
	struct nucleusd *nd = NULL;
	struct api_server *srv = NULL;
	struct api_server_config scfg = {0};
	struct nd_config cfg = {0};
	struct nd_vm_config vm = {0};
	struct nd_monitor *mon = NULL;
	char gids[2][16];
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
	if (o.privsep) {
		r = own_data_dir(o.data_dir, o.run_uid);
		if (r < 0) {
			logmsg("error", "cannot hand %s over to uid %u: %s", o.data_dir,
			       (unsigned)o.run_uid, strerror(-r));
			goto out;
		}
	}
	r = private_dir(o.data_dir, o.privsep ? o.run_uid : geteuid());
	if (r < 0) {
		if (r != -EPERM)
			logmsg("error", "cannot make %s private: %s", o.data_dir, strerror(-r));
		goto out;
	}
	lock = lock_data_dir(o.data_dir);
	if (lock < 0) {
		r = lock;
		logmsg("error", "cannot lock %s: %s", o.data_dir,
		       r == -EADDRINUSE ? "another nucleusd uses it" : strerror(-r));
		goto out;
	}
	if (o.privsep && fchown(lock, o.run_uid, o.run_gid) < 0) {
		r = -errno;
		goto out;
	}
	cfg.signer = signer_path(&o);
	if (!cfg.signer) {
		r = -ENOENT;
		goto out;
	}
	if (!o.fake)
		vm_config(&o, &vm);
	scfg = (struct api_server_config){.socket_path = o.socket,
					  .owner_uid = o.owner_uid,
					  .owner_gid = o.owner_gid,
					  .admin_gid = o.admin_gid,
					  .max_body = o.max_body,
					  .timeout_s = o.timeout_s,
					  .request_timeout_s = o.request_timeout_s,
					  .max_conns = o.max_conns,
					  .log = api_log};
	if (o.privsep) {
		r = separate(&o, o.fake ? NULL : &vm, cfg.signer, &scfg, &mon);
		if (r == 1)
			return 0; /* the monitor process, ended: nothing of the daemon runs here */
		if (r < 0)
			goto out;
	} else if (geteuid() == 0) {
		logmsg("warning",
		       "the daemon runs as root: a bug in its parsing of client or guest "
		       "bytes would be root's; --user USER separates the privileges");
	}
	r = db_check(o.data_dir);
	if (r < 0)
		goto out;
	base = event_base_new();
	if (!base) {
		r = -ENOMEM;
		goto out;
	}
	r = o.fake ? nd_fake_backend__new(&be) : vm_backend(&vm, vm.jailer ? mon : NULL, &be);
	if (r < 0)
		goto out;
	if (o.fake)
		logmsg("warning", "FAKE backend: no microVMs are run; for tests only");
	cfg.data_dir = o.data_dir;
	cfg.monitor = mon;
	cfg.log = nd_log;
	cfg.meter_interval_ms = o.meter_ms;
	cfg.prices_path = o.prices;
	cfg.backup_interval_s = o.backup_s;
	cfg.approver_keys = (const uint8_t(*)[32])o.keys;
	cfg.n_approver_keys = o.n_keys;
	r = nucleusd__new(base, &cfg, be, &nd);
	if (r < 0) {
		nd_backend__free(be);
		start_failed(o.data_dir, "starting the audit signer, opening the database", r,
			     "SQLite could not read a page");
		goto out;
	}
	{
		uint64_t from, to;

		if (nucleusd__audit_found_at_start(nd, &from, &to))
			logmsg("warning",
			       "audit entries %" PRIu64 "-%" PRIu64 " were found unsealed at start "
			       "(a killed daemon's last entries, or a tampered log): recorded in "
			       "an "
			       "audit.epoch entry, not covered by a seal; see `nucleusctl audit ID "
			       "verify`",
			       from, to);
	}
	r = api_server__new(base, nd, &scfg, &srv);
	scfg.prebound = false; /* the server's now, even when it failed */
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
	if (mon) {
		monev = event_new(base, nd_monitor__fd(mon), EV_READ | EV_PERSIST, on_monitor,
				  base);
		if (!monev || event_add(monev, NULL) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	logmsg("info", "listening on %s (data %s, owner uid %u, owner gid %s, admin gid %s)",
	       api_server__socket_path(srv), o.data_dir, (unsigned)o.owner_uid,
	       gid_name(o.owner_gid, gids[0]), gid_name(o.admin_gid, gids[1]));
	r = event_base_dispatch(base) < 0 ? -EIO : 0;
out:
	if (monev)
		event_free(monev);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	api_server__free(srv);
	if (scfg.prebound)
		close(scfg.bound_fd);
	nucleusd__free(nd);
	if (base)
		event_base_free(base);
	nd_monitor__free(mon);
	if (lock >= 0)
		close(lock);
	return r < 0 ? 1 : 0;
}
