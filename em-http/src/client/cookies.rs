//! The client's cookie jar (the `cookies` feature): RFC 6265 storage and
//! matching by the `cookie_store` crate, fed each response's `Set-Cookie`
//! fields and asked for each request's `Cookie` field.

use std::cell::RefCell;

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use url::Url;

/// One client's cookies.
#[derive(Debug, Default)]
pub(crate) struct Jar(RefCell<cookie_store::CookieStore>);

impl Jar {
    /// Adds the `Cookie` field for a request to `url` (unless the request
    /// set one itself).
    pub(crate) fn add_to(&self, url: &Url, headers: &mut HeaderMap) {
        if headers.contains_key(COOKIE) {
            return;
        }
        let store = self.0.borrow();
        let pairs: Vec<String> = store
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if pairs.is_empty() {
            return;
        }
        if let Ok(value) = HeaderValue::from_str(&pairs.join("; ")) {
            headers.insert(COOKIE, value);
        }
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
