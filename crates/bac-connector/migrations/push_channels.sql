-- Push channels a provider keeps open to the fleet (Zoho CRM notification channels, Google
-- watch channels), per connection and watched thing: what to renew before it expires. The
-- channel's token is not kept: it is derived from the fleet's key and the channel id.
CREATE TABLE IF NOT EXISTS push_channels (
    integration   text NOT NULL,
    connection_id text NOT NULL,
    key           text NOT NULL,
    tenant_id     text NOT NULL,
    channel_id    text NOT NULL,
    resource_id   text NOT NULL DEFAULT '',
    expires_at    timestamptz NOT NULL,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    renewed_at    timestamptz,
    last_error    text,
    PRIMARY KEY (integration, connection_id, key)
);
CREATE INDEX IF NOT EXISTS push_channels_expiry ON push_channels (integration, expires_at);
