//! Rule 2, no status string literals outside the enums: the wire strings of `contracts`' status
//! enums (named in `tidy/statuses.toml`, their strings read from the enums' source) are typed
//! nowhere else, neither in SQL next to a status column nor in Rust on a line about a status.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::files::SourceFile;
use crate::rust::EnumDef;
use crate::sql;
use crate::{Rule, Violation};

pub const DATA_FILE: &str = "tidy/statuses.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Where the enums live (a directory, ending in `/`); code there may spell the words.
    pub contracts: String,
    /// The status enums, by name.
    pub enums: Vec<String>,
    /// An enum in `contracts` whose name ends with one of these must be listed in `enums`.
    pub status_suffixes: Vec<String>,
}

impl StatusConfig {
    pub fn load(root: &Path) -> Result<Self, String> {
        crate::load_toml(root, DATA_FILE)
    }
}

/// A variant's wire string under serde's `rename_all` rule.
pub fn wire_name(variant: &str, rename_all: Option<&str>) -> Result<String, String> {
    let words = split_words(variant);
    let join = |separator: &str, upper: bool| {
        let words: Vec<String> = words
            .iter()
            .map(|w| {
                if upper {
                    w.to_uppercase()
                } else {
                    w.to_lowercase()
                }
            })
            .collect();
        words.join(separator)
    };
    Ok(match rename_all {
        None | Some("PascalCase") => variant.to_owned(),
        Some("lowercase") => variant.to_lowercase(),
        Some("UPPERCASE") => variant.to_uppercase(),
        Some("snake_case") => join("_", false),
        Some("SCREAMING_SNAKE_CASE") => join("_", true),
        Some("kebab-case") => join("-", false),
        Some("SCREAMING-KEBAB-CASE") => join("-", true),
        Some("camelCase") => {
            let mut chars = variant.chars();
            chars
                .next()
                .map(|first| first.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
        Some(other) => return Err(format!("unknown serde rename_all rule \"{other}\"")),
    })
}

/// `RolledBack` → `[Rolled, Back]`.
fn split_words(variant: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    for (index, c) in variant.char_indices().skip(1) {
        if c.is_uppercase() {
            words.push(&variant[start..index]);
            start = index;
        }
    }
    words.push(&variant[start..]);
    words
}

/// The wire strings of `def`'s variants, each with `Enum::Variant`.
pub fn wire_strings(def: &EnumDef) -> Result<Vec<(String, String)>, String> {
    def.variants
        .iter()
        .map(|(variant, rename)| {
            let wire = match rename {
                Some(rename) => rename.clone(),
                None => wire_name(variant, def.rename_all.as_deref())?,
            };
            Ok((wire, format!("{}::{variant}", def.name)))
        })
        .collect()
}

/// Status word → the enum variants that send it.
pub type StatusWords = BTreeMap<String, Vec<String>>;

/// The status words of the configured enums, and what is wrong with the configuration.
pub fn status_words(
    config: &StatusConfig,
    sources: &[SourceFile],
) -> (StatusWords, Vec<Violation>) {
    let mut words = StatusWords::new();
    let mut violations = Vec::new();
    let defs: Vec<(&SourceFile, &EnumDef)> = sources
        .iter()
        .filter(|source| source.path.starts_with(&config.contracts))
        .flat_map(|source| source.extract.enums.iter().map(move |def| (source, def)))
        .collect();
    for name in &config.enums {
        let Some((source, def)) = defs.iter().find(|(_, def)| &def.name == name) else {
            violations.push(Violation::new(
                Rule::Statuses,
                DATA_FILE,
                0,
                format!(
                    "names enum `{name}`, which {} does not define",
                    config.contracts
                ),
            ));
            continue;
        };
        match wire_strings(def) {
            Ok(strings) => {
                for (wire, variant) in strings {
                    words.entry(wire).or_default().push(variant);
                }
            }
            Err(err) => violations.push(Violation::new(
                Rule::Statuses,
                &source.path,
                def.line,
                format!("`{name}`: {err}"),
            )),
        }
    }
    for (source, def) in &defs {
        let looks_like_status = config
            .status_suffixes
            .iter()
            .any(|suffix| def.name.ends_with(suffix.as_str()));
        if looks_like_status && !config.enums.contains(&def.name) {
            violations.push(Violation::new(
                Rule::Statuses,
                &source.path,
                def.line,
                format!(
                    "`{}` looks like a status enum: add it to {DATA_FILE}'s `enums`",
                    def.name
                ),
            ));
        }
    }
    (words, violations)
}

/// The violations of rule 2 in `sources`.
pub fn check(config: &StatusConfig, sources: &[SourceFile]) -> Vec<Violation> {
    let (words, mut violations) = status_words(config, sources);
    for source in sources
        .iter()
        .filter(|source| !source.path.starts_with(&config.contracts))
    {
        violations.extend(check_source(&words, source));
    }
    violations
}

/// A status word in `source`'s SQL next to a status column, or as a whole Rust string on a
/// line that mentions a status or in the pattern of a `match` on one.
pub fn check_source(words: &StatusWords, source: &SourceFile) -> Vec<Violation> {
    let mut violations = Vec::new();
    for literal in &source.extract.literals {
        for found in sql::status_words(&literal.value) {
            if let Some(variants) = words.get(&found.word) {
                violations.push(Violation::new(
                    Rule::Statuses,
                    &source.path,
                    literal.line_at(found.offset),
                    format!(
                        "SQL compares `{}` with '{}': bind {}.as_str() instead",
                        found.column,
                        found.word,
                        variants.join(" / ")
                    ),
                ));
            }
        }
        let about_status = literal.status_pattern
            || source
                .line_text(literal.line)
                .to_lowercase()
                .contains("status");
        if let Some(variants) = words.get(&literal.value)
            && about_status
        {
            violations.push(Violation::new(
                Rule::Statuses,
                &source.path,
                literal.line,
                format!(
                    "the status word \"{}\" as a string: use {}",
                    literal.value,
                    variants.join(" / ")
                ),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, text: &str) -> SourceFile {
        SourceFile::parse(path, text.to_owned()).unwrap()
    }

    fn config() -> StatusConfig {
        toml::from_str(
            r#"
            contracts = "contracts/src/"
            enums = ["JobStatus", "ConfigAckStatus"]
            status_suffixes = ["Status", "State"]
            "#,
        )
        .unwrap()
    }

    fn contracts() -> SourceFile {
        source(
            "contracts/src/user.rs",
            r#"
            #[serde(rename_all = "snake_case")]
            pub enum JobStatus { Queued, Running, Failed }
            #[serde(rename_all = "snake_case")]
            pub enum ConfigAckStatus { Applied, RolledBack }
            pub enum InputMode { Script }
            impl JobStatus {
                fn as_str(self) -> &'static str { match self { Self::Queued => "queued", _ => "x" } }
            }
            "#,
        )
    }

    fn messages(violations: &[Violation]) -> Vec<String> {
        violations
            .iter()
            .map(|v| format!("{}:{}: {}", v.file, v.line, v.message))
            .collect()
    }

    #[test]
    fn wire_names_follow_serde() {
        assert_eq!(
            wire_name("RolledBack", Some("snake_case")).unwrap(),
            "rolled_back"
        );
        assert_eq!(
            wire_name("RolledBack", Some("lowercase")).unwrap(),
            "rolledback"
        );
        assert_eq!(
            wire_name("RolledBack", Some("kebab-case")).unwrap(),
            "rolled-back"
        );
        assert_eq!(
            wire_name("RolledBack", Some("camelCase")).unwrap(),
            "rolledBack"
        );
        assert_eq!(wire_name("RolledBack", None).unwrap(), "RolledBack");
        assert!(wire_name("RolledBack", Some("Train-Case")).is_err());
    }

    #[test]
    fn the_words_come_from_the_enums() {
        let (words, violations) = status_words(&config(), &[contracts()]);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            words.keys().collect::<Vec<_>>(),
            ["applied", "failed", "queued", "rolled_back", "running"]
        );
        assert_eq!(words["rolled_back"], ["ConfigAckStatus::RolledBack"]);
    }

    #[test]
    fn a_missing_or_unlisted_status_enum_is_caught() {
        let mut config = config();
        config.enums.push("TaskStatus".into());
        let extra = source(
            "contracts/src/node.rs",
            "pub enum NodeState { Active }\npub enum Other { A }",
        );
        let (_, violations) = status_words(&config, &[contracts(), extra]);
        assert_eq!(
            messages(&violations),
            [
                "tidy/statuses.toml:0: names enum `TaskStatus`, which contracts/src/ does not define",
                "contracts/src/node.rs:1: `NodeState` looks like a status enum: add it to tidy/statuses.toml's `enums`",
            ]
        );
    }

    #[test]
    fn status_words_outside_contracts_are_caught() {
        let planted = source(
            "orchestrator/src/pipeline.rs",
            r#"fn f() {
    q("SELECT id FROM jobs
       WHERE status IN ('queued', 'running')");
    if job.status == "failed" { }
    q(r"UPDATE nodes SET config_ack_status = 'rolled_back'");
    match status.as_deref() {
        Some("queued" | "running") => {}
        _ => {}
    }
}"#,
        );
        let violations = check(&config(), &[contracts(), planted]);
        assert_eq!(
            messages(&violations),
            [
                "orchestrator/src/pipeline.rs:3: SQL compares `status` with 'queued': bind JobStatus::Queued.as_str() instead",
                "orchestrator/src/pipeline.rs:3: SQL compares `status` with 'running': bind JobStatus::Running.as_str() instead",
                "orchestrator/src/pipeline.rs:4: the status word \"failed\" as a string: use JobStatus::Failed",
                "orchestrator/src/pipeline.rs:5: SQL compares `config_ack_status` with 'rolled_back': bind ConfigAckStatus::RolledBack.as_str() instead",
                "orchestrator/src/pipeline.rs:7: the status word \"queued\" as a string: use JobStatus::Queued",
                "orchestrator/src/pipeline.rs:7: the status word \"running\" as a string: use JobStatus::Running",
            ]
        );
    }

    #[test]
    fn the_same_words_elsewhere_pass() {
        let compliant = source(
            "orchestrator/src/jobs.rs",
            r#"fn f() {
    q("SELECT id FROM jobs WHERE status = $1").bind(JobStatus::Queued.as_str());
    let state = "running";
    q("SELECT 1 FROM t WHERE kind = 'failed'");
}
#[cfg(test)]
mod tests { fn t() { assert_eq!(job.status, "failed"); } }"#,
        );
        assert!(check(&config(), &[contracts(), compliant]).is_empty());
    }
}
