-- Partitions under an entity (a Google user's mailbox, one calendar): each has its own run,
-- lease, cursor and failure. '' is the entity itself (unpartitioned, or the run that lists
-- the partitions and queues theirs).
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS partition text NOT NULL DEFAULT '';
DROP INDEX IF EXISTS sync_runs_one_active;
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (tenant_id, connection_id, entity, partition)
    WHERE status IN ('queued', 'running');
ALTER TABLE sync_cursors ADD COLUMN IF NOT EXISTS partition text NOT NULL DEFAULT '';
ALTER TABLE sync_cursors DROP CONSTRAINT IF EXISTS sync_cursors_pkey;
ALTER TABLE sync_cursors ADD PRIMARY KEY (tenant_id, connection_id, entity, partition);
