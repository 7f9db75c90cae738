//! The reactor's other events, beyond sockets: child processes
//! (`popen`, `system`), processes em did not start (`watch_process`), the
//! keyboard (`open_keyboard`), file watchers (`watch_file`) and signals
//! (`trap`). Each delivers its events on the reactor thread, in order, like
//! a connection's callbacks.
//!
//! * [`process`]: child processes as connections (`popen`, `Popen`,
//!   `system`, `system_async`) and the `Conn` methods of a child (`pid`,
//!   `kill`, `exit_status`).
//! * [`keyboard`]: standard input as a connection (`open_keyboard`).
//! * `file_watch`: [`watch_file`](crate::watch_file), file and directory
//!   watchers on the notify crate (feature `file-watch`).
//! * [`process_watch`]: [`watch_process`](crate::watch_process), a
//!   process's exit through its pidfd (Linux).
//! * [`watcher`]: the lifecycle both watcher kinds share: events to
//!   callbacks, panics contained, one `unbind`, the reactor's stop.
//! * [`signal`]: [`Signal`](crate::Signal), a signal's number and name, and
//!   `trap`/`untrap`.

#[cfg(feature = "file-watch")]
pub(crate) mod file_watch;
pub(crate) mod keyboard;
pub(crate) mod process;
pub(crate) mod process_watch;
pub(crate) mod signal;
pub(crate) mod watcher;
