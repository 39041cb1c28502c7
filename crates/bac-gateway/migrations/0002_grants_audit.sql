-- Delegated permissions: a super admin grants a user view or manage on one integration.
CREATE TABLE grants (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    user_id         text NOT NULL REFERENCES users (id),
    integration     text NOT NULL,
    permission_type text NOT NULL CHECK (permission_type IN ('view', 'manage')),
    granted_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, integration, permission_type)
);

-- Every change to tenants, users, keys, grants, connections and credentials.
CREATE TABLE audit_log (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    diff        jsonb NOT NULL DEFAULT '{}',
    source_ip   text,
    user_agent  text,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, created_at DESC, id DESC);

ALTER TABLE api_keys ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN replaced_by text;

-- Key revocations and rotations are announced so every replica drops its cached entry.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_api_keys', NEW.prefix);
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_notify AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION api_keys_notify();
