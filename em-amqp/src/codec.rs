//! AMQP 0.9.1 frames through amq-protocol's parser and writer.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// The frame codec: amq-protocol's `parse_frame` and `gen_frame` as a
/// tokio-util codec, with a bound on a frame's size (the `frame_max`
/// agreed at the handshake).
#[derive(Debug, Clone)]
pub struct AmqpCodec {
    max_frame: usize,
    scratch: Vec<u8>,
}

impl AmqpCodec {
    /// A codec refusing frames larger than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        AmqpCodec {
            max_frame,
            scratch: Vec::new(),
        }
    }
}

impl Decoder for AmqpCodec {
    type Item = AMQPFrame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<AMQPFrame>, std::io::Error> {
        if buf.is_empty() {
            return Ok(None);
        }
        match parse_frame(&buf[..]) {
            Ok((rest, frame)) => {
                let used = buf.len() - rest.len();
                let _ = buf.split_to(used);
                Ok(Some(frame))
            }
            Err(e) if e.is_incomplete() => {
                if buf.len() > self.max_frame + 8 {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("an AMQP frame passed the {} byte limit", self.max_frame),
                    ))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an AMQP frame: {e}"),
            )),
        }
    }
}

impl Encoder<AMQPFrame> for AmqpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: AMQPFrame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        // Into a scratch buffer kept between frames (the writer needs to
        // seek back for sizes), then onto the output.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let written = gen_frame(&frame)(WriteContext::from(scratch))
            .map_err(|e| std::io::Error::other(format!("cannot write the AMQP frame: {e:?}")))?;
        dst.extend_from_slice(&written.write);
        if written.write.capacity() <= 16 * 1024 {
            self.scratch = written.write;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{channel, AMQPClass};

    fn wire(frames: &[AMQPFrame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for f in frames {
            AmqpCodec::new(1 << 17).encode(f.clone(), &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn frames_decode_back_at_every_split_point() {
        let frames = [
            AMQPFrame::Heartbeat,
            AMQPFrame::Method(
                1,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            ),
            AMQPFrame::Heartbeat,
        ];
        let bytes = wire(&frames);
        for split in 0..bytes.len() {
            let mut codec = AmqpCodec::new(1 << 17);
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&bytes[split..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 3, "split at {split}");
            assert!(matches!(
                got[1],
                AMQPFrame::Method(1, AMQPClass::Channel(_))
            ));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut codec = AmqpCodec::new(1 << 17);
        let mut buf = BytesMut::from(&b"\xffHTTP/1.1 400 Bad Request\r\n\r\n"[..]);
        assert!(codec.decode(&mut buf).is_err());
    }
}
