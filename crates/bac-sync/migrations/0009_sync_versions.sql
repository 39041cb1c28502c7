-- A record's upstream version is a time (Odoo's write_date), a number that only grows
-- (Tally's ALTERID, IMAP's MODSEQ, Google's historyId) or a tag that only says "changed"
-- (an etag): one column each, so each is compared the way the provider means it.
ALTER TABLE sync_records ADD COLUMN IF NOT EXISTS remote_seq bigint;
ALTER TABLE sync_records ADD COLUMN IF NOT EXISTS remote_tag text;
