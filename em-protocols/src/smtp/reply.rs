//! `SmtpReply`: an SMTP reply, a three-digit code and one or more lines of
//! text; written by the server, read back (line by line) by the client.

use std::fmt;

use bytes::{BufMut, BytesMut};

/// An SMTP reply: a code (`250`, `354`, `550`…) and its text, one or
/// more lines (RFC 5321 §4.2). What a server's hooks answer with, and what
/// the client reports the server said.
///
/// ```
/// use em_protocols::SmtpReply;
///
/// let reply = SmtpReply::new(250, "2.0.0 queued as 17\nsecond line");
/// assert!(reply.is_positive());
/// assert_eq!(reply.to_string(), "250 2.0.0 queued as 17\nsecond line");
/// assert_eq!(reply.lines().count(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpReply {
    code: u16,
    text: String,
}

impl SmtpReply {
    /// A reply with `code` (three digits, 200 to 599) and `text`; a text
    /// with `\n`s in it is a multi-line reply. Carriage returns in `text`
    /// are dropped, so that no line can end early.
    ///
    /// # Panics
    ///
    /// If `code` is not between 200 and 599.
    pub fn new(code: u16, text: impl Into<String>) -> SmtpReply {
        assert!(
            (200..600).contains(&code),
            "an SMTP reply code is 2xx to 5xx, not {code}"
        );
        let mut text = text.into();
        text.retain(|c| c != '\r');
        SmtpReply { code, text }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text, its lines joined with `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text's lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }

    /// A 2xx: the command succeeded.
    pub fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }

    /// A 3xx: go on (`354` after `DATA`, `334` during `AUTH`).
    pub fn is_intermediate(&self) -> bool {
        self.code / 100 == 3
    }

    /// A 4xx: failed this time; the same command may work later.
    pub fn is_transient(&self) -> bool {
        self.code / 100 == 4
    }

    /// A 5xx: failed, and would fail again.
    pub fn is_permanent(&self) -> bool {
        self.code / 100 == 5
    }

    /// Appends the reply as SMTP writes it: `250-line` for all lines but
    /// the last, `250 line` for the last, each ended by CRLF.
    pub(crate) fn write_to(&self, dst: &mut BytesMut) {
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            dst.reserve(line.len() + 6);
            dst.put_slice(format!("{:03}{sep}", self.code).as_bytes());
            dst.put_slice(line.as_bytes());
            dst.put_slice(b"\r\n");
        }
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// One line of a reply as read: its code, whether more lines follow, its
/// text. `None` for a line that is not a reply line.
pub(crate) fn parse_line(line: &[u8]) -> Option<(u16, bool, String)> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = u16::from(line[0] - b'0') * 100
        + u16::from(line[1] - b'0') * 10
        + u16::from(line[2] - b'0');
    if !(200..600).contains(&code) {
        return None;
    }
    let (more, text) = match line.get(3) {
        None => (false, &[][..]),
        Some(b' ') => (false, &line[4..]),
        Some(b'-') => (true, &line[4..]),
        Some(_) => return None,
    };
    Some((code, more, String::from_utf8_lossy(text).into_owned()))
}

/// The most lines one reply may have: a server sending `250-…` lines
/// forever fails the client (a protocol error) rather than growing its
/// memory without end. Real replies (EHLO's extensions) have a few dozen.
pub(crate) const MAX_REPLY_LINES: usize = 1000;

/// Gathers the lines of multi-line replies into [`SmtpReply`]s, at most
/// [`MAX_REPLY_LINES`] to a reply.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyReader {
    /// Takes one line: `Ok(Some(reply))` once a reply's last line came,
    /// `Ok(None)` while more are due, `Err` with what is wrong for a line
    /// that is no reply line or whose code differs from the first line's.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<Option<SmtpReply>, String> {
        let (code, more, text) = parse_line(line).ok_or_else(|| {
            format!(
                "not an SMTP reply line: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )
        })?;
        if self.code.is_some_and(|c| c != code) {
            return Err(format!(
                "a multi-line reply changed its code from {} to {code}",
                self.code.unwrap_or(code)
            ));
        }
        self.code = Some(code);
        if more && self.lines.len() + 1 >= MAX_REPLY_LINES {
            return Err(format!(
                "a multi-line {code} reply of more than {MAX_REPLY_LINES} lines"
            ));
        }
        self.lines.push(text);
        if more {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(SmtpReply {
            code,
            text: std::mem::take(&mut self.lines).join("\n"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_round_trips_through_its_wire_form() {
        let reply = SmtpReply::new(250, "mx.example\nSIZE 100\nAUTH PLAIN LOGIN");
        let mut wire = BytesMut::new();
        reply.write_to(&mut wire);
        assert_eq!(
            &wire[..],
            b"250-mx.example\r\n250-SIZE 100\r\n250 AUTH PLAIN LOGIN\r\n"
        );
        let mut reader = ReplyReader::default();
        let mut got = None;
        for line in wire[..].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap();
            got = reader.push(line).unwrap();
        }
        assert_eq!(got, Some(reply));
    }

    #[test]
    fn bare_codes_and_bad_lines() {
        assert_eq!(parse_line(b"250"), Some((250, false, String::new())));
        assert_eq!(parse_line(b"354 go"), Some((354, false, "go".into())));
        assert_eq!(parse_line(b"25"), None);
        assert_eq!(parse_line(b"2500 x"), None);
        assert_eq!(parse_line(b"abc x"), None);
        assert_eq!(parse_line(b"150 x"), None);
        let mut reader = ReplyReader::default();
        assert_eq!(reader.push(b"250-a"), Ok(None));
        assert!(reader.push(b"251 b").is_err());
    }

    #[test]
    fn a_reply_has_at_most_max_reply_lines() {
        let mut reader = ReplyReader::default();
        for _ in 0..MAX_REPLY_LINES - 1 {
            assert_eq!(reader.push(b"250-x"), Ok(None));
        }
        assert!(reader.push(b"250-x").is_err());
        let mut reader = ReplyReader::default();
        for _ in 0..MAX_REPLY_LINES - 1 {
            assert_eq!(reader.push(b"250-x"), Ok(None));
        }
        assert_eq!(
            reader
                .push(b"250 x")
                .unwrap()
                .unwrap()
                .text()
                .lines()
                .count(),
            MAX_REPLY_LINES
        );
    }

    #[test]
    fn carriage_returns_cannot_end_a_line_early() {
        assert_eq!(SmtpReply::new(250, "a\r\nb").text(), "a\nb");
    }
}
