//! In-memory pairs for tests with no sockets at all.

use em_core::{RawCodec, Socket};

/// Two procedural connections joined in memory, raw bytes both ways (the
/// engine's in-memory pair: what one writes, the other reads, with the
/// same backpressure and endings as a socket, and no descriptor at all).
/// Reactor thread, inside [`em::spawn`](em_core::spawn),
/// [`em::synchrony`](em_core::synchrony) or
/// [`TestReactor::run`](crate::testing::TestReactor::run). For handlers
/// instead of procedural code, [`em::connect_pair`](em_core::connect_pair).
///
/// ```
/// em::synchrony(async {
///     let (mut a, mut b) = em::testing::pair().await?;
///     a.write("ping").await?;
///     assert_eq!(b.read().await?.as_deref(), Some(&b"ping"[..]));
///     Ok::<(), em::Error>(())
/// })??;
/// # Ok::<(), em::Error>(())
/// ```
pub async fn pair() -> em_core::Result<(Socket<RawCodec>, Socket<RawCodec>)> {
    Socket::pair(RawCodec, RawCodec).await
}
