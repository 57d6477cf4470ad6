/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control.c - the per-VM control socket (docs/vmm.md, "Control protocol"): a Unix
 * stream socket; each request is one line of JSON {"op": "state"|"pause"|"resume"|
 * "stop"}, each reply one line {"ok": true, "state": ..., ...} or {"ok": false,
 * "error": ...}. Served on the event-loop thread. Also the client, vmm__control().
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/core.h"

#define CONTROL_LINE_MAX 1024
#define CONTROL_CLIENTS	 8
#define CLIENT_TIMEOUT_S 60

struct control;

struct control_client {
	struct control *ctl;
	int fd;
	char buf[CONTROL_LINE_MAX];
	size_t len;
};

struct control {
	struct vm *vm;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct control_client *clients[CONTROL_CLIENTS];
};

int control__parse(const char *line, size_t len, enum control_op *ret)
{
	static const char *const names[] = {
		"state",       "pause", "resume", "stop",
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
		"test-sigsys", /* test builds only */
#endif
	};
	json_error_t err;

	if (!line || len == 0 || len > CONTROL_LINE_MAX)
		return -EINVAL;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return -EINVAL;
	int r = -EPROTO;
	json_t *op = json_is_object(j) ? json_object_get(j, "op") : NULL;
	if (op && json_is_string(op)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(json_string_value(op), names[i]) == 0) {
				*ret = (enum control_op)i;
				r = 0;
			}
	}
	json_decref(j);
	return r;
}

static const char *state_name(int state)
{
	switch (state) {
	case VM_RUNNING:
		return "running";
	case VM_PAUSED:
		return "paused";
	default:
		return "stopping";
	}
}

static json_t *state_reply(struct vm *vm)
{
	/* "phases": the boot trace so far (a VM that hangs says where) */
	return json_pack("{s:b, s:s, s:I, s:I, s:i, s:I, s:o*}", "ok", 1, "state",
			 state_name(atomic_load(&vm->state)), "boot_us",
			 (json_int_t)atomic_load(&vm->boot_us), "uptime_us",
			 (json_int_t)((vm__now_ns() - vm->start_ns) / 1000), "vcpus",
			 (int)vm->nr_vcpus, "mem_mib", (json_int_t)(vm->mem.size >> 20), "phases",
			 vm__trace_json());
}

static json_t *handle(struct vm *vm, const char *line, size_t len)
{
	enum control_op op;
	int r = control__parse(line, len, &op);
	if (r < 0)
		return json_pack("{s:b, s:s}", "ok", 0, "error",
				 r == -EPROTO ? "unknown op" : "malformed request");
	switch (op) {
	case CONTROL_PAUSE:
		if (atomic_load(&vm->state) == VM_RUNNING && vm__pause(vm) == 0)
			vm__log(vm, "paused");
		break;
	case CONTROL_RESUME:
		if (atomic_load(&vm->state) == VM_PAUSED) {
			vm__resume(vm);
			vm__log(vm, "resumed");
		}
		break;
	case CONTROL_STOP:
		if (atomic_load(&vm->exit_status) == -1)
			vm__log(vm, "stop requested on the control socket");
		vm__request_stop(vm, VMM_EXIT_STOPPED);
		break;
	case CONTROL_STATE:
		break;
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
	case CONTROL_TEST_SIGSYS:
		vm__seccomp_test_trigger(vm, "event loop");
		break;
#endif
	}
	return state_reply(vm);
}

static void client_free(struct control_client *c)
{
	if (!c)
		return;
	struct control *ctl = c->ctl;
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		if (ctl->clients[i] == c)
			ctl->clients[i] = NULL;
	vm__ev_del(ctl->vm, c->fd);
	close(c->fd);
	free(c);
}

static bool reply(struct control_client *c, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return false;
	size_t n = strlen(s);
	s[n] = '\n'; /* replaces the terminator; length is tracked */
	bool ok = send(c->fd, s, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1);
	free(s);
	return ok;
}

/* Handle every complete line in the buffer; false when the client must go. */
static bool drain_lines(struct control_client *c)
{
	char *nl;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		size_t line = (size_t)(nl - c->buf);
		if (!reply(c, handle(c->ctl->vm, c->buf, line)))
			return false;
		memmove(c->buf, nl + 1, c->len - line - 1);
		c->len -= line + 1;
	}
	return c->len < sizeof(c->buf); /* a full buffer without newline: too long */
}

static void on_client(void *opaque, uint32_t events)
{
	struct control_client *c = opaque;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	c->len += (size_t)n;
	if (!drain_lines(c))
		client_free(c);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct control *ctl = opaque;
	int fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	int slot = -1;
	for (int i = 0; i < CONTROL_CLIENTS && slot < 0; i++)
		if (!ctl->clients[i])
			slot = i;
	struct control_client *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->fd = fd;
	if (vm__ev_add(ctl->vm, fd, EPOLLIN | EPOLLRDHUP, on_client, c) < 0) {
		close(fd);
		free(c);
		return;
	}
	ctl->clients[slot] = c;
}

int control__open(struct vm *vm, const char *path, struct control **ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->vm = vm;
	strcpy(sa.sun_path, path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->fd < 0) {
		r = -errno;
		goto fail;
	}
	unlink(path);
	if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ctl->fd, 8) < 0) {
		r = -errno;
		goto fail;
	}
	strcpy(ctl->path, path);
	if ((r = vm__seccomp_fd(vm, VM_FD_LISTEN, ctl->fd)) < 0 ||
	    (r = vm__ev_add(vm, ctl->fd, EPOLLIN, on_accept, ctl)) < 0)
		goto fail;
	*ret = ctl;
	return 0;
fail:
	control__free(ctl);
	return r;
}

void control__free(struct control *ctl)
{
	if (!ctl)
		return;
	for (int i = 0; i < CONTROL_CLIENTS; i++)
		client_free(ctl->clients[i]);
	if (ctl->fd >= 0) {
		vm__ev_del(ctl->vm, ctl->fd);
		close(ctl->fd);
	}
	if (ctl->path[0])
		unlink(ctl->path);
	free(ctl);
}

/* ---- client --------------------------------------------------------------------- */

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		len += (size_t)n;
		char *nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			return (int)(nl - buf);
		}
	}
	return -EPROTO;
}

static int parse_reply(const char *line, struct vmm_control_reply *out)
{
	json_error_t err;
	json_t *j = json_loads(line, 0, &err);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return -EPROTO;
	}
	struct vmm_control_reply r = {.boot_us = -1, .first_run_us = -1};
	r.ok = json_is_true(json_object_get(j, "ok"));
	const char *s = json_string_value(json_object_get(j, "state"));
	if (s)
		snprintf(r.state, sizeof(r.state), "%s", s);
	s = json_string_value(json_object_get(j, "error"));
	if (s)
		snprintf(r.error, sizeof(r.error), "%s", s);
	json_t *v;
	if ((v = json_object_get(j, "boot_us")) && json_is_integer(v))
		r.boot_us = json_integer_value(v);
	if ((v = json_object_get(j, "uptime_us")) && json_is_integer(v))
		r.uptime_us = json_integer_value(v);
	if ((v = json_object_get(j, "vcpus")) && json_is_integer(v))
		r.vcpus = (uint32_t)json_integer_value(v);
	if ((v = json_object_get(j, "mem_mib")) && json_is_integer(v))
		r.mem_mib = (uint32_t)json_integer_value(v);
	if ((v = json_object_get(j, "phases")) && json_is_object(v)) {
		json_int_t newest = -1;
		const char *name;
		json_t *at;

		json_object_foreach(v, name, at)
		{
			if (!json_is_integer(at))
				continue;
			if (json_integer_value(at) >= newest) {
				newest = json_integer_value(at);
				snprintf(r.last_phase, sizeof(r.last_phase), "%s", name);
			}
			if (strcmp(name, "first_run") == 0)
				r.first_run_us = json_integer_value(at);
		}
	}
	json_decref(j);
	*out = r;
	return 0;
}

int vmm__control(const char *path, const char *op, struct vmm_control_reply *ret)
{
	char req[64], line[CONTROL_LINE_MAX];
	int n = snprintf(req, sizeof(req), "{\"op\":\"%s\"}\n", op);
	if (n < 0 || (size_t)n >= sizeof(req) || strpbrk(op, "\"\\\n"))
		return -EINVAL;
	int fd = connect_to(path);
	if (fd < 0)
		return fd;
	int r = 0;
	ssize_t w = send(fd, req, (size_t)n, MSG_NOSIGNAL);
	if (w != n)
		r = w < 0 ? -errno : -EIO;
	if (r == 0 && (r = read_line(fd, line, sizeof(line))) >= 0)
		r = parse_reply(line, ret);
	close(fd);
	return r;
}

const char *vmm__exit_name(int status)
{
	switch (status) {
	case VMM_EXIT_SHUTDOWN:
		return "shutdown";
	case VMM_EXIT_SETUP:
		return "setup error";
	case VMM_EXIT_CRASH:
		return "crash";
	case VMM_EXIT_GUEST_FAULT:
		return "guest fault";
	case VMM_EXIT_STOPPED:
		return "stopped";
	default:
		return "unknown";
	}
}
