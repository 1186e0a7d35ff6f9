//! Placement latency for `just bench-scheduler`, measured on the orchestrator's own code:
//!
//! 1. [`scheduler::place`] (a pure function) over synthetic node facts: ns per placement.
//! 2. [`jobs::claim`] (the claiming transaction: node facts with row locks, the window of due
//!    jobs, placement, the lease) against the database the orchestrator uses, with whatever is
//!    queued there: median and p95 ms per claim. Each claimed job is then recorded as completed
//!    with [`jobs::complete`] (not timed), as the dispatcher does after a delivery.
//!
//! The orchestrator must not be running on the database meanwhile (its dispatcher would claim
//! too). Settings and secrets come from the environment, as for `cynode-orchestrator`
//! (`DATABASE_URL`, `JWT_SECRET` / `JWT_SECRET_FILE`, `NODE_STALE_AFTER`, ...).
//!
//! Usage: cynode-bench-claim [--claims N] [--warmup N] [--nodes N] [--placements N]
//! `--nodes` is the number of synthetic nodes for `place` (default 10); `--claims` the number of
//! timed claims (default 500, 0 skips the database part), after `--warmup` untimed ones (default
//! 5: the connection's first statements are parsed and planned); `--placements` the number of
//! timed `place` calls (default 1,000,000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cynode_contracts::user::JobRequirements;
use cynode_contracts::worker::RunStatus;
use cynode_orchestrator::scheduler::{self, Demand, NodeFacts};
use cynode_orchestrator::worker_tokens::TokenKeys;
use cynode_orchestrator::{Config, jobs};
use uuid::Uuid;

struct Args {
    claims: usize,
    warmup: usize,
    nodes: usize,
    placements: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        claims: 500,
        warmup: 5,
        nodes: 10,
        placements: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<usize>().ok());
        let slot = match flag.as_str() {
            "--claims" => &mut args.claims,
            "--warmup" => &mut args.warmup,
            "--nodes" => &mut args.nodes,
            "--placements" => &mut args.placements,
            _ => {
                eprintln!(
                    "usage: cynode-bench-claim [--claims N] [--warmup N] [--nodes N] [--placements N]"
                );
                std::process::exit(2);
            }
        };
        *slot = value.unwrap_or_else(|| {
            eprintln!("cynode-bench-claim: {flag} needs a number");
            std::process::exit(2)
        });
    }
    args
}

/// Nodes as the claim sees them in a busy cluster: all ready, differently loaded.
fn synthetic_nodes(n: usize) -> Vec<NodeFacts> {
    (0..n)
        .map(|i| NodeFacts {
            id: Uuid::new_v4(),
            node_slug: format!("bench-{i:02}"),
            drained: false,
            ready: true,
            labels: vec!["linux".into(), format!("rack-{}", i % 3)],
            models: vec![],
            cpu_cores: 8,
            memory_mb: 16_384,
            gpu: false,
            max_concurrency: Some(16),
            running: (i as i64 * 7) % 5,
            reserved_memory_mb: (i as i64 * 512) % 2048,
            last_claimed_at: None,
        })
        .collect()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_place(nodes: usize, placements: usize) {
    let facts = synthetic_nodes(nodes);
    let none = JobRequirements::default();
    let labeled = JobRequirements {
        labels: vec!["linux".into(), "rack-1".into()],
        ..JobRequirements::default()
    };
    for (name, requirements) in [("no requirements", &none), ("two labels", &labeled)] {
        let demand = Demand {
            requirements,
            use_inference: false,
            avoid: Some(facts[0].id),
        };
        for _ in 0..placements.min(10_000) {
            black_box(scheduler::place(black_box(demand), black_box(&facts)).ok());
        }
        let started = Instant::now();
        for _ in 0..placements {
            black_box(scheduler::place(black_box(demand), black_box(&facts)).ok());
        }
        let elapsed = started.elapsed();
        println!(
            "place ({name}, {nodes} nodes): {:.0} ns per placement ({placements} placements)",
            elapsed.as_secs_f64() * 1e9 / placements.max(1) as f64
        );
    }
}

async fn bench_claims(claims: usize, warmup: usize) -> anyhow::Result<()> {
    let config = Config::load(None)?;
    let secrets = config.secrets(false)?;
    let keys = TokenKeys::from_secrets(&secrets);
    let db = cynode_orchestrator::connect(&config, &secrets.database_url).await?;
    let queued = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&db)
            .await
    };
    let mut times = Vec::with_capacity(claims);
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    let mut before = queued().await?;
    for i in 0..warmup + claims {
        if i == warmup {
            times.clear();
            per_node.clear();
            before = queued().await?;
        }
        let started = Instant::now();
        // One job per claim: the latency of the claiming transaction itself.
        let claim = jobs::claim(&db, &config, &keys, 1).await?.pop();
        let elapsed = started.elapsed();
        let Some(claim) = claim else {
            break;
        };
        times.push(elapsed);
        *per_node.entry(claim.node_slug.clone()).or_default() += 1;
        let response = serde_json::json!({
            "version": 1, "task_id": claim.task_id, "job_id": claim.job_id,
            "status": "completed", "exit_code": 0, "stdout": "ok\n", "stderr": "",
            "started_at": chrono::Utc::now(), "ended_at": chrono::Utc::now(),
            "truncated": {"stdout": false, "stderr": false},
        });
        jobs::complete(&db, &claim, Ok((RunStatus::Completed, response))).await?;
    }
    let after = queued().await?;
    anyhow::ensure!(
        !times.is_empty(),
        "no job could be claimed ({before} queued): are nodes registered, acked and fresh?"
    );
    times.sort();
    let nodes = per_node.len();
    println!(
        "claim ({before} -> {after} queued, {nodes} node(s) used): median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} claims)",
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.95)),
        ms(*times.last().expect("not empty")),
        times.len()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    if args.placements > 0 && args.nodes > 0 {
        bench_place(args.nodes, args.placements);
    }
    if args.claims > 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(bench_claims(args.claims, args.warmup))?;
    }
    Ok(())
}
