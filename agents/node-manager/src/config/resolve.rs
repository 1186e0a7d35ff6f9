//! node.yaml and the upstream environment overrides turned into a [`Config`]: each key from its
//! environment variable, else the file, else its default, and checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cynode_contracts::node::InferenceMode;
use cynode_contracts::worker_cli::{DEFAULT_IMAGE, DEFAULT_PODMAN_SOCKET};
use cynode_service_kit::config::Env;
use cynode_service_kit::secrets::Secret;
use url::Url;

use super::checks::{absolute, check_slug, http_url, parse_num, seconds_or, whole_seconds};
use super::defaults::{
    DEFAULT_INFERENCE_URL, DEFAULT_OLLAMA_CONTAINER, DEFAULT_OLLAMA_IMAGE, DEFAULT_STATE_DIR,
    PSK_ENV, default_worker_binary,
};
use super::error::ConfigError;
use super::file::{
    FileConfig, FileInference, FileOrchestrator, FileSandbox, FileSandboxTimeouts, FileWorkerApi,
};
use super::settings::{Config, InferenceSettings, SandboxMode, SandboxSettings, WorkerSettings};

/// How the node talks to the orchestrator, and how often.
struct Timing {
    connect_timeout: Duration,
    request_timeout: Duration,
    capability_report_interval: Duration,
    config_poll_interval: Duration,
}

pub(super) fn resolve(file: FileConfig, psk: Secret, env: &dyn Env) -> Result<Config, ConfigError> {
    // The steps run in this order, so that of several mistakes the same one is named first.
    let orchestrator_url = orchestrator_url(file.orchestrator.url.clone(), env)?;
    let node_slug = node_slug(file.node.id, env)?;
    let (listen_port, advertised_url) = worker_endpoint(&file.worker_api, env)?;
    let state_dir = env
        .get("CYNODE_STATE_DIR")
        .map(PathBuf::from)
        .or(file.storage.state_dir)
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    absolute("storage.state_dir", &state_dir)?;
    let sandbox = sandbox_settings(file.sandbox, &state_dir, env)?;
    let inference = inference_settings(file.inference, env)?;
    let timing = timing(&file.orchestrator, env)?;
    let worker = worker_settings(file.worker_api, listen_port, advertised_url, env)?;
    Ok(Config {
        orchestrator_url,
        psk,
        secret_env: vec![
            PSK_ENV.to_owned(),
            format!("{PSK_ENV}_FILE"),
            "CREDENTIALS_DIRECTORY".to_owned(),
        ],
        secret_files: Vec::new(),
        connect_timeout: timing.connect_timeout,
        request_timeout: timing.request_timeout,
        capability_report_interval: timing.capability_report_interval,
        config_poll_interval: timing.config_poll_interval,
        node_slug,
        node_name: env.get("NODE_NAME").or(file.node.name),
        labels: file.node.labels,
        worker,
        sandbox,
        inference,
        state_dir,
        shutdown_grace: seconds_or(file.shutdown.grace_seconds, 10),
        metrics_listen: file.metrics.listen,
        worker_metrics_listen: file.metrics.worker_listen,
        source: None,
    })
}

fn orchestrator_url(file: Option<String>, env: &dyn Env) -> Result<Url, ConfigError> {
    let url = env
        .get("ORCHESTRATOR_URL")
        .or(file)
        .ok_or(ConfigError::Missing {
            key: "orchestrator.url",
            env: "ORCHESTRATOR_URL",
        })?;
    http_url("orchestrator.url", &url)
}

fn node_slug(file: Option<String>, env: &dyn Env) -> Result<String, ConfigError> {
    let slug = env.get("NODE_SLUG").or(file).ok_or(ConfigError::Missing {
        key: "node.id",
        env: "NODE_SLUG",
    })?;
    check_slug(&slug)?;
    Ok(slug)
}

/// The worker API's port and the URL the node advertises for it.
fn worker_endpoint(file: &FileWorkerApi, env: &dyn Env) -> Result<(u16, Url), ConfigError> {
    let listen_port = match env.get("WORKER_API_LISTEN_PORT") {
        Some(v) => parse_num("worker_api.listen_port", &v)?,
        None => file.listen_port.unwrap_or(12090),
    };
    let advertised = env
        .get("NODE_ADVERTISED_WORKER_API_URL")
        .or_else(|| file.public_base_url.clone())
        .ok_or(ConfigError::Missing {
            key: "worker_api.public_base_url",
            env: "NODE_ADVERTISED_WORKER_API_URL",
        })?;
    Ok((
        listen_port,
        http_url("worker_api.public_base_url", &advertised)?,
    ))
}

fn sandbox_settings(
    file: FileSandbox,
    state_dir: &Path,
    env: &dyn Env,
) -> Result<SandboxSettings, ConfigError> {
    let mount_root = env
        .get("CYNODE_SANDBOX_MOUNT_ROOT")
        .map(PathBuf::from)
        .or(file.mount_root)
        .unwrap_or_else(|| state_dir.join("sandbox_mounts"));
    absolute("sandbox.mount_root", &mount_root)?;
    let default_image = file
        .default_image
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    let allowed_images = allowed_images(file.allowed_images, &default_image)?;
    let (default_timeout_secs, max_timeout_secs) = sandbox_timeouts(&file.timeouts)?;
    Ok(SandboxSettings {
        mode: file.mode.unwrap_or(SandboxMode::Allow),
        podman_socket: env
            .get("CYNODE_PODMAN_SOCKET")
            .map(PathBuf::from)
            .or(file.podman_socket)
            .unwrap_or_else(|| DEFAULT_PODMAN_SOCKET.into()),
        default_image,
        allowed_images,
        mount_root,
        default_timeout_secs,
        max_timeout_secs,
        limits: file.limits,
        seccomp_base_profile: env
            .get("CYNODE_SANDBOX_SECCOMP_BASE")
            .map(PathBuf::from)
            .or(file.seccomp_base_profile),
        max_concurrency: file.max_concurrency,
    })
}

/// `sandbox.allowed_images`: the default image alone when unset; when set, it must include it.
fn allowed_images(
    mut listed: Vec<String>,
    default_image: &str,
) -> Result<Vec<String>, ConfigError> {
    if listed.is_empty() {
        listed.push(default_image.to_owned());
    } else if !listed.iter().any(|image| image == default_image) {
        return Err(ConfigError::Invalid {
            key: "sandbox.allowed_images".into(),
            reason: format!("must include sandbox.default_image `{default_image}`"),
        });
    }
    Ok(listed)
}

/// `sandbox.timeouts` in whole seconds, the default no longer than the maximum.
fn sandbox_timeouts(file: &FileSandboxTimeouts) -> Result<(Option<u64>, Option<u64>), ConfigError> {
    let (default, max) = (
        whole_seconds("sandbox.timeouts.default_seconds", file.default_seconds)?,
        whole_seconds("sandbox.timeouts.max_seconds", file.max_seconds)?,
    );
    if let (Some(d), Some(m)) = (default, max)
        && d > m
    {
        return Err(ConfigError::Invalid {
            key: "sandbox.timeouts.default_seconds".into(),
            reason: format!("{d} exceeds sandbox.timeouts.max_seconds {m}"),
        });
    }
    Ok((default, max))
}

fn inference_settings(
    file: FileInference,
    env: &dyn Env,
) -> Result<InferenceSettings, ConfigError> {
    let url = env
        .get("CYNODE_INFERENCE_URL")
        .or(file.url)
        .unwrap_or_else(|| DEFAULT_INFERENCE_URL.to_owned());
    let url = http_url("inference.url", &url)?;
    if url.port_or_known_default().is_none() {
        return Err(ConfigError::Invalid {
            key: "inference.url".into(),
            reason: "needs a port".into(),
        });
    }
    Ok(InferenceSettings {
        mode: file.mode.unwrap_or(InferenceMode::Allow),
        url,
        image: env
            .get("OLLAMA_IMAGE")
            .or(file.image)
            .unwrap_or_else(|| DEFAULT_OLLAMA_IMAGE.to_owned()),
        container_name: env
            .get("OLLAMA_CONTAINER_NAME")
            .or(file.container_name)
            .unwrap_or_else(|| DEFAULT_OLLAMA_CONTAINER.to_owned()),
        // Pulling and loading a model can take minutes on a cold node.
        startup_timeout: seconds_or(file.startup_timeout_seconds, 600),
        existing_wait: seconds_or(file.existing_wait_seconds, 0),
    })
}

fn timing(file: &FileOrchestrator, env: &dyn Env) -> Result<Timing, ConfigError> {
    let capability_report_interval = positive(
        "orchestrator.capability_report_interval_seconds",
        env.duration(
            "CAPABILITY_REPORT_INTERVAL",
            file.capability_report_interval_seconds,
        )?
        .unwrap_or(Duration::from_secs(60)),
    )?;
    let config_poll_interval = positive(
        "orchestrator.poll_interval_seconds",
        env.duration("CONFIG_POLL_INTERVAL", file.poll_interval_seconds)?
            .unwrap_or(capability_report_interval),
    )?;
    let request_timeout = env
        .duration("HTTP_TIMEOUT", file.timeouts.request_seconds)?
        .unwrap_or(Duration::from_secs(10));
    Ok(Timing {
        connect_timeout: seconds_or(file.timeouts.connect_seconds, 5),
        request_timeout,
        capability_report_interval,
        config_poll_interval,
    })
}

fn positive(key: &str, interval: Duration) -> Result<Duration, ConfigError> {
    if interval.is_zero() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: "must be positive".into(),
        });
    }
    Ok(interval)
}

fn worker_settings(
    file: FileWorkerApi,
    listen_port: u16,
    advertised_url: Url,
    env: &dyn Env,
) -> Result<WorkerSettings, ConfigError> {
    let listen_host = file.listen_host.unwrap_or_else(|| "0.0.0.0".to_owned());
    if listen_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_err()
    {
        return Err(ConfigError::Invalid {
            key: "worker_api.listen_host".into(),
            reason: format!("`{listen_host}` must be an IP address"),
        });
    }
    Ok(WorkerSettings {
        binary: env
            .get("NODE_MANAGER_WORKER_API_BIN")
            .map(PathBuf::from)
            .or(file.binary)
            .unwrap_or_else(default_worker_binary),
        listen_host,
        listen_port,
        advertised_url,
        max_request_bytes: file.max_request_bytes,
        startup_timeout: seconds_or(file.startup_timeout_seconds, 30),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use cynode_contracts::worker_cli::DEFAULT_IMAGE;

    use super::super::defaults::DEFAULT_OLLAMA_IMAGE;
    use super::super::error::ConfigError;
    use super::super::settings::SandboxLimitSettings;
    use super::super::test_support::{FULL, env, load};

    #[test]
    fn a_complete_file_resolves_with_defaults() {
        let cfg = load(FULL, &env(&[])).unwrap();
        assert_eq!(cfg.orchestrator_url.as_str(), "http://10.0.0.1:12082/");
        assert_eq!(cfg.node_slug, "node-01");
        assert_eq!(cfg.worker.listen_port, 12090);
        assert_eq!(cfg.inference.url.port(), Some(11500));
        assert_eq!(cfg.inference.image, DEFAULT_OLLAMA_IMAGE);
        assert_eq!(
            cfg.sandbox.mount_root,
            Path::new("/var/lib/cynode/state/sandbox_mounts")
        );
        assert_eq!(cfg.sandbox.allowed_images, vec![DEFAULT_IMAGE]);
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(60));
    }

    #[test]
    fn upstream_env_names_override_the_file() {
        let cfg = load(
            FULL,
            &env(&[
                ("ORCHESTRATOR_URL", "http://orch:12082"),
                ("NODE_SLUG", "other"),
                ("NODE_ADVERTISED_WORKER_API_URL", "http://w:12091"),
                ("CYNODE_STATE_DIR", "/srv/state"),
                ("OLLAMA_IMAGE", "localhost/inference:1"),
                ("CAPABILITY_REPORT_INTERVAL", "2m"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.orchestrator_url.host_str(), Some("orch"));
        assert_eq!(cfg.node_slug, "other");
        assert_eq!(cfg.worker.advertised_url.port(), Some(12091));
        assert_eq!(
            cfg.sandbox.mount_root,
            Path::new("/srv/state/sandbox_mounts")
        );
        assert_eq!(cfg.inference.image, "localhost/inference:1");
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(120));
    }

    #[test]
    fn missing_keys_are_named_with_their_env_override() {
        let err = load("version: 1\n", &env(&[])).unwrap_err().to_string();
        assert!(err.contains("`orchestrator.url`"), "{err}");
        assert!(err.contains("ORCHESTRATOR_URL"), "{err}");
        let err = load("orchestrator: {url: 'http://o:1'}\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`node.id`"), "{err}");
        let err = load(
            "orchestrator: {url: 'http://o:1'}\nnode: {id: n}\n",
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`worker_api.public_base_url`"), "{err}");
    }

    #[test]
    fn malformed_values_name_the_key() {
        let err = load("orchestrator:\n  url: [1, 2]\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("orchestrator.url"), "{err}");
        let err = load(&FULL.replace("node-01", "Node 01!"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`node.id`"), "{err}");
        let err = load(&FULL.replace("http://10.0.0.1:12082", "ftp://x"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`orchestrator.url`"), "{err}");
        let err = load("version: 2\n", &env(&[])).unwrap_err().to_string();
        assert!(err.contains("`version`"), "{err}");
        let err = load(": : :\n  - [", &env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }

    #[test]
    fn durations_accept_go_style_units_in_env_and_file() {
        let cfg = load(
            &format!(
                "{FULL}sandbox:\n  timeouts: {{default_seconds: 90, max_seconds: 1h30m}}\n\
                 shutdown: {{grace_seconds: 500ms}}\n"
            ),
            &env(&[
                ("HTTP_TIMEOUT", "1m30s"),
                ("CAPABILITY_REPORT_INTERVAL", "45"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.request_timeout, Duration::from_secs(90));
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(45));
        assert_eq!(cfg.sandbox.default_timeout_secs, Some(90));
        assert_eq!(cfg.sandbox.max_timeout_secs, Some(5400));
        assert_eq!(cfg.sandbox.limits, SandboxLimitSettings::default());
        assert_eq!(cfg.shutdown_grace, Duration::from_millis(500));
        let err = load(FULL, &env(&[("HTTP_TIMEOUT", "5 fortnights")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP_TIMEOUT"), "{err}");
        let err = load(
            &format!("{FULL}sandbox:\n  timeouts: {{max_seconds: 10ms}}\n"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sandbox.timeouts.max_seconds"), "{err}");
        let err = load(
            &FULL.replace("worker_api:\n", "worker_api:\n  listen_host: localhost\n"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("worker_api.listen_host"), "{err}");
    }
}
