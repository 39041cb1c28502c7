-- A resolution holds its conflict until resolving_until: one cut off (a request timeout, a
-- restarted replica) gives it back (the worker reopens it, or the next resolution claims it)
-- instead of leaving it 'resolving' forever.
-- resolving_token fences the claim: a resolution that ran past its lease cannot close, or
-- reopen, a conflict another resolution holds now.
ALTER TABLE sync_conflicts ADD COLUMN resolving_until timestamptz,
                           ADD COLUMN resolving_token uuid;
