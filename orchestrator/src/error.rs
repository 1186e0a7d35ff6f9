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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem, retry_after) => ApiError {
                problem,
                retry_after_secs: retry_after,
            }
            .into_response(),
            other => ApiError::internal(other).into_response(),
        }
    }
}
