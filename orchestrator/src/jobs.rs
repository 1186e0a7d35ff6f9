//! The job queue: the only writer of the `jobs` table and of `tasks.status`.
//!
//! Everything that happens to a job goes through here: a task is opened with what its
//! [`Planner`] decided; jobs are enqueued, claimed under a lease (`FOR UPDATE SKIP LOCKED`),
//! completed by the lease holder, retried with a backoff, reaped when their lease expires, and
//! canceled with their task. After each of these the task's status is derived again from all
//! its jobs ([`derive`]), so no caller ever writes a status.
//!
//! Lock order, everywhere: the task's jobs (by id), then the task. The claim is the exception
//! that cannot deadlock: it locks the nodes first (no other writer of jobs holds a node while
//! waiting), skips a locked job and holds one job when it locks the task, and anyone holding
//! the task already holds all of its jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_contracts::user::{
    InputMode, JobFailure, JobRequirements, JobSetback, JobStatus, NodeState, TaskStatus,
};
use cynode_contracts::worker::{RunStatus, SandboxSpec};
use cynode_service_kit::secrets::Secret;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::scheduler::{self, Demand};
use crate::worker_tokens::TokenKeys;

/// Channel the dispatcher listens on for new work.
pub const JOBS_CHANNEL: &str = "cynode_jobs";

/// Why a prompt task fails until the inference path lands: a prompt is never run as shell.
pub const NO_PROMPT_PATH: &str = "no inference path for prompt tasks yet: prompt-mode tasks need the inference pipeline, which this build does not have; use input_mode script or commands to run shell in the sandbox";

/// Cap of every backoff: job retries and node pauses.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    /// [`enqueue`], reads them with [`job`] / [`jobs_of`] and ends the task with [`conclude`].
    Open(Vec<SandboxSpec>),
    /// Nothing can run: the task fails at once, with a failed job that says why.
    Refuse(String),
}

/// Decides what a task runs. A planner never writes status: it hands [`Plan`]s to the queue
/// and, for an open plan, calls [`enqueue`] and [`conclude`].
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

/// A task's status from its current one, whether its plan is open, and all its jobs. Terminal
/// states are never left; a failed step fails the task; a canceled step cancels it; otherwise
/// the task runs while any job runs (or once any has completed), waits while all are queued,
/// and completes when every job completed and the plan is closed.
pub fn derive(current: TaskStatus, plan_open: bool, jobs: &[JobStatus]) -> TaskStatus {
    let any = |s: JobStatus| jobs.contains(&s);
    if current.is_terminal() {
        current
    } else if any(JobStatus::Failed) {
        TaskStatus::Failed
    } else if any(JobStatus::Canceled) {
        TaskStatus::Canceled
    } else if any(JobStatus::Running)
        || (any(JobStatus::Completed) && (plan_open || any(JobStatus::Queued)))
    {
        TaskStatus::Running
    } else if any(JobStatus::Queued) || plan_open {
        TaskStatus::Queued
    } else {
        TaskStatus::Completed
    }
}

/// A run's job status and, when it failed, what the task's owner reads. A command that exits
/// non-zero is a failed job, and so is a run that timed out.
pub fn judge(run: RunStatus, result: &Value) -> (JobStatus, Option<String>) {
    let exit_code = result.get("exit_code").and_then(Value::as_i64);
    match run {
        RunStatus::Completed if exit_code.unwrap_or(0) == 0 => (JobStatus::Completed, None),
        RunStatus::Completed | RunStatus::Failed => (
            JobStatus::Failed,
            Some(match exit_code {
                Some(code) => format!("job failed with exit code {code}"),
                None => result
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("job failed")
                    .to_owned(),
            }),
        ),
        RunStatus::Timeout => (
            JobStatus::Failed,
            Some("job timed out in the sandbox".to_owned()),
        ),
        // Stopped on the node without a cancel here (one here clears the lease first, and the
        // answer is dropped): the job and its task end canceled all the same.
        RunStatus::Canceled => (
            JobStatus::Canceled,
            Some("job was stopped on its node".to_owned()),
        ),
    }
}

fn failure(error: &str) -> Value {
    serde_json::to_value(JobFailure::new(error)).expect("a JobFailure is JSON")
}

fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|e| Error::internal(format!("bad status in database: {e}")))
}

/// What the task's summary becomes when its status changes.
#[derive(Debug, Clone, Copy)]
enum Note<'a> {
    Keep,
    Clear,
    Set(&'a str),
}

/// Locks the task's jobs in id order, as every writer must before it locks the task.
async fn lock_jobs(tx: &mut PgConnection, task_id: Uuid) -> Result<()> {
    sqlx::query("SELECT id FROM jobs WHERE task_id = $1 ORDER BY id FOR UPDATE")
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Derives the task's status from all its jobs and stores it; `note` becomes the summary if the
/// status changed. A task that reaches a terminal state takes its unfinished jobs with it
/// (their leases cleared, so a delivery in flight cannot record anything).
async fn settle(tx: &mut PgConnection, task_id: Uuid, note: Note<'_>) -> Result<TaskStatus> {
    let (status, plan_open): (String, bool) =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?;
    let current: TaskStatus = parse(&status)?;
    if current.is_terminal() {
        return Ok(current);
    }
    let jobs = sqlx::query_scalar::<_, String>("SELECT status FROM jobs WHERE task_id = $1")
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|s| parse(s))
        .collect::<Result<Vec<JobStatus>>>()?;
    let next = derive(current, plan_open, &jobs);
    if next != current {
        set_task_status(tx, task_id, next, note).await?;
    }
    Ok(next)
}

async fn set_task_status(
    tx: &mut PgConnection,
    task_id: Uuid,
    status: TaskStatus,
    note: Note<'_>,
) -> Result<()> {
    let (keep, summary) = match note {
        Note::Keep => (true, None),
        Note::Clear => (false, None),
        Note::Set(text) => (false, Some(text)),
    };
    sqlx::query(
        "UPDATE tasks SET status = $2, closed = $3,
            summary = CASE WHEN $4 THEN summary ELSE $5 END
         WHERE id = $1",
    )
    .bind(task_id)
    .bind(status.as_str())
    .bind(status.is_terminal())
    .bind(keep)
    .bind(summary)
    .execute(&mut *tx)
    .await?;
    if status.is_terminal() {
        sqlx::query(
            "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL,
                ended_at = coalesce(ended_at, now())
             WHERE task_id = $1 AND status IN ($3, $4)",
        )
        .bind(task_id)
        .bind(JobStatus::Canceled.as_str())
        .bind(JobStatus::Queued.as_str())
        .bind(JobStatus::Running.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn insert_job(tx: &mut PgConnection, task_id: Uuid, spec: &SandboxSpec) -> Result<Uuid> {
    insert_job_as(tx, task_id, Uuid::new_v4(), spec).await
}

async fn insert_job_as(
    tx: &mut PgConnection,
    task_id: Uuid,
    id: Uuid,
    spec: &SandboxSpec,
) -> Result<Uuid> {
    // The statement's clock, not the transaction's: steps of one plan keep their order.
    sqlx::query(
        "INSERT INTO jobs (id, task_id, status, payload, created_at, requirements)
         SELECT $1, $2, $3, $4, clock_timestamp(), t.requirements FROM tasks t WHERE t.id = $2",
    )
    .bind(id)
    .bind(task_id)
    .bind(JobStatus::Queued.as_str())
    .bind(serde_json::to_value(spec).map_err(Error::internal)?)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// A job that ran nowhere and failed: it keeps `reason` where the task's result shows it.
async fn insert_failed_job(
    tx: &mut PgConnection,
    task_id: Uuid,
    payload: &Value,
    reason: &str,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, task_id, status, payload, result, ended_at)
         VALUES ($1, $2, $3, $4, $5, now())",
    )
    .bind(id)
    .bind(task_id)
    .bind(JobStatus::Failed.as_str())
    .bind(payload)
    .bind(failure(reason))
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Wakes a dispatcher in another process; delivered only if the transaction commits.
async fn notify(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts the task and what `plan` says it runs, inside the caller's transaction. The caller
/// signals the in-process dispatcher after committing.
pub async fn open_task(tx: &mut PgConnection, task: &NewTask<'_>, plan: Plan) -> Result<()> {
    let plan_open = matches!(plan, Plan::Open(_));
    sqlx::query(
        "INSERT INTO tasks (id, created_by, api_key_id, project_id, task_name, prompt, input_mode,
                            status, closed, plan_open, requirements)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $10)",
    )
    .bind(task.id)
    .bind(task.created_by.user_id)
    .bind(task.created_by.api_key_id)
    .bind(task.project_id)
    .bind(task.name)
    .bind(task.prompt)
    .bind(task.input_mode.as_str())
    .bind(TaskStatus::Queued.as_str())
    .bind(plan_open)
    .bind(
        task.requirements
            .filter(|r| !r.is_empty())
            .map(serde_json::to_value)
            .transpose()
            .map_err(Error::internal)?,
    )
    .execute(&mut *tx)
    .await?;
    match plan {
        Plan::Run(specs) | Plan::Open(specs) => {
            for spec in &specs {
                insert_job(tx, task.id, spec).await?;
            }
            if !specs.is_empty() {
                notify(tx).await?;
            }
            settle(tx, task.id, Note::Keep).await?;
        }
        Plan::Refuse(reason) => {
            let payload = json!({"input_mode": task.input_mode.as_str()});
            insert_failed_job(tx, task.id, &payload, &reason).await?;
            settle(tx, task.id, Note::Set(&reason)).await?;
        }
    }
    Ok(())
}

/// Adds a job to a task whose plan is open (a planner's follow-up step). A finished task, or
/// one whose plan is closed, takes no more jobs.
pub async fn enqueue(db: &PgPool, task_id: Uuid, spec: &SandboxSpec) -> Result<Uuid> {
    enqueue_as(db, task_id, Uuid::new_v4(), spec).await
}

/// [`enqueue`] with the job's id chosen by the planner, idempotent: if the task already has a
/// job with this id, that job stays as it is (whatever its status) and nothing is added. A
/// planner that derives the id from what the job is for never enqueues it twice.
pub async fn enqueue_as(
    db: &PgPool,
    task_id: Uuid,
    job_id: Uuid,
    spec: &SandboxSpec,
) -> Result<Uuid> {
    let mut tx = db.begin().await?;
    lock_jobs(&mut tx, task_id).await?;
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
    match existing {
        Some(owner) if owner == task_id => return Ok(job_id),
        Some(_) => {
            return Err(Error::internal(format!(
                "job {job_id} belongs to another task than {task_id}"
            )));
        }
        None => {}
    }
    let (status, plan_open): (String, bool) =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() || !plan_open {
        return Err(Error::internal(format!(
            "task {task_id} takes no more jobs (status {status}, plan closed: {})",
            !plan_open
        )));
    }
    insert_job_as(&mut tx, task_id, job_id, spec).await?;
    notify(&mut tx).await?;
    settle(&mut tx, task_id, Note::Keep).await?;
    tx.commit().await?;
    Ok(job_id)
}

/// How a planner ends a task whose plan is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Conclusion {
    /// Done: the task completes (once its remaining jobs have) with `answer` as its summary.
    Answer(String),
    /// The task fails with this reason, recorded as a failed step like a refused plan.
    Fail(String),
}

/// Closes a task's plan. Returns the task's status afterwards.
pub async fn conclude(db: &PgPool, task_id: Uuid, conclusion: Conclusion) -> Result<TaskStatus> {
    let mut tx = db.begin().await?;
    let status = conclude_in(&mut tx, task_id, conclusion).await?;
    tx.commit().await?;
    Ok(status)
}

/// [`conclude`] inside the caller's transaction, for a planner whose own record of the end must
/// commit with it (the workflow's final checkpoint).
pub async fn conclude_in(
    tx: &mut PgConnection,
    task_id: Uuid,
    conclusion: Conclusion,
) -> Result<TaskStatus> {
    lock_jobs(tx, task_id).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .fetch_one(&mut *tx)
        .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() {
        return Ok(status);
    }
    let status = match &conclusion {
        Conclusion::Answer(answer) => {
            sqlx::query("UPDATE tasks SET plan_open = false, summary = $2 WHERE id = $1")
                .bind(task_id)
                .bind(answer)
                .execute(&mut *tx)
                .await?;
            settle(tx, task_id, Note::Keep).await?
        }
        Conclusion::Fail(reason) => {
            sqlx::query("UPDATE tasks SET plan_open = false WHERE id = $1")
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            insert_failed_job(tx, task_id, &json!({"planner": true}), reason).await?;
            settle(tx, task_id, Note::Set(reason)).await?
        }
    };
    Ok(status)
}

/// One job as the queue keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: Uuid,
    pub task_id: Uuid,
    pub status: JobStatus,
    pub payload: Value,
    /// The worker's full `RunJobResponse`, or a [`JobFailure`].
    pub result: Option<Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub setbacks: Vec<JobSetback>,
}

type JobRow = (
    Uuid,
    Uuid,
    String,
    Value,
    Option<Value>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
    Value,
);

fn record(
    (id, task_id, status, payload, result, started_at, ended_at, attempts, setbacks): JobRow,
) -> Result<JobRecord> {
    Ok(JobRecord {
        id,
        task_id,
        status: parse(&status)?,
        payload,
        result,
        started_at,
        ended_at,
        attempts,
        setbacks: serde_json::from_value(setbacks).map_err(Error::internal)?,
    })
}

const JOB_COLUMNS: &str =
    "id, task_id, status, payload, result, started_at, ended_at, attempts, setbacks";

/// SQL that appends a setback (`why` bound as `$n`) to `jobs.setbacks`, naming the node the job
/// was sent to.
fn push_setback(why_param: u8) -> String {
    format!(
        "setbacks = setbacks || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'at', now(), 'why', ${why_param}::text,
            'node', (SELECT n.node_slug FROM nodes n WHERE n.id = jobs.node_id))))"
    )
}

/// One job (a planner reading a step's result).
pub async fn job(db: impl sqlx::PgExecutor<'_>, job_id: Uuid) -> Result<Option<JobRecord>> {
    sqlx::query_as::<_, JobRow>(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(job_id)
        .fetch_optional(db)
        .await?
        .map(record)
        .transpose()
}

/// A task's jobs, oldest first.
pub async fn jobs_of(db: impl sqlx::PgExecutor<'_>, task_id: Uuid) -> Result<Vec<JobRecord>> {
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE task_id = $1 ORDER BY created_at, id"
    ))
    .bind(task_id)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(record)
    .collect()
}

/// What [`cancel`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canceled {
    /// Canceled now. `running` were with a node's worker API: their sandboxes still run until
    /// the node is told to stop them (see `dispatch::stop_sandboxes`).
    Now { running: Vec<RunningJob> },
    /// The task had already finished in this state; nothing changed.
    AlreadyFinished(TaskStatus),
}

/// A job that was running on a node, and how to reach that node's worker API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub job_id: Uuid,
    pub node_slug: String,
    pub url: String,
    pub token: Secret,
}

/// Cancels a task that has not finished, with its unfinished jobs. Clearing their leases makes
/// a dispatch in flight unable to record its outcome. Returns the jobs that were running, so
/// that the caller, after this commit, asks their nodes to stop the sandboxes.
pub async fn cancel(db: &PgPool, task_id: Uuid, keys: &TokenKeys) -> Result<Canceled> {
    let mut tx = db.begin().await?;
    lock_jobs(&mut tx, task_id).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .fetch_one(&mut *tx)
        .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() {
        return Ok(Canceled::AlreadyFinished(status));
    }
    let running = running_on(&mut *tx, task_id, keys).await?;
    set_task_status(&mut tx, task_id, TaskStatus::Canceled, Note::Keep).await?;
    tx.commit().await?;
    Ok(Canceled::Now { running })
}

/// The task's running jobs and the nodes running them (read only: cancel reads them under its
/// locks, the live log stream as they are).
pub async fn running_on(
    db: impl sqlx::PgExecutor<'_>,
    task_id: Uuid,
    keys: &TokenKeys,
) -> Result<Vec<RunningJob>> {
    let running: Vec<(Uuid, Uuid, String, String, String)> = sqlx::query_as(
        "SELECT j.id, n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token
         FROM jobs j JOIN nodes n ON n.id = j.node_id
         WHERE j.task_id = $1 AND j.status = $2
           AND n.worker_api_target_url IS NOT NULL AND n.worker_api_bearer_token IS NOT NULL
         ORDER BY j.id",
    )
    .bind(task_id)
    .bind(JobStatus::Running.as_str())
    .fetch_all(db)
    .await?;
    running
        .into_iter()
        .map(|(job_id, node_id, node_slug, url, token)| {
            Ok(RunningJob {
                job_id,
                node_slug,
                url,
                token: keys.open(node_id, &token)?,
            })
        })
        .collect()
}

/// A job this process holds the lease of, and the node it goes to.
#[derive(Debug)]
pub struct Claim {
    pub job_id: Uuid,
    pub task_id: Uuid,
    pub lease_id: Uuid,
    pub attempts: i32,
    pub payload: Value,
    pub node_id: Uuid,
    pub node_slug: String,
    pub url: String,
    pub token: Secret,
    /// How long it waited since it became due.
    pub waited: Duration,
}

/// How many of the oldest due jobs one claim looks at for ones that some node can take now,
/// so that jobs waiting for a busy or missing node do not hold up those behind them.
const CLAIM_WINDOW: i64 = 64;
/// How long a job that no node fits steps aside before it is looked at again, unless a node
/// changes first ([`recheck_waiting`]).
const PLACEMENT_RECHECK: Duration = Duration::from_secs(5);

/// A queued job as placement sees it.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    /// The node that last failed to take it.
    node_id: Option<Uuid>,
    requirements: Option<sqlx::types::Json<JobRequirements>>,
    use_inference: bool,
    memory_mib: Option<i64>,
    wait_reason: Option<String>,
}

/// Takes up to `max` of the oldest due jobs that some node can run now, each with the node
/// [`scheduler::place`] chooses for it (counting the jobs placed before it in the same claim),
/// in one transaction, and leases each for `dispatch_lease` (the dispatcher renews it while the
/// worker runs the job, see [`renew_lease`]). Jobs looked at on the way that cannot be placed
/// keep the reason for their owner; those no node fits step aside for [`PLACEMENT_RECHECK`].
/// One transaction for several jobs: its commit is what a claim costs.
pub async fn claim(
    db: &PgPool,
    config: &Config,
    keys: &TokenKeys,
    max: usize,
) -> Result<Vec<Claim>> {
    let mut tx = db.begin().await?;
    // Locking the nodes serialises claims, so that two cannot fill a node's last slot.
    let mut nodes = scheduler::nodes(&mut tx, config.node_stale_after, true).await?;
    // The status as a literal, so the planner can use the partial index of queued jobs.
    let due: Vec<Due> = sqlx::query_as(&format!(
        "SELECT j.id, j.node_id, j.requirements, j.wait_reason,
                coalesce((j.payload->>'use_inference')::boolean, false) AS use_inference,
                (j.payload->'resources'->>'memory_mib')::bigint AS memory_mib
         FROM jobs j WHERE j.status = '{}' AND j.next_attempt_at <= now()
         ORDER BY j.next_attempt_at, j.created_at LIMIT $1",
        JobStatus::Queued.as_str()
    ))
    .bind(CLAIM_WINDOW)
    .fetch_all(&mut *tx)
    .await?;
    let none = JobRequirements::default();
    let mut placed = Vec::new();
    for job in &due {
        if placed.len() == max {
            break;
        }
        let demand = Demand {
            requirements: job.requirements.as_deref().unwrap_or(&none),
            use_inference: job.use_inference,
            avoid: job.node_id,
        };
        match scheduler::place(demand, &nodes) {
            Ok(node) => {
                // Another dispatcher may be cancelling or holding it: then look further.
                let locked: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE id = $1 AND status = $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(job.id)
                .bind(JobStatus::Queued.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if locked.is_some() {
                    nodes[node].took(job.memory_mib.unwrap_or(0));
                    placed.push((job.id, node));
                }
            }
            Err(wait) => {
                let reason = wait.to_string();
                if !wait.ends_when_a_job_ends() || job.wait_reason.as_deref() != Some(&reason) {
                    set_aside(&mut tx, job.id, &reason, !wait.ends_when_a_job_ends()).await?;
                }
            }
        }
    }
    let mut claims = Vec::with_capacity(placed.len());
    for (job_id, node) in placed {
        let node = &nodes[node];
        claims.push(lease(&mut tx, config, keys, job_id, node).await?);
    }
    tx.commit().await?;
    for claim in &claims {
        tracing::info!(job_id = %claim.job_id, task_id = %claim.task_id, node_slug = %claim.node_slug, attempts = claim.attempts, "job dispatched");
    }
    Ok(claims)
}

/// Leases `job_id` (locked by the caller) to `node`, inside the claim's transaction.
async fn lease(
    tx: &mut PgConnection,
    config: &Config,
    keys: &TokenKeys,
    job_id: Uuid,
    node: &scheduler::NodeFacts,
) -> Result<Claim> {
    // The statement's clock: the next claim's tie-break sees the order jobs were given out.
    let (url, token): (String, String) = sqlx::query_as(
        "UPDATE nodes SET last_claimed_at = clock_timestamp() WHERE id = $1
         RETURNING worker_api_target_url, worker_api_bearer_token",
    )
    .bind(node.id)
    .fetch_one(&mut *tx)
    .await?;
    let token = keys.open(node.id, &token)?;
    let lease_id = Uuid::new_v4();
    let (task_id, attempts, payload, waited): (Uuid, i32, Value, f64) = sqlx::query_as(
        "UPDATE jobs SET status = $5, node_id = $2, lease_id = $3, wait_reason = NULL,
            lease_expires_at = now() + make_interval(secs => $4),
            attempts = attempts + 1, started_at = coalesce(started_at, now())
         WHERE id = $1
         RETURNING task_id, attempts, payload,
            greatest(extract(epoch FROM now() - next_attempt_at), 0)::float8",
    )
    .bind(job_id)
    .bind(node.id)
    .bind(lease_id)
    .bind(config.dispatch_lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // A retry note from an earlier attempt is no longer true.
    settle(tx, task_id, Note::Clear).await?;
    Ok(Claim {
        job_id,
        task_id,
        lease_id,
        attempts,
        payload,
        node_id: node.id,
        node_slug: node.node_slug.clone(),
        url,
        token,
        waited: Duration::from_secs_f64(waited),
    })
}

/// Records why a job could not be placed; one no node fits also steps aside for
/// [`PLACEMENT_RECHECK`]. Skips a job someone else holds (it is being canceled or claimed).
async fn set_aside(
    tx: &mut PgConnection,
    job_id: Uuid,
    reason: &str,
    step_aside: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET wait_reason = $2,
            next_attempt_at = CASE WHEN $3 THEN now() + make_interval(secs => $4)
                                   ELSE next_attempt_at END
         WHERE id = (SELECT id FROM jobs WHERE id = $1 AND status = $5 FOR UPDATE SKIP LOCKED)",
    )
    .bind(job_id)
    .bind(reason)
    .bind(step_aside)
    .bind(PLACEMENT_RECHECK.as_secs_f64())
    .bind(JobStatus::Queued.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A node changed (registered, reported, acked, undrained): jobs that stepped aside because no
/// node fitted are due again at once, and every dispatcher is woken to look.
pub async fn recheck_waiting(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET next_attempt_at = now()
         WHERE status = $1 AND next_attempt_at > now() AND wait_reason IS NOT NULL",
    )
    .bind(JobStatus::Queued.as_str())
    .execute(&mut *conn)
    .await?;
    notify(conn).await?;
    Ok(())
}

/// Extends the lease of a job still in flight by another `lease` from now. `false` when the
/// lease is no longer ours (canceled, or reaped while this process could not renew it): the
/// delivery goes on, but its outcome will not be recorded (see [`complete`]).
pub async fn renew_lease(db: &PgPool, claim: &Claim, lease: Duration) -> Result<bool> {
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_id = $2 AND status = $4",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .execute(db)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// The task after a job was recorded, for the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub task_status: TaskStatus,
    pub plan_open: bool,
}

/// Locks the claimed job's task for a lease holder. `None` when the lease is gone (canceled,
/// or reaped after it expired): then nothing may be recorded.
async fn hold_lease(tx: &mut PgConnection, claim: &Claim) -> Result<Option<bool>> {
    lock_jobs(tx, claim.task_id).await?;
    let holds: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_id = $2 AND status = $3)",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(JobStatus::Running.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !holds {
        return Ok(None);
    }
    let plan_open: bool = sqlx::query_scalar("SELECT plan_open FROM tasks WHERE id = $1")
        .bind(claim.task_id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(plan_open))
}

/// Records the end of a claimed job, if the lease is still ours: the worker's `run` status and
/// full response, or (`run` = `None`) a job the worker refused, with a [`JobFailure`] `result`.
pub async fn complete(
    db: &PgPool,
    claim: &Claim,
    outcome: Result<(RunStatus, Value), String>,
) -> Result<Option<Recorded>> {
    let (status, note, result) = match outcome {
        Ok((run, response)) => {
            let (status, note) = judge(run, &response);
            (status, note, response)
        }
        Err(reason) => (JobStatus::Failed, Some(reason.clone()), failure(&reason)),
    };
    let mut tx = db.begin().await?;
    let Some(plan_open) = hold_lease(&mut tx, claim).await? else {
        tracing::warn!(job_id = %claim.job_id, "lease lost before the result arrived (canceled or requeued); result dropped");
        return Ok(None);
    };
    sqlx::query(
        "UPDATE jobs SET status = $2, result = $3, ended_at = now(), lease_id = NULL,
            lease_expires_at = NULL, last_error = NULL
         WHERE id = $1",
    )
    .bind(claim.job_id)
    .bind(status.as_str())
    .bind(&result)
    .execute(&mut *tx)
    .await?;
    let note = note.as_deref().map_or(Note::Keep, Note::Set);
    let task_status = settle(&mut tx, claim.task_id, note).await?;
    tx.commit().await?;
    tracing::info!(job_id = %claim.job_id, task_id = %claim.task_id, status = %status, task_status = %task_status, "job finished");
    Ok(Some(Recorded {
        task_status,
        plan_open,
    }))
}

/// The delay before the `attempts + 1`-th try: `base` doubled per attempt, capped at
/// [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 16) as u32;
    base.saturating_mul(2u32.saturating_pow(exp))
        .min(MAX_BACKOFF)
}

/// A job that did not get a result, and what to say about it.
struct Setback<'a> {
    job_id: Uuid,
    task_id: Uuid,
    /// Whether its attempts are used up.
    give_up: bool,
    delay: Duration,
    /// For operators (worker URLs, error chains): `jobs.last_error` and the log.
    last_error: &'a str,
    /// What the task's owner reads when the job waits again, or when it failed for good.
    queued_note: &'a str,
    gave_up: &'a str,
}

/// Puts a job back in the queue after a delay, or fails it when its attempts are used up. Runs
/// with the task's jobs locked.
async fn requeue_or_fail(tx: &mut PgConnection, s: Setback<'_>) -> Result<(JobStatus, TaskStatus)> {
    let Setback {
        job_id,
        task_id,
        give_up,
        delay,
        last_error,
        queued_note,
        gave_up,
    } = s;
    let status = if give_up {
        JobStatus::Failed
    } else {
        JobStatus::Queued
    };
    let note = if give_up { gave_up } else { queued_note };
    sqlx::query(&format!(
        "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
            next_attempt_at = now() + make_interval(secs => $4),
            result = $5, ended_at = CASE WHEN $6 THEN now() END, {}
         WHERE id = $1",
        push_setback(7)
    ))
    .bind(job_id)
    .bind(status.as_str())
    .bind(last_error)
    .bind(delay.as_secs_f64())
    .bind(give_up.then(|| failure(gave_up)))
    .bind(give_up)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    let task_status = settle(tx, task_id, Note::Set(note)).await?;
    Ok((status, task_status))
}

/// A delivery failed in a retryable way: back to the queue with a doubling backoff, or failed
/// when the attempts are used up, if we still hold the lease. `reason` (worker URLs, error
/// chains) goes to `jobs.last_error` only; the task's owner sees a generic account. Returns
/// the task when the job failed for good.
pub async fn retry(
    db: &PgPool,
    config: &Config,
    claim: &Claim,
    reason: &str,
) -> Result<Option<Recorded>> {
    let delay = backoff(config.dispatch_retry_base, claim.attempts);
    let gave_up = format!(
        "dispatch gave up after {} attempts: the worker node did not take the job",
        claim.attempts
    );
    let queued_note = format!("node {} did not take the job; will retry", claim.node_slug);
    let mut tx = db.begin().await?;
    let Some(plan_open) = hold_lease(&mut tx, claim).await? else {
        return Ok(None);
    };
    let (status, task_status) = requeue_or_fail(
        &mut tx,
        Setback {
            job_id: claim.job_id,
            task_id: claim.task_id,
            give_up: claim.attempts >= config.dispatch_max_attempts,
            delay,
            last_error: reason,
            queued_note: &queued_note,
            gave_up: &gave_up,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((status == JobStatus::Failed).then_some(Recorded {
        task_status,
        plan_open,
    }))
}

/// The worker shut down while the job ran and says it was interrupted: the job goes back to
/// the queue at once, if we still hold the lease, and the attempt is given back, because the
/// job did not fail (the node going away is the node's affair; the dispatcher pauses it).
pub async fn interrupted(db: &PgPool, claim: &Claim, reason: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    if hold_lease(&mut tx, claim).await?.is_none() {
        return Ok(());
    }
    let note = format!(
        "node {} stopped while the job ran; it will run again",
        claim.node_slug
    );
    sqlx::query(&format!(
        "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
            attempts = greatest(attempts - 1, 0), next_attempt_at = now(), {}
         WHERE id = $1",
        push_setback(4)
    ))
    .bind(claim.job_id)
    .bind(JobStatus::Queued.as_str())
    .bind(reason)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    settle(&mut tx, claim.task_id, Note::Set(&note)).await?;
    tx.commit().await?;
    Ok(())
}

/// Requeues jobs whose lease ran out (their dispatcher died), one task per transaction. The
/// lease condition is checked again under the locks, so each expired lease is requeued by
/// exactly one process, once.
pub async fn reap_expired(db: &PgPool, config: &Config) -> Result<u64> {
    let reason = "lease expired: the orchestrator holding it stopped before the worker answered";
    let expired: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, task_id FROM jobs WHERE status = $1 AND lease_expires_at < now()",
    )
    .bind(JobStatus::Running.as_str())
    .fetch_all(db)
    .await?;
    let mut reaped = 0;
    for (job_id, task_id) in expired {
        let mut tx = db.begin().await?;
        lock_jobs(&mut tx, task_id).await?;
        let attempts: Option<i32> = sqlx::query_scalar(
            "SELECT attempts FROM jobs WHERE id = $1 AND status = $2 AND lease_expires_at < now()",
        )
        .bind(job_id)
        .bind(JobStatus::Running.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempts) = attempts else {
            continue;
        };
        let (status, _) = requeue_or_fail(
            &mut tx,
            Setback {
                job_id,
                task_id,
                give_up: attempts >= config.dispatch_max_attempts,
                delay: Duration::ZERO,
                last_error: reason,
                queued_note: &format!("{reason}; will retry"),
                gave_up: &format!("dispatch gave up: {reason}"),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(%job_id, %task_id, status = %status, "expired lease reclaimed");
        reaped += 1;
    }
    Ok(reaped)
}

/// Jobs still running on a drained node whose drain deadline has passed go back to the queue at
/// once, their attempt given back (the job did not fail) and their lease ended, so the delivery
/// in flight records nothing. One task per transaction, checked again under its locks. Returns
/// them, so the dispatcher tells their nodes to stop the sandboxes.
pub async fn requeue_drained(db: &PgPool, keys: &TokenKeys) -> Result<Vec<RunningJob>> {
    let past_deadline = format!(
        "j.status = '{running}' AND n.status = '{drained}' AND n.drain_deadline <= now()",
        running = JobStatus::Running.as_str(),
        drained = NodeState::Drained.as_str()
    );
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
        "SELECT j.id, j.task_id FROM jobs j JOIN nodes n ON n.id = j.node_id WHERE {past_deadline}"
    ))
    .fetch_all(db)
    .await?;
    let mut requeued = Vec::new();
    for (job_id, task_id) in due {
        let mut tx = db.begin().await?;
        lock_jobs(&mut tx, task_id).await?;
        let node: Option<(Uuid, String, String, String)> = sqlx::query_as(&format!(
            "SELECT n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token
             FROM jobs j JOIN nodes n ON n.id = j.node_id WHERE j.id = $1 AND {past_deadline}"
        ))
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((node_id, node_slug, url, token)) = node else {
            continue;
        };
        let note = format!(
            "node {node_slug} was drained and its deadline passed; the job will run on another node"
        );
        sqlx::query(&format!(
            "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
                attempts = greatest(attempts - 1, 0), next_attempt_at = now(), {}
             WHERE id = $1",
            push_setback(3)
        ))
        .bind(job_id)
        .bind(JobStatus::Queued.as_str())
        .bind(&note)
        .execute(&mut *tx)
        .await?;
        settle(&mut tx, task_id, Note::Set(&note)).await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        tracing::warn!(%job_id, %task_id, %node_slug, "drain deadline passed; job requeued");
        requeued.push(RunningJob {
            job_id,
            node_slug,
            url,
            token: keys.open(node_id, &token)?,
        });
    }
    Ok(requeued)
}

/// The next moment something becomes due: a retry's backoff ends, a lease expires, a paused
/// node may take jobs again or a drained node's deadline passes while it runs jobs.
pub async fn next_due(db: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT least(
            (SELECT min(next_attempt_at) FROM jobs WHERE status = $1 AND next_attempt_at > now()),
            (SELECT min(lease_expires_at) FROM jobs WHERE status = $2),
            (SELECT min(dispatch_paused_until) FROM nodes WHERE dispatch_paused_until > now()),
            (SELECT min(n.drain_deadline) FROM nodes n WHERE n.status = $3
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.node_id = n.id AND j.status = $2)))",
    )
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Running.as_str())
    .bind(NodeState::Drained.as_str())
    .fetch_one(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus as J;
    use TaskStatus as T;

    #[test]
    fn a_task_follows_all_its_jobs() {
        assert_eq!(derive(T::Queued, false, &[J::Queued]), T::Queued);
        assert_eq!(derive(T::Queued, false, &[J::Running]), T::Running);
        assert_eq!(
            derive(T::Running, false, &[J::Queued]),
            T::Queued,
            "a retry waits again"
        );
        assert_eq!(derive(T::Running, false, &[J::Completed]), T::Completed);
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Queued]),
            T::Running
        );
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Running]),
            T::Running
        );
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Failed]),
            T::Failed
        );
        assert_eq!(
            derive(T::Running, false, &[J::Running, J::Failed]),
            T::Failed
        );
        assert_eq!(
            derive(T::Running, false, &[J::Running, J::Canceled]),
            T::Canceled
        );
        assert_eq!(derive(T::Queued, false, &[]), T::Completed);
    }

    #[test]
    fn an_open_plan_keeps_the_task_from_completing() {
        assert_eq!(derive(T::Queued, true, &[]), T::Queued);
        assert_eq!(derive(T::Running, true, &[J::Completed]), T::Running);
        assert_eq!(
            derive(T::Running, true, &[J::Completed, J::Failed]),
            T::Failed
        );
    }

    #[test]
    fn terminal_states_are_never_left() {
        for t in [T::Completed, T::Failed, T::Canceled, T::Superseded] {
            assert_eq!(derive(t, false, &[J::Queued, J::Running]), t);
        }
    }

    #[test]
    fn a_non_zero_exit_or_a_timeout_is_a_failed_job() {
        let ran = |code: i64| json!({"status": "completed", "exit_code": code});
        assert_eq!(judge(RunStatus::Completed, &ran(0)), (J::Completed, None));
        assert_eq!(
            judge(RunStatus::Completed, &ran(127)),
            (J::Failed, Some("job failed with exit code 127".into()))
        );
        assert_eq!(judge(RunStatus::Failed, &ran(0)).0, J::Failed);
        assert_eq!(
            judge(RunStatus::Timeout, &ran(-1)),
            (J::Failed, Some("job timed out in the sandbox".into()))
        );
    }

    #[test]
    fn a_run_stopped_on_its_node_is_a_canceled_job() {
        let stopped = json!({"status": "canceled", "exit_code": -1});
        assert_eq!(judge(RunStatus::Canceled, &stopped).0, J::Canceled);
    }

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

    #[test]
    fn failures_have_one_shape() {
        assert_eq!(
            failure("x"),
            json!({"version": 1, "status": "failed", "error": "x"})
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, 3), Duration::from_secs(4));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
