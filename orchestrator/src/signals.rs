//! In-process wake-ups: the dispatcher's (a job may go) and the readiness tracker's (a node
//! changed). The store's writers that let work go signal them after their commit; the engines
//! that wait on them hold clones.

use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Wakes the dispatcher: new job, free slot, node change.
    pub wake: Arc<Notify>,
    /// Wakes the readiness status tracker.
    pub node_change: Arc<Notify>,
}

impl Signals {
    /// Something that may let a job go happened.
    pub fn changed(&self) {
        self.wake.notify_one();
        self.node_change.notify_one();
    }
}
