//! The scripted server: a dialogue written in advance, played against the
//! first client, and checked.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em_core::{RawCodec, Socket, SocketListener};
use futures_util::future;

use super::host::{Host, StopSignal};
use super::script_error::{escape, Expected, Failure, ScriptError, StepInfo};
use crate::testing::TestReactor;

/// How long an `expect_*` step waits for its text by default.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`ScriptedServer::finish`] waits for the script's end by
/// default.
pub const DEFAULT_FINISH_LIMIT: Duration = Duration::from_secs(10);

/// A fake server's script, written step by step and then
/// [`start`](Script::start)ed; made by
/// [`FakeServer::script`](super::FakeServer::script). Built on any thread;
/// the steps run on the fake's reactor thread.
///
/// The script is played against the **first** connection. Connections
/// after it are accepted and closed at once (a clean close, logged at
/// `warn`), so a client that reconnects sees its second connection end
/// rather than hang.
///
/// Steps run in order:
///
/// * [`expect_line`](Script::expect_line) and
///   [`expect_bytes`](Script::expect_bytes) wait (up to the
///   [`step_timeout`](Script::step_timeout), 5 s by default) for the
///   client's text and compare it; any difference, an early end or a
///   silence ends the script with a [`ScriptError`] and closes the
///   connection. Bytes received beyond what a step expects are kept for
///   the next step.
/// * [`send_line`](Script::send_line) and
///   [`send_bytes`](Script::send_bytes) write, and wait until the bytes
///   are handed to the kernel.
/// * [`wait`](Script::wait) pauses.
/// * [`stall`](Script::stall), [`reset`](Script::reset) and
///   [`close`](Script::close) end the script: no step may follow them
///   ([`start`](Script::start) panics if one does). A script that ends
///   without one of them closes the connection cleanly, as `close` does.
///
/// Bytes the client sends after the last `expect_*` step are not checked.
#[derive(Clone)]
pub struct Script {
    steps: Vec<Step>,
    step_timeout: Duration,
}

#[derive(Clone)]
enum Step {
    ExpectLine(Vec<u8>),
    ExpectBytes(Vec<u8>),
    Send(Bytes, bool),
    Wait(Duration),
    Stall,
    Reset,
    Close,
}

impl Step {
    fn ends_script(&self) -> bool {
        matches!(self, Step::Stall | Step::Reset | Step::Close)
    }
}

impl fmt::Display for Step {
    /// The step as written in the script.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ExpectLine(line) => write!(f, "expect_line(\"{}\")", escape(line)),
            Step::ExpectBytes(bytes) => write!(f, "expect_bytes(b\"{}\")", escape(bytes)),
            Step::Send(bytes, true) => {
                let line = &bytes[..bytes.len() - 2];
                write!(f, "send_line(\"{}\")", escape(line))
            }
            Step::Send(bytes, false) => write!(f, "send_bytes(b\"{}\")", escape(bytes)),
            Step::Wait(d) => write!(f, "wait({d:?})"),
            Step::Stall => f.write_str("stall()"),
            Step::Reset => f.write_str("reset()"),
            Step::Close => f.write_str("close()"),
        }
    }
}

impl Script {
    pub(super) fn new() -> Script {
        Script {
            steps: Vec::new(),
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    /// Expects the line `line` from the client, ended by `\n` or `\r\n`
    /// (either is accepted; `line` itself has no line end).
    pub fn expect_line(mut self, line: impl AsRef<str>) -> Script {
        self.steps
            .push(Step::ExpectLine(line.as_ref().as_bytes().to_vec()));
        self
    }

    /// Expects exactly these bytes from the client, however they are split
    /// across reads.
    pub fn expect_bytes(mut self, bytes: impl AsRef<[u8]>) -> Script {
        self.steps.push(Step::ExpectBytes(bytes.as_ref().to_vec()));
        self
    }

    /// Sends `line` followed by `\r\n` (the line end of SMTP, HTTP and most
    /// line protocols; for another, use [`send_bytes`](Script::send_bytes)).
    pub fn send_line(mut self, line: impl AsRef<str>) -> Script {
        let mut bytes = BytesMut::from(line.as_ref());
        bytes.extend_from_slice(b"\r\n");
        self.steps.push(Step::Send(bytes.freeze(), true));
        self
    }

    /// Sends exactly these bytes.
    pub fn send_bytes(mut self, bytes: impl Into<Bytes>) -> Script {
        self.steps.push(Step::Send(bytes.into(), false));
        self
    }

    /// Pauses for `duration` (on the fake's reactor clock) before the next
    /// step.
    pub fn wait(mut self, duration: Duration) -> Script {
        self.steps.push(Step::Wait(duration));
        self
    }

    /// Stops responding: the connection stays open, but nothing more is
    /// read from it or sent on it until the server is dropped. Ends the
    /// script ([`finish`](ScriptedServer::finish) returns `Ok` once the
    /// stall has begun).
    pub fn stall(mut self) -> Script {
        self.steps.push(Step::Stall);
        self
    }

    /// Resets the connection: a close with a zero linger, so that the
    /// client gets a TCP RST and its next read or write fails with
    /// `ConnectionReset` (bytes it had not yet read may be lost). Ends the
    /// script.
    pub fn reset(mut self) -> Script {
        self.steps.push(Step::Reset);
        self
    }

    /// Closes the connection cleanly, after what was sent has been
    /// written: the client reads the end of the stream. Ends the script.
    pub fn close(mut self) -> Script {
        self.steps.push(Step::Close);
        self
    }

    /// How long each `expect_*` step waits for its text before the script
    /// fails with a timeout (default [`DEFAULT_STEP_TIMEOUT`], 5 s).
    pub fn step_timeout(mut self, limit: Duration) -> Script {
        self.step_timeout = limit;
        self
    }

    /// Starts the server on a reactor of its own, listening on 127.0.0.1
    /// (port 0), and returns once it listens. Test thread. Panics if a step
    /// follows `stall`, `reset` or `close`, or if the server cannot listen.
    pub fn start(self) -> ScriptedServer {
        self.start_with(None)
    }

    /// [`start`](Script::start) on `reactor`, the test's own; dropping the
    /// server stops its listener and its connection, and leaves the
    /// reactor running. On a [`paused`](TestReactor::paused) reactor,
    /// `wait` and the step timeout follow its clock: they pass only as the
    /// test [`advance`](TestReactor::advance)s it.
    pub fn start_on(self, reactor: &TestReactor) -> ScriptedServer {
        self.start_with(Some(reactor))
    }

    fn start_with(self, reactor: Option<&TestReactor>) -> ScriptedServer {
        if let Some(end) = self.steps.iter().position(Step::ends_script) {
            assert!(
                end + 1 == self.steps.len(),
                "fake server script: step {} ({}) follows {}, which ends the script",
                end + 2,
                self.steps[end + 1],
                self.steps[end],
            );
        }
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        let (host, addr) = Host::launch("FakeServer::script", reactor, move |signal| {
            let listener = SocketListener::bind("127.0.0.1:0", || RawCodec)?;
            let addr = listener
                .local_addr()
                .inet()
                .expect("a TCP listener has an inet address");
            em_core::spawn(serve(listener, self, p, signal))?;
            Ok(addr)
        });
        tracing::debug!(%addr, "fake server (script) listening");
        ScriptedServer {
            host,
            addr,
            progress,
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field(
                "steps",
                &self.steps.iter().map(Step::to_string).collect::<Vec<_>>(),
            )
            .field("step_timeout", &self.step_timeout)
            .finish()
    }
}

/// A running scripted server; made by [`Script::start`]. Its methods run
/// on the test's thread. Dropping it stops the server.
pub struct ScriptedServer {
    host: Host,
    addr: SocketAddr,
    progress: Arc<Progress>,
}

impl ScriptedServer {
    /// The address the server listens on. Any thread.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits up to [`DEFAULT_FINISH_LIMIT`] (10 s) for the script to end:
    /// see [`finish_within`](ScriptedServer::finish_within).
    pub fn finish(&self) -> Result<(), ScriptError> {
        self.finish_within(DEFAULT_FINISH_LIMIT)
    }

    /// Waits up to `limit` for the script to end, and says how: `Ok` when
    /// every step ran (a `stall` counts as run once it has begun), or the
    /// [`ScriptError`] of the step that failed, also when no client
    /// connected or the script was still running at `limit`. Test thread;
    /// it blocks. May be called again: it returns the same outcome.
    pub fn finish_within(&self, limit: Duration) -> Result<(), ScriptError> {
        let deadline = std::time::Instant::now() + limit;
        let mut state = self.progress.state.lock().unwrap();
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome.clone();
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(match &state.step {
                    None => ScriptError::new(None, Failure::NoClient { waited: limit }),
                    Some(step) => ScriptError::new(
                        Some(step.clone()),
                        Failure::Unfinished {
                            waited: limit,
                            received: state.pending.clone(),
                        },
                    ),
                });
            }
            state = self
                .progress
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }
}

impl fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.progress.state.lock().unwrap();
        f.debug_struct("ScriptedServer")
            .field("local_addr", &self.addr)
            .field("step", &state.step.as_ref().map(|s| s.number))
            .field("outcome", &state.outcome)
            .field("host", &self.host)
            .finish()
    }
}

/// How far the script got, shared between the reactor thread (which
/// writes it) and the test's thread (which waits on it).
#[derive(Default)]
struct Progress {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The step running, once a client connected.
    step: Option<StepInfo>,
    /// Bytes received and not yet matched by a step.
    pending: Vec<u8>,
    outcome: Option<Result<(), ScriptError>>,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }
}

/// The reactor side: accepts the first connection, plays the script on it
/// and closes later ones, until the stop signal.
async fn serve(
    listener: SocketListener<RawCodec>,
    script: Script,
    progress: Arc<Progress>,
    mut signal: StopSignal,
) {
    let listener = Rc::new(listener);
    let work = async {
        let Some(socket) = listener.accept().await else {
            return;
        };
        tracing::debug!(conn = %socket.conn().id(), "fake server (script): client connected");
        let later = async {
            while let Some(extra) = listener.accept().await {
                tracing::warn!(
                    conn = %extra.conn().id(),
                    "fake server (script): closing a connection after the first; the script plays only once"
                );
                extra.conn().close_connection();
            }
        };
        future::join(play(socket, &script, &progress), later).await;
    };
    // The work stops at the signal; dropping the socket and the listener
    // stops the server, and dropping the signal then tells the host.
    let _ = future::select(Box::pin(signal.wait()), Box::pin(work)).await;
    listener.stop();
    drop(listener);
    drop(signal);
}

/// Plays the steps on `socket`, reporting each to `progress`.
async fn play(mut socket: Socket<RawCodec>, script: &Script, progress: &Progress) {
    let total = script.steps.len();
    let mut buf = BytesMut::new();
    for (i, step) in script.steps.iter().enumerate() {
        let info = StepInfo {
            number: i + 1,
            total,
            what: step.to_string(),
        };
        progress.update(|s| s.step = Some(info.clone()));
        tracing::trace!(step = %info.what, "fake server (script): step");
        let failure = match step {
            Step::ExpectLine(line) => {
                let expected = Expected::Line(line.clone());
                expect(
                    &mut socket,
                    &mut buf,
                    expected,
                    script.step_timeout,
                    progress,
                )
                .await
                .err()
            }
            Step::ExpectBytes(bytes) => {
                let expected = Expected::Bytes(bytes.clone());
                expect(
                    &mut socket,
                    &mut buf,
                    expected,
                    script.step_timeout,
                    progress,
                )
                .await
                .err()
            }
            Step::Send(bytes, _) => {
                socket
                    .write(bytes.clone())
                    .await
                    .err()
                    .map(|e| Failure::Send {
                        error: e.to_string(),
                    })
            }
            Step::Wait(d) => {
                em_timers::sleep(*d).await;
                None
            }
            Step::Stall => {
                // Read nothing more: the kernel's buffers fill and the
                // client's writes eventually block, as with a hung peer.
                socket.conn().pause();
                progress.update(|s| s.outcome = Some(Ok(())));
                future::pending::<()>().await;
                return;
            }
            Step::Reset => {
                reset(&socket);
                progress.update(|s| s.outcome = Some(Ok(())));
                return;
            }
            Step::Close => None,
        };
        if let Some(failure) = failure {
            tracing::debug!(step = %info.what, "fake server (script): step failed");
            progress.update(|s| s.outcome = Some(Err(ScriptError::new(Some(info), failure))));
            // Closing (after writing) lets a client waiting for a reply
            // see the end instead of hanging.
            let _ = socket.close().await;
            return;
        }
    }
    // The end of the script, `close()` or not.
    let _ = socket.close().await;
    progress.update(|s| s.outcome = Some(Ok(())));
}

/// Closes `socket` with a TCP RST: a zero linger, then a close.
fn reset(socket: &Socket<RawCodec>) {
    if let Err(e) = socket
        .conn()
        .with_socket(|sock| sock.set_linger(Some(Duration::ZERO)))
    {
        tracing::warn!(error = %e, "fake server (script): cannot set a zero linger for reset()");
    }
    socket.conn().close_connection();
}

/// What an `expect_*` step decides about the bytes received so far.
enum Verdict {
    /// Matched: consume this many bytes.
    Matched(usize),
    /// Cannot be this step's text: these bytes are what was received.
    Differs(usize),
    /// Could still match: read more.
    NeedMore,
}

fn judge(expected: &Expected, buf: &[u8]) -> Verdict {
    match expected {
        Expected::Bytes(want) => {
            let n = want.len().min(buf.len());
            if buf[..n] != want[..n] {
                Verdict::Differs(n)
            } else if n == want.len() {
                Verdict::Matched(n)
            } else {
                Verdict::NeedMore
            }
        }
        Expected::Line(want) => match buf.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let line = &buf[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line == want.as_slice() {
                    Verdict::Matched(nl + 1)
                } else {
                    Verdict::Differs(nl + 1)
                }
            }
            // Longer than the line and a `\r`, with no `\n`: it cannot
            // be the line.
            None if buf.len() > want.len() + 1 => Verdict::Differs(buf.len()),
            None => Verdict::NeedMore,
        },
    }
}

/// Reads into `buf` until it holds `expected` (consumed), shows it cannot,
/// the connection ends, or `limit` passes.
async fn expect(
    socket: &mut Socket<RawCodec>,
    buf: &mut BytesMut,
    expected: Expected,
    limit: Duration,
    progress: &Progress,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match judge(&expected, buf) {
            Verdict::Matched(n) => {
                let _ = buf.split_to(n);
                progress.update(|s| s.pending = buf.to_vec());
                return Ok(());
            }
            Verdict::Differs(n) => {
                return Err(Failure::Mismatch {
                    expected,
                    received: buf[..n].to_vec(),
                })
            }
            Verdict::NeedMore => {}
        }
        let read = tokio::time::timeout_at(deadline, socket.read()).await;
        match read {
            Ok(Ok(Some(data))) => {
                buf.extend_from_slice(&data);
                progress.update(|s| s.pending = buf.to_vec());
            }
            Ok(Ok(None)) => {
                return Err(Failure::ClosedEarly {
                    expected,
                    received: buf.to_vec(),
                    how: "closed by the peer".into(),
                })
            }
            Ok(Err(reason)) => {
                return Err(Failure::ClosedEarly {
                    expected,
                    received: buf.to_vec(),
                    how: reason.to_string(),
                })
            }
            Err(_elapsed) => {
                return Err(Failure::Silent {
                    expected,
                    received: buf.to_vec(),
                    waited: limit,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Expected {
        Expected::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn a_line_matches_with_either_line_end() {
        assert!(matches!(
            judge(&line("HELO x"), b"HELO x\n"),
            Verdict::Matched(7)
        ));
        assert!(matches!(
            judge(&line("HELO x"), b"HELO x\r\nQUIT"),
            Verdict::Matched(8)
        ));
        assert!(matches!(
            judge(&line("HELO x"), b"HELO x\r"),
            Verdict::NeedMore
        ));
        assert!(matches!(judge(&line("HELO x"), b"HELO"), Verdict::NeedMore));
    }

    #[test]
    fn a_different_line_is_judged_once_complete_or_too_long() {
        assert!(matches!(
            judge(&line("HELO x"), b"HELO y\r\n"),
            Verdict::Differs(8)
        ));
        assert!(matches!(
            judge(&line("HELO x"), b"HELO x \n"),
            Verdict::Differs(8)
        ));
        assert!(matches!(
            judge(&line("HELO x"), b"HELO xyz"),
            Verdict::Differs(8)
        ));
        assert!(matches!(
            judge(&line("HELO x"), b"HELO y"),
            Verdict::NeedMore
        ));
    }

    #[test]
    fn bytes_differ_as_soon_as_one_differs() {
        let want = Expected::Bytes(b"abcd".to_vec());
        assert!(matches!(judge(&want, b"ab"), Verdict::NeedMore));
        assert!(matches!(judge(&want, b"aX"), Verdict::Differs(2)));
        assert!(matches!(judge(&want, b"abcdef"), Verdict::Matched(4)));
    }

    #[test]
    #[should_panic(expected = "follows close()")]
    fn no_step_may_follow_the_end() {
        let _ = Script::new().close().send_line("late").start();
    }
}
