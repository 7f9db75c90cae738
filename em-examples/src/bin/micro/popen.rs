//! The child-process benches: `popen [MIB]` and its raw-tokio twin
//! `tokio-popen [MIB]` (default 1024 MiB).
//!
//! Both pipe MIB mebibytes through `cat` (its stdin, then back from its
//! stdout) and count what comes back: the throughput of a child's pipes,
//! both directions at once, on one thread.
//!
//! * `popen`: `em::popen(["cat"], Feeder)`, a callback handler with
//!   `BytesCodec` that sends 64 KiB chunks while the output is below the
//!   high watermark (the defaults, 1 MiB / 256 KiB), sends more from
//!   `outbound_drained`, and closes cat's stdin after the last one with
//!   `close_connection_after_writing`; `receive_data` counts.
//! * `tokio-popen`: `tokio::process::Command` with piped stdin and stdout
//!   on a current-thread runtime and a `LocalSet`: one task `write_all`s
//!   the 64 KiB chunks and drops stdin, the other reads stdout into a
//!   64 KiB buffer; then `wait`.
//!
//! The clock runs from just before the child starts to its exit. Prints
//! the `MICRO` line with `mb_per_sec=` (MiB each way per second) and
//! `cpu_ms=` (this process only; `cat`'s own CPU is the same for both).

use std::cell::Cell;
use std::error::Error;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::BytesCodec;

use crate::timers::cpu_time;

/// Mebibytes by default.
pub(crate) const MIB: u64 = 1024;
/// The size of each write.
const CHUNK: usize = 64 * 1024;

fn print(system: &str, bench: &str, mib: u64, elapsed: Duration) {
    em_examples::out!(
        "MICRO system={system} bench={bench} n={mib} elapsed_ms={:.1} ns_per_op={:.1} mb_per_sec={:.0} cpu_ms={:.0}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / mib as f64,
        mib as f64 / elapsed.as_secs_f64(),
        cpu_time().as_secs_f64() * 1e3,
    );
}

/// Feeds cat within the watermarks and counts what comes back.
struct Feeder {
    chunk: Bytes,
    left: usize,
    got: Rc<Cell<usize>>,
}

impl Feeder {
    fn produce(&mut self, conn: &Conn<BytesCodec>) {
        while self.left > 0 && !conn.is_above_high_watermark() {
            let n = self.left.min(self.chunk.len());
            conn.send_data(self.chunk.slice(..n));
            self.left -= n;
        }
        if self.left == 0 {
            conn.close_connection_after_writing();
        }
    }
}

impl Connection for Feeder {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.produce(conn);
    }
    fn outbound_drained(&mut self, conn: &Conn<BytesCodec>) {
        self.produce(conn);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.got.set(self.got.get() + data.len());
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        if !matches!(reason, UnbindReason::Exited(s) if s.success()) {
            eprintln!("popen: cat ended badly: {reason}");
        }
        em::stop();
    }
}

pub(crate) fn em_popen(mib: u64) -> Result<(), Box<dyn Error>> {
    let total = usize::try_from(mib)? << 20;
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let start = Instant::now();
    em::Reactor::builder().stop_on_panic(true).run(move || {
        let feeder = Feeder {
            chunk: Bytes::from(vec![b'x'; CHUNK]),
            left: total,
            got: g,
        };
        em::popen(["cat"], feeder).map(drop)
    })?;
    let elapsed = start.elapsed();
    assert_eq!(got.get(), total, "every byte came back");
    print("em", "popen", mib, elapsed);
    Ok(())
}

pub(crate) fn tokio_popen(mib: u64) -> Result<(), Box<dyn Error>> {
    let total = usize::try_from(mib)? << 20;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    let got = local.block_on(&rt, async move {
        let mut child = tokio::process::Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let writer = tokio::task::spawn_local(async move {
            let chunk = vec![b'x'; CHUNK];
            let mut left = total;
            while left > 0 {
                let n = left.min(CHUNK);
                stdin.write_all(&chunk[..n]).await?;
                left -= n;
            }
            drop(stdin);
            std::io::Result::Ok(())
        });
        let mut buf = vec![0; CHUNK];
        let mut got = 0;
        loop {
            let n = stdout.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        writer.await??;
        let status = child.wait().await?;
        assert!(status.success());
        Ok::<_, Box<dyn Error>>(got)
    })?;
    let elapsed = start.elapsed();
    assert_eq!(got, total, "every byte came back");
    print("tokio", "tokio-popen", mib, elapsed);
    Ok(())
}
