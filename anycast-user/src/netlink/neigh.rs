//! The kernel's IPv6 neighbour table over rtnetlink: the entries
//! (`RTM_GETNEIGH` dump, `RTM_NEWNEIGH`/`RTM_DELNEIGH` events) and how to
//! have an address resolved (`RTM_NEWNEIGH` with `NTF_USE`).

use std::{io, net::Ipv6Addr};

use super::{Socket, attributes, ipv6};

/// Size of `struct ndmsg`.
const NDMSG_LEN: usize = 12;
/// `NDA_DST` and `NDA_LLADDR`.
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

/// Where a neighbour entry is in Neighbour Unreachability Detection
/// (RFC 4861 7.3.2; `NUD_*`, `ip neigh` shows the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NudState {
    /// Being resolved: solicitations sent, no answer yet.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; confirmed again when next used.
    Stale,
    /// Used while stale; a probe follows unless confirmed.
    Delay,
    /// Being confirmed by unicast solicitations.
    Probe,
    /// Did not answer: unreachable.
    Failed,
    /// Needs no resolution (the link has none).
    NoArp,
    /// Set by hand, never expires.
    Permanent,
    /// No state (an entry being made or removed).
    None,
}

impl NudState {
    /// From `ndm_state`.
    pub fn from_bits(b: u16) -> Self {
        match b {
            b if b & libc::NUD_PERMANENT != 0 => NudState::Permanent,
            b if b & libc::NUD_NOARP != 0 => NudState::NoArp,
            b if b & libc::NUD_REACHABLE != 0 => NudState::Reachable,
            b if b & libc::NUD_STALE != 0 => NudState::Stale,
            b if b & libc::NUD_DELAY != 0 => NudState::Delay,
            b if b & libc::NUD_PROBE != 0 => NudState::Probe,
            b if b & libc::NUD_FAILED != 0 => NudState::Failed,
            b if b & libc::NUD_INCOMPLETE != 0 => NudState::Incomplete,
            _ => NudState::None,
        }
    }

    /// Whether the entry's link-layer address can be used (the kernel
    /// sends to it in these states).
    pub fn usable(self) -> bool {
        matches!(
            self,
            NudState::Reachable
                | NudState::Stale
                | NudState::Delay
                | NudState::Probe
                | NudState::NoArp
                | NudState::Permanent
        )
    }
}

impl std::fmt::Display for NudState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NudState::Incomplete => "INCOMPLETE",
            NudState::Reachable => "REACHABLE",
            NudState::Stale => "STALE",
            NudState::Delay => "DELAY",
            NudState::Probe => "PROBE",
            NudState::Failed => "FAILED",
            NudState::NoArp => "NOARP",
            NudState::Permanent => "PERMANENT",
            NudState::None => "NONE",
        })
    }
}

/// One entry of the IPv6 neighbour table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The interface it is on.
    pub ifindex: u32,
    /// The neighbour's address.
    pub addr: Ipv6Addr,
    /// Its link-layer address, when the entry has one of 6 bytes.
    pub mac: Option<[u8; 6]>,
    /// Its NUD state.
    pub state: NudState,
}

/// The entry in the payload of an `RTM_NEWNEIGH`/`RTM_DELNEIGH` message;
/// none for other families or an entry without an address.
pub fn parse(payload: &[u8]) -> Option<Neighbour> {
    let head = payload.get(..NDMSG_LEN)?;
    if i32::from(head[0]) != libc::AF_INET6 {
        return None;
    }
    let ifindex = u32::from_ne_bytes(head[4..8].try_into().ok()?);
    let state = NudState::from_bits(u16::from_ne_bytes([head[8], head[9]]));
    let (mut addr, mut mac) = (None, None);
    for (kind, v) in attributes(&payload[NDMSG_LEN..]) {
        match kind {
            NDA_DST => addr = ipv6(v),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(v).ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex,
        addr: addr?,
        mac,
        state,
    })
}

/// An `ndmsg` for IPv6 on `ifindex` with `state` and `flags`.
fn ndmsg(ifindex: u32, state: u16, flags: u8) -> Vec<u8> {
    let mut m = vec![0u8; NDMSG_LEN];
    m[0] = libc::AF_INET6 as u8;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m[8..10].copy_from_slice(&state.to_ne_bytes());
    m[10] = flags;
    m
}

/// Every IPv6 neighbour entry of the calling thread's network namespace.
pub fn dump() -> io::Result<Vec<Neighbour>> {
    let mut s = Socket::open(0)?;
    let parts = s.request(libc::RTM_GETNEIGH, libc::NLM_F_DUMP as u16, &ndmsg(0, 0, 0))?;
    Ok(parts
        .iter()
        .filter(|(t, _)| *t == libc::RTM_NEWNEIGH)
        .filter_map(|(_, p)| parse(p))
        .collect())
}

/// Has the kernel resolve `addr` on `ifindex` as if a packet were sent to
/// it (`NTF_USE`): an entry is made when missing and solicited, a failed
/// one solicited again, a stale one probed. Needs CAP_NET_ADMIN.
pub fn solicit(ifindex: u32, addr: Ipv6Addr) -> io::Result<()> {
    let mut body = ndmsg(ifindex, 0, libc::NTF_USE);
    body.extend(super::attr(NDA_DST, &addr.octets()));
    let mut s = Socket::open(0)?;
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE | libc::NLM_F_ACK) as u16;
    s.request(libc::RTM_NEWNEIGH, flags, &body).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::attr;

    fn entry(family: u8, ifindex: u32, state: u16, attrs: &[u8]) -> Vec<u8> {
        let mut m = ndmsg(ifindex, state, 0);
        m[0] = family;
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn neighbour_entries_are_read_from_their_attributes() {
        let addr: Ipv6Addr = "fd00:1::2".parse().expect("addr");
        let mac = [2, 0, 0, 0, 0, 7];
        let mut attrs = attr(NDA_DST, &addr.octets());
        attrs.extend(attr(NDA_LLADDR, &mac));
        attrs.extend(attr(8, &[0; 16])); // NDA_CACHEINFO, ignored
        let n = parse(&entry(libc::AF_INET6 as u8, 5, libc::NUD_STALE, &attrs)).expect("parsed");
        assert_eq!(
            n,
            Neighbour {
                ifindex: 5,
                addr,
                mac: Some(mac),
                state: NudState::Stale
            }
        );
        assert!(n.state.usable());
        // Being resolved: no link-layer address yet.
        let n = parse(&entry(
            libc::AF_INET6 as u8,
            5,
            libc::NUD_INCOMPLETE,
            &attr(NDA_DST, &addr.octets()),
        ))
        .expect("parsed");
        assert_eq!((n.mac, n.state), (None, NudState::Incomplete));
        assert!(!n.state.usable() && !NudState::Failed.usable());
        // IPv4 entries and entries without an address are not ours.
        assert_eq!(parse(&entry(libc::AF_INET as u8, 5, 2, &attrs)), None);
        assert_eq!(parse(&entry(libc::AF_INET6 as u8, 5, 2, &[])), None);
        // A cut message is nothing or less, never a panic.
        let full = entry(libc::AF_INET6 as u8, 5, 2, &attrs);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
    }

    #[test]
    fn nud_states_read_as_ip_shows_them() {
        assert_eq!(
            NudState::from_bits(libc::NUD_PERMANENT),
            NudState::Permanent
        );
        assert_eq!(NudState::from_bits(libc::NUD_FAILED), NudState::Failed);
        assert_eq!(NudState::from_bits(libc::NUD_DELAY), NudState::Delay);
        assert_eq!(NudState::from_bits(0), NudState::None);
        assert_eq!(NudState::Probe.to_string(), "PROBE");
    }
}
