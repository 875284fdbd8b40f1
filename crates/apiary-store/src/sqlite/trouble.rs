//! A background task that fails over and over (a full disk fails every checkpoint, every
//! second): logged when it starts, at most once a minute while it lasts, and when it ends,
//! instead of a warning per attempt.

use std::time::{Duration, Instant};

/// Least time between two warnings about the same trouble.
const REMIND_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Trouble {
    what: &'static str,
    /// When it began, the failures since, and when it was last logged.
    current: Option<(Instant, u64, Instant)>,
}

impl Trouble {
    pub(super) const fn new(what: &'static str) -> Self {
        Self {
            what,
            current: None,
        }
    }

    /// Records the outcome of one attempt.
    pub(super) fn record<T, E: std::fmt::Display>(&mut self, outcome: &Result<T, E>) {
        let now = Instant::now();
        match (outcome, &mut self.current) {
            (Ok(_), None) => {}
            (Ok(_), Some((since, failures, _))) => {
                tracing::info!(
                    what = self.what,
                    failures = *failures,
                    seconds = since.elapsed().as_secs(),
                    "background task works again"
                );
                self.current = None;
            }
            (Err(e), None) => {
                tracing::warn!(what = self.what, error = %e, "background task failed; retrying (repeats are logged once a minute)");
                self.current = Some((now, 1, now));
            }
            (Err(e), Some((since, failures, logged))) => {
                *failures += 1;
                if now.duration_since(*logged) >= REMIND_EVERY {
                    tracing::warn!(
                        what = self.what,
                        error = %e,
                        failures = *failures,
                        seconds = since.elapsed().as_secs(),
                        "background task still failing"
                    );
                    *logged = now;
                }
            }
        }
    }

    /// Whether the last attempt failed.
    pub(super) fn failing(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_until_a_success() {
        let mut t = Trouble::new("test");
        t.record::<(), _>(&Err("disk full"));
        t.record::<(), _>(&Err("disk full"));
        assert!(t.failing());
        assert_eq!(t.current.map(|c| c.1), Some(2));
        t.record::<(), &str>(&Ok(()));
        assert!(!t.failing());
    }
}
