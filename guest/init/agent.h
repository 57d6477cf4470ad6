/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.h - internals of nucleus-init: the connection server (serve.c), the request
 * handlers (run.c, files.c), the kill registry shared by all handler processes
 * (registry.c) and the PID 1 duties (pid1.c). Private to guest/init/.
 */
#ifndef NUCLEUS_GUEST_INIT_AGENT_H
#define NUCLEUS_GUEST_INIT_AGENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/guest.h"

#define AGENT_NAME	   "nucleus-init/0.1"
#define AGENT_MAX_CONN	   64	 /* concurrent connections; more get EBUSY */
#define AGENT_REQ_MS	   60000 /* longest wait for a request or the next DATA frame */
#define AGENT_IO_GRACE_MS  60000 /* longest a reply write may block once nobody waits */
#define AGENT_MAX_ARGS	   4096
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void agent__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Replies. ERROR carries err (positive errno) and a message. */
int agent__send(int fd, uint8_t type, uint64_t id, const struct guest_buf *pl);
int agent__send_error(int fd, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Serves one connection (in a forked handler process). Returns when it is done;
 * *ret_shutdown is set when the request was a SHUTDOWN that was acknowledged. */
void serve__conn(int fd, bool *ret_shutdown);

/* Request handlers: each sends its replies and returns 0, or a negative errno when the
 * connection is unusable. pl is the request payload. */
int run__serve(int fd, uint64_t id, const struct guest_buf *pl);
int files__read(int fd, uint64_t id, const struct guest_buf *pl);
int files__write(int fd, uint64_t id, const struct guest_buf *pl);
int files__stat(int fd, uint64_t id, const struct guest_buf *pl);
int files__list(int fd, uint64_t id, const struct guest_buf *pl);

/* Kill registry: running commands by request id, in memory shared by every handler. */
int registry__init(void);
int registry__claim(uint64_t id, pid_t pgid); /* slot index, or -EBUSY */
void registry__release(int slot);	      /* < 0 ok */
int registry__kill(uint64_t id, int sig);     /* process groups signalled */
void registry__kill_all(int sig);
/* A handler died without releasing: SIGKILL its commands' groups, free its slots. */
void registry__release_owner(pid_t owner);

/* The accept loop. listen_fd is non-blocking. Returns when a SHUTDOWN was acknowledged
 * (1), on SIGTERM/SIGINT when !pid1 (0), or on a fatal error (< 0). */
int serve__loop(int listen_fd, bool pid1);

/* PID 1 duties (pid1.c). */
void pid1__early(void); /* mounts, console, hostname, workspace */
int pid1__listen_vsock(int *ret_fd);
void pid1__ready(void); /* status port: VM_STATUS_READY */
void pid1__poweroff(void) __attribute__((noreturn));
void pid1__crash(const char *why) __attribute__((noreturn));

#endif
