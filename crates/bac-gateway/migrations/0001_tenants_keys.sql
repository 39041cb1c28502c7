-- Tenants, their users and API keys. A key is stored as the SHA-256 of the whole key (keys are
-- 128-bit random, so a fast hash is enough); `prefix` is the public part used to find it.
CREATE TABLE tenants (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    email      text NOT NULL,
    role       text NOT NULL CHECK (role IN ('super_admin', 'admin', 'user')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    user_id      text NOT NULL REFERENCES users (id),
    prefix       text NOT NULL UNIQUE,
    key_hash     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Which service owns each connection, so /connections/{id}/... routes to it.
CREATE TABLE connections (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    integration text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX connections_tenant ON connections (tenant_id, created_at);
