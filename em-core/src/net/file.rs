//! Files on a connection (EventMachine's `send_file_data` and
//! `stream_file_data`): a file's bytes go into the connection's output
//! queue as they are, past the codec, optionally framed as HTTP/1.1 chunked
//! transfer encoding.
//!
//! A file of any size streams in bounded memory: a task on the reactor
//! reads it in chunks on tokio's blocking pool (never on the reactor
//! thread), and queues a chunk only while the output is at or below the
//! high watermark; otherwise it waits for the output to drain to the low
//! watermark (`ConnState::wait_for_output`), as a producer waits for
//! `outbound_drained`. It holds the connection only weakly
//! between steps, and ends as soon as the connection does.

use std::fs::File;
use std::future::poll_fn;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::task::Poll;

use crate::error::{Error, Result};
use crate::messaging::deferred::Deferred;
use crate::net::conn::{Conn, WeakConn};
use crate::reactor::core::Core;

/// The bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;

/// The most bytes the chunked framing adds around one chunk: up to 16 hex
/// digits and a CRLF before it, a CRLF after it.
const CHUNK_FRAMING: usize = 16 + 2 + 2;

/// The end of a chunked body: the last, empty chunk and an empty trailer.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a file's bytes go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// As they are.
    Raw,
    /// HTTP/1.1 chunked transfer encoding.
    Chunked,
}

impl Framing {
    fn overhead(self) -> usize {
        match self {
            Framing::Raw => 0,
            Framing::Chunked => CHUNK_FRAMING,
        }
    }
}

impl<C: 'static> Conn<C> {
    /// Sends the file at `path` on the connection (EventMachine's
    /// `send_file_data`), as it is, past the codec; the same as
    /// [`stream_file_data(path, false)`](Conn::stream_file_data). Unlike
    /// EventMachine, which refuses files of 32 KiB or more, any size
    /// streams, within the outbound watermarks.
    ///
    /// The file is opened now, on the reactor thread, and read in 64 KiB
    /// chunks on tokio's blocking pool; each chunk is queued on the reactor
    /// thread once the output is at or below the high watermark (see
    /// [`set_outbound_watermarks`](Conn::set_outbound_watermarks)), so the
    /// connection's other output may interleave with the file's between
    /// chunks: queue nothing else until the file is out.
    ///
    /// Returns a [`Deferred`] that succeeds, on the reactor thread, with the
    /// number of the file's bytes once the last one is queued (not yet
    /// written: [`close_connection_after_writing`](Conn::close_connection_after_writing)
    /// from its callback closes once the peer has them all). It fails with
    /// `is_closed()` if the connection ends, closes or is detached first
    /// (the reactor's stop included: the file's rest is not sent in the
    /// shutdown grace), and with `is_io()` if a read fails; the connection
    /// stays open then, with part of the file sent.
    ///
    /// Errors, at once: `is_io()` if the file cannot be opened (the message
    /// names the path; `io_error()` has the system's error, such as
    /// `NotFound`); `is_unsupported()` if `path` is not a regular file
    /// (a directory, a FIFO, a device) or the connection is a pipe's read
    /// end or a datagram socket (a file is a stream of bytes, with no
    /// datagram boundaries); `is_closed()` on a closed or closing connection;
    /// `is_no_reactor()` / `is_stopping()` off the reactor or once it stops.
    ///
    /// ```
    /// # use em_core as em;
    /// use em::{Conn, Connection, UnbindReason};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::BytesCodec;
    ///
    /// /// Sends a file, then closes once the peer has it.
    /// struct Sender(std::path::PathBuf);
    /// impl Connection for Sender {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
    ///         let sent = conn.send_file_data(&self.0).expect("the file opens");
    ///         let c = conn.clone();
    ///         sent.callback(move |bytes| {
    ///             assert_eq!(*bytes, 5);
    ///             c.close_connection_after_writing();
    ///         });
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    /// }
    ///
    /// /// Reads until the sender closes.
    /// struct Receiver(BytesMut);
    /// impl Connection for Receiver {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
    ///         self.0.extend_from_slice(&data);
    ///     }
    ///     fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
    ///         assert_eq!(&self.0[..], b"hello");
    ///         em::stop();
    ///     }
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("em-doc-send-file-{}", std::process::id()));
    /// std::fs::write(&path, b"hello").expect("write");
    /// let p = path.clone();
    /// em::run(move || -> em::Result<()> {
    ///     em::connect_pair(Sender(p), Receiver(BytesMut::new()))?;
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(path).expect("remove");
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn send_file_data(&self, path: impl AsRef<Path>) -> Result<Deferred<u64, Error>> {
        self.start_file("send_file_data", path.as_ref(), Framing::Raw)
    }

    /// Streams the file at `path` on the connection (EventMachine's
    /// `stream_file_data`), past the codec: as it is, or with `chunked`
    /// framed as an HTTP/1.1 chunked body (`<hex length>\r\n<data>\r\n` per
    /// chunk, then `0\r\n\r\n`), to follow a response head that says
    /// `Transfer-Encoding: chunked`.
    ///
    /// Everything else is as [`send_file_data`](Conn::send_file_data): the
    /// file opens now, streams within the outbound watermarks, and the
    /// returned [`Deferred`] succeeds with the number of the file's bytes
    /// (the framing not counted) once the last one, and the last chunk, are
    /// queued; the same errors. EventMachine polls the output size every
    /// tick to throttle; em waits to be woken when the output drains.
    pub fn stream_file_data(
        &self,
        path: impl AsRef<Path>,
        chunked: bool,
    ) -> Result<Deferred<u64, Error>> {
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::Raw
        };
        self.start_file("stream_file_data", path.as_ref(), framing)
    }

    fn start_file(
        &self,
        call: &'static str,
        path: &Path,
        framing: Framing,
    ) -> Result<Deferred<u64, Error>> {
        self.may_queue(call)?;
        if self.state().datagram.get() {
            return Err(Error::unsupported(
                call,
                "a datagram socket sends datagrams, and a file is a stream of bytes",
            ));
        }
        Core::current_accepting(call)?;
        let file = open(call, path)?;
        let done = Deferred::new();
        let streamer = FileStream {
            call,
            path: path.to_owned(),
            conn: self.downgrade(),
            framing,
            done: done.clone(),
        };
        tracing::debug!(conn = %self.id(), path = %path.display(), "streaming a file");
        tokio::task::spawn_local(streamer.run(file));
        Ok(done)
    }
}

/// Opens `path` for `call`: a regular file only (a FIFO would block the
/// reactor in `open`, a device may never end), checked before it is opened.
fn open(call: &'static str, path: &Path) -> Result<File> {
    let not_regular =
        || Error::unsupported(call, format!("{} is not a regular file", path.display()));
    let cannot = |e: io::Error| file_error(call, "cannot open", path, e);
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let file = File::open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        // Replaced between the two looks.
        return Err(not_regular());
    }
    Ok(file)
}

/// An `is_io()` error for `call` whose message names the path, keeping the
/// system's error kind.
fn file_error(call: &'static str, what: &str, path: &Path, e: io::Error) -> Error {
    Error::io(
        call,
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())),
    )
}

/// One file on its way into a connection's output queue.
struct FileStream<C> {
    call: &'static str,
    path: PathBuf,
    conn: WeakConn<C>,
    framing: Framing,
    done: Deferred<u64, Error>,
}

impl<C: 'static> FileStream<C> {
    async fn run(self, file: File) {
        let result = self.stream(file).await;
        match &result {
            Ok(bytes) => tracing::debug!(path = %self.path.display(), bytes, "file queued"),
            Err(e) => tracing::debug!(path = %self.path.display(), error = %e, "file not sent"),
        }
        self.done.resolve(result);
    }

    /// Reads the file chunk by chunk and queues each as room frees up; the
    /// file's bytes queued.
    async fn stream(&self, file: File) -> Result<u64> {
        let mut file = Some(file);
        let mut buf = vec![0; CHUNK];
        let mut sent = 0u64;
        loop {
            let (back, chunk, read) = read_chunk(file.take(), buf).await;
            file = back;
            buf = chunk;
            let n = read.map_err(|e| file_error(self.call, "cannot read", &self.path, e))?;
            if n == 0 {
                break;
            }
            let mut data = &buf[..n];
            while !data.is_empty() {
                let (conn, room) = self.room().await?;
                let (piece, rest) = data.split_at(data.len().min(room));
                match self.framing {
                    Framing::Raw => conn.send_raw(self.call, &[piece])?,
                    Framing::Chunked => {
                        let head = format!("{:x}\r\n", piece.len());
                        conn.send_raw(self.call, &[head.as_bytes(), piece, b"\r\n"])?
                    }
                };
                sent += piece.len() as u64;
                data = rest;
            }
        }
        if self.framing == Framing::Chunked {
            let (conn, _) = self.room().await?;
            conn.send_raw(self.call, &[LAST_CHUNK])?;
        }
        Ok(sent)
    }

    /// Waits until the connection's output is at or below its high
    /// watermark (and, once it passed it, has drained to the low one) with
    /// room under `max_outbound`; the connection, and how many of the
    /// file's bytes fit (the framing's room kept aside). Fails
    /// with `is_closed()` once the connection ends or closes. While the
    /// reactor stops, it queues nothing more and waits for the end.
    async fn room(&self) -> Result<(Conn<C>, usize)> {
        poll_fn(|cx| {
            let Some(conn) = self.conn.upgrade() else {
                return Poll::Ready(Err(Error::closed()));
            };
            let state = conn.state();
            if let Some(refused) = state.refusal() {
                return Poll::Ready(Err(refused));
            }
            let queued = state.outbound.borrow().len();
            let room = state
                .max_outbound
                .get()
                .saturating_sub(queued)
                .saturating_sub(self.framing.overhead() + LAST_CHUNK.len());
            // Once past the high watermark, the queue must drain to the low
            // one (`above_high` clears, as `outbound_drained` runs) before
            // more is queued: the moments the output wakes its waiters.
            let below_high = queued <= state.high_watermark.get() && !state.above_high.get();
            if below_high && room > 0 && !crate::stopping() {
                return Poll::Ready(Ok((conn, room)));
            }
            state.wait_for_output(cx.waker());
            Poll::Pending
        })
        .await
    }
}

/// The streamer's end, however it comes: a streamer dropped unresolved (its
/// task dropped with the reactor) fails its deferred, so nobody waits on it
/// for ever.
impl<C> Drop for FileStream<C> {
    fn drop(&mut self) {
        self.done.fail(Error::closed());
    }
}

/// Reads up to one chunk from `file` into `buf` on tokio's blocking pool;
/// gives both back with the bytes read (0 at the end of the file).
async fn read_chunk(
    file: Option<File>,
    mut buf: Vec<u8>,
) -> (Option<File>, Vec<u8>, io::Result<usize>) {
    let Some(mut file) = file else {
        return (None, buf, Err(io::Error::other("the file was lost")));
    };
    let read = tokio::task::spawn_blocking(move || {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (file, buf, Err(e)),
            }
        }
        (file, buf, Ok(filled))
    })
    .await;
    match read {
        Ok((file, buf, read)) => (Some(file), buf, read),
        Err(e) => (
            None,
            vec![0; CHUNK],
            Err(io::Error::other(format!("the read did not finish: {e}"))),
        ),
    }
}
