//! Cross-origin resource sharing: answering preflight requests and
//! marking responses a browser may share with another origin.

use std::time::Duration;

use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{Method, Request, Response, StatusCode};

use super::{add_vary, Middleware, ResponseFuture};
use crate::body::request::Body;
use crate::body::response::ResponseBody;
use crate::into_response::IntoResponse;
use crate::server::handler::Handler;

/// CORS (the Fetch standard's cross-origin resource sharing).
///
/// A preflight request (`OPTIONS` with `Access-Control-Request-Method`)
/// is answered here with `204 No Content`, and never reaches the inner
/// handler: when its `Origin` is allowed, with
/// `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers` (if
/// any) and `-Max-Age` (if set); when not, with none of them, which the
/// browser takes as a refusal. Any other request goes to the inner
/// handler, and if its `Origin` is allowed the response gets
/// `Access-Control-Allow-Origin` (`*`, or the origin itself with
/// `Vary: Origin`). Runs on the reactor thread.
///
/// ```
/// use std::time::Duration;
/// use em_http::http::{header, Method};
/// use em_http::middleware::Cors;
/// use em_http::{Body, HandlerExt};
///
/// let cors = Cors::new()
///     .allow_origin("https://a.example")
///     .allow_origin("https://b.example")
///     .allow_methods([Method::GET, Method::PUT])
///     .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
///     .max_age(Duration::from_secs(3600));
/// let handler = (|_request: http::Request<Body>| async { "hi" }).with(cors);
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Origins,
    methods: Vec<Method>,
    headers: AllowHeaders,
    max_age: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Origins {
    Any,
    List(Vec<HeaderValue>),
}

#[derive(Debug, Clone)]
enum AllowHeaders {
    /// Whatever the preflight asks for.
    Mirror,
    List(Vec<HeaderName>),
}

impl Cors {
    /// Allows nothing until told: no origin, the methods `GET`, `HEAD`
    /// and `POST`, no request headers beyond the CORS-safelisted ones, no
    /// `Max-Age`.
    pub fn new() -> Cors {
        Cors {
            origins: Origins::List(Vec::new()),
            methods: vec![Method::GET, Method::HEAD, Method::POST],
            headers: AllowHeaders::List(Vec::new()),
            max_age: None,
        }
    }

    /// Allows every origin (`Access-Control-Allow-Origin: *`), the methods
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` and `DELETE`, and whatever
    /// request headers a preflight asks for: for public APIs that use no
    /// cookies.
    pub fn any() -> Cors {
        Cors {
            origins: Origins::Any,
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            headers: AllowHeaders::Mirror,
            max_age: None,
        }
    }

    /// Allows `origin` (such as `https://a.example`: scheme, host and port
    /// as the browser sends them in `Origin`), in addition to the ones
    /// allowed so far; after [`any`](Cors::any), restricts to it.
    ///
    /// Panics if `origin` is not a valid header value (a control
    /// character), which is a programming error.
    pub fn allow_origin(mut self, origin: impl AsRef<str>) -> Cors {
        let value = HeaderValue::from_str(origin.as_ref()).expect("an origin is a header value");
        match &mut self.origins {
            Origins::List(list) => list.push(value),
            Origins::Any => self.origins = Origins::List(vec![value]),
        }
        self
    }

    /// The methods allowed (`Access-Control-Allow-Methods`), replacing
    /// the earlier set.
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Cors {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The request headers allowed (`Access-Control-Allow-Headers`),
    /// replacing the earlier set.
    pub fn allow_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Cors {
        self.headers = AllowHeaders::List(headers.into_iter().collect());
        self
    }

    /// How long a browser may cache a preflight's answer
    /// (`Access-Control-Max-Age`, whole seconds).
    pub fn max_age(mut self, max_age: Duration) -> Cors {
        self.max_age = Some(max_age);
        self
    }

    /// The `Access-Control-Allow-Origin` value for a request from
    /// `origin`, if it is allowed.
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        match &self.origins {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => list
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
                .then(|| origin.clone()),
        }
    }

    fn preflight(&self, request: &Request<Body>) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        if matches!(self.origins, Origins::List(_)) {
            add_vary(headers, "origin");
        }
        let Some(allow_origin) = self.allowed(request.headers().get(ORIGIN)) else {
            return response;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            join(&self.methods, Method::as_str),
        );
        let allow_headers = match &self.headers {
            AllowHeaders::Mirror => request
                .headers()
                .get(ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned(),
            AllowHeaders::List(list) if list.is_empty() => None,
            AllowHeaders::List(list) => Some(join(list, HeaderName::as_str)),
        };
        if let Some(value) = allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if let Some(max_age) = self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age.as_secs()));
        }
        response
    }
}

impl Default for Cors {
    /// [`Cors::new`].
    fn default() -> Cors {
        Cors::new()
    }
}

fn join<T>(items: &[T], name: impl Fn(&T) -> &str) -> HeaderValue {
    let text = items.iter().map(name).collect::<Vec<_>>().join(", ");
    HeaderValue::try_from(text).expect("methods and header names are valid header values")
}

impl<H: Handler> Middleware<H> for Cors {
    type Handler = CorsHandler<H>;

    fn wrap(self, inner: H) -> CorsHandler<H> {
        CorsHandler { cors: self, inner }
    }
}

/// The handler [`Cors`] wraps around another.
#[derive(Debug)]
pub struct CorsHandler<H> {
    cors: Cors,
    inner: H,
}

impl<H: Handler> Handler for CorsHandler<H> {
    type Output = Response<ResponseBody>;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Body>) -> ResponseFuture {
        if request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            let response = self.cors.preflight(&request);
            return Box::pin(async move { response });
        }
        let allow_origin = self.cors.allowed(request.headers().get(ORIGIN));
        let vary = matches!(self.cors.origins, Origins::List(_));
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await.into_response();
            let headers = response.headers_mut();
            if vary {
                add_vary(headers, "origin");
            }
            if let Some(value) = allow_origin {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn origins_are_matched_exactly() {
        let cors = Cors::new().allow_origin("https://a.example");
        let a = HeaderValue::from_static("https://a.example");
        let b = HeaderValue::from_static("https://b.example");
        assert_eq!(cors.allowed(Some(&a)), Some(a.clone()));
        assert_eq!(cors.allowed(Some(&b)), None);
        assert_eq!(cors.allowed(None), None);
        assert_eq!(Cors::any().allowed(Some(&b)).unwrap(), "*");
    }

    #[test]
    fn preflight_lists_what_is_allowed() {
        let cors = Cors::new()
            .allow_origin("https://a.example")
            .allow_methods([Method::GET, Method::PUT])
            .allow_headers([http::header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600));
        let response = cors.preflight(&request(
            Method::OPTIONS,
            &[
                ("origin", "https://a.example"),
                ("access-control-request-method", "PUT"),
            ],
        ));
        let h = response.headers();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET, PUT");
        assert_eq!(h["access-control-allow-headers"], "content-type");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["vary"], "origin");
    }

    #[test]
    fn preflight_from_another_origin_gets_no_allowance() {
        let cors = Cors::new().allow_origin("https://a.example");
        let response = cors.preflight(&request(
            Method::OPTIONS,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
        ));
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(!response
            .headers()
            .contains_key("access-control-allow-origin"));
        assert!(!response
            .headers()
            .contains_key("access-control-allow-methods"));
    }

    #[test]
    fn any_mirrors_the_requested_headers() {
        let response = Cors::any().preflight(&request(
            Method::OPTIONS,
            &[
                ("origin", "https://b.example"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "x-token, content-type"),
            ],
        ));
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-headers"], "x-token, content-type");
        assert!(!h.contains_key("vary"));
    }
}
