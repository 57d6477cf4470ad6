// SPDX-License-Identifier: Apache-2.0
/*
 * The bounded worker pool (nucleusd/pool.c): a full queue is -EAGAIN, every accepted
 * job completes exactly once on the loop thread, and shutdown with jobs in flight
 * cancels, joins and drops them (ASan's leak check covers the "no leak" part).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "nucleusd/pool.h"

struct tjob {
	struct nd_pool_job pj; /* first: the pool hands this pointer back */
	int sock[2];	       /* work() waits for sock[1] to become readable */
	atomic_bool started, worked;
	int done_calls, dropped;
	pthread_t done_thread;
	int order, *next_order;
};

static struct event_base *base;
static pthread_t loop_thread;

static void setup(void)
{
	base = event_base_new();
	cr_assert_not_null(base);
	loop_thread = pthread_self();
}

static void teardown(void)
{
	event_base_free(base);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 30);

static void work_block(struct nd_pool_job *pj)
{
	struct tjob *t = (struct tjob *)pj;
	struct pollfd pfd = {.fd = t->sock[1], .events = POLLIN};

	atomic_store(&t->started, true);
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	atomic_store(&t->worked, true);
}

static void cancel_block(struct nd_pool_job *pj)
{
	struct tjob *t = (struct tjob *)pj;

	shutdown(t->sock[0], SHUT_RDWR); /* the worker's poll() wakes with POLLIN|POLLHUP */
}

static void done_count(struct nd_pool_job *pj, bool dropped)
{
	struct tjob *t = (struct tjob *)pj;

	t->done_calls++;
	t->dropped += dropped;
	t->done_thread = pthread_self();
	if (t->next_order)
		t->order = (*t->next_order)++;
}

static void tjob_init(struct tjob *t, int *next_order)
{
	memset(t, 0, sizeof(*t));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t->sock), 0);
	t->pj.work = work_block;
	t->pj.done = done_count;
	t->pj.cancel = cancel_block;
	t->next_order = next_order;
}

static void tjob_release(struct tjob *t)
{
	cr_assert_eq(write(t->sock[0], "x", 1), 1);
}

static void tjob_fini(struct tjob *t)
{
	close(t->sock[0]);
	close(t->sock[1]);
}

static void wait_started(struct tjob *t)
{
	for (int i = 0; i < 5000 && !atomic_load(&t->started); i++)
		usleep(1000);
	cr_assert(atomic_load(&t->started), "the job never started");
}

/* Runs the loop until @n jobs of @t have their done() (or 5 s pass). */
static void loop_until(struct tjob *t, size_t n)
{
	for (int i = 0; i < 5000; i++) {
		size_t k = 0;

		for (size_t j = 0; j < n; j++)
			k += t[j].done_calls > 0;
		if (k == n)
			return;
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert_fail("completions were not delivered");
}

Test(pool, a_full_queue_is_eagain_and_completions_come_once_in_order_on_the_loop)
{
	struct nd_pool *p;
	struct nd_pool_stats st;
	struct tjob t[4];
	int order = 0;

	cr_assert_eq(nd_pool__new(base, 1, 2, &p), 0);
	for (int i = 0; i < 4; i++)
		tjob_init(&t[i], &order);
	cr_assert_eq(nd_pool__submit(p, &t[0].pj), 0);
	wait_started(&t[0]);
	cr_assert_eq(nd_pool__submit(p, &t[1].pj), 0);
	cr_assert_eq(nd_pool__submit(p, &t[2].pj), 0);
	/* One worker busy, two jobs queued: the queue is full. */
	cr_assert_eq(nd_pool__submit(p, &t[3].pj), -EAGAIN);
	nd_pool__stats(p, &st);
	cr_assert_eq(st.threads, 1);
	cr_assert_eq(st.queued, 2);
	cr_assert_eq(st.running, 1);
	for (int i = 0; i < 3; i++)
		tjob_release(&t[i]);
	loop_until(t, 3);
	/* A few more turns of the loop deliver nothing twice. */
	for (int i = 0; i < 20; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(500);
	}
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(t[i].done_calls, 1, "job %d: %d completions", i, t[i].done_calls);
		cr_assert_eq(t[i].dropped, 0);
		cr_assert(atomic_load(&t[i].worked));
		cr_assert(pthread_equal(t[i].done_thread, loop_thread), "done() off the loop");
		cr_assert_eq(t[i].order, i, "FIFO: job %d completed as %d", i, t[i].order);
	}
	cr_assert_eq(t[3].done_calls, 0, "a refused job must never complete");
	/* Room again after the queue drained. */
	tjob_release(&t[3]);
	cr_assert_eq(nd_pool__submit(p, &t[3].pj), 0);
	loop_until(&t[3], 1);
	cr_assert_eq(t[3].done_calls, 1);
	nd_pool__free(p);
	for (int i = 0; i < 4; i++)
		tjob_fini(&t[i]);
}

Test(pool, workers_start_on_demand_up_to_the_maximum)
{
	struct nd_pool *p;
	struct nd_pool_stats st;
	struct tjob t[5];

	cr_assert_eq(nd_pool__new(base, 3, 8, &p), 0);
	nd_pool__stats(p, &st);
	cr_assert_eq(st.threads, 0);
	for (int i = 0; i < 5; i++) {
		tjob_init(&t[i], NULL);
		cr_assert_eq(nd_pool__submit(p, &t[i].pj), 0);
	}
	for (int i = 0; i < 3; i++)
		wait_started(&t[i]);
	nd_pool__stats(p, &st);
	cr_assert_eq(st.threads, 3);
	cr_assert_eq(st.running, 3);
	cr_assert_eq(st.queued, 2);
	for (int i = 0; i < 5; i++)
		tjob_release(&t[i]);
	loop_until(t, 5);
	nd_pool__stats(p, &st);
	cr_assert_eq(st.threads, 3, "never more than the maximum");
	cr_assert_eq(st.running + st.queued, 0);
	nd_pool__free(p);
	for (int i = 0; i < 5; i++)
		tjob_fini(&t[i]);
}

Test(pool, shutdown_cancels_joins_and_drops_jobs_in_flight)
{
	struct nd_pool *p;
	struct tjob t[4];

	cr_assert_eq(nd_pool__new(base, 2, 4, &p), 0);
	for (int i = 0; i < 4; i++) {
		tjob_init(&t[i], NULL);
		cr_assert_eq(nd_pool__submit(p, &t[i].pj), 0);
	}
	wait_started(&t[0]);
	wait_started(&t[1]);
	/* t[0], t[1] block in work() until cancelled; t[2], t[3] wait in the queue. */
	nd_pool__free(p);
	for (int i = 0; i < 2; i++) {
		cr_assert(atomic_load(&t[i].worked), "job %d was not unblocked and joined", i);
		cr_assert_eq(t[i].done_calls, 1);
		cr_assert_eq(t[i].dropped, 1);
		cr_assert(pthread_equal(t[i].done_thread, loop_thread));
	}
	for (int i = 2; i < 4; i++) {
		cr_assert(!atomic_load(&t[i].started), "a queued job ran after shutdown");
		cr_assert_eq(t[i].done_calls, 1);
		cr_assert_eq(t[i].dropped, 1);
	}
	for (int i = 0; i < 4; i++)
		tjob_fini(&t[i]);
}

Test(pool, a_finished_but_undelivered_job_is_dropped_once_at_shutdown)
{
	struct nd_pool *p;
	struct nd_pool_stats st;
	struct tjob t;

	cr_assert_eq(nd_pool__new(base, 1, 1, &p), 0);
	tjob_init(&t, NULL);
	tjob_release(&t);
	cr_assert_eq(nd_pool__submit(p, &t.pj), 0);
	for (int i = 0; i < 5000; i++) {
		nd_pool__stats(p, &st);
		if (atomic_load(&t.worked) && st.running == 0)
			break;
		usleep(1000);
	}
	cr_assert(atomic_load(&t.worked));
	cr_assert_eq(t.done_calls, 0, "done() before the loop ran");
	nd_pool__free(p);
	cr_assert_eq(t.done_calls, 1);
	cr_assert_eq(t.dropped, 1);
	tjob_fini(&t);
}

Test(pool, bad_arguments_are_refused)
{
	struct nd_pool *p = NULL;

	cr_assert_eq(nd_pool__new(base, 0, 1, &p), -EINVAL);
	cr_assert_eq(nd_pool__new(base, 1, 0, &p), -EINVAL);
	cr_assert_null(p);
	nd_pool__free(NULL);
}
