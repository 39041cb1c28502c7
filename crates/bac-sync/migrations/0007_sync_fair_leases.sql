-- When each run was last given a slot: the lease goes to the tenant that got one least
-- recently (among those holding the fewest), so runs that go back in line after their slice
-- take turns with other tenants' runs instead of with their own tenant's older ones.
ALTER TABLE sync_runs ADD COLUMN last_leased_at timestamptz;
CREATE INDEX sync_runs_tenant_leased ON sync_runs (tenant_id, last_leased_at);
