//! Reading a message body, for requests (the server's side) and responses
//! (the client's) alike: by `Content-Length`, by chunked transfer coding,
//! or until the connection closes; and the framing headers that say which.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Version};

use crate::error::{ErrorKind, HttpError};

/// How a message body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    Empty,
    Fixed(u64),
    Chunked,
    /// The body ends when the connection closes (responses only).
    UntilClose,
}

/// What the body decoder yields.
#[derive(Debug)]
pub(crate) enum BodyItem {
    /// A piece of the body.
    Chunk(Bytes),
    /// The body is complete.
    End,
}

#[derive(Debug, Clone, Copy)]
enum Chunked {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields after the last chunk; the count of trailer bytes so far.
    Trailers(usize),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Fixed(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// One body's decoder, with the limits it checks as bytes arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDecoder {
    state: State,
    /// The body's bytes so far (chunked and close-delimited bodies).
    total: u64,
    max_body: u64,
    max_trailers: usize,
}

impl BodyDecoder {
    /// A decoder for a body framed as `length`, refusing bodies over
    /// `max_body` bytes and trailers over `max_trailers`.
    pub(crate) fn new(length: BodyLength, max_body: u64, max_trailers: usize) -> Self {
        let state = match length {
            BodyLength::Empty => State::Done,
            BodyLength::Fixed(n) => State::Fixed(n),
            BodyLength::Chunked => State::Chunked(Chunked::Size),
            BodyLength::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            state,
            total: 0,
            max_body,
            max_trailers,
        }
    }

    fn fail(
        &mut self,
        kind: ErrorKind,
        detail: impl Into<String>,
    ) -> Option<Result<BodyItem, HttpError>> {
        self.state = State::Done;
        Some(Err(HttpError::new(kind, detail)))
    }

    /// The next piece of the body from `src`, its end, an error, or `None`
    /// when more bytes are needed.
    #[inline]
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Option<Result<BodyItem, HttpError>> {
        match self.state {
            State::Fixed(0) | State::Done => {
                self.state = State::Done;
                Some(Ok(BodyItem::End))
            }
            State::Fixed(remaining) => {
                if src.is_empty() {
                    return None;
                }
                let n = (src.len() as u64).min(remaining) as usize;
                self.state = State::Fixed(remaining - n as u64);
                Some(Ok(BodyItem::Chunk(src.split_to(n).freeze())))
            }
            State::UntilClose => {
                if src.is_empty() {
                    return None;
                }
                self.total = self.total.saturating_add(src.len() as u64);
                if self.total > self.max_body {
                    return self.fail(
                        ErrorKind::BodyTooLarge,
                        format!("body over {} bytes", self.max_body),
                    );
                }
                Some(Ok(BodyItem::Chunk(src.split().freeze())))
            }
            State::Chunked(state) => self.decode_chunked(src, state),
        }
    }

    /// As [`decode`](Self::decode) when the connection has ended: a body
    /// delimited by the close ends here, any other is truncated.
    pub(crate) fn decode_eof(&mut self, src: &mut BytesMut) -> Option<Result<BodyItem, HttpError>> {
        if let Some(item) = self.decode(src) {
            return Some(item);
        }
        match self.state {
            State::UntilClose => {
                self.state = State::Done;
                Some(Ok(BodyItem::End))
            }
            State::Fixed(_) | State::Chunked(_) => {
                self.fail(ErrorKind::Truncated, "the connection ended inside the body")
            }
            State::Done => None,
        }
    }

    fn decode_chunked(
        &mut self,
        src: &mut BytesMut,
        mut state: Chunked,
    ) -> Option<Result<BodyItem, HttpError>> {
        loop {
            match state {
                Chunked::Size => match httparse::parse_chunk_size(src) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = src.split_to(used);
                        if size == 0 {
                            state = Chunked::Trailers(0);
                        } else {
                            self.total = self.total.saturating_add(size);
                            if self.total > self.max_body {
                                return self.fail(
                                    ErrorKind::BodyTooLarge,
                                    format!("chunked body over {} bytes", self.max_body),
                                );
                            }
                            state = Chunked::Data(size);
                        }
                    }
                    Ok(httparse::Status::Partial) => {
                        if src.len() > 1024 {
                            return self.fail(ErrorKind::BadRequest, "chunk-size line too long");
                        }
                        self.state = State::Chunked(state);
                        return None;
                    }
                    Err(_) => return self.fail(ErrorKind::BadRequest, "invalid chunk size"),
                },
                Chunked::Data(remaining) => {
                    if src.is_empty() {
                        self.state = State::Chunked(state);
                        return None;
                    }
                    let n = (src.len() as u64).min(remaining) as usize;
                    let chunk = src.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = State::Chunked(if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    });
                    return Some(Ok(BodyItem::Chunk(chunk)));
                }
                Chunked::DataEnd => {
                    if src.len() < 2 {
                        if src.first().is_some_and(|b| *b != b'\r' && *b != b'\n') {
                            return self
                                .fail(ErrorKind::BadRequest, "chunk data not followed by CRLF");
                        }
                        self.state = State::Chunked(state);
                        return None;
                    }
                    if &src[..2] == b"\r\n" {
                        let _ = src.split_to(2);
                    } else if src[0] == b'\n' {
                        let _ = src.split_to(1);
                    } else {
                        return self.fail(ErrorKind::BadRequest, "chunk data not followed by CRLF");
                    }
                    state = Chunked::Size;
                }
                Chunked::Trailers(seen) => {
                    // Trailer fields are read and dropped, line by line,
                    // until the blank line.
                    let Some(end) = memchr::memchr(b'\n', src) else {
                        if seen + src.len() > self.max_trailers {
                            return self.fail(ErrorKind::HeadersTooLarge, "trailers too large");
                        }
                        self.state = State::Chunked(Chunked::Trailers(seen));
                        return None;
                    };
                    let line = src.split_to(end + 1);
                    if line.len() == 1 || &line[..] == b"\r\n" {
                        self.state = State::Done;
                        return Some(Ok(BodyItem::End));
                    }
                    if seen + line.len() > self.max_trailers {
                        return self.fail(ErrorKind::HeadersTooLarge, "trailers too large");
                    }
                    state = Chunked::Trailers(seen + line.len());
                }
            }
        }
    }
}

/// What the framing headers of a head say, gathered field by field.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade_token: bool,
    pub(crate) expect_continue: bool,
}

impl Framing {
    /// Notes one header field.
    pub(crate) fn see(
        &mut self,
        name: &HeaderName,
        value: &HeaderValue,
    ) -> Result<(), &'static str> {
        if name == header::CONTENT_LENGTH {
            let text = value.to_str().map_err(|_| "invalid Content-Length")?;
            // A list of equal values is tolerated (RFC 9110 §8.6); any
            // disagreement is an error.
            for part in text.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("invalid Content-Length");
                }
                let n: u64 = part.parse().map_err(|_| "invalid Content-Length")?;
                match self.content_length {
                    Some(m) if m != n => return Err("conflicting Content-Length values"),
                    _ => self.content_length = Some(n),
                }
            }
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            let text = value.to_str().map_err(|_| "invalid Transfer-Encoding")?;
            if let Some(last) = text.split(',').map(str::trim).rfind(|s| !s.is_empty()) {
                self.chunked_last = last.eq_ignore_ascii_case("chunked");
            }
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.upgrade_token = true;
                }
            }
        } else if name == header::EXPECT {
            self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// Whether the connection may stay open after this message.
    pub(crate) fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::HTTP_10 => self.keep_alive && !self.close,
            _ => !self.close,
        }
    }

    /// A request body's framing (RFC 9112 §6.3): chunked, a length, or
    /// none; anything ambiguous is refused.
    pub(crate) fn request_body(
        &self,
        version: Version,
    ) -> Result<BodyLength, (ErrorKind, &'static str)> {
        if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err((
                    ErrorKind::BadRequest,
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            if self.content_length.is_some() {
                return Err((
                    ErrorKind::BadRequest,
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            if !self.chunked_last {
                return Err((
                    ErrorKind::Unsupported,
                    "a transfer coding other than chunked",
                ));
            }
            return Ok(BodyLength::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => BodyLength::Empty,
            Some(n) => BodyLength::Fixed(n),
        })
    }

    /// A response body's framing (RFC 9112 §6.3), for a response that may
    /// have one: chunked when it is the last transfer coding, until the
    /// close for any other coding or when no length is given.
    pub(crate) fn response_body(&self) -> Result<BodyLength, (ErrorKind, &'static str)> {
        if self.transfer_encoding {
            if self.content_length.is_some() {
                return Err((
                    ErrorKind::BadRequest,
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            return Ok(if self.chunked_last {
                BodyLength::Chunked
            } else {
                BodyLength::UntilClose
            });
        }
        Ok(match self.content_length {
            None => BodyLength::UntilClose,
            Some(0) => BodyLength::Empty,
            Some(n) => BodyLength::Fixed(n),
        })
    }
}
