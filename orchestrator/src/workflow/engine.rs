//! The driver: runs a prompt task's graph node by node, checkpointing the state after each, while
//! it holds the task's lease.
//!
//! A driver starts when a prompt task opens, at start-up and every `WORKFLOW_RESUME_INTERVAL`
//! for open prompt tasks whose lease is free (another process's task, a driver that stopped on
//! an error, a process that died); one per task in this process ([`super::Drivers`]), which a
//! job's end wakes. It takes the lease (`store::acquire`), renews it every third of
//! `WORKFLOW_LEASE_TTL` while it runs, and releases it when it stops, also when the process stops
//! gracefully ([`drive`]); a process that dies leaves its leases to expire. A
//! driver whose lease was lost, or whose task was closed (canceled, or failed by a job), stops
//! where it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cynode_contracts::user::JobStatus;
use cynode_contracts::worker::SandboxSpec;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::context::{self, TaskContext};
use super::store::{self, Acquired};
use super::{Drivers, Node, State, Verdict, job_id, schema, successor};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::{self, Conclusion};
use crate::mcp::Mcp;
use crate::node_inference::ModelRoute;
use crate::pm::planner::{self, NewStep};
use crate::pm::{self, PmUsage, ProjectManager};
use crate::usage::{self, ModelCall};

/// What the workflow's drivers need: the pool and settings, the Project Manager that plans,
/// verifies and summarises, the MCP pipeline through which it reads the task's context, and
/// this process's drivers.
#[derive(Debug, Clone)]
pub struct Engine {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub pm: ProjectManager,
    pub mcp: Mcp,
    pub drivers: Arc<Drivers>,
}

/// Bytes of each output stream the model reads of a job.
pub const OUTPUT_CAP: usize = 4096;

/// The system message of the plan.
pub const PLAN_BRIEF: &str = "You are the CyNodeAI project manager. Reply with JSON only. \
If you can answer the user directly, reply {\"action\":\"answer\",\"answer\":\"<your answer>\"}. \
Only if shell commands in a Linux sandbox must run first, reply {\"action\":\"plan\",\"steps\":\
[{\"description\":\"<what>\",\"commands\":[\"<command>\"],\"expected_evidence\":\"<what the output \
shows when it worked>\"}]}. Prefer answering directly.";
/// The system message of a verification.
pub const VERIFY_BRIEF: &str = "You are the CyNodeAI project manager checking one step's result. \
Reply with JSON only: {\"status\":\"pass\"|\"fail\",\"findings\":[\"<what you saw>\"],\
\"recommended_actions\":[\"<what to change>\"],\"retry_commands\":[\"<commands for a retry>\"]}. \
Pass when the output shows the expected evidence.";
/// The system message of the summary.
pub const SUMMARY_BRIEF: &str = "You are the CyNodeAI project manager. The steps below ran for the \
user's request. Reply with JSON only: {\"action\":\"answer\",\"answer\":\"<the answer to the \
user, from the steps' output>\"}.";

/// Kicks the driver of every task the planner asks for (a prompt task opened, one of its jobs
/// ended), until the process stops: a task's own driver wakes, or one starts.
pub async fn drive_requested(state: Engine, mut requests: mpsc::UnboundedReceiver<Uuid>) {
    let stop = state.drivers.stop().clone();
    stop.run_until_cancelled(async {
        while let Some(task_id) = requests.recv().await {
            state.drivers.kick(&state, task_id);
        }
    })
    .await;
}

/// Drives every open prompt task whose lease is free now, then again every
/// `WORKFLOW_RESUME_INTERVAL`, until the process stops; each time, this process's live drivers
/// look at their jobs again.
pub async fn resume_loop(state: Engine) {
    let stop = state.drivers.stop().clone();
    stop.run_until_cancelled(async {
        loop {
            match store::unheld_prompt_tasks(&state.db).await {
                Ok(ids) => ids
                    .into_iter()
                    .for_each(|id| state.drivers.kick(&state, id)),
                Err(e) => tracing::warn!(error = %e, "listing open prompt tasks failed"),
            }
            state.drivers.wake_all();
            tokio::time::sleep(state.config.workflow_resume_interval).await;
        }
    })
    .await;
}

/// Runs the workflow of `task_id` as far as it goes, if its lease is free; `wake` is rung when
/// one of the task's jobs may have ended. At the process's stop it stops where it is and
/// releases the lease, so that another orchestrator, or this one started again, resumes the task
/// from the last checkpoint at once instead of after the lease expires (a crash leaves it to
/// expire).
pub(super) async fn drive(state: &Engine, task_id: Uuid, wake: &Notify) -> Result<()> {
    let Some(task) = context::task(&state.mcp, task_id).await? else {
        return Ok(());
    };
    if !context::open(&state.mcp, task_id).await? {
        return Ok(());
    }
    let ttl = state.config.workflow_lease_ttl;
    let lease_id = Uuid::new_v4();
    let holder = state.drivers.holder();
    if store::acquire(&state.db, task_id, holder, lease_id, ttl).await? != Acquired::Started {
        return Ok(());
    }
    let result = tokio::select! {
        done = run(state, &task, wake, lease_id) => done,
        lost = keep_lease(state, task_id, lease_id, ttl) => lost,
        () = state.drivers.stop().cancelled() => Ok(()),
    };
    if let Err(e) = store::release(&state.db, task_id, lease_id).await {
        tracing::warn!(%task_id, error = %e, "releasing the workflow lease failed; it expires");
    }
    result
}

/// Renews the lease every third of its lifetime; returns when it is lost (the driver stops).
async fn keep_lease(state: &Engine, task_id: Uuid, lease_id: Uuid, ttl: Duration) -> Result<()> {
    loop {
        tokio::time::sleep(ttl / 3).await;
        if !store::renew(&state.db, task_id, state.drivers.holder(), lease_id, ttl).await? {
            tracing::warn!(%task_id, "workflow lease lost; this driver stops");
            return Ok(());
        }
    }
}

/// The graph from the checkpoint on: resume = the successor of `last_node_id`. The driver holds
/// the task's lease `lease_id`.
async fn run(state: &Engine, task: &TaskContext, wake: &Notify, lease_id: Uuid) -> Result<()> {
    let retries = state.config.pm_step_retries;
    let (mut wf, mut last) = match store::checkpoint(&state.db, task.task_id).await? {
        None => (State::new(task.task_id), None),
        Some(cp) => match (
            serde_json::from_value::<State>(cp.state),
            Node::from_id(&cp.last_node_id),
        ) {
            (Ok(wf), Some(node)) => (wf, Some(node)),
            _ => {
                let reason = "the workflow checkpoint is not one this engine can resume";
                jobs::conclude(&state.db, task.task_id, Conclusion::Fail(reason.into())).await?;
                return Ok(());
            }
        },
    };
    while let Some(node) = successor(last, &wf, retries) {
        if !context::open(&state.mcp, task.task_id).await? {
            return Ok(());
        }
        let Some(next) = step(state, task, node, wf, wake).await? else {
            return Ok(());
        };
        wf = next;
        // The last node's checkpoint and the lease's release commit with the task's end, so
        // that whoever sees the task ended also finds the workflow's final checkpoint and its
        // lease free.
        let mut tx = state.db.begin().await?;
        if let Some(conclusion) = conclusion(node, &wf) {
            if let Conclusion::Fail(reason) = &conclusion {
                tracing::warn!(task_id = %task.task_id, %reason, "prompt task fails");
            }
            jobs::conclude_in(&mut tx, task.task_id, conclusion).await?;
            store::release(&mut *tx, task.task_id, lease_id).await?;
        }
        store::save(&mut *tx, task.task_id, &to_json(&wf)?, node.id()).await?;
        tx.commit().await?;
        tracing::info!(task_id = %task.task_id, node = node.id(), "workflow node done");
        last = Some(node);
    }
    Ok(())
}

/// How the task ends after `node`: only the last nodes end it.
fn conclusion(node: Node, wf: &State) -> Option<Conclusion> {
    match node {
        Node::MarkFailed => Some(Conclusion::Fail(
            wf.failure.clone().unwrap_or_else(|| super::exhausted(wf)),
        )),
        Node::FinalizeSummary => wf.summary.clone().map(Conclusion::Answer),
        _ => None,
    }
}

fn to_json(wf: &State) -> Result<Value> {
    serde_json::to_value(wf).map_err(Error::internal)
}

/// Runs one node; `None` when the driver must stop without finishing it (the task closed).
async fn step(
    state: &Engine,
    task: &TaskContext,
    node: Node,
    mut wf: State,
    wake: &Notify,
) -> Result<Option<State>> {
    match node {
        Node::LoadTaskContext => {
            wf.acceptance_criteria = context::acceptance_criteria(task);
            wf.preferences_effective = context::preferences_effective(&state.mcp, task).await?;
            wf.artifacts = context::artifacts(&state.mcp, task).await?;
        }
        Node::PlanSteps => plan_steps(state, task, &mut wf).await?,
        Node::DispatchStep => dispatch_step(state, task, &mut wf).await?,
        Node::CollectResult => {
            if !collect_result(state, task, &mut wf, wake).await? {
                return Ok(None);
            }
        }
        Node::VerifyStepResult => verify_step_result(state, task, &mut wf).await?,
        Node::FinalizeSummary => finalize_summary(state, task, &mut wf).await?,
        // The task fails with this node's checkpoint (`run`).
        Node::MarkFailed => {}
    }
    Ok(Some(wf))
}

/// One PM model call, recorded as a step with its token usage. `None` (and `wf.failure` set)
/// when there is no model, the call failed or the answer does not parse.
async fn ask<T>(
    state: &Engine,
    task: &TaskContext,
    wf: &mut State,
    messages: Vec<Value>,
    (name, schema): (&str, Value),
    parse: impl Fn(&str) -> std::result::Result<T, String>,
    decision: impl Fn(&T) -> Value,
) -> Result<Option<T>> {
    let Some((route, model)) = wait_for_pm(state).await else {
        let reason = state
            .pm
            .reason()
            .unwrap_or_else(|| "project manager model not selected".into());
        wf.failure = Some(format!(
            "the project manager model is not available: {reason}"
        ));
        return Ok(None);
    };
    let body = json!({
        "messages": messages,
        "max_tokens": state.config.pm_max_tokens,
        "response_format": {"type": "json_schema",
            "json_schema": {"name": name, "strict": true, "schema": schema}},
    });
    let mut row = NewStep {
        task_id: task.task_id,
        model: model.clone(),
        node_slug: route.node_slug.clone(),
        request: Value::Array(messages),
        response: None,
        decision: None,
        job_id: None,
        error: None,
        usage: PmUsage::default(),
        model_ms: 0,
    };
    let started = Instant::now();
    let reply = match pm::complete(&state.pm, &route, &model, body).await {
        Err(e) => {
            row.model_ms = started.elapsed().as_millis() as i64;
            row.error = Some(e.to_string());
            planner::record(&state.db, &row).await?;
            wf.failure = row.error;
            return Ok(None);
        }
        Ok(reply) => reply,
    };
    let parsed = parse(&reply.content);
    row.model_ms = reply.elapsed.as_millis() as i64;
    row.usage = reply.usage;
    row.response = Some(reply.content.clone());
    match &parsed {
        Ok(value) => row.decision = Some(decision(value)),
        Err(e) => row.error = Some(e.clone()),
    }
    let mut tx = state.db.begin().await?;
    usage::record(
        &mut *tx,
        task.owner,
        &ModelCall {
            task_id: Some(task.task_id),
            model: &reply.model,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
        },
    )
    .await?;
    planner::record(&mut *tx, &row).await?;
    tx.commit().await?;
    match parsed {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            wf.failure = Some(e);
            Ok(None)
        }
    }
}

/// The selected PM, waiting while it is being selected or warmed up (a restart, a re-selection)
/// up to the model timeout; `None` at once when no node serves it.
async fn wait_for_pm(state: &Engine) -> Option<(ModelRoute, String)> {
    let deadline = Instant::now() + state.config.pm_model_timeout;
    loop {
        if let Some(found) = pm::pm_route(&state.pm).await {
            return Some(found);
        }
        pm::refresh(&state.pm).await;
        if let Some(found) = pm::pm_route(&state.pm).await {
            return Some(found);
        }
        let waiting = matches!(
            state.pm.status(),
            pm::PmStatus::Unknown | pm::PmStatus::Warming { .. }
        );
        if !waiting || Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn context_message(wf: &State) -> Option<Value> {
    // The state keeps where each preference came from; the model needs only the values.
    let preferences = &wf.preferences_effective["effective"];
    let empty_prefs = preferences.as_object().is_none_or(|p| p.is_empty());
    if wf.acceptance_criteria.is_empty() && empty_prefs && wf.artifacts.is_empty() {
        return None;
    }
    let context = json!({"acceptance_criteria": wf.acceptance_criteria,
        "preferences": preferences, "artifacts": wf.artifacts});
    Some(json!({"role": "system", "content": format!("Task context (JSON): {context}")}))
}

async fn plan_steps(state: &Engine, task: &TaskContext, wf: &mut State) -> Result<()> {
    let max_tokens = state.config.pm_max_tokens;
    let max_steps = schema::steps_allowed(state.config.pm_max_steps, max_tokens);
    let mut messages = vec![json!({"role": "system", "content": PLAN_BRIEF})];
    messages.extend(context_message(wf));
    messages.push(json!({"role": "user", "content": task.prompt}));
    let schema = schema::plan(max_steps, max_tokens);
    let plan = ask(
        state,
        task,
        wf,
        messages,
        ("workflow_plan", schema),
        |text| schema::parse_plan(text, max_steps),
        |plan| match &plan.answer {
            Some(answer) => json!({"action": "answer", "answer": answer}),
            None => json!({"action": "plan", "steps": plan.steps, "assumptions": plan.assumptions}),
        },
    )
    .await?;
    if let Some(plan) = plan {
        wf.plan = plan;
        wf.current_step_index = 0;
    }
    Ok(())
}

const EXIT_TRAILER: &str = "\n[cynode-pm exit code] ";

/// The job of a step: its commands in one shell, whose exit code is reported on stderr and
/// judged by the verifier rather than failing the task (a failed job fails its task).
fn step_spec(state: &Engine, commands: &[String]) -> SandboxSpec {
    let wrapper = format!(
        "sh -c \"$1\"; code=$?; printf '{}%s\\n' \"$code\" >&2; exit 0",
        EXIT_TRAILER.replace('\n', "\\n")
    );
    SandboxSpec {
        image: state.config.sandbox_image.clone(),
        command: vec![
            "sh".into(),
            "-c".into(),
            wrapper,
            "pm-step".into(),
            commands.join("\n"),
        ],
        env: BTreeMap::new(),
        timeout_seconds: None,
        network_policy: None,
        use_inference: false,
        use_mcp: false,
        job_spec_json: None,
        resources: None,
    }
}

/// Whether the state has the step it is at: a checkpoint written through the workflow API may
/// not. Without it the workflow fails instead of dispatching or verifying nothing.
fn has_current_step(wf: &mut State) -> bool {
    if wf.current_step_index < wf.plan.steps.len() {
        return true;
    }
    wf.failure = Some(format!(
        "the workflow state has no step {} to run",
        wf.current_step_index + 1
    ));
    false
}

async fn dispatch_step(state: &Engine, task: &TaskContext, wf: &mut State) -> Result<()> {
    if !has_current_step(wf) {
        return Ok(());
    }
    let index = wf.current_step_index;
    let attempt = wf.attempts(index) + 1;
    let id = job_id(task.task_id, index, attempt);
    let retry = wf
        .verification
        .as_ref()
        .filter(|v| v.status == Verdict::Fail && attempt > 1);
    if let Some(commands) = retry.and_then(|v| v.retry_commands.clone()) {
        wf.plan.steps[index].commands = commands;
    }
    let hint = retry
        .map(|v| v.recommended_actions.join("; "))
        .filter(|h| !h.is_empty());
    if wf.current_job_id != Some(id) {
        // The job's id is saved before the job exists: a resume from here finds it.
        wf.current_job_id = Some(id);
        store::update_state(&state.db, task.task_id, &to_json(wf)?).await?;
    }
    let step = &wf.plan.steps[index];
    jobs::enqueue_as(
        &state.db,
        task.task_id,
        id,
        &step_spec(state, &step.commands),
    )
    .await?;
    let why = match &hint {
        Some(hint) => format!("{} (retry {attempt}: {hint})", step.description),
        None => step.description.clone(),
    };
    planner::record(
        &state.db,
        &NewStep {
            task_id: task.task_id,
            model: String::new(),
            node_slug: String::new(),
            request: json!([{"role": "system", "content": format!(
                "step {} of {}, attempt {attempt}; expected evidence: {}",
                index + 1, wf.plan.steps.len(), step.expected_evidence)}]),
            response: None,
            decision: Some(
                json!({"action": "run", "commands": step.commands, "why": why,
                "step": index, "attempt": attempt}),
            ),
            job_id: Some(id),
            error: None,
            usage: PmUsage::default(),
            model_ms: 0,
        },
    )
    .await?;
    wf.attempts_by_step.insert(index.to_string(), attempt);
    Ok(())
}

fn stream(result: &Value, key: &str) -> String {
    let text = result[key].as_str().unwrap_or_default();
    if text.len() <= OUTPUT_CAP {
        return text.to_owned();
    }
    let mut end = OUTPUT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated]", &text[..end])
}

/// What the model reads of a finished job.
fn job_output(job: &jobs::JobRecord) -> Value {
    let result = job.result.clone().unwrap_or_default();
    let stderr = stream(&result, "stderr");
    // The wrapper's trailer carries the commands' exit code.
    let (stderr, exit_code) = match stderr.rsplit_once(EXIT_TRAILER) {
        Some((before, code)) => (before.to_owned(), code.trim().parse::<i64>().ok()),
        None => (stderr, result["exit_code"].as_i64()),
    };
    let mut out = json!({
        "job_status": job.status.as_str(),
        "exit_code": exit_code,
        "stdout": stream(&result, "stdout"),
        "stderr": stderr,
    });
    if let Some(error) = result["error"].as_str() {
        out["error"] = json!(error);
    }
    out
}

/// Waits for the current job to end (woken when a job of the task ended in this process, and
/// every `WORKFLOW_RESUME_INTERVAL` for one that ended elsewhere); `false` when the task closed
/// meanwhile.
async fn collect_result(
    state: &Engine,
    task: &TaskContext,
    wf: &mut State,
    wake: &Notify,
) -> Result<bool> {
    let Some(id) = wf.current_job_id else {
        wf.failure = Some("the workflow has no job to collect".into());
        return Ok(true);
    };
    loop {
        let Some(job) = jobs::job(&state.db, id).await? else {
            wf.failure = Some("the step's job disappeared".into());
            return Ok(true);
        };
        if !matches!(job.status, JobStatus::Queued | JobStatus::Running) {
            let output = job_output(&job);
            let job_ms = match (job.started_at, job.ended_at) {
                (Some(s), Some(e)) => Some((e - s).num_milliseconds().max(0)),
                _ => None,
            };
            planner::record_output(&state.db, id, &output, job_ms).await?;
            wf.last_result = output;
            return Ok(true);
        }
        if !context::open(&state.mcp, task.task_id).await? {
            return Ok(false);
        }
        // A wake that came while this looked is kept (`notify_one`), so none is missed.
        wake.notified().await;
    }
}

async fn verify_step_result(state: &Engine, task: &TaskContext, wf: &mut State) -> Result<()> {
    if !has_current_step(wf) {
        return Ok(());
    }
    let index = wf.current_step_index;
    let step = &wf.plan.steps[index];
    let facts = json!({
        "request": task.prompt,
        "acceptance_criteria": wf.acceptance_criteria,
        "step": {"description": step.description, "commands": step.commands,
                 "expected_evidence": step.expected_evidence},
        "output": wf.last_result,
    });
    let messages = vec![
        json!({"role": "system", "content": VERIFY_BRIEF}),
        json!({"role": "user", "content": format!("Judge this step (JSON):\n{facts}")}),
    ];
    let schema = schema::verification(state.config.pm_max_tokens);
    let verification = ask(
        state,
        task,
        wf,
        messages,
        ("workflow_verification", schema),
        schema::parse_verification,
        |v| {
            let mut d = serde_json::to_value(v).unwrap_or_default();
            d["action"] = json!("verify");
            d
        },
    )
    .await?;
    if let Some(v) = verification {
        if v.status == Verdict::Pass {
            wf.current_step_index += 1;
            wf.current_job_id = None;
        }
        wf.verification = Some(v);
    }
    Ok(())
}

async fn finalize_summary(state: &Engine, task: &TaskContext, wf: &mut State) -> Result<()> {
    let summary = match wf.plan.answer.clone() {
        // A plan without steps answered already.
        Some(answer) => answer,
        None => {
            let outputs: Vec<Value> = planner::steps(&state.db, task.task_id)
                .await?
                .into_iter()
                .filter_map(|s| Some(json!({"step": s.decision?, "output": s.output?})))
                .collect();
            let facts = json!({"request": task.prompt, "steps": outputs});
            let messages = vec![
                json!({"role": "system", "content": SUMMARY_BRIEF}),
                json!({"role": "user", "content": format!("What ran (JSON):\n{facts}")}),
            ];
            let schema = schema::answer(state.config.pm_max_tokens);
            let answer = ask(
                state,
                task,
                wf,
                messages,
                ("workflow_summary", schema),
                schema::parse_answer,
                |a| json!({"action": "answer", "answer": a}),
            )
            .await?;
            // A failed summary call set `wf.failure`: mark_failed comes next.
            let Some(answer) = answer else {
                return Ok(());
            };
            answer
        }
    };
    // The task completes with the checkpoint (`run`).
    wf.summary = Some(summary);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_without_its_current_step_fails_instead_of_running() {
        let mut wf = State::new(Uuid::nil());
        assert!(!has_current_step(&mut wf));
        assert_eq!(
            wf.failure.as_deref(),
            Some("the workflow state has no step 1 to run")
        );
        wf.failure = None;
        wf.plan.steps.push(super::super::PlanStep {
            description: "d".into(),
            commands: vec!["true".into()],
            expected_evidence: "e".into(),
        });
        assert!(has_current_step(&mut wf));
        assert_eq!(wf.failure, None);
    }

    #[test]
    fn output_streams_are_capped_on_a_char_boundary() {
        let long = "é".repeat(OUTPUT_CAP);
        let capped = stream(&json!({"stdout": long}), "stdout");
        assert!(capped.ends_with("…[truncated]"));
        assert!(capped.len() <= OUTPUT_CAP + "…[truncated]".len());
    }
}
