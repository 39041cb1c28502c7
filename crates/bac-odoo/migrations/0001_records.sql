-- Mirror of the Odoo records the fleet has seen, per connection and model. The content hash
-- lets a sync emit an event only for a real change; write_date is Odoo's version of the row.
CREATE TABLE records (
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    model         text NOT NULL,
    remote_id     bigint NOT NULL,
    data          jsonb NOT NULL,
    content_hash  text NOT NULL,
    write_date    timestamptz,
    origin        text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connection_id, model, remote_id)
);
