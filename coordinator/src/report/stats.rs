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

use std::f64::consts::PI;

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

/// P(T <= t) for Student's t with `df` degrees of freedom; `df` may be any
/// positive finite number (Welch's are not integers). NaN for a NaN
/// argument or an invalid `df`.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let tail = two_sided_tail(t, df);
    // Half the two-sided tail is computed directly, so that the far left
    // tail keeps its relative precision instead of being 1 - (1 - tiny).
    if t < 0.0 { tail / 2.0 } else { 1.0 - tail / 2.0 }
}

/// The density of Student's t with `df` degrees of freedom at `t`.
pub fn student_t_pdf(t: f64, df: f64) -> f64 {
    if !valid_df(df) {
        return f64::NAN;
    }
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * PI).ln()
        - (df + 1.0) / 2.0 * (t * t / df).ln_1p();
    ln.exp()
}

/// The t with P(T <= t) = p, the inverse of [`student_t_cdf`], to about
/// 1e-15 relative; ±∞ at p = 0 and 1, NaN outside [0, 1] or for an invalid
/// `df`.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) || !valid_df(df) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Solving for the smaller tail keeps its relative precision, which is
    // what fixes a quantile like t_{0.975} (1 - 0.975 is the number that
    // matters).
    if p < 0.5 { -upper_quantile(p, df) } else { upper_quantile(1.0 - p, df) }
}

/// ln Γ(x) for x > 0 (NaN otherwise), by the Lanczos approximation
/// (g = 7, nine terms), accurate to about 1e-15 relative in Γ.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.9999999999998099,
        676.5203681218851,
        -1259.1392167224028,
        771.3234287776531,
        -176.6150291621406,
        12.507343278686905,
        -0.13857109526572012,
        9.984369578019572e-6,
        1.5056327351493116e-7,
    ];
    const HALF_LN_TWO_PI: f64 = 0.9189385332046727;

    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        // The series is only accurate for x >= 1/2; the reflection formula
        // Γ(x) Γ(1 - x) = π / sin(πx) carries small x over.
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let series =
        COEFFICIENTS[1..].iter().zip(1u32..).fold(COEFFICIENTS[0], |sum, (&c, i)| sum + c / (x + f64::from(i)));
    let t = x + G + 0.5;
    HALF_LN_TWO_PI + (x + 0.5) * t.ln() - t + series.ln()
}

/// The regularized incomplete beta function I_x(a, b) for a, b > 0 and x in
/// [0, 1] (NaN otherwise).
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 || x.is_nan() || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    beta_reg(a, b, x, 1.0 - x)
}

/// I_x(a, b) with y = 1 - x given by the caller, who can often compute it
/// without the cancellation of 1 - x (near x = 1 that is all the precision
/// of the result).
fn beta_reg(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * y.ln() - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b))).exp();
    // The continued fraction converges fast only left of the mean of the
    // beta distribution; right of it, the symmetry I_x(a, b) = 1 - I_y(b, a)
    // swaps sides.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, y) / b
    }
}

/// The continued fraction of I_x(a, b) (without its front factor
/// x^a y^b / (a B(a, b))), evaluated by the modified Lentz method.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    // Enough for a, b up to about 1e7: the number of terms needed grows as
    // the square root of max(a, b).
    const MAX_TERMS: u32 = 10_000;
    // Lentz's method divides by partial results that can be exactly 0;
    // nudging them to a tiny value instead costs no precision.
    fn nonzero(v: f64) -> f64 {
        if v.abs() < 1e-300 { 1e-300 } else { v }
    }

    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - (a + b) * x / (a + 1.0));
    let mut fraction = d;
    for m in 1..=MAX_TERMS {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / nonzero(1.0 + even * d);
        c = nonzero(1.0 + even / c);
        fraction *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / nonzero(1.0 + odd * d);
        c = nonzero(1.0 + odd / c);
        let delta = d * c;
        fraction *= delta;
        if (delta - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    fraction
}

/// Degrees of freedom the functions here accept. Infinite df (the normal
/// distribution) is refused rather than approximated: no table needs it.
fn valid_df(df: f64) -> bool {
    df.is_finite() && df > 0.0
}

/// P(|T| >= |t|), the two-sided p-value of t.
fn two_sided_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() || !valid_df(df) {
        return f64::NAN;
    }
    // P(|T| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t²). Both x and
    // 1 - x are formed from a ratio at most 1, so neither overflows for huge
    // |t| nor loses the small one of the pair to cancellation.
    let s = t.abs() / df.sqrt();
    let (x, y) = if s <= 1.0 {
        let s2 = s * s;
        (1.0 / (1.0 + s2), s2 / (1.0 + s2))
    } else {
        let r2 = (1.0 / s).powi(2);
        (r2 / (1.0 + r2), 1.0 / (1.0 + r2))
    };
    beta_reg(df / 2.0, 0.5, x, y)
}

/// The t >= 0 with P(T > t) = q, for 0 < q < 1/2.
fn upper_quantile(q: f64, df: f64) -> f64 {
    let upper = |t: f64| two_sided_tail(t, df) / 2.0;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while upper(hi) > q {
        lo = hi;
        hi *= 2.0;
        if hi.is_infinite() {
            // Heavy tails (df well below 1) can put the quantile past the
            // largest float.
            return f64::INFINITY;
        }
    }
    // Newton's method on ln P(T > t) - ln q, which is close to linear in
    // the tails (P(T > t) falls like a power of t there) where Newton on
    // P(T > t) itself overshoots; kept inside the bracket [lo, hi] by
    // bisection whenever a step would leave it.
    let mut t = hi;
    for _ in 0..500 {
        let u = upper(t);
        if u == q {
            return t;
        }
        if u > q {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + (u.ln() - q.ln()) * u / student_t_pdf(t, df);
        if (newton - t).abs() <= 4.0 * f64::EPSILON * t {
            return newton;
        }
        let inside = newton > lo && newton < hi;
        t = if inside {
            newton
        } else if lo > 0.0 && hi > 4.0 * lo {
            // Geometric bisection when the bracket spans orders of
            // magnitude, as it does after the doubling search.
            (lo * hi).sqrt()
        } else {
            0.5 * (lo + hi)
        };
        if hi - lo <= 4.0 * f64::EPSILON * hi {
            return t;
        }
    }
    t
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
mod tests {
    use super::*;

    /// |actual - expected| <= rel · |expected| (or <= rel when expected is 0).
    #[track_caller]
    fn assert_close(actual: f64, expected: f64, rel: f64) {
        let tolerance = rel * expected.abs().max(if expected == 0.0 { 1.0 } else { 0.0 });
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} vs expected {expected}: off by {:e}, tolerance {tolerance:e}",
            (actual - expected).abs()
        );
    }

    #[track_caller]
    fn assert_interval(actual: Interval, lo: f64, hi: f64, rel: f64) {
        assert_close(actual.lo, lo, rel);
        assert_close(actual.hi, hi, rel);
    }

    // Test errors (%) of realistic cells, reused below with their scipy results.
    const SIG_A: [f64; 5] = [5.73, 5.86, 6.06, 5.78, 6.42];
    const SIG_B: [f64; 5] = [4.97, 5.12, 5.01, 5.30, 4.88];
    const UNEQ_A: [f64; 4] = [7.12, 6.85, 7.40, 6.98];
    const UNEQ_B: [f64; 7] = [6.51, 6.90, 6.44, 6.72, 6.63, 6.80, 6.58];
    const NONSIG_A: [f64; 4] = [3.21, 3.45, 3.10, 3.38];
    const NONSIG_B: [f64; 4] = [3.30, 3.18, 3.52, 3.27];
    const TEN_A: [f64; 10] = [5.73, 5.86, 6.06, 5.78, 6.42, 5.91, 6.12, 5.69, 5.95, 5.84];
    const TEN_B: [f64; 10] = [5.61, 5.52, 5.80, 5.47, 5.88, 5.66, 5.71, 5.59, 5.93, 5.90];

    #[test]
    fn quantile_matches_scipy() {
        // scipy.stats.t.ppf(p, df), scipy 1.17.1.
        let cases = [
            (0.975, 1.0, 12.706204736174694),
            (0.975, 2.0, 4.302652729749462),
            (0.975, 4.0, 2.7764451051977934),
            (0.975, 9.0, 2.262157162798205),
            (0.975, 30.0, 2.0422724563012378),
            (0.975, 3.7, 2.8675207071911895),
            (0.995, 4.0, 4.604094871349992),
            (0.9, 2.5, 1.7302509288071766),
            (0.6, 10.0, 0.2601848294920803),
            (0.999999, 1.0, 318309.88617359026),
            (0.05, 7.0, -1.8945786050900066),
        ];
        for (p, df, expected) in cases {
            assert_close(student_t_quantile(p, df), expected, 1e-9);
        }
    }

    #[test]
    fn cdf_matches_scipy() {
        // scipy.stats.t.cdf(t, df), scipy 1.17.1.
        let cases = [
            (2.0, 3.7, 0.939091399047383),
            (-1.5, 3.7, 0.10679908460100675),
            (0.3, 1.0, 0.5927735790777423),
            (2.5, 9.0, 0.9830690861585072),
            (-3.2, 4.0, 0.016450405300469487),
            (10.0, 2.0, 0.9950737714883372),
            (1.0, 30.0, 0.8373456922869849),
            (0.0, 5.0, 0.5),
            (-25.0, 6.3, 7.636737858031007e-08),
            (4.0, 0.7, 0.8833277397073143),
            // scipy.stats.t.sf(40.0, 5) and t.sf(1000.0, 3.2), as cdf(-t): far
            // tails keep their relative precision.
            (-40.0, 5.0, 9.205981085886477e-08),
            (-1000.0, 3.2, 3.3353744403069255e-10),
        ];
        for (t, df, expected) in cases {
            assert_close(student_t_cdf(t, df), expected, 1e-9);
        }
    }

    #[test]
    fn pdf_matches_scipy() {
        // scipy.stats.t.pdf(t, df), scipy 1.17.1; t.pdf(0, 1) is 1/π.
        let cases = [
            (0.0, 1.0, std::f64::consts::FRAC_1_PI),
            (1.3, 3.7, 0.15414780362964772),
            (-2.2, 9.0, 0.045123512071665435),
            (15.0, 2.5, 0.00013494493793627998),
        ];
        for (t, df, expected) in cases {
            assert_close(student_t_pdf(t, df), expected, 1e-9);
        }
    }

    #[test]
    fn ln_gamma_matches_scipy() {
        // scipy.special.gammaln(x), scipy 1.17.1.
        let cases = [
            (0.5, 0.5723649429247),
            (1.0, 0.0),
            (1.5, -0.12078223763524526),
            (3.7, 1.428072326665388),
            (10.0, 12.801827480081469),
            (100.25, 360.28455963776423),
            (0.01, 4.599479878042022),
            (10000.0, 82099.71749644238),
        ];
        for (x, expected) in cases {
            // ln Γ(1) = 0 has no relative scale: there the check is absolute.
            assert_close(ln_gamma(x), expected, 1e-12);
        }
        assert!(ln_gamma(0.0).is_nan() && ln_gamma(-1.5).is_nan());
    }

    #[test]
    fn incomplete_beta_matches_scipy() {
        // scipy.special.betainc(a, b, x), scipy 1.17.1.
        let cases = [
            (2.5, 0.5, 0.3, 0.018927124071945658),
            (0.5, 3.0, 0.9, 0.9996750253207289),
            (10.0, 20.0, 0.4, 0.7853183897628262),
            (1.0, 1.0, 0.25, 0.25),
            (50.0, 0.5, 0.99, 0.3173043978741973),
        ];
        for (a, b, x, expected) in cases {
            assert_close(regularized_incomplete_beta(a, b, x), expected, 1e-9);
        }
        assert_eq!(regularized_incomplete_beta(2.0, 3.0, 0.0), 0.0);
        assert_eq!(regularized_incomplete_beta(2.0, 3.0, 1.0), 1.0);
        assert!(regularized_incomplete_beta(2.0, 3.0, 1.5).is_nan());
    }

    #[test]
    fn welch_matches_scipy() {
        struct Case {
            a: &'static [f64],
            b: &'static [f64],
            t: f64,
            df: f64,
            p: f64,
            difference: f64,
            interval: (f64, f64),
        }
        // r = scipy.stats.ttest_ind(a, b, equal_var=False); ci = r.confidence_interval(0.95)
        // (scipy 1.17.1): t = r.statistic, df = r.df, p = r.pvalue, difference = np.mean(a) -
        // np.mean(b), interval = (ci.low, ci.high), which equals difference ± t.ppf(0.975, r.df)
        // · sqrt(va/na + vb/nb).
        let cases = [
            Case {
                a: &SIG_A,
                b: &SIG_B,
                t: 6.303298377564121,
                df: 6.375382603200533,
                p: 0.000586073893113805,
                difference: 0.9140000000000015,
                interval: (0.5641924369539237, 1.2638075630460792),
            },
            Case {
                a: &UNEQ_A,
                b: &UNEQ_B,
                t: 3.259014338832054,
                df: 4.681817634129585,
                p: 0.02472718627552698,
                difference: 0.43321428571428555,
                interval: (0.08440759617332416, 0.7820209752552469),
            },
            Case {
                a: &NONSIG_A,
                b: &NONSIG_B,
                t: -0.30243464546144677,
                df: 5.942551826495071,
                p: 0.7726266509598979,
                difference: -0.03249999999999975,
                interval: (-0.29606558067216715, 0.23106558067216765),
            },
        ];
        for case in cases {
            let c = welch(case.a, case.b, 0.95).unwrap();
            let Method::Welch { t, df } = c.method else { panic!("{:?}", c.method) };
            assert_close(t, case.t, 1e-9);
            assert_close(df, case.df, 1e-9);
            assert_close(c.p_value, case.p, 1e-9);
            assert_close(c.difference, case.difference, 1e-9);
            assert_interval(c.interval, case.interval.0, case.interval.1, 1e-9);
        }
        assert_eq!(welch(&SIG_A, &SIG_B, 0.95).unwrap().stars(), "***");
        assert_eq!(welch(&UNEQ_A, &UNEQ_B, 0.95).unwrap().stars(), "*");
        assert_eq!(welch(&NONSIG_A, &NONSIG_B, 0.95).unwrap().stars(), "");
    }

    #[test]
    fn mean_interval_matches_scipy() {
        // scipy.stats.t.interval(level, len(v) - 1, loc=np.mean(v), scale=scipy.stats.sem(v)),
        // scipy 1.17.1: (v, level, lo, hi).
        let seven_ten = [7.12, 6.85, 7.40, 6.98, 7.01, 6.93, 7.25, 7.08, 6.99, 7.30];
        let cases: [(&[f64], f64, f64, f64); 6] = [
            (&SIG_A, 0.95, 5.620785449588887, 6.319214550411115),
            (&SIG_A, 0.99, 5.390908082231267, 6.549091917768735),
            (&[3.21, 3.45], 0.95, 1.8052554316590357, 4.854744568340965),
            (&[3.21, 3.45], 0.99, -4.308808939544589, 10.968808939544589),
            (&seven_ten, 0.95, 6.965163589349697, 7.216836410650306),
            (&seven_ten, 0.99, 6.910222268689817, 7.271777731310185),
        ];
        for (values, level, lo, hi) in cases {
            assert_interval(mean_interval(values, level).unwrap(), lo, hi, 1e-9);
        }
    }

    #[test]
    fn exact_permutation_matches_scipy() {
        // scipy.stats.permutation_test((a, b), lambda x, y, axis: np.abs(np.mean(x, axis=axis)
        // - np.mean(y, axis=axis)), permutation_type='independent', alternative='greater',
        // n_resamples=np.inf, vectorized=True).pvalue, scipy 1.17.1: the share of splits with
        // |diff| >= observed |diff|, which is this module's two-sided p. (scipy's
        // alternative='two-sided' on the signed difference doubles the smaller one-sided p
        // instead; the two agree for equal sizes, but give 0.2667 for the 2 vs 4 case.)
        // Also checked by brute force over itertools.combinations. (a, b, p, splits).
        let cases: [(&[f64], &[f64], f64, u64); 7] = [
            (&[5.73, 5.86, 6.06], &[4.97, 5.12, 5.01], 0.1, 20),
            (&[5.1, 6.3, 5.8], &[5.5, 4.9, 6.0], 0.7, 20),
            (&[6.10, 5.95], &[5.40, 5.72, 6.01, 5.55], 0.2, 15),
            (&SIG_A, &SIG_B, 0.007936507936507936, 252),
            (&[3.21, 3.45, 3.10, 3.38, 3.29], &[3.30, 3.18, 3.52, 3.27, 3.41], 0.5793650793650794, 252),
            // Ties: splits equal to the observed one must not be lost to rounding.
            (&[5.0, 5.5, 6.0], &[5.5, 6.0, 6.5], 0.5, 20),
            (&TEN_A[..9], &TEN_B[..9], 0.010201563142739614, 48620),
        ];
        for (a, b, p, splits) in cases {
            let c = permutation(a, b, 0.95).unwrap();
            assert_eq!(c.method, Method::Permutation { exact: true, permutations: splits });
            assert_close(c.p_value, p, 1e-9);
            // The interval is Welch's.
            assert_eq!(c.interval, welch(a, b, 0.95).unwrap().interval);
        }
    }

    #[test]
    fn monte_carlo_permutation_is_close_to_exact_and_reproducible() {
        // 10 vs 10 has C(20, 10) = 184,756 splits, past EXACT_LIMIT. Its exact p, from the
        // scipy.stats.permutation_test call of exact_permutation_matches_scipy (scipy 1.17.1):
        let exact = 0.013477234839463942;
        let c = permutation(&TEN_A, &TEN_B, 0.95).unwrap();
        assert_eq!(c.method, Method::Permutation { exact: false, permutations: MONTE_CARLO_PERMUTATIONS });
        let standard_error = (exact * (1.0 - exact) / MONTE_CARLO_PERMUTATIONS as f64).sqrt();
        assert!((c.p_value - exact).abs() < 5.0 * standard_error, "{} vs {exact}", c.p_value);
        assert_eq!(permutation(&TEN_A, &TEN_B, 0.95), Some(c));
        let mut reversed = TEN_A;
        reversed.reverse();
        assert_eq!(permutation(&reversed, &TEN_B, 0.95), Some(c));
    }

    #[test]
    fn compare_uses_permutation_for_small_samples_and_welch_otherwise() {
        let small = compare(&SIG_A, &SIG_B, LEVEL).unwrap();
        assert_eq!(small.method, Method::Permutation { exact: true, permutations: 252 });
        assert_eq!(small.stars(), "**");

        // scipy.stats.ttest_ind(TEN_A, TEN_B, equal_var=False).pvalue, scipy 1.17.1.
        let large = compare(&TEN_A, &TEN_B, LEVEL).unwrap();
        assert!(matches!(large.method, Method::Welch { .. }));
        assert_close(large.p_value, 0.016768103375633087, 1e-9);

        // Three seeds against 90: C(93, 3) = 129,766 splits, so Monte Carlo.
        let many: Vec<f64> = (0..90).map(|i| 5.0 + f64::from(i % 7) * 0.1).collect();
        let lopsided = compare(&[5.2, 5.9, 6.1], &many, LEVEL).unwrap();
        assert_eq!(lopsided.method, Method::Permutation { exact: false, permutations: MONTE_CARLO_PERMUTATIONS });
    }

    #[test]
    fn constant_samples() {
        // No t, hence no Welch test; the permutation test still has a p-value.
        assert_eq!(welch(&[5.0, 5.0, 5.0], &[6.0, 6.0, 6.0], 0.95), None);
        let c = compare(&[5.0, 5.0, 5.0], &[6.0, 6.0, 6.0], 0.95).unwrap();
        assert_close(c.p_value, 0.1, 1e-12);
        assert_eq!(c.interval, Interval { lo: -1.0, hi: -1.0 });
        assert_eq!(mean_interval(&[5.0, 5.0], 0.95), Some(Interval { lo: 5.0, hi: 5.0 }));
        // Large constant samples fall back from Welch to the permutation test.
        let twelve = [4.5; 12];
        let c = compare(&twelve, &twelve, 0.95).unwrap();
        assert!(matches!(c.method, Method::Permutation { exact: false, .. }));
        assert_eq!(c.p_value, 1.0);
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(mean_interval(&[], 0.95), None);
        assert_eq!(mean_interval(&[5.0], 0.95), None);
        assert_eq!(mean_interval(&[5.0, f64::NAN], 0.95), None);
        assert_eq!(welch(&[5.0], &SIG_B, 0.95), None);
        assert_eq!(permutation(&SIG_A, &[5.0], 0.95), None);
        assert_eq!(compare(&[5.0, f64::INFINITY], &SIG_B, 0.95), None);
    }

    #[test]
    #[should_panic(expected = "confidence level")]
    fn level_out_of_range_panics() {
        mean_interval(&SIG_A, 95.0);
    }

    #[test]
    fn quantile_inverts_cdf() {
        for df in [0.5, 1.0, 1.7, 2.0, 3.7, 6.375382603200533, 9.0, 30.0, 250.0, 1e4] {
            // No far right tail: there p rounds to near 1 and pins t only loosely (its mirror
            // image in the left tail is checked instead, where p keeps its precision).
            for t in [-300.0, -40.0, -12.0, -2.5, -1.0, -0.25, -1e-3, 1e-3, 0.1, 0.7, 1.96, 4.0] {
                let p = student_t_cdf(t, df);
                // A subnormal (or underflowed) p has lost the digits that would pin t down.
                if p.is_normal() {
                    assert_close(student_t_quantile(p, df), t, 1e-9);
                }
            }
            for p in [1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.77, 0.975, 0.999] {
                assert_close(student_t_cdf(student_t_quantile(p, df), df), p, 1e-9);
            }
        }
    }

    #[test]
    fn distribution_is_symmetric() {
        for df in [1.0, 2.3, 4.0, 17.5] {
            for t in [0.01, 0.5, 1.0, 2.0, 8.0] {
                // Absolute: 1 - cdf(t) has only absolute precision.
                assert!((student_t_cdf(-t, df) + student_t_cdf(t, df) - 1.0).abs() <= 1e-15);
                assert_eq!(student_t_pdf(-t, df), student_t_pdf(t, df));
            }
            for p in [0.001, 0.1, 0.4] {
                assert_close(student_t_quantile(1.0 - p, df), -student_t_quantile(p, df), 1e-12);
            }
            assert_eq!(student_t_cdf(0.0, df), 0.5);
            assert_eq!(student_t_quantile(0.5, df), 0.0);
            assert_eq!(student_t_quantile(0.0, df), f64::NEG_INFINITY);
            assert_eq!(student_t_quantile(1.0, df), f64::INFINITY);
            assert_eq!(student_t_cdf(f64::INFINITY, df), 1.0);
            assert_eq!(student_t_cdf(f64::NEG_INFINITY, df), 0.0);
        }
        assert!(student_t_quantile(1.2, 3.0).is_nan());
        assert!(student_t_cdf(1.0, 0.0).is_nan());
        assert!(student_t_cdf(1.0, f64::INFINITY).is_nan());
    }

    #[test]
    fn cdf_is_monotone() {
        for df in [0.8, 3.0, 12.4] {
            let cdfs: Vec<f64> = (-400..=400).map(|i| student_t_cdf(f64::from(i) * 0.05, df)).collect();
            assert!(cdfs.windows(2).all(|w| w[0] <= w[1]), "df {df}");
        }
    }

    /// Pseudo-random cells of test errors, for the property checks.
    fn random_cells(seed: u64) -> impl Iterator<Item = (Vec<f64>, Vec<f64>)> {
        let mut rng = SplitMix64(seed);
        std::iter::from_fn(move || {
            let mut cell = |shift: f64| {
                let n = 2 + rng.below(11);
                (0..n).map(|_| shift + (rng.next() >> 11) as f64 / (1u64 << 53) as f64).collect::<Vec<f64>>()
            };
            let a = cell(5.0);
            let b = cell(5.3);
            Some((a, b))
        })
        .take(40)
    }

    #[test]
    fn p_values_are_probabilities_and_agree_with_swapping() {
        for (a, b) in random_cells(1) {
            for test in [welch, permutation, compare] {
                let ab = test(&a, &b, LEVEL).unwrap();
                assert!((0.0..=1.0).contains(&ab.p_value), "{ab:?}");
                assert!(ab.interval.lo <= ab.difference && ab.difference <= ab.interval.hi);
                let ba = test(&b, &a, LEVEL).unwrap();
                assert_close(ba.p_value, ab.p_value, 1e-12);
                assert_close(ba.difference, -ab.difference, 1e-12);
                assert_close(ba.interval.half_width(), ab.interval.half_width(), 1e-12);
            }
        }
    }

    #[test]
    fn a_sample_against_itself_has_p_one() {
        for (a, _) in random_cells(2).chain([(TEN_A.to_vec(), vec![])]) {
            let c = compare(&a, &a, LEVEL).unwrap();
            assert_eq!(c.p_value, 1.0, "{c:?}");
            assert_eq!(c.difference, 0.0);
            assert_eq!(stars(c.p_value), "");
            // And against a reordering of itself.
            let mut reversed = a.clone();
            reversed.reverse();
            assert_eq!(compare(&a, &reversed, LEVEL).unwrap().p_value, 1.0);
        }
    }

    #[test]
    fn order_of_values_does_not_matter() {
        for (a, b) in random_cells(3) {
            let mut a2 = a.clone();
            a2.reverse();
            let mut b2 = b.clone();
            b2.rotate_left(1);
            assert_eq!(mean_interval(&a, LEVEL), mean_interval(&a2, LEVEL));
            for test in [welch, permutation, compare] {
                assert_eq!(test(&a, &b, LEVEL), test(&a2, &b2, LEVEL));
            }
        }
    }

    #[test]
    fn intervals_have_the_stated_width() {
        let i = mean_interval(&SIG_A, LEVEL).unwrap();
        let mean = SIG_A.iter().sum::<f64>() / 5.0;
        assert_close((i.lo + i.hi) / 2.0, mean, 1e-12);
        // scipy.stats.t.ppf(0.975, 4) · scipy.stats.sem(SIG_A); scipy 1.17.1 gives t.ppf.
        let sem = (SIG_A.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0 / 5.0).sqrt();
        assert_close(i.half_width(), 2.7764451051977934 * sem, 1e-9);
        assert!(i.contains(mean) && i.contains(i.lo) && i.contains(i.hi));
        assert!(!i.contains(i.hi + 1e-9) && !i.contains(f64::NAN));
        // A higher level gives a wider interval.
        assert!(mean_interval(&SIG_A, 0.99).unwrap().half_width() > i.half_width());
    }

    #[test]
    fn stars_follow_the_usual_thresholds() {
        assert_eq!(stars(0.0), "***");
        assert_eq!(stars(0.000999), "***");
        assert_eq!(stars(0.001), "**");
        assert_eq!(stars(0.009), "**");
        assert_eq!(stars(0.01), "*");
        assert_eq!(stars(0.049), "*");
        assert_eq!(stars(0.05), "");
        assert_eq!(stars(1.0), "");
        assert_eq!(stars(f64::NAN), "");
    }

    #[test]
    fn combinations_are_all_enumerated() {
        assert_eq!(binomial_up_to(20, 10, u64::MAX), Some(184_756));
        assert_eq!(binomial_up_to(20, 10, EXACT_LIMIT), None);
        assert_eq!(binomial_up_to(18, 9, EXACT_LIMIT), Some(48_620));
        assert_eq!(binomial_up_to(93, 3, EXACT_LIMIT), None);
        let mut chosen = vec![0, 1, 2];
        let mut count = 1;
        while next_combination(&mut chosen, 7) {
            assert!(chosen.windows(2).all(|w| w[0] < w[1]) && chosen[2] < 7);
            count += 1;
        }
        assert_eq!(count, 35);
        assert_eq!(chosen, vec![4, 5, 6]);
    }
}
