-- Inbound requests seen per connection (Slack's event ids, the Bot Framework's activity ids):
-- a retry is acknowledged, not published again. The table serves every channel now.
ALTER TABLE IF EXISTS slack_inbound RENAME TO inbound_events;
ALTER INDEX IF EXISTS slack_inbound_age RENAME TO inbound_events_age;

-- Where a Teams bot's conversation is answered: the Bot Framework's service URL of its last
-- verified activity (a reply goes nowhere else).
CREATE TABLE IF NOT EXISTS bot_conversations (
    connection_id   text        NOT NULL,
    conversation_id text        NOT NULL,
    tenant_id       text        NOT NULL,
    service_url     text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, conversation_id)
);
