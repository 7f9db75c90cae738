//! The in-memory pair benches: `pair [N]` and its raw-tokio twin
//! `tokio-duplex [N]` (default 1,000,000).
//!
//! Both run N ping-pong round trips of a 64-byte message between two ends
//! joined in memory, on one thread, with no socket: one message in flight
//! at a time, so each round trip pays the whole per-message path twice
//! (write, wake the other end, read, hand the bytes to the code). That is
//! the engine's overhead per message, with no batching to hide it.
//!
//! * `pair`: `em::connect_pair(Echo, Pinger)`, both callback handlers with
//!   `BytesCodec`: `Echo::receive_data` sends each chunk back; `Pinger`
//!   sends the first message from `connection_completed` and the next one
//!   from `receive_data` once 64 bytes are back.
//! * `tokio-duplex`: two `spawn_local` tasks on a current-thread runtime and
//!   a `LocalSet`, joined by `tokio::io::duplex` with the pair's buffer
//!   size (256 KiB): the echo task reads into a buffer and `write_all`s it
//!   back; the client task `write_all`s the message and `read_exact`s the
//!   reply.
//!
//! The clock runs from just before the pair is made to the last reply.
//! Prints the `MICRO` line with `msgs_per_sec=` (round trips per second);
//! `ns_per_op` is per round trip.

use std::cell::Cell;
use std::error::Error;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::BytesCodec;

/// Round trips by default.
pub(crate) const N: u64 = 1_000_000;
/// The message size.
const MESSAGE: usize = 64;
/// The buffer each direction of the tokio duplex holds (em's pairs use the
/// same).
const DUPLEX_BUFFER: usize = 256 * 1024;

fn print(system: &str, bench: &str, n: u64, elapsed: Duration) {
    em_examples::out!(
        "MICRO system={system} bench={bench} n={n} elapsed_ms={:.1} ns_per_op={:.1} msgs_per_sec={:.0}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
}

/// Sends every chunk back.
struct Echo;

impl Connection for Echo {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

/// Sends a message, waits for it to come back, `left` times; then records
/// the time and stops the reactor.
struct Pinger {
    message: Bytes,
    left: u64,
    /// Bytes of the current reply received so far.
    got: usize,
    done_at: Rc<Cell<Option<Instant>>>,
}

impl Connection for Pinger {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(self.message.clone());
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.got += data.len();
        if self.got < MESSAGE {
            return;
        }
        assert_eq!(self.got, MESSAGE, "one message in flight");
        self.got = 0;
        self.left -= 1;
        if self.left == 0 {
            self.done_at.set(Some(Instant::now()));
            em::stop();
        } else {
            conn.send_data(self.message.clone());
        }
    }
}

/// `pair`: N round trips between two em handlers joined by `connect_pair`.
pub(crate) fn em_pair(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let started_at = Rc::new(Cell::new(None));
    let done_at = Rc::new(Cell::new(None));
    let (s, d) = (started_at.clone(), done_at.clone());
    em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || -> em::Result<()> {
            s.set(Some(Instant::now()));
            em::connect_pair(
                Echo,
                Pinger {
                    message: Bytes::from(vec![0x5a; MESSAGE]),
                    left: n,
                    got: 0,
                    done_at: d,
                },
            )?;
            Ok(())
        })?;
    let (start, end) = (started_at.get(), done_at.get());
    let elapsed = end.ok_or("the pinger did not finish")? - start.ok_or("no start")?;
    print("em", "pair", n, elapsed);
    Ok(())
}

/// `tokio-duplex`: N round trips between two tokio tasks joined by
/// `tokio::io::duplex`.
pub(crate) fn tokio_duplex(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let elapsed = tokio::task::LocalSet::new().block_on(&rt, async move {
        let start = Instant::now();
        let (mut server, mut client) = tokio::io::duplex(DUPLEX_BUFFER);
        let echo = tokio::task::spawn_local(async move {
            let mut buf = vec![0; 64 * 1024];
            loop {
                let got = server.read(&mut buf).await?;
                if got == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                server.write_all(&buf[..got]).await?;
            }
        });
        let pinger = tokio::task::spawn_local(async move {
            let message = [0x5a; MESSAGE];
            let mut reply = [0; MESSAGE];
            for _ in 0..n {
                client.write_all(&message).await?;
                client.read_exact(&mut reply).await?;
            }
            Ok::<_, std::io::Error>(Instant::now())
        });
        let done_at = pinger.await??;
        echo.abort();
        Ok::<_, Box<dyn Error>>(done_at - start)
    })?;
    print("tokio", "tokio-duplex", n, elapsed);
    Ok(())
}
