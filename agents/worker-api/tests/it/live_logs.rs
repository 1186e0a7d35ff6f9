//! Live logs with the real binary on the real Podman socket: `GET /v1/worker/jobs/{job_id}/logs`
//! streams a running job's lines as the job prints them, ends when the run ends, serves a
//! finished job's stored output, and refuses unknown jobs and callers without the token.

use std::time::Duration;

use cynode_contracts::logs::{
    self, CONTENT_TYPE, Decoder, EVENT_END, EVENT_LINE, JobLogEnd, JobLogLine, OutputStream,
};
use cynode_contracts::routes;
use cynode_contracts::worker::RunStatus;
use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use serde_json::{Value, json};
use uuid::Uuid;

/// The events of one log stream, read as they come.
struct LogReader {
    resp: reqwest::Response,
    decoder: Decoder,
    ready: std::collections::VecDeque<logs::Event>,
}

impl LogReader {
    async fn open(worker: &Worker, job_id: Uuid) -> Self {
        let resp = worker
            .client
            .get(format!(
                "{}{}",
                worker.base,
                routes::worker::job_logs(job_id)
            ))
            .bearer_auth(&worker.token)
            .send()
            .await
            .expect("worker API reachable");
        assert_eq!(resp.status(), 200, "log stream of {job_id}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            CONTENT_TYPE
        );
        Self {
            resp,
            decoder: Decoder::new(1 << 20),
            ready: Default::default(),
        }
    }

    /// The next event, `None` once the stream has closed.
    async fn next(&mut self) -> Option<logs::Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("an event or the end within 30 s")
                .expect("the stream reads")?;
            self.ready.extend(self.decoder.push(&chunk).expect("SSE"));
        }
    }

    async fn next_line(&mut self) -> JobLogLine {
        let event = self.next().await.expect("a line before the end");
        assert_eq!(event.name, EVENT_LINE, "{event:?}");
        event.parse().expect("a JobLogLine")
    }

    async fn end(&mut self) -> JobLogEnd {
        let event = self.next().await.expect("the end event");
        assert_eq!(event.name, EVENT_END, "{event:?}");
        let end = event.parse().expect("a JobLogEnd");
        assert!(self.next().await.is_none(), "nothing after the end");
        end
    }
}

fn line(stream: OutputStream, text: &str) -> JobLogLine {
    JobLogLine {
        stream,
        line: text.into(),
    }
}

#[tokio::test]
async fn a_running_jobs_lines_arrive_before_it_ends_and_the_stream_ends_with_it() {
    let env = DevEnv::load();
    let worker = Worker::start(&env, &[]).await;
    let job_id = Uuid::new_v4();
    let run = {
        let worker_client = worker.client.clone();
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let token = worker.token.clone();
        let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
            "sandbox": {"command": ["sh", "-c", "echo first; echo oops >&2; sleep 3; echo second"]}});
        tokio::spawn(async move {
            let resp = worker_client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("jobs:run");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("result")
        })
    };
    // The job is live once the delivery is admitted; until then the node does not know it.
    let mut reader = loop {
        let resp = worker
            .client
            .get(format!(
                "{}{}",
                worker.base,
                routes::worker::job_logs(job_id)
            ))
            .bearer_auth(&worker.token)
            .send()
            .await
            .expect("worker API reachable");
        if resp.status() == 200 {
            drop(resp);
            break LogReader::open(&worker, job_id).await;
        }
        assert_eq!(resp.status(), 404, "before the delivery is admitted");
        assert!(!run.is_finished(), "the run ended before its log was found");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut early = vec![reader.next_line().await, reader.next_line().await];
    assert!(
        !run.is_finished(),
        "the first lines came only after the run had ended"
    );
    early.sort_by_key(|l| l.stream == OutputStream::Stderr);
    assert_eq!(
        early,
        [
            line(OutputStream::Stdout, "first"),
            line(OutputStream::Stderr, "oops")
        ]
    );
    assert_eq!(
        reader.next_line().await,
        line(OutputStream::Stdout, "second")
    );
    let end = reader.end().await;
    assert_eq!(end.job_id, job_id);
    assert_eq!(end.status, Some(RunStatus::Completed));
    assert!(!end.truncated.stdout && !end.truncated.stderr);
    let result = run.await.expect("delivery");
    // The stored result is what it always was.
    assert_eq!(result["stdout"], "first\nsecond\n");
    assert_eq!(result["stderr"], "oops\n");

    // A late reader of the finished job gets the stored output, stdout first, and the end.
    let mut late = LogReader::open(&worker, job_id).await;
    assert_eq!(late.next_line().await, line(OutputStream::Stdout, "first"));
    assert_eq!(late.next_line().await, line(OutputStream::Stdout, "second"));
    assert_eq!(late.next_line().await, line(OutputStream::Stderr, "oops"));
    assert_eq!(late.end().await.status, Some(RunStatus::Completed));
}

#[tokio::test]
async fn a_late_reader_of_a_live_run_gets_its_output_from_the_start_up_to_the_cap() {
    let env = DevEnv::load();
    let worker = Worker::start(&env, &["--max-output-bytes".into(), "100".into()]).await;
    let job_id = Uuid::new_v4();
    // 40 lines of 10 bytes, a cap of 100 bytes: the stream stops after 10 lines, like the
    // result, and says it was cut.
    let script = "for i in $(seq 10 49); do echo line-$i-x; done; sleep 2; echo late";
    let run = {
        let worker_client = worker.client.clone();
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let token = worker.token.clone();
        let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
            "sandbox": {"command": ["sh", "-c", script]}, });
        tokio::spawn(async move {
            worker_client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("jobs:run")
                .json::<Value>()
                .await
                .expect("result")
        })
    };
    // Wait until the container has printed (its lines are in the log), then subscribe.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut reader = loop {
        let found = env.job_containers(job_id).await;
        if found.len() == 1 && found[0].state.as_deref() == Some("running") {
            tokio::time::sleep(Duration::from_millis(500)).await;
            break LogReader::open(&worker, job_id).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "never running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        reader.next_line().await,
        line(OutputStream::Stdout, "line-10-x")
    );
    let mut rest = Vec::new();
    loop {
        let event = reader.next().await.expect("the end");
        if event.name == EVENT_END {
            let end: JobLogEnd = event.parse().unwrap();
            assert!(end.truncated.stdout, "{end:?}");
            break;
        }
        rest.push(event.parse::<JobLogLine>().unwrap().line);
    }
    // 100 bytes: ten whole lines of 10 bytes, nothing past the cap.
    assert_eq!(rest.len(), 9, "{rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("line-19-x"));
    let result = run.await.expect("delivery");
    assert_eq!(result["truncated"]["stdout"], true);
    assert!(
        result["stdout"]
            .as_str()
            .unwrap()
            .starts_with("line-10-x\n")
    );
}

#[tokio::test]
async fn unknown_jobs_are_404_and_the_token_is_required() {
    let env = DevEnv::load();
    let worker = Worker::start(&env, &[]).await;
    let url = format!(
        "{}{}",
        worker.base,
        routes::worker::job_logs(Uuid::new_v4())
    );
    let resp = worker
        .client
        .get(&url)
        .bearer_auth(&worker.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let resp = worker.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = worker
        .client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = worker
        .client
        .get(format!("{}/v1/worker/jobs/not-a-uuid/logs", worker.base))
        .bearer_auth(&worker.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// A run the next worker instance takes over (the first was killed) is followed too: a reader
/// of the new instance gets its output from the start, and a line printed after the takeover
/// while the job still runs.
#[tokio::test]
async fn a_run_taken_over_by_the_next_instance_streams_its_lines() {
    let env = DevEnv::load();
    let mut worker = Worker::start(&env, &[]).await;
    let job_id = Uuid::new_v4();
    let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["sh", "-c", "echo before; sleep 6; echo after; sleep 3"]}});
    let lost = {
        let (client, token) = (worker.client.clone(), worker.token.clone());
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let body = body.clone();
        tokio::spawn(async move {
            let _ = client.post(url).bearer_auth(token).json(&body).send().await;
        })
    };
    let mut first = loop {
        let resp = worker
            .client
            .get(format!(
                "{}{}",
                worker.base,
                routes::worker::job_logs(job_id)
            ))
            .bearer_auth(&worker.token)
            .send()
            .await
            .expect("worker API reachable");
        if resp.status() == 200 {
            drop(resp);
            break LogReader::open(&worker, job_id).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        first.next_line().await,
        line(OutputStream::Stdout, "before")
    );
    worker.kill().await;
    lost.await.unwrap();
    worker.restart().await;

    let mut reader = LogReader::open(&worker, job_id).await;
    assert_eq!(
        reader.next_line().await,
        line(OutputStream::Stdout, "before")
    );
    assert_eq!(
        reader.next_line().await,
        line(OutputStream::Stdout, "after")
    );
    let found = env.job_containers(job_id).await;
    assert_eq!(
        found.first().and_then(|c| c.state.as_deref()),
        Some("running"),
        "the line came only after the run had ended"
    );
    let end = reader.end().await;
    assert_eq!(end.status, Some(RunStatus::Completed));
    // The result is what it always was: the whole output.
    let resp = worker
        .client
        .post(format!("{}{}", worker.base, routes::worker::JOBS_RUN))
        .bearer_auth(&worker.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let result: Value = resp.json().await.unwrap();
    assert_eq!(result["stdout"], "before\nafter\n", "{result}");
    assert_eq!(result["run_diagnostics"]["adopted"], true, "{result}");
}
