-- Migration 4: sandboxes by name. A name lookup (nucleusctl show NAME, every API path
-- that takes a name) scanned the table, which keeps every sandbox ever made.
CREATE INDEX sandboxes_name ON sandboxes(name, created_us) WHERE name IS NOT NULL;
