/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded worker pool for blocking work of the daemon (nucleusd/pool.c): at most
 * @threads worker threads (started on demand), at most @queue_max jobs waiting for one,
 * and every completion handed back to the event loop through ONE eventfd.
 *
 * Threads and ownership:
 *   - nd_pool__new, nd_pool__submit, nd_pool__free: the event-loop thread only.
 *   - struct nd_pool_job: the submitter fills work/done/cancel before nd_pool__submit;
 *     from then on the job belongs to the pool until its done() runs. work() runs on one
 *     worker thread; done() runs on the loop thread (or inside nd_pool__free); cancel()
 *     runs inside nd_pool__free (the loop thread) while work() may still run on a
 *     worker, so it must only touch what is safe from another thread (e.g. shut down a
 *     socket the work blocks on). The link fields are the pool's (under its lock).
 *   - struct nd_pool: its lock guards the queue, the finished list, the counters and
 *     the stopping flag; the eventfd event and the thread array belong to the loop.
 *
 * Contract: every job that nd_pool__submit accepted gets done() exactly once: from the
 * loop after its work() returned (@dropped false), or from nd_pool__free (@dropped
 * true: the daemon is going away; work() may or may not have run, the result is not
 * wanted). nd_pool__free stops accepting, calls cancel() of the jobs being worked on,
 * wakes and joins every worker, then drops what is left: no polling, nothing leaked.
 */
#ifndef NUCLEUS_NUCLEUSD_POOL_H
#define NUCLEUS_NUCLEUSD_POOL_H

#include <stdbool.h>

struct event_base;
struct nd_pool;

struct nd_pool_job {
	void (*work)(struct nd_pool_job *j);		   /* worker thread */
	void (*done)(struct nd_pool_job *j, bool dropped); /* loop thread, exactly once */
	void (*cancel)(struct nd_pool_job *j);		   /* optional: unblock work() */
	/* The pool's (under its lock). */
	struct nd_pool_job *next;
	bool running;
};

struct nd_pool_stats {
	unsigned threads; /* started so far */
	unsigned queued;  /* waiting for a worker */
	unsigned running; /* in work() */
};

/* @threads >= 1 workers at most, @queue_max >= 1 jobs waiting at most. */
int nd_pool__new(struct event_base *base, unsigned threads, unsigned queue_max,
		 struct nd_pool **ret);
/*
 * Queues @j (work/done set). -EAGAIN when @queue_max jobs already wait (the caller
 * answers 503), -ECANCELED once nd_pool__free began, -errno when no worker could be
 * started and none exists. On error done() is never called.
 */
int nd_pool__submit(struct nd_pool *p, struct nd_pool_job *j);
void nd_pool__stats(struct nd_pool *p, struct nd_pool_stats *ret);
/* See the contract above. NULL is fine. */
void nd_pool__free(struct nd_pool *p);

#endif
