//! Node-local state in SQLite (`<state_dir>/node_manager.db`, mode 0600): the node's identity
//! from the last registration (slug, endpoints, when its JWT expires) and the last configuration
//! with its ack. Neither the node JWT nor the worker bearer token is ever written here: the node
//! registers again at every start, and both live only in memory.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use cynode_contracts::node::{ConfigAckStatus, NodeBootstrapPayload, NodeConfigurationPayload};
use rusqlite::{Connection, OptionalExtension, params};

pub const DB_FILE: &str = "node_manager.db";
const SCHEMA_VERSION: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// The node's identity as last registered.
#[derive(Clone, PartialEq)]
pub struct Identity {
    pub node_slug: String,
    pub jwt_expires_at: DateTime<Utc>,
    pub node_config_url: String,
    pub node_report_url: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node_slug", &self.node_slug)
            .field("jwt_expires_at", &self.jwt_expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

impl StateDb {
    /// Opens (creating if needed) the database. The directory is made 0700 and the file 0600
    /// before SQLite writes a byte, so the JWT is never world-readable, not even briefly.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| StateError::Dir {
                path: state_dir.to_owned(),
                source,
            })?;
        let path = state_dir.join(DB_FILE);
        let file_err = |source| StateError::Dir {
            path: path.clone(),
            source,
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(file_err)?;
        // An older file may have been created with a looser mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(file_err)?;
        let conn = Connection::open(&path).map_err(|source| StateError::Db {
            path: path.clone(),
            source,
        })?;
        let db = Self { conn, path };
        db.migrate()?;
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&self) -> Result<(), StateError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        if version == 1 {
            // Version 1 kept the node JWT; blank it and rewrite the file so no free page keeps it.
            return self
                .conn
                .execute_batch(
                    "UPDATE identity SET node_jwt = '';
                     PRAGMA user_version = 2;
                     VACUUM;",
                )
                .map_err(|e| self.err(e));
        }
        self.conn
            .execute_batch(
                "BEGIN;
                 CREATE TABLE identity (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     node_slug TEXT NOT NULL,
                     registered_at TEXT NOT NULL,
                     orchestrator_base_url TEXT NOT NULL,
                     node_config_url TEXT NOT NULL,
                     node_report_url TEXT NOT NULL,
                     node_jwt TEXT NOT NULL,
                     jwt_expires_at TEXT NOT NULL
                 );
                 CREATE TABLE node_config (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     config_version TEXT NOT NULL,
                     fetched_at TEXT NOT NULL,
                     payload_json TEXT NOT NULL,
                     ack_status TEXT,
                     ack_error TEXT,
                     acked_at TEXT
                 );
                 PRAGMA user_version = 2;
                 COMMIT;",
            )
            .map_err(|e| self.err(e))
    }

    pub fn save_registration(
        &self,
        node_slug: &str,
        bootstrap: &NodeBootstrapPayload,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO identity (id, node_slug, registered_at, orchestrator_base_url,
                     node_config_url, node_report_url, node_jwt, jwt_expires_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, '', ?6)
                 ON CONFLICT (id) DO UPDATE SET node_slug = excluded.node_slug,
                     registered_at = excluded.registered_at,
                     orchestrator_base_url = excluded.orchestrator_base_url,
                     node_config_url = excluded.node_config_url,
                     node_report_url = excluded.node_report_url,
                     jwt_expires_at = excluded.jwt_expires_at",
                params![
                    node_slug,
                    Utc::now().to_rfc3339(),
                    bootstrap.orchestrator.base_url,
                    bootstrap.orchestrator.endpoints.node_config_url,
                    bootstrap.orchestrator.endpoints.node_report_url,
                    bootstrap.auth.expires_at.to_rfc3339(),
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn identity(&self) -> Result<Option<Identity>, StateError> {
        self.conn
            .query_row(
                "SELECT node_slug, jwt_expires_at, node_config_url, node_report_url
                 FROM identity WHERE id = 1",
                [],
                |r| {
                    let expires: String = r.get(1)?;
                    Ok(Identity {
                        node_slug: r.get(0)?,
                        jwt_expires_at: DateTime::parse_from_rfc3339(&expires)
                            .map(|t| t.with_timezone(&Utc))
                            .map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    1,
                                    rusqlite::types::Type::Text,
                                    Box::new(e),
                                )
                            })?,
                        node_config_url: r.get(2)?,
                        node_report_url: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores the configuration with the worker bearer token blanked out.
    pub fn save_config(&self, config: &NodeConfigurationPayload) -> Result<(), StateError> {
        let mut stored = config.clone();
        stored.worker_api.orchestrator_bearer_token = String::new();
        let json = serde_json::to_string(&stored).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO node_config (id, config_version, fetched_at, payload_json)
                 VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET config_version = excluded.config_version,
                     fetched_at = excluded.fetched_at, payload_json = excluded.payload_json,
                     ack_status = NULL, ack_error = NULL, acked_at = NULL",
                params![config.config_version, Utc::now().to_rfc3339(), json],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn record_ack(
        &self,
        config_version: &str,
        status: ConfigAckStatus,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE node_config SET ack_status = ?2, ack_error = ?3, acked_at = ?4
                 WHERE id = 1 AND config_version = ?1",
                params![
                    config_version,
                    status.as_str(),
                    error,
                    Utc::now().to_rfc3339()
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The last configuration's version and ack status.
    pub fn last_config(&self) -> Result<Option<(String, Option<String>)>, StateError> {
        self.conn
            .query_row(
                "SELECT config_version, ack_status FROM node_config WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use cynode_contracts::node::{
        BootstrapEndpoints, BootstrapOrchestrator, ConfigEndpoints, ConfigOrchestrator, NodeAuth,
        WorkerApiConfig,
    };

    use super::*;

    fn bootstrap() -> NodeBootstrapPayload {
        NodeBootstrapPayload {
            version: 1,
            issued_at: Utc::now(),
            orchestrator: BootstrapOrchestrator {
                base_url: "http://o:12082".into(),
                endpoints: BootstrapEndpoints {
                    worker_registration_url: "http://o:12082/v1/nodes/register".into(),
                    node_config_url: "http://o:12082/v1/nodes/config".into(),
                    node_report_url: "http://o:12082/v1/nodes/capability".into(),
                },
            },
            auth: NodeAuth {
                node_jwt: "jwt-value".into(),
                node_secret: None,
                expires_at: Utc::now(),
            },
            initial_config_version: None,
        }
    }

    #[test]
    fn the_database_is_private_and_keeps_identity_but_not_the_worker_token() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let db = StateDb::open(&state).unwrap();
        let mode = std::fs::metadata(state.join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );

        db.save_registration("node-01", &bootstrap()).unwrap();
        let id = db.identity().unwrap().unwrap();
        assert_eq!(id.node_slug, "node-01");
        assert!(
            !String::from_utf8_lossy(&std::fs::read(state.join(DB_FILE)).unwrap())
                .contains("jwt-value"),
            "node JWT persisted"
        );

        let config = NodeConfigurationPayload {
            version: 1,
            config_version: "01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            issued_at: Utc::now(),
            node_slug: "node-01".into(),
            orchestrator: ConfigOrchestrator {
                base_url: "http://o".into(),
                endpoints: ConfigEndpoints {
                    worker_api_target_url: "http://w".into(),
                    node_report_url: "http://o/r".into(),
                    mcp_gateway_url: None,
                },
            },
            sandbox_registries: vec![],
            require_digest_pinning: false,
            policy: None,
            worker_api: WorkerApiConfig {
                orchestrator_bearer_token: "super-secret-token".into(),
                orchestrator_bearer_token_expires_at: None,
            },
            inference_backend: None,
            constraints: None,
            notes: String::new(),
        };
        db.save_config(&config).unwrap();
        db.record_ack(&config.config_version, ConfigAckStatus::Applied, None)
            .unwrap();
        assert_eq!(
            db.last_config().unwrap(),
            Some((config.config_version.clone(), Some("applied".into())))
        );
        drop(db);
        let bytes = std::fs::read(state.join(DB_FILE)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("super-secret-token"));

        // Reopening keeps what was stored and does not re-run the schema.
        let db = StateDb::open(&state).unwrap();
        assert!(db.identity().unwrap().is_some());
    }
}
