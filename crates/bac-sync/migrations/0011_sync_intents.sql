-- Which record each create intent made, per connection and entity: a create retried with the
-- same intent id (an Idempotency-Key, a redelivered command) returns that record instead of
-- making a second, for every provider, including those without a field to keep the intent in.
CREATE TABLE sync_intents (
    connection_id text NOT NULL,
    entity        text NOT NULL,
    intent_id     text NOT NULL,
    tenant_id     text NOT NULL,
    remote_id     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, entity, intent_id)
);
