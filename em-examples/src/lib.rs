//! What the example programs share: logging to stderr, printing to a
//! stdout that may be closed ([`out!`]),
//! stopping gracefully on SIGINT or SIGTERM, printing the reactor's stats
//! on SIGUSR1 or every few seconds, in [`tls`], the TLS set-up
//! (certificates, keys, server configuration), and in [`summary`], the
//! figures the HTTP client programs print at the end of a run.

#![deny(missing_docs)]

pub mod summary;
pub mod tls;

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use em::Signal;

/// Sends `tracing` output to stderr (stdout is the program's own output,
/// such as its `listening on ADDR` line), filtered by `RUST_LOG`. Call it
/// first in `main`. Colours only when stderr is a terminal, so that a
/// log captured to a file or a pipe holds no escape sequences.
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Parses a command line's number of seconds, such as `10` or `0.5`, more
/// than 0 (a timeout of 0 is refused, not taken to mean none). For clap's
/// `value_parser`; the error is clap's message.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{text} is not more than 0 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text} seconds: {e}"))
}

/// Prints a line to stdout, as `println!` does, through [`write_stdout`]:
/// when stdout is closed (`demo | head -3`) the program exits quietly with
/// status 0 instead of panicking. Every example prints through it.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(::std::format_args!($($arg)*))
    };
}

/// Writes `args` and a newline to stdout and flushes. When stdout is
/// closed (a broken pipe, such as `| head`) the process exits with
/// status 0, as `head`'s writer does in a shell; on any other write error
/// it says so on stderr and exits with status 1. Never panics, so that no
/// print can leave a reactor waiting on a callback that panicked. Any
/// thread; use it through [`out!`].
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    exit_unless_written(written);
}

/// Exits the process if `written` (a write to stdout) failed: with status
/// 0 when stdout was closed by its reader, with status 1 (after a message
/// on stderr) on any other error. For programs that write to stdout
/// themselves (bytes, or a buffered block) rather than through [`out!`].
#[allow(clippy::print_stderr)] // The example's own message, on stderr.
pub fn exit_unless_written(written: io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// Stops the reactor on this thread on SIGINT or SIGTERM, with
/// [`em::trap`]. Call it from the run block **before** announcing
/// readiness: the signal handlers are installed before it returns, so a
/// supervisor that sends SIGTERM the moment it reads `listening on` always
/// reaches them (the default action, killing the process, never applies).
/// Reactor thread.
///
/// Errors (an `em::Error`) where no reactor runs, or if a handler cannot
/// be installed.
pub fn stop_on_signal() -> em::Result<()> {
    for signal in [Signal::INT, Signal::TERM] {
        em::trap(signal, move || {
            tracing::info!(%signal, "signal received; stopping");
            em::stop();
        })?;
    }
    Ok(())
}

/// Prints the reactor's [`em::stats`] to stderr, as one `STATS key=value …`
/// line, on every SIGUSR1 (trapped with [`em::trap`]), and every `every` if
/// given (the programs' `--stats-every SECS` flag). Call it from the run
/// block; the SIGUSR1 handler is installed before it returns. Reactor
/// thread.
///
/// Errors where no reactor runs, or if the handler cannot be installed.
pub fn report_stats(every: Option<Duration>) -> em::Result<()> {
    em::trap(Signal::USR1, print_stats)?;
    if let Some(every) = every.filter(|d| !d.is_zero()) {
        em::add_periodic_timer(every, |_| print_stats())?;
    }
    Ok(())
}

#[allow(clippy::print_stderr)] // The example's own output, on stderr.
fn print_stats() {
    match em::stats() {
        Ok(stats) => eprintln!("STATS {stats}"),
        Err(e) => tracing::warn!(error = %e, "cannot read the reactor's stats"),
    }
}
