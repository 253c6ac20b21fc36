//! Many comparisons against one baseline: a table of m cells has m chances
//! of a false "significant" at 0.05, so its p-values are adjusted before
//! they earn a mark. Holm's step-down method is the default: it controls
//! the family-wise error rate like Bonferroni, under any dependence between
//! the tests (cells of one sweep share seeds and a baseline, so they are
//! dependent), and is uniformly more powerful. Benjamini-Hochberg controls
//! the false discovery rate instead (valid under the positive dependence
//! of comparisons to one baseline), for screening many cells.

use std::fmt;
use std::str::FromStr;

/// How a table's p-values are adjusted for the number of comparisons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Correction {
    #[default]
    Holm,
    BenjaminiHochberg,
    None,
}

impl Correction {
    pub const ALL: [Correction; 3] = [Correction::Holm, Correction::BenjaminiHochberg, Correction::None];

    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "holm",
            Correction::BenjaminiHochberg => "bh",
            Correction::None => "none",
        }
    }

    /// What the table's notes call it.
    pub fn description(self) -> &'static str {
        match self {
            Correction::Holm => "Holm's step-down method (family-wise error rate)",
            Correction::BenjaminiHochberg => "the Benjamini-Hochberg method (false discovery rate)",
            Correction::None => "no correction",
        }
    }

    /// The adjusted p-values, in the order of `p_values`, each at least its
    /// raw value and at most 1. NaN p-values are left out of the count and
    /// stay NaN.
    pub fn adjust(self, p_values: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..p_values.len()).filter(|&i| !p_values[i].is_nan()).collect();
        order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]).then(i.cmp(&j)));
        let m = order.len();
        let mut adjusted = p_values.to_vec();
        match self {
            Correction::None => {}
            Correction::Holm => {
                // p_(i) (m - i + 1), made non-decreasing along the order.
                let mut running = 0f64;
                for (rank, &i) in order.iter().enumerate() {
                    running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
                    adjusted[i] = running;
                }
            }
            Correction::BenjaminiHochberg => {
                // p_(i) m / i, made non-increasing from the largest down.
                let mut running = 1f64;
                for (rank, &i) in order.iter().enumerate().rev() {
                    running = running.min(p_values[i] * m as f64 / (rank + 1) as f64).min(1.0);
                    adjusted[i] = running;
                }
            }
        }
        adjusted
    }
}

impl fmt::Display for Correction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown correction's name, with the valid ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown correction {name:?}: valid corrections are holm, bh (Benjamini-Hochberg) and none")]
pub struct UnknownCorrection {
    pub name: String,
}

impl FromStr for Correction {
    type Err = UnknownCorrection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "holm" => Ok(Correction::Holm),
            "bh" | "fdr" | "benjamini-hochberg" | "fdr_bh" => Ok(Correction::BenjaminiHochberg),
            "none" => Ok(Correction::None),
            _ => Err(UnknownCorrection { name: s.to_string() }),
        }
    }
}
