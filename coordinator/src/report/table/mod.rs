//! A table's layout: which jobs, which axes along rows and columns, and
//! what each cell holds. Pure: rows in, [`Table`] out; rendering is in
//! [`super::render`].
//!
//! A cell aggregates jobs that differ only in their seed. When the jobs
//! that would share a cell differ in anything else (depth, dataset,
//! recipe...), the table is refused and the error names the axis to add:
//! a median over two datasets is not a result.

use std::collections::{BTreeSet, HashMap};

use super::ReportError;
use super::aggregate::{Agg, median};
use super::axis::{Axis, AxisValue, NETWORK_AXES, RECIPE_FIELD_AXES, join, recipe_labels};
use super::metric::{Metric, epoch_seconds};
use crate::stats::{self, Comparison, Correction, Interval};
use crate::store::{JobStatus, ResultRow};
use provenance::{check_provenance, provenance_differences};

mod options;
mod provenance;

pub use options::{TableOptions, parse_assignment, parse_filter};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl StatusCounts {
    fn add(&mut self, status: JobStatus) {
        match status {
            JobStatus::Pending => self.pending += 1,
            JobStatus::Running => self.running += 1,
            JobStatus::Succeeded => self.succeeded += 1,
            JobStatus::Failed => self.failed += 1,
            JobStatus::Cancelled => self.cancelled += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.pending + self.running + self.succeeded + self.failed + self.cancelled
    }

    /// "2 running, 1 pending" for the states other than succeeded.
    pub fn unfinished(&self) -> String {
        [("running", self.running), ("pending", self.pending), ("failed", self.failed), ("cancelled", self.cancelled)]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One cell: the jobs of one combination of row and column values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    /// The metric of each job that has one (one per seed).
    pub values: Vec<f64>,
    /// The seed of each of `values`, for comparisons seed by seed.
    pub seeds: Vec<u64>,
    /// The aggregate of `values`; `None` when undefined (no value yet).
    pub value: Option<f64>,
    /// Sample standard deviation over seeds, beside a median or mean.
    pub spread: Option<f64>,
    pub counts: StatusCounts,
    /// Parameters of the cell's network.
    pub params: Option<u64>,
    /// Median over seeds of the mean seconds per epoch (succeeded jobs).
    pub epoch_seconds: Option<f64>,
    /// 95 % Student-t interval of the mean over seeds (two seeds or more),
    /// cut to the metric's range ([`Metric::range`]).
    pub interval: Option<Interval>,
    /// Whether `interval` had to be cut to the metric's range.
    pub interval_clipped: bool,
    /// `value` minus the baseline cell's value.
    pub delta: Option<f64>,
    /// The cell against the baseline cell: seed by seed over the seeds
    /// both have ([`stats::paired`]) when they share two or more, else the
    /// seeds' means ([`stats::compare`]); the difference, its 95 % interval
    /// and a raw p-value.
    pub comparison: Option<Comparison>,
    /// `comparison`'s p-value adjusted for the table's number of
    /// comparisons ([`Table::correction`]); stars and verdicts use it.
    pub p_adjusted: Option<f64>,
    pub is_baseline: bool,
    /// The cell's jobs, in id order.
    pub job_ids: Vec<i64>,
    /// The provenance fields that change results ([`Provenance::comparable`])
    /// in which the cell's results differ: its seeds are then not samples
    /// of one distribution. Empty when they agree (or say nothing).
    pub provenance_differs: Vec<&'static str>,
}

impl Cell {
    /// Jobs in the cell; 0 when the sweep has no such combination.
    pub fn jobs(&self) -> usize {
        self.counts.total()
    }

    pub fn n(&self) -> usize {
        self.values.len()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Values of the row axes.
    pub key: Vec<AxisValue>,
    /// Values of the attribute axes (constant along the row).
    pub attributes: Vec<AxisValue>,
    /// The row's parameter count when every cell of the row shares it.
    pub params: Option<u64>,
    /// One cell per column.
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub sweeps: Vec<String>,
    pub datasets: Vec<String>,
    pub metric: Metric,
    pub agg: Agg,
    pub row_axes: Vec<Axis>,
    pub col_axes: Vec<Axis>,
    /// Axes that vary from row to row but are set by the row axes (the
    /// depth of each block type in the paper's Table 2): shown beside them.
    pub attribute_axes: Vec<Axis>,
    pub columns: Vec<Vec<AxisValue>>,
    pub rows: Vec<Row>,
    /// Parameters shown once per row (else in every cell) when extras are on.
    pub params_per_row: bool,
    pub show_params: bool,
    pub show_time: bool,
    pub baseline: Option<(Axis, AxisValue)>,
    /// How the p-values against the baseline are adjusted for their number.
    pub correction: Correction,
    /// Lines printed under the table: what is running, failed or left out.
    pub notes: Vec<String>,
}

impl Table {
    /// The caption: "quickstart on fashion-mnist: test error (%), median over seeds".
    pub fn title(&self) -> String {
        format!(
            "{} on {}: {}, {} over seeds",
            self.sweeps.join(" + "),
            self.datasets.join(" + "),
            self.metric.title(),
            self.agg
        )
    }

    /// Whether the cells show "± std" beside the aggregate.
    pub fn shows_spread(&self) -> bool {
        self.agg.has_spread()
    }
}

/// The axes the hyperparameters of a cell are compared on; a cell may
/// hold jobs that differ in the seed only.
const IDENTITY_AXES: [Axis; 10] = join(&[&NETWORK_AXES, &[Axis::Dataset, Axis::Params, Axis::Recipe, Axis::Engine]]);

/// Builds the table of `rows` (every job of one or more sweeps).
pub fn build(rows: &[ResultRow], options: &TableOptions) -> Result<Table, ReportError> {
    let mut notes = Vec::new();
    let sweeps = distinct(rows.iter().map(|r| r.sweep.clone()));
    let selected = select(rows, options, &mut notes)?;
    let values = AxisValues::new(&selected);

    let ChosenAxes { rows: row_axes, cols: col_axes, dependent } = choose_axes(&selected, &values, options)?;
    let attribute_axes = attributes(&selected, &values, &row_axes, &col_axes, &dependent, &mut notes);

    let key = |job: &ResultRow, axes: &[Axis]| axes.iter().map(|a| values.get(*a, job)).collect::<Vec<_>>();
    let row_keys = sorted_keys(&values, &row_axes, selected.iter().map(|j| key(j, &row_axes)));
    let col_keys = sorted_keys(&values, &col_axes, selected.iter().map(|j| key(j, &col_axes)));
    let row_index: HashMap<&Vec<AxisValue>, usize> = row_keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let col_index: HashMap<&Vec<AxisValue>, usize> = col_keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut grid: Vec<Vec<Vec<&ResultRow>>> = vec![vec![Vec::new(); col_keys.len()]; row_keys.len()];
    for job in &selected {
        grid[row_index[&key(job, &row_axes)]][col_index[&key(job, &col_axes)]].push(job);
    }

    let describe_cell = |r: usize, c: usize| describe(&values, &row_axes, &row_keys[r], &col_axes, &col_keys[c]);

    let mut table_rows = Vec::with_capacity(row_keys.len());
    for (r, row_key) in row_keys.iter().enumerate() {
        let mut cells = Vec::with_capacity(col_keys.len());
        for (c, jobs) in grid[r].iter().enumerate() {
            check_compatible(jobs, &values).map_err(|(axis, found)| ReportError::MixedCell {
                cell: describe_cell(r, c),
                axis: axis.name(),
                values: found,
            })?;
            cells.push(make_cell(jobs, options.metric, options.agg));
        }
        let first = grid[r].iter().flatten().next().expect("every row has a job");
        let attributes = attribute_axes.iter().map(|a| values.get(*a, first)).collect();
        let params = common(grid[r].iter().flatten().map(|j| j.params));
        table_rows.push(Row { key: row_key.clone(), attributes, params, cells });
    }

    let show_params = options.extras && options.metric != Metric::Params;
    let params_per_row = show_params && table_rows.iter().all(|r| r.params.is_some());
    let mut table = Table {
        sweeps,
        datasets: distinct(selected.iter().map(|j| j.config.dataset.name().to_string())),
        metric: options.metric,
        agg: options.agg,
        row_axes,
        col_axes,
        attribute_axes,
        columns: col_keys,
        rows: table_rows,
        params_per_row,
        show_params,
        show_time: options.extras && options.metric != Metric::EpochSeconds,
        baseline: None,
        correction: options.correction,
        notes: Vec::new(),
    };
    check_provenance(&table, &values, options.strict, &mut notes)?;
    if let Some((axis, text)) = &options.baseline {
        apply_baseline(&mut table, &values, *axis, text)?;
    }
    // Axis values as displayed (recipes by what differs) from here on.
    for row in &mut table.rows {
        relabel(&values, &table.row_axes, &mut row.key);
        relabel(&values, &table.attribute_axes, &mut row.attributes);
    }
    for column in &mut table.columns {
        relabel(&values, &table.col_axes, column);
    }
    if let Some((axis, value)) = &mut table.baseline {
        *value = values.display_value(*axis, value);
    }
    status_notes(&selected, &mut notes);
    table.notes = notes;
    Ok(table)
}

/// Keeps the jobs the options select, noting what was left out.
fn select<'a>(
    rows: &'a [ResultRow],
    options: &TableOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<&'a ResultRow>, ReportError> {
    if rows.is_empty() {
        return Err(ReportError::NoJobs { reason: "the sweep has no jobs".into() });
    }
    let mut selected: Vec<&ResultRow> = rows.iter().collect();
    if !options.include_out_of_spec {
        let before = selected.len();
        selected.retain(|r| r.in_spec);
        let dropped = before - selected.len();
        if dropped > 0 {
            notes.push(format!(
                "{dropped} job(s) no longer in the sweep's spec are left out (--include-dropped counts them)"
            ));
        }
        if selected.is_empty() {
            return Err(ReportError::NoJobs { reason: "no job of the sweep is in its current spec".into() });
        }
    }
    let selected = filter(selected, &options.filters)?;
    if selected.is_empty() {
        return Err(ReportError::NoJobs { reason: "no job matches every --where filter at once".into() });
    }
    Ok(selected)
}

/// The jobs with one of the values of each `--where` filter; a value no
/// job has is an error that lists the values there are.
pub fn filter<'a>(
    mut selected: Vec<&'a ResultRow>,
    filters: &[(Axis, Vec<String>)],
) -> Result<Vec<&'a ResultRow>, ReportError> {
    for (axis, texts) in filters {
        let present = AxisValues::new(&selected);
        let mut wanted = Vec::new();
        for text in texts {
            let value = axis.parse_value(text)?;
            if !selected.iter().any(|j| present.matches(*axis, j, &value)) {
                return Err(ReportError::NoSuchValue {
                    flag: "--where",
                    axis: axis.name(),
                    value: text.clone(),
                    valid: present.list(*axis, &selected),
                });
            }
            wanted.push(value);
        }
        selected.retain(|j| wanted.iter().any(|w| present.matches(*axis, j, w)));
    }
    Ok(selected)
}

/// Values of every axis, with each axis's order: numbers ascending, text in
/// order of first appearance (the spec's order, since jobs come by id).
struct AxisValues {
    order: HashMap<Axis, Vec<AxisValue>>,
    /// Full recipe key -> the short label of what differs.
    recipe_labels: HashMap<String, String>,
}

impl AxisValues {
    fn new(jobs: &[&ResultRow]) -> Self {
        let mut order = HashMap::new();
        for axis in Axis::ALL {
            let mut seen: Vec<AxisValue> = Vec::new();
            for job in jobs {
                let value = axis.value(job);
                if !seen.contains(&value) {
                    seen.push(value);
                }
            }
            if axis.numeric() {
                seen.sort();
            }
            order.insert(axis, seen);
        }
        let keys: Vec<String> = order[&Axis::Recipe].iter().map(|v| v.to_string()).collect();
        Self { order, recipe_labels: recipe_labels(&keys) }
    }

    fn get(&self, axis: Axis, job: &ResultRow) -> AxisValue {
        axis.value(job)
    }

    fn distinct(&self, axis: Axis) -> &[AxisValue] {
        &self.order[&axis]
    }

    fn rank(&self, axis: Axis, value: &AxisValue) -> usize {
        self.order[&axis].iter().position(|v| v == value).unwrap_or(usize::MAX)
    }

    fn display_value(&self, axis: Axis, value: &AxisValue) -> AxisValue {
        match (axis, value) {
            (Axis::Recipe, AxisValue::Text(key)) => {
                AxisValue::Text(self.recipe_labels.get(key).cloned().unwrap_or_else(|| key.clone()))
            }
            _ => value.clone(),
        }
    }

    fn display(&self, axis: Axis, value: &AxisValue) -> String {
        self.display_value(axis, value).to_string()
    }

    /// Whether the job has `wanted` on `axis`. A recipe matches when it has
    /// every `field=value` the user wrote ("epochs=200").
    fn matches(&self, axis: Axis, job: &ResultRow, wanted: &AxisValue) -> bool {
        let value = axis.value(job);
        match (axis, &value, wanted) {
            (Axis::Recipe, AxisValue::Text(key), AxisValue::Text(want)) => {
                let fields: Vec<&str> = key.split(' ').collect();
                want.split_whitespace().all(|w| fields.contains(&w))
            }
            _ => &value == wanted,
        }
    }

    fn list(&self, axis: Axis, jobs: &[&ResultRow]) -> String {
        let values = distinct(jobs.iter().map(|j| self.display(axis, &axis.value(j))));
        values.join(", ")
    }
}

fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The value every item shares, if they all share one.
fn common<T: PartialEq + Copy>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|x| x == first).then_some(first)
}

/// Whether `axis` is set by the values of `by` over these jobs.
fn determined_by(jobs: &[&ResultRow], by: &[Axis], axis: Axis) -> bool {
    let mut seen: HashMap<Vec<AxisValue>, AxisValue> = HashMap::new();
    for job in jobs {
        let key: Vec<AxisValue> = by.iter().map(|a| a.value(job)).collect();
        let value = axis.value(job);
        match seen.get(&key) {
            Some(existing) if *existing != value => return false,
            Some(_) => {}
            None => {
                seen.insert(key, value);
            }
        }
    }
    true
}

/// The row axes, the column axes, and the varying axes set by them.
struct ChosenAxes {
    rows: Vec<Axis>,
    cols: Vec<Axis>,
    dependent: Vec<Axis>,
}

/// Rows, columns, and the varying axes set by them.
fn choose_axes(jobs: &[&ResultRow], values: &AxisValues, options: &TableOptions) -> Result<ChosenAxes, ReportError> {
    let rows_given = options.rows.clone().unwrap_or_default();
    let cols_given = options.cols.clone().unwrap_or_default();
    if let Some(axis) = rows_given.iter().find(|a| cols_given.contains(a)) {
        return Err(ReportError::AxisTwice { axis: axis.name() });
    }
    // Blocks given as l (3x3 stacks) read better by l; other blocks by name.
    let stacks =
        values.distinct(Axis::Block).iter().all(|b| b.to_string().chars().all(|c| !c.is_ascii_digit() || c == '3'));
    let mut preference = vec![Axis::Block, Axis::L];
    if stacks {
        preference.reverse();
    }
    preference.extend([Axis::Depth, Axis::BlocksPerGroup, Axis::Width, Axis::Dropout, Axis::Dataset, Axis::Params]);
    // One varying recipe field reads the same as the recipe axis ("lr=0.05"),
    // which also says whatever else differs; two or more get an axis each,
    // to be laid out against each other, and the recipe axis then labels
    // only what they leave.
    let fields: Vec<Axis> = RECIPE_FIELD_AXES.into_iter().filter(|a| values.distinct(*a).len() > 1).collect();
    if fields.len() > 1 {
        preference.extend(fields);
    }
    preference.push(Axis::Recipe);
    // Last of the cell's axes, so that it makes the columns: one table
    // compares the engines cell by cell.
    preference.push(Axis::Engine);
    preference.push(Axis::Sweep);
    let varying: Vec<Axis> = preference.into_iter().filter(|a| values.distinct(*a).len() > 1).collect();

    let mut independent: Vec<Axis> = rows_given.iter().chain(&cols_given).copied().collect();
    let mut dependent = Vec::new();
    for axis in varying {
        if independent.contains(&axis) {
            continue;
        }
        if determined_by(jobs, &independent, axis) {
            dependent.push(axis);
        } else {
            independent.push(axis);
        }
    }
    let free: Vec<Axis> =
        independent.iter().copied().filter(|a| !rows_given.contains(a) && !cols_given.contains(a)).collect();
    let (rows, cols) = match (&options.rows, &options.cols) {
        (Some(rows), Some(cols)) => (rows.clone(), cols.clone()),
        (Some(rows), None) => (rows.clone(), free),
        (None, Some(cols)) => (free, cols.clone()),
        (None, None) => match free.split_last() {
            Some((last, rest)) if !rest.is_empty() => (rest.to_vec(), vec![*last]),
            _ => (free, Vec::new()),
        },
    };
    Ok(ChosenAxes { rows, cols, dependent })
}

/// The dependent axes shown beside the row axes, minus redundant ones:
/// block and l say the same of 3x3 stacks, depth and N the same at fixed l.
fn attributes(
    jobs: &[&ResultRow],
    values: &AxisValues,
    rows: &[Axis],
    cols: &[Axis],
    dependent: &[Axis],
    notes: &mut Vec<String>,
) -> Vec<Axis> {
    let named = |axis: Axis| rows.contains(&axis) || cols.contains(&axis);
    // Block and l say the same of one block type; N follows from depth;
    // the recipe is said by the recipe fields named when they set it.
    let named_fields: Vec<Axis> = RECIPE_FIELD_AXES.into_iter().filter(|a| named(*a)).collect();
    let said_by_named = |axis: Axis| match axis {
        Axis::L => named(Axis::Block),
        Axis::Block => named(Axis::L),
        Axis::BlocksPerGroup => named(Axis::Depth),
        Axis::Recipe => !named_fields.is_empty() && determined_by(jobs, &named_fields, Axis::Recipe),
        _ => false,
    };
    let mut shown: Vec<Axis> = Vec::new();
    for axis in dependent.iter().copied() {
        if axis == Axis::Sweep || said_by_named(axis) {
            continue;
        }
        if determined_by(jobs, rows, axis) {
            shown.push(axis);
        } else if !cols.is_empty() {
            let list: Vec<String> = values.distinct(axis).iter().map(|v| values.display(axis, v)).collect();
            notes.push(format!(
                "{} also varies ({}) with the columns: name it in --rows or --cols to see it",
                axis.name(),
                list.join(", ")
            ));
        }
    }
    let mut pruned: Vec<Axis> = Vec::new();
    for axis in shown.iter().copied() {
        let redundant = match axis {
            Axis::L => pruned.contains(&Axis::Block),
            Axis::Block => pruned.contains(&Axis::L),
            Axis::BlocksPerGroup => shown.contains(&Axis::Depth),
            _ => false,
        };
        if !redundant {
            pruned.push(axis);
        }
    }
    pruned
}

/// Distinct keys in axis order (row by row, lexicographic over the axes).
fn sorted_keys(values: &AxisValues, axes: &[Axis], keys: impl Iterator<Item = Vec<AxisValue>>) -> Vec<Vec<AxisValue>> {
    let unique: BTreeSet<Vec<usize>> =
        keys.map(|k| axes.iter().zip(&k).map(|(a, v)| values.rank(*a, v)).collect()).collect();
    unique
        .into_iter()
        .map(|ranks| axes.iter().zip(ranks).map(|(a, r)| values.distinct(*a)[r].clone()).collect())
        .collect()
}

/// A cell may only pool jobs that differ in their seed; else the first
/// axis on which they differ and its values.
fn check_compatible(jobs: &[&ResultRow], values: &AxisValues) -> Result<(), (Axis, String)> {
    for axis in IDENTITY_AXES {
        let found = distinct(jobs.iter().map(|j| axis.value(j)));
        if found.len() > 1 {
            let list: Vec<String> = found.iter().map(|v| values.display(axis, v)).collect();
            return Err((axis, list.join(", ")));
        }
    }
    Ok(())
}

fn make_cell(jobs: &[&ResultRow], metric: Metric, agg: Agg) -> Cell {
    let mut counts = StatusCounts::default();
    for job in jobs {
        counts.add(job.status);
    }
    let (seeds, values): (Vec<u64>, Vec<f64>) =
        jobs.iter().filter_map(|j| metric.value(j).map(|v| (j.config.seed, v))).unzip();
    let (interval, interval_clipped) = match stats::mean_interval(&values, stats::LEVEL) {
        Some(interval) => {
            let (lo, hi) = metric.range();
            let (clipped, cut) = interval.clipped(lo, hi);
            (Some(clipped), cut)
        }
        None => (None, false),
    };
    let seconds: Vec<f64> =
        jobs.iter().filter(|j| j.status == JobStatus::Succeeded).filter_map(|j| epoch_seconds(j)).collect();
    Cell {
        value: agg.apply(&values),
        spread: if agg.has_spread() { super::aggregate::std_dev(&values) } else { None },
        interval,
        interval_clipped,
        values,
        seeds,
        counts,
        params: common(jobs.iter().map(|j| j.params)),
        epoch_seconds: median(&seconds),
        delta: None,
        comparison: None,
        p_adjusted: None,
        is_baseline: false,
        job_ids: jobs.iter().map(|j| j.job_id).collect(),
        provenance_differs: provenance_differences(jobs, metric),
    }
}

fn apply_baseline(table: &mut Table, values: &AxisValues, axis: Axis, text: &str) -> Result<(), ReportError> {
    let wanted = axis.parse_value(text)?;
    let (in_rows, position) =
        match (table.row_axes.iter().position(|a| *a == axis), table.col_axes.iter().position(|a| *a == axis)) {
            (Some(i), _) => (true, i),
            (None, Some(i)) => (false, i),
            (None, None) => {
                return Err(ReportError::BaselineAxis {
                    axis: axis.name(),
                    rows: names(&table.row_axes),
                    cols: names(&table.col_axes),
                });
            }
        };
    let present: Vec<&AxisValue> = if in_rows {
        table.rows.iter().map(|r| &r.key[position]).collect()
    } else {
        table.columns.iter().map(|c| &c[position]).collect()
    };
    let Some(base) = present.iter().find(|v| match (axis, v, &wanted) {
        (Axis::Recipe, AxisValue::Text(key), AxisValue::Text(want)) => {
            want.split_whitespace().all(|w| key.split(' ').any(|f| f == w))
        }
        _ => **v == &wanted,
    }) else {
        return Err(ReportError::NoSuchValue {
            flag: "--baseline",
            axis: axis.name(),
            value: text.to_string(),
            valid: distinct(present.iter().map(|v| values.display(axis, v))).join(", "),
        });
    };
    let base = (*base).clone();
    let row_index: HashMap<Vec<AxisValue>, usize> =
        table.rows.iter().enumerate().map(|(i, r)| (r.key.clone(), i)).collect();
    let col_index: HashMap<Vec<AxisValue>, usize> =
        table.columns.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
    let mut deltas = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let (mut row_key, mut col_key) = (row.key.clone(), table.columns[c].clone());
            if in_rows {
                row_key[position] = base.clone();
            } else {
                col_key[position] = base.clone();
            }
            let target = row_index.get(&row_key).zip(col_index.get(&col_key));
            let is_baseline = target == Some((&r, &c));
            let base_cell = target.map(|(br, bc)| &table.rows[*br].cells[*bc]);
            let delta = base_cell.and_then(|b| b.value).zip(cell.value).map(|(base_value, value)| value - base_value);
            let comparison = base_cell.filter(|_| !is_baseline).and_then(|b| compare_cells(cell, b));
            deltas.push((r, c, delta, comparison, is_baseline));
        }
    }
    let raw: Vec<f64> = deltas.iter().filter_map(|d| d.3.map(|c| c.p_value)).collect();
    let mut adjusted = table.correction.adjust(&raw).into_iter();
    for (r, c, delta, comparison, is_baseline) in deltas {
        let cell = &mut table.rows[r].cells[c];
        cell.delta = delta;
        cell.comparison = comparison;
        cell.p_adjusted = comparison.and_then(|_| adjusted.next());
        cell.is_baseline = is_baseline;
    }
    table.baseline = Some((axis, base));
    Ok(())
}

/// A cell as errors and notes name it: "block=B(3,3), width=2".
fn describe(values: &AxisValues, row_axes: &[Axis], row: &[AxisValue], col_axes: &[Axis], col: &[AxisValue]) -> String {
    let parts: Vec<String> = row_axes
        .iter()
        .zip(row)
        .chain(col_axes.iter().zip(col))
        .map(|(axis, value)| format!("{}={}", axis.name(), values.display(*axis, value)))
        .collect();
    if parts.is_empty() { "the only cell".to_string() } else { parts.join(", ") }
}

/// A cell against its baseline: seed by seed when they share two seeds or
/// more (common random numbers, see [`stats::paired`]), else by the
/// seeds' means.
fn compare_cells(cell: &Cell, base: &Cell) -> Option<Comparison> {
    let pairs = |c: &Cell| c.seeds.iter().copied().zip(c.values.iter().copied()).collect::<Vec<_>>();
    stats::paired(&pairs(cell), &pairs(base), stats::LEVEL)
        .or_else(|| stats::compare(&cell.values, &base.values, stats::LEVEL))
}

impl Table {
    /// How many cells were compared with the baseline.
    pub fn comparisons(&self) -> usize {
        self.rows.iter().flat_map(|r| &r.cells).filter(|c| c.comparison.is_some()).count()
    }
}

fn names(axes: &[Axis]) -> String {
    if axes.is_empty() { "none".to_string() } else { axes.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ") }
}

fn relabel(values: &AxisValues, axes: &[Axis], key: &mut [AxisValue]) {
    for (axis, value) in axes.iter().zip(key.iter_mut()) {
        *value = values.display_value(*axis, value);
    }
}

/// Notes on jobs without a result: how many are still to come, and why
/// failed ones failed.
fn status_notes(jobs: &[&ResultRow], notes: &mut Vec<String>) {
    let mut counts = StatusCounts::default();
    for job in jobs {
        counts.add(job.status);
    }
    if counts.succeeded < counts.total() {
        notes.insert(
            0,
            format!("{} of {} jobs have a result; {}", counts.succeeded, counts.total(), counts.unfinished()),
        );
    }
    const SHOWN: usize = 3;
    let failed: Vec<&&ResultRow> = jobs.iter().filter(|j| j.status == JobStatus::Failed).collect();
    for job in failed.iter().take(SHOWN) {
        let reason = job.last_error.as_deref().and_then(|e| e.lines().next()).unwrap_or("no error recorded");
        notes.push(format!("job {} (seed {}) failed: {reason}", job.job_id, job.config.seed));
    }
    if failed.len() > SHOWN {
        notes.push(format!("... and {} more failed jobs (widesweep export lists them)", failed.len() - SHOWN));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_on_commas_outside_parentheses() {
        assert_eq!(
            parse_filter("block=B(3,3), B(1,3,1)").unwrap(),
            (Axis::Block, vec!["B(3,3)".to_string(), "B(1,3,1)".to_string()])
        );
        assert_eq!(parse_filter("k=4,10").unwrap(), (Axis::Width, vec!["4".to_string(), "10".to_string()]));
        assert!(parse_filter("width").unwrap_err().to_string().contains("AXIS=VALUE"));
        assert!(parse_filter("width=").is_err());
        assert!(parse_filter("depht=16").unwrap_err().to_string().starts_with("unknown axis depht"));
    }
}
