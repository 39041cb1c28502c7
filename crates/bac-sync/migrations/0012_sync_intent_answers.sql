-- The provider's answer to a create whose record cannot be read again (a sent mail): a
-- create retried with the same intent id returns this answer instead of sending twice.
ALTER TABLE sync_intents ADD COLUMN IF NOT EXISTS answer jsonb;
