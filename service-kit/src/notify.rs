//! systemd readiness protocol. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd what the service is doing now (`STATUS=`). Also logged, so the journal shows it.
pub fn status(text: &str) {
    tracing::info!(status = text, "status");
    let _ = sd_notify::notify(false, &[NotifyState::Status(text)]);
}

/// `READY=1` together with a final status line.
pub fn ready(text: &str) {
    tracing::info!(status = text, "ready");
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(text)]);
}

/// `STOPPING=1`.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// The interval at which to ping the watchdog: half of `WATCHDOG_USEC`, if systemd set one.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// `WATCHDOG=1`; call only while the service is healthy.
pub fn watchdog() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}
