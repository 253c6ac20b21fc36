//! `widesweep sql` on PostgreSQL: the text goes to the server as one
//! prepared statement (the extended protocol), whose Parse message the
//! server refuses when it holds more than one command. The simple-query
//! protocol would run `SELECT ...; COMMIT; BEGIN READ WRITE; DELETE ...`
//! statement by statement, each past the read-only transaction.
//!
//! The extended protocol returns values in binary, so each column is decoded
//! by its type ([`Decoder`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat};
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, Statement, TypeInfo, ValueRef};

use super::{RowSink, SqlError, SqlValue, Streamed, stream_rows};

/// How long the client waits past `statement_timeout` for a server that
/// does not answer at all.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// The widesweep tables a reading role must not be able to write.
const TABLES: [&str; 6] = ["sweeps", "jobs", "epochs", "checkpoints", "workers", "attempts"];

/// What the role `url` connects as may do beyond reading: being a
/// superuser, starting replication (a replication slot outlives any
/// transaction and holds the server's WAL), creating roles or databases,
/// bypassing row security, reading or writing server files, signalling
/// other sessions, or writing a widesweep table. Empty for a reader.
pub(super) async fn role_risks(url: &str) -> Result<Vec<String>, SqlError> {
    let options = PgConnectOptions::from_str(url).map_err(|_| SqlError::BadUrl(url.to_string()))?;
    let mut conn = PgConnection::connect_with(&options).await?;
    let row = sqlx::query(
        "SELECT current_user::text AS role, rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolbypassrls, \
                pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') AS read_files, \
                pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') AS write_files, \
                pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') AS run_programs, \
                pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    let mut risks = Vec::new();
    for (column, risk) in [
        ("rolsuper", "is a superuser"),
        ("rolreplication", "may start replication (a replication slot survives the rollback and holds WAL)"),
        ("rolcreaterole", "may create roles"),
        ("rolcreatedb", "may create databases"),
        ("rolbypassrls", "bypasses row-level security"),
        ("read_files", "may read the server's files"),
        ("write_files", "may write the server's files"),
        ("run_programs", "may run programs on the server"),
        ("signal", "may end other sessions (the coordinator's)"),
    ] {
        if row.try_get::<bool, _>(column)? {
            risks.push(risk.to_string());
        }
    }
    for table in TABLES {
        let writable: Option<bool> = sqlx::query_scalar(
            "SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE \
             has_table_privilege(current_user, $1, 'INSERT, UPDATE, DELETE, TRUNCATE') END",
        )
        .bind(table)
        .fetch_one(&mut conn)
        .await?;
        if writable == Some(true) {
            risks.push(format!("may write the table {table}"));
        }
    }
    let _ = conn.close().await;
    Ok(risks)
}

pub(super) async fn query(
    url: &str,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    let millis = timeout.as_millis().max(1).to_string();
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| SqlError::BadUrl(url.to_string()))?
        .options([("default_transaction_read_only", "on"), ("statement_timeout", millis.as_str())])
        // The statement is the user's own: a slow one is what they asked
        // for, not a warning of sqlx's.
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&options).await?;
    let outcome =
        match tokio::time::timeout(timeout + CLIENT_GRACE, read(&mut conn, sql, timeout, max_rows, sink)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SqlError::Timeout { seconds: timeout.as_secs().max(1) }),
        };
    // Nothing is ever committed. After a cut, or when the output could not
    // be written, rows are still on their way, which a ROLLBACK would first
    // read to the end: closing the connection rolls the transaction back
    // without them.
    if !matches!(outcome, Ok(Streamed { cut_at: Some(_), .. }) | Err(SqlError::Output(_))) {
        let _ = tokio::time::timeout(Duration::from_secs(1), sqlx::raw_sql("ROLLBACK").execute(&mut conn)).await;
    }
    let _ = conn.close().await;
    outcome
}

async fn read(
    conn: &mut PgConnection,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<Streamed, SqlError> {
    sqlx::raw_sql("BEGIN TRANSACTION READ ONLY").execute(&mut *conn).await?;
    let classify = |e| classify(e, timeout);
    let prepared = conn.prepare(sql).await.map_err(classify)?;
    let columns: Vec<String> = prepared.columns().iter().map(|c| c.name().to_string()).collect();
    // Every column's decoder before any row, so that a type we cannot print
    // fails before output starts, empty result or not.
    let decoders = prepared
        .columns()
        .iter()
        .map(|c| {
            Decoder::of(c.type_info()).ok_or_else(|| SqlError::UnsupportedType {
                column: c.name().to_string(),
                type_name: c.type_info().name().to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = prepared.query().fetch(&mut *conn);
    let decode = |row: &PgRow| values(row, &columns, &decoders);
    stream_rows(&columns, rows, decode, classify, max_rows, sink).await
}

/// The errors a user should tell apart, by SQLSTATE.
fn classify(error: sqlx::Error, timeout: Duration) -> SqlError {
    if let sqlx::Error::Database(db) = &error {
        match db.code().as_deref() {
            // query_canceled: statement_timeout
            Some("57014") => return SqlError::Timeout { seconds: timeout.as_secs().max(1) },
            // read_only_sql_transaction
            Some("25006") => return SqlError::Writes { reason: format!("PostgreSQL: {}", db.message()) },
            // syntax_error, as "cannot insert multiple commands into a prepared statement"
            Some("42601") if db.message().contains("multiple commands") => return SqlError::Multiple { at: None },
            _ => {}
        }
    }
    error.into()
}

fn values(row: &PgRow, columns: &[String], decoders: &[Decoder]) -> Result<Vec<SqlValue>, SqlError> {
    decoders
        .iter()
        .enumerate()
        .map(|(i, decoder)| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(SqlValue::Null);
            }
            let malformed = |what: String| SqlError::Database(format!("column {:?}: {what}", columns[i]));
            if raw.format() == PgValueFormat::Text {
                return raw.as_str().map(|s| SqlValue::Text(s.to_string())).map_err(|e| malformed(e.to_string()));
            }
            let bytes = raw.as_bytes().map_err(|e| malformed(e.to_string()))?;
            decoder.decode(bytes).ok_or_else(|| malformed(format!("a malformed binary {decoder:?} value")))
        })
        .collect()
}

/// How a column's binary values read, by PostgreSQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, unknown, json, xml, enums: UTF-8 bytes.
    Text,
    /// The one-byte `"char"`.
    Char,
    /// A version byte (1), then the JSON text.
    Jsonb,
    Bytea,
    Uuid,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    /// What a function returning nothing returns (`pg_sleep`).
    Void,
}

impl Decoder {
    fn of(type_info: &PgTypeInfo) -> Option<Decoder> {
        match type_info.kind() {
            PgTypeKind::Enum(_) => return Some(Decoder::Text),
            PgTypeKind::Domain(base) => return Decoder::of(base),
            _ => {}
        }
        if type_info.name().eq_ignore_ascii_case("citext") {
            return Some(Decoder::Text);
        }
        // OIDs of the built-in types (pg_type.dat), stable across versions.
        let decoder = match type_info.oid()?.0 {
            16 => Decoder::Bool,
            17 => Decoder::Bytea,
            18 => Decoder::Char,
            20 => Decoder::Int8,
            21 => Decoder::Int2,
            23 => Decoder::Int4,
            26 => Decoder::Oid,
            19 | 25 | 114 | 142 | 705 | 1042 | 1043 => Decoder::Text,
            700 => Decoder::Float4,
            701 => Decoder::Float8,
            1082 => Decoder::Date,
            1083 => Decoder::Time,
            1114 => Decoder::Timestamp,
            1184 => Decoder::TimestampTz,
            1186 => Decoder::Interval,
            1700 => Decoder::Numeric,
            2278 => Decoder::Void,
            2950 => Decoder::Uuid,
            3802 => Decoder::Jsonb,
            _ => return None,
        };
        Some(decoder)
    }

    /// The value of `bytes`; None when they are not a value of the type.
    fn decode(self, bytes: &[u8]) -> Option<SqlValue> {
        let value = match self {
            Decoder::Bool => SqlValue::Bool(*exact::<1>(bytes)? != [0]),
            Decoder::Int2 => SqlValue::Int(i16::from_be_bytes(*exact(bytes)?).into()),
            Decoder::Int4 => SqlValue::Int(i32::from_be_bytes(*exact(bytes)?).into()),
            Decoder::Int8 => SqlValue::Int(i64::from_be_bytes(*exact(bytes)?)),
            Decoder::Oid => SqlValue::Int(u32::from_be_bytes(*exact(bytes)?).into()),
            Decoder::Float4 => SqlValue::Float(f32::from_be_bytes(*exact(bytes)?).into()),
            Decoder::Float8 => SqlValue::Float(f64::from_be_bytes(*exact(bytes)?)),
            Decoder::Numeric => numeric(bytes)?,
            Decoder::Text | Decoder::Char => SqlValue::Text(String::from_utf8_lossy(bytes).into_owned()),
            Decoder::Jsonb => match bytes.split_first()? {
                (1, json) => SqlValue::Text(String::from_utf8_lossy(json).into_owned()),
                _ => return None,
            },
            Decoder::Bytea => SqlValue::Blob(hex::encode(bytes)),
            Decoder::Uuid => {
                let hex = hex::encode(exact::<16>(bytes)?);
                SqlValue::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            Decoder::Date => SqlValue::Text(date(i32::from_be_bytes(*exact(bytes)?))),
            Decoder::Time => SqlValue::Text(time_of_day(i64::from_be_bytes(*exact(bytes)?))),
            Decoder::Timestamp => SqlValue::Text(timestamp(i64::from_be_bytes(*exact(bytes)?), "")),
            Decoder::TimestampTz => SqlValue::Text(timestamp(i64::from_be_bytes(*exact(bytes)?), "+00")),
            Decoder::Interval => {
                let bytes: &[u8; 16] = exact(bytes)?;
                let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
                let days = i32::from_be_bytes(bytes[8..12].try_into().ok()?);
                let months = i32::from_be_bytes(bytes[12..].try_into().ok()?);
                SqlValue::Text(interval(micros, days, months))
            }
            Decoder::Void => SqlValue::Null,
        };
        Some(value)
    }
}

fn exact<const N: usize>(bytes: &[u8]) -> Option<&[u8; N]> {
    bytes.try_into().ok()
}

/// A NUMERIC off the wire: ndigits, weight, sign and display scale (each a
/// big-endian 16-bit word), then `ndigits` base-10000 digits, the first
/// worth 10000^weight. `AVG` and `SUM` of integers return NUMERIC: an
/// integer display scale gives an Int when it fits, anything else a Float,
/// as SQLite's REAL for the same query.
fn numeric(bytes: &[u8]) -> Option<SqlValue> {
    let word = |i: usize| bytes.get(2 * i..2 * i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (ndigits, weight, sign, scale) = (word(0)? as usize, word(1)? as i16, word(2)?, word(3)? as usize);
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    match sign {
        0xC000 => return Some(SqlValue::Float(f64::NAN)),
        0xD000 => return Some(SqlValue::Float(f64::INFINITY)),
        0xF000 => return Some(SqlValue::Float(f64::NEG_INFINITY)),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digit = |k: i32| usize::try_from(k).ok().and_then(|k| digits.get(k)).copied().unwrap_or(0);
    let weight = i32::from(weight);
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    }
    for k in 0..=weight {
        if k == 0 {
            text.push_str(&digit(k).to_string());
        } else {
            text.push_str(&format!("{:04}", digit(k)));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        for j in 1..=scale.div_ceil(4) as i32 {
            fraction.push_str(&format!("{:04}", digit(weight + j)));
        }
        text.push('.');
        text.push_str(&fraction[..scale]);
    }
    if scale == 0
        && let Ok(int) = text.parse()
    {
        return Some(SqlValue::Int(int));
    }
    text.parse().ok().map(SqlValue::Float)
}

/// Days from 2000-01-01, PostgreSQL's epoch, to 1970-01-01.
const POSTGRES_EPOCH_UNIX_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (text, bc) = civil(i64::from(days));
            format!("{text}{bc}")
        }
    }
}

fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let (text, bc) = civil(micros.div_euclid(MICROS_PER_DAY));
            format!("{text} {}{zone}{bc}", time_of_day(micros.rem_euclid(MICROS_PER_DAY)))
        }
    }
}

/// `YYYY-MM-DD` of a day counted from 2000-01-01, and " BC" before year 1
/// as PostgreSQL prints it (there is no year 0). Howard Hinnant's
/// civil_from_days.
fn civil(days: i64) -> (String, &'static str) {
    let z = days + POSTGRES_EPOCH_UNIX_DAYS + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year <= 0 {
        (format!("{:04}-{month:02}-{day:02}", 1 - year), " BC")
    } else {
        (format!("{year:04}-{month:02}-{day:02}"), "")
    }
}

/// `HH:MM:SS`, with as many fractional digits as it has (none when whole).
fn time_of_day(micros: i64) -> String {
    let seconds = micros / 1_000_000;
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    let fraction = micros % 1_000_000;
    if fraction != 0 {
        text.push_str(format!(".{fraction:06}").trim_end_matches('0'));
    }
    text
}

/// An interval in PostgreSQL's default style: `1 year 2 mons 3 days 04:05:06`.
fn interval(micros: i64, days: i32, months: i32) -> String {
    let unit = |n: i32, name: &str| format!("{n} {name}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if months / 12 != 0 {
        parts.push(unit(months / 12, "year"));
    }
    if months % 12 != 0 {
        parts.push(unit(months % 12, "mon"));
    }
    if days != 0 {
        parts.push(unit(days, "day"));
    }
    if micros != 0 || parts.is_empty() {
        let negative_before = months < 0 || days < 0;
        let sign = if micros < 0 {
            "-"
        } else if negative_before {
            "+"
        } else {
            ""
        };
        parts.push(format!("{sign}{}", time_of_day(micros.unsigned_abs() as i64)));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NUMERIC's binary form of `(ndigits, weight, sign, scale, digits)`.
    fn wire(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [digits.len() as u16, weight as u16, sign, scale].iter().chain(digits) {
            out.extend(word.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_read_as_postgres_prints_them() {
        // 1.5000000000000000, AVG(1, 2) over integers
        assert_eq!(numeric(&wire(0, 0, 16, &[1, 5000])), Some(SqlValue::Float(1.5)));
        // 123456789012 (SUM of bigints): three groups, weight 2
        assert_eq!(numeric(&wire(2, 0, 0, &[1234, 5678, 9012])), Some(SqlValue::Int(123_456_789_012)));
        // 20000: one digit of weight 1, the trailing zero group left out
        assert_eq!(numeric(&wire(1, 0, 0, &[2])), Some(SqlValue::Int(20_000)));
        // -0.000123: groups 0001 2300 after the point, weight -1
        assert_eq!(numeric(&wire(-1, 0x4000, 6, &[1, 2300])), Some(SqlValue::Float(-0.000123)));
        // 0.00000123: a zero group first, weight -2
        assert_eq!(numeric(&wire(-2, 0, 8, &[123])), Some(SqlValue::Float(0.00000123)));
        assert_eq!(numeric(&wire(0, 0, 0, &[])), Some(SqlValue::Int(0)));
        assert_eq!(numeric(&wire(0, 0, 2, &[])), Some(SqlValue::Float(0.0)));
        assert!(matches!(numeric(&wire(0, 0xC000, 0, &[])), Some(SqlValue::Float(v)) if v.is_nan()));
        assert_eq!(numeric(&[0, 1]), None);
    }

    #[test]
    fn dates_and_times_read_as_postgres_prints_them() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(9190), "2025-02-28");
        assert_eq!(date(-730_119), "0001-01-01");
        assert_eq!(date(-730_120), "0001-12-31 BC");
        assert_eq!(timestamp(1_500_000, ""), "2000-01-01 00:00:01.5");
        assert_eq!(timestamp(-1, "+00"), "1999-12-31 23:59:59.999999+00");
        assert_eq!(timestamp(i64::MAX, ""), "infinity");
        assert_eq!(interval(4 * 3_600_000_000 + 5 * 60_000_000 + 6_000_000, 3, 14), "1 year 2 mons 3 days 04:05:06");
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(interval(-3_600_000_000, 0, 0), "-01:00:00");
        assert_eq!(interval(3_600_000_000, -1, 0), "-1 days +01:00:00");
        assert_eq!(interval(0, 1, 0), "1 day");
    }
}
