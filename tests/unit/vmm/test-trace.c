/* SPDX-License-Identifier: Apache-2.0 */
/* The boot trace (vmm/trace.c) and how a control client reads it (vmm__control). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/core.h"

static json_int_t at(json_t *trace, enum vm_phase ph)
{
	json_t *v = json_object_get(trace, vm__phase_name(ph));

	cr_assert(json_is_integer(v), "no %s in the trace", vm__phase_name(ph));
	return json_integer_value(v);
}

Test(trace, each_phase_keeps_its_first_time_and_only_reached_ones_are_listed)
{
	json_t *before, *after;

	vm__trace_begin();
	vm__phase(VM_PH_KVM);
	vm__phase(VM_PH_MEMORY);
	before = vm__trace_json();
	cr_assert_not_null(before);
	cr_assert_eq(json_object_size(before), 2, "%s", json_dumps(before, 0));
	cr_assert_leq(at(before, VM_PH_KVM), at(before, VM_PH_MEMORY));
	usleep(2000);
	vm__phase(VM_PH_KVM); /* again, later: the first time stays */
	vm__phase(VM_PH__N);  /* not a phase: ignored */
	vm__phase((enum vm_phase) - 1);
	after = vm__trace_json();
	cr_assert(json_equal(before, after), "%s", json_dumps(after, 0));
	json_decref(before);
	json_decref(after);
	/* a new begin starts a new trace */
	vm__trace_begin();
	after = vm__trace_json();
	cr_assert_eq(json_object_size(after), 0);
	json_decref(after);
}

Test(trace, every_phase_has_its_own_name)
{
	for (int i = 0; i < VM_PH__N; i++) {
		cr_assert_str_neq(vm__phase_name((enum vm_phase)i), "?");
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(vm__phase_name((enum vm_phase)i),
					  vm__phase_name((enum vm_phase)j));
	}
	cr_assert_str_eq(vm__phase_name(VM_PH__N), "?");
}

/* One canned reply line on a Unix socket, for one client. */
struct fake {
	int fd;
	const char *reply;
};

static void *serve_one(void *arg)
{
	struct fake *f = arg;
	char buf[256];
	int c = accept(f->fd, NULL, NULL);

	if (c >= 0) {
		if (read(c, buf, sizeof(buf)) > 0 && write(c, f->reply, strlen(f->reply)) < 0)
			buf[0] = '\0';
		close(c);
	}
	return NULL;
}

static void ask(const char *reply, struct vmm_control_reply *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct fake f = {.reply = reply};
	pthread_t th;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/nucleus-trace-%d.sock", (int)getpid());
	unlink(sa.sun_path);
	f.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(f.fd, 0);
	cr_assert_eq(bind(f.fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(f.fd, 1), 0);
	cr_assert_eq(pthread_create(&th, NULL, serve_one, &f), 0);
	cr_assert_eq(vmm__control(sa.sun_path, "state", r), 0);
	pthread_join(th, NULL);
	close(f.fd);
	unlink(sa.sun_path);
}

Test(trace, a_control_client_reads_the_newest_phase_and_the_first_run)
{
	struct vmm_control_reply r;

	ask("{\"ok\": true, \"state\": \"running\", \"boot_us\": -1, \"uptime_us\": 90, "
	    "\"vcpus\": 1, \"mem_mib\": 128, \"phases\": {\"kvm\": 10, \"memory\": 20, "
	    "\"vcpus\": 30, \"first_run\": 40, \"devices\": 25}}\n",
	    &r);
	cr_assert(r.ok);
	cr_assert_str_eq(r.last_phase, "first_run");
	cr_assert_eq(r.first_run_us, 40);
	cr_assert_eq(r.boot_us, -1);
	/* an older VMM: no phases */
	ask("{\"ok\": true, \"state\": \"running\", \"boot_us\": 5, \"uptime_us\": 9}\n", &r);
	cr_assert_str_eq(r.last_phase, "");
	cr_assert_eq(r.first_run_us, -1);
}
