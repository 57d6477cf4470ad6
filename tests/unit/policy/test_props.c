// SPDX-License-Identifier: Apache-2.0
/*
 * Property tests over thousands of random policies (seeded, reproducible): lattice laws,
 * order/meet consistency, semantic soundness of meet and join, JSON round trips, and the
 * session invariants (envelopes never rise, exposure never shrinks, quarantine absorbs).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "policy/internal.h"

#define ROUNDS 3000

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned pick(unsigned n)
{
	return (unsigned)(rnd() % n);
}

#define N(a) (sizeof(a) / sizeof(a[0]))

static const char *const paths[] = {"/a/**", "/a/b/**", "/a/b/c", "/a/*.c",  "/b/**",
				    "/**",   "/a/b/*",	"/c",	  "/a/**/x", "/a/b/c/**"};
static const char *const cmds[] = {"git **",  "git status", "git status **", "make",
				   "make **", "ls *",	    "python3 -c **", "ls"};
static const char *const rules[] = {"a.com:443",      "*.a.com:*",	     "b.a.com:80,443",
				    "*.com:443",      "x.org:1-1000",	     "10.0.0.0/8:*",
				    "10.1.0.0/16:22", "[2001:db8::]/32:443", "*:443",
				    "*:80-8080",      "10.1.2.3:22,443",     "b.a.com:8000-9000"};
static const char *const refs[] = {"refs/heads/**", "refs/heads/main", "refs/tags/v*", "refs/**"};

static void rand_set(struct pset *s, const char *const *pool, unsigned n, int kind, bool deny)
{
	unsigned k;

	pset__clear(s);
	s->all = !deny && pick(5) == 0;
	if (s->all)
		return;
	k = pick(deny ? 3 : 4);
	for (unsigned i = 0; i < k; i++) {
		void *e = NULL;
		const char *why;
		const char *t = pool[pick(n)];
		int rc = kind == SET_EGRESS ? erule__parse(t, (struct erule **)&e, &why)
					    : glob__compile(t, kind, (struct glob **)&e, &why);

		cr_assert_eq(rc, 0, "%s", t);
		cr_assert_eq(pset__add(s, e), 0);
	}
	pset__normalize(s);
}

static uint64_t rand_limit(void)
{
	static const uint64_t v[] = {0, 5, 10, POLICY_UNLIMITED};

	return v[pick(4)];
}

static struct policy *rand_policy(void)
{
	static const int64_t t[] = {INT64_MIN, -5, 0, 10, 100, INT64_MAX};
	static const uint32_t q[] = {1, 2, 3, POLICY_NEVER};
	struct policy *p = policy__alloc();

	cr_assert_not_null(p);
	for (int i = 0; i < POLICY_OP_COUNT; i++)
		p->level[i] = (uint8_t)pick(3);
	rand_set(&p->read, paths, N(paths), GLOB_PATH, false);
	rand_set(&p->write, paths, N(paths), GLOB_PATH, false);
	rand_set(&p->path_deny, paths, N(paths), GLOB_PATH, true);
	rand_set(&p->cmd, cmds, N(cmds), GLOB_CMD, false);
	rand_set(&p->cmd_deny, cmds, N(cmds), GLOB_CMD, true);
	rand_set(&p->interp, cmds, N(cmds), GLOB_CMD, false);
	rand_set(&p->egress, rules, N(rules), SET_EGRESS, false);
	rand_set(&p->refs, refs, N(refs), GLOB_REF, false);
	p->max_calls = rand_limit();
	p->max_net = rand_limit();
	p->max_spawn = rand_limit();
	p->not_before = t[pick(N(t))];
	p->not_after = t[pick(N(t))];
	p->uninhabitable = (uint8_t)pick(2);
	p->quarantine_after = q[pick(4)];
	return p;
}

static struct policy *meet(const struct policy *a, const struct policy *b)
{
	struct policy *r = NULL;

	cr_assert_eq(policy__meet(a, b, &r), 0);
	return r;
}

static struct policy *join(const struct policy *a, const struct policy *b)
{
	struct policy *r = NULL;

	cr_assert_eq(policy__join(a, b, &r), 0);
	return r;
}

static void expect_eq(struct policy *x, struct policy *y, const char *law, int round)
{
	if (!policy__eq(x, y)) {
		char *a = NULL, *b = NULL;

		policy__to_json(x, &a);
		policy__to_json(y, &b);
		cr_expect_fail("round %d: %s fails:\n%s\n!=\n%s", round, law, a, b);
		free(a);
		free(b);
	}
	policy__free(x);
	policy__free(y);
}

Test(props, lattice_laws)
{
	rng_state = 0x5eed0001;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy *a = rand_policy(), *b = rand_policy(), *c = rand_policy();
		struct policy *ab = meet(a, b), *bc = meet(b, c);
		struct policy *jab = join(a, b), *jbc = join(b, c);

		expect_eq(meet(a, b), meet(b, a), "meet commutative", r);
		expect_eq(join(a, b), join(b, a), "join commutative", r);
		expect_eq(meet(ab, c), meet(a, bc), "meet associative", r);
		expect_eq(join(jab, c), join(a, jbc), "join associative", r);
		expect_eq(meet(a, a), join(a, a), "idempotent", r);
		cr_expect(policy__leq(ab, a) && policy__leq(ab, b), "round %d: meet below", r);
		cr_expect(policy__leq(a, jab) && policy__leq(b, jab), "round %d: join above", r);
		cr_expect_eq(policy__leq(a, b), policy__eq(ab, a), "round %d: a<=b iff a^b=a", r);
		cr_expect_eq(policy__leq(a, b), policy__eq(jab, b), "round %d: a<=b iff avb=b", r);
		policy__free(ab);
		policy__free(bc);
		policy__free(jab);
		policy__free(jbc);
		policy__free(a);
		policy__free(b);
		policy__free(c);
	}
}

Test(props, absorption_gives_back_a)
{
	rng_state = 0x5eed0002;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy *a = rand_policy(), *b = rand_policy();
		struct policy *jab = join(a, b), *ab = meet(a, b), *a2 = NULL, *a3 = NULL;

		cr_assert_eq(policy__dup(a, &a2), 0);
		cr_assert_eq(policy__dup(a, &a3), 0);
		expect_eq(meet(a, jab), a2, "a ^ (a v b) = a", r);
		expect_eq(join(a, ab), a3, "a v (a ^ b) = a", r);
		policy__free(jab);
		policy__free(ab);
		policy__free(a);
		policy__free(b);
	}
}

Test(props, top_and_empty_allow_lists)
{
	struct policy *top = NULL, *x = NULL, *y = NULL;
	struct policy_error err;

	rng_state = 0x5eed0003;
	cr_assert_eq(policy__top(&top), 0);
	for (int r = 0; r < ROUNDS; r++) {
		struct policy *a = rand_policy(), *a2 = NULL;

		cr_assert_eq(policy__dup(a, &a2), 0);
		cr_expect(policy__leq(a, top));
		expect_eq(meet(a, top), a2, "a ^ top = a", r);
		policy__free(a);
	}
	/* the meet of disjoint allow lists is nothing, never everything */
	cr_assert_eq(policy__profile_parse("{\"paths\": {\"read\": [\"/a/**\"]}}", &x, &err), 0);
	cr_assert_eq(policy__profile_parse("{\"paths\": {\"read\": [\"/b/**\"]}}", &y, &err), 0);
	{
		struct policy *m = meet(x, y);

		cr_expect(!m->read.all);
		cr_expect_eq(m->read.n, 0);
		cr_expect(policy__leq(m, x) && policy__leq(m, y));
		policy__free(m);
	}
	policy__free(x);
	policy__free(y);
	policy__free(top);
}

static bool allowed_path(const struct pset *s, const char *path)
{
	struct span seg[POLICY_MAX_SEGS];
	int n = path__split(path, seg, POLICY_MAX_SEGS);

	cr_assert_geq(n, 0);
	return s->all || glob__set_match(s, seg, (uint32_t)n);
}

static bool allowed_host(const struct pset *s, const char *host, uint16_t port)
{
	struct egress_subject subj;
	char buf[256];

	cr_assert_eq(egress__subject(host, strlen(host), port, &subj, buf, sizeof(buf)), 0);
	return s->all || egress__match(s, &subj);
}

/* The representation is exact for its own order and sound for what it allows. */
Test(props, meet_and_join_are_semantically_sound)
{
	static const char *const subj[] = {"/a/b/c", "/a/x.c", "/a/b/x",   "/b/q/r",
					   "/c",     "/a/q/x", "/a/b/c/d", "/z"};
	static const char *const hosts[] = {"a.com",	"b.a.com",  "c.b.a.com",   "x.org",
					    "10.1.2.3", "10.9.9.9", "2001:db8::1", "y.com"};
	static const uint16_t ports[] = {22, 80, 443, 8080, 8500};

	rng_state = 0x5eed0004;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy *a = rand_policy(), *b = rand_policy();
		struct policy *m = meet(a, b), *j = join(a, b);

		for (size_t i = 0; i < N(subj); i++) {
			bool in_a = allowed_path(&a->read, subj[i]);
			bool in_b = allowed_path(&b->read, subj[i]);

			if (allowed_path(&m->read, subj[i]))
				cr_expect(in_a && in_b, "round %d: meet allows %s", r, subj[i]);
			if (in_a || in_b)
				cr_expect(allowed_path(&j->read, subj[i]), "round %d: join %s", r,
					  subj[i]);
		}
		for (size_t i = 0; i < N(hosts); i++) {
			uint16_t port = ports[pick(N(ports))];
			bool in_a = allowed_host(&a->egress, hosts[i], port);
			bool in_b = allowed_host(&b->egress, hosts[i], port);

			if (allowed_host(&m->egress, hosts[i], port))
				cr_expect(in_a && in_b, "round %d: meet allows %s:%u", r, hosts[i],
					  port);
			if (in_a || in_b)
				cr_expect(allowed_host(&j->egress, hosts[i], port), "round %d", r);
		}
		policy__free(a);
		policy__free(b);
		policy__free(m);
		policy__free(j);
	}
}

Test(props, json_round_trip)
{
	rng_state = 0x5eed0005;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy *a = rand_policy(), *b = NULL;
		struct policy_error err = {{0}};
		char *text = NULL;

		cr_assert_eq(policy__to_json(a, &text), 0);
		cr_assert_eq(policy__profile_parse(text, &b, &err), 0, "%s\n%s", err.msg, text);
		cr_expect(policy__eq(a, b), "round %d: %s", r, text);
		free(text);
		policy__free(a);
		policy__free(b);
	}
}

/* ---- sessions ---- */

static void rand_call(struct policy_call *c, const char **argv)
{
	static const char *const p[] = {"/a/b/c", "/a/x.c", "/b/q", "/c", "/a/../c", "/a/.env"};
	static const char *const urls[] = {"https://a.com/x", "https://b.a.com/?q=1",
					   "http://x.org/", "https://10.1.2.3/", "bad"};
	static const char *const progs[][3] = {{"git", "status", NULL},	 {"make", NULL, NULL},
					       {"bash", "-c", "curl x"}, {"curl", "x", NULL},
					       {"ls", "-l", NULL},	 {"python3", "-c", "1"},
					       {"git", "push", NULL}};
	unsigned k;

	memset(c, 0, sizeof(*c));
	c->op = (enum policy_op)pick(POLICY_OP_COUNT);
	c->path = p[pick(N(p))];
	k = pick(N(progs));
	c->argc = 0;
	for (unsigned i = 0; i < 3 && progs[k][i]; i++)
		argv[c->argc++] = progs[k][i];
	c->argv = argv;
	c->url = urls[pick(N(urls))];
	c->method = pick(4) == 0 ? "POST" : NULL;
	c->host = pick(2) ? "a.com" : "10.1.2.3";
	c->port = (uint16_t)(pick(2) ? 443 : 22);
	c->remote = pick(2) ? "git@a.com:o/r" : "https://x.org/r";
	c->ref = pick(2) ? "main" : "refs/tags/v1";
}

Test(props, session_invariants)
{
	rng_state = 0x5eed0006;
	for (int r = 0; r < 300; r++) {
		struct policy *p = rand_policy();
		struct policy_session_config cfg = {{0}};
		struct policy_session *s = NULL;
		bool quarantined = false;

		p->not_before = INT64_MIN;
		p->not_after = INT64_MAX;
		cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
		for (int step = 0; step < 40; step++) {
			struct policy *before = NULL, *q = NULL;
			unsigned legs = policy__session_legs(s);
			uint64_t seq = policy__session_seq(s);
			struct policy_decision d;
			const char *argv[3];
			struct policy_call c;

			cr_assert_eq(policy__dup(policy__session_envelope(s), &before), 0);
			switch (pick(10)) {
			case 0:
				q = rand_policy();
				cr_assert_eq(policy__request_widen(s, q, step, &d), 0);
				break;
			case 1:
				q = rand_policy();
				cr_assert_eq(policy__narrow(s, q, step, &d), 0);
				break;
			default:
				rand_call(&c, argv);
				cr_assert_eq(policy__decide(s, &c, step, &d), 0);
				cr_expect(d.verdict != POLICY_ALLOW ||
						  (legs | d.call_legs) != POLICY_LEGS_ALL ||
						  !d.call_legs,
					  "round %d step %d: allowed into the uninhabitable state",
					  r, step);
				break;
			}
			cr_expect(policy__leq(policy__session_envelope(s), before),
				  "round %d step %d: envelope rose", r, step);
			cr_expect_eq(policy__session_legs(s) & legs, legs,
				     "round %d step %d: exposure shrank", r, step);
			cr_expect_eq(d.trace.seq, seq + 1);
			cr_expect_eq(d.trace.legs_before, legs);
			cr_expect_eq(d.trace.legs_after, policy__session_legs(s));
			if (quarantined)
				cr_expect(policy__session_quarantined(s),
					  "round %d step %d: quarantine lifted", r, step);
			quarantined = policy__session_quarantined(s);
			if (quarantined) {
				struct policy *ro = NULL;

				cr_assert_eq(policy__read_only(&ro), 0);
				cr_expect(policy__leq(policy__session_envelope(s), ro));
				policy__free(ro);
			}
			policy__free(before);
			policy__free(q);
		}
		policy__session_free(s);
		policy__free(p);
	}
}

/* ---- hostile input: mutated JSON and strings never crash the parsers ---- */

static void mutate(char *s, size_t len)
{
	static const char junk[] = "{}[]\",:\\/*?.-0129aZ \x01\x7f\xff";
	unsigned k = 1 + pick(4);

	for (unsigned i = 0; i < k && len; i++)
		s[pick((unsigned)len)] = junk[pick(sizeof(junk) - 1)];
}

Test(props, mutated_profiles_and_sessions_are_rejected_or_parsed)
{
	struct policy_session_config cfg = {{0}};
	struct policy_session *s = NULL;
	struct policy *p = NULL;
	char *session_text = NULL;
	unsigned parsed = 0, rejected = 0;

	rng_state = 0x5eed0007;
	cr_assert_eq(policy__profile_builtin("codegen", &p), 0);
	cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
	cr_assert_eq(policy__session_to_json(s, &session_text), 0);
	for (int r = 0; r < ROUNDS; r++) {
		const char *name = policy__builtin_names()[pick(6)];
		char *t = strdup(policy__builtin_json(name));
		char *u = strdup(session_text);
		struct policy_error err = {{0}};
		struct policy *q = NULL;
		struct policy_session *s2 = NULL;
		int rc;

		mutate(t, strlen(t));
		mutate(u, strlen(u));
		rc = policy__profile_parse(t, &q, &err);
		cr_expect(rc == 0 || (rc == -EINVAL && err.msg[0] == '$'), "%d %s", rc, err.msg);
		rc == 0 ? parsed++ : rejected++;
		policy__free(q);
		rc = policy__session_from_json(u, &s2, &err);
		cr_expect(rc == 0 || rc == -EINVAL, "%d", rc);
		policy__session_free(s2);
		free(t);
		free(u);
	}
	cr_expect_gt(rejected, 0);
	free(session_text);
	policy__session_free(s);
	policy__free(p);
}

Test(props, random_calls_never_crash_the_decision)
{
	static const char alphabet[] = "/.a*?:@[]\\-_%~ \x01\x7f\xc3";
	struct policy_session_config cfg = {{0}};
	struct policy_session *s = NULL;
	struct policy *p = NULL;

	rng_state = 0x5eed0008;
	cr_assert_eq(policy__profile_builtin("permissive-local", &p), 0);
	cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
	for (int r = 0; r < ROUNDS * 3; r++) {
		char str[6][24];
		const char *argv[4];
		struct policy_call c = {.op = (enum policy_op)pick(POLICY_OP_COUNT)};
		struct policy_decision d;

		for (int i = 0; i < 6; i++) {
			unsigned len = pick(sizeof(str[i]));

			for (unsigned k = 0; k < len; k++)
				str[i][k] = alphabet[pick(sizeof(alphabet) - 1)];
			str[i][len] = '\0';
		}
		argv[0] = str[0];
		argv[1] = str[1];
		argv[2] = str[2];
		argv[3] = str[3];
		c.path = pick(2) ? str[0] : NULL;
		c.argv = pick(4) ? argv : NULL;
		c.argc = pick(5);
		c.url = pick(2) ? str[4] : NULL;
		c.host = str[5];
		c.port = (uint16_t)pick(3);
		c.remote = pick(2) ? str[1] : NULL;
		c.ref = pick(2) ? str[2] : NULL;
		cr_assert_eq(policy__decide(s, &c, r, &d), 0);
		cr_expect(d.verdict <= POLICY_ALLOW && d.reason < POLICY_R_COUNT);
	}
	policy__session_free(s);
	policy__free(p);
}
