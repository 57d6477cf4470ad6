// SPDX-License-Identifier: Apache-2.0
/*
 * Globs over segments. A path pattern is '/'-separated, a command pattern is a list of
 * space-separated argv tokens. Within a segment `*` matches any run of characters and `?`
 * one character; a segment that is exactly `**` matches zero or more whole segments.
 * Patterns are compiled once (at profile load); matching never allocates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

/* Two-pointer wildcard match within one segment (`*`, `?`). */
bool glob__seg_match(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;

	while (si < slen) {
		if (pi < plen && p[pi] == '*') {
			star_p = pi++;
			star_s = si;
		} else if (pi < plen && (p[pi] == '?' || p[pi] == s[si])) {
			pi++;
			si++;
		} else if (star_p != (size_t)-1) {
			pi = star_p + 1;
			si = ++star_s;
		} else {
			return false;
		}
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

static bool seg_match(const struct gseg *g, const struct span *s)
{
	if (g->kind == GSEG_LIT)
		return g->len == s->len && memcmp(g->s, s->s, s->len) == 0;
	return glob__seg_match(g->s, g->len, s->s, s->len);
}

/* The same two-pointer walk one level up: `**` segments against whole segments. */
bool glob__match(const struct glob *g, const struct span *subj, uint32_t n)
{
	uint32_t pi = 0, si = 0, star_p = UINT32_MAX, star_s = 0;
	const struct gseg *last = g->nseg ? &g->seg[g->nseg - 1] : NULL;

	/* cheap rejects: a fixed last segment must match the last path segment */
	if (last && last->kind != GSEG_STARSTAR && (n == 0 || !seg_match(last, &subj[n - 1])))
		return false;
	/* and a fixed first segment the first one */
	if (last && g->seg[0].kind != GSEG_STARSTAR && (n == 0 || !seg_match(&g->seg[0], &subj[0])))
		return false;
	while (si < n) {
		if (pi < g->nseg && g->seg[pi].kind == GSEG_STARSTAR) {
			star_p = pi++;
			star_s = si;
		} else if (pi < g->nseg && seg_match(&g->seg[pi], &subj[si])) {
			pi++;
			si++;
		} else if (star_p != UINT32_MAX) {
			pi = star_p + 1;
			si = ++star_s;
		} else {
			return false;
		}
	}
	while (pi < g->nseg && g->seg[pi].kind == GSEG_STARSTAR)
		pi++;
	return pi == g->nseg;
}

const struct glob *glob__set_match(const struct pset *s, const struct span *subj, uint32_t n)
{
	int c0 = n && subj[0].len ? (unsigned char)subj[0].s[0] : -2;

	for (uint32_t i = 0; i < s->n; i++) {
		const struct glob *g = s->e[i];

		if (g->first >= 0 && g->first != c0)
			continue;
		if (glob__match(g, subj, n))
			return g;
	}
	return NULL;
}

static int first_byte(const struct glob *g)
{
	const struct gseg *f = g->nseg ? &g->seg[0] : NULL;

	if (!f || f->kind == GSEG_STARSTAR || f->len == 0 || f->s[0] == '*' || f->s[0] == '?')
		return -1;
	return (unsigned char)f->s[0];
}

static bool bad_char(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Split a canonical absolute path into segments. Returns the count, or -EINVAL when the
 * path is not canonical (relative, "//", "." or ".." segments, trailing '/', control
 * characters) and -E2BIG when it is too deep.
 */
static int split_from(const char *p, struct span *out, uint32_t max)
{
	uint32_t n = 0;

	for (;;) {
		const char *s = p;

		while (*p && *p != '/') {
			if (bad_char((unsigned char)*p))
				return -EINVAL;
			p++;
		}
		if (p == s || (p - s == 1 && s[0] == '.') ||
		    (p - s == 2 && s[0] == '.' && s[1] == '.'))
			return -EINVAL;
		if (n == max)
			return -E2BIG;
		out[n].s = s;
		out[n].len = (uint32_t)(p - s);
		n++;
		if (!*p)
			return (int)n;
		p++;
	}
}

int path__split(const char *path, struct span *out, uint32_t max)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	if (path[1] == '\0')
		return 0;
	return split_from(path + 1, out, max);
}

/* Split a full git ref (refs/heads/x) into segments; -EINVAL if it is malformed. */
int ref__split(const char *ref, struct span *out, uint32_t max)
{
	if (!ref || ref[0] == '/' || ref[0] == '\0')
		return -EINVAL;
	return split_from(ref, out, max);
}

static void glob_free(void *e)
{
	struct glob *g = e;

	if (!g)
		return;
	free(g->text);
	free(g->seg);
	free(g);
}

static int seg_kind(const char *s, uint32_t len, const char **why)
{
	bool wild = false;

	if (len == 2 && s[0] == '*' && s[1] == '*')
		return GSEG_STARSTAR;
	for (uint32_t i = 0; i < len; i++) {
		if (bad_char((unsigned char)s[i])) {
			*why = "control character in pattern";
			return -EINVAL;
		}
		if (s[i] == '*' && i + 1 < len && s[i + 1] == '*') {
			*why = "'**' must be a whole segment";
			return -EINVAL;
		}
		wild |= s[i] == '*' || s[i] == '?';
	}
	return wild ? GSEG_GLOB : GSEG_LIT;
}

/* Append one segment, folding repeated `**`. */
static int push_seg(struct glob *g, const char *s, uint32_t len, int kind, const char **why)
{
	int k = seg_kind(s, len, why);

	if (k < 0)
		return k;
	if (kind != GLOB_CMD && ((len == 1 && s[0] == '.') || (len == 2 && !memcmp(s, "..", 2)))) {
		*why = "'.' and '..' are not allowed in patterns";
		return -EINVAL;
	}
	if (kind == GLOB_CMD && g->nseg == 0 && (memchr(s, '/', len) || k == GSEG_STARSTAR)) {
		*why = "the program must be a basename";
		return -EINVAL;
	}
	if (k == GSEG_STARSTAR && g->nseg && g->seg[g->nseg - 1].kind == GSEG_STARSTAR)
		return 0;
	g->seg[g->nseg].s = s;
	g->seg[g->nseg].len = len;
	g->seg[g->nseg].kind = (uint8_t)k;
	g->nseg++;
	return 0;
}

static int split_pattern(struct glob *g, char *buf, int kind, const char **why)
{
	char sep = kind == GLOB_CMD ? ' ' : '/';
	char *p = buf;
	int rc;

	if (kind == GLOB_PATH) {
		if (*p != '/') {
			*why = "path patterns must be absolute";
			return -EINVAL;
		}
		if (p[1] == '\0')
			return 0;
		p++;
	}
	for (;;) {
		char *s = p;

		while (*p && *p != sep)
			p++;
		if (p == s) {
			*why = kind == GLOB_CMD ? "empty command token" : "empty path segment";
			return -EINVAL;
		}
		rc = push_seg(g, s, (uint32_t)(p - s), kind, why);
		if (rc < 0)
			return rc;
		if (!*p)
			return 0;
		p++;
	}
}

/* Rebuild the canonical text from the segments (after `**` folding). */
static int canon_text(struct glob *g, int kind)
{
	size_t len = 2;
	char *t, *w;

	for (uint32_t i = 0; i < g->nseg; i++)
		len += g->seg[i].len + 1;
	t = w = malloc(len);
	if (!t)
		return -ENOMEM;
	if (kind == GLOB_PATH && g->nseg == 0)
		*w++ = '/';
	for (uint32_t i = 0; i < g->nseg; i++) {
		if (kind == GLOB_PATH || i > 0)
			*w++ = kind == GLOB_CMD ? ' ' : '/';
		memcpy(w, g->seg[i].s, g->seg[i].len);
		g->seg[i].s = w;
		w += g->seg[i].len;
	}
	*w = '\0';
	g->text = t;
	return 0;
}

int glob__compile(const char *text, int kind, struct glob **ret, const char **why)
{
	struct glob *g = calloc(1, sizeof(*g));
	char *buf = strdup(text);
	int rc = -ENOMEM;

	*why = "out of memory";
	if (!g || !buf)
		goto out;
	g->seg = calloc(strlen(text) + 1, sizeof(*g->seg));
	if (!g->seg)
		goto out;
	rc = split_pattern(g, buf, kind, why);
	if (rc < 0)
		goto out;
	if (g->nseg > POLICY_MAX_SEGS) {
		*why = "too many segments";
		rc = -E2BIG;
		goto out;
	}
	if (kind == GLOB_CMD && g->nseg == 0) {
		*why = "empty command pattern";
		rc = -EINVAL;
		goto out;
	}
	if (kind == GLOB_REF &&
	    (g->nseg < 2 || g->seg[0].len != 4 || memcmp(g->seg[0].s, "refs", 4))) {
		*why = "ref patterns start with refs/";
		rc = -EINVAL;
		goto out;
	}
	rc = canon_text(g, kind);
	if (rc < 0)
		goto out;
	g->first = first_byte(g);
	*ret = g;
	g = NULL;
out:
	free(buf);
	glob_free(g);
	return rc;
}

/* Tree order: equal, or b is a prefix followed by a final `**` segment that a starts with. */
static bool glob_leq(const void *ea, const void *eb)
{
	const struct glob *a = ea, *b = eb;
	uint32_t k;

	if (strcmp(a->text, b->text) == 0)
		return true;
	if (b->nseg == 0 || b->seg[b->nseg - 1].kind != GSEG_STARSTAR)
		return false;
	k = b->nseg - 1;
	if (a->nseg < k)
		return false;
	for (uint32_t i = 0; i < k; i++)
		if (a->seg[i].len != b->seg[i].len ||
		    memcmp(a->seg[i].s, b->seg[i].s, a->seg[i].len))
			return false;
	return true;
}

static int glob_dup(const struct glob *a, void **ret)
{
	struct glob *g = calloc(1, sizeof(*g));
	size_t tlen = strlen(a->text) + 1;

	if (!g)
		return -ENOMEM;
	g->text = malloc(tlen);
	g->seg = calloc(a->nseg ? a->nseg : 1, sizeof(*g->seg));
	if (!g->text || !g->seg) {
		glob_free(g);
		return -ENOMEM;
	}
	memcpy(g->text, a->text, tlen);
	g->nseg = a->nseg;
	g->first = a->first;
	for (uint32_t i = 0; i < a->nseg; i++) {
		g->seg[i] = a->seg[i];
		g->seg[i].s = g->text + (a->seg[i].s - a->text);
	}
	*ret = g;
	return 0;
}

static int glob_glb(const void *a, const void *b, void **ret)
{
	int rc;

	if (glob_leq(a, b))
		rc = glob_dup(a, ret);
	else if (glob_leq(b, a))
		rc = glob_dup(b, ret);
	else
		return 0;
	return rc < 0 ? rc : 1;
}

static int glob_cmp(const void *a, const void *b)
{
	return strcmp(((const struct glob *)a)->text, ((const struct glob *)b)->text);
}

static const char *glob_text(const void *e)
{
	return ((const struct glob *)e)->text;
}

const struct pset_ops glob_ops = {
	.leq = glob_leq,
	.glb = glob_glb,
	.cmp = glob_cmp,
	.free = glob_free,
	.text = glob_text,
};
