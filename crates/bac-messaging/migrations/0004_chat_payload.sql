-- What a chat delivery (Teams, Google Chat) posts: the JSON body and the thread, built when
-- it is queued so every attempt posts the same.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS payload jsonb;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS thread_key text NOT NULL DEFAULT '';
