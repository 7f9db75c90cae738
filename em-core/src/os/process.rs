//! Child processes as connections (EventMachine's `EM.popen` and
//! `EM.system`, em-synchrony's `system`): [`Popen`] and its shorthands
//! [`popen`], [`popen_shell`], [`system`] and [`system_async`], and the
//! [`Conn`] methods that only a child's connection has: `pid`, `kill` and
//! `exit_status`.
//!
//! The child's stdin and stdout are pipes of em's own, read and written by
//! the stream pump like any other byte stream (the transport is in
//! `net/transport/child.rs`); its exit is waited for by the lifecycle,
//! without blocking the reactor, before `unbind`.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::BytesCodec;

use crate::error::{Error, Result};
use crate::net::address::Addr;
use crate::net::conn::Conn;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::{kill, ChildPipes, PipeReader};
use crate::os::signal::Signal;
use crate::reactor::core::Core;
use crate::reactor::panic;

/// Where a child's stderr goes ([`Popen::stderr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stderr {
    /// To this process's stderr (the default, as in EventMachine, which
    /// does not capture it).
    #[default]
    Inherit,
    /// Discarded (`/dev/null`).
    Null,
    /// Into the same pipe as stdout (`2>&1`): the handler's codec sees
    /// both, in the order the child wrote them.
    Merge,
}

/// Starts a stderr connection on the read end of the child's stderr pipe.
type StderrStart = Box<dyn FnOnce(OwnedFd, u32, &std::rc::Rc<Core>) -> Result<()>>;

/// A child process to start as a connection (EventMachine's `EM.popen`):
/// the program and its arguments (never a shell, unless made with
/// [`Popen::shell`]), its environment and directory, and where its stderr
/// goes. Build it on any thread; [`start`](Popen::start), [`system`](Popen::system)
/// and [`output`](Popen::output) run on the reactor thread.
///
/// The child's stdout arrives through the handler's codec as
/// `receive_data`; `send_data` writes to its stdin;
/// `close_connection_after_writing` closes its stdin once the queued
/// bytes are written and goes on reading its output (so `sort`, `wc` and
/// friends finish); `unbind` runs once its stdout is closed and it has
/// exited, with [`UnbindReason::Exited`] and its status when it ended on
/// its own. See [`popen`] for the whole contract.
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection, Popen, UnbindReason};
/// use tokio_util::codec::LinesCodec;
///
/// /// Feeds `sort` three lines and checks what comes back.
/// struct Sorted(Vec<String>);
///
/// impl Connection for Sorted {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new()
///     }
///     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
///         for word in ["pear", "apple", "fig"] {
///             conn.send_data(word);
///         }
///         conn.close_connection_after_writing(); // sort reads end of input
///     }
///     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
///         self.0.push(line);
///     }
///     fn unbind(&mut self, _: &Conn<LinesCodec>, reason: UnbindReason) {
///         assert!(matches!(reason, UnbindReason::Exited(s) if s.success()));
///         assert_eq!(self.0, ["apple", "fig", "pear"]);
///         em::stop();
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     let conn = Popen::new("sort").env("LC_ALL", "C").start(Sorted(Vec::new()))?;
///     assert!(conn.pid().is_some());
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Popen {
    command: tokio::process::Command,
    /// The command as it was given, for messages.
    shown: String,
    stderr: Stderr,
    stderr_to: Option<StderrStart>,
}

impl fmt::Debug for Popen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Popen")
            .field("command", &self.shown)
            .field("stderr", &self.stderr)
            .field("stderr_to", &self.stderr_to.is_some())
            .finish()
    }
}

impl Popen {
    /// Runs `program` (found on `PATH` unless it has a `/`), with no
    /// arguments yet.
    pub fn new(program: impl AsRef<OsStr>) -> Popen {
        let program = program.as_ref();
        Popen {
            command: tokio::process::Command::new(program),
            shown: program.to_string_lossy().into_owned(),
            stderr: Stderr::Inherit,
            stderr_to: None,
        }
    }

    /// Runs `command` through `/bin/sh -c`: pipelines, redirections and
    /// globs work, and so does every quoting mistake. Use it only for a
    /// command you wrote, never for one built from input.
    pub fn shell(command: impl AsRef<OsStr>) -> Popen {
        let command = command.as_ref();
        let mut popen = Popen::new("/bin/sh");
        popen.command.arg("-c").arg(command);
        popen.shown = format!("sh -c {:?}", command.to_string_lossy());
        popen
    }

    /// The program and its arguments, the program first; errors with
    /// `is_invalid_argument()` when `argv` is empty.
    pub fn from_argv<I, S>(argv: I) -> Result<Popen>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv = argv.into_iter();
        let program = argv
            .next()
            .ok_or_else(|| Error::invalid_argument("popen", "the command is empty"))?;
        Ok(Popen::new(program).args(argv))
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Popen {
        let arg = arg.as_ref();
        self.shown.push(' ');
        self.shown.push_str(&arg.to_string_lossy());
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(self, args: I) -> Popen
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, |popen, arg| popen.arg(arg))
    }

    /// Sets an environment variable for the child (it inherits the rest).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Popen {
        self.command.env(key, value);
        self
    }

    /// Removes an environment variable from the child's.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Popen {
        self.command.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (then [`env`](Popen::env)).
    pub fn env_clear(mut self) -> Popen {
        self.command.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Popen {
        self.command.current_dir(dir);
        self
    }

    /// Where the child's stderr goes (default [`Stderr::Inherit`]).
    /// Replaces an earlier [`stderr_to`](Popen::stderr_to).
    pub fn stderr(mut self, stderr: Stderr) -> Popen {
        self.stderr = stderr;
        self.stderr_to = None;
        self
    }

    /// Delivers the child's stderr separately, to a connection of its own
    /// with `handler` (its codec, its `receive_data`, its `unbind` at the
    /// end of stderr with [`UnbindReason::PeerClosed`]). That connection is
    /// read-only, its peer address the child's
    /// ([`Addr::Process`]), and it starts right after the child's.
    pub fn stderr_to<H: Connection>(mut self, handler: H) -> Popen {
        self.stderr_to = Some(Box::new(move |fd, pid, core| {
            let codec = panic::catch("codec", None, || handler.codec())
                .map_err(|m| Error::panicked("codec", m))?;
            let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                .map_err(|e| Error::io("popen", e))?;
            let conn = Conn::new(core, codec);
            *conn.state().peer.borrow_mut() = Some(Addr::Process(pid));
            Driver::<H, StreamPump>::start(
                handler,
                conn,
                core.clone(),
                Start::Open(Box::new(PipeReader(reader))),
            );
            Ok(())
        }));
        self
    }

    /// Starts the child with `handler` as its connection and returns the
    /// connection's handle after `post_init` has run. Reactor thread only.
    /// See [`popen`] for the contract and the errors.
    pub fn start<H: Connection>(self, handler: H) -> Result<Conn<H::Codec>> {
        let core = Core::current_accepting("popen")?;
        // The codec first, so that a panic in it leaves no child running.
        let codec = panic::catch("codec", None, || handler.codec())
            .map_err(|m| Error::panicked("codec", m))?;
        let spawned = self.spawn()?;
        let conn = Conn::new(&core, codec);
        conn.state().set_child(spawned.pid);
        *conn.state().peer.borrow_mut() = Some(Addr::Process(spawned.pid));
        tracing::debug!(conn = %conn.id(), pid = spawned.pid, command = %spawned.shown, "child started");
        Driver::<H, StreamPump>::start(
            handler,
            conn.clone(),
            core.clone(),
            Start::Open(Box::new(spawned.pipes)),
        );
        if let Some((start, fd)) = spawned.stderr {
            if let Err(e) = start(fd, spawned.pid, &core) {
                // No child runs half-served: its connection ends (and its
                // `unbind` runs), the child with it.
                conn.close_connection();
                return Err(e);
            }
        }
        Ok(conn)
    }

    /// Starts the child, collects its whole stdout, and calls `done` with
    /// it and the exit status once the child has exited (EventMachine's
    /// `EM.system`; stderr goes where [`stderr`](Popen::stderr) says,
    /// inherited by default, so not into the output, as PR1). Returns the
    /// child's pid. Reactor thread only; `done` runs on it.
    ///
    /// `done` runs whatever the status (PR3). If the reactor stops first,
    /// the child is ended as [`Builder::child_grace`](crate::Builder::child_grace)
    /// says and `done` still gets what it wrote and how it ended. Errors as
    /// [`popen`].
    pub fn system(self, done: impl FnOnce(Bytes, ExitStatus) + 'static) -> Result<u32> {
        let conn = self.start(Collect {
            output: BytesMut::new(),
            done: Some(Box::new(done)),
        })?;
        Ok(conn.pid().expect("a child's connection has a pid"))
    }

    /// [`system`](Popen::system) as a future (em-synchrony's `system`): the
    /// child's whole stdout and its exit status. Await it on the reactor
    /// (in [`spawn`](crate::spawn) or [`synchrony`](crate::synchrony)).
    /// Errors as [`popen`], and with `is_stopped_early()` if the reactor
    /// went away before the child's status was known.
    pub async fn output(self) -> Result<(Bytes, ExitStatus)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.system(move |output, status| {
            let _ = tx.send((output, status));
        })?;
        rx.await.map_err(|_| Error::stopped_early())
    }

    /// Makes the pipes and starts the child.
    fn spawn(mut self) -> Result<Spawned> {
        let shown = std::mem::take(&mut self.shown);
        let failed =
            |e: io::Error| Error::io("popen", io::Error::new(e.kind(), format!("{shown}: {e}")));
        let (stdin_child, stdin_ours) = std::io::pipe().map_err(failed)?;
        let (stdout_ours, stdout_child) = std::io::pipe().map_err(failed)?;
        let mut stderr_ours = None;
        let stderr = match (&self.stderr_to, self.stderr) {
            (Some(_), _) => {
                let (ours, child) = std::io::pipe().map_err(failed)?;
                stderr_ours = Some(OwnedFd::from(ours));
                Stdio::from(child)
            }
            (None, Stderr::Inherit) => Stdio::inherit(),
            (None, Stderr::Null) => Stdio::null(),
            (None, Stderr::Merge) => Stdio::from(stdout_child.try_clone().map_err(failed)?),
        };
        self.command
            .stdin(Stdio::from(stdin_child))
            .stdout(Stdio::from(stdout_child))
            .stderr(stderr)
            // Only if the reactor is torn down before the lifecycle could
            // wait for it (every other path waits and reaps).
            .kill_on_drop(true);
        let child = self.command.spawn().map_err(failed)?;
        // The command holds the child's ends of the pipes: closed now, so
        // that the child's exit is the end of its output.
        drop(self.command);
        let pid = child.id().expect("a child that was just started has a pid");
        let pipes = ChildPipes::new(child, pid, stdin_ours.into(), stdout_ours.into())
            .map_err(|e| Error::io("popen", e))?;
        Ok(Spawned {
            pipes,
            pid,
            shown,
            stderr: self.stderr_to.zip(stderr_ours),
        })
    }
}

/// A child just started.
struct Spawned {
    pipes: ChildPipes,
    pid: u32,
    shown: String,
    stderr: Option<(StderrStart, OwnedFd)>,
}

/// Starts `argv` (the program, then its arguments; no shell) as a child
/// process whose stdin and stdout are a connection with `handler`
/// (EventMachine's `EM.popen`), and returns its handle after `post_init`
/// has run. Reactor thread only. [`Popen`] sets the environment, the
/// directory and where stderr goes.
///
/// # The connection
///
/// * The child's stdout arrives through the handler's codec as
///   `receive_data`; [`Conn::send_data`] writes to its stdin.
/// * [`Conn::close_connection_after_writing`] closes the child's stdin
///   once the queued bytes are written, and goes on delivering its output:
///   `sort`, `wc` and friends finish and answer. The connection is
///   read-only from then on (`try_send_data` errors with `is_closed()`).
/// * `unbind` runs once the child's stdout is closed **and** the child has
///   exited: with [`UnbindReason::Exited`] and its status when it closed
///   its output on its own (a child that closes stdout early but keeps
///   running is waited for); with the reason that ended it otherwise. Its
///   status is [`Conn::exit_status`] during `unbind` either way
///   (EventMachine's `get_status`).
/// * Ending it early ([`Conn::close_connection`], an inactivity timeout, an
///   error, a panic, the reactor's stop) closes the pipes, then waits
///   [`Builder::child_grace`](crate::Builder::child_grace) for the child to
///   exit, sends SIGTERM, waits again, and sends SIGKILL. Nothing of this
///   blocks the reactor (EventMachine blocks it, PR2); the child is always
///   reaped, so no zombie is left, and `run` returns only once every child
///   has exited.
/// * [`Conn::pid`], [`Conn::kill`]; pause, resume, timeouts and watermarks
///   work as on any connection. [`Conn::peer_addr`] is
///   [`Addr::Process`]`(pid)`. `detach` and the socket options are
///   refused (`is_unsupported()`): a child has two pipes, no one socket.
///
/// * A child that closes its stdin while em still has input queued for it
///   (it exited, or stopped reading, as `head` does) makes that input
///   drop: the connection turns read-only and its output is still read to
///   its end.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_invalid_argument()` for
/// an empty `argv`; `is_io()` when the child cannot be started (the
/// message names the command: a program that does not exist, say);
/// `is_panic()` if the handler's `codec()` panicked (no child is started
/// then). If a [`Popen::stderr_to`] connection cannot start (its codec
/// panicked), the child's own connection is closed, so the child ends, and
/// the error is returned.
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection, UnbindReason};
/// use tokio_util::codec::LinesCodec;
///
/// struct Exit;
/// impl Connection for Exit {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
///     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
///         assert_eq!(line, "bye");
///     }
///     fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
///         assert!(matches!(reason, UnbindReason::Exited(s) if s.code() == Some(3)));
///         assert_eq!(conn.exit_status().and_then(|s| s.code()), Some(3));
///         em::stop();
///     }
/// }
///
/// em::run(|| em::popen(["sh", "-c", "echo bye; exit 3"], Exit).map(drop))?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn popen<H, I, S>(argv: I, handler: H) -> Result<Conn<H::Codec>>
where
    H: Connection,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Popen::from_argv(argv)?.start(handler)
}

/// [`popen`] of a shell command: `/bin/sh -c command`, so pipelines and
/// redirections work (see [`Popen::shell`] for the hazard). Reactor
/// thread only.
pub fn popen_shell<H: Connection>(command: &str, handler: H) -> Result<Conn<H::Codec>> {
    Popen::shell(command).start(handler)
}

/// Runs `argv` (no shell), collects its whole stdout, and calls `done`
/// with it and the exit status once the child has exited (EventMachine's
/// `EM.system`: stderr is not captured, PR1). Returns the child's pid.
/// Reactor thread only; `done` runs on it. See [`Popen::system`].
///
/// ```
/// # use em_core as em;
/// em::run(|| -> em::Result<()> {
///     em::system(["sh", "-c", "echo out; echo err >&2; exit 3"], |out, status| {
///         assert_eq!(&out[..], b"out\n");
///         assert_eq!(status.code(), Some(3));
///         em::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn system<I, S>(argv: I, done: impl FnOnce(Bytes, ExitStatus) + 'static) -> Result<u32>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Popen::from_argv(argv)?.system(done)
}

/// [`system`] as a future (em-synchrony's `EM::Synchrony.system`): the
/// child's whole stdout and its exit status. Await it on the reactor; see
/// [`Popen::output`].
///
/// ```
/// # use em_core as em;
/// let (out, status) = em::synchrony(em::system_async(["echo", "hi"]))??;
/// assert_eq!(&out[..], b"hi\n");
/// assert!(status.success());
/// # Ok::<(), em_core::Error>(())
/// ```
pub async fn system_async<I, S>(argv: I) -> Result<(Bytes, ExitStatus)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Popen::from_argv(argv)?.output().await
}

/// The handler behind `system`: keeps the output, hands it over in
/// `unbind` with the status.
struct Collect {
    output: BytesMut,
    done: Option<Box<dyn FnOnce(Bytes, ExitStatus)>>,
}

impl Connection for Collect {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        // Nothing to say: the child reads end of input at once.
        conn.close_connection_after_writing();
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        if self.output.is_empty() {
            self.output = data;
        } else {
            self.output.extend_from_slice(&data);
        }
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
        match (conn.exit_status(), self.done.take()) {
            (Some(status), Some(done)) => done(std::mem::take(&mut self.output).freeze(), status),
            _ => {
                tracing::debug!(conn = %conn.id(), %reason, "system: the child's status is unknown")
            }
        }
    }
}

/// What only a child process's connection has ([`popen`]).
impl<C> Conn<C> {
    /// The child's process id (EventMachine's `get_pid`); `None` for a
    /// connection that runs no child. Reactor thread only, as every `Conn`
    /// method.
    pub fn pid(&self) -> Option<u32> {
        self.state().child().map(|(pid, _)| pid)
    }

    /// How the child exited (EventMachine's `get_status`), once it has
    /// been reaped: during and after `unbind`; `None` before, and for a
    /// connection that runs no child.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.state().child().and_then(|(_, status)| status)
    }

    /// Sends `signal` to the child (SIGTERM, SIGKILL, SIGUSR1…). The
    /// connection goes on until the child's output closes and it exits, as
    /// always. Errors with `is_unsupported()` on a connection that runs no
    /// child, and for a signal with no name (see [`Signal`]); with
    /// `is_closed()` once the child has exited and been reaped (its pid may
    /// belong to another process by then); `is_io()` if the system refuses.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        match self.state().child() {
            None => Err(Error::unsupported(
                "kill",
                "this connection runs no child process",
            )),
            Some((_, Some(_))) => Err(Error::closed()),
            Some((pid, None)) => kill(pid, signal).map_err(|e| match e.kind() {
                io::ErrorKind::Unsupported => Error::unsupported("kill", e.to_string()),
                _ => Error::io("kill", e),
            }),
        }
    }
}
