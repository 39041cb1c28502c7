-- The live gateway replicas: each upserts its row every few seconds; the rate limits are
-- divided by how many were seen lately (ratelimit.rs).
CREATE TABLE replicas (
    id      text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
