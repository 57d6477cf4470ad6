// SPDX-License-Identifier: Apache-2.0
/*
 * Metering: CPU time from cgroup v2 cpu.stat or /proc/PID/task/ * /stat, RSS from
 * /proc/PID/status or smaps_rollup, and the sampler that turns readings into debits.
 * The parsers are pure (text in, numbers out); the readers only add file I/O.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget/budget.h"

/* Parses a decimal unsigned integer at *p, advancing it; -EINVAL / -ERANGE. */
static int parse_u64(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*ret = v;
	return 0;
}

/* Start of the line of @text that begins with @key followed by one of @seps. */
static const char *find_line(const char *text, const char *key, const char *seps)
{
	size_t n = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, key, n) == 0 && l[n] && strchr(seps, l[n]))
			return l + n;
	return NULL;
}

int budget__parse_cpu_stat(const char *text, uint64_t *ret_usec)
{
	const char *p;

	if (!text || !(p = find_line(text, "usage_usec", " \t")))
		return -ENODATA;
	p += strspn(p, " \t");
	return parse_u64(&p, ret_usec);
}

int budget__parse_proc_stat(const char *text, uint64_t *ret_ticks)
{
	uint64_t utime = 0, stime = 0, x;
	const char *p;

	/* "pid (comm) state ...": comm may hold anything, so the LAST ')' ends it. */
	if (!text || !(p = strrchr(text, ')')))
		return -EINVAL;
	p++;
	/* Fields after comm: 3 state, 4..13 numbers, 14 utime, 15 stime. */
	for (int field = 3; field <= 15; field++) {
		if (*p != ' ')
			return -EINVAL;
		p++;
		if (field == 3) {
			if (!*p || *p == ' ')
				return -EINVAL;
			p++;
			continue;
		}
		if (*p == '-') /* tty_nr, tpgid may be negative */
			p++;
		if (parse_u64(&p, &x) < 0)
			return -EINVAL;
		if (field == 14)
			utime = x;
		else if (field == 15)
			stime = x;
	}
	if (utime > UINT64_MAX - stime)
		return -ERANGE;
	*ret_ticks = utime + stime;
	return 0;
}

int budget__parse_kb_field(const char *text, const char *label, uint64_t *ret_kib)
{
	const char *p;
	uint64_t v;
	int r;

	if (!text || !label || !(p = find_line(text, label, ":")))
		return -ENODATA;
	p++;
	p += strspn(p, " \t");
	r = parse_u64(&p, &v);
	if (r < 0)
		return r;
	if (strncmp(p, " kB", 3) != 0)
		return -EINVAL;
	*ret_kib = v;
	return 0;
}

/* Reads a small file into @buf (NUL-terminated). */
static int read_text(const char *path, char *buf, size_t len)
{
	size_t off = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (off < len - 1) {
		ssize_t n = read(fd, buf + off, len - 1 - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	return r;
}

int budget__cpu_usec_cgroup(const char *cgroup, uint64_t *ret_usec)
{
	char path[PATH_MAX], buf[4096];
	int r;

	if (!cgroup || snprintf(path, sizeof(path), "%s/cpu.stat", cgroup) >= (int)sizeof(path))
		return -EINVAL;
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return budget__parse_cpu_stat(buf, ret_usec);
}

static int task_ticks(const char *dir, const char *tid, uint64_t *ticks)
{
	char path[PATH_MAX], buf[1024];
	uint64_t t;
	int r;

	if (snprintf(path, sizeof(path), "%s/%s/stat", dir, tid) >= (int)sizeof(path))
		return -EINVAL;
	r = read_text(path, buf, sizeof(buf));
	if (r == -ENOENT || r == -ESRCH)
		return 0; /* the thread exited meanwhile */
	if (r < 0)
		return r;
	r = budget__parse_proc_stat(buf, &t);
	if (r < 0)
		return r;
	*ticks += t;
	return 0;
}

int budget__cpu_usec_pid(const char *proc, pid_t pid, uint64_t *ret_usec)
{
	char dir[PATH_MAX];
	uint64_t ticks = 0;
	struct dirent *de;
	long hz = sysconf(_SC_CLK_TCK);
	DIR *d;
	int r = 0;

	if (pid <= 0 || hz <= 0)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/%d/task", proc ? proc : "/proc", (int)pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while (r == 0 && (de = readdir(d)))
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
			r = task_ticks(dir, de->d_name, &ticks);
	closedir(d);
	if (r < 0)
		return r;
	if (ticks > UINT64_MAX / 1000000)
		return -ERANGE;
	*ret_usec = ticks * 1000000 / (uint64_t)hz;
	return 0;
}

int budget__rss_kib_pid(const char *proc, pid_t pid, uint64_t *ret_kib)
{
	char path[PATH_MAX], buf[8192];
	const char *root = proc ? proc : "/proc";
	int r;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%d/status", root, (int)pid);
	r = read_text(path, buf, sizeof(buf));
	if (r == 0 && budget__parse_kb_field(buf, "VmRSS", ret_kib) == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%d/smaps_rollup", root, (int)pid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return budget__parse_kb_field(buf, "Rss", ret_kib);
}

void budget_sampler__init(struct budget_sampler *s)
{
	memset(s, 0, sizeof(*s));
}

/* One MiB x second in the sampler's unit (KiB x us x 2, trapezoid sums). */
#define MIB_S_UNITS (1024ULL * 1000000ULL * 2ULL)

static int64_t mem_step(struct budget_sampler *s, const struct budget_sample *now)
{
	uint64_t dt, kib, x, whole;

	if (now->t_us <= s->last.t_us)
		return 0;
	dt = (uint64_t)(now->t_us - s->last.t_us);
	if (__builtin_add_overflow(s->last.rss_kib, now->rss_kib, &kib) ||
	    __builtin_mul_overflow(kib, dt, &x) || __builtin_add_overflow(s->mem_rem, x, &x)) {
		/* Absurd readings: debit at MiB x s precision instead of overflowing. */
		whole = (kib / 2048) * (dt / 1000000);
		s->mem_rem = 0;
		return whole > (uint64_t)BUDGET_AMOUNT_MAX ? BUDGET_AMOUNT_MAX : (int64_t)whole;
	}
	whole = x / MIB_S_UNITS;
	s->mem_rem = x % MIB_S_UNITS;
	return (int64_t)whole;
}

static int64_t cpu_step(struct budget_sampler *s, const struct budget_sample *now)
{
	/* Backwards: a new process or cgroup whose counter started from 0. */
	uint64_t d = now->cpu_usec >= s->last.cpu_usec ? now->cpu_usec - s->last.cpu_usec
						       : now->cpu_usec;

	d += s->cpu_rem_usec;
	s->cpu_rem_usec = d % 1000;
	d /= 1000;
	return d > (uint64_t)BUDGET_AMOUNT_MAX ? BUDGET_AMOUNT_MAX : (int64_t)d;
}

void budget_sampler__step(struct budget_sampler *s, const struct budget_sample *now,
			  struct budget_delta *ret)
{
	struct budget_delta d = {0};
	uint64_t peak_mib;

	if (now->rss_kib > s->peak_kib)
		s->peak_kib = now->rss_kib;
	if (s->primed) {
		d.cpu_ms = cpu_step(s, now);
		d.mem_mib_s = mem_step(s, now);
	}
	peak_mib = s->peak_kib / 1024 + (s->peak_kib % 1024 ? 1 : 0);
	d.peak_mib = peak_mib > (uint64_t)BUDGET_AMOUNT_MAX ? BUDGET_AMOUNT_MAX : (int64_t)peak_mib;
	if (!s->primed || now->t_us > s->last.t_us)
		s->last.t_us = now->t_us;
	s->last.cpu_usec = now->cpu_usec;
	s->last.rss_kib = now->rss_kib;
	s->primed = true;
	*ret = d;
}
