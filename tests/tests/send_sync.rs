//! The thread split is in the types: reactor-owned handles (`Conn`,
//! `Server`, `Socket`, `SocketListener`) are `!Send`; `Handle` is the
//! `Send + Sync` door in. Checked at compile time, in the style of tokio's
//! `tests/async_send_sync.rs`.

mod support;

use std::sync::mpsc;

use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// Compiles only for `Send` types.
fn require_send<T: Send>() {}
/// Compiles only for `Sync` types.
fn require_sync<T: Sync>() {}

#[test]
fn reactor_owned_handles_are_not_send_nor_sync() {
    assert_not_send!(em::Conn<BytesCodec>);
    assert_not_send!(em::Conn<LinesCodec>);
    assert_not_send!(em::Server);
    assert_not_send!(em::Socket<LinesCodec>);
    assert_not_send!(em::SocketListener<BytesCodec>);
    assert_not_sync!(em::Conn<BytesCodec>);
    assert_not_sync!(em::Server);
    assert_not_sync!(em::Socket<LinesCodec>);
    assert_not_sync!(em::SocketListener<BytesCodec>);
    assert_not_send!(em::FileWatch);
    assert_not_sync!(em::FileWatch);
    assert_not_send!(em::ProcessWatch);
    assert_not_sync!(em::ProcessWatch);
    // The reactor-owned messaging stays on its reactor.
    assert_not_send!(em::Channel<String>);
    assert_not_sync!(em::Channel<String>);
    assert_not_send!(em::Queue<String>);
    assert_not_sync!(em::Queue<String>);
}

#[test]
fn group_messaging_is_send_and_sync() {
    // The explicit cross-reactor ones.
    require_send::<em::GroupChannel<String>>();
    require_sync::<em::GroupChannel<String>>();
    require_send::<em::GroupQueue<String>>();
    require_sync::<em::GroupQueue<String>>();
    require_send::<em::GroupSubscription>();
    require_sync::<em::GroupSubscription>();
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
