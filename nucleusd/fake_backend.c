// SPDX-License-Identifier: Apache-2.0
/*
 * Backends that are NOT the product:
 *
 *  fake  for tests and `nucleusd --fake-backend`: no VMs at all. Completions come
 *        from the event loop (like the real backend's), boot_ms is the time until
 *        then. Policy is the daemon's, as with every backend: profiles from its one
 *        registry (nucleusd/profiles.c: the engine's built-ins, default, fake-open,
 *        fake-strict, fake-budget) or an inline engine policy, every call decided by
 *        the policy engine (nucleusd/decide.c) with the daemon's approver keys, before
 *        this backend sees it. The fake's own tools are not operations of the engine:
 *        it declares them (own_tools) and the daemon decides each as `run` of a command
 *        named after the tool (argv [TOOL]), so `levels.run` and `commands` govern them.
 *        Tools: echo (returns its args), slow (echo after args.ms, at most 10 s),
 *        fail (fails), hang (never completes),
 *        crash (the "VMM" dies: the sandbox becomes failed),
 *        run ({out: [[fd, text]...], repeat?, ms?, exit_code?, signal?}: the output
 *        pieces, repeated, one every ms; whole or streamed; without out, {argv} works
 *        as out: each argv[1..] is a line on stdout, "err:TEXT" on stderr, and
 *        "exit:N" / "sig:N" set the status). Every other engine operation (read_file,
 *        write_file, web_fetch, ...) completes like echo with {fake, op, args}, no work
 *        done, except that write_file keeps a UTF-8 content in memory and read_file of
 *        that path answers it as the guest agent would ({path, size, content,
 *        encoding}): a repository's .git/config for remote names, say. Image names follow the vmm backend's rule (nd_image__check: a path
 *        is 400 bad_image); any well-formed one boots, except: "fake:fail"
 *        fails the boot, "fake:hang" never finishes booting, "fake:burn" boots a real
 *        "VMM" process (a child of the daemon spinning on one CPU; its pid is the
 *        sandbox's vmm_pid, pause/resume are SIGSTOP/SIGCONT, stop kills it) so the
 *        budget meter has something to measure.
 *        Cannot re-adopt anything after a restart (its VMs lived in the old process).
 *  none  refuses every boot (-EAGAIN): unit tests of the seam and of restart recovery.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "nucleusd/clock.h"
#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

struct fake_vm {
	struct fake_vm *next;
	char id[20];
	bool paused;
	pid_t pid;     /* fake:burn: the spinning child, else 0 */
	json_t *files; /* path -> content of what write_file wrote (read_file reads it) */
};

struct fake_call {
	struct fake_call *next;
	struct fake *f;
	struct event *ev;
	char id[20];
	int err;
	json_t *result;
	char reason[128];
	int64_t start_us; /* nd_clock__mono_us() */
	nd_boot_done_fn boot_done;
	nd_tool_done_fn tool_done;
	void *token;
	/* run, streamed: piece idx of total, one every ms; paused while the consumer is full */
	nd_chunk_fn chunk;
	json_t *out;
	size_t idx, total;
	long ms;
	bool paused;
	bool burn; /* boot of fake:burn */
};

struct fake {
	struct event_base *base;
	struct nucleusd *nd;
	struct fake_vm *vms;
	struct fake_call *calls; /* scheduled or hanging */
};

/* The fake's tools that are not engine operations (decided as `run` of argv [TOOL]). */
static const char *const fake_tools[] = {"echo", "slow", "fail", "hang", "crash", NULL};

static struct fake_vm *vm_find(struct fake *f, const char *id)
{
	for (struct fake_vm *v = f->vms; v; v = v->next)
		if (strcmp(v->id, id) == 0)
			return v;
	return NULL;
}

/* fake:burn: a child spinning on one CPU, killed with the daemon (PDEATHSIG). */
static pid_t burner_start(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	/* Hold none of the daemon's files (socket, data-dir lock, database). */
	for (int fd = 0; fd < 4096; fd++)
		close(fd);
	for (volatile unsigned long n = 0;; n++)
		;
}

static void vm_remove(struct fake *f, const char *id)
{
	for (struct fake_vm **pp = &f->vms; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			struct fake_vm *v = *pp;

			*pp = v->next;
			if (v->pid > 0) {
				kill(v->pid, SIGKILL);
				waitpid(v->pid, NULL, 0);
			}
			json_decref(v->files);
			free(v);
			return;
		}
	}
}

static void call_unlink(struct fake_call *c)
{
	for (struct fake_call **pp = &c->f->calls; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->ev)
		event_free(c->ev);
	json_decref(c->result);
	json_decref(c->out);
	free(c);
}

/* Streamed run: delivers the next piece; false once all went out (then it completes). */
static bool stream_next(struct fake_call *c)
{
	json_t *piece;
	const char *text;

	if (c->idx >= c->total)
		return false;
	piece = json_array_get(c->out, c->idx % json_array_size(c->out));
	text = json_string_value(json_array_get(piece, 1));
	c->idx++;
	if (c->chunk(c->token, (int)json_integer_value(json_array_get(piece, 0)), text,
		     strlen(text)) == ND_STREAM_FULL)
		c->paused = true;
	else
		event_add(c->ev, &(struct timeval){c->ms / 1000, (c->ms % 1000) * 1000});
	return true;
}

static void call_fire(evutil_socket_t fd, short what, void *arg)
{
	struct fake_call *c = arg;
	struct fake *f = c->f;

	if (c->chunk && stream_next(c))
		return;

	if (c->boot_done) {
		struct nd_boot_result res = {
			.boot_ms = (uint32_t)((nd_clock__mono_us() - c->start_us) / 1000),
			.vmm_pid = 0};
		struct fake_vm *v = NULL;

		if (c->err == 0) {
			v = calloc(1, sizeof(*v));
			if (!v) {
				c->err = -ENOMEM;
				snprintf(c->reason, sizeof(c->reason), "out of memory");
			}
		}
		if (v && c->burn) {
			v->pid = burner_start();
			if (v->pid < 0) {
				c->err = v->pid;
				snprintf(c->reason, sizeof(c->reason), "cannot fork the fake VMM");
				free(v);
				v = NULL;
			}
			res.vmm_pid = v ? v->pid : 0;
		}
		if (v) {
			snprintf(v->id, sizeof(v->id), "%s", c->id);
			v->next = f->vms;
			f->vms = v;
		}
		c->boot_done(c->token, c->err, c->err ? NULL : &res, c->reason);
	} else {
		c->tool_done(c->token, c->err, c->result, c->reason);
	}
	call_unlink(c);
}

/* Schedules a completion from the event loop after @ms; @hang keeps it pending forever. */
static struct fake_call *call_new(struct fake *f, const char *id, bool hang, long ms)
{
	struct fake_call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->f = f;
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->start_us = nd_clock__mono_us();
	if (!hang) {
		c->ev = evtimer_new(f->base, call_fire, c);
		if (!c->ev ||
		    event_add(c->ev, &(struct timeval){ms / 1000, (ms % 1000) * 1000}) < 0) {
			if (c->ev)
				event_free(c->ev);
			free(c);
			return NULL;
		}
	}
	c->next = f->calls;
	f->calls = c;
	return c;
}

static void fake_attach(void *ctx, struct event_base *base, struct nucleusd *nd)
{
	struct fake *f = ctx;

	f->base = base;
	f->nd = nd;
}

static int fake_boot(void *ctx, const struct nd_sandbox_info *sb, nd_boot_done_fn done, void *token,
		     struct nd_err *e)
{
	const char *image = json_string_value(json_object_get(sb->spec, "image"));
	struct fake *f = ctx;
	struct fake_call *c;

	if (!f->base)
		return nd_err__set(e, -EINVAL, "internal", "fake backend not attached");
	c = call_new(f, sb->id, image && strcmp(image, "fake:hang") == 0, 0);
	if (!c)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	c->boot_done = done;
	c->token = token;
	c->burn = image && strcmp(image, "fake:burn") == 0;
	if (image && strcmp(image, "fake:fail") == 0) {
		c->err = -EIO;
		snprintf(c->reason, sizeof(c->reason), "fake image refuses to boot");
	}
	return 0;
}

static int fake_stop(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	struct fake *f = ctx;

	if (!vm_find(f, sb->id))
		return nd_err__set(e, -ESRCH, "backend_error", "fake VM %s is not running", sb->id);
	vm_remove(f, sb->id);
	return 0;
}

static int fake_set_paused(struct fake *f, const char *id, bool paused, struct nd_err *e)
{
	struct fake_vm *v = vm_find(f, id);

	if (!v)
		return nd_err__set(e, -ESRCH, "backend_error", "fake VM %s is not running", id);
	if (v->pid > 0 && kill(v->pid, paused ? SIGSTOP : SIGCONT) < 0)
		return nd_err__set(e, -errno, "backend_error", "cannot signal fake VMM %d",
				   (int)v->pid);
	v->paused = paused;
	return 0;
}

static int fake_pause(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return fake_set_paused(ctx, sb->id, true, e);
}

static int fake_resume(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return fake_set_paused(ctx, sb->id, false, e);
}

static int fake_adopt(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return nd_err__set(e, -ESRCH, "backend_error",
			   "fake backend cannot re-adopt: its VMs lived in the old process");
}

static int run_start(struct fake *f, const struct nd_sandbox_info *sb, json_t *args,
		     nd_chunk_fn chunk, nd_tool_done_fn done, void *token, struct nd_err *e);

/*
 * write_file keeps the content it was given (UTF-8 ones) and read_file of such a path
 * returns it as the guest agent would; NULL: neither (the fake answer).
 */
static json_t *file_op(struct fake_vm *v, const char *tool, json_t *args)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	json_t *content = json_object_get(args, "content"), *kept;
	const char *enc = json_string_value(json_object_get(args, "encoding"));

	if (!path)
		return NULL;
	if (strcmp(tool, "write_file") == 0 && json_is_string(content) &&
	    (!enc || strcmp(enc, "utf-8") == 0)) {
		if (!v->files)
			v->files = json_object();
		if (v->files)
			json_object_set(v->files, path, content);
		return NULL;
	}
	kept = strcmp(tool, "read_file") == 0 ? json_object_get(v->files, path) : NULL;
	if (!kept)
		return NULL;
	return json_pack("{ss sI sO ss}", "path", path, "size",
			 (json_int_t)json_string_length(kept), "content", kept, "encoding",
			 "utf-8");
}

static int fake_tool(void *ctx, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		     nd_tool_done_fn done, void *token, struct nd_err *e)
{
	struct fake *f = ctx;
	struct fake_vm *v = vm_find(f, sb->id);
	struct fake_call *c;
	bool hang = strcmp(tool, "hang") == 0, slow = strcmp(tool, "slow") == 0;
	json_int_t ms = slow ? json_integer_value(json_object_get(args, "ms")) : 0;
	/* Another operation of the policy engine: answered, no work. */
	bool op = policy__op_from_name(tool) >= 0;

	if (strcmp(tool, "run") == 0)
		return run_start(f, sb, args, NULL, done, token, e);
	if (strcmp(tool, "echo") && strcmp(tool, "fail") && !hang && !slow &&
	    strcmp(tool, "crash") && !op)
		return nd_err__set(e, -ENOENT, "unknown_tool", "no tool '%s'", tool);
	if (!v || v->paused)
		return nd_err__set(e, -EHOSTDOWN, "backend_error", "fake VM %s is not running",
				   sb->id);
	c = call_new(f, sb->id, hang, ms < 0 ? 0 : ms > 10000 ? 10000 : (long)ms);
	if (!c)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	c->tool_done = done;
	c->token = token;
	if (strcmp(tool, "echo") == 0 || slow) {
		c->result = json_pack("{sO}", "echo", args ? args : json_null());
	} else if (op) {
		c->result = file_op(v, tool, args);
		if (!c->result)
			c->result = json_pack("{sb ss sO}", "fake", 1, "op", tool, "args",
					      args ? args : json_null());
	} else if (strcmp(tool, "fail") == 0) {
		c->err = -EIO;
		snprintf(c->reason, sizeof(c->reason), "the fake tool failed");
	} else if (strcmp(tool, "crash") == 0) {
		vm_remove(f, sb->id);
		nucleusd__sandbox_failed(f->nd, sb->id, "fake VMM exited (crash tool)");
		c->err = -EHOSTDOWN;
		snprintf(c->reason, sizeof(c->reason), "the VM died");
	}
	return 0;
}

/* The pieces of a fake run: [[1|2, text]...], checked; the whole-output result when !stream. */
/* {argv: [prog, "text" | "err:text" | "exit:N" | "sig:N"...]} as fake run arguments. */
static json_t *argv_args(json_t *args)
{
	json_t *argv = json_object_get(args, "argv"), *out = json_array(), *o, *v;
	json_int_t code = 0, sig = 0;
	size_t i;

	json_array_foreach(argv, i, v)
	{
		const char *a = json_string_value(v);
		char *line;

		if (i == 0 || !a)
			continue;
		if (strncmp(a, "exit:", 5) == 0) {
			code = atoi(a + 5);
			continue;
		}
		if (strncmp(a, "sig:", 4) == 0) {
			sig = atoi(a + 4);
			continue;
		}
		if (asprintf(&line, "%s\n", strncmp(a, "err:", 4) == 0 ? a + 4 : a) < 0)
			continue;
		json_array_append_new(out,
				      json_pack("[is]", strncmp(a, "err:", 4) == 0 ? 2 : 1, line));
		free(line);
	}
	if (json_array_size(out) == 0)
		json_array_append_new(out, json_pack("[is]", 1, ""));
	o = json_pack("{so sI sI sO?}", "out", out, "exit_code", code, "signal", sig, "ms",
		      json_object_get(args, "ms"));
	return o;
}

static int run_setup(struct fake_call *c, json_t *args, bool stream, struct nd_err *e)
{
	json_t *out = json_object_get(args, "out"), *piece;
	json_int_t repeat = json_integer_value(json_object_get(args, "repeat"));
	size_t i;
	char *acc[2] = {NULL, NULL};
	size_t len[2] = {0, 0};
	int r = 0;

	if (!json_is_array(out) || json_array_size(out) == 0)
		return nd_err__set(e, -EINVAL, "bad_value",
				   "fake run: 'out' must be a non-empty "
				   "array of [fd, text]");
	json_array_foreach(out, i, piece)
	{
		json_int_t fd = json_integer_value(json_array_get(piece, 0));

		if ((fd != 1 && fd != 2) || !json_is_string(json_array_get(piece, 1)))
			return nd_err__set(e, -EINVAL, "bad_value", "fake run: bad piece %zu", i);
	}
	c->total = json_array_size(out) * (size_t)(repeat < 1	     ? 1
						   : repeat > 100000 ? 100000
								     : repeat);
	c->result = json_pack("{sI sI sb}", "exit_code",
			      json_integer_value(json_object_get(args, "exit_code")), "signal",
			      json_integer_value(json_object_get(args, "signal")), "timed_out", 0);
	if (!c->result)
		return -ENOMEM;
	if (stream) {
		c->out = json_incref(out);
		return 0;
	}
	for (size_t k = 0; k < c->total && r == 0; k++) {
		json_t *p = json_array_get(out, k % json_array_size(out));
		int fd = (int)json_integer_value(json_array_get(p, 0)) - 1;
		size_t n = json_string_length(json_array_get(p, 1));
		char *m = realloc(acc[fd], len[fd] + n + 1);

		if (!m) {
			r = -ENOMEM;
			break;
		}
		memcpy(m + len[fd], json_string_value(json_array_get(p, 1)), n);
		len[fd] += n;
		m[len[fd]] = '\0';
		acc[fd] = m;
	}
	if (r == 0) {
		json_object_set_new(c->result, "stdout",
				    json_stringn(acc[0] ? acc[0] : "", len[0]));
		json_object_set_new(c->result, "stderr",
				    json_stringn(acc[1] ? acc[1] : "", len[1]));
	}
	free(acc[0]);
	free(acc[1]);
	return r;
}

static int run_start(struct fake *f, const struct nd_sandbox_info *sb, json_t *args,
		     nd_chunk_fn chunk, nd_tool_done_fn done, void *token, struct nd_err *e)
{
	struct fake_vm *v = vm_find(f, sb->id);
	json_int_t ms = json_integer_value(json_object_get(args, "ms"));
	struct fake_call *c;
	int r;

	if (!v || v->paused)
		return nd_err__set(e, -EHOSTDOWN, "backend_error", "fake VM %s is not running",
				   sb->id);
	ms = ms < 0 ? 0 : ms > 1000 ? 1000 : ms;
	c = call_new(f, sb->id, false, (long)ms);
	if (!c)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	c->ms = (long)ms;
	c->chunk = chunk;
	c->tool_done = done;
	c->token = token;
	if (!json_object_get(args, "out") && json_is_array(json_object_get(args, "argv"))) {
		json_t *a = argv_args(args);

		r = a ? run_setup(c, a, chunk != NULL, e) : -ENOMEM;
		json_decref(a);
	} else {
		r = run_setup(c, args, chunk != NULL, e);
	}
	if (r == 0) { /* the result shows the environment a real run would get */
		json_t *env = NULL;

		r = nd_env__merge(sb->spec, args, &env, e);
		if (env)
			json_object_set_new(c->result, "env", env);
	}
	if (r < 0) {
		call_unlink(c);
		if (e && !e->code[0])
			nd_err__set(e, r, "internal", "out of memory");
	}
	return r;
}

static int fake_tool_stream(void *ctx, const struct nd_sandbox_info *sb, const char *tool,
			    json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
			    struct nd_err *e)
{
	if (strcmp(tool, "run") != 0)
		return nd_err__set(e, -EINVAL, "bad_value", "only 'run' streams");
	return run_start(ctx, sb, args, chunk, done, token, e);
}

static void fake_stream_resume(void *ctx, void *token)
{
	struct fake *f = ctx;

	for (struct fake_call *c = f->calls; c; c = c->next) {
		if (c->token == token && c->paused) {
			c->paused = false;
			event_add(c->ev, &(struct timeval){0, 0});
		}
	}
}

static void fake_free(void *ctx)
{
	struct fake *f = ctx;

	if (!f)
		return;
	while (f->calls)
		call_unlink(f->calls); /* completions are dropped: the daemon is going away */
	while (f->vms)
		vm_remove(f, f->vms->id);
	free(f);
}

/* Any well-formed image name boots (its own "fake:*" ones as they say): one rule. */
static int fake_spec_check(void *ctx, json_t *spec, struct nd_err *e)
{
	return nd_image__check(json_string_value(json_object_get(spec, "image")), e);
}

static const struct nd_backend fake_backend = {
	.name = "fake",
	.real = false,
	.attach = fake_attach,
	.boot = fake_boot,
	.stop = fake_stop,
	.pause = fake_pause,
	.resume = fake_resume,
	.adopt = fake_adopt,
	.tool = fake_tool,
	.tool_stream = fake_tool_stream,
	.stream_resume = fake_stream_resume,
	.spec_check = fake_spec_check,
	.free = fake_free,
	.own_tools = fake_tools,
};

int nd_fake_backend__new(struct nd_backend **ret)
{
	struct nd_backend *be = calloc(1, sizeof(*be));
	struct fake *f;

	if (!be)
		return -ENOMEM;
	f = calloc(1, sizeof(struct fake));
	if (!f) {
		free(be);
		return -ENOMEM;
	}
	*be = fake_backend;
	be->ctx = f;
	*ret = be;
	return 0;
}

static int none_adopt(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return nd_err__set(e, -EAGAIN, "backend_unavailable", "no VMM backend in this build");
}

static const struct nd_backend none_backend = {
	.name = "none",
	.real = false,
	.adopt = none_adopt,
};

int nd_none_backend__new(struct nd_backend **ret)
{
	struct nd_backend *be = calloc(1, sizeof(*be));

	if (!be)
		return -ENOMEM;
	*be = none_backend;
	*ret = be;
	return 0;
}

void nd_backend__free(struct nd_backend *be)
{
	if (!be)
		return;
	if (be->free)
		be->free(be->ctx);
	free(be);
}
