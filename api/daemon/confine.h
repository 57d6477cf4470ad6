/* SPDX-License-Identifier: Apache-2.0 */
/* confine.h - the seccomp filter of a daemon run with --user (confine.c). */
#ifndef NUCLEUS_API_DAEMON_CONFINE_H
#define NUCLEUS_API_DAEMON_CONFINE_H

/* Installs the daemon's deny-list on every thread: 0 or -errno. */
int nd_confine__daemon(void);

#endif
