/* SPDX-License-Identifier: Apache-2.0 */
/* confine.h - the seccomp filter of a daemon run with --user (confine.c). */
#ifndef NUCLEUS_API_DAEMON_CONFINE_H
#define NUCLEUS_API_DAEMON_CONFINE_H

/* A sanitized build: gcc says __SANITIZE_ADDRESS__, clang before 16 only __has_feature.
 * (LeakSanitizer's check at exit ptraces the process's own threads.) */
#if defined(__SANITIZE_ADDRESS__)
#define ND_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ND_SANITIZED 1
#endif
#endif

/* Installs the daemon's deny-list on every thread: 0 or -errno. */
int nd_confine__daemon(void);

#endif
