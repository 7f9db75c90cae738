//! Following redirects: which responses are followed, where to, and what
//! the next request keeps (RFC 9110 §15.4).

use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION,
    PROXY_AUTHORIZATION, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

/// What the next request of a redirect is.
#[derive(Debug)]
pub(crate) struct Hop {
    pub(crate) url: Url,
    pub(crate) method: Method,
    /// The body is sent again (307 and 308); otherwise it is dropped.
    pub(crate) keep_body: bool,
}

/// Where a response sends the request next, if it is a redirect with a
/// usable `Location`: 301, 302 and 303 turn into `GET` without a body
/// (`HEAD` stays `HEAD`), 307 and 308 keep the method and the body.
pub(crate) fn next(
    status: StatusCode,
    headers: &HeaderMap,
    method: &Method,
    from: &Url,
) -> Option<Hop> {
    let (method, keep_body) = match status.as_u16() {
        301..=303 => {
            if *method == Method::HEAD {
                (Method::HEAD, false)
            } else {
                (Method::GET, false)
            }
        }
        307 | 308 => (method.clone(), true),
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let url = from.join(location).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(Hop {
        url,
        method,
        keep_body,
    })
}

/// Adjusts the headers for the next hop: without a body, the body's
/// headers go; to another origin, the credentials go.
pub(crate) fn carry_headers(headers: &mut HeaderMap, hop: &Hop, from: &Url) {
    headers.remove(HOST);
    if !hop.keep_body {
        for name in [
            CONTENT_LENGTH,
            CONTENT_TYPE,
            CONTENT_ENCODING,
            TRANSFER_ENCODING,
        ] {
            headers.remove(name);
        }
    }
    let same_origin = hop.url.scheme() == from.scheme()
        && hop.url.host_str() == from.host_str()
        && hop.url.port_or_known_default() == from.port_or_known_default();
    if !same_origin {
        headers.remove(AUTHORIZATION);
        headers.remove(COOKIE);
        headers.remove(PROXY_AUTHORIZATION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(to: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, to.parse().unwrap());
        h
    }

    #[test]
    fn each_code_keeps_or_changes_the_method() {
        let from = Url::parse("http://a.example/x/y?q=1").unwrap();
        let cases = [
            (301, Method::POST, Method::GET, false),
            (302, Method::POST, Method::GET, false),
            (303, Method::PUT, Method::GET, false),
            (303, Method::HEAD, Method::HEAD, false),
            (307, Method::POST, Method::POST, true),
            (308, Method::PUT, Method::PUT, true),
        ];
        for (code, method, want, keep) in cases {
            let hop = next(
                StatusCode::from_u16(code).unwrap(),
                &location("../z"),
                &method,
                &from,
            )
            .unwrap();
            assert_eq!(hop.method, want, "{code}");
            assert_eq!(hop.keep_body, keep, "{code}");
            assert_eq!(hop.url.as_str(), "http://a.example/z");
        }
        assert!(next(StatusCode::OK, &location("/z"), &Method::GET, &from).is_none());
        assert!(next(StatusCode::FOUND, &HeaderMap::new(), &Method::GET, &from).is_none());
        assert!(next(
            StatusCode::FOUND,
            &location("ftp://x/"),
            &Method::GET,
            &from
        )
        .is_none());
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let from = Url::parse("http://a.example/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Basic x".parse().unwrap());
        headers.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        let hop = next(
            StatusCode::FOUND,
            &location("http://b.example/"),
            &Method::POST,
            &from,
        )
        .unwrap();
        carry_headers(&mut headers, &hop, &from);
        assert!(headers.is_empty());
    }
}
