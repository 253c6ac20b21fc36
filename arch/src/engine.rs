//! What trains a job: the built-in candle WRN, or a lab's own command, and
//! the free-form parameters a command takes (`[grid.params]`). Plain data,
//! shared by the coordinator (which stores and hashes it) and the worker
//! (which runs it).

use std::collections::BTreeMap;

/// The name of the built-in engine: the worker trains the WRN itself.
pub const CANDLE: &str = "candle";

/// How long a command may go without a message on its channel before it
/// counts as hung, when the spec does not say (`heartbeat_seconds`).
pub const DEFAULT_HEARTBEAT_SECONDS: u32 = 3600;

/// How long a command has to checkpoint and exit once asked to stop,
/// when the spec does not say (`grace_seconds`).
pub const DEFAULT_GRACE_SECONDS: u32 = 60;

/// A command engine as a spec defines it (`[engine]` or `[engines.NAME]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandEngine {
    /// The program and its arguments, e.g. `["python", "train.py"]`.
    pub command: Vec<String>,
    /// The directory it starts in; relative paths resolve against the
    /// worker's own working directory. Absent: the worker's working
    /// directory (so `["python", "train.py"]` finds the script where the
    /// worker was started); the job's private directory is in its job file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Variables set for it, beside the worker's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Seconds between the stop request and SIGKILL.
    #[serde(default = "default_grace")]
    pub grace_seconds: u32,
    /// Seconds of silence on the channel after which the command is
    /// killed as hung and its attempt fails.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u32,
}

fn default_grace() -> u32 {
    DEFAULT_GRACE_SECONDS
}

fn default_heartbeat() -> u32 {
    DEFAULT_HEARTBEAT_SECONDS
}

/// One free-form parameter's value: any TOML scalar.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            // `{:?}` keeps the decimal point of a whole float (0.0, not 0),
            // so a float and an integer axis value never read the same.
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Text(s) => f.write_str(s),
        }
    }
}

/// A job's free-form parameters, by name in sorted order (empty for the
/// candle engine, which takes none).
pub type Params = BTreeMap<String, ParamValue>;
