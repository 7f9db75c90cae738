//! A response as the client gives it: its head at once, its body read as
//! it arrives (a piece at a time, as a `Stream`, or whole), decoded from
//! gzip or deflate on the way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, Version};
use tokio::time::{Instant, Sleep};
use url::Url;

use crate::client::decompress::Decoder;
use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::exchange::ExchangeGuard;

/// An HTTP response (em-http-request's `response_header` and `response`):
/// the head, and the body still to read. `!Send`; read it on the reactor
/// thread.
///
/// The body arrives as it is read from the connection; the connection
/// stops reading while 256 KiB wait unread here, so a slow reader holds
/// back a fast server instead of filling memory. Read it once, by one of:
/// [`chunk`](ClientResponse::chunk) (a piece at a time),
/// [`into_stream`](ClientResponse::into_stream) (a `Stream`),
/// [`bytes`](ClientResponse::bytes), [`text`](ClientResponse::text) or
/// [`json`](ClientResponse::json) (whole, within
/// [`ClientLimits::max_body_size`](crate::ClientLimits::max_body_size)).
/// Dropping it unread closes the connection (or, with requests pipelined
/// behind it, reads the rest and drops it).
pub struct ClientResponse {
    parts: http::response::Parts,
    method: http::Method,
    /// Shared with the body's stream (which names it in its errors).
    url: Rc<Url>,
    body: Body,
}

// The streaming variant is the common one: boxing it would cost an
// allocation per response.
#[allow(clippy::large_enum_variant)]
enum Body {
    Streaming(ResponseStream),
    Buffered(Bytes),
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse")
            .field("url", &self.url.as_str())
            .field("status", &self.parts.status)
            .field("version", &self.parts.version)
            .field("headers", &self.parts.headers)
            .finish()
    }
}

impl ClientResponse {
    pub(crate) fn new(
        parts: http::response::Parts,
        method: http::Method,
        url: Rc<Url>,
        stream: ResponseStream,
    ) -> Self {
        ClientResponse {
            parts,
            method,
            url,
            body: Body::Streaming(stream),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.parts.status
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.parts.version
    }

    /// The headers. A body em-http decoded from gzip or deflate has its
    /// `content-encoding` and `content-length` removed.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The URL that answered: the request's, or the last redirect's.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The head's parts (status, version, headers, extensions).
    pub fn parts(&self) -> &http::response::Parts {
        &self.parts
    }

    /// The `Content-Length` the server declared, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.parts
            .headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The body, once read whole by [`buffer`](ClientResponse::buffer)
    /// (as [`Multi`](crate::Multi) and the callback style do).
    pub fn body(&self) -> Option<&Bytes> {
        match &self.body {
            Body::Buffered(b) => Some(b),
            Body::Streaming(_) => None,
        }
    }

    /// The next piece of the body, `None` at its end. Errors: the
    /// connection failed, a timeout, bad gzip.
    pub async fn chunk(&mut self) -> ClientResult<Option<Bytes>> {
        match &mut self.body {
            Body::Streaming(s) => s.next().await.transpose(),
            Body::Buffered(b) => Ok((!b.is_empty()).then(|| std::mem::take(b))),
        }
    }

    /// The body as a `Stream` of pieces.
    pub fn into_stream(self) -> ResponseStream {
        match self.body {
            Body::Streaming(s) => s,
            Body::Buffered(b) => ResponseStream::buffered(b),
        }
    }

    /// Reads the rest of the body into memory (within
    /// [`ClientLimits::max_body_size`](crate::ClientLimits::max_body_size)),
    /// where [`body`](ClientResponse::body) gives it.
    pub async fn buffer(&mut self) -> ClientResult<&Bytes> {
        let declared = self.content_length();
        if let Body::Streaming(stream) = &mut self.body {
            let limit = stream.limit;
            if declared.is_some_and(|n| n > limit) && stream.decoder.is_none() {
                return Err(stream.error(ClientError::new(
                    ClientErrorKind::BodyTooLarge,
                    format!("Content-Length over {limit} bytes"),
                )));
            }
            let mut all = BytesMut::new();
            while let Some(piece) = stream.next().await {
                let piece = piece?;
                if all.len() as u64 + piece.len() as u64 > limit {
                    return Err(stream.error(ClientError::new(
                        ClientErrorKind::BodyTooLarge,
                        format!("over {limit} bytes"),
                    )));
                }
                if all.is_empty() {
                    all = BytesMut::from(piece);
                } else {
                    all.extend_from_slice(&piece);
                }
            }
            self.body = Body::Buffered(all.freeze());
        }
        match &self.body {
            Body::Buffered(b) => Ok(b),
            Body::Streaming(_) => unreachable!("buffered above"),
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> ClientResult<Bytes> {
        self.buffer().await?;
        match self.body {
            Body::Buffered(b) => Ok(b),
            Body::Streaming(_) => unreachable!("buffered above"),
        }
    }

    /// The whole body as UTF-8 text. Errors with
    /// [`ClientErrorKind::Decode`] if it is not UTF-8.
    pub async fn text(self) -> ClientResult<String> {
        let (method, url) = (self.method.clone(), self.url.to_string());
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into()).map_err(|e| {
            ClientError::new(ClientErrorKind::Decode, format!("not UTF-8: {e}"))
                .for_request(&method, &url)
        })
    }

    /// The whole body parsed as JSON (serde). Errors with
    /// [`ClientErrorKind::Decode`] if it does not parse as a `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> ClientResult<T> {
        let (method, url) = (self.method.clone(), self.url.to_string());
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::new(ClientErrorKind::Decode, format!("JSON: {e}"))
                .for_request(&method, &url)
        })
    }

    /// Reads and drops a small rest of the body so that the connection can
    /// be reused (a redirect's body); a large one is dropped with its
    /// connection.
    pub(crate) async fn discard(mut self) {
        const MOST: usize = 64 * 1024;
        let mut seen = 0;
        if let Body::Streaming(stream) = &mut self.body {
            stream.decoder = None;
            while let Some(Ok(piece)) = stream.next().await {
                seen += piece.len();
                if seen > MOST {
                    return;
                }
            }
        }
    }
}

/// A response's body as a `Stream` of pieces (`Result<Bytes, ClientError>`),
/// from [`ClientResponse::into_stream`]. `!Send`; poll it on the reactor
/// thread. Dropping it early closes the connection (see
/// [`ClientResponse`]).
pub struct ResponseStream {
    exchange: Option<ExchangeGuard>,
    decoder: Option<Box<Decoder>>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// What is left of a buffered body.
    buffered: Option<Bytes>,
    limit: u64,
    method: http::Method,
    url: Option<Rc<Url>>,
    done: bool,
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("url", &self.url.as_deref().map(Url::as_str))
            .field("decoder", &self.decoder)
            .field("done", &self.done)
            .finish()
    }
}

impl ResponseStream {
    pub(crate) fn new(
        exchange: ExchangeGuard,
        decoder: Option<Box<Decoder>>,
        deadline: Option<Instant>,
        limit: u64,
        method: http::Method,
        url: Rc<Url>,
    ) -> Self {
        ResponseStream {
            exchange: Some(exchange),
            decoder,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            buffered: None,
            limit,
            method,
            url: Some(url),
            done: false,
        }
    }

    fn buffered(bytes: Bytes) -> Self {
        ResponseStream {
            exchange: None,
            decoder: None,
            deadline: None,
            buffered: Some(bytes),
            limit: u64::MAX,
            method: http::Method::GET,
            url: None,
            done: false,
        }
    }

    fn error(&mut self, e: ClientError) -> ClientError {
        self.done = true;
        self.exchange = None;
        self.named(e)
    }

    /// `e`, naming this response's request.
    fn named(&self, e: ClientError) -> ClientError {
        match &self.url {
            Some(url) => e.for_request(&self.method, url.as_str()),
            None => e,
        }
    }
}

impl Stream for ResponseStream {
    type Item = ClientResult<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(rest) = this.buffered.take() {
            this.done = true;
            return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                let e = ClientError::new(ClientErrorKind::Deadline, "while reading the body");
                return Poll::Ready(Some(Err(this.error(e))));
            }
        }
        let Some(exchange) = &this.exchange else {
            return Poll::Ready(None);
        };
        loop {
            match exchange.0.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(piece))) => {
                    let Some(decoder) = &mut this.decoder else {
                        return Poll::Ready(Some(Ok(piece)));
                    };
                    match decoder.feed(&piece) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(out))),
                        Err(e) => {
                            let e = ClientError::new(ClientErrorKind::Decode, e.to_string());
                            return Poll::Ready(Some(Err(this.error(e))));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(this.error(e)))),
                Poll::Ready(None) => {
                    this.done = true;
                    this.exchange = None;
                    if let Some(mut decoder) = this.decoder.take() {
                        match decoder.finish() {
                            Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(out))),
                            Ok(_) => {}
                            Err(e) => {
                                let e = ClientError::new(ClientErrorKind::Decode, e.to_string());
                                return Poll::Ready(Some(Err(this.named(e))));
                            }
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}
