// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's sealing of its audit log (nucleusd/audit.h): the log's writer is the
 * daemon's key; a commit that leaves entries unsealed arms a one-shot timer that signs
 * the committed head ND_AUDIT_SEAL_MS later; a clean stop and every verify seal at once,
 * and so does a start that found entries unsealed (after audit__attach's audit.epoch).
 * Loop thread only.
 */
#include <errno.h>
#include <event2/event.h>

#include "nucleusd/nucleusd-internal.h"

/* Seals ND_AUDIT_SEAL_MS from now (and with it what commits meanwhile), unless armed. */
static void seal_later(struct nucleusd *nd)
{
	struct timeval tv = {0, ND_AUDIT_SEAL_MS * 1000};

	if (nd->seal_ev && !evtimer_pending(nd->seal_ev, NULL))
		evtimer_add(nd->seal_ev, &tv);
}

void nd__seal(struct nucleusd *nd)
{
	int r = audit__seal(nd->store, nd->key);

	if (r > 0)
		nd->m.seals++;
	if (r >= 0 || r == -EEXIST)
		return;
	nd->m.seal_failures++;
	seal_later(nd); /* try again; the entries stay intact as a chain meanwhile */
}

static void seal_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	nd__seal(arg);
}

/* audit__attach's hook: a commit left entries unsealed. */
static void seal_soon(void *arg)
{
	seal_later(arg);
}

int nd__seal_init(struct nucleusd *nd)
{
	int r;

	if (nd->base) {
		nd->seal_ev = evtimer_new(nd->base, seal_fire, nd);
		if (!nd->seal_ev)
			return -ENOMEM;
	}
	r = audit__attach(nd->key, nd->store, seal_soon, nd);
	/* entries found unsealed were named by an audit.epoch entry: sealed from here on */
	if (r == 0 && audit__unsealed(nd->key))
		nd__seal(nd);
	return r;
}

void nd__seal_fini(struct nucleusd *nd)
{
	if (nd->store && nd->key && audit__unsealed(nd->key))
		nd__seal(nd); /* a clean stop leaves nothing unsealed */
	if (nd->seal_ev)
		event_free(nd->seal_ev);
	nd->seal_ev = NULL;
}
