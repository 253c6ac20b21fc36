//! `widesweep sql`: one read-only statement against the database.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use widesweep_coordinator::report::Format;
use widesweep_coordinator::report::render::{QueryWriter, render_query};
use widesweep_coordinator::report::sql::{DEFAULT_MAX_ROWS, SqlError, cut_note, query, query_into, role_risks};
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
    /// Rows printed at most; the output says when the result had more.
    #[arg(long, default_value_t = DEFAULT_MAX_ROWS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows: u64,
    /// Run even when the PostgreSQL role can do more than read (a
    /// superuser, replication, write privileges on widesweep's tables):
    /// refused by default, since a read-only transaction does not stop
    /// all of what such a role can do.
    #[arg(long)]
    pub privileged: bool,
}

pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    if !args.privileged {
        let risks = role_risks(&args.db).await?;
        anyhow::ensure!(
            risks.is_empty(),
            "the database role of --db {}; a read-only transaction does not stop all of that. \
             Connect as a role that can only read (docs/results.md, \"A read-only role\"), \
             or pass --privileged to run the statement anyway",
            risks.join(", ")
        );
    }
    let timeout = Duration::from_secs(args.timeout);
    let max_rows = usize::try_from(args.max_rows).unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    // CSV and JSON go out as the rows arrive; the grid formats need every
    // row for their widths, at most --max-rows of them.
    let Some(mut writer) = QueryWriter::new(args.format, std::io::BufWriter::new(stdout.lock())) else {
        let result = query(&args.db, &args.statement, timeout, max_rows).await?;
        print!("{}", render_query(&result, args.format));
        return Ok(ExitCode::SUCCESS);
    };
    let streamed = match query_into(&args.db, &args.statement, timeout, max_rows, &mut writer).await {
        Ok(streamed) => streamed,
        Err(error) if error.is_broken_pipe() => return Ok(ExitCode::SUCCESS),
        Err(error) => {
            // What was printed stays (a partial CSV says where it stopped).
            drop(writer);
            return Err(error.into());
        }
    };
    match writer.finish().map_err(SqlError::from) {
        Err(error) if error.is_broken_pipe() => return Ok(ExitCode::SUCCESS),
        other => other?.flush()?,
    }
    if let Some(max_rows) = streamed.cut_at {
        // Standard output stays CSV or JSON that a program can read.
        eprintln!("widesweep sql: {}", cut_note(max_rows));
    }
    Ok(ExitCode::SUCCESS)
}
