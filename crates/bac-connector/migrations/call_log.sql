-- One row per upstream operation made for a connection (a lead create, a lead list, a
-- connection test): what GetStatus counts for the dashboard (error count, response times,
-- whether the last call succeeded). Rows older than 7 days are pruned as new ones arrive.
CREATE TABLE call_log (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    operation     text NOT NULL,
    ok            boolean NOT NULL,
    error_code    text,
    duration_ms   integer NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX call_log_tenant_at ON call_log (tenant_id, at DESC);
CREATE INDEX call_log_connection_at ON call_log (tenant_id, connection_id, at DESC, id DESC);
