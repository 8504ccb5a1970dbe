//! The neighbour and IPv6 route events of a network namespace
//! (`RTMGRP_NEIGH`, `RTMGRP_IPV6_ROUTE`), as the service follows them.

use std::{io, time::Duration};

use super::{Socket, messages, neigh};
use crate::error::{Error, Result};

/// What a batch of events said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A neighbour entry was made, changed (`gone` false) or removed.
    Neighbour {
        /// The entry as it is (or was, when gone).
        entry: neigh::Neighbour,
        /// Removed from the table.
        gone: bool,
    },
    /// Some IPv6 route was added, changed or removed (which one does not
    /// matter: the routes to the members are asked again).
    Routes,
    /// The socket overflowed and events were lost: whoever follows the
    /// tables must read them whole again.
    Overrun,
}

/// A socket subscribed to the neighbour and IPv6 route events of the
/// network namespace it was opened in.
#[derive(Debug)]
pub struct NetEvents {
    sock: Socket,
}

fn err(source: io::Error) -> Error {
    Error::Io {
        path: "netlink (RTMGRP_NEIGH, RTMGRP_IPV6_ROUTE)".into(),
        source,
    }
}

impl NetEvents {
    /// Subscribes, in the calling thread's network namespace, with room
    /// for a burst (a routing daemon replacing a table).
    pub fn subscribe() -> Result<Self> {
        Self::with_buffer(4 << 20)
    }

    /// Subscribes with a receive buffer of `bytes` (the kernel makes small
    /// ones somewhat larger): the tests overflow a small one.
    pub fn with_buffer(bytes: i32) -> Result<Self> {
        let groups = (libc::RTMGRP_NEIGH | libc::RTMGRP_IPV6_ROUTE) as u32;
        let sock = Socket::open(groups).map_err(err)?;
        sock.set_buffer(bytes);
        Ok(NetEvents { sock })
    }

    /// Waits up to `timeout` for events and takes every one queued: the
    /// neighbour events in order, route events as one [`NetEvent::Routes`]
    /// at the end, and [`NetEvent::Overrun`] when some were lost.
    pub fn wait(&self, timeout: Duration) -> Result<Vec<NetEvent>> {
        let mut out = Vec::new();
        if !self.sock.readable(timeout).map_err(err)? {
            return Ok(out);
        }
        let mut buf = vec![0u8; 65536];
        let (mut routes, mut overrun) = (false, false);
        // Bounded: a socket's queue holds at most its receive buffer.
        for _ in 0..4096 {
            match self.sock.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(n) => decode(&buf[..n], &mut out, &mut routes),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::ENOBUFS) => overrun = true,
                    Some(libc::EINTR) => {}
                    _ => return Err(err(e)),
                },
            }
        }
        if routes {
            out.push(NetEvent::Routes);
        }
        if overrun {
            out.push(NetEvent::Overrun);
        }
        Ok(out)
    }
}

/// The events of one datagram, neighbours into `out`; `routes` set when
/// a route event came.
fn decode(datagram: &[u8], out: &mut Vec<NetEvent>, routes: &mut bool) {
    for (kind, _, payload) in messages(datagram) {
        match kind {
            libc::RTM_NEWNEIGH | libc::RTM_DELNEIGH => {
                if let Some(entry) = neigh::parse(payload) {
                    out.push(NetEvent::Neighbour {
                        entry,
                        gone: kind == libc::RTM_DELNEIGH,
                    });
                }
            }
            libc::RTM_NEWROUTE | libc::RTM_DELROUTE => *routes = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{attr, tests::message};

    #[test]
    fn a_datagram_of_events_decodes_to_neighbours_and_one_route_change() {
        let mut ndmsg = vec![0u8; 12];
        ndmsg[0] = libc::AF_INET6 as u8;
        ndmsg[4] = 3;
        ndmsg[8..10].copy_from_slice(&libc::NUD_REACHABLE.to_ne_bytes());
        ndmsg.extend(attr(
            1,
            &[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ));
        ndmsg.extend(attr(2, &[2, 0, 0, 0, 0, 9]));
        let mut d = message(libc::RTM_NEWNEIGH, &ndmsg);
        d.extend(message(libc::RTM_NEWROUTE, &[10; 12]));
        d.extend(message(libc::RTM_DELNEIGH, &ndmsg));
        d.extend(message(libc::RTM_DELROUTE, &[10; 12]));
        let (mut out, mut routes) = (Vec::new(), false);
        decode(&d, &mut out, &mut routes);
        assert!(routes);
        let gone: Vec<bool> = out
            .iter()
            .map(|e| match e {
                NetEvent::Neighbour { entry, gone } => {
                    assert_eq!(entry.mac, Some([2, 0, 0, 0, 0, 9]));
                    *gone
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(gone, vec![false, true]);
    }
}
