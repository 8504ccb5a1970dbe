//! The IPv6 fixed header and the extension-header chain (RFC 8200).

use anycast_common::{
    AddrKey, MAX_EXT_HEADERS,
    wire::{self, ExtLen},
};
use aya_ebpf::programs::XdpContext;

use super::bounds::{data_end, load, read};
use crate::verifier::opaque;

/// The fixed header's fields the pipeline needs.
#[derive(Clone, Copy)]
pub(crate) struct Ipv6 {
    /// Offset of the fixed header.
    pub(crate) off: usize,
    /// Offset one past the payload (`off + 40 + payload length`).
    pub(crate) end: usize,
    /// Next Header of the fixed header.
    pub(crate) next_header: u8,
    /// Hop Limit.
    pub(crate) hop_limit: u8,
    /// Flow Label (20 bits).
    pub(crate) flow_label: u32,
}

/// Reads and validates the fixed header at `l3_off`, whose payload must end
/// by `limit`: complete, version 6, no jumbogram (payload length 0 with a
/// Hop-by-Hop Options header next, RFC 2675 section 3; with any other next
/// header it is an empty payload, RFC 8200 section 3), and a payload that
/// fits in the frame.
#[inline(always)]
pub(crate) fn parse(ctx: &XdpContext, l3_off: usize, limit: usize) -> Option<Ipv6> {
    // The whole fixed header first, so that the addresses are in range too.
    let h = read::<[u8; wire::IPV6_HDR_LEN]>(ctx, l3_off, limit)? as *const u32;
    // Version/class/label, then payload length, next header, hop limit: two
    // words (see `words` on alignment), not eight byte loads.
    // SAFETY: the whole header was bounds-checked just above.
    let (w0, w1) = unsafe { (u32::from_be(*h), u32::from_be(*h.add(1))) };
    if w0 >> 28 != 6 {
        return None;
    }
    let payload_len = (w1 >> 16) as usize;
    let end = l3_off + wire::IPV6_HDR_LEN + payload_len;
    // Payload length 0 and next header 0 (Hop-by-Hop) in one compare.
    if (w1 >> 8) == 0 || end > limit || ctx.data() + end > data_end(ctx) {
        return None;
    }
    Some(Ipv6 {
        off: l3_off,
        end,
        next_header: (w1 >> 8) as u8,
        hop_limit: w1 as u8,
        flow_label: w0 & 0x000f_ffff,
    })
}

/// A pointer to the source address inside the packet (for map lookups
/// without a copy); the caller has validated the fixed header.
#[inline(always)]
pub(crate) fn src(ctx: &XdpContext, ip: &Ipv6) -> Option<*const AddrKey> {
    read::<AddrKey>(ctx, ip.off + 8, ip.end)
}

/// A pointer to the destination address inside the packet.
#[inline(always)]
pub(crate) fn dst(ctx: &XdpContext, ip: &Ipv6) -> Option<*const AddrKey> {
    read::<AddrKey>(ctx, ip.off + 24, ip.end)
}

/// The upper-layer header at the end of the chain.
pub(crate) struct Transport {
    /// Upper-layer protocol (for a non-first fragment, the protocol its
    /// data belongs to).
    pub(crate) proto: u8,
    /// Offset of the upper-layer header (of the fragment's data, for a
    /// non-first fragment).
    pub(crate) off: usize,
    /// Source and destination port (valid when `has_ports`). Not an
    /// `Option`: the verifier refuses to spill the undefined payload of a
    /// `None`, and this struct lives across calls.
    pub(crate) port_bytes: [u8; 4],
    /// The protocol has ports and the upper-layer header is here (a first
    /// fragment's included).
    pub(crate) has_ports: bool,
    /// The upper-layer header is at `off`: false for a non-first fragment,
    /// whose payload goes on where the first one left off (RFC 8200 4.5).
    pub(crate) upper: bool,
    /// The packet is a fragment (offset or M flag set; not an atomic
    /// fragment, RFC 6946 4).
    pub(crate) fragment: bool,
    /// The Identification of its (last) Fragment header, 0 without one:
    /// with the addresses, what the fragments of a datagram share (RFC
    /// 8200 4.5).
    pub(crate) frag_id: u32,
}

/// IKE's ports (RFC 7296 2; 4500: NAT traversal, RFC 3948 2.2).
const IKE_PORTS: [u16; 2] = [500, 4500];

impl Transport {
    /// Whether the packet (of protocol `proto`, with ports or identifier
    /// `id`, whose fixed header's next header is `first`) is IPsec (RFC
    /// 4301), keyed as one flow per client and anycast address (the
    /// model's `ipsec_key`, which says why): ESP, anything under an
    /// Authentication Header right after the fixed header (where AH stands
    /// unless a Hop-by-Hop, Routing or Fragment header comes first, RFC
    /// 4302 3.1.1; one deeper in the chain is not looked for: a flag set in
    /// the walk cost the verifier 125,000 instructions), IKE (UDP to port
    /// 500 or 4500); not a later fragment (keyed by its label).
    #[inline(always)]
    pub(crate) fn ipsec(&self, proto: u8, id: Option<[u8; 4]>, first: u8) -> bool {
        // Compared as copies the verifier does not know (see `verifier`):
        // a compare of the protocol or the port themselves would narrow
        // what it knows of them, on the stack too, and keep the paths of
        // ESP, IKE and the rest apart to the end of the program.
        let p = opaque(u32::from(proto));
        let ah = opaque(u32::from(first)) == u32::from(wire::IPPROTO_AH);
        let dport = match id {
            Some([_, _, d0, d1]) => opaque(u32::from(u16::from_be_bytes([d0, d1]))),
            None => 0,
        };
        let ike = p == u32::from(wire::IPPROTO_UDP)
            && (dport == u32::from(IKE_PORTS[0]) || dport == u32::from(IKE_PORTS[1]));
        self.upper && (ah || p == u32::from(wire::IPPROTO_ESP) || ike)
    }

    /// Source and destination port, when the protocol has them and the
    /// upper-layer header is here (a first fragment's too, keyed as its
    /// whole packet): what its flow is keyed by.
    #[inline(always)]
    pub(crate) fn ports(&self) -> Option<[u8; 4]> {
        if self.has_ports {
            Some(self.port_bytes)
        } else {
            None
        }
    }
}

/// Walks at most [`MAX_EXT_HEADERS`] extension headers inside the payload.
/// `None` when the chain is longer or cut short.
#[inline(always)]
pub(crate) fn transport(ctx: &XdpContext, ip: &Ipv6) -> Option<Transport> {
    let mut off = ip.off + wire::IPV6_HDR_LEN;
    let mut nh = ip.next_header;
    let mut fragment = false;
    let mut frag_id = 0;
    for _ in 0..MAX_EXT_HEADERS {
        let Some(kind) = wire::ext_header_len_kind(nh) else {
            break;
        };
        // Next Header and the length octet; the Fragment header also
        // carries its offset in the next two octets and its Identification
        // in the four after. Every extension header is 8 octets or more.
        let hdr = load::<[u8; 8]>(ctx, off, ip.end)?;
        let len = match kind {
            ExtLen::Units8 => (usize::from(hdr[1]) + 1) * 8,
            ExtLen::Units4Plus2 => (usize::from(hdr[1]) + 2) * 4,
            ExtLen::Fixed8 => wire::FRAG_HDR_LEN,
        };
        if off + len > ip.end {
            return None;
        }
        nh = hdr[0];
        off += len;
        if let ExtLen::Fixed8 = kind {
            let field = u16::from_be_bytes([hdr[2], hdr[3]]);
            frag_id = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            // The M flag: more fragments follow. Offset 0 without it is an
            // atomic fragment, a whole packet (RFC 6946 4): keyed as one.
            fragment |= field & 1 != 0;
            if field >> 3 != 0 {
                fragment = true;
                // A non-first fragment: no upper-layer header here.
                return Some(Transport {
                    proto: nh,
                    off,
                    port_bytes: [0; 4],
                    has_ports: false,
                    upper: false,
                    fragment,
                    frag_id,
                });
            }
        }
    }
    if wire::ext_header_len_kind(nh).is_some() {
        // More headers than the bound.
        return None;
    }
    let (port_bytes, has_ports) = if wire::has_ports(nh) {
        // Present in a first fragment too (and required).
        (load::<[u8; 4]>(ctx, off, ip.end)?, true)
    } else {
        ([0; 4], false)
    };
    Some(Transport {
        proto: nh,
        off,
        port_bytes,
        has_ports,
        upper: true,
        fragment,
        frag_id,
    })
}

/// Options of a Destination Options header [`encap_limit_zero`] reads, at
/// most (the model's `MAX_DST_OPTIONS`).
const MAX_DST_OPTIONS: usize = 8;

/// Whether the packet's Tunnel Encapsulation Limit is 0 (RFC 2473 4.1.1,
/// 5.1: it must not be encapsulated again): the first Tunnel Encapsulation
/// Limit option (type 4, length 1) among the first [`MAX_DST_OPTIONS`]
/// options of any Destination Options header of the chain, as Linux's
/// ip6_tunnel looks for it. Read only on the way to an encapsulated member.
// Not inlined: its two bounded loops get a frame of their own; `act::steer`
// calls it once, before the member is chosen.
#[inline(never)]
pub(crate) fn encap_limit_zero(ctx: &XdpContext, ip: &Ipv6) -> bool {
    let end = ip.end;
    let mut off = ip.off + wire::IPV6_HDR_LEN;
    let mut nh = ip.next_header;
    for _ in 0..MAX_EXT_HEADERS {
        // Each header's offset, and each option's, as values the verifier
        // does not know (see `verifier`): the paths through one header
        // (three lengths, Pad1 or not, two kinds of fragment) then meet at
        // the next one instead of multiplying.
        off = opaque(off as u32) as usize;
        let Some(kind) = wire::ext_header_len_kind(nh) else {
            return false;
        };
        let Some(hdr) = load::<[u8; 4]>(ctx, off, end) else {
            return false;
        };
        let len = match kind {
            ExtLen::Units8 => (usize::from(hdr[1]) + 1) * 8,
            ExtLen::Units4Plus2 => (usize::from(hdr[1]) + 2) * 4,
            ExtLen::Fixed8 => wire::FRAG_HDR_LEN,
        };
        if off + len > end {
            return false;
        }
        if let ExtLen::Fixed8 = kind
            && u16::from_be_bytes([hdr[2], hdr[3]]) >> 3 != 0
        {
            // A non-first fragment: the rest is data.
            return false;
        }
        if nh == wire::IPPROTO_DSTOPTS {
            // Type, length, data; Pad1 (type 0) is one octet alone. An
            // option is read only when three octets of it are there.
            let mut i = 2;
            for _ in 0..MAX_DST_OPTIONS {
                i = opaque(i as u32) as usize;
                if i + 3 > len {
                    break;
                }
                let Some([ty, olen, value]) = load::<[u8; 3]>(ctx, off + i, end) else {
                    return false;
                };
                if ty == wire::OPT_TUNNEL_ENCAP_LIMIT && olen == 1 {
                    return value == 0;
                }
                i += if ty == 0 { 1 } else { usize::from(olen) + 2 };
            }
        }
        nh = hdr[0];
        off += len;
    }
    false
}
