//! The model's reading of a frame: the IPv6 header, the extension-header
//! chain to the upper-layer header, and the Tunnel Encapsulation Limit.

use crate::{
    MAX_EXT_HEADERS, MAX_VLAN_DEPTH,
    wire::{self, ExtLen},
};

/// The upper-layer header found at the end of the extension-header chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Upper-layer protocol number (or the last next-header value for a
    /// non-first fragment, ESP or No Next Header).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the frame.
    pub offset: usize,
    /// The packet is a fragment: it carries a Fragment header with an
    /// offset or the M flag set. An atomic fragment (offset 0, M clear) is
    /// a whole packet (RFC 6946 section 4, RFC 8200 section 4.5) and is not
    /// one.
    pub fragment: bool,
    /// An Authentication Header (RFC 4302) follows the fixed header (where
    /// it stands unless a Hop-by-Hop, Routing or Fragment header comes
    /// first, RFC 4302 section 3.1.1; the program looks no deeper): IPsec.
    pub ah: bool,
    /// Source and destination ports, when `proto` has them
    /// ([`ports_first`]) and this is not a non-first fragment.
    pub ports: Option<(u16, u16)>,
    /// The upper-layer header is at `offset`: not so in a non-first
    /// fragment, whose payload goes on where the first one left off
    /// (RFC 8200 section 4.5).
    pub upper: bool,
    /// The Identification of the packet's (last) Fragment header, 0
    /// without one: with the source and destination, what all the
    /// fragments of one datagram share (RFC 8200 section 4.5).
    pub frag_id: u32,
}

/// Where the IPv6 header is and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Offset of the IPv6 header from the start of the frame.
    pub offset: usize,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next Header of the fixed header.
    pub next_header: u8,
    /// Offset one past the IPv6 payload (fixed header + payload length).
    pub end: usize,
    /// Hop Limit.
    pub hop_limit: u8,
    /// Traffic Class.
    pub traffic_class: u8,
    /// Flow Label (20 bits).
    pub flow_label: u32,
}

/// Why a frame did not yield an IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Error {
    /// Not IPv6 (or more VLAN tags than the parser walks).
    NotIpv6,
    /// IPv6, but cut short or inconsistent.
    Malformed,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

/// Finds the IPv6 header behind Ethernet and up to [`MAX_VLAN_DEPTH`] tags.
pub fn parse_l3(frame: &[u8]) -> Result<Ipv6Header, L3Error> {
    let mut off = wire::ETH_HDR_LEN;
    let mut ethertype = be16(frame, 12).ok_or(L3Error::Malformed)?;
    for _ in 0..MAX_VLAN_DEPTH {
        if ethertype != wire::ETH_P_8021Q && ethertype != wire::ETH_P_8021AD {
            break;
        }
        ethertype = be16(frame, off + 2).ok_or(L3Error::Malformed)?;
        off += wire::VLAN_HDR_LEN;
    }
    if ethertype != wire::ETH_P_IPV6 {
        return Err(L3Error::NotIpv6);
    }
    let hdr = frame
        .get(off..off + wire::IPV6_HDR_LEN)
        .ok_or(L3Error::Malformed)?;
    if hdr[0] >> 4 != 6 {
        return Err(L3Error::Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    let end = off + wire::IPV6_HDR_LEN + payload_len;
    // Payload length 0 says "a Jumbo Payload option follows" only when a
    // Hop-by-Hop Options header does (RFC 2675 section 3); with any other
    // next header the payload is empty (RFC 8200 section 3).
    let jumbogram = payload_len == 0 && hdr[6] == wire::IPPROTO_HOPOPTS;
    if jumbogram || end > frame.len() {
        return Err(L3Error::Malformed);
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&hdr[8..24]);
    dst.copy_from_slice(&hdr[24..40]);
    Ok(Ipv6Header {
        offset: off,
        src,
        dst,
        next_header: hdr[6],
        end,
        hop_limit: hdr[7],
        traffic_class: (hdr[0] << 4) | (hdr[1] >> 4),
        flow_label: u32::from_be_bytes([0, hdr[1] & 0x0f, hdr[2], hdr[3]]),
    })
}

/// Protocols whose header starts with the source and destination ports:
/// UDP (RFC 768), TCP (RFC 9293 section 3.1), DCCP (RFC 4340 section 5.1),
/// SCTP (RFC 9260 section 3.1) and UDP-Lite (RFC 3828 section 3.1).
pub fn ports_first(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// Walks the extension-header chain (at most [`MAX_EXT_HEADERS`]) within the
/// IPv6 payload. `None` when the chain is longer or runs past the payload, or
/// when a transport header with ports is cut short.
pub fn parse_transport(frame: &[u8], ip: &Ipv6Header) -> Option<Transport> {
    let payload = frame.get(..ip.end)?;
    walk(payload, ip.offset + wire::IPV6_HDR_LEN, ip.next_header)
}

/// The extension-header chain of a packet whose first header (`nh`) starts
/// at `off` of `payload`, which ends where the packet (or what is left of
/// it) ends. See [`parse_transport`].
pub(super) fn walk(payload: &[u8], mut off: usize, mut nh: u8) -> Option<Transport> {
    let mut fragment = false;
    let mut frag_id = 0;
    let ah = nh == wire::IPPROTO_AH;
    let mut walked = 0;
    while let Some(kind) = wire::ext_header_len_kind(nh) {
        if walked == MAX_EXT_HEADERS {
            return None;
        }
        walked += 1;
        let next = *payload.get(off)?;
        let len = match kind {
            ExtLen::Units8 => (usize::from(*payload.get(off + 1)?) + 1) * 8,
            ExtLen::Units4Plus2 => (usize::from(*payload.get(off + 1)?) + 2) * 4,
            ExtLen::Fixed8 => wire::FRAG_HDR_LEN,
        };
        if off + len > payload.len() {
            return None;
        }
        if kind == ExtLen::Fixed8 {
            let field = be16(payload, off + 2)?;
            frag_id = u32::from_be_bytes([
                payload[off + 4],
                payload[off + 5],
                payload[off + 6],
                payload[off + 7],
            ]);
            // The M flag: more fragments follow. Offset 0 without it is an
            // atomic fragment, a whole packet (RFC 6946 section 4).
            fragment |= field & 1 != 0;
            let offset_field = field >> 3;
            if offset_field != 0 {
                fragment = true;
                // A non-first fragment: the upper-layer header is elsewhere.
                return Some(Transport {
                    proto: next,
                    offset: off + len,
                    fragment,
                    ah,
                    ports: None,
                    upper: false,
                    frag_id,
                });
            }
        }
        off += len;
        nh = next;
    }
    let ports = if ports_first(nh) {
        Some((be16(payload, off)?, be16(payload, off + 2)?))
    } else {
        None
    };
    Some(Transport {
        proto: nh,
        offset: off,
        fragment,
        ah,
        ports,
        upper: true,
        frag_id,
    })
}

/// Options of a Destination Options header that [`encap_limit`] reads, at
/// most (the program's bound; Linux reads them all).
pub const MAX_DST_OPTIONS: usize = 8;

/// The Tunnel Encapsulation Limit of a packet about to be encapsulated
/// (RFC 2473 section 4.1.1: option type 4, length 1, in a Destination
/// Options header; section 5.1: a limit of 0 forbids the encapsulation),
/// found as Linux's ip6_tunnel finds it: the first such option among the
/// first [`MAX_DST_OPTIONS`] options of any Destination Options header of
/// the chain (at most [`MAX_EXT_HEADERS`] headers, not past a non-first
/// fragment's Fragment header).
pub fn encap_limit(frame: &[u8], ip: &Ipv6Header) -> Option<u8> {
    let payload = frame.get(..ip.end)?;
    let mut off = ip.offset + wire::IPV6_HDR_LEN;
    let mut nh = ip.next_header;
    for _ in 0..MAX_EXT_HEADERS {
        let kind = wire::ext_header_len_kind(nh)?;
        let next = *payload.get(off)?;
        let len = match kind {
            ExtLen::Units8 => (usize::from(*payload.get(off + 1)?) + 1) * 8,
            ExtLen::Units4Plus2 => (usize::from(*payload.get(off + 1)?) + 2) * 4,
            ExtLen::Fixed8 => wire::FRAG_HDR_LEN,
        };
        if off + len > payload.len() {
            return None;
        }
        if kind == ExtLen::Fixed8 && be16(payload, off + 2)? >> 3 != 0 {
            return None;
        }
        if nh == wire::IPPROTO_DSTOPTS {
            // Type, length, data; Pad1 (type 0) is one octet alone. An
            // option is read only when three octets of it are there.
            let mut i = 2;
            for _ in 0..MAX_DST_OPTIONS {
                if i + 3 > len {
                    break;
                }
                let (ty, olen) = (payload[off + i], payload[off + i + 1]);
                if ty == wire::OPT_TUNNEL_ENCAP_LIMIT && olen == 1 {
                    return Some(payload[off + i + 2]);
                }
                i += if ty == 0 { 1 } else { usize::from(olen) + 2 };
            }
        }
        off += len;
        nh = next;
    }
    None
}
