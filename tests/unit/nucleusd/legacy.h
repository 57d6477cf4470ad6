/* SPDX-License-Identifier: Apache-2.0 */
#ifndef NUCLEUS_TESTS_ND_LEGACY_H
#define NUCLEUS_TESTS_ND_LEGACY_H

/* Versions of the one migration list of nucleusd before modules had their own. */
#define TH_LEGACY_VERSIONS 4

/*
 * Makes the database @path as nucleusd did before modules had versions, at @version
 * (1..TH_LEGACY_VERSIONS) of its one migration list; schema_version row v was applied
 * at 1000 + v - 1 us. Asserts success.
 */
void th_legacy_db(const char *path, int version);

#endif
