//! Three hosts on one machine: an orchestrator and two worker nodes, each a network namespace
//! with its own address on a bridge the test creates (10.213.0.0/24 exists only inside those
//! namespaces). Every agent is started exactly as its unit in `systemd/units.nix` starts it:
//! the same binary, arguments and `Environment=`, its `LoadCredential=` files copied into a
//! credentials directory (`CREDENTIALS_DIRECTORY`), and `NOTIFY_SOCKET` read by the test, which
//! also plays systemd's part in ordering (`After=`), the watchdog and `Restart=`.
//!
//! Real components: the dev PostgreSQL (reached through a Unix socket that forwards to its
//! loopback port), the Podman socket (a file, shared by both nodes), and one llama-server per
//! node inside the node's namespace. Users act through the real `cynork` in the orchestrator's
//! namespace. Only addresses inside the namespaces created here are contacted.
//!
//! Deviations from systemd, all for time: `WATCHDOG_USEC` is 4 s instead of the unit's 60 s;
//! the orchestrator runs as root instead of a `DynamicUser`; the test restarts a killed node
//! manager itself once its inference is back, instead of after `RestartSec=`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::netns::{Network, UnixForward};
use cynode_e2e::notify::NotifySocket;
use cynode_e2e::process::{ChildGuard, binary};
use cynode_e2e::units::{self, nix_str};
use serde_json::Value;
use sqlx::{Connection, Row};

const ORCH: &str = "10.213.0.1";
const MODEL: &str = "smollm2:135m";
const WATCHDOG_USEC: &str = "4000000";

/// One agent started as its unit starts it, with the notify socket the test reads.
struct Agent {
    process: ChildGuard,
    notify: NotifySocket,
    log: PathBuf,
}

impl Agent {
    fn start(net: &Network, host: &str, unit: &Value, dir: &Path, name: &str) -> Self {
        let (program, args) = units::exec_start(unit);
        let notify = NotifySocket::bind();
        let creds = units::load_credentials(unit, &dir.join(format!("credentials-{name}")));
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = net.command(host, &program);
        cmd.args(&args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env("NOTIFY_SOCKET", notify.path())
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env("RUST_LOG", "info")
            .envs(units::environment(unit))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        Self {
            process: ChildGuard::spawn(&mut cmd),
            notify,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn statuses(&self) -> Vec<String> {
        self.notify
            .received()
            .iter()
            .filter_map(|l| l.strip_prefix("STATUS=").map(str::to_owned))
            .collect()
    }

    async fn expect_ready(&mut self, what: &str, limit: Duration) {
        let ready = self.notify.wait_for("READY=1", limit).await;
        assert!(
            ready,
            "{what}: no READY=1 within {limit:?}; statuses {:?}\n{}",
            self.statuses(),
            self.log()
        );
    }

    /// Collects notifications until one starting with `prefix` arrives; returns its index.
    async fn wait_for_prefix(&mut self, prefix: &str, limit: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(i) = self
                .notify
                .received()
                .iter()
                .position(|l| l.starts_with(prefix))
            {
                return Some(i);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            self.notify.drain(Duration::from_millis(250)).await;
        }
    }
}

/// llama-server on the node's own loopback, as the node's inference.
fn start_inference(net: &Network, host: &str, env: &DevEnv, dir: &Path) -> ChildGuard {
    let log = std::fs::File::create(dir.join(format!("llama-{host}.log"))).unwrap();
    let mut cmd = net.command(host, &env.llama_server);
    cmd.arg("-m")
        .arg(&env.model_path)
        .args(["--alias", MODEL, "--host", "127.0.0.1", "--port", "11434"])
        .args(["-c", "512", "-t", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    ChildGuard::spawn(&mut cmd)
}

async fn wait_inference(net: &Network, host: &str) {
    for _ in 0..240 {
        let (code, out, _) = net.run(
            host,
            "curl",
            &[
                "-fsS",
                "--max-time",
                "2",
                "http://127.0.0.1:11434/v1/models",
            ],
        );
        if code == 0 && out.contains(MODEL) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("llama-server in {host} did not serve {MODEL}");
}

/// HTTP status of the control plane's `/readyz`, asked from node host `from` over the bridge.
fn readyz(net: &Network, from: &str) -> String {
    let (_, code, _) = net.run(
        from,
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &format!("http://{ORCH}:12082/readyz"),
        ],
    );
    code
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

/// cynork in the orchestrator's namespace, with its own config file.
struct Cynork<'a> {
    net: &'a Network,
    config: PathBuf,
}

impl Cynork<'_> {
    fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--gateway".into(),
            format!("http://{ORCH}:12080"),
        ]
    }

    /// `cynork ARGS` in the orchestrator's namespace.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = self.net.command("orch", binary("cynork"));
        cmd.args(self.args()).args(args);
        cmd
    }

    /// Runs `cynork ARGS`, which must succeed; its stdout.
    async fn output(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "cynork {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `task create ARGS -o json` without waiting; the task's id.
    async fn create(&self, args: &[&str]) -> String {
        let mut all = vec!["-o", "json", "task", "create"];
        all.extend_from_slice(args);
        let printed = self.output(&all).await;
        task_id(&serde_json::from_str(&printed).unwrap())
    }

    /// Runs `task create --command CMD --wait -o json EXTRA` in parallel for each command;
    /// returns the printed results.
    async fn run_tasks(&self, commands: &[String], extra: &[&str]) -> Vec<Value> {
        let mut children = Vec::new();
        for command in commands {
            let mut cmd = self.command(&["-o", "json", "task", "create", "--wait"]);
            cmd.args(extra)
                .arg("--command")
                .arg(command)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            children.push(cmd.spawn().unwrap());
        }
        let mut results = Vec::new();
        for child in children {
            let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
                .await
                .expect("cynork task create --wait finished within 180 s")
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "cynork task create: {:?}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            results.push(
                serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("cynork -o json printed no JSON ({e}): {stdout}")),
            );
        }
        results
    }
}

/// Node slug of the job that completed task `id`.
async fn job_node(db: &mut sqlx::PgConnection, task: &str) -> String {
    sqlx::query(
        "SELECT n.node_slug FROM jobs j JOIN nodes n ON n.id = j.node_id
         WHERE j.task_id = $1::uuid AND j.status = 'completed'",
    )
    .bind(task)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("no completed job for task {task}: {e}"))
    .get(0)
}

fn task_id(result: &Value) -> String {
    result["id"]
        .as_str()
        .or_else(|| result["task_id"].as_str())
        .unwrap_or_else(|| panic!("no task id in {result}"))
        .to_owned()
}

fn assert_completed(results: &[Value], marker: &str) {
    for r in results {
        assert_eq!(r["status"], "completed", "{r}");
        assert!(r.to_string().contains(marker), "{r}");
    }
}

/// A node host of a cluster: its slug and address, its labels, and whether it serves the model.
struct NodeSpec {
    name: &'static str,
    address: &'static str,
    labels: &'static [&'static str],
    inference: bool,
}

/// The orchestrator host (control plane and user gateway as their units start them) and the
/// node hosts, every node manager READY with its configuration acked, and the admin logged in
/// with cynork.
struct Cluster {
    env: DevEnv,
    net: Network,
    dir: tempfile::TempDir,
    db: sqlx::PgConnection,
    bindir: PathBuf,
    credentials: String,
    control_plane: Agent,
    gateway: Agent,
    specs: &'static [NodeSpec],
    nodes: Vec<Agent>,
    node_units: Vec<Value>,
    /// Each node's llama-server, for nodes that serve the model.
    inference: Vec<Option<ChildGuard>>,
    _pg: UnixForward,
}

impl Cluster {
    async fn start(specs: &'static [NodeSpec], extra_toml: &str) -> Self {
        let env = DevEnv::load();
        let hosts: Vec<(&str, &str)> = std::iter::once(("orch", ORCH))
            .chain(specs.iter().map(|s| (s.name, s.address)))
            .collect();
        let net = Network::new(&hosts);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_owned();

        // --- the orchestrator host: both units, secrets as credentials ---------------------
        let database_url = env.migrated_database().await;
        let pg = UnixForward::start(".s.PGSQL.5432", "127.0.0.1:5432".into());
        let mut url = url::Url::parse(&database_url).unwrap();
        url.set_host(Some("localhost")).unwrap();
        url.set_port(None).unwrap();
        url.set_query(Some(&format!("host={}", pg.dir().display())));
        let secrets = d.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        let psk = format!("psk-{}", uuid::Uuid::new_v4().simple());
        let admin_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let cred = |name: &str, value: &str| write(&secrets.join(name), value);
        let credentials = format!(
            "orchestratorCredentials = {{ database-url = {}; jwt-secret = {}; node-registration-psk = {}; bootstrap-admin-password = {}; }};",
            nix_str(cred("database-url", url.as_str())),
            nix_str(cred("jwt-secret", &uuid::Uuid::new_v4().to_string())),
            nix_str(cred("psk", &psk)),
            nix_str(cred("admin", &admin_password)),
        );
        let bindir = binary("cynode-orchestrator").parent().unwrap().to_owned();
        let (cp_unit, gw_unit) = orchestrator_units(&env, &d, &bindir, &credentials, extra_toml);
        assert!(
            units::values(&gw_unit, "Unit", "After")
                .contains(&"cynode-control-plane.service".into())
        );
        assert!(
            !units::credentials(&gw_unit)
                .iter()
                .any(|(name, _)| name == "node-registration-psk")
        );

        let mut control_plane = Agent::start(&net, "orch", &cp_unit, &d, "control-plane");
        control_plane
            .expect_ready("control plane", Duration::from_secs(60))
            .await;
        // READY=1 means migrated and listening: the node API answers at once, over the bridge.
        let (code, _, err) = net.run(
            specs[0].name,
            "curl",
            &[
                "-fsS",
                "--max-time",
                "5",
                &format!("http://{ORCH}:12082/healthz"),
            ],
        );
        assert_eq!(
            code, 0,
            "control plane not reachable from a node after READY=1: {err}"
        );
        // After=cynode-control-plane.service: the gateway starts once the control plane is ready.
        let mut gateway = Agent::start(&net, "orch", &gw_unit, &d, "user-gateway");
        gateway
            .expect_ready("user gateway", Duration::from_secs(60))
            .await;
        assert_eq!(readyz(&net, specs[0].name), "503", "ready without any node");

        // --- the node hosts ----------------------------------------------------------------
        let mut inference = Vec::new();
        let mut node_units = Vec::new();
        for spec in specs {
            let name = spec.name;
            inference.push(
                spec.inference
                    .then(|| start_inference(&net, name, &env, &d)),
            );
            let nd = d.join(name);
            std::fs::create_dir_all(nd.join("state")).unwrap();
            let inference_yaml = if spec.inference {
                "inference:\n  url: http://127.0.0.1:11434\n  image: localhost/cynode-no-such-image:latest\n  startup_timeout_seconds: 60\n"
            } else {
                "inference:\n  mode: disabled\n"
            };
            let yaml = write(
                &nd.join("node.yaml"),
                &format!(
                    "version: 1\n\
                     orchestrator:\n  url: http://{ORCH}:12082\n  capability_report_interval_seconds: 5\n\
                     node:\n  id: {name}\n  labels: [{labels}]\n\
                     worker_api:\n  public_base_url: http://{address}:12090\n\
                     sandbox:\n  default_image: {image}\n\
                     {inference_yaml}\
                     shutdown:\n  grace_seconds: 10\n",
                    labels = spec.labels.join(", "),
                    address = spec.address,
                    image = env.sandbox_image
                ),
            );
            let psk_file = write(&nd.join("psk"), &psk);
            let evaluated = units::evaluate(&format!(
                "bindir = {}; nodeConfig = {}; nodeCredentials.node-registration-psk = {}; podmanSocket = {}; nodeStateDir = {};",
                nix_str(bindir.to_string_lossy()),
                nix_str(&yaml),
                nix_str(&psk_file),
                nix_str(env.podman_socket.to_string_lossy()),
                nix_str(nd.join("state").to_string_lossy()),
            ));
            node_units.push(evaluated["cynode-node-manager"].clone());
        }
        for spec in specs.iter().filter(|s| s.inference) {
            wait_inference(&net, spec.name).await;
        }

        let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
        let mut nodes = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            nodes.push(Agent::start(
                &net,
                spec.name,
                &node_units[i],
                &d.join(spec.name),
                "node-manager",
            ));
        }
        for (i, spec) in specs.iter().enumerate() {
            nodes[i]
                .expect_ready(spec.name, Duration::from_secs(120))
                .await;
            // READY=1 only after the configuration was acked as applied.
            let row = sqlx::query(
                "SELECT config_ack_status, config_ack_version = config_version, worker_api_target_url
                 FROM nodes WHERE node_slug = $1",
            )
            .bind(spec.name)
            .fetch_one(&mut db)
            .await
            .unwrap();
            assert_eq!(row.get::<Option<String>, _>(0).as_deref(), Some("applied"));
            assert_eq!(row.get::<Option<bool>, _>(1), Some(true));
            assert_eq!(
                row.get::<Option<String>, _>(2),
                Some(format!("http://{}:12090", spec.address))
            );
            let statuses = nodes[i].statuses();
            assert!(statuses.len() >= 3, "{}: {statuses:?}", spec.name);
        }
        // Ready once the Project Manager model answered its warm-up on one of the nodes.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while readyz(&net, specs[0].name) != "200" && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(
            readyz(&net, specs[0].name),
            "200",
            "not ready with all nodes"
        );

        let cluster = Self {
            env,
            net,
            dir,
            db,
            bindir,
            credentials,
            control_plane,
            gateway,
            specs,
            nodes,
            node_units,
            inference,
            _pg: pg,
        };
        let password = write(&cluster.dir.path().join("password"), &admin_password);
        let login = cluster
            .cynork()
            .command(&["auth", "login", "-u", "admin", "--password-stdin"])
            .stdin(std::fs::File::open(&password).unwrap())
            .output()
            .await
            .unwrap();
        assert!(
            login.status.success(),
            "cynork auth login: {}",
            String::from_utf8_lossy(&login.stderr)
        );
        cluster
    }

    fn cynork(&self) -> Cynork<'_> {
        Cynork {
            net: &self.net,
            config: self.dir.path().join("cynork.yaml"),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.specs.iter().position(|s| s.name == name).unwrap()
    }

    /// Starts node `name`'s manager again, as `Restart=` would, and waits for READY=1.
    async fn restart_node(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i] = Agent::start(
            &self.net,
            name,
            &self.node_units[i],
            &self.dir.path().join(name),
            "node-manager",
        );
        self.nodes[i]
            .expect_ready(&format!("{name} after restart"), Duration::from_secs(120))
            .await;
    }

    /// Restarts the control plane with `extra_toml` in its configuration file, as a changed
    /// NixOS configuration would, and waits for READY=1.
    async fn restart_control_plane(&mut self, extra_toml: &str) {
        let status = self
            .control_plane
            .process
            .terminate(Duration::from_secs(60))
            .await;
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        let (cp_unit, _) = orchestrator_units(
            &self.env,
            self.dir.path(),
            &self.bindir,
            &self.credentials,
            extra_toml,
        );
        self.control_plane = Agent::start(
            &self.net,
            "orch",
            &cp_unit,
            self.dir.path(),
            "control-plane",
        );
        self.control_plane
            .expect_ready("control plane after restart", Duration::from_secs(60))
            .await;
    }

    /// Stops every agent the way systemd does, and checks each exited cleanly.
    async fn stop(self) {
        for mut agent in self
            .nodes
            .into_iter()
            .chain([self.gateway, self.control_plane])
        {
            let status = agent.process.terminate(Duration::from_secs(60)).await;
            assert!(
                status.is_some_and(|s| s.success()),
                "{status:?}\n{}",
                agent.log()
            );
        }
    }
}

/// The orchestrator's two units for a config file with `extra_toml` appended.
fn orchestrator_units(
    env: &DevEnv,
    dir: &Path,
    bindir: &Path,
    credentials: &str,
    extra_toml: &str,
) -> (Value, Value) {
    let toml = write(
        &dir.join(format!(
            "orchestrator-{}.toml",
            uuid::Uuid::new_v4().simple()
        )),
        &format!(
            "public_url = \"http://{ORCH}:12082\"\n\
             control_plane_listen_addr = \"0.0.0.0:12082\"\n\
             user_gateway_listen_addr = \"0.0.0.0:12080\"\n\
             inference_model = \"{MODEL}\"\n\
             sandbox_image = \"{}\"\n\
             {extra_toml}",
            env.sandbox_image
        ),
    );
    let units = units::evaluate(&format!(
        "bindir = {}; orchestratorConfig = {}; {credentials}",
        nix_str(bindir.to_string_lossy()),
        nix_str(&toml)
    ));
    (
        units["cynode-control-plane"].clone(),
        units["cynode-user-gateway"].clone(),
    )
}

/// The cluster tests run one at a time: each starts several llama-servers and node managers on
/// a two-core machine.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TWO_NODES: &[NodeSpec] = &[
    NodeSpec {
        name: "node-a",
        address: "10.213.0.2",
        labels: &[],
        inference: true,
    },
    NodeSpec {
        name: "node-b",
        address: "10.213.0.3",
        labels: &[],
        inference: true,
    },
];

#[tokio::test]
async fn two_nodes_on_their_own_hosts_share_the_work_and_one_survives_losing_inference() {
    let _one = ONE_CLUSTER.lock().await;
    let mut c = Cluster::start(TWO_NODES, "").await;

    // --- users: tasks run on both nodes ----------------------------------------------------
    let mut seen = BTreeSet::new();
    for round in 0..3 {
        let commands: Vec<String> = (0..4)
            .map(|i| format!("sleep 1; echo round-{round}-task-{i}"))
            .collect();
        let results = c.cynork().run_tasks(&commands, &[]).await;
        assert_completed(&results, &format!("round-{round}"));
        for r in &results {
            seen.insert(job_node(&mut c.db, &task_id(r)).await);
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "tasks ran only on {seen:?}");

    // --- node-b loses its inference: degraded, no watchdog pings, killed as systemd would --
    drop(c.inference[1].take());
    let degraded = c.nodes[1]
        .wait_for_prefix("STATUS=degraded", Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("node-b never said degraded: {:?}", c.nodes[1].statuses()));
    c.nodes[1].notify.drain(Duration::from_secs(5)).await;
    assert!(
        !c.nodes[1].notify.received()[degraded..]
            .iter()
            .any(|l| l == "WATCHDOG=1"),
        "node-b kept pinging the watchdog without inference"
    );
    // WatchdogSec= passed without a ping: systemd kills it (SIGABRT there; SIGKILL here, so
    // that no core file lands in the working directory).
    kill_node(&mut c.nodes[1]).await;
    // Its worker API (the node manager's child) is gone with it.
    let (code, _, _) = c.net.run(
        "orch",
        "curl",
        &["-sS", "--max-time", "3", "http://10.213.0.3:12090/healthz"],
    );
    assert_ne!(code, 0, "node-b's worker API outlived its node manager");

    let commands: Vec<String> = (0..4).map(|i| format!("echo without-b-{i}")).collect();
    let results = c.cynork().run_tasks(&commands, &[]).await;
    assert_completed(&results, "without-b");
    for r in &results {
        assert_eq!(job_node(&mut c.db, &task_id(r)).await, "node-a", "{r}");
    }

    // --- inference back, node-b restarted (Restart=on-failure): READY again, takes work ----
    c.inference[1] = Some(start_inference(&c.net, "node-b", &c.env, c.dir.path()));
    wait_inference(&c.net, "node-b").await;
    c.restart_node("node-b").await;
    let mut back = false;
    for round in 0..5 {
        let commands: Vec<String> = (0..4)
            .map(|i| format!("sleep 1; echo back-{round}-{i}"))
            .collect();
        let results = c.cynork().run_tasks(&commands, &[]).await;
        assert_completed(&results, "back-");
        for r in &results {
            back |= job_node(&mut c.db, &task_id(r)).await == "node-b";
        }
        if back {
            break;
        }
    }
    assert!(back, "node-b took no work after its restart");
    // node-a stayed healthy throughout.
    assert!(
        c.nodes[0].process.0.try_wait().unwrap().is_none(),
        "{}",
        c.nodes[0].log()
    );
    c.stop().await;
}

/// SIGKILL, and wait until it is gone.
async fn kill_node(agent: &mut Agent) {
    let pid = agent.process.0.id().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        agent
            .process
            .wait_exit(Duration::from_secs(30))
            .await
            .is_some()
    );
}

const THREE_NODES: &[NodeSpec] = &[
    NodeSpec {
        name: "node-a",
        address: "10.213.0.2",
        labels: &["eu", "ssd"],
        inference: true,
    },
    NodeSpec {
        name: "node-b",
        address: "10.213.0.3",
        labels: &["ssd"],
        inference: true,
    },
    NodeSpec {
        name: "node-c",
        address: "10.213.0.4",
        labels: &["spare"],
        inference: false,
    },
];

/// Job row of task `id`: the node it ran on, how many deliveries it took, and its status.
async fn job_of(db: &mut sqlx::PgConnection, task: &str) -> (Option<String>, i32, String) {
    let row = sqlx::query(
        "SELECT n.node_slug, j.attempts, j.status FROM jobs j LEFT JOIN nodes n ON n.id = j.node_id
         WHERE j.task_id = $1::uuid",
    )
    .bind(task)
    .fetch_one(db)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Polls task `id`'s job until `pred` holds (or panics after `limit`).
async fn wait_job(
    db: &mut sqlx::PgConnection,
    task: &str,
    limit: Duration,
    pred: impl Fn(&(Option<String>, i32, String)) -> bool,
) -> (Option<String>, i32, String) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let job = job_of(db, task).await;
        if pred(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {task}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn three_nodes_place_by_fit_and_load_drain_and_lose_a_node_mid_job() {
    let _one = ONE_CLUSTER.lock().await;
    let mut c = Cluster::start(THREE_NODES, "dispatch_lease = 6\n").await;
    let on = |results: &[Value]| results.iter().map(task_id).collect::<Vec<_>>();

    // Inference jobs go only where the model is served; labelled ones only where the labels are.
    let inference: Vec<String> = (0..3).map(|i| format!("echo inference-{i}")).collect();
    let results = c.cynork().run_tasks(&inference, &["--use-inference"]).await;
    assert_completed(&results, "inference-");
    for id in on(&results) {
        let node = job_node(&mut c.db, &id).await;
        assert_ne!(
            node, "node-c",
            "an inference job went to the node without the model"
        );
    }
    let eu: Vec<String> = (0..2).map(|i| format!("echo eu-{i}")).collect();
    let results = c.cynork().run_tasks(&eu, &["--require-label", "eu"]).await;
    assert_completed(&results, "eu-");
    for id in on(&results) {
        assert_eq!(job_node(&mut c.db, &id).await, "node-a");
    }

    // Equal work spreads over equal nodes: six at once, two each.
    let spread: Vec<String> = (0..6)
        .map(|i| format!("sleep 2; echo spread-{i}"))
        .collect();
    let results = c.cynork().run_tasks(&spread, &[]).await;
    assert_completed(&results, "spread-");
    let mut per_node = std::collections::BTreeMap::<String, u32>::new();
    for id in on(&results) {
        *per_node.entry(job_node(&mut c.db, &id).await).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");

    // Drain node-c while it runs a job: the job finishes there, new work goes elsewhere.
    let long = c
        .cynork()
        .create(&[
            "--command",
            "sleep 4; echo long-on-c",
            "--require-label",
            "spare",
        ])
        .await;
    wait_job(&mut c.db, &long, Duration::from_secs(30), |j| {
        j.2 == "running"
    })
    .await;
    let drained = c.cynork().output(&["node", "drain", "node-c"]).await;
    assert!(drained.contains("state=drained"), "{drained}");
    let after: Vec<String> = (0..3).map(|i| format!("echo after-drain-{i}")).collect();
    let results = c.cynork().run_tasks(&after, &[]).await;
    assert_completed(&results, "after-drain-");
    for id in on(&results) {
        assert_ne!(job_node(&mut c.db, &id).await, "node-c");
    }
    let job = wait_job(&mut c.db, &long, Duration::from_secs(30), |j| {
        j.2 == "completed"
    })
    .await;
    assert_eq!(
        job.0.as_deref(),
        Some("node-c"),
        "the running job finished where it was"
    );
    let undrained = c.cynork().output(&["node", "undrain", "node-c"]).await;
    assert!(undrained.contains("state=active"), "{undrained}");

    // A node dies mid-job: the job runs again on another node and completes once there.
    let doomed = c
        .cynork()
        .create(&["--command", "sleep 6; echo survived"])
        .await;
    let (node, _, _) = wait_job(&mut c.db, &doomed, Duration::from_secs(30), |j| {
        j.2 == "running"
    })
    .await;
    let node = node.unwrap();
    let i = c.index(&node);
    kill_node(&mut c.nodes[i]).await;
    let job = wait_job(&mut c.db, &doomed, Duration::from_secs(90), |j| {
        j.2 == "completed"
    })
    .await;
    assert_ne!(job.0.as_deref(), Some(node.as_str()), "{job:?}");
    // One setback, on the lost node (its worker, ending with its parent, reported the run
    // interrupted, which gives the attempt back; a silent node would use one up).
    let setbacks: Value = sqlx::query_scalar("SELECT setbacks FROM jobs WHERE task_id = $1::uuid")
        .bind(&doomed)
        .fetch_one(&mut c.db)
        .await
        .unwrap();
    let setbacks = setbacks.as_array().unwrap();
    assert_eq!(setbacks.len(), 1, "{setbacks:?}");
    assert_eq!(setbacks[0]["node"], node.as_str(), "{setbacks:?}");
    let result = c.cynork().output(&["task", "result", &doomed]).await;
    assert_eq!(result.matches("survived").count(), 1, "{result}");
    c.restart_node(&node).await;

    // A sandbox limit changes: every node applies it in place (same process) and acks it.
    let pids: Vec<u32> = c.nodes.iter().map(|n| n.process.0.id().unwrap()).collect();
    let versions: Vec<String> =
        sqlx::query_scalar("SELECT config_version FROM nodes ORDER BY node_slug")
            .fetch_all(&mut c.db)
            .await
            .unwrap();
    c.restart_control_plane("dispatch_lease = 6\n[node_sandbox_limits]\nmemory_mib = 256\n")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let acked: Vec<(String, Option<String>, bool)> = sqlx::query_as(
            "SELECT config_version, config_ack_status, config_ack_version = config_version
             FROM nodes ORDER BY node_slug",
        )
        .fetch_all(&mut c.db)
        .await
        .unwrap();
        let applied = acked
            .iter()
            .zip(&versions)
            .all(|((now, status, acked), before)| {
                now != before && status.as_deref() == Some("applied") && *acked
            });
        if applied {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not applied: {acked:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (node, pid) in c.nodes.iter_mut().zip(pids) {
        assert_eq!(node.process.0.id(), Some(pid), "the node manager restarted");
        assert!(
            node.process.0.try_wait().unwrap().is_none(),
            "{}",
            node.log()
        );
    }
    let limited = c.cynork().create(&["--command", "echo limited"]).await;
    wait_job(&mut c.db, &limited, Duration::from_secs(60), |j| {
        j.2 == "completed"
    })
    .await;
    let memory: i64 = sqlx::query_scalar(
        "SELECT (result->'limits'->>'memory_bytes')::bigint FROM jobs WHERE task_id = $1::uuid",
    )
    .bind(&limited)
    .fetch_one(&mut c.db)
    .await
    .unwrap();
    assert_eq!(memory, 256 * 1024 * 1024);

    c.stop().await;
}
