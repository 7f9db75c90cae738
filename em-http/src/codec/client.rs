//! The client's codec: requests out, responses in. Responses are read with
//! httparse and the body decoder the server uses for requests; each
//! request written tells the decoder what its response may carry (none
//! for `HEAD`, a tunnel for `CONNECT`).

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode, Version};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::body::{BodyDecoder, BodyItem, BodyLength, Framing};
use crate::codec::head::Fields;
use crate::codec::response::Outgoing;
use crate::error::{ErrorKind, HttpError};
use crate::limits::MAX_HEADERS_CEILING;

/// What the response to a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A body framed by its headers.
    Body,
    /// No body whatever the headers say (`HEAD`).
    HeadOnly,
    /// A `CONNECT`: a 2xx answer has no body (the connection becomes a
    /// tunnel, and what follows is the client's to start, as TLS).
    Tunnel,
}

/// A response's head as the client needs it.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) parts: http::response::Parts,
    /// How the body is framed.
    pub(crate) body: BodyLength,
    /// The server allows the connection to stay open after this exchange.
    pub(crate) keep_alive: bool,
}

/// What the client's connection receives.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum ClientFrame {
    /// A final response's head (interim `1xx` responses are skipped); its
    /// body follows as `Body` frames and a `BodyEnd`.
    Head(ResponseHead),
    /// A piece of the current response's body.
    Body(Bytes),
    /// The current response's body is complete.
    BodyEnd,
    /// The response cannot be read; nothing more is decoded.
    Error(HttpError),
}

#[derive(Debug)]
enum State {
    Head,
    Body(BodyDecoder),
    Failed,
}

/// One client connection's codec.
#[derive(Debug)]
pub(crate) struct ClientCodec {
    /// What each request written and not yet answered expects, oldest
    /// first.
    expect: VecDeque<Expect>,
    state: State,
    max_header_size: usize,
    max_headers: usize,
}

/// Something the client writes.
#[derive(Debug)]
pub(crate) enum RequestOut<'a> {
    /// A request line and headers, then a whole body (empty for none or
    /// for one that follows as `Body` items).
    Head {
        method: &'a Method,
        /// The request target: origin form (`/path?q`), or absolute form
        /// through a proxy, or authority form for `CONNECT`.
        target: &'a str,
        fields: HeadFields<'a>,
        body: &'a [u8],
        expect: Expect,
    },
    /// A piece of a body: raw bytes, a chunk of a chunked body, or its end.
    Body(Outgoing<'a>),
}

/// A request head's fields, written in this order without being merged
/// into one map first (a request seldom has fields of its own, and the
/// merge cost more than the rest of the head): the request's own, then
/// each default whose name the request does not have, then those the
/// client adds (`Host`, the body's framing…).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadFields<'a> {
    pub(crate) own: &'a HeaderMap,
    pub(crate) defaults: Option<&'a HeaderMap>,
    pub(crate) added: &'a [(HeaderName, HeaderValue)],
}

impl<'a> HeadFields<'a> {
    /// Only `own`.
    pub(crate) fn only(own: &'a HeaderMap) -> Self {
        HeadFields {
            own,
            defaults: None,
            added: &[],
        }
    }

    /// Whether the request has a field `name` of its own or by default.
    pub(crate) fn has(&self, name: &HeaderName) -> bool {
        self.own.contains_key(name) || self.defaults.is_some_and(|d| d.contains_key(name))
    }

    fn len(&self) -> usize {
        self.own.len() + self.defaults.map_or(0, HeaderMap::len) + self.added.len()
    }
}

impl ClientCodec {
    pub(crate) fn new(max_header_size: usize, max_headers: usize) -> Self {
        ClientCodec {
            expect: VecDeque::new(),
            state: State::Head,
            max_header_size,
            max_headers: max_headers.clamp(1, MAX_HEADERS_CEILING),
        }
    }

    fn error(&mut self, kind: ErrorKind, detail: impl Into<String>) -> Option<ClientFrame> {
        self.state = State::Failed;
        Some(ClientFrame::Error(HttpError::new(kind, detail)))
    }

    fn decode_head(&mut self, src: &mut BytesMut) -> Option<ClientFrame> {
        loop {
            if src.is_empty() {
                return None;
            }
            let Some(&expect) = self.expect.front() else {
                return self.error(
                    ErrorKind::BadRequest,
                    "the server sent bytes when no request was waiting",
                );
            };
            let mut headers =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
            let mut res = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut res,
                src,
                &mut headers[..self.max_headers],
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => {
                    if src.len() > self.max_header_size {
                        return self.error(
                            ErrorKind::HeadersTooLarge,
                            format!("response head over {} bytes", self.max_header_size),
                        );
                    }
                    return None;
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return self.error(
                        ErrorKind::HeadersTooLarge,
                        format!("more than {} header fields", self.max_headers),
                    );
                }
                Err(e) => {
                    return self.error(ErrorKind::BadRequest, format!("invalid response head: {e}"))
                }
            };
            if len > self.max_header_size {
                return self.error(
                    ErrorKind::HeadersTooLarge,
                    format!("response head over {} bytes", self.max_header_size),
                );
            }
            let code = res.code.unwrap_or(0);
            let Ok(status) = StatusCode::from_u16(code) else {
                return self.error(ErrorKind::BadRequest, format!("invalid status {code}"));
            };
            let version = match res.version {
                Some(0) => Version::HTTP_10,
                _ => Version::HTTP_11,
            };
            let fields = Fields::note(src.as_ptr() as usize, res.headers);
            let head = src.split_to(len).freeze();
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                // `100 Continue`, `103 Early Hints`: the final answer follows.
                let _ = fields.fill(&head, &mut HeaderMap::new(), &mut Framing::default());
                continue;
            }
            let (mut parts, ()) = Response::new(()).into_parts();
            parts.status = status;
            parts.version = version;
            let mut framing = Framing::default();
            if let Err(e) = fields.fill(&head, &mut parts.headers, &mut framing) {
                return self.error(ErrorKind::BadRequest, e);
            }
            self.expect.pop_front();
            let no_body = expect == Expect::HeadOnly
                || status.is_informational()
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED;
            let tunnel = expect == Expect::Tunnel && status.is_success();
            let body = if no_body || tunnel {
                BodyLength::Empty
            } else {
                match framing.response_body() {
                    Ok(b) => b,
                    Err((kind, detail)) => return self.error(kind, detail),
                }
            };
            // After `101 Switching Protocols` the connection is no longer
            // HTTP: it is never reused.
            let keep_alive = framing.keep_alive(version)
                && body != BodyLength::UntilClose
                && status != StatusCode::SWITCHING_PROTOCOLS;
            self.state = if body == BodyLength::Empty {
                State::Head
            } else {
                // Trailers may take as much as a head; the body's size is
                // bounded where it is collected, not here.
                State::Body(BodyDecoder::new(body, u64::MAX, self.max_header_size))
            };
            return Some(ClientFrame::Head(ResponseHead {
                parts,
                body,
                keep_alive,
            }));
        }
    }

    fn body_frame(&mut self, item: Result<BodyItem, HttpError>) -> Option<ClientFrame> {
        match item {
            Ok(BodyItem::Chunk(chunk)) => Some(ClientFrame::Body(chunk)),
            Ok(BodyItem::End) => {
                self.state = State::Head;
                Some(ClientFrame::BodyEnd)
            }
            Err(e) => {
                self.state = State::Failed;
                Some(ClientFrame::Error(e))
            }
        }
    }
}

impl Decoder for ClientCodec {
    type Item = ClientFrame;
    type Error = io::Error;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<ClientFrame>> {
        Ok(match &mut self.state {
            State::Head => self.decode_head(src),
            State::Body(body) => match body.decode(src) {
                Some(item) => self.body_frame(item),
                None => None,
            },
            State::Failed => {
                src.clear();
                None
            }
        })
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<ClientFrame>> {
        Ok(match &mut self.state {
            State::Head => {
                let frame = self.decode_head(src);
                if frame.is_none() && !src.is_empty() {
                    src.clear();
                    return Ok(self.error(
                        ErrorKind::Truncated,
                        "the connection ended inside a response head",
                    ));
                }
                frame
            }
            State::Body(body) => match body.decode_eof(src) {
                Some(item) => self.body_frame(item),
                None => None,
            },
            State::Failed => {
                src.clear();
                None
            }
        })
    }
}

impl Encoder<RequestOut<'_>> for ClientCodec {
    type Error = io::Error;

    #[inline]
    fn encode(&mut self, item: RequestOut<'_>, dst: &mut BytesMut) -> io::Result<()> {
        match item {
            RequestOut::Head {
                method,
                target,
                fields,
                body,
                expect,
            } => {
                self.expect.push_back(expect);
                encode_head(method, target, fields, body, dst);
            }
            RequestOut::Body(out) => out.encode(dst),
        }
        Ok(())
    }
}

fn encode_head(
    method: &Method,
    target: &str,
    fields: HeadFields<'_>,
    body: &[u8],
    dst: &mut BytesMut,
) {
    fn field(dst: &mut BytesMut, name: &HeaderName, value: &HeaderValue) {
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
    dst.reserve(64 + target.len() + 32 * fields.len() + body.len());
    dst.put_slice(method.as_str().as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(target.as_bytes());
    dst.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in fields.own {
        field(dst, name, value);
    }
    if let Some(defaults) = fields.defaults {
        for (name, value) in defaults {
            if !fields.own.contains_key(name) {
                field(dst, name, value);
            }
        }
    }
    for (name, value) in fields.added {
        field(dst, name, value);
    }
    dst.put_slice(b"\r\n");
    dst.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed `step` bytes at a time, for requests expecting
    /// `expects`, then the end of the connection; each frame as text.
    fn frames(expects: &[Expect], input: &[u8], step: usize) -> Vec<String> {
        let mut codec = ClientCodec::new(4096, 20);
        codec.expect.extend(expects.iter().copied());
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut body = Vec::new();
        let mut push = |frame: ClientFrame, out: &mut Vec<String>| match frame {
            ClientFrame::Head(h) => out.push(format!(
                "{} {:?} {:?} ka={} headers={}",
                h.parts.status.as_u16(),
                h.parts.version,
                h.body,
                h.keep_alive,
                h.parts.headers.len()
            )),
            ClientFrame::Body(b) => body.extend_from_slice(&b),
            ClientFrame::BodyEnd => {
                out.push(format!("body {:?}", String::from_utf8_lossy(&body)));
                body.clear();
            }
            ClientFrame::Error(e) => out.push(format!("error {e}")),
        };
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                push(frame, &mut out);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            push(frame, &mut out);
        }
        out
    }

    const RESPONSES: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nworld\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n\
HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end";

    #[test]
    fn responses_decode_the_same_whatever_the_split() {
        let expects = [
            Expect::Body,
            Expect::HeadOnly,
            Expect::Body,
            Expect::Body,
            Expect::Body,
        ];
        let whole = frames(&expects, RESPONSES, RESPONSES.len());
        assert_eq!(
            whole,
            [
                "200 HTTP/1.1 Fixed(5) ka=true headers=1",
                "body \"hello\"",
                "200 HTTP/1.1 Empty ka=true headers=1",
                "204 HTTP/1.1 Empty ka=true headers=0",
                "200 HTTP/1.1 Chunked ka=true headers=1",
                "body \"world!\"",
                "200 HTTP/1.0 UntilClose ka=false headers=1",
                "body \"until the end\"",
            ]
        );
        for step in 1..RESPONSES.len() {
            assert_eq!(
                frames(&expects, RESPONSES, step),
                whole,
                "split every {step} bytes"
            );
        }
    }

    #[test]
    fn bad_responses_are_errors() {
        let cases: &[(&[Expect], &[u8], &str)] = &[
            (
                &[],
                b"HTTP/1.1 200 OK\r\n\r\n",
                "error bad request: the server sent bytes when no request was waiting",
            ),
            (
                &[Expect::Body],
                b"garbage\r\n\r\n",
                "error bad request: invalid response head: invalid HTTP version",
            ),
            (
                &[Expect::Body],
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "error bad request: conflicting Content-Length values",
            ),
            (
                &[Expect::Body],
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "error bad request: both Transfer-Encoding and Content-Length",
            ),
            (
                &[Expect::Body],
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "error bad request: invalid chunk size",
            ),
            (
                &[Expect::Body],
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "error request body truncated: the connection ended inside the body",
            ),
            (
                &[Expect::Body],
                b"HTTP/1.1 200 OK\r\nConten",
                "error request body truncated: the connection ended inside a response head",
            ),
        ];
        for (expects, input, want) in cases {
            let got = frames(expects, input, input.len());
            assert_eq!(
                got.last().map(String::as_str),
                Some(*want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let many: Vec<u8> = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &b"A: 1\r\n".repeat(21),
            b"\r\n",
        ]
        .concat();
        assert!(frames(&[Expect::Body], &many, 7)
            .last()
            .unwrap()
            .contains("more than 20 header fields"));
        let huge: Vec<u8> = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 5000]].concat();
        assert!(frames(&[Expect::Body], &huge, 100)
            .last()
            .unwrap()
            .contains("over 4096 bytes"));
    }

    #[test]
    fn a_tunnel_answer_has_no_body_and_a_refusal_has_one() {
        let ok = frames(
            &[Expect::Tunnel],
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            1,
        );
        assert_eq!(ok, ["200 HTTP/1.1 Empty ka=true headers=0"]);
        let refused = frames(
            &[Expect::Tunnel],
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno",
            3,
        );
        assert_eq!(
            refused,
            ["407 HTTP/1.1 Fixed(2) ka=true headers=1", "body \"no\""]
        );
        let switched = frames(
            &[Expect::Body],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            5,
        );
        assert_eq!(switched, ["101 HTTP/1.1 Empty ka=false headers=1"]);
    }

    #[test]
    fn a_request_is_written_with_its_head_and_body() {
        let mut codec = ClientCodec::new(4096, 20);
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.com".parse().unwrap());
        headers.insert("content-length", "2".parse().unwrap());
        let mut dst = BytesMut::new();
        codec
            .encode(
                RequestOut::Head {
                    method: &Method::POST,
                    target: "/a?b=c",
                    fields: HeadFields::only(&headers),
                    body: b"hi",
                    expect: Expect::Body,
                },
                &mut dst,
            )
            .unwrap();
        codec
            .encode(RequestOut::Body(Outgoing::Chunk(b"xyz")), &mut dst)
            .unwrap();
        assert_eq!(
            &dst[..],
            b"POST /a?b=c HTTP/1.1\r\nhost: example.com\r\ncontent-length: 2\r\n\r\nhi3\r\nxyz\r\n"
        );
        assert_eq!(codec.expect.len(), 1);
    }

    #[test]
    fn defaults_the_request_does_not_override_and_added_fields_follow_its_own() {
        let mut codec = ClientCodec::new(4096, 20);
        let mut own = HeaderMap::new();
        own.insert("user-agent", "mine".parse().unwrap());
        let mut defaults = HeaderMap::new();
        defaults.insert("user-agent", "em-http".parse().unwrap());
        defaults.append("x-default", "1".parse().unwrap());
        defaults.append("x-default", "2".parse().unwrap());
        let added = [(http::header::HOST, HeaderValue::from_static("h:8080"))];
        let mut dst = BytesMut::new();
        codec
            .encode(
                RequestOut::Head {
                    method: &Method::GET,
                    target: "/",
                    fields: HeadFields {
                        own: &own,
                        defaults: Some(&defaults),
                        added: &added,
                    },
                    body: b"",
                    expect: Expect::Body,
                },
                &mut dst,
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&dst).unwrap(),
            "GET / HTTP/1.1\r\nuser-agent: mine\r\nx-default: 1\r\nx-default: 2\r\nhost: h:8080\r\n\r\n"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic_the_decoder(input in proptest::collection::vec(any::<u8>(), 0..2048), step in 1usize..64) {
            let _ = frames(&[Expect::Body, Expect::HeadOnly, Expect::Body], &input, step);
        }

        #[test]
        fn random_bytes_after_a_valid_head_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024), step in 1usize..32) {
            let input = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(), &tail].concat();
            let _ = frames(&[Expect::Body, Expect::Body], &input, step);
        }
    }
}
