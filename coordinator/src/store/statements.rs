//! The SQL both dialects share. SQLite accepts PostgreSQL-style `$N`
//! placeholders, `RETURNING`, `ON CONFLICT ... DO UPDATE` and the casts used
//! here, so each statement is written once; what differs (claiming a job,
//! storing an epoch, beginning a write, locking a row) is the
//! [`Dialect`](super::dialect::Dialect)'s.

use super::rows::{OTHER_WORKER_SEEN_MS, QUARANTINE_AFTER_JOBS};

/// The next job to lease: pending, in the spec, of an active sweep; highest
/// priority first, then the oldest sweep (equal priorities are served first
/// come, first served), then the sweep's longest predicted job (longest
/// processing time first: the short jobs fill the gaps at the end, so the
/// sweep's last hours are not one long job on one device). Served by the
/// partial index `jobs_pending`.
///
/// Retries go elsewhere: a job is not offered to a worker ($1) that failed
/// it while another worker has been heard from recently ($4: now), nor,
/// after a machine's error, to any worker on that host while a worker on
/// another host has; alone, a worker retries the job itself.
pub(super) static NEXT_PENDING_JOB: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let me = "(SELECT me.hostname FROM workers me WHERE me.id = $1)";
    let alive = format!("o.last_seen_at_ms > $4 - {OTHER_WORKER_SEEN_MS}");
    format!(
        "SELECT j.id FROM jobs j JOIN sweeps s ON s.id = j.sweep_id \
         WHERE j.status = 'pending' AND j.in_spec = 1 AND s.state = 'active' \
           AND NOT EXISTS (SELECT 1 FROM workers q WHERE q.id = $1 AND q.quarantined_until_ms > $4) \
           AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = j.id AND a.outcome = 'failed' AND ( \
             (a.worker_id = $1 AND EXISTS (SELECT 1 FROM workers o WHERE o.id <> $1 AND {alive})) \
             OR (a.error_class = 'machine' AND a.hostname = {me} \
                 AND EXISTS (SELECT 1 FROM workers o WHERE o.hostname <> {me} AND {alive})))) \
         ORDER BY j.priority DESC, j.sweep_id, j.work DESC, j.id LIMIT 1"
    )
});

/// Records a new attempt ($1: job, $2: worker, $3: now) as running, with
/// its worker's host and the device the claim stored.
pub(super) const ATTEMPT_STARTED: &str = "INSERT INTO attempts \
     (job_id, attempt, worker_id, hostname, device, leased_at_ms) \
     SELECT j.id, j.attempt, $2, COALESCE((SELECT w.hostname FROM workers w WHERE w.id = $2), ''), \
     COALESCE(j.device, ''), $3 FROM jobs j WHERE j.id = $1";

/// Quarantines the worker of attempt $2 of job $1 until $3 when its last
/// [`QUARANTINE_AFTER_JOBS`] ended attempts all failed with machine errors,
/// on as many different jobs: it then leases nothing until released.
pub(super) static QUARANTINE_WORKER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let worker = "(SELECT w.worker_id FROM attempts w WHERE w.job_id = $1 AND w.attempt = $2)";
    format!(
        "UPDATE workers SET quarantined_until_ms = $3, \
           quarantine_reason = 'machine errors on {QUARANTINE_AFTER_JOBS} different jobs in a row, the last: ' || \
             COALESCE((SELECT e.error FROM attempts e WHERE e.job_id = $1 AND e.attempt = $2), '') \
         WHERE id = {worker} AND {QUARANTINE_AFTER_JOBS} <= (SELECT COUNT(DISTINCT r.job_id) FROM \
           (SELECT a.job_id, a.error_class FROM attempts a WHERE a.worker_id = {worker} \
              AND a.outcome IN ('succeeded', 'failed') ORDER BY a.ended_at_ms DESC, a.job_id DESC \
              LIMIT {QUARANTINE_AFTER_JOBS}) r \
           WHERE r.error_class = 'machine')"
    )
});

/// Ends attempt $2 of job $1 at $3 with outcome $4 (and, for a failure,
/// the class $5 and error $6; empty otherwise).
pub(super) const ATTEMPT_ENDED: &str = "UPDATE attempts SET ended_at_ms = $3, outcome = $4, \
     error_class = NULLIF($5, ''), error = NULLIF($6, ''), provenance_json = NULLIF($7, ''), \
     final_test_error = CASE WHEN $4 = 'succeeded' THEN $8 END WHERE job_id = $1 AND attempt = $2";

/// What a claim sets, from binds $1 (worker_id) .. $4 (now) and $5 (the
/// lease token's digest). The attempt grows at every claim: it orders
/// leases; the token's digest authorises the new one. The job's latest
/// checkpoint is noted: an expiry refunds the attempt if a newer one
/// arrives ([`REAP_EXPIRED`]).
pub(super) const CLAIM_SET: &str = "status = 'running', attempt = attempt + 1, attempts_spent = attempts_spent + 1, \
     worker_id = $1, device = $2, lease_expires_at_ms = $3, started_at_ms = COALESCE(started_at_ms, $4), \
     lease_token_sha256 = $5, \
     lease_checkpoint_id = (SELECT MAX(c.id) FROM checkpoints c WHERE c.job_id = jobs.id)";

/// Whether a job's current attempt stored a checkpoint newer than the one
/// it was leased with: progress that the next attempt resumes from.
const PROGRESSED: &str = "(COALESCE((SELECT MAX(c.id) FROM checkpoints c WHERE c.job_id = jobs.id), 0) \
     > COALESCE(lease_checkpoint_id, 0))";

/// Returns expired leases ($1: now) to pending. An attempt that lost its
/// worker (killed, frozen, preempted, out of time) after storing a newer
/// checkpoint gets its attempt back: losing a worker is not a training
/// error, and the job resumes further on. One that made no progress spends
/// it, so a job that keeps losing its worker without progress still fails
/// after max_attempts, saying why.
pub(super) static REAP_EXPIRED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE jobs SET \
           lost_leases = lost_leases + 1, \
           attempts_spent = attempts_spent - (CASE WHEN {PROGRESSED} THEN 1 ELSE 0 END), \
           status = CASE WHEN {PROGRESSED} OR attempts_spent < max_attempts THEN 'pending' ELSE 'failed' END, \
           finished_at_ms = CASE WHEN {PROGRESSED} OR attempts_spent < max_attempts THEN NULL ELSE $1 END, \
           last_error = CASE \
             WHEN {PROGRESSED} THEN 'attempt ' || attempt || ' lost its worker (lease expired) after a new \
                 checkpoint; it resumes from there, no attempt spent' \
             WHEN attempts_spent < max_attempts THEN 'attempt ' || attempt || ' lost its worker (lease expired) \
                 with no checkpoint since its lease; one attempt spent' \
             ELSE 'attempt ' || attempt || ' lost its worker (lease expired) with no checkpoint since its \
                 lease, and all ' || max_attempts || ' attempts are spent (' || (lost_leases + 1) || \
                 ' lost workers in all)' END, \
           worker_id = NULL, lease_expires_at_ms = NULL, lease_token_sha256 = NULL \
         WHERE status = 'running' AND lease_expires_at_ms < $1 \
         RETURNING id, status, attempt"
    )
});

/// What a leased job's row is read with: the job, its sweep's name and its
/// latest checkpoint. Followed by `FROM <jobs as j>` and [`JOB_JOINS`].
pub(super) const JOB_COLUMNS: &str = "SELECT j.*, s.name AS sweep_name, s.engines_json AS sweep_engines_json, c.id AS ckpt_id, c.attempt AS ckpt_attempt, \
     c.epoch AS ckpt_epoch, c.sha256 AS ckpt_sha256, c.size_bytes AS ckpt_size";

pub(super) const JOB_JOINS: &str = "JOIN sweeps s ON s.id = j.sweep_id \
     LEFT JOIN checkpoints c ON c.id = (SELECT MAX(id) FROM checkpoints WHERE job_id = j.id)";

pub(super) const SWEEP_SUMMARY: &str = "
SELECT s.id, s.name, s.state, s.priority, s.dataset, s.created_at_ms, s.seeds_target_ci, s.pause_reason,
       CAST((SELECT COUNT(*) FROM jobs r WHERE r.sweep_id = s.id AND r.reserve = 1 AND r.in_spec = 0
                  AND r.status = 'pending') AS BIGINT)
           AS reserve,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT) AS running,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS BIGINT) AS succeeded,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'cancelled' THEN 1 ELSE 0 END), 0) AS BIGINT) AS cancelled,
       CAST(COALESCE(SUM(CASE WHEN j.status = 'succeeded' THEN j.epochs ELSE j.epochs_done END), 0) AS BIGINT)
           AS epochs_done,
       CAST(COALESCE(SUM(j.epochs), 0) AS BIGINT) AS epochs_total,
       CAST(COALESCE(SUM(CASE WHEN j.status IN ('pending', 'running')
                              THEN j.work * (j.epochs - j.epochs_done) / j.epochs ELSE 0 END), 0)
            AS DOUBLE PRECISION) AS work_remaining
FROM sweeps s
LEFT JOIN jobs j ON j.sweep_id = s.id AND j.in_spec = 1";

/// The sweep's reported epochs: their mean time, and the cost model's work
/// they did over the seconds they took (the sweep's observed rate).
pub(super) const SWEEP_EPOCH_SECONDS: &str = "
SELECT CAST(AVG(e.epoch_seconds) AS DOUBLE PRECISION) AS mean_epoch_seconds,
       CAST(SUM(j.work / j.epochs) AS DOUBLE PRECISION) AS work_timed,
       CAST(SUM(e.epoch_seconds) AS DOUBLE PRECISION) AS seconds_timed
FROM epochs e JOIN jobs j ON j.id = e.job_id
WHERE j.sweep_id = $1";

pub(super) const SWEEP_GROUP_BY: &str =
    "GROUP BY s.id, s.name, s.state, s.priority, s.dataset, s.created_at_ms, s.seeds_target_ci, s.pause_reason";

/// Pauses the sweep of job $1 at $2 when its failure budget is spent: more
/// than `max_failed_fraction` of its jobs in the spec failed for good
/// since its last resume (`failed_base`). Run after a job fails for good.
pub(super) static SPEND_FAILURE_BUDGET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let failed = "(SELECT COUNT(*) FROM jobs f WHERE f.sweep_id = sweeps.id AND f.in_spec = 1 AND f.status = 'failed')";
    let total = "(SELECT COUNT(*) FROM jobs t WHERE t.sweep_id = sweeps.id AND t.in_spec = 1)";
    format!(
        "UPDATE sweeps SET state = 'paused', updated_at_ms = $2, \
           pause_reason = 'the failure budget is spent: ' || ({failed} - failed_base) || ' of ' || {total} || \
             ' jobs failed, more than max_failed_fraction = ' || max_failed_fraction || \
             ' of them; see the errors, then resume (the budget counts again from there) or fix and resubmit' \
         WHERE id = (SELECT sweep_id FROM jobs WHERE id = $1) AND state = 'active' \
           AND max_failed_fraction IS NOT NULL AND {failed} - failed_base > max_failed_fraction * {total}"
    )
});

/// Each device's rate, learnt from every reported epoch in the database:
/// the cost model's work per epoch over the epoch's seconds, by the device
/// name the job was leased on.
pub(super) const DEVICE_RATES: &str = "
SELECT j.device AS device, CAST(COUNT(*) AS BIGINT) AS epochs,
       CAST(SUM(j.work / j.epochs) AS DOUBLE PRECISION) AS work,
       CAST(SUM(e.epoch_seconds) AS DOUBLE PRECISION) AS seconds
FROM epochs e JOIN jobs j ON j.id = e.job_id
WHERE j.device IS NOT NULL AND j.work > 0 AND e.epoch_seconds > 0
GROUP BY j.device ORDER BY j.device";

/// An epoch row from binds $1 (job_id) .. $11 (recorded_at_ms).
pub(super) const EPOCH_VALUES: &str = "(job_id, epoch, attempt, train_loss, train_error, test_loss, test_error, lr, \
     epoch_seconds, images_per_second, recorded_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The upsert of an epoch row: a resumed attempt replaces the earlier
/// attempt's row for the same epoch.
pub(super) const EPOCH_UPDATE: &str = "attempt = excluded.attempt, train_loss = excluded.train_loss, \
     train_error = excluded.train_error, test_loss = excluded.test_loss, test_error = excluded.test_error, \
     lr = excluded.lr, epoch_seconds = excluded.epoch_seconds, images_per_second = excluded.images_per_second, \
     recorded_at_ms = excluded.recorded_at_ms";

/// The job columns of a submission, in insertion order: as many as
/// [`JOB_INSERT_COLUMNS`].
pub(super) const JOB_INSERT: &str = "INSERT INTO jobs (sweep_id, cell_hash, block, deepening, blocks_per_group, depth, \
     depth_convention, width, dropout, dataset, seed, epochs, batch_size, lr, lr_milestones, lr_gamma, momentum, \
     nesterov, weight_decay, reset_momentum_on_drop, train_subset, test_subset, augment, checkpoint_every, \
     precision, bn_recalibration_batches, config_json, params, forward_macs, work, priority, max_attempts, \
     created_at_ms, in_spec, reserve, engine, params_json)";
pub(super) const JOB_INSERT_COLUMNS: usize = 37;

/// One page of a sweep's jobs ($1, its id) after job $2, at most $3 rows
/// (adaptive seeds still held in reserve are not jobs of the sweep yet),
/// with the sweep's name and the time of each job's recorded epochs, in job
/// order (the spec's cell order). The columns are those of a
/// [`ResultRow`](super::ResultRow) alone: decoding is most of the time a
/// 100,000-job sweep's read takes, and `j.*` was a third more of it
/// (the stored config JSON, lease and worker columns).
pub(super) const SWEEP_RESULTS: &str = "SELECT j.id, j.cell_hash, j.block, j.deepening, j.blocks_per_group, j.depth, \
       j.depth_convention, j.width, j.dropout, j.dataset, j.seed, j.epochs, j.batch_size, j.lr, j.lr_milestones, \
       j.lr_gamma, j.momentum, j.nesterov, j.weight_decay, j.reset_momentum_on_drop, j.train_subset, j.test_subset, \
       j.augment, j.checkpoint_every, j.precision, j.bn_recalibration_batches, j.params, j.forward_macs, j.work, \
       j.in_spec, j.status, j.attempt, j.epochs_done, j.final_train_loss, j.final_train_error, j.final_test_loss, \
       j.final_test_error, j.best_test_error, j.train_seconds, j.created_at_ms, j.started_at_ms, j.finished_at_ms, \
       j.last_error, j.engine, j.params_json, j.provenance_json, s.name AS sweep_name, \
       (SELECT CAST(AVG(e.epoch_seconds) AS DOUBLE PRECISION) FROM epochs e WHERE e.job_id = j.id) \
           AS mean_epoch_seconds, \
       (SELECT CAST(SUM(e.epoch_seconds) AS DOUBLE PRECISION) FROM epochs e WHERE e.job_id = j.id) \
           AS recorded_seconds \
     FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.sweep_id = $1 AND j.id > $2 AND j.reserve = 0 \
     ORDER BY j.id LIMIT $3";

/// One page of a sweep's epochs ($1, its id), after job $2's epoch $3,
/// at most $4 rows: by job, then epoch. The row-value bound is a range on
/// the epochs' primary key, and the sweep's jobs are looked up by id from
/// job $2 on, so each page reads about as many rows as it returns, however
/// far into the sweep it starts (a bound written as `job_id > $2 OR ...`
/// made both databases scan the sweep from its first epoch at every page).
pub(super) const SWEEP_EPOCHS: &str = "SELECT e.* FROM epochs e \
     WHERE (e.job_id, e.epoch) > ($2, $3) \
       AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id AND j.sweep_id = $1 AND j.id >= $2) \
     ORDER BY e.job_id, e.epoch LIMIT $4";

/// Rows per page when a whole sweep's results or epochs are read.
pub(super) const RESULT_PAGE_ROWS: u32 = 500;
pub(super) const EPOCH_PAGE_ROWS: u32 = 5_000;

/// Rows per INSERT: with [`JOB_INSERT_COLUMNS`] binds each, under both dialects' bind limits.
pub(super) const INSERT_CHUNK: usize = 500;
const _: () = assert!(INSERT_CHUNK * JOB_INSERT_COLUMNS <= 32_766, "SQLite allows 32,766 binds per statement");

/// `seen`'s condition for the worker holding job $1.
pub(super) const WORKER_OF_JOB: &str = "id = (SELECT worker_id FROM jobs WHERE id = $1)";

/// How stale a worker's `last_seen_at_ms` may be before a report rewrites it.
pub(super) const SEEN_RESOLUTION_MS: i64 = 5_000;

/// Workers seen since $1 or holding a lease, most recently seen first.
pub(super) const ACTIVE_WORKERS: &str = "SELECT * FROM workers w \
     WHERE w.last_seen_at_ms >= $1 OR w.quarantined_until_ms >= $1 OR w.reported_until_ms >= $1 \
        OR EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'running' AND j.worker_id = w.id) \
     ORDER BY w.last_seen_at_ms DESC, w.id";

/// Every running job with its worker, sweep and latest throughput.
pub(super) const RUNNING_SLOTS: &str = "SELECT j.id, j.worker_id, j.device, j.epochs_done, j.epochs, \
       j.lease_expires_at_ms, s.name AS sweep_name, \
       (SELECT e.images_per_second FROM epochs e WHERE e.job_id = j.id ORDER BY e.epoch DESC LIMIT 1) \
           AS images_per_second \
     FROM jobs j JOIN sweeps s ON s.id = j.sweep_id \
     WHERE j.status = 'running' AND j.worker_id IS NOT NULL ORDER BY j.id";
