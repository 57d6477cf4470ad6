// SPDX-License-Identifier: Apache-2.0
/* The HTTP/1.1 request-head parser (api/http.h): pure, incremental, strict. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_tchar(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986: unreserved, sub-delims, ':', '@', '/', '?' and '%' (checked apart). */
static bool is_target_char(unsigned char c)
{
	return is_alnum(c) || (c && strchr("-._~!$&'()*+,;=:@/?%", c));
}

/* A hex digit's value, or -1 (the daemon never sets a locale: these are ASCII's). */
static int hexval(unsigned char c)
{
	static const char digits[] = "0123456789abcdef";

	return isxdigit(c) ? (int)(strchr(digits, tolower(c)) - digits) : -1;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static enum api_http_result fail(struct api_http_head *h, int status, const char *code,
				 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum api_http_result fail(struct api_http_head *h, int status, const char *code,
				 const char *fmt, ...)
{
	va_list ap;

	h->status = status;
	h->code = code;
	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	return API_HTTP_ERROR;
}

static enum api_http_result too_large(struct api_http_head *h, const struct api_http_limits *lim)
{
	return fail(h, 431, "headers_too_large",
		    "request line and headers are over %zu bytes (the limit)", lim->max_head);
}

static struct api_http_span span(const char *buf, const char *p, size_t n)
{
	return (struct api_http_span){(uint32_t)(p - buf), (uint32_t)n};
}

static bool token_is(const char *p, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(p, want, n) == 0;
}

/* Checks TARGET (@n > 0 bytes at @t) and sets its path and query. */
static enum api_http_result parse_target(const char *buf, const char *t, size_t n,
					 struct api_http_head *h)
{
	const char *end = t + n, *path = t, *q;

	for (const char *c = t; c < end; c++) {
		if (!is_target_char((unsigned char)*c))
			return fail(h, 400, "bad_request_line", "malformed request target");
		if (*c == '%' && (end - c < 3 || hexval((unsigned char)c[1]) < 0 ||
				  hexval((unsigned char)c[2]) < 0))
			return fail(h, 400, "bad_request_line",
				    "malformed percent-escape in the request target");
	}
	if (*t != '/') {
		size_t scheme = n > 7 && strncasecmp(t, "http://", 7) == 0    ? 7
				: n > 8 && strncasecmp(t, "https://", 8) == 0 ? 8
									      : 0;

		if (!scheme)
			return fail(h, 400, "bad_request_line",
				    "the request target must be a path or an absolute http URI");
		path = t + scheme;
		while (path < end && *path != '/' && *path != '?')
			path++;
		if (path == t + scheme)
			return fail(h, 400, "bad_request_line", "absolute URI without a host");
	}
	q = memchr(path, '?', (size_t)(end - path));
	h->target = span(buf, t, n);
	h->path = span(buf, path, (size_t)((q ? q : end) - path));
	h->has_query = q != NULL;
	h->query = q ? span(buf, q + 1, (size_t)(end - q - 1)) : span(buf, end, 0);
	return API_HTTP_NEED_MORE;
}

/* METHOD SP TARGET SP HTTP/1.x: the @n bytes at @p (without the line end). */
static enum api_http_result request_line(const char *buf, const char *p, size_t n,
					 struct api_http_head *h)
{
	const char *end = p + n, *sp1 = memchr(p, ' ', n), *sp2, *v;
	enum api_http_result r;

	for (const char *c = p; c < end; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			return fail(h, 400, "bad_request_line",
				    "control or non-ASCII character in the request line");
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 ||
	    memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
		return fail(h, 400, "bad_request_line",
			    "malformed request line (want METHOD TARGET HTTP/1.x)");
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar((unsigned char)*c))
			return fail(h, 400, "bad_request_line", "malformed method");
	h->method = span(buf, p, (size_t)(sp1 - p));
	r = parse_target(buf, sp1 + 1, (size_t)(sp2 - sp1 - 1), h);
	if (r != API_HTTP_NEED_MORE)
		return r;
	v = sp2 + 1;
	if (end - v == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
		h->minor = v[7] - '0';
		return API_HTTP_NEED_MORE;
	}
	if (end - v == 8 && memcmp(v, "HTTP/", 5) == 0 && is_digit((unsigned char)v[5]) &&
	    v[6] == '.' && is_digit((unsigned char)v[7]))
		return fail(h, 505, "http_version_not_supported",
			    "only HTTP/1.0 and HTTP/1.1 are spoken here");
	return fail(h, 400, "bad_request_line", "malformed HTTP version");
}

static enum api_http_result
content_length(const char *v, size_t n, const struct api_http_limits *lim, struct api_http_head *h)
{
	uint64_t len = 0;

	if (h->has_length)
		return fail(h, 400, "bad_content_length", "more than one Content-Length");
	if (n == 0 || n > 19)
		return fail(h, 400, "bad_content_length", "malformed Content-Length");
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)v[i]))
			return fail(h, 400, "bad_content_length", "malformed Content-Length");
		len = len * 10 + (uint64_t)(v[i] - '0'); /* 19 digits: no overflow */
	}
	if (len > lim->max_body)
		return fail(h, 413, "body_too_large",
			    "request body is %llu bytes; the limit is %llu",
			    (unsigned long long)len, (unsigned long long)lim->max_body);
	h->has_length = true;
	h->length = len;
	return API_HTTP_NEED_MORE;
}

/* Connection: a comma-separated list of options; close and keep-alive matter here. */
static void connection(const char *v, size_t n, struct api_http_head *h)
{
	const char *end = v + n;

	while (v < end) {
		const char *comma = memchr(v, ',', (size_t)(end - v)), *e = comma ? comma : end;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (token_is(v, (size_t)(e - v), "close"))
			h->conn_close = true;
		else if (token_is(v, (size_t)(e - v), "keep-alive"))
			h->conn_keep_alive = true;
		v = comma ? comma + 1 : end;
	}
}

/* NAME ":" OWS VALUE OWS: the @n > 0 bytes at @p. */
static enum api_http_result field_line(const char *buf, const char *p, size_t n,
				       const struct api_http_limits *lim, struct api_http_head *h)
{
	const char *end = p + n, *colon, *v;
	struct api_http_field *f;
	size_t nlen, vlen;

	if (p[0] == ' ' || p[0] == '\t')
		return fail(h, 400, "bad_header", "folded header lines are not accepted");
	colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return fail(h, 400, "bad_header", "malformed header line");
	nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)p[i]))
			return fail(h, 400, "bad_header", "malformed header name");
	for (v = colon + 1; v < end; v++) {
		unsigned char c = (unsigned char)*v;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(h, 400, "bad_header", "control character in a header value");
	}
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	vlen = (size_t)(end - v);
	if (h->nfields == API_HTTP_MAX_FIELDS)
		return fail(h, 431, "headers_too_large", "more than %d header lines",
			    API_HTTP_MAX_FIELDS);
	f = &h->fields[h->nfields++];
	f->name = span(buf, p, nlen);
	f->value = span(buf, v, vlen);
	if (token_is(p, nlen, "Content-Length"))
		return content_length(v, vlen, lim, h);
	if (token_is(p, nlen, "Transfer-Encoding"))
		return fail(h, 411, "length_required",
			    "request bodies need Content-Length (no Transfer-Encoding)");
	if (token_is(p, nlen, "Expect")) {
		if (!token_is(v, vlen, "100-continue"))
			return fail(h, 417, "expectation_failed",
				    "only Expect: 100-continue is known");
		h->expect_continue = true;
	}
	if (token_is(p, nlen, "Connection"))
		connection(v, vlen, h);
	return API_HTTP_NEED_MORE;
}

enum api_http_result api__http_parse(const char *buf, size_t len, const struct api_http_limits *lim,
				     struct api_http_head *h)
{
	if (h->status)
		return API_HTTP_ERROR;
	if (h->len)
		return API_HTTP_COMPLETE;
	while (h->pos < len) {
		const char *line = buf + h->pos, *nl;
		size_t from = h->pos + h->scan, n;
		enum api_http_result r;

		nl = from < len ? memchr(buf + from, '\n', len - from) : NULL;
		if (!nl) {
			h->scan = len - h->pos;
			break;
		}
		if ((size_t)(nl - buf) + 1 > lim->max_head)
			return too_large(h, lim);
		n = (size_t)(nl - line);
		if (n && nl[-1] == '\r')
			n--;
		h->pos = (size_t)(nl - buf) + 1;
		h->scan = 0;
		if (!h->have_line) {
			if (n == 0)
				continue; /* an empty line before the request line (RFC 9112 2.2) */
			r = request_line(buf, line, n, h);
			h->have_line = true;
		} else if (n == 0) {
			h->len = h->pos;
			h->keep_alive = h->minor == 1 ? !h->conn_close
						      : h->conn_keep_alive && !h->conn_close;
			return API_HTTP_COMPLETE;
		} else {
			r = field_line(buf, line, n, lim, h);
		}
		if (r == API_HTTP_ERROR)
			return r;
	}
	if (len > lim->max_head)
		return too_large(h, lim);
	return API_HTTP_NEED_MORE;
}

const struct api_http_field *api__http_field(const struct api_http_head *h, const char *buf,
					     const char *name)
{
	for (unsigned i = 0; i < h->nfields; i++)
		if (token_is(buf + h->fields[i].name.off, h->fields[i].name.len, name))
			return &h->fields[i];
	return NULL;
}

int api__http_unescape(const char *s, size_t n, bool plus, char *out, size_t *ret_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -EINVAL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (c == '\0')
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	*ret_len = o;
	return 0;
}
