//! What a submission changes in a sweep that may already hold jobs: the
//! one place that decides, from the stored jobs' hashes and flags, which
//! jobs are new, which come back into the spec, which leave it, and which
//! wait in the adaptive seeds' reserve.

use std::collections::{HashMap, HashSet};

use super::NewSweep;
use crate::spec::JobSpec;

/// A stored job's place in its sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub in_spec: bool,
    pub reserve: bool,
}

#[derive(Debug, Default)]
pub(super) struct SubmitChanges<'a> {
    /// Jobs of the spec the sweep lacks: stored in the spec.
    pub new_jobs: Vec<&'a JobSpec>,
    /// Reserve seeds the sweep lacks: stored in reserve.
    pub new_reserve: Vec<&'a JobSpec>,
    /// Stored jobs out of the spec (dropped earlier, or held in reserve)
    /// that the spec runs from the start now.
    pub readded: Vec<&'a str>,
    /// Stored jobs dropped earlier that the spec holds in reserve now.
    pub back_in_reserve: Vec<&'a str>,
    /// Stored jobs, in the spec or in reserve, that the spec no longer has.
    pub dropped: Vec<&'a str>,
    /// How many of `dropped` were in the spec (the rest were reserve).
    pub dropped_from_spec: u64,
    /// The spec's reserve jobs that stay held back (not yet added to their
    /// cell) after this submission.
    pub held: u64,
}

impl<'a> SubmitChanges<'a> {
    /// A reserve seed that was added to its cell stays in the spec when
    /// the same spec is submitted again: submitting twice changes nothing.
    pub fn of(sweep: &'a NewSweep<'_>, stored: &'a HashMap<String, Stored>) -> Self {
        let mut changes = Self::default();
        let mut wanted: HashSet<&str> = HashSet::with_capacity(sweep.jobs.len() + sweep.reserve.len());
        for job in sweep.jobs {
            wanted.insert(&job.cell_hash);
            match stored.get(&job.cell_hash) {
                None => changes.new_jobs.push(job),
                Some(Stored { in_spec: false, .. }) => changes.readded.push(&job.cell_hash),
                Some(Stored { in_spec: true, .. }) => {}
            }
        }
        for job in sweep.reserve {
            wanted.insert(&job.cell_hash);
            match stored.get(&job.cell_hash) {
                None => {
                    changes.new_reserve.push(job);
                    changes.held += 1;
                }
                Some(Stored { in_spec: false, reserve: false }) => {
                    changes.back_in_reserve.push(&job.cell_hash);
                    changes.held += 1;
                }
                Some(Stored { in_spec: false, reserve: true }) => changes.held += 1,
                Some(Stored { in_spec: true, .. }) => {}
            }
        }
        changes.dropped = stored
            .iter()
            .filter(|(hash, place)| (place.in_spec || place.reserve) && !wanted.contains(hash.as_str()))
            .map(|(hash, _)| hash.as_str())
            .collect();
        changes.dropped_from_spec = changes.dropped.iter().filter(|hash| stored[**hash].in_spec).count() as u64;
        changes
    }
}
