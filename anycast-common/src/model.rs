//! Reference model of the data plane, in plain Rust (std only).
//!
//! Written from RFC 8200 (IPv6 and its extension headers), RFC 2473 (IPv6
//! tunnelling), IEEE 802.1Q and the project's documented policy, on byte
//! slices and independently of the eBPF code, so that tests can compare the
//! two: verdict, bytes out, and every counter. Policy, in order:
//!
//! 1. A frame that is not IPv6 (after at most [`MAX_VLAN_DEPTH`] VLAN tags)
//!    passes untouched.
//! 2. An IPv6 packet whose fixed header is cut short, whose version is not 6,
//!    whose payload length runs past the frame, or is 0 with a Hop-by-Hop
//!    Options header next (a jumbogram, RFC 2675 section 3), passes: the
//!    kernel judges (and drops) what XDP cannot read. Payload length 0 with
//!    any other next header is an empty payload (RFC 8200 section 3).
//! 3. An anycast source is refused on an `edge` interface; on a `member`
//!    interface it is accepted only from a registered member of its group
//!    (ingress interface and source MAC), or inside IPv6-in-IPv6 whose outer
//!    source is a registered encapsulated member. Refused: dropped, or
//!    counted and passed in monitor mode (`count`).
//! 4. An anycast destination from a source no router forwards (the
//!    unspecified address and loopback, RFC 4291 sections 2.5.2 and 2.5.3;
//!    multicast, 2.7; IPv4-mapped, RFC 6890 section 2.2.3; site-local,
//!    RFC 3879 section 4) is dropped; from a link-local source (RFC 4291
//!    section 2.5.6) it passes to the kernel, which delivers it if the
//!    address is its own and otherwise answers Destination Unreachable
//!    (RFC 4443 section 3.1). Neither depends on the interface's role.
//! 5. An anycast destination whose extension-header chain does not parse
//!    within bounds passes (`unparsed`). Otherwise: hop limit 1 or 0 passes
//!    (the kernel answers Time Exceeded); link-scoped ICMPv6 (Neighbor
//!    Discovery, MLD and the like: valid only with hop limit 255 or from a
//!    link-local source) passes to the kernel; an ICMPv6 error (types 0 to
//!    127, RFC 4443 section 2.1) goes by the flow it quotes, and passes when
//!    its quote is shorter than an IPv6 header (no flow to name); with no
//!    live member the group's fallback applies; else the flow hash picks one
//!    of the live members
//!    tied at the lowest metric (ordered by id): on-link, new MACs, VLAN tags
//!    removed, hop limit minus one, redirect; routed, a FIB lookup, then an
//!    outer IPv6 header (RFC 2473) and redirect, or a pass when the route is
//!    missing or the packet would be too big.
//! 6. Everything else passes.
//!
//! Only a packet without a Fragment header, or with one at offset 0, has an
//! upper-layer header (RFC 8200 section 4.5): a later fragment is data.

use std::vec::Vec;

use crate::{
    Affinity, ENCAP_HOP_LIMIT, Fallback, FlowEntry, FlowKey, GlobalStat, GroupInfo, GroupStat,
    IfaceRole, MAX_EXT_HEADERS, MAX_VLAN_DEPTH, MemberInfo, MemberKind, MemberSourceKey,
    MemberState, SourceAction, hash, maglev,
    wire::{self, ExtLen},
};

/// What the program returns for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// XDP_PASS: on to the kernel's stack.
    Pass,
    /// XDP_DROP.
    Drop,
    /// XDP_REDIRECT out of this interface.
    Redirect(u32),
}

impl Verdict {
    /// The XDP action code (`XDP_DROP` = 1, `XDP_PASS` = 2, `XDP_REDIRECT` = 4).
    pub const fn xdp_action(self) -> u32 {
        match self {
            Verdict::Drop => 1,
            Verdict::Pass => 2,
            Verdict::Redirect(_) => 4,
        }
    }
}

/// Which counter table a counter lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `GLOBAL_STATS`.
    Global,
    /// `GROUP_STATS[id]`.
    Group(u32),
    /// `MEMBER_STATS[id]`.
    Member(u32),
}

/// One counter change: scope, counter name, amount.
pub type Delta = (Scope, &'static str, u64);

/// Full outcome of one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The frame as the program leaves it.
    pub frame: Vec<u8>,
    /// The one final global counter.
    pub stat: GlobalStat,
    /// Every counter change, the final one included.
    pub deltas: Vec<Delta>,
    /// The flow-table entry the packet leaves behind (recorded or refreshed):
    /// key and member.
    pub flow: Option<(FlowKey, u32)>,
}

/// The interface's settings the verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// The interface's role.
    pub role: IfaceRole,
    /// What to do with a disallowed anycast source.
    pub source_action: SourceAction,
    /// Its interface index.
    pub ifindex: u32,
}

/// What the kernel's FIB says about a route to an encapsulated member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fib {
    /// Resolved: egress, its MAC, the next hop's MAC and the source address to use.
    Found {
        /// Egress interface.
        ifindex: u32,
        /// Egress MAC.
        smac: [u8; 6],
        /// Next-hop MAC.
        dmac: [u8; 6],
        /// Source address (the tunnel source, or the one the kernel picked).
        src: [u8; 16],
    },
    /// The packet would exceed the route's MTU.
    FragNeeded,
    /// No route, no neighbour, or no source address.
    Miss,
}

/// The configuration the model reads: the same facts the maps hold,
/// expressed directly.
pub trait Config {
    /// Group of an anycast address (exact first, then longest prefix).
    fn anycast_group(&self, addr: &[u8; 16]) -> Option<u32>;
    /// A group's settings.
    fn group(&self, id: u32) -> Option<GroupInfo>;
    /// Every member of a group, with its id.
    fn members(&self, group: u32) -> Vec<(u32, MemberInfo)>;
    /// Whether a registered member stands behind this source key.
    fn member_source(&self, key: &MemberSourceKey) -> bool;
    /// A FIB lookup for `tot_len` bytes to `dst` from `src` (None: let the kernel choose).
    fn fib(&self, src: Option<[u8; 16]>, dst: &[u8; 16], tot_len: usize) -> Fib;
    /// The flow table's entry for `key`, if any.
    fn flow(&self, key: &FlowKey) -> Option<FlowEntry>;
    /// The time now, on the flow table's clock (CLOCK_MONOTONIC, ns).
    fn now_ns(&self) -> u64;
    /// Whether the flood guard lets one more new flow be recorded.
    fn flood_allows(&self) -> bool {
        true
    }
}

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
fn walk(payload: &[u8], mut off: usize, mut nh: u8) -> Option<Transport> {
    let mut fragment = false;
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

/// What the scope of a source address lets a router do with a packet to
/// an anycast address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceScope {
    /// A source like any other: the packet may be forwarded.
    Forwardable,
    /// Link-local (fe80::/10, RFC 4291 section 2.5.6): never forwarded to
    /// another link; the kernel delivers it if the destination is its own,
    /// or answers Destination Unreachable, beyond scope of source address
    /// (RFC 4443 section 3.1, code 2).
    LinkLocal,
    /// A source no router forwards: the unspecified address (RFC 4291
    /// section 2.5.2), loopback (2.5.3), multicast (2.7), IPv4-mapped
    /// (RFC 6890 section 2.2.3: not forwardable), site-local (fec0::/10,
    /// RFC 3879 section 4: routers prevent its routing by default).
    Invalid,
}

/// The scope of source address `a`.
pub fn source_scope(a: &[u8; 16]) -> SourceScope {
    let v = u128::from_be_bytes(*a);
    let unspecified_or_loopback = v <= 1;
    let v4_mapped = v >> 32 == 0xffff;
    let multicast = a[0] == 0xff;
    let site_local = v >> 118 == 0b11_1111_1011;
    if unspecified_or_loopback || v4_mapped || multicast || site_local {
        SourceScope::Invalid
    } else if v >> 118 == 0b11_1111_1010 {
        SourceScope::LinkLocal
    } else {
        SourceScope::Forwardable
    }
}

/// ICMPv6 types that never leave their link: MLD (130 to 132, RFC 2710
/// section 3: link-local source, hop limit 1; 143, RFC 3810 section 5),
/// Neighbor Discovery (133 to 137, RFC 4861 sections 6.1, 7.1 and 8.1:
/// valid only with hop limit 255), Inverse ND (141, 142, RFC 3122), SEND's
/// certification path messages (148, 149, RFC 3971 section 6.4) and
/// Multicast Router Discovery (151 to 153, RFC 4286 section 3).
pub fn link_scoped_icmp(ty: u8) -> bool {
    matches!(ty, 130..=137 | 141..=143 | 148 | 149 | 151..=153)
}

/// An ICMPv6 Echo Request or Reply (RFC 4443 sections 4.1, 4.2): the reply
/// carries the identifier of the request it answers.
fn echo(ty: u8) -> bool {
    ty == 128 || ty == 129
}

/// The flow a packet is steered by, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOf {
    /// The flow's key and hash, and whether it was built from the quote of
    /// an ICMPv6 error: then it is the reverse of the quoted packet's flow
    /// (the quoted packet went member -> client), and it is never recorded.
    Flow(FlowKey, u32, bool),
    /// Link-scoped ICMPv6 ([`link_scoped_icmp`]): for the kernel.
    LinkScoped,
    /// An ICMPv6 error whose quote is shorter than an IPv6 header: it names
    /// no flow, and no member can be chosen for it.
    Unmatched,
}

/// The flow of a packet (see [`crate::hash`]): by protocol and ports for
/// the protocols that have them ([`ports_first`]), by identifier for an
/// ICMPv6 echo, by flow label otherwise; a fragment, first or not, by
/// label, so that all the fragments of a datagram agree (only the first
/// carries the ports); an atomic fragment is a whole packet (RFC 6946
/// section 4), keyed as if it had no Fragment header. An ICMPv6 error (types 0
/// to 127, RFC 4443 section 2.1; unknown ones too, 2.4 (a)) by the reverse
/// of the flow it quotes, walked like the packet's own headers.
pub fn flow_of(frame: &[u8], ip: &Ipv6Header, t: &Transport, group: u32) -> FlowOf {
    let payload = &frame[..ip.end];
    // Only a first fragment has an upper-layer header (RFC 8200 section 4.5).
    let icmp_type = (t.proto == wire::IPPROTO_ICMPV6 && t.upper)
        .then(|| payload.get(t.offset..t.offset + 2).map(|b| b[0]))
        .flatten();
    let mut id = match (t.fragment, t.ports) {
        (false, Some((s, d))) => {
            let (s, d) = (s.to_be_bytes(), d.to_be_bytes());
            Some([s[0], s[1], d[0], d[1]])
        }
        _ => None,
    };
    match icmp_type {
        Some(ty) if ty < 128 => return quoted_flow(payload, t.offset + 8, group),
        Some(ty) if link_scoped_icmp(ty) => return FlowOf::LinkScoped,
        Some(ty) if echo(ty) && !t.fragment => id = echo_id(payload, t.offset),
        _ => {}
    }
    let (proto, id) = ipsec_key(t, t.proto, id);
    let (k, h) = key_and_hash(group, ip.src, ip.dst, proto, id, ip.flow_label);
    FlowOf::Flow(k, h, false)
}

/// IKE's ports (RFC 7296 section 2; 4500: NAT traversal, RFC 3948
/// section 2.2, which also carries ESP in UDP).
const IKE_PORTS: [u16; 2] = [500, 4500];

/// The key of IPsec traffic (RFC 4301): ESP (RFC 4303), anything under an
/// Authentication Header (RFC 4302) and IKE (UDP to port 500 or 4500) of
/// one client and anycast address are one flow, keyed as ESP with a zero
/// tail: every security association of the pair, and the IKE exchange
/// that made it, reach one member, which alone holds their keys. (Keying
/// on the SPI would keep one association together, but its IKE exchange,
/// keyed on ports, on another member three times in four.) A fragment is
/// keyed by its label, as any other. Anything else: `(proto, id)`.
fn ipsec_key(t: &Transport, proto: u8, id: Option<[u8; 4]>) -> (u8, Option<[u8; 4]>) {
    let ike = proto == wire::IPPROTO_UDP
        && id.is_some_and(|[_, _, d0, d1]| IKE_PORTS.contains(&u16::from_be_bytes([d0, d1])));
    if !t.fragment && (t.ah || proto == wire::IPPROTO_ESP || ike) {
        (wire::IPPROTO_ESP, Some([0; 4]))
    } else {
        (proto, id)
    }
}

/// The identifier of the ICMPv6 echo message at `off`, as a key's tail:
/// `None` when its 8-byte header is cut short.
fn echo_id(payload: &[u8], off: usize) -> Option<[u8; 4]> {
    let h = payload.get(off..off + 8)?;
    Some([h[4], h[5], 0, 0])
}

/// The reverse of the flow of the packet quoted from `q` on by an ICMPv6
/// error (the member's packet; the flow is client -> member).
fn quoted_flow(payload: &[u8], q: usize, group: u32) -> FlowOf {
    let Some(head) = payload.get(q..q + wire::IPV6_HDR_LEN) else {
        return FlowOf::Unmatched;
    };
    let mut qsrc = [0u8; 16];
    let mut qdst = [0u8; 16];
    qsrc.copy_from_slice(&head[8..24]);
    qdst.copy_from_slice(&head[24..40]);
    let label = u32::from_be_bytes([0, head[1] & 0x0f, head[2], head[3]]);
    let qt = walk(payload, q + wire::IPV6_HDR_LEN, head[6]);
    let proto = qt.map_or(head[6], |t| t.proto);
    // Ports (reversed) and echo identifiers identify the flow in the quote
    // too, a first fragment's included; a later fragment has neither.
    let id = match qt {
        Some(t) if !t.upper => None,
        Some(Transport {
            ports: Some((s, d)),
            ..
        }) => {
            let (s, d) = (s.to_be_bytes(), d.to_be_bytes());
            Some([d[0], d[1], s[0], s[1]])
        }
        Some(t) if t.proto == wire::IPPROTO_ICMPV6 => payload
            .get(t.offset)
            .filter(|ty| echo(**ty))
            .and_then(|_| echo_id(payload, t.offset)),
        _ => None,
    };
    let (proto, id) = match &qt {
        Some(t) => ipsec_key(t, proto, id),
        None => (proto, id),
    };
    let (k, h) = key_and_hash(group, qdst, qsrc, proto, id, label);
    FlowOf::Flow(k, h, true)
}

fn key_and_hash(
    group: u32,
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    ports: Option<[u8; 4]>,
    label: u32,
) -> (FlowKey, u32) {
    let (hs, hd) = hash::addr_hashes(&src, &dst);
    let h = hash::flow_hash(hs, hd, hash::key_tail(proto, ports, label));
    let key = FlowKey {
        group_id: group,
        src,
        dst,
        proto: if ports.is_some() { proto } else { 0 },
        by_label: u8::from(ports.is_none()),
        _pad: [0; 2],
        tail: ports.unwrap_or((label & 0x000f_ffff).to_be_bytes()),
    };
    (key, h)
}

struct Acc {
    deltas: Vec<Delta>,
    flow: Option<(FlowKey, u32)>,
}

impl Acc {
    fn global(&mut self, s: GlobalStat) {
        self.deltas.push((Scope::Global, s.name(), 1));
    }
    fn group(&mut self, g: u32, s: GroupStat, n: u64) {
        self.deltas.push((Scope::Group(g), s.name(), n));
    }
}

/// The outcome for `frame` arriving on `iface` under `config`.
pub fn classify(frame: &[u8], iface: Iface, config: &dyn Config) -> Outcome {
    let mut acc = Acc {
        deltas: Vec::new(),
        flow: None,
    };
    let (verdict, out, stat) = run(frame, iface, config, &mut acc);
    acc.global(stat);
    acc.deltas.sort();
    Outcome {
        verdict,
        frame: out.unwrap_or_else(|| frame.to_vec()),
        stat,
        deltas: acc.deltas,
        flow: acc.flow,
    }
}

fn run(
    frame: &[u8],
    iface: Iface,
    config: &dyn Config,
    acc: &mut Acc,
) -> (Verdict, Option<Vec<u8>>, GlobalStat) {
    let pass = |s| (Verdict::Pass, None, s);
    let ip = match parse_l3(frame) {
        Ok(ip) => ip,
        Err(L3Error::NotIpv6) => return pass(GlobalStat::NonIpv6Passed),
        Err(L3Error::Malformed) => return pass(GlobalStat::MalformedPassed),
    };
    if let Some(refused) = source_rule(frame, &ip, iface, config, acc) {
        return refused;
    }
    let Some(group) = config.anycast_group(&ip.dst) else {
        return pass(GlobalStat::UnicastPassed);
    };
    // The outcome of an anycast-destined packet, with its group counter.
    macro_rules! done {
        ($v:expr, $out:expr, $s:expr, $gs:expr $(,)?) => {{
            acc.group(group, $gs, 1);
            ($v, $out, $s)
        }};
    }
    let destined = |acc: &mut Acc| {
        acc.deltas
            .push((Scope::Global, GlobalStat::AnycastDestined.name(), 1));
        acc.group(group, GroupStat::DestinedPackets, 1);
        acc.group(group, GroupStat::DestinedBytes, frame.len() as u64);
    };
    // Before the extension headers: no chain can carry such a source past it.
    match source_scope(&ip.src) {
        SourceScope::Forwardable => {}
        SourceScope::Invalid => {
            destined(acc);
            return done!(
                Verdict::Drop,
                None,
                GlobalStat::InvalidSourceDropped,
                GroupStat::InvalidSourceDrops,
            );
        }
        SourceScope::LinkLocal => {
            destined(acc);
            return done!(
                Verdict::Pass,
                None,
                GlobalStat::LinkScopePassed,
                GroupStat::LinkScopePassed,
            );
        }
    }
    let Some(t) = parse_transport(frame, &ip) else {
        return pass(GlobalStat::UnparsedPassed);
    };
    destined(acc);
    if ip.hop_limit <= 1 {
        return done!(
            Verdict::Pass,
            None,
            GlobalStat::HopLimitPassed,
            GroupStat::HopLimitPassed,
        );
    }
    let info = config.group(group).unwrap_or_else(GroupInfo::zeroed_value);
    let fallback = Fallback::from_u8(info.fallback);
    let (key, h, icmp_error) = match flow_of(frame, &ip, &t, group) {
        FlowOf::Flow(key, h, icmp_error) => (key, h, icmp_error),
        FlowOf::LinkScoped => {
            return done!(
                Verdict::Pass,
                None,
                GlobalStat::LinkScopePassed,
                GroupStat::LinkScopePassed,
            );
        }
        FlowOf::Unmatched => {
            return done!(
                Verdict::Pass,
                None,
                GlobalStat::IcmpErrorsPassed,
                GroupStat::IcmpErrorsPassed,
            );
        }
    };
    let members = config.members(group);
    let affinity = Affinity::from_u8(info.affinity) == Affinity::Flow;
    let now = config.now_ns();
    let entry = if affinity { config.flow(&key) } else { None };
    let held = if affinity {
        entry.and_then(|e| {
            let alive = now.saturating_sub(e.last_seen_ns) <= info.flow_timeout_ns(key.proto);
            let valid = members.iter().any(|(id, m)| {
                *id == e.member_id
                    && m.kind != MemberKind::None as u8
                    && m.up != MemberState::Down as u8
            });
            (alive && valid).then_some(e.member_id)
        })
    } else {
        None
    };
    let (id, flow_stat) = match held {
        Some(id) => {
            acc.flow = Some((key, id));
            (id, Some((GlobalStat::FlowHits, GroupStat::FlowHits)))
        }
        None => {
            let size = info.maglev_size();
            let table = maglev::table_for(&members, size);
            let id = table.get((h % size) as usize).copied().unwrap_or(0);
            if id == 0 {
                return match fallback {
                    Fallback::Pass => done!(
                        Verdict::Pass,
                        None,
                        GlobalStat::FallbackPassed,
                        GroupStat::FallbackPassed,
                    ),
                    Fallback::Drop => done!(
                        Verdict::Drop,
                        None,
                        GlobalStat::FallbackDropped,
                        GroupStat::FallbackDropped,
                    ),
                };
            }
            let stat = if !affinity || icmp_error {
                None
            } else if config.flood_allows() {
                acc.flow = Some((key, id));
                if entry.is_none() {
                    acc.deltas
                        .push((Scope::Global, GlobalStat::FlowEntriesCreated.name(), 1));
                }
                Some((GlobalStat::FlowMisses, GroupStat::FlowMisses))
            } else {
                Some((GlobalStat::FloodBypasses, GroupStat::FloodBypasses))
            };
            (id, stat)
        }
    };
    if let Some((g, gs)) = flow_stat {
        acc.deltas.push((Scope::Global, g.name(), 1));
        acc.group(group, gs, 1);
    }
    let Some((_, m)) = members.iter().find(|(i, _)| *i == id) else {
        return done!(
            Verdict::Pass,
            None,
            GlobalStat::FallbackPassed,
            GroupStat::FallbackPassed,
        );
    };
    // The inner packet, from its IPv6 header to the end of the frame, with
    // the hop limit lowered: what every redirect sends on.
    let mut inner = frame[ip.offset..].to_vec();
    inner[7] = ip.hop_limit - 1;
    let (verdict, out) = match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => {
            let mut out = Vec::with_capacity(14 + inner.len());
            out.extend_from_slice(&m.mac);
            out.extend_from_slice(&m.src_mac);
            out.extend_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
            out.extend_from_slice(&inner);
            (Verdict::Redirect(m.ifindex), out)
        }
        MemberKind::Encap => {
            // RFC 2473 section 5.1: the entry point discards a packet whose
            // limit is 0 (and sends a Parameter Problem): the kernel does.
            if encap_limit(frame, &ip) == Some(0) {
                return done!(
                    Verdict::Pass,
                    None,
                    GlobalStat::EncapLimitPassed,
                    GroupStat::EncapLimitPassed,
                );
            }
            let src = (info.has_tunnel_source != 0).then_some(info.tunnel_source);
            let inner_len = ip.end - ip.offset;
            let (ifindex, smac, dmac, src) = match config.fib(src, &m.addr, inner_len + 40) {
                Fib::Found {
                    ifindex,
                    smac,
                    dmac,
                    src,
                } => (ifindex, smac, dmac, src),
                Fib::FragNeeded => {
                    return done!(
                        Verdict::Pass,
                        None,
                        GlobalStat::TooBigPassed,
                        GroupStat::TooBigPassed,
                    );
                }
                Fib::Miss => {
                    return done!(
                        Verdict::Pass,
                        None,
                        GlobalStat::FibMissPassed,
                        GroupStat::FibMissPassed,
                    );
                }
            };
            let mut out = Vec::with_capacity(54 + inner.len());
            out.extend_from_slice(&dmac);
            out.extend_from_slice(&smac);
            out.extend_from_slice(&wire::ETH_P_IPV6.to_be_bytes());
            let class = u32::from(ip.traffic_class) << 20;
            let vtcfl = (6u32 << 28) | class | (h & 0x000f_ffff);
            out.extend_from_slice(&vtcfl.to_be_bytes());
            out.extend_from_slice(&(inner_len as u16).to_be_bytes());
            out.extend_from_slice(&[wire::IPPROTO_IPV6, ENCAP_HOP_LIMIT]);
            out.extend_from_slice(&src);
            out.extend_from_slice(&m.addr);
            out.extend_from_slice(&inner);
            (Verdict::Redirect(ifindex), out)
        }
        MemberKind::None => {
            return done!(
                Verdict::Pass,
                None,
                GlobalStat::FallbackPassed,
                GroupStat::FallbackPassed,
            );
        }
    };
    let r = done!(
        verdict,
        Some(out),
        GlobalStat::Redirected,
        GroupStat::Redirected,
    );
    acc.deltas.push((Scope::Member(id), "packets", 1));
    acc.deltas
        .push((Scope::Member(id), "bytes", frame.len() as u64));
    if icmp_error {
        acc.deltas
            .push((Scope::Global, GlobalStat::IcmpErrorsSteered.name(), 1));
        acc.group(group, GroupStat::IcmpErrorsSteered, 1);
    }
    r
}

/// The source rule (step 3). `Some` when the packet is dropped.
fn source_rule(
    frame: &[u8],
    ip: &Ipv6Header,
    iface: Iface,
    config: &dyn Config,
    acc: &mut Acc,
) -> Option<(Verdict, Option<Vec<u8>>, GlobalStat)> {
    let (group, key, tunnelled) = if let Some(group) = config.anycast_group(&ip.src) {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&frame[6..12]);
        let key = MemberSourceKey {
            group_id: group,
            ifindex: iface.ifindex,
            mac,
            _pad: [0; 2],
            addr: [0; 16],
        };
        (group, key, false)
    } else if let Some(inner) = tunnelled_source(frame, ip) {
        // IPv6-in-IPv6 (after any extension headers): the inner source is
        // a source too. On a member interface an encapsulated member may
        // answer from the anycast address; on an edge interface a router
        // that decapsulates would let the spoof in.
        let group = config.anycast_group(&inner)?;
        let key = MemberSourceKey {
            group_id: group,
            ifindex: 0,
            mac: [0; 6],
            _pad: [0; 2],
            addr: ip.src,
        };
        (group, key, true)
    } else {
        return None;
    };
    if iface.role == IfaceRole::Member && config.member_source(&key) {
        acc.deltas
            .push((Scope::Global, GlobalStat::MemberSourcePassed.name(), 1));
        acc.group(group, GroupStat::MemberSourcePassed, 1);
        return None;
    }
    match iface.source_action {
        SourceAction::Drop => {
            let (s, gs) = match iface.role {
                IfaceRole::Edge if tunnelled => (
                    GlobalStat::TunnelledSourceDropped,
                    GroupStat::TunnelledSourceDrops,
                ),
                IfaceRole::Edge => (
                    GlobalStat::AnycastSourceDropped,
                    GroupStat::AnycastSourceDrops,
                ),
                IfaceRole::Member => (GlobalStat::SpoofDropped, GroupStat::SpoofDrops),
            };
            acc.group(group, gs, 1);
            Some((Verdict::Drop, None, s))
        }
        SourceAction::Count => {
            acc.deltas
                .push((Scope::Global, GlobalStat::AnycastSourceCounted.name(), 1));
            acc.group(group, GroupStat::AnycastSourceCounted, 1);
            None
        }
    }
}

/// The inner source of IPv6-in-IPv6: next header 41 at the end of the
/// extension-header chain (not past the walk's bound, not in a non-first
/// fragment), then an IPv6 header that is complete, version 6, no
/// jumbogram, and whose payload fits inside the outer one.
fn tunnelled_source(frame: &[u8], ip: &Ipv6Header) -> Option<[u8; 16]> {
    let t = parse_transport(frame, ip)?;
    if t.proto != wire::IPPROTO_IPV6 || !t.upper {
        return None;
    }
    let off = t.offset;
    let hdr = frame.get(off..off + wire::IPV6_HDR_LEN)?;
    let plen = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    let jumbogram = plen == 0 && hdr[6] == wire::IPPROTO_HOPOPTS;
    if hdr[0] >> 4 != 6 || jumbogram || off + wire::IPV6_HDR_LEN + plen > ip.end {
        return None;
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&hdr[8..24]);
    Some(src)
}

impl GroupInfo {
    fn zeroed_value() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Ext, FrameBuilder};
    use std::{net::Ipv6Addr, vec};

    const ANY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 2);
    const SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 2);

    /// One group (7) holding `ANY`, with the given members.
    struct OneGroup(Vec<(u32, MemberInfo)>);

    impl Config for OneGroup {
        fn anycast_group(&self, a: &[u8; 16]) -> Option<u32> {
            (*a == ANY.octets()).then_some(7)
        }
        fn group(&self, id: u32) -> Option<GroupInfo> {
            (id == 7).then(GroupInfo::zeroed_value)
        }
        fn members(&self, group: u32) -> Vec<(u32, MemberInfo)> {
            self.0
                .iter()
                .copied()
                .filter(|(_, m)| m.group_id == group)
                .collect()
        }
        fn member_source(&self, key: &MemberSourceKey) -> bool {
            self.0
                .iter()
                .any(|(_, m)| m.mac == key.mac && key.ifindex == m.ifindex)
        }
        fn fib(&self, _: Option<[u8; 16]>, _: &[u8; 16], _: usize) -> Fib {
            Fib::Miss
        }
        fn flow(&self, _: &FlowKey) -> Option<FlowEntry> {
            None
        }
        fn now_ns(&self) -> u64 {
            0
        }
    }

    fn l2_member(metric: u32, mac_last: u8) -> MemberInfo {
        let mut m: MemberInfo = bytemuck::Zeroable::zeroed();
        m.group_id = 7;
        m.metric = metric;
        m.kind = MemberKind::L2 as u8;
        m.up = 1;
        m.ifindex = 3;
        m.mac = [2, 0, 0, 0, 0, mac_last];
        m.src_mac = [2, 0, 0, 0, 1, 1];
        m
    }

    const EDGE: Iface = Iface {
        role: IfaceRole::Edge,
        source_action: SourceAction::Drop,
        ifindex: 2,
    };

    #[test]
    fn anycast_source_dropped_on_edge() {
        let f = FrameBuilder::udp(ANY, SERVER, 53, 4000, b"hi").build();
        let o = classify(&f, EDGE, &OneGroup(vec![]));
        assert_eq!(o.verdict, Verdict::Drop);
        assert_eq!(o.stat, GlobalStat::AnycastSourceDropped);
        assert!(
            o.deltas
                .contains(&(Scope::Group(7), "anycast_source_drops", 1))
        );
    }

    #[test]
    fn member_source_needs_a_registered_member() {
        let f = FrameBuilder::udp(ANY, CLIENT, 53, 4000, b"answer").build();
        let member_if = Iface {
            role: IfaceRole::Member,
            ifindex: 3,
            ..EDGE
        };
        let o = classify(&f, member_if, &OneGroup(vec![]));
        assert_eq!(
            (o.verdict, o.stat),
            (Verdict::Drop, GlobalStat::SpoofDropped)
        );
        let mut m = l2_member(10, 9);
        m.mac = crate::frame::CLIENT_MAC;
        let o = classify(&f, member_if, &OneGroup(vec![(1, m)]));
        assert_eq!(
            (o.verdict, o.stat),
            (Verdict::Pass, GlobalStat::UnicastPassed)
        );
        assert!(
            o.deltas
                .contains(&(Scope::Global, "member_source_passed", 1))
        );
    }

    #[test]
    fn nearest_member_gets_the_rewritten_frame() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
        b.vlans = vec![(wire::ETH_P_8021Q, 5)];
        let f = b.build();
        let far = l2_member(20, 2);
        let near = l2_member(10, 1);
        let o = classify(&f, EDGE, &OneGroup(vec![(1, far), (2, near)]));
        assert_eq!(o.verdict, Verdict::Redirect(3));
        assert_eq!(&o.frame[..6], &near.mac);
        assert_eq!(&o.frame[12..14], &[0x86, 0xdd]);
        assert_eq!(o.frame[14 + 7], 63, "hop limit lowered");
        assert_eq!(o.frame.len(), f.len() - 4, "VLAN tag removed");
        assert!(o.deltas.contains(&(Scope::Member(2), "packets", 1)));
    }

    #[test]
    fn no_live_member_falls_back() {
        let f = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q").build();
        let mut down = l2_member(10, 1);
        down.up = 0;
        let o = classify(&f, EDGE, &OneGroup(vec![(1, down)]));
        assert_eq!(
            (o.verdict, o.stat),
            (Verdict::Pass, GlobalStat::FallbackPassed)
        );
    }

    #[test]
    fn chain_longer_than_bound_is_unparsed() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"q");
        b.ext = vec![Ext::DestOpts(0); MAX_EXT_HEADERS + 1];
        let o = classify(&b.build(), EDGE, &OneGroup(vec![]));
        assert_eq!(
            (o.verdict, o.stat),
            (Verdict::Pass, GlobalStat::UnparsedPassed)
        );
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
        let cfg = OneGroup(vec![(1, l2_member(1, 1))]);
        for len in 0..f.len() {
            assert_eq!(
                classify(&f[..len], EDGE, &cfg).verdict,
                Verdict::Pass,
                "truncated to {len}"
            );
        }
        assert_eq!(classify(&f, EDGE, &cfg).verdict, Verdict::Drop);
    }

    #[test]
    fn fragments_hash_without_ports() {
        let mut b = FrameBuilder::udp(CLIENT, ANY, 4000, 53, b"data");
        b.ext = vec![Ext::Fragment {
            offset: 0,
            more: true,
            id: 1,
        }];
        let first = b.build();
        b.ext = vec![Ext::Fragment {
            offset: 8,
            more: false,
            id: 1,
        }];
        b.l4 = crate::frame::L4::Raw {
            proto: wire::IPPROTO_UDP,
            bytes: vec![1, 2, 3],
        };
        let rest = b.build();
        let h = |f: &[u8]| {
            let ip = parse_l3(f).expect("ipv6");
            match flow_of(f, &ip, &parse_transport(f, &ip).expect("transport"), 7) {
                FlowOf::Flow(_, h, _) => h,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(h(&first), h(&rest));
    }

    #[test]
    fn qinq_and_ipv4() {
        let mut b = FrameBuilder::udp(ANY, SERVER, 1, 2, b"");
        b.vlans = vec![(wire::ETH_P_8021AD, 100), (wire::ETH_P_8021Q, 200)];
        let cfg = OneGroup(vec![]);
        assert_eq!(classify(&b.build(), EDGE, &cfg).verdict, Verdict::Drop);
        b.vlans.push((wire::ETH_P_8021Q, 300));
        assert_eq!(
            classify(&b.build(), EDGE, &cfg).stat,
            GlobalStat::NonIpv6Passed
        );
        let v4 = crate::frame::ipv4_udp_frame();
        assert_eq!(classify(&v4, EDGE, &cfg).stat, GlobalStat::NonIpv6Passed);
    }
}
