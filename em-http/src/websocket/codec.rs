//! The frame layer (RFC 6455 §5) in the server's role, as a tokio-util
//! codec over tungstenite's [`Frame`]: client frames in, masked and checked;
//! server frames out, unmasked.

use std::io::{self, Cursor};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};
use tungstenite::protocol::frame::{Frame, FrameHeader};

use super::error::WsError;

/// The default limit on a frame's payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// The largest payload of a control frame (RFC 6455 §5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

/// Decodes client frames and encodes server frames.
///
/// Decoding enforces the frame-level rules of RFC 6455 for a server: every
/// client frame is masked (its payload comes out unmasked, the mask
/// cleared), no reserved bit or opcode, control frames final and at most 125
/// bytes, and a payload no longer than [`max_frame_size`]; a frame declaring
/// more is refused from its header alone, before any of it is buffered.
/// Message rules (fragmentation, UTF-8, close payloads) are the
/// [`Assembler`](super::message::Assembler)'s.
///
/// [`max_frame_size`]: FrameCodec::max_frame_size
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    max_frame_size: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

impl FrameCodec {
    /// A codec with the default frame limit, [`DEFAULT_MAX_FRAME_SIZE`].
    pub(crate) fn new() -> Self {
        FrameCodec {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }

    /// The largest payload accepted in one frame, in bytes.
    #[cfg(test)]
    pub(crate) fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Sets the largest payload accepted in one frame; a frame declaring
    /// more fails with [`WsError::FrameTooLarge`] (close code 1009).
    pub(crate) fn set_max_frame_size(&mut self, max: usize) {
        self.max_frame_size = max;
    }
}

/// XORs `buf` with the 4-byte masking key (RFC 6455 §5.3); its own inverse.
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    // Four bytes at a time: each chunk starts at a multiple of 4, so it
    // lines up with the key.
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let masked = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x08 != 0
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WsError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WsError> {
        // The first two bytes are checked as soon as they arrive, before
        // the rest of the header.
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if first & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = first & 0x0F;
        if matches!(opcode, 0x3..=0x7 | 0xB..=0xF) {
            return Err(WsError::ReservedOpcode(opcode));
        }
        if is_control(opcode) && first & 0x80 == 0 {
            return Err(WsError::FragmentedControlFrame);
        }
        match src.get(1) {
            None => return Ok(None),
            Some(second) if second & 0x80 == 0 => return Err(WsError::UnmaskedFrame),
            Some(_) => {}
        }

        let mut cursor = Cursor::new(&src[..]);
        let (mut header, length) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            // Reserved opcodes, the only error it reports on a slice, are
            // refused above.
            Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error).into()),
        };
        let header_len = cursor.position() as usize;

        if length >> 63 != 0 {
            return Err(WsError::InvalidLength);
        }
        if is_control(opcode) && length > MAX_CONTROL_PAYLOAD as u64 {
            return Err(WsError::ControlFrameTooLong(length));
        }
        if length > self.max_frame_size as u64 {
            return Err(WsError::FrameTooLarge {
                size: length,
                max: self.max_frame_size,
            });
        }
        let length = length as usize;
        let total = header_len + length;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }

        src.advance(header_len);
        let mut payload = src.split_to(length);
        if let Some(mask) = header.mask.take() {
            apply_mask(&mut payload, mask);
        }
        Ok(Some(Frame::from_payload(header, payload.freeze())))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WsError;

    /// Writes `frame` unmasked, as a server does (RFC 6455 §5.1); a mask in
    /// its header is dropped.
    fn encode(&mut self, mut frame: Frame, dst: &mut BytesMut) -> Result<(), WsError> {
        frame.header_mut().mask = None;
        dst.reserve(frame.len());
        frame
            .format(&mut dst.writer())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error).into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

    pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A frame as a client sends it: masked with `mask`.
    pub(crate) fn client_bytes(mut frame: Frame, mask: [u8; 4]) -> Vec<u8> {
        frame.header_mut().mask = Some(mask);
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Result<Vec<Frame>, WsError> {
        let mut src = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut src)? {
            frames.push(frame);
        }
        assert!(src.is_empty(), "{} bytes left", src.len());
        Ok(frames)
    }

    fn decode_err(bytes: &[u8]) -> WsError {
        let mut src = BytesMut::from(bytes);
        FrameCodec::new().decode(&mut src).unwrap_err()
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let frames = decode_all(&mut FrameCodec::new(), &bytes).unwrap();
        assert_eq!(frames.len(), 1);
        let frame = &frames[0];
        assert_eq!(frame.header().opcode, OpCode::Data(Data::Text));
        assert!(frame.header().is_final);
        assert_eq!(frame.header().mask, None);
        assert_eq!(frame.payload(), b"Hello");
        assert_eq!(
            client_bytes(
                Frame::message("Hello", OpCode::Data(Data::Text), true),
                MASK
            ),
            bytes
        );
    }

    #[test]
    fn unmasked_client_frame_is_1002() {
        // RFC 6455 §5.7: the same message unmasked, as a server would send.
        let error = decode_err(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert!(matches!(error, WsError::UnmaskedFrame));
        assert_eq!(error.close_code(), Some(1002));
    }

    #[test]
    fn unmasked_frame_is_refused_from_its_first_two_bytes() {
        let mut src = BytesMut::from(&[0x82, 0x7E][..]);
        assert!(matches!(
            FrameCodec::new().decode(&mut src),
            Err(WsError::UnmaskedFrame)
        ));
        let mut src = BytesMut::from(&[0x82][..]);
        assert!(FrameCodec::new().decode(&mut src).unwrap().is_none());
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_an_io_error() {
        let bytes = client_bytes(Frame::message("abc", OpCode::Data(Data::Text), true), MASK);
        let mut src = BytesMut::from(&bytes[..bytes.len() - 1]);
        let error = FrameCodec::new().decode_eof(&mut src).unwrap_err();
        assert!(matches!(error, WsError::Io(_)));
        assert_eq!(error.close_code(), None);
        let mut src = BytesMut::new();
        assert!(FrameCodec::new().decode_eof(&mut src).unwrap().is_none());
    }

    #[test]
    fn reserved_bits_and_opcodes_are_1002() {
        for first in [0xC1, 0xA1, 0x91] {
            let error = decode_err(&[first, 0x80, 0, 0, 0, 0]);
            assert!(matches!(error, WsError::ReservedBits), "{first:#x}");
            assert_eq!(error.close_code(), Some(1002));
        }
        for opcode in [0x3, 0x7, 0xB, 0xF] {
            let error = decode_err(&[0x80 | opcode, 0x80, 0, 0, 0, 0]);
            assert!(matches!(error, WsError::ReservedOpcode(op) if op == opcode));
            assert_eq!(error.close_code(), Some(1002));
        }
    }

    #[test]
    fn control_frame_rules_are_1002() {
        let ping = client_bytes(Frame::ping(vec![0; 126]), MASK);
        let error = decode_err(&ping);
        assert!(matches!(error, WsError::ControlFrameTooLong(126)));
        assert_eq!(error.close_code(), Some(1002));
        // 125 bytes is the most allowed.
        let frames = decode_all(
            &mut FrameCodec::new(),
            &client_bytes(Frame::ping(vec![7; 125]), MASK),
        );
        assert_eq!(frames.unwrap()[0].payload(), &[7; 125][..]);

        let mut ping = Frame::ping("x");
        ping.header_mut().is_final = false;
        let error = decode_err(&client_bytes(ping, MASK));
        assert!(matches!(error, WsError::FragmentedControlFrame));
        assert_eq!(error.close_code(), Some(1002));
    }

    #[test]
    fn extended_lengths() {
        for (len, header_len) in [
            (125, 6),
            (126, 8),
            (200, 8),
            (65535, 8),
            (65536, 14),
            (70000, 14),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = client_bytes(
                Frame::message(payload.clone(), OpCode::Data(Data::Binary), true),
                MASK,
            );
            assert_eq!(bytes.len(), header_len + len);
            let frames = decode_all(&mut FrameCodec::new(), &bytes).unwrap();
            assert_eq!(frames[0].payload(), &payload[..]);

            // The server's encoding: 2, 4 or 10 header bytes, unmasked.
            let mut out = BytesMut::new();
            FrameCodec::new()
                .encode(
                    Frame::message(payload.clone(), OpCode::Data(Data::Binary), true),
                    &mut out,
                )
                .unwrap();
            assert_eq!(out.len(), header_len - 4 + len);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0, "server frames are unmasked");
            match header_len {
                6 => assert_eq!(out[1] as usize, len),
                8 => assert_eq!(
                    (out[1], u16::from_be_bytes([out[2], out[3]]) as usize),
                    (126, len)
                ),
                _ => {
                    assert_eq!(out[1], 127);
                    assert_eq!(
                        u64::from_be_bytes(out[2..10].try_into().unwrap()),
                        len as u64
                    );
                }
            }
            assert_eq!(&out[header_len - 4..], &payload[..]);
        }
    }

    #[test]
    fn too_large_frame_is_1009_from_its_header_alone() {
        let mut codec = FrameCodec::new();
        codec.set_max_frame_size(1000);
        assert_eq!(codec.max_frame_size(), 1000);
        // Only the header of a 1001-byte frame has arrived.
        let mut src = BytesMut::from(&[0x82, 0xFE, 0x03, 0xE9, 1, 2, 3, 4][..]);
        let error = codec.decode(&mut src).unwrap_err();
        assert!(matches!(
            error,
            WsError::FrameTooLarge {
                size: 1001,
                max: 1000
            }
        ));
        assert_eq!(error.close_code(), Some(1009));
        // 1000 is fine.
        let bytes = client_bytes(
            Frame::message(vec![1; 1000], OpCode::Data(Data::Binary), true),
            MASK,
        );
        assert_eq!(decode_all(&mut codec, &bytes).unwrap()[0].len(), 1004);
        // The default limit refuses a 16 MiB + 1 frame from its header.
        let mut src = BytesMut::from(&[0x82, 0xFF, 0, 0, 0, 0, 1, 0, 0, 1, 1, 2, 3, 4][..]);
        assert!(matches!(
            FrameCodec::new().decode(&mut src),
            Err(WsError::FrameTooLarge { size, max: DEFAULT_MAX_FRAME_SIZE }) if size == (16 << 20) + 1
        ));
    }

    #[test]
    fn length_with_msb_set_is_1002() {
        let error = decode_err(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
        assert!(matches!(error, WsError::InvalidLength));
        assert_eq!(error.close_code(), Some(1002));
    }

    #[test]
    fn split_at_every_byte_boundary_decodes_the_same() {
        let frame = Frame::message(vec![0xAB; 300], OpCode::Data(Data::Text), false);
        let bytes = client_bytes(frame, MASK);
        let whole = decode_all(&mut FrameCodec::new(), &bytes).unwrap();
        for split in 0..bytes.len() {
            let mut codec = FrameCodec::new();
            let mut src = BytesMut::from(&bytes[..split]);
            assert!(
                codec.decode(&mut src).unwrap().is_none(),
                "split at {split}"
            );
            src.extend_from_slice(&bytes[split..]);
            let frame = codec.decode(&mut src).unwrap().unwrap();
            assert_eq!(frame, whole[0], "split at {split}");
            assert!(src.is_empty());
        }
        // And byte by byte.
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::new();
        let mut decoded = None;
        for (i, byte) in bytes.iter().enumerate() {
            src.put_u8(*byte);
            decoded = codec.decode(&mut src).unwrap();
            assert_eq!(decoded.is_some(), i == bytes.len() - 1);
        }
        assert_eq!(decoded.unwrap(), whole[0]);
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut bytes = client_bytes(Frame::message("a", OpCode::Data(Data::Text), false), MASK);
        bytes.extend(client_bytes(Frame::ping(""), [0; 4]));
        bytes.extend(client_bytes(
            Frame::message("b", OpCode::Data(Data::Continue), true),
            MASK,
        ));
        let frames = decode_all(&mut FrameCodec::new(), &bytes).unwrap();
        let ops: Vec<_> = frames.iter().map(|f| f.header().opcode).collect();
        assert_eq!(
            ops,
            [
                OpCode::Data(Data::Text),
                OpCode::Control(Control::Ping),
                OpCode::Data(Data::Continue)
            ]
        );
        assert_eq!(frames[2].payload(), b"b");
    }

    #[test]
    fn encoder_drops_a_mask() {
        let mut frame = Frame::pong(Bytes::from_static(b"hi"));
        frame.header_mut().mask = Some(MASK);
        let mut out = BytesMut::new();
        FrameCodec::new().encode(frame, &mut out).unwrap();
        assert_eq!(&out[..], &[0x8A, 0x02, b'h', b'i']);
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Data(Data::Continue)),
            Just(OpCode::Data(Data::Text)),
            Just(OpCode::Data(Data::Binary)),
            Just(OpCode::Control(Control::Close)),
            Just(OpCode::Control(Control::Ping)),
            Just(OpCode::Control(Control::Pong)),
        ]
    }

    proptest! {
        #[test]
        fn apply_mask_is_the_bytewise_xor(
            data in proptest::collection::vec(any::<u8>(), 0..40),
            mask in any::<[u8; 4]>(),
        ) {
            let mut masked = data.clone();
            apply_mask(&mut masked, mask);
            let expected: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            prop_assert_eq!(&masked, &expected);
            apply_mask(&mut masked, mask);
            prop_assert_eq!(masked, data);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut codec = FrameCodec::new();
            codec.set_max_frame_size(1 << 12);
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
        }

        #[test]
        fn encode_then_decode_round_trips(
            opcode in any_opcode(),
            is_final in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..70_000),
            mask in any::<[u8; 4]>(),
            split in any::<prop::sample::Index>(),
        ) {
            let is_control = matches!(opcode, OpCode::Control(_));
            let payload = if is_control { &payload[..payload.len().min(125)] } else { &payload[..] };
            let is_final = is_final || is_control;
            let mut frame = Frame::message(Bytes::copy_from_slice(payload), OpCode::Data(Data::Binary), is_final);
            frame.header_mut().opcode = opcode;
            let bytes = client_bytes(frame.clone(), mask);
            let split = split.index(bytes.len());
            let mut codec = FrameCodec::new();
            let mut src = BytesMut::from(&bytes[..split]);
            prop_assert!(codec.decode(&mut src).unwrap().is_none());
            src.extend_from_slice(&bytes[split..]);
            prop_assert_eq!(codec.decode(&mut src).unwrap(), Some(frame.clone()));

            // The server's encoding parses back with tungstenite's parser.
            let mut out = BytesMut::new();
            codec.encode(frame.clone(), &mut out).unwrap();
            let mut cursor = Cursor::new(&out[..]);
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            prop_assert_eq!(&header, frame.header());
            prop_assert_eq!(&out[cursor.position() as usize..], payload);
            prop_assert_eq!(len as usize, payload.len());
        }
    }
}
