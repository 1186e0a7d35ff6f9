//! The units of `systemd/` under real systemd: Debian 12 booted with systemd-nspawn (PID 1 is
//! systemd 252) in a network namespace the test created. Installed as the README's "Deploy with
//! systemd" says: binaries in /usr/bin, units in /etc/systemd/system, settings in /etc/cynode,
//! secrets in /etc/cynode/credentials. Then `systemctl enable --now` each one and check what
//! systemd says.
//!
//! What is bound in from the host: the built binaries; the dev PostgreSQL through a Unix socket
//! that forwards to its loopback port; the host's Podman socket at /run/podman/podman.sock and the
//! sandbox mount root at the same path inside and out (Podman on the host resolves job
//! directories by path). The container has no Podman of its own, so a stand-in `podman.socket`
//! unit satisfies the node units' `Requires=podman.socket`. Inference is a llama-server the test
//! starts in the container's network namespace.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::netns::{Network, UnixForward};
use cynode_e2e::nspawn::{self, Container};
use cynode_e2e::process::{ChildGuard, binary};
use sqlx::{Connection, Row};

const MODEL: &str = "smollm2:135m";
const UNITS: [&str; 4] = [
    "cynode-control-plane.service",
    "cynode-user-gateway.service",
    "cynode-node-manager.service",
    "cynode-worker-api.service",
];
/// Same path on the host and in the container: the host's Podman bind-mounts job directories.
const MOUNT_ROOT: &str = "/var/lib/cynode/state/sandbox_mounts";

const PODMAN_STANDIN: &str = "\
[Unit]
Description=Stand-in: the host's Podman API socket is bound in at /run/podman/podman.sock

[Socket]
ListenStream=/run/podman-standin/unused.sock
";
/// systemd refuses a socket unit without its service; this one is never triggered.
const PODMAN_SERVICE_STANDIN: &str = "\
[Unit]
Description=Stand-in for podman.service (never started: nothing connects to the stand-in socket)

[Service]
ExecStart=/bin/false
";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn systemctl(c: &Container, args: &[&str]) -> (i32, String) {
    let mut full = vec!["systemctl", "--no-pager"];
    full.extend_from_slice(args);
    let (code, out, err) = c.exec(&full);
    (code, format!("{out}{err}"))
}

fn assert_active(c: &Container, unit: &str) {
    let state = c.property(unit, "ActiveState");
    assert_eq!(state, "active", "{unit}: {state}\n{}", c.journal(unit));
}

/// After a failed start: failed, no restart within `wait`, and the exit status `status`.
async fn assert_failed_without_restart(c: &Container, unit: &str, status: &str, wait: Duration) {
    tokio::time::sleep(wait).await;
    let journal = c.journal(unit);
    assert_eq!(
        c.property(unit, "ActiveState"),
        "failed",
        "{unit}\n{journal}"
    );
    assert_eq!(
        c.property(unit, "NRestarts"),
        "0",
        "{unit} restarted\n{journal}"
    );
    assert_eq!(
        c.property(unit, "ExecMainStatus"),
        status,
        "{unit}\n{journal}"
    );
}

fn curl(net: &Network, url: &str) -> (i32, String) {
    let (code, out, err) = net.run("host", "curl", &["-sS", "--max-time", "5", url]);
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn every_unit_runs_under_systemd_as_documented() {
    let env = DevEnv::load();
    let rootfs = nspawn::rootfs();
    let net = Network::new(&[("host", "10.213.1.2")]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // /etc/cynode: settings and credentials.
    let database_url = env.migrated_database().await;
    let pg = UnixForward::start(".s.PGSQL.5432", "127.0.0.1:5432".into());
    let mut url = url::Url::parse(&database_url).unwrap();
    url.set_host(Some("localhost")).unwrap();
    url.set_port(None).unwrap();
    url.set_query(Some("host=/run/cynode-pg"));
    let etc = d.join("etc-cynode");
    let creds = etc.join("credentials");
    let admin_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    write(&creds.join("database-url"), url.as_str());
    write(&creds.join("jwt-secret"), &uuid::Uuid::new_v4().to_string());
    write(
        &creds.join("node-registration-psk"),
        &format!("psk-{}", uuid::Uuid::new_v4().simple()),
    );
    write(&creds.join("bootstrap-admin-password"), &admin_password);
    write(
        &creds.join("worker-api-bearer-token"),
        &uuid::Uuid::new_v4().to_string(),
    );
    write(
        &etc.join("orchestrator.toml"),
        &format!(
            "public_url = \"http://127.0.0.1:12082\"\ninference_model = \"{MODEL}\"\nsandbox_image = \"{}\"\n",
            env.sandbox_image
        ),
    );
    let node_yaml = format!(
        "version: 1\n\
         orchestrator:\n  url: http://127.0.0.1:12082\n\
         node:\n  id: nspawn-node\n\
         worker_api:\n  listen_port: 12091\n  public_base_url: http://127.0.0.1:12091\n\
         sandbox:\n  default_image: {}\n\
         inference:\n  url: http://127.0.0.1:11434\n  image: localhost/cynode-no-such-image:latest\n  startup_timeout_seconds: 60\n",
        env.sandbox_image
    );
    write(&etc.join("node.yaml"), &node_yaml);
    std::fs::create_dir_all(MOUNT_ROOT).unwrap();
    let standin = d.join("podman.socket");
    write(&standin, PODMAN_STANDIN);
    let standin_service = d.join("podman.service");
    write(&standin_service, PODMAN_SERVICE_STANDIN);

    let systemd_dir = cynode_e2e::units::systemd_dir();
    let mut ro: Vec<(PathBuf, String)> = vec![(etc.clone(), "/etc/cynode".into())];
    for bin in [
        "cynode-orchestrator",
        "cynode-node-manager",
        "cynode-worker-api",
    ] {
        ro.push((binary(bin), format!("/usr/bin/{bin}")));
    }
    for unit in UNITS {
        ro.push((
            systemd_dir.join(unit),
            format!("/etc/systemd/system/{unit}"),
        ));
    }
    // A node with Podman has containers-common's default seccomp profile, which the worker
    // tightens for its sandboxes; the rootfs has no Podman, the host's socket stands in for it.
    let seccomp = cynode_contracts::worker_cli::DEFAULT_SECCOMP_BASE;
    ro.push((PathBuf::from(seccomp), seccomp.into()));
    ro.push((standin, "/etc/systemd/system/podman.socket".into()));
    ro.push((standin_service, "/etc/systemd/system/podman.service".into()));
    let rw: Vec<(PathBuf, String)> = vec![
        (env.podman_socket.clone(), "/run/podman/podman.sock".into()),
        (PathBuf::from(MOUNT_ROOT), MOUNT_ROOT.into()),
        (pg.dir(), "/run/cynode-pg".into()),
    ];
    let ro: Vec<(PathBuf, &str)> = ro.iter().map(|(h, c)| (h.clone(), c.as_str())).collect();
    let rw: Vec<(PathBuf, &str)> = rw.iter().map(|(h, c)| (h.clone(), c.as_str())).collect();
    let c = Container::boot(&rootfs, net.ns("host"), &rw, &ro, d.join("console.log")).await;

    // The orchestrator: active only once READY=1 came (migrated and listening).
    let (code, out) = systemctl(&c, &["enable", "--now", "cynode-control-plane.service"]);
    assert_eq!(
        code,
        0,
        "{out}\n{}",
        c.journal("cynode-control-plane.service")
    );
    assert_active(&c, "cynode-control-plane.service");
    let (code, body) = curl(&net, "http://127.0.0.1:12082/healthz");
    assert_eq!(code, 0, "control plane active but not answering: {body}");
    let (_, status) = systemctl(&c, &["status", "cynode-control-plane.service"]);
    assert!(status.contains("Status: \""), "{status}");
    let (code, out) = systemctl(&c, &["enable", "--now", "cynode-user-gateway.service"]);
    assert_eq!(
        code,
        0,
        "{out}\n{}",
        c.journal("cynode-user-gateway.service")
    );
    assert_active(&c, "cynode-user-gateway.service");
    assert_eq!(
        c.property("cynode-user-gateway.service", "User"),
        "cynode-orchestrator"
    );

    // The node manager: active only after it acked its configuration.
    let llama_log = std::fs::File::create(d.join("llama.log")).unwrap();
    let mut llama = net.command("host", &env.llama_server);
    llama
        .arg("-m")
        .arg(&env.model_path)
        .args([
            "--alias",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            "11434",
            "-c",
            "512",
            "-t",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(llama_log));
    let _llama = ChildGuard::spawn(&mut llama);
    let mut served = false;
    for _ in 0..240 {
        if curl(&net, "http://127.0.0.1:11434/v1/models")
            .1
            .contains(MODEL)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(served, "llama-server did not come up");
    let (code, out) = systemctl(&c, &["enable", "--now", "cynode-node-manager.service"]);
    let journal = c.journal("cynode-node-manager.service");
    assert_eq!(code, 0, "{out}\n{journal}");
    assert_active(&c, "cynode-node-manager.service");
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let row = sqlx::query(
        "SELECT config_ack_status, config_ack_version = config_version FROM nodes WHERE node_slug = 'nspawn-node'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(row.get::<Option<String>, _>(0).as_deref(), Some("applied"));
    assert_eq!(row.get::<Option<bool>, _>(1), Some(true));
    let (_, status) = systemctl(&c, &["status", "cynode-node-manager.service"]);
    assert!(status.contains("Status: \""), "{status}");
    assert!(
        status.contains("cynode-worker-api"),
        "worker API not in the unit's cgroup: {status}"
    );
    let (code, body) = curl(&net, "http://127.0.0.1:12091/healthz");
    assert_eq!(code, 0, "the node's worker API does not answer: {body}");
    // Landlock and the capability drop ran under the unit's SystemCallFilter= (no SIGSYS).
    assert!(journal.contains("self-hardening applied"), "{journal}");

    // A job through the whole chain: gateway, dispatcher, worker API, the host's Podman.
    let cynork = binary("cynork");
    let cfg = d.join("cynork.yaml");
    let (code, _, err) = {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip netns exec {ns} {cynork} --config {cfg} --gateway http://127.0.0.1:12080 auth login -u admin --password-stdin < {pw} && \
                 ip netns exec {ns} {cynork} --config {cfg} -o json task create --wait --command 'echo hello from nspawn'",
                ns = net.ns("host"),
                cynork = cynork.display(),
                cfg = cfg.display(),
                pw = creds.join("bootstrap-admin-password").display(),
            ))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        code,
        Some(0),
        "{err}\n{}",
        c.journal("cynode-node-manager.service")
    );

    // The worker API as its own unit.
    let (code, out) = systemctl(&c, &["enable", "--now", "cynode-worker-api.service"]);
    assert_eq!(code, 0, "{out}\n{}", c.journal("cynode-worker-api.service"));
    assert_active(&c, "cynode-worker-api.service");
    let mut answered = false;
    for _ in 0..50 {
        if curl(&net, "http://127.0.0.1:12090/healthz").0 == 0 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "{}", c.journal("cynode-worker-api.service"));

    // Bad input. A missing credential: failed (243/CREDENTIALS), no restart loop.
    std::fs::remove_file(creds.join("worker-api-bearer-token")).unwrap();
    let (code, _) = systemctl(&c, &["restart", "cynode-worker-api.service"]);
    assert_ne!(code, 0);
    assert_failed_without_restart(
        &c,
        "cynode-worker-api.service",
        "243",
        Duration::from_secs(8),
    )
    .await;
    let journal = c.journal("cynode-worker-api.service");
    assert!(
        journal
            .lines()
            .any(|l| l.contains("worker-api-bearer-token") || l.contains("CREDENTIALS")),
        "{journal}"
    );

    // An invalid node.yaml: exit 78, one line naming the problem, no restart loop.
    write(
        &etc.join("node.yaml"),
        &format!("{node_yaml}no_such_key: 1\n"),
    );
    let (code, _) = systemctl(&c, &["restart", "cynode-node-manager.service"]);
    assert_ne!(code, 0);
    assert_failed_without_restart(
        &c,
        "cynode-node-manager.service",
        "78",
        Duration::from_secs(13),
    )
    .await;
    let journal = c.journal("cynode-node-manager.service");
    assert!(journal.contains("no_such_key"), "{journal}");

    // A missing orchestrator.toml: the start is refused before anything runs, once.
    std::fs::remove_file(etc.join("orchestrator.toml")).unwrap();
    let (code, _) = systemctl(&c, &["restart", "cynode-user-gateway.service"]);
    assert_ne!(code, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.property("cynode-user-gateway.service", "NRestarts"), "0");
    let (_, status) = systemctl(&c, &["status", "cynode-user-gateway.service"]);
    assert!(
        status.contains("AssertPathExists=/etc/cynode/orchestrator.toml"),
        "{status}"
    );

    c.poweroff().await;
    // The job directories this test's jobs left in the host's mount root.
    let jobs: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for job in jobs {
        let _ = std::fs::remove_dir_all(Path::new(MOUNT_ROOT).join(job.to_string()));
    }
}
