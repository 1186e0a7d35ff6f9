//! Acceptance features live in `*.feature` files beside this crate; the runner is `tests/acceptance.rs`.
