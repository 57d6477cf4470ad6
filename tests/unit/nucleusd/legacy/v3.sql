-- Migration 3: sealed audit log (audit.c). Entries are hash-chained but no longer
-- signed one by one, and there is no per-append head row: the daemon signs the chain's
-- head into audit_seals, one row per seal, off the request path. The table is rebuilt
-- without AUTOINCREMENT (seq is set by audit.c; sqlite_sequence was one more page
-- written per entry) and without the per-entry signatures, which the old signed head
-- covers: it becomes the first seal (same message). Seals are append-only.
CREATE TABLE audit_log_v3 (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  at_us INTEGER NOT NULL,
  sandbox_id TEXT,
  actor_uid INTEGER,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL);
INSERT INTO audit_log_v3(seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, hash)
  SELECT seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, hash FROM audit_log
  ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_v3 RENAME TO audit_log;
CREATE INDEX audit_log_sandbox ON audit_log(sandbox_id, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE audit_seals (
  seq INTEGER PRIMARY KEY CHECK (seq > 0),
  hash BLOB NOT NULL,
  sig BLOB NOT NULL,
  at_us INTEGER NOT NULL);
INSERT INTO audit_seals(seq, hash, sig, at_us)
  SELECT seq, hash, sig, CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
  FROM audit_head WHERE seq > 0;
DROP TABLE audit_head;
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals
  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;
CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals
  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;
