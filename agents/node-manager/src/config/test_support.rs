//! Loading a configuration from text and a made-up environment, for the tests of this module
//! and of the modules that take a `Config`.

use std::collections::HashMap;
use std::path::Path;

use cynode_service_kit::config::Env;
use cynode_service_kit::secrets::Secret;

use super::error::ConfigError;
use super::file::parse;
use super::resolve::resolve;
use super::settings::Config;

pub(super) struct MapEnv(HashMap<&'static str, &'static str>);

impl Env for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| (*v).to_owned())
    }
}

pub(super) fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
    MapEnv(pairs.iter().copied().collect())
}

pub(super) const FULL: &str = r#"
version: 1
orchestrator:
  url: http://10.0.0.1:12082
node:
  id: node-01
  name: First node
  labels: [gpu]
worker_api:
  public_base_url: http://10.0.0.2:12090
inference:
  url: http://127.0.0.1:11500
"#;

pub(super) fn load(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    let file = parse(Path::new("node.yaml"), text)?;
    resolve(file, Secret::new("psk"), env)
}

/// A minimal valid configuration plus `extra_yaml`, for other modules' unit tests; the process
/// environment is ignored.
pub(crate) fn for_tests(extra_yaml: &str) -> Config {
    let text = format!(
        "orchestrator: {{url: 'http://o:1'}}\nnode: {{id: n}}\n\
         worker_api: {{public_base_url: 'http://w:12090'}}\n{extra_yaml}"
    );
    let file = parse(Path::new("node.yaml"), &text).expect("valid test node.yaml");
    resolve(file, Secret::new("p"), &env(&[])).expect("valid test configuration")
}
