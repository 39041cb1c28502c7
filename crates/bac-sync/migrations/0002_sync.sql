-- The sync engine's tables (in every service schema that syncs). Every row carries tenant_id.

-- Per connection and entity: how often to sync and how to settle conflicts.
CREATE TABLE sync_settings (
    tenant_id         text NOT NULL,
    connection_id     text NOT NULL,
    entity            text NOT NULL,
    -- manual | hourly | daily | weekly | a cron expression
    frequency         text NOT NULL DEFAULT 'manual',
    next_due_at       timestamptz,
    conflict_strategy text NOT NULL DEFAULT 'last_write_wins',
    field_owners      jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connection_id, entity)
);
CREATE INDEX sync_settings_due ON sync_settings (next_due_at) WHERE next_due_at IS NOT NULL;

-- Where the next incremental run starts (the adapter's cursor, e.g. Odoo write_date).
CREATE TABLE sync_cursors (
    tenant_id       text NOT NULL,
    connection_id   text NOT NULL,
    entity          text NOT NULL,
    cursor          jsonb NOT NULL,
    last_success_at timestamptz NOT NULL,
    last_run_id     uuid NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, entity)
);

-- One row per run. `checkpoint` is the adapter's position inside the run, advanced in the
-- same transaction as each page's mirror rows and events, so a run taken over after its
-- lease expired resumes at the last committed page.
CREATE TABLE sync_runs (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    connection_id   text NOT NULL,
    entity          text NOT NULL,
    mode            text NOT NULL,
    trigger         text NOT NULL,
    status          text NOT NULL,
    checkpoint      jsonb,
    records_seen    bigint NOT NULL DEFAULT 0,
    records_created bigint NOT NULL DEFAULT 0,
    records_updated bigint NOT NULL DEFAULT 0,
    records_deleted bigint NOT NULL DEFAULT 0,
    records_failed  bigint NOT NULL DEFAULT 0,
    errors          jsonb NOT NULL DEFAULT '[]'::jsonb,
    error           text,
    lease_owner     text,
    -- A fresh token per lease: a holder whose lease was taken over (even by its own replica)
    -- can no longer extend it or write pages.
    lease_token     uuid,
    lease_until     timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
-- At most one queued or running run per connection and entity: a second trigger joins it.
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (tenant_id, connection_id, entity)
    WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_pending ON sync_runs (queued_at) WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_by_connection ON sync_runs (tenant_id, connection_id, queued_at DESC);

-- The record mirror: the canonical (mapped) record as last synced, its content hash (an
-- event is emitted only when it changes) and the upstream version time.
CREATE TABLE sync_records (
    tenant_id      text NOT NULL,
    connection_id  text NOT NULL,
    entity         text NOT NULL,
    remote_id      text NOT NULL,
    data           jsonb NOT NULL,
    content_hash   text NOT NULL,
    remote_version timestamptz,
    deleted        boolean NOT NULL DEFAULT false,
    origin         text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connection_id, entity, remote_id)
);

-- Records a run could not map: kept with the error; the run goes on.
CREATE TABLE sync_dead_letters (
    id            bigserial PRIMARY KEY,
    run_id        uuid,
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    entity        text NOT NULL,
    remote_id     text NOT NULL,
    record        jsonb NOT NULL,
    error         text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_dead_letters_by_connection ON sync_dead_letters (tenant_id, connection_id, at DESC);

-- Custom field mappings, versioned: the highest version is in force.
CREATE TABLE sync_mappings (
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    entity        text NOT NULL,
    version       integer NOT NULL,
    rules         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, entity, version)
);

-- Inbound commands (two-way sync), by their CloudEvents id: each is applied at most once.
CREATE TABLE sync_commands (
    tenant_id     text NOT NULL,
    command_id    text NOT NULL,
    connection_id text NOT NULL,
    entity        text NOT NULL,
    op            text NOT NULL,
    remote_id     text,
    -- pending | applied | conflict | skipped | failed
    status        text NOT NULL,
    -- The whole command, so a pending one can be retried without Kafka redelivering it.
    command       jsonb NOT NULL,
    -- Who is applying it until when: a claim, so two replicas never apply it at once.
    claimed_until timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    retry_at      timestamptz,
    error         text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (tenant_id, command_id)
);
CREATE INDEX sync_commands_retry ON sync_commands (retry_at) WHERE status = 'pending';

CREATE TABLE sync_conflicts (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    entity        text NOT NULL,
    remote_id     text NOT NULL,
    command_id    text NOT NULL,
    strategy      text NOT NULL,
    status        text NOT NULL,
    base          jsonb,
    local         jsonb NOT NULL,
    remote        jsonb NOT NULL,
    resolution    text,
    resolved      jsonb,
    resolved_by   text,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz
);
-- One conflict per command, however often the command is retried.
CREATE UNIQUE INDEX sync_conflicts_one_per_command ON sync_conflicts (tenant_id, command_id);
CREATE INDEX sync_conflicts_by_connection ON sync_conflicts (tenant_id, connection_id, detected_at DESC);
