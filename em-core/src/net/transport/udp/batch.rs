//! Datagrams in batches: `sendmmsg(2)` and `recvmmsg(2)`, many datagrams
//! per system call. A system call costs about as much as em's own work on a
//! datagram, so a busy socket that makes one per batch instead of one per
//! datagram spends less than an echo loop written the obvious way.
//!
//! Unsafe because neither std, tokio nor socket2 offers the two calls.
//! These are the calls, with libc's declarations; every pointer handed to
//! the system points into a live buffer of the length passed with it (the
//! arrays of this call's stack frame, and the caller's bytes), and only the
//! entries the system reports written are read back.
#![allow(unsafe_code)]

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use bytes::BytesMut;

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

/// An IPv4 or IPv6 socket address as the system reads and writes it.
#[repr(C)]
#[derive(Clone, Copy)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// All zeros: a valid value of either variant, and no family.
    fn zeroed() -> RawAddr {
        // SAFETY: both variants are plain integers and byte arrays, for
        // which all zeros is a valid value.
        unsafe { mem::zeroed() }
    }

    /// `addr` in the system's form, and its length.
    fn new(addr: SocketAddr) -> (RawAddr, libc::socklen_t) {
        let mut raw = RawAddr::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                raw.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (raw, len as libc::socklen_t)
    }

    /// The address the system wrote, if it is an IP one.
    fn get(&self) -> Option<SocketAddr> {
        // SAFETY: the value started all zeros and the system wrote a whole
        // address of the family it sets first (both variants begin with
        // it), so the variant read is the one written, and initialised.
        unsafe {
            match i32::from(self.v4.sin_family) {
                libc::AF_INET => {
                    let a = self.v4;
                    let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                    Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
                }
                libc::AF_INET6 => {
                    let a = self.v6;
                    let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                    let port = u16::from_be(a.sin6_port);
                    Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
                }
                _ => None,
            }
        }
    }
}

/// A `msghdr` for one datagram in `iov`, to or from `name`.
fn header(name: *mut RawAddr, name_len: libc::socklen_t, iov: *mut libc::iovec) -> libc::mmsghdr {
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
    let mut names = [const { MaybeUninit::<RawAddr>::uninit() }; BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let mut n = 0;
    let mut start = 0;
    for q in queued.take(BATCH) {
        let Some(datagram) = bytes.get(start..start + q.len) else {
            break;
        };
        let (name, name_len) = RawAddr::new(q.to);
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
    // points to its own initialised address and `iovec` in this frame,
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
    let mut names = [const { MaybeUninit::<RawAddr>::uninit() }; BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    for i in 0..slots {
        let iov = iovs[i].write(libc::iovec {
            // SAFETY (of `add`): slot `i` lies within the spare capacity,
            // `slots * slot <= capacity`.
            iov_base: unsafe { base.add(i * slot) }.cast(),
            iov_len: slot,
        });
        let name = names[i].write(RawAddr::zeroed());
        let name_len = mem::size_of::<RawAddr>() as libc::socklen_t;
        msgs[i].write(header(name, name_len, iov));
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
        received[i] = Received {
            len: n,
            // SAFETY: entry `i < slots` was initialised above.
            from: unsafe { names[i].assume_init_ref() }.get(),
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
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn addresses_round_trip_through_the_system_form() {
        for addr in ["127.0.0.1:9", "[::1]:53", "[fe80::1%2]:443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(RawAddr::new(addr).0.get(), Some(addr));
        }
        assert_eq!(RawAddr::zeroed().get(), None);
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
    fn a_send_stops_at_the_end_of_the_bytes() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = a.local_addr().unwrap();
        let queued = [Queued { len: 4, to }];
        assert_eq!(send_batch(a.as_fd(), b"abc", queued.iter()).unwrap(), 0);
    }
}
