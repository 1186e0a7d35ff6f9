//! A job request checked against this node's [`Limits`] and turned into a [`JobPlan`]: the
//! image, argv, env, timeout and limits it runs with.

use std::collections::BTreeMap;
use std::time::Duration;

use cynode_contracts::mcp::MCP_PATH;
use cynode_contracts::worker::{MCP_URL_ENV, RESERVED_SANDBOX_ENV, RunJobRequest, SandboxLimits};
use uuid::Uuid;

use super::invalid::InvalidJob;
use super::limits::Limits;
use crate::mcp::McpTarget;

/// Inside the sandbox the per-job host directory is here; it is also the working directory.
pub const WORKSPACE_DIR: &str = "/workspace";

/// What an inference job's sandbox gets, and nothing else new: both name the pod's sidecar.
pub const INFERENCE_ENV: [(&str, &str); 2] = [
    ("OLLAMA_BASE_URL", "http://localhost:11434"),
    ("OPENAI_BASE_URL", "http://localhost:11434/v1"),
];

/// `CYNODE_MCP_URL` of a job with MCP: the pod's sidecar, which forwards to the job's MCP
/// socket.
fn sandbox_mcp_url() -> String {
    format!(
        "http://{}{MCP_PATH}",
        cynode_inference_proxy::args::MCP_LISTEN
    )
}

/// A validated job: everything needed to run it, nothing left to check.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub task_id: Uuid,
    pub job_id: Uuid,
    pub image: String,
    pub command: Vec<String>,
    /// The job's own env plus the three reserved `CYNODE_*` variables.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
    /// Run in a pod with the sidecar forwarding to the node's model server.
    pub use_inference: bool,
    /// Run in a pod with the sidecar forwarding to the orchestrator's MCP gateway, with this
    /// grant (in this process's memory only).
    pub mcp: Option<McpTarget>,
    /// What the sandbox runs under; reported in the result. `user_namespaces_denied` is set
    /// by the runner, which holds the seccomp profile.
    pub limits: SandboxLimits,
}

impl JobPlan {
    /// Whether the job runs in a pod with the sidecar.
    pub fn needs_pod(&self) -> bool {
        self.use_inference || self.mcp.is_some()
    }
}

impl Limits {
    /// Checks a request against this node's rules.
    ///
    /// Timeout: absent or 0 means the default (itself capped by the maximum); a negative value or
    /// one above the maximum is refused rather than silently clipped, so the caller learns that
    /// its job would not get the time it asked for.
    ///
    /// Env: a job may not set the reserved `CYNODE_*` variables; it is refused rather than
    /// overridden so that the caller sees the conflict.
    pub fn plan(&self, request: RunJobRequest) -> Result<JobPlan, InvalidJob> {
        if request.version != cynode_contracts::PAYLOAD_VERSION {
            return Err(InvalidJob::UnsupportedVersion(request.version));
        }
        let sandbox = request.sandbox;
        if sandbox.use_inference && !self.inference {
            return Err(InvalidJob::InferenceDisabled);
        }
        let mcp = match (sandbox.use_mcp, request.mcp) {
            (false, None) => None,
            (false, Some(_)) => return Err(InvalidJob::McpGrantUnused),
            (true, grant) => {
                let gateway = self.mcp.as_ref().ok_or(InvalidJob::McpDisabled)?;
                Some(gateway.grant(grant.ok_or(InvalidJob::McpGrantMissing)?)?)
            }
        };
        if sandbox.job_spec_json.is_some() {
            return Err(InvalidJob::JobSpecUnsupported);
        }
        let image = if sandbox.image.trim().is_empty() {
            self.default_image.clone()
        } else {
            sandbox.image
        };
        if !self.allows(&image) {
            return Err(InvalidJob::ImageNotAllowed(image));
        }
        if sandbox.command.is_empty() || sandbox.command[0].is_empty() {
            return Err(InvalidJob::EmptyCommand);
        }
        if sandbox.command.iter().any(|arg| arg.contains('\0')) {
            return Err(InvalidJob::NulByte("sandbox.command"));
        }
        let timeout_secs = self.timeout_secs(sandbox.timeout_seconds)?;
        for (name, value) in &sandbox.env {
            let inference_env = INFERENCE_ENV
                .iter()
                .map(|(n, _)| n)
                .filter(|_| sandbox.use_inference);
            // Reserved in every job, so that one without MCP cannot look as if it had it.
            if let Some(reserved) = RESERVED_SANDBOX_ENV
                .iter()
                .chain([&MCP_URL_ENV])
                .chain(inference_env)
                .find(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(InvalidJob::ReservedEnv((*reserved).to_owned()));
            }
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(InvalidJob::BadEnvName(name.clone()));
            }
            if value.contains('\0') {
                return Err(InvalidJob::NulByte("sandbox.env"));
            }
        }
        let resources = self
            .resources
            .narrowed(sandbox.resources.unwrap_or_default())?;
        let mut env = sandbox.env;
        env.insert("CYNODE_TASK_ID".into(), request.task_id.to_string());
        env.insert("CYNODE_JOB_ID".into(), request.job_id.to_string());
        env.insert("CYNODE_WORKSPACE_DIR".into(), WORKSPACE_DIR.into());
        if sandbox.use_inference {
            env.extend(
                INFERENCE_ENV
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
        }
        if mcp.is_some() {
            env.insert(MCP_URL_ENV.into(), sandbox_mcp_url());
        }
        Ok(JobPlan {
            task_id: request.task_id,
            job_id: request.job_id,
            image,
            command: sandbox.command,
            env,
            timeout: Duration::from_secs(timeout_secs),
            max_output_bytes: self.max_output_bytes,
            use_inference: sandbox.use_inference,
            mcp,
            limits: SandboxLimits {
                timeout_seconds: timeout_secs,
                memory_bytes: resources.memory_bytes,
                cpu_millis: resources.cpu_millis,
                pids: resources.pids,
                tmp_bytes: resources.tmp_bytes,
                log_bytes: resources.log_bytes,
                output_bytes: u64::try_from(self.max_output_bytes).unwrap_or(u64::MAX),
                workspace_bytes: resources.workspace_bytes,
                user_namespaces_denied: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cynode_contracts::worker::{SandboxResources, SandboxSpec};

    use super::super::limits::Resources;
    use crate::mcp::McpGateway;

    fn limits() -> Limits {
        Limits::new(
            "localhost/cynode-sandbox:latest".into(),
            vec![
                "localhost/cynode-sandbox".into(),
                "docker.io/library/bash:5".into(),
            ],
            3600,
            10800,
            1024,
        )
    }

    fn request(edit: impl FnOnce(&mut SandboxSpec)) -> RunJobRequest {
        let mut sandbox = SandboxSpec {
            image: String::new(),
            command: vec!["sh".into(), "-c".into(), "true".into()],
            env: BTreeMap::new(),
            timeout_seconds: None,
            network_policy: None,
            use_inference: false,
            use_mcp: false,
            job_spec_json: None,
            resources: None,
        };
        edit(&mut sandbox);
        RunJobRequest {
            version: 1,
            task_id: Uuid::new_v4(),
            job_id: Uuid::new_v4(),
            sandbox,
            mcp: None,
        }
    }

    fn with_mcp() -> Limits {
        let gateway = McpGateway::new("http://127.0.0.1:12083/mcp".parse().unwrap()).unwrap();
        limits().with_mcp(Some(gateway))
    }

    fn granted(token: &str) -> RunJobRequest {
        let mut req = request(|s| s.use_mcp = true);
        req.mcp = Some(cynode_contracts::worker::McpGrant {
            url: "http://127.0.0.1:12083/mcp".into(),
            token: token.into(),
        });
        req
    }

    #[test]
    fn an_mcp_job_gets_the_sidecar_url_and_keeps_its_grant_out_of_the_env() {
        let plan = with_mcp().plan(granted("job-token")).unwrap();
        assert!(plan.needs_pod());
        assert!(!plan.use_inference);
        assert_eq!(plan.env[MCP_URL_ENV], "http://127.0.0.1:12083/mcp");
        assert!(
            !plan.env.values().any(|v| v.contains("job-token")),
            "{:?}",
            plan.env
        );
        assert!(!format!("{plan:?}").contains("job-token"));
        // Without MCP: no URL, and a job cannot make one up.
        let plain = with_mcp().plan(request(|_| {})).unwrap();
        assert!(!plain.needs_pod());
        assert!(!plain.env.contains_key(MCP_URL_ENV));
        let err = with_mcp()
            .plan(request(|s| {
                s.env.insert("cynode_mcp_url".into(), "http://x".into());
            }))
            .unwrap_err();
        assert_eq!(err, InvalidJob::ReservedEnv(MCP_URL_ENV.into()));
    }

    #[test]
    fn mcp_needs_a_gateway_and_a_grant_and_a_grant_needs_use_mcp() {
        let err = with_mcp().plan(request(|s| s.use_mcp = true)).unwrap_err();
        assert_eq!(err, InvalidJob::McpGrantMissing);
        assert!(err.to_string().starts_with("mcp:"), "{err}");
        assert_eq!(
            limits().plan(granted("t")).unwrap_err(),
            InvalidJob::McpDisabled
        );
        let mut unused = granted("t");
        unused.sandbox.use_mcp = false;
        assert_eq!(
            with_mcp().plan(unused).unwrap_err(),
            InvalidJob::McpGrantUnused
        );
        let mut elsewhere = granted("t");
        elsewhere.mcp.as_mut().unwrap().url = "http://127.0.0.1:9/mcp".into();
        let err = with_mcp().plan(elsewhere).unwrap_err();
        assert!(err.to_string().starts_with("mcp.url"), "{err}");
        let err = with_mcp().plan(granted("bad token")).unwrap_err();
        assert!(err.to_string().starts_with("mcp.token"), "{err}");
        assert!(!err.to_string().contains("bad token"), "{err}");
    }

    #[test]
    fn defaults_fill_image_timeout_and_reserved_env() {
        let req = request(|s| {
            s.env.insert("FOO".into(), "bar".into());
        });
        let (task, job) = (req.task_id, req.job_id);
        let plan = limits().plan(req).unwrap();
        assert_eq!(plan.image, "localhost/cynode-sandbox:latest");
        assert_eq!(plan.timeout, Duration::from_secs(3600));
        assert_eq!(plan.env["CYNODE_TASK_ID"], task.to_string());
        assert_eq!(plan.env["CYNODE_JOB_ID"], job.to_string());
        assert_eq!(plan.env["CYNODE_WORKSPACE_DIR"], "/workspace");
        assert_eq!(plan.env["FOO"], "bar");
        assert_eq!(plan.limits.timeout_seconds, 3600);
        assert_eq!(plan.limits.memory_bytes, 2048 << 20);
        assert_eq!(plan.limits.output_bytes, 1024);
    }

    #[test]
    fn a_job_may_narrow_the_node_limits_but_not_widen_them() {
        let l = limits();
        let ask = |r: SandboxResources| l.plan(request(|s| s.resources = Some(r)));
        let plan = ask(SandboxResources {
            memory_mib: Some(100),
            pids: Some(7),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(plan.limits.memory_bytes, 100 << 20);
        assert_eq!(plan.limits.pids, 7);
        assert_eq!(plan.limits.cpu_millis, l.resources().cpu_millis);
        assert_eq!(plan.limits.tmp_bytes, l.resources().tmp_bytes);
        assert_eq!(
            ask(SandboxResources {
                tmp_mib: Some(257),
                ..Default::default()
            })
            .unwrap_err()
            .to_string(),
            "sandbox.resources.tmp_mib 257 exceeds this node's limit of 256"
        );
        assert_eq!(
            ask(SandboxResources {
                cpu_millis: Some(0),
                ..Default::default()
            })
            .unwrap_err(),
            InvalidJob::BelowMinimum {
                field: "cpu_millis",
                requested: 0,
                min: 10
            }
        );
        // `/workspace`: only where the node limits it, and then at most to its size.
        let workspace = |mib| SandboxResources {
            workspace_mib: Some(mib),
            ..Default::default()
        };
        assert_eq!(
            ask(workspace(8)).unwrap_err(),
            InvalidJob::WorkspaceNotLimited
        );
        let sized = limits().with_resources(Resources {
            workspace_bytes: Some(64 << 20),
            ..Resources::default()
        });
        let plan = sized
            .plan(request(|s| s.resources = Some(workspace(8))))
            .unwrap();
        assert_eq!(plan.limits.workspace_bytes, Some(8 << 20));
        assert!(
            sized
                .plan(request(|s| s.resources = Some(workspace(65))))
                .is_err()
        );
    }

    #[test]
    fn timeout_rules() {
        let l = limits();
        let t = |v| l.plan(request(|s| s.timeout_seconds = Some(v)));
        assert_eq!(t(0).unwrap().timeout, Duration::from_secs(3600));
        assert_eq!(t(10800).unwrap().timeout, Duration::from_secs(10800));
        assert_eq!(t(-1).unwrap_err(), InvalidJob::NegativeTimeout(-1));
        assert_eq!(
            t(10801).unwrap_err(),
            InvalidJob::TimeoutTooLong {
                requested: 10801,
                max: 10800
            }
        );
        assert!(t(i64::MIN).is_err());
        let small_max = Limits::new("i:1".into(), vec!["i:1".into()], 3600, 60, 1);
        let plan = small_max.plan(request(|s| s.image = "i:1".into())).unwrap();
        assert_eq!(plan.timeout, Duration::from_secs(60));
    }

    #[test]
    fn allowlist_normalises_the_latest_tag_only() {
        let l = limits();
        assert!(l.allows("localhost/cynode-sandbox:latest"));
        assert!(l.allows("docker.io/library/bash:5"));
        assert!(!l.allows("docker.io/library/bash"));
        assert!(!l.allows("localhost/cynode-sandbox:other"));
        assert!(!l.allows("localhost:5000/cynode-sandbox"));
        let err = l.plan(request(|s| s.image = "alpine".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image `alpine` is not on this node's allowlist"
        );
    }

    #[test]
    fn reserved_and_malformed_env_is_refused() {
        let l = limits();
        for name in ["CYNODE_JOB_ID", "cynode_task_id", "CYNODE_WORKSPACE_DIR"] {
            let err = l
                .plan(request(|s| {
                    s.env.insert(name.into(), "x".into());
                }))
                .unwrap_err();
            assert!(matches!(err, InvalidJob::ReservedEnv(_)), "{name}: {err}");
        }
        let err = l
            .plan(request(|s| {
                s.env.insert("A=B".into(), "x".into());
            }))
            .unwrap_err();
        assert_eq!(err, InvalidJob::BadEnvName("A=B".into()));
    }

    #[test]
    fn inference_jobs_get_the_sidecar_urls_and_may_not_set_them() {
        let l = limits().with_inference(true);
        let plan = l.plan(request(|s| s.use_inference = true)).unwrap();
        assert!(plan.use_inference);
        assert_eq!(plan.env["OLLAMA_BASE_URL"], "http://localhost:11434");
        assert_eq!(plan.env["OPENAI_BASE_URL"], "http://localhost:11434/v1");
        let err = l
            .plan(request(|s| {
                s.use_inference = true;
                s.env
                    .insert("ollama_base_url".into(), "http://elsewhere".into());
            }))
            .unwrap_err();
        assert_eq!(err, InvalidJob::ReservedEnv("OLLAMA_BASE_URL".into()));
        // A job without inference gets neither URL and may use the names for itself.
        let plan = l
            .plan(request(|s| {
                s.env.insert("OPENAI_BASE_URL".into(), "x".into());
            }))
            .unwrap();
        assert!(!plan.env.contains_key("OLLAMA_BASE_URL"));
        assert_eq!(plan.env["OPENAI_BASE_URL"], "x");
    }

    #[test]
    fn other_refusals() {
        let l = limits();
        assert_eq!(
            l.plan(request(|s| s.command.clear())).unwrap_err(),
            InvalidJob::EmptyCommand
        );
        assert_eq!(
            l.plan(request(|s| s.use_inference = true)).unwrap_err(),
            InvalidJob::InferenceDisabled
        );
        assert_eq!(
            l.plan(request(|s| s.command = vec!["a\0b".into()]))
                .unwrap_err(),
            InvalidJob::NulByte("sandbox.command")
        );
        let mut req = request(|_| {});
        req.version = 2;
        assert_eq!(l.plan(req).unwrap_err(), InvalidJob::UnsupportedVersion(2));
    }
}
