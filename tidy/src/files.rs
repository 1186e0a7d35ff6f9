//! Which files the rules read, and where each sits in its crate's module tree.

use std::path::Path;

use crate::rust::{self, Extract};

/// Directories never walked: build output and version control.
const SKIPPED_DIRS: [&str; 2] = ["target", ".git"];

/// Top-level directories that hold only test code (harness, Gherkin runners) or this checker,
/// whose own sources and tests spell the violations they look for.
const TEST_ONLY_ROOTS: [&str; 3] = ["e2e/", "features/", "tidy/"];

/// Path components under which every file is test or bench code.
const TEST_DIRS: [&str; 3] = ["tests", "benches", "examples"];

/// A production source file, parsed.
#[derive(Debug)]
pub struct SourceFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub text: String,
    pub extract: Extract,
}

impl SourceFile {
    pub fn parse(path: &str, text: String) -> Result<Self, String> {
        let extract = rust::extract(&text).map_err(|err| format!("{path}: {err}"))?;
        Ok(SourceFile {
            path: path.to_owned(),
            text,
            extract,
        })
    }

    /// The text of 1-based `line`, or "" past the end.
    pub fn line_text(&self, line: usize) -> &str {
        line.checked_sub(1)
            .and_then(|index| self.text.lines().nth(index))
            .unwrap_or("")
    }
}

/// Every `.rs` file under `root`, relative and `/`-separated, sorted.
pub fn rust_files(root: &Path) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry
                .file_type()
                .map_err(|err| format!("cannot stat {}: {err}", path.display()))?;
            if file_type.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_ref()) {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                let relative = path.strip_prefix(root).expect("walked under root");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `path` is production code by where it lives (test modules inside a production file
/// are left out later, by their attributes).
pub fn is_production(path: &str) -> bool {
    !TEST_ONLY_ROOTS.iter().any(|root| path.starts_with(root))
        && !path
            .split('/')
            .any(|component| TEST_DIRS.contains(&component))
}

/// `path`'s crate source directory and module path: `orchestrator/src/workflow/store.rs` →
/// (`orchestrator/src`, `[workflow, store]`); `mod.rs` is its directory, `lib.rs` and `main.rs`
/// the crate root. `None` for a file outside a `src/` directory.
pub fn module_path(path: &str) -> Option<(&str, Vec<String>)> {
    let split = path.rfind("/src/")? + "/src".len();
    let (src, rest) = (&path[..split], &path[split + 1..]);
    let rest = rest.strip_suffix(".rs")?;
    let mut segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
    if matches!(segments.as_slice(), [only] if only == "lib" || only == "main") {
        segments.clear();
    } else if segments.last().is_some_and(|last| last == "mod") {
        segments.pop();
    }
    Some((src, segments))
}

/// Every production file under `root`, parsed, without the files of modules declared
/// `#[cfg(test)] mod name;`.
pub fn load_production_sources(root: &Path) -> Result<Vec<SourceFile>, String> {
    let mut sources = Vec::new();
    for path in rust_files(root)?
        .into_iter()
        .filter(|path| is_production(path))
    {
        let text = std::fs::read_to_string(root.join(&path))
            .map_err(|err| format!("cannot read {path}: {err}"))?;
        sources.push(SourceFile::parse(&path, text)?);
    }
    let test_modules: Vec<(String, Vec<String>)> = sources
        .iter()
        .filter_map(|source| {
            let (src, module) = module_path(&source.path)?;
            Some(source.extract.test_file_modules.iter().map(move |child| {
                let mut path = module.clone();
                path.extend(child.iter().cloned());
                (src.to_owned(), path)
            }))
        })
        .flatten()
        .collect();
    sources.retain(|source| {
        module_path(&source.path).is_none_or(|(src, module)| {
            !test_modules
                .iter()
                .any(|(test_src, test)| test_src == src && module.starts_with(test))
        })
    });
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_code_is_known_by_where_it_lives() {
        assert!(is_production("orchestrator/src/jobs.rs"));
        assert!(is_production("agents/worker-api/src/sandbox/runner.rs"));
        assert!(!is_production("orchestrator/tests/gateway.rs"));
        assert!(!is_production("orchestrator/tests/common/mod.rs"));
        assert!(!is_production("e2e/src/lib.rs"));
        assert!(!is_production("features/tests/cynork.rs"));
        assert!(!is_production("tidy/src/sql.rs"));
        assert!(!is_production("cynork/benches/parse.rs"));
    }

    #[test]
    fn a_file_names_its_module() {
        let module = |path| module_path(path).map(|(src, m)| (src.to_owned(), m.join("::")));
        assert_eq!(
            module("orchestrator/src/workflow/store.rs"),
            Some(("orchestrator/src".into(), "workflow::store".into()))
        );
        assert_eq!(
            module("orchestrator/src/workflow/mod.rs"),
            Some(("orchestrator/src".into(), "workflow".into()))
        );
        assert_eq!(
            module("orchestrator/src/lib.rs"),
            Some(("orchestrator/src".into(), String::new()))
        );
        assert_eq!(
            module("agents/worker-api/src/main.rs"),
            Some(("agents/worker-api/src".into(), String::new()))
        );
        assert_eq!(module("build.rs"), None);
    }
}
