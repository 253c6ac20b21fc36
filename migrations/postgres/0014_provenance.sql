-- Where each result came from, as the worker recorded it with its attempt
-- (a JSON object: widesweep's version and commit, engine and its version,
-- the kernel path after the self-check, device, driver, CUDA and cuDNN
-- versions, the RNG scheme, the dataset files' SHA-256 and the host).
-- jobs.provenance_json is the succeeded attempt's; NULL for results
-- recorded before this migration.
ALTER TABLE jobs ADD COLUMN provenance_json TEXT;
ALTER TABLE attempts ADD COLUMN provenance_json TEXT;
-- The result of each succeeded attempt, kept when `widesweep rerun` hands
-- the job back to be trained again.
ALTER TABLE attempts ADD COLUMN final_test_error DOUBLE PRECISION;

-- The results view shows the fields a reader filters on beside the rest.
DROP VIEW results;

CREATE VIEW results AS
SELECT s.name AS sweep, j.id AS job_id, j.cell_hash, j.engine, j.params_json,
       j.block, j.deepening, j.blocks_per_group,
       j.depth, j.depth_convention, j.width, j.dropout, j.dataset, j.seed, j.epochs, j.batch_size,
       j.lr, j.lr_milestones, j.lr_gamma, j.momentum, j.nesterov, j.weight_decay, j.augment, j.precision,
       j.params, j.forward_macs, j.attempt,
       j.final_train_loss, j.final_train_error, j.final_test_loss, j.final_test_error,
       j.best_test_error, j.train_seconds,
       j.train_seconds / NULLIF(j.epochs_done, 0) AS epoch_seconds,
       j.finished_at_ms,
       (CAST(j.provenance_json AS json) ->> 'git_commit') AS git_commit,
       (CAST(j.provenance_json AS json) ->> 'kernels') AS kernels,
       (CAST(j.provenance_json AS json) ->> 'device') AS device,
       (CAST(j.provenance_json AS json) ->> 'rng') AS rng,
       (CAST(j.provenance_json AS json) ->> 'dataset_sha256') AS dataset_sha256,
       (CAST(j.provenance_json AS json) ->> 'hostname') AS hostname,
       j.provenance_json
FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
WHERE j.status = 'succeeded';
