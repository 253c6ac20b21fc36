//! Aggregation over seeds: pure functions of the values of one cell.
//!
//! Conventions (those of numpy's `median` and pandas' `std`): the median of
//! an even count is the mean of the two middle values; the standard
//! deviation is the sample one (n - 1 in the denominator), undefined for
//! fewer than two values. No result depends on the order of the seeds.

use std::fmt;
use std::str::FromStr;

use super::ReportError;

/// How a cell's per-seed values become one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agg {
    Median,
    Mean,
    Min,
    Max,
    /// Sample standard deviation over seeds.
    Std,
    /// Seeds with a value.
    Count,
    /// Total over seeds (e.g. GPU-hours of a cell).
    Sum,
}

impl Agg {
    pub const ALL: [Agg; 7] = [Agg::Median, Agg::Mean, Agg::Min, Agg::Max, Agg::Std, Agg::Count, Agg::Sum];

    pub fn name(self) -> &'static str {
        match self {
            Agg::Median => "median",
            Agg::Mean => "mean",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Std => "std",
            Agg::Count => "count",
            Agg::Sum => "sum",
        }
    }

    /// Aggregates `values`; `None` when the aggregate is undefined (no
    /// values, or a standard deviation of one value).
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        match self {
            Agg::Median => median(values),
            Agg::Mean => mean(values),
            Agg::Min => values.iter().copied().reduce(f64::min),
            Agg::Max => values.iter().copied().reduce(f64::max),
            Agg::Std => std_dev(values),
            Agg::Count => Some(values.len() as f64),
            Agg::Sum => (!values.is_empty()).then(|| values.iter().sum()),
        }
    }

    /// Whether a spread (± std) means something beside this aggregate:
    /// it does beside a central value, not beside an extreme or a count.
    pub fn has_spread(self) -> bool {
        matches!(self, Agg::Median | Agg::Mean)
    }
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Agg {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agg::ALL.into_iter().find(|a| a.name() == s.trim().to_ascii_lowercase()).ok_or_else(|| {
            ReportError::UnknownName {
                what: "aggregate",
                plural: "aggregates",
                name: s.to_string(),
                valid: Agg::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

/// The middle value; the mean of the two middle values for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 })
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample standard deviation (denominator n - 1); `None` for n < 2, where
/// it is undefined (a single seed says nothing about the spread).
pub fn std_dev(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let squares: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((squares / (values.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn std_is_the_sample_one_and_undefined_for_one_seed() {
        assert_eq!(std_dev(&[5.73]), None);
        assert_eq!(std_dev(&[]), None);
        assert_eq!(std_dev(&[1.0, 3.0]), Some(2f64.sqrt()));
        let s = std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!((s - 2.138_089_935).abs() < 1e-9, "{s}");
        assert_eq!(Agg::Std.apply(&[1.0]), None);
    }

    #[test]
    fn every_aggregate_of_a_known_set() {
        let v = [6.06, 5.78, 6.42, 5.86, 5.73];
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} != {b}");
        close(Agg::Median.apply(&v), 5.86);
        close(Agg::Mean.apply(&v), 5.97);
        close(Agg::Min.apply(&v), 5.73);
        close(Agg::Max.apply(&v), 6.42);
        close(Agg::Count.apply(&v), 5.0);
        close(Agg::Sum.apply(&v), 29.85);
        assert_eq!(Agg::Count.apply(&[]), Some(0.0));
        for agg in [Agg::Median, Agg::Mean, Agg::Min, Agg::Max, Agg::Std, Agg::Sum] {
            assert_eq!(agg.apply(&[]), None, "{agg} of nothing");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for agg in Agg::ALL {
            assert_eq!(agg.name().parse::<Agg>().unwrap(), agg);
        }
        let error = "avg".parse::<Agg>().unwrap_err().to_string();
        assert!(error.contains("avg") && error.contains("median, mean, min, max, std, count, sum"), "{error}");
    }

    proptest! {
        #[test]
        fn central_values_lie_between_the_extremes(values in prop::collection::vec(-1e6f64..1e6, 1..40)) {
            let lo = Agg::Min.apply(&values).unwrap();
            let hi = Agg::Max.apply(&values).unwrap();
            for agg in [Agg::Median, Agg::Mean] {
                let v = agg.apply(&values).unwrap();
                prop_assert!(lo - 1e-6 <= v && v <= hi + 1e-6, "{agg} {v} outside [{lo}, {hi}]");
            }
            if let Some(s) = std_dev(&values) {
                prop_assert!(s >= 0.0 && s <= hi - lo + 1e-6);
            }
        }

        #[test]
        fn aggregates_ignore_the_order_of_seeds(mut values in prop::collection::vec(-1e3f64..1e3, 0..20), seed in any::<u64>()) {
            let before: Vec<Option<f64>> = Agg::ALL.iter().map(|a| a.apply(&values)).collect();
            // A deterministic shuffle driven by the seed.
            let n = values.len();
            let mut state = seed;
            for i in (1..n).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                values.swap(i, (state >> 33) as usize % (i + 1));
            }
            let after: Vec<Option<f64>> = Agg::ALL.iter().map(|a| a.apply(&values)).collect();
            for ((a, b), agg) in before.iter().zip(&after).zip(Agg::ALL) {
                match (a, b) {
                    (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{agg}: {a} vs {b}"),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }

        #[test]
        fn half_the_values_lie_on_each_side_of_the_median(values in prop::collection::vec(-1e3f64..1e3, 1..30)) {
            let m = median(&values).unwrap();
            let below = values.iter().filter(|v| **v < m).count();
            let above = values.iter().filter(|v| **v > m).count();
            prop_assert!(below <= values.len() / 2 && above <= values.len() / 2);
        }
    }
}
