//! CSV and JSON: one record per cell (absent combinations included, with
//! `jobs` = 0), each axis value and number in its own field. Values are in
//! the metric's unit (test error in percent); empty (CSV) or null (JSON)
//! where undefined.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::report::export::Record;

use super::super::sql::{QueryResult, RowSink, SqlValue};
use super::super::table::{Cell, Table};
use super::Format;
use crate::stats::{Comparison, Method};

/// A number rounded to 12 significant digits: percentages computed from
/// fractions read 10.9, not 10.899999999999999.
fn number(value: Option<f64>) -> Value {
    value
        .map(|v| format!("{v:.11e}").parse::<f64>().unwrap_or(v))
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The records, field order fixed: axes, then the numbers.
fn records(table: &Table) -> Vec<Record> {
    let mut out = Vec::new();
    for row in &table.rows {
        for (column, cell) in table.columns.iter().zip(&row.cells) {
            let mut record = Record::default();
            for (axis, value) in table.row_axes.iter().zip(&row.key) {
                record.insert(axis.name(), value.to_json());
            }
            for (axis, value) in table.col_axes.iter().zip(column) {
                record.insert(axis.name(), value.to_json());
            }
            for (axis, value) in table.attribute_axes.iter().zip(&row.attributes) {
                record.insert(axis.name(), value.to_json());
            }
            fill(&mut record, table, cell);
            out.push(record);
        }
    }
    out
}

fn fill(record: &mut Record, table: &Table, cell: &Cell) {
    let c = &cell.counts;
    record.insert("metric", table.metric.name().into());
    record.insert("agg", table.agg.name().into());
    record.insert("value", number(cell.value));
    record.insert("std", number(cell.spread));
    record.insert("ci95_lo", number(cell.interval.map(|i| i.lo)));
    record.insert("ci95_hi", number(cell.interval.map(|i| i.hi)));
    record.insert("ci95_clipped", cell.interval_clipped.into());
    record.insert("n", cell.n().into());
    record.insert("jobs", cell.jobs().into());
    record.insert("succeeded", c.succeeded.into());
    record.insert("running", c.running.into());
    record.insert("pending", c.pending.into());
    record.insert("failed", c.failed.into());
    record.insert("cancelled", c.cancelled.into());
    record.insert("params", cell.params.map_or(Value::Null, Value::from));
    record.insert("epoch_seconds", number(cell.epoch_seconds));
    record.insert("job_ids", cell.job_ids.clone().into());
    record.insert("provenance_differs", cell.provenance_differs.clone().into());
    if table.baseline.is_some() {
        record.insert("delta", number(cell.delta));
        record.insert("is_baseline", cell.is_baseline.into());
        let comparison = cell.comparison.as_ref();
        record.insert("mean_difference", number(comparison.map(|c| c.difference)));
        record.insert("difference_ci95_lo", number(comparison.map(|c| c.interval.lo)));
        record.insert("difference_ci95_hi", number(comparison.map(|c| c.interval.hi)));
        record.insert("p_value", number(comparison.map(|c| c.p_value)));
        record.insert("p_adjusted", number(cell.p_adjusted));
        record.insert("correction", table.correction.name().into());
        record.insert("comparisons", table.comparisons().into());
        record.insert("test", comparison.map_or(Value::Null, |c| c.method.name().into()));
        record.insert("paired_seeds", pairs(comparison));
    }
}

/// How many seeds a paired comparison matched; null for unpaired tests.
fn pairs(comparison: Option<&Comparison>) -> Value {
    match comparison.map(|c| c.method) {
        Some(Method::PairedT { pairs, .. } | Method::SignFlip { pairs }) => pairs.into(),
        _ => Value::Null,
    }
}

pub fn json(table: &Table) -> String {
    let axes = |axes: &[crate::report::Axis]| axes.iter().map(|a| a.name()).collect::<Vec<_>>();
    let mut document = Record::default();
    document.insert("title", table.title().into());
    document.insert("sweeps", table.sweeps.clone().into());
    document.insert("datasets", table.datasets.clone().into());
    document.insert("metric", table.metric.name().into());
    document.insert("agg", table.agg.name().into());
    document.insert("rows", axes(&table.row_axes).into());
    document.insert("columns", axes(&table.col_axes).into());
    document.insert("attributes", axes(&table.attribute_axes).into());
    let baseline = table.baseline.as_ref().map(|(axis, value)| json!({"axis": axis.name(), "value": value.to_json()}));
    document.insert("baseline", baseline.unwrap_or(Value::Null));
    if table.baseline.is_some() {
        document.insert("correction", table.correction.name().into());
        document.insert("comparisons", table.comparisons().into());
    }
    document.insert("cells", serde_json::to_value(records(table)).expect("records serialise"));
    document.insert("notes", table.notes.clone().into());
    let mut text = serde_json::to_string_pretty(&document).expect("JSON values serialise");
    text.push('\n');
    text
}

pub fn csv(table: &Table) -> String {
    let records = records(table);
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    if let Some(first) = records.first() {
        writer.write_record(first.keys()).expect("writing to memory");
    }
    for record in &records {
        writer.write_record(record.values().map(crate::report::export::csv_field)).expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("flushing to memory")).expect("CSV of UTF-8 fields")
}

pub fn query_csv(result: &QueryResult) -> String {
    query_text(result, Format::Csv)
}

/// An array of objects; a repeated column name gets a suffix (`id_2`).
pub fn query_json(result: &QueryResult) -> String {
    query_text(result, Format::Json)
}

fn query_text(result: &QueryResult, format: Format) -> String {
    let mut writer = QueryWriter::new(format, Vec::new()).expect("a tidy format");
    writer.columns(&result.columns).expect("writing to memory");
    for row in &result.rows {
        writer.row(row.clone()).expect("writing to memory");
    }
    String::from_utf8(writer.finish().expect("writing to memory")).expect("UTF-8 fields")
}

/// A query's result as CSV or JSON, written row by row as the database
/// sends it: neither format needs every row before the first is printed.
pub enum QueryWriter<W: Write> {
    Csv(Box<::csv::Writer<W>>),
    Json { out: W, names: Vec<String>, rows: usize },
}

impl<W: Write> QueryWriter<W> {
    /// A writer for `format`; None for the grid formats (text, Markdown,
    /// LaTeX), whose column widths depend on every row.
    pub fn new(format: Format, out: W) -> Option<Self> {
        match format {
            Format::Csv => Some(QueryWriter::Csv(Box::new(::csv::Writer::from_writer(out)))),
            Format::Json => Some(QueryWriter::Json { out, names: Vec::new(), rows: 0 }),
            Format::Text | Format::Markdown | Format::Latex => None,
        }
    }

    /// Ends the output (JSON's closing bracket) and flushes it.
    pub fn finish(self) -> io::Result<W> {
        match self {
            QueryWriter::Csv(writer) => writer.into_inner().map_err(|e| e.into_error()),
            QueryWriter::Json { mut out, rows, .. } => {
                out.write_all(if rows == 0 { b"[]\n" } else { b"\n]\n" })?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// The I/O error under a CSV error, so that a closed pipe still reads as
/// one (`widesweep sql ... | head`); writing strings, nothing else fails.
fn csv_io(error: ::csv::Error) -> io::Error {
    match error.into_kind() {
        ::csv::ErrorKind::Io(error) => error,
        kind => io::Error::other(format!("{kind:?}")),
    }
}

impl<W: Write> RowSink for QueryWriter<W> {
    fn columns(&mut self, columns: &[String]) -> io::Result<()> {
        match self {
            QueryWriter::Csv(writer) => writer.write_record(columns).map_err(csv_io),
            QueryWriter::Json { names, .. } => {
                names.clear();
                for name in columns {
                    let mut unique = name.clone();
                    let mut n = 1;
                    while names.contains(&unique) {
                        n += 1;
                        unique = format!("{name}_{n}");
                    }
                    names.push(unique);
                }
                Ok(())
            }
        }
    }

    fn row(&mut self, values: Vec<SqlValue>) -> io::Result<()> {
        match self {
            QueryWriter::Csv(writer) => writer.write_record(values.iter().map(|v| v.to_string())).map_err(csv_io),
            QueryWriter::Json { out, names, rows } => {
                let mut record = Record::default();
                for (name, value) in names.iter().zip(&values) {
                    record.insert(name.clone(), value.to_json());
                }
                // The layout of serde_json's pretty array, one element at a
                // time: each object indented by two spaces.
                let object = serde_json::to_string_pretty(&record).expect("JSON values serialise");
                out.write_all(if *rows == 0 { b"[\n" } else { b",\n" })?;
                for (i, line) in object.lines().enumerate() {
                    if i > 0 {
                        out.write_all(b"\n")?;
                    }
                    out.write_all(b"  ")?;
                    out.write_all(line.as_bytes())?;
                }
                *rows += 1;
                Ok(())
            }
        }
    }
}
