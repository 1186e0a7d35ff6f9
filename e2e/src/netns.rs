//! Hosts on one machine: Linux network namespaces joined by a bridge that lives in a namespace
//! of its own, so every address (e.g. 10.213.0.0/24) exists only inside namespaces the test
//! created and the host's network is never touched. Everything is removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use tokio::net::{TcpStream, UnixListener};
use tokio::process::Command;

fn ip(args: &[&str]) {
    let out = StdCommand::new("ip")
        .args(args)
        .output()
        .expect("ip (Debian package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridged network of named hosts, each a network namespace with one address.
#[derive(Debug)]
pub struct Network {
    prefix: String,
    switch: String,
    hosts: Vec<(String, String)>,
}

impl Network {
    /// Creates the switch namespace with bridge `br0`, and per host `(name, address)` a
    /// namespace with loopback up and `eth0` holding `address/24`, plugged into the bridge.
    pub fn new(hosts: &[(&str, &str)]) -> Self {
        // Short and unique per process: interface names stay under 16 bytes.
        let prefix = format!("cyn{}", std::process::id() % 100_000);
        let switch = format!("{prefix}-sw");
        // Left over by a killed run whose pid this one reuses.
        let stale = std::iter::once(switch.clone())
            .chain(hosts.iter().map(|(name, _)| format!("{prefix}-{name}")));
        for ns in stale {
            let _ = StdCommand::new("ip")
                .args(["netns", "del", &ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
        ip(&["netns", "add", &switch]);
        let mut net = Self {
            prefix,
            switch: switch.clone(),
            hosts: Vec::new(),
        };
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (i, (name, address)) in hosts.iter().enumerate() {
            let ns = format!("{}-{name}", net.prefix);
            ip(&["netns", "add", &ns]);
            net.hosts.push(((*name).to_owned(), ns.clone()));
            let port = format!("p{i}");
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    /// The namespace name of host `name`.
    pub fn ns(&self, name: &str) -> &str {
        &self
            .hosts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no host {name}"))
            .1
    }

    /// A command that runs `program` inside host `name`'s namespace (`ip netns exec` execs it,
    /// so the child's pid is the program's).
    pub fn command(&self, name: &str, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(name)])
            .arg(program.as_ref());
        cmd
    }

    /// Runs `program args` in host `name` and returns (exit code, stdout, stderr).
    pub fn run(
        &self,
        name: &str,
        program: impl AsRef<Path>,
        args: &[&str],
    ) -> (i32, String, String) {
        let out = StdCommand::new("ip")
            .args(["netns", "exec", self.ns(name)])
            .arg(program.as_ref())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            let _ = StdCommand::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = StdCommand::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}

/// A Unix socket in a directory of its own that forwards every connection to a TCP address in
/// the test's namespace: processes in other namespaces reach e.g. the host's loopback-only
/// PostgreSQL through the file system (`host=<dir>` in a PostgreSQL URL), and nothing else.
#[derive(Debug)]
pub struct UnixForward {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UnixForward {
    /// Listens on `<dir>/<file_name>` and forwards to `target` (`host:port`).
    pub fn start(file_name: &str, target: String) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name);
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        // Any local user may connect (a unit's DynamicUser too); the database still authenticates.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        // A runtime of its own: the test's runtime may be blocked in a synchronous command.
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = UnixListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((mut inbound, _)) = accepted else { break };
                            let target = target.clone();
                            tokio::spawn(async move {
                                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                        .await;
                                }
                            });
                        }
                    }
                }
            });
        });
        Self {
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for UnixForward {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
