//! Containing panics from user callbacks so that one bad callback never takes
//! the reactor or other connections down.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::connection::ConnectionId;

/// Runs `f`, catching a panic. On a panic it logs an error naming the callback
/// (and the connection, if any) and returns the panic message.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic
/// the connection concerned is closed and its handler is never called again
/// except for `unbind`, so no broken invariant is observed by the code that
/// panicked; everyone else's state is untouched.
pub(crate) fn catch<R>(
    callback: &'static str,
    conn: Option<ConnectionId>,
    f: impl FnOnce() -> R,
) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = message(&*payload);
        match conn {
            Some(id) => tracing::error!(callback, conn = %id, panic = %message, "panic in em callback contained"),
            None => tracing::error!(callback, panic = %message, "panic in em callback contained"),
        }
        message
    })
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
