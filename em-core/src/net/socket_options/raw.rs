//! Raw `setsockopt(2)` and `getsockopt(2)`, for `Conn::set_sock_opt` and
//! `Conn::get_sock_opt` (any option, as packed bytes).
//!
//! Unsafe because no safe crate exposes them: std and tokio cover a few
//! options, socket2 many more, but its own raw `setsockopt`/`getsockopt`
//! are crate-private. These are the two calls, with libc's declarations;
//! every pointer handed to the system points into a live Rust buffer of the
//! length passed with it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The longest value `getsockopt` returns; longer values are cut here (the
/// system cuts them, and reports the cut length). Room for the largest
/// common ones (`TCP_INFO`, about 250 bytes on Linux 6).
pub(super) const MAX_VALUE: usize = 256;

/// Sets option `name` at `level` on `fd` to `value`.
pub(super) fn setsockopt(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the option value is too long"))?;
    // SAFETY: `fd` is a descriptor borrowed for the whole call, so it stays
    // open; `value` is a live slice of exactly `len` bytes, which the system
    // only reads, and only during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The value of option `name` at `level` on `fd`, at most [`MAX_VALUE`]
/// bytes.
pub(super) fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<Vec<u8>> {
    let mut value = [0u8; MAX_VALUE];
    let mut len = MAX_VALUE as libc::socklen_t;
    // SAFETY: `fd` is a descriptor borrowed for the whole call, so it stays
    // open; `value` is a live, writable buffer of `len` bytes, and `len` a
    // live `socklen_t`: the system writes at most `len` bytes into `value`
    // and stores the length it wrote in `len`, during the call only.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(len).map_or(MAX_VALUE, |len| len.min(MAX_VALUE));
    Ok(value[..len].to_vec())
}
