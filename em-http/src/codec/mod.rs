//! The codecs: the server's (requests in, the `request` module; responses
//! out, the `response` module; the raw byte stream after an upgrade) and
//! the client's (the `client` module), over one body decoder (`body`).

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod head;
pub(crate) mod header_pool;
pub(crate) mod request;
pub(crate) mod response;

use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::limits::Limits;
use request::{RequestDecoder, RequestFrame};
pub(crate) use response::Outgoing;

/// What the server's connection receives (heads unboxed: see
/// [`RequestFrame`]).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum ServerFrame {
    /// Something of a request.
    Request(RequestFrame),
    /// Bytes after an upgrade (`101 Switching Protocols`), as they came.
    Upgraded(BytesMut),
}

/// One connection's codec: an HTTP/1.1 request decoder until an upgrade,
/// then a pass-through.
#[derive(Debug)]
pub(crate) struct ServerCodec {
    pub(crate) request: RequestDecoder,
    upgraded: bool,
}

impl ServerCodec {
    pub(crate) fn new(limits: Rc<Limits>) -> Self {
        ServerCodec {
            request: RequestDecoder::new(limits),
            upgraded: false,
        }
    }

    /// From now on the input is not HTTP: every byte goes to the upgrade.
    pub(crate) fn upgrade(&mut self) {
        self.upgraded = true;
    }

    /// Whether part of a request head is waiting, with the count of heads
    /// read whole so far (the header timeout's check).
    pub(crate) fn head_progress(&self) -> (bool, u64) {
        (self.request.in_head(), self.request.heads)
    }
}

impl Decoder for ServerCodec {
    type Item = ServerFrame;
    type Error = io::Error;

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<ServerFrame>> {
        if self.upgraded {
            return Ok((!src.is_empty()).then(|| ServerFrame::Upgraded(src.split())));
        }
        Ok(self.request.decode(src).map(ServerFrame::Request))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<ServerFrame>> {
        if self.upgraded {
            return self.decode(src);
        }
        Ok(self.request.decode_eof(src).map(ServerFrame::Request))
    }
}

impl Encoder<Outgoing<'_>> for ServerCodec {
    type Error = io::Error;

    #[inline]
    fn encode(&mut self, item: Outgoing<'_>, dst: &mut BytesMut) -> io::Result<()> {
        item.encode(dst);
        Ok(())
    }
}
