-- Commands refused for good before they were stored: not a command at all, a connection that
-- is not the named tenant's, or values Postgres cannot hold (a NUL in a string). Kept with the
-- reason and where they came from, so the consumer commits their offset and moves on (one bad
-- message never wedges the commands of every tenant) and nothing is silently dropped.
CREATE TABLE sync_command_rejects (
    id          bigserial PRIMARY KEY,
    -- As the message named it (empty when it named none); not proof of anything.
    tenant_id   text NOT NULL,
    command_id  text NOT NULL,
    source      text NOT NULL,
    headers     jsonb NOT NULL,
    payload     bytea NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_command_rejects_by_tenant ON sync_command_rejects (tenant_id, id);
