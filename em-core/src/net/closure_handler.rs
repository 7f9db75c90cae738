//! Handlers from closures: the Rust form of EventMachine's
//! `EM.start_server(host, port) { |c| def c.receive_data(d) ... end }`.

use std::fmt;
use std::marker::PhantomData;

use bytes::BytesMut;

use crate::net::conn::Conn;
use crate::net::handler::Handler;

/// Builds handler factories from one closure, called with every chunk of raw
/// bytes received: for [`start_server`](crate::start_server), which wants a
/// factory. Each connection gets its own copy of the closure (so state it
/// owns, such as a counter, is per connection, as an EventMachine handler's
/// instance variables are; share state between connections through an
/// `Rc`). Whatever the closure returns is ignored, so
/// `|conn, data| conn.send_data(data)` is a whole echo handler.
///
/// ```
/// # use em_core as em;
/// em::run(|| {
///     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
///     echo.stop();
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em::Error>(())
/// ```
pub fn handler<F, R>(on_data: F) -> impl FnMut() -> FnHandler<F, R> + 'static
where
    F: FnMut(&Conn, BytesMut) -> R + Clone + 'static,
    R: 'static,
{
    move || FnHandler {
        on_data: on_data.clone(),
        _result: PhantomData,
    }
}

/// A [`Handler`] whose only callback is a closure on raw bytes; built by
/// [`handler`]. Runs on the reactor thread.
pub struct FnHandler<F, R> {
    on_data: F,
    _result: PhantomData<fn() -> R>,
}

impl<F, R> Handler for FnHandler<F, R>
where
    F: FnMut(&Conn, BytesMut) -> R + 'static,
    R: 'static,
{
    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        (self.on_data)(conn, data);
    }
}

impl<F, R> fmt::Debug for FnHandler<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandler")
    }
}
