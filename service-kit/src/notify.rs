//! systemd readiness protocol. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).
//!
//! Messages are sent without blocking: a receiver that does not read (a full datagram queue)
//! loses a message rather than stalling the thread that sent it, which is usually the async
//! runtime's. systemd's own socket never fills in practice.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// Tells systemd what the service is doing now (`STATUS=`). Also logged, so the journal shows it.
pub fn status(text: &str) {
    tracing::info!(status = text, "status");
    send(&format!("STATUS={}", one_line(text)));
}

/// `READY=1` together with a final status line.
pub fn ready(text: &str) {
    tracing::info!(status = text, "ready");
    send(&format!("READY=1\nSTATUS={}", one_line(text)));
}

/// `STOPPING=1`.
pub fn stopping() {
    send("STOPPING=1");
}

/// A status is one line of the protocol.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// One datagram to `$NOTIFY_SOCKET`, if set.
fn send(message: &str) {
    if let Some(target) = std::env::var_os("NOTIFY_SOCKET") {
        send_to(&target, message);
    }
}

/// One datagram to `target` (a path, or `@name` in the abstract namespace), never blocking.
fn send_to(target: &OsStr, message: &str) {
    let target = target.as_bytes();
    let address = match target.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(Path::new(OsStr::from_bytes(target))),
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        socket.set_nonblocking(true)?;
        socket.send_to_addr(message.as_bytes(), &address?)
    });
    match sent {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            tracing::debug!("the notify socket is full; a notification was dropped");
        }
        Err(e) => tracing::debug!(error = %e, "cannot notify the service manager"),
    }
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
    send("WATCHDOG=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_that_never_reads_does_not_block_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // Far more than any queue holds (net.unix.max_dgram_qlen is 10 by default).
        for i in 0..200 {
            send_to(path.as_os_str(), &format!("STATUS=step {i}"));
        }
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=step 0");
    }

    #[test]
    fn abstract_addresses_are_understood_and_statuses_stay_one_line() {
        let name = format!("cynode-notify-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send_to(
            OsStr::new(&format!("@{name}")),
            &format!("STATUS={}", one_line("a\nb")),
        );
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=a b");
    }
}
