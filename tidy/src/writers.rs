//! Rule 1, one writer per table: every table production code writes is in `tidy/writers.toml`
//! with the files allowed to write it, and nobody else writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::files::SourceFile;
use crate::sql;
use crate::{Rule, Violation};

pub const DATA_FILE: &str = "tidy/writers.toml";

/// `tidy/writers.toml`: table (or `table.column`) → the files allowed to write it; an entry
/// ending in `/` allows every file under that directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritersMap {
    pub tables: BTreeMap<String, Vec<String>>,
    /// Columns with a narrower set of writers than their table.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
}

impl WritersMap {
    pub fn load(root: &Path) -> Result<Self, String> {
        crate::load_toml(root, DATA_FILE)
    }
}

fn allows(owners: &[String], file: &str) -> bool {
    owners
        .iter()
        .any(|owner| owner == file || (owner.ends_with('/') && file.starts_with(owner.as_str())))
}

/// The violations of rule 1 in `sources`; `root` is where the map's paths must exist.
pub fn check(map: &WritersMap, sources: &[SourceFile], root: &Path) -> Vec<Violation> {
    let mut violations = check_sources(map, sources);
    for owner in map.tables.values().chain(map.columns.values()).flatten() {
        if !root.join(owner).exists() {
            violations.push(Violation::new(
                Rule::Writers,
                DATA_FILE,
                0,
                format!("names `{owner}`, which does not exist: point it at the file that writes the table now"),
            ));
        }
    }
    violations.sort();
    violations.dedup();
    violations
}

/// The writes in `sources` that the map does not allow, and the map's entries nobody writes.
pub fn check_sources(map: &WritersMap, sources: &[SourceFile]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut written = BTreeSet::new();
    for source in sources {
        for literal in &source.extract.literals {
            for write in sql::writes(&literal.value) {
                let line = literal.line_at(write.offset);
                let verb = write.kind.verb();
                let table = &write.table;
                written.insert(table.clone());
                let Some(owners) = map.tables.get(table) else {
                    violations.push(Violation::new(
                        Rule::Writers,
                        &source.path,
                        line,
                        format!("{verb} `{table}`, a table {DATA_FILE} does not list: add it with the one module that owns it"),
                    ));
                    continue;
                };
                if !allows(owners, &source.path) {
                    violations.push(Violation::new(
                        Rule::Writers,
                        &source.path,
                        line,
                        format!(
                            "{verb} `{table}`, which only {} may write",
                            owners.join(", ")
                        ),
                    ));
                    continue;
                }
                for (column, owners) in &map.columns {
                    let Some((column_table, column_name)) = column.split_once('.') else {
                        continue;
                    };
                    let touched = write
                        .columns
                        .as_ref()
                        .is_none_or(|columns| columns.iter().any(|c| c == column_name));
                    if column_table == table && touched && !allows(owners, &source.path) {
                        violations.push(Violation::new(
                            Rule::Writers,
                            &source.path,
                            line,
                            format!(
                                "{verb} `{table}` writes `{column}`, which only {} may write",
                                owners.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    for table in map.tables.keys() {
        if !written.contains(table) {
            violations.push(Violation::new(
                Rule::Writers,
                DATA_FILE,
                0,
                format!("lists `{table}`, which no production code writes: remove the entry"),
            ));
        }
    }
    for column in map.columns.keys() {
        if !column
            .split_once('.')
            .is_some_and(|(table, _)| map.tables.contains_key(table))
        {
            violations.push(Violation::new(
                Rule::Writers,
                DATA_FILE,
                0,
                format!(
                    "`[columns]` entry `{column}` is not `table.column` of a table in `[tables]`"
                ),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> WritersMap {
        toml::from_str(
            r#"
            [tables]
            jobs = ["orchestrator/src/jobs.rs"]
            tasks = ["orchestrator/src/jobs.rs", "orchestrator/src/tasks.rs"]
            task_artifacts = ["orchestrator/src/artifacts.rs"]
            log_event = ["agents/worker-api/src/telemetry/"]
            [columns]
            "tasks.status" = ["orchestrator/src/jobs.rs"]
            "#,
        )
        .unwrap()
    }

    fn source(path: &str, text: &str) -> SourceFile {
        SourceFile::parse(path, text.to_owned()).unwrap()
    }

    /// Sources that write every table of `map()` from an allowed file.
    fn compliant() -> Vec<SourceFile> {
        vec![
            source(
                "orchestrator/src/jobs.rs",
                r#"fn f() {
                    q("INSERT INTO jobs (id) VALUES ($1)");
                    q("UPDATE tasks SET status = $1, closed = true WHERE id = $2");
                }"#,
            ),
            source(
                "orchestrator/src/tasks.rs",
                r#"fn f() { q("UPDATE tasks SET name = $1 WHERE id = $2"); }"#,
            ),
            source(
                "orchestrator/src/artifacts.rs",
                r#"fn f() { q(r"INSERT INTO task_artifacts (id) VALUES ($1)"); }"#,
            ),
            source(
                "agents/worker-api/src/telemetry/store.rs",
                r#"fn f() { q("DELETE FROM log_event WHERE at < ?1"); }"#,
            ),
        ]
    }

    fn messages(violations: &[Violation]) -> Vec<String> {
        violations
            .iter()
            .map(|v| format!("{}:{}: {}", v.file, v.line, v.message))
            .collect()
    }

    #[test]
    fn the_owners_writing_their_tables_pass() {
        assert_eq!(
            messages(&check_sources(&map(), &compliant())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_write_from_another_file_is_caught() {
        let mut sources = compliant();
        sources.push(source(
            "orchestrator/src/tasks.rs",
            "fn f() {\n    q(\"INSERT INTO task_artifacts (id, task_id)\n VALUES ($1, $2)\");\n}",
        ));
        assert_eq!(
            messages(&check_sources(&map(), &sources)),
            [
                "orchestrator/src/tasks.rs:2: INSERT INTO `task_artifacts`, which only orchestrator/src/artifacts.rs may write"
            ]
        );
    }

    #[test]
    fn a_column_with_its_own_writers_is_caught() {
        let mut sources = compliant();
        sources.push(source(
            "orchestrator/src/tasks.rs",
            r#"fn f() { q("UPDATE tasks t SET name = $1, status = 'failed' WHERE id = $2"); }"#,
        ));
        sources.push(source(
            "orchestrator/src/tasks.rs",
            r#"fn f() { q("DELETE FROM tasks WHERE id = $1"); }"#,
        ));
        assert_eq!(
            messages(&check_sources(&map(), &sources)),
            [
                "orchestrator/src/tasks.rs:1: UPDATE `tasks` writes `tasks.status`, which only orchestrator/src/jobs.rs may write",
                "orchestrator/src/tasks.rs:1: DELETE FROM `tasks` writes `tasks.status`, which only orchestrator/src/jobs.rs may write",
            ]
        );
    }

    #[test]
    fn an_unlisted_table_is_caught_and_an_unwritten_entry_too() {
        let mut sources = compliant();
        sources.remove(3);
        sources.push(source(
            "orchestrator/src/nodes.rs",
            r#"fn f() { q("update nodes set drained = true"); }"#,
        ));
        assert_eq!(
            messages(&check_sources(&map(), &sources)),
            [
                "orchestrator/src/nodes.rs:1: UPDATE `nodes`, a table tidy/writers.toml does not list: add it with the one module that owns it",
                "tidy/writers.toml:0: lists `log_event`, which no production code writes: remove the entry",
            ]
        );
    }

    #[test]
    fn test_code_may_write_anything() {
        let mut sources = compliant();
        sources.push(source(
            "orchestrator/src/tasks.rs",
            r#"#[cfg(test)] mod tests { fn f() { q("INSERT INTO jobs (id) VALUES (1)"); } }"#,
        ));
        assert!(check_sources(&map(), &sources).is_empty());
    }

    #[test]
    fn a_directory_owner_allows_the_files_under_it() {
        let owners = ["agents/worker-api/src/telemetry/".to_owned()];
        assert!(allows(&owners, "agents/worker-api/src/telemetry/store.rs"));
        assert!(!allows(&owners, "agents/worker-api/src/telemetry.rs"));
    }
}
