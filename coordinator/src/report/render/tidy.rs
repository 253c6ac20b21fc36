//! CSV and JSON: one record per cell (absent combinations included, with
//! `jobs` = 0), each axis value and number in its own field. Values are in
//! the metric's unit (test error in percent); empty (CSV) or null (JSON)
//! where undefined.

use serde_json::{Value, json};

use crate::report::export::Record;

use super::super::sql::QueryResult;
use super::super::table::{Cell, Table};

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
    if table.baseline.is_some() {
        record.insert("delta", number(cell.delta));
        record.insert("is_baseline", cell.is_baseline.into());
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
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(&result.columns).expect("writing to memory");
    for row in &result.rows {
        writer.write_record(row.iter().map(|v| v.to_string())).expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("flushing to memory")).expect("CSV of UTF-8 fields")
}

/// An array of objects; a repeated column name gets a suffix (`id_2`).
pub fn query_json(result: &QueryResult) -> String {
    let mut names: Vec<String> = Vec::new();
    for name in &result.columns {
        let mut unique = name.clone();
        let mut n = 1;
        while names.contains(&unique) {
            n += 1;
            unique = format!("{name}_{n}");
        }
        names.push(unique);
    }
    let rows: Vec<Record> = result
        .rows
        .iter()
        .map(|row| {
            let mut record = Record::default();
            for (name, value) in names.iter().zip(row) {
                record.insert(name.clone(), value.to_json());
            }
            record
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&rows).expect("JSON values serialise");
    text.push('\n');
    text
}
