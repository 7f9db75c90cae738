//! The errors of the frame and message layers, each with the close code
//! (RFC 6455 §7.4.1) the server sends before closing the connection.

use std::{fmt, io};

/// Close code 1002: protocol error.
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: data inconsistent with the message type (bad UTF-8).
pub(crate) const INVALID_PAYLOAD: u16 = 1007;
/// Close code 1009: a frame or message too big to process.
pub(crate) const MESSAGE_TOO_BIG: u16 = 1009;

/// A WebSocket protocol violation by the peer, or a transport error.
///
/// On a violation the server fails the connection (RFC 6455 §7.1.7): it
/// sends a close frame with [`WsError::close_code`] and closes.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum WsError {
    /// A client frame without a mask (1002).
    UnmaskedFrame,
    /// A reserved bit (RSV1–3) set without a negotiated extension (1002).
    ReservedBits,
    /// A reserved opcode, 0x3–0x7 or 0xB–0xF (1002).
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set (1002).
    InvalidLength,
    /// A control frame whose payload exceeds 125 bytes (1002).
    ControlFrameTooLong(u64),
    /// A control frame without the FIN bit (1002).
    FragmentedControlFrame,
    /// A frame whose declared payload length exceeds the limit (1009).
    FrameTooLarge {
        /// The declared length.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A continuation frame with no fragmented message in progress (1002).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in
    /// progress (1002).
    ExpectedContinuation,
    /// A text message, or a close reason, that is not UTF-8 (1007).
    InvalidUtf8,
    /// A message whose payload exceeds the limit (1009).
    MessageTooLarge {
        /// The size reached (at least; counting stops at the first excess).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A close frame with a 1-byte payload (1002).
    InvalidClosePayload,
    /// A close frame with a code not allowed on the wire, e.g. below 1000,
    /// 1004–1006, 1015, or otherwise unassigned below 3000 (1002).
    InvalidCloseCode(u16),
    /// The transport failed, or ended in the middle of a frame; nothing can
    /// be sent.
    Io(io::Error),
}

impl WsError {
    /// The close code to send before closing: 1002 (protocol error), 1007
    /// (invalid payload) or 1009 (too big); `None` for [`WsError::Io`],
    /// where no close frame can be sent.
    pub(crate) fn close_code(&self) -> Option<u16> {
        Some(match self {
            WsError::InvalidUtf8 => INVALID_PAYLOAD,
            WsError::FrameTooLarge { .. } | WsError::MessageTooLarge { .. } => MESSAGE_TOO_BIG,
            WsError::Io(_) => return None,
            _ => PROTOCOL_ERROR,
        })
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::UnmaskedFrame => f.write_str("client frame is not masked"),
            WsError::ReservedBits => f.write_str("reserved bits set in a frame"),
            WsError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            WsError::InvalidLength => {
                f.write_str("payload length has its most significant bit set")
            }
            WsError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (at most 125)")
            }
            WsError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            WsError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max}")
            }
            WsError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            WsError::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            WsError::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            WsError::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds the limit of {max}")
            }
            WsError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
            WsError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            WsError::Io(error) => write!(f, "transport error: {error}"),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WsError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for WsError {
    fn from(error: io::Error) -> Self {
        WsError::Io(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(WsError::UnmaskedFrame.close_code(), Some(1002));
        assert_eq!(WsError::InvalidCloseCode(1005).close_code(), Some(1002));
        assert_eq!(WsError::InvalidUtf8.close_code(), Some(1007));
        assert_eq!(
            WsError::FrameTooLarge { size: 2, max: 1 }.close_code(),
            Some(1009)
        );
        assert_eq!(
            WsError::MessageTooLarge { size: 2, max: 1 }.close_code(),
            Some(1009)
        );
        assert_eq!(
            WsError::Io(io::ErrorKind::UnexpectedEof.into()).close_code(),
            None
        );
        assert_eq!(
            WsError::ReservedOpcode(3).to_string(),
            "reserved opcode 0x3"
        );
    }
}
