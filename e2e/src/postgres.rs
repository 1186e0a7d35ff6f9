//! A PostgreSQL server of a test's own, for tests that stop and start the database: the shared
//! dev server must stay up for every other test. A fresh cluster on a free loopback port, its
//! socket and data in a temporary directory, run as the `postgres` system user (the server
//! refuses to run as root); trust authentication, which is safe only because nothing but this
//! test can reach the port. Stopped (immediately) and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";

#[derive(Debug)]
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// Initialises and starts a new cluster.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cynode-pg-")
            .tempdir()
            .unwrap();
        run("chown", &["postgres:postgres", path(dir.path())]);
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.as_postgres(
            "initdb",
            &["-D", path(&pg.data()), "-U", "postgres", "-A", "trust"],
        );
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut, as in an outage).
    pub fn stop(&self) {
        self.as_postgres(
            "pg_ctl",
            &["-D", path(&self.data()), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the stopped server again on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                path(&self.data()),
                "-o",
                &options,
                "-l",
                path(&log),
                "-w",
                "start",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let program = format!("{BIN}/{program}");
        let mut all = vec!["-u", "postgres", "--", program.as_str()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl")])
            .args(["-D", path(&self.data()), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
