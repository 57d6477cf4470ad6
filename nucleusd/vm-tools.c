// SPDX-License-Identifier: Apache-2.0
/*
 * The guest side of the catalogue's tools for the vmm backend (internals:
 * nucleusd/backend-vm.h; the catalogue: nucleusd/tools.c): read_file, write_file, list
 * and run, whole or with its output streamed, each a job on the pool.
 *
 * Threads: work_* and the stream's producer side (stream_put) run on a worker; the
 * consumer side (stream_deliver, on_stream), finish_* and vm_tools__start on the loop.
 * A streamed run's output goes through a queue of at most STREAM_MAX bytes (its lock and
 * condvar): the worker waits while it is full, so a slow consumer back-pressures the
 * guest read; an eventfd tells the loop that pieces are queued.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <sodium.h>

#include "guest/guest.h"
#include "nucleusd/backend-vm.h"
#include "policy/policy.h"

#define STREAM_MAX (256u << 10) /* run, streamed: output queued for the loop */

static json_t *bytes_json(const void *data, size_t len, bool *ret_b64)
{
	json_t *s = json_stringn(data, len); /* NULL unless valid UTF-8 */
	size_t n;
	char *b;

	*ret_b64 = false;
	if (s && !memchr(data, 0, len))
		return s;
	json_decref(s);
	n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	b = malloc(n);
	if (!b)
		return NULL;
	sodium_bin2base64(b, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	s = json_string(b);
	free(b);
	*ret_b64 = true;
	return s;
}

static void stream_free(struct vmb_stream *st)
{
	if (!st)
		return;
	while (st->head) {
		struct piece *p = st->head;

		st->head = p->next;
		free(p);
	}
	if (st->ev)
		event_free(st->ev);
	if (st->efd >= 0)
		close(st->efd);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void stream_wake(struct vmb_stream *st)
{
	pthread_mutex_lock(&st->lock);
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void stream_release(struct vmb_job *j)
{
	stream_free(j->st);
	j->st = NULL;
}

static void stream_unblock(struct vmb_job *j)
{
	stream_wake(j->st);
}

static void work_read(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	void *data = NULL;
	size_t len = 0;
	bool b64;
	json_t *c;

	j->err = guest__read_file_all(j->vm->g, path, j->t->result_max, &data, &len);
	if (j->err < 0) {
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-j->err));
		return;
	}
	c = bytes_json(data, len, &b64);
	free(data);
	j->result = c ? json_pack("{ss sI so ss}", "path", path, "size", (json_int_t)len, "content",
				  c, "encoding", b64 ? "base64" : "utf-8")
		      : NULL;
	if (!j->result)
		j->err = -ENOMEM;
}

static void work_write(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	const char *content = json_string_value(json_object_get(j->args, "content"));
	const char *enc = json_string_value(json_object_get(j->args, "encoding"));
	json_t *m = json_object_get(j->args, "mode");
	size_t len = json_string_length(json_object_get(j->args, "content")), n = 0;
	unsigned char *bin = NULL;
	const void *data = content;

	if (enc && strcmp(enc, "base64") == 0) {
		bin = malloc(len + 1);
		if (!bin || sodium_base642bin(bin, len + 1, content, len, " \n\r", &n, NULL,
					      sodium_base64_VARIANT_ORIGINAL) < 0) {
			j->err = bin ? -EINVAL : -ENOMEM;
			snprintf(j->reason, sizeof(j->reason), "content is not valid base64");
			free(bin);
			return;
		}
		data = bin;
		len = n;
	}
	j->err = guest__write_file(j->vm->g, path, m ? (uint32_t)json_integer_value(m) : 0644, data,
				   len);
	free(bin);
	if (j->err < 0) {
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-j->err));
		return;
	}
	j->result = json_pack("{ss sI}", "path", path, "size", (json_int_t)len);
	if (!j->result)
		j->err = -ENOMEM;
}

static const char *ftype_name(uint32_t t)
{
	static const char *const names[] = {"unknown", "file",	"dir",	"symlink",
					    "char",    "block", "fifo", "socket"};

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static int list_cb(void *opaque, const char *name, const struct guest_stat *st)
{
	json_t *o = json_pack("{ss ss sI sI sI}", "name", name, "type", ftype_name(st->ftype),
			      "mode", (json_int_t)st->mode, "size", (json_int_t)st->size,
			      "mtime_ns", (json_int_t)st->mtime_ns);

	if (!o || json_array_append_new(opaque, o) < 0)
		return -ENOMEM;
	return 0;
}

static void work_list(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	json_t *arr = json_array();
	int r;

	r = arr ? guest__list(j->vm->g, path, list_cb, arr) : -ENOMEM;
	if (r < 0) {
		json_decref(arr);
		j->err = r;
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-r));
		return;
	}
	j->result = json_pack("{ss so}", "path", path, "entries", arr);
	if (!j->result)
		j->err = -ENOMEM;
}

struct outbuf {
	char *data;
	size_t len, max;
	bool truncated;
};

static int out_add(struct outbuf *o, const void *data, size_t len)
{
	size_t n = len;
	char *p;

	if (o->len + n > o->max) {
		n = o->max - o->len;
		o->truncated = true;
	}
	if (n == 0)
		return 0;
	p = realloc(o->data, o->len + n);
	if (!p)
		return -ENOMEM;
	memcpy(p + o->len, data, n);
	o->data = p;
	o->len += n;
	return 0;
}

static int run_out(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct outbuf *)opaque)[0], data, len);
}

static int run_err(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct outbuf *)opaque)[1], data, len);
}

static int str_array(json_t *arr, const char ***ret)
{
	size_t n = json_array_size(arr), i;
	const char **v = calloc(n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(arr, i));
	*ret = v;
	return 0;
}

static int env_array(json_t *env, char ***ret)
{
	size_t n = json_object_size(env), i = 0;
	char **v = calloc(n + 2, sizeof(*v));
	const char *k;
	json_t *val;

	if (!v)
		return -ENOMEM;
	if (!json_object_get(env, "PATH"))
		v[i++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
	json_object_foreach(env, k, val)
	{
		if (asprintf(&v[i], "%s=%s", k, json_string_value(val)) < 0)
			v[i] = NULL;
		i++;
	}
	*ret = v;
	return 0;
}

static void run_result(struct vmb_job *j, const struct guest_run_result *res, struct outbuf out[2])
{
	bool b64o, b64e;
	json_t *so = bytes_json(out[0].data ? out[0].data : "", out[0].len, &b64o);
	json_t *se = bytes_json(out[1].data ? out[1].data : "", out[1].len, &b64e);

	j->result = so && se ? json_pack("{si si sb so so sb sb}", "exit_code", res->exit_code,
					 "signal", res->signal, "timed_out", res->timed_out,
					 "stdout", so, "stderr", se, "stdout_truncated",
					 out[0].truncated, "stderr_truncated", out[1].truncated)
			     : NULL;
	if (!j->result) {
		j->err = -ENOMEM;
		return;
	}
	if (b64o)
		json_object_set_new(j->result, "stdout_encoding", json_string("base64"));
	if (b64e)
		json_object_set_new(j->result, "stderr_encoding", json_string("base64"));
}

/* Worker: queues a piece for the loop, waiting while the queue is full. */
static int stream_put(struct vmb_job *j, int fd, const void *data, size_t len)
{
	struct vmb_stream *st = j->st;
	struct piece *p = malloc(sizeof(*p) + len);
	uint64_t one = 1;
	ssize_t n;

	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->fd = fd;
	p->len = len;
	memcpy(p->data, data, len);
	pthread_mutex_lock(&st->lock);
	while (st->bytes > 0 && st->bytes + len > STREAM_MAX && !atomic_load(&j->b->closing)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
	if (atomic_load(&j->b->closing)) {
		pthread_mutex_unlock(&st->lock);
		free(p);
		return -ECANCELED;
	}
	*st->tail = p;
	st->tail = &p->next;
	st->bytes += len;
	pthread_mutex_unlock(&st->lock);
	do
		n = write(st->efd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	return 0;
}

static int stream_out(void *opaque, const void *data, size_t len)
{
	return stream_put(opaque, 1, data, len);
}

static int stream_err(void *opaque, const void *data, size_t len)
{
	return stream_put(opaque, 2, data, len);
}

/* Loop: hands queued pieces to the consumer until it is full (@all: until empty). */
static void stream_deliver(struct vmb_job *j, bool all)
{
	struct vmb_stream *st = j->st;
	struct piece *p;

	while (all || !st->paused) {
		pthread_mutex_lock(&st->lock);
		p = st->head;
		if (p) {
			st->head = p->next;
			if (!st->head)
				st->tail = &st->head;
			st->bytes -= p->len;
			pthread_cond_signal(&st->cond);
		}
		pthread_mutex_unlock(&st->lock);
		if (!p)
			break;
		if (st->chunk(j->token, p->fd, p->data, p->len) == ND_STREAM_FULL)
			st->paused = true;
		free(p);
	}
}

static void on_stream(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_job *j = arg;
	uint64_t v;

	if (what & EV_READ)
		while (read(j->st->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			;
	stream_deliver(j, false);
}

static void work_run(struct vmb_job *j)
{
	struct guest_run_cbs cbs = {.out = run_out, .err = run_err};
	struct guest_run_result res = {0};
	struct guest_run_req req = {0};
	struct outbuf out[2] = {{.max = j->t->result_max}, {.max = j->t->result_max}};
	json_t *env = json_object_get(j->args, "env");
	const char *in = json_string_value(json_object_get(j->args, "stdin"));
	const char **argv = NULL;
	char **envp = NULL;

	j->err = str_array(json_object_get(j->args, "argv"), &argv);
	if (j->err == 0 && env)
		j->err = env_array(env, &envp);
	if (j->err < 0)
		goto out;
	req.argv = argv;
	req.envp = (const char *const *)envp;
	req.cwd = json_string_value(json_object_get(j->args, "cwd"));
	req.stdin_data = in;
	req.stdin_len = in ? strlen(in) : 0;
	req.timeout_ms = (uint32_t)json_integer_value(json_object_get(j->args, "timeout_ms"));
	if (j->st) {
		cbs = (struct guest_run_cbs){.out = stream_out, .err = stream_err};
		j->err = guest__run(j->vm->g, &req, &cbs, j, &res);
	} else {
		j->err = guest__run(j->vm->g, &req, &cbs, out, &res);
	}
	if (j->err < 0)
		snprintf(j->reason, sizeof(j->reason), "%s: %s", argv[0], strerror(-j->err));
	else if (j->st)
		j->result = json_pack("{si si sb}", "exit_code", res.exit_code, "signal",
				      res.signal, "timed_out", res.timed_out);
	else
		run_result(j, &res, out);
out:
	for (size_t i = 0; envp && envp[i]; i++)
		free(envp[i]);
	free(envp);
	free(argv);
	free(out[0].data);
	free(out[1].data);
}

static void finish_tool(struct vmb_job *j)
{
	if (j->err == 0 && atomic_load(&j->vm->dead) && !j->result)
		j->err = -EHOSTDOWN;
	if (j->err < 0 && !j->reason[0])
		snprintf(j->reason, sizeof(j->reason), "%s", strerror(-j->err));
	if (j->err < 0 && atomic_load(&j->vm->dead))
		snprintf(j->reason, sizeof(j->reason), "the VM died: %s",
			 j->vm->reason[0] ? j->vm->reason : "nucleus-vmm exited");
	j->tool_done(j->token, j->err, j->err < 0 ? NULL : j->result,
		     j->err < 0 ? j->reason : NULL);
}

/* A streamed run: what is still queued goes out before the completion. */
static void finish_stream(struct vmb_job *j)
{
	stream_deliver(j, true);
	if (j->err == 0 && !j->result)
		j->err = -ENOMEM;
	finish_tool(j);
}

static struct vmb_stream *stream_new(struct vmb *b, struct vmb_job *j, nd_chunk_fn chunk)
{
	struct vmb_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->tail = &st->head;
	st->chunk = chunk;
	st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	st->ev = st->efd >= 0 ? event_new(b->base, st->efd, EV_READ | EV_PERSIST, on_stream, j)
			      : NULL;
	if (!st->ev || event_add(st->ev, NULL) < 0) {
		stream_free(st);
		return NULL;
	}
	return st;
}

/* What performs each guest tool of the catalogue (by its policy engine operation). */
static void (*const guest_work[POLICY_OP_COUNT])(struct vmb_job *j) = {
	[POLICY_OP_READ_FILE] = work_read,
	[POLICY_OP_WRITE_FILE] = work_write,
	[POLICY_OP_LIST] = work_list,
	[POLICY_OP_RUN] = work_run,
};

void vm_tools__stream_resume(struct vmb *b, void *token)
{
	for (struct vmb_job *j = b->jobs; j; j = j->next) {
		if (j->st && j->token == token && j->st->paused) {
			j->st->paused = false;
			event_active(j->st->ev, 0, 1); /* delivers from the loop */
		}
	}
}

int vm_tools__start(struct vmb *b, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		    nd_chunk_fn chunk, nd_tool_done_fn done, void *token, struct nd_err *e)
{
	const struct nd_tool *t = nd_tool__find(tool);
	struct vmb_vm *v = vm_proc__find(b, sb->id);
	void (*work)(struct vmb_job *) = NULL;
	struct vmb_job *j;
	int r;

	if (chunk && (!t || !t->streams))
		return nd_err__set(e, -EINVAL, "bad_value", "only 'run' can stream its output");
	if (!t)
		return nd_err__set(e, -ENOENT, "unknown_tool", "no tool '%s'", tool);
	work = t->guest ? guest_work[t->op] : NULL;
	if (!work)
		return nd_err__set(e, -ENOSYS, "not_implemented",
				   "'%s' is allowed by the policy, but this backend cannot "
				   "perform it (the guest has no such tool)",
				   tool);
	/* The API checked already; callers of the library may not have. */
	r = nd_tool__check(tool, args, e);
	if (r < 0)
		return r;
	if (!v || v->pid <= 0 || v->stopping || atomic_load(&v->dead))
		return nd_err__set(e, -EHOSTDOWN, "backend_error", "no VM runs for sandbox %s",
				   sb->id);
	j = vmb_job__new(b, v);
	if (!j)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	j->t = t;
	snprintf(j->tool, sizeof(j->tool), "%s", tool);
	j->args = args ? json_deep_copy(args) : json_object();
	if (j->args && work == work_run) {
		/* Every run gets the sandbox's spec.env, the call's env on top. */
		json_t *env = NULL;

		r = nd_env__merge(sb->spec, args, &env, e);
		if (r < 0) {
			vmb_job__free(j);
			return r;
		}
		json_object_del(j->args, "env");
		if (env)
			json_object_set_new(j->args, "env", env);
	}
	j->work = work;
	j->finish = chunk ? finish_stream : finish_tool;
	j->tool_done = done;
	j->token = token;
	r = j->args ? 0 : -ENOMEM;
	if (r == 0 && chunk) {
		j->st = stream_new(b, j, chunk);
		j->release = stream_release;
		j->unblock = stream_unblock;
		r = j->st ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = vmb_job__submit(j);
	if (r < 0) {
		vmb_job__free(j);
		if (r == -EAGAIN)
			return nd_err__set(e, r, "backend_busy",
					   "too many calls in progress (%d queued), try again",
					   VMB_QUEUE_MAX);
		return nd_err__set(e, r, "internal", "cannot start the tool call: %s",
				   strerror(-r));
	}
	return 0;
}
