//! Confidence intervals and significance tests over the per-seed values of
//! table cells (test errors in percent, typically 2 to 10 seeds a cell).
//!
//! What the tables show, and why:
//!
//! - [`mean_interval`]: the Student-t interval of a cell's mean. It is the
//!   textbook interval, and with few seeds the t quantile (12.7 for two
//!   seeds, 2.78 for five) is what keeps "± something" honest.
//! - [`compare`]: whether two cells differ, with the difference of their
//!   means, a Welch interval of that difference and a two-sided p-value. It
//!   picks between two tests:
//!   - [`permutation`] when either cell has fewer than [`WELCH_MIN_N`] seeds.
//!     With so few seeds normality cannot be checked, and one outlying seed
//!     is enough to make the t-test's p-value wrong; the permutation test
//!     assumes nothing but exchangeability of the seeds under the null
//!     hypothesis (the two configurations give the same distribution of
//!     errors). Its price is granularity: a p-value is a multiple of one
//!     over the number of splits, so three seeds against three can never go
//!     below 2/20 = 0.1 and earn a star. That is the honest answer for three
//!     seeds a cell, not a defect.
//!   - [`welch`] when both cells have [`WELCH_MIN_N`] seeds or more: there
//!     the central limit theorem makes the t-test accurate, its p-value is
//!     not limited by a count of splits, and the permutation test would need
//!     Monte Carlo sampling.
//! - [`stars`]: the usual marks of a p-value.
//!
//! Every result is deterministic and independent of the order of the seeds:
//! values are sorted before they are summed, and the Monte Carlo permutation
//! test draws from a PRNG with a fixed seed.
//!
//! The distribution functions ([`student_t_cdf`], [`student_t_quantile`])
//! are written here, on top of [`ln_gamma`] and
//! [`regularized_incomplete_beta`], to keep this module free of
//! dependencies; they agree with scipy to a few 1e-15 relative on the cases
//! tested (about 1e-13 for df in the thousands, where differences of ln Γ
//! lose digits).

mod correction;
mod distributions;
mod paired;

pub use correction::{Correction, UnknownCorrection};
pub use distributions::*;
pub use paired::paired;

/// A two-sided confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The "±" part of `center ± half_width` (the intervals here are
    /// symmetric around the estimate).
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    /// Whether `x` lies in the closed interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The interval cut to a metric's range `[min, max]` (a test error's
    /// [0, 100]), and whether it had to be: the Student-t interval of a
    /// mean of two seeds easily runs below 0 % error, which no run can have.
    pub fn clipped(&self, min: f64, max: f64) -> (Interval, bool) {
        let clipped = Interval { lo: self.lo.max(min), hi: self.hi.min(max) };
        (clipped, clipped != *self)
    }
}

/// Confidence level of every interval in the tables.
pub const LEVEL: f64 = 0.95;

/// The significance level that matches [`LEVEL`]: a difference is resolved
/// when its p-value is below it (and its 95 % interval excludes zero).
pub const ALPHA: f64 = 0.05;

/// [`compare`] uses Welch's t-test only when both samples have at least this
/// many values, the permutation test otherwise (see the module docs).
pub const WELCH_MIN_N: usize = 10;

/// Largest number of splits the permutation test enumerates exactly; up to
/// 9 seeds against 9 (48,620 splits) or 9 against 10 (92,378) fit.
pub const EXACT_LIMIT: u64 = 100_000;

/// Random relabelings drawn when the splits are too many to enumerate: the
/// Monte Carlo p-value then has a standard error of at most 0.0016, and
/// about 0.0007 around p = 0.05.
pub const MONTE_CARLO_PERMUTATIONS: u64 = 100_000;

/// Seed of the Monte Carlo permutation test's PRNG, fixed so that a table
/// shows the same p-values every time it is rendered.
pub const MONTE_CARLO_SEED: u64 = 0x7769_6465_7377_6565;

/// A relabeling counts as at least as extreme as the observed one when its
/// |difference| is no more than this much (relative) below the observed
/// one, so that splits equal to the observed one in exact arithmetic are
/// not lost to rounding.
const RELATIVE_TOLERANCE: f64 = 1e-12;

/// The outcome of a two-sample comparison of means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// mean(a) - mean(b).
    pub difference: f64,
    /// Welch interval of the difference, whichever test gave the p-value.
    pub interval: Interval,
    /// Two-sided p-value.
    pub p_value: f64,
    pub method: Method,
}

impl Comparison {
    /// The significance mark of the p-value.
    pub fn stars(&self) -> &'static str {
        stars(self.p_value)
    }
}

/// Which test gave a [`Comparison`]'s p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Welch's t-test: the statistic and its Welch–Satterthwaite degrees of
    /// freedom (not an integer in general).
    Welch { t: f64, df: f64 },
    /// Permutation test: `exact` when every split was enumerated (then
    /// `permutations` is their number, the observed one included), a Monte
    /// Carlo of `permutations` random relabelings otherwise.
    Permutation { exact: bool, permutations: u64 },
    /// Paired t-test on the per-seed differences ([`paired`]), with n - 1
    /// degrees of freedom.
    PairedT { t: f64, pairs: usize },
    /// Exact sign-flip test on per-seed differences that are all equal,
    /// where the paired t is undefined ([`paired`]).
    SignFlip { pairs: usize },
}

impl Method {
    /// The test's name in tables, CSV and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Welch { .. } => "welch",
            Method::Permutation { exact: true, .. } => "permutation (exact)",
            Method::Permutation { exact: false, .. } => "permutation (monte carlo)",
            Method::PairedT { .. } => "paired t",
            Method::SignFlip { .. } => "sign-flip (exact)",
        }
    }

    /// Whether the comparison was made seed by seed.
    pub fn is_paired(&self) -> bool {
        matches!(self, Method::PairedT { .. } | Method::SignFlip { .. })
    }
}

/// Student-t interval for the mean of `values` at `level` (e.g. 0.95):
/// mean ± t_{(1+level)/2, n-1} · s/√n.
///
/// `None` for fewer than two values (no spread to speak of) or when a value
/// is not finite (a diverged run has no meaningful mean). Constant values
/// give the degenerate interval [mean, mean].
///
/// # Panics
///
/// When `level` is not strictly between 0 and 1.
pub fn mean_interval(values: &[f64], level: f64) -> Option<Interval> {
    check_level(level);
    let s = Sample::of(values)?;
    let half = student_t_quantile((1.0 + level) / 2.0, (s.n - 1) as f64) * (s.var / s.n as f64).sqrt();
    Some(Interval { lo: s.mean - half, hi: s.mean + half })
}

/// Welch's two-sample t-test of mean(a) - mean(b): the difference, its Welch
/// interval at `level`, t, the Welch–Satterthwaite degrees of freedom and
/// the two-sided p-value.
///
/// `None` when either sample has fewer than two values or a non-finite one,
/// and when both samples are constant: the standard error is then 0 and t is
/// 0/0 or infinite, which no p-value describes ([`permutation`] still gives
/// one).
///
/// # Panics
///
/// When `level` is not strictly between 0 and 1.
pub fn welch(a: &[f64], b: &[f64], level: f64) -> Option<Comparison> {
    check_level(level);
    let w = WelchParts::of(a, b)?;
    if w.se == 0.0 {
        return None;
    }
    let t = w.difference / w.se;
    Some(Comparison {
        difference: w.difference,
        interval: w.interval(level),
        p_value: two_sided_tail(t, w.df),
        method: Method::Welch { t, df: w.df },
    })
}

/// Permutation test of the difference of means, two-sided: the p-value is
/// the share of relabelings of the pooled values (the observed one included)
/// whose |mean difference| is at least the observed one.
///
/// All C(n_a + n_b, n_a) splits are enumerated when there are at most
/// [`EXACT_LIMIT`]; otherwise [`MONTE_CARLO_PERMUTATIONS`] random
/// relabelings are drawn from a PRNG seeded with [`MONTE_CARLO_SEED`], and
/// p = (count + 1) / (N + 1), which counts the observed labeling and so never
/// gives 0.
///
/// The test has no interval of its own (inverting it would cost a search
/// over shifts for every cell); the interval reported is Welch's, the
/// degenerate [difference, difference] when both samples are constant.
///
/// `None` when either sample has fewer than two values (the interval needs
/// a variance on both sides) or a non-finite one.
///
/// # Panics
///
/// When `level` is not strictly between 0 and 1.
pub fn permutation(a: &[f64], b: &[f64], level: f64) -> Option<Comparison> {
    check_level(level);
    let w = WelchParts::of(a, b)?;
    let (p_value, exact, permutations) = permutation_p(a, b);
    Some(Comparison {
        difference: w.difference,
        interval: w.interval(level),
        p_value,
        method: Method::Permutation { exact, permutations },
    })
}

/// The test the tables use: [`permutation`] when either sample has fewer
/// than [`WELCH_MIN_N`] values (normality cannot be checked on so few seeds,
/// and the permutation test needs none), [`welch`] otherwise. Both constant
/// samples, where Welch's t is undefined, also go to the permutation test.
///
/// # Panics
///
/// When `level` is not strictly between 0 and 1.
pub fn compare(a: &[f64], b: &[f64], level: f64) -> Option<Comparison> {
    if a.len().min(b.len()) < WELCH_MIN_N {
        permutation(a, b, level)
    } else {
        welch(a, b, level).or_else(|| permutation(a, b, level))
    }
}

/// Significance mark of a p-value, the usual convention: "***" for
/// p < 0.001, "**" for p < 0.01, "*" for p < 0.05, "" otherwise (NaN
/// included).
pub fn stars(p: f64) -> &'static str {
    if p < 0.001 {
        "***"
    } else if p < 0.01 {
        "**"
    } else if p < 0.05 {
        "*"
    } else {
        ""
    }
}

/// Count, mean and sample variance of one cell's values.
struct Sample {
    n: usize,
    mean: f64,
    var: f64,
}

impl Sample {
    fn of(values: &[f64]) -> Option<Sample> {
        if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        // Summing in sorted order makes every result bit-for-bit the same
        // whatever the order of the seeds.
        let sorted = sorted(values);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let var = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Sample { n: sorted.len(), mean, var })
    }
}

/// What the Welch test and its interval are made of.
struct WelchParts {
    difference: f64,
    /// Standard error of the difference, sqrt(va/na + vb/nb).
    se: f64,
    /// Welch–Satterthwaite degrees of freedom; NaN when both variances are 0.
    df: f64,
}

impl WelchParts {
    fn of(a: &[f64], b: &[f64]) -> Option<WelchParts> {
        let (sa, sb) = (Sample::of(a)?, Sample::of(b)?);
        let (ua, ub) = (sa.var / sa.n as f64, sb.var / sb.n as f64);
        // df is scale-free: computing it on ratios keeps tiny variances from
        // underflowing when squared.
        let scale = ua.max(ub);
        let (ra, rb) = (ua / scale, ub / scale);
        let df = (ra + rb).powi(2) / (ra * ra / (sa.n - 1) as f64 + rb * rb / (sb.n - 1) as f64);
        Some(WelchParts { difference: sa.mean - sb.mean, se: (ua + ub).sqrt(), df })
    }

    fn interval(&self, level: f64) -> Interval {
        let half = if self.se == 0.0 { 0.0 } else { student_t_quantile((1.0 + level) / 2.0, self.df) * self.se };
        Interval { lo: self.difference - half, hi: self.difference + half }
    }
}

/// The permutation p-value of mean(a) - mean(b), whether it is exact, and
/// the number of splits it was computed over. Both samples have at least
/// two finite values.
fn permutation_p(a: &[f64], b: &[f64]) -> (f64, bool, u64) {
    // Relabelings are drawn for the smaller sample, so that swapping a and b
    // gives the very same splits and Monte Carlo draws, hence the same p.
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let (k, rest) = (small.len(), large.len());
    let n = k + rest;
    // Sorted pooled values make both the enumeration and the Monte Carlo
    // draws independent of the order of the seeds, and the enumeration sums
    // every subset in ascending order, as the observed sum below is, so the
    // observed split reproduces its own statistic bit for bit.
    let mut pooled: Vec<f64> = small.iter().chain(large).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let total: f64 = pooled.iter().sum();
    let statistic = |sum_small: f64| (sum_small / k as f64 - (total - sum_small) / rest as f64).abs();
    let observed = statistic(sorted(small).iter().sum());
    // The tolerance is relative to the values as well as to the difference:
    // rounding in a mean is relative to the values, and a difference that is
    // 0 in exact arithmetic comes out as a few ulps of them.
    let scale = pooled.iter().fold(observed, |m, v| m.max(v.abs()));
    let threshold = observed - RELATIVE_TOLERANCE * scale;

    if let Some(splits) = binomial_up_to(n, k, EXACT_LIMIT) {
        let mut extreme = 0u64;
        let mut chosen: Vec<usize> = (0..k).collect();
        loop {
            let sum: f64 = chosen.iter().map(|&i| pooled[i]).sum();
            if statistic(sum) >= threshold {
                extreme += 1;
            }
            if !next_combination(&mut chosen, n) {
                break;
            }
        }
        return (extreme as f64 / splits as f64, true, splits);
    }

    let mut rng = SplitMix64(MONTE_CARLO_SEED);
    let mut extreme = 0u64;
    for _ in 0..MONTE_CARLO_PERMUTATIONS {
        // A partial Fisher–Yates shuffle: the first k places get a uniform
        // random subset, whatever order the previous draw left behind.
        for i in 0..k {
            let j = i + rng.below(n - i);
            pooled.swap(i, j);
        }
        if statistic(pooled[..k].iter().sum()) >= threshold {
            extreme += 1;
        }
    }
    ((extreme + 1) as f64 / (MONTE_CARLO_PERMUTATIONS + 1) as f64, false, MONTE_CARLO_PERMUTATIONS)
}

/// C(n, k) when it is at most `limit`, `None` when it is larger.
fn binomial_up_to(n: usize, k: usize, limit: u64) -> Option<u64> {
    let k = k.min(n - k);
    let mut c = 1u64;
    for i in 0..k {
        // c = C(n, i), so c (n - i) = C(n, i + 1) (i + 1) divides exactly;
        // and C(n, i) grows with i up to n/2, so passing the limit early
        // means passing it at the end.
        c = c.checked_mul((n - i) as u64)? / (i + 1) as u64;
        if c > limit {
            return None;
        }
    }
    Some(c)
}

/// Advances `chosen` (strictly increasing indices below `n`) to the next
/// combination in lexicographic order; false after the last one.
fn next_combination(chosen: &mut [usize], n: usize) -> bool {
    let k = chosen.len();
    let Some(i) = (0..k).rev().find(|&i| chosen[i] < n - k + i) else {
        return false;
    };
    chosen[i] += 1;
    for j in i + 1..k {
        chosen[j] = chosen[j - 1] + 1;
    }
    true
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

fn check_level(level: f64) {
    assert!(level > 0.0 && level < 1.0, "a confidence level is strictly between 0 and 1, not {level}");
}

/// Steele, Lea and Flood's splitmix64: tiny, fast, and statistically good
/// enough for drawing relabelings.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n by the multiply-shift method; its bias, below
    /// n / 2^64, is far under anything a p-value shows.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests;
