//! The real `cynode-orchestrator all` on a fresh migrated database, as the orchestrator and
//! teams features start it: its secrets, its addresses, and a small pool onto its database.

use std::time::Duration;

use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::{DevEnv, free_port};
use sqlx::postgres::PgPoolOptions;
use tokio::process::Command;

pub const PSK: &str = "feature-psk-0123456789";
pub const JWT_SECRET: &str = "feature-jwt-secret-0123456789abcdef";
pub const ADMIN_PASSWORD: &str = "feature-admin-password";
/// How long a feature waits for a process or a condition.
pub const LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Orchestrator {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
    pub cp: String,
    pub gw: String,
    /// The MCP gateway's endpoint.
    pub mcp: String,
    pub database_url: String,
    pub db: sqlx::PgPool,
}

impl Orchestrator {
    /// Starts it with `env` on top of what every feature sets, and waits until the control
    /// plane and the gateway answer.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let db = DevEnv::load().migrated_database().await;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("admin-password");
        std::fs::write(&secret, ADMIN_PASSWORD).unwrap();
        let (cp_port, gw_port, mcp_port) = (free_port(), free_port(), free_port());
        let cp = format!("http://127.0.0.1:{cp_port}");
        let gw = format!("http://127.0.0.1:{gw_port}");
        let mut command = Command::new(binary("cynode-orchestrator"));
        command
            .arg("all")
            .env("DATABASE_URL", &db)
            .env("JWT_SECRET", JWT_SECRET)
            .env("NODE_REGISTRATION_PSK", PSK)
            .env("BOOTSTRAP_ADMIN_PASSWORD_FILE", &secret)
            .env("INFERENCE_MODEL", "smollm2:135m")
            // A few connections per scenario: the runners bound how many run at once.
            .env("DATABASE_POOL_SIZE", "4")
            .env("CONTROL_PLANE_LISTEN_ADDR", format!("127.0.0.1:{cp_port}"))
            .env("USER_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gw_port}"))
            .env("MCP_LISTEN_ADDR", format!("127.0.0.1:{mcp_port}"))
            .env("ORCHESTRATOR_PUBLIC_URL", &cp)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = ChildGuard::spawn(&mut command);
        assert!(
            wait_http(&format!("{cp}/healthz"), 200, LIMIT).await,
            "control plane did not start"
        );
        assert!(
            wait_http(&format!("{gw}/healthz"), 200, LIMIT).await,
            "gateway did not start"
        );
        Self {
            _child: child,
            _dir: dir,
            cp,
            gw,
            mcp: format!("http://127.0.0.1:{mcp_port}/mcp"),
            db: PgPoolOptions::new()
                .max_connections(2)
                .connect(&db)
                .await
                .unwrap(),
            database_url: db,
        }
    }
}
