// SPDX-License-Identifier: Apache-2.0
/*
 * The vmm backend's blocking jobs (see nucleusd/backend-vm.h): made and submitted on the
 * loop thread, worked on the bounded pool (nucleusd/pool.h), finished back on the loop.
 * A job knows nothing of what it does: its owner sets work/finish, and release/unblock
 * for what it attached (a streamed run's queue).
 */
#include <stdlib.h>
#include <jansson.h>

#include "guest/guest.h"
#include "nucleusd/backend-vm.h"
#include "nucleusd/clock.h"

/* ---- jobs ---- */

struct vmb_job *vmb_job__new(struct vmb *b, struct vmb_vm *vm)
{
	struct vmb_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->b = b;
	j->vm = vm;
	vm->refs++;
	j->start_us = nd_clock__mono_us();
	return j;
}

void vmb_job__free(struct vmb_job *j)
{
	if (j->release)
		j->release(j);
	json_decref(j->args);
	json_decref(j->result);
	guest__close(j->own_g);
	vm_proc__unref(j->vm);
	free(j);
}

static void job_unlink(struct vmb_job *j)
{
	for (struct vmb_job **pp = &j->b->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
}

static void job_work(struct nd_pool_job *pj)
{
	struct vmb_job *j = (struct vmb_job *)pj;

	j->work(j);
}

/* Loop: the job is done (or dropped at shutdown: no completion then). */
static void job_done(struct nd_pool_job *pj, bool dropped)
{
	struct vmb_job *j = (struct vmb_job *)pj;

	job_unlink(j);
	if (!dropped)
		j->finish(j);
	vmb_job__free(j);
}

/* Shutdown (loop thread, the worker still in work()): unblock its guest I/O. */
static void job_cancel(struct nd_pool_job *pj)
{
	struct vmb_job *j = (struct vmb_job *)pj;

	if (j->unblock)
		j->unblock(j);
	if (j->own_g)
		guest__cancel(j->own_g);
	if (j->vm->g)
		guest__cancel(j->vm->g);
}

int vmb_job__submit(struct vmb_job *j)
{
	int r;

	if (!j->b->pool)
		return -ENOMEM; /* attach could not make it */
	j->pj.work = job_work;
	j->pj.done = job_done;
	j->pj.cancel = job_cancel;
	r = nd_pool__submit(j->b->pool, &j->pj);
	if (r < 0)
		return r;
	j->next = j->b->jobs;
	j->b->jobs = j;
	return 0;
}
