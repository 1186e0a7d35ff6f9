//! The one error type handlers return. Client mistakes carry a [`Problem`]; everything else is a
//! server fault whose cause is logged once here and never shown to the client.

use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use cynode_service_kit::http::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Problem(Problem, Option<u64>),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem, None)
    }
}

impl Error {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

/// SQLSTATEs PostgreSQL gives for text it cannot store: `character_not_in_repertoire` (a NUL
/// byte in `text`) and `untranslatable_character` (`\u0000` in `jsonb`). Only client input
/// carries such text, so it is the client's mistake wherever it reaches the database.
const UNSTORABLE_TEXT: [&str; 2] = ["22021", "22P05"];

fn unstorable_text(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| UNSTORABLE_TEXT.contains(&code.as_ref()))
}

/// The database is down or restarting (not a fault of the request): the pool found no
/// connection, the connection broke, or the server is shutting down or starting up (SQLSTATE
/// classes 08 and 57P).
fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// What a client is told to wait before retrying while the database is away.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Db(e) if database_unreachable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError {
                    problem: Problem::unavailable("the database is unavailable; try again shortly"),
                    retry_after_secs: Some(DATABASE_RETRY_AFTER_SECS),
                }
                .into_response()
            }
            Self::Db(e) if unstorable_text(&e) => ApiError {
                problem: Problem::validation("text must not contain NUL characters"),
                retry_after_secs: None,
            }
            .into_response(),
            Self::Problem(problem, retry_after) => ApiError {
                problem,
                retry_after_secs: retry_after,
            }
            .into_response(),
            other => ApiError::internal(other).into_response(),
        }
    }
}
