-- Where each configuration's agent stream lives: the replica holding it (its internal gRPC
-- address) and the stream's session, renewed by the heartbeat. A row whose heartbeat is old is
-- an agent that is offline (its replica may have died without saying so).
CREATE TABLE IF NOT EXISTS tally_agents (
    connection_id   text PRIMARY KEY,
    tenant_id       text NOT NULL,
    session_id      text NOT NULL,
    replica_url     text NOT NULL,
    hostname        text NOT NULL DEFAULT '',
    agent_version   text NOT NULL DEFAULT '',
    tally_url       text NOT NULL DEFAULT '',
    connected_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    disconnected_at timestamptz
);

-- Vouchers created while the configuration's agent was offline: posted, in order, once it is
-- back (each with its intent, so a voucher is never posted twice).
CREATE TABLE IF NOT EXISTS tally_queued_vouchers (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL,
    connection_id text NOT NULL,
    intent_id     text NOT NULL,
    voucher       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued',
    voucher_id    text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    posted_at     timestamptz,
    UNIQUE (connection_id, intent_id)
);
CREATE INDEX IF NOT EXISTS tally_queued_vouchers_waiting
    ON tally_queued_vouchers (connection_id, created_at) WHERE status = 'queued';
