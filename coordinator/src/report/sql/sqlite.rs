//! `widesweep sql` on SQLite: SQLite's own parser finds the one statement
//! and says whether it writes, before sqlx runs it.

use std::ffi::{CStr, c_char, c_int};
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::str::FromStr;
use std::time::{Duration, Instant};

use libsqlite3_sys::{
    SQLITE_OK, sqlite3, sqlite3_errmsg, sqlite3_finalize, sqlite3_prepare_v2, sqlite3_stmt, sqlite3_stmt_readonly,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, Statement, TypeInfo, ValueRef};

use super::{RowSink, SqlError, SqlValue, Streamed, stream_rows};

pub(super) async fn query(
    url: &str,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|_| SqlError::BadUrl(url.to_string()))?
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5))
        // The statement is the user's own: a slow one is what they asked
        // for, not a warning of sqlx's.
        .disable_statement_logging();
    let path = options.get_filename();
    if !path.exists() {
        return Err(SqlError::NoDatabaseFile(path.display().to_string()));
    }
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let outcome = read(&mut conn, sql, timeout, max_rows, sink).await;
    // Nothing was written, and the connection goes: the ROLLBACK ends the
    // transaction for form's sake (it also stops a statement left mid-way
    // by the row cap).
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    outcome
}

async fn read(
    conn: &mut SqliteConnection,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    sqlx::raw_sql("PRAGMA query_only = ON").execute(&mut *conn).await?;
    let statement = {
        let mut handle = conn.lock_handle().await?;
        let range = only_statement(handle.as_raw_handle(), sql)?;
        // SQLite has no statement timeout: a progress handler, called every
        // few thousand virtual-machine steps, interrupts the statement.
        let deadline = Instant::now() + timeout;
        handle.set_progress_handler(10_000, move || Instant::now() < deadline);
        &sql[range]
    };
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    let classify = |e: sqlx::Error| match &e {
        sqlx::Error::Database(db) if db.message().contains("interrupted") => {
            SqlError::Timeout { seconds: timeout.as_secs().max(1) }
        }
        _ => e.into(),
    };
    // Only the statement SQLite compiled is handed over: sqlx runs every
    // statement of the text it is given.
    let prepared = conn.prepare(statement).await.map_err(classify)?;
    let columns: Vec<String> = prepared.columns().iter().map(|c| c.name().to_string()).collect();
    let rows = prepared.query().fetch(&mut *conn);
    stream_rows(&columns, rows, sqlite_values, classify, max_rows, sink).await
}

/// The byte range of the one statement in `sql`, as SQLite's parser reads
/// it; refused when the parser finds a second statement or when the one
/// statement would write.
fn only_statement(db: NonNull<sqlite3>, sql: &str) -> Result<Range<usize>, SqlError> {
    let mut found: Option<Range<usize>> = None;
    let mut start = 0;
    while start < sql.len() {
        let compiled = Compiled::prepare(db, &sql[start..]);
        let (compiled, consumed) = match (compiled, &found) {
            (Ok(ok), _) => ok,
            // Whatever follows the statement, SQLite read it as more SQL.
            (Err(_), Some(first)) => return Err(SqlError::Multiple { at: Some(first.end) }),
            (Err(message), None) => return Err(SqlError::Database(message)),
        };
        let end = start + consumed;
        match (compiled, &found) {
            // Whitespace, a comment or an empty `;`: no statement.
            (None, _) => {}
            (Some(_), Some(first)) => return Err(SqlError::Multiple { at: Some(first.end) }),
            (Some(statement), None) => {
                if !statement.read_only() {
                    return Err(SqlError::Writes {
                        reason: "SQLite compiles it to a statement that changes the database (sqlite3_stmt_readonly)"
                            .into(),
                    });
                }
                found = Some(start..end);
            }
        }
        if consumed == 0 {
            break;
        }
        start = end;
    }
    found.ok_or(SqlError::Empty)
}

/// A statement compiled by `sqlite3_prepare_v2`, finalized when dropped.
struct Compiled(NonNull<sqlite3_stmt>);

impl Compiled {
    /// Compiles the first statement of `sql`: the statement, if any (none
    /// for whitespace and comments), and how many bytes of `sql` SQLite read.
    fn prepare(db: NonNull<sqlite3>, sql: &str) -> Result<(Option<Compiled>, usize), String> {
        let len = c_int::try_from(sql.len()).map_err(|_| format!("the statement is over {} bytes", c_int::MAX))?;
        let mut statement: *mut sqlite3_stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        // SAFETY: `db` is the open connection of a locked sqlx handle, so no
        // other thread uses it meanwhile; `sql` is valid for `len` bytes (no
        // NUL terminator needed when the length is given); SQLite writes a
        // statement pointer (or null) and a tail pointer into `sql`.
        let status = unsafe { sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr().cast(), len, &mut statement, &mut tail) };
        if status != SQLITE_OK {
            // SAFETY: as above; the message is copied before the next call on `db`.
            let message = unsafe { CStr::from_ptr(sqlite3_errmsg(db.as_ptr())) };
            return Err(message.to_string_lossy().into_owned());
        }
        let consumed = if tail.is_null() { sql.len() } else { (tail as usize).saturating_sub(sql.as_ptr() as usize) };
        Ok((NonNull::new(statement).map(Compiled), consumed.min(sql.len())))
    }

    fn read_only(&self) -> bool {
        // SAFETY: the statement is alive until `drop`.
        unsafe { sqlite3_stmt_readonly(self.0.as_ptr()) != 0 }
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: the statement came from sqlite3_prepare_v2, was never
        // stepped, and is finalized once, here.
        unsafe {
            sqlite3_finalize(self.0.as_ptr());
        }
    }
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
