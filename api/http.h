/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 request-head parser of the API server (internal to api/; server.c is its
 * user). Pure: no I/O, no allocation, no global state. Incremental: the caller keeps
 * one struct api_http_head per head (zeroed before its first byte) and calls
 * api__http_parse() with all the bytes of that head received so far, from its first
 * byte, each time more arrive; each call only looks at what the previous ones had not
 * finished. Strict (RFC 9112 as a server may read it, and then some):
 *
 *   request line  METHOD SP TARGET SP HTTP/1.0|HTTP/1.1 (one space each; METHOD a token;
 *                 TARGET origin-form "/path?query" or absolute-form "http[s]://auth/path",
 *                 RFC 3986 characters only, every '%' followed by two hex digits)
 *   field lines   NAME ":" OWS VALUE OWS, NAME a token; no obs-fold; VALUE without
 *                 control characters (HTAB allowed; bytes >= 0x80 allowed: UTF-8 values)
 *   line ends     CRLF, or a bare LF; empty lines before the request line are skipped
 *   Content-Length  one, 1..19 digits, at most max_body (else 413)
 *   Transfer-Encoding  refused: 411 (request bodies need Content-Length)
 *   Expect        only 100-continue (else 417)
 *   the head      at most max_head bytes with its empty last line, at most
 *                 API_HTTP_MAX_FIELDS field lines (else 431)
 *
 * Never reads buf[len] or beyond. Errors carry the HTTP status, the API error code and
 * a message; api.md lists them.
 */
#ifndef NUCLEUS_API_HTTP_H
#define NUCLEUS_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_HTTP_MAX_FIELDS 100

/* Bytes [off, off + len) of the head's buffer. */
struct api_http_span {
	uint32_t off, len;
};

struct api_http_field {
	struct api_http_span name, value; /* value without the whitespace around it */
};

struct api_http_limits {
	size_t max_head;   /* request line + field lines + the empty line, bytes */
	uint64_t max_body; /* the largest Content-Length accepted */
};

enum api_http_result {
	API_HTTP_NEED_MORE, /* no error so far; the head is not complete */
	API_HTTP_COMPLETE,  /* the fields below are set */
	API_HTTP_ERROR,	    /* status, code and msg are set */
};

struct api_http_head {
	/* Parser state: zero before the first call for a head. */
	size_t pos;	/* start of the first line not parsed yet */
	size_t scan;	/* bytes from pos searched for a line end already */
	bool have_line; /* the request line was parsed */
	bool conn_close, conn_keep_alive;

	/* Once complete (the request line's parts are set as soon as it was parsed). */
	size_t len;			  /* bytes of the head, its empty last line included */
	struct api_http_span method;	  /* a token */
	struct api_http_span target;	  /* as sent */
	struct api_http_span path, query; /* still percent-encoded; query without '?' */
	bool has_query;			  /* a '?' was there (query may still be empty) */
	int minor;			  /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive;		  /* the connection may carry another request */
	bool has_length;		  /* Content-Length was sent */
	uint64_t length;		  /* its value (0 without it: no body) */
	bool expect_continue;		  /* Expect: 100-continue */
	unsigned nfields;
	struct api_http_field fields[API_HTTP_MAX_FIELDS];

	/* On API_HTTP_ERROR (stays set: further calls return the same error). */
	int status;	  /* 400, 411, 413, 417, 431 or 505 */
	const char *code; /* the API error code: bad_request_line, bad_header, ... */
	char msg[128];
};

enum api_http_result api__http_parse(const char *buf, size_t len, const struct api_http_limits *lim,
				     struct api_http_head *h);

/* The first field named @name (case-insensitive) of a complete head, or NULL. */
const struct api_http_field *api__http_field(const struct api_http_head *h, const char *buf,
					     const char *name);

/*
 * Percent-decodes @n bytes at @s into @out (room for @n + 1; NUL-terminated), '+' as a
 * space when @plus. -EINVAL for a '%' without two hex digits after it or a decoded NUL.
 */
int api__http_unescape(const char *s, size_t n, bool plus, char *out, size_t *ret_len);

#endif
