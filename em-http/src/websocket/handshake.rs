//! The opening handshake (RFC 6455 §4.2): recognising an upgrade request,
//! validating it, and producing the `101 Switching Protocols` answer.
//!
//! Only the server side is here. It reads the request's head (of any
//! `http::Request<B>`); nothing here reads a body or touches a socket.

use std::fmt;

use base64::Engine as _;
use http::header::{
    HeaderMap, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Version};

/// Why an upgrade request was refused; [`HandshakeError::status`] is the HTTP
/// status to answer with and [`HandshakeError::response`] the whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum HandshakeError {
    /// The request's method is not `GET`.
    MethodNotGet,
    /// The request is not HTTP/1.1.
    NotHttp11,
    /// No `Upgrade` header naming `websocket`.
    NoUpgradeWebsocket,
    /// No `Connection` header with the `upgrade` token.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not `13` (answered with 426).
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key` header.
    MissingKey,
    /// A `Sec-WebSocket-Key` that is repeated or is not the base64 of 16 bytes.
    InvalidKey,
}

impl HandshakeError {
    /// The HTTP status to refuse the upgrade with: 426 Upgrade Required for
    /// an unsupported version, 400 Bad Request otherwise.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HandshakeError::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The headers the refusal carries: `Sec-WebSocket-Version: 13` for a
    /// 426 (RFC 6455 §4.4), none otherwise.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let HandshakeError::UnsupportedVersion = self {
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        headers
    }

    /// The whole refusal as a bodiless response: [`status`](Self::status)
    /// and [`headers`](Self::headers).
    pub(crate) fn response(&self) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = self.status();
        *response.headers_mut() = self.headers();
        response
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MethodNotGet => "WebSocket upgrade requires the GET method",
            HandshakeError::NotHttp11 => "WebSocket upgrade requires HTTP/1.1",
            HandshakeError::NoUpgradeWebsocket => "no `Upgrade: websocket` header",
            HandshakeError::NoConnectionUpgrade => "no `upgrade` token in the Connection header",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version is missing or not 13",
            HandshakeError::MissingKey => "no Sec-WebSocket-Key header",
            HandshakeError::InvalidKey => "Sec-WebSocket-Key is not the base64 of 16 bytes",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// An accepted upgrade: the headers of the `101 Switching Protocols` answer
/// and the subprotocol chosen, if any.
#[derive(Debug, Clone)]
pub(crate) struct Accept {
    /// `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept`,
    /// and `Sec-WebSocket-Protocol` when a subprotocol was chosen.
    pub(crate) headers: HeaderMap,
    /// The subprotocol chosen from the server's list, if any.
    pub(crate) protocol: Option<String>,
}

impl Accept {
    /// The `101 Switching Protocols` response carrying [`Accept::headers`].
    pub(crate) fn into_response(self) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *response.headers_mut() = self.headers;
        response
    }
}

/// Whether any of the header's comma-separated values is `token`, compared
/// case-insensitively (for `Connection` and `Upgrade`).
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether the request asks to become a WebSocket: `Upgrade` names
/// `websocket` and `Connection` carries the `upgrade` token (both
/// case-insensitive). Nothing else is checked: a request that passes goes to
/// [`accept_headers`] or [`negotiate`], which answer the malformed ones with
/// a [`HandshakeError`].
pub(crate) fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    has_token(request.headers(), UPGRADE, "websocket")
        && has_token(request.headers(), CONNECTION, "upgrade")
}

/// Validates an upgrade request and produces the headers of the `101
/// Switching Protocols` answer, without a subprotocol. See [`negotiate`].
#[cfg(test)]
pub(crate) fn accept_headers<B>(parts: &Request<B>) -> Result<HeaderMap, HandshakeError> {
    negotiate(parts, &[]).map(|accept| accept.headers)
}

/// Validates an upgrade request (RFC 6455 §4.2.1): method `GET`, HTTP/1.1,
/// `Upgrade: websocket`, `Connection: upgrade`, `Sec-WebSocket-Version: 13`
/// and a `Sec-WebSocket-Key` that is the base64 of 16 bytes. On success,
/// the answer's headers and the subprotocol chosen: the first one the client
/// offers in `Sec-WebSocket-Protocol` that is in `protocols` (exact match);
/// none if `protocols` is empty or nothing matches (the client then decides
/// whether to carry on without).
pub(crate) fn negotiate<B>(
    parts: &Request<B>,
    protocols: &[&str],
) -> Result<Accept, HandshakeError> {
    if parts.method() != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if parts.version() != Version::HTTP_11 {
        return Err(HandshakeError::NotHttp11);
    }
    let headers = parts.headers();
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(HandshakeError::NoUpgradeWebsocket);
    }
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(version), None) if version.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(HandshakeError::MissingKey),
        (Some(_), Some(_)) => return Err(HandshakeError::InvalidKey),
        (Some(key), None) => key.as_bytes().trim_ascii(),
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }

    let protocol = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|offered| protocols.contains(offered))
        .map(str::to_owned);

    let accept = tungstenite::handshake::derive_accept_key(key);
    let mut out = HeaderMap::with_capacity(4);
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::try_from(accept).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = &protocol {
        out.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::try_from(protocol.as_str()).expect("it came from a header value"),
        );
    }
    Ok(Accept {
        headers: out,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of RFC 6455 §1.3, with `extra` headers added.
    fn request(extra: &[(&str, &str)]) -> Request<()> {
        let mut builder = http::Request::builder()
            .method("GET")
            .uri("/chat")
            .header("Host", "server.example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Origin", "http://example.com")
            .header("Sec-WebSocket-Version", "13");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn without(mut parts: Request<()>, name: &str) -> Request<()> {
        parts.headers_mut().remove(name);
        parts
    }

    fn with(mut parts: Request<()>, name: &'static str, value: &'static str) -> Request<()> {
        parts
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
        parts
    }

    #[test]
    fn rfc_6455_example() {
        let parts = request(&[]);
        assert!(is_upgrade_request(&parts));
        let headers = accept_headers(&parts).unwrap();
        assert_eq!(
            headers["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "Upgrade");
        assert!(headers.get("sec-websocket-protocol").is_none());
        let response = negotiate(&parts, &[]).unwrap().into_response();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn tokens_are_case_insensitive_and_comma_separated() {
        let parts = with(request(&[]), "connection", "keep-alive, UPGRADE");
        let parts = with(parts, "upgrade", "WebSocket");
        assert!(is_upgrade_request(&parts));
        assert!(accept_headers(&parts).is_ok());
    }

    #[test]
    fn not_an_upgrade() {
        assert!(!is_upgrade_request(&without(request(&[]), "upgrade")));
        assert!(!is_upgrade_request(&without(request(&[]), "connection")));
        assert!(!is_upgrade_request(&with(
            request(&[]),
            "connection",
            "upgraded"
        )));
        assert!(!is_upgrade_request(&with(request(&[]), "upgrade", "h2c")));
    }

    #[test]
    fn refusals() {
        let mut post = request(&[]);
        *post.method_mut() = Method::POST;
        assert_eq!(accept_headers(&post), Err(HandshakeError::MethodNotGet));
        let mut http10 = request(&[]);
        *http10.version_mut() = Version::HTTP_10;
        assert_eq!(accept_headers(&http10), Err(HandshakeError::NotHttp11));
        assert_eq!(
            accept_headers(&without(request(&[]), "upgrade")),
            Err(HandshakeError::NoUpgradeWebsocket)
        );
        assert_eq!(
            accept_headers(&with(request(&[]), "connection", "close")),
            Err(HandshakeError::NoConnectionUpgrade)
        );
        assert_eq!(
            accept_headers(&without(request(&[]), "sec-websocket-key")),
            Err(HandshakeError::MissingKey)
        );
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25j",
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            let mut parts = request(&[]);
            parts
                .headers_mut()
                .insert("sec-websocket-key", HeaderValue::from_static(bad));
            assert_eq!(
                accept_headers(&parts),
                Err(HandshakeError::InvalidKey),
                "{bad:?}"
            );
        }
        let twice = request(&[("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]);
        assert_eq!(accept_headers(&twice), Err(HandshakeError::InvalidKey));
        for error in [HandshakeError::MethodNotGet, HandshakeError::InvalidKey] {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert!(error.headers().is_empty());
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn version_other_than_13_is_426() {
        for parts in [
            with(request(&[]), "sec-websocket-version", "8"),
            without(request(&[]), "sec-websocket-version"),
        ] {
            let error = accept_headers(&parts).unwrap_err();
            assert_eq!(error, HandshakeError::UnsupportedVersion);
            assert_eq!(error.status(), StatusCode::UPGRADE_REQUIRED);
            let response = error.response();
            assert_eq!(response.status(), 426);
            assert_eq!(response.headers()["sec-websocket-version"], "13");
        }
    }

    #[test]
    fn subprotocol_is_the_first_the_client_offers_that_the_server_has() {
        let parts = request(&[
            ("Sec-WebSocket-Protocol", "chat.v2, chat"),
            ("Sec-WebSocket-Protocol", "superchat"),
        ]);
        let accept = negotiate(&parts, &["superchat", "chat"]).unwrap();
        assert_eq!(accept.protocol.as_deref(), Some("chat"));
        assert_eq!(accept.headers["sec-websocket-protocol"], "chat");
        let accept = negotiate(&parts, &["superchat"]).unwrap();
        assert_eq!(accept.protocol.as_deref(), Some("superchat"));
        let accept = negotiate(&parts, &["mqtt"]).unwrap();
        assert_eq!(accept.protocol, None);
        assert!(accept.headers.get("sec-websocket-protocol").is_none());
    }
}
