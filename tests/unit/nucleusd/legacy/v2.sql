-- Migration 2: running balances. budget_spent(sandbox, kind) is SUM(amount) of the
-- ledger, kept by a trigger in the same transaction as every insert (so it commits and
-- rolls back with the rows and a crash cannot split them), and read instead of summing a
-- ledger that the meter grows by a few rows per second. The ledger becomes append-only.
CREATE TABLE budget_spent (
  sandbox_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  spent INTEGER NOT NULL,
  PRIMARY KEY (sandbox_id, kind));
INSERT INTO budget_spent(sandbox_id, kind, spent)
  SELECT sandbox_id, kind, SUM(amount) FROM budget_ledger GROUP BY sandbox_id, kind;
CREATE TRIGGER budget_ledger_spent AFTER INSERT ON budget_ledger BEGIN
  INSERT INTO budget_spent(sandbox_id, kind, spent)
    VALUES (NEW.sandbox_id, NEW.kind, NEW.amount)
    ON CONFLICT (sandbox_id, kind) DO UPDATE SET spent = spent + excluded.spent;
  END;
CREATE TRIGGER budget_ledger_no_update BEFORE UPDATE ON budget_ledger
  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;
CREATE TRIGGER budget_ledger_no_delete BEFORE DELETE ON budget_ledger
  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;
