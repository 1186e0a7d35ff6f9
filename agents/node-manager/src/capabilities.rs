//! The node's real facts for `node_capability_report_v1`: read from `/proc`, `/etc/os-release`,
//! the device nodes, the Podman REST API and the inference URL. Nothing is made up: a fact we
//! cannot read is left out rather than guessed.

use std::path::Path;

use chrono::Utc;
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::node::{
    Compute, ContainerRuntime, Gpu, GpuDevice, InferenceCapability, NodeCapabilityReport,
    NodeIdentity, Platform, SandboxCapability, WorkerApiEndpoint,
};
use cynode_contracts::worker_cli;

use crate::config::{Config, SandboxMode};
use crate::model_server::ModelSnapshot;

/// Facts that do not change while the process runs; gathered once at start-up, because some
/// need programs (`nvidia-smi`) the hardened process may no longer execute.
#[derive(Debug, Clone)]
pub struct StaticFacts {
    pub platform: Platform,
    pub cpu_model: Option<String>,
    pub gpu: Gpu,
    pub runtime: Option<ContainerRuntime>,
    pub sandbox_features: Vec<String>,
}

impl StaticFacts {
    pub async fn gather(podman: &podman_api::Podman) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let (runtime, sandbox_features) = runtime_facts(podman).await;
        Self {
            platform: Platform {
                os: std::env::consts::OS.to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                distro: std::fs::read_to_string("/etc/os-release")
                    .ok()
                    .and_then(|t| os_release_name(&t)),
                kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .ok()
                    .map(|s| s.trim().to_owned()),
            },
            cpu_model: cpu_model(&cpuinfo),
            gpu: gpu().await,
            runtime,
            sandbox_features,
        }
    }
}

/// A full report: the static facts plus what changes (memory, whether inference answers and
/// with which models: `models` is the caller's look at the server, `None` if it did not answer
/// or inference is not wanted).
///
/// `existing_service` is decided once at start-up (a server already answered, rather than this
/// process starting the container) and passed in unchanged: the orchestrator derives
/// `inference_backend.enabled` from it, so letting a failed health probe flip it would issue a
/// new `config_version` the node never acked and drop it out of dispatch. Liveness goes into
/// `running` instead.
pub fn report(
    config: &Config,
    facts: &StaticFacts,
    models: Option<&ModelSnapshot>,
    existing_service: bool,
) -> NodeCapabilityReport {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let wanted = config.inference.wanted(config.sandbox.mode);
    let models = models.filter(|_| wanted);
    let running = models.is_some();
    NodeCapabilityReport {
        version: PAYLOAD_VERSION,
        reported_at: Utc::now(),
        node: NodeIdentity {
            node_slug: config.node_slug.clone(),
            name: config.node_name.clone(),
            labels: config.labels.clone(),
        },
        platform: facts.platform.clone(),
        container_runtime: facts.runtime.clone(),
        compute: Compute {
            cpu_cores: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            ram_mb: mem_total_mb(&meminfo).unwrap_or(0),
            cpu_model: facts.cpu_model.clone(),
            storage_free_mb: None,
        },
        gpu: facts.gpu.clone(),
        sandbox: Some(SandboxCapability {
            supported: config.sandbox.mode != SandboxMode::Disabled && facts.runtime.is_some(),
            features: facts.sandbox_features.clone(),
            max_concurrency: config.sandbox.max_concurrency,
            user_namespace: facts.sandbox_features.iter().any(|f| f == USERNS_FEATURE),
        }),
        network: None,
        inference: Some(InferenceCapability {
            supported: wanted && facts.runtime.is_some(),
            mode: Some(config.inference.mode),
            existing_service: wanted && existing_service,
            running,
            available_models: models.map(|m| m.available.clone()).unwrap_or_default(),
            loaded_models: models.map(|m| m.loaded.clone()).unwrap_or_default(),
        }),
        worker_api: Some(WorkerApiEndpoint {
            base_url: config
                .worker
                .advertised_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        }),
        managed_services: None,
        managed_services_status: None,
        tls: None,
    }
}

async fn runtime_facts(podman: &podman_api::Podman) -> (Option<ContainerRuntime>, Vec<String>) {
    let Ok(version) = podman.version().await else {
        return (None, Vec::new());
    };
    let info = podman.info().await.ok();
    let host = info.as_ref().and_then(|i| i.host.as_ref());
    let security = host.and_then(|h| h.security.as_ref());
    let rootless = security.and_then(|s| s.rootless).unwrap_or(false);
    let mut features = vec!["netns".to_owned()];
    if security.and_then(|s| s.seccomp_enabled).unwrap_or(false) {
        features.push("seccomp".to_owned());
    }
    if host.and_then(|h| h.cgroup_version.as_deref()) == Some("v2") {
        features.push("cgroups_v2".to_owned());
    }
    // The worker runs every sandbox in a Podman `auto` user namespace, which takes its ids
    // from the `containers` ranges; without them no sandbox starts, so claim nothing.
    let subids = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| has_subid_range(&text, SUBID_USER))
            .unwrap_or(false)
    };
    if subids("/etc/subuid") && subids("/etc/subgid") {
        features.push(USERNS_FEATURE.to_owned());
    }
    let runtime = ContainerRuntime {
        runtime: "podman".to_owned(),
        version: version.version,
        rootless_supported: true,
        rootless_enabled: rootless,
    };
    (Some(runtime), features)
}

/// The sandbox feature naming per-sandbox user namespaces (also `sandbox.user_namespace`).
const USERNS_FEATURE: &str = "userns";
/// Whose subordinate ids Podman's `auto` user namespaces use.
const SUBID_USER: &str = "containers";

/// Whether an `/etc/subuid`-style text gives `user` at least one sandbox's worth of ids.
fn has_subid_range(text: &str, user: &str) -> bool {
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        fields.next() == Some(user)
            && fields.next().and_then(|s| s.parse::<u64>().ok()).is_some()
            && fields
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|count| count >= u64::from(worker_cli::SANDBOX_USERNS_SIZE))
    })
}

/// GPU presence from the device nodes, with model and memory from the vendor tool if present.
async fn gpu() -> Gpu {
    let mut devices = Vec::new();
    if Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvidia0").exists() {
        devices.extend(nvidia_smi().await.unwrap_or_else(|| {
            vec![GpuDevice {
                vendor: Some("nvidia".into()),
                model: None,
                device_id: None,
                vram_mb: None,
                features: Default::default(),
            }]
        }));
    }
    if Path::new("/dev/kfd").exists() {
        devices.push(GpuDevice {
            vendor: Some("amd".into()),
            model: None,
            device_id: None,
            vram_mb: None,
            features: Default::default(),
        });
    }
    Gpu {
        present: !devices.is_empty(),
        devices,
    }
}

async fn nvidia_smi() -> Option<Vec<GpuDevice>> {
    let out = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,uuid",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    Some(parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_nvidia_smi(csv: &str) -> Vec<GpuDevice> {
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split(',').map(str::trim);
            GpuDevice {
                vendor: Some("nvidia".into()),
                model: cols.next().map(str::to_owned),
                vram_mb: cols.next().and_then(|v| v.parse().ok()),
                device_id: cols.next().map(str::to_owned),
                features: Default::default(),
            }
        })
        .collect()
}

fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn os_release_name(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        assert_eq!(
            mem_total_mb("MemTotal:       24684544 kB\nMemFree: 1 kB\n"),
            Some(24106)
        );
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(
            os_release_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn subordinate_ranges_for_sandboxes_are_recognised() {
        assert!(has_subid_range(
            "alice:100000:65536\ncontainers:2147483647:2147483648\n",
            "containers"
        ));
        assert!(!has_subid_range("alice:100000:65536\n", "containers"));
        assert!(!has_subid_range("containers:100000:1024\n", "containers"));
        assert!(!has_subid_range("containers:x:65536\n", "containers"));
    }

    /// A Linux host with Podman `version` and `features`, nothing else detected.
    fn podman_facts(version: &str, features: &[&str]) -> StaticFacts {
        StaticFacts {
            platform: Platform {
                os: "linux".into(),
                arch: "x86_64".into(),
                distro: None,
                kernel_version: None,
            },
            cpu_model: None,
            gpu: Gpu::default(),
            runtime: Some(ContainerRuntime {
                runtime: "podman".into(),
                version: Some(version.into()),
                rootless_supported: true,
                rootless_enabled: false,
            }),
            sandbox_features: features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn the_report_says_whether_sandboxes_get_user_namespaces() {
        let config = crate::config::for_tests("");
        let mut facts = podman_facts("4.3.1", &["netns"]);
        let sandbox = |facts: &StaticFacts| report(&config, facts, None, false).sandbox.unwrap();
        assert!(!sandbox(&facts).user_namespace);
        facts.sandbox_features.push(USERNS_FEATURE.into());
        assert!(sandbox(&facts).user_namespace);
    }

    #[test]
    fn nvidia_smi_csv_parses() {
        let devs = parse_nvidia_smi("NVIDIA A10, 23028, GPU-abc\n");
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].model.as_deref(), Some("NVIDIA A10"));
        assert_eq!(devs[0].vram_mb, Some(23028));
        assert_eq!(devs[0].device_id.as_deref(), Some("GPU-abc"));
    }

    /// A failed health probe must not flip `existing_service`: the orchestrator derives
    /// `inference_backend.enabled` from it, so a flip would mean a configuration the node never
    /// acked. No snapshot here, as when a server stops answering.
    #[test]
    fn existing_service_is_the_start_up_decision_whatever_the_probe_says() {
        let config = crate::config::for_tests("");
        let facts = podman_facts("5", &[]);
        for found_running in [true, false] {
            let report = report(&config, &facts, None, found_running);
            let inference = report.inference.expect("inference capability");
            assert_eq!(inference.existing_service, found_running, "{inference:?}");
            assert!(!inference.running, "nothing answers: {inference:?}");
            assert!(inference.available_models.is_empty());
        }
        let snapshot = ModelSnapshot {
            available: vec!["a".into(), "b".into()],
            loaded: vec!["b".into()],
            ollama: true,
        };
        let inference = report(&config, &facts, Some(&snapshot), false)
            .inference
            .expect("inference capability");
        assert!(inference.running);
        assert_eq!(inference.available_models, ["a", "b"]);
        assert_eq!(inference.loaded_models, ["b"]);
    }

    #[test]
    fn the_real_host_has_memory_and_a_kernel() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        assert!(mem_total_mb(&meminfo).unwrap() > 0);
        assert!(
            !std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap()
                .trim()
                .is_empty()
        );
    }
}
