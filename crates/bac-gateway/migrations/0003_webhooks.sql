-- Upstream webhooks (real-time sync): each connection may have one webhook token. Only its
-- SHA-256 is kept; the token itself is shown once, when created.
ALTER TABLE connections ADD COLUMN webhook_token_sha256 text;
