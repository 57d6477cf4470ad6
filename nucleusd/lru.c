// SPDX-License-Identifier: Apache-2.0
/*
 * nd_lru (nucleusd/lru.h): slots in one array, each with its key, its value and the
 * tick of its last use; a lookup scans them (capacity 64: one cache line of keys at a
 * time, no hashing, no pointers to chase), a put fills an empty slot or the one used
 * longest ago.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nucleusd/lru.h"

struct nd_lru_slot {
	char key[ND_LRU_KEY_MAX];
	void *value; /* NULL: empty */
	uint64_t used;
};

struct nd_lru {
	size_t cap, count;
	uint64_t tick;
	nd_lru_free_fn free_value;
	struct nd_lru_slot slot[];
};

int nd_lru__new(size_t capacity, nd_lru_free_fn free_value, struct nd_lru **ret)
{
	struct nd_lru *l;

	if (capacity == 0 || capacity > 4096 || !ret)
		return -EINVAL;
	l = calloc(1, sizeof(*l) + capacity * sizeof(l->slot[0]));
	if (!l)
		return -ENOMEM;
	l->cap = capacity;
	l->free_value = free_value;
	*ret = l;
	return 0;
}

static void slot_drop(struct nd_lru *l, struct nd_lru_slot *sl)
{
	if (!sl->value)
		return;
	if (l->free_value)
		l->free_value(sl->value);
	sl->value = NULL;
	sl->key[0] = '\0';
	l->count--;
}

void nd_lru__clear(struct nd_lru *l)
{
	for (size_t i = 0; l && i < l->cap; i++)
		slot_drop(l, &l->slot[i]);
}

void nd_lru__free(struct nd_lru *l)
{
	nd_lru__clear(l);
	free(l);
}

static struct nd_lru_slot *find(struct nd_lru *l, const char *key)
{
	for (size_t i = 0; l && key && i < l->cap; i++)
		if (l->slot[i].value && strcmp(l->slot[i].key, key) == 0)
			return &l->slot[i];
	return NULL;
}

void *nd_lru__get(struct nd_lru *l, const char *key)
{
	struct nd_lru_slot *sl = find(l, key);

	if (!sl)
		return NULL;
	sl->used = ++l->tick;
	return sl->value;
}

int nd_lru__put(struct nd_lru *l, const char *key, void *value)
{
	struct nd_lru_slot *sl;
	size_t n = key ? strnlen(key, ND_LRU_KEY_MAX) : 0;

	if (!l || !value || n == 0 || n >= ND_LRU_KEY_MAX) {
		if (l && value && l->free_value)
			l->free_value(value);
		return -EINVAL;
	}
	sl = find(l, key);
	if (!sl) {
		sl = &l->slot[0];
		for (size_t i = 0; i < l->cap; i++) {
			if (!l->slot[i].value) {
				sl = &l->slot[i];
				break;
			}
			if (l->slot[i].used < sl->used)
				sl = &l->slot[i];
		}
	}
	if (sl->value != value)
		slot_drop(l, sl);
	else
		l->count--; /* the same value again: only its use is new */
	memcpy(sl->key, key, n + 1);
	sl->value = value;
	sl->used = ++l->tick;
	l->count++;
	return 0;
}

void *nd_lru__take(struct nd_lru *l, const char *key)
{
	struct nd_lru_slot *sl = find(l, key);
	void *v;

	if (!sl)
		return NULL;
	v = sl->value;
	sl->value = NULL;
	sl->key[0] = '\0';
	l->count--;
	return v;
}

size_t nd_lru__count(const struct nd_lru *l)
{
	return l ? l->count : 0;
}
