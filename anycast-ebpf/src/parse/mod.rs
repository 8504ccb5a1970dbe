//! Parsing: the headers a packet is classified by ([`packet`]), and the
//! upper-layer header of a packet to steer (`ipv6::transport`). Every read
//! of packet bytes goes through [`read`] (in `bounds`).

pub(crate) mod bounds;
pub(crate) mod eth;
pub(crate) mod ipv6;
pub(crate) mod words;

use anycast_common::{AddrKey, GlobalStat};
use aya_ebpf::programs::XdpContext;

pub(crate) use bounds::{load, read, writable};
use eth::L2;
use ipv6::Ipv6;

use crate::verdict::Final;

/// What classification reads of every packet: the IPv6 fixed header and
/// where its addresses are.
pub(crate) struct Packet {
    /// The fixed header.
    pub(crate) ip: Ipv6,
    /// The source address, in the packet (bounds-checked).
    pub(crate) src: *const AddrKey,
    /// The destination address, in the packet (bounds-checked).
    pub(crate) dst: *const AddrKey,
}

/// Parses the Ethernet header, its VLAN tags and the IPv6 fixed header.
/// Anything else passes: not IPv6 (`non_ipv6_passed`), or cut short or
/// inconsistent (`malformed_passed`, for the kernel to judge).
#[inline(always)]
pub(crate) fn packet(ctx: &XdpContext) -> Result<Packet, Final> {
    let l3_off = match eth::parse(ctx) {
        L2::Ipv6 { l3_off } => l3_off,
        L2::Other => return Err(Final::pass(GlobalStat::NonIpv6Passed)),
        L2::Truncated => return Err(Final::pass(GlobalStat::MalformedPassed)),
    };
    let malformed = Final::pass(GlobalStat::MalformedPassed);
    let Some(ip) = ipv6::parse(ctx, l3_off, usize::MAX) else {
        return Err(malformed);
    };
    let (Some(src), Some(dst)) = (ipv6::src(ctx, &ip), ipv6::dst(ctx, &ip)) else {
        return Err(malformed);
    };
    Ok(Packet { ip, src, dst })
}
