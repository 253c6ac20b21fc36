-- Precise batch norm (recipe.bn_recalibration_batches): batches the running
-- statistics are re-estimated on before each evaluation. Jobs written
-- before this column existed trained without it.
ALTER TABLE jobs ADD COLUMN bn_recalibration_batches INTEGER NOT NULL DEFAULT 0;

-- The cost model's work of a job in FLOP-equivalents (widesweep-arch's
-- JobWork): leasing takes the longest jobs of a sweep first. Earlier jobs
-- get the training term only (6 FLOPs per MAC per image, every epoch),
-- which keeps their order.
ALTER TABLE jobs ADD COLUMN work REAL NOT NULL DEFAULT 0;
UPDATE jobs SET work = 6.0 * forward_macs * epochs *
    (CASE WHEN train_subset > 0 AND train_subset < (CASE WHEN dataset IN ('cifar10', 'cifar100') THEN 50000 ELSE 60000 END)
          THEN train_subset
          ELSE (CASE WHEN dataset IN ('cifar10', 'cifar100') THEN 50000 ELSE 60000 END) END);

-- The next job to lease: highest priority, then the oldest sweep (sweeps
-- of equal priority are served first come, first served, as before), then
-- the longest predicted job (LPT: the sweep's tail is short).
DROP INDEX jobs_pending;
CREATE INDEX jobs_pending ON jobs (priority DESC, sweep_id, work DESC, id) WHERE status = 'pending' AND in_spec = 1;
