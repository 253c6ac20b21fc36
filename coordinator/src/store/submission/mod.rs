//! Submission and steering: a spec's cells into the queue in one
//! transaction, and a sweep paused, resumed, reprioritised or cancelled.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

/// Jobs inserted at once after which PostgreSQL's statistics are renewed.
const ANALYZE_AFTER_INSERTS: usize = 1_000;

use super::columns::{self, Columns};
use super::dialect::Dialect;
use std::collections::HashMap;

use super::generic::{Sql, sweep_filter};
use super::statements::*;
use super::*;
use crate::spec::JobSpec;
use changes::{Stored, SubmitChanges};

mod changes;

/// What a user does to the queue: submit specs and steer sweeps.
#[async_trait::async_trait]
pub trait Submissions: Send + Sync + 'static {
    /// Creates the sweep or adds the spec's new cells to it, in one
    /// transaction. Cells the sweep has but the spec lacks are marked out of
    /// spec (kept with their results, no longer leased).
    async fn submit_sweep(&self, sweep: &NewSweep<'_>, now: Millis) -> Result<SubmitOutcome>;
    async fn steer_sweep(&self, sweep: &str, action: SweepAction, now: Millis) -> Result<SweepSummary>;
    /// Hands the named finished jobs of `sweep` back to the queue, to be
    /// trained from scratch (results, epochs and checkpoints cleared; the
    /// attempts keep each earlier result and its provenance). Returns the
    /// jobs requeued and the checkpoint files no longer referenced.
    async fn rerun_jobs(&self, sweep: &str, job_ids: &[i64], now: Millis) -> Result<(Vec<i64>, Vec<String>)>;
    /// Creates the sweep `new_name` with a pending copy of each named
    /// finished job of `sweep` (same cell and seed).
    async fn copy_jobs(&self, sweep: &str, job_ids: &[i64], new_name: &str, now: Millis) -> Result<SweepSummary>;
}

#[async_trait::async_trait]
impl<D> Submissions for D
where
    D: Dialect,
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Columns,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    f64: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
    String: Type<D::Db> + for<'q> Encode<'q, D::Db> + for<'r> Decode<'r, D::Db>,
{
    async fn submit_sweep(&self, sweep: &NewSweep<'_>, now: Millis) -> Result<SubmitOutcome> {
        let engines_json = serde_json::to_string(sweep.engines).expect("engines serialise");
        let mut tx = self.begin_write().await?;
        // Insert-or-keep, then lock: two submits of the same new sweep meet
        // at the unique name (the second waits for the first to commit,
        // then finds its row), and a cancel, which locks the same row, runs
        // wholly before or wholly after this submit.
        sqlx::query(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms, \
             engines_json) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT (name) DO NOTHING",
        )
        .bind(sweep.name)
        .bind(sweep.dataset.name())
        .bind(i64::from(sweep.priority))
        .bind(i64::from(sweep.max_attempts))
        .bind(sweep.spec_toml)
        .bind(now)
        .bind(engines_json.as_str())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT id, state, seeds_target_ci, engines_json FROM sweeps WHERE name = $1{}",
            D::LOCK_ROW
        ))
        .bind(sweep.name)
        .fetch_one(&mut *tx)
        .await?;
        if columns::sweep_state(&row)? == SweepState::Cancelled {
            return Err(StoreError::SweepConflict {
                sweep: sweep.name.to_string(),
                message: "was cancelled; submit the spec under a new name".to_string(),
            });
        }
        let sweep_id = row.big("id")?;
        let stored: HashMap<String, Stored> =
            sqlx::query("SELECT cell_hash, in_spec, reserve FROM jobs WHERE sweep_id = $1")
                .bind(sweep_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.text("cell_hash")?,
                        Stored { in_spec: row.flag("in_spec")?, reserve: row.flag("reserve")? },
                    ))
                })
                .collect::<Result<_>>()?;
        let changes = SubmitChanges::of(sweep, &stored);

        let priority = i64::from(sweep.priority);
        let inserts =
            changes.new_jobs.iter().map(|job| (*job, false)).chain(changes.new_reserve.iter().map(|job| (*job, true)));
        let inserts: Vec<(&JobSpec, bool)> = inserts.collect();
        for chunk in inserts.chunks(INSERT_CHUNK) {
            let sql = format!("{JOB_INSERT} VALUES {}", placeholders(D::placeholder, chunk.len(), JOB_INSERT_COLUMNS));
            let mut insert = sqlx::query(&sql);
            for &(job, reserve) in chunk {
                let recipe = job.recipe();
                insert = insert
                    .bind(sweep_id)
                    .bind(job.cell_hash.as_str())
                    .bind(job.cell.block.to_string())
                    .bind(stored_int(job.cell.block.deepening()))
                    .bind(i64::from(job.cell.blocks_per_group))
                    .bind(i64::from(job.cell.depth))
                    .bind(job.depth_convention.name())
                    .bind(i64::from(job.cell.width))
                    .bind(job.cell.dropout)
                    .bind(job.dataset().name())
                    .bind(stored_int(job.seed))
                    .bind(i64::from(recipe.epochs))
                    .bind(i64::from(recipe.batch_size))
                    .bind(recipe.lr)
                    .bind(serde_json::to_string(&recipe.lr_milestones).expect("milestones serialise"))
                    .bind(recipe.lr_gamma)
                    .bind(recipe.momentum)
                    .bind(i64::from(recipe.nesterov))
                    .bind(recipe.weight_decay)
                    .bind(i64::from(recipe.reset_momentum_on_drop))
                    .bind(i64::from(recipe.train_subset))
                    .bind(i64::from(recipe.test_subset))
                    .bind(i64::from(recipe.augment))
                    .bind(i64::from(recipe.checkpoint_every))
                    .bind(recipe.precision.name())
                    .bind(i64::from(recipe.bn_recalibration_batches))
                    .bind(job.canonical_json())
                    .bind(stored_int(job.params))
                    .bind(stored_int(job.forward_macs))
                    .bind(job.work)
                    .bind(priority)
                    .bind(i64::from(sweep.max_attempts))
                    .bind(now)
                    .bind(i64::from(!reserve))
                    .bind(i64::from(reserve))
                    .bind(job.cell.training.engine.as_str())
                    .bind(serde_json::to_string(&job.cell.training.params).expect("params serialise"));
            }
            insert.execute(&mut *tx).await?;
        }
        // Each stored job the spec moves: (hash, in_spec, reserve).
        let moves = changes
            .dropped
            .iter()
            .map(|h| (*h, 0i64, 0i64))
            .chain(changes.readded.iter().map(|h| (*h, 1, 0)))
            .chain(changes.back_in_reserve.iter().map(|h| (*h, 0, 1)));
        let mut moved = false;
        for (hash, in_spec, reserve) in moves {
            moved = true;
            sqlx::query("UPDATE jobs SET in_spec = $3, reserve = $4 WHERE sweep_id = $1 AND cell_hash = $2")
                .bind(sweep_id)
                .bind(hash)
                .bind(in_spec)
                .bind(reserve)
                .execute(&mut *tx)
                .await?;
        }
        // The latest submission's failure budget holds (NULL: none).
        let budget = if sweep.max_failed_fraction.is_some() { "$2" } else { "NULL" };
        let budget_sql = format!("UPDATE sweeps SET max_failed_fraction = {budget} WHERE id = $1");
        let update = sqlx::query(&budget_sql).bind(sweep_id);
        match sweep.max_failed_fraction {
            Some(fraction) => update.bind(fraction),
            None => update,
        }
        .execute(&mut *tx)
        .await?;
        let retargeted = row.opt_real("seeds_target_ci")? != sweep.seeds_target_ci;
        // The latest submission's commands are what workers run from now on
        // (a fixed path, a new argument), for its jobs old and new.
        let engines_changed = row.text("engines_json")? != engines_json;
        if !inserts.is_empty() || moved || retargeted || engines_changed {
            // sqlx binds an Option only per backend, not generically: NULL
            // is written into the statement instead.
            let target = if sweep.seeds_target_ci.is_some() { "$5" } else { "NULL" };
            let sql = format!(
                "UPDATE sweeps SET spec_toml = $2, updated_at_ms = $3, engines_json = $4, seeds_target_ci = {target} \
                 WHERE id = $1"
            );
            let update = sqlx::query(&sql).bind(sweep_id).bind(sweep.spec_toml).bind(now).bind(engines_json.as_str());
            match sweep.seeds_target_ci {
                Some(target) => update.bind(target),
                None => update,
            }
            .execute(&mut *tx)
            .await?;
        }
        // A resubmission also judges every cell again, under the sweep's lock
        // it already holds: a changed target, or a completion whose check was
        // lost with its coordinator, adds the seeds that are due now.
        let added = match sweep.seeds_target_ci {
            Some(target) => Sql::<D>::add_seeds_in(&mut tx, sweep_id, target, None).await?,
            None => 0,
        };
        tx.commit().await?;
        // PostgreSQL plans the claim from the table's statistics: until
        // autovacuum analyses a freshly filled queue (up to a minute), it
        // believes the queue empty and sorts every pending job at each
        // lease (measured: 1 s per lease at 100,000 jobs, 16 workers,
        // instead of 4 ms). Analysing now costs about 0.1 s per 100,000 jobs.
        if D::BACKEND == super::Backend::Postgres
            && inserts.len() >= ANALYZE_AFTER_INSERTS
            && let Err(error) = sqlx::query("ANALYZE jobs").execute(self.writer()).await
        {
            tracing::warn!(%error, "could not analyse the jobs table after a large submission");
        }
        Ok(SubmitOutcome {
            sweep_id,
            new: changes.new_jobs.len() as u64,
            existing: (sweep.jobs.len() - changes.new_jobs.len()) as u64,
            dropped: changes.dropped_from_spec,
            reserve: changes.held.saturating_sub(added),
            added,
        })
    }

    async fn steer_sweep(&self, sweep: &str, action: SweepAction, now: Millis) -> Result<SweepSummary> {
        let mut tx = self.begin_write().await?;
        // The state is read under the row's lock, in the transaction that
        // changes it: a cancel racing a pause or resume cannot be undone by it.
        let (sweep_id, name, state) = locked_sweep::<D>(&mut tx, sweep).await?;
        let target = match (state, action) {
            (SweepState::Cancelled, SweepAction::Cancel) => None,
            (SweepState::Cancelled, _) => {
                return Err(StoreError::SweepConflict {
                    sweep: name,
                    message: "is cancelled; a cancelled sweep stays cancelled".to_string(),
                });
            }
            (_, SweepAction::Pause) => Some(SweepState::Paused),
            (_, SweepAction::Resume) => Some(SweepState::Active),
            (_, SweepAction::Cancel) => Some(SweepState::Cancelled),
        };
        if let Some(target) = target {
            // A resume restarts the failure budget's count from the failures
            // there are now; any steer clears the coordinator's reason.
            sqlx::query(
                "UPDATE sweeps SET state = $2, updated_at_ms = $3, pause_reason = NULL, \
                 failed_base = CASE WHEN $2 = 'active' THEN (SELECT COUNT(*) FROM jobs f \
                   WHERE f.sweep_id = $1 AND f.in_spec = 1 AND f.status = 'failed') ELSE failed_base END \
                 WHERE id = $1",
            )
            .bind(sweep_id)
            .bind(target.name())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if target == SweepState::Cancelled {
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', worker_id = NULL, lease_expires_at_ms = NULL, \
                     lease_token_sha256 = NULL, finished_at_ms = $2 \
                     WHERE sweep_id = $1 AND status IN ('pending', 'running')",
                )
                .bind(sweep_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Sql::summary(self, &sweep_id.to_string()).await
    }

    async fn rerun_jobs(&self, sweep: &str, job_ids: &[i64], now: Millis) -> Result<(Vec<i64>, Vec<String>)> {
        let mut tx = self.begin_write().await?;
        let (sweep_id, name) = lock_sweep::<D>(&mut tx, sweep).await?;
        let mut requeued = Vec::new();
        let mut orphans = Vec::new();
        for &job_id in job_ids {
            let done = sqlx::query(
                "UPDATE jobs SET status = 'pending', worker_id = NULL, lease_expires_at_ms = NULL, \
                 lease_token_sha256 = NULL, started_at_ms = NULL, finished_at_ms = NULL, epochs_done = 0, \
                 final_train_loss = NULL, final_train_error = NULL, final_test_loss = NULL, \
                 final_test_error = NULL, best_test_error = NULL, train_seconds = NULL, last_error = NULL, \
                 provenance_json = NULL, attempts_spent = 0, machine_failures = 0 \
                 WHERE id = $1 AND sweep_id = $2 AND status IN ('succeeded', 'failed')",
            )
            .bind(job_id)
            .bind(sweep_id)
            .execute(&mut *tx)
            .await?;
            if D::rows_affected(&done) == 0 {
                continue;
            }
            sqlx::query("DELETE FROM epochs WHERE job_id = $1").bind(job_id).execute(&mut *tx).await?;
            for sha in Sql::<D>::prune_checkpoints(&mut tx, job_id, None).await? {
                if !orphans.contains(&sha) {
                    orphans.push(sha);
                }
            }
            requeued.push(job_id);
        }
        sqlx::query("UPDATE sweeps SET updated_at_ms = $2 WHERE id = $1")
            .bind(sweep_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(sweep = %name, jobs = requeued.len(), "finished jobs handed back to be trained again");
        Ok((requeued, orphans))
    }

    async fn copy_jobs(&self, sweep: &str, job_ids: &[i64], new_name: &str, now: Millis) -> Result<SweepSummary> {
        let mut tx = self.begin_write().await?;
        let (sweep_id, _) = lock_sweep::<D>(&mut tx, sweep).await?;
        let created = sqlx::query(
            "INSERT INTO sweeps (name, dataset, priority, max_attempts, spec_toml, created_at_ms, updated_at_ms, \
             engines_json) SELECT $2, dataset, priority, max_attempts, spec_toml, $3, $3, engines_json \
             FROM sweeps WHERE id = $1 ON CONFLICT (name) DO NOTHING",
        )
        .bind(sweep_id)
        .bind(new_name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if D::rows_affected(&created) == 0 {
            return Err(StoreError::SweepConflict {
                sweep: new_name.to_string(),
                message: "exists already: name another sweep to copy the jobs into".to_string(),
            });
        }
        let new_id: i64 =
            sqlx::query_scalar("SELECT id FROM sweeps WHERE name = $1").bind(new_name).fetch_one(&mut *tx).await?;
        // The columns a submission writes, the sweep's id and the creation
        // time replaced: the copy is the same cell and seed, pending.
        let columns = JOB_INSERT.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).expect("column list");
        let values = columns.replacen("sweep_id", "$2", 1).replace("created_at_ms", "$3");
        let copy = format!(
            "INSERT INTO jobs ({columns}) SELECT {values} FROM jobs \
             WHERE id = $1 AND sweep_id = $4 AND status IN ('succeeded', 'failed')"
        );
        for &job_id in job_ids {
            sqlx::query(&copy).bind(job_id).bind(new_id).bind(now).bind(sweep_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Sql::summary(self, &new_id.to_string()).await
    }
}

/// The named (or numbered) sweep's row, locked until `tx` ends: its id,
/// name and state.
async fn locked_sweep<D: Dialect>(
    tx: &mut sqlx::Transaction<'static, D::Db>,
    sweep: &str,
) -> Result<(i64, String, SweepState)>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Columns,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db>,
{
    let (filter, id) = sweep_filter(sweep);
    let sql = format!("SELECT s.id, s.name, s.state FROM sweeps s{filter}{}", D::LOCK_ROW);
    let query = sqlx::query(&sql);
    let query = match id {
        Some(id) => query.bind(id),
        None => query.bind(sweep),
    };
    let row = query.fetch_optional(&mut **tx).await?.ok_or_else(|| StoreError::SweepNotFound(sweep.to_string()))?;
    Ok((row.big("id")?, row.text("name")?, columns::sweep_state(&row)?))
}

/// [`locked_sweep`] for training its jobs again: its id and name, a
/// cancelled sweep refused.
async fn lock_sweep<D: Dialect>(tx: &mut sqlx::Transaction<'static, D::Db>, sweep: &str) -> Result<(i64, String)>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Row: Columns,
    for<'q> &'q str: Type<D::Db> + Encode<'q, D::Db>,
    i64: Type<D::Db> + for<'q> Encode<'q, D::Db>,
{
    match locked_sweep::<D>(tx, sweep).await? {
        (_, name, SweepState::Cancelled) => Err(StoreError::SweepConflict {
            sweep: name,
            message: "is cancelled: its jobs are not trained again (submit its spec as a new sweep)".to_string(),
        }),
        (id, name, _) => Ok((id, name)),
    }
}

/// `($1, .., $columns), ($columns + 1, ..), ..` for `rows` rows, each
/// bind written by `placeholder`.
fn placeholders(placeholder: fn(usize) -> String, rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let binds: Vec<String> = (1..=columns).map(|c| placeholder(r * columns + c)).collect();
        format!("({})", binds.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// A count or seed in a signed 64-bit column. The spec's validation keeps
/// these within range (seeds at most `i64::MAX`, the sizes of networks it
/// accepts far below); saturating only keeps a bug from wrapping negative.
fn stored_int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_bind_once_in_order() {
        assert_eq!(placeholders(PostgresStore::placeholder, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(SqliteStore::placeholder, 1, 2), "(?, ?)");
    }

    #[test]
    fn a_job_insert_binds_each_column_it_names() {
        let (_, names) = JOB_INSERT.split_once('(').unwrap();
        assert_eq!(names.trim_end_matches(')').split(',').count(), JOB_INSERT_COLUMNS);
    }
}
