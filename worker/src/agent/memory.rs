//! Several jobs per GPU under `--slots-per-gpu auto`: a device's slots
//! share a memory budget (the device's free memory when the worker
//! started, less a margin), and a slot trains a leased job only if the
//! job's estimated peak memory fits beside the jobs its device already
//! runs. A job that does not fit is handed back (no attempt spent) and the
//! slot waits until a job on its device ends before it leases again. A
//! device's first job is always admitted: alone it would run anyway.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use widesweep_arch::{Precision, WrnConfig};

/// Most slots `auto` gives one device: beyond that, small WRNs already
/// keep an H100's SMs busy and more processes only add contexts.
pub const AUTO_MAX_SLOTS: usize = 8;

/// The share of the free memory the slots may plan to use: the rest is
/// for what the estimate leaves out (allocator fragmentation, cuDNN and
/// cuBLAS workspaces).
const USABLE_SHARE: f64 = 0.85;

/// Per-job memory outside the model: the CUDA stream's and cuBLAS's
/// workspaces, the batch on its way in.
const JOB_OVERHEAD_BYTES: u64 = 256 << 20;

/// A training job's estimated peak device memory: the activations a step
/// keeps for its backward pass (the plan's count, doubled for the
/// gradients that live beside them and the tensors candle keeps that the
/// count leaves out) at the batch size, in the precision's activation
/// width, plus the parameters four times in f32 (weights, gradients,
/// momentum and a per-step cast), plus a fixed overhead.
pub fn job_memory_bytes(config: &WrnConfig, batch_size: usize, precision: Precision) -> u64 {
    let plan = config.plan();
    let activation_bytes: u64 = match precision {
        Precision::F32 => 4,
        Precision::Bf16 => 2,
    };
    let activations = plan.activation_elems() * batch_size as u64 * activation_bytes * 2;
    let parameters = plan.param_count() * 4 * 4;
    activations + parameters + JOB_OVERHEAD_BYTES
}

/// One device's memory budget, shared by its slots.
#[derive(Debug)]
pub struct DeviceBudget {
    capacity: u64,
    reserved: Mutex<Reserved>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Reserved {
    bytes: u64,
    jobs: usize,
    /// Jobs ended so far: what a slot that found no room waits to move.
    ended: u64,
}

/// How many of a device's jobs had ended when a reservation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    ended: u64,
}

impl DeviceBudget {
    /// A budget for a device with `free_bytes` free.
    pub fn new(free_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            capacity: (free_bytes as f64 * USABLE_SHARE) as u64,
            reserved: Mutex::default(),
            freed: Notify::new(),
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Room for a job of `bytes`, held until the reservation is dropped;
    /// refused when it would not fit beside the device's running jobs.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, Refused> {
        let mut reserved = self.lock();
        if reserved.jobs > 0 && reserved.bytes + bytes > self.capacity {
            return Err(Refused { ended: reserved.ended });
        }
        reserved.bytes += bytes;
        reserved.jobs += 1;
        Ok(Reservation { budget: Arc::clone(self), bytes })
    }

    /// Bytes reserved by the device's running jobs, and how many they are.
    pub fn reserved(&self) -> (u64, usize) {
        let reserved = self.lock();
        (reserved.bytes, reserved.jobs)
    }

    /// Waits until a job of this device has ended since `refused` (at
    /// once if one already has: a job that ends between the refusal and
    /// this call is not missed).
    pub async fn released_since(&self, refused: Refused) {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().ended != refused.ended {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reserved> {
        self.reserved.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running job's share of its device's budget.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DeviceBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.budget.lock();
        reserved.bytes -= self.bytes;
        reserved.jobs -= 1;
        reserved.ended += 1;
        drop(reserved);
        self.budget.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use widesweep_arch::Dataset;

    #[test]
    fn estimates_grow_with_the_network_and_the_batch() {
        let small = WrnConfig::wrn(16, 4, Dataset::Cifar10).unwrap();
        let large = WrnConfig::wrn(28, 10, Dataset::Cifar10).unwrap();
        let bytes = |c: &WrnConfig, batch, p| job_memory_bytes(c, batch, p);
        assert!(bytes(&small, 128, Precision::F32) < bytes(&large, 128, Precision::F32));
        assert!(bytes(&small, 64, Precision::F32) < bytes(&small, 128, Precision::F32));
        assert!(bytes(&small, 128, Precision::Bf16) < bytes(&small, 128, Precision::F32));
        // WRN-28-10 at batch 128 needs gigabytes (PyTorch peaks near 5 GB
        // in f32), not megabytes or hundreds of gigabytes.
        let gib = bytes(&large, 128, Precision::F32) as f64 / (1u64 << 30) as f64;
        assert!((2.0..20.0).contains(&gib), "{gib:.1} GiB");
    }

    #[tokio::test]
    async fn jobs_share_a_device_while_they_fit_and_the_first_always_runs() {
        let budget = DeviceBudget::new(1000);
        assert_eq!(budget.capacity(), 850);
        let huge = budget.reserve(5000).expect("a device's first job runs whatever its size");
        assert!(budget.reserve(1).is_err(), "nothing fits beside it");
        drop(huge);
        let a = budget.reserve(400).unwrap();
        let b = budget.reserve(400).unwrap();
        assert_eq!(budget.reserved(), (800, 2));
        let refused = budget.reserve(100).unwrap_err();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.released_since(refused).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing ended yet");
        drop(a);
        let wait = std::time::Duration::from_secs(5);
        tokio::time::timeout(wait, waiter).await.unwrap().unwrap();
        // A job that ended before the wait began is not missed.
        tokio::time::timeout(wait, budget.released_since(refused)).await.unwrap();
        let c = budget.reserve(100).expect("a job's end makes room");
        drop((b, c));
        assert_eq!(budget.reserved(), (0, 0));
    }
}
