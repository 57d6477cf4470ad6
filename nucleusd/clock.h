/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's two clocks, for nucleusd/ and budget/ alike (header only: budget links
 * no part of nucleusd for it).
 *
 *   wall  CLOCK_REALTIME, microseconds since the epoch: every timestamp written to the
 *         database (*_us columns, audit entries, ledger rows, schema versions)
 *   mono  CLOCK_MONOTONIC, microseconds: intervals and deadlines (meter samples,
 *         checkpoint idle waits), never stored
 */
#ifndef NUCLEUS_NUCLEUSD_CLOCK_H
#define NUCLEUS_NUCLEUSD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t nd_clock__us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts); /* cannot fail for these two clocks */
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t nd_clock__wall_us(void)
{
	return nd_clock__us(CLOCK_REALTIME);
}

static inline int64_t nd_clock__mono_us(void)
{
	return nd_clock__us(CLOCK_MONOTONIC);
}

#endif
