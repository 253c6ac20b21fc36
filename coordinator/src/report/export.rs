//! `widesweep export`: one record per job with every hyperparameter, the
//! recipe, the queue state and every result, or with `epochs` one record per
//! job and recorded epoch (the job's fields repeated), as CSV or JSON lines.
//!
//! Units are the database's: errors are fractions in [0, 1], times are
//! seconds or milliseconds since the Unix epoch (`*_at_ms`).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::ReportError;
use super::metric::epoch_seconds;
use crate::store::{EpochMetrics, JobEpoch, Provenance, ResultRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        })
    }
}

impl FromStr for ExportFormat {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            _ => Err(ReportError::UnknownName {
                what: "export format",
                plural: "export formats",
                name: s.to_string(),
                valid: "csv, jsonl".into(),
            }),
        }
    }
}

/// A record's fields in a fixed order. (serde_json's `Map` sorts its keys,
/// and must keep doing so: cell hashes are computed from sorted JSON. So
/// the order of a record's columns is kept here instead.)
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record(Vec<(String, Value)>);

impl Record {
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.0.push((key.into(), value));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

fn number(value: Option<f64>) -> Value {
    value.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// A job's fields, in the order of the export's columns.
pub fn job_record(row: &ResultRow) -> Record {
    let c = &row.config;
    let r = &c.recipe;
    let mut m = Record::default();
    m.insert("sweep", row.sweep.clone().into());
    m.insert("job_id", row.job_id.into());
    m.insert("cell_hash", row.cell_hash.clone().into());
    m.insert("status", row.status.as_str().into());
    m.insert("in_spec", row.in_spec.into());
    m.insert("block", c.block.to_string().into());
    m.insert("l", c.deepening.into());
    m.insert("blocks_per_group", c.blocks_per_group.into());
    m.insert("depth", c.depth.into());
    m.insert("depth_convention", row.depth_convention.clone().into());
    m.insert("width", c.width.into());
    m.insert("dropout", number(Some(c.dropout)));
    m.insert("dataset", c.dataset.name().into());
    m.insert("engine", c.engine.clone().into());
    m.insert("params_json", serde_json::to_string(&c.params).expect("params serialise").into());
    m.insert("seed", c.seed.into());
    m.insert("epochs", r.epochs.into());
    m.insert("batch_size", r.batch_size.into());
    m.insert("lr", number(Some(r.lr)));
    m.insert("lr_milestones", r.lr_milestones.clone().into());
    m.insert("lr_gamma", number(Some(r.lr_gamma)));
    m.insert("momentum", number(Some(r.momentum)));
    m.insert("nesterov", r.nesterov.into());
    m.insert("weight_decay", number(Some(r.weight_decay)));
    m.insert("reset_momentum_on_drop", r.reset_momentum_on_drop.into());
    m.insert("train_subset", r.train_subset.into());
    m.insert("test_subset", r.test_subset.into());
    m.insert("augment", r.augment.into());
    m.insert("precision", r.precision.name().into());
    m.insert("checkpoint_every", r.checkpoint_every.into());
    m.insert("params", row.params.into());
    m.insert("forward_macs", row.forward_macs.into());
    m.insert("attempt", row.attempt.into());
    m.insert("epochs_done", row.epochs_done.into());
    m.insert("final_train_loss", number(row.final_train_loss));
    m.insert("final_train_error", number(row.final_train_error));
    m.insert("final_test_loss", number(row.final_test_loss));
    m.insert("final_test_error", number(row.final_test_error));
    m.insert("best_test_error", number(row.best_test_error));
    m.insert("train_seconds", number(row.train_seconds));
    m.insert("epoch_seconds", number(epoch_seconds(row)));
    m.insert("gpu_hours", number(Some(row.train_seconds.unwrap_or(row.recorded_seconds) / 3600.0)));
    m.insert("created_at_ms", row.created_at_ms.into());
    m.insert("started_at_ms", row.started_at_ms.map_or(Value::Null, Value::from));
    m.insert("finished_at_ms", row.finished_at_ms.map_or(Value::Null, Value::from));
    m.insert("last_error", row.last_error.clone().map_or(Value::Null, Value::from));
    // Where the result came from; null before a result (or one recorded
    // before provenance was). The engine's name is the `engine` column.
    let none = Provenance::default();
    for (field, value) in row.provenance.as_ref().unwrap_or(&none).fields() {
        if field != "engine" {
            m.insert(field, if row.provenance.is_some() { Value::from(value) } else { Value::Null });
        }
    }
    m
}

/// An epoch's fields, appended to its job's in an `--epochs` export.
fn add_epoch(m: &mut Record, e: &EpochMetrics) {
    m.insert("epoch", e.epoch.into());
    m.insert("train_loss", number(Some(e.train_loss)));
    m.insert("train_error", number(Some(e.train_error)));
    m.insert("test_loss", number(Some(e.test_loss)));
    m.insert("test_error", number(Some(e.test_error)));
    m.insert("epoch_lr", number(Some(e.lr)));
    m.insert("epoch_wall_seconds", number(Some(e.epoch_seconds)));
    m.insert("images_per_second", number(Some(e.images_per_second)));
}

/// Writes the records of `rows` (one per job), or with `epochs` one per
/// job and epoch (jobs without a recorded epoch are left out of that
/// form: they have no curve). Returns the number of records written.
pub fn export(
    rows: &[ResultRow],
    epochs: Option<&[JobEpoch]>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, ReportError> {
    let mut writer = RecordWriter::new(format, out);
    match epochs {
        None => {
            for row in rows {
                writer.write(&job_record(row))?;
            }
        }
        Some(epochs) => {
            let mut by_job: HashMap<i64, Vec<&EpochMetrics>> = HashMap::new();
            for e in epochs {
                by_job.entry(e.job_id).or_default().push(&e.metrics);
            }
            for row in rows {
                let base = job_record(row);
                for e in by_job.get(&row.job_id).into_iter().flatten() {
                    let mut record = base.clone();
                    add_epoch(&mut record, e);
                    writer.write(&record)?;
                }
            }
        }
    }
    writer.finish()
}

/// CSV with a header from the first record, or one JSON object per line.
struct RecordWriter<'a> {
    format: ExportFormat,
    csv: Option<::csv::Writer<&'a mut dyn Write>>,
    out: Option<&'a mut dyn Write>,
    header_written: bool,
    written: u64,
}

impl<'a> RecordWriter<'a> {
    fn new(format: ExportFormat, out: &'a mut dyn Write) -> Self {
        match format {
            ExportFormat::Csv => Self {
                format,
                csv: Some(::csv::Writer::from_writer(out)),
                out: None,
                header_written: false,
                written: 0,
            },
            ExportFormat::Jsonl => Self { format, csv: None, out: Some(out), header_written: false, written: 0 },
        }
    }

    fn write(&mut self, record: &Record) -> Result<(), ReportError> {
        match self.format {
            ExportFormat::Csv => {
                let csv = self.csv.as_mut().expect("a CSV writer for CSV");
                if !self.header_written {
                    csv.write_record(record.keys())?;
                    self.header_written = true;
                }
                csv.write_record(record.values().map(csv_field))?;
            }
            ExportFormat::Jsonl => {
                let out = self.out.as_mut().expect("an output for JSON lines");
                serde_json::to_writer(&mut **out, record).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, ReportError> {
        if let Some(csv) = self.csv.as_mut() {
            csv.flush()?;
        }
        if let Some(out) = self.out.as_mut() {
            out.flush()?;
        }
        Ok(self.written)
    }
}

/// A field as CSV text: strings bare, lists as JSON ("[60,120,160]"),
/// null as empty.
pub fn csv_field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
