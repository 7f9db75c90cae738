//! `Value`, a reply as em-redis gives it, and `FromValue`, the typed
//! results of commands.

use bytes::Bytes;
use redis_protocol::resp2::types::RangeFrame;

use crate::codec::Frame;
use crate::error::{RedisError, RedisResult};

/// A reply from Redis (RESP2), error replies aside (those are
/// [`RedisError`]s that [`is_server`](RedisError::is_server)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The null reply (a missing key, a timed-out `BLPOP`).
    Nil,
    /// An integer reply (`INCR`, `DEL`, `PUBLISH`).
    Int(i64),
    /// A bulk string: bytes, not necessarily UTF-8.
    Bytes(Bytes),
    /// A status reply (`OK`, `PONG`, `QUEUED`).
    Status(String),
    /// An array reply (`MGET`, `KEYS`, pub/sub messages).
    Array(Vec<Value>),
}

impl Value {
    /// The value of a RESP2 frame; an error frame is the server's error.
    pub(crate) fn from_frame(frame: Frame) -> RedisResult<Value> {
        Value::from_part(&frame, frame.parsed())
    }

    fn from_part(frame: &Frame, part: &RangeFrame) -> RedisResult<Value> {
        let text = |range| String::from_utf8_lossy(frame.text(range)).into_owned();
        Ok(match part {
            RangeFrame::Null => Value::Nil,
            RangeFrame::Integer(i) => Value::Int(*i),
            RangeFrame::BulkString(range) => Value::Bytes(frame.cut(*range)),
            RangeFrame::SimpleString(range) => Value::Status(text(*range)),
            RangeFrame::Error(range) => return Err(RedisError::server(text(*range))),
            RangeFrame::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        // An error inside an array (EXEC) stays a value.
                        RangeFrame::Error(range) => Ok(Value::Status(format!("-{}", text(*range)))),
                        item => Value::from_part(frame, item),
                    })
                    .collect::<RedisResult<_>>()?,
            ),
        })
    }

    /// The bytes of a bulk string or status reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// A typed result a reply converts into: what `Client::cmd_as` and the
/// typed commands (`get`, `incr`…) return.
pub trait FromValue: Sized {
    /// Converts the reply, or says what it wanted instead.
    fn from_value(value: Value) -> RedisResult<Self>;
}

impl FromValue for Value {
    fn from_value(value: Value) -> RedisResult<Self> {
        Ok(value)
    }
}

impl FromValue for () {
    /// Any reply but an error (`OK`, a count).
    fn from_value(_: Value) -> RedisResult<Self> {
        Ok(())
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Int(i) => Ok(i),
            Value::Bytes(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| RedisError::unexpected("an integer", &value)),
            other => Err(RedisError::unexpected("an integer", other)),
        }
    }
}

impl FromValue for bool {
    /// An integer reply of 1 or 0 (`EXISTS`, `EXPIRE`, `SETNX`).
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Int(i) => Ok(i != 0),
            other => Err(RedisError::unexpected("an integer 0 or 1", other)),
        }
    }
}

impl FromValue for Bytes {
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Bytes(b) => Ok(b),
            Value::Status(s) => Ok(Bytes::from(s)),
            other => Err(RedisError::unexpected("a string", other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Bytes(b) => String::from_utf8(b.to_vec())
                .map_err(|_| RedisError::unexpected("a UTF-8 string", Value::Bytes(b))),
            Value::Status(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(RedisError::unexpected("a string", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    /// `None` for the null reply.
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(value: Value) -> RedisResult<Self> {
        match value {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            Value::Nil => Ok(Vec::new()),
            other => Err(RedisError::unexpected("an array", other)),
        }
    }
}
