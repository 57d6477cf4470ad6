/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmtest.h - helpers of the VM suites: run nucleus-vmm as a child process with its
 * console and log in files, wait for console markers and exit statuses.
 * Timeouts only bound a hang (nested KVM is slow and noisy); no test asserts a time.
 */
#ifndef NUCLEUS_TESTS_VMTEST_H
#define NUCLEUS_TESTS_VMTEST_H

#include <stdbool.h>
#include <sys/types.h>

#define VMT_TIMEOUT_S 300
/* Per test, wall clock, generous for nested emulation: a test past it is a hang. */
#define VMT_TEST_TIMEOUT_S 900

struct vmt {
	char dir[64];	  /* private temp dir */
	char console[96]; /* console file */
	char log[96];	  /* the VMM's stderr */
	char control[96]; /* control socket */
	char vsock[96];	  /* vsock socket */
	const char *vmm;  /* the VMM binary: NULL for $NUCLEUS_VMM */
	pid_t pid;
};

/* Environment path (cr_assert that it is set). */
const char *vmt_env(const char *name);
/* Create the temp dir and paths. */
void vmt_init(struct vmt *t);
/* Start nucleus-vmm with the given extra arguments (NULL-terminated), adding
 * --console FILE and --control SOCK. */
void vmt_spawn(struct vmt *t, const char *const *args);
/* Wait for the child; returns its exit status (cr_assert on timeout or signal). */
int vmt_wait(struct vmt *t, int timeout_s);
/* The same, returning the raw wait status (a VMM killed by a signal is no failure). */
int vmt_wait_raw(struct vmt *t, int timeout_s);
/* Has the VMM exited? (peeks: it stays waitable for vmt_wait) */
bool vmt_exited(struct vmt *t);
/* Wait until file contains needle; false on timeout or when the VMM exited. */
bool vmt_wait_file(struct vmt *t, const char *file, const char *needle, int timeout_s);
/* Whole file as a NUL-terminated string without \r (caller frees); "" when absent. */
char *vmt_read(const char *file);
/* Kill (if running) and remove the temp dir. */
void vmt_fini(struct vmt *t);

#endif
