-- The browser side of OAuth's authorisation-code flow: one row per authorisation started,
-- found by the SHA-256 of its state, deleted when the callback uses it (single use).
CREATE TABLE IF NOT EXISTS oauth_states (
    state_hash    text PRIMARY KEY,
    tenant_id     text NOT NULL,
    user_id       text NOT NULL,
    connection_id text NOT NULL,
    integration   text NOT NULL,
    code_verifier text NOT NULL,
    redirect_uri  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_states_expires_at ON oauth_states (expires_at);
