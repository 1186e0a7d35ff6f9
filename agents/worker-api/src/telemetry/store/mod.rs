//! The telemetry database, `<state_dir>/telemetry/telemetry.db` (SQLite, WAL, 0600): schema and
//! migrations, the writes the worker makes, the bounded queries the API answers and the
//! retention sweep. Synchronous; [`super::Telemetry`] runs it on blocking threads.
//!
//! Timestamps are stored as RFC 3339 text in UTC with microseconds and a `Z`
//! ([`timestamp`]), so that text order is time order and the indexes serve ranges. Every query
//! has a `LIMIT` and uses an index; pages are keyset pages (`page_token` names the last row),
//! so a row is in exactly one page even while rows are added.
//!
//! One file per concern: `schema` opens the file and migrates it, `record` holds the writes,
//! `query` the API's pages (`rows` reads a stored row back, `page` makes and checks page
//! tokens), and `retention` the sweep.

#[cfg(test)]
mod index_plans;
mod page;
mod query;
mod record;
mod retention;
mod rows;
mod schema;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;

pub use record::{Boot, ContainerRef, MAX_LINE_BYTES, MAX_LINES_PER_RUN, ServiceLog};
pub use retention::{EVENT_RETENTION, INVENTORY_RETENTION, LOG_RETENTION, Swept, VACUUM_EVERY};
pub use schema::{BUSY_TIMEOUT, DB_DIR, DB_FILE};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("telemetry directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("telemetry database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("telemetry database: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a query has no answer: the client's mistake (400) or the store's (500).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The time format of every stored timestamp.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}
