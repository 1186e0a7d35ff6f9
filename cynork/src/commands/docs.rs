//! Shell completions and man pages, generated from the clap definitions so they never drift.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{CliError, Result};

pub fn completion(shell: clap_complete::Shell) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "cynork", &mut std::io::stdout());
}

pub fn man(dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                CliError::Internal(format!("cannot write man pages to {}: {e}", dir.display()))
            })
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            crate::output::print(&String::from_utf8_lossy(&page));
            Ok(())
        }
    }
}
