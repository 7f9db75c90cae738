//! The reactor's other events, beyond sockets: child processes
//! (`popen`, `system`), processes em did not start (`watch_process`), the
//! keyboard (`open_keyboard`), file watchers (`watch_file`) and signals
//! (`trap`). Each delivers its events on the reactor thread, in order, like
//! a connection's callbacks.
//!
//! * [`process`]: child processes as connections (`popen`, `Popen`,
//!   `system`, `system_async`) and the `Conn` methods of a child (`pid`,
//!   `kill`, `exit_status`).
//! * [`signal`]: [`Signal`](crate::Signal), a signal's number and name, and
//!   `trap`/`untrap`.
//! * [`keyboard`]: standard input as a connection (`open_keyboard`).

pub(crate) mod keyboard;
pub(crate) mod process;
pub(crate) mod signal;
