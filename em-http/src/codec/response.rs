//! Writing responses: the status line and headers (with `Date`,
//! `Content-Length` or `Transfer-Encoding` and `Connection` added where the
//! handler left them out), fixed-length and chunked bodies.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, response::Parts, StatusCode};

/// How a response's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n` (added unless the handler set it).
    Length(u64),
    /// `Transfer-Encoding: chunked`: a body written over time to an
    /// HTTP/1.1 client.
    Chunked,
    /// Neither: the body ends when the connection closes (a streamed body
    /// to an HTTP/1.0 client), or there is none (1xx, 204, 304, 101).
    Unframed,
}

/// Something the server writes.
#[derive(Debug)]
pub(crate) enum Outgoing<'a> {
    /// A status line and headers.
    Head {
        parts: &'a Parts,
        framing: Framing,
        /// `Connection: close` is added (unless the handler named a
        /// `Connection` itself).
        close: bool,
        /// `Connection: keep-alive` is added, for an HTTP/1.0 client that
        /// asked for it.
        keep_alive_10: bool,
        /// A whole body to write right after the head (empty for none), so
        /// that a whole response is queued in one call.
        body: &'a [u8],
    },
    /// Bytes as they are: a fixed-length body, or output buffered earlier.
    Raw(&'a [u8]),
    /// Shared bytes as they are.
    Bytes(Bytes),
    /// One chunk of a chunked body (nothing for an empty one, which would
    /// end the body).
    Chunk(&'a [u8]),
    /// The end of a chunked body.
    LastChunk,
    /// `100 Continue`.
    Continue,
}

impl Outgoing<'_> {
    pub(crate) fn encode(self, dst: &mut BytesMut) {
        match self {
            Outgoing::Head {
                parts,
                framing,
                close,
                keep_alive_10,
                body,
            } => encode_head(parts, framing, close, keep_alive_10, body, dst),
            Outgoing::Raw(bytes) => dst.extend_from_slice(bytes),
            Outgoing::Bytes(bytes) => dst.extend_from_slice(&bytes),
            Outgoing::Chunk(bytes) => {
                if !bytes.is_empty() {
                    let mut hex = [0u8; 16];
                    let digits = hex_digits(bytes.len(), &mut hex);
                    dst.reserve(digits.len() + bytes.len() + 4);
                    dst.put_slice(digits);
                    dst.put_slice(b"\r\n");
                    dst.put_slice(bytes);
                    dst.put_slice(b"\r\n");
                }
            }
            Outgoing::LastChunk => dst.extend_from_slice(b"0\r\n\r\n"),
            Outgoing::Continue => dst.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n"),
        }
    }
}

fn encode_head(
    parts: &Parts,
    framing: Framing,
    close: bool,
    keep_alive_10: bool,
    body: &[u8],
    dst: &mut BytesMut,
) {
    let headers = &parts.headers;
    dst.reserve(160 + 32 * headers.len() + body.len());
    status_line(parts.status, dst);
    // One pass: each header is written, and the three em-http may add are
    // noticed on the way (cheaper than looking each up).
    let (mut has_date, mut has_length, mut has_connection) = (false, false, false);
    for (name, value) in headers {
        if *name == header::DATE {
            has_date = true;
        } else if *name == header::CONTENT_LENGTH {
            has_length = true;
        } else if *name == header::CONNECTION {
            has_connection = true;
        }
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
    if !has_date {
        dst.put_slice(b"date: ");
        with_date(|date| dst.put_slice(date));
        dst.put_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            if !has_length {
                let mut buf = [0u8; 20];
                dst.put_slice(b"content-length: ");
                dst.put_slice(decimal_digits(n, &mut buf));
                dst.put_slice(b"\r\n");
            }
        }
        Framing::Chunked => dst.put_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Unframed => {}
    }
    if !has_connection {
        if close {
            dst.put_slice(b"connection: close\r\n");
        } else if keep_alive_10 {
            dst.put_slice(b"connection: keep-alive\r\n");
        }
    }
    dst.put_slice(b"\r\n");
    dst.put_slice(body);
}

fn status_line(status: StatusCode, dst: &mut BytesMut) {
    if status == StatusCode::OK {
        dst.put_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    dst.put_slice(b"HTTP/1.1 ");
    dst.put_slice(status.as_str().as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.put_slice(b"\r\n");
}

fn decimal_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

fn hex_digits(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

thread_local! {
    /// The `Date` header's value, formatted once a second (as hyper does):
    /// when it must be formatted again, and its text.
    static DATE: RefCell<(SystemTime, [u8; 29])> = const { RefCell::new((UNIX_EPOCH, [0; 29])) };
}

/// Runs `f` with the current `Date` text (IMF-fixdate, 29 bytes).
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if now >= cached.0 {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() == 29 {
                cached.1.copy_from_slice(bytes);
                // The next whole second.
                let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                cached.0 = UNIX_EPOCH + Duration::from_secs(secs + 1);
            }
        }
        f(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn encode(item: Outgoing<'_>) -> String {
        let mut dst = BytesMut::new();
        item.encode(&mut dst);
        String::from_utf8(dst.to_vec()).unwrap()
    }

    #[test]
    fn a_head_gets_date_length_and_connection() {
        let (parts, ()) = Response::builder()
            .status(404)
            .header("x-a", "1")
            .body(())
            .unwrap()
            .into_parts();
        let text = encode(Outgoing::Head {
            parts: &parts,
            framing: Framing::Length(12),
            close: true,
            keep_alive_10: false,
            body: b"",
        });
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\nx-a: 1\r\ndate: "),
            "{text}"
        );
        assert!(
            text.ends_with(" GMT\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn chunks_are_hex_framed_and_empty_ones_are_skipped() {
        assert_eq!(
            encode(Outgoing::Chunk(&[b'a'; 26])),
            format!("1a\r\n{}\r\n", "a".repeat(26))
        );
        assert_eq!(encode(Outgoing::Chunk(b"")), "");
        assert_eq!(encode(Outgoing::LastChunk), "0\r\n\r\n");
    }

    #[test]
    fn digits() {
        let mut b = [0; 20];
        assert_eq!(decimal_digits(0, &mut b), b"0");
        assert_eq!(decimal_digits(1234567890, &mut b), b"1234567890");
        assert_eq!(decimal_digits(u64::MAX, &mut b), b"18446744073709551615");
    }
}
