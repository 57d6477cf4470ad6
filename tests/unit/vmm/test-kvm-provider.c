/* SPDX-License-Identifier: Apache-2.0 */
/* Which /dev/kvm providers can run a stock guest kernel (vm__kvm_unsupported_at). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/core.h"

static char root[64];

static void mods(const char *const *names)
{
	char path[128];

	strcpy(root, "/tmp/kvmprov-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	for (int i = 0; names[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, names[i]);
		cr_assert_eq(mkdir(path, 0755), 0);
	}
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(kvm_provider, hardware_kvm_is_fine)
{
	mods((const char *const[]){"kvm", "kvm_amd", NULL});
	cr_expect_null(vm__kvm_unsupported_at(root));
	cleanup();
	mods((const char *const[]){"kvm", "kvm_intel", "kvm_pvm", NULL});
	cr_expect_null(vm__kvm_unsupported_at(root), "a vendor module wins over kvm_pvm");
	cleanup();
}

Test(kvm_provider, pvm_only_is_refused_with_the_reason)
{
	mods((const char *const[]){"kvm", "kvm_pvm", NULL});
	const char *why = vm__kvm_unsupported_at(root);
	cr_assert_not_null(why);
	cr_expect(strstr(why, "PVM") && strstr(why, "kvm_intel or kvm_amd"), "%s", why);
	cleanup();
}

Test(kvm_provider, unknown_provider_is_trusted)
{
	/* KVM built into the kernel without module directories: nothing to tell. */
	mods((const char *const[]){NULL});
	cr_expect_null(vm__kvm_unsupported_at(root));
	cleanup();
	cr_expect_null(vm__kvm_unsupported_at("/nonexistent/sys/module"));
}
