//! ICMPv6 Packet Too Big (RFC 4443 section 3.2): what a router sends back
//! when a packet is larger than the MTU of the link it would leave on
//! (RFC 8200 section 5), or of the tunnel it would enter (RFC 2473
//! section 7.1), instead of forwarding it.

use std::vec::Vec;

use super::{Config, Fib, Ipv6Header, Verdict, tunnelled_source};
use crate::{GlobalStat, GroupStat, IPV6_MIN_MTU, TOO_BIG_HOP_LIMIT, wire};

/// ICMPv6 type of Packet Too Big (RFC 4443 section 3.2).
const PACKET_TOO_BIG: u8 = 2;
/// Length of the ICMPv6 header of a Packet Too Big: type, code, checksum, MTU.
const ICMP_HDR_LEN: usize = 8;

/// The answer to a packet (of `frame`, header `ip`) too big for an egress
/// of `mtu` bytes: a Packet Too Big to its source, or the packet passed to
/// the kernel untouched. `icmp_error`: the packet is an ICMPv6 error.
pub(super) fn answer(
    frame: &[u8],
    ip: &Ipv6Header,
    mtu: u32,
    icmp_error: bool,
    config: &dyn Config,
) -> (Verdict, Option<Vec<u8>>, GlobalStat, GroupStat) {
    let passed = (
        Verdict::Pass,
        None,
        GlobalStat::TooBigPassed,
        GroupStat::TooBigPassed,
    );
    // RFC 4443 section 2.4 (e.1): no error message in answer to an error
    // message; (e.6): nor to a packet whose source does not identify one
    // node, such as an anycast address the sender knows. Here, any packet
    // the source rule met with an anycast source, outer or the inner one
    // of IPv6-in-IPv6 (a member's, never a client's).
    let anycast_source = config.anycast_group(&ip.src).is_some()
        || tunnelled_source(frame, ip).is_some_and(|s| config.anycast_group(&s).is_some());
    if icmp_error || anycast_source {
        return passed;
    }
    // RFC 4443 section 2.2 (b): in answer to a packet sent to an anycast
    // address, the source is a unicast address of the node, chosen as for
    // any packet it originates to that destination: the FIB's choice
    // towards the client, which also gives the way out.
    let Fib::Found {
        ifindex,
        smac,
        dmac,
        src,
    } = config.fib(None, &ip.src, IPV6_MIN_MTU)
    else {
        return passed;
    };
    // RFC 4443 section 2.4 (f): the rate of error messages is limited.
    if !config.too_big_allowed() {
        return passed;
    }
    let out = message(frame, ip, mtu, (dmac, smac), &src);
    // Out of the interface the route back names (the program's policy:
    // a redirect, also back out of the interface it came in on).
    (
        Verdict::Redirect(ifindex),
        Some(out),
        GlobalStat::TooBigSent,
        GroupStat::TooBigSent,
    )
}

/// The Packet Too Big frame: Ethernet (`macs`: destination, source), the
/// IPv6 header from `src` to the packet's source, and the ICMPv6 message
/// (RFC 4443 section 3.2): type 2, code 0, the checksum, `mtu`, and as much
/// of the packet as fits in the minimum MTU (section 2.4 (c)).
fn message(
    frame: &[u8],
    ip: &Ipv6Header,
    mtu: u32,
    macs: ([u8; 6], [u8; 6]),
    src: &[u8; 16],
) -> Vec<u8> {
    let room = IPV6_MIN_MTU - wire::IPV6_HDR_LEN - ICMP_HDR_LEN;
    let quote = &frame[ip.offset..ip.end.min(ip.offset + room)];
    let mut icmp = Vec::with_capacity(ICMP_HDR_LEN + quote.len());
    icmp.extend_from_slice(&[PACKET_TOO_BIG, 0, 0, 0]);
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(quote);
    let sum = checksum(src, &ip.src, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut out = Vec::with_capacity(wire::ETH_HDR_LEN + wire::IPV6_HDR_LEN + icmp.len());
    out.extend_from_slice(&macs.0);
    out.extend_from_slice(&macs.1);
    out.extend_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
    // Version 6, traffic class 0, flow label 0.
    out.extend_from_slice(&(6u32 << 28).to_be_bytes());
    out.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    out.extend_from_slice(&[wire::IPPROTO_ICMPV6, TOO_BIG_HOP_LIMIT]);
    out.extend_from_slice(src);
    out.extend_from_slice(&ip.src);
    out.extend_from_slice(&icmp);
    out
}

/// The ICMPv6 checksum (RFC 4443 section 2.3): the one's complement of the
/// one's complement sum of the message and the pseudo-header of RFC 8200
/// section 8.1 (source, destination, upper-layer length, next header 58).
fn checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |&b| u64::from(b));
        }
    };
    add(src);
    add(dst);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, wire::IPPROTO_ICMPV6]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
