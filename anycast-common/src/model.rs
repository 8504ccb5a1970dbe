//! Reference model of the data plane's verdict, in plain Rust.
//!
//! Written from RFC 8200 (IPv6 and its extension headers), IEEE 802.1Q and
//! the project's documented policy, on byte slices and independently of the
//! eBPF parser, so that tests can compare the two. Policy, in order:
//!
//! 1. A frame that is not IPv6 (after at most [`MAX_VLAN_DEPTH`] VLAN tags)
//!    passes untouched.
//! 2. An IPv6 packet whose fixed header is cut short, whose version is not 6,
//!    whose payload length is 0 (jumbogram) or runs past the frame, passes:
//!    the kernel judges (and drops) what XDP cannot read.
//! 3. A source that is anycast is not allowed on an `edge` interface, nor on
//!    a `member` interface unless it comes from a registered member (no
//!    members can be registered yet). Such a packet is dropped, or counted and
//!    passed when the interface is in monitor mode (`count`).
//! 4. A destination that is anycast is counted for its group, once the
//!    extension-header chain up to the transport ports parses within bounds;
//!    otherwise it passes as unparsed.
//! 5. Everything else passes.

use crate::{
    GlobalStat, IfaceRole, MAX_EXT_HEADERS, MAX_VLAN_DEPTH, SourceAction,
    wire::{self, ExtLen},
};

/// What the program returns for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// XDP_PASS: on to the kernel's stack.
    Pass,
    /// XDP_DROP.
    Drop,
}

impl Verdict {
    /// The XDP action code (`XDP_DROP` = 1, `XDP_PASS` = 2).
    pub const fn xdp_action(self) -> u32 {
        match self {
            Verdict::Drop => 1,
            Verdict::Pass => 2,
        }
    }
}

/// Full outcome of one frame: verdict and the counters it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The one global verdict counter this frame adds to.
    pub stat: GlobalStat,
    /// Group of a disallowed anycast source (dropped, or counted in monitor mode).
    pub source_group: Option<u32>,
    /// The disallowed source was only counted (monitor mode); adds to
    /// [`GlobalStat::AnycastSourceCounted`] besides `stat`.
    pub source_counted: bool,
    /// Group of an anycast destination that was counted as destined.
    pub dest_group: Option<u32>,
}

impl Outcome {
    const fn pass(stat: GlobalStat) -> Self {
        Outcome {
            verdict: Verdict::Pass,
            stat,
            source_group: None,
            source_counted: false,
            dest_group: None,
        }
    }
}

/// The interface's settings the verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// The interface's role.
    pub role: IfaceRole,
    /// What to do with a disallowed anycast source.
    pub source_action: SourceAction,
}

/// The upper-layer header found at the end of the extension-header chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Upper-layer protocol number (or the last next-header value for a
    /// non-first fragment, ESP or No Next Header).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the frame.
    pub offset: usize,
    /// The packet carries a Fragment header.
    pub fragment: bool,
    /// Source and destination ports, when `proto` has them and this is not
    /// a non-first fragment.
    pub ports: Option<(u16, u16)>,
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
    if payload_len == 0 || end > frame.len() {
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
    })
}

/// Walks the extension-header chain (at most [`MAX_EXT_HEADERS`]) within the
/// IPv6 payload. `None` when the chain is longer or runs past the payload, or
/// when a transport header with ports is cut short.
pub fn parse_transport(frame: &[u8], ip: &Ipv6Header) -> Option<Transport> {
    let payload = frame.get(..ip.end)?;
    let mut off = ip.offset + wire::IPV6_HDR_LEN;
    let mut nh = ip.next_header;
    let mut fragment = false;
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
            fragment = true;
            let offset_field = be16(payload, off + 2)? >> 3;
            if offset_field != 0 {
                // A non-first fragment: the upper-layer header is elsewhere.
                return Some(Transport {
                    proto: next,
                    offset: off + len,
                    fragment,
                    ports: None,
                });
            }
        }
        off += len;
        nh = next;
    }
    let ports = if wire::has_ports(nh) {
        Some((be16(payload, off)?, be16(payload, off + 2)?))
    } else {
        None
    };
    Some(Transport {
        proto: nh,
        offset: off,
        fragment,
        ports,
    })
}

/// The verdict for `frame` arriving on `iface`, where `lookup` maps an
/// address to the id of the anycast group it belongs to (exact or prefix).
pub fn classify(frame: &[u8], iface: Iface, lookup: &dyn Fn(&[u8; 16]) -> Option<u32>) -> Outcome {
    let ip = match parse_l3(frame) {
        Ok(ip) => ip,
        Err(L3Error::NotIpv6) => return Outcome::pass(GlobalStat::NonIpv6Passed),
        Err(L3Error::Malformed) => return Outcome::pass(GlobalStat::MalformedPassed),
    };
    let mut out = Outcome::pass(GlobalStat::UnicastPassed);
    if let Some(group) = lookup(&ip.src) {
        // Both roles refuse it: an edge always, a member interface because no
        // member is registered that could vouch for it.
        let _ = iface.role;
        out.source_group = Some(group);
        match iface.source_action {
            SourceAction::Drop => {
                out.verdict = Verdict::Drop;
                out.stat = GlobalStat::AnycastSourceDropped;
                return out;
            }
            SourceAction::Count => out.source_counted = true,
        }
    }
    if let Some(group) = lookup(&ip.dst) {
        if parse_transport(frame, &ip).is_some() {
            out.stat = GlobalStat::AnycastDestined;
            out.dest_group = Some(group);
        } else {
            out.stat = GlobalStat::UnparsedPassed;
        }
    }
    out
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::frame::{Ext, FrameBuilder};
    use std::{net::Ipv6Addr, vec};

    const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
    const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);

    fn lookup(a: &[u8; 16]) -> Option<u32> {
        (*a == ANY.octets()).then_some(7)
    }

    const EDGE: Iface = Iface {
        role: IfaceRole::Edge,
        source_action: SourceAction::Drop,
    };

    #[test]
    fn anycast_source_dropped_on_edge() {
        let f = FrameBuilder::udp(ANY, SERVER, 53, 4000, b"hi").build();
        let o = classify(&f, EDGE, &lookup);
        assert_eq!(o.verdict, Verdict::Drop);
        assert_eq!(o.stat, GlobalStat::AnycastSourceDropped);
        assert_eq!(o.source_group, Some(7));
    }

    #[test]
    fn monitor_mode_counts_and_passes() {
        let f = FrameBuilder::udp(ANY, SERVER, 53, 4000, b"hi").build();
        let iface = Iface {
            source_action: SourceAction::Count,
            ..EDGE
        };
        let o = classify(&f, iface, &lookup);
        assert_eq!(o.verdict, Verdict::Pass);
        assert!(o.source_counted);
        assert_eq!(o.stat, GlobalStat::UnicastPassed);
    }

    #[test]
    fn anycast_destination_counted_through_ext_chain() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
        b.ext = vec![Ext::HopByHop(0); 8];
        let f = b.build();
        let o = classify(&f, EDGE, &lookup);
        assert_eq!(o.stat, GlobalStat::AnycastDestined);
        assert_eq!(o.dest_group, Some(7));
        let ip = parse_l3(&f).expect("ipv6");
        let t = parse_transport(&f, &ip).expect("transport");
        assert_eq!(t.ports, Some((4000, 53)));
    }

    #[test]
    fn chain_longer_than_bound_is_unparsed() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
        b.ext = vec![Ext::DestOpts(0); MAX_EXT_HEADERS + 1];
        let o = classify(&b.build(), EDGE, &lookup);
        assert_eq!(o.stat, GlobalStat::UnparsedPassed);
        assert_eq!(o.verdict, Verdict::Pass);
    }

    #[test]
    fn every_truncation_passes() {
        let mut b = FrameBuilder::udp(ANY, ANY, 4000, 53, b"payload");
        b.ext = vec![
            Ext::HopByHop(1),
            Ext::Fragment {
                offset: 0,
                more: true,
                id: 9,
            },
        ];
        let f = b.build();
        for len in 0..f.len() {
            let o = classify(&f[..len], EDGE, &lookup);
            assert_eq!(o.verdict, Verdict::Pass, "truncated to {len}");
        }
        assert_eq!(classify(&f, EDGE, &lookup).verdict, Verdict::Drop);
    }

    #[test]
    fn non_first_fragment_has_no_ports() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"data");
        b.ext = vec![Ext::Fragment {
            offset: 8,
            more: false,
            id: 1,
        }];
        let f = b.build();
        let ip = parse_l3(&f).expect("ipv6");
        let t = parse_transport(&f, &ip).expect("transport");
        assert!(t.fragment);
        assert_eq!(t.ports, None);
    }

    #[test]
    fn qinq_and_ipv4() {
        let mut b = FrameBuilder::udp(ANY, SERVER, 1, 2, b"");
        b.vlans = vec![(wire::ETH_P_8021AD, 100), (wire::ETH_P_8021Q, 200)];
        assert_eq!(classify(&b.build(), EDGE, &lookup).verdict, Verdict::Drop);
        b.vlans.push((wire::ETH_P_8021Q, 300));
        assert_eq!(
            classify(&b.build(), EDGE, &lookup).stat,
            GlobalStat::NonIpv6Passed
        );
        let v4 = crate::frame::ipv4_udp_frame();
        assert_eq!(classify(&v4, EDGE, &lookup).stat, GlobalStat::NonIpv6Passed);
    }
}
