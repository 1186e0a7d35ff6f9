//! The telemetry database, `<state_dir>/telemetry/telemetry.db` (SQLite, WAL, 0600): schema and
//! migrations, the writes the worker makes, the bounded queries the API answers and the
//! retention sweep. Synchronous; [`super::Telemetry`] runs it on blocking threads.
//!
//! Timestamps are stored as RFC 3339 text in UTC with microseconds and a `Z`
//! ([`timestamp`]), so that text order is time order and the indexes serve ranges. Every query
//! has a `LIMIT` and uses an index; pages are keyset pages (`page_token` names the last row),
//! so a row is in exactly one page even while rows are added.
//!
//! One file per concern: `db` is the handle, its errors and the time format; `schema` opens the
//! file and migrates it, `record` holds the writes, `query` the API's pages (`rows` reads a
//! stored row back, `page` makes and checks page tokens), and `retention` the sweep.

mod db;
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

pub use db::{QueryError, Store, StoreError, timestamp};
pub use record::{Boot, ContainerRef, MAX_LINE_BYTES, MAX_LINES_PER_RUN, ServiceLog};
pub use retention::{EVENT_RETENTION, INVENTORY_RETENTION, LOG_RETENTION, Swept, VACUUM_EVERY};
pub use schema::{BUSY_TIMEOUT, DB_DIR, DB_FILE};
