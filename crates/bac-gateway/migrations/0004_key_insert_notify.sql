-- A new key is announced too: replicas that remembered its prefix as unknown (the negative
-- cache of keys.rs) forget that at once instead of refusing the key until the entry ages out.
CREATE TRIGGER api_keys_insert_notify AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
