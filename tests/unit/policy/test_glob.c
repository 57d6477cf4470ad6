// SPDX-License-Identifier: Apache-2.0
/* Globs, canonical paths and the tree order of patterns. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "policy/internal.h"

static struct glob *compile(const char *text, int kind)
{
	struct glob *g = NULL;
	const char *why = NULL;

	cr_assert_eq(glob__compile(text, kind, &g, &why), 0, "%s: %s", text, why);
	return g;
}

static bool path_matches(const char *pattern, const char *path)
{
	struct span seg[POLICY_MAX_SEGS];
	struct glob *g = compile(pattern, GLOB_PATH);
	int n = path__split(path, seg, POLICY_MAX_SEGS);
	bool m;

	cr_assert_geq(n, 0, "%s should be canonical", path);
	m = glob__match(g, seg, (uint32_t)n);
	glob_ops.free(g);
	return m;
}

Test(glob, star_stays_within_a_segment)
{
	cr_expect(path_matches("/w/*.c", "/w/a.c"));
	cr_expect(!path_matches("/w/*.c", "/w/sub/a.c"));
	cr_expect(path_matches("/w/*", "/w/x"));
	cr_expect(!path_matches("/w/*", "/w"));
	cr_expect(path_matches("/w/a?c", "/w/abc"));
	cr_expect(!path_matches("/w/a?c", "/w/ac"));
	cr_expect(path_matches("/w/*x*y*", "/w/aaxbbyc"));
	cr_expect(!path_matches("/w/*x*y*", "/w/aaybbxc"));
}

Test(glob, double_star_crosses_segments)
{
	cr_expect(path_matches("/w/**", "/w"));
	cr_expect(path_matches("/w/**", "/w/a/b/c"));
	cr_expect(!path_matches("/w/**", "/work"));
	cr_expect(path_matches("/**/.env", "/w/a/.env"));
	cr_expect(path_matches("/**/.env", "/.env"));
	cr_expect(!path_matches("/**/.env", "/w/a/.envrc"));
	cr_expect(path_matches("/**/.ssh/**", "/home/u/.ssh/id_rsa"));
	cr_expect(path_matches("/w/**/x/*.c", "/w/a/b/x/m.c"));
	cr_expect(path_matches("/w/**/x/*.c", "/w/x/m.c"));
	cr_expect(!path_matches("/w/**/x/*.c", "/w/x/y/m.h"));
	cr_expect(path_matches("/**", "/"));
	cr_expect(path_matches("/", "/"));
	cr_expect(!path_matches("/", "/a"));
}

Test(glob, non_canonical_paths_are_rejected)
{
	static const char *const bad[] = {
		"relative/x", "/w/../etc/passwd", "/w//x",   "/w/./x", "/w/x/", "/w/..", "/w/.",
		"",	      "/w/x\n",		  "/w/\x01x"};
	struct span seg[POLICY_MAX_SEGS];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_lt(path__split(bad[i], seg, POLICY_MAX_SEGS), 0, "%s", bad[i]);
	cr_expect_lt(path__split(NULL, seg, POLICY_MAX_SEGS), 0);
	cr_expect_eq(path__split("/w/...x/..y", seg, POLICY_MAX_SEGS), 3);
	cr_expect_eq(path__split("/a/b", seg, 1), -E2BIG);
}

Test(glob, bad_patterns_have_reasons)
{
	static const char *const bad[] = {"w/x", "/w//x", "/w/../x", "/w/a**", "/w/./x", "/w/"};
	struct glob *g = NULL;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		cr_expect_lt(glob__compile(bad[i], GLOB_PATH, &g, &why), 0, "%s", bad[i]);
		cr_expect_not_null(why);
	}
	cr_expect_lt(glob__compile("/usr/bin/git push", GLOB_CMD, &g, &why), 0);
	cr_expect_lt(glob__compile("git  push", GLOB_CMD, &g, &why), 0);
	cr_expect_lt(glob__compile("heads/main", GLOB_REF, &g, &why), 0);
}

Test(glob, repeated_double_stars_fold)
{
	struct glob *g = compile("/w/**/**/x", GLOB_PATH);

	cr_expect_str_eq(g->text, "/w/**/x");
	cr_expect_eq(g->nseg, 3);
	glob_ops.free(g);
}

static bool cmd_matches(const char *pattern, const char *const *argv, uint32_t n)
{
	struct span t[16];
	struct glob *g = compile(pattern, GLOB_CMD);
	bool m;

	for (uint32_t i = 0; i < n; i++) {
		t[i].s = argv[i];
		t[i].len = (uint32_t)strlen(argv[i]);
	}
	m = glob__match(g, t, n);
	glob_ops.free(g);
	return m;
}

Test(glob, command_patterns_match_argv_tokens)
{
	const char *gs[] = {"git", "status"};
	const char *gsp[] = {"git", "status", "--porcelain"};
	const char *mk[] = {"make", "-j2", "all"};
	const char *sp[] = {"echo", "a b"};

	cr_expect(cmd_matches("git status", gs, 2));
	cr_expect(!cmd_matches("git status", gsp, 3));
	cr_expect(cmd_matches("git status **", gsp, 3));
	cr_expect(cmd_matches("git status **", gs, 2));
	cr_expect(cmd_matches("make **", mk, 3));
	cr_expect(!cmd_matches("make", mk, 3));
	cr_expect(cmd_matches("make -j* all", mk, 3));
	cr_expect(cmd_matches("echo a?b", sp, 2));
	cr_expect(!cmd_matches("echo *", gs, 2));
}

static bool leq(const char *a, const char *b)
{
	struct glob *x = compile(a, GLOB_PATH), *y = compile(b, GLOB_PATH);
	bool r = glob_ops.leq(x, y);

	glob_ops.free(x);
	glob_ops.free(y);
	return r;
}

Test(glob, tree_order)
{
	cr_expect(leq("/w/a/**", "/w/**"));
	cr_expect(leq("/w/a/*.c", "/w/**"));
	cr_expect(leq("/w", "/w/**"));
	cr_expect(leq("/w/**", "/w/**"));
	cr_expect(!leq("/w/**", "/w/a/**"));
	cr_expect(!leq("/work/**", "/w/**"));
	cr_expect(!leq("/w/a", "/w/*")); /* sound but not complete: only `**` tails */
	cr_expect(leq("/anything/x", "/**"));
}

Test(glob, refs)
{
	struct span seg[POLICY_MAX_SEGS];
	struct glob *g = compile("refs/tags/v*", GLOB_REF);
	int n = ref__split("refs/tags/v1.2", seg, POLICY_MAX_SEGS);

	cr_assert_eq(n, 3);
	cr_expect(glob__match(g, seg, (uint32_t)n));
	n = ref__split("refs/heads/v1", seg, POLICY_MAX_SEGS);
	cr_expect(!glob__match(g, seg, (uint32_t)n));
	cr_expect_lt(ref__split("refs/heads/../x", seg, POLICY_MAX_SEGS), 0);
	cr_expect_lt(ref__split("/refs/heads/x", seg, POLICY_MAX_SEGS), 0);
	glob_ops.free(g);
}
