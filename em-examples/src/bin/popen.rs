//! `popen [--] PROGRAM [ARG…]`: runs a command as a child process with
//! `em::Popen` (no shell: PROGRAM is found on `PATH` unless it has a `/`,
//! and each ARG reaches it as it is), feeds it what is typed, and prints
//! what it says, line by line, with the time each line arrived. Try
//! `popen -- cat`, `popen -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'`,
//! or `printf 'pear\napple\n' | popen sort`.
//!
//! * **Input.** Standard input is opened with `em::open_keyboard`, and
//!   each chunk read from it (a line, from a terminal) goes to the
//!   command's stdin as it is. At the end of the input (Ctrl-D, the end of
//!   a pipe or file) the command's stdin is closed with
//!   `close_connection_after_writing`, once all that was typed is written;
//!   its output is still read to the end, so `sort` and `wc` answer. While
//!   the command does not read its stdin and more than the high watermark
//!   waits for it, the keyboard is paused (`outbound_drained` resumes it).
//! * **Output.** Each line of the command's stdout is printed to stdout as
//!   `[+S.mmms] LINE`: the time since the command started, in seconds with
//!   milliseconds (`[+0.004s] hello`). Lines are bytes, not necessarily
//!   UTF-8, and are printed as they are, without their `\n`; an unfinished
//!   last line is printed when the output ends, and a line longer than
//!   `--max-line` bytes (64 KiB) is printed in pieces of that size, each
//!   with its own time.
//! * **Stderr.** The command's stderr is its own: it goes straight to this
//!   program's stderr, untimed, as EventMachine's `popen` leaves it
//!   (`em::Stderr::Inherit`). `--merge-stderr` sends it into the same pipe
//!   as stdout instead (`2>&1`, `em::Stderr::Merge`), so its lines are
//!   timed too, in the order the command wrote them.
//! * **The end.** Once the command has closed its output and exited, a
//!   last line, untimed, says how: `exit status N`, or `killed by signal S
//!   (NAME)` (the number, then the name where em's `Signal` has one:
//!   `killed by signal 9 (SIGKILL)`, `killed by signal 11`), followed by
//!   `, core dumped` where it did. Then `popen` exits 0, whatever the
//!   command's status: the status is reported, not passed on. It exits 1,
//!   with `popen: cannot start …` naming the command on stderr, when the
//!   command cannot be started (a program that does not exist).
//! * **Signals.** SIGINT or SIGTERM sends SIGTERM to the command, whose
//!   end is reported as usual (`killed by signal 15 (SIGTERM)`, or its own
//!   exit status if it handles SIGTERM); a second one sends SIGKILL, for a
//!   command that ignores the first. (Ctrl-C at a terminal reaches the
//!   command too, as it is in the same process group: it may end by SIGINT
//!   first.)
//!
//! Once its signal handlers are in place and the command runs, it prints
//! `popen: started COMMAND (pid N)` to stderr. Logs go to stderr
//! (`RUST_LOG=debug` says how the command ended).

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use em::prelude::*;
use em::{Popen, Signal, Stderr};

/// Runs a command, feeding it what is typed and printing its output with
/// timestamps, then how it ended.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Also capture the command's stderr, timed with its stdout (`2>&1`);
    /// by default it goes straight to this program's stderr.
    #[arg(long)]
    merge_stderr: bool,

    /// The longest line printed whole, in bytes; a longer one is printed
    /// in pieces of this size.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 64 * 1024,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_line: usize,

    /// The program to run (no shell), then its arguments.
    #[arg(
        value_name = "PROGRAM",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// Frames the command's output as lines of bytes, without their `\n`: a
/// line longer than `max` comes out in pieces of `max` bytes, and an
/// unfinished last line at the end of the output as it is. It encodes
/// bytes as they are (what is typed, on its way to the command's stdin).
#[derive(Debug)]
struct ByteLines {
    max: usize,
    /// How much of the buffer is known to hold no `\n`.
    searched: usize,
}

impl ByteLines {
    fn new(max: usize) -> Self {
        ByteLines {
            max: max.max(1),
            searched: 0,
        }
    }
}

impl Decoder for ByteLines {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        // A line of `max` bytes is whole if its `\n` is the next byte.
        let window = src.len().min(self.max + 1);
        let start = self.searched.min(window);
        if let Some(at) = src[start..window].iter().position(|&b| b == b'\n') {
            let mut line = src.split_to(start + at + 1);
            line.truncate(start + at);
            self.searched = 0;
            return Ok(Some(line));
        }
        if src.len() > self.max {
            self.searched = 0;
            return Ok(Some(src.split_to(self.max)));
        }
        self.searched = src.len();
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        match self.decode(src)? {
            Some(line) => Ok(Some(line)),
            None if src.is_empty() => Ok(None),
            None => {
                self.searched = 0;
                Ok(Some(src.split()))
            }
        }
    }
}

impl Encoder<BytesMut> for ByteLines {
    type Error = io::Error;

    fn encode(&mut self, bytes: BytesMut, dst: &mut BytesMut) -> io::Result<()> {
        dst.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Prints `line` to stdout after the time since `start`.
fn print_line(start: Instant, line: &[u8]) -> io::Result<()> {
    let elapsed = start.elapsed();
    let mut out = io::stdout().lock();
    write!(
        out,
        "[+{}.{:03}s] ",
        elapsed.as_secs(),
        elapsed.subsec_millis()
    )?;
    out.write_all(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// How the command ended, as the last line says it.
fn describe(status: ExitStatus) -> String {
    let mut said = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(raw)) => match Signal::from_raw(raw).name() {
            Some(name) => format!("killed by signal {raw} ({name})"),
            None => format!("killed by signal {raw}"),
        },
        // Stopped or continued: not for a child that has exited.
        (None, None) => status.to_string(),
    };
    if status.core_dumped() {
        said.push_str(", core dumped");
    }
    said
}

/// The command's connection: prints its output, reports its end, and
/// stops the reactor then.
struct Command {
    start: Instant,
    max_line: usize,
    /// The keyboard, paused while the command's stdin is behind.
    keyboard: Rc<RefCell<Option<Conn<BytesCodec>>>>,
}

impl Connection for Command {
    type Codec = ByteLines;

    fn codec(&self) -> ByteLines {
        ByteLines::new(self.max_line)
    }

    fn receive_data(&mut self, conn: &Conn<ByteLines>, line: BytesMut) {
        if let Err(e) = print_line(self.start, &line) {
            // Nobody reads the output any more: end the command (its pipes
            // are closed, then SIGTERM after em's grace period).
            tracing::warn!(error = %e, "cannot write to stdout; ending the command");
            conn.close_connection();
        }
    }

    fn outbound_drained(&mut self, _: &Conn<ByteLines>) {
        if let Some(keyboard) = self.keyboard.borrow().as_ref() {
            keyboard.resume();
        }
    }

    fn unbind(&mut self, conn: &Conn<ByteLines>, reason: UnbindReason) {
        tracing::debug!(%reason, "the command ended");
        let status = match reason {
            UnbindReason::Exited(status) => Some(status),
            _ => conn.exit_status(),
        };
        match status {
            Some(status) => {
                let said = describe(status);
                let mut out = io::stdout().lock();
                if let Err(e) = writeln!(out, "{said}").and_then(|()| out.flush()) {
                    tracing::warn!(error = %e, status = %said, "cannot write to stdout");
                }
            }
            None => tracing::warn!(%reason, "how the command ended is unknown"),
        }
        em::stop();
    }
}

/// The keyboard's connection: what is typed goes to the command's stdin,
/// and the end of the input closes it.
struct Keyboard {
    command: Conn<ByteLines>,
}

impl Connection for Keyboard {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn receive_data(&mut self, keyboard: &Conn<BytesCodec>, typed: BytesMut) {
        // Refused (0) once the command's stdin is closed: it exited.
        self.command.send_data(typed);
        if self.command.is_above_high_watermark() {
            keyboard.pause();
        }
    }

    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        match reason {
            UnbindReason::ReactorStopped => return,
            UnbindReason::PeerClosed => {
                tracing::debug!("end of input; closing the command's stdin");
            }
            failed => {
                tracing::warn!(reason = %failed, "the input failed; closing the command's stdin");
            }
        }
        self.command.close_connection_after_writing();
    }
}

/// On SIGINT or SIGTERM, sends SIGTERM to the command in `slot`, and
/// SIGKILL on the next one; stops the reactor if there is no command yet.
fn end_command_on_signal(slot: &Rc<RefCell<Option<Conn<ByteLines>>>>) -> em::Result<()> {
    let received = Rc::new(Cell::new(0_u32));
    for signal in [Signal::INT, Signal::TERM] {
        let (slot, received) = (slot.clone(), received.clone());
        em::trap(signal, move || {
            received.set(received.get() + 1);
            let Some(command) = slot.borrow().clone() else {
                em::stop();
                return;
            };
            let send = if received.get() == 1 {
                Signal::TERM
            } else {
                Signal::KILL
            };
            tracing::info!(%signal, %send, "signal received; ending the command");
            if let Err(e) = command.kill(send) {
                tracing::debug!(error = %e, "the command has already exited");
            }
        })?;
    }
    Ok(())
}

/// A message for the person at the terminal, on stderr, in one write:
/// the command may be writing there too (its stderr is ours), and
/// `eprintln!` writes a formatted line in pieces, which its lines could
/// come between.
fn report(message: &str) {
    let line = format!("popen: {message}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let shown = args
        .command
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let failed: Rc<RefCell<Option<String>>> = Rc::default();
    let why = failed.clone();
    let result = em::run(move || {
        // Handlers first: a signal must never end this program by its
        // default action while the command runs (it would be left behind).
        let slot = Rc::default();
        end_command_on_signal(&slot)?;
        let keyboard = Rc::default();
        let command = Command {
            start: Instant::now(),
            max_line: args.max_line,
            keyboard: Rc::clone(&keyboard),
        };
        let stderr = if args.merge_stderr {
            Stderr::Merge
        } else {
            Stderr::Inherit
        };
        let started =
            Popen::from_argv(&args.command).and_then(|popen| popen.stderr(stderr).start(command));
        let command = match started {
            Ok(command) => command,
            Err(e) => {
                // em's message names the command, as it was given.
                let e = e
                    .io_error()
                    .map_or_else(|| format!("{shown}: {e}"), std::string::ToString::to_string);
                *failed.borrow_mut() = Some(format!("cannot start {e}"));
                em::stop();
                return Ok(());
            }
        };
        *slot.borrow_mut() = Some(command.clone());
        match em::open_keyboard(Keyboard {
            command: command.clone(),
        }) {
            Ok(conn) => *keyboard.borrow_mut() = Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read standard input; closing the command's stdin");
                command.close_connection_after_writing();
            }
        }
        let pid = command.pid().expect("a command's connection has a pid");
        report(&format!("started {shown} (pid {pid})"));
        Ok(())
    });
    if let Err(e) = result {
        report(&e.to_string());
        return ExitCode::FAILURE;
    }
    // A copier thread still waiting for a line from a terminal ends with
    // the process.
    match why.take() {
        Some(message) => {
            report(&message);
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `chunks`, fed one at a time, then the end of the output.
    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut codec = ByteLines::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line.to_vec());
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn lines_lose_their_newline_and_may_be_split_across_reads() {
        assert_eq!(
            lines(64, &[b"one\ntw", b"o\n\nthr", b"ee"]),
            [&b"one"[..], b"two", b"", b"three"]
        );
    }

    #[test]
    fn lines_are_bytes_not_utf8() {
        assert_eq!(lines(64, &[b"\xff\xfe\r\n"]), [&b"\xff\xfe\r"[..]]);
    }

    #[test]
    fn a_long_line_comes_in_pieces_of_max_bytes() {
        assert_eq!(
            lines(4, &[b"abcdefghij\nxy\n"]),
            [&b"abcd"[..], b"efgh", b"ij", b"xy"]
        );
        // Exactly `max` bytes, then its newline, even in another read.
        assert_eq!(lines(4, &[b"abcd", b"\nef"]), [&b"abcd"[..], b"ef"]);
    }

    #[test]
    fn how_the_command_ended_is_described() {
        assert_eq!(describe(ExitStatus::from_raw(0)), "exit status 0");
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exit status 3");
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(describe(ExitStatus::from_raw(40)), "killed by signal 40");
        assert_eq!(
            describe(ExitStatus::from_raw(6 | 0x80)),
            "killed by signal 6 (SIGABRT), core dumped"
        );
    }
}
