//! The timers' reactor option, `max_timers`, as an extension trait on
//! `em::Builder`.

use em_core::extension::{self, ReactorOption};
use em_core::Builder;

/// EventMachine's default cap on pending timers.
const DEFAULT_MAX_TIMERS: usize = 100_000;

/// The timers' options of one reactor.
#[derive(Debug, Clone)]
pub(crate) struct TimerConfig {
    pub(crate) max_timers: Option<usize>,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            max_timers: Some(DEFAULT_MAX_TIMERS),
        }
    }
}

impl ReactorOption for TimerConfig {}

/// The timers' options on `em::Builder` (in the `em` facade's
/// prelude): `Reactor::builder().max_timers(Some(n))`.
pub trait TimerOptions {
    /// The most timers (one-shot and periodic) that may be pending at once
    /// (EventMachine's `set_max_timers`; default 100,000, `None` lifts the
    /// cap). Adding one more is an error that `is_too_many_timers()`.
    ///
    /// ```
    /// # mod em { pub use em_core::*; pub use em_timers::*; }
    /// use em::TimerOptions;
    /// use std::time::Duration;
    ///
    /// em::Reactor::builder().max_timers(Some(1)).run(|| -> em::Result<()> {
    ///     em::add_timer(Duration::from_secs(1), || {})?;
    ///     let second = em::add_timer(Duration::from_secs(1), || {});
    ///     assert!(second.unwrap_err().is_too_many_timers());
    ///     em::stop();
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    fn max_timers(self, max: Option<usize>) -> Self;
}

impl TimerOptions for Builder {
    fn max_timers(self, max: Option<usize>) -> Self {
        extension::configure(self, |c: &mut TimerConfig| c.max_timers = max)
    }
}
