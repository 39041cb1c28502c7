-- An integration's connections to its upstream. Settings only: the secret fields live in
-- Vault at <mount>/bac/<tenant>/<integration>/<id>; this row names which ones are set.
CREATE TABLE connections (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL,
    name          text NOT NULL,
    config        jsonb NOT NULL,
    secret_fields text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX connections_tenant ON connections (tenant_id, created_at);
