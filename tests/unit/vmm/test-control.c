/* SPDX-License-Identifier: Apache-2.0 */
/* Control protocol request parsing (the socket side runs in the vm-boot suite). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vmm/core.h"

static int parse(const char *s, enum control_op *op)
{
	return control__parse(s, strlen(s), op);
}

Test(control, valid_requests)
{
	enum control_op op;
	cr_assert_eq(parse("{\"op\":\"state\"}", &op), 0);
	cr_expect_eq(op, CONTROL_STATE);
	cr_assert_eq(parse("{\"op\":\"pause\"}", &op), 0);
	cr_expect_eq(op, CONTROL_PAUSE);
	cr_assert_eq(parse(" { \"op\" : \"resume\" } ", &op), 0);
	cr_expect_eq(op, CONTROL_RESUME);
	cr_assert_eq(parse("{\"op\":\"stop\",\"extra\":1}", &op), 0);
	cr_expect_eq(op, CONTROL_STOP);
}

Test(control, garbage_is_rejected)
{
	enum control_op op = CONTROL_STOP;
	static const char *const bad[] = {
		"",
		"{",
		"op=stop",
		"[\"stop\"]",
		"\"stop\"",
		"{\"op\":1}",
		"{\"op\":null}",
		"{\"op\":\"STOP\"}",
		"{\"op\":\"reboot\"}",
		"{\"cmd\":\"stop\"}",
		"{\"op\":\"stop\",\"op\":\"pause\"}",
		"{\"op\":\"stop\"}garbage",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		op = CONTROL_STOP;
		cr_expect_lt(parse(bad[i], &op), 0, "accepted: %s", bad[i]);
	}
	cr_expect_lt(control__parse("{\"op\":\"stop\"}", 0, &op), 0);
	cr_expect_lt(control__parse(NULL, 5, &op), 0);
}

Test(control, embedded_nul_and_oversize)
{
	enum control_op op;
	const char withnul[] = "{\"op\":\"st\0op\"}";
	cr_expect_lt(control__parse(withnul, sizeof(withnul) - 1, &op), 0);
	char big[2048];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"op\":\"stop\"}", 13);
	cr_expect_lt(control__parse(big, sizeof(big), &op), 0, "longer than a request line");
}

Test(control, exit_names)
{
	cr_expect_str_eq(vmm__exit_name(VMM_EXIT_SHUTDOWN), "shutdown");
	cr_expect_str_eq(vmm__exit_name(VMM_EXIT_CRASH), "crash");
	cr_expect_str_eq(vmm__exit_name(VMM_EXIT_GUEST_FAULT), "guest fault");
	cr_expect_str_eq(vmm__exit_name(VMM_EXIT_STOPPED), "stopped");
	cr_expect_str_eq(vmm__exit_name(99), "unknown");
}
