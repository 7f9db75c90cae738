//! Handlers from closures: the Rust form of EventMachine's
//! `EM.start_server(host, port) { |c| def c.receive_data(d) ... end }`.

use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use bytes::BytesMut;
use tokio_util::codec::BytesCodec;

use crate::net::conn::Conn;
use crate::net::connection::Connection;

/// Builds handler factories from one closure, called with every chunk of raw
/// bytes received: for [`start_server`](crate::start_server), which wants a
/// factory.
///
/// ```
/// # use em_core as em;
/// em::run(|| -> em::Result<()> {
///     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
///     echo.stop();
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn handler<F, R>(on_data: F) -> impl FnMut() -> FnHandler<F, R> + 'static
where
    F: Fn(&Conn<BytesCodec>, BytesMut) -> R + 'static,
    R: 'static,
{
    let on_data = Rc::new(on_data);
    move || FnHandler {
        on_data: on_data.clone(),
        _result: PhantomData,
    }
}

/// A handler whose only callback is a closure on raw bytes; built by
/// [`handler`]. Whatever the closure returns is ignored.
pub struct FnHandler<F, R> {
    on_data: Rc<F>,
    _result: PhantomData<fn() -> R>,
}

impl<F, R> Connection for FnHandler<F, R>
where
    F: Fn(&Conn<BytesCodec>, BytesMut) -> R + 'static,
    R: 'static,
{
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        (self.on_data)(conn, data);
    }
}

impl<F, R> fmt::Debug for FnHandler<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandler")
    }
}
