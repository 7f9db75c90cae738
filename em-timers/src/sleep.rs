//! `sleep` and `timeout` for procedural code under `em::spawn`: tokio's,
//! on the reactor's clock.

use std::future::IntoFuture;
use std::time::Duration;

/// A future that completes `duration` from now, for code running under
/// `em::spawn` (em-synchrony's `EM::Synchrony.sleep`): the task waits, the
/// reactor thread does not.
///
/// This is tokio's [`sleep`](tokio::time::sleep), on the same clock as em's
/// timers (so `start_paused` applies): it waits at least `duration`, with
/// millisecond granularity. It must be polled on a tokio runtime with time
/// enabled, such as the reactor's; elsewhere it panics, as tokio's does.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     em::spawn(async {
///         em::sleep(Duration::from_millis(10)).await;
///         em::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn sleep(duration: Duration) -> tokio::time::Sleep {
    tokio::time::sleep(duration)
}

/// Runs `future` for at most `duration`: `Ok` with its output if it finishes
/// in time, `Err(Elapsed)` (and the future dropped) if not. For code under
/// `em::spawn`; this is tokio's [`timeout`](tokio::time::timeout), on the
/// same clock as em's timers, with the same runtime requirement as
/// [`sleep`].
///
/// ```
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     em::spawn(async {
///         let slow = em::sleep(Duration::from_secs(3600));
///         let result = em::timeout(Duration::from_millis(10), slow).await;
///         assert!(result.is_err());
///         em::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn timeout<F: IntoFuture>(
    duration: Duration,
    future: F,
) -> tokio::time::Timeout<F::IntoFuture> {
    tokio::time::timeout(duration, future)
}
