//! Login rate limiting: a fixed one-minute window per key (client IP, handle). In memory, so each
//! gateway process limits on its own; the limit is a brake on guessing, not an accounting tool.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys, expired windows are swept before inserting.
const SWEEP_AT: usize = 10_000;
/// Hard bound on tracked keys (memory). When it is reached with every window still open, new
/// keys are refused until windows end: failing closed keeps the brake on.
const MAX_KEYS: usize = 50_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    max_keys: usize,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_max_keys(per_minute, MAX_KEYS)
    }

    fn with_max_keys(per_minute: u32, max_keys: usize) -> Self {
        Self {
            per_window: per_minute,
            max_keys,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for every key; if any key has spent its budget, returns the seconds
    /// until that window ends. A refused attempt still counts against the keys already tracked
    /// (hammering does not help) but adds no new key, so refusals cannot grow the map.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut retry_after = None;
        for key in keys {
            if let Some(entry) = windows.get_mut(key) {
                if now.duration_since(entry.0) >= WINDOW {
                    *entry = (now, 0);
                }
                if entry.1 >= self.per_window {
                    let left = WINDOW.saturating_sub(now.duration_since(entry.0)).as_secs() + 1;
                    retry_after = Some(retry_after.map_or(left, |r: u64| r.max(left)));
                }
            }
        }
        let new_keys = keys.iter().filter(|k| !windows.contains_key(*k)).count();
        if retry_after.is_none() && windows.len() + new_keys > self.max_keys {
            tracing::warn!(
                tracked = windows.len(),
                "login rate limiter is full; refusing attempts from new clients and handles"
            );
            retry_after = Some(WINDOW.as_secs());
        }
        for key in keys {
            match windows.get_mut(key) {
                Some(entry) => entry.1 = entry.1.saturating_add(1),
                None if retry_after.is_none() => {
                    windows.insert(key.clone(), (now, 1));
                }
                None => {}
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

    #[test]
    fn refusals_add_no_keys_and_the_map_is_bounded() {
        let limiter = RateLimiter::with_max_keys(1, 4);
        assert!(limiter.check(&["ip:1".into(), "handle:a".into()]).is_ok());
        // The IP is spent: a new handle is refused and not tracked.
        assert!(limiter.check(&["ip:1".into(), "handle:b".into()]).is_err());
        assert_eq!(limiter.windows.lock().unwrap().len(), 2);
        assert!(limiter.check(&["ip:2".into(), "handle:c".into()]).is_ok());
        // Full: new clients are refused, nothing is added.
        assert!(limiter.check(&["ip:3".into(), "handle:d".into()]).is_err());
        assert_eq!(limiter.windows.lock().unwrap().len(), 4);
    }
}
