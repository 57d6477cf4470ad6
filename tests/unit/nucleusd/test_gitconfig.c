// SPDX-License-Identifier: Apache-2.0
/*
 * A remote's push URL from a repository's config (nucleusd/gitconfig.c): git-config(1)'s
 * syntax, git's choice of URL and its rewrites, and hostile configs refused with a reason.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "nucleusd/nucleusd-internal.h"

/* Arrays, not pointers: criterion hands a parameter to a test in another process. */
struct gc_case {
	char what[48], config[320], remote[16];
	int rc;	      /* 0 or the -errno */
	char url[64]; /* rc 0: the push URL; else a piece of the reason */
};

static struct gc_case cases[] = {
	{"plain", "[remote \"origin\"]\n\turl = https://github.com/o/r.git\n", "origin", 0,
	 "https://github.com/o/r.git"},
	{"the one of that name", "[remote \"up\"]\n url = https://a/x\n[remote \"origin\"]\n"
				 " url = https://b/y\n",
	 "origin", 0, "https://b/y"},
	{"subsections are case-sensitive", "[remote \"Origin\"]\n url = https://a/x\n", "origin",
	 -ENOENT, "no remote 'origin'"},
	{"sections and keys are not", "[REMOTE \"origin\"]\n URL = https://a/x\n", "origin", 0,
	 "https://a/x"},
	{"the old [remote.origin]", "[remote.origin]\nurl=https://a/x\n", "origin", 0,
	 "https://a/x"},
	{"pushurl wins", "[remote \"origin\"]\n url = https://a/x\n pushurl = ssh://git@a/x\n",
	 "origin", 0, "ssh://git@a/x"},
	{"comments and quotes",
	 "# c\n; c\n[remote \"origin\"] # c\n url = \"https://a/x y\" ; c\n", "origin", 0,
	 "https://a/x y"},
	{"escapes and continuation", "[remote \"origin\"]\n url = https://a/\\\nx\\\"y\n",
	 "origin", 0, "https://a/x\"y"},
	{"insteadOf, the longest",
	 "[url \"https://evil.example/\"]\n insteadOf = https://github.com/\n"
	 "[url \"https://mirror/\"]\n insteadOf = https://\n"
	 "[remote \"origin\"]\n url = https://github.com/o/r\n",
	 "origin", 0, "https://evil.example/o/r"},
	{"pushInsteadOf before insteadOf",
	 "[url \"ssh://push/\"]\n pushInsteadOf = https://github.com/\n"
	 "[url \"https://evil.example/\"]\n insteadOf = https://github.com/\n"
	 "[remote \"origin\"]\n url = https://github.com/o/r\n",
	 "origin", 0, "ssh://push/o/r"},
	{"a pushurl gets insteadOf, not pushInsteadOf",
	 "[url \"ssh://push/\"]\n pushInsteadOf = https://h/\n"
	 "[url \"https://other/\"]\n insteadOf = https://h/\n"
	 "[remote \"origin\"]\n pushurl = https://h/r\n",
	 "origin", 0, "https://other/r"},
	{"rules after the remote count too",
	 "[remote \"origin\"]\n url = https://h/r\n[url \"https://x/\"]\n insteadOf = https://h/\n",
	 "origin", 0, "https://x/r"},
	{"no such remote", "[remote \"up\"]\n url = https://a/x\n", "origin", -ENOENT,
	 "no remote 'origin'"},
	{"two urls", "[remote \"origin\"]\n url = https://a/x\n url = https://b/x\n", "origin",
	 -E2BIG, "more than one push URL"},
	{"two pushurls", "[remote \"origin\"]\n pushurl = https://a/x\n pushurl = https://b/x\n",
	 "origin", -E2BIG, "more than one push URL"},
	{"include", "[include]\n path = other\n[remote \"origin\"]\n url = https://a/x\n",
	 "origin", -EOPNOTSUPP, "includes"},
	{"includeIf", "[includeIf \"gitdir:/x/\"]\n path = o\n[remote \"origin\"]\n url = h://a\n",
	 "origin", -EOPNOTSUPP, "includes"},
	{"an empty url", "[remote \"origin\"]\n url =\n", "origin", -EINVAL, "empty URL"},
	{"a bare key", "[remote \"origin\"]\n url\n", "origin", -EINVAL, "empty URL"},
	{"unterminated quote", "[remote \"origin\"]\n url = \"https://a\n", "origin", -EINVAL,
	 "unterminated quote"},
	{"bad escape", "[remote \"origin\"]\n url = a\\qb\n", "origin", -EINVAL, "bad escape"},
	{"header without ]", "[remote \"origin\"\n url = x\n", "origin", -EINVAL, "without ']'"},
	{"variable outside a section", "url = https://a\n", "origin", -EINVAL,
	 "outside a section"},
	{"garbage", "[remote \"origin\"]\n url = a\n !!!\n", "origin", -EINVAL, "not a name"},
	{"text after a header", "[core] x [y]\n", "origin", -EINVAL, "expected '='"},
};

static void check(const struct gc_case *c, const char *text, size_t len)
{
	char why[160], *url = NULL;
	int r = nd_git__push_url(text, len, c->remote, &url, why, sizeof(why));

	cr_assert_eq(r, c->rc, "%s: %d (%s)", c->what, r, why);
	if (r == 0) {
		cr_assert_str_eq(url, c->url, "%s", c->what);
	} else {
		cr_assert_null(url, "%s", c->what);
		cr_assert_not_null(strstr(why, c->url), "%s: %s", c->what, why);
	}
	free(url);
}

ParameterizedTestParameters(gitconfig, push_urls)
{
	return cr_make_param_array(struct gc_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct gc_case *c, gitconfig, push_urls)
{
	check(c, c->config, strlen(c->config));
}

/* The guest's file: NUL bytes, huge values, over 1 MiB, CRLF lines. */
Test(gitconfig, hostile_configs_are_refused_not_misread)
{
	static const struct gc_case nul = {"nul", "", "origin", -EINVAL, "NUL"};
	static const struct gc_case big = {"big", "", "origin", -EFBIG, "over"};
	static const struct gc_case longv = {"long", "", "origin", -EINVAL, "too long"};
	static const struct gc_case crlf = {"crlf", "", "origin", 0, "https://a/x"};
	static const char with_nul[] = "[remote \"origin\"]\n url = https://a\0/x\n";
	char *text = malloc((2u << 20) + 1);

	cr_assert_not_null(text);
	check(&nul, with_nul, sizeof(with_nul) - 1);
	memset(text, '#', 2u << 20);
	check(&big, text, 2u << 20);
	strcpy(text, "[remote \"origin\"]\n url = ");
	memset(text + strlen(text), 'a', 10000);
	text[26 + 10000] = '\0';
	check(&longv, text, strlen(text));
	check(&crlf, "[remote \"origin\"]\r\n url = https://a/x\r\n", 39);
	free(text);
}

Test(gitconfig, names_and_urls)
{
	static const char *const names[] = {"origin", "up-stream", "a/b", "my.remote", "o_1"};
	static const char *const not[] = {"https://github.com/o/r",
					  "git@github.com:o/r",
					  "/srv/repo.git",
					  "./repo",
					  "../x",
					  "-x",
					  "",
					  "a b",
					  NULL};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert(nd_git__is_remote_name(names[i]), "%s", names[i]);
	for (size_t i = 0; i < sizeof(not) / sizeof(not[0]); i++)
		cr_assert(!nd_git__is_remote_name(not[i]), "%s", not[i] ? not[i] : "NULL");
}
