//! `widesweep plot`: learning curves, or a metric against an axis, as SVG or PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use widesweep_coordinator::report::Axis;
use widesweep_coordinator::report::plot::{PlotKind, PlotOptions, plot_data, write_plot};
use widesweep_coordinator::report::table::parse_filter;

use super::results::{AxisList, SourceArgs, fetch, parse_axes};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Sweep names or ids.
    #[arg(required = true)]
    pub sweeps: Vec<String>,
    /// curves (a per-epoch metric, one line per cell) or metric-vs-axis (one line per value of --lines).
    #[arg(long, default_value = "curves")]
    pub kind: PlotKind,
    /// The x axis of metric-vs-axis, e.g. width; chosen from what varies when left out.
    #[arg(long, value_name = "AXIS")]
    pub axis: Option<Axis>,
    /// metric-vs-axis: one line per value of these axes, e.g. depth.
    #[arg(long, value_name = "AXES", value_parser = parse_axes)]
    pub lines: Option<AxisList>,
    /// curves: test_error, train_error, test_loss or train_loss; metric-vs-axis: test_error,
    /// best_test_error, train_loss, params, epoch_seconds or gpu_hours.
    #[arg(long, default_value = "test_error")]
    pub metric: String,
    /// Keep only jobs with one of these values, e.g. --where dropout=0 (repeatable).
    #[arg(long = "where", value_name = "AXIS=VALUES")]
    pub filters: Vec<String>,
    /// Also count jobs that a resubmitted spec no longer contains.
    #[arg(long)]
    pub include_dropped: bool,
    /// The image: FILE.svg or FILE.png.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(200..=8192))]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 640, value_parser = clap::value_parser!(u32).range(150..=8192))]
    pub height: u32,
    #[command(flatten)]
    pub source: SourceArgs,
}

impl PlotArgs {
    fn options(&self) -> anyhow::Result<PlotOptions> {
        let mut options = PlotOptions {
            kind: self.kind,
            axis: self.axis,
            lines: self.lines.clone().map(|l| l.0),
            filters: self.filters.iter().map(|f| parse_filter(f)).collect::<Result<_, _>>()?,
            include_out_of_spec: self.include_dropped,
            width: self.width,
            height: self.height,
            ..PlotOptions::default()
        };
        match self.kind {
            PlotKind::Curves => options.curve = self.metric.parse()?,
            PlotKind::MetricVsAxis => options.metric = self.metric.parse()?,
        }
        Ok(options)
    }
}

pub async fn run(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let (rows, epochs) = fetch(&args.source, &args.sweeps, args.kind == PlotKind::Curves).await?;
    let data = plot_data(&rows, &epochs, &options)?;
    write_plot(&data, &args.out, args.width, args.height)?;
    let lines = data.series.len();
    eprintln!("wrote {} ({lines} line{}): {}", args.out.display(), if lines == 1 { "" } else { "s" }, data.title);
    Ok(ExitCode::SUCCESS)
}
