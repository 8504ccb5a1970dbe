//! Classification: source check, then destination lookup, into a [`Decision`].
//!
//! The policy is the one `anycast_common::model` states; the program tests
//! hold the two to the same answers.

use anycast_common::{
    AddrKey, EXACT_BUCKET_ENTRIES, ExactBucket, GlobalStat, GroupStat, IfaceRole,
    MAX_PREFILTER_LENS, MemberSourceKey, SourceAction, hash, wire,
};
use aya_ebpf::{bindings::xdp_action, maps::lpm_trie::Key, programs::XdpContext};

use crate::{
    act,
    maps::{ANYCAST_ADDRS, ANYCAST_PREFIX, EXACT_INDEX, MEMBER_SOURCES, PREFILTER, SETTINGS},
    parse::{
        eth::{self, L2},
        ipv6::{self, Ipv6},
        load, words,
    },
};

/// What the flow table did for a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowOutcome {
    /// Not consulted (no affinity, or not steered).
    None,
    /// A known flow went to its member.
    Hit,
    /// A new flow was recorded over a stale entry of the same key.
    Recorded,
    /// A new flow was recorded in a new entry.
    Created,
    /// A new flow was not recorded (flood guard).
    Bypassed,
}

/// What to do with a packet, and what to count.
pub(crate) struct Decision {
    /// The XDP action.
    pub(crate) action: u32,
    /// The one final global counter.
    pub(crate) stat: GlobalStat,
    /// Group of an anycast source, 0 if none.
    pub(crate) src_group: u32,
    /// The group counter the source adds to (when `src_group` is set).
    pub(crate) src_stat: GroupStat,
    /// A disallowed source was counted and passed (monitor mode).
    pub(crate) source_counted: bool,
    /// The anycast source was vouched for by a registered member.
    pub(crate) member_source: bool,
    /// Group of a parsed anycast destination, 0 if none.
    pub(crate) dst_group: u32,
    /// The group counter for what happened to the destined packet.
    pub(crate) dst_stat: GroupStat,
    /// The member the packet was redirected to, 0 if none.
    pub(crate) member: u32,
    /// What the flow table did.
    pub(crate) flow: FlowOutcome,
    /// Steered as an ICMPv6 error, by the flow it quotes.
    pub(crate) icmp_error: bool,
    /// Frame length as received.
    pub(crate) bytes: u64,
}

impl Decision {
    #[inline(always)]
    const fn pass(stat: GlobalStat, bytes: u64) -> Self {
        Decision {
            action: xdp_action::XDP_PASS,
            stat,
            src_group: 0,
            src_stat: GroupStat::AnycastSourceDrops,
            source_counted: false,
            member_source: false,
            dst_group: 0,
            dst_stat: GroupStat::DestinedPackets,
            member: 0,
            flow: FlowOutcome::None,
            icmp_error: false,
            bytes,
        }
    }

    /// Sets the final outcome of an anycast-destined packet.
    #[inline(always)]
    pub(crate) fn finish(&mut self, action: u32, stat: GlobalStat, group_stat: GroupStat) {
        self.action = action;
        self.stat = stat;
        self.dst_stat = group_stat;
    }

    /// The XDP action to return.
    #[inline(always)]
    pub(crate) const fn action(&self) -> u32 {
        self.action
    }
}

/// The outcome of classification: most packets (not anycast at all, or not
/// IPv6) need one global counter and XDP_PASS; only packets with an anycast
/// address carry a whole [`Decision`]. Keeping the two apart keeps the
/// common path free of the decision's many fields.
pub(crate) enum Verdict {
    /// Passed, counted in this one global counter.
    Pass(GlobalStat),
    /// An anycast source of this group on an edge interface that drops
    /// them: the edge's whole rule, decided without the decision record.
    EdgeSourceDropped(u32),
    /// An anycast source or destination: the full decision.
    Decided(Decision),
}

/// A packet's addresses (pointers into it) and the groups known so far.
/// Plain integers, not `Option`s: this goes to a BPF function by reference,
/// and the verifier refuses to store the undefined payload of a `None`.
struct Addrs {
    src: *const AddrKey,
    dst: *const AddrKey,
    /// Group of the source address, 0 if not anycast.
    src_group: u32,
    /// Group of the destination address, 0 if not anycast; looked up only
    /// when the source is not anycast and not tunnelled (see [`classify`]).
    dst_group: u32,
    /// [`hash::addr_hash`] of each address: the index slot and the flow hash.
    src_hash: u64,
    dst_hash: u64,
}

/// The rules of this attachment and what the address lookups need to know
/// of the configuration, read once per packet.
#[derive(Clone, Copy)]
pub(crate) struct Lookups {
    /// The interface's role.
    role: IfaceRole,
    /// What to do with a disallowed anycast source.
    action: SourceAction,
    /// Any prefix configured (else the LPM lookups are skipped).
    prefixes: bool,
    /// The prefilter is valid (it covers every configured prefix length).
    prefilter: bool,
    /// The configured prefix lengths (0: unused).
    lens: [u8; MAX_PREFILTER_LENS],
    /// `Settings::flow_epoch`, for the flow caches.
    flow_epoch: u32,
}

impl Lookups {
    #[inline(always)]
    fn read(role: u8, action: u8) -> Self {
        let (role, action) = (IfaceRole::from_u8(role), SourceAction::from_u8(action));
        match SETTINGS.get(0) {
            Some(s) => Lookups {
                role,
                action,
                prefixes: s.prefixes != 0,
                prefilter: s.prefilter != 0,
                lens: s.prefix_lens,
                flow_epoch: s.flow_epoch,
            },
            None => Lookups {
                role,
                action,
                prefixes: true,
                prefilter: false,
                lens: [0; MAX_PREFILTER_LENS],
                flow_epoch: 0,
            },
        }
    }
}

/// Whether the prefilter counts an entry in `bucket`.
#[inline(always)]
fn counted(bucket: u32) -> bool {
    PREFILTER.get(bucket).is_some_and(|n| *n != 0)
}

/// What the exact-address index says of an address.
enum Exact {
    /// It owns its slot: anycast, of this group.
    Group(u32),
    /// Its slot has other addresses: the exact table knows.
    Ask,
    /// Not an exact anycast address.
    No,
}

/// Looks the address `raw` (native words) with hash `h` up in the
/// exact-address index.
#[inline(always)]
fn exact_index(raw: [u32; 4], h: u64) -> Exact {
    let Some(b) = EXACT_INDEX.get(hash::exact_bucket_of(h)) else {
        return Exact::Ask;
    };
    // An empty bucket (the common case for an address that is not anycast)
    // in two loads: the groups and `others` are the bucket's last 16 bytes.
    let tail = b as *const ExactBucket as *const u64;
    // SAFETY: a 64-byte, 8-aligned map value: words 6 and 7 are in it.
    if unsafe { *tail.add(6) | *tail.add(7) } == 0 {
        return Exact::No;
    }
    for i in 0..EXACT_BUCKET_ENTRIES {
        // The group first, then the address: userspace writes a new
        // address before its group (see `ExactBucket`).
        // SAFETY: reading a field of a valid map value.
        let group = unsafe { core::ptr::read_volatile(&b.groups[i]) };
        if group != 0 {
            // SAFETY: 16-byte fields at 4-aligned offsets of a map value.
            let o = unsafe { words::load16(&b.addrs[i]) };
            // One branch, not four (and never a call of `bcmp`).
            if (o[0] ^ raw[0]) | (o[1] ^ raw[1]) | (o[2] ^ raw[2]) | (o[3] ^ raw[3]) == 0 {
                // Still the same group: the place was not freed and taken
                // by another group's address between the reads. If it was,
                // the exact table answers.
                // SAFETY: as above.
                let again = unsafe { core::ptr::read_volatile(&b.groups[i]) };
                return if again == group {
                    Exact::Group(group)
                } else {
                    Exact::Ask
                };
            }
        }
    }
    if b.others != 0 { Exact::Ask } else { Exact::No }
}

/// The [`hash::addr_hash`] of the address at `addr` (in the packet).
#[inline(always)]
pub(crate) fn addr_hash(addr: *const AddrKey) -> u64 {
    // SAFETY: `addr` points into the packet and was bounds-checked.
    hash::addr_hash(unsafe { words::load16(&(*addr).addr) })
}

/// The anycast group the address at `addr` (hash `h`) belongs to: exact
/// match first (the index, then the exact table when the index cannot
/// tell), then the longest prefix, which the prefilter skips for most
/// addresses.
#[inline(always)]
fn anycast_group(addr: *const AddrKey, h: u64, l: &Lookups) -> Option<u32> {
    // SAFETY: `addr` points into the packet and was bounds-checked by the
    // parser; the lookups read it in place, without a copy to the stack.
    let key = unsafe { &*addr };
    // SAFETY: as above, 16 readable bytes.
    let raw = unsafe { words::load16(&key.addr) };
    match exact_index(raw, h) {
        Exact::Group(g) => return Some(g),
        Exact::Ask => {
            // SAFETY: the value is plain data and only read.
            if let Some(v) = unsafe { ANYCAST_ADDRS.get(key) } {
                return Some(v.group_id);
            }
        }
        Exact::No => {}
    }
    if !l.prefixes || (l.prefilter && !maybe_in_prefix(words::big_endian(raw), l)) {
        return None;
    }
    ANYCAST_PREFIX
        .get(Key::new(128, key.addr))
        .map(|v| v.group_id)
}

/// Whether an address (big-endian words) may be in a configured prefix:
/// false means certainly not (no prefix shares its prefilter buckets).
#[inline(always)]
fn maybe_in_prefix(w: [u32; 4], l: &Lookups) -> bool {
    for len in l.lens {
        if len != 0 && counted(hash::prefilter_bucket(w, len)) {
            return true;
        }
    }
    false
}

/// Whether a registered member stands behind `key` (which names the group).
#[inline(always)]
fn vouched(key: &MemberSourceKey) -> bool {
    // SAFETY: plain data, only read.
    unsafe { MEMBER_SOURCES.get(key) }.is_some()
}

/// Applies the source rule to an anycast source of `group`: true when the
/// packet is dropped and classification stops.
#[inline(always)]
fn refuse_source(d: &mut Decision, role: IfaceRole, action: SourceAction, group: u32) -> bool {
    d.src_group = group;
    match action {
        SourceAction::Drop => {
            d.action = xdp_action::XDP_DROP;
            (d.stat, d.src_stat) = match role {
                IfaceRole::Edge => (
                    GlobalStat::AnycastSourceDropped,
                    GroupStat::AnycastSourceDrops,
                ),
                IfaceRole::Member => (GlobalStat::SpoofDropped, GroupStat::SpoofDrops),
            };
            true
        }
        SourceAction::Count => {
            d.source_counted = true;
            d.src_stat = GroupStat::AnycastSourceCounted;
            false
        }
    }
}

/// The source rule. Edge: no anycast source. Member: an anycast source only
/// from a registered member (ingress interface and source MAC), or inside
/// IPv6-in-IPv6 from a registered encapsulated member (outer source).
/// Returns true when the packet is dropped.
// Not inlined: its keys get a stack frame of their own, off the redirect path.
#[inline(never)]
fn check_source(ctx: &XdpContext, ip: &Ipv6, a: &Addrs, l: &Lookups, d: &mut Decision) -> bool {
    let (role, action) = (l.role, l.action);
    let (group, key) = if a.src_group != 0 {
        let group = a.src_group;
        if role == IfaceRole::Edge {
            // No member may use it here: skip building the member key.
            return refuse_source(d, role, action, group);
        }
        let mac = load::<[u8; 6]>(ctx, 6, ip.off).unwrap_or([0; 6]);
        let ifindex = ctx.ingress_ifindex() as u32;
        (group, MemberSourceKey::on_link(group, ifindex, mac))
    } else if tunnelled(ip, l) {
        let Some(inner) = ipv6::parse(ctx, ip.off + wire::IPV6_HDR_LEN, ip.end) else {
            return false;
        };
        let Some(group) = ipv6::src(ctx, &inner).and_then(|p| anycast_group(p, addr_hash(p), l))
        else {
            return false;
        };
        // SAFETY: bounds-checked pointer into the packet.
        let outer = unsafe { (*a.src).addr };
        (group, MemberSourceKey::tunnel(group, outer))
    } else {
        return false;
    };
    if role == IfaceRole::Member && vouched(&key) {
        d.src_group = group;
        d.src_stat = GroupStat::MemberSourcePassed;
        d.member_source = true;
        return false;
    }
    refuse_source(d, role, action, group)
}

/// IPv6-in-IPv6 on a member interface: the inner source is checked too
/// (an encapsulated member answering from the anycast address).
#[inline(always)]
fn tunnelled(ip: &Ipv6, l: &Lookups) -> bool {
    l.role == IfaceRole::Member && ip.next_header == wire::IPPROTO_IPV6
}

/// Parses and classifies the packet in `ctx` for an interface with the given
/// role and source action, steering anycast-destined packets to a member.
#[inline(always)]
pub(crate) fn classify(ctx: &XdpContext, role: u8, source_action: u8) -> Verdict {
    let l3_off = match eth::parse(ctx) {
        L2::Ipv6 { l3_off } => l3_off,
        L2::Other => return Verdict::Pass(GlobalStat::NonIpv6Passed),
        L2::Truncated => return Verdict::Pass(GlobalStat::MalformedPassed),
    };
    let Some(ip) = ipv6::parse(ctx, l3_off, usize::MAX) else {
        return Verdict::Pass(GlobalStat::MalformedPassed);
    };
    let (Some(src), Some(dst)) = (ipv6::src(ctx, &ip), ipv6::dst(ctx, &ip)) else {
        return Verdict::Pass(GlobalStat::MalformedPassed);
    };
    let l = Lookups::read(role, source_action);
    let (src_hash, dst_hash) = (addr_hash(src), addr_hash(dst));
    let mut a = Addrs {
        src,
        dst,
        src_group: anycast_group(src, src_hash, &l).unwrap_or(0),
        dst_group: 0,
        src_hash,
        dst_hash,
    };
    if a.src_group != 0 && l.role == IfaceRole::Edge && l.action == SourceAction::Drop {
        return Verdict::EdgeSourceDropped(a.src_group);
    }
    if a.src_group == 0 && !tunnelled(&ip, &l) {
        a.dst_group = anycast_group(dst, dst_hash, &l).unwrap_or(0);
        if a.dst_group == 0 {
            // The common case: no anycast address at all.
            return Verdict::Pass(GlobalStat::UnicastPassed);
        }
    }
    Verdict::Decided(decide(ctx, &ip, &a, &l))
}

/// The full decision for a packet with an anycast address (or one that
/// needs the tunnelled-source check).
#[inline(always)]
fn decide(ctx: &XdpContext, ip: &Ipv6, a: &Addrs, l: &Lookups) -> Decision {
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    let mut d = Decision::pass(GlobalStat::UnicastPassed, bytes);
    // Only an anycast or tunnelled source has a rule to check: the common
    // anycast-destined packet skips the call (a BPF-to-BPF call and return).
    if (a.src_group != 0 || tunnelled(ip, l)) && check_source(ctx, ip, a, l, &mut d) {
        return d;
    }
    let dst_group = if a.src_group == 0 && !tunnelled(ip, l) {
        // Looked up already by `classify`.
        a.dst_group
    } else {
        anycast_group(a.dst, a.dst_hash, l).unwrap_or(0)
    };
    if dst_group != 0 {
        let group = dst_group;
        let Some(t) = ipv6::transport(ctx, ip) else {
            d.stat = GlobalStat::UnparsedPassed;
            return d;
        };
        d.dst_group = group;
        act::steer(
            ctx,
            ip,
            &t,
            (a.src, a.dst),
            (a.src_hash, a.dst_hash),
            (group, l.flow_epoch),
            &mut d,
        );
    }
    d
}
