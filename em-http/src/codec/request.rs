//! Reading requests: heads with httparse, bodies by `Content-Length` or
//! chunked transfer coding, each limit checked as the bytes arrive.

use std::mem::MaybeUninit;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::{header, Method, Request, Uri, Version};

pub(crate) use crate::codec::body::BodyLength;
use crate::codec::body::{BodyDecoder, BodyItem, Framing};
use crate::codec::head::Fields;
use crate::codec::header_pool;
use crate::error::{ErrorKind, HttpError};
use crate::limits::{Limits, MAX_HEADERS_CEILING};

/// A request's head as the engine needs it: the `http` parts, plus how the
/// body is framed and what the connection should do after it.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) parts: http::request::Parts,
    pub(crate) body: BodyLength,
    /// The client allows the connection to stay open after this exchange.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub(crate) upgrade: bool,
}

/// What the request decoder yields.
///
/// Heads travel unboxed: measured with callgrind, the moves of a large
/// frame cost less than a box's allocation and free per request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum RequestFrame {
    /// A whole head; its body (if any) follows as `Body` frames and `BodyEnd`.
    Head(RequestHead),
    /// The first bytes of a head arrived but not all of it: the engine
    /// starts the header timeout. Once per head, and only for a head split
    /// across reads.
    HeadStarted,
    /// A piece of the current request's body.
    Body(Bytes),
    /// The current request's body is complete.
    BodyEnd,
    /// The request cannot be read: answer with the error's status and
    /// close. Nothing more is decoded.
    Error(HttpError),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum State {
    Head,
    Body(BodyDecoder),
    Failed,
}

/// The request side of the server codec.
#[derive(Debug)]
pub(crate) struct RequestDecoder {
    pub(crate) limits: Rc<Limits>,
    pub(crate) state: State,
    /// `HeadStarted` was yielded for the head being read.
    started: bool,
    /// Heads completed so far: the header timeout compares it to tell
    /// whether the head it timed is still the one being read.
    pub(crate) heads: u64,
}

impl RequestDecoder {
    pub(crate) fn new(limits: Rc<Limits>) -> Self {
        RequestDecoder {
            limits,
            state: State::Head,
            started: false,
            heads: 0,
        }
    }

    /// Whether part of a head is waiting in `buffered` bytes.
    pub(crate) fn in_head(&self) -> bool {
        matches!(self.state, State::Head) && self.started
    }

    /// Stops decoding: everything after is discarded.
    pub(crate) fn fail(&mut self) {
        self.state = State::Failed;
    }

    fn error(&mut self, kind: ErrorKind, detail: impl Into<String>) -> Option<RequestFrame> {
        self.state = State::Failed;
        Some(RequestFrame::Error(HttpError::new(kind, detail)))
    }

    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Option<RequestFrame> {
        match &mut self.state {
            State::Head => self.decode_head(src),
            State::Body(body) => {
                let item = body.decode(src)?;
                self.body_frame(item)
            }
            State::Failed => {
                src.clear();
                None
            }
        }
    }

    pub(crate) fn decode_eof(&mut self, src: &mut BytesMut) -> Option<RequestFrame> {
        match &mut self.state {
            State::Head => {
                if let Some(frame) = self.decode_head(src) {
                    return Some(frame);
                }
                src.clear();
                None
            }
            State::Body(body) => {
                let item = body.decode_eof(src)?;
                self.body_frame(item)
            }
            State::Failed => {
                src.clear();
                None
            }
        }
    }

    #[inline]
    fn body_frame(&mut self, item: Result<BodyItem, HttpError>) -> Option<RequestFrame> {
        match item {
            Ok(BodyItem::Chunk(chunk)) => Some(RequestFrame::Body(chunk)),
            Ok(BodyItem::End) => {
                self.state = State::Head;
                Some(RequestFrame::BodyEnd)
            }
            Err(e) => {
                self.state = State::Failed;
                Some(RequestFrame::Error(e))
            }
        }
    }

    fn decode_head(&mut self, src: &mut BytesMut) -> Option<RequestFrame> {
        // Blank lines before a request line are ignored (RFC 9112 §2.2).
        while src.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            let _ = src.split_to(1);
        }
        if src.is_empty() {
            return None;
        }
        let limits = *self.limits;
        let mut headers =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(src, &mut headers[..limits.max_headers]);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                let line_end = memchr_newline(src);
                if line_end.is_none() && src.len() > limits.max_request_line {
                    return self.error(
                        ErrorKind::RequestLineTooLong,
                        format!("over {} bytes", limits.max_request_line),
                    );
                }
                if src.len() > limits.max_header_size {
                    return self.error(
                        ErrorKind::HeadersTooLarge,
                        format!("over {} bytes", limits.max_header_size),
                    );
                }
                if self.started {
                    return None;
                }
                self.started = true;
                return Some(RequestFrame::HeadStarted);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return self.error(
                    ErrorKind::HeadersTooLarge,
                    format!("more than {} header fields", limits.max_headers),
                );
            }
            Err(e) => return self.error(ErrorKind::BadRequest, e.to_string()),
        };
        let line_len = memchr_newline(src).unwrap_or(len);
        if line_len > limits.max_request_line {
            return self.error(
                ErrorKind::RequestLineTooLong,
                format!("over {} bytes", limits.max_request_line),
            );
        }
        if len > limits.max_header_size {
            return self.error(
                ErrorKind::HeadersTooLarge,
                format!("over {} bytes", limits.max_header_size),
            );
        }
        let base = src.as_ptr() as usize;
        let method = req.method.unwrap_or("");
        let path = req.path.unwrap_or("");
        let path_at = path.as_ptr() as usize - base;
        let path_len = path.len();
        let version = match req.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let method = match Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(_) => return self.error(ErrorKind::BadRequest, "invalid method"),
        };
        let fields = Fields::note(base, req.headers);
        let head = src.split_to(len).freeze();
        self.started = false;
        self.heads += 1;

        let uri = match Uri::from_maybe_shared(head.slice(path_at..path_at + path_len)) {
            Ok(u) => u,
            Err(e) => return self.error(ErrorKind::BadRequest, format!("invalid target: {e}")),
        };
        // The request is built in place: its header map filled where it
        // lies rather than moved in (and a default one dropped).
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = version;
        parts.headers = header_pool::take();
        let mut framing = Framing::default();
        if let Err(e) = fields.fill(&head, &mut parts.headers, &mut framing) {
            return self.error(ErrorKind::BadRequest, e);
        }

        let body = match framing.request_body(version) {
            Ok(b) => b,
            Err((kind, detail)) => return self.error(kind, detail),
        };
        if let BodyLength::Fixed(n) = body {
            if n > limits.max_body_size {
                return self.error(
                    ErrorKind::BodyTooLarge,
                    format!("Content-Length {n} is over {} bytes", limits.max_body_size),
                );
            }
        }
        let keep_alive = framing.keep_alive(version);
        let upgrade = framing.upgrade_token && parts.headers.contains_key(header::UPGRADE);
        if body != BodyLength::Empty {
            self.state = State::Body(BodyDecoder::new(
                body,
                limits.max_body_size,
                limits.max_header_size,
            ));
        }
        Some(RequestFrame::Head(RequestHead {
            parts,
            body,
            keep_alive,
            expect_continue: framing.expect_continue && version == Version::HTTP_11,
            upgrade,
        }))
    }
}

/// The index of the first `\n` in `buf`.
fn memchr_newline(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in pieces of `step` bytes; each frame described
    /// as text.
    fn frames(input: &[u8], step: usize, limits: Limits) -> Vec<String> {
        let mut decoder = RequestDecoder::new(Rc::new(limits));
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut body = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = decoder.decode(&mut buf) {
                match frame {
                    RequestFrame::Head(h) => out.push(format!(
                        "{} {} {:?} {:?} ka={} expect={} upgrade={} headers={}",
                        h.parts.method,
                        h.parts.uri,
                        h.parts.version,
                        h.body,
                        h.keep_alive,
                        h.expect_continue,
                        h.upgrade,
                        h.parts.headers.len()
                    )),
                    RequestFrame::HeadStarted => {}
                    RequestFrame::Body(b) => body.extend_from_slice(&b),
                    RequestFrame::BodyEnd => {
                        out.push(format!("body {:?}", String::from_utf8_lossy(&body)));
                        body.clear();
                    }
                    RequestFrame::Error(e) => out.push(format!("error {}", e.status().as_u16())),
                }
            }
        }
        out
    }

    const PIPELINE: &[u8] = b"\r\nGET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n\
POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello\
PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nworld\r\n3\r\n!!!\r\n0\r\nTrailer: t\r\n\r\n\
GET /d HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";

    #[test]
    fn a_pipeline_decodes_the_same_whatever_the_split() {
        let limits = Limits::default();
        let whole = frames(PIPELINE, PIPELINE.len(), limits);
        assert_eq!(
            whole,
            [
                "GET /a?x=1 HTTP/1.1 Empty ka=true expect=false upgrade=false headers=1",
                "POST /b HTTP/1.1 Fixed(5) ka=true expect=true upgrade=false headers=3",
                "body \"hello\"",
                "PUT /c HTTP/1.1 Chunked ka=false expect=false upgrade=false headers=2",
                "body \"world!!!\"",
                "GET /d HTTP/1.0 Empty ka=true expect=false upgrade=true headers=2",
            ]
        );
        for step in 1..PIPELINE.len() {
            assert_eq!(
                frames(PIPELINE, step, limits),
                whole,
                "split every {step} bytes"
            );
        }
    }

    #[test]
    fn each_limit_and_malformation_has_its_status() {
        let limits = Limits::default()
            .max_request_line(64)
            .max_header_size(256)
            .max_headers(4)
            .max_body_size(10);
        let cases: &[(&[u8], &str)] = &[
            (b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", "error 414"),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", "error 431"),
            (b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", "error 413"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n", "error 413"),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "error 400"),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "error 400"),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "error 400"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "error 501"),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "error 400"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "error 400"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", "error 400"),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "error 400"),
            (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", "error 400"),
        ];
        for (input, expected) in cases {
            let got = frames(input, input.len(), limits);
            assert_eq!(
                got.last().map(String::as_str),
                Some(*expected),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        // A head that grows past the limit without ending is refused too.
        let endless = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(frames(&endless, 7, limits).last().unwrap(), "error 431");
        let endless_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(
            frames(&endless_line, 7, limits).last().unwrap(),
            "error 414"
        );
    }

    #[test]
    fn nothing_is_decoded_after_an_error() {
        let mut decoder = RequestDecoder::new(Rc::new(Limits::default()));
        let mut buf = BytesMut::from(&b"BAD\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Some(RequestFrame::Error(_))
        ));
        assert!(decoder.decode(&mut buf).is_none());
        assert!(buf.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic_the_decoder(input in proptest::collection::vec(any::<u8>(), 0..2048), step in 1usize..64) {
            let limits = Limits::default().max_header_size(512).max_body_size(256);
            let _ = frames(&input, step, limits);
        }

        #[test]
        fn random_bytes_after_a_valid_head_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024), step in 1usize..32) {
            let input = [b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(), &tail].concat();
            let _ = frames(&input, step, Limits::default());
        }
    }
}
