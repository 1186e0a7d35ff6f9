//! What a task runs: the planner's decision, taken once when the task is created.

use cynode_contracts::user::{InputMode, JobRequirements, TaskStatus};
use cynode_contracts::worker::SandboxSpec;
use uuid::Uuid;

use crate::auth::Principal;

/// Why a prompt task fails until the inference path lands: a prompt is never run as shell.
pub const NO_PROMPT_PATH: &str = "no inference path for prompt tasks yet: prompt-mode tasks need the inference pipeline, which this build does not have; use input_mode script or commands to run shell in the sandbox";

/// A task about to be opened, as the planner sees it.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub id: Uuid,
    /// The owner, and the API key the task was created with, if any.
    pub created_by: Principal,
    pub project_id: Option<Uuid>,
    pub name: &'a str,
    pub prompt: &'a str,
    pub input_mode: InputMode,
    pub use_inference: bool,
    /// Its sandbox jobs may call the MCP gateway.
    pub use_mcp: bool,
    /// What a node must offer to run the task's jobs; every job of the task carries them.
    pub requirements: Option<&'a JobRequirements>,
}

/// What a task runs, as its planner decided when it was created.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run these sandbox jobs; the task completes when all of them have.
    Run(Vec<SandboxSpec>),
    /// Run these (possibly none) and keep the plan open: the planner adds jobs with
    /// [`enqueue`](super::enqueue), reads them with [`job`](super::job) /
    /// [`jobs_of`](super::jobs_of) and ends the task with [`conclude`](super::conclude).
    Open(Vec<SandboxSpec>),
    /// Nothing can run: the task fails at once, with a failed job that says why.
    Refuse(String),
}

/// Decides what a task runs. A planner never writes status: it hands [`Plan`]s to the queue
/// and, for an open plan, calls [`enqueue`](super::enqueue) and [`conclude`](super::conclude).
pub trait Planner: Send + Sync + std::fmt::Debug {
    /// Called once, in the transaction that creates the task, so it must not wait on anything
    /// slow (inference): a planner that needs to think returns [`Plan::Open`] and works later.
    fn plan(&self, task: &NewTask<'_>) -> Plan;

    /// Called by the process whose dispatcher recorded the end of a delivered job (its result,
    /// a refusal, or attempts used up) of a task whose plan is open, with the task's status
    /// derived afterwards. Must not block; spawn the work. Jobs ended by cancel or the lease
    /// reaper do not call it.
    fn step_finished(&self, _task_id: Uuid, _job_id: Uuid, _task_status: TaskStatus) {}

    /// Called by the process that created the task, after the creating transaction committed
    /// (an open plan can start working now). Must not block; spawn the work.
    fn opened(&self, _task_id: Uuid, _input_mode: InputMode) {}
}

/// Today's planner: `script` and `commands` run as one sandbox job `sh -c <text>`; `prompt`
/// has no inference path yet and is refused.
#[derive(Debug, Clone, Default)]
pub struct ShellPlanner {
    /// Empty means the node's default image.
    pub sandbox_image: String,
}

impl Planner for ShellPlanner {
    fn plan(&self, task: &NewTask<'_>) -> Plan {
        match task.input_mode {
            InputMode::Prompt => Plan::Refuse(NO_PROMPT_PATH.to_owned()),
            InputMode::Script | InputMode::Commands => Plan::Run(vec![SandboxSpec {
                image: self.sandbox_image.clone(),
                command: vec!["sh".into(), "-c".into(), task.prompt.to_owned()],
                env: Default::default(),
                timeout_seconds: None,
                network_policy: None,
                use_inference: task.use_inference,
                use_mcp: task.use_mcp,
                job_spec_json: None,
                resources: None,
            }]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_planner_runs_script_and_commands_and_refuses_prompts() {
        let planner = ShellPlanner {
            sandbox_image: "img".into(),
        };
        let mut task = NewTask {
            id: Uuid::nil(),
            created_by: Principal {
                user_id: Uuid::nil(),
                api_key_id: None,
            },
            project_id: None,
            name: "t",
            prompt: "echo hi",
            input_mode: InputMode::Commands,
            use_inference: false,
            use_mcp: false,
            requirements: None,
        };
        let Plan::Run(specs) = planner.plan(&task) else {
            panic!("commands run");
        };
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].command, ["sh", "-c", "echo hi"]);
        assert_eq!(specs[0].image, "img");
        task.input_mode = InputMode::Prompt;
        assert_eq!(planner.plan(&task), Plan::Refuse(NO_PROMPT_PATH.into()));
    }
}
