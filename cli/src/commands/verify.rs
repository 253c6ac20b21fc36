//! `widesweep verify SWEEP --sample N`: re-trains sampled finished jobs on
//! the coordinator's workers, as jobs of a verification sweep, and says for
//! each whether the re-run reproduced the recorded result.
//!
//! What "reproduced" means depends on the two results' provenance. The
//! same clean build with the same CPU kernels, data, engine and random
//! scheme trains the same numbers bit for bit (widesweep's CPU kernels are
//! deterministic and every random number is keyed by seed, epoch and step),
//! so there any difference is a mismatch. Anything else (a GPU, another
//! build, a dirty tree, a command engine) may differ in the last bits and
//! so the summation order of a reduction, and is held to a tolerance on
//! the final test error instead.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rand::SeedableRng;
use widesweep_coordinator::store::{JobStatus, Provenance, ResultRow};
use widesweep_proto::v1 as pb;

use super::results::{SourceArgs, fetch};
use crate::connection::{CoordinatorArgs, explain};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The sweep's name or id.
    pub sweep: String,
    /// How many finished jobs to re-train, drawn at random (see --seed).
    #[arg(long, default_value_t = 4, conflicts_with = "all")]
    pub sample: usize,
    /// Re-train every succeeded job.
    #[arg(long)]
    pub all: bool,
    /// Seed of the draw, so that a verification can be repeated.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest difference in final test error, in percentage points, that
    /// counts as reproduced where bit-identity is not expected.
    #[arg(long, default_value_t = 0.5)]
    pub tolerance: f64,
    /// Give up waiting for the re-runs after this many seconds.
    #[arg(long, default_value_t = 86_400)]
    pub timeout_seconds: u64,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

/// A recorded result against its re-run.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Every final metric equal to the last bit.
    Identical,
    /// Not identical, within the tolerance, where identity is not expected.
    Within { difference_pp: f64 },
    /// Neither: the fields of provenance that differ say where to look.
    Mismatch { why: String },
}

impl Verdict {
    pub fn reproduced(&self) -> bool {
        !matches!(self, Verdict::Mismatch { .. })
    }
}

/// Whether `rerun` reproduced `recorded`.
pub fn judge(recorded: &ResultRow, rerun: &ResultRow, tolerance_pp: f64) -> Verdict {
    if rerun.status != JobStatus::Succeeded {
        return Verdict::Mismatch {
            why: format!("the re-run {}: {}", rerun.status, rerun.last_error.as_deref().unwrap_or("no error recorded")),
        };
    }
    let metrics = |r: &ResultRow| [r.final_train_loss, r.final_train_error, r.final_test_loss, r.final_test_error];
    let identical =
        metrics(recorded).iter().zip(metrics(rerun)).all(|(a, b)| a.map(f64::to_bits) == b.map(f64::to_bits));
    if identical {
        return Verdict::Identical;
    }
    let none = Provenance::default();
    let (a, b) = (recorded.provenance.as_ref().unwrap_or(&none), rerun.provenance.as_ref().unwrap_or(&none));
    let mut differing: Vec<&str> =
        a.fields().iter().zip(b.fields()).filter(|(x, y)| x.1 != y.1).map(|(x, _)| x.0).collect();
    differing.retain(|f| *f != "hostname" && *f != "device");
    let expected_identical = bit_reproducible(a) && differing.is_empty();
    let difference_pp = match (recorded.final_test_error, rerun.final_test_error) {
        (Some(x), Some(y)) => (x - y).abs() * 100.0,
        _ => f64::INFINITY,
    };
    let values = format!(
        "test error {} recorded, {} re-trained",
        percent(recorded.final_test_error),
        percent(rerun.final_test_error)
    );
    if expected_identical {
        return Verdict::Mismatch {
            why: format!(
                "{values}, though the same clean build, CPU kernels, data and random scheme train the same bits: \
                 the stored result was changed, or the run is not deterministic"
            ),
        };
    }
    if difference_pp <= tolerance_pp {
        return Verdict::Within { difference_pp };
    }
    let why = if recorded.provenance.is_none() {
        "the recorded result has no provenance".to_string()
    } else if differing.is_empty() {
        "provenance the same".to_string()
    } else {
        format!("provenance differs in {}", differing.join(", "))
    };
    Verdict::Mismatch { why: format!("{values} ({why})") }
}

/// Whether a result of this provenance is expected to repeat bit for bit:
/// a clean build's built-in engine on the CPU.
fn bit_reproducible(p: &Provenance) -> bool {
    p.reproducible_build()
        && p.engine == "candle"
        && (p.kernel_class() == "cpu" || p.kernels.starts_with("generic (candle, cpu"))
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or("-".into(), |f| format!("{:.2}", f * 100.0))
}

/// `n` of `jobs` drawn with a fixed seed (all of them when `n` covers them),
/// in id order.
pub fn sample(jobs: &[i64], n: usize, seed: u64) -> Vec<i64> {
    let mut pool = jobs.to_vec();
    pool.sort_unstable();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<i64> =
        rand::seq::index::sample(&mut rng, pool.len(), n.min(pool.len())).into_iter().map(|i| pool[i]).collect();
    picked.sort_unstable();
    picked
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let source = SourceArgs { coordinator: args.coordinator.clone(), db: None };
    let (rows, _) = fetch(&source, std::slice::from_ref(&args.sweep), false).await?;
    let succeeded: Vec<i64> = rows.iter().filter(|r| r.status == JobStatus::Succeeded).map(|r| r.job_id).collect();
    if succeeded.is_empty() {
        anyhow::bail!("sweep {} has no succeeded job to verify", args.sweep);
    }
    let chosen = if args.all { succeeded.clone() } else { sample(&succeeded, args.sample, args.seed) };
    let url = &args.coordinator.coordinator;
    let mut clients = args.coordinator.connect()?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let sweep_name = rows.first().map_or(args.sweep.clone(), |r| r.sweep.clone());
    let name = format!("{sweep_name}-verify-{stamp}");
    let created = clients
        .sweeps
        .copy_jobs(pb::JobsRef { sweep: args.sweep.clone(), job_ids: chosen.clone(), new_sweep: name.clone() })
        .await
        .map_err(|s| explain(s, url))
        .context("creating the verification sweep")?
        .into_inner();
    println!(
        "verification sweep {name}: {} of {} succeeded jobs of {sweep_name} to re-train on the workers of {url}",
        created.pending,
        succeeded.len()
    );

    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    loop {
        let status = clients
            .sweeps
            .get_sweep(pb::GetSweepRequest { sweep: name.clone() })
            .await
            .map_err(|s| explain(s, url))?
            .into_inner();
        if status.pending + status.running == 0 {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{name}: {} of {} re-runs still pending or running after {} s (are workers attached to {url}?)",
                status.pending + status.running,
                chosen.len(),
                args.timeout_seconds
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (reruns, _) = fetch(&source, std::slice::from_ref(&name), false).await?;
    let by_cell: HashMap<(&str, u64), &ResultRow> =
        reruns.iter().map(|r| ((r.cell_hash.as_str(), r.config.seed), r)).collect();
    let mut mismatches = 0;
    for recorded in rows.iter().filter(|r| chosen.contains(&r.job_id)) {
        // The label names the cell and its seed.
        let label = format!("job {} ({})", recorded.job_id, recorded.config.label());
        let Some(rerun) = by_cell.get(&(recorded.cell_hash.as_str(), recorded.config.seed)) else {
            println!("{label}: NOT reproduced: no re-run in {name}");
            mismatches += 1;
            continue;
        };
        match judge(recorded, rerun, args.tolerance) {
            Verdict::Identical => println!("{label}: reproduced bit for bit (job {})", rerun.job_id),
            Verdict::Within { difference_pp } => println!(
                "{label}: reproduced within {} pp (test error differs by {difference_pp:.3} pp; job {})",
                args.tolerance, rerun.job_id
            ),
            Verdict::Mismatch { why } => {
                mismatches += 1;
                println!("{label}: NOT reproduced: {why} (job {})", rerun.job_id);
            }
        }
    }
    println!(
        "{} of {} re-trained jobs reproduced their recorded result in {:.0} s",
        chosen.len() - mismatches,
        chosen.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if mismatches == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_depend_on_the_seed_alone_and_are_distinct() {
        let jobs: Vec<i64> = (1..=8).rev().collect();
        let a = sample(&jobs, 4, 1);
        assert_eq!(a, sample(&jobs, 4, 1));
        assert_eq!(a.len(), 4);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(a, sample(&jobs, 4, 2));
        assert_eq!(sample(&jobs, 20, 1), (1..=8).collect::<Vec<_>>());
    }
}
