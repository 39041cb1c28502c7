-- Every change of a connection (new settings, new credentials, deletion) is announced as
-- `<tenant>/<id>` on `<schema>_connections`, so every replica drops its cached secret at once
-- (bac_runtime::vault: cached secrets may serve through a Vault outage only because of this).
CREATE FUNCTION connections_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_connections', OLD.tenant_id || '/' || OLD.id);
    RETURN NULL;
END $$;

CREATE TRIGGER connections_notify AFTER UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION connections_notify();
