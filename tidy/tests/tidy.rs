//! Issue 27's tidy test: the repository keeps the invariants of ARCHITECTURE.md that a machine
//! can check. The rules and their data files are described in `cynode_tidy`'s docs.

use std::path::Path;

#[test]
fn the_repository_keeps_its_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tidy/ sits in the workspace root");
    let violations = cynode_tidy::check_repository(root)
        .unwrap_or_else(|err| panic!("the tidy check could not run: {err}"));
    assert!(
        violations.is_empty(),
        "{}",
        cynode_tidy::render(&violations)
    );
}
