use std::fmt;
use std::str::FromStr;

/// The arithmetic a network trains in.
///
/// - `F32`: everything in f32 (on CUDA, convolutions may use TF32 tensor
///   cores, as PyTorch allows by default).
/// - `Bf16`: mixed precision as PyTorch's autocast does it: convolutions and
///   activations in bfloat16; master weights, gradients as the optimizer sees
///   them, its momentum, batch-norm statistics and the loss in f32. bf16 has
///   f32's exponent range, so no loss scaling is needed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown precision {0:?}: use f32 or bf16")]
pub struct ParsePrecisionError(pub String);

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name used in specs, the CLI and the database.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Precision::default()
    }

    /// Parses the name as the gRPC messages carry it: empty (a proto3
    /// string a peer from before this field never set) is f32, which such
    /// a peer's jobs trained in.
    pub fn from_wire(text: &str) -> Result<Self, ParsePrecisionError> {
        if text.is_empty() { Ok(Precision::F32) } else { text.parse() }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = ParsePrecisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| ParsePrecisionError(s.to_string()))
    }
}

crate::serde_as_text!(Precision);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_is_valid() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        let err = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("\"fp16\"") && err.contains("f32 or bf16"), "{err}");
        assert!(Precision::default().is_default() && !Precision::Bf16.is_default());
        assert_eq!(Precision::from_wire(""), Ok(Precision::F32));
        assert_eq!(Precision::from_wire("bf16"), Ok(Precision::Bf16));
        assert!(Precision::from_wire("fp16").is_err());
    }
}
