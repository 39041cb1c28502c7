-- Slack's Events API retries an event (same `event_id`) until it is acknowledged: the first
-- one seen per connection is published, the others answered and dropped.
CREATE TABLE IF NOT EXISTS slack_inbound (
    connection_id text        NOT NULL,
    event_id      text        NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, event_id)
);
CREATE INDEX IF NOT EXISTS slack_inbound_age ON slack_inbound (received_at);

-- A slash command's `response_url` (a credential for 30 minutes, 5 answers): kept here, never
-- in an event, so an answer names the command by id.
CREATE TABLE IF NOT EXISTS slack_commands (
    id            uuid        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    connection_id text        NOT NULL,
    command       text        NOT NULL,
    channel_id    text        NOT NULL DEFAULT '',
    response_url  text        NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS slack_commands_age ON slack_commands (expires_at);

-- A Slack delivery that answers a slash command.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS respond_to uuid;
