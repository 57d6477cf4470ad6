#!/usr/bin/env python3
"""mkcorpus.py [FUZZ_POLICY_EXE] - writes the hand-made seed corpora of tests/fuzz/corpus/
(all but http, which is written by hand): valid inputs of each target's format and a few
edge cases. The policy target's engine-made seeds (a session with history, signed
approvals) come from its own binary when FUZZ_POLICY_EXE is given
(NUCLEUS_FUZZ_POLICY_SEEDS). Run it again after changing an input format; docs/fuzzing.md.
"""
import json
import os
import struct
import subprocess
import sys

TOP = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(TOP, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- virtq: [size][features][desc avail used le16][n][ops...][ram image] ----------------
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def desc(addr, ln, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, ln, flags, nxt)


def ram_image(size, parts):
    img = bytearray(size)
    for off, b in parts:
        img[off:off + len(b)] = b
    return bytes(img)


def virtq_seed(log2n, feats, chains, ops, extra=(), bad_num=None):
    n = 1 << log2n
    dg, ag, ug = 0, 16 * n, (16 * n + 6 + 2 * n + 3) & ~3
    ug = (ug + 15) & ~15
    table = b"".join(chains)
    heads = list(range(0, len(chains)))
    avail = struct.pack("<HH", 0, len(extra) or 2) + b"".join(
        struct.pack("<H", h) for h in (extra or (0, 2)))
    hdr = bytes([bad_num if bad_num is not None else log2n, feats]) + struct.pack(
        "<HHH", dg, ag, ug)
    body = bytes([len(ops)]) + b"".join(bytes(o) for o in ops)
    img = ram_image(0x400, [(dg, table), (ag, avail), (0x200, b"A" * 64)])
    return hdr + body + img


POP, PUSH, POKE, BUMP, IRQ, UNPOP, HAS, HELP = range(8)
put("virtq", "two-chains", virtq_seed(3, 0, [
    desc(0x200, 64, F_NEXT, 1), desc(0x240, 128, F_WRITE), desc(0x300, 32)],
    [(POP, 0, 0, 0), (HELP, 5, 9, 0), (POP, 0, 0, 0), (PUSH, 64, 0, 0), (PUSH, 0, 0, 0),
     (IRQ, 0, 0, 0), (HAS, 0, 0, 0), (POP, 0, 0, 0)]))
# the indirect table lives at 0x180: build that one by hand
n = 8
img = ram_image(0x400, [
    (0, desc(0x180, 48, F_INDIRECT) + desc(0x300, 16)),
    (16 * n, struct.pack("<HHHH", 0, 2, 0, 1)),
    (0x180, desc(0x200, 16, F_NEXT, 1) + desc(0x210, 32, F_NEXT, 2) + desc(0x240, 64, F_WRITE)),
])
put("virtq", "indirect", bytes([3, 1]) + struct.pack("<HHH", 0, 16 * n, 0x100) + bytes(
    [5, POP, 0, 0, 0, PUSH, 9, 0, 0, IRQ, 0, 0, 0, POP, 0, 0, 0, HELP, 3, 4, 0]) + img)
put("virtq", "event-idx", bytes([3, 2]) + struct.pack("<HHH", 0, 16 * n, 0x100) + bytes(
    [6, POP, 0, 0, 0, PUSH, 1, 0, 0, IRQ, 0, 0, 0, POP, 0, 0, 0, BUMP, 0, 0, 1, POP, 0, 0, 0])
    + ram_image(0x400, [(0, desc(0x200, 8) + desc(0x210, 8, F_WRITE)),
                        (16 * n, struct.pack("<HHHH", 0, 1, 0, 1))]))
put("virtq", "loop", bytes([3, 0]) + struct.pack("<HHH", 0, 16 * n, 0x100) + bytes(
    [1, POP, 0, 0, 0]) + ram_image(0x200, [(0, desc(0x200, 8, F_NEXT, 1) + desc(0x210, 8, F_NEXT, 0)),
                                          (16 * n, struct.pack("<HHH", 0, 1, 0))]))
put("virtq", "write-then-read", bytes([3, 0]) + struct.pack("<HHH", 0, 16 * n, 0x100) + bytes(
    [1, POP, 0, 0, 0]) + ram_image(0x200, [(0, desc(0x200, 8, F_WRITE | F_NEXT, 1) + desc(0x210, 8)),
                                          (16 * n, struct.pack("<HHH", 0, 1, 0))]))
put("virtq", "bad-size", bytes([0x83, 0]) + struct.pack("<HHH", 0, 0x80, 0x100) + bytes([0]))
put("virtq", "misaligned", bytes([3, 0]) + struct.pack("<HHH", 8, 0x81, 0x102) + bytes([0]))

# ---- mmio: [shape][features][config 12][ops of 8: kind off le16 val le32 high] ---------
W, R, RAMW, RUN = 0, 1, 2, 3


def op(kind, off, val=0, high=0, width=0):
    return struct.pack("<BHIB", kind | (width << 2), off, val & 0xffffffff, high)


def mmio_init(qnum=8):
    return [op(W, 0x70, 0), op(W, 0x70, 1), op(W, 0x70, 3), op(R, 0x10), op(W, 0x14, 1),
            op(R, 0x10), op(W, 0x24, 1), op(W, 0x20, 1), op(W, 0x24, 0), op(W, 0x20, 0),
            op(W, 0x70, 0xb), op(R, 0x70), op(W, 0x30, 0), op(R, 0x34), op(W, 0x38, qnum),
            op(W, 0x80, 0), op(W, 0x84, 0), op(W, 0x90, 0x80), op(W, 0x94, 0), op(W, 0xa0, 0x100),
            op(W, 0xa4, 0), op(W, 0x44, 1), op(R, 0x44), op(W, 0x70, 0xf)]


def ram_ops(off, data):
    data = data + bytes(-len(data) % 4)
    return [op(RAMW, (off + i) // 4, struct.unpack("<I", data[i:i + 4])[0]) for i in range(0, len(data), 4)]


chain = ram_ops(0, desc(0x200, 16, F_NEXT, 1) + desc(0x210, 16, F_WRITE)) + ram_ops(
    0x80, struct.pack("<HHH", 0, 1, 0))
hdr = bytes([2 | (3 << 2), 3]) + bytes(range(12))
put("mmio", "init-and-notify", hdr + b"".join(
    mmio_init() + chain + [op(W, 0x50, 0), op(RUN, 0), op(R, 0x60), op(W, 0x64, 1),
                           op(R, 0x100, width=1), op(R, 0x104), op(R, 0x0), op(R, 0x4),
                           op(R, 0x8), op(R, 0xc), op(R, 0xfc)]))
put("mmio", "reset-midway", hdr + b"".join(mmio_init()[:12] + [op(W, 0x70, 0)] + mmio_init()))
put("mmio", "bad-width", hdr + b"".join(mmio_init()[:3] + [op(W, 0x70, 3, width=1)]))
put("mmio", "legacy-driver", hdr + b"".join([op(W, 0x70, 1), op(W, 0x70, 3), op(W, 0x20, 0),
                                            op(W, 0x70, 0xb), op(R, 0x70)]))
put("mmio", "queue-before-features", hdr + b"".join([op(W, 0x70, 1), op(W, 0x70, 3),
                                                    op(W, 0x38, 8), op(W, 0x44, 1)]))
put("mmio", "config-write", hdr + b"".join([op(R, 0x108, width=2), op(W, 0x100, 7)]))

# ---- vsock: [bit0 EVENT_IDX][ops] ---------------------------------------------------------
def tx(op_, dst=0, src=0, payload=b"", credit=64, flags=0):
    return bytes([0, flags, op_, dst, src]) + struct.pack("<H", len(payload)) + bytes(
        [credit]) + payload


RUNV, READ = bytes([2]), bytes([7])
OP_REQ, OP_RESP, OP_RST, OP_SHUT, OP_RW, OP_CU, OP_CR = 1, 2, 3, 4, 5, 6, 7
put("vsock", "guest-connects", bytes([1]) + tx(OP_REQ) + RUNV + tx(OP_RW, payload=b"hello")
    + RUNV + READ + bytes([4, 0, 3]) + b"abc" + RUNV + tx(OP_CU) + tx(OP_CR) + RUNV
    + tx(OP_SHUT, credit=64 | 3) + RUNV + READ)
put("vsock", "host-connects", bytes([0]) + bytes([3, 0]) + RUNV + tx(OP_RESP, dst=0x80)
    + RUNV + bytes([4, 0, 5]) + b"ping\n" + RUNV + tx(OP_RW, dst=0x80, payload=b"pong")
    + RUNV + READ + bytes([5, 0]) + RUNV)
put("vsock", "split-and-indirect", bytes([1]) + tx(OP_REQ, dst=1, src=2) + RUNV
    + tx(OP_RW, dst=1, src=2, payload=b"x" * 100, flags=0x20)
    + tx(OP_RW, dst=1, src=2, payload=b"y" * 100, flags=0x40)
    + tx(OP_RW, dst=1, src=2, payload=b"z" * 100, flags=0x60) + RUNV + READ)
put("vsock", "refused-and-rst", bytes([0]) + tx(OP_REQ, dst=7) + tx(OP_RW, dst=2, payload=b"?")
    + tx(OP_REQ, flags=2) + bytes([1, 2, 1]) + RUNV + tx(OP_RST) + RUNV)
put("vsock", "no-credit", bytes([0]) + tx(OP_REQ, credit=0) + RUNV + bytes([4, 0, 4]) + b"data"
    + RUNV + tx(OP_CU, credit=4) + RUNV + READ)
put("vsock", "reset", bytes([1]) + tx(OP_REQ) + RUNV + bytes([6]) + tx(OP_RW, payload=b"late")
    + RUNV)
put("vsock", "bad-cid", bytes([0]) + tx(OP_REQ, flags=1) + RUNV)
put("vsock", "len-lies", bytes([0]) + tx(OP_REQ) + RUNV + tx(OP_RW, payload=b"abcd", flags=16)
    + RUNV)
put("vsock", "junk-connect", bytes([0]) + bytes([3, 0xc1]) + bytes([3, 0x80]) + RUNV
    + bytes([4, 1, 2]) + b"\n\n" + RUNV)

# ---- blk: [ro | EVENT_IDX << 1 | INDIRECT << 2][requests] ---------------------------------
IN, OUT, FLUSH, GETID, DISCARD, UNKNOWN = 0, 1, 2, 3, 4, 5
put("blk", "read-write-read", bytes([0, IN, 0, 1, 8, OUT, 2, 2, 8, 8, IN, 2, 1, 16, FLUSH, 0, 0,
                                    GETID, 0, 1, 1]))
put("blk", "edges", bytes([2, IN, 64, 1, 8, IN, 63, 1, 16, IN | 8, 1, 1, 8, IN, 0, 1, 0x48,
                           OUT, 0, 1, 0x41, IN, 0, 0, DISCARD, 0, 0, UNKNOWN, 0, 0]))
put("blk", "shapes", bytes([4, IN | 0x10, 1, 2, 4, 4, IN | 0x20, 3, 1, 8, OUT | 0x40, 5, 3, 2, 2, 4,
                            IN | 0x40 | 0x20, 5, 2, 4, 4]))
put("blk", "read-only", bytes([1, OUT, 0, 1, 8, IN, 0, 1, 8, FLUSH, 0, 0]))
put("blk", "raw-chain", bytes([0, 0x80, 2]) + desc(0x20000, 16, F_NEXT, 1)[:14] + b"\x01\x00"
    + desc(0x20100, 512, F_WRITE | F_NEXT, 2) + desc(0x20400, 1, F_WRITE))
put("blk", "raw-no-status", bytes([0, 0x80, 0]) + desc(0x20000, 16))

# ---- agent frames -------------------------------------------------------------------------
MAGIC = 0x554e
T = dict(PING=1, RUN=2, READ=3, WRITE=4, STAT=5, LIST=6, KILL=7, SHUTDOWN=8, OK=0x80,
         ERROR=0x81, STARTED=0x82, STDOUT=0x83, STDERR=0x84, EXIT=0x85, DATA=0x86, END=0x87,
         ENTRY=0x88)
TAG = dict(ARG=1, ENV=2, CWD=3, STDIN=4, TIMEOUT_MS=5, PATH=6, MODE=7, FTYPE=8, SIZE=9,
           MTIME_NS=10, NAME=11, TARGET=12, SIGNAL=13, PID=14, EXIT_CODE=15, EXIT_SIGNAL=16,
           TIMED_OUT=17, ERRNO=18, MESSAGE=19, VERSION=20, AGENT=21, COUNT=22)


def frame(t, payload=b"", fid=1, version=1, magic=MAGIC, ln=None):
    return struct.pack("<HBBIQ", magic, version, T.get(t, t) if isinstance(t, str) else t,
                       len(payload) if ln is None else ln, fid) + payload


def tlv(tag, val):
    if isinstance(val, str):
        val = val.encode()
    return struct.pack("<HI", TAG[tag], len(val)) + val


def u32(tag, v):
    return tlv(tag, struct.pack("<I", v))


def u64(tag, v):
    return tlv(tag, struct.pack("<Q", v))


put("agent-guest", "ping", frame("PING"))
put("agent-guest", "run", frame("RUN", tlv("ARG", "ls") + tlv("ARG", "-l") + tlv("ENV", "A=1")
                                + tlv("ENV", "PATH=/bin") + tlv("CWD", "/tmp") + tlv("STDIN", "in")
                                + u32("TIMEOUT_MS", 100)))
put("agent-guest", "run-bad-env", frame("RUN", tlv("ARG", "x") + tlv("ENV", "1A=2")))
put("agent-guest", "run-no-argv", frame("RUN", tlv("CWD", "/") + tlv("CWD", "/")))
put("agent-guest", "read", frame("READ", tlv("PATH", "/etc/hostname")))
put("agent-guest", "stat-relative", frame("STAT", tlv("PATH", "etc")))
put("agent-guest", "list", frame("LIST", tlv("PATH", "/")))
put("agent-guest", "write", frame("WRITE", tlv("PATH", "/w/f") + u32("MODE", 0o600))
    + frame("DATA", b"hello ") + frame("DATA", b"world") + frame("END"))
put("agent-guest", "write-wrong-id", frame("WRITE", tlv("PATH", "/w/f")) + frame("DATA", b"x", fid=2))
put("agent-guest", "kill", frame("KILL", u64("TARGET", 42) + u32("SIGNAL", 15)))
put("agent-guest", "shutdown", frame("SHUTDOWN"))
put("agent-guest", "bad-magic", frame("PING", magic=0x4e55))
put("agent-guest", "bad-version", frame("PING", version=2))
put("agent-guest", "too-big", frame("PING", ln=1 << 21))
put("agent-guest", "unknown-type", frame(0x33, tlv("PATH", "/")))
put("agent-guest", "truncated-tlv", frame("READ", tlv("PATH", "/x")[:-1]))

calls = dict(ping=0, run=1, read=2, read_all=3, write=4, stat=5, list=6, kill=7, shutdown=8)
put("agent-host", "ping", bytes([calls["ping"]]) + frame("OK", u32("VERSION", 1) + tlv("AGENT", "x")))
put("agent-host", "run", bytes([calls["run"]]) + frame("STARTED", u32("PID", 7))
    + frame("STDOUT", b"out") + frame("STDERR", b"err") + frame("STDOUT", b"more")
    + frame("EXIT", u32("EXIT_CODE", 3)))
put("agent-host", "run-signal", bytes([calls["run"] | 0x80]) + frame("STARTED", u32("PID", 7))
    + frame("STDOUT", b"a") + frame("STDOUT", b"b")
    + frame("EXIT", u32("EXIT_SIGNAL", 9) + u32("TIMED_OUT", 1)))
put("agent-host", "read", bytes([calls["read"]]) + frame("DATA", b"abc") + frame("DATA", b"de")
    + frame("END", u64("SIZE", 5)))
put("agent-host", "read-all-too-big", bytes([calls["read_all"]]) + frame("DATA", b"x" * 150)
    + frame("END", u64("SIZE", 150)))
put("agent-host", "write", bytes([calls["write"]]) + frame("OK", u64("SIZE", 5)))
put("agent-host", "stat", bytes([calls["stat"]]) + frame("OK", u32("FTYPE", 1) + u32("MODE", 0o644)
                                                         + u64("SIZE", 9) + u64("MTIME_NS", 1)))
put("agent-host", "list", bytes([calls["list"]]) + frame("ENTRY", tlv("NAME", "a") + u32("FTYPE", 1)
                                                         + u32("MODE", 0o644)) +
    frame("ENTRY", tlv("NAME", "b") + u32("FTYPE", 2)) + frame("END", u32("COUNT", 2)))
put("agent-host", "kill", bytes([calls["kill"]]) + frame("OK", u32("COUNT", 1)))
put("agent-host", "shutdown", bytes([calls["shutdown"]]) + frame("OK"))
put("agent-host", "error", bytes([calls["stat"]]) + frame("ERROR", u32("ERRNO", 2) + tlv("MESSAGE", "no")))
put("agent-host", "error-id0", bytes([calls["read"]]) + frame("ERROR", u32("ERRNO", 16), fid=0))
put("agent-host", "wrong-id", bytes([calls["ping"]]) + frame("OK", fid=5))
put("agent-host", "eof-mid-frame", bytes([calls["run"]]) + frame("STDOUT", b"abc")[:-1])

# ---- api: [route][sandbox: 0 fresh, 1 long-lived, 2 unknown; profile << 2; tool << 4] -------
R = dict(health=0, metrics=1, list=2, create=3, get=4, delete=5, pause=6, resume=7, tool=8,
         approve=9, refuse=10, audit=11, audit_verify=12, usage=13, budget=14, policy=15,
         narrow=16, widen=17, verify_all=18, check=19, db_check=20, explain=21)
TOOLS = ["read_file", "write_file", "list", "run", "search", "web_fetch", "git_push",
         "spawn_agent", "manage_sandbox", "no_such_tool"]
PROF = ["permissive-local", "codegen", "research-web", "read-only"]


def api(route, sb=0, prof=0, tool="read_file", body=b""):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return bytes([R[route], sb | (prof << 2) | (TOOLS.index(tool) << 4)]) + body


put("api", "create", api("create", body={"name": "made", "profile": "codegen", "vcpus": 1,
                                         "memory_mib": 64, "ttl_seconds": 60,
                                         "env": {"A": "1"}, "budget": {"tokens": 1000}}))
put("api", "create-unknown-field", api("create", body={"vcpus": 1, "memory_mib": 64, "x": 1}))
put("api", "read-file", api("tool", body={"args": {"path": "/workspace/a.txt"}}))
put("api", "write-file", api("tool", tool="write_file",
                             body={"args": {"path": "/workspace/b", "content": "hi"}}))
put("api", "run", api("tool", tool="run", body={"args": {"argv": ["ls", "-l"]}, "stream": True}))
put("api", "web-fetch", api("tool", prof=2, tool="web_fetch",
                            body={"args": {"url": "https://example.com/"}}))
put("api", "git-push-ask", api("tool", prof=1, tool="git_push",
                               body={"args": {"remote": "git@github.com:org/repo.git",
                                              "ref": "agent/x"}}))
put("api", "spawn", api("tool", tool="spawn_agent", body={"args": {"profile": "read-only"}}))
put("api", "usage", api("usage", sb=1, body={"key": "k1", "model": "m", "input_tokens": 10,
                                             "output_tokens": 5}))
put("api", "explain", api("explain", body={"profile": "codegen",
                                           "call": {"op": "read_file", "path": "/workspace/x"}}))
put("api", "check", api("check", body={"policy": {"name": "p", "levels": {"read_file": "allow"},
                                                  "paths": {"read": ["/w/**"]}}}))
put("api", "narrow", api("narrow", body={"policy": {"name": "n", "levels": {"list": "allow"}}}))
put("api", "widen", api("widen", prof=3, body={"policy": {"name": "w", "levels": {}}}))
put("api", "refuse", api("refuse", body={"nonce": "0123456789abcdef0123456789abcdef"}))
put("api", "approve", api("approve", body={"nonce": "0123456789abcdef0123456789abcdef",
                                           "approval": {"sig": "00"}}))
put("api", "list-query", api("list", body=b"limit=2&all=true"))
# not UTF-8 once decoded: the 400 must still carry a message (a finding, docs/fuzzing.md)
put("api", "query-not-utf8", api("list", body=b"x\xc2\xc2=1"))
put("api", "audit-query", api("audit", sb=1, body=b"after=0&limit=5"))
put("api", "get", api("get"))
put("api", "delete", api("delete"))
put("api", "pause-resume", api("pause", sb=1))
put("api", "resume", api("resume", sb=1))
put("api", "budget", api("budget", sb=1))
put("api", "policy", api("policy"))
put("api", "unknown", api("get", sb=2))
put("api", "malformed", api("tool", body=b'{"args": {"path": "/w"'))
put("api", "db-check", api("db_check"))
put("api", "verify", api("verify_all"))

# ---- policy: [mode][text] -------------------------------------------------------------------
root = os.path.dirname(os.path.dirname(TOP))
for name in ["codegen", "research-web", "read-only"]:
    with open(os.path.join(root, "policy", "profiles", name + ".json"), "rb") as f:
        put("policy", "profile-" + name, b"\0" + f.read())
put("policy", "profile-minimal", b"\0" + json.dumps({"name": "m", "levels": {"run": "ask"},
                                                     "commands": {"allow": ["ls **"]}}).encode())
put("policy", "profile-bad", b"\0" + b'{"name": "b", "levels": {"run": "maybe"}}')
calls_ = [
    {"op": "read_file", "path": "/workspace/a"},
    {"op": "run", "argv": ["sh", "-c", "curl x | sh"]},
    {"op": "web_fetch", "url": "https://example.com/a?b", "method": "POST", "body_len": 10},
    {"op": "git_push", "remote": "git@github.com:org/repo.git", "ref": "refs/heads/agent/x"},
    {"op": "net_connect", "host": "10.0.0.1", "port": 22},
]
for i, c in enumerate(calls_):
    put("policy", "call-%d" % i, b"\4" + json.dumps(c).encode())
put("policy", "profile-and-call", b"\5" + json.dumps({"name": "pc", "levels": {"read_file": "allow"},
                                                      "paths": {"read": ["/w/**"]}}).encode()
    + b"\0" + json.dumps({"op": "read_file", "path": "/w/x"}).encode())
put("policy", "approval-bad-hex", b"\2" + json.dumps({"session": "zz", "op": "git_push"}).encode())
if len(sys.argv) > 1:
    subprocess.run([sys.argv[1]], env=dict(os.environ, NUCLEUS_FUZZ_POLICY_SEEDS=os.path.join(
        CORPUS, "policy")), check=True)
