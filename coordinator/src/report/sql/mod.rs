//! `widesweep sql`: one user statement, read-only, with a timeout, so that
//! a typo cannot damage a running sweep.
//!
//! Three layers, each enough on its own for the common mistakes:
//! 1. The text must be one statement (a lexer that knows strings, quoted
//!    identifiers, comments and dollar quotes finds the `;`s) whose first
//!    keyword reads: SELECT, WITH, VALUES, EXPLAIN (and TABLE, SHOW on
//!    PostgreSQL). INSERT, UPDATE, DELETE, DROP, ATTACH, PRAGMA, ... are
//!    refused before anything reaches the database.
//! 2. The connection cannot write: SQLite opens the file read-only
//!    (`mode=ro`) with `PRAGMA query_only`; PostgreSQL runs the statement in
//!    a `READ ONLY` transaction of a session whose default is read-only, so a
//!    data-modifying `WITH` or `EXPLAIN ANALYZE DELETE` fails there.
//! 3. A statement timeout: `statement_timeout` on PostgreSQL, a progress
//!    handler that interrupts the statement on SQLite.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, Connection, Row, TypeInfo, ValueRef};

use crate::store::Backend;

/// What a user's statement may start with, per backend.
const READ_KEYWORDS: [&str; 4] = ["SELECT", "WITH", "VALUES", "EXPLAIN"];
const POSTGRES_READ_KEYWORDS: [&str; 2] = ["TABLE", "SHOW"];

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("no SQL statement given")]
    Empty,
    #[error(
        "only one statement is accepted, and this text has more after the first `;` (at byte {at}): \
         run them one at a time"
    )]
    Multiple { at: usize },
    #[error(
        "{keyword} statements are refused: widesweep sql is read-only and accepts statements starting with {allowed}{hint}"
    )]
    Refused { keyword: String, allowed: String, hint: &'static str },
    #[error("the statement ran longer than {seconds} s and was stopped (raise --timeout)")]
    Timeout { seconds: u64 },
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (e.g. sqlite://widesweep.db) or postgres://USER@HOST/DB"
    )]
    BadUrl(String),
    #[error("no database file at {0}: check the path, or the coordinator's --db")]
    NoDatabaseFile(String),
    #[error("{0}")]
    Database(String),
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

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
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

/// Runs one read-only statement against the database at `url`.
pub async fn query(url: &str, sql: &str, timeout: Duration) -> Result<QueryResult, SqlError> {
    let backend = backend_of(url)?;
    let statement = check_statement(sql, backend)?;
    match backend {
        Backend::Sqlite => query_sqlite(url, statement, timeout).await,
        Backend::Postgres => query_postgres(url, statement, timeout).await,
    }
}

async fn query_sqlite(url: &str, statement: &str, timeout: Duration) -> Result<QueryResult, SqlError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|_| SqlError::BadUrl(url.to_string()))?
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    let path = options.get_filename();
    if !path.exists() {
        return Err(SqlError::NoDatabaseFile(path.display().to_string()));
    }
    let mut conn = SqliteConnection::connect_with(&options).await?;
    sqlx::query("PRAGMA query_only = ON").execute(&mut conn).await?;
    // SQLite has no statement timeout: a progress handler, called every
    // few thousand virtual-machine steps, interrupts the statement.
    let deadline = Instant::now() + timeout;
    conn.lock_handle().await?.set_progress_handler(10_000, move || Instant::now() < deadline);
    let rows = sqlx::raw_sql(statement).fetch_all(&mut conn).await;
    let _ = conn.close().await;
    let rows = rows.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.message().contains("interrupted") => {
            SqlError::Timeout { seconds: timeout.as_secs().max(1) }
        }
        _ => e.into(),
    })?;
    let columns = rows.first().map(|r| r.columns().iter().map(|c| c.name().to_string()).collect()).unwrap_or_default();
    let rows = rows.iter().map(sqlite_values).collect::<Result<_, _>>()?;
    Ok(QueryResult { columns, rows })
}

fn sqlite_values(row: &SqliteRow) -> Result<Vec<SqlValue>, SqlError> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(SqlValue::Null);
            }
            // SQLite types values, not columns: ask the value.
            let value = match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => SqlValue::Int(row.try_get_unchecked(i)?),
                "REAL" => SqlValue::Float(row.try_get_unchecked(i)?),
                "BLOB" => SqlValue::Blob(hex::encode(row.try_get_unchecked::<Vec<u8>, _>(i)?)),
                _ => SqlValue::Text(row.try_get_unchecked(i)?),
            };
            Ok(value)
        })
        .collect()
}

async fn query_postgres(url: &str, statement: &str, timeout: Duration) -> Result<QueryResult, SqlError> {
    let millis = timeout.as_millis().max(1).to_string();
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| SqlError::BadUrl(url.to_string()))?
        .options([("default_transaction_read_only", "on"), ("statement_timeout", millis.as_str())]);
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::raw_sql("BEGIN TRANSACTION READ ONLY").execute(&mut conn).await?;
    // The simple-query protocol returns every value as text, so any type
    // (numeric, timestamp, json...) prints without a decoder of its own.
    let rows =
        tokio::time::timeout(timeout + Duration::from_secs(5), sqlx::raw_sql(statement).fetch_all(&mut conn)).await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(_) => return Err(SqlError::Timeout { seconds: timeout.as_secs().max(1) }),
    };
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    let rows = rows.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
            SqlError::Timeout { seconds: timeout.as_secs().max(1) }
        }
        _ => e.into(),
    })?;
    let columns = rows.first().map(|r| r.columns().iter().map(|c| c.name().to_string()).collect()).unwrap_or_default();
    let rows = rows.iter().map(postgres_values).collect::<Result<_, _>>()?;
    Ok(QueryResult { columns, rows })
}

fn postgres_values(row: &PgRow) -> Result<Vec<SqlValue>, SqlError> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(SqlValue::Null);
            }
            let type_name = raw.type_info().name().to_string();
            let text: String = row.try_get_unchecked(i)?;
            let value = match type_name.as_str() {
                "INT2" | "INT4" | "INT8" => text.parse().map(SqlValue::Int).unwrap_or(SqlValue::Text(text)),
                "FLOAT4" | "FLOAT8" | "NUMERIC" => text.parse().map(SqlValue::Float).unwrap_or(SqlValue::Text(text)),
                "BOOL" => SqlValue::Bool(text == "t"),
                _ => SqlValue::Text(text),
            };
            Ok(value)
        })
        .collect()
}

/// Checks that `sql` is one statement that starts with a reading keyword;
/// returns it without its trailing `;`.
pub fn check_statement(sql: &str, backend: Backend) -> Result<&str, SqlError> {
    let end = first_statement_end(sql, backend);
    let (statement, rest) = match end {
        Some(at) => (&sql[..at], &sql[at + 1..]),
        None => (sql, ""),
    };
    if let Some(offset) = first_token(rest, backend) {
        return Err(SqlError::Multiple { at: end.unwrap_or(0) + 1 + offset });
    }
    let Some(start) = first_token(statement, backend) else {
        return Err(SqlError::Empty);
    };
    let keyword: String = statement[start..]
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
    if !allowed.contains(&keyword.as_str()) {
        let hint = match keyword.as_str() {
            "PRAGMA" => {
                " (read a pragma through its table-valued function, e.g. SELECT * FROM pragma_table_info('jobs'))"
            }
            _ => "",
        };
        return Err(SqlError::Refused {
            keyword: if keyword.is_empty() { statement[start..].chars().take(10).collect() } else { keyword },
            allowed: allowed.join(", "),
            hint,
        });
    }
    Ok(statement.trim())
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

/// End (exclusive) of a quoted run opened at `from` by `quote`, where a
/// doubled quote escapes itself; with `backslash`, `\x` escapes too.
fn quoted_end(bytes: &[u8], from: usize, quote: u8, backslash: bool) -> usize {
    let mut i = from + 1;
    while i < bytes.len() {
        if backslash && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The tag of a PostgreSQL dollar quote starting at `from` (`$$` or
/// `$tag$`), if one starts there.
fn dollar_tag(bytes: &[u8], from: usize) -> Option<&[u8]> {
    let rest = &bytes[from + 1..];
    let len = rest.iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    if rest.get(len) != Some(&b'$') || rest.first().is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(&bytes[from..from + len + 2])
}

/// Byte offset of the first `;` outside strings, quoted identifiers and
/// comments.
fn first_statement_end(sql: &str, backend: Backend) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        i = match b {
            b';' => return Some(i),
            b'-' if next == Some(b'-') => line_end(bytes, i),
            b'/' if next == Some(b'*') => block_comment_end(bytes, i, backend),
            b'\'' => {
                // PostgreSQL's E'...' strings take backslash escapes.
                let escape_string = backend == Backend::Postgres
                    && i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !(bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'_'));
                quoted_end(bytes, i, b'\'', escape_string)
            }
            b'"' => quoted_end(bytes, i, b'"', false),
            b'`' if backend == Backend::Sqlite => quoted_end(bytes, i, b'`', false),
            b'[' if backend == Backend::Sqlite => {
                bytes[i..].iter().position(|c| *c == b']').map_or(bytes.len(), |p| i + p + 1)
            }
            b'$' if backend == Backend::Postgres => match dollar_tag(bytes, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    bytes[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(bytes.len(), |p| body + p + tag.len())
                }
                None => i + 1,
            },
            _ => i + 1,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

    #[test]
    fn reading_statements_pass_with_comments_and_a_trailing_semicolon() {
        for backend in BOTH {
            for sql in [
                "SELECT 1",
                "  select * from jobs;  ",
                "-- a comment\nWITH x AS (SELECT 1) SELECT * FROM x; -- done",
                "/* lead */ (SELECT 1) UNION (SELECT 2)",
                "SELECT ';' AS semi, \"a;b\" FROM t",
                "SELECT 'it''s; fine'",
                "VALUES (1), (2)",
                "EXPLAIN SELECT 1",
            ] {
                assert!(check_statement(sql, backend).is_ok(), "{backend:?}: {sql}");
            }
        }
        assert_eq!(check_statement("SELECT 1; ", Backend::Sqlite).unwrap(), "SELECT 1");
        assert!(check_statement("SELECT $$a;b$$, $t$;$t$", Backend::Postgres).is_ok());
        assert!(check_statement("SELECT [a;b] FROM t", Backend::Sqlite).is_ok());
        assert!(check_statement("/* a /* nested; */ comment; */ SELECT 1", Backend::Postgres).is_ok());
    }

    #[test]
    fn writes_and_second_statements_are_refused() {
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
                "SET default_transaction_read_only = off",
            ] {
                let error = check_statement(sql, backend).unwrap_err();
                assert!(matches!(error, SqlError::Refused { .. }), "{backend:?}: {sql}: {error}");
            }
            for sql in ["SELECT 1; DROP TABLE jobs", "SELECT 1;SELECT 2", "SELECT ';'; DELETE FROM jobs -- ;"] {
                let error = check_statement(sql, backend).unwrap_err();
                assert!(matches!(error, SqlError::Multiple { .. }), "{backend:?}: {sql}: {error}");
            }
            assert!(matches!(check_statement(" -- nothing\n ;", backend), Err(SqlError::Empty)));
        }
        // A backslash-escaped quote of PostgreSQL's E-strings does not end the string...
        assert!(matches!(
            check_statement("SELECT E'\\''; DROP TABLE jobs; --'", Backend::Postgres),
            Err(SqlError::Multiple { .. })
        ));
        // ...and PostgreSQL's TABLE and SHOW read.
        assert!(check_statement("TABLE jobs", Backend::Postgres).is_ok());
        assert!(check_statement("TABLE jobs", Backend::Sqlite).is_err());
        let pragma = check_statement("PRAGMA table_info(jobs)", Backend::Sqlite).unwrap_err().to_string();
        assert!(pragma.contains("pragma_table_info"), "{pragma}");
    }
}
