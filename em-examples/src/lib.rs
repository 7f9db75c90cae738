//! What the long-running example programs share: stopping gracefully on
//! SIGINT or SIGTERM.

#![deny(missing_docs)]

/// Stops the reactor on this thread on SIGINT or SIGTERM; spawn it with
/// `em::spawn(em_examples::stop_on_signal())` from the run block. Runs on
/// the reactor thread.
pub async fn stop_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received; stopping");
    em::stop();
}
