//! The state every request starts from, and the part of it each concern's routes take (axum's
//! `FromRef`): `managed` and `telemetry` serve their routes from their own part, so they never
//! name the whole and the modules import one way (`routes` → `state` → the concerns).

use std::sync::Arc;

use axum::extract::FromRef;

use crate::managed::ManagedSandboxes;
use crate::sandbox::{Lifecycle, Limits};
use crate::telemetry::routes::TelemetryApi;

/// Everything a handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub limits: Arc<Limits>,
    /// Every run, stop and repeated delivery goes through it.
    pub jobs: Lifecycle,
    /// The Project Manager's long-lived sandboxes.
    pub managed: ManagedSandboxes,
}

impl FromRef<AppState> for ManagedSandboxes {
    fn from_ref(state: &AppState) -> Self {
        state.managed.clone()
    }
}

impl FromRef<AppState> for TelemetryApi {
    fn from_ref(state: &AppState) -> Self {
        let sandboxes = state.jobs.sandboxes();
        Self {
            telemetry: sandboxes.telemetry().clone(),
            podman: sandboxes.podman().clone(),
        }
    }
}
