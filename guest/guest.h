/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest.h - the face of the guest module: the agent wire format spoken between the host
 * and nucleus-init (PID 1 in the guest), and the host-side client library (libguest).
 *
 * Transport: a byte stream. In a VM the agent listens on vsock port GUEST_AGENT_PORT; the
 * host reaches it through the VMM's vsock Unix socket ("CONNECT 1024\n" -> "OK <n>\n").
 * For tests the same server runs as `nucleus-init --serve-unix PATH`.
 *
 * One request per connection: the client connects, sends one request frame (a write
 * request is followed by its DATA frames and an END frame), reads reply frames until a
 * terminal one (OK, ERROR, EXIT, END), and the server closes the connection. Several
 * requests at once = several connections. docs/agent-protocol.md says why.
 *
 * Frame: a 16-byte header, then `len` payload bytes. All integers little-endian.
 *   off 0  u16 magic   GUEST_MAGIC
 *   off 2  u8  version GUEST_PROTO_VERSION
 *   off 3  u8  type    enum guest_msg
 *   off 4  u32 len     payload length, <= GUEST_PAYLOAD_MAX
 *   off 8  u64 id      request id; replies carry the id of their request
 * Payload: raw bytes for data frames (STDOUT, STDERR, DATA), else a sequence of TLV
 * fields: u16 tag (enum guest_tag), u32 length, value. Strings are not NUL-terminated
 * and must not contain NUL. Integers are u32/u64/i64 LE of exactly their size. Unknown
 * tags are ignored; a field that runs past the payload is malformed.
 *
 * A malformed or oversized frame gets an ERROR reply (EPROTO, EMSGSIZE) and the
 * connection is dropped.
 *
 * Client library: all functions return 0 (or a count) on success, a negative errno on
 * failure; an error the agent reported (e.g. ENOENT from open() in the guest) comes back
 * as the same negative errno. No global state, no printing; a struct guest is immutable
 * after setup (but for the connection list guest__cancel uses, under its own lock), so
 * calls from several threads on one struct guest are safe (each call has its own
 * connection).
 */
#ifndef NUCLEUS_GUEST_GUEST_H
#define NUCLEUS_GUEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Wire format -------------------------------------------------------------------- */

#define GUEST_AGENT_PORT    1024u   /* vsock port nucleus-init listens on */
#define GUEST_MAGIC	    0x554eu /* bytes 'N' 'U' on the wire */
#define GUEST_PROTO_VERSION 1u
#define GUEST_HDR_SIZE	    16u
#define GUEST_FRAME_MAX	    (1u << 20) /* header + payload */
#define GUEST_PAYLOAD_MAX   (GUEST_FRAME_MAX - GUEST_HDR_SIZE)
#define GUEST_CHUNK	    (64u << 10) /* data chunk size the agent sends */
#define GUEST_TLV_HDR_SIZE  6u

/* Message types. Requests are host -> guest (0x01..0x3f); replies guest -> host (0x80..).
 * DATA and END also go host -> guest after a WRITE request. */
enum guest_msg {
	GUEST_MSG_PING = 0x01,	   /* -> OK {VERSION, AGENT} */
	GUEST_MSG_RUN = 0x02,	   /* {ARG+, ENV*, CWD?, STDIN?, TIMEOUT_MS?}
				    * -> STARTED {PID}, STDOUT*, STDERR*, EXIT | ERROR */
	GUEST_MSG_READ = 0x03,	   /* {PATH} -> DATA*, END {SIZE} | ERROR */
	GUEST_MSG_WRITE = 0x04,	   /* {PATH, MODE?} then DATA*, END -> OK {SIZE} | ERROR */
	GUEST_MSG_STAT = 0x05,	   /* {PATH} -> OK {FTYPE, MODE, SIZE, MTIME_NS} | ERROR */
	GUEST_MSG_LIST = 0x06,	   /* {PATH} -> ENTRY* , END {COUNT} | ERROR */
	GUEST_MSG_KILL = 0x07,	   /* {TARGET, SIGNAL} -> OK {COUNT} | ERROR (ESRCH) */
	GUEST_MSG_SHUTDOWN = 0x08, /* -> OK, then the VM powers off (serve-unix: exits) */

	GUEST_MSG_OK = 0x80,	  /* terminal */
	GUEST_MSG_ERROR = 0x81,	  /* terminal: {ERRNO, MESSAGE?} */
	GUEST_MSG_STARTED = 0x82, /* the command runs: {PID} */
	GUEST_MSG_STDOUT = 0x83,  /* raw bytes */
	GUEST_MSG_STDERR = 0x84,  /* raw bytes */
	GUEST_MSG_EXIT = 0x85,	  /* terminal: {EXIT_CODE | EXIT_SIGNAL, TIMED_OUT?} */
	GUEST_MSG_DATA = 0x86,	  /* raw bytes (file contents, both directions) */
	GUEST_MSG_END = 0x87,	  /* end of a data stream; terminal for READ and LIST */
	GUEST_MSG_ENTRY = 0x88,	  /* one directory entry: {NAME, FTYPE, MODE, SIZE, MTIME_NS} */
};

/* TLV tags. Type of value in brackets. */
enum guest_tag {
	GUEST_TAG_ARG = 1,	    /* [str] argv element, repeated in order */
	GUEST_TAG_ENV = 2,	    /* [str] "NAME=value", repeated; none: default env */
	GUEST_TAG_CWD = 3,	    /* [str] working directory; none: "/" */
	GUEST_TAG_STDIN = 4,	    /* [bytes] the command's whole stdin; none: empty */
	GUEST_TAG_TIMEOUT_MS = 5,   /* [u32] 0 or none: no timeout */
	GUEST_TAG_PATH = 6,	    /* [str] absolute path */
	GUEST_TAG_MODE = 7,	    /* [u32] permission bits (07777) */
	GUEST_TAG_FTYPE = 8,	    /* [u32] enum guest_ftype */
	GUEST_TAG_SIZE = 9,	    /* [u64] */
	GUEST_TAG_MTIME_NS = 10,    /* [i64] nanoseconds since the epoch */
	GUEST_TAG_NAME = 11,	    /* [str] directory entry name */
	GUEST_TAG_TARGET = 12,	    /* [u64] request id of the RUN to signal */
	GUEST_TAG_SIGNAL = 13,	    /* [u32] signal number */
	GUEST_TAG_PID = 14,	    /* [u32] pid in the guest */
	GUEST_TAG_EXIT_CODE = 15,   /* [u32] exit status 0..255 */
	GUEST_TAG_EXIT_SIGNAL = 16, /* [u32] terminating signal */
	GUEST_TAG_TIMED_OUT = 17,   /* [u32] 1: the agent killed it for the timeout */
	GUEST_TAG_ERRNO = 18,	    /* [u32] positive errno value */
	GUEST_TAG_MESSAGE = 19,	    /* [str] human-readable detail */
	GUEST_TAG_VERSION = 20,	    /* [u32] protocol version */
	GUEST_TAG_AGENT = 21,	    /* [str] agent name and version */
	GUEST_TAG_COUNT = 22,	    /* [u32] */
};

/*
 * The environment of a RUN (ENV fields "NAME=value"). The agent refuses a RUN beyond
 * these (EINVAL for a bad name or value, E2BIG for too many or too much); nucleusd
 * checks the same limits at create (spec.env) and when it merges a call's env.
 */
#define GUEST_ENV_MAX	    512u	 /* ENV fields */
#define GUEST_ENV_NAME_MAX  255u	 /* bytes of a NAME */
#define GUEST_ENV_VALUE_MAX (32u << 10)	 /* bytes of a value */
#define GUEST_ENV_TOTAL_MAX (256u << 10) /* bytes of all "NAME=value" together */

/* A NAME of [A-Za-z_][A-Za-z0-9_]*, 1..GUEST_ENV_NAME_MAX bytes. */
static inline bool guest_env__name_ok(const char *name, size_t len)
{
	if (len == 0 || len > GUEST_ENV_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

enum guest_ftype {
	GUEST_FT_UNKNOWN = 0,
	GUEST_FT_REG = 1,
	GUEST_FT_DIR = 2,
	GUEST_FT_LNK = 3,
	GUEST_FT_CHR = 4,
	GUEST_FT_BLK = 5,
	GUEST_FT_FIFO = 6,
	GUEST_FT_SOCK = 7,
};

/* ---- Codec (shared by nucleus-init and the client; exposed for tests) -------------- */

struct guest_hdr {
	uint8_t version;
	uint8_t type;
	uint32_t len;
	uint64_t id;
};

/* Writes the 16 header bytes (magic and the given version). */
void guest_hdr__encode(const struct guest_hdr *h, uint8_t out[GUEST_HDR_SIZE]);
/* Parses and validates: -EPROTO bad magic, -EPROTONOSUPPORT other version,
 * -EMSGSIZE len > GUEST_PAYLOAD_MAX. *ret is set only on success. */
int guest_hdr__decode(const uint8_t in[GUEST_HDR_SIZE], struct guest_hdr *ret);

/* A growable payload buffer; bounded by GUEST_PAYLOAD_MAX (-EMSGSIZE beyond). */
struct guest_buf {
	uint8_t *data;
	size_t len, cap;
};
void guest_buf__release(struct guest_buf *b); /* frees data, zeroes; NULL ok */
int guest_buf__put(struct guest_buf *b, const void *data, size_t len);
int guest_buf__put_tlv(struct guest_buf *b, uint16_t tag, const void *val, size_t len);
int guest_buf__put_str(struct guest_buf *b, uint16_t tag, const char *s);
int guest_buf__put_u32(struct guest_buf *b, uint16_t tag, uint32_t v);
int guest_buf__put_u64(struct guest_buf *b, uint16_t tag, uint64_t v);

/* Iterates TLV fields of a payload. guest_tlv__next: 1 = a field in *ret_tag/val/len,
 * 0 = end, -EPROTO = truncated field. */
struct guest_tlv_iter {
	const uint8_t *p;
	size_t left;
};
void guest_tlv__init(struct guest_tlv_iter *it, const void *payload, size_t len);
int guest_tlv__next(struct guest_tlv_iter *it, uint16_t *ret_tag, const uint8_t **ret_val,
		    uint32_t *ret_len);
/* Typed value checks: -EPROTO on wrong size (or NUL inside a string). get_str copies
 * into a fresh NUL-terminated malloc()ed string (-ENOMEM). */
int guest_tlv__u32(const uint8_t *val, uint32_t len, uint32_t *ret);
int guest_tlv__u64(const uint8_t *val, uint32_t len, uint64_t *ret);
int guest_tlv__str(const uint8_t *val, uint32_t len, char **ret);

/* Blocking frame I/O on a stream fd (EINTR retried). timeout_ms < 0: wait forever.
 * guest_frame__read: reads a header and its payload into *payload (its len is set to
 * the payload length, grown as needed). Errors: -EPIPE on EOF at a frame boundary,
 * -ECONNRESET on EOF inside a frame, -ETIMEDOUT, or a guest_hdr__decode() error (the
 * payload is then not read). */
int guest_frame__write(int fd, uint8_t type, uint64_t id, const void *payload, size_t len,
		       int timeout_ms);
int guest_frame__read(int fd, struct guest_hdr *ret_hdr, struct guest_buf *payload, int timeout_ms);

/* ---- Host-side client ---------------------------------------------------------------- */

struct guest;

/* Through the VMM's vsock Unix socket (CONNECT handshake to port, normally
 * GUEST_AGENT_PORT), or straight to a Unix socket (nucleus-init --serve-unix). Neither
 * connects yet: every call makes its own connection. */
int guest__open_vsock(const char *uds_path, uint32_t port, struct guest **ret);
int guest__open_unix(const char *path, struct guest **ret);
void guest__close(struct guest *g); /* NULL ok */
/* Any thread (e.g. at shutdown): shuts down the connection of every call in progress on
 * g, so they return an error at once; calls made afterwards fail with -ECANCELED. */
void guest__cancel(struct guest *g);
/* connect_ms: connect + handshake; io_ms: longest wait for any single frame outside a
 * RUN (a RUN waits for the command: its timeout_ms plus io_ms, or forever without one).
 * Defaults 30000 / 60000. Negative = no limit. Set before sharing g between threads. */
void guest__set_timeouts(struct guest *g, int connect_ms, int io_ms);

/* A fresh random non-zero request id (to know a RUN's id before it starts, for kill). */
uint64_t guest__new_id(void);

int guest__ping(struct guest *g, uint32_t *ret_version);

struct guest_run_req {
	uint64_t id;		 /* 0: a fresh one */
	const char *const *argv; /* NULL-terminated, >= 1 element; PATH lookup in guest */
	const char *const *envp; /* NULL-terminated "K=V"; NULL: agent default env */
	const char *cwd;	 /* NULL: "/" */
	const void *stdin_data;	 /* whole stdin; the RUN frame must fit GUEST_PAYLOAD_MAX */
	size_t stdin_len;
	uint32_t timeout_ms; /* 0: none; on expiry the process group gets SIGKILL */
};
/* Callbacks, each optional, on the calling thread. A data callback returning < 0 ends
 * the run: the connection is closed (the agent then kills the process group) and
 * guest__run returns that value. */
struct guest_run_cbs {
	void (*started)(void *opaque, uint64_t id, uint32_t pid);
	int (*out)(void *opaque, const void *data, size_t len);
	int (*err)(void *opaque, const void *data, size_t len);
};
struct guest_run_result {
	int exit_code;	/* 0..255, or -1 when killed by a signal */
	int signal;	/* terminating signal, 0 when it exited */
	bool timed_out; /* the agent killed it because timeout_ms passed */
};
/* Returns 0 once the command ended (*ret filled). Failure to start (e.g. -ENOENT for an
 * unknown program, -ENOTDIR bad cwd) is an error return. */
int guest__run(struct guest *g, const struct guest_run_req *req, const struct guest_run_cbs *cbs,
	       void *opaque, struct guest_run_result *ret);

/* Streams a file: cb gets the chunks in order (< 0 from cb aborts and is returned). */
int guest__read_file(struct guest *g, const char *path,
		     int (*cb)(void *opaque, const void *data, size_t len), void *opaque,
		     uint64_t *ret_size);
/* Reads a whole file into a malloc()ed buffer (-EFBIG if larger than max). */
int guest__read_file_all(struct guest *g, const char *path, size_t max, void **ret_data,
			 size_t *ret_len);
/* Atomic replace (temp file in the same directory, fsync, rename, fsync dir), with
 * exactly `mode` permission bits. */
int guest__write_file(struct guest *g, const char *path, uint32_t mode, const void *data,
		      size_t len);
/* Same, contents read from fd until EOF. */
int guest__write_file_fd(struct guest *g, const char *path, uint32_t mode, int fd);

struct guest_stat {
	uint32_t ftype; /* enum guest_ftype */
	uint32_t mode;	/* permission bits, 07777 */
	uint64_t size;
	int64_t mtime_ns;
};
/* lstat semantics: a symlink is reported as GUEST_FT_LNK. */
int guest__stat(struct guest *g, const char *path, struct guest_stat *ret);
/* Calls cb for each entry (not "." and ".."), in the order the guest reads them;
 * name is valid during the call only. Returns the entry count. */
int guest__list(struct guest *g, const char *path,
		int (*cb)(void *opaque, const char *name, const struct guest_stat *st),
		void *opaque);
/* Sends sig to the process group of the running command started by request `id`.
 * -ESRCH when none runs. */
int guest__kill(struct guest *g, uint64_t id, int sig);
/* The agent acknowledges, then syncs, unmounts and powers the VM off. */
int guest__shutdown(struct guest *g);

#endif
