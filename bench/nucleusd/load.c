// SPDX-License-Identifier: Apache-2.0
/*
 * Load: many clients at once against one daemon (issue #19's 64 and 256 clients), each
 * a thread with blocking I/O that waits for every reply before it sends the next.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/nucleusd/bench.h"

struct client {
	pthread_t thread;
	const char *sock, *req;
	long n, done, errors;
	bool per_conn;
	int want_status;
	double *lat; /* this client's successes */
	struct gate *start;
};

/* All clients start together, once every thread exists. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
};

static void gate_wait(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* One request on @fd (connected): 0 when answered @want_status. */
static int one(struct client *c, int fd, char *buf, size_t cap)
{
	int st;

	if (write_all(fd, c->req, strlen(c->req)) < 0)
		return -EIO;
	st = read_response(fd, buf, cap);
	return st == c->want_status ? 0 : st < 0 ? st : -EBADMSG;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	int fd = -1;

	gate_wait(c->start);
	for (long i = 0; buf && i < c->n; i++) {
		double t0 = now_us();
		int r;

		if (fd < 0)
			fd = sock_connect(c->sock);
		r = fd < 0 ? fd : one(c, fd, buf, cap);
		if (r == 0)
			c->lat[c->done++] = now_us() - t0;
		else
			c->errors++;
		if ((r < 0 || c->per_conn) && fd >= 0) {
			close(fd); /* a broken keep-alive connection is made again */
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	if (!buf)
		c->errors += c->n;
	free(buf);
	return NULL;
}

int load_run(const char *sock, const char *req, long calls, int clients, bool per_conn,
	     int want_status, struct stats *s)
{
	struct client *cl = calloc((size_t)clients, sizeof(*cl));
	double *lat = calloc((size_t)calls, sizeof(*lat));
	struct gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
	long n = 0, errors = 0, off = 0;
	int started = 0, r = 0;
	double t0;

	if (!cl || !lat || clients < 1 || calls < clients) {
		r = cl && lat ? -EINVAL : -ENOMEM;
		goto out;
	}
	for (int i = 0; i < clients; i++) {
		struct client *c = &cl[i];

		*c = (struct client){.sock = sock,
				     .req = req,
				     .per_conn = per_conn,
				     .want_status = want_status,
				     .start = &start};
		c->n = calls / clients + (i < calls % clients);
		c->lat = lat + off;
		off += c->n;
	}
	for (; started < clients; started++) {
		r = -pthread_create(&cl[started].thread, NULL, client_main, &cl[started]);
		if (r < 0)
			break;
	}
	if (r < 0) /* the ones made go with nothing to do */
		for (int i = 0; i < started; i++)
			cl[i].n = 0;
	t0 = now_us();
	gate_open(&start);
	for (int i = 0; i < started; i++) {
		pthread_join(cl[i].thread, NULL);
		/* pack each client's successes after the previous ones */
		memmove(lat + n, cl[i].lat, (size_t)cl[i].done * sizeof(*lat));
		n += cl[i].done;
		errors += cl[i].errors;
	}
	if (r == 0 && n == 0)
		r = -EIO;
	if (r == 0) {
		summarize(lat, n, now_us() - t0, s);
		s->errors = errors;
	}
out:
	free(lat);
	free(cl);
	return r;
}
