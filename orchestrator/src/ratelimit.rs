//! Login rate limiting: a fixed one-minute window per key (client IP, handle). In memory, so each
//! gateway process limits on its own; the limit is a brake on guessing, not an accounting tool.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys, expired windows are swept before inserting.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_window: per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for every key; if any key is over its limit, returns the seconds until
    /// that window ends. Attempts are counted even when refused, so hammering does not help.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut retry_after = None;
        for key in keys {
            let entry = windows.entry(key.clone()).or_insert((now, 0));
            if now.duration_since(entry.0) >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
            if entry.1 > self.per_window {
                let left = WINDOW.saturating_sub(now.duration_since(entry.0)).as_secs() + 1;
                retry_after = Some(retry_after.map_or(left, |r: u64| r.max(left)));
            }
        }
        retry_after.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = RateLimiter::new(2);
        let a = vec!["ip:1".to_owned(), "handle:x".to_owned()];
        assert!(limiter.check(&a).is_ok());
        assert!(limiter.check(&a).is_ok());
        let retry = limiter.check(&a).unwrap_err();
        assert!((1..=61).contains(&retry));
        // Same IP, other handle: the IP budget is spent.
        assert!(limiter.check(&["ip:1".into(), "handle:y".into()]).is_err());
        // Other IP, same handle: the handle budget is spent.
        assert!(limiter.check(&["ip:2".into(), "handle:x".into()]).is_err());
        assert!(limiter.check(&["ip:3".into(), "handle:z".into()]).is_ok());
    }
}
