// SPDX-License-Identifier: Apache-2.0
/* Meters: /proc and cgroup parsers on fixed texts and real processes; the sampler. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "budget/budget.h"
#include "tests/unit/budget/helpers.h"

/* A stat line whose comm is "a) (b": 52 fields, utime 1234, stime 56. */
static const char tricky_stat[] =
	"4242 (a) (b) R 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 3 0 "
	"12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 "
	"0 0 0 0 0\n";

Test(meter, proc_stat_with_parentheses_and_spaces_in_comm)
{
	uint64_t t = 0;

	cr_assert_eq(budget__parse_proc_stat(tricky_stat, &t), 0);
	cr_expect_eq(t, 1290);
	cr_assert_eq(budget__parse_proc_stat("1 (x)) ) R 0 1 1 0 -1 0 0 0 0 0 7 8 0", &t), 0);
	cr_expect_eq(t, 15);
}

Test(meter, proc_stat_rejects_garbage)
{
	uint64_t t = 99;

	cr_expect_eq(budget__parse_proc_stat("", &t), -EINVAL);
	cr_expect_eq(budget__parse_proc_stat("12 noparen R 1 2 3", &t), -EINVAL);
	cr_expect_eq(budget__parse_proc_stat("12 (x) R 1 2 3", &t), -EINVAL, "truncated");
	cr_expect_eq(budget__parse_proc_stat("1 (x) R 0 1 1 0 -1 0 0 0 0 0 a 8 0", &t), -EINVAL);
	cr_expect_eq(t, 99, "ret untouched on failure");
}

Test(meter, cgroup_cpu_stat_text)
{
	uint64_t u = 0;

	cr_assert_eq(budget__parse_cpu_stat("usage_usec 987654\nuser_usec 1\nsystem_usec 2\n", &u),
		     0);
	cr_expect_eq(u, 987654);
	cr_assert_eq(budget__parse_cpu_stat("user_usec 5\nusage_usec 77\n", &u), 0);
	cr_expect_eq(u, 77);
	cr_expect_eq(budget__parse_cpu_stat("usage_usecs 5\n", &u), -ENODATA);
	cr_expect_eq(budget__parse_cpu_stat("user_usec 5\n", &u), -ENODATA);
	cr_expect_eq(budget__parse_cpu_stat("usage_usec x\n", &u), -EINVAL);
}

Test(meter, cgroup_directory_reader)
{
	char dir[256], path[512];
	uint64_t u = 0;
	FILE *f;

	th_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/cpu.stat", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("usage_usec 4000123\nuser_usec 4000000\nsystem_usec 123\nnr_periods 0\n", f);
	fclose(f);
	cr_assert_eq(budget__cpu_usec_cgroup(dir, &u), 0);
	cr_expect_eq(u, 4000123);
	th_rmrf(dir);
	cr_expect_eq(budget__cpu_usec_cgroup(dir, &u), -ENOENT);
}

Test(meter, kb_fields_of_status_and_smaps_rollup)
{
	uint64_t k = 0;

	cr_assert_eq(budget__parse_kb_field("Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t    812 kB\n",
					    "VmRSS", &k),
		     0);
	cr_expect_eq(k, 812);
	cr_assert_eq(budget__parse_kb_field("00400000-7fff [rollup]\nRss:    4096 kB\nPss: 1 kB\n",
					    "Rss", &k),
		     0);
	cr_expect_eq(k, 4096);
	cr_expect_eq(budget__parse_kb_field("VmRSSX: 5 kB\n", "VmRSS", &k), -ENODATA);
	cr_expect_eq(budget__parse_kb_field("VmRSS: 5 MB\n", "VmRSS", &k), -EINVAL);
}

/* A fake /proc tree: two threads of pid 77, one with a hostile comm. */
Test(meter, pid_reader_sums_threads_of_a_fake_proc)
{
	char root[256], path[600];
	uint64_t usec = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;

	th_tmpdir(root, sizeof(root));
	snprintf(path, sizeof(path), "%s/77", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/77/task", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	for (int t = 77; t <= 78; t++) {
		snprintf(path, sizeof(path), "%s/77/task/%d", root, t);
		cr_assert_eq(mkdir(path, 0755), 0);
		snprintf(path, sizeof(path), "%s/77/task/%d/stat", root, t);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(t == 77 ? tricky_stat : "78 (vcpu 0) S 1 77 77 0 -1 0 0 0 0 0 10 0 0\n", f);
		fclose(f);
	}
	cr_assert_eq(budget__cpu_usec_pid(root, 77, &usec), 0);
	cr_expect_eq(usec, (uint64_t)(1290 + 10) * 1000000 / (uint64_t)hz);
	cr_expect_eq(budget__cpu_usec_pid(root, 76, &usec), -ENOENT);
	th_rmrf(root);
}

static pid_t spawn_burner(void)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		volatile unsigned long x = 0;

		for (;;)
			x++;
	}
	return pid;
}

Test(meter, cpu_of_a_burning_child_grows)
{
	pid_t pid = spawn_burner();
	uint64_t first = 0, now = 0;
	int i;

	cr_assert_eq(budget__cpu_usec_pid(NULL, pid, &first), 0);
	/* Poll until it grows (bounded tries, no assumption on how fast). */
	for (i = 0; i < 2000; i++) {
		usleep(10000);
		cr_assert_eq(budget__cpu_usec_pid(NULL, pid, &now), 0);
		if (now > first)
			break;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_expect_gt(now, first, "a busy child's CPU time did not grow in %d polls", i);
}

Test(meter, rss_of_a_real_process)
{
	uint64_t kib = 0;

	cr_assert_eq(budget__rss_kib_pid(NULL, getpid(), &kib), 0);
	cr_expect_gt(kib, 0);
	cr_expect_eq(budget__rss_kib_pid(NULL, 0, &kib), -EINVAL);
}

Test(meter, sampler_turns_samples_into_exact_debits)
{
	struct budget_sampler s;
	struct budget_delta d;
	struct budget_sample x = {.cpu_usec = 5000000, .rss_kib = 1024, .t_us = 1000000};
	int64_t cpu = 0, mem = 0;

	budget_sampler__init(&s);
	budget_sampler__step(&s, &x, &d);
	cr_expect_eq(d.cpu_ms, 0, "the first sample is the baseline");
	cr_expect_eq(d.mem_mib_s, 0);
	cr_expect_eq(d.peak_mib, 1);
	/* 0.4 ms of CPU per step, 10 steps: 4 ms in total, remainders carried. */
	for (int i = 0; i < 10; i++) {
		x.cpu_usec += 400;
		x.t_us += 500000; /* 0.5 s at 1 MiB */
		budget_sampler__step(&s, &x, &d);
		cpu += d.cpu_ms;
		mem += d.mem_mib_s;
	}
	cr_expect_eq(cpu, 4);
	cr_expect_eq(mem, 5, "1 MiB for 5 s");
	/* Trapezoid: 1 MiB -> 3 MiB over 2 s = 4 MiB s; peak 3 MiB. */
	x.rss_kib = 3072;
	x.t_us += 2000000;
	budget_sampler__step(&s, &x, &d);
	cr_expect_eq(d.mem_mib_s, 4);
	cr_expect_eq(d.peak_mib, 3);
	/* Drop back: peak stays; 1025 KiB rounds up to 2 MiB only if it were the peak. */
	x.rss_kib = 1025;
	x.t_us += 0; /* no time passed: no integral */
	budget_sampler__step(&s, &x, &d);
	cr_expect_eq(d.mem_mib_s, 0);
	cr_expect_eq(d.peak_mib, 3);
	/* A counter that restarts (new VMM process) counts from zero. */
	x.cpu_usec = 2500;
	budget_sampler__step(&s, &x, &d);
	cr_expect_eq(d.cpu_ms, 2);
}
