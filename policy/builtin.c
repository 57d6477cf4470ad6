// SPDX-License-Identifier: Apache-2.0
/* Built-in profiles: lookup by name (the texts live in the generated builtin_profiles.c). */
#include <errno.h>
#include <string.h>

#include "policy/builtin.h"
#include "policy/internal.h"

const char *policy__builtin_json(const char *name)
{
	for (const struct builtin_profile *b = builtin_profiles; name && b->name; b++)
		if (strcmp(b->name, name) == 0)
			return b->json;
	return NULL;
}

const char *const *policy__builtin_names(void)
{
	return builtin_names;
}

int policy__profile_builtin(const char *name, struct policy **ret)
{
	const char *text = policy__builtin_json(name);

	if (!text)
		return -ENOENT;
	return policy__profile_parse(text, ret, NULL);
}
