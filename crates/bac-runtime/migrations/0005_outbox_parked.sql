-- Parked events: a row the broker can never take (larger than its limit, an invalid topic, a
-- damaged batch) is set aside instead of retried forever, so the relay goes on with every
-- other tenant's events. It stays here, counted in bac_outbox_parked, until an administrator
-- retries it (parked_at back to NULL) or discards it (published_at set, discarded_at kept).
ALTER TABLE outbox ADD COLUMN parked_at timestamptz, ADD COLUMN discarded_at timestamptz;
ALTER TABLE outbox_batches ADD COLUMN parked_at timestamptz, ADD COLUMN discarded_at timestamptz;

DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
DROP INDEX outbox_batches_unpublished;
CREATE INDEX outbox_batches_unpublished ON outbox_batches (id)
    WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked ON outbox (tenant_id, id) WHERE parked_at IS NOT NULL;
CREATE INDEX outbox_batches_parked ON outbox_batches (tenant_id, id) WHERE parked_at IS NOT NULL;
