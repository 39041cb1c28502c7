-- Webhook endpoints of subscribers: the tenant's events, signed, posted to their URL. The
-- signing secrets are in Vault (bac/<tenant>/messaging/webhook-<id>), never here.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id              text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    url             text        NOT NULL,
    event_types     text[]      NOT NULL,
    description     text        NOT NULL DEFAULT '',
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text        NOT NULL DEFAULT '',
    failing_since   timestamptz,
    failures        integer     NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id);

-- One event for one endpoint. `seq` is the order the endpoint receives them in.
CREATE TABLE IF NOT EXISTS webhook_messages (
    seq             bigserial   PRIMARY KEY,
    id              text        NOT NULL,
    tenant_id       text        NOT NULL,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      text        NOT NULL,
    payload         bytea       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, id)
);
CREATE INDEX IF NOT EXISTS webhook_messages_pending ON webhook_messages (endpoint_id, seq)
    WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id          bigserial   PRIMARY KEY,
    message_seq bigint      NOT NULL REFERENCES webhook_messages (seq) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer     NOT NULL,
    response    text        NOT NULL DEFAULT '',
    duration_ms integer     NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_by_message ON webhook_attempts (message_seq);
