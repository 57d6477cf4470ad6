/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nd_lru: the one small cache of nucleusd/ (internal): a fixed number of values keyed by
 * a short string id (a sandbox or session id), the least recently used one evicted when
 * a new key comes. Values are the cache's: freed with its free function when evicted,
 * replaced, cleared or freed with the cache; nd_lru__take hands one back to the caller.
 * Lookups scan the slots: meant for capacities of tens (64 here), where that is as fast
 * as a hash. Not thread-safe (the event loop's).
 */
#ifndef NUCLEUS_NUCLEUSD_LRU_H
#define NUCLEUS_NUCLEUSD_LRU_H

#include <stddef.h>

/* Longest key + 1: sandbox ids are 19 characters, session ids 32. */
#define ND_LRU_KEY_MAX 40

struct nd_lru;
typedef void (*nd_lru_free_fn)(void *value);

/* @capacity >= 1; @free_value (may be NULL: values are not freed) frees a value. */
int nd_lru__new(size_t capacity, nd_lru_free_fn free_value, struct nd_lru **ret);
/* Frees every value, then the cache; NULL is fine. */
void nd_lru__free(struct nd_lru *l);
/* The value cached under @key, now the most recently used, or NULL. */
void *nd_lru__get(struct nd_lru *l, const char *key);
/*
 * Caches @value (not NULL) under @key, replacing (freeing) one already there, else
 * evicting the least recently used value when the cache is full. Takes @value either
 * way: on failure (-EINVAL: @key empty or ND_LRU_KEY_MAX long or longer) it is freed.
 */
int nd_lru__put(struct nd_lru *l, const char *key, void *value);
/* Removes @key's value and hands it to the caller (not freed), or NULL. */
void *nd_lru__take(struct nd_lru *l, const char *key);
/* Frees every value; the cache stays usable. */
void nd_lru__clear(struct nd_lru *l);
/* Values cached now. */
size_t nd_lru__count(const struct nd_lru *l);

#endif
