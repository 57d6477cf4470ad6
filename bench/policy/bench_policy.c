// SPDX-License-Identifier: Apache-2.0
/*
 * bench-policy [CALLS] - time policy__decide() on the built-in codegen profile with a
 * realistic mix of tool calls (reads, writes, builds, git, a few refusals). Prints
 * decisions per second and p50/p90/p99/p99.9/max latency. Sessions are renewed every
 * 10000 calls (outside the timed region) so budgets do not run out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

#define ROUND 10000

static const char *const mk[] = {"make", "-j2"};
static const char *const gs[] = {"git", "status", "--short"};
static const char *const pt[] = {"python3", "-m", "pytest", "-q", "tests/test_parser.py"};
static const char *const gd[] = {"git", "diff", "--stat"};
static const char *const cu[] = {"/usr/bin/curl", "-s", "https://example.com/x"};
static const char *const bc[] = {"env", "FOO=1", "bash", "-c", "make test"};

static const struct policy_call mix[] = {
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/src/parser/lexer.c"},
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/include/nucleus/ast.h"},
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/tests/unit/test_lexer.c"},
	{.op = POLICY_OP_READ_FILE, .path = "/usr/include/stdio.h"},
	{.op = POLICY_OP_WRITE_FILE, .path = "/workspace/src/parser/lexer.c"},
	{.op = POLICY_OP_WRITE_FILE, .path = "/workspace/tests/unit/test_lexer.c"},
	{.op = POLICY_OP_LIST, .path = "/workspace/src/parser"},
	{.op = POLICY_OP_SEARCH, .path = "/workspace"},
	{.op = POLICY_OP_RUN, .argv = mk, .argc = 2},
	{.op = POLICY_OP_RUN, .argv = gs, .argc = 3},
	{.op = POLICY_OP_RUN, .argv = pt, .argc = 5},
	{.op = POLICY_OP_RUN, .argv = gd, .argc = 3},
	{.op = POLICY_OP_GIT_COMMIT},
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/config/.env"},	    /* denied */
	{.op = POLICY_OP_RUN, .argv = cu, .argc = 3},			    /* denied */
	{.op = POLICY_OP_RUN, .argv = bc, .argc = 5},			    /* denied */
	{.op = POLICY_OP_WEB_FETCH, .url = "https://example.com/docs?q=1"}, /* denied */
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/../etc/passwd"},    /* denied */
	{.op = POLICY_OP_GIT_PUSH,
	 .remote = "git@github.com:org/repo.git",
	 .ref = "agent/lexer"}, /* ask */
	{.op = POLICY_OP_READ_FILE, .path = "/workspace/src/parser/parser.c"},
};

#define NMIX (sizeof(mix) / sizeof(mix[0]))

static int64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t timer_overhead(void)
{
	int64_t best = INT64_MAX;

	for (int i = 0; i < 10000; i++) {
		int64_t t0 = ns_now(), t1 = ns_now();

		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best;
}

static const char *label(const struct policy_call *c)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s %s", policy__op_name(c->op),
		 c->path     ? c->path
		 : c->argv   ? c->argv[0]
		 : c->url    ? c->url
		 : c->remote ? c->remote
			     : "");
	return buf;
}

/* p50/p99 for each entry of the mix (latencies of entry k are at k, k+NMIX, ...). */
static void per_call(const int64_t *lat, long calls)
{
	size_t per = (size_t)calls / NMIX;
	int64_t *v = calloc(per, sizeof(*v));

	if (!v)
		return;
	printf("per call kind (p50 / p99 ns):\n");
	for (size_t k = 0; k < NMIX; k++) {
		for (size_t j = 0; j < per; j++)
			v[j] = lat[j * NMIX + k];
		qsort(v, per, sizeof(*v), cmp_i64);
		printf("  %6lld / %6lld  %s\n", (long long)v[per / 2], (long long)v[per * 99 / 100],
		       label(&mix[k]));
	}
	free(v);
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	struct policy_session_config cfg = {{0}};
	struct policy_session *s = NULL;
	struct policy *prof = NULL;
	struct policy_decision d;
	unsigned counts[3] = {0};
	int64_t *lat, total = 0, overhead;
	long i;

	if (calls < ROUND) {
		fprintf(stderr, "bench-policy: at least %d calls\n", ROUND);
		return 2;
	}
	lat = calloc((size_t)calls, sizeof(*lat));
	if (!lat || policy__profile_builtin("codegen", &prof) < 0)
		return 1;
	memcpy(cfg.id, "bench-session-00", sizeof(cfg.id));
	overhead = timer_overhead();
	for (i = 0; i < calls; i++) {
		int64_t t0, t1;

		if (i % ROUND == 0) {
			policy__session_free(s);
			s = NULL;
			if (policy__session_new(prof, &cfg, &s) < 0)
				return 1;
		}
		t0 = ns_now();
		if (policy__decide(s, &mix[i % NMIX], 1000 + i, &d) < 0)
			return 1;
		t1 = ns_now();
		lat[i] = t1 - t0 - overhead;
		total += lat[i];
		counts[d.verdict]++;
	}
	per_call(lat, calls);
	qsort(lat, (size_t)calls, sizeof(*lat), cmp_i64);
	printf("policy__decide on profile codegen, %ld calls (%zu-call mix; deny %u, ask %u, "
	       "allow %u)\n",
	       calls, NMIX, counts[0], counts[1], counts[2]);
	printf("decisions/s (sum of decision times): %.0f; mean %.0f ns; at p50 %.0f/s\n",
	       (double)calls * 1e9 / (double)total, (double)total / (double)calls,
	       1e9 / (double)(lat[calls / 2] > 0 ? lat[calls / 2] : 1));
	printf("latency ns (timer overhead %lld ns subtracted): p50 %lld  p90 %lld  p99 %lld  "
	       "p99.9 %lld  max %lld\n",
	       (long long)overhead, (long long)lat[calls / 2], (long long)lat[calls * 9 / 10],
	       (long long)lat[calls * 99 / 100], (long long)lat[calls * 999 / 1000],
	       (long long)lat[calls - 1]);
	policy__session_free(s);
	policy__free(prof);
	free(lat);
	return 0;
}
