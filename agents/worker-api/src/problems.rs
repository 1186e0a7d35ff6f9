//! The problem answers that more than one concern's routes give: a path id that is not a
//! UUID, and a job request this node refuses.

use cynode_contracts::problem::Problem;
use cynode_service_kit::http::ApiError;
use uuid::Uuid;

use crate::sandbox::InvalidJob;

/// A `{what}_id` path parameter, or a `400` naming it.
pub(crate) fn uuid_param(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| Problem::validation(format!("`{text}` is not a {what} id (a UUID)")).into())
}

pub(crate) fn invalid_job(error: InvalidJob) -> ApiError {
    match error {
        InvalidJob::UnsupportedVersion(v) => Problem::unsupported_version(v).into(),
        other => Problem::validation(other.to_string()).into(),
    }
}
