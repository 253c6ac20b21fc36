//! Where a result came from: the build, engine, kernels, device and data
//! that produced it, as the worker recorded it with its attempt.
//!
//! Some of it changes results and some does not. Two seeds of one cell
//! trained under different random number schemes, datasets, engines or
//! kernel classes are not samples of one distribution, and a table must
//! not pool them silently ([`Provenance::differences`]). The build, device,
//! driver and host are kept for the record: they say where to look when a
//! result surprises, but a different host with the same kernels and data
//! trains the same numbers.

use serde::{Deserialize, Serialize};

/// What the worker recorded of a result's making. Strings, empty where a
/// field does not apply (no GPU: no driver version).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    pub widesweep_version: String,
    /// The commit the worker was built from, "-dirty" when its tree had
    /// uncommitted changes, "unknown" outside git.
    pub git_commit: String,
    pub engine: String,
    pub engine_version: String,
    /// The kernel path the job's precision trained with after the
    /// self-check: "cpu (...)", "cudnn (...)", "generic (...)".
    pub kernels: String,
    pub device: String,
    pub driver_version: String,
    pub cuda_version: String,
    pub cudnn_version: String,
    /// The random number scheme: initialisation, data order, dropout masks.
    pub rng: String,
    /// SHA-256 of the dataset files read, in order.
    pub dataset_sha256: String,
    pub hostname: String,
}

impl Provenance {
    /// The fields that change results, by name, with this result's value:
    /// two results that differ in one of them are not comparable.
    pub fn comparable(&self) -> [(&'static str, &str); 5] {
        [
            ("rng", &self.rng),
            ("dataset_sha256", &self.dataset_sha256),
            ("engine", &self.engine),
            ("engine_version", &self.engine_version),
            ("kernels", self.kernel_class()),
        ]
    }

    /// The kernels' class, what the self-check chose between: "cpu",
    /// "cudnn", "generic"... (the text before any detail in parentheses).
    pub fn kernel_class(&self) -> &str {
        self.kernels.split(" (").next().unwrap_or("").trim()
    }

    /// The comparable fields in which `self` and `other` differ.
    pub fn differences(&self, other: &Provenance) -> Vec<&'static str> {
        self.comparable().iter().zip(other.comparable()).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0).collect()
    }

    /// Every field's name and value, in a fixed order, for display.
    pub fn fields(&self) -> [(&'static str, &str); 12] {
        [
            ("widesweep_version", &self.widesweep_version),
            ("git_commit", &self.git_commit),
            ("engine", &self.engine),
            ("engine_version", &self.engine_version),
            ("kernels", &self.kernels),
            ("device", &self.device),
            ("driver_version", &self.driver_version),
            ("cuda_version", &self.cuda_version),
            ("cudnn_version", &self.cudnn_version),
            ("rng", &self.rng),
            ("dataset_sha256", &self.dataset_sha256),
            ("hostname", &self.hostname),
        ]
    }

    /// As stored in `jobs.provenance_json` and `attempts.provenance_json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    /// From a stored column; `None` for what is not a provenance object
    /// (the column is written by the coordinator alone, so that means an
    /// edited database: the result then counts as one without provenance).
    pub fn from_json(text: &str) -> Option<Provenance> {
        serde_json::from_str(text).ok()
    }

    /// The build that would train a result the same bit for bit on the
    /// CPU: a clean commit (a dirty tree may differ from anything).
    pub fn reproducible_build(&self) -> bool {
        !self.git_commit.is_empty() && self.git_commit != "unknown" && !self.git_commit.ends_with("-dirty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle() -> Provenance {
        Provenance {
            engine: "candle".into(),
            engine_version: "0.11.0".into(),
            kernels: "cpu (winograd, 2 threads)".into(),
            rng: "chacha8-v2".into(),
            dataset_sha256: "ab".into(),
            hostname: "a".into(),
            ..Provenance::default()
        }
    }

    #[test]
    fn only_fields_that_change_results_make_results_incomparable() {
        let a = candle();
        let other_host = Provenance { hostname: "b".into(), kernels: "cpu (16 threads)".into(), ..candle() };
        assert!(a.differences(&other_host).is_empty());
        let other_data = Provenance { dataset_sha256: "cd".into(), kernels: "generic (nchw)".into(), ..candle() };
        assert_eq!(a.differences(&other_data), vec!["dataset_sha256", "kernels"]);
    }

    #[test]
    fn json_round_trips_and_tolerates_missing_fields() {
        let a = candle();
        assert_eq!(Provenance::from_json(&a.to_json()), Some(a));
        assert_eq!(Provenance::from_json(r#"{"engine":"x"}"#).unwrap().engine, "x");
        assert_eq!(Provenance::from_json("not json"), None);
    }
}
