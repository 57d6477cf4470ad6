// SPDX-License-Identifier: Apache-2.0
/*
 * Egress rules: a host part (exact name, `*.suffix`, IPv4/IPv6 CIDR, or `*`) and a port
 * set. Host parts form a tree (names under suffixes, prefixes under shorter prefixes), port
 * sets are kept as sorted disjoint ranges, so the glb of two rules is exact.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

static void erule_free(void *e)
{
	struct erule *r = e;

	if (!r)
		return;
	free(r->text);
	free(r->host);
	free(r->ports);
	free(r);
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Lower-case a host name into buf; strip one trailing dot. 0 or -EINVAL. */
static int norm_name(const char *s, size_t len, char *buf, size_t buflen)
{
	bool label_start = true;

	if (len && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= buflen)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '.') {
			if (label_start)
				return -EINVAL;
			label_start = true;
		} else if (!name_char(c)) {
			return -EINVAL;
		} else {
			label_start = false;
		}
		buf[i] = c;
	}
	if (label_start)
		return -EINVAL;
	buf[len] = '\0';
	return 0;
}

static void mask_addr(uint8_t *a, unsigned plen, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;

		if (bits < 8)
			a[i] &= (uint8_t)(0xff00u >> bits);
	}
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned plen)
{
	unsigned full = plen / 8, rem = plen % 8;

	if (memcmp(a, b, full))
		return false;
	return rem == 0 || ((a[full] ^ b[full]) & (0xff00u >> rem) & 0xff) == 0;
}

static int parse_plen(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse_ip_host(struct erule *r, char *host, int fam)
{
	char *slash = strchr(host, '/');
	unsigned max = fam == 4 ? 32 : 128, plen = max;

	if (slash) {
		*slash = '\0';
		if (parse_plen(slash + 1, max, &plen) < 0)
			return -EINVAL;
	}
	if (inet_pton(fam == 4 ? AF_INET : AF_INET6, host, r->addr) != 1)
		return -EINVAL;
	r->kind = fam == 4 ? EH_CIDR4 : EH_CIDR6;
	r->plen = (uint8_t)plen;
	mask_addr(r->addr, plen, fam == 4 ? 4 : 16);
	return 0;
}

static int parse_host(struct erule *r, char *host, bool bracketed)
{
	char buf[256];
	struct in_addr tmp;
	char *slash;

	if (bracketed)
		return parse_ip_host(r, host, 6);
	if (strcmp(host, "*") == 0) {
		r->kind = EH_ANY;
		return 0;
	}
	slash = strchr(host, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, host, &tmp) == 1) {
		if (slash)
			*slash = '/';
		return parse_ip_host(r, host, 4);
	}
	if (slash)
		return -EINVAL;
	r->kind = EH_EXACT;
	if (host[0] == '*' && host[1] == '.') {
		r->kind = EH_SUFFIX;
		host += 2;
	}
	if (norm_name(host, strlen(host), buf, sizeof(buf)) < 0)
		return -EINVAL;
	r->host = strdup(buf);
	return r->host ? 0 : -ENOMEM;
}

static int add_range(struct erule *r, unsigned lo, unsigned hi)
{
	struct prange *np = realloc(r->ports, (r->nports + 1) * sizeof(*np));

	if (!np)
		return -ENOMEM;
	r->ports = np;
	r->ports[r->nports].lo = (uint16_t)lo;
	r->ports[r->nports].hi = (uint16_t)hi;
	r->nports++;
	return 0;
}

/* Sort and merge ranges (adjacent ranges merge too: the rendering is canonical). */
static void norm_ports(struct erule *r)
{
	uint32_t k = 0;

	for (uint32_t i = 1; i < r->nports; i++) {
		struct prange x = r->ports[i];
		uint32_t j = i;

		while (j > 0 && r->ports[j - 1].lo > x.lo) {
			r->ports[j] = r->ports[j - 1];
			j--;
		}
		r->ports[j] = x;
	}
	for (uint32_t i = 0; i < r->nports; i++) {
		if (k && (uint32_t)r->ports[k - 1].hi + 1 >= r->ports[i].lo) {
			if (r->ports[i].hi > r->ports[k - 1].hi)
				r->ports[k - 1].hi = r->ports[i].hi;
		} else {
			r->ports[k++] = r->ports[i];
		}
	}
	r->nports = k;
}

static int parse_port(const char *s, const char *e, unsigned *out)
{
	unsigned v = 0;

	if (s == e || e - s > 5)
		return -EINVAL;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_ports(struct erule *r, const char *s)
{
	if (!s || strcmp(s, "*") == 0)
		return add_range(r, 1, 65535);
	if (!*s)
		return -EINVAL;
	while (*s) {
		const char *e = strchr(s, ','), *dash;
		unsigned lo, hi;
		int rc;

		if (!e)
			e = s + strlen(s);
		dash = memchr(s, '-', (size_t)(e - s));
		if (parse_port(s, dash ? dash : e, &lo) < 0 ||
		    parse_port(dash ? dash + 1 : s, e, &hi) < 0 || hi < lo)
			return -EINVAL;
		rc = add_range(r, lo, hi);
		if (rc < 0)
			return rc;
		s = *e ? e + 1 : e;
		if (*s == '\0' && *e == ',')
			return -EINVAL;
	}
	norm_ports(r);
	return 0;
}

static int render(struct erule *r)
{
	char buf[1024], addr[INET6_ADDRSTRLEN];
	size_t n = 0;

	switch (r->kind) {
	case EH_ANY:
		n = (size_t)snprintf(buf, sizeof(buf), "*");
		break;
	case EH_EXACT:
		n = (size_t)snprintf(buf, sizeof(buf), "%s", r->host);
		break;
	case EH_SUFFIX:
		n = (size_t)snprintf(buf, sizeof(buf), "*.%s", r->host);
		break;
	case EH_CIDR4:
		inet_ntop(AF_INET, r->addr, addr, sizeof(addr));
		n = (size_t)snprintf(buf, sizeof(buf), "%s/%u", addr, r->plen);
		break;
	default:
		inet_ntop(AF_INET6, r->addr, addr, sizeof(addr));
		n = (size_t)snprintf(buf, sizeof(buf), "[%s]/%u", addr, r->plen);
		break;
	}
	if (r->nports == 1 && r->ports[0].lo == 1 && r->ports[0].hi == 65535) {
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, ":*");
	} else {
		for (uint32_t i = 0; i < r->nports && n < sizeof(buf) - 16; i++) {
			const struct prange *p = &r->ports[i];

			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%c%u", i ? ',' : ':',
					      p->lo);
			if (p->hi != p->lo)
				n += (size_t)snprintf(buf + n, sizeof(buf) - n, "-%u", p->hi);
		}
	}
	if (n >= sizeof(buf) - 16)
		return -E2BIG;
	r->text = strdup(buf);
	return r->text ? 0 : -ENOMEM;
}

int erule__parse(const char *text, struct erule **ret, const char **why)
{
	struct erule *r = calloc(1, sizeof(*r));
	char *buf = strdup(text), *host = buf, *ports = NULL;
	bool bracketed = false;
	int rc = -ENOMEM;

	*why = "out of memory";
	if (!r || !buf)
		goto out;
	rc = -EINVAL;
	*why = "bad host";
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close)
			goto out;
		*close = '\0';
		host = buf + 1;
		bracketed = true;
		if (close[1] == '/') {
			/* [addr]/len: move the prefix length next to the address */
			char *colon = strchr(close + 1, ':');

			if (colon)
				*colon = '\0';
			memmove(close, close + 1, strlen(close + 1) + 1);
			/* the move only touched bytes before the colon */
			ports = colon ? colon + 1 : NULL;
		} else if (close[1] == ':') {
			ports = close + 2;
		} else if (close[1]) {
			goto out;
		}
	} else {
		char *colon = strchr(buf, ':');

		if (colon) {
			*colon = '\0';
			ports = colon + 1;
		}
	}
	rc = parse_host(r, host, bracketed);
	if (rc < 0)
		goto out;
	*why = "bad port set (N, N-M, N,M or *; ports 1-65535)";
	rc = parse_ports(r, ports);
	if (rc < 0)
		goto out;
	rc = render(r);
	if (rc < 0)
		goto out;
	*ret = r;
	r = NULL;
out:
	free(buf);
	erule_free(r);
	return rc;
}

static bool name_under(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s + 1 && name[n - s - 1] == '.' && memcmp(name + n - s, suffix, s) == 0;
}

static bool host_leq(const struct erule *a, const struct erule *b)
{
	if (b->kind == EH_ANY)
		return true;
	switch (a->kind) {
	case EH_EXACT:
		if (b->kind == EH_EXACT)
			return strcmp(a->host, b->host) == 0;
		return b->kind == EH_SUFFIX && name_under(a->host, b->host);
	case EH_SUFFIX:
		return b->kind == EH_SUFFIX &&
		       (strcmp(a->host, b->host) == 0 || name_under(a->host, b->host));
	case EH_CIDR4:
	case EH_CIDR6:
		return a->kind == b->kind && a->plen >= b->plen &&
		       prefix_eq(a->addr, b->addr, b->plen);
	default:
		return false;
	}
}

static bool ports_leq(const struct erule *a, const struct erule *b)
{
	for (uint32_t i = 0; i < a->nports; i++) {
		bool in = false;

		for (uint32_t j = 0; j < b->nports && !in; j++)
			in = b->ports[j].lo <= a->ports[i].lo && a->ports[i].hi <= b->ports[j].hi;
		if (!in)
			return false;
	}
	return true;
}

static bool erule_leq(const void *a, const void *b)
{
	return host_leq(a, b) && ports_leq(a, b);
}

static int intersect_ports(const struct erule *a, const struct erule *b, struct erule *r)
{
	for (uint32_t i = 0; i < a->nports; i++) {
		for (uint32_t j = 0; j < b->nports; j++) {
			unsigned lo =
				a->ports[i].lo > b->ports[j].lo ? a->ports[i].lo : b->ports[j].lo;
			unsigned hi =
				a->ports[i].hi < b->ports[j].hi ? a->ports[i].hi : b->ports[j].hi;
			int rc;

			if (lo > hi)
				continue;
			rc = add_range(r, lo, hi);
			if (rc < 0)
				return rc;
		}
	}
	norm_ports(r);
	return 0;
}

static int erule_glb(const void *ea, const void *eb, void **ret)
{
	const struct erule *a = ea, *b = eb, *h;
	struct erule *r;
	int rc;

	if (host_leq(a, b))
		h = a;
	else if (host_leq(b, a))
		h = b;
	else
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = h->kind;
	r->plen = h->plen;
	memcpy(r->addr, h->addr, sizeof(r->addr));
	rc = -ENOMEM;
	if (h->host && !(r->host = strdup(h->host)))
		goto fail;
	rc = intersect_ports(a, b, r);
	if (rc < 0)
		goto fail;
	if (r->nports == 0) {
		erule_free(r);
		return 0;
	}
	rc = render(r);
	if (rc < 0)
		goto fail;
	*ret = r;
	return 1;
fail:
	erule_free(r);
	return rc;
}

static int erule_cmp(const void *a, const void *b)
{
	return strcmp(((const struct erule *)a)->text, ((const struct erule *)b)->text);
}

static const char *erule_text(const void *e)
{
	return ((const struct erule *)e)->text;
}

const struct pset_ops erule_ops = {
	.leq = erule_leq,
	.glb = erule_glb,
	.cmp = erule_cmp,
	.free = erule_free,
	.text = erule_text,
};

/* Build a match subject from a host (name, IPv4, IPv6 with or without brackets). */
int egress__subject(const char *host, size_t len, uint16_t port, struct egress_subject *out,
		    char *buf, size_t buflen)
{
	char ip[INET6_ADDRSTRLEN + 1];
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	out->port = port;
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0)
		return -EINVAL;
	if (len < sizeof(ip)) {
		memcpy(ip, host, len);
		ip[len] = '\0';
		if (inet_pton(AF_INET, ip, out->addr) == 1) {
			out->family = 4;
			return 0;
		}
		if (inet_pton(AF_INET6, ip, out->addr) == 1) {
			out->family = 6;
			if (memcmp(out->addr, v4mapped, 12) == 0) {
				memmove(out->addr, out->addr + 12, 4);
				out->family = 4;
			}
			return 0;
		}
	}
	if (norm_name(host, len, buf, buflen) < 0)
		return -EINVAL;
	out->host = buf;
	out->host_len = (uint32_t)strlen(buf);
	return 0;
}

static bool subj_host_match(const struct erule *r, const struct egress_subject *s)
{
	size_t hl;

	switch (r->kind) {
	case EH_ANY:
		return true;
	case EH_EXACT:
		return s->family == 0 && strcmp(s->host, r->host) == 0;
	case EH_SUFFIX:
		hl = strlen(r->host);
		return s->family == 0 && s->host_len > hl + 1 &&
		       s->host[s->host_len - hl - 1] == '.' &&
		       memcmp(s->host + s->host_len - hl, r->host, hl) == 0;
	case EH_CIDR4:
		return s->family == 4 && prefix_eq(s->addr, r->addr, r->plen);
	default:
		return s->family == 6 && prefix_eq(s->addr, r->addr, r->plen);
	}
}

const struct erule *egress__match(const struct pset *s, const struct egress_subject *subj)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct erule *r = s->e[i];

		if (!subj_host_match(r, subj))
			continue;
		for (uint32_t j = 0; j < r->nports; j++)
			if (r->ports[j].lo <= subj->port && subj->port <= r->ports[j].hi)
				return r;
	}
	return NULL;
}

/* host[:port] of an authority; the host may be a [v6] literal. */
static int parse_authority(const char *a, size_t len, uint16_t defport, struct egress_subject *o,
			   char *buf, size_t buflen)
{
	const char *at = NULL, *hend;
	unsigned port = defport;

	for (size_t i = 0; i < len; i++)
		if (a[i] == '@')
			at = a + i;
	if (at) {
		len -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	if (len && a[0] == '[') {
		const char *close = memchr(a, ']', len);

		if (!close)
			return -EINVAL;
		hend = close + 1;
	} else {
		hend = memchr(a, ':', len);
		if (!hend)
			hend = a + len;
	}
	if (hend < a + len) {
		if (*hend != ':' || parse_port(hend + 1, a + len, &port) < 0)
			return -EINVAL;
	}
	return egress__subject(a, (size_t)(hend - a), (uint16_t)port, o, buf, buflen);
}

static const struct {
	const char *scheme;
	uint16_t port;
} schemes[] = {
	{"http", 80}, {"https", 443}, {"ws", 80},      {"wss", 443},
	{"ssh", 22},  {"git", 9418},  {"git+ssh", 22},
};

static int scheme_port(const char *s, size_t len, bool web)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (web && i >= 4)
			break;
		if (strlen(schemes[i].scheme) == len && strncasecmp(s, schemes[i].scheme, len) == 0)
			return schemes[i].port;
	}
	return -EINVAL;
}

static int parse_scheme_url(const char *url, bool web, struct egress_subject *out, char *buf,
			    size_t buflen, bool *has_query)
{
	const char *sep = strstr(url, "://"), *auth, *end;
	int port;

	if (!sep)
		return -EINVAL;
	port = scheme_port(url, (size_t)(sep - url), web);
	if (port < 0)
		return port;
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	/* control characters, spaces and '\\' (which some URL parsers read as '/') */
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\')
			return -EINVAL;
	if (has_query)
		*has_query = strchr(end, '?') != NULL;
	return parse_authority(auth, (size_t)(end - auth), (uint16_t)port, out, buf, buflen);
}

int url__parse(const char *url, struct egress_subject *out, char *buf, size_t buflen,
	       bool *has_query)
{
	if (!url)
		return -EINVAL;
	return parse_scheme_url(url, true, out, buf, buflen, has_query);
}

/* Git remotes: scheme URLs (https, http, ssh, git) or scp-like [user@]host:path. */
int remote__parse(const char *remote, struct egress_subject *out, char *buf, size_t buflen)
{
	const char *colon, *slash;

	/* no options, no remote helpers ("ext::cmd" runs a command) */
	if (!remote || remote[0] == '-' || strstr(remote, "::"))
		return -EINVAL;
	if (strstr(remote, "://"))
		return parse_scheme_url(remote, false, out, buf, buflen, NULL);
	colon = strchr(remote, ':');
	slash = strchr(remote, '/');
	if (!colon || (slash && slash < colon) || colon == remote)
		return -EINVAL;
	return parse_authority(remote, (size_t)(colon - remote), 22, out, buf, buflen);
}
