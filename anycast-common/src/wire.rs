//! Protocol numbers and header sizes, as they appear on the wire.

/// Ethernet header length: destination MAC, source MAC, EtherType.
pub const ETH_HDR_LEN: usize = 14;
/// 802.1Q / 802.1ad tag length (TCI + inner EtherType).
pub const VLAN_HDR_LEN: usize = 4;
/// Fixed IPv6 header length (RFC 8200).
pub const IPV6_HDR_LEN: usize = 40;

/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ service) VLAN tag.
pub const ETH_P_8021AD: u16 = 0x88a8;

/// IPv6 Hop-by-Hop Options header.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// DCCP (RFC 4340).
pub const IPPROTO_DCCP: u8 = 33;
/// IPv6 encapsulated in IPv6 (RFC 2473).
pub const IPPROTO_IPV6: u8 = 41;
/// IPv6 Routing header.
pub const IPPROTO_ROUTING: u8 = 43;
/// IPv6 Fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;
/// Encapsulating Security Payload: opaque, ends the walk.
pub const IPPROTO_ESP: u8 = 50;
/// Authentication Header (length in 4-octet units, RFC 4302).
pub const IPPROTO_AH: u8 = 51;
/// ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// No Next Header.
pub const IPPROTO_NONE: u8 = 59;
/// IPv6 Destination Options header.
pub const IPPROTO_DSTOPTS: u8 = 60;
/// SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// The Tunnel Encapsulation Limit option of a Destination Options header
/// (RFC 2473 section 4.1.1).
pub const OPT_TUNNEL_ENCAP_LIMIT: u8 = 4;
/// UDP-Lite (RFC 3828).
pub const IPPROTO_UDPLITE: u8 = 136;
/// Mobility header (RFC 6275).
pub const IPPROTO_MH: u8 = 135;
/// Host Identity Protocol (RFC 7401), an extension header by RFC 7045.
pub const IPPROTO_HIP: u8 = 139;
/// Shim6 (RFC 5533), an extension header by RFC 7045.
pub const IPPROTO_SHIM6: u8 = 140;

/// Length of the Fragment header.
pub const FRAG_HDR_LEN: usize = 8;

/// How an extension header's length is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtLen {
    /// `(hdr_ext_len + 1) * 8` octets: HBH, DST, RT, MH, HIP, Shim6.
    Units8,
    /// `(payload_len + 2) * 4` octets: AH.
    Units4Plus2,
    /// Always 8 octets: Fragment.
    Fixed8,
}

/// Whether `next_header` names an IPv6 extension header the parser walks
/// through, and how its length is encoded. `None`: an upper-layer protocol
/// (or ESP / No Next Header), which ends the chain.
pub const fn ext_header_len_kind(next_header: u8) -> Option<ExtLen> {
    match next_header {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_MH | IPPROTO_HIP
        | IPPROTO_SHIM6 => Some(ExtLen::Units8),
        IPPROTO_AH => Some(ExtLen::Units4Plus2),
        IPPROTO_FRAGMENT => Some(ExtLen::Fixed8),
        _ => None,
    }
}

/// Whether the first 4 octets of `proto`'s header are source and
/// destination ports: TCP, UDP, DCCP (RFC 4340 section 5.1), SCTP and
/// UDP-Lite (RFC 3828 section 3.1).
pub const fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_DCCP | IPPROTO_SCTP | IPPROTO_UDPLITE
    )
}
