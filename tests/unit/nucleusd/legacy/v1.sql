-- Migration 1: the whole initial schema.
CREATE TABLE profiles (
  name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
  body TEXT NOT NULL CHECK (json_valid(body)),
  builtin INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),
  updated_us INTEGER NOT NULL);
CREATE TABLE sandboxes (
  id TEXT PRIMARY KEY CHECK (id GLOB 'sb-[0-9a-f]*' AND length(id) = 19),
  name TEXT,
  state TEXT NOT NULL CHECK (state IN
    ('creating', 'running', 'paused', 'stopped', 'failed')),
  profile TEXT REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,
  policy TEXT NOT NULL CHECK (json_valid(policy)),
  spec TEXT NOT NULL CHECK (json_valid(spec)),
  vcpus INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 64),
  memory_mib INTEGER NOT NULL CHECK (memory_mib BETWEEN 16 AND 1048576),
  boot_ms INTEGER CHECK (boot_ms IS NULL OR boot_ms >= 0),
  vmm_pid INTEGER NOT NULL DEFAULT 0,
  reason TEXT,
  owner_uid INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL);
-- A name is unique among sandboxes that are still alive.
CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(name)
  WHERE name IS NOT NULL AND state NOT IN ('stopped', 'failed');
CREATE INDEX sandboxes_state ON sandboxes(state);
-- Policy sessions: state is the policy engine's serialized session (JSON).
CREATE TABLE sessions (
  id TEXT PRIMARY KEY CHECK (length(id) = 32),
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  peer_uid INTEGER NOT NULL,
  state TEXT CHECK (state IS NULL OR json_valid(state)),
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  closed_us INTEGER);
CREATE UNIQUE INDEX sessions_open ON sessions(sandbox_id) WHERE closed_us IS NULL;
CREATE TABLE approvals (
  nonce TEXT PRIMARY KEY CHECK (length(nonce) >= 16),
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  tool TEXT NOT NULL,
  request TEXT NOT NULL CHECK (json_valid(request)),
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
    ('pending', 'approved', 'denied', 'used', 'expired')),
  created_us INTEGER NOT NULL,
  expires_us INTEGER NOT NULL,
  decided_us INTEGER,
  approver TEXT,
  signature BLOB);
CREATE INDEX approvals_sandbox ON approvals(sandbox_id, state);
-- Budgets (issue 6): limits per sandbox and kind; balances = limit - SUM(ledger).
CREATE TABLE budget_limits (
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  kind TEXT NOT NULL CHECK (kind IN ('cpu_ms', 'mem_mib_s', 'mem_peak_mib', 'tokens',
    'usd_micro')),
  amount INTEGER NOT NULL CHECK (amount >= 0),
  PRIMARY KEY (sandbox_id, kind));
CREATE TABLE budget_ledger (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  kind TEXT NOT NULL CHECK (kind IN ('cpu_ms', 'mem_mib_s', 'mem_peak_mib', 'tokens',
    'usd_micro')),
  amount INTEGER NOT NULL CHECK (amount >= 0),
  reason TEXT NOT NULL,
  at_us INTEGER NOT NULL,
  idem_key TEXT UNIQUE);
CREATE INDEX budget_ledger_sandbox ON budget_ledger(sandbox_id, kind);
-- The audit log: append-only (triggers), hash-chained and signed (audit.c).
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at_us INTEGER NOT NULL,
  sandbox_id TEXT,
  actor_uid INTEGER,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL,
  sig BLOB NOT NULL);
CREATE INDEX audit_log_sandbox ON audit_log(sandbox_id, seq);
CREATE TABLE audit_head (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash BLOB NOT NULL,
  sig BLOB NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
