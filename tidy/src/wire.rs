//! Rules 3 and 4, wire constants are defined once, in `contracts`: (3a) a route path is typed
//! nowhere else; (3b) no `const` outside `contracts` repeats the value of one inside it; (4)
//! every `#[utoipa::path]` literal, which utoipa needs spelled out, equals a route constant.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::files::{self, SourceFile};
use crate::{Rule, Violation};

pub const DATA_FILE: &str = "tidy/wire.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// Where wire constants are defined (a directory, ending in `/`).
    pub contracts: String,
    /// What a route path starts with, after an optional origin or leading `{placeholder}`.
    /// An entry that does not end in `/` must be followed by the end, `/` or `?`.
    pub route_prefixes: Vec<String>,
}

impl WireConfig {
    pub fn load(root: &Path) -> Result<Self, String> {
        crate::load_toml(root, DATA_FILE)
    }
}

/// Whether `literal` is (or starts with) an HTTP route path: `"/v1/tasks"`,
/// `"{base}/v1/tasks/{}"`, `"http://127.0.0.1:12083/mcp"`; not prose that mentions one.
pub fn is_route_path(literal: &str, prefixes: &[String]) -> bool {
    if literal.chars().any(char::is_whitespace) {
        return false;
    }
    let path = if let Some(scheme_end) = literal.find("://") {
        let after = &literal[scheme_end + 3..];
        &after[after.find('/').unwrap_or(after.len())..]
    } else if literal.starts_with('{') {
        &literal[literal.find('}').map_or(literal.len(), |close| close + 1)..]
    } else {
        literal
    };
    prefixes.iter().any(|prefix| {
        path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
        })
    })
}

/// Every string constant defined in `contracts`, by value → its path
/// (`contracts::routes::user::TASKS`).
pub fn contracts_constants(contracts: &str, sources: &[SourceFile]) -> BTreeMap<String, String> {
    let mut constants = BTreeMap::new();
    for source in sources.iter().filter(|s| s.path.starts_with(contracts)) {
        let module = files::module_path(&source.path)
            .map(|(_, module)| module)
            .unwrap_or_default();
        for constant in &source.extract.consts {
            let path: Vec<&str> = std::iter::once("contracts")
                .chain(module.iter().map(String::as_str))
                .chain(constant.path.iter().map(String::as_str))
                .collect();
            constants
                .entry(constant.value.clone())
                .or_insert_with(|| path.join("::"));
        }
    }
    constants
}

/// The violations of rules 3a, 3b and 4 in `sources`.
pub fn check(config: &WireConfig, sources: &[SourceFile]) -> Vec<Violation> {
    let constants = contracts_constants(&config.contracts, sources);
    let routes: BTreeMap<&str, &str> = constants
        .iter()
        .filter(|(value, _)| is_route_path(value, &config.route_prefixes))
        .map(|(value, name)| (value.as_str(), name.as_str()))
        .collect();
    let mut violations = Vec::new();
    if routes.is_empty() {
        violations.push(Violation::new(
            Rule::OpenApi,
            DATA_FILE,
            0,
            format!(
                "no route constants found under {}: is `contracts` right?",
                config.contracts
            ),
        ));
    }
    for source in sources {
        let in_contracts = source.path.starts_with(&config.contracts);
        for literal in &source.extract.literals {
            let defined_here = in_contracts && literal.const_value;
            if !defined_here && is_route_path(&literal.value, &config.route_prefixes) {
                let hint = match routes.get(literal.value.as_str()) {
                    Some(name) => format!(" (the value of `{name}`)"),
                    None => String::new(),
                };
                violations.push(Violation::new(
                    Rule::RoutePaths,
                    &source.path,
                    literal.line,
                    format!("route path \"{}\" typed out{hint}", literal.value),
                ));
            }
        }
        if !in_contracts {
            for constant in &source.extract.consts {
                if let Some(name) = constants.get(&constant.value) {
                    violations.push(Violation::new(
                        Rule::WireConstants,
                        &source.path,
                        constant.line,
                        format!(
                            "`{}` = \"{}\" repeats `{name}`",
                            constant.path.join("::"),
                            constant.value
                        ),
                    ));
                }
            }
        }
        for annotation in &source.extract.openapi_paths {
            let message = match &annotation.literal {
                None => "`#[utoipa::path]` without a string literal `path = \"…\"`: spell it out so it can be checked".to_owned(),
                Some(path) if routes.contains_key(path.as_str()) => continue,
                Some(path) => match routes.iter().find(|(value, _)| same_shape(value, path)) {
                    Some((value, name)) => format!(
                        "OpenAPI path \"{path}\" differs from `{name}` = \"{value}\" only in parameter names: use the constant's"
                    ),
                    None => format!("OpenAPI path \"{path}\" is no route constant of contracts"),
                },
            };
            violations.push(Violation::new(
                Rule::OpenApi,
                &source.path,
                annotation.line,
                message,
            ));
        }
    }
    violations
}

/// Equal but for the names of `{param}` segments.
fn same_shape(a: &str, b: &str) -> bool {
    let is_param = |segment: &str| segment.starts_with('{') && segment.ends_with('}');
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || (is_param(x) && is_param(y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WireConfig {
        toml::from_str(
            r#"
            contracts = "contracts/src/"
            route_prefixes = ["/v1/", "/healthz", "/mcp"]
            "#,
        )
        .unwrap()
    }

    fn source(path: &str, text: &str) -> SourceFile {
        SourceFile::parse(path, text.to_owned()).unwrap()
    }

    fn contracts() -> Vec<SourceFile> {
        vec![
            source(
                "contracts/src/routes.rs",
                r#"
                pub const HEALTHZ: &str = "/healthz";
                pub mod user {
                    pub const TASK: &str = "/v1/tasks/{id}";
                    pub const PM_MODEL: &str = "cynodeai.pm";
                }
                "#,
            ),
            source(
                "contracts/src/mcp.rs",
                r#"pub const MCP_PATH: &str = "/mcp";"#,
            ),
        ]
    }

    fn check_with(text: &str) -> Vec<String> {
        let mut sources = contracts();
        sources.push(source("orchestrator/src/web.rs", text));
        check(&config(), &sources)
            .iter()
            .map(|v| format!("{:?} {}:{}: {}", v.rule, v.file, v.line, v.message))
            .collect()
    }

    #[test]
    fn route_paths_are_recognised() {
        let prefixes = config().route_prefixes;
        for path in [
            "/v1/tasks",
            "/healthz",
            "/mcp",
            "/mcp?session=1",
            "{base}/v1/tasks/{}",
            "http://127.0.0.1:12083/mcp",
        ] {
            assert!(is_route_path(path, &prefixes), "{path}");
        }
        for other in [
            "/mcpx",
            "/run/cynode/mcp/mcp.sock",
            "the worker API does not answer /healthz",
            "v1/tasks",
            "http://127.0.0.1:12083",
        ] {
            assert!(!is_route_path(other, &prefixes), "{other}");
        }
    }

    #[test]
    fn code_that_uses_the_constants_passes() {
        let compliant = r#"
            #[utoipa::path(get, path = "/v1/tasks/{id}")]
            async fn task() {}
            #[utoipa::path(get, path = "/mcp")]
            async fn mcp() {}
            fn router() { Router::new().route(routes::HEALTHZ, get(h)); }
            const SOCKET: &str = "/run/cynode/mcp/mcp.sock";
            #[cfg(test)]
            mod tests { const PATH: &str = "/mcp"; fn t() { get("/v1/tasks/1"); } }
        "#;
        assert_eq!(check_with(compliant), Vec::<String>::new());
    }

    #[test]
    fn a_typed_route_path_is_caught() {
        assert_eq!(
            check_with(
                "fn f() {\n    client.get(format!(\"{base}/v1/tasks/{id}\"));\n    url(\"/healthz\");\n}"
            ),
            [
                "RoutePaths orchestrator/src/web.rs:2: route path \"{base}/v1/tasks/{id}\" typed out",
                "RoutePaths orchestrator/src/web.rs:3: route path \"/healthz\" typed out (the value of `contracts::routes::HEALTHZ`)",
            ]
        );
    }

    #[test]
    fn a_repeated_contracts_constant_is_caught() {
        assert_eq!(
            check_with(
                "pub const MCP_PATH: &str = \"/mcp\";\npub const PM_MODEL_ID: &str = \"cynodeai.pm\";"
            ),
            [
                "RoutePaths orchestrator/src/web.rs:1: route path \"/mcp\" typed out (the value of `contracts::mcp::MCP_PATH`)",
                "WireConstants orchestrator/src/web.rs:1: `MCP_PATH` = \"/mcp\" repeats `contracts::mcp::MCP_PATH`",
                "WireConstants orchestrator/src/web.rs:2: `PM_MODEL_ID` = \"cynodeai.pm\" repeats `contracts::routes::user::PM_MODEL`",
            ]
        );
    }

    #[test]
    fn an_openapi_path_that_is_no_route_constant_is_caught() {
        assert_eq!(
            check_with(
                "#[utoipa::path(get, path = \"/v1/tasks/{task_id}\")]\nasync fn a() {}\n\
                 #[utoipa::path(get, path = \"/v1/task\")]\nasync fn b() {}\n\
                 #[utoipa::path(get, path = routes::TASK)]\nasync fn c() {}"
            ),
            [
                "OpenApi orchestrator/src/web.rs:1: OpenAPI path \"/v1/tasks/{task_id}\" differs from `contracts::routes::user::TASK` = \"/v1/tasks/{id}\" only in parameter names: use the constant's",
                "OpenApi orchestrator/src/web.rs:3: OpenAPI path \"/v1/task\" is no route constant of contracts",
                "OpenApi orchestrator/src/web.rs:5: `#[utoipa::path]` without a string literal `path = \"…\"`: spell it out so it can be checked",
            ]
        );
    }
}
