//! Prompt tasks (`input_mode: prompt`) as a Project Manager loop on the jobs seam.
//!
//! The task opens with an open plan and no job. A driver then repeats: ask the PM model (the
//! prompt, a short brief and every earlier step) for a JSON decision constrained by
//! [`decision_schema`]: `answer` ends the task with the answer as its summary; `run` enqueues a
//! sandbox job whose output (capped) is the next message. At most `PM_MAX_STEPS` model calls;
//! the last one may only answer (its schema has no `run`), and a model that still asks to run
//! fails the task with "step bound reached".
//!
//! Each step is a `task_steps` row written before the next step starts; the driver derives
//! what to do next from those rows and the jobs alone, so a driver that stopped anywhere can be
//! started again (at start-up, on a job's end, every few seconds): a step's job carries the
//! step's id (`PM_STEP_ID`) and is looked up before enqueuing, so no step is enqueued twice. A
//! PostgreSQL advisory lock keeps one driver per task across processes.
//!
//! The prompt is never run as shell: only commands the model chose run, in the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use cynode_contracts::user::{InputMode, JobStatus, TaskStatus};
use cynode_contracts::worker::SandboxSpec;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::jobs::{self, Conclusion, NewTask, Plan, Planner, ShellPlanner};
use crate::usage::{self, ModelCall};

/// The job env var naming the step that enqueued the job.
pub const STEP_ENV: &str = "PM_STEP_ID";
/// Bytes of each output stream fed back to the model.
pub const OUTPUT_CAP: usize = 4096;
/// The failure of a task whose model kept asking to run past the bound.
pub const STEP_BOUND: &str = "step bound reached";

/// The system message of a prompt task.
pub const BRIEF: &str = "You are the CyNodeAI project manager. Reply with JSON only. \
To answer the user, reply {\"action\":\"answer\",\"answer\":\"<your answer>\"}. \
Only if you must run shell commands in a Linux sandbox first, reply \
{\"action\":\"run\",\"commands\":[\"<command>\"],\"why\":\"<reason>\"}; \
you then get their output and decide again. Prefer answering directly.";

/// Tokens a decision's keys, quotes and punctuation may take besides its strings.
const DECISION_OVERHEAD_TOKENS: u32 = 48;

/// The JSON schema of a decision; `final_step` allows only `answer`. Every string is bounded so
/// that a decision constrained by the schema closes within `max_tokens` (`PM_MAX_TOKENS`) even
/// when every character costs a token, which a small model's odd output can (SmolLM2 once spent
/// 512 tokens on 507 characters): a string cut off by the token limit would not parse.
pub fn decision_schema(final_step: bool, max_tokens: u32) -> Value {
    let budget = max_tokens.saturating_sub(DECISION_OVERHEAD_TOKENS).max(16);
    let answer_chars = budget.min(4000);
    let why_chars = (budget / 4).min(200);
    let command_chars = ((budget - why_chars) / 4).saturating_sub(8).clamp(8, 300);
    let answer = json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["answer"]},
            "answer": {"type": "string", "minLength": 1, "maxLength": answer_chars}
        },
        "required": ["action", "answer"],
        "additionalProperties": false
    });
    if final_step {
        return answer;
    }
    let run = json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["run"]},
            "commands": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": command_chars},
                "minItems": 1,
                "maxItems": 4
            },
            "why": {"type": "string", "maxLength": why_chars},
            "use_inference": {"type": "boolean"}
        },
        "required": ["action", "commands", "why"],
        "additionalProperties": false
    });
    json!({"anyOf": [answer, run]})
}

/// What the model decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Answer(String),
    Run {
        commands: Vec<String>,
        why: String,
        use_inference: bool,
    },
}

/// Reads the model's text as a decision, or says why it is not one.
pub fn parse_decision(text: &str) -> std::result::Result<Decision, String> {
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the model's answer is not valid JSON ({e})"))?;
    match value["action"].as_str() {
        Some("answer") => match value["answer"].as_str() {
            Some(a) if !a.trim().is_empty() => Ok(Decision::Answer(a.to_owned())),
            _ => Err("the model's answer decision has no answer text".into()),
        },
        Some("run") => {
            let commands: Vec<String> = value["commands"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if commands.iter().all(|c| c.trim().is_empty()) {
                return Err("the model's run decision has no commands".into());
            }
            Ok(Decision::Run {
                commands,
                why: value["why"].as_str().unwrap_or_default().to_owned(),
                use_inference: value["use_inference"].as_bool().unwrap_or(false),
            })
        }
        Some(other) => Err(format!("the model chose an unknown action {other:?}")),
        None => Err("the model's answer has no action".into()),
    }
}

impl Decision {
    fn to_json(&self) -> Value {
        match self {
            Self::Answer(a) => json!({"action": "answer", "answer": a}),
            Self::Run {
                commands,
                why,
                use_inference,
            } => json!({"action": "run", "commands": commands, "why": why,
                        "use_inference": use_inference}),
        }
    }

    fn from_json(v: &Value) -> Option<Self> {
        parse_decision(&v.to_string()).ok()
    }
}

/// A step as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Step {
    pub id: Uuid,
    pub step_index: i32,
    pub model: String,
    pub node_slug: String,
    pub request: Value,
    pub response: Option<String>,
    pub decision: Option<Value>,
    pub job_id: Option<Uuid>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub model_ms: i64,
    pub job_ms: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A task's steps, in order.
pub async fn steps(db: impl sqlx::PgExecutor<'_>, task_id: Uuid) -> Result<Vec<Step>> {
    Ok(sqlx::query_as::<_, Step>(
        "SELECT id, step_index, model, node_slug, request, response, decision, job_id, output,
                error, prompt_tokens, completion_tokens, model_ms, job_ms, created_at, updated_at
         FROM task_steps WHERE task_id = $1 ORDER BY step_index",
    )
    .bind(task_id)
    .fetch_all(db)
    .await?)
}

/// The planner of every task: `script`/`commands` as [`ShellPlanner`]; `prompt` as an open
/// plan driven by the PM loop.
#[derive(Debug, Clone)]
pub struct PmPlanner {
    pub shell: ShellPlanner,
    /// Prompt tasks to drive, for [`drive_requested`]. A channel, not the state itself: the
    /// state holds this planner, and the reference cycle would keep the state (and its
    /// database connections) alive after the runtime that ran it has gone.
    requests: mpsc::UnboundedSender<Uuid>,
}

impl PmPlanner {
    /// The planner and the receiving end of its requests, for [`drive_requested`].
    pub fn new(shell: ShellPlanner) -> (Self, mpsc::UnboundedReceiver<Uuid>) {
        let (requests, received) = mpsc::unbounded_channel();
        (Self { shell, requests }, received)
    }

    fn spawn(&self, task_id: Uuid) {
        // The receiver goes only when the process stops; the task then resumes at the next
        // start (or in another orchestrator's resume loop).
        let _ = self.requests.send(task_id);
    }
}

/// Starts a driver for every prompt task the planner asks for, until the runtime stops.
pub async fn drive_requested(state: AppState, mut requests: mpsc::UnboundedReceiver<Uuid>) {
    while let Some(task_id) = requests.recv().await {
        spawn_driver(&state, task_id);
    }
}

impl Planner for PmPlanner {
    fn plan(&self, task: &NewTask<'_>) -> Plan {
        match task.input_mode {
            InputMode::Prompt => Plan::Open(Vec::new()),
            InputMode::Script | InputMode::Commands => self.shell.plan(task),
        }
    }

    fn opened(&self, task_id: Uuid, input_mode: InputMode) {
        if input_mode == InputMode::Prompt {
            self.spawn(task_id);
        }
    }

    fn step_finished(&self, task_id: Uuid, _job_id: Uuid, _task_status: TaskStatus) {
        self.spawn(task_id);
    }
}

/// Starts a driver for `task_id` in this process (tracked for shutdown).
pub fn spawn_driver(state: &AppState, task_id: Uuid) {
    let state = state.clone();
    let pm = state.pm.clone();
    pm.drivers.lock().expect("drivers").spawn(async move {
        if let Err(e) = drive(&state, task_id).await {
            tracing::error!(%task_id, error = %e, "prompt task driver failed; it resumes later");
        }
    });
}

/// Drives every open prompt task now, then again every `period` (tasks opened by another
/// process, drivers that stopped on an error, resumption after a restart).
pub async fn resume_loop(state: AppState, period: Duration) {
    loop {
        match sqlx::query_scalar::<_, Uuid>(
            "SELECT id FROM tasks WHERE input_mode = 'prompt' AND plan_open AND NOT closed",
        )
        .fetch_all(&state.db)
        .await
        {
            Ok(ids) => {
                {
                    // Reap finished drivers so that the set does not grow.
                    let mut drivers = state.pm.drivers.lock().expect("drivers");
                    while drivers.try_join_next().is_some() {}
                }
                for id in ids {
                    spawn_driver(&state, id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing open prompt tasks failed"),
        }
        tokio::time::sleep(period).await;
    }
}

/// One driver per task across processes: a session advisory lock on a connection of its own,
/// released when the connection closes (also when this process dies).
async fn lock_task(state: &AppState, task_id: Uuid) -> Result<Option<PgConnection>> {
    let mut conn = state.db.acquire().await?.detach();
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1::text, 9128))")
            .bind(task_id)
            .fetch_one(&mut conn)
            .await?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Runs the loop of `task_id` as far as it can go now.
pub async fn drive(state: &AppState, task_id: Uuid) -> Result<()> {
    let Some(lock) = lock_task(state, task_id).await? else {
        return Ok(());
    };
    let result = drive_locked(state, task_id).await;
    let _ = lock.close().await;
    result
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

const EXIT_TRAILER: &str = "\n[cynode-pm exit code] ";

/// The job of a `run` step: the commands in one shell, whose exit code is reported on stderr
/// and fed back to the model rather than failing the task, so the model can react to it.
fn step_spec(
    state: &AppState,
    step_id: Uuid,
    commands: &[String],
    use_inference: bool,
) -> SandboxSpec {
    let script = commands.join("\n");
    let wrapper = format!(
        "sh -c \"$1\"; code=$?; printf '{}%s\\n' \"$code\" >&2; exit 0",
        EXIT_TRAILER.replace('\n', "\\n")
    );
    SandboxSpec {
        image: state.config.sandbox_image.clone(),
        command: vec!["sh".into(), "-c".into(), wrapper, "pm-step".into(), script],
        env: BTreeMap::from([(STEP_ENV.to_owned(), step_id.to_string())]),
        timeout_seconds: None,
        network_policy: None,
        use_inference,
        use_mcp: false,
        job_spec_json: None,
        resources: None,
    }
}

fn messages(prompt: &str, steps: &[Step]) -> Vec<Value> {
    let mut messages = vec![
        json!({"role": "system", "content": BRIEF}),
        json!({"role": "user", "content": prompt}),
    ];
    for step in steps {
        if let Some(response) = &step.response {
            messages.push(json!({"role": "assistant", "content": response}));
        }
        if let Some(output) = &step.output {
            messages.push(json!({"role": "user", "content": format!(
                "Output of your commands (JSON):\n{output}\nDecide again: answer, or run more commands."
            )}));
        }
    }
    messages
}

async fn fail(state: &AppState, task_id: Uuid, reason: &str) -> Result<()> {
    tracing::warn!(%task_id, reason, "prompt task fails");
    jobs::conclude(&state.db, task_id, Conclusion::Fail(reason.to_owned())).await?;
    Ok(())
}

async fn drive_locked(state: &AppState, task_id: Uuid) -> Result<()> {
    loop {
        // Only prompt tasks are the Project Manager's; another planner's open plan is not.
        let row: Option<(String, bool, String, Uuid, Option<Uuid>)> = sqlx::query_as(
            "SELECT status, plan_open, prompt, created_by, api_key_id FROM tasks
             WHERE id = $1 AND input_mode = 'prompt'",
        )
        .bind(task_id)
        .fetch_optional(&state.db)
        .await?;
        let Some((status, plan_open, prompt, user_id, api_key_id)) = row else {
            return Ok(());
        };
        let owner = Principal {
            user_id,
            api_key_id,
        };
        let status: TaskStatus = status.parse().map_err(Error::internal)?;
        if status.is_terminal() || !plan_open {
            return Ok(());
        }
        let steps = steps(&state.db, task_id).await?;
        if let Some(last) = steps.last() {
            if let Some(error) = &last.error {
                return fail(state, task_id, error).await;
            }
            match last.decision.as_ref().and_then(Decision::from_json) {
                Some(Decision::Answer(answer)) => {
                    jobs::conclude(&state.db, task_id, Conclusion::Answer(answer)).await?;
                    return Ok(());
                }
                Some(Decision::Run {
                    commands,
                    use_inference,
                    ..
                }) if last.output.is_none() => {
                    let job_id = match last.job_id {
                        Some(id) => id,
                        None => {
                            let id = enqueue_once(state, task_id, last, &commands, use_inference)
                                .await?;
                            sqlx::query(
                                "UPDATE task_steps SET job_id = $2, updated_at = now() WHERE id = $1",
                            )
                            .bind(last.id)
                            .bind(id)
                            .execute(&state.db)
                            .await?;
                            id
                        }
                    };
                    let Some(job) = jobs::job(&state.db, job_id).await? else {
                        return fail(state, task_id, "the step's job disappeared").await;
                    };
                    if matches!(job.status, JobStatus::Queued | JobStatus::Running) {
                        // The dispatcher calls step_finished when it ends.
                        return Ok(());
                    }
                    let job_ms = match (job.started_at, job.ended_at) {
                        (Some(s), Some(e)) => Some((e - s).num_milliseconds().max(0)),
                        _ => None,
                    };
                    sqlx::query(
                        "UPDATE task_steps SET output = $2, job_ms = $3, updated_at = now()
                         WHERE id = $1",
                    )
                    .bind(last.id)
                    .bind(job_output(&job))
                    .bind(job_ms)
                    .execute(&state.db)
                    .await?;
                    // A failed or canceled job ended the task; the next turn sees it.
                    continue;
                }
                Some(Decision::Run { .. }) => {}
                None => return fail(state, task_id, "a step has no decision").await,
            }
        }
        let index = steps.len();
        let max = state.config.pm_max_steps as usize;
        if index >= max {
            return fail(state, task_id, STEP_BOUND).await;
        }
        let Some((route, model)) = wait_for_pm(state).await else {
            let reason = state
                .pm
                .reason()
                .unwrap_or_else(|| "project manager model not selected".into());
            return fail(
                state,
                task_id,
                &format!("the project manager model is not available: {reason}"),
            )
            .await;
        };
        let request = messages(&prompt, &steps);
        let body = json!({
            "messages": request,
            "max_tokens": state.config.pm_max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "pm_decision", "strict": true,
                "schema": decision_schema(index + 1 >= max, state.config.pm_max_tokens)}},
        });
        let step_id = Uuid::new_v4();
        let insert = |response: Option<String>,
                      decision: Option<Value>,
                      error: Option<String>,
                      usage: super::PmUsage,
                      ms: i64| {
            sqlx::query(
                "INSERT INTO task_steps (id, task_id, step_index, model, node_slug, request,
                    response, decision, error, prompt_tokens, completion_tokens, model_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(step_id)
            .bind(task_id)
            .bind(index as i32)
            .bind(model.clone())
            .bind(route.node_slug.clone())
            .bind(Value::Array(request.clone()))
            .bind(response)
            .bind(decision)
            .bind(error)
            .bind(usage.prompt_tokens as i64)
            .bind(usage.completion_tokens as i64)
            .bind(ms)
        };
        let started = std::time::Instant::now();
        match super::complete(state, &route, &model, body).await {
            Err(e) => {
                let ms = started.elapsed().as_millis() as i64;
                insert(None, None, Some(e.to_string()), Default::default(), ms)
                    .execute(&state.db)
                    .await?;
            }
            Ok(reply) => {
                let ms = reply.elapsed.as_millis() as i64;
                let mut tx = state.db.begin().await?;
                usage::record(
                    &mut *tx,
                    owner,
                    &ModelCall {
                        task_id: Some(task_id),
                        model: &reply.model,
                        prompt_tokens: reply.usage.prompt_tokens,
                        completion_tokens: reply.usage.completion_tokens,
                    },
                )
                .await?;
                let (decision, error) = match parse_decision(&reply.content) {
                    Ok(d) => (Some(d.to_json()), None),
                    Err(e) => (None, Some(e)),
                };
                insert(Some(reply.content), decision, error, reply.usage, ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
    }
}

/// The selected PM, waiting while it is being selected or warmed up (a restart, a re-selection)
/// up to the model timeout; `None` at once when no node serves it.
async fn wait_for_pm(state: &AppState) -> Option<(crate::node_inference::ModelRoute, String)> {
    let deadline = std::time::Instant::now() + state.config.pm_model_timeout;
    loop {
        if let Some(found) = super::pm_route(state).await {
            return Some(found);
        }
        super::refresh(state).await;
        if let Some(found) = super::pm_route(state).await {
            return Some(found);
        }
        let waiting = matches!(
            state.pm.status(),
            super::PmStatus::Unknown | super::PmStatus::Warming { .. }
        );
        if !waiting || std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The step's job: the one already enqueued for it (found by its `PM_STEP_ID`), or a new one.
async fn enqueue_once(
    state: &AppState,
    task_id: Uuid,
    step: &Step,
    commands: &[String],
    use_inference: bool,
) -> Result<Uuid> {
    let existing = jobs::jobs_of(&state.db, task_id)
        .await?
        .into_iter()
        .find(|j| j.payload["env"][STEP_ENV].as_str() == Some(step.id.to_string().as_str()));
    if let Some(job) = existing {
        return Ok(job.id);
    }
    jobs::enqueue(
        &state.db,
        task_id,
        &step_spec(state, step.id, commands, use_inference),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_parse_or_say_why_not() {
        assert_eq!(
            parse_decision(r#"{"action":"answer","answer":"hi"}"#),
            Ok(Decision::Answer("hi".into()))
        );
        assert_eq!(
            parse_decision(
                r#" {"action":"run","commands":["ls"],"why":"look","use_inference":true}"#
            ),
            Ok(Decision::Run {
                commands: vec!["ls".into()],
                why: "look".into(),
                use_inference: true
            })
        );
        assert!(
            parse_decision("I am a model")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_decision(r#"{"action":"dance"}"#)
                .unwrap_err()
                .contains("unknown action \"dance\"")
        );
        assert!(parse_decision(r#"{"action":"run","commands":[]}"#).is_err());
        assert!(parse_decision(r#"{"action":"answer","answer":" "}"#).is_err());
    }

    #[test]
    fn the_final_step_may_only_answer() {
        assert!(decision_schema(false, 512)["anyOf"].is_array());
        assert_eq!(
            decision_schema(true, 512)["properties"]["action"]["enum"],
            json!(["answer"])
        );
    }

    #[test]
    fn a_decision_fits_the_token_limit_even_at_a_token_per_character() {
        for max_tokens in [256, 512, 4096] {
            let answer = decision_schema(true, max_tokens)["properties"]["answer"]["maxLength"]
                .as_u64()
                .unwrap();
            let run = &decision_schema(false, max_tokens)["anyOf"][1]["properties"];
            let commands = run["commands"]["maxItems"].as_u64().unwrap()
                * (run["commands"]["items"]["maxLength"].as_u64().unwrap() + 4);
            let why = run["why"]["maxLength"].as_u64().unwrap();
            let limit = u64::from(max_tokens - DECISION_OVERHEAD_TOKENS);
            assert!(answer <= limit, "{max_tokens}: answer {answer}");
            assert!(
                commands + why <= limit,
                "{max_tokens}: run {commands} + {why}"
            );
        }
        // Room is not wasted when there is plenty.
        let roomy = decision_schema(false, 4096);
        assert_eq!(
            roomy["anyOf"][1]["properties"]["commands"]["items"]["maxLength"],
            300
        );
    }

    #[test]
    fn output_streams_are_capped_on_a_char_boundary() {
        let long = "é".repeat(OUTPUT_CAP);
        let capped = stream(&json!({"stdout": long}), "stdout");
        assert!(capped.ends_with("…[truncated]"));
        assert!(capped.len() <= OUTPUT_CAP + "…[truncated]".len());
    }
}
