-- Templates: every version kept, so a delivery names what it rendered and an edit never
-- changes a message already queued.
CREATE TABLE IF NOT EXISTS templates (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    version     integer     NOT NULL,
    subject     text        NOT NULL,
    text_body   text        NOT NULL DEFAULT '',
    html_body   text        NOT NULL DEFAULT '',
    description text        NOT NULL DEFAULT '',
    variables   text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version)
);

-- One row per message on its way. The rendered content is kept so every attempt sends the
-- same bytes; `intent_id` makes a repeated request (or command) one delivery.
CREATE TABLE IF NOT EXISTS deliveries (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    connection_id    text        NOT NULL,
    channel          text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('queued', 'sent', 'deferred', 'bounced', 'failed')),
    intent_id        text        NOT NULL,
    to_addrs         text[]      NOT NULL,
    cc_addrs         text[]      NOT NULL DEFAULT '{}',
    bcc_addrs        text[]      NOT NULL DEFAULT '{}',
    reply_to         text        NOT NULL DEFAULT '',
    subject          text        NOT NULL DEFAULT '',
    text_body        text        NOT NULL DEFAULT '',
    html_body        text        NOT NULL DEFAULT '',
    template         text        NOT NULL DEFAULT '',
    template_version integer     NOT NULL DEFAULT 0,
    message_id       text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    last_response    text        NOT NULL DEFAULT '',
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    traceparent      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (tenant_id, intent_id)
);

CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('queued', 'deferred');
CREATE INDEX IF NOT EXISTS deliveries_by_tenant ON deliveries (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_message_id ON deliveries (message_id);
