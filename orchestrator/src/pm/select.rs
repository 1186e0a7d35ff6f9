//! Which node and model the Project Manager uses (orchestrator spec §3 "PM model selection",
//! REQ-ORCHES-0128/0129): [`select`] is the algorithm as a pure function of the pin and the
//! dispatchable nodes' latest capability reports; [`candidates`] reads those reports.
//!
//! 1. Candidates are dispatchable nodes whose report lists served models.
//! 2. The node: `orchestrator_host`-labelled candidates first (smallest slug), otherwise the
//!    largest total VRAM, ties by smallest slug. With a pin, only nodes serving the pin count.
//! 3. The model: the pin if set; otherwise the first model of the VRAM table that the node
//!    serves, loaded ones first. (A node cannot be told to load a model it does not list, so
//!    "loads successfully" means "is listed".) A node serving none of the table is skipped.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;
use crate::scheduler;

/// A dispatchable node as its latest capability report describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub slug: String,
    pub vram_mb: i64,
    pub orchestrator_host: bool,
    pub available: Vec<String>,
    pub loaded: Vec<String>,
}

/// The outcome of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No dispatchable node at all.
    NoNode,
    /// Nodes exist but none serves the model (the pin, or the table's first choice).
    Unavailable { model: String },
    Chosen {
        node_slug: String,
        model: String,
        reasons: Vec<String>,
    },
}

/// The spec's model table: candidates by the node's total VRAM (MB), in order.
pub fn table(vram_mb: i64) -> &'static [&'static str] {
    if vram_mb >= 24_000 {
        &[
            "qwen3.5:35b",
            "qwen2.5:32b",
            "qwen2.5:14b",
            "qwen3.5:9b",
            "qwen3.5:0.8b",
        ]
    } else if vram_mb >= 16_000 {
        &["qwen3.5:9b", "qwen2.5:14b", "qwen3.5:0.8b"]
    } else if vram_mb >= 8_000 {
        &["qwen3.5:9b", "qwen3.5:0.8b"]
    } else {
        &["qwen3.5:0.8b"]
    }
}

/// Node preference: `orchestrator_host` first, then the largest VRAM, then the smallest slug.
fn ranked(nodes: &[Candidate]) -> Vec<&Candidate> {
    let mut ranked: Vec<&Candidate> = nodes.iter().collect();
    ranked.sort_by(|a, b| {
        b.orchestrator_host
            .cmp(&a.orchestrator_host)
            .then(b.vram_mb.cmp(&a.vram_mb))
            .then(a.slug.cmp(&b.slug))
    });
    ranked
}

fn why_node(node: &Candidate) -> String {
    if node.orchestrator_host {
        format!("node {} carries the orchestrator_host label", node.slug)
    } else {
        format!(
            "node {} has the most VRAM among the candidates ({} MB)",
            node.slug, node.vram_mb
        )
    }
}

/// The spec's selection. `dispatchable` is how many dispatchable nodes exist (some may serve
/// no models and so are not candidates); `pin` is the configured model, empty for none.
pub fn select(pin: &str, dispatchable: usize, candidates: &[Candidate]) -> Selection {
    let candidates: Vec<Candidate> = candidates
        .iter()
        .filter(|c| !c.available.is_empty())
        .cloned()
        .collect();
    if dispatchable == 0 && candidates.is_empty() {
        return Selection::NoNode;
    }
    if !pin.is_empty() {
        let serving: Vec<Candidate> = candidates
            .iter()
            .filter(|c| c.available.iter().any(|m| m == pin))
            .cloned()
            .collect();
        return match ranked(&serving).first() {
            None => Selection::Unavailable {
                model: pin.to_owned(),
            },
            Some(node) => Selection::Chosen {
                node_slug: node.slug.clone(),
                model: pin.to_owned(),
                reasons: vec![
                    format!("model {pin} is pinned by configuration"),
                    why_node(node),
                ],
            },
        };
    }
    let ranked = ranked(&candidates);
    for node in &ranked {
        let choices = table(node.vram_mb);
        let pick = choices
            .iter()
            .find(|m| node.loaded.iter().any(|l| l == *m))
            .or_else(|| {
                choices
                    .iter()
                    .find(|m| node.available.iter().any(|a| a == *m))
            });
        if let Some(model) = pick {
            return Selection::Chosen {
                node_slug: node.slug.clone(),
                model: (*model).to_owned(),
                reasons: vec![
                    why_node(node),
                    format!(
                        "{model} is the first model of the {} MB VRAM table the node serves",
                        node.vram_mb
                    ),
                ],
            };
        }
    }
    let first = ranked.first().map_or(0, |n| n.vram_mb);
    Selection::Unavailable {
        model: table(first)[0].to_owned(),
    }
}

type CandidateRow = (String, i64, bool, Vec<String>, Vec<String>);

/// The dispatchable nodes and what their latest reports say, plus the count of dispatchable
/// nodes (candidates or not).
pub async fn candidates(db: &PgPool, stale_after: Duration) -> Result<(usize, Vec<Candidate>)> {
    let dispatchable = scheduler::dispatchable(stale_after);
    let rows: Vec<CandidateRow> = sqlx::query_as(&format!(
        "SELECT n.node_slug,
           coalesce((SELECT sum((d->>'vram_mb')::bigint) FROM jsonb_array_elements(
               CASE WHEN jsonb_typeof(s->'gpu'->'devices') = 'array'
                    THEN s->'gpu'->'devices' ELSE '[]'::jsonb END) d), 0)::bigint,
           coalesce(s->'node'->'labels' ? 'orchestrator_host', false),
           ARRAY(SELECT jsonb_array_elements_text(CASE
               WHEN jsonb_typeof(s->'inference'->'available_models') = 'array'
               THEN s->'inference'->'available_models' ELSE '[]'::jsonb END)),
           ARRAY(SELECT jsonb_array_elements_text(CASE
               WHEN jsonb_typeof(s->'inference'->'loaded_models') = 'array'
               THEN s->'inference'->'loaded_models' ELSE '[]'::jsonb END))
         FROM nodes n
         LEFT JOIN LATERAL (
           SELECT c.capability_snapshot AS s FROM node_capabilities c
           WHERE c.node_id = n.id ORDER BY c.created_at DESC LIMIT 1) latest ON true
         WHERE {dispatchable}
         ORDER BY n.node_slug"
    ))
    .fetch_all(db)
    .await?;
    let count = rows.len();
    Ok((
        count,
        rows.into_iter()
            .map(
                |(slug, vram_mb, orchestrator_host, available, loaded)| Candidate {
                    slug,
                    vram_mb,
                    orchestrator_host,
                    available,
                    loaded,
                },
            )
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(slug: &str, vram: i64, host: bool, available: &[&str], loaded: &[&str]) -> Candidate {
        Candidate {
            slug: slug.into(),
            vram_mb: vram,
            orchestrator_host: host,
            available: available.iter().map(|s| (*s).to_owned()).collect(),
            loaded: loaded.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn chosen(s: &Selection) -> (&str, &str) {
        match s {
            Selection::Chosen {
                node_slug, model, ..
            } => (node_slug, model),
            other => panic!("not chosen: {other:?}"),
        }
    }

    #[test]
    fn no_dispatchable_node_is_its_own_outcome() {
        assert_eq!(select("", 0, &[]), Selection::NoNode);
        assert_eq!(select("m", 0, &[]), Selection::NoNode);
    }

    #[test]
    fn nodes_without_models_make_the_model_unavailable() {
        let bare = node("a", 0, false, &[], &[]);
        assert_eq!(
            select("smollm2:135m", 1, std::slice::from_ref(&bare)),
            Selection::Unavailable {
                model: "smollm2:135m".into()
            }
        );
        assert_eq!(
            select("", 1, &[bare]),
            Selection::Unavailable {
                model: "qwen3.5:0.8b".into()
            }
        );
    }

    #[test]
    fn a_pin_picks_only_nodes_serving_it_preferring_the_orchestrator_host() {
        let nodes = [
            node("big", 48_000, false, &["m", "x"], &[]),
            node("host", 0, true, &["m"], &[]),
            node("other", 0, true, &["x"], &[]),
        ];
        assert_eq!(chosen(&select("m", 3, &nodes)), ("host", "m"));
        assert_eq!(chosen(&select("x", 3, &nodes)), ("other", "x"));
        assert_eq!(
            select("y", 3, &nodes),
            Selection::Unavailable { model: "y".into() }
        );
    }

    #[test]
    fn without_a_host_label_the_most_vram_wins_ties_by_slug() {
        let nodes = [
            node("b", 16_000, false, &["m"], &[]),
            node("a", 16_000, false, &["m"], &[]),
            node("c", 8_000, false, &["m"], &[]),
        ];
        assert_eq!(chosen(&select("m", 3, &nodes)), ("a", "m"));
        let nodes = [
            node("b", 20_000, false, &["m"], &[]),
            node("a", 16_000, false, &["m"], &[]),
        ];
        assert_eq!(chosen(&select("m", 2, &nodes)), ("b", "m"));
    }

    #[test]
    fn without_a_pin_the_vram_table_decides_loaded_models_first() {
        let big = |loaded: &[&str]| {
            node(
                "g",
                24_000,
                false,
                &["qwen3.5:0.8b", "qwen2.5:14b", "qwen3.5:35b"],
                loaded,
            )
        };
        assert_eq!(chosen(&select("", 1, &[big(&[])])).1, "qwen3.5:35b");
        assert_eq!(
            chosen(&select("", 1, &[big(&["qwen2.5:14b"])])).1,
            "qwen2.5:14b",
            "a loaded model of the table beats loading a larger one"
        );
        let mid = node("m", 16_000, false, &["qwen2.5:14b", "qwen3.5:0.8b"], &[]);
        assert_eq!(chosen(&select("", 1, &[mid])).1, "qwen2.5:14b");
        let small = node("s", 8_000, false, &["qwen2.5:14b", "qwen3.5:0.8b"], &[]);
        assert_eq!(
            chosen(&select("", 1, &[small])).1,
            "qwen3.5:0.8b",
            "14b is not in the 8 GB row"
        );
    }

    #[test]
    fn a_node_serving_nothing_of_the_table_is_skipped() {
        let nodes = [
            node("host", 0, true, &["smollm2:135m"], &[]),
            node("gpu", 8_000, false, &["qwen3.5:9b"], &[]),
        ];
        assert_eq!(chosen(&select("", 2, &nodes)), ("gpu", "qwen3.5:9b"));
        assert_eq!(
            select("", 1, &nodes[..1]),
            Selection::Unavailable {
                model: "qwen3.5:0.8b".into()
            }
        );
    }

    #[test]
    fn the_table_follows_the_spec() {
        assert_eq!(table(24_000).len(), 5);
        assert_eq!(table(23_999)[0], "qwen3.5:9b");
        assert_eq!(table(16_000).len(), 3);
        assert_eq!(table(8_000), ["qwen3.5:9b", "qwen3.5:0.8b"]);
        assert_eq!(table(7_999), ["qwen3.5:0.8b"]);
    }
}
