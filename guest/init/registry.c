/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registry.c - which process group runs the command of which request id, so a KILL
 * that arrives on another connection (another handler process) can find it. A fixed
 * table in a MAP_SHARED anonymous mapping made before any handler is forked; slots are
 * claimed with compare-and-swap on the owner pid. A slot is released while its
 * command is still an unreaped zombie, so a pgid in the table is never a reused one.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest/init/agent.h"

#define REGISTRY_SLOTS 256

struct reg_slot {
	_Atomic int32_t owner; /* handler pid, 0 = free */
	_Atomic int32_t pgid;
	_Atomic uint64_t id;
};

static struct reg_slot *slots;

int registry__init(void)
{
	void *p = mmap(NULL, sizeof(struct reg_slot) * REGISTRY_SLOTS, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	slots = p;
	return 0;
}

int registry__claim(uint64_t id, pid_t pgid)
{
	int32_t me = (int32_t)getpid();

	for (int i = 0; slots && i < REGISTRY_SLOTS; i++) {
		int32_t free_owner = 0;

		if (!atomic_compare_exchange_strong(&slots[i].owner, &free_owner, me))
			continue;
		atomic_store(&slots[i].pgid, (int32_t)pgid);
		atomic_store(&slots[i].id, id);
		return i;
	}
	return -EBUSY;
}

static void slot_clear(struct reg_slot *s)
{
	atomic_store(&s->id, 0);
	atomic_store(&s->pgid, 0);
	atomic_store(&s->owner, 0);
}

void registry__release(int slot)
{
	if (slots && slot >= 0 && slot < REGISTRY_SLOTS)
		slot_clear(&slots[slot]);
}

int registry__kill(uint64_t id, int sig)
{
	int n = 0;

	for (int i = 0; slots && id && i < REGISTRY_SLOTS; i++) {
		if (atomic_load(&slots[i].id) != id)
			continue;
		int32_t pg = atomic_load(&slots[i].pgid);

		if (pg > 1 && kill(-pg, sig) == 0)
			n++;
	}
	return n;
}

void registry__kill_all(int sig)
{
	for (int i = 0; slots && i < REGISTRY_SLOTS; i++) {
		int32_t pg = atomic_load(&slots[i].pgid);

		if (atomic_load(&slots[i].id) && pg > 1)
			kill(-pg, sig);
	}
}

void registry__release_owner(pid_t owner)
{
	for (int i = 0; slots && owner > 0 && i < REGISTRY_SLOTS; i++) {
		if (atomic_load(&slots[i].owner) != (int32_t)owner)
			continue;
		int32_t pg = atomic_load(&slots[i].pgid);

		/* Its handler is gone: nobody would ever report or time out this command. */
		if (atomic_load(&slots[i].id) && pg > 1)
			kill(-pg, SIGKILL);
		slot_clear(&slots[i]);
	}
}
