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

/* ---- delegation: a sub-agent's session (policy__session_delegate) ---- */

static void rand_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

static char *session_text(struct policy_session *s)
{
	char *text = NULL;

	cr_assert_eq(policy__session_to_json(s, &text), 0);
	return text;
}

static struct policy_session *session_parse(const char *text)
{
	struct policy_error err = {{0}};
	struct policy_session *s = NULL;

	cr_assert_eq(policy__session_from_json(text, &s, &err), 0, "%s\n%s", err.msg, text);
	return s;
}

/* Mostly valid, most operations allowed, some allow-sets everything: one that allows. */
static void loosen(struct policy *p)
{
	struct pset *allow[] = {&p->read, &p->write, &p->cmd, &p->interp, &p->egress, &p->refs};

	if (pick(16)) {
		p->not_before = INT64_MIN;
		p->not_after = INT64_MAX;
	}
	for (int i = 0; i < POLICY_OP_COUNT; i++)
		if (pick(4))
			p->level[i] = POLICY_ALLOW;
	for (size_t i = 0; i < N(allow); i++) {
		if (pick(3) == 0) {
			pset__clear(allow[i]);
			allow[i]->all = true;
		}
	}
}

static struct policy *rand_loose_policy(bool loose)
{
	struct policy *p = rand_policy();

	if (loose)
		loosen(p);
	return p;
}

/*
 * A parent: a session of a random policy (validity open three times in four; @loose:
 * loosened) after a few random calls, expired asks and narrowings, so that it has exposure,
 * suspicion, counters and sometimes quarantine; some have a used approval nonce.
 */
static struct policy_session *rand_parent(bool loose)
{
	struct policy_session_config cfg = {{0}};
	struct policy_session *s = NULL;
	struct policy *p = rand_loose_policy(loose);
	unsigned steps = pick(30);

	rand_bytes(cfg.id, sizeof(cfg.id));
	if (pick(4)) {
		p->not_before = INT64_MIN;
		p->not_after = INT64_MAX;
	}
	cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
	for (unsigned i = 0; i < steps; i++) {
		struct policy_decision d;
		const char *argv[3];
		struct policy_call c;
		struct policy *q;

		switch (pick(16)) {
		case 0:
			q = rand_loose_policy(loose);
			cr_assert_eq(policy__narrow(s, q, i, &d), 0);
			policy__free(q);
			break;
		case 1:
		case 2:
			policy__ask_expired(s);
			break;
		default:
			rand_call(&c, argv);
			cr_assert_eq(policy__decide(s, &c, i, &d), 0);
			break;
		}
	}
	if (pick(8) == 0)
		cr_assert_eq(session__quarantine(s), 0);
	if (pick(4) == 0) {
		uint8_t nonce[POLICY_NONCE_LEN];

		rand_bytes(nonce, sizeof(nonce));
		cr_assert_eq(session__remember_nonce(s, nonce, 1000), 0);
	}
	policy__free(p);
	return s;
}

static struct policy_session *delegate(const struct policy_session *parent,
				       const struct policy *requested)
{
	struct policy_session_config cfg = {{0}};
	struct policy_session *c = NULL;

	rand_bytes(cfg.id, sizeof(cfg.id));
	cr_assert_eq(policy__session_delegate(parent, requested, &cfg, &c), 0);
	return c;
}

static struct policy *envelope_of(const struct policy_session *s)
{
	struct policy *p = NULL;

	cr_assert_eq(policy__dup(policy__session_envelope(s), &p), 0);
	return p;
}

Test(props, delegate_refuses_bad_arguments)
{
	struct policy_session_config cfg = {.n_approver_keys = 1};
	struct policy_session *parent, *c = NULL;

	rng_state = 0x5eed0010;
	parent = rand_parent(pick(2));
	cr_expect_eq(policy__session_delegate(NULL, NULL, &cfg, &c), -EINVAL);
	cr_expect_eq(policy__session_delegate(parent, NULL, NULL, &c), -EINVAL);
	cr_expect_eq(policy__session_delegate(parent, NULL, &cfg, NULL), -EINVAL);
	/* approver keys counted but not given */
	cr_expect_eq(policy__session_delegate(parent, NULL, &cfg, &c), -EINVAL);
	cr_expect_null(c);
	policy__session_free(parent);
}

/* The child is below both what it came from and what it asked for, and is a narrowing. */
Test(props, delegate_never_wider)
{
	rng_state = 0x5eed0011;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session *parent = rand_parent(pick(2)), *narrowed = NULL, *c;
		struct policy *req = rand_policy();
		const struct policy *env;
		struct policy_decision d;
		char *text = session_text(parent);

		c = delegate(parent, req);
		env = policy__session_envelope(c);
		cr_expect(policy__leq(env, policy__session_envelope(parent)),
			  "round %d: wider than the parent", r);
		cr_expect(policy__leq(env, req), "round %d: wider than requested", r);
		/* the very envelope policy__narrow gives the parent (a copy of it) */
		narrowed = session_parse(text);
		cr_assert_eq(policy__narrow(narrowed, req, 0, &d), 0);
		expect_eq(envelope_of(c), envelope_of(narrowed), "delegate = narrow", r);
		policy__session_free(narrowed);
		policy__session_free(c);
		policy__session_free(parent);
		policy__free(req);
		free(text);
	}
}

Test(props, delegate_idempotent)
{
	rng_state = 0x5eed0012;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session *parent = rand_parent(pick(2)), *c, *cc;
		struct policy *req = rand_policy();

		c = delegate(parent, req);
		cc = delegate(c, req);
		expect_eq(envelope_of(c), envelope_of(cc), "delegate(delegate(P, A), A)", r);
		policy__session_free(cc);
		policy__session_free(c);
		policy__session_free(parent);
		policy__free(req);
	}
}

/*
 * Chains: delegating A then B is delegating A ^ B at once. Exact despite deny_empty: it
 * only lowers levels, where an allow-set is empty; the sets of both sides are the same
 * meet P ^ A ^ B, and an allow-set empty in P ^ A stays empty in P ^ A ^ B, so both sides
 * deny the same operations.
 */
Test(props, delegate_chains)
{
	rng_state = 0x5eed0013;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session *parent = rand_parent(pick(2)), *ca, *cab, *c1;
		struct policy *a = rand_policy(), *b = rand_policy(), *ab = meet(a, b);

		ca = delegate(parent, a);
		cab = delegate(ca, b);
		c1 = delegate(parent, ab);
		expect_eq(envelope_of(cab), envelope_of(c1), "delegate(delegate(P, A), B)", r);
		cr_expect_eq(policy__session_legs(cab), policy__session_legs(c1));
		cr_expect_eq(policy__session_suspicion(cab), policy__session_suspicion(c1));
		cr_expect_eq(policy__session_quarantined(cab), policy__session_quarantined(c1));
		policy__session_free(c1);
		policy__session_free(cab);
		policy__session_free(ca);
		policy__session_free(parent);
		policy__free(a);
		policy__free(b);
		policy__free(ab);
	}
}

Test(props, delegate_null_requested_keeps_envelope)
{
	rng_state = 0x5eed0014;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session *parent = rand_parent(pick(2)), *c = delegate(parent, NULL);

		expect_eq(envelope_of(c), envelope_of(parent), "delegate(P, NULL)", r);
		policy__session_free(c);
		policy__session_free(parent);
	}
}

/* Exposure, suspicion and quarantine carry over; identity, counters and nonces do not. */
Test(props, delegate_inherits_exposure_and_quarantine)
{
	uint8_t keys[2][32];
	unsigned quarantined = 0, exposed = 0, suspected = 0;

	rng_state = 0x5eed0015;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session_config cfg = {.approver_keys = (const uint8_t(*)[32])keys,
						    .n_approver_keys = pick(3)};
		struct policy_session *parent = rand_parent(pick(2)), *c = NULL, *back;
		struct policy *req = pick(4) ? rand_policy() : NULL;
		char *text, *text2;

		rand_bytes(cfg.id, sizeof(cfg.id));
		rand_bytes(&keys[0][0], sizeof(keys));
		cr_assert_eq(policy__session_delegate(parent, req, &cfg, &c), 0);
		cr_expect_eq(policy__session_legs(c), policy__session_legs(parent), "round %d", r);
		cr_expect_eq(policy__session_suspicion(c), policy__session_suspicion(parent),
			     "round %d", r);
		cr_expect_eq(policy__session_quarantined(c), policy__session_quarantined(parent),
			     "round %d", r);
		if (policy__session_quarantined(parent)) {
			struct policy *ro = NULL;

			cr_assert_eq(policy__read_only(&ro), 0);
			cr_expect(policy__leq(policy__session_envelope(c), ro), "round %d", r);
			policy__free(ro);
		}
		quarantined += policy__session_quarantined(parent);
		exposed += policy__session_legs(parent) != 0;
		suspected += policy__session_suspicion(parent) != 0;
		cr_expect_eq(memcmp(policy__session_id(c), cfg.id, sizeof(cfg.id)), 0);
		cr_expect_eq(c->nkeys, cfg.n_approver_keys);
		cr_expect(c->nkeys == 0 || memcmp(c->keys, keys, c->nkeys * 32) == 0);
		cr_expect_eq(policy__session_seq(c), 0);
		cr_expect(c->n_calls == 0 && c->n_net == 0 && c->n_spawn == 0);
		cr_expect_eq(c->nnonces, 0);
		/* the child round-trips through its JSON form */
		text = session_text(c);
		back = session_parse(text);
		text2 = session_text(back);
		cr_expect_str_eq(text2, text, "round %d", r);
		cr_expect(policy__eq(policy__session_envelope(back), policy__session_envelope(c)));
		free(text);
		free(text2);
		policy__session_free(back);
		policy__session_free(c);
		policy__session_free(parent);
		policy__free(req);
	}
	cr_expect_gt(quarantined, 0);
	cr_expect_gt(exposed, 0);
	cr_expect_gt(suspected, 0);
}

/* Delegating from a parent leaves it as it was, byte for byte. */
Test(props, delegate_leaves_parent_unchanged)
{
	rng_state = 0x5eed0016;
	for (int r = 0; r < ROUNDS; r++) {
		struct policy_session *parent = rand_parent(pick(2)), *c;
		struct policy *req = pick(4) ? rand_policy() : NULL;
		char *before = session_text(parent), *after;

		c = delegate(parent, req);
		after = session_text(parent);
		cr_expect_str_eq(after, before, "round %d", r);
		free(before);
		free(after);
		policy__session_free(c);
		policy__session_free(parent);
		policy__free(req);
	}
}

/*
 * Decisions: whatever the parent would not allow, the child does not allow. The child
 * goes through a sequence of calls (and narrowings); each call is also put to two copies
 * of the parent as it was when it delegated, restored from its JSON so that deciding does
 * not change it: one as it is, one with the child's call counters.
 *
 * The law does not hold exactly against the parent as it is for one reason: budgets. The
 * child's counters start at 0 (its budget is its own, within the parent's limits), so a
 * parent that has spent max_calls (max_net, max_spawn) refuses BUDGET_EXHAUSTED what the
 * child may still allow. Against the parent with the child's counters the law holds
 * exactly, in the stronger form child verdict <= parent verdict (deny < ask < allow).
 */
Test(props, delegate_decisions_within_parent)
{
	static const enum policy_op ops[] = {
		POLICY_OP_READ_FILE, POLICY_OP_WRITE_FILE,  POLICY_OP_RUN,
		POLICY_OP_WEB_FETCH, POLICY_OP_NET_CONNECT, POLICY_OP_GIT_PUSH,
	};
	unsigned allowed[POLICY_OP_COUNT] = {0}, refused = 0, budget = 0;

	rng_state = 0x5eed0017;
	for (int r = 0; r < 1000; r++) {
		struct policy_session *parent = rand_parent(true), *c;
		struct policy *req = pick(4) ? rand_loose_policy(pick(4)) : NULL;
		char *text = session_text(parent);

		c = delegate(parent, req);
		for (int step = 0; step < 40; step++) {
			struct policy_session *p1 = session_parse(text), *p2 = session_parse(text);
			struct policy_decision d1, d2, dc;
			const char *argv[3];
			struct policy_call call;

			if (pick(40) == 0) {
				struct policy *q = rand_loose_policy(true);

				cr_assert_eq(policy__narrow(c, q, step, &dc), 0);
				policy__free(q);
			}
			rand_call(&call, argv);
			if (pick(2))
				call.op = ops[pick(N(ops))];
			p2->n_calls = c->n_calls;
			p2->n_net = c->n_net;
			p2->n_spawn = c->n_spawn;
			cr_assert_eq(policy__decide(p1, &call, step, &d1), 0);
			cr_assert_eq(policy__decide(p2, &call, step, &d2), 0);
			cr_assert_eq(policy__decide(c, &call, step, &dc), 0);
			cr_expect_leq(dc.verdict, d2.verdict,
				      "round %d step %d: %s child %s (%s), parent %s (%s)", r, step,
				      policy__op_name(call.op), policy__level_name(dc.verdict),
				      policy__reason_name(dc.reason),
				      policy__level_name(d2.verdict),
				      policy__reason_name(d2.reason));
			if (d1.verdict != POLICY_ALLOW) {
				refused++;
				if (dc.verdict == POLICY_ALLOW) {
					cr_expect_eq(d1.reason, POLICY_R_BUDGET_EXHAUSTED,
						     "round %d step %d: parent %s, child allows", r,
						     step, policy__reason_name(d1.reason));
					budget++;
				}
			}
			allowed[call.op] += dc.verdict == POLICY_ALLOW;
			policy__session_free(p1);
			policy__session_free(p2);
		}
		policy__session_free(c);
		policy__session_free(parent);
		policy__free(req);
		free(text);
	}
	cr_expect_gt(refused, 0);
	cr_expect_gt(budget, 0, "the budget exception was never seen");
	for (size_t i = 0; i < N(ops); i++)
		cr_expect_gt(allowed[ops[i]], 0, "the child never allowed %s",
			     policy__op_name(ops[i]));
}
