//! `widesweep sql`: one user statement, read-only, with a timeout and a cap
//! on the rows it returns, so that a typo cannot damage a running sweep.
//!
//! The guarantees come from the database, never from parsing SQL here (a
//! hand-written lexer that read `a$$` as a dollar quote once let PostgreSQL
//! run a `DELETE` hidden behind it):
//! 1. One statement, as the database parses it. PostgreSQL receives the text
//!    as a prepared statement (the extended protocol), which the server
//!    refuses when it holds more than one command. SQLite compiles the first
//!    statement and the text is refused when its parser finds another one in
//!    the tail; only the compiled statement's own text is then run.
//! 2. Nothing written. SQLite refuses a statement that `sqlite3_stmt_readonly`
//!    says writes, on a file opened read-only (`mode=ro`) with `PRAGMA
//!    query_only`; PostgreSQL runs it in a `READ ONLY` transaction of a
//!    session whose default is read-only, so a data-modifying `WITH` or
//!    `EXPLAIN ANALYZE DELETE` fails. Both transactions are rolled back.
//! 3. A statement timeout: `statement_timeout` on PostgreSQL, a progress
//!    handler that interrupts the statement on SQLite.
//! 4. At most `max_rows` rows, streamed: reading stops at the cap, and the
//!    result says that it was cut.
//!
//! Before any of that, the first keyword must read (SELECT, WITH, VALUES,
//! EXPLAIN; TABLE and SHOW on PostgreSQL). It gives INSERT or PRAGMA a clear
//! message, and refuses commands that a read-only transaction still allows
//! but that are no queries (`COPY ... TO` a server file, `SET`, `DO`).

mod postgres;
mod sqlite;

use std::time::Duration;

use futures::{Stream, TryStreamExt};

use crate::store::Backend;

/// The default of `widesweep sql --max-rows`.
pub const DEFAULT_MAX_ROWS: usize = 10_000;

/// What a user's statement may start with, per backend.
const READ_KEYWORDS: [&str; 4] = ["SELECT", "WITH", "VALUES", "EXPLAIN"];
const POSTGRES_READ_KEYWORDS: [&str; 2] = ["TABLE", "SHOW"];

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("no SQL statement given")]
    Empty,
    #[error(
        "only one statement is accepted, and the database found more than one in this text{}: run them one at a time",
        .at.map(|at| format!(" (the first ends at byte {at})")).unwrap_or_default()
    )]
    Multiple { at: Option<usize> },
    #[error(
        "{keyword} statements are refused: widesweep sql is read-only and accepts statements starting with {allowed}{hint}"
    )]
    Refused { keyword: String, allowed: String, hint: &'static str },
    #[error("widesweep sql is read-only, and this statement writes: {reason}")]
    Writes { reason: String },
    #[error("the statement ran longer than {seconds} s and was stopped (raise --timeout)")]
    Timeout { seconds: u64 },
    #[error(
        "column {column:?} has type {type_name}, which widesweep sql does not decode: cast it to text in the statement (`SELECT <expression>::text AS {column}`)"
    )]
    UnsupportedType { column: String, type_name: String },
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (e.g. sqlite://widesweep.db) or postgres://USER@HOST/DB"
    )]
    BadUrl(String),
    #[error("no database file at {0}: check the path, or the coordinator's --db")]
    NoDatabaseFile(String),
    #[error("writing the result: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Database(String),
}

impl SqlError {
    /// Whether the reader of a streamed result went away (`widesweep sql ... | head`):
    /// not a failure worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, SqlError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<sqlx::Error> for SqlError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(e) => SqlError::Database(e.message().to_string()),
            _ => SqlError::Database(error.to_string()),
        }
    }
}

/// One value of a result, typed as the database typed it.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    /// Hexadecimal digits of a blob.
    Blob(String),
}

impl SqlValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SqlValue::Null => serde_json::Value::Null,
            SqlValue::Int(v) => (*v).into(),
            SqlValue::Float(v) => serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into),
            SqlValue::Bool(v) => (*v).into(),
            SqlValue::Text(v) | SqlValue::Blob(v) => v.clone().into(),
        }
    }

    /// Whether the value reads as a number (right-aligned in tables).
    pub fn is_number(&self) -> bool {
        matches!(self, SqlValue::Int(_) | SqlValue::Float(_))
    }
}

impl std::fmt::Display for SqlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlValue::Null => Ok(()),
            SqlValue::Int(v) => write!(f, "{v}"),
            SqlValue::Float(v) => write!(f, "{v}"),
            SqlValue::Bool(v) => write!(f, "{v}"),
            SqlValue::Text(v) => f.write_str(v),
            SqlValue::Blob(v) => write!(f, "x'{v}'"),
        }
    }
}

/// Where the rows of a result go, as the database sends them: a
/// [`QueryResult`] keeps them, a CSV or JSON writer prints them.
pub trait RowSink {
    /// The result's column names, once, before any row.
    fn columns(&mut self, names: &[String]) -> std::io::Result<()>;
    fn row(&mut self, values: Vec<SqlValue>) -> std::io::Result<()>;
}

/// How much of a result was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streamed {
    pub rows: usize,
    /// The cap, when the result had more rows than it.
    pub cut_at: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
    /// The cap, when the result had more rows than it.
    pub cut_at: Option<usize>,
}

impl RowSink for QueryResult {
    fn columns(&mut self, names: &[String]) -> std::io::Result<()> {
        self.columns = names.to_vec();
        Ok(())
    }

    fn row(&mut self, values: Vec<SqlValue>) -> std::io::Result<()> {
        self.rows.push(values);
        Ok(())
    }
}

/// What a cut result says, wherever it is printed.
pub fn cut_note(max_rows: usize) -> String {
    format!(
        "cut at {max_rows} row{}: the result has more; raise --max-rows or page with LIMIT and OFFSET",
        if max_rows == 1 { "" } else { "s" }
    )
}

/// The backend a URL names.
pub fn backend_of(url: &str) -> Result<Backend, SqlError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(SqlError::BadUrl(url.to_string()))
    }
}

/// What the database role of `url` may do beyond reading (see
/// `widesweep sql --privileged`); always empty on SQLite, whose file is
/// opened read-only.
pub async fn role_risks(url: &str) -> Result<Vec<String>, SqlError> {
    match backend_of(url)? {
        Backend::Sqlite => Ok(Vec::new()),
        Backend::Postgres => postgres::role_risks(url).await,
    }
}

/// Runs one read-only statement against the database at `url` and keeps
/// its first `max_rows` rows.
pub async fn query(url: &str, sql: &str, timeout: Duration, max_rows: usize) -> Result<QueryResult, SqlError> {
    let mut result = QueryResult::default();
    let streamed = query_into(url, sql, timeout, max_rows, &mut result).await?;
    result.cut_at = streamed.cut_at;
    Ok(result)
}

/// Runs one read-only statement against the database at `url`, handing
/// `sink` its columns and then each of its first `max_rows` rows as they
/// arrive.
pub async fn query_into(
    url: &str,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    let backend = backend_of(url)?;
    check_keyword(sql, backend)?;
    match backend {
        Backend::Sqlite => sqlite::query(url, sql, timeout, max_rows, sink).await,
        Backend::Postgres => postgres::query(url, sql, timeout, max_rows, sink).await,
    }
}

/// Hands `sink` the columns, then rows until the stream ends or `max_rows`
/// have gone; one row more is read to tell a cut result from one that
/// happens to have exactly `max_rows`.
async fn stream_rows<R>(
    columns: &[String],
    mut rows: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
    decode: impl Fn(&R) -> Result<Vec<SqlValue>, SqlError>,
    classify: impl Fn(sqlx::Error) -> SqlError,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    sink.columns(columns)?;
    let mut count = 0;
    while let Some(row) = rows.try_next().await.map_err(&classify)? {
        if count == max_rows {
            return Ok(Streamed { rows: count, cut_at: Some(max_rows) });
        }
        sink.row(decode(&row)?)?;
        count += 1;
    }
    Ok(Streamed { rows: count, cut_at: None })
}

/// Checks that `sql` starts with a reading keyword. Only a first line of
/// defence, for clear messages: the database decides what the text holds.
fn check_keyword(sql: &str, backend: Backend) -> Result<(), SqlError> {
    let Some(start) = first_token(sql, backend) else {
        return Err(SqlError::Empty);
    };
    let statement = &sql[start..];
    let keyword: String = statement
        .trim_start_matches('(')
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_ascii_uppercase();
    let allowed: Vec<&str> = match backend {
        Backend::Sqlite => READ_KEYWORDS.to_vec(),
        Backend::Postgres => READ_KEYWORDS.iter().chain(&POSTGRES_READ_KEYWORDS).copied().collect(),
    };
    if allowed.contains(&keyword.as_str()) {
        return Ok(());
    }
    let hint = match keyword.as_str() {
        "PRAGMA" => " (read a pragma through its table-valued function, e.g. SELECT * FROM pragma_table_info('jobs'))",
        _ => "",
    };
    Err(SqlError::Refused {
        keyword: if keyword.is_empty() { statement.chars().take(10).collect() } else { keyword },
        allowed: allowed.join(", "),
        hint,
    })
}

/// Byte offset of the first token (not whitespace or comment) of `text`.
fn first_token(text: &str, backend: Backend) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_whitespace() => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment_end(bytes, i, backend),
            _ => return Some(i),
        }
    }
    None
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |p| from + p + 1)
}

/// End of a block comment starting at `from`; PostgreSQL nests them.
fn block_comment_end(bytes: &[u8], from: usize, backend: Backend) -> usize {
    let mut depth = 0;
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
            if backend == Backend::Sqlite && depth > 1 {
                depth = 1;
            }
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

    #[test]
    fn reading_keywords_pass_after_comments() {
        for backend in BOTH {
            for sql in [
                "SELECT 1",
                "  select * from jobs;  ",
                "-- a comment\nWITH x AS (SELECT 1) SELECT * FROM x; -- done",
                "/* lead */ (SELECT 1) UNION (SELECT 2)",
                "VALUES (1), (2)",
                "EXPLAIN SELECT 1",
            ] {
                assert!(check_keyword(sql, backend).is_ok(), "{backend:?}: {sql}");
            }
        }
        assert!(check_keyword("/* a /* nested; */ comment; */ SELECT 1", Backend::Postgres).is_ok());
        assert!(check_keyword("TABLE jobs", Backend::Postgres).is_ok());
        assert!(check_keyword("TABLE jobs", Backend::Sqlite).is_err());
    }

    #[test]
    fn other_keywords_are_refused_with_what_would_pass() {
        for backend in BOTH {
            for sql in [
                "INSERT INTO sweeps (name) VALUES ('x')",
                "update jobs set status = 'failed'",
                "DELETE FROM jobs",
                "DROP TABLE jobs",
                "ATTACH DATABASE 'other.db' AS other",
                "PRAGMA journal_mode = DELETE",
                "CREATE TABLE t (x INTEGER)",
                "BEGIN",
                "COMMIT",
                "SET default_transaction_read_only = off",
                "COPY jobs TO '/tmp/jobs.csv'",
                "DO $$ BEGIN DELETE FROM jobs; END $$",
                "/* SELECT */ DELETE FROM jobs",
            ] {
                let error = check_keyword(sql, backend).unwrap_err();
                assert!(matches!(error, SqlError::Refused { .. }), "{backend:?}: {sql}: {error}");
                assert!(error.to_string().contains("starting with SELECT, WITH, VALUES, EXPLAIN"), "{error}");
            }
            assert!(matches!(check_keyword(" -- nothing\n ", backend), Err(SqlError::Empty)));
        }
        let pragma = check_keyword("PRAGMA table_info(jobs)", Backend::Sqlite).unwrap_err().to_string();
        assert!(pragma.contains("pragma_table_info"), "{pragma}");
    }

    #[test]
    fn a_cut_result_says_how_to_get_the_rest() {
        let note = cut_note(10_000);
        assert!(note.contains("cut at 10000 rows") && note.contains("--max-rows") && note.contains("LIMIT"), "{note}");
        assert!(cut_note(1).starts_with("cut at 1 row:"));
    }
}
