-- A deactivated user's keys stop working at once on every replica (the change notifies every
-- key prefix of the user); reactivating brings them back.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
