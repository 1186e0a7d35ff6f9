//! Placement: which node runs a job, decided in one place.
//!
//! [`place`] is a pure function of what a job demands and what the nodes offer, so every rule
//! is tested without a database. The facts come from [`nodes`]: each node's latest capability
//! report (labels, models, memory, CPU, GPU, `sandbox.max_concurrency`), its running jobs and
//! whether the dispatcher may use it at all ([`dispatchable`]). The job queue
//! ([`crate::jobs::claim`]) calls both inside its claiming transaction.
//!
//! The rule, in order: a node must be in service (not drained), carry every required label,
//! serve the required model (any model for an inference job), have the required memory, CPU
//! cores and GPU, be ready (configured, acked, recently seen, not paused) and have a free slot.
//! Among those that do, the least loaded wins: fewest running jobs, then most memory not
//! reserved by running jobs, then the one given a job longest ago (never first), then the slug,
//! so equal nodes take turns even with jobs too short to overlap, and the choice is stable.
//! A job coming back from a failed delivery prefers any other node to the one that failed it.

use std::cmp::Reverse;
use std::time::Duration;

use cynode_contracts::node::ConfigAckStatus;
use cynode_contracts::user::{JobRequirements, JobStatus, NodeState};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

/// SQL condition (on alias `n`) for a node that may receive jobs: active, acked `applied` for
/// the config version it currently has, with a worker URL and token, heard from within
/// `stale_after`, and not paused after a failed delivery.
pub fn dispatchable(stale_after: Duration) -> String {
    format!(
        "n.status = '{active}' AND n.config_ack_status = '{applied}' \
         AND n.config_ack_version = n.config_version \
         AND coalesce(n.worker_api_target_url, '') <> '' \
         AND coalesce(n.worker_api_bearer_token, '') <> '' \
         AND n.last_seen_at > now() - make_interval(secs => {}) \
         AND (n.dispatch_paused_until IS NULL OR n.dispatch_paused_until < now())",
        stale_after.as_secs_f64(),
        active = NodeState::Active.as_str(),
        applied = ConfigAckStatus::Applied.as_str(),
    )
}

/// What placement knows about one node.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeFacts {
    pub id: Uuid,
    pub node_slug: String,
    pub drained: bool,
    /// The dispatcher may use it now ([`dispatchable`]), capacity aside.
    pub ready: bool,
    pub labels: Vec<String>,
    /// Models its inference server serves (available or loaded); empty without inference.
    pub models: Vec<String>,
    pub cpu_cores: i64,
    pub memory_mb: i64,
    pub gpu: bool,
    /// `sandbox.max_concurrency` of its report; `None`: no limit reported.
    pub max_concurrency: Option<i64>,
    pub running: i64,
    /// Memory its running jobs asked for (`sandbox.resources.memory_mib`), MB.
    pub reserved_memory_mb: i64,
    /// When it was last given a job; `None`: never.
    pub last_claimed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl NodeFacts {
    fn has_room(&self) -> bool {
        self.max_concurrency.is_none_or(|max| self.running < max)
    }

    fn free_memory_mb(&self) -> i64 {
        self.memory_mb.saturating_sub(self.reserved_memory_mb)
    }

    /// It was just given a job asking for `memory_mib`: what the next placement of the same
    /// claim must see.
    pub fn took(&mut self, memory_mib: i64) {
        self.running += 1;
        self.reserved_memory_mb = self.reserved_memory_mb.saturating_add(memory_mib.max(0));
        self.last_claimed_at = Some(chrono::Utc::now());
    }
}

/// What a job asks of its node.
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    pub requirements: &'a JobRequirements,
    /// The job's sandbox calls the node's model: the node must serve one.
    pub use_inference: bool,
    /// The node that last failed to take it, if any.
    pub avoid: Option<Uuid>,
}

/// Why a job cannot be placed now, in words for its owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Wait {
    #[error("no node is registered")]
    NoNodes,
    #[error("every node is drained")]
    AllDrained,
    #[error("no node has the labels {}", .0.join(", "))]
    Labels(Vec<String>),
    #[error("no node serves model {0}")]
    Model(String),
    #[error("no node offers inference")]
    NoInference,
    #[error("no node has {0} MB of memory")]
    Memory(u64),
    #[error("no node has {0} CPU cores")]
    CpuCores(u32),
    #[error("no node has a GPU")]
    Gpu,
    #[error(
        "no node that fits is available now (offline, not configured yet, or paused after a failed delivery)"
    )]
    Unavailable,
    #[error("all nodes at capacity")]
    Capacity,
}

impl Wait {
    /// Only a free slot can end this wait, and a job that ends frees one: such jobs are looked
    /// at again whenever the dispatcher wakes. Every other wait ends when a node changes
    /// (register, report, ack, undrain), which looks at them again too
    /// ([`crate::jobs::recheck_waiting`]); meanwhile they step aside so the jobs behind them
    /// are not held up.
    pub fn ends_when_a_job_ends(&self) -> bool {
        matches!(self, Self::Capacity)
    }
}

/// The index in `nodes` of the node to run the job, or why there is none.
pub fn place(demand: Demand<'_>, nodes: &[NodeFacts]) -> std::result::Result<usize, Wait> {
    let req = demand.requirements;
    let mut fit: Vec<usize> = (0..nodes.len()).collect();
    let mut narrow = |keep: &dyn Fn(&NodeFacts) -> bool, wait: Wait| {
        fit.retain(|&i| keep(&nodes[i]));
        if fit.is_empty() { Err(wait) } else { Ok(()) }
    };
    if nodes.is_empty() {
        return Err(Wait::NoNodes);
    }
    narrow(&|n| !n.drained, Wait::AllDrained)?;
    narrow(
        &|n| req.labels.iter().all(|l| n.labels.contains(l)),
        Wait::Labels(req.labels.clone()),
    )?;
    match &req.model {
        Some(model) => narrow(&|n| n.models.contains(model), Wait::Model(model.clone()))?,
        None if demand.use_inference => narrow(&|n| !n.models.is_empty(), Wait::NoInference)?,
        None => {}
    }
    if let Some(mb) = req.min_memory_mb {
        narrow(
            &|n| u64::try_from(n.memory_mb).is_ok_and(|m| m >= mb),
            Wait::Memory(mb),
        )?;
    }
    if let Some(cores) = req.min_cpu_cores {
        narrow(&|n| n.cpu_cores >= i64::from(cores), Wait::CpuCores(cores))?;
    }
    if req.gpu == Some(true) {
        narrow(&|n| n.gpu, Wait::Gpu)?;
    }
    narrow(&|n| n.ready, Wait::Unavailable)?;
    narrow(&NodeFacts::has_room, Wait::Capacity)?;
    Ok(fit
        .into_iter()
        .min_by_key(|&i| {
            let n = &nodes[i];
            (
                Some(n.id) == demand.avoid,
                n.running,
                Reverse(n.free_memory_mb()),
                n.last_claimed_at,
                n.node_slug.as_str(),
            )
        })
        .expect("narrowing never leaves an empty list"))
}

/// Every registered node's facts, by slug. `lock` takes the node rows for the rest of the
/// transaction, so that two claiming dispatchers cannot both fill a node's last slot.
pub async fn nodes(
    tx: &mut PgConnection,
    stale_after: Duration,
    lock: bool,
) -> Result<Vec<NodeFacts>> {
    let sql = format!(
        "SELECT n.id, n.node_slug, n.status = '{drained}' AS drained, coalesce({ready}, false) AS ready,
            ARRAY(SELECT jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(r.s->'node'->'labels') = 'array'
                     THEN r.s->'node'->'labels' END)) AS labels,
            ARRAY(SELECT DISTINCT m FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(r.s->'inference'->'available_models') = 'array'
                     THEN r.s->'inference'->'available_models' ELSE '[]' END
                || CASE WHEN jsonb_typeof(r.s->'inference'->'loaded_models') = 'array'
                     THEN r.s->'inference'->'loaded_models' ELSE '[]' END) m ORDER BY m) AS models,
            coalesce((r.s->'compute'->>'cpu_cores')::bigint, 0) AS cpu_cores,
            coalesce((r.s->'compute'->>'ram_mb')::bigint, 0) AS memory_mb,
            coalesce((r.s->'gpu'->>'present')::boolean, false) AS gpu,
            (r.s->'sandbox'->>'max_concurrency')::bigint AS max_concurrency,
            (SELECT count(*) FROM jobs j WHERE j.node_id = n.id AND j.status = '{running}')
                AS running,
            (SELECT coalesce(sum((j.payload->'resources'->>'memory_mib')::bigint), 0)::bigint
             FROM jobs j WHERE j.node_id = n.id AND j.status = '{running}') AS reserved_memory_mb,
            n.last_claimed_at
         FROM nodes n
         LEFT JOIN LATERAL (
            SELECT c.capability_snapshot AS s FROM node_capabilities c
            WHERE c.node_id = n.id ORDER BY c.created_at DESC LIMIT 1) r ON true
         ORDER BY n.node_slug {lock}",
        ready = dispatchable(stale_after),
        // A literal, so the planner can use the partial index of running jobs.
        running = JobStatus::Running.as_str(),
        drained = NodeState::Drained.as_str(),
        lock = if lock { "FOR UPDATE OF n" } else { "" },
    );
    Ok(sqlx::query_as(&sql).fetch_all(&mut *tx).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(slug: &str) -> NodeFacts {
        NodeFacts {
            id: Uuid::new_v4(),
            node_slug: slug.into(),
            drained: false,
            ready: true,
            labels: vec![],
            models: vec![],
            cpu_cores: 4,
            memory_mb: 8000,
            gpu: false,
            max_concurrency: None,
            running: 0,
            reserved_memory_mb: 0,
            last_claimed_at: None,
        }
    }

    fn placed<'a>(nodes: &'a [NodeFacts], demand: Demand<'_>) -> &'a str {
        &nodes[place(demand, nodes).expect("placed")].node_slug
    }

    static ANY: JobRequirements = JobRequirements {
        labels: Vec::new(),
        model: None,
        min_memory_mb: None,
        min_cpu_cores: None,
        gpu: None,
    };

    fn any() -> JobRequirements {
        ANY.clone()
    }

    fn demand(requirements: &JobRequirements) -> Demand<'_> {
        Demand {
            requirements,
            use_inference: false,
            avoid: None,
        }
    }

    #[test]
    fn the_least_loaded_node_wins_then_free_memory_then_the_slug() {
        let mut nodes = vec![node("c"), node("a"), node("b")];
        assert_eq!(placed(&nodes, demand(&ANY)), "a", "equal nodes: by slug");
        nodes[1].running = 1;
        assert_eq!(placed(&nodes, demand(&ANY)), "b");
        nodes[2].running = 1;
        nodes[0].running = 1;
        nodes[0].reserved_memory_mb = 100;
        nodes[2].reserved_memory_mb = 200;
        assert_eq!(placed(&nodes, demand(&ANY)), "a", "most free memory");
        nodes[1].memory_mb = 100;
        assert_eq!(placed(&nodes, demand(&ANY)), "c");
    }

    #[test]
    fn equal_idle_nodes_take_turns_even_when_every_job_ends_at_once() {
        let mut nodes = vec![node("b"), node("a"), node("c")];
        let mut order = Vec::new();
        for _ in 0..6 {
            let i = place(demand(&ANY), &nodes).unwrap();
            order.push(nodes[i].node_slug.clone());
            nodes[i].took(64);
            // The job ended before the next placement: load is even again.
            nodes[i].running = 0;
            nodes[i].reserved_memory_mb = 0;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn a_placement_counts_for_the_next_one_of_the_same_claim() {
        let mut nodes = vec![node("a"), node("b")];
        let first = place(demand(&ANY), &nodes).unwrap();
        nodes[first].took(1000);
        assert_eq!(nodes[first].running, 1);
        assert_eq!(nodes[first].reserved_memory_mb, 1000);
        let second = place(demand(&ANY), &nodes).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn labels_model_memory_cores_and_gpu_narrow_the_choice() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        nodes[1].labels = vec!["ssd".into(), "eu".into()];
        nodes[2].models = vec!["qwen".into()];
        nodes[2].gpu = true;
        nodes[2].memory_mb = 64000;
        nodes[0].cpu_cores = 32;
        let labels = JobRequirements {
            labels: vec!["eu".into(), "ssd".into()],
            ..any()
        };
        assert_eq!(placed(&nodes, demand(&labels)), "b");
        let model = JobRequirements {
            model: Some("qwen".into()),
            ..any()
        };
        assert_eq!(placed(&nodes, demand(&model)), "c");
        let inference = Demand {
            use_inference: true,
            ..demand(&ANY)
        };
        assert_eq!(placed(&nodes, inference), "c");
        let memory = JobRequirements {
            min_memory_mb: Some(10000),
            ..any()
        };
        assert_eq!(placed(&nodes, demand(&memory)), "c");
        let cores = JobRequirements {
            min_cpu_cores: Some(8),
            ..any()
        };
        assert_eq!(placed(&nodes, demand(&cores)), "a");
        let gpu = JobRequirements {
            gpu: Some(true),
            ..any()
        };
        assert_eq!(placed(&nodes, demand(&gpu)), "c");
        let no_gpu_needed = JobRequirements {
            gpu: Some(false),
            ..any()
        };
        assert_eq!(
            place(demand(&no_gpu_needed), &nodes),
            place(demand(&ANY), &nodes),
            "gpu: false asks for nothing"
        );
    }

    #[test]
    fn a_job_no_node_fits_gets_the_first_reason_that_rules_all_out() {
        assert_eq!(place(demand(&ANY), &[]), Err(Wait::NoNodes));
        let mut nodes = vec![node("a"), node("b")];
        let model = JobRequirements {
            model: Some("llama3".into()),
            ..any()
        };
        assert_eq!(
            place(demand(&model), &nodes),
            Err(Wait::Model("llama3".into()))
        );
        assert_eq!(
            Wait::Model("llama3".into()).to_string(),
            "no node serves model llama3"
        );
        let inference = Demand {
            use_inference: true,
            ..demand(&ANY)
        };
        assert_eq!(place(inference, &nodes), Err(Wait::NoInference));
        let labels = JobRequirements {
            labels: vec!["gpu".into(), "eu".into()],
            ..any()
        };
        assert_eq!(
            place(demand(&labels), &nodes).unwrap_err().to_string(),
            "no node has the labels gpu, eu"
        );
        nodes[0].max_concurrency = Some(1);
        nodes[0].running = 1;
        nodes[1].max_concurrency = Some(0);
        let err = place(demand(&ANY), &nodes).unwrap_err();
        assert_eq!(err.to_string(), "all nodes at capacity");
        assert!(err.ends_when_a_job_ends());
        nodes[0].ready = false;
        nodes[1].ready = false;
        assert_eq!(place(demand(&ANY), &nodes), Err(Wait::Unavailable));
        assert!(!Wait::Unavailable.ends_when_a_job_ends());
        nodes[0].drained = true;
        nodes[1].drained = true;
        assert_eq!(place(demand(&ANY), &nodes), Err(Wait::AllDrained));
    }

    #[test]
    fn a_drained_unready_or_full_node_gets_nothing_while_another_fits() {
        let mut nodes = vec![node("a"), node("b"), node("c"), node("d")];
        nodes[0].drained = true;
        nodes[1].ready = false;
        nodes[2].max_concurrency = Some(0);
        assert_eq!(placed(&nodes, demand(&ANY)), "d");
    }

    #[test]
    fn a_retried_job_prefers_another_node_but_takes_the_same_if_it_is_the_only_one() {
        let nodes = vec![node("a"), node("b")];
        let retry = Demand {
            avoid: Some(nodes[0].id),
            ..demand(&ANY)
        };
        assert_eq!(placed(&nodes, retry), "b");
        assert_eq!(placed(&nodes[..1], retry), "a");
    }
}
