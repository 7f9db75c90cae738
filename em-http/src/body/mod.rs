//! Bodies: a request's, read as it arrives (`request`), and a response's,
//! whole or written over time (`response`).

pub(crate) mod request;
pub(crate) mod response;
