//! Rule 5, layers and cycles. A crate's module graph is built from its `use` items and its
//! `crate::`/`super::`/`self::` paths (re-exports followed to where the item lives); a layered
//! crate (the orchestrator, `orchestrator/layers.toml`) may import only from its own layer or
//! below, and no crate named in `tidy/modules.toml` may have an import cycle between its nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::files::{self, SourceFile};
use crate::rust::ImportKind;
use crate::{Rule, Violation};

pub const DATA_FILE: &str = "tidy/modules.toml";

/// `tidy/modules.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesConfig {
    pub layered: Vec<LayeredCrate>,
    pub acyclic: Vec<AcyclicCrate>,
}

/// A crate whose modules are mapped to layers by `map`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayeredCrate {
    pub src: String,
    pub map: String,
}

/// A crate checked for cycles between its top-level modules, and between the submodules of
/// each module in `split`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcyclicCrate {
    pub src: String,
    #[serde(default)]
    pub split: Vec<String>,
}

/// A layer map such as `orchestrator/layers.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerMap {
    /// Bottom first.
    pub layers: Vec<String>,
    /// Module path (`workflow::store`) → layer; the longest matching prefix wins.
    pub modules: BTreeMap<String, String>,
}

type ModulePath = Vec<String>;

/// One module naming another's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: ModulePath,
    /// The item's path from the crate root, re-exports followed.
    pub to: ModulePath,
    pub file: String,
    pub line: usize,
}

/// A crate's modules (one per file) and the imports between them.
#[derive(Debug, Default)]
pub struct CrateGraph {
    pub modules: BTreeSet<ModulePath>,
    /// Each module's file.
    pub files: BTreeMap<ModulePath, String>,
    pub edges: Vec<Edge>,
}

fn joined(path: &[String]) -> String {
    path.join("::")
}

fn split_path(path: &str) -> ModulePath {
    path.split("::").map(str::to_owned).collect()
}

/// `segments` (as written in `current`) as a path from the crate root; `None` for a path into
/// another crate.
pub fn resolve(
    segments: &[String],
    current: &[String],
    modules: &BTreeSet<ModulePath>,
) -> Option<ModulePath> {
    let first = segments.first()?;
    match first.as_str() {
        "crate" => Some(segments[1..].to_vec()),
        "self" => Some([current, &segments[1..]].concat()),
        "super" => {
            let supers = segments.iter().take_while(|s| *s == "super").count();
            let base = current.get(..current.len().checked_sub(supers)?)?;
            Some([base, &segments[supers..]].concat())
        }
        _ => {
            let candidate = [current, segments].concat();
            modules
                .contains(&candidate[..=current.len()])
                .then_some(candidate)
        }
    }
}

/// How many leading segments of `path` name a module.
fn module_depth(path: &[String], modules: &BTreeSet<ModulePath>) -> usize {
    (1..=path.len())
        .rev()
        .find(|&depth| modules.contains(&path[..depth]))
        .unwrap_or(0)
}

/// `path` with every re-export on it followed to the item's home.
fn canonical(
    mut path: ModulePath,
    modules: &BTreeSet<ModulePath>,
    reexports: &BTreeMap<ModulePath, BTreeMap<String, ModulePath>>,
) -> ModulePath {
    // Bounded: re-exports that point at each other would otherwise loop.
    for _ in 0..8 {
        let depth = module_depth(&path, modules);
        let Some(target) = path
            .get(depth)
            .and_then(|name| reexports.get(&path[..depth])?.get(name))
        else {
            break;
        };
        path = [target.as_slice(), &path[depth + 1..]].concat();
    }
    path
}

/// The module graph of the crate whose sources are under `src`. The crate root imports
/// nothing (its `pub use` and `mod` items are declarations); `pub use` elsewhere is a re-export,
/// followed by whoever imports through it rather than counted as an import itself.
pub fn crate_graph(src: &str, sources: &[SourceFile]) -> CrateGraph {
    let prefix = format!("{src}/");
    let crate_files: Vec<(&SourceFile, ModulePath)> = sources
        .iter()
        .filter(|source| source.path.starts_with(&prefix))
        .filter_map(|source| Some((source, files::module_path(&source.path)?.1)))
        .collect();
    let mut graph = CrateGraph::default();
    for (source, module) in &crate_files {
        graph.modules.insert(module.clone());
        graph.files.insert(module.clone(), source.path.clone());
    }
    let mut reexports: BTreeMap<ModulePath, BTreeMap<String, ModulePath>> = BTreeMap::new();
    for (source, module) in &crate_files {
        for import in &source.extract.imports {
            let ImportKind::Use {
                public: true,
                name: Some(name),
            } = &import.kind
            else {
                continue;
            };
            let current = [module.as_slice(), &import.inline_module].concat();
            if let Some(target) = resolve(&import.segments, &current, &graph.modules) {
                reexports
                    .entry(current)
                    .or_default()
                    .insert(name.clone(), target);
            }
        }
    }
    for (source, module) in &crate_files {
        if module.is_empty() {
            continue;
        }
        for import in &source.extract.imports {
            if matches!(import.kind, ImportKind::Use { public: true, .. }) {
                continue;
            }
            let from = [module.as_slice(), &import.inline_module].concat();
            if let Some(to) = resolve(&import.segments, &from, &graph.modules) {
                graph.edges.push(Edge {
                    from,
                    to: canonical(to, &graph.modules, &reexports),
                    file: source.path.clone(),
                    line: import.line,
                });
            }
        }
    }
    graph
}

impl LayerMap {
    /// The longest key of the map that `path` starts with.
    pub fn key_of(&self, path: &[String]) -> Option<&str> {
        self.modules
            .keys()
            .filter(|key| path.starts_with(&split_path(key)))
            .max_by_key(|key| key.split("::").count())
            .map(String::as_str)
    }

    fn layer_index(&self, key: &str) -> Option<usize> {
        let layer = self.modules.get(key)?;
        self.layers.iter().position(|l| l == layer)
    }
}

/// The layer violations of `graph` under `map` (read from `map_file`), and what is wrong with
/// the map itself.
pub fn check_layers(map: &LayerMap, map_file: &str, graph: &CrateGraph) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (key, layer) in &map.modules {
        if !map.layers.contains(layer) {
            violations.push(Violation::new(
                Rule::Layers,
                map_file,
                0,
                format!("`{key}` is in layer `{layer}`, which `layers` does not list"),
            ));
        }
        if !graph.modules.contains(&split_path(key)) {
            violations.push(Violation::new(
                Rule::Layers,
                map_file,
                0,
                format!("`{key}` names no module: remove or rename the entry"),
            ));
        }
    }
    for (module, file) in &graph.files {
        if !module.is_empty() && map.key_of(module).is_none() {
            violations.push(Violation::new(
                Rule::Layers,
                file,
                0,
                format!("module `{}` has no layer in {map_file}", joined(module)),
            ));
        }
    }
    for edge in &graph.edges {
        let (Some(from), Some(to)) = (map.key_of(&edge.from), map.key_of(&edge.to)) else {
            continue;
        };
        let (Some(from_layer), Some(to_layer)) = (map.layer_index(from), map.layer_index(to))
        else {
            continue;
        };
        if from_layer < to_layer {
            violations.push(Violation::new(
                Rule::Layers,
                &edge.file,
                edge.line,
                format!(
                    "`{}` ({}) uses `crate::{}` ({}), a higher layer",
                    joined(&edge.from),
                    map.layers[from_layer],
                    joined(&edge.to),
                    map.layers[to_layer]
                ),
            ));
        }
    }
    violations
}

/// The cycles of `graph` with modules grouped into nodes by `node_of` (`None`: not a node,
/// such as an item of the crate root). One violation per strongly connected component,
/// listing the imports inside it.
pub fn check_cycles(
    src: &str,
    graph: &CrateGraph,
    node_of: &dyn Fn(&[String]) -> Option<String>,
) -> Vec<Violation> {
    let mut examples: BTreeMap<(String, String), &Edge> = BTreeMap::new();
    for edge in &graph.edges {
        if let (Some(from), Some(to)) = (node_of(&edge.from), node_of(&edge.to))
            && from != to
        {
            examples.entry((from, to)).or_insert(edge);
        }
    }
    let nodes: Vec<&String> = examples
        .keys()
        .flat_map(|(from, to)| [from, to])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = |name: &String| nodes.iter().position(|n| *n == name).expect("a node");
    let mut successors = vec![Vec::new(); nodes.len()];
    for (from, to) in examples.keys() {
        successors[index(from)].push(index(to));
    }
    strongly_connected(&successors)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|mut component| {
            component.sort();
            let members: Vec<&str> = component.iter().map(|&i| nodes[i].as_str()).collect();
            let imports: Vec<String> = examples
                .iter()
                .filter(|((from, to), _)| {
                    members.contains(&from.as_str()) && members.contains(&to.as_str())
                })
                .map(|((from, to), edge)| format!("{from} -> {to} ({}:{})", edge.file, edge.line))
                .collect();
            Violation::new(
                Rule::Cycles,
                src,
                0,
                format!(
                    "cycle between `{}`; its imports (one example each):\n      {}",
                    members.join("`, `"),
                    imports.join("\n      ")
                ),
            )
        })
        .collect()
}

/// Tarjan's strongly connected components of the graph `successors[node]`.
pub fn strongly_connected(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        successors: &'a [Vec<usize>],
        next_index: usize,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        components: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, node: usize) {
            self.index[node] = Some(self.next_index);
            self.low[node] = self.next_index;
            self.next_index += 1;
            self.stack.push(node);
            self.on_stack[node] = true;
            for &next in &self.successors[node] {
                match self.index[next] {
                    None => {
                        self.visit(next);
                        self.low[node] = self.low[node].min(self.low[next]);
                    }
                    Some(seen) if self.on_stack[next] => {
                        self.low[node] = self.low[node].min(seen);
                    }
                    Some(_) => {}
                }
            }
            if Some(self.low[node]) == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let count = successors.len();
    let mut tarjan = Tarjan {
        successors,
        next_index: 0,
        index: vec![None; count],
        low: vec![0; count],
        stack: Vec::new(),
        on_stack: vec![false; count],
        components: Vec::new(),
    };
    for node in 0..count {
        if tarjan.index[node].is_none() {
            tarjan.visit(node);
        }
    }
    tarjan.components
}

/// The node of `path` in a crate checked without layers: its top-level module, or for a
/// module in `split`, its submodule.
fn top_level_node(
    path: &[String],
    split: &[String],
    modules: &BTreeSet<ModulePath>,
) -> Option<String> {
    let depth = module_depth(path, modules);
    match &path[..depth] {
        [] => None,
        [first, second, ..] if split.contains(first) => Some(format!("{first}::{second}")),
        [first, ..] => Some(first.clone()),
    }
}

/// The violations of rule 5 in the repository at `root`.
pub fn check(root: &Path, sources: &[SourceFile]) -> Result<Vec<Violation>, String> {
    let config: ModulesConfig = crate::load_toml(root, DATA_FILE)?;
    let mut violations = Vec::new();
    for layered in &config.layered {
        let graph = crate_graph(&layered.src, sources);
        if !root.join(&layered.map).exists() {
            violations.push(Violation::new(
                Rule::Layers,
                &layered.map,
                0,
                format!(
                    "missing: {}'s layers are not declared (`layers`, bottom first, and `[modules]`, \
                     module path → layer; ARCHITECTURE.md, Invariants); until it exists, only \
                     cycles between top-level modules are checked",
                    layered.src
                ),
            ));
            let node_of = |path: &[String]| top_level_node(path, &[], &graph.modules);
            violations.extend(check_cycles(&layered.src, &graph, &node_of));
            continue;
        }
        let map: LayerMap = crate::load_toml(root, &layered.map)?;
        violations.extend(check_layers(&map, &layered.map, &graph));
        let node_of = |path: &[String]| map.key_of(path).map(str::to_owned);
        violations.extend(check_cycles(&layered.src, &graph, &node_of));
    }
    for acyclic in &config.acyclic {
        let graph = crate_graph(&acyclic.src, sources);
        let node_of = |path: &[String]| top_level_node(path, &acyclic.split, &graph.modules);
        violations.extend(check_cycles(&acyclic.src, &graph, &node_of));
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, text: &str) -> SourceFile {
        SourceFile::parse(path, text.to_owned()).unwrap()
    }

    fn path(text: &str) -> ModulePath {
        split_path(text)
    }

    fn modules(list: &[&str]) -> BTreeSet<ModulePath> {
        list.iter()
            .map(|m| if m.is_empty() { vec![] } else { path(m) })
            .collect()
    }

    fn messages(violations: &[Violation]) -> Vec<String> {
        violations
            .iter()
            .map(|v| format!("{}:{}: {}", v.file, v.line, v.message))
            .collect()
    }

    /// A small orchestrator: config (core) ← workflow::store (store) ← workflow (engine).
    fn orchestrator(extra: &[(&str, &str)]) -> Vec<SourceFile> {
        let mut files = vec![
            (
                "o/src/lib.rs",
                "pub mod config; pub mod workflow; pub use config::Config; pub struct AppState;",
            ),
            ("o/src/config.rs", "pub struct Config; use crate::AppState;"),
            (
                "o/src/workflow/mod.rs",
                "pub mod store; pub use store::Lease; use crate::{config::Config, AppState};\n\
                 fn f() { store::take(); }",
            ),
            (
                "o/src/workflow/store.rs",
                "use super::super::Config; pub struct Lease;",
            ),
        ];
        files.extend_from_slice(extra);
        files.iter().map(|(p, t)| source(p, t)).collect()
    }

    fn layer_map() -> LayerMap {
        toml::from_str(
            r#"
            layers = ["core", "store", "engine"]
            [modules]
            "config" = "core"
            "workflow::store" = "store"
            "workflow" = "engine"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn paths_resolve_from_the_importing_module() {
        let known = modules(&["", "jobs", "workflow", "workflow::store"]);
        let current = path("workflow::store");
        let resolve = |p: &str| resolve(&path(p), &current, &known).map(|r| joined(&r));
        assert_eq!(
            resolve("crate::jobs::enqueue"),
            Some("jobs::enqueue".into())
        );
        assert_eq!(resolve("super::Step"), Some("workflow::Step".into()));
        assert_eq!(resolve("super::super::jobs"), Some("jobs".into()));
        assert_eq!(resolve("super::super::super::x"), None);
        assert_eq!(
            resolve("self::Lease"),
            Some("workflow::store::Lease".into())
        );
        assert_eq!(resolve("sqlx::PgPool"), None);
        let in_workflow = path("workflow");
        assert_eq!(
            super::resolve(&path("store::take"), &in_workflow, &known).map(|r| joined(&r)),
            Some("workflow::store::take".into())
        );
    }

    #[test]
    fn imports_through_a_reexport_reach_the_items_home() {
        let graph = crate_graph(
            "o/src",
            &orchestrator(&[("o/src/jobs.rs", "use crate::workflow::Lease;")]),
        );
        let edges: Vec<(String, String)> = graph
            .edges
            .iter()
            .map(|e| (joined(&e.from), joined(&e.to)))
            .collect();
        assert_eq!(
            edges,
            [
                ("config".into(), "AppState".into()),
                ("workflow".into(), "config::Config".into()),
                ("workflow".into(), "AppState".into()),
                ("workflow".into(), "workflow::store::take".into()),
                ("workflow::store".into(), "config::Config".into()),
                ("jobs".into(), "workflow::store::Lease".into()),
            ]
        );
    }

    #[test]
    fn imports_down_the_layers_pass() {
        let graph = crate_graph("o/src", &orchestrator(&[]));
        assert_eq!(
            messages(&check_layers(&layer_map(), "o/layers.toml", &graph)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_import_up_the_layers_is_caught() {
        let graph = crate_graph(
            "o/src",
            &orchestrator(&[(
                "o/src/config.rs",
                "fn f() {\n    crate::workflow::run();\n    tracing::info!(\"{}\", super::workflow::store::Lease);\n}",
            )]),
        );
        assert_eq!(
            messages(&check_layers(&layer_map(), "o/layers.toml", &graph)),
            [
                "o/src/config.rs:2: `config` (core) uses `crate::workflow::run` (engine), a higher layer",
                "o/src/config.rs:3: `config` (core) uses `crate::workflow::store::Lease` (store), a higher layer",
            ]
        );
    }

    #[test]
    fn a_map_that_does_not_fit_the_code_is_caught() {
        let mut map = layer_map();
        map.modules.remove("config");
        map.modules.insert("gone".into(), "core".into());
        map.modules
            .insert("workflow::store".into(), "basement".into());
        let graph = crate_graph("o/src", &orchestrator(&[]));
        assert_eq!(
            messages(&check_layers(&map, "o/layers.toml", &graph)),
            [
                "o/layers.toml:0: `gone` names no module: remove or rename the entry",
                "o/layers.toml:0: `workflow::store` is in layer `basement`, which `layers` does not list",
                "o/src/config.rs:0: module `config` has no layer in o/layers.toml",
            ]
        );
    }

    #[test]
    fn a_cycle_is_reported_with_its_imports() {
        let sources = orchestrator(&[
            ("o/src/jobs.rs", "use crate::nodes::Node;"),
            ("o/src/nodes.rs", "fn f() { crate::jobs::claim(); }"),
        ]);
        let graph = crate_graph("o/src", &sources);
        let node_of = |p: &[String]| top_level_node(p, &[], &graph.modules);
        assert_eq!(
            messages(&check_cycles("o/src", &graph, &node_of)),
            [
                "o/src:0: cycle between `jobs`, `nodes`; its imports (one example each):\n      \
              jobs -> nodes (o/src/jobs.rs:1)\n      nodes -> jobs (o/src/nodes.rs:1)"
            ]
        );
    }

    #[test]
    fn an_acyclic_crate_passes() {
        let graph = crate_graph("o/src", &orchestrator(&[]));
        let node_of = |p: &[String]| top_level_node(p, &["workflow".into()], &graph.modules);
        assert!(check_cycles("o/src", &graph, &node_of).is_empty());
    }

    #[test]
    fn split_modules_are_nodes_of_their_own() {
        let known = modules(&["", "sandbox", "sandbox::runner", "telemetry"]);
        let split = ["sandbox".to_owned()];
        let node = |p: &str| top_level_node(&path(p), &split, &known);
        assert_eq!(
            node("sandbox::runner::Sandboxes"),
            Some("sandbox::runner".into())
        );
        assert_eq!(node("sandbox::Lines"), Some("sandbox".into()));
        assert_eq!(node("telemetry::store::Store"), Some("telemetry".into()));
        assert_eq!(node("AppState"), None);
    }

    #[test]
    fn a_missing_layer_map_fails_and_cycles_are_still_checked() {
        let root = std::env::temp_dir().join(format!("cynode-tidy-{}", std::process::id()));
        std::fs::create_dir_all(root.join("tidy")).unwrap();
        std::fs::write(
            root.join(DATA_FILE),
            "acyclic = []\n[[layered]]\nsrc = \"o/src\"\nmap = \"o/layers.toml\"\n",
        )
        .unwrap();
        let sources = orchestrator(&[
            ("o/src/jobs.rs", "use crate::nodes::Node;"),
            ("o/src/nodes.rs", "use crate::jobs::Job;"),
        ]);
        let violations = check(&root, &sources).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let found: Vec<(Rule, &str)> = violations
            .iter()
            .map(|v| (v.rule, v.file.as_str()))
            .collect();
        assert_eq!(
            found,
            [(Rule::Layers, "o/layers.toml"), (Rule::Cycles, "o/src")]
        );
        assert!(
            violations[0]
                .message
                .starts_with("missing: o/src's layers are not declared")
        );
    }

    #[test]
    fn tarjan_finds_every_component() {
        // 0 ⇄ 1, 1 → 2, 2 → 3 → 4 → 2, 5 alone.
        let successors = vec![vec![1], vec![0, 2], vec![3], vec![4], vec![2], vec![]];
        let mut components: Vec<Vec<usize>> = strongly_connected(&successors)
            .into_iter()
            .map(|mut c| {
                c.sort();
                c
            })
            .collect();
        components.sort();
        assert_eq!(components, [vec![0, 1], vec![2, 3, 4], vec![5]]);
    }
}
