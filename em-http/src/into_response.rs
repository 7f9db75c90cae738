//! What a handler may answer with: a full `http::Response`, or the
//! shorthands (a status, a body, a status with a body).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::response::ResponseBody;

/// Turns a handler's answer into a response. Implemented for
/// `Response<B>` (any body convertible to [`ResponseBody`]), a
/// [`StatusCode`] (its reason as a `text/plain` body), text and bytes
/// (`200 OK`, `text/plain; charset=utf-8` for text,
/// `application/octet-stream` for bytes), and `(StatusCode, T)`.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response<ResponseBody>;
}

impl<B: Into<ResponseBody>> IntoResponse for Response<B> {
    fn into_response(self) -> Response<ResponseBody> {
        self.map(Into::into)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response<ResponseBody> {
        let reason = self.canonical_reason().unwrap_or("");
        let mut response = text(format!("{} {reason}\n", self.as_str()));
        *response.status_mut() = self;
        response
    }
}

fn text(body: impl Into<ResponseBody>) -> Response<ResponseBody> {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn octets(body: impl Into<ResponseBody>) -> Response<ResponseBody> {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response<ResponseBody> {
        text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response<ResponseBody> {
        text(self)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response<ResponseBody> {
        octets(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response<ResponseBody> {
        octets(self)
    }
}

impl IntoResponse for ResponseBody {
    fn into_response(self) -> Response<ResponseBody> {
        Response::new(self)
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response<ResponseBody> {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}
