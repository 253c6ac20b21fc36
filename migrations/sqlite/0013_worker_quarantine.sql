-- The coordinator quarantines a worker whose last attempts failed with
-- machine errors on several different jobs: until quarantined_until_ms (or
-- `widesweep worker release ID`) it leases nothing, and quarantine_reason
-- says why.
ALTER TABLE workers ADD COLUMN quarantine_reason TEXT;
ALTER TABLE workers ADD COLUMN quarantined_until_ms INTEGER;
-- A slot's own quarantine, as its worker reported it: shown by
-- `widesweep workers`, but it does not stop the worker's other slots.
ALTER TABLE workers ADD COLUMN reported_quarantine TEXT;
ALTER TABLE workers ADD COLUMN reported_until_ms INTEGER;
