//! Building a request: its URL, query, headers, body and per-request
//! options, then sending it as a future or starting it as a deferrable.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method};
use url::Url;

use crate::client::callback::HttpRequest;
use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::proxy::{basic_auth_value, Proxy};
use crate::client::response::ClientResponse;
use crate::client::send::{self, Prepared};
use crate::client::{Client, Options};

/// A body stream: pieces of the body, or the error that ends it.
pub(crate) type LocalStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>>>>;

/// What a request's URL may be given as: text (`&str`, `String`), parsed
/// once and checked when the request is built, or a [`Url`] parsed
/// already (a program that sends many requests to one URL parses it once).
/// Sealed: implemented here only.
pub trait IntoUrl: sealed::Sealed {
    #[doc(hidden)]
    fn into_url(self) -> Result<Url, String>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for url::Url {}
    impl Sealed for &url::Url {}
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, String> {
        Url::parse(self).map_err(|e| format!("{self:?}: {e}"))
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, String> {
        self.as_str().into_url()
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Result<Url, String> {
        self.as_str().into_url()
    }
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, String> {
        Ok(self)
    }
}

impl IntoUrl for &Url {
    fn into_url(self) -> Result<Url, String> {
        Ok(self.clone())
    }
}

/// A request's body: bytes, a file, or a stream (em-http-request's `body:`
/// and `file:`). Bytes and files are sent again when a 307 or 308
/// redirect asks; a stream cannot be, so such a redirect's response is
/// returned as it is.
///
/// Strings, `Vec<u8>`, `Bytes` and `&'static [u8]` convert into it.
///
/// ```
/// use em_http::RequestBody;
/// use bytes::Bytes;
///
/// let text: RequestBody = "hello".into();
/// let file = RequestBody::file("/var/log/syslog");
/// let stream = RequestBody::stream(futures::stream::iter([
///     Ok::<_, std::io::Error>(Bytes::from("a")),
///     Ok(Bytes::from("b")),
/// ]));
/// # let _ = (text, file, stream);
/// ```
pub struct RequestBody(pub(crate) BodyKind);

pub(crate) enum BodyKind {
    Empty,
    Bytes(Bytes),
    /// A file, read as it is sent, with its length as `Content-Length`.
    File(PathBuf),
    /// A stream, sent chunked unless its length is given.
    Stream(Option<LocalStream>, Option<u64>),
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BodyKind::Empty => f.write_str("RequestBody(empty)"),
            BodyKind::Bytes(b) => write!(f, "RequestBody({} bytes)", b.len()),
            BodyKind::File(p) => write!(f, "RequestBody(file {})", p.display()),
            BodyKind::Stream(_, len) => write!(f, "RequestBody(stream, length {len:?})"),
        }
    }
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody(BodyKind::Empty)
    }

    /// The file at `path`, read (on tokio's blocking pool) as the request
    /// is written, never whole into memory; its size is the
    /// `Content-Length`.
    pub fn file(path: impl Into<PathBuf>) -> RequestBody {
        RequestBody(BodyKind::File(path.into()))
    }

    /// A stream of pieces, sent with chunked transfer coding as they come
    /// (at the connection's pace: the stream is not polled while the
    /// connection's output is above its high watermark). An error from the
    /// stream ends the request with [`ClientErrorKind::RequestBody`].
    pub fn stream<S>(stream: S) -> RequestBody
    where
        S: Stream<Item = io::Result<Bytes>> + 'static,
    {
        RequestBody(BodyKind::Stream(Some(Box::pin(stream)), None))
    }

    /// A stream of exactly `length` bytes, sent with that
    /// `Content-Length`; a stream that gives more or fewer ends the request
    /// with [`ClientErrorKind::RequestBody`].
    pub fn sized_stream<S>(length: u64, stream: S) -> RequestBody
    where
        S: Stream<Item = io::Result<Bytes>> + 'static,
    {
        RequestBody(BodyKind::Stream(Some(Box::pin(stream)), Some(length)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        match &self.0 {
            BodyKind::Empty => true,
            BodyKind::Bytes(b) => b.is_empty(),
            _ => false,
        }
    }

    /// Whether the body can be sent again (a retry, a 307 or 308).
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self.0, BodyKind::Stream(..))
    }

    /// What to send now: a copy of a replayable body, or the stream itself
    /// (taken, once).
    pub(crate) fn take_for_send(&mut self) -> RequestBody {
        match &mut self.0 {
            BodyKind::Stream(stream, length) => {
                RequestBody(BodyKind::Stream(stream.take(), *length))
            }
            _ => self.replay(),
        }
    }

    /// A copy to send again, for a replayable body.
    pub(crate) fn replay(&self) -> RequestBody {
        RequestBody(match &self.0 {
            BodyKind::Empty | BodyKind::Stream(..) => BodyKind::Empty,
            BodyKind::Bytes(b) => BodyKind::Bytes(b.clone()),
            BodyKind::File(p) => BodyKind::File(p.clone()),
        })
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl From<Bytes> for RequestBody {
    fn from(b: Bytes) -> Self {
        RequestBody(BodyKind::Bytes(b))
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(b: Vec<u8>) -> Self {
        Bytes::from(b).into()
    }
}

impl From<String> for RequestBody {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for RequestBody {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<&'static [u8]> for RequestBody {
    fn from(s: &'static [u8]) -> Self {
        Bytes::from_static(s).into()
    }
}

impl From<()> for RequestBody {
    fn from(_: ()) -> Self {
        RequestBody::empty()
    }
}

/// A request being built (em-http-request's `get(head:, query:, body:,
/// …)` options as methods), from [`Client::get`] and its siblings. Finish
/// it with [`send`](RequestBuilder::send) (a future) or
/// [`start`](RequestBuilder::start) (a deferrable with callbacks). Made
/// and used on the reactor thread.
///
/// Mistakes (an invalid URL or header) are kept and reported by `send` or
/// `start` as [`ClientErrorKind::InvalidRequest`], so that a chain of
/// options needs no `?` at each step.
pub struct RequestBuilder {
    client: Client,
    method: Method,
    url: Result<Url, String>,
    headers: HeaderMap,
    body: RequestBody,
    options: Options,
    error: Option<String>,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("options", &self.options)
            .finish()
    }
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, url: impl IntoUrl) -> Self {
        let parsed = url.into_url().and_then(|u| {
            if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() {
                Ok(u)
            } else {
                Err(format!(
                    "{:?}: only http:// and https:// URLs with a host are supported",
                    u.as_str()
                ))
            }
        });
        let options = client.inner.options.clone();
        RequestBuilder {
            client,
            method,
            url: parsed,
            headers: HeaderMap::new(),
            body: RequestBody::empty(),
            options,
            error: None,
        }
    }

    /// Adds a header (em-http-request's `head:`); it replaces the client's
    /// default of the same name. Several calls with one name send each value.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => self.error = Some("an invalid header name or value".into()),
        }
        self
    }

    /// Adds every header of `headers`.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (name, value) in &headers {
            self.headers.append(name.clone(), value.clone());
        }
        self
    }

    /// Adds query pairs to the URL, percent-encoded (em-http-request's
    /// `query:`).
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if let Ok(url) = &mut self.url {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// The body.
    pub fn body(mut self, body: impl Into<RequestBody>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body (serde), with `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.body = bytes.into();
                if !self.headers.contains_key(CONTENT_TYPE) {
                    self.headers
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            Err(e) => self.error = Some(format!("the JSON body: {e}")),
        }
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let mut encoder = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            encoder.append_pair(k.as_ref(), v.as_ref());
        }
        self.body = encoder.finish().into();
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// `Authorization: Basic` (em-http-request's `head: {authorization:
    /// [user, password]}`). Credentials in the URL (`http://user:pw@host/`)
    /// are sent the same way.
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        self.headers
            .insert(AUTHORIZATION, basic_auth_value(user, password));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer_auth(self, token: &str) -> Self {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map(|mut v| {
            v.set_sensitive(true);
            v
        });
        match value {
            Ok(v) => self.header(AUTHORIZATION, v),
            Err(_) => RequestBuilder {
                error: Some("an invalid bearer token".into()),
                ..self
            },
        }
    }

    /// This request's connect timeout (see [`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout)).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// This request's inactivity timeout.
    pub fn inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.options.inactivity_timeout = timeout;
        self
    }

    /// This request's overall deadline, body included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// How many redirects this request follows (em-http-request's
    /// `redirects:`).
    pub fn redirects(mut self, max: usize) -> Self {
        self.options.redirects = max;
        self
    }

    /// Whether this request's connection may be kept for others
    /// (em-http-request's `keepalive:`).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.options.keep_alive = on;
        self
    }

    /// Whether a gzip or deflate body is decoded.
    pub fn decompress(mut self, on: bool) -> Self {
        self.options.decompress = on;
        self
    }

    /// Sends this request through `proxy`.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.options.proxy = Some(std::rc::Rc::new(proxy));
        self
    }

    /// Sends this request without the client's proxy.
    pub fn no_proxy(mut self) -> Self {
        self.options.proxy = None;
        self
    }

    pub(crate) fn prepare(self) -> ClientResult<Prepared> {
        let named = |e: ClientError, url: &Result<Url, String>| {
            e.for_request(&self.method, url.as_ref().map_or("", |u| u.as_str()))
        };
        let invalid = |detail: String| ClientError::new(ClientErrorKind::InvalidRequest, detail);
        if let Err(e) = crate::client::check_client(&self.client.inner) {
            return Err(named(e, &self.url));
        }
        if let Some(e) = &self.error {
            return Err(named(invalid(e.clone()), &self.url));
        }
        let mut url = match self.url {
            Ok(u) => u,
            Err(e) => return Err(invalid(e).for_request(&self.method, "")),
        };
        let mut headers = self.headers;
        if !url.username().is_empty() {
            if !headers.contains_key(AUTHORIZATION) {
                let user = crate::client::proxy::percent_decode(url.username());
                let password = url.password().map(crate::client::proxy::percent_decode);
                headers.insert(AUTHORIZATION, basic_auth_value(&user, password.as_deref()));
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        if url.fragment().is_some() {
            url.set_fragment(None);
        }
        // The body's framing is the client's to write.
        if !headers.is_empty() {
            headers.remove(CONTENT_LENGTH);
            headers.remove(TRANSFER_ENCODING);
        }
        Ok(Prepared {
            client: self.client,
            method: self.method,
            url,
            headers,
            body: self.body,
            options: self.options,
        })
    }

    /// Sends the request: a future of the response, resolved when its head
    /// arrives (after redirects), its body to be read from it. Await it on
    /// the reactor (in `em::spawn`, a handler's future, `em::synchrony`):
    /// em-synchrony's `sync` style. Errors: a [`ClientError`] naming the
    /// phase that failed.
    ///
    /// Dropping the future cancels the request (its connection is closed
    /// unless others are pipelined on it).
    pub async fn send(self) -> ClientResult<ClientResponse> {
        let prepared = self.prepare()?;
        send::execute(prepared).await
    }

    /// Starts the request and returns its deferrable (em-http-request's
    /// style): register `callback`, `errback`, `headers` and `stream` on
    /// it. Reactor thread only; outside a running reactor the request
    /// fails at once (its errback runs).
    pub fn start(self) -> HttpRequest {
        HttpRequest::start(self)
    }
}
