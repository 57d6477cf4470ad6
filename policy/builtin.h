/* SPDX-License-Identifier: Apache-2.0 */
/* policy - the table of built-in profiles generated from policy/profiles/. */
#ifndef NUCLEUS_POLICY_BUILTIN_H
#define NUCLEUS_POLICY_BUILTIN_H

struct builtin_profile {
	const char *name;
	const char *json;
};

extern const struct builtin_profile builtin_profiles[];
extern const char *const builtin_names[];

#endif
