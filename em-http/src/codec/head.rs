//! Header fields of a parsed head (request or response) turned into the
//! `http` crate's header map: names and values become views of the head's
//! one shared buffer rather than copies, and the framing headers are
//! noted on the way.

use std::cell::Cell;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::body::Framing;

thread_local! {
    /// Where each header's name and value lie in the head being parsed:
    /// scratch space shared by the reactor's connections (one parse runs at
    /// a time on a thread), so that an idle connection keeps none.
    static FIELDS: Cell<Vec<[u32; 4]>> = const { Cell::new(Vec::new()) };
}

/// The offsets of a head's header fields, taken while httparse's borrowed
/// view of the buffer is alive.
pub(crate) struct Fields(Vec<[u32; 4]>);

impl Fields {
    /// Notes where each of `headers` lies relative to `base`, the address
    /// of the head's first byte.
    pub(crate) fn note(base: usize, headers: &[httparse::Header<'_>]) -> Fields {
        let mut fields = FIELDS.take();
        fields.clear();
        fields.extend(headers.iter().map(|h| {
            [
                (h.name.as_ptr() as usize - base) as u32,
                h.name.len() as u32,
                (h.value.as_ptr() as usize - base) as u32,
                h.value.len() as u32,
            ]
        }));
        Fields(fields)
    }

    /// Appends each field of `head` to `map`, telling `framing` about it.
    pub(crate) fn fill(
        self,
        head: &Bytes,
        map: &mut HeaderMap,
        framing: &mut Framing,
    ) -> Result<(), &'static str> {
        let fields = self.0;
        map.reserve(fields.len());
        let mut result = Ok(());
        for &[n_at, n_len, v_at, v_len] in &fields {
            let (n_at, n_len, v_at, v_len) =
                (n_at as usize, n_len as usize, v_at as usize, v_len as usize);
            let Ok(name) = HeaderName::from_bytes(&head[n_at..n_at + n_len]) else {
                result = Err("invalid header name");
                break;
            };
            let Ok(value) = HeaderValue::from_maybe_shared(head.slice(v_at..v_at + v_len)) else {
                result = Err("invalid header value");
                break;
            };
            if let Err(e) = framing.see(&name, &value) {
                result = Err(e);
                break;
            }
            map.append(name, value);
        }
        FIELDS.set(fields);
        result
    }
}
