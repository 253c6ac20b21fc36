//! Where `table`, `export` and `plot` read a sweep's results: from a
//! coordinator (the `ListResults` rpc, the default) or straight from a
//! database opened read-only (`--db`). Both give the same rows; the
//! report module aggregates them on this side.

use anyhow::Context;
use clap::Args;
use tokio_stream::StreamExt;
use widesweep_coordinator::report::Axis;
use widesweep_coordinator::service::{job_epoch_from_proto, result_row_from_proto};
use widesweep_coordinator::store::{self, JobEpoch, ResultRow};
use widesweep_proto::v1 as pb;

use crate::connection::{CoordinatorArgs, explain};

#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// Read this database directly, read-only, instead of asking a coordinator:
    /// sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

/// Axes written "block,width"; empty for none.
#[derive(Clone, Debug)]
pub struct AxisList(pub Vec<Axis>);

pub fn parse_axes(text: &str) -> Result<AxisList, widesweep_coordinator::report::ReportError> {
    Axis::parse_list(text).map(AxisList)
}

/// Every job of the sweeps, in the order named, and with `epochs` every
/// recorded epoch of theirs.
pub async fn fetch(
    source: &SourceArgs,
    sweeps: &[String],
    epochs: bool,
) -> anyhow::Result<(Vec<ResultRow>, Vec<JobEpoch>)> {
    let mut rows = Vec::new();
    let mut all_epochs = Vec::new();
    match &source.db {
        Some(url) => {
            let store = store::open_read_only(url).await.with_context(|| format!("opening {url} read-only"))?;
            for sweep in sweeps {
                rows.extend(store.sweep_results(sweep).await?);
                if epochs {
                    all_epochs.extend(store.sweep_epochs(sweep).await?);
                }
            }
        }
        None => {
            let url = &source.coordinator.coordinator;
            let mut clients = source.coordinator.connect()?;
            for sweep in sweeps {
                let request = pb::ListResultsRequest { sweep: sweep.clone(), include_epochs: epochs };
                let mut pages = clients.sweeps.list_results(request).await.map_err(|s| explain(s, url))?.into_inner();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|s| explain(s, url))?;
                    for job in page.jobs {
                        rows.push(result_row_from_proto(job).map_err(|s| explain(s, url))?);
                    }
                    for epoch in page.epochs {
                        all_epochs.push(job_epoch_from_proto(epoch).map_err(|s| explain(s, url))?);
                    }
                }
            }
        }
    }
    Ok((rows, all_epochs))
}
