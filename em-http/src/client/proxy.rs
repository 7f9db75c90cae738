//! A proxy. HTTP: plain `http://` requests go to it in absolute form,
//! `https://` ones through a `CONNECT` tunnel (TLS end to end with the
//! origin). SOCKS5 (the `socks` feature): every request through a tunnel
//! the proxy opens to the origin, whose name the proxy resolves.

use base64::Engine;
use http::HeaderValue;

use crate::client::error::{ClientError, ClientErrorKind, ClientResult};

/// An HTTP proxy for [`ClientBuilder::proxy`](crate::ClientBuilder::proxy)
/// or [`RequestBuilder::proxy`](crate::RequestBuilder::proxy)
/// (em-http-request's `proxy: {host:, port:, authorization:}`). Plain data.
///
/// ```
/// use em_http::Proxy;
/// let proxy = Proxy::http("http://user:secret@127.0.0.1:3128").unwrap();
/// assert_eq!(proxy.addr(), ("127.0.0.1", 3128));
/// assert!(Proxy::http("socks5://127.0.0.1:1080").is_err());
/// ```
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    authorization: Option<HeaderValue>,
    /// SOCKS5's user name and password, for a SOCKS5 proxy.
    #[cfg_attr(not(feature = "socks"), allow(dead_code))]
    socks: Option<Option<(String, String)>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("authorization", &self.authorization.as_ref().map(|_| "…"))
            .field("socks5", &self.socks.is_some())
            .finish()
    }
}

impl Proxy {
    /// The HTTP proxy at `url` (`http://[user:password@]host[:port]`, port
    /// 80 by default); credentials in it become `Proxy-Authorization:
    /// Basic`. Errors with [`ClientErrorKind::InvalidRequest`] for
    /// another scheme or a URL that does not parse.
    pub fn http(url: &str) -> ClientResult<Proxy> {
        let invalid = |why: &str| {
            ClientError::new(
                ClientErrorKind::InvalidRequest,
                format!("proxy {url:?}: {why}"),
            )
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(invalid("only http:// proxies are supported"));
        }
        let host = parsed.host_str().ok_or_else(|| invalid("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let mut proxy = Proxy {
            host,
            port,
            authorization: None,
            socks: None,
        };
        if !parsed.username().is_empty() {
            let user = percent_decode(parsed.username());
            let password = parsed.password().map(percent_decode);
            proxy = proxy.basic_auth(&user, password.as_deref());
        }
        Ok(proxy)
    }

    /// The SOCKS5 proxy at `url` (`socks5://[user:password@]host[:port]`,
    /// port 1080 by default; `socks5h://` is the same: the proxy always
    /// resolves the origin's name). Needs em-http's `socks` feature.
    /// Errors with [`ClientErrorKind::InvalidRequest`] for another scheme
    /// or a URL that does not parse.
    #[cfg(feature = "socks")]
    pub fn socks5(url: &str) -> ClientResult<Proxy> {
        let invalid = |why: &str| {
            ClientError::new(
                ClientErrorKind::InvalidRequest,
                format!("proxy {url:?}: {why}"),
            )
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "socks5" | "socks5h") {
            return Err(invalid("a SOCKS5 proxy URL starts with socks5://"));
        }
        let host = parsed.host_str().ok_or_else(|| invalid("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let credentials = (!parsed.username().is_empty()).then(|| {
            (
                percent_decode(parsed.username()),
                parsed.password().map(percent_decode).unwrap_or_default(),
            )
        });
        Ok(Proxy {
            host,
            port: parsed.port().unwrap_or(1080),
            authorization: None,
            socks: Some(credentials),
        })
    }

    /// Sends `Proxy-Authorization: Basic` with these credentials.
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Proxy {
        self.authorization = Some(basic_auth_value(user, password));
        self
    }

    /// The proxy's host and port.
    pub fn addr(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// Whether it is a SOCKS5 proxy.
    pub(crate) fn is_socks(&self) -> bool {
        self.socks.is_some()
    }

    /// A SOCKS5 proxy's credentials.
    #[cfg(feature = "socks")]
    pub(crate) fn socks_credentials(&self) -> Option<(&str, &str)> {
        self.socks
            .as_ref()?
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

/// `Basic base64(user:password)`, marked sensitive.
pub(crate) fn basic_auth_value(user: &str, password: Option<&str>) -> HeaderValue {
    let raw = format!("{user}:{}", password.unwrap_or(""));
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
