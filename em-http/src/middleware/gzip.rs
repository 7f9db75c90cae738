//! Compressing whole response bodies with gzip.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE,
};
use http::{Request, Response};

use super::{add_vary, Middleware, ResponseFuture};
use crate::body::request::Body;
use crate::body::response::ResponseBody;
use crate::into_response::IntoResponse;
use crate::server::handler::Handler;

/// Compresses response bodies with gzip (`Content-Encoding: gzip`, by the
/// `flate2` crate) when all of these hold:
///
/// - the request's `Accept-Encoding` allows gzip (`gzip` or `*` with a
///   q-value above zero: `gzip;q=0` refuses it);
/// - the body is whole ([`ResponseBody::as_bytes`] is `Some`) and at least
///   [`min_size`](Gzip::min_size) bytes long (1 KiB by default);
/// - the response has no `Content-Encoding` yet, and no
///   `Cache-Control: no-transform`;
/// - its `Content-Type` is compressible: `text/*`, `application/json`,
///   `application/javascript`, `application/xml`, `image/svg+xml`, or any
///   `+json` or `+xml` type.
///
/// The compressed body replaces the original only if it is smaller; any
/// `Content-Length` the handler set is removed (the server sets it from
/// the body). `Vary: Accept-Encoding` is added to every response whose
/// encoding depended on the request's `Accept-Encoding`.
///
/// Streamed bodies ([`ResponseBody::channel`], server-sent events) pass
/// through uncompressed: compressing them would hold chunks back in the
/// compressor's buffer, which defeats streaming.
///
/// Compression runs on the reactor thread, as the handler does: at the
/// default level 6 a 100 KiB JSON body takes about a millisecond. Lower
/// the [`level`](Gzip::level), or compress large bodies in a handler with
/// `em::defer_async`, if that is too long a pause for other clients.
///
/// ```
/// use em_http::{Body, HandlerExt};
/// use em_http::middleware::Gzip;
///
/// let gzip = Gzip::default().level(4).min_size(512);
/// let handler = (|_request: http::Request<Body>| async { "hi" }).with(gzip);
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Gzip {
    level: u32,
    min_size: usize,
}

impl Gzip {
    /// The default smallest body compressed: 1 KiB (smaller ones gain
    /// little over gzip's own 18 bytes of framing).
    pub const DEFAULT_MIN_SIZE: usize = 1024;

    /// The default compression level: 6, zlib's own default.
    pub const DEFAULT_LEVEL: u32 = 6;

    /// Gzip at level 6 for bodies of 1 KiB and more.
    pub fn new() -> Gzip {
        Gzip {
            level: Self::DEFAULT_LEVEL,
            min_size: Self::DEFAULT_MIN_SIZE,
        }
    }

    /// The compression level, from 0 (none) to 9 (smallest, slowest);
    /// larger values are taken as 9.
    pub fn level(mut self, level: u32) -> Gzip {
        self.level = level.min(9);
        self
    }

    /// The smallest body compressed, in bytes.
    pub fn min_size(mut self, min_size: usize) -> Gzip {
        self.min_size = min_size;
        self
    }

    /// Compresses `response`'s body if it should be (see [`Gzip`]).
    fn apply(&self, accepts_gzip: bool, response: &mut Response<ResponseBody>) {
        let headers = response.headers();
        let Some(body) = response.body().as_bytes().cloned() else {
            return;
        };
        if body.len() < self.min_size
            || headers.contains_key(CONTENT_ENCODING)
            || no_transform(headers)
            || !headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_compressible)
        {
            return;
        }
        add_vary(response.headers_mut(), "accept-encoding");
        if !accepts_gzip {
            return;
        }
        let compressed = match self.compress(&body) {
            Ok(compressed) if compressed.len() < body.len() => compressed,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "gzip failed; the body goes uncompressed");
                return;
            }
        };
        *response.body_mut() = Bytes::from(compressed).into();
        let headers = response.headers_mut();
        headers.remove(CONTENT_LENGTH);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }

    fn compress(&self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let out = Vec::with_capacity(body.len() / 3 + 32);
        let mut encoder = GzEncoder::new(out, Compression::new(self.level));
        encoder.write_all(body)?;
        encoder.finish()
    }
}

impl Default for Gzip {
    /// [`Gzip::new`].
    fn default() -> Gzip {
        Gzip::new()
    }
}

impl<H: Handler> Middleware<H> for Gzip {
    type Handler = GzipHandler<H>;

    fn wrap(self, inner: H) -> GzipHandler<H> {
        GzipHandler { gzip: self, inner }
    }
}

/// The handler [`Gzip`] wraps around another.
#[derive(Debug)]
pub struct GzipHandler<H> {
    gzip: Gzip,
    inner: H,
}

impl<H: Handler> Handler for GzipHandler<H> {
    type Output = Response<ResponseBody>;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Body>) -> ResponseFuture {
        let accepts = accepts_gzip(request.headers());
        let gzip = self.gzip;
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await.into_response();
            gzip.apply(accepts, &mut response);
            response
        })
    }
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or its alias `x-gzip`)
/// with a q-value above zero, or else `*` with one. Entries whose q-value
/// does not parse are ignored.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = Some(1.0);
            for param in parts {
                if let Some((name, v)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(gzip.map_or(q, |g: f32| g.max(q)));
            } else if coding == "*" {
                star = Some(q);
            }
        }
    }
    gzip.or(star).is_some_and(|q| q > 0.0)
}

/// A q-value as RFC 9110 writes it: `0`, `1`, or up to three decimals.
fn parse_q(text: &str) -> Option<f32> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let ok = matches!(int, "0" | "1")
        && frac.len() <= 3
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || frac.bytes().all(|b| b == b'0'));
    if ok {
        text.parse().ok()
    } else {
        None
    }
}

/// Whether a `Content-Type` names a format that gzip shrinks.
fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
        || (essence.contains('/') && (essence.ends_with("+json") || essence.ends_with("+xml")))
}

fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        accepts_gzip(&headers)
    }

    #[test]
    fn accept_encoding_q_values() {
        assert!(accepts("gzip"));
        assert!(accepts("deflate, gzip;q=1.0, br;q=0.5"));
        assert!(accepts("GZIP ; q=0.001"));
        assert!(accepts("x-gzip"));
        assert!(accepts("*"));
        assert!(accepts("br, *;q=0.1"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0.000"));
        assert!(!accepts("gzip; q=0.0, *"));
        assert!(!accepts("*;q=0"));
        assert!(!accepts("identity"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts(""));
        // A q-value that does not parse: the entry is ignored.
        assert!(!accepts("gzip;q=2"));
        assert!(!accepts("gzip;q=abc"));
        assert!(!accepts("gzip;q=0.5.5"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn q_values_parse_as_the_rfc_writes_them() {
        assert_eq!(parse_q("1"), Some(1.0));
        assert_eq!(parse_q("1.000"), Some(1.0));
        assert_eq!(parse_q("0.5"), Some(0.5));
        assert_eq!(parse_q("0"), Some(0.0));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("-0"), None);
        assert_eq!(parse_q(""), None);
    }

    #[test]
    fn compressible_content_types() {
        for yes in [
            "text/plain",
            "text/html; charset=utf-8",
            "Application/JSON",
            "application/javascript",
            "application/xml",
            "image/svg+xml",
            "application/problem+json",
            "application/atom+xml; charset=utf-8",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "application/octet-stream",
            "application/gzip",
            "video/mp4",
            "json",
            "",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
    }

    fn response(content_type: &str, body: impl Into<ResponseBody>) -> Response<ResponseBody> {
        let mut response = Response::new(body.into());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        response
    }

    #[test]
    fn compresses_large_compressible_bodies() {
        let text = "hello, world\n".repeat(200);
        let mut r = response("text/plain", text.clone());
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        Gzip::default().apply(true, &mut r);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()["vary"], "accept-encoding");
        assert!(!r.headers().contains_key(CONTENT_LENGTH));
        let mut out = String::new();
        flate2::read::GzDecoder::new(&r.body().as_bytes().unwrap()[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn leaves_alone_what_it_should() {
        let big = "x".repeat(4096);
        let cases: Vec<(bool, Response<ResponseBody>)> = vec![
            (false, response("text/plain", big.clone())),
            (true, response("text/plain", "short")),
            (true, response("image/png", big.clone())),
            (true, response("text/plain", ResponseBody::channel().1)),
            (true, {
                let mut r = response("text/plain", big.clone());
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
                r
            }),
            (true, {
                let mut r = response("text/plain", big.clone());
                r.headers_mut().insert(
                    CACHE_CONTROL,
                    HeaderValue::from_static("public, no-transform"),
                );
                r
            }),
        ];
        for (accepts, mut r) in cases {
            Gzip::default().apply(accepts, &mut r);
            let encoding = r.headers().get(CONTENT_ENCODING);
            assert_ne!(
                encoding.and_then(|v| v.to_str().ok()),
                Some("gzip"),
                "{r:?}"
            );
        }
        // Refused by the client, but it would have been compressed: Vary.
        let mut r = response("text/plain", big);
        Gzip::default().apply(false, &mut r);
        assert_eq!(r.headers()["vary"], "accept-encoding");
    }

    #[test]
    fn min_size_and_level_are_settable() {
        let mut r = response(
            "application/json",
            "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
        );
        Gzip::default().level(42).min_size(10).apply(true, &mut r);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(Gzip::default().level(42).level, 9);
    }
}
