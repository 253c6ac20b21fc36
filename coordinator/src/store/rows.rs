//! The store's domain types: what goes in and out of the queue.

use crate::spec::JobSpec;
use widesweep_arch::Dataset;
pub use widesweep_arch::{EpochMetrics, JobConfig};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The proof a worker gives that it holds a job's lease: the attempt
/// orders (it is public: tables show it), the token's digest authorises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    pub job_id: i64,
    pub attempt: u32,
    pub token: LeaseDigest,
}

/// The secret a lease hands to its worker: 256 bits from the operating
/// system's generator, as 64 hex digits on the wire. Only its digest is
/// stored, so a database reader (or a `widesweep sql` user) cannot act as
/// the worker.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken(String);

impl LeaseToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        Self(hex::encode(bytes))
    }

    /// The token as the worker sent it back (not checked here: a wrong
    /// token simply has another digest).
    pub fn from_wire(text: &str) -> Self {
        Self(text.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> LeaseDigest {
        use sha2::Digest as _;
        LeaseDigest(sha2::Sha256::digest(self.0.as_bytes()).into())
    }
}

/// Never printed: a token in a log line would be a credential in the log.
impl std::fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseToken(..)")
    }
}

/// SHA-256 of a lease token: what the store keeps and compares. Comparing
/// digests leaks nothing useful through timing: learning a digest's
/// prefix does not help to find a token that hashes to it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LeaseDigest([u8; 32]);

impl LeaseDigest {
    /// No secret: for fences the store builds itself (the reaper's).
    pub const NONE: LeaseDigest = LeaseDigest([0; 32]);

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for LeaseDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseDigest({}..)", &self.hex()[..8])
    }
}

pub struct NewSweep<'a> {
    pub name: &'a str,
    pub dataset: Dataset,
    pub spec_toml: &'a str,
    /// The spec's command engines by name.
    pub engines: &'a std::collections::BTreeMap<String, widesweep_arch::CommandEngine>,
    pub priority: i32,
    pub max_attempts: u32,
    pub jobs: &'a [JobSpec],
    /// Adaptive seeds held in reserve ([`Expansion::reserve`](crate::spec::Expansion)):
    /// stored, not leased until their cell needs them.
    pub reserve: &'a [JobSpec],
    /// The half-width (percentage points) each cell's 95 % interval should
    /// reach before its reserve stops being used; `None` without adaptive seeds.
    pub seeds_target_ci: Option<f64>,
    /// The failure budget (see `Spec::max_failed_fraction`).
    pub max_failed_fraction: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitOutcome {
    pub sweep_id: i64,
    pub new: u64,
    pub existing: u64,
    pub dropped: u64,
    /// Reserve jobs of the spec still held back after this submission.
    pub reserve: u64,
    /// Reserve jobs that this submission's check of the cells added.
    pub added: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepState {
    Active,
    Paused,
    Cancelled,
}

impl SweepState {
    pub fn name(self) -> &'static str {
        match self {
            SweepState::Active => "active",
            SweepState::Paused => "paused",
            SweepState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(SweepState::Active),
            "paused" => Some(SweepState::Paused),
            "cancelled" => Some(SweepState::Cancelled),
            _ => None,
        }
    }
}

/// Where a job is in its life: pending -> running -> succeeded | failed |
/// cancelled, and running -> pending when its lease is lost or handed back.
/// Stored as its name (the `jobs.status` column's CHECK lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Pending, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text`, as the database and the wire spell it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a status's name, as queries and tests spell it.
impl PartialEq<&str> for JobStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepAction {
    Pause,
    Resume,
    Cancel,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobCounts {
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl JobCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.succeeded + self.failed + self.cancelled
    }

    pub fn finished(&self) -> bool {
        self.pending == 0 && self.running == 0
    }
}

/// A sweep and its progress. Serialized (as the dashboard's `/api/sweeps`
/// serves it) with the counts beside the other fields.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SweepSummary {
    pub id: i64,
    pub name: String,
    pub state: SweepState,
    pub priority: i32,
    pub dataset: Dataset,
    #[serde(flatten)]
    pub counts: JobCounts,
    pub epochs_done: u64,
    pub epochs_total: u64,
    /// Mean over reported epochs; `None` before the first report.
    pub mean_epoch_seconds: Option<f64>,
    /// The cost model's work (FLOP-equivalents) of the epochs still to run
    /// in pending and running jobs.
    pub work_remaining: f64,
    /// Work per second of one running job, observed over the sweep's
    /// reported epochs; `None` before the first report.
    pub work_rate: Option<f64>,
    /// Adaptive seeds held in reserve (not yet added to their cell).
    pub reserve: u64,
    /// The adaptive seeds' target half-width, in percentage points.
    pub seeds_target_ci: Option<f64>,
    /// Why the coordinator paused the sweep (its failure budget), if it did.
    pub pause_reason: Option<String>,
    pub created_at_ms: Millis,
}

impl SweepSummary {
    /// Seconds until the remaining work has run at the sweep's observed
    /// rate, spread over the jobs running now (at least one). By work, not
    /// epochs, so a sweep whose long jobs are still to come (or, leased
    /// longest first, whose short ones are) is not misjudged from the
    /// epochs it has timed. Reserve seeds are not counted: they may never run.
    pub fn eta_seconds(&self) -> Option<f64> {
        let rate = self.work_rate?;
        if self.counts.finished() {
            return Some(0.0);
        }
        Some(self.work_remaining / rate / self.counts.running.max(1) as f64)
    }
}

/// One device's measured speed in the cost model's units.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRate {
    /// The device name workers report (e.g. `cpu`, `NVIDIA H100 80GB HBM3`).
    pub device: String,
    pub epochs: u64,
    /// Work of those epochs, FLOP-equivalents.
    pub work: f64,
    pub seconds: f64,
}

impl DeviceRate {
    /// What `jobs.device` holds: the slot, and its kind in parentheses when
    /// the worker told it (`cuda:0 (NVIDIA H100 80GB HBM3)`).
    pub fn label(slot: &str, kind: &str) -> String {
        let kind = kind.trim();
        if kind.is_empty() { slot.to_string() } else { format!("{slot} ({kind})") }
    }

    /// The kind of a [`DeviceRate::label`]: what rates are learnt by. A
    /// label without one (from workers that did not tell) is its own kind.
    pub fn kind_of(label: &str) -> &str {
        label
            .split_once(" (")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .filter(|kind| !kind.is_empty())
            .unwrap_or(label)
    }

    /// FLOP-equivalents per second.
    pub fn rate(&self) -> f64 {
        self.work / self.seconds
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LeasedJob {
    pub job_id: i64,
    pub attempt: u32,
    pub max_attempts: u32,
    pub sweep_name: String,
    pub cell_hash: String,
    pub config: JobConfig,
    pub lease_expires_at_ms: Millis,
    pub checkpoint: Option<CheckpointRef>,
    /// The digest of the lease's token (the token itself went to the worker).
    pub lease_digest: LeaseDigest,
    /// The command of the job's engine, unless candle trains it.
    pub command: Option<widesweep_arch::CommandEngine>,
}

impl LeasedJob {
    /// The fence of this lease: its attempt and its token's digest.
    pub fn fence(&self) -> Fence {
        Fence { job_id: self.job_id, attempt: self.attempt, token: self.lease_digest }
    }
}

/// Where a failed attempt's error comes from (the `attempts.error_class`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The job's own: it fails the same way anywhere.
    Job,
    /// The machine's: another machine may succeed.
    Machine,
    Unknown,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Job => "job",
            ErrorClass::Machine => "machine",
            ErrorClass::Unknown => "unknown",
        }
    }
}

/// A failed attempt as its worker reports it.
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    pub error: &'a str,
    /// False: no attempt can succeed (a bad config); the job fails at once.
    pub retryable: bool,
    pub class: ErrorClass,
}

/// A sweep's failed attempts with one class and one error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ErrorGroup {
    pub error_class: String,
    pub error: String,
    pub attempts: u32,
    pub jobs: u32,
    /// "hostname (worker N)", each once, in order of first failure.
    pub workers: Vec<String>,
}

/// One failed attempt, as `attempts` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedAttempt {
    pub job_id: i64,
    pub attempt: u32,
    pub worker_id: Option<i64>,
    pub hostname: String,
    pub error_class: String,
    pub error: String,
}

impl FailedAttempt {
    /// "hostname (worker N)".
    pub fn worker(&self) -> String {
        match self.worker_id {
            Some(id) => format!("{} (worker {id})", self.hostname),
            None => self.hostname.clone(),
        }
    }
}

/// Failed attempts grouped by class and error, the largest group first
/// (then the earliest), each listing its jobs' count and its workers.
pub fn group_errors(failed: &[FailedAttempt]) -> Vec<ErrorGroup> {
    let mut groups: Vec<(ErrorGroup, std::collections::HashSet<i64>)> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for attempt in failed {
        let at = *index.entry((&attempt.error_class, &attempt.error)).or_insert_with(|| {
            let group = ErrorGroup {
                error_class: attempt.error_class.clone(),
                error: attempt.error.clone(),
                attempts: 0,
                jobs: 0,
                workers: Vec::new(),
            };
            groups.push((group, std::collections::HashSet::new()));
            groups.len() - 1
        });
        let (group, jobs) = &mut groups[at];
        group.attempts += 1;
        if jobs.insert(attempt.job_id) {
            group.jobs += 1;
        }
        let worker = attempt.worker();
        if !group.workers.contains(&worker) {
            group.workers.push(worker);
        }
    }
    let mut groups: Vec<ErrorGroup> = groups.into_iter().map(|(group, _)| group).collect();
    // Stable: equal counts keep the order of their first failure.
    groups.sort_by_key(|g| std::cmp::Reverse(g.attempts));
    groups
}

/// Machine errors on this many different hosts fail a job for good: the
/// fault is then more likely the job's than every machine's.
pub const MACHINE_ERROR_HOSTS: i64 = 3;

/// The coordinator quarantines a worker whose last this many ended attempts
/// failed with machine errors on as many different jobs ...
pub const QUARANTINE_AFTER_JOBS: i64 = 3;
/// ... for this long, unless released sooner.
pub const QUARANTINE_MS: i64 = 10 * 60 * 1000;

/// A worker is kept from a job it failed while another worker has been
/// heard from within this long; alone, it retries the job itself.
pub const OTHER_WORKER_SEEN_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct JobResult {
    pub final_metrics: EpochMetrics,
    pub best_test_error: f64,
    pub train_seconds: f64,
    /// What produced it, as the worker recorded it (none from old workers).
    pub provenance: Option<super::Provenance>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCheckpoint {
    pub epoch: u32,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRef {
    pub checkpoint_id: i64,
    pub job_id: i64,
    pub attempt: u32,
    pub epoch: u32,
    pub size_bytes: u64,
    pub sha256: String,
}

/// A job's queue state and results, for status views and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub job_id: i64,
    pub sweep_id: i64,
    pub cell_hash: String,
    pub seed: u64,
    pub status: JobStatus,
    pub in_spec: bool,
    pub attempt: u32,
    pub attempts_spent: u32,
    pub max_attempts: u32,
    /// Leases that expired (worker killed, frozen, preempted, out of time).
    pub lost_leases: u32,
    pub worker_id: Option<i64>,
    pub lease_expires_at_ms: Option<Millis>,
    pub epochs_done: u32,
    pub final_test_error: Option<f64>,
    pub last_error: Option<String>,
}

/// One job of a sweep as tables, exports and plots read it: its
/// hyperparameters and recipe, its queue state and its results. Reports
/// aggregate these rows client-side, whether they came from the database
/// or from a coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    pub job_id: i64,
    pub sweep: String,
    pub cell_hash: String,
    /// Hyperparameters, dataset, seed and recipe.
    pub config: JobConfig,
    /// How the spec counted `depth` (conv-layers or nominal).
    pub depth_convention: String,
    pub params: u64,
    /// Multiply-accumulates of one forward pass of one image.
    pub forward_macs: u64,
    /// The cost model's work of the whole job, FLOP-equivalents.
    pub work: f64,
    /// False once a resubmitted spec no longer contains the job.
    pub in_spec: bool,
    pub status: JobStatus,
    pub attempt: u32,
    pub epochs_done: u32,
    pub final_train_loss: Option<f64>,
    pub final_train_error: Option<f64>,
    pub final_test_loss: Option<f64>,
    pub final_test_error: Option<f64>,
    pub best_test_error: Option<f64>,
    /// Training time of the successful attempt, as the worker measured it.
    pub train_seconds: Option<f64>,
    /// Mean seconds per recorded epoch; `None` before the first report.
    pub mean_epoch_seconds: Option<f64>,
    /// Seconds of every recorded epoch added up (running jobs included).
    pub recorded_seconds: f64,
    pub created_at_ms: Millis,
    pub started_at_ms: Option<Millis>,
    pub finished_at_ms: Option<Millis>,
    pub last_error: Option<String>,
    /// What produced the result; `None` before one, or when it was
    /// recorded before provenance was.
    pub provenance: Option<super::Provenance>,
}

/// A registered worker as the dashboard shows it: who it is, when it was
/// last heard from (registration, a lease, a report or a heartbeat) and
/// what each of its slots trains now.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerActivity {
    pub worker_id: i64,
    pub hostname: String,
    pub devices: Vec<String>,
    pub version: String,
    pub registered_at_ms: Millis,
    pub last_seen_at_ms: Millis,
    /// Why the coordinator quarantined it, while it is (until when).
    pub quarantine_reason: Option<String>,
    pub quarantined_until_ms: Option<Millis>,
    /// A slot's own quarantine as the worker reported it (until when).
    pub reported_quarantine: Option<String>,
    pub reported_until_ms: Option<Millis>,
    /// The jobs it holds leases on, by job id.
    pub slots: Vec<SlotActivity>,
}

impl WorkerActivity {
    /// The quarantine in force at `now` and until when: the coordinator's
    /// (which stops the worker's leases), else a slot's own report.
    pub fn quarantine(&self, now: Millis) -> Option<(String, Millis)> {
        let active = |reason: &Option<String>, until: Option<Millis>| {
            until.filter(|until| *until > now).and_then(|until| reason.clone().map(|reason| (reason, until)))
        };
        active(&self.quarantine_reason, self.quarantined_until_ms)
            .or_else(|| active(&self.reported_quarantine, self.reported_until_ms))
    }
}

/// A job a worker's slot trains.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotActivity {
    pub job_id: i64,
    pub sweep: String,
    /// The slot's device label (`cuda:0 (NVIDIA H100 80GB HBM3)`).
    pub device: Option<String>,
    pub epochs_done: u32,
    pub epochs: u32,
    /// The throughput of the job's latest reported epoch.
    pub images_per_second: Option<f64>,
    pub lease_expires_at_ms: Option<Millis>,
}

/// Everything recorded of one job: what the job page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDetail {
    /// Its configuration and results (`None` for a seed still held in an
    /// adaptive sweep's reserve: not a job of the sweep yet).
    pub result: Option<ResultRow>,
    /// Its queue state: attempts, lost leases, lease, last error.
    pub row: JobRow,
    /// Every recorded epoch with the attempt that recorded it.
    pub epochs: Vec<(u32, EpochMetrics)>,
    /// Its stored checkpoints (older ones are pruned as new ones arrive).
    pub checkpoints: Vec<CheckpointRef>,
    /// Every attempt: where it ran and how it ended.
    pub attempts: Vec<AttemptRow>,
}

/// One attempt of a job (a row of `attempts`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttemptRow {
    pub attempt: u32,
    pub worker_id: Option<i64>,
    pub hostname: String,
    pub device: String,
    pub leased_at_ms: Millis,
    pub ended_at_ms: Option<Millis>,
    /// running, succeeded, failed, lost or released.
    pub outcome: String,
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// A succeeded attempt's final test error (a fraction), kept when the
    /// job is trained again (`widesweep rerun`).
    pub final_test_error: Option<f64>,
    /// What produced a succeeded attempt's result.
    pub provenance: Option<super::Provenance>,
}

/// One recorded epoch of a job: a point of its learning curve.
#[derive(Clone, Debug, PartialEq)]
pub struct JobEpoch {
    pub job_id: i64,
    pub metrics: EpochMetrics,
}

#[cfg(test)]
mod device_tests {
    use super::DeviceRate;

    #[test]
    fn a_device_label_carries_its_kind() {
        let label = DeviceRate::label("cuda:1", "NVIDIA H100 80GB HBM3");
        assert_eq!(label, "cuda:1 (NVIDIA H100 80GB HBM3)");
        assert_eq!(DeviceRate::kind_of(&label), "NVIDIA H100 80GB HBM3");
        assert_eq!(DeviceRate::label("cpu", " "), "cpu");
        assert_eq!(DeviceRate::kind_of("cpu"), "cpu");
        let cpu = DeviceRate::label("cpu", "cpu: AMD EPYC 7B13 (64 cores), 2 threads");
        assert_eq!(DeviceRate::kind_of(&cpu), "cpu: AMD EPYC 7B13 (64 cores), 2 threads");
    }
}
