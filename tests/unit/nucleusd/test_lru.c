// SPDX-License-Identifier: Apache-2.0
/* nd_lru: hits, eviction of the least recently used, replacement, take, ownership. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "nucleusd/lru.h"

static int freed[64];

/* Values are ints 0..63 boxed in malloc'd memory; freeing one counts it. */
static void free_int(void *p)
{
	int *v = p;

	freed[*v]++;
	free(v);
}

static int *box(int v)
{
	int *p = malloc(sizeof(*p));

	cr_assert_not_null(p);
	*p = v;
	return p;
}

static int value(struct nd_lru *l, const char *key)
{
	int *p = nd_lru__get(l, key);

	return p ? *p : -1;
}

static void setup(void)
{
	memset(freed, 0, sizeof(freed));
}

TestSuite(lru, .init = setup);

Test(lru, a_put_value_is_found_until_evicted)
{
	struct nd_lru *l = NULL;
	char key[16];

	cr_assert_eq(nd_lru__new(4, free_int, &l), 0);
	cr_assert_eq(value(l, "a"), -1);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(nd_lru__put(l, key, box(i)), 0);
	}
	cr_assert_eq(nd_lru__count(l), 4);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(value(l, key), i);
	}
	cr_assert_eq(value(l, "k"), -1, "keys are whole strings, not prefixes");
	nd_lru__free(l);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(freed[i], 1, "value %d freed once with the cache", i);
}

Test(lru, the_least_recently_used_is_evicted)
{
	struct nd_lru *l = NULL;

	cr_assert_eq(nd_lru__new(3, free_int, &l), 0);
	cr_assert_eq(nd_lru__put(l, "a", box(0)), 0);
	cr_assert_eq(nd_lru__put(l, "b", box(1)), 0);
	cr_assert_eq(nd_lru__put(l, "c", box(2)), 0);
	cr_assert_eq(value(l, "a"), 0); /* a is now newer than b and c */
	cr_assert_eq(nd_lru__put(l, "d", box(3)), 0);
	cr_assert_eq(freed[1], 1, "b, used longest ago, was evicted and freed");
	cr_assert_eq(value(l, "b"), -1);
	cr_assert_eq(value(l, "a"), 0);
	cr_assert_eq(value(l, "c"), 2);
	cr_assert_eq(value(l, "d"), 3);
	cr_assert_eq(nd_lru__count(l), 3);
	/* Use order now a, c, d (oldest first): e evicts a. */
	cr_assert_eq(nd_lru__put(l, "e", box(4)), 0);
	cr_assert_eq(freed[0], 1);
	cr_assert_eq(value(l, "a"), -1);
	nd_lru__free(l);
}

Test(lru, a_second_put_replaces_and_frees_the_first)
{
	struct nd_lru *l = NULL;
	int *same;

	cr_assert_eq(nd_lru__new(2, free_int, &l), 0);
	cr_assert_eq(nd_lru__put(l, "a", box(0)), 0);
	cr_assert_eq(nd_lru__put(l, "a", box(1)), 0);
	cr_assert_eq(freed[0], 1);
	cr_assert_eq(value(l, "a"), 1);
	cr_assert_eq(nd_lru__count(l), 1);
	same = nd_lru__get(l, "a");
	cr_assert_eq(nd_lru__put(l, "a", same), 0, "the same value again is kept");
	cr_assert_eq(freed[1], 0);
	cr_assert_eq(nd_lru__count(l), 1);
	nd_lru__free(l);
	cr_assert_eq(freed[1], 1);
}

Test(lru, take_hands_the_value_back_without_freeing)
{
	struct nd_lru *l = NULL;
	int *v;

	cr_assert_eq(nd_lru__new(2, free_int, &l), 0);
	cr_assert_eq(nd_lru__put(l, "sess", box(5)), 0);
	v = nd_lru__take(l, "sess");
	cr_assert_not_null(v);
	cr_assert_eq(*v, 5);
	cr_assert_eq(freed[5], 0);
	cr_assert_null(nd_lru__take(l, "sess"));
	cr_assert_eq(nd_lru__count(l), 0);
	free_int(v);
	nd_lru__free(l);
	cr_assert_eq(freed[5], 1, "freed by its taker only");
}

Test(lru, bad_keys_are_refused_and_the_value_freed)
{
	char longkey[ND_LRU_KEY_MAX + 1];
	struct nd_lru *l = NULL;

	cr_assert_eq(nd_lru__new(0, free_int, &l), -EINVAL);
	cr_assert_eq(nd_lru__new(2, free_int, &l), 0);
	memset(longkey, 'x', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	cr_assert_eq(nd_lru__put(l, longkey, box(1)), -EINVAL);
	cr_assert_eq(freed[1], 1);
	cr_assert_eq(nd_lru__put(l, "", box(2)), -EINVAL);
	cr_assert_eq(freed[2], 1);
	longkey[ND_LRU_KEY_MAX - 1] = '\0'; /* the longest key that fits */
	cr_assert_eq(nd_lru__put(l, longkey, box(3)), 0);
	cr_assert_eq(value(l, longkey), 3);
	nd_lru__clear(l);
	cr_assert_eq(freed[3], 1);
	cr_assert_eq(nd_lru__count(l), 0);
	cr_assert_eq(value(l, longkey), -1);
	nd_lru__free(l);
}

/* 64 slots, as the daemon's caches: many keys in turn, the newest 64 always present. */
Test(lru, a_full_cache_keeps_the_newest_capacity_keys)
{
	struct nd_lru *l = NULL;
	char key[ND_LRU_KEY_MAX];

	cr_assert_eq(nd_lru__new(64, NULL, &l), 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "sb-%016x", i);
		cr_assert_eq(nd_lru__put(l, key, (void *)(long)(i + 1)), 0);
	}
	cr_assert_eq(nd_lru__count(l), 64);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "sb-%016x", i);
		cr_assert_eq(nd_lru__get(l, key), i >= 1000 - 64 ? (void *)(long)(i + 1) : NULL,
			     "%s", key);
	}
	nd_lru__free(l);
}
