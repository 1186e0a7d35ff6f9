//! The tidy check: the invariants of ARCHITECTURE.md that a machine can verify, run over the
//! repository's production Rust sources by `tests/tidy.rs`.
//!
//! Every rule reads its facts from a data file (`tidy/*.toml`, `orchestrator/layers.toml`), so the
//! documentation and the check read one source. Each rule is a set of pure functions over source
//! text or parsed files; [`check_repository`] loads the repository and runs them all.

pub mod allow;
pub mod files;
pub mod layers;
pub mod rust;
pub mod sql;
pub mod statuses;
pub mod wire;
pub mod writers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The rules, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// 1: every table has its writers, named in `tidy/writers.toml`.
    Writers,
    /// 2: status words are typed only in `contracts`' status enums.
    Statuses,
    /// 3a: route paths are typed only in `contracts`.
    RoutePaths,
    /// 3b: a wire constant of `contracts` is not defined again elsewhere.
    WireConstants,
    /// 4: every OpenAPI path equals a route constant of `contracts`.
    OpenApi,
    /// 5: the orchestrator's layers point down only.
    Layers,
    /// 5: no module imports, through others, one that imports it.
    Cycles,
    /// An entry of `tidy/allow.toml` that no longer matches anything.
    Allowlist,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Writers,
        Rule::Statuses,
        Rule::RoutePaths,
        Rule::WireConstants,
        Rule::OpenApi,
        Rule::Layers,
        Rule::Cycles,
        Rule::Allowlist,
    ];

    /// The name `tidy/allow.toml` uses.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Writers => "writers",
            Rule::Statuses => "statuses",
            Rule::RoutePaths => "route-paths",
            Rule::WireConstants => "wire-constants",
            Rule::OpenApi => "openapi",
            Rule::Layers => "layers",
            Rule::Cycles => "cycles",
            Rule::Allowlist => "allowlist",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.id() == id)
    }

    fn heading(self) -> &'static str {
        match self {
            Rule::Writers => "rule 1, one writer per table (data: tidy/writers.toml)",
            Rule::Statuses => {
                "rule 2, no status string literals outside contracts' enums (data: tidy/statuses.toml)"
            }
            Rule::RoutePaths => {
                "rule 3a, route paths are typed only in contracts (data: tidy/wire.toml)"
            }
            Rule::WireConstants => "rule 3b, a wire constant is defined once, in contracts",
            Rule::OpenApi => "rule 4, every OpenAPI path is a route constant of contracts",
            Rule::Layers => "rule 5, layers point down (data: orchestrator/layers.toml)",
            Rule::Cycles => {
                "rule 5, no import cycles between modules (data: orchestrator/layers.toml, tidy/modules.toml)"
            }
            Rule::Allowlist => "allowlist entries that match nothing (data: tidy/allow.toml)",
        }
    }

    fn remedy(self) -> &'static str {
        match self {
            Rule::Writers => {
                "call the owning module instead of writing its table; if ownership really moved, change \
                 tidy/writers.toml and ARCHITECTURE.md's Invariants together"
            }
            Rule::Statuses => {
                "use the contracts enum (`JobStatus::Failed.as_str()`, bound as a SQL parameter) instead of \
                 the word; a genuine non-status use goes into tidy/allow.toml with its reason"
            }
            Rule::RoutePaths => {
                "use the `cynode_contracts::routes` constant (add one there if it is missing)"
            }
            Rule::WireConstants => "delete the copy and use the contracts constant",
            Rule::OpenApi => {
                "make the annotation's literal equal the route constant that the router uses (add the \
                 constant to contracts/src/routes.rs if there is none)"
            }
            Rule::Layers => {
                "move the item down to a layer the importer may use, or invert the dependency (pass a \
                 value or a trait object down); if the map is wrong, fix orchestrator/layers.toml"
            }
            Rule::Cycles => {
                "break the cycle: move the shared item into one module both may import, or turn one \
                 import into a parameter"
            }
            Rule::Allowlist => "delete the entry, or fix its `contains` text",
        }
    }
}

/// One broken rule at one place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub rule: Rule,
    /// Relative to the repository root, `/`-separated.
    pub file: String,
    /// 1-based; 0 when the violation is about a whole file.
    pub line: usize,
    pub message: String,
}

impl Violation {
    pub fn new(rule: Rule, file: &str, line: usize, message: impl Into<String>) -> Self {
        Violation {
            rule,
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// The violations, grouped by rule, each group with what to do about it.
pub fn render(violations: &[Violation]) -> String {
    let mut by_rule: BTreeMap<Rule, Vec<&Violation>> = BTreeMap::new();
    for violation in violations {
        by_rule.entry(violation.rule).or_default().push(violation);
    }
    let mut out = format!(
        "tidy: {} violation(s) of ARCHITECTURE.md's Invariants\n",
        violations.len()
    );
    for (rule, mut group) in by_rule {
        group.sort();
        let _ = writeln!(out, "\n{}: {}", rule.heading(), group.len());
        let _ = writeln!(out, "  what to do: {}", rule.remedy());
        for violation in group {
            let _ = match violation.line {
                0 => writeln!(out, "  {}: {}", violation.file, violation.message),
                line => writeln!(out, "  {}:{}: {}", violation.file, line, violation.message),
            };
        }
    }
    out
}

/// Loads the repository at `root` and runs every rule. `Err` means the check itself could not
/// run (a data file missing or malformed, a source file that does not parse).
pub fn check_repository(root: &Path) -> Result<Vec<Violation>, String> {
    let sources = files::load_production_sources(root)?;
    let mut violations = Vec::new();
    violations.extend(writers::check(
        &writers::WritersMap::load(root)?,
        &sources,
        root,
    ));
    violations.extend(statuses::check(
        &statuses::StatusConfig::load(root)?,
        &sources,
    ));
    violations.extend(wire::check(&wire::WireConfig::load(root)?, &sources));
    violations.extend(layers::check(root, &sources)?);
    let allowlist = allow::Allowlist::load(root)?;
    Ok(allowlist.apply(violations, &sources))
}

/// Reads and parses one TOML data file of the repository.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(
    root: &Path,
    path: &str,
) -> Result<T, String> {
    let text = std::fs::read_to_string(root.join(path))
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    toml::from_str(&text).map_err(|err| format!("{path} is malformed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_groups_violations_by_rule_with_what_to_do() {
        let report = render(&[
            Violation::new(Rule::OpenApi, "o/src/b.rs", 9, "second"),
            Violation::new(Rule::Writers, "o/src/a.rs", 3, "first"),
            Violation::new(Rule::OpenApi, "o/src/a.rs", 1, "third"),
            Violation::new(Rule::Layers, "o/layers.toml", 0, "missing"),
        ]);
        let lines: Vec<&str> = report.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines[0],
            "tidy: 4 violation(s) of ARCHITECTURE.md's Invariants"
        );
        assert!(lines[1].starts_with("rule 1, one writer per table") && lines[1].ends_with(": 1"));
        assert!(lines[2].starts_with("  what to do: "));
        assert_eq!(lines[3], "  o/src/a.rs:3: first");
        assert!(lines[4].starts_with("rule 4, ") && lines[4].ends_with(": 2"));
        assert_eq!(
            &lines[6..8],
            ["  o/src/a.rs:1: third", "  o/src/b.rs:9: second"]
        );
        assert!(lines[8].starts_with("rule 5, layers"));
        assert_eq!(lines[10], "  o/layers.toml: missing");
    }

    #[test]
    fn every_rule_has_an_id_the_allowlist_can_name() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_id(rule.id()), Some(rule));
        }
    }
}
