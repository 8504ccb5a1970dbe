//! A small builder of test frames (Ethernet, VLAN tags, IPv6, extension
//! headers, UDP/TCP/ICMPv6) with correct lengths and checksums.
//!
//! Used by the model's unit tests, the program tests, the fuzzers and the
//! benchmarks; it is not used by the data plane.

use crate::wire;
use std::{net::Ipv6Addr, vec::Vec};

/// One IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-Hop Options, `(n + 1) * 8` octets of PadN.
    HopByHop(u8),
    /// Destination Options, `(n + 1) * 8` octets of PadN.
    DestOpts(u8),
    /// Routing header (type 253, experimental, segments left 0), `(n + 1) * 8` octets.
    Routing(u8),
    /// Fragment header: offset in 8-octet units, M flag, identification.
    Fragment {
        /// Fragment offset in 8-octet units.
        offset: u16,
        /// More fragments follow.
        more: bool,
        /// Identification.
        id: u32,
    },
    /// Authentication Header with payload-length field `n` (`(n + 2) * 4` octets), n >= 1.
    Ah(u8),
    /// Mobility header, `(n + 1) * 8` octets.
    Mobility(u8),
    /// Destination Options holding the Tunnel Encapsulation Limit option
    /// (RFC 2473 section 5.1; Linux's ip6tnl adds it by default), 8 octets.
    TunnelEncapLimit(u8),
    /// An SRv6 Segment Routing Header (RFC 8754, routing type 4) of
    /// `segments` segments (2001:db8:5e9::1, ::2, ...) with `left` left.
    Srh {
        /// Number of segments, at least 1.
        segments: u8,
        /// Segments left.
        left: u8,
    },
}

impl Ext {
    /// The next-header value that announces this header.
    pub const fn proto(self) -> u8 {
        match self {
            Ext::HopByHop(_) => wire::IPPROTO_HOPOPTS,
            Ext::DestOpts(_) | Ext::TunnelEncapLimit(_) => wire::IPPROTO_DSTOPTS,
            Ext::Routing(_) | Ext::Srh { .. } => wire::IPPROTO_ROUTING,
            Ext::Fragment { .. } => wire::IPPROTO_FRAGMENT,
            Ext::Ah(_) => wire::IPPROTO_AH,
            Ext::Mobility(_) => wire::IPPROTO_MH,
        }
    }

    fn write(self, next: u8, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Ext::HopByHop(n) | Ext::DestOpts(n) | Ext::Mobility(n) => {
                let len = (usize::from(n) + 1) * 8;
                out.extend_from_slice(&[next, n]);
                // PadN option covering the rest of the header.
                out.extend_from_slice(&[1, (len - 4) as u8]);
                out.resize(start + len, 0);
            }
            Ext::Routing(n) => {
                let len = (usize::from(n) + 1) * 8;
                out.extend_from_slice(&[next, n, 253, 0]);
                out.resize(start + len, 0);
            }
            Ext::TunnelEncapLimit(limit) => {
                // Option 4, length 1, the limit; PadN to 8 octets.
                out.extend_from_slice(&[next, 0, 4, 1, limit, 1, 1, 0]);
            }
            Ext::Srh { segments, left } => {
                let n = segments.max(1);
                out.extend_from_slice(&[next, 2 * n, 4, left, n - 1, 0, 0, 0]);
                for i in 0..n {
                    let seg = 0x2001_0db8_05e9_0000_0000_0000_0000_0000u128 + u128::from(i) + 1;
                    out.extend_from_slice(&seg.to_be_bytes());
                }
            }
            Ext::Fragment { offset, more, id } => {
                let field = (offset << 3) | u16::from(more);
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&field.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
            }
            Ext::Ah(n) => {
                let n = n.max(1);
                let len = (usize::from(n) + 2) * 4;
                out.extend_from_slice(&[next, n, 0, 0]);
                out.extend_from_slice(&0x1000u32.to_be_bytes()); // SPI
                out.extend_from_slice(&1u32.to_be_bytes()); // sequence
                out.resize(start + len, 0);
            }
        }
    }
}

/// The upper-layer part of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// UDP with ports and payload.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: Vec<u8>,
    },
    /// TCP with ports, flags and payload (20-octet header, no options).
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags octet (SYN = 0x02, ACK = 0x10, ...).
        flags: u8,
        /// Payload.
        payload: Vec<u8>,
    },
    /// ICMPv6 with type, code and body (after the checksum).
    Icmpv6 {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Everything after the checksum.
        body: Vec<u8>,
    },
    /// Any other protocol, written as given (no checksum).
    Raw {
        /// Protocol number.
        proto: u8,
        /// Bytes.
        bytes: Vec<u8>,
    },
}

impl L4 {
    fn proto(&self) -> u8 {
        match self {
            L4::Udp { .. } => wire::IPPROTO_UDP,
            L4::Tcp { .. } => wire::IPPROTO_TCP,
            L4::Icmpv6 { .. } => wire::IPPROTO_ICMPV6,
            L4::Raw { proto, .. } => *proto,
        }
    }
}

/// Builds one Ethernet frame carrying IPv6.
#[derive(Clone, Debug)]
pub struct FrameBuilder {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// VLAN tags, outermost first: (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Extension headers, in order.
    pub ext: Vec<Ext>,
    /// Upper layer.
    pub l4: L4,
    /// Writes this payload length instead of the true one (for malformed frames).
    pub payload_len_override: Option<u16>,
}

/// Locally administered MAC used as the default destination.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Locally administered MAC used as the default source.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

impl FrameBuilder {
    /// A UDP datagram from `src`:`sport` to `dst`:`dport`.
    pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::new(
            src,
            dst,
            L4::Udp {
                sport,
                dport,
                payload: payload.to_vec(),
            },
        )
    }

    /// A TCP segment with the given flags.
    pub fn tcp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
                payload: Vec::new(),
            },
        )
    }

    /// A frame with the given upper layer and default everything else.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Self {
        FrameBuilder {
            dst_mac: ROUTER_MAC,
            src_mac: CLIENT_MAC,
            vlans: Vec::new(),
            src,
            dst,
            hop_limit: 64,
            flow_label: 0,
            ext: Vec::new(),
            l4,
            payload_len_override: None,
        }
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut upper = Vec::new();
        let proto = self.l4.proto();
        match &self.l4 {
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let len = (8 + payload.len()) as u16;
                upper.extend_from_slice(&sport.to_be_bytes());
                upper.extend_from_slice(&dport.to_be_bytes());
                upper.extend_from_slice(&len.to_be_bytes());
                upper.extend_from_slice(&[0, 0]);
                upper.extend_from_slice(payload);
            }
            L4::Tcp {
                sport,
                dport,
                flags,
                payload,
            } => {
                upper.extend_from_slice(&sport.to_be_bytes());
                upper.extend_from_slice(&dport.to_be_bytes());
                upper.extend_from_slice(&1u32.to_be_bytes()); // seq
                upper.extend_from_slice(&0u32.to_be_bytes()); // ack
                upper.extend_from_slice(&[5 << 4, *flags]);
                upper.extend_from_slice(&65535u16.to_be_bytes()); // window
                upper.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                upper.extend_from_slice(payload);
            }
            L4::Icmpv6 { ty, code, body } => {
                upper.extend_from_slice(&[*ty, *code, 0, 0]);
                upper.extend_from_slice(body);
            }
            L4::Raw { bytes, .. } => upper.extend_from_slice(bytes),
        }
        let csum_at = match self.l4 {
            L4::Udp { .. } => Some(6),
            L4::Tcp { .. } => Some(16),
            L4::Icmpv6 { .. } => Some(2),
            L4::Raw { .. } => None,
        };
        if let Some(at) = csum_at {
            let sum = l4_checksum(&self.src, &self.dst, proto, &upper);
            let sum = if sum == 0 && proto == wire::IPPROTO_UDP {
                0xffff
            } else {
                sum
            };
            upper[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }

        let mut ext = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(proto, |n| n.proto());
            e.write(next, &mut ext);
        }
        let first = self.ext.first().map_or(proto, |e| e.proto());
        let payload_len = self
            .payload_len_override
            .unwrap_or((ext.len() + upper.len()) as u16);

        let mut f = Vec::with_capacity(64 + ext.len() + upper.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        f.extend_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
        let vtcfl: u32 = (6 << 28) | (self.flow_label & 0xf_ffff);
        f.extend_from_slice(&vtcfl.to_be_bytes());
        f.extend_from_slice(&payload_len.to_be_bytes());
        f.extend_from_slice(&[first, self.hop_limit]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&ext);
        f.extend_from_slice(&upper);
        f
    }
}

/// The Internet checksum of an upper-layer header over the IPv6 pseudo-header (RFC 8200 8.1).
pub fn l4_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, upper: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(upper.len() as u32).to_be_bytes());
    add(&[0, 0, 0, proto]);
    add(upper);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP frame (192.0.2.1 -> 192.0.2.2, documentation addresses).
pub fn ipv4_udp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&wire::ETH_P_IP.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    f.extend_from_slice(&[0x10, 0x00, 0x00, 0x35, 0, 9, 0, 0, b'x']);
    f
}

/// An ARP request frame (who-has 192.0.2.2 tell 192.0.2.1).
pub fn arp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&wire::ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 0, 2, 2]);
    f
}

/// The upper layer of an ICMPv6 error of type `ty` (1 to 4) quoting the IPv6
/// packet inside the Ethernet frame `quoted` (its first `quote_len` bytes
/// after the Ethernet header, all when `None`). The 4-byte field after the
/// checksum is 1280 (the MTU of a Packet Too Big).
pub fn icmpv6_error(ty: u8, quoted: &[u8], quote_len: Option<usize>) -> L4 {
    let ip = quoted.get(crate::wire::ETH_HDR_LEN..).unwrap_or(&[]);
    let n = quote_len.unwrap_or(ip.len()).min(ip.len());
    let mut body = 1280u32.to_be_bytes().to_vec();
    body.extend_from_slice(&ip[..n]);
    L4::Icmpv6 { ty, code: 0, body }
}
