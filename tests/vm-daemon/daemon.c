// SPDX-License-Identifier: Apache-2.0
/*
 * vm-daemon: nucleusd with its real backend, black-box through the API socket and
 * nucleusctl. Every sandbox is a real microVM (nested KVM here: slow), so the suite
 * keeps to a few tests. Timeouts only bound a hang; no test asserts a duration.
 * Sockets and data live under /tmp (Unix sockets cannot be made on 9p shares).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include <sodium.h>

#include "api/api.h"
#include "policy/policy.h"
#include "tests/unit/th_approval.h"
#include "tests/unit/th_budget.h"

#define HANG_S 600

/* The daemon's --user in these tests (privilege separation, the way to run it as root). */
#define RUN_USER "64000:64001"
#define RUN_UID	 64000

struct nd {
	pid_t pid;
	const char *vmm;  /* --vmm: NULL for the daemon's default */
	const char *user; /* --user: RUN_USER unless a test says otherwise (NULL: root) */
	char dir[64], data[96], sock[96], log[96];
	unsigned char pk[32], sk[64]; /* the approver's key pair */
	char pk_hex[65];
};

static struct nd D;

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

static struct api_response call(const char *method, const char *path, const char *body)
{
	struct api_client *c = NULL;
	struct api_response r = {0};
	json_t *j = NULL;

	if (body) {
		j = json_loads(body, 0, NULL);
		cr_assert_not_null(j, "bad test JSON %s", body);
	}
	cr_assert_eq(api_client__new(D.sock, &c), 0);
	cr_assert_eq(api_client__call(c, method, path, j, &r), 0, "%s %s: no answer", method, path);
	api_client__free(c);
	json_decref(j);
	return r;
}

static void nd_spawn(void)
{
	const char *argv[16] = {env_or("NUCLEUSD", NUCLEUSD_BUILD), "--data-dir", D.data,
				"--socket", D.sock, "--approver-key", D.pk_hex,
				"--meter-interval-ms", "250",
				/* room for a test program written into a guest (upload()) */
				"--max-body", "8388608"};
	int n = 11, fd;

	if (D.user) {
		argv[n++] = "--user";
		argv[n++] = D.user;
	}
	if (D.vmm) {
		argv[n++] = "--vmm";
		argv[n++] = D.vmm;
	}

	D.pid = fork();
	cr_assert_geq(D.pid, 0);
	if (D.pid == 0) {
		fd = open(D.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < HANG_S * 10; i++) {
		struct api_client *c = NULL;
		struct api_response r = {0};
		int st;

		cr_assert_eq(api_client__new(D.sock, &c), 0);
		if (api_client__call(c, "GET", "/v1/health", NULL, &r) == 0 && r.status == 200) {
			api_response__clear(&r);
			api_client__free(c);
			return;
		}
		api_client__free(c);
		api_response__clear(&r);
		cr_assert_neq(waitpid(D.pid, &st, WNOHANG), D.pid, "nucleusd exited (see %s)",
			      D.log);
		sleep_ms(100);
	}
	cr_assert_fail("nucleusd did not answer");
}

static void nd_term(void)
{
	int st;

	if (D.pid <= 0)
		return;
	kill(D.pid, SIGTERM);
	waitpid(D.pid, &st, 0);
	D.pid = 0;
}

static void setup(void)
{
	memset(&D, 0, sizeof(D));
	snprintf(D.dir, sizeof(D.dir), "/tmp/nucleus-vmd-XXXXXX");
	cr_assert_not_null(mkdtemp(D.dir));
	cr_assert_eq(chmod(D.dir, 0711), 0); /* the --user daemon reaches its data dir */
	D.user = RUN_USER;
	snprintf(D.data, sizeof(D.data), "%s/data", D.dir);
	snprintf(D.sock, sizeof(D.sock), "%s/nucleusd.sock", D.dir);
	snprintf(D.log, sizeof(D.log), "%s/nucleusd.log", D.dir);
	cr_assert_geq(sodium_init(), 0);
	crypto_sign_keypair(D.pk, D.sk);
	sodium_bin2hex(D.pk_hex, sizeof(D.pk_hex), D.pk, sizeof(D.pk));
	nd_spawn();
}

/* Kills any VM still left (by the pids the daemon reported), the daemon, the temp dir. */
static void teardown(void)
{
	char cmd[160];
	int st;

	if (D.pid > 0) {
		kill(D.pid, SIGKILL);
		waitpid(D.pid, &st, 0);
	}
	if (getenv("NUCLEUS_KEEP_TEST_DIR"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", D.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", D.dir);
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Creates a sandbox and returns its id (static storage per slot). */
static const char *create(const char *body, int slot)
{
	static char ids[4][32];
	struct api_response r = call("POST", "/v1/sandboxes", body);

	cr_assert_eq(r.status, 201, "create: %d %s (log %s)", r.status, r.body, D.log);
	cr_assert_str_eq(jstr(r.json, "state"), "running");
	snprintf(ids[slot], sizeof(ids[slot]), "%s", jstr(r.json, "id"));
	api_response__clear(&r);
	return ids[slot];
}

static struct api_response tool(const char *id, const char *name, const char *args)
{
	char path[160], body[1024];

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/%s", id, name);
	snprintf(body, sizeof(body), "{\"args\": %s}", args);
	return call("POST", path, body);
}

static json_t *result(struct api_response *r)
{
	return json_object_get(r->json, "result");
}

/* A run of @args (tool arguments) in @id that succeeds and prints @out. */
static void expect_run(const char *id, const char *args, const char *out)
{
	struct api_response r = tool(id, "run", args);

	cr_assert_eq(r.status, 200, "run %s: %d %s", args, r.status, r.body);
	cr_assert_str_eq(jstr(result(&r), "stdout"), out, "run %s", args);
	api_response__clear(&r);
}

static json_t *get_sandbox(const char *id)
{
	char path[96];
	struct api_response r;
	json_t *o;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = call("GET", path, NULL);
	cr_assert_eq(r.status, 200);
	o = json_incref(r.json);
	api_response__clear(&r);
	return o;
}

/* Runs a shell command line, returns its exit status and (optionally) its stdout. */
static int sh(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");
	size_t n = 0;
	int st;

	cr_assert_not_null(f);
	if (out) {
		n = fread(out, 1, len - 1, f);
		out[n] = '\0';
	} else {
		char buf[256];

		while (fread(buf, 1, sizeof(buf), f) > 0)
			;
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The approval of @req (a web_fetch of @url) signed with @sk, as a POST approvals body. */
static char *signed_approval(json_t *req, const char *url, const unsigned char *sk)
{
	char call_json[256];

	cr_assert_str_eq(jstr(req, "tool"), "web_fetch");
	snprintf(call_json, sizeof(call_json), "{\"op\": \"web_fetch\", \"url\": \"%s\"}", url);
	return th_approval_body(req, call_json, sk);
}

/* An approval signed by a key the daemon does not pin is a deny (APPROVAL_BAD_SIG). */
static void approve_web_fetch(const char *id, json_t *req)
{
	struct api_response r;
	unsigned char rogue_pk[32], rogue_sk[64];
	char path[128], *body;

	crypto_sign_keypair(rogue_pk, rogue_sk);
	body = signed_approval(req, "https://example.com/", rogue_sk);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	r = call("POST", path, body);
	free(body);
	cr_assert_eq(r.status, 403, "rogue approval: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "APPROVAL_BAD_SIG");
	cr_assert_str_eq(jstr(r.json, "verdict"), "deny");
	api_response__clear(&r);
}

/*
 * A fresh ask, signed by the pinned key as an approver would: the policy engine now
 * allows the call, which this backend cannot perform (501, no faked result). The
 * request is used up: a second submission is refused (409).
 */
static void approve_good(const char *id)
{
	struct api_response r, q;
	char path[128], *body;

	q = tool(id, "web_fetch", "{\"url\": \"https://example.com/x\"}");
	cr_assert_eq(q.status, 403, "web_fetch: %d %s", q.status, q.body);
	body = signed_approval(json_object_get(q.json, "approval_request"), "https://example.com/x",
			       D.sk);
	api_response__clear(&q);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	r = call("POST", path, body);
	cr_assert_eq(r.status, 501, "approved web_fetch: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "not_implemented");
	api_response__clear(&r);
	r = call("POST", path, body);
	cr_assert_eq(r.status, 409, "second use: %d %s", r.status, r.body);
	api_response__clear(&r);
	free(body);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 900);

Test(daemon, sandbox_tools_policy_and_cli)
{
	const char *id = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
				"\"memory_mib\": 256, \"workspace\": {\"size_mib\": 16, "
				"\"persist\": false}}",
				0);
	struct api_response r;
	struct utsname host;
	char cmd[512], out[4096];
	size_t i;
	json_t *e, *sb;
	bool found = false;
	int code;

	/* run: a guest kernel, not the host's. */
	r = tool(id, "run", "{\"argv\": [\"uname\", \"-r\"]}");
	cr_assert_eq(r.status, 200, "run: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), "allow");
	cr_assert_eq(json_integer_value(json_object_get(result(&r), "exit_code")), 0);
	uname(&host);
	cr_assert_gt(strlen(jstr(result(&r), "stdout")), 1);
	cr_assert_null(strstr(jstr(result(&r), "stdout"), host.release),
		       "guest reports the host kernel %s", host.release);
	api_response__clear(&r);

	/* write, read back, list: on the workspace disk. */
	r = tool(id, "write_file",
		 "{\"path\": \"/workspace/hello.txt\", \"content\": \"hi from the host\\n\"}");
	cr_assert_eq(r.status, 200, "write: %d %s", r.status, r.body);
	api_response__clear(&r);
	r = tool(id, "read_file", "{\"path\": \"/workspace/hello.txt\"}");
	cr_assert_eq(r.status, 200, "read: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(result(&r), "content"), "hi from the host\n");
	api_response__clear(&r);
	r = tool(id, "list", "{\"path\": \"/workspace\"}");
	cr_assert_eq(r.status, 200, "list: %d %s", r.status, r.body);
	json_array_foreach(json_object_get(result(&r), "entries"), i, e) found |=
		strcmp(jstr(e, "name"), "hello.txt") == 0;
	cr_assert(found, "hello.txt not listed: %s", r.body);
	api_response__clear(&r);

	/* The policy refuses: a denied path (never reaches the guest), an `ask`. */
	r = tool(id, "read_file", "{\"path\": \"/etc/shadow\"}");
	cr_assert_eq(r.status, 403, "shadow: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), "deny");
	cr_assert_str_eq(jstr(r.json, "reason"), "PATH_DENIED");
	cr_assert_gt(strlen(jstr(r.json, "message")), 0);
	api_response__clear(&r);
	r = tool(id, "web_fetch", "{\"url\": \"https://example.com/\"}");
	cr_assert_eq(r.status, 403, "web_fetch: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), "ask");
	cr_assert_not_null(json_object_get(r.json, "approval_request"));
	approve_web_fetch(id, json_object_get(r.json, "approval_request"));
	api_response__clear(&r);

	/* A failing command keeps its exit code and separate streams. */
	r = tool(id, "run", "{\"argv\": [\"sh\", \"-c\", \"echo out; echo err >&2; exit 3\"]}");
	cr_assert_eq(r.status, 200, "run: %d %s", r.status, r.body);
	cr_assert_eq(json_integer_value(json_object_get(result(&r), "exit_code")), 3);
	cr_assert_str_eq(jstr(result(&r), "stdout"), "out\n");
	cr_assert_str_eq(jstr(result(&r), "stderr"), "err\n");
	api_response__clear(&r);

	/* nucleusctl as a user would: output and exit code of the command. */
	snprintf(cmd, sizeof(cmd), "NUCLEUS_SOCKET=%s %s run %s -- sh -c 'echo via-cli; exit 7'",
		 D.sock, env_or("NUCLEUSCTL", NUCLEUSCTL_BUILD), id);
	code = sh(cmd, out, sizeof(out));
	cr_assert_eq(code, 7, "nucleusctl run exit %d", code);
	cr_assert_str_eq(out, "via-cli\n");
	/* Its streamed output keeps stdout and stderr apart (each run captures one). */
	for (int fd = 1; fd <= 2; fd++) {
		snprintf(cmd, sizeof(cmd),
			 "NUCLEUS_SOCKET=%s %s run %s -- sh -c 'echo o1; echo e1 >&2; echo o2; "
			 "echo e2 >&2; exit 5' %s",
			 D.sock, env_or("NUCLEUSCTL", NUCLEUSCTL_BUILD), id,
			 fd == 1 ? "2>/dev/null" : "2>&1 >/dev/null");
		code = sh(cmd, out, sizeof(out));
		cr_assert_eq(code, 5, "nucleusctl run exit %d", code);
		cr_assert_str_eq(out, fd == 1 ? "o1\no2\n" : "e1\ne2\n");
	}
	snprintf(cmd, sizeof(cmd),
		 "echo from-cli | NUCLEUS_SOCKET=%s %s write %s /tmp/c.txt >/dev/null && "
		 "NUCLEUS_SOCKET=%s %s read %s /tmp/c.txt",
		 D.sock, env_or("NUCLEUSCTL", NUCLEUSCTL_BUILD), id, D.sock,
		 env_or("NUCLEUSCTL", NUCLEUSCTL_BUILD), id);
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "from-cli\n");
	snprintf(cmd, sizeof(cmd), "NUCLEUS_SOCKET=%s %s read %s /root/.ssh/id_rsa 2>&1", D.sock,
		 env_or("NUCLEUSCTL", NUCLEUSCTL_BUILD), id);
	code = sh(cmd, out, sizeof(out));
	cr_assert_neq(code, 0);
	cr_assert_not_null(strstr(out, "403"), "nucleusctl said: %s", out);

	/*
	 * Last, as the approved web_fetch taints the session (untrusted leg): from then on
	 * an interpreter run would complete all three legs and asks.
	 */
	approve_good(id);
	r = tool(id, "run", "{\"argv\": [\"sh\", \"-c\", \"true\"]}");
	cr_assert_eq(r.status, 403, "tainted run: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "UNINHABITABLE_ASK");
	api_response__clear(&r);

	/* Delete: stopped, its VMM gone. */
	sb = get_sandbox(id);
	cr_assert_gt(json_integer_value(json_object_get(sb, "vmm_pid")), 0);
	snprintf(cmd, sizeof(cmd), "/v1/sandboxes/%s", id);
	r = call("DELETE", cmd, NULL);
	cr_assert_eq(r.status, 200, "delete: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "state"), "stopped");
	api_response__clear(&r);
	{
		pid_t pid = (pid_t)json_integer_value(json_object_get(sb, "vmm_pid"));
		int i2;

		for (i2 = 0; i2 < HANG_S * 10 && kill(pid, 0) == 0; i2++)
			sleep_ms(100);
		cr_assert_neq(kill(pid, 0), 0, "nucleus-vmm %d still runs after delete", pid);
	}
	json_decref(sb);
	r = tool(id, "run", "{\"argv\": [\"true\"]}");
	cr_assert_eq(r.status, 409);
	api_response__clear(&r);
	nd_term();
}

/* A line "@key\tvalue" of /proc/@pid/status (its value), or "". */
static const char *proc_status(pid_t pid, const char *key)
{
	static char v[256];
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "awk -F'\t' '$1 == \"%s:\" { print $2 }' /proc/%d/status", key,
		 (int)pid);
	sh(cmd, v, sizeof(v));
	v[strcspn(v, "\n")] = '\0';
	return v;
}

/* "/sys/fs/cgroup" when cgroup v2 is mounted there with the memory, cpu and pids
 * controllers and this process (as the daemon) is in its root cgroup; else NULL. */
static const char *cgroup_v2_root(void)
{
	char out[256];

	if (sh("cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null", out, sizeof(out)) != 0 ||
	    !strstr(out, "memory") || !strstr(out, "cpu") || !strstr(out, "pids"))
		return NULL;
	sh("cat /proc/self/cgroup", out, sizeof(out));
	return strcmp(out, "0::/\n") == 0 ? "/sys/fs/cgroup" : NULL;
}

/* The parent pid of @pid. */
static pid_t ppid_of(pid_t pid)
{
	return (pid_t)atoi(proc_status(pid, "PPid"));
}

/*
 * The jail (#14): the VMM runs as a uid of its own, with no_new_privs, no capabilities,
 * namespaces of its own, and a root that holds only its binary, kernel, initramfs, run
 * dir, disk and /dev/kvm, in a cgroup leaf with the spec's limits where cgroup v2 is
 * usable, its mounts in its own namespace only; the guest works as before; deleting the
 * sandbox removes the jail's directory and its cgroup. With --user (@privsep) the
 * daemon runs as that user, and the root monitor beside it made the jail and is the
 * VMM's parent; without, the root daemon did and is.
 */
static void jail_checks(bool privsep)
{
	static const char *const kinds[] = {"mnt", "pid", "net", "ipc", "uts"};
	const char *id = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
				"\"memory_mib\": 128, \"workspace\": {\"size_mib\": 16, "
				"\"persist\": false}}",
				0);
	json_t *sb = get_sandbox(id);
	pid_t pid = (pid_t)json_integer_value(json_object_get(sb, "vmm_pid"));
	char cmd[256], out[512], a[128], b[128], path[128], leaf[128];
	const char *cgroup;
	struct api_response r;
	struct stat st;
	ssize_t n;

	json_decref(sb);
	cr_assert_gt(pid, 0);
	cr_assert_geq(atoll(proc_status(pid, "Uid")), 200000, "uid %s", proc_status(pid, "Uid"));
	if (privsep) {
		pid_t mon = ppid_of(pid);

		cr_assert_eq(atoi(proc_status(D.pid, "Uid")), RUN_UID, "the daemon's uid");
		cr_assert_str_eq(proc_status(D.pid, "CapEff"), "0000000000000000");
		cr_assert_eq(ppid_of(mon), D.pid, "the VMM's parent is not the daemon's monitor");
		cr_assert_eq(atoi(proc_status(mon, "Uid")), 0, "the monitor is not root");
		cr_assert_str_eq(proc_status(mon, "Name"), "nucleus-monitor");
		/* its run dir: the daemon's, and the VM uid's group's, nobody else's */
		snprintf(path, sizeof(path), "%s/vms/%s", D.data, id);
		cr_assert_eq(stat(path, &st), 0);
		cr_assert(st.st_uid == RUN_UID &&
				  st.st_gid == (gid_t)atoll(proc_status(pid, "Uid")) &&
				  (st.st_mode & 07777) == 0770,
			  "%s: uid %u gid %u mode %04o", path, (unsigned)st.st_uid,
			  (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
		snprintf(cmd, sizeof(cmd), "grep -c 'made by the privileged monitor' %s", D.log);
		cr_assert_eq(sh(cmd, NULL, 0), 0, "the daemon says who makes its jails");
	} else {
		cr_assert_eq(ppid_of(pid), D.pid, "the root daemon is not the VMM's parent");
	}
	cr_assert_str_eq(proc_status(pid, "NoNewPrivs"), "1");
	cr_assert_str_eq(proc_status(pid, "CapEff"), "0000000000000000");
	cr_assert_str_eq(proc_status(pid, "CapBnd"), "0000000000000000");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kinds[i]);
		n = readlink(path, a, sizeof(a) - 1);
		a[n > 0 ? n : 0] = '\0';
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		n = readlink(path, b, sizeof(b) - 1);
		b[n > 0 ? n : 0] = '\0';
		cr_assert_str_neq(a, b, "the VMM shares the %s namespace", kinds[i]);
	}
	snprintf(cmd, sizeof(cmd), "ls -A /proc/%d/root | sort | tr '\\n' ' '", (int)pid);
	sh(cmd, out, sizeof(out));
	cr_assert_str_eq(out, "dev disk initrd kernel nucleus-vmm run ", "its root: %s", out);
	snprintf(cmd, sizeof(cmd), "ls -A /proc/%d/root/dev | tr '\\n' ' '", (int)pid);
	sh(cmd, out, sizeof(out));
	cr_assert_str_eq(out, "kvm ", "its /dev: %s", out);
	/* its mounts are its namespace's: none of them shows on the host, none is left */
	snprintf(cmd, sizeof(cmd), "grep -c ' %s' /proc/self/mountinfo", D.data);
	sh(cmd, out, sizeof(out));
	cr_assert_str_eq(out, "0\n", "the jail's mounts show on the host");
	expect_run(id, "{\"argv\": [\"echo\", \"jailed\"]}", "jailed\n");
	snprintf(cmd, sizeof(cmd), "grep -c 'jail: a uid of its own per VM' %s", D.log);
	cr_assert_eq(sh(cmd, NULL, 0), 0, "the daemon says what its jail is (%s)", D.log);
	/* Its cgroup leaf where cgroup v2 is there for the daemon to use (the nested harness
	 * mounts it; the daemon runs in the root cgroup): the spec's limits. */
	cgroup = cgroup_v2_root();
	if (cgroup) {
		snprintf(cmd, sizeof(cmd), "grep -c 'a cgroup v2 leaf per VM with' %s", D.log);
		cr_assert_eq(sh(cmd, NULL, 0), 0, "cgroup v2 is here; the daemon uses none");
		snprintf(cmd, sizeof(cmd), "cat /proc/%d/cgroup", (int)pid);
		sh(cmd, out, sizeof(out));
		snprintf(leaf, sizeof(leaf), "0::/nucleus-%s\n", id);
		cr_assert_str_eq(out, leaf, "the VMM's cgroup");
		snprintf(leaf, sizeof(leaf), "/sys/fs/cgroup/nucleus-%s", id);
		snprintf(cmd, sizeof(cmd),
			 "cd %s && cat memory.max cpu.max pids.max | tr '\\n' ' '", leaf);
		sh(cmd, out, sizeof(out));
		cr_assert_str_eq(out, "402653184 100000 100000 65 ", "its limits (128 MiB + 256)");
	} else {
		cr_log_warn("no cgroup v2 for the daemon here: the jail's cgroup is not tested");
	}

	snprintf(cmd, sizeof(cmd), "/v1/sandboxes/%s", id);
	r = call("DELETE", cmd, NULL);
	cr_assert_eq(r.status, 200, "delete: %d %s", r.status, r.body);
	api_response__clear(&r);
	for (int i = 0; i < HANG_S * 10 && kill(pid, 0) == 0; i++)
		sleep_ms(100);
	snprintf(path, sizeof(path), "%s/vms/%s/root", D.data, id);
	for (int i = 0; i < 50 && stat(path, &st) == 0; i++)
		sleep_ms(100);
	cr_assert_neq(stat(path, &st), 0, "%s is left", path);
	if (cgroup)
		cr_assert_neq(stat(leaf, &st), 0, "%s is left", leaf);
	nd_term();
}

Test(daemon, the_vmm_runs_in_its_jail)
{
	jail_checks(true);
}

/* The same jail made by a daemon run as root without --user (a data dir of its own). */
Test(daemon, the_vmm_runs_in_its_jail_under_a_root_daemon)
{
	char cmd[256];

	nd_term();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", D.data);
	cr_assert_eq(system(cmd), 0);
	D.user = NULL;
	nd_spawn();
	jail_checks(false);
}

/* A run of a shell line in @id: its stdout (static); asserts the call answered 200. */
static const char *guest_sh(const char *id, const char *line, unsigned timeout_ms)
{
	static char out[512];
	char *args;
	json_t *q = json_string(line);
	char *quoted = json_dumps(q, JSON_ENCODE_ANY);
	struct api_response r;

	cr_assert_gt(asprintf(&args, "{\"argv\": [\"sh\", \"-c\", %s], \"timeout_ms\": %u}", quoted,
			      timeout_ms),
		     0);
	r = tool(id, "run", args);
	cr_assert_eq(r.status, 200, "run %s: %d %s", line, r.status, r.body);
	snprintf(out, sizeof(out), "%s", jstr(result(&r), "stdout"));
	api_response__clear(&r);
	free(args);
	free(quoted);
	json_decref(q);
	return out;
}

/* Writes the host file @host into @id at @guest, executable (a test program). */
static void upload(const char *id, const char *host, const char *guest)
{
	char path[160], *b64, *body;
	unsigned char *bin;
	struct api_response r;
	struct stat st;
	size_t n;
	FILE *f = fopen(host, "rb");
	json_t *o;

	cr_assert_not_null(f, "%s", host);
	cr_assert_eq(fstat(fileno(f), &st), 0);
	n = (size_t)st.st_size;
	bin = malloc(n);
	cr_assert_not_null(bin);
	cr_assert_eq(fread(bin, 1, n, f), n, "%s", host);
	fclose(f);
	b64 = malloc(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL));
	cr_assert_not_null(b64);
	sodium_bin2base64(b64, sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), bin, n,
			  sodium_base64_VARIANT_ORIGINAL);
	o = json_pack("{s{ss ss ss si}}", "args", "path", guest, "content", b64, "encoding",
		      "base64", "mode", 0755);
	cr_assert_not_null(o);
	body = json_dumps(o, JSON_COMPACT);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", id);
	r = call("POST", path, body);
	cr_assert_eq(r.status, 200, "upload %s: %d %.300s", host, r.status, r.body);
	api_response__clear(&r);
	json_decref(o);
	free(body);
	free(b64);
	free(bin);
}

/* How many fds process @pid has open. */
static int fd_count(pid_t pid)
{
	char cmd[96], out[32];

	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)pid);
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0);
	return atoi(out);
}

/*
 * A hostile guest (#14), root in its VM with a program of its own (adversary.c), finds
 * no network device and reaches no address outside; reaches neither the host nor
 * another sandbox over vsock (whatever the CID or port); sees none of the host's files,
 * not the daemon's socket; a flood of vsock connections leaves its VMM with the fds it
 * had; a fork bomb and a disk it overfills stay inside its VM (the image on the host
 * keeps its size). The daemon, another sandbox and the guest's own agent keep answering.
 */
Test(daemon, a_hostile_guest_is_contained)
{
	const char *a = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
			       "\"memory_mib\": 128, \"workspace\": {\"size_mib\": 16, "
			       "\"persist\": false}}",
			       0);
	const char *b = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
			       "\"memory_mib\": 128}",
			       1);
	char marker[256], line[600], disk[256];
	json_t *sa = get_sandbox(a);
	pid_t vmm = (pid_t)json_integer_value(json_object_get(sa, "vmm_pid"));
	struct api_response r;
	struct stat st;
	int fds;
	FILE *f;

	json_decref(sa);
	cr_assert_gt(vmm, 0);
	snprintf(marker, sizeof(marker), "%s/host-secret", D.dir);
	f = fopen(marker, "w");
	cr_assert_not_null(f);
	fputs("the host's\n", f);
	fclose(f);
	cr_assert_str_eq(guest_sh(a, "ls /sys/class/net", 60000), "lo\n", "no network device");
	snprintf(line, sizeof(line), "test -e %s && echo seen || echo unseen", marker);
	cr_assert_str_eq(guest_sh(a, line, 60000), "unseen\n", "a host file");
	snprintf(line, sizeof(line), "test -e %s && echo seen || echo unseen", D.sock);
	cr_assert_str_eq(guest_sh(a, line, 60000), "unseen\n", "the daemon's socket");

	/* its own program: no address outside, no vsock peer but its own agent */
	upload(a, env_or("NUCLEUS_ADVERSARY", ""), "/tmp/adversary");
	cr_assert_str_eq(guest_sh(a, "/tmp/adversary net 2>&1", 600000), "net: none reached\n");
	cr_assert_str_eq(guest_sh(a, "/tmp/adversary vsock 2>&1", 600000), "vsock: none reached\n");
	/* a flood of connections: refused, and its VMM holds what it held before */
	fds = fd_count(vmm);
	cr_assert_str_eq(guest_sh(a, "/tmp/adversary flood 1000 2>&1", 600000),
			 "flood: 1000 tried, 0 connected\n");
	for (int i = 0; i < 300 && fd_count(vmm) != fds; i++)
		sleep_ms(100);
	cr_assert_eq(fd_count(vmm), fds, "the VMM had %d fds before the flood", fds);
	expect_run(a, "{\"argv\": [\"echo\", \"agent\"]}", "agent\n");

	/* a fork bomb: the guest's processes and memory, not the host's */
	r = tool(a, "run",
		 "{\"argv\": [\"sh\", \"-c\", \"b() { b | b & }; b\"], \"timeout_ms\": 20000}");
	api_response__clear(&r); /* whatever became of it in there */
	r = call("GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	expect_run(b, "{\"argv\": [\"echo\", \"alive\"]}", "alive\n");
	cr_assert_lt(fd_count(vmm), fds + 16, "the VMM's fds grew from %d", fds);

	/* a disk filled from inside keeps its size on the host */
	sa = get_sandbox(a);
	if (strcmp(jstr(sa, "state"), "running") == 0) {
		snprintf(disk, sizeof(disk), "%s/vms/%s/workspace.ext4", D.data, a);
		r = tool(a, "run",
			 "{\"argv\": [\"sh\", \"-c\", \"dd if=/dev/zero of=/workspace/fill bs=1M "
			 "count=64; sync\"], \"timeout_ms\": 300000}");
		api_response__clear(&r);
		cr_assert_eq(stat(disk, &st), 0, "%s", disk);
		cr_assert_eq(st.st_size, 16LL << 20, "the disk image grew to %lld",
			     (long long)st.st_size);
	} else {
		/* the bomb took the guest down (its agent starved): its VM only */
		cr_log_warn("the fork bomb ended sandbox %s: %s", a, jstr(sa, "reason"));
		cr_assert_str_eq(jstr(sa, "state"), "failed");
	}
	json_decref(sa);
	expect_run(b, "{\"argv\": [\"echo\", \"still\"]}", "still\n");
	/* both end with the test: no VM is left to the next one */
	for (int i = 0; i < 2; i++) {
		snprintf(line, sizeof(line), "/v1/sandboxes/%s", i ? b : a);
		r = call("DELETE", line, NULL);
		cr_assert_eq(r.status, 200, "delete: %d %s", r.status, r.body);
		api_response__clear(&r);
	}
	nd_term();
}

/*
 * Seccomp end to end (#14): the daemon runs nucleus-vmm-trigger (the VMM built with the
 * test trigger); the guest of one sandbox writes 0x5c to the status register, the vCPU
 * thread makes a forbidden call, the kernel kills the VMM; that sandbox is failed with
 * reason "seccomp: ..." and the other keeps running, its guest answering.
 */
/* The trigger in @id's guest (nt-status uploaded): its VMM dies of seccomp, the sandbox
 * is failed with a reason starting "seccomp", which is returned (static). */
static const char *trigger_seccomp(const char *id)
{
	static char reason[256];
	struct api_response r;
	json_t *s = NULL;

	r = tool(id, "run", "{\"argv\": [\"/tmp/nt-status\", \"0x5c\"], \"timeout_ms\": 60000}");
	cr_assert_neq(r.status, 200, "the VMM survived the trigger: %s", r.body);
	api_response__clear(&r);
	for (int i = 0; i < HANG_S * 10; i++) {
		json_decref(s);
		s = get_sandbox(id);
		if (strcmp(jstr(s, "state"), "running") != 0)
			break;
		sleep_ms(100);
	}
	cr_assert_str_eq(jstr(s, "state"), "failed");
	snprintf(reason, sizeof(reason), "%s", jstr(s, "reason"));
	json_decref(s);
	cr_assert_eq(strncmp(reason, "seccomp", 7), 0, "reason: %s", reason);
	return reason;
}

Test(daemon, a_seccomp_kill_fails_only_its_sandbox)
{
	const char *a, *b;
	struct api_response r;

	nd_term();
	D.vmm = env_or("NUCLEUS_VMM_TRIGGER", "");
	nd_spawn();
	a = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, \"memory_mib\": 128}", 0);
	b = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, \"memory_mib\": 128}", 1);
	upload(a, env_or("NUCLEUS_NT_STATUS", ""), "/tmp/nt-status");
	trigger_seccomp(a);
	r = call("GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	expect_run(b, "{\"argv\": [\"echo\", \"unharmed\"]}", "unharmed\n");
	/* adopted after a restart (nobody's child: no exit status), the kernel's audit
	 * record names the seccomp kill */
	upload(b, env_or("NUCLEUS_NT_STATUS", ""), "/tmp/nt-status");
	nd_term();
	nd_spawn();
	cr_assert_not_null(strstr(trigger_seccomp(b), "adopted"), "not the adopted VMM's reason");
	nd_term();
}

Test(daemon, killed_vmm_fails_only_its_sandbox)
{
	const char *a = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
			       "\"memory_mib\": 128}",
			       0);
	const char *b = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
			       "\"memory_mib\": 128}",
			       1);
	json_t *sa = get_sandbox(a), *s = NULL;
	pid_t pid = (pid_t)json_integer_value(json_object_get(sa, "vmm_pid"));
	struct api_response r;
	int i;

	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	for (i = 0; i < HANG_S * 10; i++) {
		json_decref(s);
		s = get_sandbox(a);
		if (strcmp(jstr(s, "state"), "failed") == 0)
			break;
		sleep_ms(100);
	}
	cr_assert_str_eq(jstr(s, "state"), "failed");
	cr_assert_not_null(strstr(jstr(s, "reason"), "signal 9"), "reason: %s", jstr(s, "reason"));
	json_decref(s);
	json_decref(sa);

	r = call("GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	r = tool(a, "run", "{\"argv\": [\"true\"]}");
	cr_assert_eq(r.status, 409, "%d %s", r.status, r.body);
	api_response__clear(&r);
	expect_run(b, "{\"argv\": [\"echo\", \"still here\"]}", "still here\n");

	/* A daemon restart re-adopts the VM that still runs; the dead one stays failed. */
	nd_term();
	nd_spawn();
	s = get_sandbox(b);
	cr_assert_str_eq(jstr(s, "state"), "running", "after restart: %s %s", jstr(s, "state"),
			 jstr(s, "reason"));
	json_decref(s);
	s = get_sandbox(a);
	cr_assert_str_eq(jstr(s, "state"), "failed");
	json_decref(s);
	expect_run(b, "{\"argv\": [\"echo\", \"adopted\"]}", "adopted\n");
	{
		char path[96];

		snprintf(path, sizeof(path), "/v1/sandboxes/%s", b);
		r = call("DELETE", path, NULL);
		cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
		api_response__clear(&r);
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit/verify", b);
		r = call("GET", path, NULL);
		cr_assert_eq(r.status, 200);
		api_response__clear(&r);
	}
	nd_term();
}

/*
 * Budgets on a real VM: a CPU-burning command runs until the meter sees the
 * VMM's host CPU pass the sandbox's cpu_ms limit and pauses the VM. The meter samples
 * every 250 ms (and on each call), so the overshoot is what the VMM burnt in one sample
 * interval: at most (vcpus + 1 VMM thread) x 250 ms; we allow 8 intervals of that
 * (4000 ms with 1 vCPU) because under nested emulation the daemon's own tick runs 30-80x
 * slower and fires late. The limit is well above what the boot burns (checked before
 * the command starts); the spinning vCPU reaches it in about limit ms of wall time.
 */
#define VM_CPU_LIMIT	 60000
#define VM_CPU_TOLERANCE (8 * 2 * 250)

static long long vm_budget(const char *id, const char *kind, const char *field)
{
	char path[96];
	struct api_response r;
	long long n;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/budget", id);
	r = call("GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	n = th_budget_field(r.json, kind, field);
	api_response__clear(&r);
	return n;
}

Test(daemon, cpu_budget_pauses_a_burning_vm)
{
	const char *id = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, "
				"\"memory_mib\": 128, \"budget\": {\"cpu_ms\": 60000}}",
				0);
	struct api_response r;
	char path[96];
	long long spent;
	json_t *s = NULL;
	pid_t burner;
	int i, st;

	/* Wait for the first meter sample (the boot's CPU is charged from the VMM's start). */
	for (i = 0; i < HANG_S * 10 && vm_budget(id, "mem_peak_mib", "spent") <= 0; i++)
		sleep_ms(100);
	cr_assert_gt(vm_budget(id, "mem_peak_mib", "spent"), 0, "RSS is metered");
	spent = vm_budget(id, "cpu_ms", "spent");
	cr_assert_gt(spent, 0, "the boot's CPU is metered");
	cr_assert_lt(spent, VM_CPU_LIMIT / 2, "the boot alone spent %lld ms", spent);
	/* The burning command's call does not return while the VM is paused: a child makes it. */
	burner = fork();
	cr_assert_geq(burner, 0);
	if (burner == 0) {
		struct api_response rr = tool(id, "run",
					      "{\"argv\": [\"sh\", \"-c\", \"while :; do :; "
					      "done\"]}");

		api_response__clear(&rr);
		_exit(0);
	}
	for (i = 0; i < HANG_S * 10; i++) {
		json_decref(s);
		s = get_sandbox(id);
		if (strcmp(jstr(s, "state"), "running") != 0)
			break;
		sleep_ms(100);
	}
	cr_assert_str_eq(jstr(s, "state"), "paused", "reason: %s", jstr(s, "reason"));
	cr_assert_str_eq(jstr(s, "reason"), "budget:cpu_ms");
	json_decref(s);
	spent = vm_budget(id, "cpu_ms", "spent");
	cr_assert_geq(spent, VM_CPU_LIMIT);
	cr_assert_leq(spent, VM_CPU_LIMIT + VM_CPU_TOLERANCE, "spent %lld ms", spent);
	cr_log_info("cpu_ms limit %d, spent when paused %lld (tolerance %d)", VM_CPU_LIMIT, spent,
		    VM_CPU_TOLERANCE);
	cr_assert_eq(vm_budget(id, "cpu_ms", "exhausted"), 1);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/resume", id);
	r = call("POST", path, NULL);
	cr_assert_eq(r.status, 402, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "budget"), "cpu_ms");
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = call("DELETE", path, NULL);
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	api_response__clear(&r);
	waitpid(burner, &st, 0);
	nd_term();
}

/*
 * Images: DATA/images/NAME/initramfs.cpio.gz (here the default one plus a second cpio
 * member with a marker file) boots for "image": "NAME"; an unknown name is a 400 and
 * records nothing. The sandbox's env reaches every run in the real guest.
 */
Test(daemon, custom_image_and_sandbox_env)
{
	char cmd[1024], dir[160];
	struct api_response r;
	const char *id, *initrd = getenv("NUCLEUS_INITRD");
	size_t before;

	cr_assert(initrd && *initrd, "NUCLEUS_INITRD is not set (run through meson test)");
	snprintf(dir, sizeof(dir), "%s/images/custom", D.data);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p '%s' '%s/m/etc'; echo custom > '%s/m/etc/nucleus-image'; "
		 "cd '%s/m'; (echo etc; echo etc/nucleus-image) | cpio -o -H newc 2>/dev/null | "
		 "gzip > ../marker.gz; cat '%s' ../marker.gz > '%s/initramfs.cpio.gz'",
		 dir, D.dir, D.dir, D.dir, initrd, dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);

	r = call("GET", "/v1/sandboxes?all=true", NULL);
	cr_assert_eq(r.status, 200);
	cr_assert(json_is_array(json_object_get(r.json, "sandboxes")), "%s", r.body);
	before = json_array_size(json_object_get(r.json, "sandboxes"));
	api_response__clear(&r);
	r = call("POST", "/v1/sandboxes",
		 "{\"profile\": \"permissive-local\", \"vcpus\": 1, \"memory_mib\": 128, "
		 "\"image\": \"nope\"}");
	cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "bad_image");
	api_response__clear(&r);
	r = call("POST", "/v1/sandboxes",
		 "{\"profile\": \"permissive-local\", \"vcpus\": 1, \"memory_mib\": 128, "
		 "\"image\": \"../x\"}");
	cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
	api_response__clear(&r);
	r = call("GET", "/v1/sandboxes?all=true", NULL);
	cr_assert_eq(json_array_size(json_object_get(r.json, "sandboxes")), before,
		     "a refused create left a sandbox behind: %s", r.body);
	api_response__clear(&r);

	id = create("{\"profile\": \"permissive-local\", \"vcpus\": 1, \"memory_mib\": 128, "
		    "\"image\": \"custom\", \"env\": {\"GREETING\": \"hello from env\"}}",
		    2);
	expect_run(id, "{\"argv\": [\"cat\", \"/etc/nucleus-image\"]}", "custom\n");
	expect_run(id, "{\"argv\": [\"sh\", \"-c\", \"echo $GREETING\"]}", "hello from env\n");
	nd_term();
}
