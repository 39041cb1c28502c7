-- The mirror, cheaper per row (scripts/bench sync, perf of the Postgres backends): its key
-- columns compare bytewise (COLLATE "C": tenant, connection and upstream ids have no
-- linguistic order to respect, and every sync page probes and inserts a thousand keys, where
-- the database's default collation paid for strcoll on each comparison), and its data is json,
-- kept as the engine wrote it (the engine reads records whole; jsonb's parse and key sort on
-- every insert cost more than the rest of the row).
ALTER TABLE sync_records
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN connection_id TYPE text COLLATE "C",
    ALTER COLUMN entity TYPE text COLLATE "C",
    ALTER COLUMN remote_id TYPE text COLLATE "C",
    ALTER COLUMN data TYPE json USING data::json;
