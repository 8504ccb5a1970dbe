//! IPv6 routes over rtnetlink: the kernel's route to an address
//! (`RTM_GETROUTE` with `RTM_F_FIB_MATCH`: the routing table entry a packet
//! to it would use, as `ip -6 route get fibmatch ADDR` shows it), and the
//! service's own routes of announced prefixes ([`add`], [`delete`],
//! [`table`]).

use std::{io, net::Ipv6Addr};

use super::{Socket, attributes, ipv6, u32_of};

/// Size of `struct rtmsg`.
const RTMSG_LEN: usize = 12;
/// `RTA_DST`, `RTA_OIF`, `RTA_GATEWAY`, `RTA_PRIORITY`, `RTA_TABLE`.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_METRICS: u16 = 8;
const RTA_TABLE: u16 = 15;
/// `RTAX_MTU`, inside `RTA_METRICS`: the route's MTU (`ip route ... mtu N`).
const RTAX_MTU: u16 = 2;
/// `RTM_F_FIB_MATCH`: answer with the matching table entry, not the
/// route cache's copy.
const RTM_F_FIB_MATCH: u32 = 0x2000;
/// `RTN_UNICAST`: a route that forwards (others drop or reject).
const RTN_UNICAST: u8 = 1;

/// One IPv6 route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Its destination prefix (`::` with length 0 for a default route).
    pub dst: Ipv6Addr,
    /// The prefix's length.
    pub dst_len: u8,
    /// Its routing table (`RTA_TABLE`, else `rtm_table`).
    pub table: u32,
    /// `RTN_*`: 1 forwards; unreachable, blackhole, prohibit do not.
    pub kind: u8,
    /// Its metric (`RTA_PRIORITY`, `ip`'s `metric`; 0 when absent).
    pub metric: u32,
    /// Its outgoing interface, when it names one.
    pub oif: Option<u32>,
    /// Its next hop, when it has one.
    pub gateway: Option<Ipv6Addr>,
    /// Who made it (`rtm_protocol`: 2 kernel, 4 static, 12 bird, ...).
    pub protocol: u8,
    /// Its own MTU (`mtu N`), when it has one; else the device's applies.
    pub mtu: Option<u32>,
}

impl Route {
    /// Whether packets are forwarded along it.
    pub fn forwards(&self) -> bool {
        self.kind == RTN_UNICAST
    }
}

/// The route in the payload of an `RTM_NEWROUTE`/`RTM_DELROUTE` message;
/// none for other families.
pub fn parse(payload: &[u8]) -> Option<Route> {
    let head = payload.get(..RTMSG_LEN)?;
    if i32::from(head[0]) != libc::AF_INET6 {
        return None;
    }
    let mut r = Route {
        dst: Ipv6Addr::UNSPECIFIED,
        dst_len: head[1],
        table: u32::from(head[4]),
        kind: head[7],
        metric: 0,
        oif: None,
        gateway: None,
        protocol: head[5],
        mtu: None,
    };
    for (kind, v) in attributes(&payload[RTMSG_LEN..]) {
        match kind {
            RTA_DST => r.dst = ipv6(v).unwrap_or(r.dst),
            RTA_OIF => r.oif = u32_of(v),
            RTA_GATEWAY => r.gateway = ipv6(v),
            RTA_PRIORITY => r.metric = u32_of(v).unwrap_or(0),
            RTA_TABLE => r.table = u32_of(v).unwrap_or(r.table),
            RTA_METRICS => {
                r.mtu = attributes(v)
                    .find(|(k, _)| *k == RTAX_MTU)
                    .and_then(|(_, m)| u32_of(m))
                    .filter(|m| *m != 0);
            }
            _ => {}
        }
    }
    Some(r)
}

/// The route a packet to `addr` from the calling thread's network
/// namespace would take (policy rules, then the longest matching prefix,
/// then the lowest metric); none when no route forwards there.
pub fn to(addr: Ipv6Addr) -> io::Result<Option<Route>> {
    lookup(&mut Socket::open(0)?, addr)
}

/// [`to`], asked on `s` (one socket for many lookups).
pub(crate) fn lookup(s: &mut Socket, addr: Ipv6Addr) -> io::Result<Option<Route>> {
    let mut body = vec![0u8; RTMSG_LEN];
    body[0] = libc::AF_INET6 as u8;
    body[1] = 128;
    body[8..12].copy_from_slice(&RTM_F_FIB_MATCH.to_ne_bytes());
    body.extend(super::attr(RTA_DST, &addr.octets()));
    match s.request(libc::RTM_GETROUTE, 0, &body) {
        Ok(parts) => Ok(parts
            .iter()
            .filter(|(t, _)| *t == libc::RTM_NEWROUTE)
            .find_map(|(_, p)| parse(p))
            .filter(Route::forwards)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ESRCH | libc::ENOENT)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A route the service makes: `dst/dst_len dev oif table table proto
/// protocol` (as `ip -6 route` writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Own {
    /// The prefix.
    pub dst: Ipv6Addr,
    /// Its length.
    pub dst_len: u8,
    /// The interface it points at.
    pub oif: u32,
    /// The routing table.
    pub table: u32,
    /// The route protocol number.
    pub protocol: u8,
}

impl Own {
    /// The `rtmsg` and attributes of this route.
    fn body(&self) -> Vec<u8> {
        // rtm_table is 8 bits: RT_TABLE_UNSPEC there, the table in RTA_TABLE.
        let table8 = u8::try_from(self.table).unwrap_or(0);
        let mut b = vec![
            libc::AF_INET6 as u8,
            self.dst_len,
            0,
            0,
            table8,
            self.protocol,
            libc::RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        b.extend(super::attr(RTA_DST, &self.dst.octets()));
        b.extend(super::attr(RTA_OIF, &self.oif.to_ne_bytes()));
        b.extend(super::attr(RTA_TABLE, &self.table.to_ne_bytes()));
        b
    }
}

/// Adds route `r` on `s`, replacing one to the same prefix in its table.
pub(crate) fn add(s: &mut Socket, r: &Own) -> io::Result<()> {
    let flags = libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE;
    s.request(libc::RTM_NEWROUTE, flags as u16, &r.body())
        .map(drop)
}

/// Deletes route `r` on `s`; one already gone is no error.
pub(crate) fn delete(s: &mut Socket, r: &Own) -> io::Result<()> {
    match s.request(libc::RTM_DELROUTE, libc::NLM_F_ACK as u16, &r.body()) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.map(drop),
    }
}

/// Every IPv6 route of routing table `table`, read on `s` (on a socket
/// with [`Socket::strict_dumps`], the kernel reads that table alone).
pub(crate) fn table(s: &mut Socket, table: u32) -> io::Result<Vec<Route>> {
    let mut body = vec![0u8; RTMSG_LEN];
    body[0] = libc::AF_INET6 as u8;
    body.extend(super::attr(RTA_TABLE, &table.to_ne_bytes()));
    let parts = s.request(libc::RTM_GETROUTE, libc::NLM_F_DUMP as u16, &body)?;
    Ok(parts
        .iter()
        .filter(|(t, _)| *t == libc::RTM_NEWROUTE)
        .filter_map(|(_, p)| parse(p))
        .filter(|r| r.table == table)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::attr;

    fn rtmsg(family: u8, dst_len: u8, table: u8, kind: u8, attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![family, dst_len, 0, 0, table, 3, 0, kind, 0, 0, 0, 0];
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn routes_are_read_from_their_attributes() {
        let dst: Ipv6Addr = "fd00:b:1::".parse().expect("dst");
        let gw: Ipv6Addr = "fe80::1".parse().expect("gw");
        let mut attrs = attr(RTA_TABLE, &254u32.to_ne_bytes());
        attrs.extend(attr(RTA_DST, &dst.octets()));
        attrs.extend(attr(RTA_PRIORITY, &50u32.to_ne_bytes()));
        attrs.extend(attr(RTA_OIF, &4u32.to_ne_bytes()));
        attrs.extend(attr(RTA_GATEWAY, &gw.octets()));
        attrs.extend(attr(
            RTA_METRICS | 0x8000,
            &attr(RTAX_MTU, &1400u32.to_ne_bytes()),
        ));
        let r = parse(&rtmsg(libc::AF_INET6 as u8, 64, 254, 1, &attrs)).expect("parsed");
        assert_eq!(
            r,
            Route {
                dst,
                dst_len: 64,
                table: 254,
                kind: 1,
                metric: 50,
                oif: Some(4),
                gateway: Some(gw),
                protocol: 3,
                mtu: Some(1400),
            }
        );
        assert!(r.forwards());
        // A table above 255 is only in RTA_TABLE; an unreachable route does
        // not forward; a default route has no RTA_DST.
        let r = parse(&rtmsg(
            libc::AF_INET6 as u8,
            0,
            252,
            7,
            &attr(RTA_TABLE, &1000u32.to_ne_bytes()),
        ))
        .expect("parsed");
        assert_eq!((r.table, r.dst, r.metric), (1000, Ipv6Addr::UNSPECIFIED, 0));
        assert!(!r.forwards());
        assert_eq!(parse(&rtmsg(libc::AF_INET as u8, 0, 254, 1, &[])), None);
        let full = rtmsg(libc::AF_INET6 as u8, 64, 254, 1, &attrs);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
    }

    #[test]
    fn a_local_route_does_not_forward_and_no_route_is_none() {
        // ::1 is in every namespace's local table: delivered, not forwarded.
        assert_eq!(to(Ipv6Addr::LOCALHOST).expect("asked"), None);
        // The discard prefix (RFC 6666) has no route in a plain namespace;
        // where a default route exists, it is the one matching.
        let none = to("100::1".parse().expect("addr")).expect("asked");
        assert!(none.is_none_or(|r| r.dst_len == 0), "{none:?}");
    }
}
