//! `widesweep sql`: one read-only statement against the database.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use widesweep_coordinator::report::Format;
use widesweep_coordinator::report::render::render_query;
use widesweep_coordinator::report::sql::query;
use widesweep_coordinator::store::DEFAULT_DB_URL;

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// One statement starting with SELECT, WITH, VALUES or EXPLAIN (also TABLE and SHOW on PostgreSQL).
    pub statement: String,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB (opened read-only).
    #[arg(long, env = "WIDESWEEP_DB", default_value = DEFAULT_DB_URL)]
    pub db: String,
    /// text, markdown, csv, json or latex.
    #[arg(long, default_value = "text")]
    pub format: Format,
    /// Seconds after which the statement is stopped.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let result = query(&args.db, &args.statement, Duration::from_secs(args.timeout)).await?;
    print!("{}", render_query(&result, args.format));
    Ok(ExitCode::SUCCESS)
}
