/// Why a spec was refused. Every message names the field and what would be
/// valid; nothing is written when a spec is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{0}")]
    Toml(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// The recipe's own validation (shared with the worker); its message
    /// names the field, e.g. `recipe.batch_size`.
    #[error(transparent)]
    Recipe(#[from] widesweep_arch::RecipeError),
    #[error(
        "the spec expands to {jobs} jobs (cells x seeds), more than {limit}; check the axes for a typo, or pass --allow-large"
    )]
    NeedsAllowLarge { jobs: u64, limit: u64 },
    #[error("the spec expands to {jobs} jobs, more than the hard limit of {limit}; split it into several sweeps")]
    TooLarge { jobs: u64, limit: u64 },
}

impl SpecError {
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field { field: field.into(), message: message.into() }
    }
}
