//! `RawCodec`: raw bytes in, raw bytes out, with `send_data` taking text
//! and byte slices as they are.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The raw-bytes codec of [`Handler`](crate::Handler)s and of
/// [`Conn`](crate::Conn)'s default: each read's bytes as one `BytesMut`
/// frame, and anything byte-like written as it is, so that
/// `conn.send_data("hello\n")`, `send_data(format!(..))`,
/// `send_data(&buf[..n])`, `send_data(b"bytes")` and
/// `send_data(bytes)` all work (tokio-util's `BytesCodec` takes only
/// `Bytes` and `BytesMut`). Runs wherever its connection does: on the
/// reactor thread.
///
/// ```
/// # use em_core as em;
/// use em::RawCodec;
/// use tokio_util::codec::Encoder;
///
/// let mut out = bytes::BytesMut::new();
/// RawCodec.encode("text, ", &mut out)?;
/// RawCodec.encode(&b"bytes"[..], &mut out)?;
/// assert_eq!(&out[..], b"text, bytes");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawCodec;

impl Decoder for RawCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        if buf.is_empty() {
            Ok(None)
        } else {
            Ok(Some(buf.split_to(buf.len())))
        }
    }
}

/// Writes byte-like frames as they are.
macro_rules! encode_as_bytes {
    ($($(#[$doc:meta])* impl$(<$($gen:tt),*>)? for $t:ty;)*) => {$(
        $(#[$doc])*
        impl$(<$($gen),*>)? Encoder<$t> for RawCodec {
            type Error = std::io::Error;

            fn encode(&mut self, data: $t, buf: &mut BytesMut) -> Result<(), std::io::Error> {
                let data: &[u8] = data.as_ref();
                buf.reserve(data.len());
                buf.put_slice(data);
                Ok(())
            }
        }
    )*};
}

encode_as_bytes! {
    impl for Bytes;
    impl for BytesMut;
    impl for Vec<u8>;
    impl for String;
    impl<'a> for &'a str;
    impl<'a> for &'a String;
    impl<'a> for &'a [u8];
    impl<'a> for &'a Bytes;
}

impl<'a, const N: usize> Encoder<&'a [u8; N]> for RawCodec {
    type Error = std::io::Error;

    fn encode(&mut self, data: &'a [u8; N], buf: &mut BytesMut) -> Result<(), std::io::Error> {
        buf.put_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_like_frame_is_written_as_it_is() {
        let mut out = BytesMut::new();
        let mut codec = RawCodec;
        codec.encode(Bytes::from_static(b"a"), &mut out).unwrap();
        codec.encode(BytesMut::from(&b"b"[..]), &mut out).unwrap();
        codec.encode(b"c".to_vec(), &mut out).unwrap();
        codec.encode(String::from("d"), &mut out).unwrap();
        codec.encode("e", &mut out).unwrap();
        codec.encode(&String::from("f"), &mut out).unwrap();
        codec.encode(&b"g"[..], &mut out).unwrap();
        codec.encode(&Bytes::from_static(b"h"), &mut out).unwrap();
        codec.encode(b"ij", &mut out).unwrap();
        assert_eq!(&out[..], b"abcdefghij");
    }

    #[test]
    fn a_read_is_one_frame_and_nothing_is_no_frame() {
        let mut codec = RawCodec;
        let mut buf = BytesMut::from(&b"hello"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert!(buf.is_empty());
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
}
