//! `ScriptError`: how a client strayed from a fake server's script, told
//! so that a failing test says what it expected and what it got.

use std::fmt;
use std::time::Duration;

/// Why a [`ScriptedServer`](super::ScriptedServer)'s script did not run to
/// its end: the client sent something else, closed early, fell silent, or
/// never came. Returned by [`finish`](super::ScriptedServer::finish) on the
/// test's thread.
///
/// Its `Display` names the step (its number and what it expected) and
/// shows the expected and the received text, escaped, one above the
/// other, with a caret under the first byte where they differ:
///
/// ```text
/// fake server script failed at step 2 of 4, expect_line("HELO x"): the client sent something else
///   expected: "HELO x" then "\r\n" or "\n"
///   received: "HELO y\r\n"
///                   ^ first difference, at byte 5
/// ```
#[derive(Debug, Clone)]
pub struct ScriptError {
    step: Option<StepInfo>,
    failure: Failure,
}

/// The step that failed: its number (from 1), the script's length, and the
/// step as written.
#[derive(Debug, Clone)]
pub(super) struct StepInfo {
    pub(super) number: usize,
    pub(super) total: usize,
    pub(super) what: String,
}

/// What a step expected.
#[derive(Debug, Clone)]
pub(super) enum Expected {
    /// This line, then `\r\n` or `\n`.
    Line(Vec<u8>),
    /// These bytes.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The client sent something else.
    Mismatch {
        expected: Expected,
        received: Vec<u8>,
    },
    /// The connection ended before the expected text was complete;
    /// `how` is the end em saw ("closed by the peer", a reset…).
    ClosedEarly {
        expected: Expected,
        received: Vec<u8>,
        how: String,
    },
    /// Nothing (or too little) came within the step's timeout.
    Silent {
        expected: Expected,
        received: Vec<u8>,
        waited: Duration,
    },
    /// A send failed: the connection was gone.
    Send { error: String },
    /// `finish` gave up: no client connected within its limit.
    NoClient { waited: Duration },
    /// `finish` gave up while the script was still running.
    Unfinished { waited: Duration, received: Vec<u8> },
}

impl ScriptError {
    pub(super) fn new(step: Option<StepInfo>, failure: Failure) -> ScriptError {
        ScriptError { step, failure }
    }

    /// The number of the step that failed, from 1 in the order the script
    /// was written; `None` when no client connected.
    pub fn step(&self) -> Option<usize> {
        self.step.as_ref().map(|s| s.number)
    }

    /// What the failing step expected (a line without its line end, or
    /// bytes); `None` for a failure that is not about received text.
    pub fn expected(&self) -> Option<&[u8]> {
        match &self.failure {
            Failure::Mismatch { expected, .. }
            | Failure::ClosedEarly { expected, .. }
            | Failure::Silent { expected, .. } => Some(expected.text()),
            _ => None,
        }
    }

    /// What the client had sent for the failing step (the received line,
    /// with its line end, or the bytes waiting unmatched); empty if none.
    pub fn received(&self) -> &[u8] {
        match &self.failure {
            Failure::Mismatch { received, .. }
            | Failure::ClosedEarly { received, .. }
            | Failure::Silent { received, .. }
            | Failure::Unfinished { received, .. } => received,
            _ => &[],
        }
    }

    /// Whether the client sent something other than what the step
    /// expected.
    pub fn is_mismatch(&self) -> bool {
        matches!(self.failure, Failure::Mismatch { .. })
    }

    /// Whether the connection ended (closed or reset by the client) before
    /// the script did: while a step waited for text, or as one sent.
    pub fn is_closed_early(&self) -> bool {
        matches!(
            self.failure,
            Failure::ClosedEarly { .. } | Failure::Send { .. }
        )
    }

    /// Whether time ran out: a step's timeout with nothing (or too little)
    /// received, no client within `finish`'s limit, or a script still
    /// running at that limit.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.failure,
            Failure::Silent { .. } | Failure::NoClient { .. } | Failure::Unfinished { .. }
        )
    }
}

impl Expected {
    fn text(&self) -> &[u8] {
        match self {
            Expected::Line(line) => line,
            Expected::Bytes(bytes) => bytes,
        }
    }

    /// The index of the first byte of `received` that differs from what
    /// was expected (for a line, either line end counts).
    fn first_difference(&self, received: &[u8]) -> usize {
        let common = |want: &[u8]| {
            want.iter()
                .zip(received)
                .take_while(|(a, b)| a == b)
                .count()
        };
        match self {
            Expected::Bytes(bytes) => common(bytes),
            Expected::Line(line) => {
                let crlf = common(&[line.as_slice(), b"\r\n"].concat());
                let lf = common(&[line.as_slice(), b"\n"].concat());
                crlf.max(lf)
            }
        }
    }
}

/// The prefix of the expected and received lines: both the same width, so
/// that the caret lines up.
const EXPECTED: &str = "  expected: ";
const RECEIVED: &str = "  received: ";

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fake server script failed")?;
        if let Some(step) = &self.step {
            write!(
                f,
                " at step {} of {}, {}",
                step.number, step.total, step.what
            )?;
        }
        let (expected, received, ending) = match &self.failure {
            Failure::Mismatch { expected, received } => {
                f.write_str(": the client sent something else")?;
                (expected, received, "")
            }
            Failure::ClosedEarly {
                expected,
                received,
                how,
            } => {
                write!(f, ": the connection ended before it was received ({how})")?;
                (expected, received, " then the end of the stream")
            }
            Failure::Silent {
                expected,
                received,
                waited,
            } => {
                write!(f, ": not received within {waited:?}")?;
                (expected, received, " then nothing more")
            }
            Failure::Send { error } => return write!(f, ": cannot send: {error}"),
            Failure::NoClient { waited } => {
                return write!(f, ": no client connected within {waited:?}")
            }
            Failure::Unfinished { waited, received } => {
                write!(f, ": still running after {waited:?}")?;
                if !received.is_empty() {
                    write!(f, "\n{RECEIVED}\"{}\" (unmatched)", escape(received))?;
                }
                return Ok(());
            }
        };
        write!(f, "\n{EXPECTED}\"{}\"", escape(expected.text()))?;
        if let Expected::Line(_) = expected {
            f.write_str(r#" then "\r\n" or "\n""#)?;
        }
        if received.is_empty() {
            return write!(f, "\n{RECEIVED}(nothing){ending}");
        }
        write!(f, "\n{RECEIVED}\"{}\"{ending}", escape(received))?;
        let at = expected.first_difference(received);
        let column = RECEIVED.len() + 1 + escape(&received[..at]).len();
        let note = if at < received.len() {
            format!("first difference, at byte {at}")
        } else {
            format!("the received text ends here, at byte {at}")
        };
        write!(f, "\n{:column$}^ {note}", "")
    }
}

impl std::error::Error for ScriptError {}

/// `bytes` as text for a report: printable ASCII as is, `"` and `\`
/// escaped, `\r`, `\n`, `\t` by name, anything else as `\xNN`.
pub(super) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Option<StepInfo> {
        Some(StepInfo {
            number: 2,
            total: 4,
            what: r#"expect_line("HELO x")"#.into(),
        })
    }

    #[test]
    fn a_mismatch_shows_both_texts_and_a_caret_under_the_first_difference() {
        let e = ScriptError::new(
            step(),
            Failure::Mismatch {
                expected: Expected::Line(b"HELO x".to_vec()),
                received: b"HELO y\r\n".to_vec(),
            },
        );
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"fake server script failed at step 2 of 4, expect_line("HELO x"): the client sent something else"#
        );
        assert_eq!(lines[1], r#"  expected: "HELO x" then "\r\n" or "\n""#);
        assert_eq!(lines[2], r#"  received: "HELO y\r\n""#);
        assert!(lines[3]
            .trim_start()
            .starts_with("^ first difference, at byte 5"));
        assert_eq!(lines[2].as_bytes()[lines[3].find('^').unwrap()], b'y');
    }

    #[test]
    fn the_caret_counts_escaped_bytes() {
        let e = ScriptError::new(
            None,
            Failure::Mismatch {
                expected: Expected::Bytes(b"\x00\x01\"ab".to_vec()),
                received: b"\x00\x01\"aX".to_vec(),
            },
        );
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], r#"  received: "\x00\x01\"aX""#);
        assert_eq!(lines[2].as_bytes()[lines[3].find('^').unwrap()], b'X');
    }

    #[test]
    fn a_line_with_a_longer_ending_differs_after_the_line() {
        let e = Expected::Line(b"QUIT".to_vec());
        assert_eq!(e.first_difference(b"QUIT!\r\n"), 4);
        assert_eq!(e.first_difference(b"QUIT\r\r\n"), 5);
        assert_eq!(e.first_difference(b"QU"), 2);
    }

    #[test]
    fn an_early_end_says_so_and_marks_where_the_text_stopped() {
        let e = ScriptError::new(
            step(),
            Failure::ClosedEarly {
                expected: Expected::Line(b"HELO x".to_vec()),
                received: b"HEL".to_vec(),
                how: "closed by the peer".into(),
            },
        );
        let text = e.to_string();
        assert!(text.contains("the connection ended before it was received (closed by the peer)"));
        assert!(text.contains(r#"received: "HEL" then the end of the stream"#));
        assert!(text.contains("^ the received text ends here, at byte 3"));
        assert!(e.is_closed_early() && !e.is_mismatch());
    }
}
