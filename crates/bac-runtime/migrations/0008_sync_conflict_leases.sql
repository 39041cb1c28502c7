-- A resolution holds its conflict until resolving_until: one cut off (a request timeout, a
-- restarted replica) gives it back (the worker reopens it, or the next resolution claims it)
-- instead of leaving it 'resolving' forever.
ALTER TABLE sync_conflicts ADD COLUMN resolving_until timestamptz;
