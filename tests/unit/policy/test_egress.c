// SPDX-License-Identifier: Apache-2.0
/* Egress rules: hosts, suffixes, CIDRs (v4/v6), port sets; URL and remote parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "policy/internal.h"

static struct erule *rule(const char *text)
{
	struct erule *r = NULL;
	const char *why = NULL;

	cr_assert_eq(erule__parse(text, &r, &why), 0, "%s: %s", text, why);
	return r;
}

static bool allows(const char *text, const char *host, uint16_t port)
{
	struct pset s;
	struct egress_subject subj;
	char buf[256];
	bool m;

	pset__init(&s, &erule_ops, false);
	cr_assert_eq(pset__add(&s, rule(text)), 0);
	cr_assert_eq(egress__subject(host, strlen(host), port, &subj, buf, sizeof(buf)), 0, "%s",
		     host);
	m = egress__match(&s, &subj) != NULL;
	pset__clear(&s);
	return m;
}

Test(egress, canonical_text)
{
	static const char *const cases[][2] = {
		{"Example.COM", "example.com:*"},
		{"*.example.com:443", "*.example.com:443"},
		{"10.1.2.3/8:80,443", "10.0.0.0/8:80,443"},
		{"10.0.0.1", "10.0.0.1/32:*"},
		{"[2001:db8::1]/32:443", "[2001:db8::]/32:443"},
		{"[::1]:22", "[::1]/128:22"},
		{"h:443,80,81-90,91", "h:80-91,443"},
		{"*", "*:*"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct erule *r = rule(cases[i][0]);

		cr_expect_str_eq(r->text, cases[i][1]);
		erule_ops.free(r);
	}
}

Test(egress, bad_rules)
{
	static const char *const bad[] = {"",	      "a..b",	      "*.",  "x:0",
					  "x:65536",  "x:80-70",      "x:",  "10.0.0.0/33",
					  "[::1",     "[::1]/129",    "a b", "x:80,",
					  "*foo.com", "2001:db8::/32"};
	struct erule *r = NULL;
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_lt(erule__parse(bad[i], &r, &why), 0, "%s", bad[i]);
}

Test(egress, matching)
{
	cr_expect(allows("example.com:443", "example.com", 443));
	cr_expect(allows("example.com:443", "EXAMPLE.com.", 443));
	cr_expect(!allows("example.com:443", "example.com", 80));
	cr_expect(!allows("example.com:443", "www.example.com", 443));
	cr_expect(allows("*.example.com", "a.b.example.com", 1));
	cr_expect(!allows("*.example.com", "example.com", 443));
	cr_expect(!allows("*.example.com", "badexample.com", 443));
	cr_expect(allows("10.0.0.0/8:22", "10.200.3.4", 22));
	cr_expect(!allows("10.0.0.0/8:22", "11.0.0.1", 22));
	cr_expect(!allows("10.0.0.0/8:22", "ten.example", 22));
	cr_expect(allows("[2001:db8::]/32", "2001:db8:1::5", 80));
	cr_expect(allows("[2001:db8::]/32", "[2001:db8::5]", 80));
	cr_expect(!allows("[2001:db8::]/32", "2001:db9::5", 80));
	cr_expect(allows("127.0.0.0/8", "::ffff:127.0.0.1", 80)); /* v4-mapped is v4 */
	cr_expect(allows("*:443", "anything.org", 443));
	cr_expect(allows("*:443", "1.2.3.4", 443));
	cr_expect(!allows("*:443", "1.2.3.4", 444));
	cr_expect(allows("h:8000-8100", "h", 8050));
	cr_expect(!allows("h:8000-8100", "h", 8101));
}

static bool leq(const char *a, const char *b)
{
	struct erule *x = rule(a), *y = rule(b);
	bool r = erule_ops.leq(x, y);

	erule_ops.free(x);
	erule_ops.free(y);
	return r;
}

Test(egress, order_and_glb)
{
	struct erule *a = rule("*.example.com:80,443"), *b = rule("api.example.com:443,8443");
	void *g = NULL;

	cr_expect(leq("a.example.com:443", "*.example.com:*"));
	cr_expect(leq("*.a.example.com:443", "*.example.com:443"));
	cr_expect(!leq("*.example.com:443", "a.example.com:443"));
	cr_expect(leq("10.1.0.0/16:22", "10.0.0.0/8:*"));
	cr_expect(!leq("10.0.0.0/8:22", "10.1.0.0/16:22"));
	cr_expect(!leq("10.0.0.0/8", "[::]/0"));
	cr_expect(leq("x.org:1-10", "*"));
	cr_assert_eq(erule_ops.glb(a, b, &g), 1);
	cr_expect_str_eq(((struct erule *)g)->text, "api.example.com:443");
	erule_ops.free(g);
	erule_ops.free(a);
	a = rule("x.org:80");
	cr_expect_eq(erule_ops.glb(a, b, &g), 0);
	erule_ops.free(a);
	a = rule("api.example.com:80");
	cr_expect_eq(erule_ops.glb(a, b, &g), 0, "disjoint ports give nothing");
	erule_ops.free(a);
	erule_ops.free(b);
}

Test(egress, urls_and_remotes)
{
	struct egress_subject s;
	char buf[256];
	bool q = false;

	cr_assert_eq(url__parse("https://user:pw@Docs.Example.com/a?b=c", &s, buf, sizeof(buf), &q),
		     0);
	cr_expect_str_eq(s.host, "docs.example.com");
	cr_expect_eq(s.port, 443);
	cr_expect(q);
	cr_assert_eq(url__parse("http://[2001:db8::1]:8080/x", &s, buf, sizeof(buf), &q), 0);
	cr_expect_eq(s.family, 6);
	cr_expect_eq(s.port, 8080);
	cr_expect(!q);
	cr_expect_lt(url__parse("ftp://x/", &s, buf, sizeof(buf), &q), 0);
	cr_expect_lt(url__parse("https://x:99999/", &s, buf, sizeof(buf), &q), 0);
	cr_expect_lt(url__parse("https:///x", &s, buf, sizeof(buf), &q), 0);
	cr_expect_lt(url__parse("https://a b/", &s, buf, sizeof(buf), &q), 0);
	cr_expect_lt(url__parse("/local", &s, buf, sizeof(buf), &q), 0);
	cr_expect_lt(url__parse("https://evil.com\\@good.com/", &s, buf, sizeof(buf), &q), 0);
	cr_assert_eq(url__parse("https://good.com@evil.com/", &s, buf, sizeof(buf), &q), 0);
	cr_expect_str_eq(s.host, "evil.com");
	cr_assert_eq(remote__parse("git@github.com:org/repo.git", &s, buf, sizeof(buf)), 0);
	cr_expect_str_eq(s.host, "github.com");
	cr_expect_eq(s.port, 22);
	cr_assert_eq(remote__parse("ssh://git@github.com:2222/org/r", &s, buf, sizeof(buf)), 0);
	cr_expect_eq(s.port, 2222);
	cr_assert_eq(remote__parse("https://github.com/org/r", &s, buf, sizeof(buf)), 0);
	cr_expect_eq(s.port, 443);
	cr_expect_lt(remote__parse("origin", &s, buf, sizeof(buf)), 0);
	cr_expect_lt(remote__parse("/srv/git/r.git", &s, buf, sizeof(buf)), 0);
	cr_expect_lt(remote__parse("file:///srv/r", &s, buf, sizeof(buf)), 0);
	cr_expect_lt(remote__parse("ext::sh -c touch% /tmp/pwned", &s, buf, sizeof(buf)), 0);
	cr_expect_lt(remote__parse("--upload-pack=evil:x", &s, buf, sizeof(buf)), 0);
}
