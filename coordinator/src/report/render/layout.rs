//! The grid a reader sees: headers (grouped by column value when the
//! table has column axes) and one line of cell texts per row.

use super::super::axis::{Axis, AxisValue};
use super::super::metric::{Metric, format_params};
use super::super::table::{Cell, Row, Table};
use crate::report::Agg;
use crate::report::sql::{QueryResult, SqlValue};
use crate::stats;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column value this column belongs to ("k=4"), when the table has
    /// column axes; consecutive columns of one group share a header.
    pub group: Option<String>,
    pub name: String,
    /// Right-aligned (numbers) rather than left-aligned (labels).
    pub numeric: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    /// Legend and notes printed under the table.
    pub notes: Vec<String>,
}

impl Layout {
    pub fn new(table: &Table) -> Self {
        let mut columns = Vec::new();
        let label = |name: &str, numeric| Column { group: None, name: name.to_string(), numeric };
        for axis in table.row_axes.iter().chain(&table.attribute_axes) {
            columns.push(label(axis.label(), false));
        }
        if table.show_params && table.params_per_row {
            columns.push(label("params", true));
        }
        let baseline = table.baseline.as_ref().map(|(axis, value)| axis.describe(value));
        let per_column = |group: Option<String>, columns: &mut Vec<Column>| {
            let column = |name: String| Column { group: group.clone(), name, numeric: true };
            columns.push(column(table.metric.title().to_string()));
            if let Some(base) = &baseline {
                columns.push(column(format!("Δ vs {base}")));
            }
            if table.show_params && !table.params_per_row {
                columns.push(column("params".into()));
            }
            if table.show_time {
                columns.push(column("s/epoch".into()));
            }
        };
        if table.col_axes.is_empty() {
            per_column(None, &mut columns);
        } else {
            for key in &table.columns {
                let group = table.col_axes.iter().zip(key).map(|(a, v)| a.describe(v)).collect::<Vec<_>>().join(", ");
                per_column(Some(group), &mut columns);
            }
        }

        let rows = table
            .rows
            .iter()
            .map(|row| {
                let mut line: Vec<String> = row.key.iter().chain(&row.attributes).map(|v| v.to_string()).collect();
                if table.show_params && table.params_per_row {
                    line.push(row.params.map_or("-".into(), |p| format_params(p as f64)));
                }
                for cell in &row.cells {
                    line.push(cell_text(table, cell));
                    if baseline.is_some() {
                        line.push(delta_text(table, cell));
                    }
                    if table.show_params && !table.params_per_row {
                        line.push(match (cell.jobs(), cell.params) {
                            (0, _) | (_, None) => "-".into(),
                            (_, Some(p)) => format_params(p as f64),
                        });
                    }
                    if table.show_time {
                        line.push(cell.epoch_seconds.map_or("-".into(), |s| format!("{s:.1}")));
                    }
                }
                line
            })
            .collect();

        let mut notes = Vec::new();
        if table.metric != Metric::Params {
            let spread = if table.shows_spread() { " ± sample std" } else { "" };
            let absent = table.rows.iter().flat_map(|r| &r.cells).any(|c| c.jobs() == 0);
            notes.push(format!(
                "{} {}{spread} over seeds; n = seeds with a result{}",
                table.agg,
                table.metric.title(),
                if absent { "; - = no such cell in the sweep" } else { "" }
            ));
        }
        if table.metric != Metric::Params && table.rows.iter().flat_map(|r| &r.cells).any(|c| c.interval.is_some()) {
            let clipped = if table.rows.iter().flat_map(|r| &r.cells).any(|c| c.interval_clipped) {
                let (lo, hi) = table.metric.range();
                format!(" († cut to the metric's range [{lo}, {hi}], which the Student-t interval ran past)")
            } else {
                String::new()
            };
            notes.push(format!("95 % intervals of each cell's mean (Student t){clipped}: {}", intervals_text(table)));
        }
        if table.baseline.is_some() {
            notes.push(format!(
                "Δ is the difference of the cells' {}s; its marks, * p < {:.2}, ** p < 0.01, *** p < 0.001, \
                 test the difference to the baseline: seed by seed where both cells share two seeds or more \
                 (paired t-test on the per-seed differences; the exact sign-flip test when they are all equal), \
                 else the seeds' means (exact permutation test below 10 seeds a side, Welch's t-test from 10)",
                table.agg,
                stats::ALPHA
            ));
            notes.push(comparisons_text(table));
            notes.push(what_the_table_says(table));
        }
        notes.extend(table.notes.iter().cloned());
        Self { title: table.title(), columns, rows, notes }
    }
}

impl Layout {
    /// The grid of a query's result: one column per result column.
    pub fn from_query(result: &QueryResult) -> Self {
        let numeric = |i: usize| {
            result.rows.iter().any(|r| r[i].is_number())
                && result.rows.iter().all(|r| r[i].is_number() || r[i] == SqlValue::Null)
        };
        let columns = result
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| Column { group: None, name: name.clone(), numeric: numeric(i) })
            .collect();
        let rows = result.rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect();
        let count = result.rows.len();
        let notes = match result.cut_at {
            Some(max_rows) => vec![format!("({})", crate::report::sql::cut_note(max_rows))],
            None => vec![format!("({count} row{})", if count == 1 { "" } else { "s" })],
        };
        Self { title: String::new(), columns, rows, notes }
    }
}

fn format_value(table: &Table, value: f64) -> String {
    match table.agg {
        Agg::Count => format!("{value:.0}"),
        _ => table.metric.format(value),
    }
}

/// A cell as a reader sees it: "5.73 ±0.12 (n=5)"; "5.80 (n=3/5, 2 running)"
/// while seeds are missing; "2 running" before any result; "-" where the
/// sweep has no such cell.
pub fn cell_text(table: &Table, cell: &Cell) -> String {
    let jobs = cell.jobs();
    if jobs == 0 {
        return "-".into();
    }
    if table.metric == Metric::Params {
        return cell.value.map_or("-".into(), format_params);
    }
    let missing = cell.counts.unfinished();
    let n = cell.n();
    let Some(value) = cell.value else {
        return if n == 0 { missing } else { format!("n/a (n={n})") };
    };
    let mut text = format_value(table, value);
    if let Some(spread) = cell.spread {
        text.push_str(&format!(" ±{}", table.metric.format(spread)));
    }
    if n == jobs {
        text.push_str(&format!(" (n={n})"));
    } else if missing.is_empty() {
        // Succeeded jobs without this metric (a worker that did not report it).
        text.push_str(&format!(" (n={n}/{jobs})"));
    } else {
        text.push_str(&format!(" (n={n}/{jobs}, {missing})"));
    }
    if !cell.provenance_differs.is_empty() {
        text.push_str(" ‡");
    }
    text
}

fn delta_text(table: &Table, cell: &Cell) -> String {
    if cell.is_baseline {
        return "base".into();
    }
    match cell.delta {
        Some(delta) => {
            let sign = if delta < 0.0 { "-" } else { "+" };
            let stars = cell.p_adjusted.map_or("", stats::stars);
            format!("{sign}{}{stars}", format_value(table, delta.abs()))
        }
        None => "-".into(),
    }
}

/// Cells whose intervals the notes list; a larger table has them in its
/// CSV and JSON (`ci95_lo`, `ci95_hi`) instead.
const LISTED_INTERVALS: usize = 24;

/// Each cell's interval, "row / column: [lo, hi]", in table order.
fn intervals_text(table: &Table) -> String {
    let count = table.rows.iter().flat_map(|r| &r.cells).filter(|c| c.interval.is_some()).count();
    if count > LISTED_INTERVALS {
        return format!("{count} cells; see --format csv or json (ci95_lo, ci95_hi)");
    }
    let mut parts = Vec::new();
    for row in &table.rows {
        for (cell, column) in row.cells.iter().zip(&table.columns) {
            if let Some(interval) = cell.interval {
                parts.push(format!(
                    "{}: [{}, {}]{}",
                    place(table, row, column),
                    table.metric.format(interval.lo),
                    table.metric.format(interval.hi),
                    if cell.interval_clipped { "†" } else { "" }
                ));
            }
        }
    }
    parts.join("; ")
}

/// Where a cell is, as a reader names it: "B(3,3) d=10 / k=2".
fn place(table: &Table, row: &Row, column: &[AxisValue]) -> String {
    let describe = |axes: &[Axis], values: &[AxisValue]| {
        axes.iter().zip(values).map(|(a, v)| a.describe(v)).collect::<Vec<_>>().join(", ")
    };
    let (r, c) = (describe(&table.row_axes, &row.key), describe(&table.col_axes, column));
    match (r.is_empty(), c.is_empty()) {
        (false, false) => format!("{r} / {c}"),
        (true, false) => c,
        (false, true) => r,
        (true, true) => "the cell".to_string(),
    }
}

/// How many comparisons the table makes, which tests made them and how
/// their p-values were adjusted for their number.
fn comparisons_text(table: &Table) -> String {
    let m = table.comparisons();
    let comparisons = table.rows.iter().flat_map(|r| &r.cells).filter_map(|c| c.comparison);
    let mut tests: Vec<&str> = Vec::new();
    for c in comparisons {
        if !tests.contains(&c.method.name()) {
            tests.push(c.method.name());
        }
    }
    let adjusted = match (m, table.correction) {
        (_, stats::Correction::None) => "p-values not adjusted (--correction none)".to_string(),
        (0 | 1, _) => format!("one comparison needs no adjustment (--correction {})", table.correction),
        (_, correction) => format!("p-values adjusted by {} (--correction {correction})", correction.description()),
    };
    format!(
        "{m} comparison{} to the baseline{}; {adjusted}",
        if m == 1 { "" } else { "s" },
        if tests.is_empty() { String::new() } else { format!(" ({})", tests.join(", ")) }
    )
}

/// The line a reader wants first: which differences to the baseline the
/// seeds resolve (adjusted p < 0.05), and which they do not yet.
fn what_the_table_says(table: &Table) -> String {
    let (mut resolved, mut open) = (Vec::new(), Vec::new());
    for row in &table.rows {
        for (cell, column) in row.cells.iter().zip(&table.columns) {
            if let (Some(c), Some(p)) = (cell.comparison, cell.p_adjusted) {
                let adjusted = if p == c.p_value { String::new() } else { format!(", adjusted {p:.3}") };
                let text = format!(
                    "{} {}{} (p = {:.3}{adjusted}, {})",
                    place(table, row, column),
                    if c.difference < 0.0 { "-" } else { "+" },
                    table.metric.format(c.difference.abs()),
                    c.p_value,
                    c.method.name()
                );
                if p < stats::ALPHA { resolved.push(text) } else { open.push(text) }
            }
        }
    }
    if resolved.is_empty() && open.is_empty() {
        return "what the table says: no cell has two seeds on each side of a comparison yet".to_string();
    }
    let list = |items: &[String]| if items.is_empty() { "none".to_string() } else { items.join("; ") };
    format!(
        "what the table says: {} of {} differences of means to the baseline are resolved at these seeds \
         (adjusted p < {:.2}): {}; not resolved: {}",
        resolved.len(),
        resolved.len() + open.len(),
        stats::ALPHA,
        list(&resolved),
        list(&open)
    )
}
