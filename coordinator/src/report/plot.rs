//! `widesweep plot`: learning curves (one line per cell, the median over
//! seeds at each epoch) and a metric against an axis (one line per value
//! of another axis, e.g. error against width for each depth), drawn with
//! plotters as SVG or PNG.
//!
//! Text is drawn with an embedded DejaVu Sans (plotters' ab_glyph
//! backend), so rendering needs no system fonts or fontconfig.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::aggregate::{median, std_dev};
use super::axis::{Axis, CELL_AXES};
use super::metric::Metric;
use super::table::{TableOptions, build};
use super::{Agg, ReportError};
use crate::store::{EpochMetrics, JobEpoch, ResultRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotKind {
    /// A per-epoch metric, one line per cell, median over seeds.
    Curves,
    /// A final metric against one axis, one line per value of the others.
    MetricVsAxis,
}

impl FromStr for PlotKind {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "curves" => Ok(PlotKind::Curves),
            "metric-vs-axis" => Ok(PlotKind::MetricVsAxis),
            other => Err(ReportError::UnknownName {
                what: "plot kind",
                plural: "plot kinds",
                name: other.to_string(),
                valid: "curves, metric-vs-axis".into(),
            }),
        }
    }
}

/// What a learning curve follows, epoch by epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveMetric {
    TestError,
    TrainError,
    TestLoss,
    TrainLoss,
}

impl CurveMetric {
    pub const ALL: [CurveMetric; 4] =
        [CurveMetric::TestError, CurveMetric::TrainError, CurveMetric::TestLoss, CurveMetric::TrainLoss];

    pub fn name(self) -> &'static str {
        match self {
            CurveMetric::TestError => "test_error",
            CurveMetric::TrainError => "train_error",
            CurveMetric::TestLoss => "test_loss",
            CurveMetric::TrainLoss => "train_loss",
        }
    }

    fn title(self) -> &'static str {
        match self {
            CurveMetric::TestError => "test error (%)",
            CurveMetric::TrainError => "train error (%)",
            CurveMetric::TestLoss => "test loss",
            CurveMetric::TrainLoss => "train loss",
        }
    }

    fn value(self, e: &EpochMetrics) -> f64 {
        match self {
            CurveMetric::TestError => e.test_error * 100.0,
            CurveMetric::TrainError => e.train_error * 100.0,
            CurveMetric::TestLoss => e.test_loss,
            CurveMetric::TrainLoss => e.train_loss,
        }
    }
}

impl fmt::Display for CurveMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CurveMetric {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CurveMetric::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| ReportError::UnknownName {
            what: "curve metric",
            plural: "curve metrics",
            name: s.to_string(),
            valid: CurveMetric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[derive(Clone, Debug)]
pub struct PlotOptions {
    pub kind: PlotKind,
    /// The per-epoch metric of `curves`.
    pub curve: CurveMetric,
    /// The final metric of `metric-vs-axis`.
    pub metric: Metric,
    /// The x axis of `metric-vs-axis`; chosen from the data when `None`.
    pub axis: Option<Axis>,
    /// One line per value of these axes (`metric-vs-axis`); chosen when `None`.
    pub lines: Option<Vec<Axis>>,
    /// `AXIS=V1,V2`: only jobs with one of these values.
    pub filters: Vec<(Axis, Vec<String>)>,
    pub include_out_of_spec: bool,
    /// Image size in pixels.
    pub width: u32,
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            kind: PlotKind::Curves,
            curve: CurveMetric::TestError,
            metric: Metric::TestError,
            axis: None,
            lines: None,
            filters: Vec::new(),
            include_out_of_spec: false,
            width: 1024,
            height: 640,
        }
    }
}

/// One line of a plot: points, and a ± std bar at each point where seeds disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub bars: Vec<(f64, f64, f64)>,
}

/// Everything a plot shows, before it is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotData {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Names of the x positions 0, 1, ... when the x axis is not numeric.
    pub x_names: Option<Vec<String>>,
    /// Whether x takes whole values only (epochs, widths, depths...): ticks
    /// then fall on whole numbers.
    pub x_integer: bool,
    pub series: Vec<Series>,
}

/// Builds the plot's data from a sweep's jobs (and their epochs, for curves).
pub fn plot_data(rows: &[ResultRow], epochs: &[JobEpoch], options: &PlotOptions) -> Result<PlotData, ReportError> {
    match options.kind {
        PlotKind::Curves => curves(rows, epochs, options),
        PlotKind::MetricVsAxis => metric_vs_axis(rows, options),
    }
}

fn curves(rows: &[ResultRow], epochs: &[JobEpoch], options: &PlotOptions) -> Result<PlotData, ReportError> {
    // The table's cells, one per row: each line is one cell over seeds.
    let table_options = TableOptions {
        rows: Some(CELL_AXES.to_vec()),
        cols: Some(Vec::new()),
        filters: options.filters.clone(),
        include_out_of_spec: options.include_out_of_spec,
        extras: false,
        ..TableOptions::default()
    };
    let table = build(rows, &table_options)?;
    let mut by_job: HashMap<i64, Vec<&EpochMetrics>> = HashMap::new();
    for e in epochs {
        by_job.entry(e.job_id).or_default().push(&e.metrics);
    }
    let varying = varying_axes(&table.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>());
    let mut series = Vec::new();
    for row in &table.rows {
        let mut per_epoch: HashMap<u32, Vec<f64>> = HashMap::new();
        for job_id in &row.cells[0].job_ids {
            for e in by_job.get(job_id).into_iter().flatten() {
                per_epoch.entry(e.epoch).or_default().push(options.curve.value(e));
            }
        }
        let mut epochs: Vec<u32> = per_epoch.keys().copied().collect();
        epochs.sort_unstable();
        let points: Vec<(f64, f64)> =
            epochs.iter().filter_map(|e| median(&per_epoch[e]).map(|m| (f64::from(*e), m))).collect();
        if points.is_empty() {
            continue;
        }
        series.push(Series { label: label(&varying, &row.key), points, bars: Vec::new() });
    }
    if series.is_empty() {
        return Err(ReportError::NoJobs { reason: "no job of the selection has recorded an epoch yet".into() });
    }
    Ok(PlotData {
        title: format!(
            "{} on {}: {} per epoch, median over seeds",
            table.sweeps.join(" + "),
            table.datasets.join(" + "),
            options.curve.title()
        ),
        x_label: "epoch".into(),
        y_label: options.curve.title().into(),
        x_names: None,
        x_integer: true,
        series,
    })
}

/// Which of [`CELL_AXES`] tell the cells apart: those that vary, minus
/// those the ones before them already set (the depth of each block type).
fn varying_axes(keys: &[Vec<super::AxisValue>]) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for i in 0..CELL_AXES.len() {
        let mut seen: HashMap<Vec<&super::AxisValue>, &super::AxisValue> = HashMap::new();
        let determined = keys.iter().all(|key| {
            let by: Vec<&super::AxisValue> = kept.iter().map(|k| &key[*k]).collect();
            *seen.entry(by).or_insert(&key[i]) == &key[i]
        });
        if !determined {
            kept.push(i);
        }
    }
    kept
}

fn label(varying: &[usize], key: &[super::AxisValue]) -> String {
    if varying.is_empty() {
        return "all jobs".into();
    }
    varying.iter().map(|i| CELL_AXES[*i].describe(&key[*i])).collect::<Vec<_>>().join(" ")
}

fn metric_vs_axis(rows: &[ResultRow], options: &PlotOptions) -> Result<PlotData, ReportError> {
    let base = TableOptions {
        filters: options.filters.clone(),
        include_out_of_spec: options.include_out_of_spec,
        metric: options.metric,
        extras: false,
        ..TableOptions::default()
    };
    // The x axis: as asked, else the default table's columns (or rows).
    let axis = match options.axis {
        Some(axis) => axis,
        None => {
            let default = build(rows, &TableOptions { rows: options.lines.clone(), ..base.clone() })?;
            match (default.col_axes.as_slice(), default.row_axes.as_slice()) {
                ([axis], _) => *axis,
                ([], [axis]) => *axis,
                _ => {
                    return Err(ReportError::PlotAxis {
                        what: "x",
                        axis: "(none)",
                        reason: "no single axis varies; name one with --axis".into(),
                    });
                }
            }
        }
    };
    let lines = options.lines.clone().map(|l| l.into_iter().filter(|a| *a != axis).collect());
    let table = build(rows, &TableOptions { rows: lines, cols: Some(vec![axis]), agg: Agg::Median, ..base })?;
    let numeric = axis.numeric();
    let x_names: Vec<String> = table.columns.iter().map(|c| c[0].to_string()).collect();
    let x_of = |i: usize| if numeric { table.columns[i][0].as_f64().unwrap_or(i as f64) } else { i as f64 };
    let mut series = Vec::new();
    for row in &table.rows {
        let mut points = Vec::new();
        let mut bars = Vec::new();
        for (i, cell) in row.cells.iter().enumerate() {
            let Some(value) = cell.value else { continue };
            points.push((x_of(i), value));
            if let Some(sd) = std_dev(&cell.values) {
                bars.push((x_of(i), value - sd, value + sd));
            }
        }
        if points.is_empty() {
            continue;
        }
        let label = if table.row_axes.is_empty() {
            options.metric.title().to_string()
        } else {
            table.row_axes.iter().zip(&row.key).map(|(a, v)| a.describe(v)).collect::<Vec<_>>().join(" ")
        };
        series.push(Series { label, points, bars });
    }
    if series.is_empty() {
        return Err(ReportError::NoJobs { reason: "no cell has a result yet".into() });
    }
    let per = if table.row_axes.is_empty() {
        String::new()
    } else {
        format!(", one line per {}", table.row_axes.iter().map(|a| a.label()).collect::<Vec<_>>().join(", "))
    };
    Ok(PlotData {
        title: format!(
            "{} on {}: {} against {}{per}, median ± std over seeds",
            table.sweeps.join(" + "),
            table.datasets.join(" + "),
            options.metric.title(),
            axis.label()
        ),
        x_label: axis_title(axis).into(),
        y_label: options.metric.title().into(),
        x_names: (!numeric).then_some(x_names),
        x_integer: axis.integer(),
        series,
    })
}

fn axis_title(axis: Axis) -> &'static str {
    match axis {
        Axis::Width => "width k (widening factor)",
        Axis::Depth => "depth (layers)",
        Axis::L => "l (convolutions per block)",
        Axis::BlocksPerGroup => "N (blocks per group)",
        Axis::Dropout => "dropout probability",
        Axis::Lr => "learning rate",
        Axis::WeightDecay => "weight decay",
        Axis::Seed => "seed",
        other => other.name(),
    }
}

/// Registers the embedded font under the family plotters asks for.
fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // The embedded files are valid fonts: registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws the plot into `path`: SVG or PNG, by its extension.
pub fn write_plot(data: &PlotData, path: &Path, width: u32, height: u32) -> Result<(), ReportError> {
    register_fonts();
    let bad = |reason: String| ReportError::OutputFile { path: path.display().to_string(), reason };
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => draw(SVGBackend::new(path, (width, height)).into_drawing_area(), data),
        Some("png") => draw(BitMapBackend::new(path, (width, height)).into_drawing_area(), data),
        _ => Err(bad("the file name must end in .svg or .png".into())),
    }
}

/// Ten distinguishable colours (matplotlib's tab10).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, data: &PlotData) -> Result<(), ReportError> {
    let fail = |e: &dyn fmt::Display| ReportError::Plot(e.to_string());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let xs = data.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys =
        data.series.iter().flat_map(|s| s.points.iter().map(|p| p.1).chain(s.bars.iter().flat_map(|b| [b.1, b.2])));
    let (x_lo, x_hi) = padded_range(xs);
    let (y_lo, y_hi) = padded_range(ys);
    // Whole-number axes get at most one label per whole number.
    let span = (x_hi - x_lo).round() as usize;
    let x_labels = if data.x_integer { (span + 1).clamp(2, 12) } else { 10 };
    // Named positions get half a step on each side; numbers a little room.
    let (x_lo, x_hi) = match &data.x_names {
        Some(names) => (-0.5, names.len() as f64 - 0.5),
        None => (x_lo - (x_hi - x_lo) * 0.04, x_hi + (x_hi - x_lo) * 0.04),
    };
    let (y_lo, y_hi) = (y_lo - (y_hi - y_lo) * 0.05, y_hi + (y_hi - y_lo) * 0.05);

    let mut chart = ChartBuilder::on(&root)
        .caption(&data.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(|e| fail(&e))?;
    let names = data.x_names.clone();
    let integer = data.x_integer;
    let format_x = move |x: &f64| {
        let whole = (x - x.round()).abs() < 1e-6;
        match &names {
            Some(names) if whole && *x >= -0.5 => names.get(x.round() as usize).cloned().unwrap_or_default(),
            Some(_) => String::new(),
            None if whole => format!("{x:.0}"),
            None if integer => String::new(),
            None => format!("{x}"),
        }
    };
    chart
        .configure_mesh()
        .x_desc(&data.x_label)
        .y_desc(&data.y_label)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .x_labels(x_labels)
        .x_label_formatter(&format_x)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| fail(&e))?;

    for (i, series) in data.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = ShapeStyle::from(&colour).stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.points.iter().copied(), style))
            .map_err(|e| fail(&e))?
            .label(&series.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(series.points.iter().map(|p| Circle::new(*p, 3, colour.filled()))).map_err(|e| fail(&e))?;
        let bar = ShapeStyle::from(&colour).stroke_width(2);
        chart
            .draw_series(series.bars.iter().map(|(x, lo, hi)| PathElement::new(vec![(*x, *lo), (*x, *hi)], bar)))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The range of `values`, widened to something drawable when they are all
/// equal.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        let half = if lo.abs() > 1.0 { lo.abs() * 0.05 } else { 0.5 };
        return (lo - half, hi + half);
    }
    (lo, hi)
}
