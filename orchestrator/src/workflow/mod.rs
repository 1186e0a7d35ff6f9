//! The durable workflow of prompt tasks (`workflow_mcp_agents.md` §1): the Project Manager as
//! a graph whose state is checkpointed after every node, so that any orchestrator resumes a
//! task where it stopped.
//!
//! ```text
//! load_task_context → plan_steps ─ steps left ─→ dispatch_step → collect_result → verify_step_result
//!                        │                            ↑                                │
//!                        └─ none / answer ─→ finalize_summary ←── pass, none left ──────┤
//!                                                     └───── fail, retries left ───────┤
//!                               mark_failed ←──────────────── fail, none left ──────────┘
//! ```
//!
//! - [`store`] owns `workflow_checkpoints` and `task_workflow_leases`; the engine's drivers and
//!   the workflow API ([`api`]) share its lease functions: at most one driver per task across
//!   processes.
//! - [`engine`] runs the nodes: model calls (plan, verify, summary) through the selected PM,
//!   constrained by JSON schemas ([`schema`]); sandbox jobs through [`crate::jobs`], each with a
//!   deterministic id per step attempt that is checkpointed before it is enqueued, so a resume
//!   never runs a step twice. Every model call and job is also a `task_steps` row, the record
//!   users read (`GET /v1/tasks/{id}/steps`).
//! - [`context`]: what the workflow reads of a task.
//! - [`Drivers`]: this process's drivers, one per task, each woken by its own task's job ends.
//! - This module: the state JSON, the node ids and the decision diamonds, pure functions of the
//!   state ([`successor`]).

pub mod api;
pub mod context;
mod drivers;
pub mod engine;
pub mod schema;
pub mod store;

pub use drivers::Drivers;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The graph's nodes, by their spec ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    LoadTaskContext,
    PlanSteps,
    DispatchStep,
    CollectResult,
    VerifyStepResult,
    FinalizeSummary,
    MarkFailed,
}

impl Node {
    pub const ALL: [Self; 7] = [
        Self::LoadTaskContext,
        Self::PlanSteps,
        Self::DispatchStep,
        Self::CollectResult,
        Self::VerifyStepResult,
        Self::FinalizeSummary,
        Self::MarkFailed,
    ];

    /// The id stored as `last_node_id`.
    pub fn id(self) -> &'static str {
        match self {
            Self::LoadTaskContext => "load_task_context",
            Self::PlanSteps => "plan_steps",
            Self::DispatchStep => "dispatch_step",
            Self::CollectResult => "collect_result",
            Self::VerifyStepResult => "verify_step_result",
            Self::FinalizeSummary => "finalize_summary",
            Self::MarkFailed => "mark_failed",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.id() == id)
    }
}

/// One planned sandbox step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub description: String,
    /// Shell commands run in one sandbox job.
    pub commands: Vec<String>,
    /// What the output must show for the step to pass.
    pub expected_evidence: String,
}

/// The plan: sandbox steps, or none and a direct answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    #[serde(default)]
    pub assumptions: Vec<String>,
    /// The answer of a plan without steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// The verifier's judgement of the last step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: Verdict,
    #[serde(default)]
    pub findings: Vec<String>,
    /// The remediation hint, fed into the retry.
    #[serde(default)]
    pub recommended_actions: Vec<String>,
    /// Commands for the retry, when the verifier proposes others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_commands: Option<Vec<String>>,
}

/// The workflow state: the spec's state JSON, plus what this engine needs to resume exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub task_id: Uuid,
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    #[serde(default)]
    pub preferences_effective: Value,
    #[serde(default)]
    pub artifacts: Vec<Value>,
    #[serde(default)]
    pub plan: Plan,
    #[serde(default)]
    pub current_step_index: usize,
    /// Jobs dispatched per step index (as a string, like the spec's `{"0": 1}`).
    #[serde(default)]
    pub attempts_by_step: BTreeMap<String, u32>,
    /// What the last step's job produced, as the verifier read it.
    #[serde(default)]
    pub last_result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The job of the attempt being dispatched or collected, saved before it is enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_job_id: Option<Uuid>,
    /// The task's summary once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why the workflow fails (bad model output, no model, verification exhausted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl State {
    pub fn new(task_id: Uuid) -> Self {
        Self {
            task_id,
            acceptance_criteria: Vec::new(),
            preferences_effective: Value::Object(Default::default()),
            artifacts: Vec::new(),
            plan: Plan::default(),
            current_step_index: 0,
            attempts_by_step: BTreeMap::new(),
            last_result: Value::Object(Default::default()),
            verification: None,
            current_job_id: None,
            summary: None,
            failure: None,
        }
    }

    /// Jobs dispatched so far for step `index`.
    pub fn attempts(&self, index: usize) -> u32 {
        self.attempts_by_step
            .get(&index.to_string())
            .copied()
            .unwrap_or(0)
    }
}

/// The job id of attempt `attempt` (1-based) of step `index`: the same on every resume, so
/// enqueueing it again finds the job instead of adding one.
pub fn job_id(task_id: Uuid, index: usize, attempt: u32) -> Uuid {
    Uuid::new_v5(
        &task_id,
        format!("step-{index}-attempt-{attempt}").as_bytes(),
    )
}

/// The node after `last` (`None`: nothing ran yet) given the state, or `None` when the
/// workflow has ended. `retries` is how often a step whose verification failed runs again.
pub fn successor(last: Option<Node>, state: &State, retries: u32) -> Option<Node> {
    let Some(last) = last else {
        return Some(Node::LoadTaskContext);
    };
    if state.failure.is_some() {
        return (last != Node::MarkFailed).then_some(Node::MarkFailed);
    }
    let steps_left = state.current_step_index < state.plan.steps.len();
    Some(match last {
        Node::LoadTaskContext => Node::PlanSteps,
        Node::PlanSteps if steps_left => Node::DispatchStep,
        Node::PlanSteps => Node::FinalizeSummary,
        Node::DispatchStep => Node::CollectResult,
        Node::CollectResult => Node::VerifyStepResult,
        Node::VerifyStepResult => match state.verification.as_ref().map(|v| v.status) {
            // A pass moved the index on already (the node's own update).
            Some(Verdict::Pass) if steps_left => Node::DispatchStep,
            Some(Verdict::Pass) => Node::FinalizeSummary,
            _ if state.attempts(state.current_step_index) <= retries => Node::DispatchStep,
            _ => Node::MarkFailed,
        },
        Node::FinalizeSummary | Node::MarkFailed => return None,
    })
}

/// Why a step that failed its verification for the last time fails the task.
pub fn exhausted(state: &State) -> String {
    let index = state.current_step_index;
    let findings = state
        .verification
        .as_ref()
        .map(|v| v.findings.join("; "))
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "no findings given".into());
    format!(
        "step {} failed verification after {} attempts: {findings}",
        index + 1,
        state.attempts(index)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(steps: usize) -> State {
        let mut state = State::new(Uuid::nil());
        state.plan.steps = (0..steps)
            .map(|i| PlanStep {
                description: format!("step {i}"),
                commands: vec!["true".into()],
                expected_evidence: "nothing".into(),
            })
            .collect();
        state
    }

    fn verified(mut state: State, status: Verdict, attempts: u32) -> State {
        state
            .attempts_by_step
            .insert(state.current_step_index.to_string(), attempts);
        state.verification = Some(Verification {
            status,
            findings: vec!["f".into()],
            recommended_actions: vec![],
            retry_commands: None,
        });
        state
    }

    #[test]
    fn the_graph_starts_at_load_task_context_and_plans_next() {
        let state = State::new(Uuid::nil());
        assert_eq!(successor(None, &state, 2), Some(Node::LoadTaskContext));
        assert_eq!(
            successor(Some(Node::LoadTaskContext), &state, 2),
            Some(Node::PlanSteps)
        );
    }

    #[test]
    fn a_plan_with_steps_dispatches_and_one_without_finalizes() {
        assert_eq!(
            successor(Some(Node::PlanSteps), &planned(2), 2),
            Some(Node::DispatchStep)
        );
        assert_eq!(
            successor(Some(Node::PlanSteps), &planned(0), 2),
            Some(Node::FinalizeSummary)
        );
        let state = planned(1);
        assert_eq!(
            successor(Some(Node::DispatchStep), &state, 2),
            Some(Node::CollectResult)
        );
        assert_eq!(
            successor(Some(Node::CollectResult), &state, 2),
            Some(Node::VerifyStepResult)
        );
    }

    #[test]
    fn a_pass_goes_to_the_next_step_or_finalizes() {
        let mut state = verified(planned(2), Verdict::Pass, 1);
        state.current_step_index = 1;
        assert_eq!(
            successor(Some(Node::VerifyStepResult), &state, 2),
            Some(Node::DispatchStep)
        );
        state.current_step_index = 2;
        assert_eq!(
            successor(Some(Node::VerifyStepResult), &state, 2),
            Some(Node::FinalizeSummary)
        );
    }

    #[test]
    fn a_fail_retries_while_retries_are_left_then_marks_failed() {
        for (attempts, next) in [
            (1, Node::DispatchStep),
            (2, Node::DispatchStep),
            (3, Node::MarkFailed),
        ] {
            let state = verified(planned(1), Verdict::Fail, attempts);
            assert_eq!(
                successor(Some(Node::VerifyStepResult), &state, 2),
                Some(next),
                "after {attempts} attempts"
            );
        }
        let state = verified(planned(1), Verdict::Fail, 1);
        assert_eq!(
            successor(Some(Node::VerifyStepResult), &state, 0),
            Some(Node::MarkFailed)
        );
        assert_eq!(
            exhausted(&state),
            "step 1 failed verification after 1 attempts: f"
        );
    }

    #[test]
    fn a_failure_marks_failed_once_and_the_ends_end() {
        let mut state = planned(1);
        state.failure = Some("bad".into());
        assert_eq!(
            successor(Some(Node::PlanSteps), &state, 2),
            Some(Node::MarkFailed)
        );
        assert_eq!(successor(Some(Node::MarkFailed), &state, 2), None);
        assert_eq!(successor(Some(Node::FinalizeSummary), &planned(0), 2), None);
    }

    #[test]
    fn job_ids_are_fixed_per_step_attempt() {
        let task = Uuid::new_v4();
        assert_eq!(job_id(task, 0, 1), job_id(task, 0, 1));
        assert_ne!(job_id(task, 0, 1), job_id(task, 0, 2));
        assert_ne!(job_id(task, 0, 1), job_id(task, 1, 1));
        assert_ne!(job_id(task, 0, 1), job_id(Uuid::new_v4(), 0, 1));
    }

    #[test]
    fn node_ids_round_trip_and_the_state_has_the_spec_keys() {
        for node in Node::ALL {
            assert_eq!(Node::from_id(node.id()), Some(node));
        }
        assert_eq!(Node::from_id("nope"), None);
        let json = serde_json::to_value(State::new(Uuid::nil())).unwrap();
        for key in [
            "task_id",
            "acceptance_criteria",
            "preferences_effective",
            "plan",
            "current_step_index",
            "attempts_by_step",
            "last_result",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let back: State = serde_json::from_value(json).unwrap();
        assert_eq!(back, State::new(Uuid::nil()));
    }
}
