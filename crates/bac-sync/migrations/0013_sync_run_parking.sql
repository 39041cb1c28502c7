-- A run the provider rate-limited waits in line until the provider's window resets instead of
-- failing: it is not leased before `not_before`, and keeps its checkpoint.
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS not_before timestamptz;
