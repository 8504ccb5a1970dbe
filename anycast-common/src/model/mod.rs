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
//! 4. An anycast destination that has a scope (the interfaces from which
//!    it may be reached) is dropped when the packet arrived on an
//!    interface outside it, whatever its source. The scope is the
//!    operator's (`--scope`), or, for a subnet's reserved anycast
//!    addresses (RFC 2526 section 2: the highest 128 interface identifiers
//!    "within each subnet"), by the project's policy the interfaces that
//!    carry the subnet: the group of such an address spans its subnet.
//! 5. An anycast destination from a source no router forwards (the
//!    unspecified address and loopback, RFC 4291 sections 2.5.2 and 2.5.3;
//!    multicast, 2.7; IPv4-mapped, RFC 6890 section 2.2.3; site-local,
//!    RFC 3879 section 4) is dropped; from a link-local source (RFC 4291
//!    section 2.5.6) it passes to the kernel, which delivers it if the
//!    address is its own and otherwise answers Destination Unreachable
//!    (RFC 4443 section 3.1). Neither depends on the interface's role.
//! 6. An anycast destination whose extension-header chain does not parse
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
//! 7. Everything else passes.
//!
//! Only a packet without a Fragment header, or with one at offset 0, has an
//! upper-layer header (RFC 8200 section 4.5): a later fragment is data. The
//! fragments of one datagram share source, destination and Identification
//! (4.5), and one destination reassembles them: the member a first fragment
//! goes to is written to the fragment table under those three (and the
//! group), and a later fragment follows it while it stands (for
//! [`crate::FRAGMENT_TIMEOUT_NS`], its member still usable); without it, by
//! its flow label, and never into the flow table.

mod flow;
mod parse;
mod too_big;

use std::vec::Vec;

pub use self::{flow::*, parse::*};

use crate::{
    Affinity, ENCAP_HOP_LIMIT, FRAGMENT_TIMEOUT_NS, Fallback, FlowEntry, FlowKey, FragmentEntry,
    FragmentKey, GlobalStat, GroupInfo, GroupStat, IPV6_MIN_MTU, IfaceRole, MemberInfo, MemberKind,
    MemberSourceKey, MemberState, SourceAction, maglev,
    wire::{self},
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
    /// The fragment-table entry a first fragment writes: key and member.
    pub fragment: Option<(FragmentKey, u32)>,
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
    /// Its attachment's id, which scopes name.
    pub attachment: u32,
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
    /// The packet would exceed the route's MTU, this one.
    FragNeeded {
        /// The route's MTU.
        mtu: u32,
    },
    /// No route, no neighbour, or no source address.
    Miss,
}

/// The configuration the model reads: the same facts the maps hold,
/// expressed directly.
pub trait Config {
    /// Group of an anycast address (exact first, then longest prefix).
    fn anycast_group(&self, addr: &[u8; 16]) -> Option<u32>;
    /// Whether the anycast address `addr` (exact first, then longest
    /// prefix) may be reached from attachment `attachment`: true unless
    /// the address has a scope that does not name it.
    fn in_scope(&self, _addr: &[u8; 16], _attachment: u32) -> bool {
        true
    }
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
    /// The fragment table's entry for `key`, if any.
    fn fragment(&self, key: &FragmentKey) -> Option<FragmentEntry>;
    /// The time now, on the flow table's clock (CLOCK_MONOTONIC, ns).
    fn now_ns(&self) -> u64;
    /// Whether the flood guard lets one more new flow be recorded.
    fn flood_allows(&self) -> bool {
        true
    }
    /// The MTU of interface `ifindex` (an on-link member's egress), `None`
    /// when there is no such interface.
    fn link_mtu(&self, ifindex: u32) -> Option<u32>;
    /// Whether the rate limit lets one more Packet Too Big go out.
    fn too_big_allowed(&self) -> bool {
        true
    }
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
pub(super) fn echo(ty: u8) -> bool {
    ty == 128 || ty == 129
}

struct Acc {
    deltas: Vec<Delta>,
    flow: Option<(FlowKey, u32)>,
    fragment: Option<(FragmentKey, u32)>,
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
        fragment: None,
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
        fragment: acc.fragment,
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
    // Before the extension headers: no chain carries a packet past its scope.
    if !config.in_scope(&ip.dst, iface.attachment) {
        destined(acc);
        return done!(
            Verdict::Drop,
            None,
            GlobalStat::OutOfScopeDropped,
            GroupStat::OutOfScopeDrops,
        );
    }
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
    // Whether a member may still take a flow or a datagram.
    let usable = |member: u32| {
        members.iter().any(|(id, m)| {
            *id == member && m.kind != MemberKind::None as u8 && m.up != MemberState::Down as u8
        })
    };
    // A datagram's fragments (not an error's: never bigger than 1280
    // bytes, RFC 4443 section 2.4 (c)) by source, destination and
    // Identification (RFC 8200 section 4.5).
    let fragment_key = (t.fragment && !icmp_error).then_some(FragmentKey {
        group_id: group,
        src: ip.src,
        dst: ip.dst,
        id: t.frag_id,
    });
    let later = t.fragment && !t.upper;
    // A later fragment follows its first one while the entry stands.
    let followed = fragment_key
        .filter(|_| later)
        .and_then(|k| config.fragment(&k))
        .filter(|e| now.saturating_sub(e.first_ns) <= FRAGMENT_TIMEOUT_NS && usable(e.member_id))
        .map(|e| e.member_id);
    let entry = if affinity && followed.is_none() {
        config.flow(&key)
    } else {
        None
    };
    let held = if affinity {
        entry.and_then(|e| {
            let alive = now.saturating_sub(e.last_seen_ns) <= info.flow_timeout_ns(key.proto);
            (alive && usable(e.member_id)).then_some(e.member_id)
        })
    } else {
        None
    };
    let (id, flow_stat) = match (followed, held) {
        (Some(id), _) => (id, None),
        (None, Some(id)) => {
            acc.flow = Some((key, id));
            (id, Some((GlobalStat::FlowHits, GroupStat::FlowHits)))
        }
        (None, None) => {
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
            // Only a flow's own packets (a first fragment's included)
            // make an entry: an error or a later fragment only follows one.
            let stat = if !affinity || icmp_error || later {
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
    if let Some(k) = fragment_key.filter(|_| t.upper) {
        acc.fragment = Some((k, id));
    }
    // The inner packet, from its IPv6 header to the end of the frame, with
    // the hop limit lowered: what every redirect sends on.
    let mut inner = frame[ip.offset..].to_vec();
    inner[7] = ip.hop_limit - 1;
    // The IPv6 packet's length, what every link's MTU bounds (RFC 8200
    // section 5: 1280 bytes fit every link).
    let len = ip.end - ip.offset;
    let (verdict, out) = match MemberKind::from_u8(m.kind) {
        MemberKind::L2 => {
            // RFC 8200 section 5, RFC 4443 section 3.2: a packet the
            // egress link cannot carry is answered with a Packet Too Big
            // carrying that link's MTU.
            if let Some(mtu) = config.link_mtu(m.ifindex)
                && len > IPV6_MIN_MTU
                && len > mtu as usize
            {
                let (v, out, s, gs) = too_big::answer(frame, &ip, mtu, icmp_error, config);
                return done!(v, out, s, gs);
            }
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
                // RFC 2473 section 7.1: the tunnel MTU is the path MTU
                // less the tunnel headers (ours: 40 bytes); a packet over
                // 1280 bytes is discarded with a Packet Too Big of the
                // larger of the tunnel MTU and 1280. One of 1280 or less
                // the entry point encapsulates and fragments, which the
                // kernel does.
                Fib::FragNeeded { mtu } if len > IPV6_MIN_MTU => {
                    let tunnel_mtu = (mtu as usize).saturating_sub(wire::IPV6_HDR_LEN);
                    let mtu = tunnel_mtu.max(IPV6_MIN_MTU) as u32;
                    let (v, out, s, gs) = too_big::answer(frame, &ip, mtu, icmp_error, config);
                    return done!(v, out, s, gs);
                }
                Fib::FragNeeded { .. } => {
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
mod tests;
