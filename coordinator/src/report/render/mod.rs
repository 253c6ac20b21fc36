//! A [`Table`] as text. Text, Markdown and LaTeX share one [`Layout`]
//! (the grid a reader sees); CSV and JSON are tidy instead: one record per
//! cell with every axis value and number in its own field, for pandas.

mod latex;
mod layout;
mod markdown;
mod text;
mod tidy;

use std::fmt;
use std::str::FromStr;

pub use layout::{Column, Layout, cell_text};
pub use tidy::QueryWriter;

use super::ReportError;
use super::sql::QueryResult;
use super::table::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Markdown,
    Csv,
    Json,
    Latex,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Text, Format::Markdown, Format::Csv, Format::Json, Format::Latex];

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Latex => "latex",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let name = match name.as_str() {
            "md" => "markdown",
            "tex" => "latex",
            other => other,
        };
        Format::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| ReportError::UnknownName {
            what: "format",
            plural: "formats",
            name: s.to_string(),
            valid: Format::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// The result of `widesweep sql` in `format`: the same grid as a table's,
/// or for CSV a header and rows, for JSON an array of objects. A cut
/// result says so in the grid formats' notes; CSV and JSON stay data only
/// (the command says it on standard error).
pub fn render_query(result: &QueryResult, format: Format) -> String {
    match format {
        Format::Text => text::render(&Layout::from_query(result)),
        Format::Markdown => markdown::render(&Layout::from_query(result)),
        Format::Latex => latex::render(&Layout::from_query(result)),
        Format::Csv => tidy::query_csv(result),
        Format::Json => tidy::query_json(result),
    }
}

/// The table in `format`, ending with a newline.
pub fn render(table: &Table, format: Format) -> String {
    match format {
        Format::Text => text::render(&Layout::new(table)),
        Format::Markdown => markdown::render(&Layout::new(table)),
        Format::Latex => latex::render(&Layout::new(table)),
        Format::Csv => tidy::csv(table),
        Format::Json => tidy::json(table),
    }
}
