use std::fmt;
use std::str::FromStr;

/// The kernel sizes of the convolutions of one residual block, in order.
///
/// Written as in the paper: `B(3,3)` is the basic block, `B(1,3,1)` the
/// straightened bottleneck. Every convolution outputs the group width; the
/// first one carries the group's stride. The number of convolutions is the
/// deepening factor l.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlockPattern {
    kernels: Vec<usize>,
}

/// Longest block accepted (the largest deepening factor l); deeper blocks
/// are almost surely a typo.
pub const MAX_CONVS_PER_BLOCK: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseBlockError {
    #[error(
        "invalid block pattern {0:?}: expected B(k1,k2,...) with kernel sizes 1 or 3, e.g. \"B(3,3)\", \"B(1,3,1)\", \"B(3,1,3)\""
    )]
    Syntax(String),
    #[error("invalid block pattern {pattern:?}: kernel size {kernel} is not supported (use 1 or 3)")]
    Kernel { pattern: String, kernel: String },
    #[error(
        "invalid block pattern {pattern:?}: {n} convolutions per block (at most {MAX_CONVS_PER_BLOCK} are accepted)"
    )]
    TooLong { pattern: String, n: usize },
    #[error("invalid deepening factor l = {0}: use 1 to {MAX_CONVS_PER_BLOCK}")]
    Deepening(usize),
}

impl BlockPattern {
    /// A block from explicit kernel sizes (each 1 or 3).
    pub fn new(kernels: Vec<usize>) -> Result<Self, ParseBlockError> {
        let text = || format!("B({})", join(&kernels));
        if kernels.is_empty() {
            return Err(ParseBlockError::Syntax(text()));
        }
        if kernels.len() > MAX_CONVS_PER_BLOCK {
            return Err(ParseBlockError::TooLong { pattern: text(), n: kernels.len() });
        }
        if let Some(bad) = kernels.iter().find(|k| **k != 1 && **k != 3) {
            return Err(ParseBlockError::Kernel { pattern: text(), kernel: bad.to_string() });
        }
        Ok(Self { kernels })
    }

    /// The l-deep stack of 3x3 convolutions of the paper's deepening study
    /// (l = 2 is the basic block B(3,3)).
    pub fn deepened(l: usize) -> Result<Self, ParseBlockError> {
        if l == 0 || l > MAX_CONVS_PER_BLOCK {
            return Err(ParseBlockError::Deepening(l));
        }
        Ok(Self { kernels: vec![3; l] })
    }

    /// The basic block B(3,3).
    pub fn basic() -> Self {
        Self { kernels: vec![3, 3] }
    }

    pub fn kernels(&self) -> &[usize] {
        &self.kernels
    }

    /// Convolutions per block: the deepening factor l.
    pub fn deepening(&self) -> usize {
        self.kernels.len()
    }
}

fn join(kernels: &[usize]) -> String {
    kernels.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",")
}

impl fmt::Display for BlockPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B({})", join(&self.kernels))
    }
}

impl FromStr for BlockPattern {
    type Err = ParseBlockError;

    /// Accepts `B(3,1,3)`, case-insensitively and with spaces around the
    /// numbers; the canonical form is the one [`fmt::Display`] writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ParseBlockError::Syntax(s.to_string());
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let inner = compact
            .strip_prefix('B')
            .or_else(|| compact.strip_prefix('b'))
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(syntax)?;
        let mut kernels = Vec::new();
        for part in inner.split(',') {
            match part {
                "1" => kernels.push(1),
                "3" => kernels.push(3),
                "" => return Err(syntax()),
                other => {
                    return Err(ParseBlockError::Kernel { pattern: s.to_string(), kernel: other.to_string() });
                }
            }
        }
        Self::new(kernels).map_err(|e| match e {
            ParseBlockError::TooLong { n, .. } => ParseBlockError::TooLong { pattern: s.to_string(), n },
            other => other,
        })
    }
}

crate::serde_as_text!(BlockPattern);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_block_of_the_paper() {
        for text in ["B(3,3)", "B(3,1,3)", "B(1,3,1)", "B(1,3)", "B(3,1)", "B(3,1,1)", "B(3)", "B(3,3,3,3)"] {
            let block: BlockPattern = text.parse().unwrap();
            assert_eq!(block.to_string(), text);
        }
        assert_eq!("b( 1, 3 ,1 )".parse::<BlockPattern>().unwrap().to_string(), "B(1,3,1)");
    }

    #[test]
    fn rejects_bad_patterns_naming_them() {
        let err = "B(3,5)".parse::<BlockPattern>().unwrap_err();
        assert!(err.to_string().contains("kernel size 5"), "{err}");
        for bad in ["B()", "C(3,3)", "B(3,,3)", "3,3", "B(3,3"] {
            let err = bad.parse::<BlockPattern>().unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn deepening_factor_builds_stacks_of_3x3() {
        assert_eq!(BlockPattern::deepened(4).unwrap().to_string(), "B(3,3,3,3)");
        assert_eq!(BlockPattern::deepened(2).unwrap(), BlockPattern::basic());
        assert!(BlockPattern::deepened(0).is_err());
    }
}
