// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's sealing of its audit log (nucleusd/audit.h): the log's writer is the
 * daemon's key; a commit that leaves entries unsealed arms a one-shot timer that signs
 * the committed head ND_AUDIT_SEAL_MS later; a clean stop and every verify seal at once,
 * and so does a start that found entries unsealed (after audit__attach's audit.epoch).
 * The signature is nucleus-signer's (nucleusd/signer.h); while it fails (the signer
 * died or hangs, and is restarted at most once a second) the seals fail, are counted,
 * retried by the timer and said once in the daemon's log. Loop thread only.
 */
#include <errno.h>
#include <string.h>
#include <event2/event.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/signer.h"

/* Seals ND_AUDIT_SEAL_MS from now (and with it what commits meanwhile), unless armed. */
static void seal_later(struct nucleusd *nd)
{
	struct timeval tv = {0, ND_AUDIT_SEAL_MS * 1000};

	if (nd->seal_ev && !evtimer_pending(nd->seal_ev, NULL))
		evtimer_add(nd->seal_ev, &tv);
}

void nd__seal(struct nucleusd *nd)
{
	const struct signer *sg = audit__signer(nd->key);
	int r = audit__seal(nd->store, nd->key);

	if (r > 0)
		nd->m.seals++;
	if (r >= 0 || r == -EEXIST) {
		if (nd->seal_failing)
			nd__log(nd, ND_LOG_INFO,
				"audit sealing works again (nucleus-signer pid %d, restarted %llu "
				"times, the same public key)",
				(int)signer__pid(sg), (unsigned long long)signer__restarts(sg));
		nd->seal_failing = false;
		return;
	}
	nd->m.seal_failures++;
	/* said once (once per error) until a seal works: the timer retries every 50 ms */
	if (!nd->seal_failing || r != nd->seal_err)
		nd__log(nd, ND_LOG_ERR,
			"audit sealing failed: %s%s%s; the entries stay chained, unsealed "
			"(nucleus_audit_unsealed_entries) and sealing is retried, the signer "
			"started again at most once a second",
			strerror(-r), sg && !signer__pid(sg) ? ": " : "",
			sg && !signer__pid(sg) ? signer__problem(sg) : "");
	nd->seal_failing = true;
	nd->seal_err = r;
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
