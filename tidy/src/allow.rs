//! `tidy/allow.toml`: the genuine false positives, each with its reason. An entry matches a
//! violation of its rule in its file whose source line contains its text; an entry that
//! matches nothing is itself reported, so the list cannot rot.

use std::path::Path;

use serde::Deserialize;

use crate::files::SourceFile;
use crate::{Rule, Violation};

pub const DATA_FILE: &str = "tidy/allow.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    #[serde(default)]
    pub allow: Vec<Allowed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    /// A rule id (`Rule::id`).
    pub rule: String,
    pub file: String,
    /// Text of the offending source line.
    pub contains: String,
    /// Why this is not a violation; required, never empty.
    pub reason: String,
}

impl Allowlist {
    pub fn load(root: &Path) -> Result<Self, String> {
        crate::load_toml(root, DATA_FILE)
    }

    /// `violations` less the allowed ones, plus one for each entry that allowed nothing or is
    /// malformed.
    pub fn apply(&self, violations: Vec<Violation>, sources: &[SourceFile]) -> Vec<Violation> {
        let mut used = vec![false; self.allow.len()];
        let mut kept: Vec<Violation> = violations
            .into_iter()
            .filter(|violation| {
                let line = sources
                    .iter()
                    .find(|source| source.path == violation.file)
                    .map_or("", |source| source.line_text(violation.line));
                let matching = self.allow.iter().position(|entry| {
                    entry.rule == violation.rule.id()
                        && entry.file == violation.file
                        && line.contains(&entry.contains)
                });
                if let Some(index) = matching {
                    used[index] = true;
                }
                matching.is_none()
            })
            .collect();
        for (entry, used) in self.allow.iter().zip(used) {
            let problem = if Rule::from_id(&entry.rule).is_none() {
                format!("unknown rule `{}`", entry.rule)
            } else if entry.reason.trim().is_empty() || entry.contains.trim().is_empty() {
                "an entry needs a `contains` text and a `reason`".to_owned()
            } else if !used {
                format!(
                    "allows `{}` in {} on a line containing {:?}, which is no longer reported",
                    entry.rule, entry.file, entry.contains
                )
            } else {
                continue;
            };
            kept.push(Violation::new(Rule::Allowlist, DATA_FILE, 0, problem));
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Vec<SourceFile> {
        vec![
            SourceFile::parse(
                "agents/worker-api/src/podman.rs",
                "fn f() {\n    let status = \"running\"; // podman's word\n}".to_owned(),
            )
            .unwrap(),
        ]
    }

    fn violation(line: usize) -> Violation {
        Violation::new(
            Rule::Statuses,
            "agents/worker-api/src/podman.rs",
            line,
            "the status word",
        )
    }

    fn allowlist(text: &str) -> Allowlist {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_entry_removes_the_violation_it_names() {
        let list = allowlist(
            r#"
            [[allow]]
            rule = "statuses"
            file = "agents/worker-api/src/podman.rs"
            contains = "podman's word"
            reason = "Podman's state names, parsed into ContainerStatus"
            "#,
        );
        assert!(list.apply(vec![violation(2)], &sources()).is_empty());
    }

    #[test]
    fn other_violations_and_stale_entries_are_reported() {
        let list = allowlist(
            r#"
            [[allow]]
            rule = "statuses"
            file = "agents/worker-api/src/podman.rs"
            contains = "no such text"
            reason = "was once needed"
            [[allow]]
            rule = "no-such-rule"
            file = "x.rs"
            contains = "x"
            reason = "x"
            "#,
        );
        let kept = list.apply(vec![violation(2)], &sources());
        let messages: Vec<&str> = kept.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "the status word",
                "allows `statuses` in agents/worker-api/src/podman.rs on a line containing \"no such text\", which is no longer reported",
                "unknown rule `no-such-rule`",
            ]
        );
    }
}
