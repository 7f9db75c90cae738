//! Decoding gzip and deflate bodies as they stream in (flate2).

use std::io::{self, Write};

use bytes::Bytes;
use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::HeaderMap;

/// A streaming decoder for one body.
pub(crate) enum Decoder {
    Gzip(GzDecoder<Vec<u8>>),
    /// `deflate` is meant to be zlib-wrapped (RFC 9110 §8.4.1.2), but some
    /// servers send it raw: which one is seen from the first two bytes.
    Deflate(Option<DeflateKind>, Vec<u8>),
}

pub(crate) enum DeflateKind {
    Zlib(ZlibDecoder<Vec<u8>>),
    Raw(DeflateDecoder<Vec<u8>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Gzip(_) => "Decoder(gzip)",
            Decoder::Deflate(..) => "Decoder(deflate)",
        })
    }
}

impl Decoder {
    /// The decoder a response's `Content-Encoding` asks for, if it is one
    /// em-http decodes; its `Content-Encoding` and `Content-Length` fields
    /// are then removed (they describe the encoded body). Boxed: most
    /// bodies are not encoded, and a response carries only a pointer.
    pub(crate) fn for_response(headers: &mut HeaderMap) -> Option<Box<Decoder>> {
        let coding = headers.get(CONTENT_ENCODING)?.to_str().ok()?.trim();
        let decoder =
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                Decoder::Gzip(GzDecoder::new(Vec::new()))
            } else if coding.eq_ignore_ascii_case("deflate") {
                Decoder::Deflate(None, Vec::new())
            } else {
                return None;
            };
        headers.remove(CONTENT_ENCODING);
        headers.remove(CONTENT_LENGTH);
        Some(Box::new(decoder))
    }

    /// Decodes a piece of the body: what it yields so far (maybe nothing).
    pub(crate) fn feed(&mut self, input: &[u8]) -> io::Result<Bytes> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decoder::Deflate(kind, pending) => {
                if kind.is_none() {
                    pending.extend_from_slice(input);
                    if pending.len() < 2 {
                        return Ok(Bytes::new());
                    }
                    let (cmf, flg) = (pending[0], pending[1]);
                    let zlib = cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                    *kind = Some(if zlib {
                        DeflateKind::Zlib(ZlibDecoder::new(Vec::new()))
                    } else {
                        DeflateKind::Raw(DeflateDecoder::new(Vec::new()))
                    });
                    let first = std::mem::take(pending);
                    return self.feed(&first);
                }
                match kind.as_mut().expect("chosen above") {
                    DeflateKind::Zlib(d) => {
                        d.write_all(input)?;
                        Ok(Bytes::from(std::mem::take(d.get_mut())))
                    }
                    DeflateKind::Raw(d) => {
                        d.write_all(input)?;
                        Ok(Bytes::from(std::mem::take(d.get_mut())))
                    }
                }
            }
        }
    }

    /// The body ended: the rest of the output; an error if the encoded
    /// data stopped short.
    pub(crate) fn finish(&mut self) -> io::Result<Bytes> {
        match self {
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decoder::Deflate(None, pending) if pending.is_empty() => Ok(Bytes::new()),
            Decoder::Deflate(None, _) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "deflate body too short",
            )),
            Decoder::Deflate(Some(DeflateKind::Zlib(d)), _) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decoder::Deflate(Some(DeflateKind::Raw(d)), _) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn decode_in_pieces(coding: &str, encoded: &[u8], step: usize) -> Vec<u8> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, coding.parse().unwrap());
        headers.insert(CONTENT_LENGTH, "9".parse().unwrap());
        let mut d = Decoder::for_response(&mut headers).unwrap();
        assert!(headers.is_empty());
        let mut out = Vec::new();
        for piece in encoded.chunks(step) {
            out.extend_from_slice(&d.feed(piece).unwrap());
        }
        out.extend_from_slice(&d.finish().unwrap());
        out
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode_whatever_the_split() {
        let text = "hello, evented world! ".repeat(500);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = ZlibEncoder::new(Vec::new(), Compression::default());
        zl.write_all(text.as_bytes()).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(text.as_bytes()).unwrap();
        let raw = raw.finish().unwrap();
        for step in [1, 2, 3, 7, 100, 100_000] {
            assert_eq!(decode_in_pieces("gzip", &gz, step), text.as_bytes());
            assert_eq!(decode_in_pieces("deflate", &zl, step), text.as_bytes());
            assert_eq!(decode_in_pieces("deflate", &raw, step), text.as_bytes());
        }
    }

    #[test]
    fn corrupt_or_short_data_is_an_error_not_a_panic() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, "gzip".parse().unwrap());
        let mut d = Decoder::for_response(&mut headers).unwrap();
        let bad = d.feed(b"\x1f\x8b\x08\x00garbage garbage garbage");
        assert!(bad.is_err() || d.finish().is_err());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert!(Decoder::for_response(&mut headers).is_none());
        assert!(headers.contains_key(CONTENT_ENCODING));
    }
}
