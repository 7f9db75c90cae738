//! Datagrams in batches: `sendmmsg(2)` and `recvmmsg(2)`, many datagrams
//! per system call. A system call costs about as much as em's own work on a
//! datagram, so a busy socket that makes one per batch instead of one per
//! datagram spends less than an echo loop written the obvious way.
//!
//! Unsafe because neither std, tokio nor socket2 offers the two calls.
//! rustix 1.1 (a dependency on Linux) has a safe `sendmmsg`, but no
//! `recvmmsg`, and its `sendmmsg` does not fit here: it takes addresses
//! only as rustix's own `SocketAddrAny`, whose IPv6 form byte-swaps the
//! flow information where std, socket2 and tokio pass it as it is (a
//! nonzero one would reach the system other than tokio's `send_to` passes
//! it), and it needs rustix's `net` feature. So both are libc's calls, with
//! libc's declarations; every pointer handed to the system points into a
//! live buffer of the length passed with it (the arrays of this call's
//! stack frame, and the caller's bytes), and only the entries the system
//! reports written are read back.
//!
//! The conversions between `SocketAddr` and the system's form are
//! socket2's: `SockAddr::from` makes one, and `SockAddr::new` reads back,
//! from a `SockAddrStorage`, one the system wrote (see `Name`).
#![allow(unsafe_code)]

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use bytes::BytesMut;
use socket2::{SockAddr, SockAddrStorage};

use super::Queued;

/// The most datagrams one call moves.
pub(crate) const BATCH: usize = 16;

/// One datagram a batch received: its length (its bytes follow the previous
/// one's in the buffer) and its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) len: usize,
    /// `None` if the system gave no IP address (it always does for UDP).
    pub(crate) from: Option<SocketAddr>,
    /// Longer than its slot, so cut short (a slot holds any UDP datagram,
    /// so it never is).
    pub(crate) truncated: bool,
}

/// A socket address in the system's form, as a batch holds it: room for
/// the longest a UDP socket has (IPv6, 28 bytes). The conversions are
/// socket2's, through a `SockAddr` and its `SockAddrStorage`; only their
/// first bytes are kept, because moving a whole `sockaddr_storage` (128
/// bytes) into or out of a batch's array, or zeroing one per slot, costs as
/// much as the conversion itself.
type Name = libc::sockaddr_in6;

/// `to` in the system's form, and its length.
fn to_name(to: SocketAddr) -> (Name, libc::socklen_t) {
    let addr = SockAddr::from(to);
    let len = addr.len();
    // Always so (16 or 28 bytes); the system reads `len` bytes of the
    // `Name`, so this is what keeps it within it.
    assert!(len as usize <= mem::size_of::<Name>());
    let mut storage = addr.as_storage();
    // SAFETY: `sockaddr_in6` is one of the system's address types, which is
    // what `view_as` asks (it checks the size). The copy reads the first
    // bytes of the storage, all initialised: it is integers and byte arrays
    // without padding, and `SockAddr::from` starts it all zeros. Its first
    // `len` bytes are the address.
    let name = *unsafe { storage.view_as::<Name>() };
    (name, len)
}

/// The address of `len` bytes the system wrote in `name`, if it is an IP
/// one.
fn from_name(name: &Name, len: libc::socklen_t) -> Option<SocketAddr> {
    if len as usize > mem::size_of::<Name>() {
        // Cut short, so no IP address (a UDP socket has none this long).
        return None;
    }
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_in6` is one of the system's address types, which is
    // what `view_as` asks (it checks the size); this overwrites the first
    // bytes of the storage.
    unsafe { *storage.view_as::<Name>() = *name };
    // SAFETY: the storage holds the `len` bytes the system wrote, a whole
    // address of the family they begin with, then zeros, so its family,
    // length and contents match, which is what `SockAddr::new` asks. Had
    // the system written no address, it set `len` to zero and the family
    // is still zero (unspecified): `as_socket` says `None`.
    unsafe { SockAddr::new(storage, len) }.as_socket()
}

/// A `msghdr` for one datagram in `iov`, to or from the address of
/// `name_len` bytes at `name`.
fn header<T>(name: *mut T, name_len: libc::socklen_t, iov: *mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: all zeros is a valid `msghdr` (null pointers, zero lengths),
    // and it leaves any private padding field of the platform's zeroed.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_name = name.cast();
    hdr.msg_namelen = name_len;
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
    libc::mmsghdr {
        msg_hdr: hdr,
        msg_len: 0,
    }
}

/// Sends the queued datagrams `queued` describes, whose bytes are `bytes`
/// back to back, in order, with one `sendmmsg(2)` on the non-blocking
/// socket `fd`: at most [`BATCH`], and none past the end of `bytes`. How
/// many the system took (at least one); or the error of the first one
/// (`WouldBlock` when the socket's buffer is full). An error on a later one
/// is reported by the next call, which starts with it.
pub(crate) fn send_batch<'q>(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    queued: impl Iterator<Item = &'q Queued>,
) -> io::Result<usize> {
    let mut names = [const { MaybeUninit::<Name>::uninit() }; BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let mut n = 0;
    let mut start = 0;
    for q in queued.take(BATCH) {
        let Some(datagram) = bytes.get(start..start + q.len) else {
            break;
        };
        let (name, name_len) = to_name(q.to);
        let name = names[n].write(name);
        let iov = iovs[n].write(libc::iovec {
            // The system only reads from it.
            iov_base: datagram.as_ptr().cast_mut().cast(),
            iov_len: datagram.len(),
        });
        msgs[n].write(header(name, name_len, iov));
        start += q.len;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: the first `n` entries of `msgs` are initialised, and each
    // points to its own initialised address (`name_len` bytes, within its
    // `Name`: `to_name` checks) and `iovec` in this frame,
    // whose `iovec` points into `bytes`, all alive for the whole call; the
    // system reads them and writes only the `msg_len` of each `mmsghdr`.
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr().cast(),
            n as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Receives at most `max` (at most [`BATCH`]) waiting datagrams with one
/// `recvmmsg(2)` on the non-blocking socket `fd`, into the spare capacity
/// of `buf` (empty), `slot` bytes apart, and moves them together: `buf`
/// then holds them back to back, and `received` says where each ends and
/// who sent it. How many (at least one); `WouldBlock` when none was
/// waiting. Takes no more slots than `buf`'s capacity holds (at least one:
/// the caller makes room).
pub(crate) fn recv_batch(
    fd: BorrowedFd<'_>,
    buf: &mut BytesMut,
    slot: usize,
    max: usize,
    received: &mut [Received; BATCH],
) -> io::Result<usize> {
    assert!(buf.is_empty() && slot > 0 && buf.capacity() >= slot);
    let slots = (buf.capacity() / slot).min(max).clamp(1, BATCH);
    let base = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let mut names = [const { MaybeUninit::<Name>::uninit() }; BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    for i in 0..slots {
        let iov = iovs[i].write(libc::iovec {
            // SAFETY (of `add`): slot `i` lies within the spare capacity,
            // `slots * slot <= capacity`.
            iov_base: unsafe { base.add(i * slot) }.cast(),
            iov_len: slot,
        });
        // Zeroed, so that it is all initialised whatever the system writes
        // (and has no family if it writes nothing).
        names[i] = MaybeUninit::zeroed();
        let name_len = mem::size_of::<Name>() as libc::socklen_t;
        msgs[i].write(header(names[i].as_mut_ptr(), name_len, iov));
    }
    // SAFETY: the first `slots` entries of `msgs` are initialised, each
    // pointing to its own address buffer and `iovec` in this frame, whose
    // `iovec` points to `slot` bytes of `buf`'s spare capacity, all alive
    // for the whole call; the system writes at most those bytes, and
    // `names`, `msg_len` and the `msghdr` lengths and flags.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr().cast(),
            slots as libc::c_uint,
            0,
            ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    let mut len = 0;
    for i in 0..got {
        // SAFETY: entry `i < got <= slots` was initialised above and
        // completed by the system.
        let msg = unsafe { msgs[i].assume_init_ref() };
        let n = (msg.msg_len as usize).min(slot);
        if i > 0 && n > 0 {
            // SAFETY: both ranges lie within the spare capacity; the system
            // wrote the `n` bytes at slot `i`; the copy may overlap (the
            // destination is never past the source).
            unsafe { ptr::copy(base.add(i * slot), base.add(len), n) };
        }
        // SAFETY: entry `i < got <= slots` of `names` was initialised above
        // (all zeros: a `sockaddr_in6` is integers and byte arrays, for
        // which any bytes are valid, so are those the system wrote).
        let from = from_name(
            unsafe { names[i].assume_init_ref() },
            msg.msg_hdr.msg_namelen,
        );
        received[i] = Received {
            len: n,
            from,
            truncated: msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
        len += n;
    }
    // SAFETY: the first `len` bytes of the spare capacity are the datagrams
    // the system wrote, moved together above.
    unsafe { buf.set_len(len) };
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddrV6, UdpSocket};
    use std::os::fd::AsFd;

    #[test]
    fn addresses_round_trip_through_the_system_form() {
        let v6 = SocketAddrV6::new("fe80::1".parse().unwrap(), 443, 7, 2);
        for addr in [
            "127.0.0.1:9".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            v6.into(),
        ] {
            let (name, len) = to_name(addr);
            assert_eq!(from_name(&name, len), Some(addr));
        }
        // SAFETY: all zeros is a valid `sockaddr_in6` (integers and bytes).
        let none: Name = unsafe { mem::zeroed() };
        assert_eq!(from_name(&none, 0), None);
        let (name, _) = to_name("[::1]:53".parse().unwrap());
        assert_eq!(from_name(&name, 29), None);
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_whole() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let bytes = b"onetwothree";
        let queued = [3, 3, 0, 5].map(|len| Queued { len, to });
        assert_eq!(send_batch(a.as_fd(), bytes, queued.iter()).unwrap(), 4);
        // Loopback delivers during the send.
        let mut buf = BytesMut::with_capacity(4 * 65_536);
        let mut received = [Received::default(); BATCH];
        let got = recv_batch(b.as_fd(), &mut buf, 65_536, BATCH, &mut received).unwrap();
        assert_eq!(got, 4);
        assert_eq!(&buf[..], b"onetwothree");
        let from = Some(a.local_addr().unwrap());
        let lens: Vec<_> = received[..got]
            .iter()
            .map(|r| (r.len, r.from, r.truncated))
            .collect();
        assert_eq!(
            lens,
            [
                (3, from, false),
                (3, from, false),
                (0, from, false),
                (5, from, false)
            ]
        );
        buf.clear();
        let e = recv_batch(b.as_fd(), &mut buf, 65_536, BATCH, &mut received).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn an_ipv6_sender_comes_back_whole() {
        let a = UdpSocket::bind("[::1]:0").unwrap();
        let b = UdpSocket::bind("[::1]:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let queued = [2, 1].map(|len| Queued { len, to });
        assert_eq!(send_batch(a.as_fd(), b"v6!", queued.iter()).unwrap(), 2);
        let mut buf = BytesMut::with_capacity(2 * 65_536);
        let mut received = [Received::default(); BATCH];
        let got = recv_batch(b.as_fd(), &mut buf, 65_536, BATCH, &mut received).unwrap();
        assert_eq!(got, 2);
        assert_eq!(&buf[..], b"v6!");
        let from = Some(a.local_addr().unwrap());
        assert!(matches!(from, Some(SocketAddr::V6(_))));
        assert_eq!(received[0].from, from);
        assert_eq!(received[1].from, from);
        assert_eq!((received[0].len, received[1].len), (2, 1));
    }

    #[test]
    fn a_send_stops_at_the_end_of_the_bytes() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = a.local_addr().unwrap();
        let queued = [Queued { len: 4, to }];
        assert_eq!(send_batch(a.as_fd(), b"abc", queued.iter()).unwrap(), 0);
    }
}
