// SPDX-License-Identifier: Apache-2.0
/*
 * A sandbox is its creator's: another uid's request for it is 404, byte for byte the
 * answer to an unknown id; uid 0 and the members of --admin-gid see every owner's; the
 * list is one's own, every owner's only for an admin; no group is admitted by default.
 * The clients run as other uids (fork, then setgroups/setgid/setuid in the child).
 * What the daemon keeps is its owner's: the data directory is 0700 (a looser one is
 * narrowed, and the log says so; another uid's is refused), nucleus.db and its -wal and
 * -shm are 0600. Image names follow one rule whatever the backend.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

THD_SUITE(owner);

#define SPEC(more) "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128" more "}"

/* The peers: owner group 4000, admin group 4100. */
#define OWNER_GID "4000"
#define ADMIN_GID "4100"
static const struct thd_peer alice = {5555, 4000, 0}, bob = {5556, 4000, 0},
			     carol = {5557, 4000, 4100}, /* admin by a supplementary group */
	/* admin by the primary group; the owner group lets it open the socket (0660) */
	dave = {5558, 4100, 4000}, root = {0, 0, 0};

static void need_root(void)
{
	if (getuid() != 0)
		cr_skip_test("needs root to run clients as other uids");
}

/* The daemon again, with the owner and admin groups. */
static void restart_with_groups(void)
{
	thd_stop(&d);
	d.extra[0] = "--owner-gid";
	d.extra[1] = OWNER_GID;
	d.extra[2] = "--admin-gid";
	d.extra[3] = ADMIN_GID;
	thd_restart(&d);
}

static struct api_response call_as(const struct thd_peer *p, const char *method, const char *path,
				   const char *body)
{
	return thd_call_as(&d, p, method, path, body);
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* @r is @status with error code @code; cleared. */
static void expect_error(struct api_response *r, int status, const char *code)
{
	cr_assert_eq(r->status, status, "%d %s", r->status, r->body);
	cr_assert_str_eq(jstr(r->json, "error"), code, "%s", r->body);
	api_response__clear(r);
}

/* POST /v1/sandboxes as @p; asserts 201; the id (static buffer). */
static const char *create_as(const struct thd_peer *p, const char *spec)
{
	static char id[32];
	struct api_response r = call_as(p, "POST", "/v1/sandboxes", spec);

	cr_assert_eq(r.status, 201, "create as uid %u: %d %s", (unsigned)p->uid, r.status, r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "owner_uid")), p->uid);
	snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
	api_response__clear(&r);
	return id;
}

/* @s with every @from replaced by @to (same length), in place. */
static char *swap(char *s, const char *from, const char *to)
{
	for (char *at = strstr(s, from); at; at = strstr(at + strlen(to), from))
		memcpy(at, to, strlen(to));
	return s;
}

/* Every per-sandbox request: method, path after /v1/sandboxes/ID, a valid body. */
static const struct {
	const char *method, *suffix, *body;
} per_sandbox[] = {
	{"GET", "", NULL},
	{"GET", "/budget", NULL},
	{"GET", "/audit", NULL},
	{"GET", "/audit/verify", NULL},
	{"POST", "/tools/echo", "{\"args\": {\"msg\": \"hi\"}}"},
	{"POST", "/tools/run", "{\"args\": {\"argv\": [\"true\"]}, \"stream\": true}"},
	{"POST", "/usage", "{\"key\": \"k1\", \"input_tokens\": 10, \"output_tokens\": 10}"},
	{"POST", "/approvals",
	 "{\"nonce\": \"0123456789abcdef0123456789abcdef\", "
	 "\"approval\": {}}"},
	{"POST", "/approvals/refuse", "{\"nonce\": \"0123456789abcdef0123456789abcdef\"}"},
	{"GET", "/policy", NULL},
	{"POST", "/policy/narrow", "{\"policy\": {}}"},
	{"POST", "/policy/widen", "{\"policy\": {}}"},
	{"POST", "/pause", NULL},
	{"POST", "/resume", NULL},
	{"DELETE", "", NULL},
};

/* @p's answer to every per-sandbox request on @ref is the answer to an unknown id. */
static void expect_unknown_to(const struct thd_peer *p, const char *ref)
{
	char unknown[32], path[160];

	/* an id nobody has, as long as @ref */
	snprintf(unknown, sizeof(unknown), "%s", ref);
	unknown[strlen(unknown) - 1] = unknown[strlen(unknown) - 1] == 'z' ? 'y' : 'z';
	for (size_t i = 0; i < sizeof(per_sandbox) / sizeof(per_sandbox[0]); i++) {
		struct api_response got, none;

		snprintf(path, sizeof(path), "/v1/sandboxes/%s%s", ref, per_sandbox[i].suffix);
		got = call_as(p, per_sandbox[i].method, path, per_sandbox[i].body);
		snprintf(path, sizeof(path), "/v1/sandboxes/%s%s", unknown, per_sandbox[i].suffix);
		none = call_as(p, per_sandbox[i].method, path, per_sandbox[i].body);
		cr_assert_eq(none.status, 404, "%s %s: %d %s", per_sandbox[i].method, path,
			     none.status, none.body);
		cr_assert_eq(got.status, 404, "uid %u: %s %s of another owner: %d %s",
			     (unsigned)p->uid, per_sandbox[i].method, per_sandbox[i].suffix,
			     got.status, got.body);
		cr_assert_str_eq(got.body, swap(none.body, unknown, ref),
				 "%s %s: not the unknown id's answer", per_sandbox[i].method,
				 per_sandbox[i].suffix);
		api_response__clear(&got);
		api_response__clear(&none);
	}
}

/* GET /v1/sandboxes/@ref as @p: 200, and its @field is @want. */
static void expect_sandbox(const struct thd_peer *p, const char *ref, const char *field,
			   const char *want)
{
	char path[160];
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", ref);
	r = call_as(p, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "uid %u: GET %s: %d %s", (unsigned)p->uid, ref, r.status,
		     r.body);
	cr_assert_str_eq(jstr(r.json, field), want, "uid %u: %s", (unsigned)p->uid, r.body);
	api_response__clear(&r);
}

Test(owner, another_owners_sandbox_is_an_unknown_id)
{
	char id[32], path[160];
	struct api_response r;

	need_root();
	restart_with_groups();
	snprintf(id, sizeof(id), "%s", create_as(&alice, SPEC(", \"name\": \"alices\"")));
	expect_unknown_to(&bob, id);
	expect_unknown_to(&bob, "alices"); /* by name too */
	/* nothing bob did touched it: still running, nothing charged, no call audited */
	expect_sandbox(&alice, id, "state", "running");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit", id);
	r = call_as(&alice, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	for (size_t i = 0; i < json_array_size(r.json); i++)
		cr_assert_eq(
			json_integer_value(json_object_get(json_array_get(r.json, i), "actor_uid")),
			alice.uid, "an entry by another uid: %s", r.body);
	api_response__clear(&r);
	/* the owner, root and both kinds of admin reach it */
	expect_sandbox(&root, id, "state", "running");
	expect_sandbox(&carol, "alices", "state", "running");
	expect_sandbox(&dave, id, "state", "running");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	r = call_as(&alice, "POST", path, "{\"args\": {\"msg\": \"mine\"}}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/pause", id);
	r = call_as(&carol, "POST", path, NULL);
	cr_assert_eq(r.status, 200, "an admin pauses: %s", r.body);
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = call_as(&alice, "DELETE", path, NULL);
	cr_assert_eq(r.status, 200, "the owner stops: %s", r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

/* A name is one owner's: another's live sandbox of that name is no 409, and names resolve
 * to one's own (an admin's own first). */
Test(owner, names_are_unique_per_owner_and_resolve_to_ones_own)
{
	char a[32], b[32], c[32];
	struct api_response r;

	need_root();
	restart_with_groups();
	snprintf(a, sizeof(a), "%s", create_as(&alice, SPEC(", \"name\": \"web\"")));
	snprintf(b, sizeof(b), "%s", create_as(&bob, SPEC(", \"name\": \"web\"")));
	r = call_as(&alice, "POST", "/v1/sandboxes", SPEC(", \"name\": \"web\""));
	expect_error(&r, 409, "name_taken"); /* one's own live name is still taken */
	/* each owner's "web" is its own */
	expect_sandbox(&alice, "web", "id", a);
	expect_sandbox(&bob, "web", "id", b);
	/* an admin's own sandbox of the name comes before the others' */
	snprintf(c, sizeof(c), "%s", create_as(&carol, SPEC(", \"name\": \"web\"")));
	expect_sandbox(&carol, "web", "id", c);
	expect_sandbox(&carol, a, "id", a); /* an admin reaches another's by id */
	thd_finish(&d);
}

/* The ids in @r's list, as " id1 id2 ... ". */
static const char *ids_of(const struct api_response *r)
{
	static char buf[1024];
	size_t n = 0;

	buf[n++] = ' ';
	for (size_t i = 0; i < json_array_size(thd_sandboxes(r)); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s ",
				      jstr(json_array_get(thd_sandboxes(r), i), "id"));
	return buf;
}

Test(owner, the_list_is_ones_own_and_every_owners_is_for_admins)
{
	char a[32], b[32], mine[32], both[100];
	struct api_response r;
	struct thd_run *run;

	need_root();
	restart_with_groups();
	snprintf(a, sizeof(a), "%s", create_as(&alice, SPEC("")));
	snprintf(b, sizeof(b), "%s", create_as(&bob, SPEC("")));
	snprintf(mine, sizeof(mine), "%s", thd_create(&d, SPEC("")));
	r = call_as(&alice, "GET", "/v1/sandboxes", NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 1, "%s", r.body);
	snprintf(both, sizeof(both), " %s ", a);
	cr_assert_str_eq(ids_of(&r), both);
	api_response__clear(&r);
	r = call_as(&bob, "GET", "/v1/sandboxes?all_owners=true", NULL);
	expect_error(&r, 403, "forbidden");
	r = call_as(&bob, "GET", "/v1/sandboxes?all_owners=maybe", NULL);
	expect_error(&r, 400, "wrong_type");
	snprintf(both, sizeof(both), " %s %s %s ", a, b, mine);
	r = call_as(&carol, "GET", "/v1/sandboxes?all_owners=true", NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(ids_of(&r), both);
	api_response__clear(&r);
	/* an admin's plain list is its own too */
	r = call_as(&dave, "GET", "/v1/sandboxes", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 0, "%s", r.body);
	api_response__clear(&r);
	/* nucleusctl (as root): ls is root's own, --all-owners everyone's */
	run = thd_ctl(d.sock, "--json", "ls", NULL);
	cr_assert_eq(run->code, 0, "%s", run->err);
	cr_assert_not_null(strstr(run->out, mine), "%s", run->out);
	cr_assert_null(strstr(run->out, a), "ls shows another owner's: %s", run->out);
	run = thd_ctl(d.sock, "--json", "ls", "--all-owners", NULL);
	cr_assert_eq(run->code, 0, "%s", run->err);
	cr_assert(strstr(run->out, a) && strstr(run->out, b) && strstr(run->out, mine), "%s",
		  run->out);
	thd_finish(&d);
}

Test(owner, no_group_is_admitted_unless_named_and_supplementary_groups_count)
{
	static const struct thd_peer gid0 = {5555, 0, 0}, supp = {5559, 5559, 4000};
	struct api_response r;

	need_root();
	/* the daemon runs as root with no --owner-gid: gid 0 is no pass (the socket's
	 * mode would let it connect) */
	r = call_as(&gid0, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	api_response__clear(&r);
	restart_with_groups();
	r = call_as(&supp, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200, "a member by a supplementary group: %d %s", r.status, r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

/* A daemon-wide check: 403 forbidden to an owner, "ok": true to an admin. */
static void admin_only(const char *method, const char *path)
{
	struct api_response r = call_as(&alice, method, path, NULL);

	expect_error(&r, 403, "forbidden");
	r = call_as(&dave, method, path, NULL);
	cr_assert_eq(r.status, 200, "%s %s: %s", method, path, r.body);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
	api_response__clear(&r);
}

Test(owner, the_whole_log_is_verified_and_the_database_checked_by_an_admin_only)
{
	char path[160];
	struct api_response r;
	const char *id;

	need_root();
	restart_with_groups();
	id = create_as(&alice, SPEC(""));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit/verify", id);
	r = call_as(&alice, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "the owner verifies its sandbox's: %s", r.body);
	api_response__clear(&r);
	admin_only("GET", "/v1/audit/verify");
	admin_only("POST", "/v1/db/check"); /* the whole database too */
	thd_finish(&d);
}

/* One image name rule whatever the backend: the fake too refuses a path. */
Test(owner, the_fake_backend_refuses_a_path_as_image)
{
	static const char *const bad[] = {
		"../../../../etc/passwd", "/etc/passwd", "a/b", ".hidden", "UPPER", ""};
	char body[256];
	struct api_response r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), SPEC(", \"image\": \"%s\""), bad[i]);
		r = thd_call(&d, "POST", "/v1/sandboxes", body);
		expect_error(&r, 400, *bad[i] ? "bad_image" : "out_of_range");
	}
	r = thd_call(&d, "GET", "/v1/sandboxes?all=true", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 0, "a refused create left a row: %s",
		     r.body);
	api_response__clear(&r);
	/* a well-formed name boots; the fake's own test images pass the rule and act */
	thd_create(&d, SPEC(", \"image\": \"alpine-3.20\""));
	r = thd_call(&d, "POST", "/v1/sandboxes", SPEC(", \"image\": \"fake:fail\""));
	cr_assert_eq(r.status, 502, "fake:fail: %d %s", r.status, r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

static unsigned mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s", path);
	return st.st_mode & 07777;
}

/* The database's -wal and -shm (nucleus.db-SUFFIX), in a static buffer. */
static const char *db_file(const char *suffix)
{
	static char p[400];

	snprintf(p, sizeof(p), "%s%s", d.db, suffix);
	return p;
}

static void expect_private_files(void)
{
	cr_assert_eq(mode_of(d.data), 0700, "data dir mode %04o", mode_of(d.data));
	cr_assert_eq(mode_of(d.db), 0600, "nucleus.db mode %04o", mode_of(d.db));
	cr_assert_eq(mode_of(db_file("-wal")), 0600, "-wal mode %04o", mode_of(db_file("-wal")));
	cr_assert_eq(mode_of(db_file("-shm")), 0600, "-shm mode %04o", mode_of(db_file("-shm")));
}

Test(owner, db_wal_and_shm_are_0600_and_a_loose_data_dir_is_narrowed)
{
	char *log;

	thd_create(&d, SPEC(""));
	expect_private_files();
	/* loosened while the daemon is down: the next start narrows all of it back */
	thd_stop(&d);
	cr_assert_eq(chmod(d.data, 0755), 0);
	cr_assert_eq(chmod(d.db, 0644), 0);
	if (access(db_file("-wal"), F_OK) == 0)
		cr_assert_eq(chmod(db_file("-wal"), 0644), 0);
	if (access(db_file("-shm"), F_OK) == 0)
		cr_assert_eq(chmod(db_file("-shm"), 0644), 0);
	thd_restart(&d);
	thd_create(&d, SPEC(""));
	expect_private_files();
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "data was mode 0755, narrowed to 0700"), "log: %s", log);
	free(log);
	thd_finish(&d);
}

/* nucleusd on d's data dir in the foreground; its exit status (it must exit). */
static int run_to_exit(void)
{
	int st = 0;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(d.log, O_WRONLY | O_APPEND);

		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(NUCLEUSD_PATH, NUCLEUSD_PATH, "--fake-backend", "--data-dir", d.data,
		      "--socket", d.sock, (char *)NULL);
		_exit(127);
	}
	/* a daemon that starts would serve forever: stop it (a failure either way) */
	for (int i = 0; i < 6000 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		cr_assert_fail("nucleusd ran on the data dir");
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(owner, a_data_dir_of_another_uid_is_refused)
{
	char *log;

	need_root();
	thd_stop(&d);
	cr_assert_eq(chown(d.data, 5555, 5555), 0);
	cr_assert_neq(run_to_exit(), 0, "the daemon ran on uid 5555's data dir");
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "is owned by uid 5555"), "log: %s", log);
	free(log);
	cr_assert_eq(chown(d.data, 0, 0), 0);
	cr_assert_eq(mode_of(d.data), 0700, "the refused dir was changed: %04o", mode_of(d.data));
}

Test(owner, a_data_dir_others_may_write_to_is_refused_not_narrowed)
{
	char *log;

	thd_stop(&d);
	cr_assert_eq(chmod(d.data, 01777), 0);
	cr_assert_neq(run_to_exit(), 0, "the daemon ran on a mode 1777 data dir");
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "is mode 1777, writable by others"), "log: %s", log);
	free(log);
	cr_assert_eq(mode_of(d.data), 01777, "a shared dir was changed: %04o", mode_of(d.data));
}
