//! Seed-by-seed comparisons: when a cell and its baseline were trained
//! with the same seeds, each seed fixes both runs' initialisation and data
//! order (common random numbers), so the difference of the two runs of one
//! seed carries none of the seed's own effect. Comparing the per-seed
//! differences instead of the two samples removes that variance, which in
//! small ablations is often larger than the effect being measured.
//!
//! The test is the paired t-test on the differences, from two shared seeds
//! on. The alternative, the exact sign-flip permutation test, assumes less
//! (only that each difference is symmetric around 0 under the null) but its
//! p-value is a multiple of 2/2^n: it cannot go below 0.0625 with five
//! seeds, so the five-seed cells the WRN paper reports could never resolve
//! any difference at 0.05, however consistent. The t-test's assumption is
//! normality of the differences, which pairing helps (a difference of two
//! runs sharing their randomness is far less skewed than one run's error).
//! The sign-flip test is kept for the one case the t-test cannot describe:
//! differences that are all equal (zero spread, t infinite or 0/0), where
//! the exact sign-flip p-value is 1 for a zero difference and 2/2^n else.

use super::{Comparison, Interval, Method, check_level, student_t_quantile, two_sided_tail};

/// The paired comparison of `a` and `b`, matched by key (the seed): the
/// mean of the differences a - b over the keys both have, its Student-t
/// interval at `level` and a two-sided p-value. `None` when fewer than two
/// keys are shared or a shared value is not finite; the caller then falls
/// back to the unpaired test ([`super::compare`]).
///
/// # Panics
///
/// When `level` is not strictly between 0 and 1.
pub fn paired(a: &[(u64, f64)], b: &[(u64, f64)], level: f64) -> Option<Comparison> {
    check_level(level);
    let mut differences: Vec<f64> =
        a.iter().filter_map(|(key, x)| b.iter().find(|(k, _)| k == key).map(|(_, y)| x - y)).collect();
    if differences.len() < 2 || differences.iter().any(|d| !d.is_finite()) {
        return None;
    }
    // Sorted sums: the result does not depend on the order of the seeds.
    differences.sort_by(f64::total_cmp);
    let n = differences.len();
    let mean = differences.iter().sum::<f64>() / n as f64;
    let var = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    // Equal differences up to rounding have no spread to speak of.
    let scale = differences.iter().fold(0f64, |m, d| m.max(d.abs()));
    if se <= 1e-12 * scale || se == 0.0 {
        let p_value = if scale == 0.0 { 1.0 } else { 2f64.powi(1 - n as i32).min(1.0) };
        return Some(Comparison {
            difference: mean,
            interval: Interval { lo: mean, hi: mean },
            p_value,
            method: Method::SignFlip { pairs: n },
        });
    }
    let df = (n - 1) as f64;
    let t = mean / se;
    let half = student_t_quantile((1.0 + level) / 2.0, df) * se;
    Some(Comparison {
        difference: mean,
        interval: Interval { lo: mean - half, hi: mean + half },
        p_value: two_sided_tail(t, df),
        method: Method::PairedT { t, pairs: n },
    })
}
