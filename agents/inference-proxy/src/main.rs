use std::process::ExitCode;

use cynode_inference_proxy::{SidecarArgs, serve};

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{}", cynode_inference_proxy::args::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match SidecarArgs::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("cynode-inference-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cynode-inference-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
