//! The wire: RESP2 replies parsed by redis-protocol, with a size limit,
//! and commands written as arrays of bulk strings.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::RedisError;

/// The largest reply accepted unless set: Redis's own limit for a bulk
/// string is 512 MiB; a client rarely wants that much in memory.
pub const DEFAULT_MAX_REPLY: usize = 64 * 1024 * 1024;

/// RESP2 with a bound on a reply's size: past it the connection ends with a
/// protocol error instead of buffering without end.
#[derive(Debug, Clone)]
pub(crate) struct RespCodec {
    max_reply: usize,
}

impl RespCodec {
    pub(crate) fn new(max_reply: usize) -> Self {
        RespCodec { max_reply }
    }
}

/// One reply as it came: redis-protocol's parse of it (where each part
/// lies) and the reply's bytes, which the parts are cut from without a
/// copy. Cheaper than redis-protocol's owned frames, which cut every part
/// (an atomic count each) and build a second array, even for the parts
/// nobody keeps (a message's kind and channel).
pub(crate) struct Frame {
    parsed: RangeFrame,
    bytes: Bytes,
}

impl Frame {
    /// What redis-protocol parsed.
    pub(crate) fn parsed(&self) -> &RangeFrame {
        &self.parsed
    }

    /// The bytes a part spans, borrowed.
    pub(crate) fn text(&self, (start, end): (usize, usize)) -> &[u8] {
        &self.bytes[start..end]
    }

    /// The bytes a part spans, as a handle on the reply's buffer.
    pub(crate) fn cut(&self, (start, end): (usize, usize)) -> Bytes {
        self.bytes.slice(start..end)
    }
}

/// For logs: the reply as it came (escaped), at most 256 bytes of it.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 256;
        match self.parsed {
            RangeFrame::Integer(i) => write!(f, "Frame(:{i})"),
            RangeFrame::Null => f.write_str("Frame(nil)"),
            _ => {
                let shown = &self.bytes[..self.bytes.len().min(SHOWN)];
                write!(f, "Frame(\"{}\"", shown.escape_ascii())?;
                if self.bytes.len() > SHOWN {
                    write!(f, "… {} bytes in all", self.bytes.len())?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Decoder for RespCodec {
    type Item = Frame;
    type Error = RedisError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, RedisError> {
        match decode_range(src).map_err(RedisError::protocol)? {
            Some((parsed, len)) => {
                let bytes = match parsed {
                    // Nothing to cut from these (a PUBLISH's count).
                    RangeFrame::Integer(_) | RangeFrame::Null => {
                        src.advance(len);
                        Bytes::new()
                    }
                    _ => src.split_to(len).freeze(),
                };
                Ok(Some(Frame { parsed, bytes }))
            }
            None if src.len() > self.max_reply => Err(RedisError::protocol(format!(
                "a reply passed the {} byte limit",
                self.max_reply
            ))),
            None => Ok(None),
        }
    }
}

/// A command goes out as RESP's array of bulk strings. Written here
/// rather than through redis-protocol's encoder, which measures every
/// length twice with a floating-point `log10` and builds a frame per word:
/// that was a quarter of a publisher's CPU. The bytes are the same as
/// redis-protocol's (a test compares them on random commands); replies are
/// still parsed by redis-protocol.
impl Encoder<Cmd> for RespCodec {
    type Error = RedisError;

    fn encode(&mut self, cmd: Cmd, dst: &mut BytesMut) -> Result<(), RedisError> {
        // Each word: `$`, up to 20 digits, CRLF, the bytes, CRLF.
        let size = 24 + cmd.args.iter().map(|a| a.len() + 24).sum::<usize>();
        dst.reserve(size);
        let mut digits = itoa::Buffer::new();
        dst.put_u8(b'*');
        dst.put_slice(digits.format(cmd.args.len()).as_bytes());
        dst.put_slice(b"\r\n");
        for word in &cmd.args {
            dst.put_u8(b'$');
            dst.put_slice(digits.format(word.len()).as_bytes());
            dst.put_slice(b"\r\n");
            dst.put_slice(word);
            dst.put_slice(b"\r\n");
        }
        Ok(())
    }
}

/// One command: its name and arguments, each sent as a bulk string.
///
/// ```
/// use em_redis::Cmd;
/// let cmd = Cmd::new("SET").arg("counter").arg(41).arg("EX").arg(60);
/// assert_eq!(cmd.to_string(), "SET counter 41 EX 60");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    args: Vec<Bytes>,
}

impl Cmd {
    /// A command with no argument yet.
    pub fn new(name: impl ToArg) -> Cmd {
        let mut args = Vec::with_capacity(4);
        args.push(name.to_arg());
        Cmd { args }
    }

    /// A command whose name is known at compile time: no copy of it.
    pub(crate) fn named(name: &'static str) -> Cmd {
        Cmd::new(Bytes::from_static(name.as_bytes()))
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl ToArg) -> Cmd {
        self.args.push(arg.to_arg());
        self
    }

    /// The command's name (its first word).
    pub fn name(&self) -> &[u8] {
        &self.args[0]
    }

    /// SUBSCRIBE and the like: the server then pushes messages that are
    /// no command's reply.
    pub(crate) fn starts_a_push_mode(&self) -> bool {
        ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]
            .iter()
            .any(|c| self.args[0].eq_ignore_ascii_case(c.as_bytes()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.args.is_empty() || self.args[0].is_empty()
    }
}

impl std::fmt::Display for Cmd {
    /// The words separated by spaces (bytes that are not UTF-8 escaped):
    /// for logs and error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", a.escape_ascii())?;
        }
        Ok(())
    }
}

/// Commands from a list of words of one type: `["GET", "key"]`.
impl<A: ToArg, const N: usize> From<[A; N]> for Cmd {
    fn from(words: [A; N]) -> Cmd {
        Cmd {
            args: words.into_iter().map(ToArg::to_arg).collect(),
        }
    }
}

impl<A: ToArg> From<Vec<A>> for Cmd {
    fn from(words: Vec<A>) -> Cmd {
        Cmd {
            args: words.into_iter().map(ToArg::to_arg).collect(),
        }
    }
}

/// What a command's argument can be: text, bytes, or a number (sent as
/// its decimal text).
pub trait ToArg {
    /// The argument's bytes.
    fn to_arg(self) -> Bytes;
}

impl ToArg for &str {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}
impl ToArg for String {
    fn to_arg(self) -> Bytes {
        Bytes::from(self)
    }
}
impl ToArg for &String {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}
impl ToArg for &[u8] {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
impl<const N: usize> ToArg for &[u8; N] {
    fn to_arg(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
impl ToArg for Vec<u8> {
    fn to_arg(self) -> Bytes {
        Bytes::from(self)
    }
}
impl ToArg for Bytes {
    fn to_arg(self) -> Bytes {
        self
    }
}
impl ToArg for &Bytes {
    fn to_arg(self) -> Bytes {
        self.clone()
    }
}
macro_rules! number_args {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn to_arg(self) -> Bytes {
                Bytes::copy_from_slice(itoa::Buffer::new().format(self).as_bytes())
            }
        }
    )*};
}
number_args!(i32, i64, u32, u64, usize);

impl ToArg for f64 {
    fn to_arg(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let mut out = BytesMut::new();
        RespCodec::new(1024)
            .encode(Cmd::new("SET").arg("k").arg(7), &mut out)
            .unwrap();
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n7\r\n");
    }

    #[test]
    fn replies_decode_at_every_split_point_and_a_huge_one_is_refused() {
        let wire = b"+OK\r\n:42\r\n$5\r\nhello\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR no\r\n";
        for split in 0..wire.len() {
            let mut codec = RespCodec::new(1024);
            let mut buf = BytesMut::from(&wire[..split]);
            let mut frames = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
            assert_eq!(frames.len(), 5, "split at {split}");
        }
        let mut codec = RespCodec::new(16);
        let mut buf = BytesMut::from(&b"$100\r\n0123456789abcdef0123"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.is_protocol(), "{err}");
    }

    proptest::proptest! {
        /// The bytes written for a command are redis-protocol's for the
        /// same array of bulk strings.
        #[test]
        fn commands_are_written_as_redis_protocol_writes_them(
            words in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..12)
        ) {
            let mut cmd = Cmd::new(words[0].clone());
            for w in &words[1..] {
                cmd = cmd.arg(w.clone());
            }
            let mut ours = BytesMut::new();
            RespCodec::new(1024).encode(cmd, &mut ours).unwrap();
            let frames: Vec<redis_protocol::resp2::types::BorrowedFrame<'_>> = words
                .iter()
                .map(|w| redis_protocol::resp2::types::BorrowedFrame::BulkString(w))
                .collect();
            let mut theirs = BytesMut::new();
            redis_protocol::codec::Resp2::default()
                .encode(redis_protocol::resp2::types::BorrowedFrame::Array(&frames), &mut theirs)
                .unwrap();
            proptest::prop_assert_eq!(&ours[..], &theirs[..]);
        }
    }

    #[test]
    fn replies_become_values_cut_from_the_reply_without_a_copy() {
        use crate::Value;
        let wire = b"+OK\r\n:-7\r\n$5\r\nhello\r\n$-1\r\n*3\r\n$1\r\na\r\n-ERR inside\r\n*1\r\n:2\r\n-WRONGTYPE no\r\n";
        let mut codec = RespCodec::new(1024);
        let mut buf = BytesMut::from(&wire[..]);
        let mut values = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            values.push(Value::from_frame(frame));
        }
        assert!(buf.is_empty());
        assert_eq!(values.len(), 6);
        assert_eq!(values[0].as_ref().unwrap(), &Value::Status("OK".into()));
        assert_eq!(values[1].as_ref().unwrap(), &Value::Int(-7));
        assert_eq!(
            values[2].as_ref().unwrap(),
            &Value::Bytes(Bytes::from("hello"))
        );
        assert_eq!(values[3].as_ref().unwrap(), &Value::Nil);
        assert_eq!(
            values[4].as_ref().unwrap(),
            &Value::Array(vec![
                Value::Bytes(Bytes::from("a")),
                Value::Status("-ERR inside".into()),
                Value::Array(vec![Value::Int(2)]),
            ])
        );
        let err = values[5].as_ref().unwrap_err();
        assert!(
            err.is_server() && err.to_string().contains("WRONGTYPE no"),
            "{err}"
        );
    }

    /// A reply as em-redis made values before it kept offsets: from
    /// redis-protocol's owned frame.
    fn value_of_owned_frame(
        frame: redis_protocol::resp2::types::BytesFrame,
    ) -> Result<crate::Value, String> {
        use crate::Value;
        use redis_protocol::resp2::types::BytesFrame as F;
        Ok(match frame {
            F::Null => Value::Nil,
            F::Integer(i) => Value::Int(i),
            F::BulkString(b) => Value::Bytes(b),
            F::SimpleString(s) => Value::Status(String::from_utf8_lossy(&s).into_owned()),
            F::Error(e) => return Err(crate::RedisError::server(&*e).to_string()),
            F::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|f| match f {
                        F::Error(e) => Ok(Value::Status(format!("-{}", &*e))),
                        f => value_of_owned_frame(f),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn owned_frames(
    ) -> impl proptest::strategy::Strategy<Value = redis_protocol::resp2::types::BytesFrame> {
        use proptest::prelude::*;
        use redis_protocol::resp2::types::BytesFrame as F;
        let text =
            || proptest::collection::vec(proptest::sample::select(b"abcXYZ09 -:".to_vec()), 0..20);
        let leaf = prop_oneof![
            Just(F::Null),
            any::<i64>().prop_map(F::Integer),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| F::BulkString(b.into())),
            text().prop_map(|t| F::SimpleString(t.into())),
            text().prop_map(|t| F::Error(String::from_utf8(t).unwrap().into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(F::Array)
        })
    }

    proptest::proptest! {
        /// Replies written by redis-protocol, read in two pieces split
        /// anywhere, give the values redis-protocol's owned frames gave.
        #[test]
        fn replies_read_in_pieces_are_the_values_of_redis_protocols_frames(
            frames in proptest::collection::vec(owned_frames(), 1..6),
            split in 0.0f64..=1.0,
        ) {
            let mut wire = BytesMut::new();
            for f in &frames {
                redis_protocol::codec::Resp2::default().encode(f.clone(), &mut wire).unwrap();
            }
            let expected: Vec<Result<crate::Value, String>> =
                frames.into_iter().map(value_of_owned_frame).collect();
            let at = (wire.len() as f64 * split) as usize;
            let mut codec = RespCodec::new(1 << 20);
            let mut buf = BytesMut::from(&wire[..at]);
            let mut got = Vec::new();
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                got.push(crate::Value::from_frame(frame).map_err(|e| e.to_string()));
            }
            buf.extend_from_slice(&wire[at..]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                got.push(crate::Value::from_frame(frame).map_err(|e| e.to_string()));
            }
            proptest::prop_assert!(buf.is_empty());
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_frame_in_a_log_is_the_reply_as_it_came_cut_at_256_bytes() {
        let mut codec = RespCodec::new(1 << 21);
        let mut buf = BytesMut::from(&b":42\r\n$5\r\nhello\r\n"[..]);
        let int = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(format!("{int:?}"), "Frame(:42)");
        let bulk = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(format!("{bulk:?}"), r#"Frame("$5\r\nhello\r\n")"#);
        let big = vec![b'x'; 1 << 20];
        let mut buf = BytesMut::from(&format!("${}\r\n", big.len()).into_bytes()[..]);
        buf.extend_from_slice(&big);
        buf.extend_from_slice(b"\r\n");
        let shown = format!("{:?}", codec.decode(&mut buf).unwrap().unwrap());
        assert!(
            shown.len() < 400 && shown.ends_with("bytes in all)"),
            "{shown}"
        );
    }

    #[test]
    fn numbers_are_sent_as_their_decimal_text() {
        let cmd = Cmd::new("X")
            .arg(-42i64)
            .arg(u64::MAX)
            .arg(0usize)
            .arg(1.5f64);
        assert_eq!(cmd.to_string(), format!("X -42 {} 0 1.5", u64::MAX));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut codec = RespCodec::new(1024);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(codec.decode(&mut buf).unwrap_err().is_protocol());
    }
}
