//! `cynork task artifacts list|get` (`cli_console_acceptance.md` §1.4).

use std::io::Write;
use std::path::Path;

use cynode_contracts::artifacts::ArtifactList;
use cynode_contracts::routes;
use reqwest::Method;
use serde::Serialize;

use super::Context;
use crate::cli::ArtifactsCommand;
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: ArtifactsCommand) -> Result<()> {
    match cmd {
        ArtifactsCommand::List(task) => {
            let list: ArtifactList = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::TASK_ARTIFACTS, &[&task.id]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &list, || {
                let mut lines = vec!["artifact_id\tname\tcontent_type\tsize_bytes".to_owned()];
                lines.extend(list.artifacts.iter().map(|a| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        a.artifact_id,
                        tsv_field(&a.path),
                        a.content_type.as_deref().unwrap_or("-"),
                        a.size_bytes.map_or("-".into(), |n| n.to_string())
                    )
                }));
                lines.join("\n")
            });
            Ok(())
        }
        ArtifactsCommand::Get {
            task,
            artifact_id,
            out,
            force,
        } => {
            // Checked before the download, so a refusal costs nothing.
            if !force && std::fs::symlink_metadata(&out).is_ok() {
                return Err(CliError::Usage(format!(
                    "{} exists; give --force to replace it",
                    out.display()
                )));
            }
            let id = artifact_id.to_string();
            let (_, bytes) = ctx
                .client()?
                .get_bytes(&routes::fill(routes::user::TASK_ARTIFACT, &[&task.id, &id]))
                .await?;
            save(&out, &bytes, force)?;
            #[derive(Serialize)]
            struct Saved {
                saved: bool,
                path: String,
                size_bytes: usize,
            }
            let saved = Saved {
                saved: true,
                path: out.display().to_string(),
                size_bytes: bytes.len(),
            };
            emit(ctx.format, &saved, || {
                kv_line(&[("saved", "true"), ("path", saved.path.as_str())])
            });
            Ok(())
        }
    }
}

/// A name in a TSV row: tabs and newlines would break the row, so such names are quoted.
fn tsv_field(text: &str) -> String {
    if text.chars().any(char::is_control) {
        serde_json::to_string(text).expect("strings serialise")
    } else {
        text.to_owned()
    }
}

/// Writes `bytes` to `out` whole or not at all: a temporary file in the same directory, then
/// a rename. Without `force`, an existing `out` is never replaced, even one that appeared
/// during the download.
fn save(out: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let usage = |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", out.display()));
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(usage)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(usage)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .map_err(usage)?;
    if force {
        tmp.persist(out).map_err(|e| usage(e.error))?;
    } else {
        tmp.persist_noclobber(out).map_err(|e| usage(e.error))?;
    }
    Ok(())
}
