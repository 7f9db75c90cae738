//! Server-sent events (the `text/event-stream` format of the HTML
//! standard): a streamed response whose writer sends events, comments and
//! keep-alive pings, with the connection's backpressure.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Response};

use crate::body::response::{BodyClosed, BodyWriter, ResponseBody};

/// One event: its data (one `data:` line per line of it), and optionally
/// its type (`event:`), id (`id:`) and the client's reconnection delay
/// (`retry:`). Plain data.
///
/// ```
/// let event = em_http::sse::Event::new("42 °C").event("temperature").id("7");
/// assert_eq!(event.to_bytes(), "event: temperature\nid: 7\ndata: 42 °C\n\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
}

impl Event {
    /// An event carrying `data` (a `message` event unless
    /// [`event`](Event::event) names another type).
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// The event's type (the browser's `addEventListener(type, …)`).
    /// Line breaks in it are removed, as the format cannot carry them.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(one_line(event.into()));
        self
    }

    /// The event's id (the client sends the last one back as
    /// `Last-Event-ID` when it reconnects). Line breaks are removed.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(one_line(id.into()));
        self
    }

    /// How long the client waits before reconnecting after the stream ends.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The event as it goes on the wire, blank line included.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.data.len() + 32);
        if let Some(event) = &self.event {
            field(&mut out, "event", event);
        }
        if let Some(id) = &self.id {
            field(&mut out, "id", id);
        }
        if let Some(retry) = self.retry {
            field(&mut out, "retry", &retry.as_millis().to_string());
        }
        // Every kind of line break in the data starts a new `data:` line.
        let data = self.data.replace("\r\n", "\n").replace('\r', "\n");
        for line in data.split('\n') {
            field(&mut out, "data", line);
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

fn one_line(text: String) -> String {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], "")
    } else {
        text
    }
}

fn field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    if value.is_empty() {
        out.put_slice(b":\n");
    } else {
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_u8(b'\n');
    }
}

/// Starts an event stream: the response to return (`200`,
/// `Content-Type: text/event-stream`, `Cache-Control: no-cache`) and the
/// [`EventStream`] that writes to it. Reactor thread only.
///
/// ```
/// use em_http::sse::{self, Event};
/// use std::time::Duration;
///
/// em_core::run(|| -> em_core::Result<()> {
///     em_http::serve("127.0.0.1:0", |_request| async {
///         let (mut events, response) = sse::stream();
///         events.keep_alive(Duration::from_secs(15));
///         let _ = events.send(&Event::new("hello").event("greeting"));
///         // Keep `events` (in a timer, a channel subscriber…) to send more.
///         response
///     })?;
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn stream() -> (EventStream, Response<ResponseBody>) {
    let (writer, body) = ResponseBody::channel();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold events back in a buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (
        EventStream {
            writer: Rc::new(writer),
            ping: None,
        },
        response,
    )
}

/// Writes server-sent events to one client, on the reactor thread. The
/// stream ends (cleanly, for the client) when it is dropped or
/// [`finish`](EventStream::finish)ed; sends error with [`BodyClosed`] once
/// the client is gone. Backpressure as [`BodyWriter`]'s:
/// [`is_ready`](EventStream::is_ready), [`ready`](EventStream::ready),
/// [`on_drained`](EventStream::on_drained).
pub struct EventStream {
    writer: Rc<BodyWriter>,
    ping: Option<em_timers::PeriodicTimer>,
}

impl EventStream {
    /// Sends an event.
    pub fn send(&self, event: &Event) -> Result<(), BodyClosed> {
        self.writer.send(event.to_bytes())
    }

    /// Sends an event with only data (a `message` event).
    pub fn data(&self, data: impl Into<String>) -> Result<(), BodyClosed> {
        self.send(&Event::new(data))
    }

    /// Sends a comment (a line starting with `:`), which clients ignore:
    /// for keeping proxies from timing the connection out, or for humans
    /// reading the stream.
    pub fn comment(&self, text: &str) -> Result<(), BodyClosed> {
        let mut out = BytesMut::with_capacity(text.len() + 4);
        for line in text.split(['\r', '\n']) {
            out.put_slice(b": ");
            out.put_slice(line.as_bytes());
            out.put_u8(b'\n');
        }
        out.put_u8(b'\n');
        self.writer.send(out.freeze())
    }

    /// Sends a `: ping` comment every `every` while the stream is open (and
    /// the client keeps up: a ping is skipped while the output is above
    /// its high watermark). Replaces an earlier interval; zero stops the
    /// pings. Errors as `em::add_periodic_timer` does (no reactor,
    /// stopping).
    pub fn keep_alive(&mut self, every: Duration) {
        if let Some(old) = self.ping.take() {
            old.cancel();
        }
        if every.is_zero() {
            return;
        }
        let writer = Rc::downgrade(&self.writer);
        let timer = em_timers::add_periodic_timer(every, move |timer| {
            let Some(writer) = writer.upgrade() else {
                timer.cancel();
                return;
            };
            if writer.is_closed() {
                timer.cancel();
            } else if writer.is_ready() {
                let _ = writer.send(Bytes::from_static(b": ping\n\n"));
            }
        });
        match timer {
            Ok(timer) => self.ping = Some(timer),
            Err(e) => tracing::debug!(error = %e, "no keep-alive pings: the timer could not start"),
        }
    }

    /// Whether the client can take more now (see [`BodyWriter::is_ready`]).
    pub fn is_ready(&self) -> bool {
        self.writer.is_ready()
    }

    /// Resolves once the client can take more.
    pub async fn ready(&self) {
        self.writer.ready().await
    }

    /// Calls `f` each time the client's backlog drains (see
    /// [`BodyWriter::on_drained`]).
    pub fn on_drained(&self, f: impl FnMut() + 'static) {
        self.writer.on_drained(f)
    }

    /// Whether the stream is over (finished, or the client is gone).
    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// Ends the stream.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(timer) = self.ping.take() {
            timer.cancel();
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("closed", &self.is_closed())
            .field("keep_alive", &self.ping.as_ref().map(|t| t.interval()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        let e = Event::new("a\nb\r\nc\rd")
            .id("x\ny")
            .retry(Duration::from_secs(3));
        assert_eq!(
            e.to_bytes(),
            "id: xy\nretry: 3000\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(Event::new("").to_bytes(), "data:\n\n");
    }
}
