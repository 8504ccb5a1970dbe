//! Hand-written rtnetlink, one file per thing asked of the kernel: an
//! interface's attributes and XDP attachment ([`link`]), the IPv6
//! neighbour table ([`neigh`]), the route to an address ([`route`]), the
//! events that say when the last two change ([`events`]), and, over
//! generic netlink, what XDP a driver offers ([`netdev`]). This file holds
//! what they share: the socket, the message and attribute walkers.

pub mod events;
pub mod link;
pub mod neigh;
pub mod netdev;
pub mod route;

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

pub use link::{XdpAttachment, xdp_attachment};

/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDR_LEN: usize = 16;
/// An attribute's type without its flags (`NLA_TYPE_MASK`).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A `NETLINK_ROUTE` socket of the calling thread's network namespace,
/// subscribed to `groups` (`RTMGRP_*`, 0 for none).
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens and binds the socket.
    pub(crate) fn open(groups: u32) -> io::Result<Self> {
        Self::open_protocol(libc::NETLINK_ROUTE, groups)
    }

    /// Opens and binds a socket of netlink protocol `protocol`
    /// (`NETLINK_ROUTE`, `NETLINK_GENERIC`).
    pub(crate) fn open_protocol(protocol: i32, groups: u32) -> io::Result<Self> {
        // SAFETY: a plain socket call; the descriptor is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; family and groups set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = groups;
        // SAFETY: `addr` is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Asks for a receive buffer of `bytes` (beyond the system's limit when
    /// privileged): an event socket that overflows loses events.
    pub(crate) fn set_buffer(&self, bytes: i32) {
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: an int option, passed with its size.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const bytes).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// Has the kernel filter this socket's dumps by what the request
    /// names (NETLINK_GET_STRICT_CHK, Linux 4.20): a dump of one routing
    /// table reads that table, not every route of a full BGP table. A
    /// kernel without it dumps everything, which callers filter anyway.
    pub(crate) fn strict_dumps(&self) {
        let on: i32 = 1;
        // SAFETY: an int option, passed with its size.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_GET_STRICT_CHK,
                (&raw const on).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
    }

    /// Sends request `kind` with `flags` (`NLM_F_REQUEST` added) and
    /// `body`, and collects the messages of the answer (type and payload):
    /// every part of a dump, the one reply of a get, nothing for an
    /// acknowledged change. An error the kernel answers is returned as such.
    pub(crate) fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
    ) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = NLMSG_HDR_LEN + body.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        // SAFETY: sends `req`, a buffer we own, of its length, to the
        // kernel (a zeroed sockaddr_nl with the family set addresses it).
        let sent = unsafe {
            let mut to: libc::sockaddr_nl = std::mem::zeroed();
            to.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let dump = flags & libc::NLM_F_DUMP as u16 != 0;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        // Bounded: a dump of a million entries comes in fewer parts.
        for _ in 0..1_000_000 {
            let n = self.recv(&mut buf, 0)?;
            for (t, _, payload) in messages(&buf[..n]) {
                match t {
                    t if t == libc::NLMSG_DONE as u16 => return Ok(out),
                    t if t == libc::NLMSG_ERROR as u16 => {
                        let errno = payload
                            .get(0..4)
                            .map_or(0, |s| i32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
                        return match errno {
                            0 => Ok(out),
                            e => Err(io::Error::from_raw_os_error(-e)),
                        };
                    }
                    t => out.push((t, payload.to_vec())),
                }
            }
            if !dump && !out.is_empty() {
                return Ok(out);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an rtnetlink answer without end",
        ))
    }

    /// One datagram into `buf`: its length (`flags` as for recv(2)).
    pub(crate) fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Waits up to `timeout` for something to read; whether it came.
    pub(crate) fn readable(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => Ok(true),
            0 => Ok(false),
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(e),
                }
            }
        }
    }
}

/// The netlink messages in `b`: type, flags and payload (after the header).
pub(crate) fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(b.get(4..6)?.try_into().ok()?);
        let flags = u16::from_ne_bytes(b.get(6..8)?.try_into().ok()?);
        let payload = b.get(NLMSG_HDR_LEN..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, flags, payload))
    })
}

/// The netlink attributes (type without flags, value) in `b`.
pub(crate) fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let kind = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]) & NLA_TYPE_MASK;
        let value = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

/// An attribute as the kernel writes it: length, type, value, padding.
pub(crate) fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// An IPv6 address attribute's value.
fn ipv6(v: &[u8]) -> Option<std::net::Ipv6Addr> {
    <[u8; 16]>::try_from(v).ok().map(std::net::Ipv6Addr::from)
}

/// A 32-bit attribute's value.
fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_ne_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::attr;
    use super::*;

    /// A message as the kernel sends it: header, then `payload`.
    pub(crate) fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HDR_LEN + payload.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn messages_and_attributes_walk_and_stop_at_a_cut() {
        let mut two = message(24, &attr(1, &[1, 2, 3]));
        two.extend(message(3, &[]));
        let got: Vec<(u16, usize)> = messages(&two).map(|(t, _, p)| (t, p.len())).collect();
        assert_eq!(got, vec![(24, 8), (3, 0)]);
        let a: Vec<(u16, Vec<u8>)> = attributes(&attr(0x8001, &[9, 9]))
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(a, vec![(1, vec![9, 9])], "flags masked, padding dropped");
        for cut in 0..two.len() {
            let _ = messages(&two[..cut]).count();
            let _ = attributes(&two[..cut]).count();
        }
    }
}
