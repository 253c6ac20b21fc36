//! What the user asks of a table: axes, metric, aggregate, baseline and
//! filters, and the parsing of `--baseline` and `--where`.

use crate::report::ReportError;
use crate::report::aggregate::Agg;
use crate::report::axis::Axis;
use crate::report::metric::Metric;
use crate::stats::Correction;

/// What the user asked for; `None` axes are chosen from the data.
#[derive(Clone, Debug)]
pub struct TableOptions {
    pub rows: Option<Vec<Axis>>,
    pub cols: Option<Vec<Axis>>,
    pub metric: Metric,
    pub agg: Agg,
    /// `AXIS=VALUE`: every cell also shows its difference to the cell with
    /// that value of the axis (and the same other coordinates).
    pub baseline: Option<(Axis, String)>,
    /// `AXIS=V1,V2`: only jobs with one of these values.
    pub filters: Vec<(Axis, Vec<String>)>,
    /// Also count jobs that a resubmitted spec no longer contains.
    pub include_out_of_spec: bool,
    /// Show parameter counts and seconds per epoch beside the metric.
    pub extras: bool,
    /// How p-values against the baseline are adjusted for their number.
    pub correction: Correction,
    /// Refuse a table with a cell whose seeds differ in provenance that
    /// changes results, instead of flagging it.
    pub strict: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            rows: None,
            cols: None,
            metric: Metric::TestError,
            agg: Agg::Median,
            baseline: None,
            filters: Vec::new(),
            include_out_of_spec: false,
            extras: true,
            correction: Correction::Holm,
            strict: false,
        }
    }
}

/// Parses `AXIS=VALUE` (for `--baseline`) or `AXIS=V1,V2` (for `--where`).
pub fn parse_assignment(text: &str, flag: &'static str) -> Result<(Axis, String), ReportError> {
    let (axis, value) = text.split_once('=').ok_or_else(|| ReportError::BadAssignment {
        flag,
        text: text.to_string(),
        valid: Axis::valid_names(),
    })?;
    Ok((axis.parse()?, value.trim().to_string()))
}

/// Parses `AXIS=V1,V2` (for `--where`); commas inside parentheses belong to
/// the value, so `block=B(3,3),B(1,3,1)` names two blocks.
pub fn parse_filter(text: &str) -> Result<(Axis, Vec<String>), ReportError> {
    let (axis, values) = parse_assignment(text, "--where")?;
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in values.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out.retain(|v| !v.is_empty());
    if out.is_empty() {
        return Err(ReportError::BadAssignment { flag: "--where", text: text.to_string(), valid: Axis::valid_names() });
    }
    Ok((axis, out))
}
