//! Ethernet and up to two VLAN tags (802.1Q, 802.1ad).

use anycast_common::{MAX_VLAN_DEPTH, wire};
use aya_ebpf::programs::XdpContext;

use super::bounds::load;
use crate::verifier::opaque_at_most;

/// What the link layer says.
pub(crate) enum L2 {
    /// IPv6, its header at this offset.
    Ipv6 { l3_off: usize },
    /// Another EtherType (or more tags than [`MAX_VLAN_DEPTH`]).
    Other,
    /// The frame ends inside the Ethernet header or a tag.
    Truncated,
}

/// Walks the Ethernet header and its VLAN tags to the network layer.
#[inline(always)]
pub(crate) fn parse(ctx: &XdpContext) -> L2 {
    let limit = usize::MAX;
    let Some(mut ethertype) = load::<[u8; 2]>(ctx, 12, limit).map(u16::from_be_bytes) else {
        return L2::Truncated;
    };
    let mut off = wire::ETH_HDR_LEN;
    for _ in 0..MAX_VLAN_DEPTH {
        if ethertype != wire::ETH_P_8021Q && ethertype != wire::ETH_P_8021AD {
            break;
        }
        // The tag is TCI (2 octets) then the inner EtherType.
        let Some(inner) = load::<[u8; 2]>(ctx, off + 2, limit) else {
            return L2::Truncated;
        };
        ethertype = u16::from_be_bytes(inner);
        off += wire::VLAN_HDR_LEN;
    }
    if ethertype != wire::ETH_P_IPV6 {
        return L2::Other;
    }
    // The offset goes on as a range, not as one constant per VLAN depth,
    // which would triple the verifier's work for everything after (see
    // `verifier`). Every read at it is bounds-checked anyway.
    const MAX_L3_OFF: usize = wire::ETH_HDR_LEN + MAX_VLAN_DEPTH * wire::VLAN_HDR_LEN;
    match opaque_at_most(off, MAX_L3_OFF) {
        Some(l3_off) => L2::Ipv6 { l3_off },
        None => L2::Truncated,
    }
}
