-- Where each email connection's INBOX was read to (IMAP UIDs are valid within one
-- UIDVALIDITY; a new one means the mailbox is read again from the start).
CREATE TABLE IF NOT EXISTS imap_cursors (
    connection_id text        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    uid_validity  bigint      NOT NULL,
    last_uid      bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
