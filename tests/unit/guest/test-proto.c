/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the agent wire codec (guest/guest.h): header encode/decode and its
 * limits, the TLV builder and parser on truncated and hostile input, and frame I/O on
 * a socketpair (EOF at and inside a frame, timeouts, size limits).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/guest.h"

static void hdr_bytes(uint8_t out[GUEST_HDR_SIZE], uint8_t type, uint32_t len, uint64_t id)
{
	struct guest_hdr h = {.version = GUEST_PROTO_VERSION, .type = type, .len = len, .id = id};

	guest_hdr__encode(&h, out);
}

Test(proto, header_layout_is_little_endian)
{
	uint8_t raw[GUEST_HDR_SIZE];

	hdr_bytes(raw, GUEST_MSG_RUN, 0x01020304, 0x1122334455667788ULL);
	const uint8_t want[GUEST_HDR_SIZE] = {'N',  'U',  1,	0x02, 0x04, 0x03, 0x02, 0x01,
					      0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
	cr_assert_arr_eq(raw, want, sizeof(want));
}

Test(proto, header_roundtrip)
{
	uint8_t raw[GUEST_HDR_SIZE];
	struct guest_hdr h = {0};

	hdr_bytes(raw, GUEST_MSG_STDOUT, GUEST_PAYLOAD_MAX, UINT64_MAX);
	cr_assert_eq(guest_hdr__decode(raw, &h), 0);
	cr_assert_eq(h.type, GUEST_MSG_STDOUT);
	cr_assert_eq(h.len, GUEST_PAYLOAD_MAX);
	cr_assert_eq(h.id, UINT64_MAX);
	cr_assert_eq(h.version, GUEST_PROTO_VERSION);
}

Test(proto, header_rejects_bad_magic_version_and_size)
{
	uint8_t raw[GUEST_HDR_SIZE];
	struct guest_hdr h = {.type = 0x55};

	hdr_bytes(raw, GUEST_MSG_PING, 0, 1);
	raw[0] ^= 0xff;
	cr_assert_eq(guest_hdr__decode(raw, &h), -EPROTO);

	hdr_bytes(raw, GUEST_MSG_PING, 0, 1);
	raw[2] = GUEST_PROTO_VERSION + 1;
	cr_assert_eq(guest_hdr__decode(raw, &h), -EPROTONOSUPPORT);

	hdr_bytes(raw, GUEST_MSG_PING, GUEST_PAYLOAD_MAX + 1, 1);
	cr_assert_eq(guest_hdr__decode(raw, &h), -EMSGSIZE);
	hdr_bytes(raw, GUEST_MSG_PING, UINT32_MAX, 1);
	cr_assert_eq(guest_hdr__decode(raw, &h), -EMSGSIZE);
	cr_assert_eq(h.type, 0x55, "ret_ must stay untouched on failure");
}

Test(proto, tlv_roundtrip)
{
	struct guest_buf b = {0};
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len, v32;
	uint64_t v64;
	uint16_t tag;
	char *s;

	cr_assert_eq(guest_buf__put_str(&b, GUEST_TAG_ARG, "echo"), 0);
	cr_assert_eq(guest_buf__put_tlv(&b, GUEST_TAG_STDIN, "", 0), 0);
	cr_assert_eq(guest_buf__put_u32(&b, GUEST_TAG_TIMEOUT_MS, 0xdeadbeef), 0);
	cr_assert_eq(guest_buf__put_u64(&b, GUEST_TAG_SIZE, 0x0102030405060708ULL), 0);
	cr_assert_eq(b.len, 4 * GUEST_TLV_HDR_SIZE + 4 + 0 + 4 + 8);

	guest_tlv__init(&it, b.data, b.len);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 1);
	cr_assert_eq(tag, GUEST_TAG_ARG);
	cr_assert_eq(guest_tlv__str(val, len, &s), 0);
	cr_assert_str_eq(s, "echo");
	free(s);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 1);
	cr_assert_eq(tag, GUEST_TAG_STDIN);
	cr_assert_eq(len, 0);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 1);
	cr_assert_eq(guest_tlv__u32(val, len, &v32), 0);
	cr_assert_eq(v32, 0xdeadbeef);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 1);
	cr_assert_eq(guest_tlv__u64(val, len, &v64), 0);
	cr_assert_eq(v64, 0x0102030405060708ULL);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 0);
	guest_buf__release(&b);
	cr_assert_null(b.data);
	guest_buf__release(NULL);
}

Test(proto, tlv_truncated_and_lying_lengths)
{
	/* tag 1, length 10, but only 3 value bytes follow */
	const uint8_t lying[] = {1, 0, 10, 0, 0, 0, 'a', 'b', 'c'};
	/* a field header cut short */
	const uint8_t cut[] = {1, 0, 0, 0};
	/* length 0xffffffff: must not wrap around */
	const uint8_t huge[] = {1, 0, 0xff, 0xff, 0xff, 0xff, 'x'};
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len;
	uint16_t tag;

	guest_tlv__init(&it, lying, sizeof(lying));
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), -EPROTO);
	guest_tlv__init(&it, cut, sizeof(cut));
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), -EPROTO);
	guest_tlv__init(&it, huge, sizeof(huge));
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), -EPROTO);
	guest_tlv__init(&it, NULL, 100);
	cr_assert_eq(guest_tlv__next(&it, &tag, &val, &len), 0);
}

Test(proto, tlv_typed_values_checked)
{
	const uint8_t five[5] = {1, 2, 3, 4, 5};
	const uint8_t nul[] = {'a', 0, 'b'};
	uint32_t v32 = 7;
	uint64_t v64 = 7;
	char *s = NULL;

	cr_assert_eq(guest_tlv__u32(five, 5, &v32), -EPROTO);
	cr_assert_eq(guest_tlv__u32(five, 3, &v32), -EPROTO);
	cr_assert_eq(guest_tlv__u64(five, 5, &v64), -EPROTO);
	cr_assert_eq(v32, 7);
	cr_assert_eq(v64, 7);
	cr_assert_eq(guest_tlv__str(nul, sizeof(nul), &s), -EPROTO);
	cr_assert_null(s);
	cr_assert_eq(guest_tlv__str(nul, 0, &s), 0);
	cr_assert_str_eq(s, "");
	free(s);
}

Test(proto, buffer_bounded_by_payload_max)
{
	struct guest_buf b = {0};
	uint8_t *big = calloc(1, GUEST_PAYLOAD_MAX);

	cr_assert_not_null(big);
	cr_assert_eq(guest_buf__put_tlv(&b, GUEST_TAG_STDIN, big,
					GUEST_PAYLOAD_MAX - GUEST_TLV_HDR_SIZE),
		     0);
	cr_assert_eq(b.len, GUEST_PAYLOAD_MAX);
	cr_assert_eq(guest_buf__put(&b, big, 1), -EMSGSIZE);
	cr_assert_eq(guest_buf__put_u32(&b, GUEST_TAG_MODE, 1), -EMSGSIZE);
	cr_assert_eq(b.len, GUEST_PAYLOAD_MAX, "a failed put leaves the buffer as it was");
	guest_buf__release(&b);
	cr_assert_eq(guest_buf__put_tlv(&b, GUEST_TAG_STDIN, big, GUEST_PAYLOAD_MAX), -EMSGSIZE);
	cr_assert_eq(guest_buf__put_tlv(&b, GUEST_TAG_STDIN, big, SIZE_MAX), -EMSGSIZE);
	guest_buf__release(&b);
	free(big);
}

/* The frame tests' fixture: a connected socketpair (sv[0] writes, sv[1] reads) and what
 * guest_frame__read gives back. */
static struct {
	int sv[2];
	struct guest_buf pl;
	struct guest_hdr h;
} f = {.sv = {-1, -1}};

static void frame_open(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv), 0);
}

static void frame_close(void)
{
	for (int i = 0; i < 2; i++)
		if (f.sv[i] >= 0)
			close(f.sv[i]);
	guest_buf__release(&f.pl);
}

/* The writer hangs up: what it sent stays readable, then EOF. */
static void hang_up(void)
{
	close(f.sv[0]);
	f.sv[0] = -1;
}

static int read_frame(int timeout_ms)
{
	return guest_frame__read(f.sv[1], &f.h, &f.pl, timeout_ms);
}

/* A DATA frame that announces 100 payload bytes but is cut after its first n bytes
 * (the header, then "abc"), and the writer gone: what a read makes of it. */
static int read_cut_frame(size_t n)
{
	uint8_t raw[GUEST_HDR_SIZE + 3];

	hdr_bytes(raw, GUEST_MSG_DATA, 100, 1);
	memcpy(raw + GUEST_HDR_SIZE, "abc", 3);
	cr_assert_leq(n, sizeof(raw));
	cr_assert_eq(write(f.sv[0], raw, n), (ssize_t)n);
	hang_up();
	return read_frame(1000);
}

Test(proto, frame_io_roundtrip_and_eof, .init = frame_open, .fini = frame_close)
{
	cr_assert_eq(guest_frame__write(f.sv[0], GUEST_MSG_DATA, 42, "\0\1\2\377", 4, 1000), 0);
	cr_assert_eq(guest_frame__write(f.sv[0], GUEST_MSG_END, 42, NULL, 0, 1000), 0);
	cr_assert_eq(read_frame(1000), 0);
	cr_assert_eq(f.h.type, GUEST_MSG_DATA);
	cr_assert_eq(f.h.id, 42);
	cr_assert_eq(f.pl.len, 4);
	cr_assert_arr_eq(f.pl.data, "\0\1\2\377", 4);
	cr_assert_eq(read_frame(1000), 0);
	cr_assert_eq(f.h.type, GUEST_MSG_END);
	cr_assert_eq(f.pl.len, 0);
	hang_up();
	cr_assert_eq(read_frame(1000), -EPIPE);
}

Test(proto, frame_read_cut_inside_header, .init = frame_open, .fini = frame_close)
{
	cr_assert_eq(read_cut_frame(7), -ECONNRESET);
}

Test(proto, frame_read_cut_inside_payload, .init = frame_open, .fini = frame_close)
{
	cr_assert_eq(read_cut_frame(GUEST_HDR_SIZE + 3), -ECONNRESET);
}

Test(proto, frame_read_refuses_oversized_without_reading_it, .init = frame_open,
     .fini = frame_close)
{
	uint8_t raw[GUEST_HDR_SIZE];

	hdr_bytes(raw, GUEST_MSG_DATA, GUEST_PAYLOAD_MAX + 1, 1);
	cr_assert_eq(write(f.sv[0], raw, sizeof(raw)), (ssize_t)sizeof(raw));
	cr_assert_eq(read_frame(1000), -EMSGSIZE);
	cr_assert_lt(f.pl.cap, (size_t)GUEST_PAYLOAD_MAX, "no buffer for a payload it refused");
	cr_assert_eq(guest_frame__write(f.sv[0], GUEST_MSG_DATA, 1, "", GUEST_PAYLOAD_MAX + 1, 0),
		     -EMSGSIZE);
}

Test(proto, frame_read_times_out, .init = frame_open, .fini = frame_close)
{
	cr_assert_eq(read_frame(10), -ETIMEDOUT);
	/* A half-sent frame times out too instead of waiting forever. */
	cr_assert_eq(write(f.sv[0], "NU", 2), 2);
	cr_assert_eq(read_frame(10), -ETIMEDOUT);
}

Test(proto, frame_max_payload_passes, .init = frame_open, .fini = frame_close)
{
	uint8_t *big = malloc(GUEST_PAYLOAD_MAX);
	pid_t pid;
	int st = 0;

	cr_assert_not_null(big);
	for (size_t i = 0; i < GUEST_PAYLOAD_MAX; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 8));
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(guest_frame__write(f.sv[0], GUEST_MSG_STDOUT, 9, big, GUEST_PAYLOAD_MAX, -1)
			      ? 1
			      : 0);
	cr_assert_eq(read_frame(-1), 0);
	cr_assert_eq(f.pl.len, GUEST_PAYLOAD_MAX);
	cr_assert_eq(memcmp(f.pl.data, big, GUEST_PAYLOAD_MAX), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(big);
}
