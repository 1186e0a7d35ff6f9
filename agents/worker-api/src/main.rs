use std::process::ExitCode;

use cynode_worker_api::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    cynode_service_kit::logging::init("info");
    match cynode_worker_api::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
