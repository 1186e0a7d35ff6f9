//! Every fixture is a JSON example written from the spec digests. Each must parse into its type
//! and serialise back to the same JSON value (modulo fields the type deliberately leaves out).

use cynode_contracts::node::*;
use cynode_contracts::problem::Problem;
use cynode_contracts::user::*;
use cynode_contracts::worker::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Parses the fixture, serialises it again, and checks the result equals the fixture.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let json = fixture(name);
    let parsed: T = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(back, json, "{name} did not round-trip");
    parsed
}

#[test]
fn registration_request_round_trips_and_keeps_managed_service_status() {
    // The managed-services status is carried opaquely, so it survives verbatim.
    let req: RegisterRequest = round_trip("register_request.json");
    assert_eq!(req.capability.node.node_slug, "n1");
    assert_eq!(req.capability.gpu.devices[0].vram_mb, Some(24000));
    assert_eq!(
        req.capability.inference.unwrap().mode,
        Some(InferenceMode::Allow)
    );
}

#[test]
fn register_request_debug_hides_the_psk() {
    let req: RegisterRequest = serde_json::from_value(fixture("register_request.json")).unwrap();
    let shown = format!("{req:?}");
    assert!(!shown.contains("example-psk"), "{shown}");
}

#[test]
fn bootstrap_payload_round_trips() {
    let payload: NodeBootstrapPayload = round_trip("bootstrap_payload.json");
    assert_eq!(
        payload.orchestrator.endpoints.node_config_url,
        "http://orch:12082/v1/nodes/config"
    );
    assert!(!format!("{payload:?}").contains("eyJ.x.y"));
}

#[test]
fn config_payload_parses_and_hides_the_token_in_debug() {
    let json = fixture("config_payload.json");
    let payload: NodeConfigurationPayload = serde_json::from_value(json).unwrap();
    assert_eq!(payload.config_version.len(), 26);
    let backend = payload.inference_backend.as_ref().unwrap();
    assert_eq!(backend.port, 11434);
    assert_eq!(backend.selected_model, "qwen3.5:9b");
    assert_eq!(payload.worker_api.orchestrator_bearer_token, "secret-token");
    let shown = format!("{payload:?}");
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(!shown.contains("tok\""), "{shown}");
}

#[test]
fn config_ack_round_trips() {
    let ack: NodeConfigAck = round_trip("config_ack.json");
    assert_eq!(ack.status, ConfigAckStatus::Failed);
    assert_eq!(ack.error.unwrap().error_type, "inference");
}

#[test]
fn config_ack_rejects_unknown_fields() {
    let mut json = fixture("config_ack.json");
    json["surprise"] = Value::Bool(true);
    let err = serde_json::from_value::<NodeConfigAck>(json).unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
}

#[test]
fn config_ack_rejects_an_unknown_status() {
    let mut json = fixture("config_ack.json");
    json["status"] = Value::from("maybe");
    assert!(serde_json::from_value::<NodeConfigAck>(json).is_err());
}

#[test]
fn run_job_request_round_trips() {
    let req: RunJobRequest = round_trip("run_job_request.json");
    assert_eq!(req.sandbox.network_policy, Some(NetworkPolicy::Restricted));
    assert_eq!(req.sandbox.timeout_seconds, Some(300));
}

#[test]
fn run_job_request_rejects_unknown_sandbox_fields() {
    let mut json = fixture("run_job_request.json");
    json["sandbox"]["privileged"] = Value::Bool(true);
    let err = serde_json::from_value::<RunJobRequest>(json).unwrap_err();
    assert!(err.to_string().contains("privileged"), "{err}");
}

#[test]
fn run_job_response_keeps_a_zero_exit_code() {
    // Upstream's Go code dropped `exit_code: 0` (omitempty); the spec requires it.
    let resp: RunJobResponse = round_trip("run_job_response.json");
    assert_eq!(resp.exit_code, 0);
    assert!(
        serde_json::to_string(&resp)
            .unwrap()
            .contains("\"exit_code\":0")
    );
}

#[test]
fn create_task_request_round_trips_and_rejects_unknown_fields() {
    let req: CreateTaskRequest = round_trip("create_task_request.json");
    assert_eq!(req.input_mode, Some(InputMode::Commands));
    let mut json = fixture("create_task_request.json");
    json["priority"] = Value::from(1);
    assert!(serde_json::from_value::<CreateTaskRequest>(json).is_err());
}

#[test]
fn create_task_request_defaults_to_prompt_mode() {
    let req: CreateTaskRequest = serde_json::from_str(r#"{"prompt":"hi"}"#).unwrap();
    assert_eq!(req.input_mode.unwrap_or_default(), InputMode::Prompt);
}

#[test]
fn task_and_token_round_trip() {
    let task: Task = round_trip("task.json");
    assert_eq!(task.status, TaskStatus::Queued);
    let tokens: TokenResponse = round_trip("token_response.json");
    assert!(!format!("{tokens:?}").contains("a.b.c"));
}

#[test]
fn problem_round_trips_and_matches_the_unsupported_version_shape() {
    let problem: Problem = round_trip("problem.json");
    assert_eq!(problem, Problem::unsupported_version(2));
    assert_eq!(cynode_contracts::check_version(2), Err(problem));
    assert!(cynode_contracts::check_version(1).is_ok());
}

#[test]
fn task_status_parses_only_known_names() {
    assert_eq!("canceled".parse::<TaskStatus>(), Ok(TaskStatus::Canceled));
    assert!("done".parse::<TaskStatus>().unwrap_err().contains("done"));
    assert!(TaskStatus::Failed.is_terminal());
    assert!(!TaskStatus::Running.is_terminal());
}

#[test]
fn truncation_never_splits_a_character() {
    // "é" is two bytes; a cap of 3 over "aéé" would cut the second "é" in half.
    let (text, cut) = truncate_utf8("aéé".as_bytes(), 4);
    assert_eq!(text, "aé");
    assert!(cut);
    let (text, cut) = truncate_utf8("aé".as_bytes(), 3);
    assert_eq!(text, "aé");
    assert!(!cut);
    // A 4-byte character at the cut.
    let input = format!("{}🦀", "x".repeat(9));
    let (text, cut) = truncate_utf8(input.as_bytes(), 11);
    assert_eq!(text, "x".repeat(9));
    assert!(cut);
}
