-- Engines: a job is trained by the built-in candle WRN or by a command the
-- sweep defines (a lab's own trainer), with free-form parameters.
-- Existing jobs are candle's with no parameters, and keep their hashes.

-- 'candle' or the name of a command engine of the job's sweep.
ALTER TABLE jobs ADD COLUMN engine TEXT NOT NULL DEFAULT 'candle';
-- The command engine's parameters: a JSON object of scalars, keys sorted.
ALTER TABLE jobs ADD COLUMN params_json TEXT NOT NULL DEFAULT '{}';
-- The sweep's command engines by name (JSON), as its latest submission
-- defines them: what a worker runs for a job of each.
ALTER TABLE sweeps ADD COLUMN engines_json TEXT NOT NULL DEFAULT '{}';

-- The views show the training of every job, not only its network: since
-- the recipe and the engine became axes, a cell is told from its
-- neighbours by them too (the old `cells` merged cells that differed only
-- in their learning rate).
DROP VIEW results;
DROP VIEW cells;

CREATE VIEW results AS
SELECT s.name AS sweep, j.id AS job_id, j.cell_hash, j.engine, j.params_json,
       j.block, j.deepening, j.blocks_per_group,
       j.depth, j.depth_convention, j.width, j.dropout, j.dataset, j.seed, j.epochs, j.batch_size,
       j.lr, j.lr_milestones, j.lr_gamma, j.momentum, j.nesterov, j.weight_decay, j.augment, j.precision,
       j.params, j.forward_macs, j.attempt,
       j.final_train_loss, j.final_train_error, j.final_test_loss, j.final_test_error,
       j.best_test_error, j.train_seconds,
       j.train_seconds / NULLIF(j.epochs_done, 0) AS epoch_seconds,
       j.finished_at_ms
FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
WHERE j.status = 'succeeded';

-- One row per cell of a sweep (its jobs aggregated over seeds). Medians
-- need window functions per dialect and are computed by `widesweep table`.
CREATE VIEW cells AS
SELECT s.name AS sweep, j.engine, j.params_json, j.block, j.deepening, j.blocks_per_group, j.depth,
       j.width, j.dropout, j.dataset, j.epochs, j.batch_size, j.lr, j.lr_milestones, j.lr_gamma,
       j.momentum, j.nesterov, j.weight_decay, j.reset_momentum_on_drop, j.train_subset,
       j.test_subset, j.augment, j.precision, j.bn_recalibration_batches,
       MIN(j.params) AS params,
       COUNT(*) AS jobs,
       SUM(CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       AVG(j.final_test_error) AS mean_test_error,
       MIN(j.final_test_error) AS min_test_error,
       MAX(j.final_test_error) AS max_test_error,
       AVG(j.best_test_error) AS mean_best_test_error,
       AVG(j.train_seconds / NULLIF(j.epochs_done, 0)) AS mean_epoch_seconds
FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
WHERE j.in_spec = 1
GROUP BY s.name, j.engine, j.params_json, j.block, j.deepening, j.blocks_per_group, j.depth,
         j.width, j.dropout, j.dataset, j.epochs, j.batch_size, j.lr, j.lr_milestones, j.lr_gamma,
         j.momentum, j.nesterov, j.weight_decay, j.reset_momentum_on_drop, j.train_subset,
         j.test_subset, j.augment, j.precision, j.bn_recalibration_batches;
