//! User preferences (`workflow_mcp_agents.md` §5): the only writer of `preference_entries` and
//! `preference_audit_log`. Every create, update and delete commits together with its audit
//! row. The store functions are what the user gateway's `/v1/prefs` routes (`http`) and the MCP
//! tools `db.preference.*` call; authorization is the caller's business (the routes' is
//! `http`'s `authorize`).
//!
//! The effective view folds the scopes from lowest to highest precedence (system < group <
//! user < project < task; the groups are the user's active ones): a
//! higher scope's value replaces a lower one's, a `null` removes the key (it masks the lower
//! scopes), and an entry whose value does not have its `value_type` is skipped, so it masks
//! nothing.
//!
//! One file per concern: `store` makes every change with its audit row, `read` fetches and
//! pages entries, `effective` folds the scopes into the effective view, `validate` checks keys,
//! values and reasons before anything is written, and `http` holds the routes.

mod effective;
mod http;
mod read;
mod store;
mod validate;

pub use cynode_contracts::preferences::{
    EffectivePreferences, PreferenceEntry, PreferencePage, ScopeType, ValueType,
};
use cynode_contracts::problem::Problem;
use uuid::Uuid;

use crate::error::Error;

pub use self::effective::{effective_for, effective_for_task, fold};
// A glob, because utoipa's `paths(...)` (gateway.rs) names each handler's generated
// `__path_*` item next to the handler, and a glob re-exports those too.
pub use self::http::*;
pub use self::read::{get, list};
pub use self::store::{create, delete, update};

/// Where an entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    System,
    Group(Uuid),
    User(Uuid),
    Project(Uuid),
    Task(Uuid),
}

impl Scope {
    /// The scope of a wire `scope_type` and `scope_id`: the id is required except for system,
    /// where it must be absent.
    pub fn new(scope_type: ScopeType, scope_id: Option<Uuid>) -> Result<Self, PrefError> {
        match (scope_type, scope_id) {
            (ScopeType::System, None) => Ok(Self::System),
            (ScopeType::System, Some(_)) => Err(PrefError::Invalid(
                "scope_id must not be given for the system scope".into(),
            )),
            (ScopeType::Group, Some(id)) => Ok(Self::Group(id)),
            (ScopeType::User, Some(id)) => Ok(Self::User(id)),
            (ScopeType::Project, Some(id)) => Ok(Self::Project(id)),
            (ScopeType::Task, Some(id)) => Ok(Self::Task(id)),
            (t, None) => Err(PrefError::Invalid(format!(
                "scope_id is required for the {t} scope"
            ))),
        }
    }

    pub fn scope_type(self) -> ScopeType {
        match self {
            Self::System => ScopeType::System,
            Self::Group(_) => ScopeType::Group,
            Self::User(_) => ScopeType::User,
            Self::Project(_) => ScopeType::Project,
            Self::Task(_) => ScopeType::Task,
        }
    }

    pub fn scope_id(self) -> Option<Uuid> {
        match self {
            Self::System => None,
            Self::Group(id) | Self::User(id) | Self::Project(id) | Self::Task(id) => Some(id),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope_id() {
            Some(id) => write!(f, "{} {id}", self.scope_type()),
            None => f.write_str("system"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrefError {
    #[error("{0}")]
    NotFound(String),
    /// The entry exists already (create), or is not at the expected version.
    #[error("{detail}")]
    Conflict {
        detail: String,
        current_version: Option<i64>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<PrefError> for Error {
    fn from(e: PrefError) -> Self {
        match e {
            PrefError::NotFound(detail) => Problem::not_found(detail).into(),
            PrefError::Conflict { detail, .. } => Problem::conflict(detail).into(),
            PrefError::Invalid(detail) => Problem::validation(detail).into(),
            PrefError::Db(e) => Error::Db(e),
        }
    }
}

type Result<T, E = PrefError> = std::result::Result<T, E>;
