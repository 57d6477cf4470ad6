// SPDX-License-Identifier: Apache-2.0
/*
 * A git remote's push URL from a repository's config text (.git/config, read from the
 * guest: hostile input, checked here and nowhere else). The daemon resolves the remote
 * name of a git_push or create_pr (`origin`) to the URL git would push to, so that the
 * policy judges where the push goes, not what it is called (docs/api.md "Remote names").
 *
 * The config syntax is git-config(1)'s: sections `[name]`, `[name "subsection"]` (quoted,
 * case-sensitive, `\"` and `\\` escaped) and the old `[name.subsection]` (lowercased);
 * `key = value` or a bare `key` (true); names case-insensitive; values with `"` quoting,
 * the escapes `\n \t \b \" \\` and `\` + newline continuing a line; `#` and `;` comments.
 * What git would push to: the remote's one `pushurl` with `url.<base>.insteadOf` applied,
 * else its one `url` with `url.<base>.pushInsteadOf` applied (the longest match), else
 * with `insteadOf`. Not followed, so refused: `[include]` / `[includeIf]` (another file
 * could add or rewrite URLs), and a remote with more than one push URL (git pushes to
 * each; the policy judges one).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleusd/nucleusd-internal.h"

#define CONFIG_MAX (1u << 20) /* bytes of config text read at most */
#define VALUE_MAX  4096	      /* a name, subsection or value, bytes */

bool nd_git__is_remote_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	/* a URL has "://" or is scp-like (host:path); a path starts with / or . */
	if (n == 0 || n > 255 || strchr(s, ':') || *s == '/' || *s == '.' || *s == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-/", *s))
			return false;
	return true;
}

/* A rewrite rule: URLs starting with @prefix start with @base instead. */
struct rewrite {
	char *prefix, *base;
	bool push; /* pushInsteadOf */
};

struct parse {
	const char *p, *end;
	unsigned line;
	const char *remote;
	char section[VALUE_MAX], sub[VALUE_MAX];
	bool has_sub;
	char *urls[2], *pushurls[2]; /* the first two: a second one is refused */
	unsigned n_urls, n_pushurls;
	struct rewrite *rw;
	size_t n_rw;
	bool include;
	char *why;
	size_t why_len;
};

static int fail(struct parse *ps, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parse *ps, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->why, ps->why_len, fmt, ap);
	va_end(ap);
	return err;
}

static void skip_blank(struct parse *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
		ps->p++;
}

/* A section or variable name: [A-Za-z0-9.-] (variables: a letter first), lowercased. */
static int name(struct parse *ps, char *out, bool section)
{
	size_t n = 0;

	while (ps->p < ps->end && (isalnum((unsigned char)*ps->p) || *ps->p == '-' ||
				   (section && *ps->p == '.'))) {
		if (n + 1 >= VALUE_MAX)
			return fail(ps, -EINVAL, "line %u: a name too long", ps->line);
		out[n++] = (char)tolower((unsigned char)*ps->p++);
	}
	out[n] = '\0';
	if (n == 0 || (!section && !isalpha((unsigned char)out[0])))
		return fail(ps, -EINVAL, "line %u: not a name", ps->line);
	return 0;
}

/* `[name]`, `[name "sub"]` or `[name.sub]`; @ps->p at the '['. */
static int header(struct parse *ps)
{
	size_t n = 0;
	char *dot;
	int r;

	ps->p++;
	ps->has_sub = false;
	r = name(ps, ps->section, true);
	if (r < 0)
		return r;
	skip_blank(ps);
	if (ps->p < ps->end && *ps->p == '"') {
		for (ps->p++; ps->p < ps->end && *ps->p != '"' && *ps->p != '\n'; ps->p++) {
			if (*ps->p == '\\' && ps->p + 1 < ps->end && ps->p[1] != '\n')
				ps->p++;
			if (n + 1 >= VALUE_MAX)
				return fail(ps, -EINVAL, "line %u: a subsection too long",
					    ps->line);
			ps->sub[n++] = *ps->p;
		}
		if (ps->p == ps->end || *ps->p != '"')
			return fail(ps, -EINVAL, "line %u: an unterminated subsection",
				    ps->line);
		ps->p++;
		ps->sub[n] = '\0';
		ps->has_sub = true;
	} else if ((dot = strchr(ps->section, '.'))) {
		*dot = '\0'; /* [remote.origin]: the old form, lowercased */
		snprintf(ps->sub, sizeof(ps->sub), "%s", dot + 1);
		ps->has_sub = true;
	}
	if (ps->p == ps->end || *ps->p != ']')
		return fail(ps, -EINVAL, "line %u: a section header without ']'", ps->line);
	ps->p++;
	if (strcmp(ps->section, "include") == 0 || strcmp(ps->section, "includeif") == 0)
		ps->include = true;
	return 0;
}

/* A value up to the end of its (continued) line; @ps->p after the '='. */
static int value(struct parse *ps, char *out)
{
	size_t n = 0, keep = 0; /* keep: the length without unquoted trailing blanks */
	bool quoted = false;
	char c;

	skip_blank(ps);
	while (ps->p < ps->end && *ps->p != '\n') {
		c = *ps->p++;
		if (!quoted && (c == '#' || c == ';')) {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
			break;
		}
		if (c == '"') {
			quoted = !quoted;
			keep = n;
			continue;
		}
		if (c == '\\') {
			if (ps->p == ps->end)
				return fail(ps, -EINVAL, "line %u: a '\\' at the end", ps->line);
			c = *ps->p++;
			if (c == '\n') { /* continued on the next line */
				ps->line++;
				continue;
			}
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'b' ? '\b' : c;
			if (!strchr("\n\t\b\"\\", c))
				return fail(ps, -EINVAL, "line %u: a bad escape", ps->line);
		} else if (c == '\r' && !quoted) {
			continue;
		}
		if (n + 1 >= VALUE_MAX)
			return fail(ps, -EINVAL, "line %u: a value too long", ps->line);
		out[n++] = c;
		if (quoted || (c != ' ' && c != '\t'))
			keep = n;
	}
	if (quoted)
		return fail(ps, -EINVAL, "line %u: an unterminated quote", ps->line);
	out[keep] = '\0';
	return 0;
}

static int keep_url(struct parse *ps, char **list, unsigned *n, const char *v)
{
	if (*n < 2 && !(list[*n] = strdup(v)))
		return fail(ps, -ENOMEM, "out of memory");
	(*n)++;
	return 0;
}

static int keep_rewrite(struct parse *ps, const char *prefix, bool push)
{
	struct rewrite *rw = realloc(ps->rw, (ps->n_rw + 1) * sizeof(*rw));

	if (!rw)
		return fail(ps, -ENOMEM, "out of memory");
	ps->rw = rw;
	rw[ps->n_rw].prefix = strdup(prefix);
	rw[ps->n_rw].base = strdup(ps->sub);
	rw[ps->n_rw].push = push;
	ps->n_rw++;
	if (!rw[ps->n_rw - 1].prefix || !rw[ps->n_rw - 1].base)
		return fail(ps, -ENOMEM, "out of memory");
	return 0;
}

/* `key = value` or a bare `key`: what it says of the remote or of URL rewriting. */
static int variable(struct parse *ps, char *key, char *val)
{
	int r = name(ps, key, false);

	if (r < 0)
		return r;
	skip_blank(ps);
	val[0] = '\0';
	if (ps->p < ps->end && *ps->p == '=') {
		ps->p++;
		r = value(ps, val);
		if (r < 0)
			return r;
	} else if (ps->p < ps->end && *ps->p != '\n' && *ps->p != '#' && *ps->p != ';') {
		return fail(ps, -EINVAL, "line %u: expected '=' after '%s'", ps->line, key);
	}
	if (!ps->has_sub)
		return 0;
	if (strcmp(ps->section, "remote") == 0 && strcmp(ps->sub, ps->remote) == 0) {
		if (strcmp(key, "url") == 0)
			return keep_url(ps, ps->urls, &ps->n_urls, val);
		if (strcmp(key, "pushurl") == 0)
			return keep_url(ps, ps->pushurls, &ps->n_pushurls, val);
	}
	if (strcmp(ps->section, "url") == 0 && val[0] &&
	    (strcmp(key, "insteadof") == 0 || strcmp(key, "pushinsteadof") == 0))
		return keep_rewrite(ps, val, key[0] == 'p');
	return 0;
}

static int parse_all(struct parse *ps)
{
	char *key = malloc(VALUE_MAX), *val = malloc(VALUE_MAX);
	int r = 0;

	if (!key || !val) {
		r = fail(ps, -ENOMEM, "out of memory");
		goto out;
	}
	while (r == 0 && ps->p < ps->end) {
		skip_blank(ps);
		if (ps->p == ps->end)
			break;
		if (*ps->p == '[') {
			r = header(ps);
			skip_blank(ps);
		}
		if (r == 0 && ps->p < ps->end && *ps->p != '\n' && *ps->p != '#' &&
		    *ps->p != ';') {
			if (!ps->section[0])
				r = fail(ps, -EINVAL, "line %u: a variable outside a section",
					 ps->line);
			else
				r = variable(ps, key, val);
		}
		while (r == 0 && ps->p < ps->end && *ps->p != '\n') {
			if (*ps->p != '#' && *ps->p != ';') {
				skip_blank(ps);
				if (ps->p < ps->end && *ps->p != '\n' && *ps->p != '#' &&
				    *ps->p != ';')
					r = fail(ps, -EINVAL, "line %u: unexpected text",
						 ps->line);
				continue;
			}
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++; /* a comment */
		}
		if (ps->p < ps->end) {
			ps->p++;
			ps->line++;
		}
	}
out:
	free(key);
	free(val);
	return r;
}

/*
 * @url with the longest matching rule of kind @push applied: 1 with *@ret (malloc'd),
 * 0 when no rule matches, -ENOMEM.
 */
static int rewritten(const struct parse *ps, const char *url, bool push, char **ret)
{
	const struct rewrite *best = NULL;

	for (size_t i = 0; i < ps->n_rw; i++)
		if (ps->rw[i].push == push &&
		    strncmp(url, ps->rw[i].prefix, strlen(ps->rw[i].prefix)) == 0 &&
		    (!best || strlen(ps->rw[i].prefix) > strlen(best->prefix)))
			best = &ps->rw[i];
	if (!best)
		return 0;
	if (asprintf(ret, "%s%s", best->base, url + strlen(best->prefix)) < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 1;
}

int nd_git__push_url(const char *text, size_t len, const char *remote, char **ret, char *why,
		     size_t why_len)
{
	struct parse ps = {.p = text,
			   .end = text + len,
			   .line = 1,
			   .remote = remote,
			   .why = why,
			   .why_len = why_len};
	const char *url;
	int r;

	*ret = NULL;
	why[0] = '\0';
	if (len > CONFIG_MAX)
		return fail(&ps, -EFBIG, "the config is over %u bytes", CONFIG_MAX);
	if (memchr(text, '\0', len))
		return fail(&ps, -EINVAL, "the config holds a NUL byte");
	r = parse_all(&ps);
	if (r < 0)
		goto out;
	r = ps.include ? fail(&ps, -EOPNOTSUPP,
			      "the config includes other files ([include]), which are not read")
	    : ps.n_pushurls > 1 || (!ps.n_pushurls && ps.n_urls > 1)
		? fail(&ps, -E2BIG, "remote '%s' has more than one push URL", remote)
	    : !ps.n_pushurls && !ps.n_urls ? fail(&ps, -ENOENT, "no remote '%s'", remote)
					   : 0;
	if (r < 0)
		goto out;
	url = ps.n_pushurls ? ps.pushurls[0] : ps.urls[0];
	if (!url[0]) {
		r = fail(&ps, -EINVAL, "remote '%s' has an empty URL", remote);
		goto out;
	}
	/* a pushurl gets insteadOf only; a url pushInsteadOf first, else insteadOf */
	r = ps.n_pushurls ? 0 : rewritten(&ps, url, true, ret);
	if (r == 0)
		r = rewritten(&ps, url, false, ret);
	if (r == 0 && !(*ret = strdup(url)))
		r = -ENOMEM;
	if (r == -ENOMEM) {
		r = fail(&ps, -ENOMEM, "out of memory");
		goto out;
	}
	r = 0;
	if (strlen(*ret) >= VALUE_MAX) {
		free(*ret);
		*ret = NULL;
		r = fail(&ps, -EINVAL, "remote '%s' rewrites to a URL too long", remote);
	}
out:
	for (unsigned i = 0; i < 2; i++) {
		free(ps.urls[i]);
		free(ps.pushurls[i]);
	}
	for (size_t i = 0; i < ps.n_rw; i++) {
		free(ps.rw[i].prefix);
		free(ps.rw[i].base);
	}
	free(ps.rw);
	return r;
}
