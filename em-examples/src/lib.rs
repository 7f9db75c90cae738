//! What the long-running example programs share: logging to stderr, and
//! stopping gracefully on SIGINT or SIGTERM.

#![deny(missing_docs)]

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Sends `tracing` output to stderr (stdout is the program's own output,
/// such as its `listening on ADDR` line), filtered by `RUST_LOG`. Call it
/// first in `main`.
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// Stops the reactor on this thread on SIGINT or SIGTERM. Call it from the
/// run block **before** announcing readiness: the signal handlers are
/// installed before it returns, so a supervisor that sends SIGTERM the
/// moment it reads `listening on` always reaches them (the default action,
/// killing the process, never applies). Reactor thread.
///
/// Errors if the handlers cannot be installed (an `io::Error`), or with
/// an `em::Error` where no reactor runs.
pub fn stop_on_signal() -> Result<(), em::BoxError> {
    let int = signal(SignalKind::interrupt())?;
    let term = signal(SignalKind::terminate())?;
    em::spawn(wait_then_stop(int, term))?;
    Ok(())
}

async fn wait_then_stop(mut int: Signal, mut term: Signal) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received; stopping");
    em::stop();
}
