// SPDX-License-Identifier: Apache-2.0
/*
 * nucleusctl: the command line client. Talks to nucleusd only through the API
 * (api_client). Human tables by default, --json everywhere, one-line errors.
 * Exit codes: 0 ok, 1 the daemon refused or failed (or the audit chain is broken),
 * 2 usage, 3 cannot reach the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include <sodium.h>

enum { EXIT_API = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

enum {
	O_NAME = 1 << 0,
	O_PROFILE = 1 << 1,
	O_POLICY = 1 << 2,
	O_VCPUS = 1 << 3,
	O_MEMORY = 1 << 4,
	O_IMAGE = 1 << 5,
	O_TTL = 1 << 6,
	O_ALL = 1 << 7,
	O_AFTER = 1 << 8,
	O_LIMIT = 1 << 9,
	O_BUDGET = 1 << 10,
	O_ALL_OWNERS = 1 << 11,
	O_PARENT = 1 << 12,
};

struct ctl {
	struct api_client *client;
	bool json;
	unsigned given; /* O_* seen */
	const char *name, *profile, *policy, *image, *vcpus, *memory, *ttl, *after, *limit, *budget,
		*parent;
	char **args;
	int nargs;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nucleusctl [--socket PATH] [--json] COMMAND [ARGS]\n"
		"  ls [--all] [--all-owners]          list your sandboxes (--all: with stopped\n"
		"                                     ones; --all-owners: every owner's, admin)\n"
		"  show ID                            one sandbox\n"
		"  create [--name N] (--profile P | --policy JSON|@FILE) [--vcpus N]\n"
		"         [--memory MIB] [--image I] [--ttl SECONDS] [--budget JSON]\n"
		"         [--parent ID]               a child: its policy within the parent's\n"
		"                                     (and --profile/--policy), its budget\n"
		"                                     carved out of the parent's\n"
		"  rm ID                              stop a sandbox\n"
		"  pause ID | resume ID\n"
		"  audit ID [--after SEQ] [--limit N] the sandbox's audit entries\n"
		"  audit ID verify                    check the signed hash chain\n"
		"  audit --all-owners verify          check the whole log (admin)\n"
		"  run ID -- CMD [ARGS...]            run a command in the sandbox "
		"(policy-gated);\n"
		"                                     prints its output, exits with its code\n"
		"  read ID PATH                       print a file of the sandbox\n"
		"  write ID PATH < DATA               write stdin to a file of the sandbox\n"
		"  list ID PATH                       list a directory of the sandbox\n"
		"  approve ID NONCE APPROVAL_JSON|@FILE  submit a signed approval\n"
		"  policy check FILE                  validate a policy/profile file\n"
		"  policy explain PROFILE|@FILE CALL_JSON  decide one call in a fresh session of\n"
		"                                     the profile or policy, and explain\n"
		"  policy show ID                     the policy in force, versions, session\n"
		"  policy narrow ID FILE|-            meet the running policy with a policy file\n"
		"  policy widen ID FILE|- [APPROVAL_JSON|@FILE]  ask for a wider policy: refused\n"
		"                                     (exit 1) unless an approver signed it\n"
		"  budget ID                          limits, spent and remaining per budget\n"
		"  health                             daemon status\n"
		"  db check                           PRAGMA quick_check of the daemon's database\n"
		"                                     (exit 1 when it has problems)\n");
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("nucleusctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* One request; prints API errors as one line. Returns an exit code, 0 with *ret set. */
/* @line: a streamed reply's lines go there (api_client__stream); NULL: a whole reply. */
/* A call's outcome: transport errors and replies >= 300 as one line, else *@ret. */
static int check_reply(struct ctl *c, int r, struct api_response *resp, bool need_json,
		       struct api_response *ret)
{
	if (r == -EBADMSG || r == -ECONNRESET || r == -ETIMEDOUT)
		return fail(EXIT_CONNECT, "nucleusd did not answer (%s)", strerror(-r));
	if (r < 0)
		return fail(EXIT_CONNECT, "cannot reach nucleusd: %s", strerror(-r));
	if (resp->status >= 300) {
		const char *code = json_string_value(json_object_get(resp->json, "error"));
		const char *msg = json_string_value(json_object_get(resp->json, "message"));

		if (c->json && resp->json)
			json_dumpf(resp->json, stdout, JSON_INDENT(2)), putchar('\n');
		r = fail(EXIT_API, "%s (%d): %s", code ? code : "error", resp->status,
			 msg ? msg : resp->body);
		api_response__clear(resp);
		return r;
	}
	if (!resp->json && need_json) {
		api_response__clear(resp);
		return fail(EXIT_API, "the daemon answered something that is not JSON");
	}
	*ret = *resp;
	return 0;
}

static int request_with(struct ctl *c, const char *method, const char *path, json_t *body,
			api_line_fn line, void *arg, struct api_response *ret)
{
	struct api_response resp = {0};
	int r;

	r = line ? api_client__stream(c->client, method, path, body, line, arg, &resp)
		 : api_client__call(c->client, method, path, body, &resp);
	return check_reply(c, r, &resp, !line, ret);
}

static int request(struct ctl *c, const char *method, const char *path, json_t *body,
		   struct api_response *ret)
{
	return request_with(c, method, path, body, NULL, NULL, ret);
}

static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2));
	putchar('\n');
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static void print_row(json_t *sb, unsigned depth)
{
	json_t *boot = json_object_get(sb, "boot_ms");
	char bm[24] = "-", name[96];

	if (json_is_integer(boot))
		snprintf(bm, sizeof(bm), "%lld", (long long)json_integer_value(boot));
	/* a child under its parent: "└─ name", two more spaces per generation */
	snprintf(name, sizeof(name), "%*s%s%s", depth > 1 ? (int)(depth - 1) * 2 : 0, "",
		 depth ? "\u2514\u2500 " : "", str(sb, "name"));
	printf("%-19s  %-*s  %-8s  %-12s  %5lld  %8lld  %7s  %s\n", str(sb, "id"),
	       20 + (depth ? 4 : 0), name, str(sb, "state"), str(sb, "profile"),
	       (long long)json_integer_value(json_object_get(sb, "vcpus")),
	       (long long)json_integer_value(json_object_get(sb, "memory_mib")), bm,
	       json_is_true(json_object_get(sb, "quarantined")) ? "QUARANTINED" : "-");
}

/* @arr's sandboxes whose parent is @parent, each followed by its own children. */
static void print_children(json_t *arr, const char *parent, unsigned depth)
{
	size_t i;
	json_t *sb;

	json_array_foreach(arr, i, sb)
		if (strcmp(str(sb, "parent"), parent) == 0) {
			print_row(sb, depth);
			print_children(arr, str(sb, "id"), depth + 1);
		}
}

/* Is @id the id of a sandbox of @arr? */
static bool listed(json_t *arr, const char *id)
{
	size_t i;
	json_t *sb;

	json_array_foreach(arr, i, sb)
		if (strcmp(str(sb, "id"), id) == 0)
			return true;
	return false;
}

/* The list as a tree: a delegated child under its parent (when the parent is listed). */
static void print_table(json_t *arr)
{
	size_t i;
	json_t *sb;

	printf("%-19s  %-20s  %-8s  %-12s  %5s  %8s  %7s  %s\n", "ID", "NAME", "STATE", "PROFILE",
	       "VCPUS", "MEM_MIB", "BOOT_MS", "POLICY");
	json_array_foreach(arr, i, sb)
		if (!listed(arr, str(sb, "parent"))) {
			print_row(sb, 0);
			print_children(arr, str(sb, "id"), 1);
		}
}

static void print_sandbox(json_t *sb)
{
	const char *key;
	json_t *v;

	json_object_foreach(sb, key, v)
	{
		char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("%-12s %s\n", key, t ? t : json_string_value(v));
		free(t);
	}
}

static int finish(struct ctl *c, struct api_response *resp, void (*human)(json_t *))
{
	if (c->json)
		print_json(resp->json);
	else
		human(resp->json);
	api_response__clear(resp);
	return 0;
}

static int need_args(struct ctl *c, int n, unsigned allowed)
{
	if (c->nargs != n)
		return fail(EXIT_USAGE, "expected %d argument%s (see --help)", n,
			    n == 1 ? "" : "s");
	if (c->given & ~allowed)
		return fail(EXIT_USAGE, "option not valid for this command (see --help)");
	return 0;
}

/* Sandbox ids and names are [A-Za-z0-9_.-]: nothing to escape, but refuse the rest. */
static int sandbox_path(const char *ref, const char *suffix, char *buf, size_t len)
{
	if (!*ref || strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				 "_.-") != strlen(ref))
		return fail(EXIT_USAGE, "bad sandbox id '%s'", ref);
	snprintf(buf, len, "/v1/sandboxes/%s%s", ref, suffix);
	return 0;
}

/* Every page of GET /v1/sandboxes, as one array (the human table or --json). */
static int cmd_ls(struct ctl *c)
{
	struct api_response resp = {0};
	json_t *all = NULL, *page = NULL;
	char path[256], *cursor = NULL;
	int r = need_args(c, 0, O_ALL | O_ALL_OWNERS);

	if (r == 0 && !(all = json_array()))
		r = fail(EXIT_API, "out of memory");
	while (r == 0) {
		const char *next;

		snprintf(path, sizeof(path), "/v1/sandboxes?limit=1000&all=%s&all_owners=%s%s%s",
			 (c->given & O_ALL) ? "true" : "false",
			 (c->given & O_ALL_OWNERS) ? "true" : "false", cursor ? "&cursor=" : "",
			 cursor ? cursor : "");
		r = request(c, "GET", path, NULL, &resp);
		if (r)
			break;
		page = json_object_get(resp.json, "sandboxes");
		next = json_string_value(json_object_get(resp.json, "next_cursor"));
		free(cursor);
		cursor = next ? strdup(next) : NULL;
		if (!json_is_array(page) || json_array_extend(all, page) < 0 || (next && !cursor))
			r = fail(EXIT_API, "bad reply to GET /v1/sandboxes");
		api_response__clear(&resp);
		if (!cursor)
			break;
	}
	free(cursor);
	if (r == 0) {
		resp.json = all;
		return finish(c, &resp, print_table);
	}
	json_decref(all);
	return r;
}

/* @method on sandbox @ref's path + @suffix without a body; the reply shown by @human. */
static int sandbox_request(struct ctl *c, const char *method, const char *ref, const char *suffix,
			   void (*human)(json_t *))
{
	struct api_response resp;
	char path[256];
	int r = sandbox_path(ref, suffix, path, sizeof(path));

	if (r == 0)
		r = request(c, method, path, NULL, &resp);
	return r ? r : finish(c, &resp, human);
}

static int cmd_simple(struct ctl *c, const char *method, const char *suffix)
{
	int r = need_args(c, 1, 0);

	return r ? r : sandbox_request(c, method, c->args[0], suffix, print_sandbox);
}

static int set_int(json_t *o, const char *key, const char *val)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(val, &end, 10);
	if (!*val || *end || errno)
		return fail(EXIT_USAGE, "--%s: not a number: '%s'", key, val);
	json_object_set_new(o, key, json_integer(v));
	return 0;
}

static json_t *load_policy(const char *arg)
{
	json_error_t err;
	json_t *p = arg[0] == '@' ? json_load_file(arg + 1, JSON_REJECT_DUPLICATES, &err)
				  : json_loads(arg, JSON_REJECT_DUPLICATES, &err);

	if (!p)
		fail(EXIT_USAGE, "--policy: %s", err.text);
	return p;
}

static int build_create(struct ctl *c, json_t *req)
{
	int r = 0;

	if (c->name)
		json_object_set_new(req, "name", json_string(c->name));
	if (c->profile)
		json_object_set_new(req, "profile", json_string(c->profile));
	if (c->image)
		json_object_set_new(req, "image", json_string(c->image));
	if (c->policy) {
		json_t *p = load_policy(c->policy);

		if (!p)
			return EXIT_USAGE;
		json_object_set_new(req, "policy", p);
	}
	if (c->parent)
		json_object_set_new(req, "parent", json_string(c->parent));
	else if (!c->profile && !c->policy)
		json_object_set_new(req, "profile", json_string("default"));
	r = set_int(req, "vcpus", c->vcpus ? c->vcpus : "1");
	if (r == 0)
		r = set_int(req, "memory_mib", c->memory ? c->memory : "256");
	if (r == 0 && c->ttl)
		r = set_int(req, "ttl_seconds", c->ttl);
	if (r == 0 && c->budget) {
		json_t *b = json_loads(c->budget, 0, NULL);

		if (!json_is_object(b)) {
			json_decref(b);
			return fail(EXIT_USAGE, "--budget: expected a JSON object like "
						"'{\"tokens\": 1000, \"usd\": \"2.50\"}'");
		}
		json_object_set_new(req, "budget", b);
	}
	return r;
}

static int cmd_create(struct ctl *c)
{
	struct api_response resp;
	json_t *req = json_object();
	int r;

	r = need_args(c, 0,
		      O_NAME | O_PROFILE | O_POLICY | O_VCPUS | O_MEMORY | O_IMAGE | O_TTL |
			      O_BUDGET | O_PARENT);
	if (r == 0)
		r = build_create(c, req);
	if (r == 0) {
		if (!c->json && isatty(STDERR_FILENO))
			fprintf(stderr, "booting sandbox...\r");
		r = request(c, "POST", "/v1/sandboxes", req, &resp);
		if (!c->json && isatty(STDERR_FILENO))
			fprintf(stderr, "                  \r");
	}
	json_decref(req);
	return r ? r : finish(c, &resp, print_sandbox);
}

static void print_audit(json_t *arr)
{
	size_t i;
	json_t *e;

	printf("%6s  %-24s  %-16s  %6s  %s\n", "SEQ", "TIME", "KIND", "ACTOR", "BODY");
	json_array_foreach(arr, i, e)
	{
		time_t t = (time_t)(json_integer_value(json_object_get(e, "at_us")) / 1000000);
		char when[32], actor[16] = "-";
		char *body = json_dumps(json_object_get(e, "body"), JSON_COMPACT | JSON_SORT_KEYS);
		json_t *uid = json_object_get(e, "actor_uid");
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		if (json_is_integer(uid))
			snprintf(actor, sizeof(actor), "%lld", (long long)json_integer_value(uid));
		printf("%6lld  %-24s  %-16s  %6s  %s\n",
		       (long long)json_integer_value(json_object_get(e, "seq")), when,
		       str(e, "kind"), actor, body ? body : "");
		free(body);
	}
}

/* "A-B, C-D" of a verify reply's not_covered ranges into @buf ("" when none). */
static void ranges_text(json_t *ranges, char *buf, size_t len)
{
	size_t at = 0;
	json_t *rg;
	size_t i;

	buf[0] = '\0';
	json_array_foreach(ranges, i, rg)
	{
		int n = snprintf(buf + at, len - at, "%s%lld-%lld", i ? ", " : "",
				 (long long)json_integer_value(json_object_get(rg, "from")),
				 (long long)json_integer_value(json_object_get(rg, "to")));

		if (n < 0 || (size_t)n >= len - at)
			break;
		at += (size_t)n;
	}
}

static int cmd_verify(struct ctl *c)
{
	struct api_response resp;
	char path[256], uncovered[512];
	json_t *bad;
	int r;

	if (c->given & ~O_ALL_OWNERS)
		return fail(EXIT_USAGE, "option not valid for 'audit verify'");
	if (c->given & O_ALL_OWNERS) /* the whole log: every owner's sandboxes and more */
		r = request(c, "GET", "/v1/audit/verify", NULL, &resp);
	else if ((r = sandbox_path(c->args[0], "/audit/verify", path, sizeof(path))) == 0)
		r = request(c, "GET", path, NULL, &resp);
	if (r)
		return r;
	bad = json_object_get(resp.json, "first_bad_seq");
	ranges_text(json_object_get(resp.json, "not_covered"), uncovered, sizeof(uncovered));
	if (c->json)
		print_json(resp.json);
	else if (!bad)
		printf("audit chain intact: %lld entries verified, signed through seq %lld "
		       "(%lld seals)\n",
		       (long long)json_integer_value(json_object_get(resp.json, "entries")),
		       (long long)json_integer_value(json_object_get(resp.json, "sealed_through")),
		       (long long)json_integer_value(json_object_get(resp.json, "seals")));
	if (bad)
		r = fail(EXIT_API, "audit chain broken at seq %lld: %s",
			 (long long)json_integer_value(bad), str(resp.json, "problem"));
	else if (uncovered[0])
		r = fail(EXIT_API,
			 "audit entries not covered by a seal made while they were known: "
			 "seq %s (found unsealed at a daemon start, or not sealed yet)",
			 uncovered);
	api_response__clear(&resp);
	return r;
}

static int cmd_audit(struct ctl *c)
{
	struct api_response resp;
	char path[320], suffix[96];
	int r;

	if (c->nargs == 2 && strcmp(c->args[1], "verify") == 0 && !(c->given & O_ALL_OWNERS))
		return cmd_verify(c);
	if (c->nargs == 1 && strcmp(c->args[0], "verify") == 0 && (c->given & O_ALL_OWNERS))
		return cmd_verify(c);
	r = need_args(c, 1, O_AFTER | O_LIMIT);
	if (r)
		return r;
	snprintf(suffix, sizeof(suffix), "/audit?after=%lld&limit=%lld",
		 c->after ? atoll(c->after) : 0LL, c->limit ? atoll(c->limit) : 1000LL);
	r = sandbox_path(c->args[0], suffix, path, sizeof(path));
	if (r == 0)
		r = request(c, "GET", path, NULL, &resp);
	return r ? r : finish(c, &resp, print_audit);
}

/* KIND LIMIT SPENT REMAINING EXHAUSTED; money as USD ("-": no limit). */
static void print_budget(json_t *o)
{
	static const char *const kinds[] = {"cpu_ms", "mem_mib_s", "mem_peak_mib", "tokens",
					    "usd_micro"};
	json_t *b = json_object_get(o, "budgets");

	printf("%-13s  %16s  %16s  %16s  %s\n", "KIND", "LIMIT", "SPENT", "REMAINING", "EXHAUSTED");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		json_t *k = json_object_get(b, kinds[i]);
		bool usd = strcmp(kinds[i], "usd_micro") == 0;
		char v[3][32];
		static const char *const f[3][2] = {{"limit", "limit_usd"},
						    {"spent", "spent_usd"},
						    {"remaining", "remaining_usd"}};

		for (int j = 0; j < 3; j++) {
			json_t *x = json_object_get(k, f[j][usd]);

			if (json_is_string(x))
				snprintf(v[j], sizeof(v[j]), "%s", json_string_value(x));
			else if (json_is_integer(x))
				snprintf(v[j], sizeof(v[j]), "%lld",
					 (long long)json_integer_value(x));
			else
				snprintf(v[j], sizeof(v[j]), "-");
		}
		printf("%-13s  %16s  %16s  %16s  %s\n", usd ? "usd" : kinds[i], v[0], v[1], v[2],
		       json_is_true(json_object_get(k, "exhausted")) ? "yes" : "no");
	}
}

static int cmd_budget(struct ctl *c)
{
	struct api_response resp = {0}, out;
	char path[256];
	int r = need_args(c, 1, 0);

	if (r == 0)
		r = sandbox_path(c->args[0], "", path, sizeof(path));
	if (r)
		return r;
	r = api_client__budget(c->client, c->args[0], &resp);
	r = check_reply(c, r, &resp, true, &out);
	return r ? r : finish(c, &out, print_budget);
}

static int cmd_health(struct ctl *c)
{
	struct api_response resp;
	int r = need_args(c, 0, 0);

	if (r == 0)
		r = request(c, "GET", "/v1/health", NULL, &resp);
	return r ? r : finish(c, &resp, print_sandbox);
}

/* POST /v1/db/check: "database ok" and the backup, or every problem and exit 1. */
static int cmd_db(struct ctl *c)
{
	struct api_response resp;
	json_t *problems, *backup, *p;
	size_t i;
	int r;

	if (c->given || c->nargs != 1 || strcmp(c->args[0], "check") != 0)
		return fail(EXIT_USAGE, "usage: nucleusctl db check");
	r = request(c, "POST", "/v1/db/check", NULL, &resp);
	if (r)
		return r;
	problems = json_object_get(resp.json, "problems");
	backup = json_object_get(resp.json, "backup");
	if (c->json)
		print_json(resp.json);
	else if (json_is_true(json_object_get(resp.json, "ok")))
		printf("database ok; backup %s\n",
		       json_is_object(backup) ? str(backup, "path") : "(none yet)");
	if (!json_is_true(json_object_get(resp.json, "ok"))) {
		if (!c->json)
			json_array_foreach(problems, i, p)
				printf("problem: %s\n", json_string_value(p));
		r = fail(EXIT_API,
			 "database corrupt (%zu problems): restore nucleus.db from %s "
			 "(docs/daemon.md, \"Recovery\")",
			 json_array_size(problems),
			 json_is_object(backup) ? str(backup, "path") : "a backup");
	}
	api_response__clear(&resp);
	return r;
}

/* ---- tool calls ---- */

/* POST tools/NAME {args} (@args is taken over); a 403 prints the verdict and reason. */
static int tool_call(struct ctl *c, const char *tool, json_t *args, struct api_response *ret)
{
	char path[256], suffix[96];
	json_t *body;
	int r;

	snprintf(suffix, sizeof(suffix), "/tools/%s", tool);
	r = sandbox_path(c->args[0], suffix, path, sizeof(path));
	if (r) {
		json_decref(args);
		return r;
	}
	body = json_pack("{so}", "args", args);
	r = body ? request(c, "POST", path, body, ret) : fail(EXIT_API, "out of memory");
	json_decref(body);
	return r;
}

/* Writes a result string (utf-8 or base64 per @enc_key) to @f. */
static int put_bytes(FILE *f, json_t *o, const char *key, const char *enc_key)
{
	json_t *v = json_object_get(o, key);
	const char *enc = json_string_value(json_object_get(o, enc_key));
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), n = 0;
	unsigned char *bin;

	if (!s)
		return 0;
	if (!enc || strcmp(enc, "base64") != 0) {
		fwrite(s, 1, len, f);
		return 0;
	}
	bin = malloc(len + 1);
	if (!bin || sodium_base642bin(bin, len + 1, s, len, NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) < 0) {
		free(bin);
		return fail(EXIT_API, "bad base64 in the reply");
	}
	fwrite(bin, 1, n, f);
	free(bin);
	return 0;
}

/* A streamed run: output as it comes, then the command's code (128 + signal). */
struct run_stream {
	int code; /* -1 until the last line came */
};

static int run_line(void *arg, json_t *line)
{
	struct run_stream *rs = arg;
	const char *stream = json_string_value(json_object_get(line, "stream"));
	json_t *v;
	FILE *f;

	if (stream) {
		const char *b64 = json_string_value(json_object_get(line, "data"));
		size_t len = b64 ? strlen(b64) : 0, n = 0;
		unsigned char *bin = malloc(len + 1);

		if (!bin || sodium_base642bin(bin, len + 1, b64 ? b64 : "", len, NULL, &n, NULL,
					      sodium_base64_VARIANT_ORIGINAL) < 0) {
			free(bin);
			return -EBADMSG;
		}
		f = strcmp(stream, "stderr") == 0 ? stderr : stdout;
		fwrite(bin, 1, n, f);
		fflush(f);
		free(bin);
	} else if ((v = json_object_get(line, "signal"))) {
		rs->code = 128 + (int)json_integer_value(v);
	} else if ((v = json_object_get(line, "exit_code"))) {
		rs->code = (int)json_integer_value(v);
	} else if (json_object_get(line, "error")) {
		rs->code = fail(EXIT_API, "%s: %s", str(line, "error"), str(line, "message"));
	}
	return 0;
}

static int run_streamed(struct ctl *c, json_t *argv)
{
	struct run_stream rs = {.code = -1};
	struct api_response resp = {0};
	char path[256];
	json_t *body;
	int r;

	r = sandbox_path(c->args[0], "/tools/run", path, sizeof(path));
	if (r) {
		json_decref(argv);
		return r;
	}
	body = json_pack("{s{so} sb}", "args", "argv", argv, "stream", 1);
	r = body ? request_with(c, "POST", path, body, run_line, &rs, &resp)
		 : fail(EXIT_API, "out of memory");
	json_decref(body);
	api_response__clear(&resp);
	fflush(stdout);
	if (r)
		return r;
	return rs.code >= 0 ? rs.code : fail(EXIT_API, "the output ended without an exit code");
}

static int cmd_run(struct ctl *c)
{
	struct api_response resp;
	json_t *argv, *res;
	int r, code;

	if (c->nargs < 2 || c->given)
		return fail(EXIT_USAGE, "usage: nucleusctl run ID -- CMD [ARGS...]");
	argv = json_array();
	for (int i = 1; i < c->nargs; i++)
		json_array_append_new(argv, json_string(c->args[i]));
	if (!c->json)
		return run_streamed(c, argv);
	r = tool_call(c, "run", json_pack("{so}", "argv", argv), &resp);
	if (r)
		return r;
	res = json_object_get(resp.json, "result");
	if (c->json) {
		print_json(resp.json);
	} else {
		put_bytes(stdout, res, "stdout", "stdout_encoding");
		put_bytes(stderr, res, "stderr", "stderr_encoding");
	}
	fflush(stdout);
	code = (int)json_integer_value(json_object_get(res, "exit_code"));
	if (json_integer_value(json_object_get(res, "signal")) > 0)
		code = 128 + (int)json_integer_value(json_object_get(res, "signal"));
	api_response__clear(&resp);
	return code;
}

static int cmd_read(struct ctl *c)
{
	struct api_response resp;
	int r = need_args(c, 2, 0);

	if (r == 0)
		r = tool_call(c, "read_file", json_pack("{ss}", "path", c->args[1]), &resp);
	if (r)
		return r;
	if (c->json)
		print_json(resp.json);
	else
		r = put_bytes(stdout, json_object_get(resp.json, "result"), "content", "encoding");
	api_response__clear(&resp);
	return r;
}

static int cmd_write(struct ctl *c)
{
	struct api_response resp;
	char *data = NULL, *b64 = NULL;
	size_t len = 0, cap = 0, n;
	json_t *args = NULL, *s;
	int r = need_args(c, 2, 0);

	while (r == 0) {
		if (len == cap) {
			char *p = realloc(data, cap = cap ? cap * 2 : 65536);

			if (!p)
				r = fail(EXIT_API, "out of memory");
			else
				data = p;
		}
		if (r == 0 && (n = fread(data + len, 1, cap - len, stdin)) == 0)
			break;
		len += r == 0 ? n : 0;
	}
	if (r == 0) {
		s = memchr(data ? data : "", 0, len) ? NULL : json_stringn(data ? data : "", len);
		if (s) {
			args = json_pack("{ss so}", "path", c->args[1], "content", s);
		} else {
			n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
			b64 = malloc(n);
			if (b64)
				sodium_bin2base64(b64, n, (unsigned char *)data, len,
						  sodium_base64_VARIANT_ORIGINAL);
			args = b64 ? json_pack("{ss ss ss}", "path", c->args[1], "content", b64,
					       "encoding", "base64")
				   : NULL;
		}
		r = args ? tool_call(c, "write_file", args, &resp)
			 : fail(EXIT_API, "out of memory");
	}
	free(data);
	free(b64);
	if (r)
		return r;
	if (c->json)
		print_json(resp.json);
	else
		printf("wrote %lld bytes to %s\n",
		       (long long)json_integer_value(
			       json_object_get(json_object_get(resp.json, "result"), "size")),
		       c->args[1]);
	api_response__clear(&resp);
	return 0;
}

static int cmd_list(struct ctl *c)
{
	struct api_response resp;
	json_t *e;
	size_t i;
	int r = need_args(c, 2, 0);

	if (r == 0)
		r = tool_call(c, "list", json_pack("{ss}", "path", c->args[1]), &resp);
	if (r)
		return r;
	if (c->json) {
		print_json(resp.json);
	} else {
		json_array_foreach(json_object_get(json_object_get(resp.json, "result"), "entries"),
				   i, e)
		{
			printf("%-8s %10lld  %s\n", str(e, "type"),
			       (long long)json_integer_value(json_object_get(e, "size")),
			       str(e, "name"));
		}
	}
	api_response__clear(&resp);
	return 0;
}

static int cmd_approve(struct ctl *c)
{
	struct api_response resp;
	char path[256];
	json_t *body, *appr;
	int r = need_args(c, 3, 0);

	if (r)
		return r;
	appr = load_policy(c->args[2]);
	if (!appr)
		return EXIT_USAGE;
	body = json_pack("{ss so}", "nonce", c->args[1], "approval", appr);
	r = sandbox_path(c->args[0], "/approvals", path, sizeof(path));
	if (r == 0)
		r = request(c, "POST", path, body, &resp);
	json_decref(body);
	return r ? r : finish(c, &resp, print_sandbox);
}

/* ---- policies: checked and explained by the daemon's policy engine ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, n;

	if (!f)
		return NULL;
	for (;;) {
		char *p = realloc(buf, len + 65537);

		if (!p) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = p;
		n = fread(buf + len, 1, 65536, f);
		len += n;
		buf[len] = '\0';
		if (n == 0)
			break;
	}
	fclose(f);
	return buf;
}

/* JSON the user gave (a policy file, a call); a syntax error is put like the engine's. */
static json_t *user_json(const char *text, char *err, size_t len)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (!v)
		snprintf(err, len, "$: JSON syntax error at line %d column %d: %s", je.line,
			 je.column, je.text);
	return v;
}

/* The policy in file @path. Returns an exit code: unreadable 2, not JSON 1. */
static int load_policy_file(const char *path, json_t **ret)
{
	char *text = slurp(path), err[256];

	if (!text)
		return fail(EXIT_USAGE, "%s: %s", path, strerror(errno));
	*ret = user_json(text, err, sizeof(err));
	free(text);
	return *ret ? 0 : fail(EXIT_API, "%s: %s", path, err);
}

/*
 * POST /v1/policy/@what with @body (taken). A 400 naming the profile, the policy or the
 * call comes back in @ret with *@ret_code set, for the caller to say in its own words;
 * every other error is printed here (check_reply).
 */
static int policy_request(struct ctl *c, const char *what, json_t *body, struct api_response *ret,
			  const char **ret_code)
{
	static const char *const mine[] = {"unknown_profile", "invalid_policy", "invalid_call"};
	struct api_response resp = {0};
	const char *code;
	char path[64];
	int r;

	*ret_code = NULL;
	snprintf(path, sizeof(path), "/v1/policy/%s", what);
	r = body ? api_client__call(c->client, "POST", path, body, &resp) : -ENOMEM;
	json_decref(body);
	code = json_string_value(json_object_get(resp.json, "error"));
	for (size_t i = 0; r == 0 && resp.status == 400 && code && i < 3; i++) {
		if (strcmp(code, mine[i]) == 0) {
			*ret = resp;
			*ret_code = mine[i];
			return 0;
		}
	}
	return check_reply(c, r, &resp, true, ret);
}

static int policy_check(struct ctl *c, const char *file)
{
	struct api_response resp;
	const char *code;
	json_t *p;
	int r;

	r = load_policy_file(file, &p);
	if (r)
		return r;
	r = policy_request(c, "check", json_pack("{so}", "policy", p), &resp, &code);
	if (r)
		return r;
	if (code)
		r = fail(EXIT_API, "%s: %s", file, str(resp.json, "message"));
	else if (!json_is_true(json_object_get(resp.json, "ok")))
		r = fail(EXIT_API, "%s: %s", file, str(resp.json, "problem"));
	else
		printf("%s: ok\n", file);
	api_response__clear(&resp);
	return r;
}

/* @which: a profile name, or @FILE with a policy. Exit 0 only when the call is allowed. */
static int policy_explain(struct ctl *c, const char *which, const char *call_text)
{
	struct api_response resp;
	const char *code, *msg;
	json_t *body = json_object(), *p, *call;
	char err[256];
	int r = 0;

	if (which[0] == '@') {
		r = load_policy_file(which + 1, &p);
		if (r == 0)
			json_object_set_new(body, "policy", p);
	} else {
		json_object_set_new(body, "profile", json_string(which));
	}
	call = r == 0 ? user_json(call_text, err, sizeof(err)) : NULL;
	if (r == 0 && !call)
		r = fail(EXIT_USAGE, "call: %s", err);
	if (r) {
		json_decref(body);
		return r;
	}
	json_object_set_new(body, "call", call);
	r = policy_request(c, "explain", body, &resp, &code);
	if (r)
		return r;
	msg = str(resp.json, "message");
	if (code && strcmp(code, "unknown_profile") == 0)
		r = fail(EXIT_USAGE, "no built-in profile '%s'", which);
	else if (code && strcmp(code, "invalid_call") == 0)
		r = fail(EXIT_USAGE, "call: %s", msg);
	else if (code && which[0] == '@')
		r = fail(EXIT_API, "%s: %s", which + 1, msg);
	else if (code)
		r = fail(EXIT_API, "%s", msg);
	else if (c->json)
		printf("{\"verdict\": \"%s\", \"reason\": \"%s\"}\n", str(resp.json, "verdict"),
		       str(resp.json, "reason"));
	else
		printf("%s\n", str(resp.json, "explanation"));
	if (!code)
		r = strcmp(str(resp.json, "verdict"), "allow") == 0 ? 0 : EXIT_API;
	api_response__clear(&resp);
	return r;
}

/* Compact JSON of @v on one line, after @label. */
static void print_kv(const char *label, json_t *v)
{
	char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	printf("  %-16s %s\n", label, t ? t : "-");
	free(t);
}

static void print_legs(json_t *legs)
{
	size_t i;
	json_t *l;

	printf("  %-16s ", "legs");
	if (!json_array_size(legs))
		printf("none");
	json_array_foreach(legs, i, l)
	{
		printf("%s%s", i ? "+" : "", json_string_value(l));
	}
	putchar('\n');
}

/* The reply of GET /v1/sandboxes/{id}/policy as a person reads it. */
static void print_policy(json_t *o)
{
	json_t *p = json_object_get(o, "policy"), *s = json_object_get(o, "session"), *v, *q;
	json_t *ch = json_object_get(o, "narrowed");
	const char *key;
	size_t i;

	printf("sandbox %s  policy version %lld  digest %.16s\n", str(o, "sandbox"),
	       (long long)json_integer_value(json_object_get(o, "version")), str(o, "digest"));
	if (ch)
		printf("narrowed: %s; denied now: %s\n",
		       json_is_true(json_object_get(ch, "changed")) ? "changed" : "no change",
		       json_array_size(json_object_get(ch, "denied_ops")) ? "" : "none");
	json_array_foreach(json_object_get(ch, "denied_ops"), i, v)
	{
		printf("  %s\n", json_string_value(v));
	}
	if (json_is_object(p)) {
		printf("\n%-14s %s\n", "OPERATION", "LEVEL");
		json_object_foreach(json_object_get(p, "levels"), key, v)
		{
			printf("%-14s %s\n", key, json_string_value(v));
		}
		printf("\nrules\n");
		print_kv("paths", json_object_get(p, "paths"));
		print_kv("commands", json_object_get(p, "commands"));
		print_kv("egress", json_object_get(p, "egress"));
		print_kv("git", json_object_get(p, "git"));
		print_kv("budget", json_object_get(p, "budget"));
		print_kv("uninhabitable", json_object_get(p, "uninhabitable"));
		print_kv("quarantine_after", json_object_get(p, "quarantine_after"));
	}
	if (json_is_object(s)) {
		q = json_object_get(s, "quarantine");
		printf("\nsession %s%s\n", str(s, "id"),
		       json_is_true(json_object_get(s, "closed")) ? " (closed)" : "");
		print_legs(json_object_get(s, "legs"));
		print_kv("counters", json_object_get(s, "counters"));
		print_kv("probes", json_object_get(s, "suspicion"));
		printf("  %-16s %s%s%s\n", "quarantined",
		       json_is_true(json_object_get(s, "quarantined")) ? "YES" : "no",
		       q ? ": " : "", q ? str(q, "reason") : "");
	}
	printf("\n%-7s  %-10s  %-16s  %s\n", "VERSION", "HOW", "AT_US", "DIGEST");
	json_array_foreach(json_object_get(o, "versions"), i, v)
	{
		printf("%-7lld  %-10s  %-16lld  %.16s\n",
		       (long long)json_integer_value(json_object_get(v, "version")), str(v, "how"),
		       (long long)json_integer_value(json_object_get(v, "at_us")),
		       str(v, "digest"));
	}
}

/*
 * POST .../policy/@how (narrow, widen) with the policy of @file ("-": stdin) and, for a
 * widening, the signed approval @approval (JSON or @FILE; NULL: none, which is refused).
 */
static int policy_change(struct ctl *c, const char *how, const char *ref, const char *file,
			 const char *approval)
{
	struct api_response resp;
	char suffix[32], path[256];
	json_t *p = NULL, *body = NULL, *appr = NULL;
	int r;

	snprintf(suffix, sizeof(suffix), "/policy/%s", how);
	r = sandbox_path(ref, suffix, path, sizeof(path));
	if (r == 0 && approval && !(appr = load_policy(approval)))
		r = EXIT_USAGE;
	if (r == 0)
		r = load_policy_file(strcmp(file, "-") == 0 ? "/dev/stdin" : file, &p);
	if (r == 0) {
		body = json_pack("{so s:o*}", "policy", p, "approval", appr);
		appr = NULL;
		r = request(c, "POST", path, body, &resp);
		json_decref(body);
	}
	json_decref(appr);
	return r ? r : finish(c, &resp, print_policy);
}

static int cmd_policy(struct ctl *c)
{
	if (c->given == 0 && c->nargs == 2 && strcmp(c->args[0], "show") == 0)
		return sandbox_request(c, "GET", c->args[1], "/policy", print_policy);
	if (c->given == 0 && c->nargs == 3 && strcmp(c->args[0], "narrow") == 0)
		return policy_change(c, "narrow", c->args[1], c->args[2], NULL);
	if (c->given == 0 && (c->nargs == 3 || c->nargs == 4) && strcmp(c->args[0], "widen") == 0)
		return policy_change(c, "widen", c->args[1], c->args[2],
				     c->nargs == 4 ? c->args[3] : NULL);
	if (c->given == 0 && c->nargs == 2 && strcmp(c->args[0], "check") == 0)
		return policy_check(c, c->args[1]);
	if (c->given == 0 && c->nargs == 3 && strcmp(c->args[0], "explain") == 0)
		return policy_explain(c, c->args[1], c->args[2]);
	return fail(EXIT_USAGE,
		    "usage: nucleusctl policy check FILE | policy explain "
		    "PROFILE|@FILE CALL_JSON | policy show ID | policy narrow ID FILE|- | policy "
		    "widen ID FILE|- [APPROVAL_JSON|@FILE]");
}

static int parse(int argc, char **argv, struct ctl *c, const char **socket)
{
	static const struct option lo[] = {
		{"socket", required_argument, NULL, 'S'},  {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},	   {"name", required_argument, NULL, 'n'},
		{"profile", required_argument, NULL, 'p'}, {"policy", required_argument, NULL, 'P'},
		{"vcpus", required_argument, NULL, 'c'},   {"memory", required_argument, NULL, 'm'},
		{"image", required_argument, NULL, 'i'},   {"ttl", required_argument, NULL, 't'},
		{"all", no_argument, NULL, 'a'},	   {"all-owners", no_argument, NULL, 'O'},
		{"after", required_argument, NULL, 'A'},   {"limit", required_argument, NULL, 'l'},
		{"budget", required_argument, NULL, 'B'},  {"parent", required_argument, NULL, 'R'},
		{NULL, 0, NULL, 0}};
	int o;

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'S':
			*socket = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return -1; /* done: main exits 0 */
		case 'n':
			c->name = optarg;
			c->given |= O_NAME;
			break;
		case 'p':
			c->profile = optarg;
			c->given |= O_PROFILE;
			break;
		case 'P':
			c->policy = optarg;
			c->given |= O_POLICY;
			break;
		case 'c':
			c->vcpus = optarg;
			c->given |= O_VCPUS;
			break;
		case 'm':
			c->memory = optarg;
			c->given |= O_MEMORY;
			break;
		case 'i':
			c->image = optarg;
			c->given |= O_IMAGE;
			break;
		case 't':
			c->ttl = optarg;
			c->given |= O_TTL;
			break;
		case 'B':
			c->budget = optarg;
			c->given |= O_BUDGET;
			break;
		case 'R':
			c->parent = optarg;
			c->given |= O_PARENT;
			break;
		case 'a':
			c->given |= O_ALL;
			break;
		case 'O':
			c->given |= O_ALL_OWNERS;
			break;
		case 'A':
			c->after = optarg;
			c->given |= O_AFTER;
			break;
		case 'l':
			c->limit = optarg;
			c->given |= O_LIMIT;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	c->args = argv + optind + 1;
	c->nargs = argc - optind - 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *c);
	} cmds[] = {{"ls", cmd_ls},	    {"create", cmd_create}, {"audit", cmd_audit},
		    {"health", cmd_health}, {"run", cmd_run},	    {"read", cmd_read},
		    {"write", cmd_write},   {"list", cmd_list},	    {"approve", cmd_approve},
		    {"policy", cmd_policy}, {"budget", cmd_budget}, {"db", cmd_db}};
	struct ctl c = {0};
	const char *socket = NULL, *cmd;
	int r;

	r = parse(argc, argv, &c, &socket);
	if (r)
		return r < 0 ? 0 : r;
	cmd = argv[optind];
	r = api_client__new(socket, &c.client);
	if (r < 0)
		return fail(EXIT_USAGE, "bad socket path: %s", strerror(-r));
	r = -1;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			r = cmds[i].fn(&c);
	if (r < 0) {
		if (strcmp(cmd, "show") == 0)
			r = cmd_simple(&c, "GET", "");
		else if (strcmp(cmd, "rm") == 0)
			r = cmd_simple(&c, "DELETE", "");
		else if (strcmp(cmd, "pause") == 0)
			r = cmd_simple(&c, "POST", "/pause");
		else if (strcmp(cmd, "resume") == 0)
			r = cmd_simple(&c, "POST", "/resume");
		else
			r = fail(EXIT_USAGE, "unknown command '%s' (see --help)", cmd);
	}
	api_client__free(c.client);
	return r;
}
