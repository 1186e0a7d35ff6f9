//! `cynork task create|list|get|result|logs|cancel|watch|steps`.

use std::io::IsTerminal;
use std::time::Duration;

use cynode_contracts::routes;
use cynode_contracts::user::{
    CancelResponse, Task, TaskList, TaskLogs, TaskResult, TaskStatus, TaskSteps,
};
use reqwest::Method;
use serde_json::Value;

use super::{Context, prompt};
use crate::cli::{ListArgs, LogStream, TaskCommand};
use crate::client::{Client, json_body};
use crate::error::{CliError, Result};
use crate::input;
use crate::output::{Format, emit, kv_line, print};
use crate::progress::{self, Progress};

/// Poll interval of `--wait`, and the pause before `logs -F` opens a broken stream again.
const WAIT_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Context, cmd: TaskCommand) -> Result<()> {
    match cmd {
        TaskCommand::Create(args) => {
            // Every local check runs before the first byte goes to the gateway.
            let mut request = input::create_request(&args)?;
            let files = input::attachments(&args)?;
            let mut client = ctx.client()?;
            request.project_id =
                super::project::chosen(ctx, &mut client, args.project_id.as_deref()).await?;
            let from_active = args.project_id.is_none() && request.project_id.is_some();
            let path = routes::fill(routes::user::TASKS, &[]);
            // With files, one multipart request: the task and its files are created together.
            let created = if files.is_empty() {
                client
                    .call(Method::POST, &path, &[], Some(&json_body(&request)))
                    .await
            } else {
                client
                    .call_with(Method::POST, &path, &input::multipart(&request, &files))
                    .await
            };
            let task: Task = match created {
                Err(e) if from_active => return Err(super::project::hint_active(e)),
                other => other?,
            };
            if args.wait {
                let done = wait(
                    &mut client,
                    &task.id.to_string(),
                    WAIT_INTERVAL,
                    wait_progress(ctx),
                )
                .await?;
                show_result(ctx, &mut client, &done.id.to_string()).await
            } else {
                emit(ctx.format, &task, || progress::status_line(&task));
                Ok(())
            }
        }
        TaskCommand::List(args) => list(ctx, args).await,
        TaskCommand::Get(task) => {
            let task = get(&mut ctx.client()?, &task.id).await?;
            emit(ctx.format, &task, || task_line(&task));
            Ok(())
        }
        TaskCommand::Result { task, wait: block } => {
            let mut client = ctx.client()?;
            let id = if block {
                wait(&mut client, &task.id, WAIT_INTERVAL, wait_progress(ctx))
                    .await?
                    .id
                    .to_string()
            } else {
                task.id
            };
            show_result(ctx, &mut client, &id).await
        }
        TaskCommand::Logs {
            task,
            stream,
            follow,
        } => logs(ctx, &task.id, stream, follow).await,
        TaskCommand::Artifacts(cmd) => super::artifacts::run(ctx, cmd).await,
        TaskCommand::Steps(task) => {
            let steps: TaskSteps = ctx
                .client()?
                .call(Method::GET, &["v1", "tasks", &task.id, "steps"], &[], None)
                .await?;
            emit(ctx.format, &steps, || steps_table(&steps));
            Ok(())
        }
        TaskCommand::Cancel { task, yes } => {
            if !yes {
                let answer = prompt(&format!("Cancel task {}? [y/N] ", task.id))?;
                if !matches!(answer.trim(), "y" | "Y") {
                    return Ok(());
                }
            }
            let mut client = ctx.client()?;
            let done: CancelResponse = client
                .call(
                    Method::POST,
                    &["v1", "tasks", &task.id, "cancel"],
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &done, || {
                kv_line(&[
                    ("task_id", done.task_id.to_string()),
                    ("canceled", done.canceled.to_string()),
                ])
            });
            Ok(())
        }
        TaskCommand::Watch { task, interval } => {
            let mut client = ctx.client()?;
            let stdout_tty = std::io::stdout().is_terminal();
            let progress = match ctx.format {
                Format::Json => Progress::silent(),
                Format::Table if stdout_tty => Progress::spinner(Box::new(std::io::stdout())),
                Format::Table => Progress::lines(Box::new(std::io::stdout())),
            };
            let done = wait(
                &mut client,
                &task.id,
                Duration::from_secs(interval),
                progress,
            )
            .await?;
            // Piped, the last status line was already printed as a change.
            if ctx.format == Format::Json || stdout_tty {
                emit(ctx.format, &done, || progress::status_line(&done));
            }
            Ok(())
        }
    }
}

/// The spinner of `--wait` goes to stderr, and only when that is a terminal: stdout carries
/// nothing but the result.
fn wait_progress(ctx: &Context) -> Progress {
    if ctx.format == Format::Table && std::io::stderr().is_terminal() {
        Progress::spinner(Box::new(std::io::stderr()))
    } else {
        Progress::silent()
    }
}

async fn get(client: &mut Client, id: &str) -> Result<Task> {
    client
        .call(Method::GET, &["v1", "tasks", id], &[], None)
        .await
}

/// Polls until the task reaches a terminal status; Ctrl+C ends the process as usual.
async fn wait(
    client: &mut Client,
    id: &str,
    interval: Duration,
    mut progress: Progress,
) -> Result<Task> {
    loop {
        let task = match get(client, id).await {
            Ok(task) => task,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        progress.update(&task);
        if task.status.is_terminal() {
            progress.finish();
            return Ok(task);
        }
        let deadline = tokio::time::Instant::now() + interval;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(progress::TICK.min(interval)).await;
            progress.tick();
        }
    }
}

async fn list(ctx: &Context, args: ListArgs) -> Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(status) = args.status {
        query.push(("status", status.to_string()));
    }
    if let Some(cursor) = args.cursor {
        query.push(("cursor", cursor));
    }
    let mut client = ctx.client()?;
    let page: TaskList = client
        .call(Method::GET, &["v1", "tasks"], &query, None)
        .await?;
    emit(ctx.format, &page, || {
        let mut lines: Vec<String> = page.tasks.iter().map(list_line).collect();
        if let Some(cursor) = &page.next_cursor {
            lines.push(kv_line(&[("next_cursor", cursor.as_str())]));
        }
        lines.join("\n")
    });
    Ok(())
}

/// A task in `task list`: its status line and who created it (tasks in a shared project
/// are not all yours).
fn list_line(task: &Task) -> String {
    let line = progress::status_line(task);
    match &task.creator {
        Some(creator) => format!("{line} {}", kv_line(&[("creator", creator.as_str())])),
        None => line,
    }
}

fn task_line(task: &Task) -> String {
    let mut pairs = vec![
        ("task_id", task.id.to_string()),
        ("status", task.status.to_string()),
    ];
    if let Some(name) = &task.task_name {
        pairs.push(("task_name", name.clone()));
    }
    if let Some(creator) = &task.creator {
        pairs.push(("creator", creator.clone()));
    }
    if let Some(project) = task.project_id {
        pairs.push(("project_id", project.to_string()));
    }
    pairs.push(("input_mode", task.input_mode.as_str().to_owned()));
    pairs.push(("created_at", task.created_at.to_rfc3339()));
    pairs.push(("updated_at", task.updated_at.to_rfc3339()));
    if let Some(summary) = &task.summary {
        pairs.push(("summary", summary.clone()));
    }
    if let Some(reason) = &task.wait_reason {
        pairs.push(("wait_reason", reason.clone()));
    }
    if let Some(prompt) = &task.prompt {
        pairs.push(("prompt", prompt.clone()));
    }
    kv_line(&pairs)
}

/// Prints `task result`. A task that ended other than `completed`, or whose command exited
/// non-zero, is exit code 10 after the result is shown, so scripts can branch on it.
async fn show_result(ctx: &Context, client: &mut Client, id: &str) -> Result<()> {
    let result: TaskResult = client
        .call(Method::GET, &["v1", "tasks", id, "result"], &[], None)
        .await?;
    emit(ctx.format, &result, || result_line(&result));
    match outcome_error(&result) {
        Some(message) => Err(CliError::TaskFailed(message)),
        None => Ok(()),
    }
}

fn outcome_error(result: &TaskResult) -> Option<String> {
    let failed_code = result
        .jobs
        .iter()
        .filter_map(|job| job.result.as_ref()?.get("exit_code")?.as_i64())
        .find(|code| *code != 0);
    match (result.status, failed_code) {
        (TaskStatus::Failed, Some(code)) => Some(format!(
            "task {} failed: its command exited with code {code}",
            result.task_id
        )),
        (TaskStatus::Failed | TaskStatus::Canceled | TaskStatus::Superseded, _) => Some(format!(
            "task {} finished as {}",
            result.task_id, result.status
        )),
        // Orchestrators before the non-zero exit fix reported such a task as completed.
        (TaskStatus::Completed, code) => code.map(|code| {
            format!(
                "task {} completed, but its command exited with code {code}",
                result.task_id
            )
        }),
        (TaskStatus::Queued | TaskStatus::Running, _) => None,
    }
}

/// One line per step: index, model@node, the decision, its job and exit code, tokens, time.
fn steps_table(steps: &TaskSteps) -> String {
    let mut out =
        String::from("STEP  MODEL@NODE  ACTION  JOB  EXIT  TOKENS(IN/OUT)  MODEL_MS  DETAIL");
    for s in &steps.steps {
        let action = s
            .decision
            .as_ref()
            .and_then(|d| d.get("action")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "-".into());
        let detail = match (&s.error, &s.decision) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(d)) if action == "answer" => d
                .get("answer")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            (None, Some(d)) => d
                .get("commands")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let exit = s
            .output
            .as_ref()
            .and_then(|o| o.get("exit_code")?.as_i64())
            .map_or("-".into(), |c| c.to_string());
        let job = s.job_id.map_or("-".into(), |j| j.to_string());
        out.push_str(&format!(
            "\n{}  {}@{}  {action}  {job}  {exit}  {}/{}  {}  {}",
            s.index,
            s.model,
            s.node_slug,
            s.prompt_tokens,
            s.completion_tokens,
            s.model_ms,
            detail.replace('\n', " ")
        ));
    }
    out
}

/// `task_id= status=` and, once terminal, `stdout= stderr=` (concatenated over the jobs),
/// `exit_code=` for a single job and `error=` when dispatch failed.
fn result_line(result: &TaskResult) -> String {
    let mut pairs = vec![
        ("task_id", result.task_id.to_string()),
        ("status", result.status.to_string()),
    ];
    if let Some(answer) = &result.answer {
        pairs.push(("answer", answer.clone()));
    }
    if result.status.is_terminal() {
        let field = |key: &str| -> String {
            result
                .jobs
                .iter()
                .filter_map(|job| job.result.as_ref()?.get(key)?.as_str().map(str::to_owned))
                .collect()
        };
        if let [job] = result.jobs.as_slice()
            && let Some(code) = job
                .result
                .as_ref()
                .and_then(|r| r.get("exit_code"))
                .and_then(Value::as_i64)
        {
            pairs.push(("exit_code", code.to_string()));
        }
        pairs.push(("stdout", field("stdout")));
        pairs.push(("stderr", field("stderr")));
        let error = field("error");
        if !error.is_empty() {
            pairs.push(("error", error));
        }
    }
    kv_line(&pairs)
}

async fn logs(ctx: &Context, id: &str, stream: LogStream, follow: bool) -> Result<()> {
    let mut client = ctx.client()?;
    let query = [("stream", stream.as_str().to_owned())];
    let fetch = async |client: &mut Client| -> Result<TaskLogs> {
        client
            .call(Method::GET, &["v1", "tasks", id, "logs"], &query, None)
            .await
    };
    if !follow || ctx.format == Format::Json {
        let logs = if follow {
            wait(&mut client, id, WAIT_INTERVAL, Progress::silent()).await?;
            fetch(&mut client).await?
        } else {
            fetch(&mut client).await?
        };
        emit(ctx.format, &logs, String::new);
        if ctx.format == Format::Table {
            print_streams(stream, &logs.stdout, &logs.stderr);
        }
        return Ok(());
    }
    follow_logs(client, id, stream).await
}

/// How many times in a row a log stream may break off without bringing anything before
/// `logs -F` gives up.
const FOLLOW_ATTEMPTS: u32 = 5;

/// `logs -F`: the gateway's live log stream (`follow=true`), each line printed as it arrives
/// (stdout's on stdout, stderr's on stderr), until its `end` event. A stream that breaks off
/// is opened again; it starts from the beginning, so the lines already printed (counted per
/// job and stream) are skipped.
async fn follow_logs(client: Client, id: &str, stream: LogStream) -> Result<()> {
    use cynode_contracts::logs::{self, Decoder, OutputStream, TaskLogLine};
    use cynode_contracts::user::{TaskLogStream, TaskLogsQuery};
    use std::collections::HashMap;
    let mut client = client.for_streams();
    let query = TaskLogsQuery {
        stream: match stream {
            LogStream::Stdout => TaskLogStream::Stdout,
            LogStream::Stderr => TaskLogStream::Stderr,
            LogStream::All => TaskLogStream::All,
        },
        follow: true,
    }
    .pairs();
    let idle = Duration::from_secs(3 * logs::KEEP_ALIVE_SECS);
    let mut printed: HashMap<(uuid::Uuid, OutputStream), usize> = HashMap::new();
    let mut failures = 0;
    loop {
        let mut resp = client
            .get_streaming(&["v1", "tasks", id, "logs"], &query)
            .await?;
        let mut seen: HashMap<(uuid::Uuid, OutputStream), usize> = HashMap::new();
        let mut decoder = Decoder::new(4 * 1024 * 1024);
        let mut progressed = false;
        let why = 'read: loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => break 'read "the gateway went silent".to_owned(),
                Ok(Err(e)) => break 'read client.read_error(&e).to_string(),
                Ok(Ok(None)) => break 'read "the gateway closed the stream".to_owned(),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let events = decoder
                .push(&chunk)
                .map_err(|e| CliError::Server(format!("the log stream is not understood: {e}")))?;
            for event in events {
                match event.name.as_str() {
                    logs::EVENT_LINE => {
                        let line: TaskLogLine = event.parse().map_err(|e| {
                            CliError::Server(format!("the log stream is not understood: {e}"))
                        })?;
                        let key = (line.job_id, line.stream);
                        let n = seen.entry(key).or_default();
                        *n += 1;
                        let done = printed.entry(key).or_default();
                        if *n <= *done {
                            continue;
                        }
                        *done = *n;
                        progressed = true;
                        // As without `-F`: with `all`, stderr's lines go to cynork's stderr.
                        if stream == LogStream::All && line.stream == OutputStream::Stderr {
                            eprintln!("{}", line.line);
                        } else {
                            print(&format!("{}\n", line.line));
                        }
                    }
                    logs::EVENT_END => return Ok(()),
                    _ => {}
                }
            }
        };
        failures = if progressed { 1 } else { failures + 1 };
        if failures >= FOLLOW_ATTEMPTS {
            return Err(CliError::Server(format!(
                "the log stream of task {id} broke off: {why}"
            )));
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
    }
}

/// Raw output: the chosen stream on stdout; with `all`, the task's stderr on cynork's stderr.
fn print_streams(stream: LogStream, stdout: &str, stderr: &str) {
    match stream {
        LogStream::Stdout => print(stdout),
        LogStream::Stderr => print(stderr),
        LogStream::All => {
            print(stdout);
            eprint!("{stderr}");
        }
    }
}

#[cfg(test)]
mod tests {
    use cynode_contracts::user::{JobResult, JobStatus};
    use serde_json::json;

    use super::*;

    #[test]
    fn list_and_get_lines_name_the_creator() {
        let id = uuid::Uuid::nil();
        let at = chrono::Utc::now();
        let mut task = Task {
            id,
            task_id: id,
            status: TaskStatus::Queued,
            task_name: Some("t".into()),
            prompt: None,
            input_mode: Default::default(),
            summary: None,
            created_at: at,
            updated_at: at,
            attachments: vec![],
            requirements: None,
            wait_reason: None,
            project_id: Some(id),
            creator: Some("alice".into()),
        };
        assert_eq!(
            list_line(&task),
            format!("task_id={id} status=queued task_name=t creator=alice")
        );
        assert!(
            task_line(&task).starts_with(&format!(
                "task_id={id} status=queued task_name=t creator=alice project_id={id} "
            )),
            "{}",
            task_line(&task)
        );
        task.creator = None;
        assert_eq!(
            list_line(&task),
            format!("task_id={id} status=queued task_name=t")
        );
    }

    #[test]
    fn result_line_shows_output_only_when_terminal() {
        let id = uuid::Uuid::nil();
        let mut result = TaskResult {
            answer: None,
            task_id: id,
            status: TaskStatus::Running,
            jobs: vec![JobResult {
                id,
                status: JobStatus::Running,
                attempts: 1,
                setbacks: Vec::new(),
                result: None,
                started_at: None,
                ended_at: None,
            }],
        };
        assert_eq!(result_line(&result), format!("task_id={id} status=running"));
        result.status = TaskStatus::Completed;
        result.jobs[0].result =
            Some(json!({"status": "completed", "exit_code": 0, "stdout": "hello\n", "stderr": ""}));
        assert_eq!(
            result_line(&result),
            format!(r#"task_id={id} status=completed exit_code=0 stdout="hello\n" stderr="""#)
        );
        result.status = TaskStatus::Failed;
        result.jobs[0].result =
            Some(json!({"version": 1, "status": "failed", "error": "node unreachable"}));
        assert!(result_line(&result).ends_with(r#"error="node unreachable""#));
        assert!(
            outcome_error(&result)
                .unwrap()
                .contains("finished as failed")
        );
    }

    #[test]
    fn a_non_zero_exit_is_a_failed_outcome() {
        let id = uuid::Uuid::nil();
        let job = |code: i64| JobResult {
            id,
            status: JobStatus::Completed,
            attempts: 1,
            setbacks: Vec::new(),
            result: Some(
                json!({"status": "completed", "exit_code": code, "stdout": "", "stderr": ""}),
            ),
            started_at: None,
            ended_at: None,
        };
        let mut result = TaskResult {
            answer: None,
            task_id: id,
            status: TaskStatus::Completed,
            jobs: vec![job(0)],
        };
        assert_eq!(outcome_error(&result), None);
        result.jobs.push(job(3));
        assert!(
            outcome_error(&result)
                .unwrap()
                .contains("exited with code 3")
        );
        result.status = TaskStatus::Running;
        assert_eq!(outcome_error(&result), None);
        result.status = TaskStatus::Failed;
        assert!(
            outcome_error(&result)
                .unwrap()
                .ends_with("failed: its command exited with code 3")
        );
    }
}
