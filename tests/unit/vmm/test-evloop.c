/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event loop's registry (vmm/evloop.c): vm__ev_add/mod/del against the epoll set,
 * without KVM or a running loop. An eventfd with a zero count is writable and not
 * readable, so which events epoll reports shows what is registered.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/core.h"
#include "vmm/vm-internal.h"

static struct vm *vm;
static int efd = -1;

static void setup(void)
{
	vm = calloc(1, sizeof(*vm));
	cr_assert_not_null(vm);
	pthread_mutex_init(&vm->ev_lock, NULL);
	cr_assert_eq(vm__ev_init(vm), 0);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
}

static void teardown(void)
{
	vm__ev_fini(vm);
	pthread_mutex_destroy(&vm->ev_lock);
	free(vm);
	close(efd);
}

TestSuite(evloop, .init = setup, .fini = teardown);

static void on_event(void *opaque, uint32_t events)
{
}

/* The events epoll reports now for the one fd it may hold; 0 for none. */
static uint32_t ready_now(void)
{
	struct epoll_event ev[2];
	int n = epoll_wait(vm->epfd, ev, 2, 0);

	cr_assert_geq(n, 0);
	cr_assert_leq(n, 1);
	return n ? ev[0].events : 0;
}

Test(evloop, unknown_fd_cannot_be_modified_or_deleted)
{
	cr_expect_eq(vm__ev_mod(vm, efd, EPOLLOUT), -ENOENT);
	cr_expect_eq(vm__ev_del(vm, efd), -ENOENT);
	cr_assert_eq(vm__ev_add(vm, efd, EPOLLIN, on_event, NULL), 0);
	cr_expect_eq(vm__ev_mod(vm, efd + 1000, EPOLLOUT), -ENOENT, "another fd is unknown");
	cr_expect_eq(vm__ev_del(vm, efd + 1000), -ENOENT);
}

Test(evloop, mod_changes_the_events)
{
	cr_assert_eq(vm__ev_add(vm, efd, EPOLLIN, on_event, NULL), 0);
	cr_expect_eq(ready_now(), 0, "a zero eventfd is not readable");
	cr_assert_eq(vm__ev_mod(vm, efd, EPOLLOUT), 0);
	cr_expect_eq(ready_now(), EPOLLOUT);
	cr_assert_eq(vm__ev_mod(vm, efd, EPOLLIN), 0);
	cr_expect_eq(ready_now(), 0);
}

Test(evloop, del_drops_the_fd_once)
{
	cr_assert_eq(vm__ev_add(vm, efd, EPOLLOUT, on_event, NULL), 0);
	cr_expect_eq(ready_now(), EPOLLOUT);
	cr_assert_eq(vm__ev_del(vm, efd), 0);
	cr_expect_eq(ready_now(), 0, "still in the epoll set");
	cr_expect_null(vm->evs);
	cr_expect_not_null(vm->ev_dead, "kept until the batch of events is dispatched");
	cr_expect_eq(vm__ev_del(vm, efd), -ENOENT);
	cr_expect_eq(vm__ev_mod(vm, efd, EPOLLOUT), -ENOENT);
	cr_assert_eq(vm__ev_add(vm, efd, EPOLLOUT, on_event, NULL), 0, "can come back");
	cr_expect_eq(ready_now(), EPOLLOUT);
}
