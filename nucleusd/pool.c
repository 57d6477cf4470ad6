// SPDX-License-Identifier: Apache-2.0
/*
 * The bounded worker pool (face: nucleusd/pool.h, which states who owns what).
 *
 * Workers start on demand (a job is queued and no idle worker is left) up to the
 * maximum and then stay until nd_pool__free. A worker takes the oldest queued job, runs
 * work() without the lock, puts the job on the finished list and bumps the eventfd; the
 * loop's event on it hands every finished job to its done(). Shutdown sets `stopping`
 * under the lock, cancels what is being worked on, broadcasts and joins.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <event2/event.h>

#include "nucleusd/pool.h"

struct worker {
	pthread_t th;
	struct nd_pool *p;
	struct nd_pool_job *cur; /* under p->lock: the job in work(), or NULL */
};

struct nd_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a job was queued, or stopping */
	/* Under lock. */
	struct nd_pool_job *qhead, **qtail; /* queued, oldest first */
	struct nd_pool_job *dhead, **dtail; /* finished, not yet handed to done() */
	unsigned queued, running, idle, n_threads;
	bool stopping;
	/* Fixed at creation. */
	unsigned max_threads, queue_max;
	struct worker *w; /* [max_threads]; w[0..n_threads) started */
	int efd;
	/* Loop thread. */
	struct event *ev;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nd_pool *p = w->p;
	struct nd_pool_job *j;
	uint64_t one = 1;
	ssize_t n;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stopping && !p->qhead) {
			p->idle++;
			pthread_cond_wait(&p->cond, &p->lock);
			p->idle--;
		}
		if (p->stopping)
			break; /* what is still queued is dropped by nd_pool__free */
		j = p->qhead;
		p->qhead = j->next;
		if (!p->qhead)
			p->qtail = &p->qhead;
		p->queued--;
		p->running++;
		j->next = NULL;
		j->running = true;
		w->cur = j;
		pthread_mutex_unlock(&p->lock);

		j->work(j);

		pthread_mutex_lock(&p->lock);
		w->cur = NULL;
		j->running = false;
		p->running--;
		*p->dtail = j;
		p->dtail = &j->next;
		pthread_mutex_unlock(&p->lock);
		/* The counter cannot overflow in practice; a failed write is only EINTR. */
		do
			n = write(p->efd, &one, sizeof(one));
		while (n < 0 && errno == EINTR);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Loop: hands every finished job to its done(), oldest first. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct nd_pool *p = arg;
	struct nd_pool_job *j, *next;
	uint64_t v;

	while (read(p->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	pthread_mutex_lock(&p->lock);
	j = p->dhead;
	p->dhead = NULL;
	p->dtail = &p->dhead;
	pthread_mutex_unlock(&p->lock);
	for (; j; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j, false);
	}
}

int nd_pool__new(struct event_base *base, unsigned threads, unsigned queue_max,
		 struct nd_pool **ret)
{
	struct nd_pool *p;
	int r;

	if (!base || threads == 0 || queue_max == 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->efd = -1;
	p->w = calloc(threads, sizeof(*p->w));
	if (!p->w) {
		r = -ENOMEM;
		goto fail;
	}
	r = -pthread_mutex_init(&p->lock, NULL);
	if (r < 0)
		goto fail;
	r = -pthread_cond_init(&p->cond, NULL);
	if (r < 0) {
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	p->qtail = &p->qhead;
	p->dtail = &p->dhead;
	p->max_threads = threads;
	p->queue_max = queue_max;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = p->efd < 0 ? -errno : 0;
	if (r == 0) {
		p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_done, p);
		r = p->ev && event_add(p->ev, NULL) == 0 ? 0 : -ENOMEM;
	}
	if (r < 0) {
		if (p->ev)
			event_free(p->ev);
		if (p->efd >= 0)
			close(p->efd);
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	free(p->w);
	free(p);
	return r;
}

/* Under lock: one more worker. Workers block every signal (the loop handles them). */
static int start_worker(struct nd_pool *p)
{
	struct worker *w = &p->w[p->n_threads];
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	w->p = p;
	w->cur = NULL;
	r = pthread_create(&w->th, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return -r;
	p->n_threads++;
	return 0;
}

int nd_pool__submit(struct nd_pool *p, struct nd_pool_job *j)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		r = -ECANCELED;
		goto out;
	}
	if (p->queued >= p->queue_max) {
		r = -EAGAIN;
		goto out;
	}
	j->next = NULL;
	j->running = false;
	*p->qtail = j;
	p->qtail = &j->next;
	p->queued++;
	/* Idle workers not yet woken for an earlier job take this one; else start one. */
	if (p->idle < p->queued && p->n_threads < p->max_threads) {
		r = start_worker(p);
		if (r < 0 && p->n_threads > 0)
			r = 0; /* the running workers will get to it */
	}
	if (r < 0) {
		/* No worker at all: take the job back (it is the only one queued). */
		p->qhead = NULL;
		p->qtail = &p->qhead;
		p->queued = 0;
		goto out;
	}
	pthread_cond_signal(&p->cond);
out:
	pthread_mutex_unlock(&p->lock);
	return r;
}

void nd_pool__stats(struct nd_pool *p, struct nd_pool_stats *ret)
{
	pthread_mutex_lock(&p->lock);
	ret->threads = p->n_threads;
	ret->queued = p->queued;
	ret->running = p->running;
	pthread_mutex_unlock(&p->lock);
}

static void drop_list(struct nd_pool_job *j)
{
	struct nd_pool_job *next;

	for (; j; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j, true);
	}
}

void nd_pool__free(struct nd_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	for (unsigned i = 0; i < p->n_threads; i++)
		if (p->w[i].cur && p->w[i].cur->cancel)
			p->w[i].cur->cancel(p->w[i].cur);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->w[i].th, NULL);
	/* Only this thread is left: no lock needed. */
	event_free(p->ev);
	drop_list(p->dhead);
	drop_list(p->qhead);
	close(p->efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->w);
	free(p);
}
