//! The one locked-down container spec every sandbox is made from (a job's run and a managed
//! sandbox alike), and the user namespace it, or its pod, gets.

use std::path::Path;

use cynode_contracts::worker_cli;
use podman_api::models::{ContainerMount, Namespace};
use podman_api::opts::ContainerCreateOpts;
use uuid::Uuid;

use super::plan::{JobPlan, WORKSPACE_DIR};

/// The locked-down container for one job (ARCHITECTURE.md §4 "Sandboxes").
/// In a pod (jobs with inference or MCP), the container shares the pod's loopback-only network namespace;
/// otherwise it has none at all.
///
/// Limits (all from the plan, see `SandboxLimits`): memory with swap equal to it (no extra
/// swap), a CFS CPU quota, a pids limit, a sized `/tmp`, a capped k8s-file log, and the
/// node's seccomp profile. The extra map holds what the builder cannot express for libpod.
pub(super) fn container_spec(
    plan: &JobPlan,
    workspace: &Path,
    pod: Option<&str>,
    labels: Vec<(&'static str, String)>,
    seccomp: Option<&Path>,
) -> (
    ContainerCreateOpts,
    serde_json::Map<String, serde_json::Value>,
) {
    let limits = &plan.limits;
    let mut extra = serde_json::Map::new();
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    extra.insert(
        "resource_limits".into(),
        serde_json::json!({
            "memory": {"limit": signed(limits.memory_bytes), "swap": signed(limits.memory_bytes)},
            "cpu": {"quota": signed(limits.cpu_millis.saturating_mul(CPU_PERIOD_US) / 1000), "period": CPU_PERIOD_US},
            "pids": {"limit": signed(limits.pids)},
        }),
    );
    extra.insert(
        "log_configuration".into(),
        serde_json::json!({"driver": "k8s-file", "size": signed(limits.log_bytes)}),
    );
    if let Some(profile) = seccomp {
        extra.insert(
            "seccomp_profile_path".into(),
            profile.display().to_string().into(),
        );
    }
    // A container in a pod shares the pod's user namespace (see `pod`); one on its own gets
    // its own.
    if pod.is_none() {
        extra.extend(auto_userns());
    }
    let (program, args) = plan
        .command
        .split_first()
        .expect("plan has a non-empty argv");
    let builder = ContainerCreateOpts::builder();
    let builder = match pod {
        Some(pod) => builder.pod(pod),
        // `restricted` and `none` both mean no network at all in Phase 1.
        None => builder.net_namespace(Namespace {
            nsmode: Some("none".into()),
            value: None,
        }),
    };
    let opts = builder
        .name(container_name(plan.job_id))
        .image(&plan.image)
        // Our argv replaces the image's entrypoint and command, so it runs exactly as given.
        .entrypoint([program])
        .command(args)
        .env(plan.env.iter())
        .labels(labels)
        .drop_capabilities(["ALL"])
        .no_new_privilages(true)
        .read_only_fs(true)
        .work_dir(WORKSPACE_DIR)
        .mounts([
            workspace_mount(workspace, limits.workspace_bytes),
            tmpfs_mount("/tmp", "1777", limits.tmp_bytes),
        ])
        .build();
    (opts, extra)
}

/// `/workspace`: with a size limit, a tmpfs of that size (the host's filesystems here have no
/// per-directory quota, see ARCHITECTURE.md); without one, the job's directory on the host.
fn workspace_mount(host_dir: &Path, size: Option<u64>) -> ContainerMount {
    match size {
        Some(bytes) => tmpfs_mount(WORKSPACE_DIR, "0755", bytes),
        None => ContainerMount {
            destination: Some(WORKSPACE_DIR.into()),
            source: Some(host_dir.display().to_string()),
            _type: Some("bind".into()),
            // `U`: Podman chowns the (fresh, empty) workspace to the user namespace's root
            // before the start, so the job can write it; on the host its files belong to that
            // unprivileged uid.
            options: Some(vec![
                "rbind".into(),
                "rw".into(),
                "nosuid".into(),
                "nodev".into(),
                "U".into(),
            ]),
            uid_mappings: None,
            gid_mappings: None,
        },
    }
}

/// A tmpfs of `bytes` at `destination`; its pages count against the sandbox's memory limit.
fn tmpfs_mount(destination: &str, mode: &str, bytes: u64) -> ContainerMount {
    ContainerMount {
        destination: Some(destination.into()),
        source: Some("tmpfs".into()),
        _type: Some("tmpfs".into()),
        options: Some(vec![
            "rw".into(),
            "nosuid".into(),
            "nodev".into(),
            format!("mode={mode}"),
            format!("size={bytes}"),
        ]),
        uid_mappings: None,
        gid_mappings: None,
    }
}

/// The CFS period of the CPU limit (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// The name of a job's sandbox container.
pub(super) fn container_name(job_id: Uuid) -> String {
    format!("cynodeai-job-{job_id}")
}

/// The spec fields that give a sandbox (or an inference job's pod, whose containers share it)
/// a user namespace of its own: Podman's `auto` mode picks a free range of `SANDBOX_USERNS_SIZE` host
/// ids from the `containers` entry of `/etc/subuid` and `/etc/subgid` (the bootstrap writes
/// them), so container root is an unprivileged host uid, distinct for every live sandbox.
///
/// Over the REST API `userns: {nsmode: auto}` alone is silently ignored by Podman 4.3 (the
/// container gets the host's identity map); `idmappings.AutoUserNs` is what takes effect.
pub(super) fn auto_userns() -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("userns".into(), serde_json::json!({"nsmode": "auto"}));
    fields.insert(
        "idmappings".into(),
        serde_json::json!({"AutoUserNs": true, "AutoUserNsOpts": {"Size": worker_cli::SANDBOX_USERNS_SIZE}}),
    );
    fields
}
