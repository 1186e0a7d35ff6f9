//! SIGHUP: node.yaml read again, what of it applies while the node runs and what waits for a
//! restart.

use super::settings::Config;

/// What reading node.yaml again changed ([`Config::reload_from`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys that changed and now apply: `node.labels`, `sandbox.max_concurrency`.
    pub applied: Vec<&'static str>,
    /// Sections that changed but take effect only at the next start.
    pub need_restart: Vec<&'static str>,
}

impl Config {
    /// Takes from `new` (node.yaml read again) what can change while the node runs, the labels
    /// and `sandbox.max_concurrency`, both only reported to the orchestrator, and names every
    /// other section in which `new` differs: those keep their running values until a restart.
    pub fn reload_from(&mut self, new: &Config) -> Reloaded {
        let mut reloaded = Reloaded::default();
        if self.labels != new.labels {
            self.labels.clone_from(&new.labels);
            reloaded.applied.push("node.labels");
        }
        if self.sandbox.max_concurrency != new.sandbox.max_concurrency {
            self.sandbox.max_concurrency = new.sandbox.max_concurrency;
            reloaded.applied.push("sandbox.max_concurrency");
        }
        // Debug renders every value (the PSK redacted, so it is compared by content).
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let checks: [(&'static str, bool); 9] = [
            (
                "orchestrator",
                differs(
                    &(
                        &self.orchestrator_url,
                        self.connect_timeout,
                        self.request_timeout,
                        self.capability_report_interval,
                        self.config_poll_interval,
                    ),
                    &(
                        &new.orchestrator_url,
                        new.connect_timeout,
                        new.request_timeout,
                        new.capability_report_interval,
                        new.config_poll_interval,
                    ),
                ) || self.psk.expose() != new.psk.expose(),
            ),
            ("node.id", self.node_slug != new.node_slug),
            ("node.name", self.node_name != new.node_name),
            ("worker_api", differs(&self.worker, &new.worker)),
            (
                "sandbox",
                // max_concurrency is equal by now.
                differs(&self.sandbox, &new.sandbox),
            ),
            ("inference", differs(&self.inference, &new.inference)),
            ("storage.state_dir", self.state_dir != new.state_dir),
            (
                "shutdown.grace_seconds",
                self.shutdown_grace != new.shutdown_grace,
            ),
            (
                "orchestrator.registration_psk_env",
                self.secret_env != new.secret_env,
            ),
        ];
        reloaded.need_restart = checks
            .into_iter()
            .filter_map(|(key, changed)| changed.then_some(key))
            .collect();
        reloaded
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{FULL, env, load};
    use super::*;

    #[test]
    fn reload_takes_labels_and_max_concurrency_and_names_the_rest() {
        let mut running = load(FULL, &env(&[])).unwrap();
        assert_eq!(
            running.config_poll_interval,
            running.capability_report_interval
        );
        let same = load(FULL, &env(&[])).unwrap();
        assert_eq!(running.reload_from(&same), Reloaded::default());

        let edited = FULL.replace("labels: [gpu]", "labels: [gpu, fast]")
            + "sandbox:\n  max_concurrency: 3\n  limits: {memory_mib: 64}\n\
               orchestrator_extra: x\n";
        // An unknown key is an error, and a failed reload changes nothing.
        assert!(load(&edited, &env(&[])).is_err());
        let edited = edited.replace("orchestrator_extra: x\n", "");
        let new = load(
            &edited,
            &env(&[("HTTP_TIMEOUT", "20"), ("CONFIG_POLL_INTERVAL", "5s")]),
        )
        .unwrap();
        assert_eq!(new.config_poll_interval, Duration::from_secs(5));
        let reloaded = running.reload_from(&new);
        assert_eq!(reloaded.applied, ["node.labels", "sandbox.max_concurrency"]);
        assert_eq!(reloaded.need_restart, ["orchestrator", "sandbox"]);
        assert_eq!(running.labels, ["gpu", "fast"]);
        assert_eq!(running.sandbox.max_concurrency, Some(3));
        // Everything else keeps its running value.
        assert_eq!(running.sandbox.limits.memory_mib, None);
        assert_eq!(running.request_timeout, Duration::from_secs(10));
        assert!(
            load(FULL, &env(&[("CONFIG_POLL_INTERVAL", "0")]))
                .unwrap_err()
                .to_string()
                .contains("orchestrator.poll_interval_seconds")
        );
    }
}
