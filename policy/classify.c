// SPDX-License-Identifier: Apache-2.0
/*
 * The classifier: the one table that says which exposure legs an operation and its
 * arguments carry (docs/policy.md reproduces it). Commands are unwrapped (env, busybox,
 * nice, nohup, timeout, stdbuf, time, command, exec) and then sorted into three classes:
 * interpreters running inline code, commands that reach the network, and plain commands.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

enum {
	P = POLICY_LEG_PRIVATE,
	U = POLICY_LEG_UNTRUSTED,
	X = POLICY_LEG_EXFIL,
};

/* Base legs per operation; `run` and `web_fetch` are refined below (see docs). */
static const uint8_t op_legs[POLICY_OP_COUNT] = {
	[POLICY_OP_READ_FILE] = P,
	[POLICY_OP_WRITE_FILE] = 0,
	[POLICY_OP_LIST] = P,
	[POLICY_OP_SEARCH] = P,
	[POLICY_OP_RUN] = P,	   /* plain command: reads the workspace and env */
	[POLICY_OP_WEB_FETCH] = U, /* + X when it sends data (body, non-GET, query) */
	[POLICY_OP_WEB_SEARCH] = U,
	[POLICY_OP_NET_CONNECT] = U | X,
	[POLICY_OP_GIT_COMMIT] = 0,
	[POLICY_OP_GIT_PUSH] = X,
	[POLICY_OP_CREATE_PR] = X,
	[POLICY_OP_SPAWN_AGENT] = U | X,
	[POLICY_OP_MANAGE_SANDBOX] = 0,
};

/* Legs of `run` per command class. */
static const uint8_t cls_legs[] = {
	[CMD_PLAIN] = P,
	[CMD_INTERP] = P | X, /* + U when the code names a network tool or API */
	[CMD_NET] = U | X,
};

static bool eq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (eq(s, *list))
			return true;
	return false;
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static const char *base(const char *s)
{
	const char *b = strrchr(s, '/');

	return b ? b + 1 : s;
}

/* ---- the program table (sorted by name; one lookup per program) ---- */

enum prog_kind {
	K_NONE,
	W_ENV,	   /* env [opts] [VAR=val...] PROG; env -S is inline code */
	W_NEXT,	   /* busybox, toybox: the next word is the program */
	W_NICE,	   /* nice [-n N] PROG */
	W_TIMEOUT, /* timeout [opts] DURATION PROG */
	W_STDBUF,  /* stdbuf [-i/-o/-e MODE] PROG */
	W_EXEC,	   /* exec [-a NAME] PROG */
	W_PLAIN,   /* nohup, time, command: options then PROG */
	I_SHELL,   /* -c / -s / stdin */
	I_PYTHON,  /* -c / - / stdin; -m is a plain command */
	I_E,	   /* perl, ruby, lua, Rscript, osascript: -e / -E */
	I_NODE,	   /* -e, -p, --eval, --print */
	I_DENO,	   /* deno eval / repl */
	I_PHP,	   /* -r, -B, -R, -F */
	I_AWK,	   /* the program text is always an argument */
	N_ALWAYS,  /* network tools */
	N_GIT,	   /* git push/fetch/pull/clone/ls-remote/submodule/remote/archive */
	N_PIP,	   /* pip install/download/wheel/search (also uv pip ...) */
	N_NPM,	   /* npm/pnpm/yarn install/i/ci/add/publish/update/...; bare yarn */
	N_CARGO,   /* cargo install/publish/fetch/update/search */
	N_GO,	   /* go get/install/mod */
	N_PKG,	   /* gem, apt, docker, ...: install/update/upgrade/pull/push/... */
};

static const struct {
	const char *name;
	uint8_t kind;
} programs[] = {
	{"Rscript", I_E},	{"apk", N_PKG},	      {"apt", N_PKG},	      {"apt-get", N_PKG},
	{"aria2c", N_ALWAYS},	{"ash", I_SHELL},     {"awk", I_AWK},	      {"bash", I_SHELL},
	{"brew", N_PKG},	{"bun", I_NODE},      {"busybox", W_NEXT},    {"cargo", N_CARGO},
	{"command", W_PLAIN},	{"csh", I_SHELL},     {"curl", N_ALWAYS},     {"dash", I_SHELL},
	{"deno", I_DENO},	{"dig", N_ALWAYS},    {"dnf", N_PKG},	      {"docker", N_PKG},
	{"env", W_ENV},		{"exec", W_EXEC},     {"fish", I_SHELL},      {"ftp", N_ALWAYS},
	{"gawk", I_AWK},	{"gem", N_PKG},	      {"gh", N_ALWAYS},	      {"git", N_GIT},
	{"go", N_GO},		{"host", N_ALWAYS},   {"http", N_ALWAYS},     {"https", N_ALWAYS},
	{"hub", N_ALWAYS},	{"ksh", I_SHELL},     {"lua", I_E},	      {"lynx", N_ALWAYS},
	{"mawk", I_AWK},	{"mksh", I_SHELL},    {"nawk", I_AWK},	      {"nc", N_ALWAYS},
	{"ncat", N_ALWAYS},	{"netcat", N_ALWAYS}, {"nice", W_NICE},	      {"node", I_NODE},
	{"nodejs", I_NODE},	{"nohup", W_PLAIN},   {"npm", N_NPM},	      {"npx", N_ALWAYS},
	{"nslookup", N_ALWAYS}, {"osascript", I_E},   {"perl", I_E},	      {"php", I_PHP},
	{"pnpm", N_NPM},	{"podman", N_PKG},    {"rbash", I_SHELL},     {"rsync", N_ALWAYS},
	{"ruby", I_E},		{"scp", N_ALWAYS},    {"sftp", N_ALWAYS},     {"sh", I_SHELL},
	{"socat", N_ALWAYS},	{"ssh", N_ALWAYS},    {"stdbuf", W_STDBUF},   {"tcsh", I_SHELL},
	{"telnet", N_ALWAYS},	{"time", W_PLAIN},    {"timeout", W_TIMEOUT}, {"toybox", W_NEXT},
	{"uv", N_PIP},		{"w3m", N_ALWAYS},    {"wget", N_ALWAYS},     {"yarn", N_NPM},
	{"yum", N_PKG},		{"zsh", I_SHELL},
};

static bool is_python(const char *b)
{
	return has_prefix(b, "python") || has_prefix(b, "pypy");
}

static enum prog_kind prog_kind(const char *name)
{
	size_t lo = 0, hi = sizeof(programs) / sizeof(programs[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, programs[mid].name);

		if (c == 0)
			return programs[mid].kind;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (is_python(name))
		return I_PYTHON;
	if (has_prefix(name, "pip"))
		return N_PIP;
	return K_NONE;
}

/* ---- unwrapping ---- */

/* Index of the wrapped program after `env [opts] [VAR=val...]`; -1 for `env -S`. */
static size_t skip_env(const char *const *argv, size_t argc, size_t i, bool *split)
{
	for (i++; i < argc; i++) {
		const char *a = argv[i];

		if (eq(a, "--"))
			return i + 1;
		if (eq(a, "-u") || eq(a, "--unset") || eq(a, "-C") || eq(a, "--chdir")) {
			i++;
			continue;
		}
		if (eq(a, "-S") || has_prefix(a, "--split-string") || has_prefix(a, "-S")) {
			*split = true;
			return i;
		}
		if (a[0] == '-' || strchr(a, '='))
			continue;
		return i;
	}
	return i;
}

/* Options that take an argument, per wrapper (so the argument is not taken for the program). */
static size_t skip_opts(const char *const *argv, size_t argc, size_t i, const char *const *with_arg,
			int positional)
{
	for (i++; i < argc; i++) {
		const char *a = argv[i];

		if (eq(a, "--"))
			return i + 1;
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (in_list(a, with_arg))
			i++;
	}
	return i + (size_t)positional; /* e.g. timeout's DURATION */
}

/* Options of the wrappers that skip_opts() walks, and how many positionals come first. */
static const struct {
	const char *const *with_arg;
	int positional;
} wrapper_opts[] = {
	[W_NICE] = {(const char *const[]){"-n", "--adjustment", NULL}, 0},
	[W_TIMEOUT] = {(const char *const[]){"-s", "--signal", "-k", "--kill-after", NULL}, 1},
	[W_STDBUF] = {(const char *const[]){"-i", "-o", "-e", NULL}, 0},
	[W_EXEC] = {(const char *const[]){"-a", NULL}, 0},
	[W_PLAIN] = {(const char *const[]){NULL}, 0},
};

static size_t unwrap(const char *const *argv, size_t argc, bool *split)
{
	size_t i = 0;

	for (int depth = 0; depth < 16 && i < argc; depth++) {
		enum prog_kind k = prog_kind(base(argv[i]));
		size_t next;

		if (k == W_ENV)
			next = skip_env(argv, argc, i, split);
		else if (k == W_NEXT)
			next = i + 1;
		else if (k < sizeof(wrapper_opts) / sizeof(wrapper_opts[0]) &&
			 wrapper_opts[k].with_arg)
			next = skip_opts(argv, argc, i, wrapper_opts[k].with_arg,
					 wrapper_opts[k].positional);
		else
			return i;
		if (*split || next >= argc)
			return i; /* the wrapper itself is the program */
		i = next;
	}
	return i;
}

/* ---- interpreters ---- */

/* Does a short-option cluster (-xyz) contain one of `letters`? */
static bool cluster_has(const char *a, const char *letters)
{
	if (a[0] != '-' || a[1] == '-' || a[1] == '\0')
		return false;
	return strpbrk(a + 1, letters) != NULL;
}

/*
 * Inline code: a code flag among the options, or no script operand at all (the code then
 * comes from stdin, which is the tool's input). `long_flags` are exact long options.
 */
static bool inline_code(const struct span *t, uint32_t n, const char *letters,
			const char *const *long_flags, const char *const *with_arg)
{
	for (uint32_t i = 1; i < n; i++) {
		const char *a = t[i].s;

		if (eq(a, "-") || eq(a, "--"))
			return true;
		if (a[0] != '-' && a[0] != '+')
			return false; /* a script operand */
		if (in_list(a, long_flags) || has_prefix(a, "--eval=") || cluster_has(a, letters))
			return true;
		if (in_list(a, with_arg))
			i++;
	}
	return true;
}

static bool interp_class(enum prog_kind k, const struct span *t, uint32_t n)
{
	static const char *const no_long[] = {NULL};
	static const char *const sh_arg[] = {"-o", "+o", "-O", "+O", NULL};
	static const char *const py_arg[] = {"-W", "-X", "-Q", NULL};
	static const char *const node_long[] = {"--eval", "--print", NULL};

	switch (k) {
	case I_SHELL:
		return inline_code(t, n, "cs", no_long, sh_arg);
	case I_PYTHON:
		for (uint32_t i = 1; i < n; i++)
			if (eq(t[i].s, "-m"))
				return false; /* a module: matched as a plain command */
		return inline_code(t, n, "c", no_long, py_arg);
	case I_E:
		return inline_code(t, n, "eE", no_long, no_long);
	case I_NODE:
		return inline_code(t, n, "ep", node_long, no_long);
	case I_DENO:
		return n < 2 || eq(t[1].s, "eval") || eq(t[1].s, "repl");
	case I_PHP:
		return inline_code(t, n, "rBRF", no_long, no_long);
	case I_AWK:
		return true;
	default:
		return false;
	}
}

/* ---- network reach ---- */

/* First non-option argument after argv[0] (skipping git's -C/-c values). */
static const char *subcommand(const struct span *t, uint32_t n, uint32_t *at)
{
	for (uint32_t i = 1; i < n; i++) {
		const char *a = t[i].s;

		if (eq(a, "-C") || eq(a, "-c") || eq(a, "--git-dir") || eq(a, "--work-tree")) {
			i++;
			continue;
		}
		if (a[0] != '-') {
			if (at)
				*at = i;
			return a;
		}
	}
	return NULL;
}

static bool net_class(enum prog_kind k, const struct span *t, uint32_t n)
{
	static const char *const git[] = {"push",      "fetch",	 "pull",    "clone", "ls-remote",
					  "submodule", "remote", "archive", NULL};
	static const char *const pip[] = {"install", "download", "wheel", "search", NULL};
	static const char *const npm[] = {"install", "i",     "ci",	 "add", "publish",
					  "update",  "fetch", "upgrade", "dlx", NULL};
	static const char *const cargo[] = {"install", "publish", "fetch",
					    "update",  "search",  NULL};
	static const char *const go[] = {"get", "install", "mod", NULL};
	static const char *const pkg[] = {"install", "update",	 "upgrade", "pull",
					  "push",    "download", "fetch",   NULL};
	uint32_t at = 0;
	const char *sub = subcommand(t, n, &at);

	switch (k) {
	case N_ALWAYS:
		return true;
	case N_GIT:
		return sub && in_list(sub, git);
	case N_PIP:
		return sub && (in_list(sub, pip) ||
			       (eq(sub, "pip") && at + 1 < n && in_list(t[at + 1].s, pip)));
	case I_PYTHON:
		for (uint32_t i = 1; i + 2 < n; i++)
			if (eq(t[i].s, "-m") && has_prefix(t[i + 1].s, "pip"))
				return in_list(t[i + 2].s, pip);
		return false;
	case N_NPM:
		return !sub ? eq(t[0].s, "yarn") : in_list(sub, npm);
	case N_CARGO:
		return sub && in_list(sub, cargo);
	case N_GO:
		return sub && in_list(sub, go);
	case N_PKG:
		return sub && in_list(sub, pkg);
	default:
		return false;
	}
}

static bool mentions_network(const struct span *t, uint32_t n)
{
	static const char *const words[] = {
		"curl",	  "wget",     "nc ",	   "ncat",	  "socat",    "ssh ",
		"scp ",	  "rsync",    "telnet",	   "/dev/tcp",	  "/dev/udp", "://",
		"socket", "urllib",   "requests",  "http.client", "fetch(",   "net.",
		"Net::",  "git push", "git fetch", "git clone",	  "git pull", "install",
		"dig ",	  "nslookup", NULL};

	for (uint32_t i = 1; i < n; i++)
		for (const char *const *w = words; *w; w++)
			if (strstr(t[i].s, *w))
				return true;
	return false;
}

/*
 * The name rules see: the basename for programs in the system directories, the full path
 * otherwise (so ./make or /workspace/git never pass as `make` or `git`).
 */
static const char *rule_name(const char *prog)
{
	static const char *const dirs[] = {"/bin/",	 "/sbin/",	    "/usr/bin/",
					   "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/",
					   NULL};
	const char *b = base(prog);

	if (b == prog)
		return prog;
	for (const char *const *d = dirs; *d; d++)
		if ((size_t)(b - prog) == strlen(*d) && strncmp(prog, *d, strlen(*d)) == 0)
			return b;
	return prog;
}

bool classify__table_sorted(void)
{
	for (size_t i = 1; i < sizeof(programs) / sizeof(programs[0]); i++)
		if (strcmp(programs[i - 1].name, programs[i].name) >= 0)
			return false;
	return true;
}

int classify__command(const char *const *argv, size_t argc, struct cmd_info *out)
{
	bool split = false;
	enum prog_kind kind;
	size_t first;

	if (!argv || argc == 0)
		return -EINVAL;
	for (size_t i = 0; i < argc; i++)
		if (!argv[i])
			return -EINVAL;
	first = unwrap(argv, argc, &split);
	if (argc - first > POLICY_MAX_SEGS)
		return -E2BIG;
	out->first = (uint32_t)first;
	out->ntok = (uint32_t)(argc - first);
	for (uint32_t k = 0; k < out->ntok; k++) {
		const char *a = k ? argv[first + k] : rule_name(argv[first]);

		out->tok[k].s = a;
		out->tok[k].len = (uint32_t)strlen(a);
	}
	if (out->tok[0].len == 0 || base(argv[first])[0] == '\0')
		return -EINVAL;
	/* classification always by basename: a copied shell is still a shell */
	kind = prog_kind(base(argv[first]));
	if (split || interp_class(kind, out->tok, out->ntok))
		out->cls = CMD_INTERP;
	else if (net_class(kind, out->tok, out->ntok))
		out->cls = CMD_NET;
	else
		out->cls = CMD_PLAIN;
	out->legs = cls_legs[out->cls];
	if (out->cls == CMD_INTERP && mentions_network(out->tok, out->ntok))
		out->legs |= U;
	return 0;
}

bool classify__is_net_op(enum policy_op op)
{
	return op == POLICY_OP_WEB_FETCH || op == POLICY_OP_WEB_SEARCH ||
	       op == POLICY_OP_NET_CONNECT;
}

static bool sends_data(const struct policy_call *c, bool has_query)
{
	const char *m = c->method;

	if (c->body_len > 0 || has_query)
		return true;
	return m && strcasecmp(m, "GET") != 0 && strcasecmp(m, "HEAD") != 0;
}

unsigned classify__legs(const struct policy_call *call, const struct cmd_info *ci, bool has_query)
{
	unsigned legs;

	if ((unsigned)call->op >= POLICY_OP_COUNT)
		return POLICY_LEGS_ALL;
	legs = op_legs[call->op];
	if (call->op == POLICY_OP_RUN && ci)
		legs = ci->legs;
	if (call->op == POLICY_OP_WEB_FETCH && sends_data(call, has_query))
		legs |= X;
	return legs;
}

/* Secret-like paths (reported in explanations; reading any file is already `private`). */
static bool span_in(const struct span *sp, const char *const *list)
{
	for (; *list; list++)
		if (strlen(*list) == sp->len && memcmp(*list, sp->s, sp->len) == 0)
			return true;
	return false;
}

static bool span_suffix(const struct span *sp, const char *suf)
{
	size_t n = strlen(suf);

	return sp->len >= n && memcmp(sp->s + sp->len - n, suf, n) == 0;
}

bool classify__secret_path(const struct span *seg, uint32_t n)
{
	static const char *const dirs[] = {".ssh", ".gnupg", ".aws", ".kube", ".docker", NULL};
	static const char *const files[] = {".env",    ".netrc", ".git-credentials", ".npmrc",
					    ".pypirc", "id_rsa", "id_ed25519",	     "shadow",
					    "environ", NULL};

	for (uint32_t i = 0; i + 1 < n; i++)
		if (seg[i].len && seg[i].s[0] == '.' && span_in(&seg[i], dirs))
			return true;
	return n > 0 && (span_in(&seg[n - 1], files) || span_suffix(&seg[n - 1], ".pem") ||
			 span_suffix(&seg[n - 1], ".key"));
}

unsigned policy__classify(const struct policy_call *call)
{
	struct cmd_info ci;
	bool q = false;
	char buf[256];
	struct egress_subject subj;

	if (!call)
		return POLICY_LEGS_ALL;
	if (call->op == POLICY_OP_RUN)
		return classify__command(call->argv, call->argc, &ci) < 0 ? POLICY_LEGS_ALL
									  : ci.legs;
	if (call->op == POLICY_OP_WEB_FETCH &&
	    url__parse(call->url, &subj, buf, sizeof(buf), &q) < 0)
		q = true;
	return classify__legs(call, NULL, q);
}
