//! [`ObjectCodec`]: EventMachine's `ObjectProtocol`, objects framed by a
//! 4-byte big-endian length, with serde in place of Ruby's `Marshal`:
//! [`Json`] by default, [`MessagePack`] with the `msgpack` feature, or any
//! [`ObjectFormat`].

use std::fmt;
use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

/// The errors of a serde format, boxed.
pub type FormatError = Box<dyn std::error::Error + Send + Sync>;

/// The default [`max_frame_length`](ObjectCodec::max_frame_length): 8 MiB,
/// the default of tokio-util's `LengthDelimitedCodec`.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// How an [`ObjectCodec`] turns objects into payloads and back
/// (EventMachine's `serializer`, which answers `dump` and `load`).
/// Implement it for another serde format.
pub trait ObjectFormat {
    /// The format's name, for errors (`"JSON"`).
    const NAME: &'static str;

    /// Writes `value` to `writer`.
    fn serialize<T: Serialize + ?Sized, W: io::Write>(
        value: &T,
        writer: W,
    ) -> Result<(), FormatError>;

    /// Reads a `T` from the whole of `payload` (bytes left over are an
    /// error).
    fn deserialize<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FormatError>;
}

/// JSON through `serde_json`: the default format, readable and spoken by
/// every language.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl ObjectFormat for Json {
    const NAME: &'static str = "JSON";

    fn serialize<T: Serialize + ?Sized, W: io::Write>(
        value: &T,
        writer: W,
    ) -> Result<(), FormatError> {
        Ok(serde_json::to_writer(writer, value)?)
    }

    fn deserialize<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FormatError> {
        Ok(serde_json::from_slice(payload)?)
    }
}

/// MessagePack through `rmp-serde` (feature `msgpack`): compact and
/// binary, with implementations in every language. Structs are written
/// as maps with their field names (`rmp_serde::encode::write_named`), not
/// as arrays, so that a peer in another language reads them by name and
/// fields may be added or reordered.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePack;

#[cfg(feature = "msgpack")]
impl ObjectFormat for MessagePack {
    const NAME: &'static str = "MessagePack";

    fn serialize<T: Serialize + ?Sized, W: io::Write>(
        value: &T,
        mut writer: W,
    ) -> Result<(), FormatError> {
        Ok(rmp_serde::encode::write_named(&mut writer, value)?)
    }

    fn deserialize<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FormatError> {
        let mut de = rmp_serde::Deserializer::new(payload);
        let value = T::deserialize(&mut de)?;
        match de.get_ref().len() {
            0 => Ok(value),
            left => Err(format!("{left} bytes left over after the value").into()),
        }
    }
}

/// EventMachine's `ObjectProtocol`: each frame is a 4-byte big-endian
/// length, then that many bytes of payload, an object in the format `F`
/// ([`Json`] unless said otherwise). Decodes `T`s; encodes anything
/// `Serialize` (EventMachine's `send_object` takes any object), so that a
/// client can decode replies of one type and send requests of another.
///
/// * A length over [`max_frame_length`](Self::max_frame_length) is an
///   error ([`ObjectCodecError::FrameTooLong`]) as soon as the 4 bytes
///   arrive, before any payload is held; sending one is refused too, so
///   nothing is queued.
/// * A payload that does not parse as a `T` is an error
///   ([`ObjectCodecError::Decode`]) naming the format and why. The frame
///   is consumed first, so the stream stays aligned for a caller of
///   `decode` that wants to go on.
/// * A frame cut short by the end of the stream is
///   [`ObjectCodecError::Truncated`].
///
/// In em, each of these ends that connection only, with
/// `UnbindReason::Codec`: other connections are not touched.
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::ObjectCodec;
/// use serde::{Deserialize, Serialize};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Add {
///     a: i64,
///     b: i64,
/// }
///
/// let mut codec: ObjectCodec<Add> = ObjectCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode(Add { a: 1, b: 2 }, &mut wire)?;
/// assert_eq!(&wire[..4], [0, 0, 0, 13]); // {"a":1,"b":2}
/// assert_eq!(codec.decode(&mut wire)?, Some(Add { a: 1, b: 2 }));
/// # Ok::<(), em_protocols::ObjectCodecError>(())
/// ```
pub struct ObjectCodec<T, F = Json> {
    max_frame_length: usize,
    _types: PhantomData<fn() -> (T, F)>,
}

impl<T, F> fmt::Debug for ObjectCodec<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectCodec")
            .field("max_frame_length", &self.max_frame_length)
            .field("type", &std::any::type_name::<T>())
            .field("format", &std::any::type_name::<F>())
            .finish()
    }
}

impl<T, F> Clone for ObjectCodec<T, F> {
    fn clone(&self) -> Self {
        ObjectCodec {
            max_frame_length: self.max_frame_length,
            _types: PhantomData,
        }
    }
}

impl<T, F: ObjectFormat> Default for ObjectCodec<T, F> {
    fn default() -> Self {
        ObjectCodec::new()
    }
}

impl<T, F: ObjectFormat> ObjectCodec<T, F> {
    /// A codec with [`DEFAULT_MAX_FRAME_LENGTH`].
    pub fn new() -> Self {
        ObjectCodec::new_with_max_frame_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec accepting payloads of up to `max` bytes.
    pub fn new_with_max_frame_length(max: usize) -> Self {
        ObjectCodec {
            max_frame_length: max,
            _types: PhantomData,
        }
    }

    /// Sets the largest payload accepted or sent, in bytes (the 4 bytes
    /// of length not counted); more is [`ObjectCodecError::FrameTooLong`].
    /// At most `u32::MAX`, what 4 bytes of length can say.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.max_frame_length = max;
    }

    /// The largest payload accepted or sent.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    fn too_long(&self, length: usize) -> ObjectCodecError {
        ObjectCodecError::FrameTooLong {
            length,
            max: self.max_frame_length.min(u32::MAX as usize),
        }
    }
}

impl<T: DeserializeOwned, F: ObjectFormat> Decoder for ObjectCodec<T, F> {
    type Item = T;
    type Error = ObjectCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<T>, ObjectCodecError> {
        let Some(header) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*header) as usize;
        if length > self.max_frame_length {
            return Err(self.too_long(length));
        }
        if buf.len() - 4 < length {
            return Ok(None);
        }
        buf.advance(4);
        let payload = buf.split_to(length);
        F::deserialize(&payload)
            .map(Some)
            .map_err(|source| ObjectCodecError::Decode {
                format: F::NAME,
                source,
            })
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<T>, ObjectCodecError> {
        match self.decode(buf)? {
            Some(object) => Ok(Some(object)),
            None if buf.is_empty() => Ok(None),
            None => Err(ObjectCodecError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

/// Any `Serialize` value, as one frame.
impl<T, F: ObjectFormat, U: Serialize> Encoder<U> for ObjectCodec<T, F> {
    type Error = ObjectCodecError;

    fn encode(&mut self, object: U, dst: &mut BytesMut) -> Result<(), ObjectCodecError> {
        let start = dst.len();
        dst.put_u32(0);
        if let Err(source) = F::serialize(&object, (&mut *dst).writer()) {
            dst.truncate(start);
            return Err(ObjectCodecError::Encode {
                format: F::NAME,
                source,
            });
        }
        let length = dst.len() - start - 4;
        if length > self.max_frame_length || length > u32::MAX as usize {
            dst.truncate(start);
            return Err(self.too_long(length));
        }
        dst[start..start + 4].copy_from_slice(&(length as u32).to_be_bytes());
        Ok(())
    }
}

/// What went wrong in an [`ObjectCodec`]. In em, a decoding error ends
/// the connection with `UnbindReason::Codec`, whose `Display` includes
/// this one's.
#[derive(Debug)]
#[non_exhaustive]
pub enum ObjectCodecError {
    /// A frame's length is over the codec's `max_frame_length`.
    FrameTooLong {
        /// The frame's payload length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A payload did not parse as the expected type.
    Decode {
        /// The format's name.
        format: &'static str,
        /// The format's error.
        source: FormatError,
    },
    /// An object could not be serialized (a map with non-string keys in
    /// JSON, say).
    Encode {
        /// The format's name.
        format: &'static str,
        /// The format's error.
        source: FormatError,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// The bytes of it that had arrived.
        buffered: usize,
    },
    /// An I/O error from the stream under the codec (tokio's `Framed`).
    Io(io::Error),
}

impl fmt::Display for ObjectCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectCodecError::FrameTooLong { length, max } => write!(
                f,
                "object frame of {length} bytes is over the codec's max_frame_length ({max} bytes)"
            ),
            ObjectCodecError::Decode { format, source } => {
                write!(f, "object payload is not the expected {format}: {source}")
            }
            ObjectCodecError::Encode { format, source } => {
                write!(f, "object cannot be written as {format}: {source}")
            }
            ObjectCodecError::Truncated { buffered } => write!(
                f,
                "the stream ended inside an object frame ({buffered} bytes of it had arrived)"
            ),
            ObjectCodecError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for ObjectCodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObjectCodecError::Decode { source, .. } | ObjectCodecError::Encode { source, .. } => {
                Some(&**source)
            }
            ObjectCodecError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ObjectCodecError {
    fn from(e: io::Error) -> Self {
        ObjectCodecError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// OP1's framing: a 4-byte big-endian length, then the payload.
    #[test]
    fn frame_layout_and_partial_frames() {
        let mut codec: ObjectCodec<Vec<i32>> = ObjectCodec::new();
        let mut wire = BytesMut::new();
        codec.encode(vec![1, 2], &mut wire).unwrap();
        assert_eq!(&wire[..], b"\0\0\0\x05[1,2]");
        codec.encode(&vec![3], &mut wire).unwrap();
        let all = wire.clone();
        for cut in 0..=all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let mut got = Vec::new();
            while let Some(v) = codec.decode(&mut buf).unwrap() {
                got.push(v);
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some(v) = codec.decode_eof(&mut buf).unwrap() {
                got.push(v);
            }
            assert_eq!(got, [vec![1, 2], vec![3]], "cut at {cut}");
        }
    }

    #[test]
    fn too_long_is_refused_before_the_payload_both_ways() {
        let mut codec: ObjectCodec<String> = ObjectCodec::new_with_max_frame_length(4);
        let err = codec
            .decode(&mut BytesMut::from(&b"\0\0\0\x05"[..]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "object frame of 5 bytes is over the codec's max_frame_length (4 bytes)"
        );
        let mut out = BytesMut::from("queued");
        assert!(codec.encode("abcd", &mut out).is_err()); // "abcd" with quotes is 6
        assert_eq!(out, "queued");
        codec.encode("ab", &mut out).unwrap();
        assert_eq!(&out[6..], b"\0\0\0\x04\"ab\"");
    }

    #[test]
    fn bad_payload_names_the_format_and_consumes_its_frame() {
        let mut codec: ObjectCodec<u8> = ObjectCodec::new();
        let mut buf = BytesMut::from(&b"\0\0\0\x03300\0\0\0\x017"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("object payload is not the expected JSON: "),
            "{err}"
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(7));
    }

    #[test]
    fn encode_error_queues_nothing() {
        let mut codec: ObjectCodec<()> = ObjectCodec::new();
        let mut map = BTreeMap::new();
        map.insert(vec![1], 1); // JSON keys must be strings
        let mut out = BytesMut::new();
        let err = codec.encode(&map, &mut out).unwrap_err();
        assert!(matches!(
            err,
            ObjectCodecError::Encode { format: "JSON", .. }
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_frame_at_eof() {
        let mut codec: ObjectCodec<u8> = ObjectCodec::new();
        let err = codec
            .decode_eof(&mut BytesMut::from(&b"\0\0\0\x05ab"[..]))
            .unwrap_err();
        assert!(matches!(err, ObjectCodecError::Truncated { buffered: 6 }));
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_round_trip_and_trailing_bytes() {
        let mut codec: ObjectCodec<(String, u32), MessagePack> = ObjectCodec::new();
        let mut wire = BytesMut::new();
        codec.encode(("a", 7u32), &mut wire).unwrap();
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(("a".into(), 7)));
        let mut wire = BytesMut::from(&b"\0\0\0\x02\x07\x07"[..]);
        let err = ObjectCodec::<u8, MessagePack>::new()
            .decode(&mut wire)
            .unwrap_err();
        assert!(err.to_string().contains("MessagePack"), "{err}");
    }
}
