-- The record mirror moved to the sync engine's sync_records (runtime_0002_sync).
DROP TABLE IF EXISTS records;
