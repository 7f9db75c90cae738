//! The thread split is in the types: reactor-owned handles (`Conn`,
//! `Server`) are `!Send`; `Handle` is the `Send + Sync` door in. Checked at
//! compile time, in the style of tokio's `tests/async_send_sync.rs`.

mod support;

use std::sync::mpsc;

use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// Compiles only for `Send` types.
fn require_send<T: Send>() {}
/// Compiles only for `Sync` types.
fn require_sync<T: Sync>() {}

/// The ambiguity trick of static_assertions' `assert_not_impl_any!`:
/// `AmbiguousIfSend<_>` has one impl for every type and a second one for
/// `Send` types, so `<T as AmbiguousIfSend<_>>` cannot pick an `A` (and does
/// not compile) exactly when `T: Send`.
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct InvalidSend;
impl<T: ?Sized + Send> AmbiguousIfSend<InvalidSend> for T {}

/// The same trick for `Sync`.
trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
#[allow(dead_code)]
struct InvalidSync;
impl<T: ?Sized + Sync> AmbiguousIfSync<InvalidSync> for T {}

/// Fails to compile if `$t` is `Send`.
macro_rules! assert_not_send {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSend<_>>::some_item;
    };
}

/// Fails to compile if `$t` is `Sync`.
macro_rules! assert_not_sync {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSync<_>>::some_item;
    };
}

#[test]
fn reactor_owned_handles_are_not_send_nor_sync() {
    assert_not_send!(em::Conn<BytesCodec>);
    assert_not_send!(em::Conn<LinesCodec>);
    assert_not_send!(em::Server);
    assert_not_sync!(em::Conn<BytesCodec>);
    assert_not_sync!(em::Server);
}

#[test]
fn handle_and_errors_are_send_and_sync() {
    require_send::<em::Handle>();
    require_sync::<em::Handle>();
    // Errors cross threads (and into `Box<dyn Error + Send + Sync>`).
    require_send::<em::Error>();
    require_sync::<em::Error>();
    require_send::<em::UnbindReason>();
    require_sync::<em::UnbindReason>();
}

/// And at run time: a `Handle` moved to another thread, cloned there,
/// schedules onto the reactor thread and stops the reactor.
#[test]
fn handle_is_usable_from_another_thread() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        let clone = handle.clone();
        // spawn_peer stops the reactor through `handle` once this returns.
        spawn_peer(handle, done_tx, move || {
            let (tx, rx) = mpsc::channel();
            clone
                .schedule(move || tx.send(em::reactor_thread()).unwrap())
                .unwrap();
            recv(&rx)
        });
        Ok(())
    })
    .unwrap();
    assert!(join_peer(&done_rx), "the closure ran on the reactor thread");
}
