//! `GET /v1/tasks/{id}/logs?follow=true`: a task's output lines as server-sent events
//! (`cynode_contracts::logs`) while it runs, then `end` with its status.
//!
//! One follower task per stream polls the task and its jobs every [`POLL`] (jobs that start
//! later are picked up). For a running job it relays the node's live log stream
//! (`GET /v1/worker/jobs/{job_id}/logs`, with the node's bearer token), which begins with
//! everything the run printed so far. Once a job has ended, whatever its relay did not bring
//! (no relay at all, a node that did not answer or broke off) comes from the stored result,
//! skipping the lines already sent. When the task is terminal and every job is done, `end`
//! closes the stream. A node that stops answering is given up after [`RELAY_IDLE`] without a
//! byte, or [`RELAY_GRACE`] after its job has ended; a stream that sees no job start for the
//! dispatch timeout plus [`IDLE_MARGIN`] closes without `end` (the client may ask again).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_contracts::logs::{
    self, Decoder, EVENT_END, EVENT_LINE, JobLogEnd, JobLogLine, OutputStream, TaskLogEnd,
    TaskLogLine,
};
use cynode_contracts::routes;
use cynode_contracts::user::{JobStatus, TaskLogStream};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Config;
use crate::jobs::{self, RunningJob};
use crate::worker_tokens::TokenKeys;

/// How often the task and its jobs are read while following.
const POLL: Duration = Duration::from_millis(500);
/// A node's stream that brings nothing (not even a keep-alive) for this long is given up.
const RELAY_IDLE: Duration = Duration::from_secs(3 * logs::KEEP_ALIVE_SECS);
/// How long a relay may still bring lines after its job has ended in the database.
const RELAY_GRACE: Duration = Duration::from_secs(5);
/// How long after a broken relay of a job that still runs it is tried again.
const RELAY_RETRY: Duration = Duration::from_secs(2);
/// Added to the dispatch timeout (the longest a job can run) for the stream's idle cap.
const IDLE_MARGIN: Duration = Duration::from_secs(60);
/// Largest event a node may send (a line is at most the output cap, 256 KiB, escaped).
const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;

/// What following a task's logs needs: the pool and settings, the client and token keys that
/// reach the nodes' worker APIs, and the process's stop, on which every stream ends so that the
/// graceful shutdown does not wait for it, and its tasks, which the followers join.
#[derive(Debug, Clone)]
pub struct Logs {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub worker_tokens: Arc<TokenKeys>,
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

/// The streaming answer; `task_id` is the caller's own task (already checked).
pub fn follow(state: Logs, task_id: Uuid, filter: TaskLogStream) -> Response {
    let (tx, rx) = mpsc::channel::<String>(64);
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let mut follower = Follower {
            state,
            task_id,
            filter,
            tx,
            jobs: HashMap::new(),
        };
        if let Err(e) = follower.run().await {
            tracing::warn!(%task_id, error = %e, "following the task's logs failed");
        }
        follower.stop_relays();
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, logs::CONTENT_TYPE)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// What a relay tells the follower, in order: its lines, then how it ended.
enum Relayed {
    Line(Uuid, OutputStream, String),
    /// The node's stream is over: `Some(true)` with the run's end, `Some(false)` without a
    /// result (interrupted: the job may run again), `None` when it broke off or never answered.
    End(Uuid, Option<bool>),
}

#[derive(Debug, Default)]
struct JobFollow {
    /// Lines of each stream sent so far (stdout, stderr), filtered or not.
    sent: [usize; 2],
    relay: Option<AbortHandle>,
    /// How the last relay ended.
    relayed: Option<Option<bool>>,
    last_relay: Option<Instant>,
    /// When the job was first seen ended while its relay still ran.
    ended_at: Option<Instant>,
    done: bool,
}

/// Why the follower stopped early.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("the client has gone")]
    ClientGone,
    #[error(transparent)]
    Db(#[from] crate::error::Error),
}

struct Follower {
    state: Logs,
    task_id: Uuid,
    filter: TaskLogStream,
    tx: mpsc::Sender<String>,
    jobs: HashMap<Uuid, JobFollow>,
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

impl Follower {
    async fn run(&mut self) -> Result<(), Stopped> {
        let (relay_tx, mut relayed) = mpsc::channel::<Relayed>(256);
        let idle_cap = self.state.config.dispatch_http_timeout + IDLE_MARGIN;
        let mut deadline = Instant::now() + idle_cap;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent = Instant::now();
        let stop = self.state.stop.clone();
        let stopping = stop.cancelled();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                biased;
                Some(message) = relayed.recv() => {
                    self.take(message).await?;
                    last_sent = Instant::now();
                }
                _ = poll.tick() => {
                    if let Some(end) = self.check(&relay_tx, &mut deadline, idle_cap).await? {
                        self.send(logs::event(EVENT_END, &end)).await?;
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        tracing::info!(task_id = %self.task_id, "no job of the task started for a while; closing its log stream");
                        return Ok(());
                    }
                    if last_sent.elapsed() >= Duration::from_secs(logs::KEEP_ALIVE_SECS) {
                        self.send(logs::KEEP_ALIVE.to_owned()).await?;
                        last_sent = Instant::now();
                    }
                }
                () = self.tx.closed() => return Err(Stopped::ClientGone),
                // The process stops: the stream closes without `end` (the client may ask
                // another orchestrator).
                () = &mut stopping => return Ok(()),
            }
        }
    }

    async fn send(&self, event: String) -> Result<(), Stopped> {
        self.tx.send(event).await.map_err(|_| Stopped::ClientGone)
    }

    async fn line(
        &mut self,
        job_id: Uuid,
        stream: OutputStream,
        line: String,
    ) -> Result<(), Stopped> {
        self.jobs.entry(job_id).or_default().sent[index(stream)] += 1;
        if self.filter.admits(stream) {
            let line = TaskLogLine {
                job_id,
                stream,
                line,
            };
            self.send(logs::event(EVENT_LINE, &line)).await?;
        }
        Ok(())
    }

    async fn take(&mut self, message: Relayed) -> Result<(), Stopped> {
        match message {
            // A relay given up on may have left lines behind; the stored output has them.
            Relayed::Line(job_id, _, _) if self.jobs.get(&job_id).is_some_and(|j| j.done) => Ok(()),
            Relayed::Line(job_id, stream, line) => self.line(job_id, stream, line).await,
            Relayed::End(job_id, how) => {
                let job = self.jobs.entry(job_id).or_default();
                job.relay = None;
                job.relayed = Some(how);
                if how == Some(false) {
                    // Interrupted: if the job runs again, that run's output is new.
                    job.sent = [0, 0];
                }
                Ok(())
            }
        }
    }

    /// One look at the task and its jobs: relays started or given up, finished jobs' stored
    /// output sent; the end once the task is terminal and every job is done.
    async fn check(
        &mut self,
        relay_tx: &mpsc::Sender<Relayed>,
        deadline: &mut Instant,
        idle_cap: Duration,
    ) -> Result<Option<TaskLogEnd>, Stopped> {
        let db = self.state.db.clone();
        // The task first: once it is terminal, the jobs read after it are final too.
        let task = crate::tasks::fetch(&db, self.task_id).await?;
        let records = jobs::jobs_of(&db, self.task_id).await?;
        let mut nodes: Option<HashMap<Uuid, RunningJob>> = None;
        let mut all_done = true;
        for record in records {
            let job = self.jobs.entry(record.id).or_default();
            if job.done {
                continue;
            }
            match record.status {
                JobStatus::Queued => all_done = false,
                JobStatus::Running => {
                    all_done = false;
                    let broke = matches!(job.relayed, Some(None) | Some(Some(false)));
                    let due = match job.last_relay {
                        None => true,
                        Some(at) => broke && at.elapsed() >= RELAY_RETRY,
                    };
                    if job.relay.is_some() || !due {
                        continue;
                    }
                    if nodes.is_none() {
                        let running =
                            jobs::running_on(&db, self.task_id, &self.state.worker_tokens).await?;
                        nodes = Some(running.into_iter().map(|r| (r.job_id, r)).collect());
                    }
                    let Some(node) = nodes.as_ref().and_then(|n| n.get(&record.id)) else {
                        continue;
                    };
                    if job.last_relay.is_none() {
                        *deadline = (*deadline).max(Instant::now() + idle_cap);
                    }
                    job.last_relay = Some(Instant::now());
                    job.relayed = None;
                    let task = tokio::spawn(relay(
                        self.state.http.clone(),
                        node.clone(),
                        job.sent,
                        relay_tx.clone(),
                        idle_cap,
                    ));
                    job.relay = Some(task.abort_handle());
                }
                JobStatus::Completed | JobStatus::Failed | JobStatus::Canceled => {
                    if let Some(relay) = &job.relay {
                        let ended_at = *job.ended_at.get_or_insert_with(Instant::now);
                        if ended_at.elapsed() < RELAY_GRACE {
                            all_done = false;
                            continue;
                        }
                        tracing::info!(job_id = %record.id, "the node's log stream did not end with its job; using the stored output");
                        relay.abort();
                        job.relay = None;
                        job.relayed = Some(None);
                    }
                    if job.relayed != Some(Some(true)) {
                        let skip = job.sent;
                        for (stream, line) in stored_lines(record.result.as_ref(), skip) {
                            self.line(record.id, stream, line).await?;
                        }
                    }
                    if let Some(job) = self.jobs.get_mut(&record.id) {
                        job.done = true;
                    }
                }
            }
        }
        Ok(
            (task.status.is_terminal() && all_done).then_some(TaskLogEnd {
                task_id: self.task_id,
                status: task.status,
            }),
        )
    }

    fn stop_relays(&mut self) {
        for job in self.jobs.values_mut() {
            if let Some(relay) = job.relay.take() {
                relay.abort();
            }
        }
    }
}

/// Lines of a stored result (a worker's `RunJobResponse`), stdout's then stderr's, each
/// stream's first `skip` left out.
fn stored_lines(result: Option<&Value>, skip: [usize; 2]) -> Vec<(OutputStream, String)> {
    let mut lines = Vec::new();
    for stream in [OutputStream::Stdout, OutputStream::Stderr] {
        let key = match stream {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        };
        let text = result
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default();
        lines.extend(
            text.split_terminator('\n')
                .skip(skip[index(stream)])
                .map(|l| (stream, l.strip_suffix('\r').unwrap_or(l).to_owned())),
        );
    }
    lines
}

/// Relays one job's live log from its node, leaving out each stream's first `skip` lines
/// (already sent); always ends with [`Relayed::End`].
async fn relay(
    http: reqwest::Client,
    node: RunningJob,
    skip: [usize; 2],
    tx: mpsc::Sender<Relayed>,
    limit: Duration,
) {
    let job_id = node.job_id;
    let how = match relay_lines(&http, &node, skip, &tx, limit).await {
        Ok(how) => Some(how),
        Err(why) => {
            tracing::info!(%job_id, node_slug = %node.node_slug, %why, "no live log from the node");
            None
        }
    };
    let _ = tx.send(Relayed::End(job_id, how)).await;
}

/// `Ok(true)` when the run ended with a result, `Ok(false)` without one.
async fn relay_lines(
    http: &reqwest::Client,
    node: &RunningJob,
    mut skip: [usize; 2],
    tx: &mpsc::Sender<Relayed>,
    limit: Duration,
) -> Result<bool, String> {
    let url = format!(
        "{}{}",
        node.url.trim_end_matches('/'),
        routes::worker::job_logs(node.job_id)
    );
    let mut resp = tokio::time::timeout(
        RELAY_IDLE,
        http.get(url)
            .bearer_auth(node.token.expose())
            .timeout(limit)
            .send(),
    )
    .await
    .map_err(|_| "the node did not answer".to_owned())?
    .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the node answered {}", resp.status()));
    }
    let mut decoder = Decoder::new(MAX_EVENT_BYTES);
    loop {
        let chunk = tokio::time::timeout(RELAY_IDLE, resp.chunk())
            .await
            .map_err(|_| "the node went silent".to_owned())?
            .map_err(|e| e.to_string())?;
        let Some(chunk) = chunk else {
            return Err("the node's stream closed before the run's end".into());
        };
        for event in decoder.push(&chunk).map_err(|e| e.to_string())? {
            match event.name.as_str() {
                EVENT_LINE => {
                    let line: JobLogLine = event.parse().map_err(|e| e.to_string())?;
                    let seen = &mut skip[index(line.stream)];
                    if *seen > 0 {
                        *seen -= 1;
                        continue;
                    }
                    tx.send(Relayed::Line(node.job_id, line.stream, line.line))
                        .await
                        .map_err(|_| "the follower has gone".to_owned())?;
                }
                EVENT_END => {
                    let end: JobLogEnd = event.parse().map_err(|e| e.to_string())?;
                    return Ok(end.status.is_some());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_output_skips_what_was_sent() {
        let result = serde_json::json!({"stdout": "a\nb\r\nc", "stderr": "x\n"});
        assert_eq!(
            stored_lines(Some(&result), [1, 0]),
            [
                (OutputStream::Stdout, "b".to_owned()),
                (OutputStream::Stdout, "c".to_owned()),
                (OutputStream::Stderr, "x".to_owned())
            ]
        );
        assert!(stored_lines(None, [0, 0]).is_empty());
        assert!(stored_lines(Some(&result), [3, 1]).is_empty());
    }
}
