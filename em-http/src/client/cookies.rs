//! The client's cookie jar (the `cookies` feature): RFC 6265 storage and
//! matching by the `cookie_store` crate, fed each response's `Set-Cookie`
//! fields and asked for each request's `Cookie` field.

use std::cell::RefCell;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use url::Url;

/// One client's cookies.
#[derive(Debug, Default)]
pub(crate) struct Jar(RefCell<cookie_store::CookieStore>);

impl Jar {
    /// The `Cookie` field for a request to `url`, if the jar has cookies
    /// for it.
    pub(crate) fn header_for(&self, url: &Url) -> Option<HeaderValue> {
        let store = self.0.borrow();
        let pairs: Vec<String> = store
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    /// Stores the cookies a response from `url` sets (those that do not
    /// parse, or that `url` may not set, are ignored, as browsers do).
    pub(crate) fn store_from(&self, url: &Url, headers: &HeaderMap) {
        let mut store = self.0.borrow_mut();
        for value in headers.get_all(SET_COOKIE) {
            if let Ok(text) = value.to_str() {
                let _ = store.parse(text, url);
            }
        }
    }
}
