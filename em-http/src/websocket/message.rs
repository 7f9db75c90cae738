//! The message layer (RFC 6455 §5.4–5.5): assembling decoded frames into
//! messages on the way in, encoding messages and control frames on the way
//! out.

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::{
    coding::{Control, Data, OpCode},
    Frame, FrameHeader,
};

use super::codec::MAX_CONTROL_PAYLOAD;
use super::error::WsError;

/// The default limit on a message's payload: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// What the peer sent, as the [`Assembler`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping; the server answers with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (answering a ping, or unsolicited as a heartbeat).
    Pong(Bytes),
    /// A close frame: its code and reason, or `None` if it had no payload.
    /// The server answers with its own close frame (see
    /// [`encode_close_reply`]) unless it sent one first, then closes.
    Close(Option<(u16, String)>),
}

/// A data message for the server to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(data.into())
    }
}

/// Whether `code` may appear in a close frame on the wire (RFC 6455
/// §7.4): 1000–1003, 1007–1014 (the registered codes, without 1004, 1005,
/// 1006 and 1015 which are reserved or never sent), and 3000–4999 (for
/// libraries and applications).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented message being received.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// For text, how many bytes of `data` are known to be valid UTF-8.
    checked: usize,
}

/// Turns the frames a [`FrameCodec`](super::codec::FrameCodec) decodes into
/// [`Incoming`] messages and control frames, enforcing the message rules:
///
/// - a fragmented message is a text or binary frame without FIN, then
///   continuation frames up to one with FIN; control frames may come in
///   between and are yielded at once. A continuation with no message in
///   progress, or a new text or binary frame while one is, is a protocol
///   error (1002).
/// - text must be UTF-8 (1007); fragments are checked as they arrive, so a
///   bad sequence fails without waiting for the end of the message.
/// - a message's total payload is at most [`max_message_size`] (1009).
/// - a close frame's payload is empty, or a valid code (1002 otherwise, see
///   [`is_valid_close_code`]; a 1-byte payload is 1002 too) followed by a
///   UTF-8 reason (1007).
///
/// After a close frame every further frame is ignored (RFC 6455 §5.5.1).
///
/// [`max_message_size`]: Assembler::max_message_size
#[derive(Debug)]
pub(crate) struct Assembler {
    max_message_size: usize,
    partial: Option<Partial>,
    closed: bool,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler::new()
    }
}

impl Assembler {
    /// An assembler with the default message limit,
    /// [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub(crate) fn new() -> Self {
        Assembler {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            partial: None,
            closed: false,
        }
    }

    /// The largest total payload accepted in one message, in bytes.
    #[cfg(test)]
    pub(crate) fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Sets the largest total payload accepted in one message; more fails
    /// with [`WsError::MessageTooLarge`] (close code 1009).
    pub(crate) fn set_max_message_size(&mut self, max: usize) {
        self.max_message_size = max;
    }

    /// Whether a close frame has been received (later frames are ignored).
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a fragmented message is in progress.
    #[cfg(test)]
    pub(crate) fn in_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Feeds one decoded (unmasked) frame: `Some` when it completes a
    /// message or is a control frame, `None` for a fragment that does not
    /// end its message or any frame after a close. An error is a protocol
    /// violation to fail the connection with its
    /// [`close_code`](WsError::close_code); the assembler is not meant to be
    /// fed again after one.
    pub(crate) fn push(&mut self, frame: Frame) -> Result<Option<Incoming>, WsError> {
        if self.closed {
            return Ok(None);
        }
        let is_final = frame.header().is_final;
        match frame.header().opcode {
            OpCode::Control(control) => {
                // The codec checks these too; the assembler may be fed
                // frames from elsewhere.
                if !is_final {
                    return Err(WsError::FragmentedControlFrame);
                }
                if frame.payload().len() > MAX_CONTROL_PAYLOAD {
                    return Err(WsError::ControlFrameTooLong(frame.payload().len() as u64));
                }
                match control {
                    Control::Ping => Ok(Some(Incoming::Ping(frame.into_payload()))),
                    Control::Pong => Ok(Some(Incoming::Pong(frame.into_payload()))),
                    Control::Close => {
                        let close = parse_close(frame.payload())?;
                        self.closed = true;
                        self.partial = None;
                        Ok(Some(Incoming::Close(close)))
                    }
                    Control::Reserved(op) => Err(WsError::ReservedOpcode(op)),
                }
            }
            OpCode::Data(Data::Reserved(op)) => Err(WsError::ReservedOpcode(op)),
            OpCode::Data(Data::Continue) => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(WsError::UnexpectedContinuation);
                };
                let size = partial.data.len() + frame.payload().len();
                if size > self.max_message_size {
                    return Err(WsError::MessageTooLarge {
                        size,
                        max: self.max_message_size,
                    });
                }
                partial.data.extend_from_slice(frame.payload());
                if !is_final {
                    if partial.text {
                        check_utf8_prefix(&partial.data, &mut partial.checked)?;
                    }
                    return Ok(None);
                }
                let Partial { text, data, .. } = self.partial.take().expect("checked above");
                if text {
                    String::from_utf8(data)
                        .map(Incoming::Text)
                        .map(Some)
                        .map_err(|_| WsError::InvalidUtf8)
                } else {
                    Ok(Some(Incoming::Binary(data.into())))
                }
            }
            OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                if self.partial.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                let size = frame.payload().len();
                if size > self.max_message_size {
                    return Err(WsError::MessageTooLarge {
                        size,
                        max: self.max_message_size,
                    });
                }
                let text = data == Data::Text;
                if is_final {
                    return if text {
                        String::from_utf8(frame.into_payload().into())
                            .map(|text| Some(Incoming::Text(text)))
                            .map_err(|_| WsError::InvalidUtf8)
                    } else {
                        Ok(Some(Incoming::Binary(frame.into_payload())))
                    };
                }
                let mut partial = Partial {
                    text,
                    data: frame.into_payload().into(),
                    checked: 0,
                };
                if text {
                    check_utf8_prefix(&partial.data, &mut partial.checked)?;
                }
                self.partial = Some(partial);
                Ok(None)
            }
        }
    }
}

/// Checks `data[*checked..]` as the middle of a UTF-8 text: invalid bytes
/// fail, a sequence cut at the end is left for the next fragment.
fn check_utf8_prefix(data: &[u8], checked: &mut usize) -> Result<(), WsError> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => *checked = data.len(),
        Err(error) if error.error_len().is_none() => *checked += error.valid_up_to(),
        Err(_) => return Err(WsError::InvalidUtf8),
    }
    Ok(())
}

/// A close frame's payload (RFC 6455 §5.5.1): empty, or a code and a UTF-8
/// reason.
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::InvalidClosePayload),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
                return Err(WsError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// Writes one final, unmasked frame.
fn write_frame(opcode: OpCode, payload: &[u8], dst: &mut BytesMut) {
    let header = FrameHeader {
        is_final: true,
        opcode,
        ..FrameHeader::default()
    };
    dst.reserve(header.len(payload.len() as u64) + payload.len());
    header
        .format(payload.len() as u64, &mut dst.writer())
        .expect("writing to a BytesMut cannot fail");
    dst.extend_from_slice(payload);
}

/// Writes `message` as one unfragmented, unmasked frame (text or binary).
pub(crate) fn encode_message(message: &Message, dst: &mut BytesMut) {
    match message {
        Message::Text(text) => write_frame(OpCode::Data(Data::Text), text.as_bytes(), dst),
        Message::Binary(data) => write_frame(OpCode::Data(Data::Binary), data, dst),
    }
}

fn encode_control(control: Control, payload: &[u8], dst: &mut BytesMut) -> Result<(), WsError> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(WsError::ControlFrameTooLong(payload.len() as u64));
    }
    write_frame(OpCode::Control(control), payload, dst);
    Ok(())
}

/// Writes a ping frame; its payload is at most 125 bytes, else
/// [`WsError::ControlFrameTooLong`] and nothing is written.
pub(crate) fn encode_ping(payload: &[u8], dst: &mut BytesMut) -> Result<(), WsError> {
    encode_control(Control::Ping, payload, dst)
}

/// Writes a pong frame (the answer to a ping carries the ping's payload);
/// its payload is at most 125 bytes, else [`WsError::ControlFrameTooLong`]
/// and nothing is written.
pub(crate) fn encode_pong(payload: &[u8], dst: &mut BytesMut) -> Result<(), WsError> {
    encode_control(Control::Pong, payload, dst)
}

/// Writes a close frame with `code` and `reason`. The reason is cut to the
/// 123 bytes a control frame leaves it, at a character boundary. `code`
/// should satisfy [`is_valid_close_code`] (checked in debug builds).
pub(crate) fn encode_close(code: u16, reason: &str, dst: &mut BytesMut) {
    debug_assert!(
        is_valid_close_code(code),
        "close code {code} is not to be sent"
    );
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    write_frame(OpCode::Control(Control::Close), &payload[..2 + end], dst);
}

/// Writes the close frame answering a received one (RFC 6455 §5.5.1): it
/// echoes the received code without a reason, or is empty if the received
/// frame was.
pub(crate) fn encode_close_reply(received: Option<&(u16, String)>, dst: &mut BytesMut) {
    match received {
        Some((code, _)) => encode_close(*code, "", dst),
        None => write_frame(OpCode::Control(Control::Close), &[], dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::codec::{
        tests::{client_bytes, MASK},
        FrameCodec,
    };
    use tokio_util::codec::Decoder;

    fn text(payload: &[u8], is_final: bool) -> Frame {
        Frame::message(
            Bytes::copy_from_slice(payload),
            OpCode::Data(Data::Text),
            is_final,
        )
    }

    fn binary(payload: &[u8], is_final: bool) -> Frame {
        Frame::message(
            Bytes::copy_from_slice(payload),
            OpCode::Data(Data::Binary),
            is_final,
        )
    }

    fn cont(payload: &[u8], is_final: bool) -> Frame {
        Frame::message(
            Bytes::copy_from_slice(payload),
            OpCode::Data(Data::Continue),
            is_final,
        )
    }

    fn close(payload: &[u8]) -> Frame {
        let mut frame = Frame::ping(Bytes::copy_from_slice(payload));
        frame.header_mut().opcode = OpCode::Control(Control::Close);
        frame
    }

    fn push_all(frames: Vec<Frame>) -> Result<Vec<Incoming>, WsError> {
        let mut assembler = Assembler::new();
        let mut out = Vec::new();
        for frame in frames {
            out.extend(assembler.push(frame)?);
        }
        Ok(out)
    }

    fn code_of(result: Result<Vec<Incoming>, WsError>) -> Option<u16> {
        result.unwrap_err().close_code()
    }

    #[test]
    fn single_frame_messages() {
        let got = push_all(vec![
            text(b"hello", true),
            binary(&[1, 2, 3], true),
            Frame::ping("p"),
            Frame::pong("q"),
        ]);
        assert_eq!(
            got.unwrap(),
            [
                Incoming::Text("hello".into()),
                Incoming::Binary(Bytes::from_static(&[1, 2, 3])),
                Incoming::Ping(Bytes::from_static(b"p")),
                Incoming::Pong(Bytes::from_static(b"q")),
            ]
        );
    }

    #[test]
    fn fragmentation_with_interleaved_ping() {
        let mut assembler = Assembler::new();
        assert_eq!(assembler.push(text(b"Hel", false)).unwrap(), None);
        assert!(assembler.in_message());
        assert_eq!(
            assembler.push(Frame::ping("x")).unwrap(),
            Some(Incoming::Ping("x".into()))
        );
        assert_eq!(assembler.push(cont(b"l", false)).unwrap(), None);
        assert_eq!(
            assembler.push(Frame::pong("")).unwrap(),
            Some(Incoming::Pong(Bytes::new()))
        );
        assert_eq!(
            assembler.push(cont(b"o", true)).unwrap(),
            Some(Incoming::Text("Hello".into()))
        );
        assert!(!assembler.in_message());
        assert_eq!(assembler.push(binary(b"ab", false)).unwrap(), None);
        assert_eq!(assembler.push(cont(b"", false)).unwrap(), None);
        assert_eq!(
            assembler.push(cont(b"c", true)).unwrap(),
            Some(Incoming::Binary("abc".into()))
        );
    }

    #[test]
    fn continuation_without_start_is_1002() {
        let error = push_all(vec![cont(b"x", true)]).unwrap_err();
        assert!(matches!(error, WsError::UnexpectedContinuation));
        assert_eq!(error.close_code(), Some(1002));
        assert_eq!(
            code_of(push_all(vec![text(b"a", true), cont(b"x", false)])),
            Some(1002)
        );
    }

    #[test]
    fn new_data_frame_during_a_message_is_1002() {
        let error = push_all(vec![text(b"a", false), binary(b"b", true)]).unwrap_err();
        assert!(matches!(error, WsError::ExpectedContinuation));
        assert_eq!(error.close_code(), Some(1002));
        assert_eq!(
            code_of(push_all(vec![binary(b"a", false), text(b"b", false)])),
            Some(1002)
        );
    }

    #[test]
    fn invalid_utf8_is_1007() {
        assert_eq!(code_of(push_all(vec![text(&[0xFF], true)])), Some(1007));
        // Fails at the bad fragment, before the message ends.
        let mut assembler = Assembler::new();
        assert_eq!(assembler.push(text(b"ok", false)).unwrap(), None);
        let error = assembler
            .push(cont(&[b'a', 0xC0, 0x80], false))
            .unwrap_err();
        assert!(matches!(error, WsError::InvalidUtf8));
        assert_eq!(error.close_code(), Some(1007));
        // A sequence cut at the end of a message.
        assert_eq!(
            code_of(push_all(vec![text(b"a", false), cont(&[0xC3], true)])),
            Some(1007)
        );
        assert_eq!(
            code_of(push_all(vec![text(&[0xE2, 0x82], true)])),
            Some(1007)
        );
    }

    #[test]
    fn characters_split_across_fragments() {
        let euro = "€".as_bytes(); // E2 82 AC
        let got = push_all(vec![
            text(&euro[..1], false),
            cont(&euro[1..2], false),
            cont(&[euro[2], 0xC3], false),
            cont(&[0xA9], true),
        ]);
        assert_eq!(got.unwrap(), [Incoming::Text("€é".into())]);
    }

    #[test]
    fn max_message_size_is_1009() {
        let mut assembler = Assembler::new();
        assert_eq!(assembler.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
        assembler.set_max_message_size(10);
        assert_eq!(
            assembler.push(binary(&[0; 10], true)).unwrap().unwrap(),
            Incoming::Binary(vec![0; 10].into())
        );
        let error = assembler.push(text(&[b'a'; 11], true)).unwrap_err();
        assert!(matches!(
            error,
            WsError::MessageTooLarge { size: 11, max: 10 }
        ));
        assert_eq!(error.close_code(), Some(1009));

        let mut assembler = Assembler::new();
        assembler.set_max_message_size(10);
        assert_eq!(assembler.push(binary(&[0; 6], false)).unwrap(), None);
        assert_eq!(
            assembler.push(Frame::ping(vec![0; 100])).unwrap(),
            Some(Incoming::Ping(vec![0; 100].into()))
        );
        let error = assembler.push(cont(&[0; 5], true)).unwrap_err();
        assert!(matches!(
            error,
            WsError::MessageTooLarge { size: 11, max: 10 }
        ));
        assert_eq!(error.close_code(), Some(1009));
    }

    #[test]
    fn close_frames() {
        assert_eq!(push_all(vec![close(b"")]).unwrap(), [Incoming::Close(None)]);
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice("bye ✓".as_bytes());
        assert_eq!(
            push_all(vec![close(&payload)]).unwrap(),
            [Incoming::Close(Some((1000, "bye ✓".into())))]
        );
        for code in [1001u16, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999] {
            let got = push_all(vec![close(&code.to_be_bytes())]).unwrap();
            assert_eq!(got, [Incoming::Close(Some((code, String::new())))]);
        }
    }

    #[test]
    fn close_payload_rules() {
        let error = push_all(vec![close(&[3])]).unwrap_err();
        assert!(matches!(error, WsError::InvalidClosePayload));
        assert_eq!(error.close_code(), Some(1002));
        for code in [
            0,
            999,
            1004,
            1005,
            1006,
            1015,
            1016,
            1100,
            2000,
            2999,
            5000,
            u16::MAX,
        ] {
            let error = push_all(vec![close(&code.to_be_bytes())]).unwrap_err();
            assert!(
                matches!(error, WsError::InvalidCloseCode(c) if c == code),
                "{code}"
            );
            assert_eq!(error.close_code(), Some(1002), "{code}");
        }
        let error = push_all(vec![close(&[0x03, 0xE8, 0xCE, 0xBA, 0xE1])]).unwrap_err();
        assert!(matches!(error, WsError::InvalidUtf8));
        assert_eq!(error.close_code(), Some(1007));
    }

    #[test]
    fn frames_after_close_are_ignored() {
        let mut assembler = Assembler::new();
        assert_eq!(assembler.push(text(b"a", false)).unwrap(), None);
        assert_eq!(
            assembler.push(close(&[])).unwrap(),
            Some(Incoming::Close(None))
        );
        assert!(assembler.is_closed());
        assert!(!assembler.in_message());
        assert_eq!(assembler.push(cont(b"b", true)).unwrap(), None);
        assert_eq!(assembler.push(Frame::ping("")).unwrap(), None);
    }

    #[test]
    fn encoding() {
        let mut out = BytesMut::new();
        encode_message(&Message::from("Hello"), &mut out);
        // RFC 6455 §5.7: a single-frame unmasked text message.
        assert_eq!(&out[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_message(&Message::from(vec![0u8; 256]), &mut out);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);

        out.clear();
        encode_ping(b"Hello", &mut out).unwrap();
        assert_eq!(&out[..], &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_pong(b"", &mut out).unwrap();
        assert_eq!(&out[..], &[0x8A, 0x00]);
        let error = encode_ping(&[0; 126], &mut out).unwrap_err();
        assert!(matches!(error, WsError::ControlFrameTooLong(126)));
        assert!(encode_pong(&[0; 126], &mut out).is_err());
        assert_eq!(&out[..], &[0x8A, 0x00], "nothing written on error");

        out.clear();
        encode_close(1000, "done", &mut out);
        assert_eq!(&out[..], &[0x88, 0x06, 0x03, 0xE8, b'd', b'o', b'n', b'e']);
        // The reason is cut at a character boundary within 123 bytes.
        out.clear();
        let long = "é".repeat(100);
        encode_close(1001, &long, &mut out);
        assert_eq!(out[1], 2 + 122);
        assert_eq!(std::str::from_utf8(&out[4..]).unwrap(), "é".repeat(61));

        out.clear();
        encode_close_reply(Some(&(4001, "why".into())), &mut out);
        assert_eq!(&out[..], &[0x88, 0x02, 0x0F, 0xA1]);
        out.clear();
        encode_close_reply(None, &mut out);
        assert_eq!(&out[..], &[0x88, 0x00]);
    }

    #[test]
    fn codec_and_assembler_together() {
        let mut wire = Vec::new();
        wire.extend(client_bytes(text("Hé".as_bytes(), false), MASK));
        wire.extend(client_bytes(Frame::ping("are you there"), MASK));
        wire.extend(client_bytes(cont("llo".as_bytes(), true), [9, 8, 7, 6]));
        wire.extend(client_bytes(close(&[0x03, 0xE8]), MASK));
        let mut src = BytesMut::from(&wire[..]);
        let (mut codec, mut assembler) = (FrameCodec::new(), Assembler::new());
        let mut got = Vec::new();
        while let Some(frame) = codec.decode(&mut src).unwrap() {
            got.extend(assembler.push(frame).unwrap());
        }
        assert_eq!(
            got,
            [
                Incoming::Ping("are you there".into()),
                Incoming::Text("Héllo".into()),
                Incoming::Close(Some((1000, String::new()))),
            ]
        );
    }
}
