//! em: EventMachine's programming model on tokio.
#![deny(missing_docs)]

pub use em_core::*;

/// Everything a handler module usually needs: `use em::prelude::*;`.
pub mod prelude {
    pub use em_core::{Conn, Connection, Frame, Handle, Server, UnbindReason};
}
