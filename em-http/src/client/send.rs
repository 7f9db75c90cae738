//! Sending a request, the engine under both styles: the deadline, the
//! redirect loop, one attempt on a pooled or new connection (retried once
//! on a fresh one when a reused connection turns out closed), the request
//! written, and its body streamed at the connection's pace.

use std::future::poll_fn;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::HeaderName;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method};
use tokio::time::Instant;
use url::Url;

use crate::client::connect;
use crate::client::connection::ConnShared;
use crate::client::decompress::Decoder;
use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::exchange::{Exchange, ExchangeGuard};
use crate::client::pool::PoolKey;
use crate::client::redirect;
use crate::client::request::{BodyKind, LocalStream, RequestBody};
use crate::client::response::{ClientResponse, ResponseStream};
use crate::client::{Client, Options};
use crate::codec::client::{Expect, HeadFields, RequestOut};
use crate::codec::Outgoing;

/// A request ready to send.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) client: Client,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: RequestBody,
    pub(crate) options: Options,
}

/// Sends `request`, following redirects, within its deadline.
pub(crate) async fn execute(request: Prepared) -> ClientResult<ClientResponse> {
    // Errors from `follow` name their request (the redirect that failed);
    // the deadline's names the first one.
    let Some(limit) = request.options.deadline else {
        return follow(request, None).await;
    };
    let at = Instant::now() + limit;
    let (method, url) = (request.method.clone(), request.url.to_string());
    match tokio::time::timeout_at(at, follow(request, Some(at))).await {
        Ok(result) => result,
        Err(_) => Err(
            ClientError::new(ClientErrorKind::Deadline, "before the response arrived")
                .for_request(&method, &url),
        ),
    }
}

async fn follow(mut request: Prepared, deadline: Option<Instant>) -> ClientResult<ClientResponse> {
    let mut hops = 0;
    loop {
        let response = attempt(&mut request, deadline)
            .await
            .map_err(|e| e.for_request(&request.method, request.url.as_str()))?;
        #[cfg(feature = "cookies")]
        if let Some(jar) = &request.client.inner.cookies {
            jar.store_from(&request.url, response.headers());
        }
        if request.options.redirects == 0 {
            return Ok(response);
        }
        let Some(hop) = redirect::next(
            response.status(),
            response.headers(),
            &request.method,
            &request.url,
        ) else {
            return Ok(response);
        };
        if hop.keep_body && !request.body.replayable() {
            // A streamed body cannot be sent again: the redirect is the
            // answer.
            return Ok(response);
        }
        if hops == request.options.redirects {
            return Err(ClientError::new(
                ClientErrorKind::TooManyRedirects,
                format!("more than {}", request.options.redirects),
            )
            .for_request(&request.method, request.url.as_str()));
        }
        hops += 1;
        Box::pin(response.discard()).await;
        redirect::carry_headers(&mut request.headers, &hop, &request.url);
        request.body = if hop.keep_body {
            request.body.replay()
        } else {
            RequestBody::empty()
        };
        request.url = hop.url;
        request.method = hop.method;
    }
}

/// What failed in one try, and whether another connection may be tried.
struct Failed {
    error: ClientError,
    retry: bool,
}

/// One request (no redirect): on an idle pooled connection when there is
/// one (once more on a new connection if it turns out closed before
/// answering), else on a new one.
async fn attempt(
    request: &mut Prepared,
    deadline: Option<Instant>,
) -> ClientResult<ClientResponse> {
    let inner = &request.client.inner;
    let https = request.url.scheme() == "https";
    let host = request
        .url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request
        .url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let proxy = request.options.proxy.as_ref().map(|p| {
        let (host, port) = p.addr();
        (host.to_owned(), port, p.is_socks())
    });
    let key = PoolKey {
        https,
        host,
        port,
        proxy,
    };
    let idempotent = matches!(
        request.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let pipelinable = matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS)
        && request.body.is_empty();
    for tries in 0.. {
        let mut pooled = if request.options.keep_alive {
            inner.pool.checkout(&key, pipelinable)
        } else {
            None
        };
        if pooled.is_none() && pipelinable && request.options.keep_alive {
            // A connection another request is opening has room: wait for
            // it rather than open one more, then take it if it still has.
            // If its setup fails, this request opens its own (with its
            // own timeouts) rather than share another request's failure.
            if let Some(opening) = inner.pool.joinable(&key) {
                if opening.join_setup().await.is_ok() {
                    pooled = inner.pool.checkout(&key, pipelinable);
                }
            }
        }
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            // Boxed: a new connection's setup (DNS, connect, tunnel, TLS)
            // is a large future, and requests on pooled connections, the
            // common case, should not carry its room.
            None => Box::pin(connect::establish(inner, &key, &request.options)).await?,
        };
        let body = request.body.take_for_send();
        match exchange(request, &conn, &key, body, deadline).await {
            Ok(response) => return Ok(response),
            Err(failed) => {
                let again =
                    failed.retry && reused && idempotent && request.body.replayable() && tries == 0;
                if !again {
                    return Err(failed.error);
                }
                tracing::debug!(url = %request.url, "a reused connection was closed; trying a new one");
            }
        }
    }
    unreachable!("the loop returns")
}

/// A file body: its stream, read 64 KiB at a time, and its length.
async fn open_file(path: std::path::PathBuf) -> ClientResult<(LocalStream, u64)> {
    let failed = |e: &std::io::Error| {
        ClientError::new(
            ClientErrorKind::RequestBody,
            format!("{}: {e}", path.display()),
        )
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| failed(&e).with_source(e))?;
    let len = file.metadata().await.map_err(|e| failed(&e))?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Ok((Box::pin(stream) as LocalStream, len))
}

/// Writes the request on `conn` and waits for its response's head.
async fn exchange(
    request: &Prepared,
    conn: &Rc<ConnShared>,
    key: &PoolKey,
    body: RequestBody,
    deadline: Option<Instant>,
) -> Result<ClientResponse, Failed> {
    let fail = |error: ClientError| Failed {
        error,
        retry: false,
    };
    let inner = &request.client.inner;
    let options = &request.options;
    conn.set_inactivity_timeout(options.inactivity_timeout);

    // The body's framing, and its source when it is not in memory.
    let (bytes, source, length): (Bytes, Option<LocalStream>, Option<u64>) = match body.0 {
        BodyKind::Empty => (Bytes::new(), None, Some(0)),
        BodyKind::Bytes(b) => {
            let n = b.len() as u64;
            (b, None, Some(n))
        }
        BodyKind::File(path) => {
            // Boxed: the file's opening is a large future few requests need.
            let (stream, len) = Box::pin(open_file(path)).await.map_err(fail)?;
            (Bytes::new(), Some(stream), Some(len))
        }
        BodyKind::Stream(stream, length) => (Bytes::new(), stream, length),
    };

    // The request's own fields, the client's defaults it does not
    // override, then these (see `HeadFields`).
    let fields = HeadFields {
        own: &request.headers,
        defaults: (!inner.headers.is_empty()).then_some(&inner.headers),
        added: &[],
    };
    let mut added: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(4);
    if !fields.has(&HOST) {
        // `host[:port]` as the URL has it (no port when it is the
        // scheme's default).
        let host = &request.url[url::Position::BeforeHost..url::Position::AfterPort];
        if let Ok(v) = HeaderValue::from_str(host) {
            added.push((HOST, v));
        }
    }
    if options.decompress && request.method != Method::HEAD && !fields.has(&ACCEPT_ENCODING) {
        added.push((ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate")));
    }
    if !options.keep_alive && !fields.has(&CONNECTION) {
        added.push((CONNECTION, HeaderValue::from_static("close")));
    }
    match length {
        Some(0) if source.is_none() => {
            if matches!(request.method, Method::POST | Method::PUT | Method::PATCH) {
                added.push((CONTENT_LENGTH, HeaderValue::from(0u64)));
            }
        }
        Some(n) => added.push((CONTENT_LENGTH, HeaderValue::from(n))),
        None => added.push((TRANSFER_ENCODING, HeaderValue::from_static("chunked"))),
    }
    let through_proxy = key.http_proxy() && !key.https;
    if through_proxy && !fields.has(&PROXY_AUTHORIZATION) {
        if let Some(auth) = options.proxy.as_ref().and_then(|p| p.authorization()) {
            added.push((PROXY_AUTHORIZATION, auth.clone()));
        }
    }
    #[cfg(feature = "cookies")]
    if let Some(jar) = &inner.cookies {
        if !fields.has(&http::header::COOKIE) {
            if let Some(cookies) = jar.header_for(&request.url) {
                added.push((http::header::COOKIE, cookies));
            }
        }
    }
    let fields = HeadFields {
        added: &added,
        ..fields
    };
    let target: &str = if through_proxy {
        request.url.as_str()
    } else {
        &request.url[url::Position::BeforePath..url::Position::AfterQuery]
    };
    let expect = if request.method == Method::HEAD {
        Expect::HeadOnly
    } else {
        Expect::Body
    };

    let exchange = Exchange::new(conn);
    let guard = ExchangeGuard(exchange.clone());
    conn.send(
        exchange.clone(),
        RequestOut::Head {
            method: &request.method,
            target,
            fields,
            body: &bytes,
            expect,
        },
    )
    .map_err(|error| Failed { error, retry: true })?;
    if let Some(source) = source {
        write_body(conn.clone(), source, length);
    }

    let head = poll_fn(|cx| exchange.poll_head(cx))
        .await
        .map_err(|error| Failed {
            retry: error.kind() == ClientErrorKind::Closed && !exchange.responded(),
            error,
        })?;
    let mut parts = head.parts;
    let decoder = if options.decompress && request.method != Method::HEAD {
        Decoder::for_response(&mut parts.headers)
    } else {
        None
    };
    let url = Rc::new(request.url.clone());
    let stream = ResponseStream::new(
        guard,
        decoder,
        deadline,
        inner.limits.max_body_size,
        request.method.clone(),
        url.clone(),
    );
    Ok(ClientResponse::new(
        parts,
        request.method.clone(),
        url,
        stream,
    ))
}

/// Streams a body onto `conn` as its source yields, holding back while the
/// connection's output is above its high watermark. Runs as a task of its
/// own on the reactor, so that a response that comes before the body is
/// sent (a `413`) is read meanwhile.
fn write_body(conn: Rc<ConnShared>, mut source: LocalStream, length: Option<u64>) {
    conn.set_writing_body(true);
    let task = async move {
        let chunked = length.is_none();
        let mut sent: u64 = 0;
        let outcome: Result<(), String> = loop {
            match source.next().await {
                Some(Ok(piece)) => {
                    sent += piece.len() as u64;
                    if length.is_some_and(|n| sent > n) {
                        break Err(format!(
                            "the body stream gave more than its length {}",
                            length.unwrap_or(0)
                        ));
                    }
                    let out = if chunked {
                        Outgoing::Chunk(&piece)
                    } else {
                        Outgoing::Raw(&piece)
                    };
                    if conn.send_body(RequestOut::Body(out)).is_err() {
                        break Ok(());
                    }
                    if conn.drained().await.is_err() {
                        break Ok(());
                    }
                }
                Some(Err(e)) => break Err(e.to_string()),
                None => {
                    if let Some(n) = length {
                        if sent != n {
                            break Err(format!("the body stream ended after {sent} of {n} bytes"));
                        }
                    } else {
                        let _ = conn.send_body(RequestOut::Body(Outgoing::LastChunk));
                    }
                    break Ok(());
                }
            }
        };
        conn.set_writing_body(false);
        if let Err(detail) = outcome {
            conn.close_with(ClientErrorKind::RequestBody, detail);
        }
    };
    if em_core::spawn(task).is_err() {
        tracing::debug!("the reactor is stopping: a request body is not sent");
    }
}
