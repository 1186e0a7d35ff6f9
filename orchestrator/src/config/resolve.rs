//! The file and the environment into a [`Config`], one group of settings at a time. The groups
//! are read in the order of [`Config`]'s fields, so that of several bad settings the first one
//! is reported.

use std::net::SocketAddr;
use std::time::Duration;

use cynode_contracts::worker::SandboxResources;
use cynode_contracts::worker_cli;

use super::file::FileConfig;
use super::lookup::{Lookup, bad_addr, invalid, list, whole_number};
use super::secrets::SecretFiles;
use super::{Config, ConfigError, ConsoleConfig};

/// Where the orchestrator is reached and where it listens.
struct Listeners {
    public_url: String,
    control_plane: SocketAddr,
    user_gateway: SocketAddr,
    metrics: Option<SocketAddr>,
}

/// The MCP gateway's endpoint, who may reach it, and its tools and tokens.
struct Mcp {
    listen_addr: SocketAddr,
    public_url: Option<String>,
    allowed_hosts: Vec<String>,
    tools_disabled: Vec<String>,
    token_ttl: Duration,
}

/// The lifetimes of the tokens the orchestrator issues, and what one request may cost.
struct Requests {
    jwt_access_duration: Duration,
    jwt_refresh_duration: Duration,
    jwt_node_duration: Duration,
    rate_limit_per_minute: u32,
    max_request_body_bytes: usize,
    request_timeout: Duration,
}

/// How jobs reach the nodes, and which nodes count.
struct Dispatch {
    http_timeout: Duration,
    concurrency: usize,
    claim_batch: usize,
    max_attempts: i32,
    retry_base: Duration,
    lease: Duration,
    node_stale_after: Duration,
    telemetry_pull_interval: Duration,
    sandbox_image: String,
}

/// The Project Manager's model and the workflow that drives prompt tasks.
struct Pm {
    inference_model: String,
    model: String,
    required: bool,
    max_steps: u32,
    max_tokens: u32,
    model_timeout: Duration,
    step_retries: u32,
    workflow_lease_ttl: Duration,
    workflow_resume_interval: Duration,
}

/// What every node is told in its configuration.
struct NodeDefaults {
    inference_image: String,
    inference_port: u16,
    inference_command: Vec<String>,
    sandbox_limits: SandboxResources,
}

impl Config {
    pub(super) fn from_parts(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = Lookup(env);
        let listen = env.listeners(&file)?;
        let mcp = env.mcp(&file)?;
        let requests = env.requests(&file)?;
        let dispatch = env.dispatch(&file)?;
        let pm = env.pm(&file)?;
        let node = env.node_defaults(&file)?;
        let console = env.console(&file)?;
        let database_pool_size = env
            .count("DATABASE_POOL_SIZE", file.database_pool_size, "16")?
            .min(1000) as u32;
        Ok(Self {
            public_url: listen.public_url,
            control_plane_listen_addr: listen.control_plane,
            user_gateway_listen_addr: listen.user_gateway,
            metrics_listen_addr: listen.metrics,
            mcp_listen_addr: mcp.listen_addr,
            mcp_public_url: mcp.public_url,
            mcp_allowed_hosts: mcp.allowed_hosts,
            mcp_tools_disabled: mcp.tools_disabled,
            mcp_token_ttl: mcp.token_ttl,
            jwt_access_duration: requests.jwt_access_duration,
            jwt_refresh_duration: requests.jwt_refresh_duration,
            jwt_node_duration: requests.jwt_node_duration,
            rate_limit_per_minute: requests.rate_limit_per_minute,
            max_request_body_bytes: requests.max_request_body_bytes,
            request_timeout: requests.request_timeout,
            dispatch_http_timeout: dispatch.http_timeout,
            dispatch_concurrency: dispatch.concurrency,
            dispatch_claim_batch: dispatch.claim_batch,
            dispatch_max_attempts: dispatch.max_attempts,
            dispatch_retry_base: dispatch.retry_base,
            dispatch_lease: dispatch.lease,
            node_stale_after: dispatch.node_stale_after,
            telemetry_pull_interval: dispatch.telemetry_pull_interval,
            sandbox_image: dispatch.sandbox_image,
            inference_model: pm.inference_model,
            pm_model: pm.model,
            pm_required: pm.required,
            pm_max_steps: pm.max_steps,
            pm_step_retries: pm.step_retries,
            workflow_lease_ttl: pm.workflow_lease_ttl,
            workflow_resume_interval: pm.workflow_resume_interval,
            pm_max_tokens: pm.max_tokens,
            pm_model_timeout: pm.model_timeout,
            node_inference_image: node.inference_image,
            node_inference_port: node.inference_port,
            node_inference_command: node.inference_command,
            node_sandbox_limits: node.sandbox_limits,
            database_pool_size,
            console,
            secret_files: SecretFiles::named_in(file),
        })
    }
}

impl<E: Fn(&str) -> Option<String>> Lookup<E> {
    fn listeners(&self, file: &FileConfig) -> Result<Listeners, ConfigError> {
        let public_url = self.public_url(file.public_url.as_deref())?;
        let control_plane = self.listen_addr(
            "CONTROL_PLANE_LISTEN_ADDR",
            file.control_plane_listen_addr.as_deref(),
            "0.0.0.0:12082",
        )?;
        let user_gateway = self.listen_addr(
            "USER_GATEWAY_LISTEN_ADDR",
            file.user_gateway_listen_addr.as_deref(),
            "0.0.0.0:12080",
        )?;
        // Not `LISTEN_ADDR`: that one address is the API's.
        let metrics = self
            .pick("METRICS_LISTEN_ADDR", file.metrics_listen_addr.as_deref())
            .map(|text| {
                text.parse::<SocketAddr>()
                    .map_err(|_| bad_addr("METRICS_LISTEN_ADDR", &text))
            })
            .transpose()?;
        Ok(Listeners {
            public_url,
            control_plane,
            user_gateway,
            metrics,
        })
    }

    /// `ORCHESTRATOR_PUBLIC_URL`: an http or https URL, kept without a trailing slash.
    fn public_url(&self, from_file: Option<&str>) -> Result<String, ConfigError> {
        let public_url = self
            .pick("ORCHESTRATOR_PUBLIC_URL", from_file)
            .unwrap_or_else(|| "http://localhost:12082".to_owned());
        let parsed = url::Url::parse(&public_url)
            .map_err(|e| invalid("ORCHESTRATOR_PUBLIC_URL", format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(
                "ORCHESTRATOR_PUBLIC_URL",
                "must be an http or https URL",
            ));
        }
        Ok(public_url.trim_end_matches('/').to_owned())
    }

    fn mcp(&self, file: &FileConfig) -> Result<Mcp, ConfigError> {
        let listen_addr = self
            .pick("MCP_LISTEN_ADDR", file.mcp_listen_addr.as_deref())
            .unwrap_or_else(|| cynode_contracts::mcp::DEFAULT_LISTEN_ADDR.to_owned());
        let listen_addr = listen_addr
            .parse::<SocketAddr>()
            .map_err(|_| bad_addr("MCP_LISTEN_ADDR", &listen_addr))?;
        let public_url = self.mcp_public_url(file.mcp_public_url.as_deref())?;
        let allowed_hosts = self.mcp_allowed_hosts(file.mcp_allowed_hosts.as_deref());
        // Checked against the tool catalog by `mcp::check_disabled`, which the binary runs
        // right after loading (the catalog belongs to the MCP engine, above this).
        let tools_disabled = self
            .var("MCP_TOOLS_DISABLED")
            .map(|v| list(&v))
            .or_else(|| file.mcp_tools_disabled.clone())
            .unwrap_or_default();
        let token_ttl = match self.duration("MCP_TOKEN_TTL", file.mcp_token_ttl, "15m")? {
            d if d.is_zero() || d > crate::mcp::agent::MAX_TTL => {
                return Err(invalid(
                    "MCP_TOKEN_TTL",
                    "must be more than zero and at most 1h",
                ));
            }
            d => d,
        };
        Ok(Mcp {
            listen_addr,
            public_url,
            allowed_hosts,
            tools_disabled,
            token_ttl,
        })
    }

    /// `MCP_PUBLIC_URL`, if set: an http or https URL, kept without a trailing slash.
    fn mcp_public_url(&self, from_file: Option<&str>) -> Result<Option<String>, ConfigError> {
        let Some(text) = self.pick("MCP_PUBLIC_URL", from_file) else {
            return Ok(None);
        };
        match url::Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                Ok(Some(text.trim_end_matches('/').to_owned()))
            }
            _ => Err(invalid(
                "MCP_PUBLIC_URL",
                format!("expected an http or https URL, got {text:?}"),
            )),
        }
    }

    /// Loopback names, the hosts listed, and the host of the `MCP_PUBLIC_URL` variable, sorted.
    fn mcp_allowed_hosts(&self, from_file: Option<&[String]>) -> Vec<String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let listed = self
            .var("MCP_ALLOWED_HOSTS")
            .map(|v| list(&v))
            .or_else(|| from_file.map(<[String]>::to_vec))
            .unwrap_or_default();
        hosts.extend(listed);
        if let Some(host) = self
            .var("MCP_PUBLIC_URL")
            .and_then(|u| url::Url::parse(&u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            hosts.push(host);
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    fn console(&self, file: &FileConfig) -> Result<ConsoleConfig, ConfigError> {
        let public_url = match self.pick(
            "USER_GATEWAY_PUBLIC_URL",
            file.user_gateway_public_url.as_deref(),
        ) {
            None => None,
            Some(text) => match url::Url::parse(&text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    Some(text.trim_end_matches('/').to_owned())
                }
                _ => {
                    return Err(invalid(
                        "USER_GATEWAY_PUBLIC_URL",
                        format!("expected an http or https URL, got {text:?}"),
                    ));
                }
            },
        };
        let trusted_proxies = self
            .var("TRUSTED_PROXIES")
            .map(|v| list(&v))
            .or_else(|| file.trusted_proxies.clone())
            .unwrap_or_default()
            .iter()
            .map(|text| {
                text.parse::<std::net::IpAddr>().map_err(|_| {
                    invalid(
                        "TRUSTED_PROXIES",
                        format!("expected IP addresses, got {text:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dir = self
            .var("CONSOLE_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| file.console_dir.clone())
            .or_else(installed_console_dir);
        Ok(ConsoleConfig {
            public_url,
            trusted_proxies,
            dir,
            session_duration: self.nonzero_duration(
                "CONSOLE_SESSION_DURATION",
                file.console_session_duration,
                "12h",
            )?,
        })
    }

    fn requests(&self, file: &FileConfig) -> Result<Requests, ConfigError> {
        Ok(Requests {
            jwt_access_duration: self.duration(
                "JWT_ACCESS_DURATION",
                file.jwt_access_duration,
                "15m",
            )?,
            jwt_refresh_duration: self.duration(
                "JWT_REFRESH_DURATION",
                file.jwt_refresh_duration,
                "168h",
            )?,
            jwt_node_duration: self.duration("JWT_NODE_DURATION", file.jwt_node_duration, "24h")?,
            rate_limit_per_minute: self
                .count("RATE_LIMIT_PER_MINUTE", file.rate_limit_per_minute, "60")?
                .min(u64::from(u32::MAX)) as u32,
            max_request_body_bytes: self.count(
                "MAX_REQUEST_BODY_MB",
                file.max_request_body_mb,
                // One artifact of the largest size (10 MiB) and its multipart envelope.
                "11",
            )? as usize
                * 1024
                * 1024,
            request_timeout: self.duration("REQUEST_TIMEOUT", file.request_timeout, "300s")?,
        })
    }

    fn dispatch(&self, file: &FileConfig) -> Result<Dispatch, ConfigError> {
        let http_timeout =
            self.duration("DISPATCH_HTTP_TIMEOUT", file.dispatch_http_timeout, "300s")?;
        let concurrency =
            self.count("DISPATCH_CONCURRENCY", file.dispatch_concurrency, "8")? as usize;
        let claim_batch =
            match self.number("DISPATCH_CLAIM_BATCH", file.dispatch_claim_batch, "16")? {
                n @ 1..=256 => n as usize,
                _ => return Err(invalid("DISPATCH_CLAIM_BATCH", "must be 1 to 256")),
            };
        let max_attempts = self
            .count("DISPATCH_MAX_ATTEMPTS", file.dispatch_max_attempts, "5")?
            .min(1000) as i32;
        Ok(Dispatch {
            http_timeout,
            concurrency,
            claim_batch,
            max_attempts,
            retry_base: self.duration("DISPATCH_RETRY_BASE", file.dispatch_retry_base, "1s")?,
            lease: self.lease("DISPATCH_LEASE", file.dispatch_lease, "30s")?,
            // Three of the node manager's default 60 s capability reports.
            node_stale_after: self.nonzero_duration(
                "NODE_STALE_AFTER",
                file.node_stale_after,
                "180s",
            )?,
            telemetry_pull_interval: self.duration(
                "TELEMETRY_PULL_INTERVAL",
                file.telemetry_pull_interval,
                "60s",
            )?,
            sandbox_image: self
                .pick("SANDBOX_IMAGE", file.sandbox_image.as_deref())
                .unwrap_or_default(),
        })
    }

    fn pm(&self, file: &FileConfig) -> Result<Pm, ConfigError> {
        let inference_model = self
            .pick("INFERENCE_MODEL", file.inference_model.as_deref())
            .unwrap_or_default();
        let model = self
            .pick("PM_MODEL", file.pm_model.as_deref())
            .filter(|m| !m.trim().is_empty())
            .or_else(|| self.pick("INFERENCE_MODEL", file.inference_model.as_deref()))
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(Pm {
            inference_model,
            model,
            required: self.flag("PM_REQUIRED", file.pm_required, true)?,
            max_steps: self.count("PM_MAX_STEPS", file.pm_max_steps, "4")?.min(100) as u32,
            max_tokens: self
                .count("PM_MAX_TOKENS", file.pm_max_tokens, "512")?
                .min(1_000_000) as u32,
            model_timeout: self.duration("PM_MODEL_TIMEOUT", file.pm_model_timeout, "120s")?,
            step_retries: self
                .number("PM_STEP_RETRIES", file.pm_step_retries, "2")?
                .min(10) as u32,
            workflow_lease_ttl: self.lease("WORKFLOW_LEASE_TTL", file.workflow_lease_ttl, "30s")?,
            workflow_resume_interval: self.nonzero_duration(
                "WORKFLOW_RESUME_INTERVAL",
                file.workflow_resume_interval,
                "5s",
            )?,
        })
    }

    fn node_defaults(&self, file: &FileConfig) -> Result<NodeDefaults, ConfigError> {
        let inference_image = self
            .pick("NODE_INFERENCE_IMAGE", file.node_inference_image.as_deref())
            .unwrap_or_default();
        let inference_port = self
            .number("NODE_INFERENCE_PORT", file.node_inference_port, "11434")?
            .try_into()
            .map_err(|_| invalid("NODE_INFERENCE_PORT", "must be a port number"))?;
        let inference_command = self
            .pick(
                "NODE_INFERENCE_COMMAND",
                file.node_inference_command.as_deref(),
            )
            .map(|c| c.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let caps = file.node_sandbox_limits.unwrap_or_default();
        let sandbox_limits = SandboxResources {
            memory_mib: self.cap(
                "NODE_SANDBOX_MEMORY_MIB",
                caps.memory_mib,
                worker_cli::MIN_SANDBOX_MEMORY_MIB,
            )?,
            cpu_millis: self.cap(
                "NODE_SANDBOX_CPU_MILLIS",
                caps.cpu_millis,
                worker_cli::MIN_SANDBOX_CPU_MILLIS,
            )?,
            pids: self.cap("NODE_SANDBOX_PIDS", caps.pids, worker_cli::MIN_SANDBOX_PIDS)?,
            tmp_mib: self.cap("NODE_SANDBOX_TMP_MIB", caps.tmp_mib, 1)?,
            workspace_mib: self.cap("NODE_SANDBOX_WORKSPACE_MIB", caps.workspace_mib, 1)?,
        };
        Ok(NodeDefaults {
            inference_image,
            inference_port,
            inference_command,
            sandbox_limits,
        })
    }

    /// A cap on the nodes' sandbox limits, if set. At least what a sandbox can start with, or
    /// the node's worker would refuse the lowered limit and not start.
    fn cap(
        &self,
        name: &str,
        from_file: Option<u64>,
        min: u64,
    ) -> Result<Option<u64>, ConfigError> {
        let from_file = from_file.map(|v| v.to_string());
        match self.pick(name, from_file.as_deref()) {
            None => Ok(None),
            Some(text) => match whole_number(name, &text)? {
                v if v < min => Err(invalid(name, format!("must be at least {min}"))),
                v => Ok(Some(v)),
            },
        }
    }
}

/// `share/cynodeai/console` next to the binary's `bin/`, as the package installs it.
fn installed_console_dir() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("share/cynodeai/console");
    dir.join("index.html").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_settings_parse_and_refuse_bad_values() {
        let cfg = Config::from_lookup(|name| match name {
            "USER_GATEWAY_PUBLIC_URL" => Some("https://ai.example.org/".into()),
            "TRUSTED_PROXIES" => Some("127.0.0.1, ::1".into()),
            "CONSOLE_DIR" => Some("/srv/console".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            cfg.console.public_url.as_deref(),
            Some("https://ai.example.org")
        );
        assert_eq!(cfg.console.trusted_proxies.len(), 2);
        assert_eq!(
            cfg.console.dir.as_deref(),
            Some(std::path::Path::new("/srv/console"))
        );
        assert_eq!(cfg.console.session_duration, Duration::from_secs(12 * 3600));
        let err = |name: &'static str, value: &'static str| {
            Config::from_lookup(move |n| (n == name).then(|| value.to_owned()))
                .unwrap_err()
                .to_string()
        };
        assert!(err("TRUSTED_PROXIES", "10.0.0.0/8").contains("TRUSTED_PROXIES"));
        assert!(err("USER_GATEWAY_PUBLIC_URL", "ftp://x").contains("USER_GATEWAY_PUBLIC_URL"));
        assert!(err("CONSOLE_SESSION_DURATION", "0").contains("CONSOLE_SESSION_DURATION"));
    }

    #[test]
    fn the_dispatch_lease_defaults_to_30_s_and_refuses_less_than_3_s() {
        let lease = |v: &'static str| {
            Config::from_lookup(move |name| (name == "DISPATCH_LEASE").then(|| v.to_owned()))
        };
        assert_eq!(
            Config::from_lookup(|_| None).unwrap().dispatch_lease,
            Duration::from_secs(30)
        );
        assert_eq!(lease("3s").unwrap().dispatch_lease, Duration::from_secs(3));
        let err = lease("2s").unwrap_err().to_string();
        assert!(err.contains("DISPATCH_LEASE"), "{err}");
    }

    #[test]
    fn durations_in_go_syntax_from_env_and_file() {
        let file: FileConfig =
            toml::from_str("request_timeout = 42\ndispatch_retry_base = \"500ms\"\n").unwrap();
        let cfg = Config::from_parts(file, |name| {
            (name == "JWT_ACCESS_DURATION").then(|| "1h30m".to_owned())
        })
        .unwrap();
        assert_eq!(cfg.jwt_access_duration, Duration::from_secs(5400));
        assert_eq!(cfg.request_timeout, Duration::from_secs(42));
        assert_eq!(cfg.dispatch_retry_base, Duration::from_millis(500));
        assert_eq!(cfg.jwt_refresh_duration, Duration::from_secs(168 * 3600));
    }

    #[test]
    fn the_workflow_resume_interval_defaults_to_five_seconds_and_may_be_short_but_not_zero() {
        let at = |value: &str| {
            let value = value.to_owned();
            Config::from_parts(FileConfig::default(), move |name| {
                (name == "WORKFLOW_RESUME_INTERVAL").then(|| value.clone())
            })
        };
        let default = Config::from_parts(FileConfig::default(), |_| None).unwrap();
        assert_eq!(default.workflow_resume_interval, Duration::from_secs(5));
        assert_eq!(
            at("200ms").unwrap().workflow_resume_interval,
            Duration::from_millis(200)
        );
        assert!(at("0").is_err());
    }

    #[test]
    fn env_overrides_file_and_go_style_addresses_work() {
        let file: FileConfig =
            toml::from_str("public_url = \"http://file:1\"\nrate_limit_per_minute = 7\n").unwrap();
        let cfg = Config::from_parts(file, |name| match name {
            "ORCHESTRATOR_PUBLIC_URL" => Some("http://env:2/".into()),
            "USER_GATEWAY_LISTEN_ADDR" => Some(":9999".into()),
            "NODE_INFERENCE_COMMAND" => Some("-m /m.gguf  --port 1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.public_url, "http://env:2");
        assert_eq!(cfg.rate_limit_per_minute, 7);
        assert_eq!(cfg.user_gateway_listen_addr.port(), 9999);
        assert_eq!(cfg.node_inference_command, ["-m", "/m.gguf", "--port", "1"]);
        assert_eq!(cfg.max_request_body_bytes, 11 * 1024 * 1024);
    }

    #[test]
    fn node_sandbox_caps_from_file_and_env() {
        let file: FileConfig =
            toml::from_str("[node_sandbox_limits]\nmemory_mib = 512\npids = 64\n").unwrap();
        let cfg = Config::from_parts(file, |name| {
            (name == "NODE_SANDBOX_PIDS").then(|| "32".to_owned())
        })
        .unwrap();
        assert_eq!(
            cfg.node_sandbox_limits,
            SandboxResources {
                memory_mib: Some(512),
                pids: Some(32),
                ..Default::default()
            }
        );
        assert!(
            Config::from_lookup(|_| None)
                .unwrap()
                .node_sandbox_limits
                .is_empty()
        );
        let zero = Config::from_lookup(|name| {
            (name == "NODE_SANDBOX_WORKSPACE_MIB").then(|| "0".to_owned())
        })
        .unwrap_err();
        assert!(
            zero.to_string().contains("NODE_SANDBOX_WORKSPACE_MIB"),
            "{zero}"
        );
        let tiny =
            Config::from_lookup(|name| (name == "NODE_SANDBOX_CPU_MILLIS").then(|| "5".to_owned()))
                .unwrap_err();
        assert_eq!(
            tiny.to_string(),
            "NODE_SANDBOX_CPU_MILLIS: must be at least 10"
        );
        assert!(toml::from_str::<FileConfig>("[node_sandbox_limits]\ngpus = 1\n").is_err());
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("jwt_secret = \"inline\"").is_err());
        let err = Config::from_parts(FileConfig::default(), |name| {
            (name == "JWT_ACCESS_DURATION").then(|| "soon".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("JWT_ACCESS_DURATION"), "{err}");
    }
}
