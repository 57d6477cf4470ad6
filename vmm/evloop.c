/* SPDX-License-Identifier: Apache-2.0 */
/*
 * evloop.c - the event loop of the device thread (the process's main thread): one
 * epoll set of device fds, the control socket, a signalfd and the stop eventfd. It runs
 * under the event loop's seccomp list (seccomp.c): nothing here may need a new call.
 *
 * vm__ev_add/mod/del may be called from any thread. A deleted entry is kept on a
 * list until the current batch of events has been dispatched, so an epoll event
 * that still points at it is recognised and dropped.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vmm/core.h"

#define EV_BATCH 32

struct ev_entry {
	int fd;
	bool dead;
	vm_ev_cb cb;
	void *opaque;
	struct ev_entry *next;
};

int vm__ev_init(struct vm *vm)
{
	vm->epfd = epoll_create1(EPOLL_CLOEXEC);
	return vm->epfd < 0 ? -errno : 0;
}

static void free_list(struct ev_entry *e)
{
	while (e) {
		struct ev_entry *n = e->next;
		free(e);
		e = n;
	}
}

void vm__ev_fini(struct vm *vm)
{
	if (vm->epfd >= 0)
		close(vm->epfd);
	vm->epfd = -1;
	free_list(vm->evs);
	free_list(vm->ev_dead);
	vm->evs = vm->ev_dead = NULL;
}

int vm__ev_add(struct vm *vm, int fd, uint32_t events, vm_ev_cb cb, void *opaque)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	struct ev_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	*e = (struct ev_entry){.fd = fd, .cb = cb, .opaque = opaque};
	struct epoll_event ev = {.events = events, .data.ptr = e};
	pthread_mutex_lock(&vm->ev_lock);
	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		pthread_mutex_unlock(&vm->ev_lock);
		free(e);
		return r;
	}
	e->next = vm->evs;
	vm->evs = e;
	pthread_mutex_unlock(&vm->ev_lock);
	return 0;
}

static struct ev_entry *find_locked(struct vm *vm, int fd, struct ev_entry ***ret_link)
{
	for (struct ev_entry **l = &vm->evs; *l; l = &(*l)->next)
		if ((*l)->fd == fd) {
			*ret_link = l;
			return *l;
		}
	return NULL;
}

/*
 * vm__ev_mod and vm__ev_del: under the lock, finds fd's entry and changes its epoll
 * registration (op EPOLL_CTL_MOD, to events) or drops it (EPOLL_CTL_DEL: the entry goes
 * to the dead list). -ENOENT when fd has no entry.
 */
static int ev_change(struct vm *vm, int fd, int op, uint32_t events)
{
	struct ev_entry **link;
	int r = 0;
	pthread_mutex_lock(&vm->ev_lock);
	struct ev_entry *e = find_locked(vm, fd, &link);
	if (!e) {
		r = -ENOENT;
	} else if (op == EPOLL_CTL_MOD) {
		struct epoll_event ev = {.events = events, .data.ptr = e};
		if (epoll_ctl(vm->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			r = -errno;
	} else {
		epoll_ctl(vm->epfd, EPOLL_CTL_DEL, fd, NULL);
		*link = e->next;
		e->dead = true;
		e->next = vm->ev_dead;
		vm->ev_dead = e;
	}
	pthread_mutex_unlock(&vm->ev_lock);
	return r;
}

int vm__ev_mod(struct vm *vm, int fd, uint32_t events)
{
	return ev_change(vm, fd, EPOLL_CTL_MOD, events);
}

int vm__ev_del(struct vm *vm, int fd)
{
	return ev_change(vm, fd, EPOLL_CTL_DEL, 0);
}

static void on_wake(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t v;
	if (read(vm->wake_fd, &v, sizeof(v)) < 0) {
		/* nonblocking: nothing pending */
	}
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;
	while (read(vm->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (atomic_load(&vm->exit_status) == -1)
				vm__log(vm, "signal %u: stopping the VM", si.ssi_signo);
			vm__request_stop(vm, VMM_EXIT_STOPPED);
		}
	}
}

/* The signalfd is made before the event loop's seccomp filter, which lacks signalfd4;
 * vm__free() closes it. */
int vm__ev_signals(struct vm *vm)
{
	sigset_t set;

	if (vm->sig_fd >= 0)
		return 0;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	vm->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return vm->sig_fd < 0 ? -errno : 0;
}

int vm__ev_run(struct vm *vm)
{
	int r;

	if ((r = vm__ev_signals(vm)) < 0)
		return r;
	if ((r = vm__ev_add(vm, vm->sig_fd, EPOLLIN, on_signal, vm)) < 0 ||
	    (r = vm__ev_add(vm, vm->wake_fd, EPOLLIN, on_wake, vm)) < 0)
		goto out;

	while (atomic_load(&vm->exit_status) == -1) {
		struct epoll_event evs[EV_BATCH];
		int n = epoll_wait(vm->epfd, evs, EV_BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		for (int i = 0; i < n && atomic_load(&vm->exit_status) == -1; i++) {
			struct ev_entry *e = evs[i].data.ptr;
			pthread_mutex_lock(&vm->ev_lock);
			bool dead = e->dead;
			pthread_mutex_unlock(&vm->ev_lock);
			if (!dead)
				e->cb(e->opaque, evs[i].events);
		}
		pthread_mutex_lock(&vm->ev_lock);
		struct ev_entry *dead = vm->ev_dead;
		vm->ev_dead = NULL;
		pthread_mutex_unlock(&vm->ev_lock);
		free_list(dead);
	}
	r = 0;
out:
	vm__ev_del(vm, vm->wake_fd);
	vm__ev_del(vm, vm->sig_fd);
	return r;
}
