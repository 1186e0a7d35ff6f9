//! Running a throwaway container of the sandbox image straight through the Podman REST API, as
//! a check that the dev environment's Podman works (the product's own path is the worker API).

use futures::StreamExt;
use podman_api::conn::TtyChunk;
use podman_api::models::Namespace;
use podman_api::opts::{ContainerCreateOpts, ContainerDeleteOpts, ContainerLogsOpts};

use crate::DevEnv;

/// What a finished container left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sh -c script` in the sandbox image with no network and no capabilities, waits for it
/// (up to 10 s), collects its output and removes it.
pub async fn run_sh(env: &DevEnv, script: &str) -> Finished {
    let podman = env.podman();
    let created = podman
        .containers()
        .create(
            &ContainerCreateOpts::builder()
                .image(&env.sandbox_image)
                .command(["sh", "-c", script])
                .net_namespace(Namespace {
                    nsmode: Some("none".into()),
                    value: None,
                })
                .drop_capabilities(["ALL"])
                .build(),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Podman at {} refused the container ({e}): run `scripts/bootstrap.sh`",
                env.podman_socket.display()
            )
        });
    let container = podman.containers().get(&created.id);
    container.start(None).await.expect("start container");
    let mut exit_code = None;
    for _ in 0..200 {
        let state = container
            .inspect()
            .await
            .expect("inspect")
            .state
            .expect("state");
        if state.status.as_deref() == Some("exited") {
            exit_code = state.exit_code.map(i64::from);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut logs = container.logs(
        &ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .build(),
    );
    while let Some(chunk) = logs.next().await {
        match chunk.expect("log chunk") {
            TtyChunk::StdOut(bytes) => stdout.extend(bytes),
            TtyChunk::StdErr(bytes) => stderr.extend(bytes),
            TtyChunk::StdIn(_) => {}
        }
    }
    drop(logs);
    container
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
        .expect("remove container");
    Finished {
        exit_code: exit_code.expect("container did not exit within 10 s"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
