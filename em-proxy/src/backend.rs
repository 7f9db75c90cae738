//! Backends: where a session's bytes go ([`Role::Relay`] servers, whose
//! replies reach the client, and [`Role::Mirror`]s, which get a copy and
//! are never waited for), and the health of each mirror across sessions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use em_core::{Backoff, Endpoint};

/// What a backend is to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Gets the client's bytes; its replies go (through `on_response`) to
    /// the client; when it ends, `on_finish` decides the client's fate.
    Relay,
    /// Gets a copy of the client's bytes while it keeps up; its replies
    /// are read and dropped; it never slows nor ends the client's session.
    Mirror,
}

/// One backend a session asked for.
#[derive(Debug, Clone)]
pub(crate) struct BackendSpec {
    pub(crate) name: Rc<str>,
    pub(crate) endpoint: Endpoint,
    pub(crate) role: Role,
}

/// The mirrors' health, by name, across the sessions of one proxy: a
/// mirror that failed is skipped by new sessions until its back-off delay
/// has passed (then one session tries it again; success resets the delay).
#[derive(Debug)]
pub(crate) struct MirrorHealth {
    initial: Duration,
    max: Duration,
    mirrors: RefCell<HashMap<Rc<str>, Health>>,
}

#[derive(Debug)]
struct Health {
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl MirrorHealth {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        MirrorHealth {
            initial,
            max,
            mirrors: RefCell::new(HashMap::new()),
        }
    }

    /// Whether a new session should connect to mirror `name` now.
    pub(crate) fn should_try(&self, name: &str, now: Instant) -> bool {
        self.mirrors
            .borrow()
            .get(name)
            .and_then(|h| h.retry_at)
            .is_none_or(|at| now >= at)
    }

    /// Mirror `name` connected: the next failure starts from the first
    /// delay again.
    pub(crate) fn succeeded(&self, name: &str) {
        if let Some(h) = self.mirrors.borrow_mut().get_mut(name) {
            h.backoff.reset();
            h.retry_at = None;
        }
    }

    /// Mirror `name` failed: new sessions skip it for the next delay.
    /// Returns the delay.
    pub(crate) fn failed(&self, name: &Rc<str>, now: Instant) -> Duration {
        let mut mirrors = self.mirrors.borrow_mut();
        let h = mirrors.entry(name.clone()).or_insert_with(|| Health {
            backoff: Backoff::new(self.initial, self.max),
            retry_at: None,
        });
        let delay = h.backoff.next_delay();
        h.retry_at = Some(now + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_mirror_is_skipped_until_its_delay_passes_and_success_resets_it() {
        let health = MirrorHealth::new(Duration::from_millis(100), Duration::from_secs(1));
        let name: Rc<str> = "staging".into();
        let t0 = Instant::now();
        assert!(health.should_try("staging", t0));
        assert_eq!(health.failed(&name, t0), Duration::from_millis(100));
        assert!(!health.should_try("staging", t0 + Duration::from_millis(99)));
        assert!(health.should_try("staging", t0 + Duration::from_millis(100)));
        assert_eq!(health.failed(&name, t0), Duration::from_millis(200));
        health.succeeded("staging");
        assert!(health.should_try("staging", t0));
        assert_eq!(health.failed(&name, t0), Duration::from_millis(100));
    }
}
