/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace.c - the boot trace: when each phase of this VM process was first reached,
 * in microseconds since the process started (vm__trace_begin, first thing in main).
 * One VM per process, so one trace per process. Phases are recorded from the main
 * thread, the vCPU threads and the event loop: each slot is written once (CAS).
 */
#include <stdatomic.h>

#include "vmm/core.h"

static const char *const names[VM_PH__N] = {
	[VM_PH_KVM] = "kvm",	   [VM_PH_MEMORY] = "memory",	  [VM_PH_DEVICES] = "devices",
	[VM_PH_LOADED] = "loaded", [VM_PH_VCPUS] = "vcpus",	  [VM_PH_FIRST_RUN] = "first_run",
	[VM_PH_READY] = "ready",   [VM_PH_SHUTDOWN] = "shutdown", [VM_PH_RESET] = "reset",
	[VM_PH_STOP] = "stop",	   [VM_PH_JOINED] = "joined",	  [VM_PH_EXIT] = "exit",
};

static uint64_t t0_ns;
static bool log_each;
static atomic_ullong at_ns[VM_PH__N]; /* 0: not reached */

void vm__trace_begin(void)
{
	t0_ns = vm__now_ns();
	for (int i = 0; i < VM_PH__N; i++)
		atomic_store(&at_ns[i], 0);
}

void vm__trace_log(bool on)
{
	log_each = on;
}

const char *vm__phase_name(enum vm_phase ph)
{
	return ph >= 0 && ph < VM_PH__N ? names[ph] : "?";
}

void vm__phase(enum vm_phase ph)
{
	unsigned long long none = 0, now;

	if (ph < 0 || ph >= VM_PH__N)
		return;
	now = vm__now_ns();
	if (now == 0 || !atomic_compare_exchange_strong(&at_ns[ph], &none, now))
		return;
	if (log_each)
		vm__log(NULL, "trace: %s at %llu us", names[ph],
			(unsigned long long)(now - t0_ns) / 1000);
}

json_t *vm__trace_json(void)
{
	json_t *o = json_object();

	for (int i = 0; o && i < VM_PH__N; i++) {
		unsigned long long at = atomic_load(&at_ns[i]);

		if (at && json_object_set_new(o, names[i],
					      json_integer((json_int_t)(at - t0_ns) / 1000)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
