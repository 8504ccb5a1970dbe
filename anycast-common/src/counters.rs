//! The counters: global and per-group indices (each with its name) and
//! the per-CPU arrays they index.

use bytemuck::{Pod, Zeroable};

/// Global per-CPU counters: indices into [`GlobalCounters`], each a packet count.
///
/// Every packet adds to exactly one *final* counter (its outcome); the ones
/// marked *extra* are observations added besides it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GlobalStat {
    /// Final. Not IPv6 (IPv4, ARP, ...): passed untouched.
    NonIpv6Passed = 0,
    /// Final. IPv6 but truncated or inconsistent (short header, bad version,
    /// payload length 0 or beyond the frame): passed for the kernel to judge.
    MalformedPassed = 1,
    /// Final. IPv6 with neither source nor destination anycast: passed.
    UnicastPassed = 2,
    /// Final. Anycast source on an edge interface: dropped.
    AnycastSourceDropped = 3,
    /// Extra. A disallowed anycast source counted and passed (monitor mode).
    AnycastSourceCounted = 4,
    /// Extra. Destination is anycast and the headers parsed.
    AnycastDestined = 5,
    /// Final. Destination is anycast but the header chain could not be parsed within bounds: passed.
    UnparsedPassed = 6,
    /// Final. Redirected to a member.
    Redirected = 7,
    /// Final. No live member; the group falls back to the kernel.
    FallbackPassed = 8,
    /// Final. No live member; the group drops.
    FallbackDropped = 9,
    /// Final. Anycast source on a member interface, not from a registered member: dropped.
    SpoofDropped = 10,
    /// Final. Too big for the member's egress and not answered here (see
    /// `TooBigSent`): passed to the kernel.
    TooBigPassed = 11,
    /// Final. No route or no resolved next hop for an encapsulated member: passed to the kernel.
    FibMissPassed = 12,
    /// Final. Hop limit would reach 0: passed so the kernel sends Time Exceeded.
    HopLimitPassed = 13,
    /// Extra. Anycast source from a registered member on a member interface: accepted.
    MemberSourcePassed = 14,
    /// Extra. A known flow went to its member.
    FlowHits = 15,
    /// Extra. A new flow was recorded in the flow table.
    FlowMisses = 16,
    /// Extra. A new flow was not recorded: the flood guard's rate was exceeded.
    FloodBypasses = 17,
    /// Extra. An ICMPv6 error was steered by the flow it quotes.
    IcmpErrorsSteered = 18,
    /// Extra. A flow was recorded in a new flow-table entry (not over a
    /// stale one): with the entries present and those flushed, it gives
    /// the LRU's evictions.
    FlowEntriesCreated = 19,
    /// Extra. A cached flow's entry, evicted by the LRU, was put back (a
    /// flow-table entry made without a new flow; counted with the created
    /// ones for the LRU's evictions).
    FlowEntriesRestored = 20,
    /// Final. Anycast inner source of IPv6-in-IPv6 on an edge interface:
    /// dropped (a spoof that a decapsulating router would let in).
    TunnelledSourceDropped = 21,
    /// Final. Anycast-destined from a source no router forwards (the
    /// unspecified address, loopback, multicast, IPv4-mapped, site-local):
    /// dropped, on every interface role.
    InvalidSourceDropped = 22,
    /// Final. Anycast-destined but link-scoped (a link-local source, or
    /// Neighbor Discovery, MLD and the other ICMPv6 messages that never
    /// leave their link): passed to the kernel, never to a member.
    LinkScopePassed = 23,
    /// Final. An ICMPv6 error to an anycast address whose quote is too
    /// short to name the flow that caused it: passed to the kernel.
    IcmpErrorsPassed = 24,
    /// Final. For an encapsulated member, but its Tunnel Encapsulation
    /// Limit option is 0 (RFC 2473 sections 4.1.1, 5.1: not to be
    /// encapsulated again): passed to the kernel, which discards it.
    EncapLimitPassed = 25,
    /// Final. Too big for the member's egress (an on-link member's device
    /// MTU, an encapsulated member's tunnel MTU): answered with an ICMPv6
    /// Packet Too Big to the source (RFC 4443 section 3.2, RFC 2473
    /// section 7.1), sent back by the program. When it cannot answer (rate
    /// limit, no route back, an ICMPv6 error or an anycast source, or a
    /// packet of 1280 bytes or less too big for a tunnel) the packet goes
    /// to the kernel as `TooBigPassed`.
    TooBigSent = 26,
    /// Final. For a scoped anycast address (`addr add --scope`, a subnet's
    /// anycast addresses) but arrived on an interface outside its scope:
    /// dropped.
    OutOfScopeDropped = 27,
}

/// Number of slots in [`GlobalCounters`] (room for counters added later).
pub const GLOBAL_STAT_SLOTS: u32 = 32;

/// Per-CPU global counters, the one value of `GLOBAL_STATS`: one map lookup
/// per packet for all the global counters it moves.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GlobalCounters {
    /// Indexed by [`GlobalStat`].
    pub counters: [u64; GLOBAL_STAT_SLOTS as usize],
}
const _: () = assert!(core::mem::size_of::<GlobalCounters>() == 256);

impl GlobalStat {
    /// Every global counter, in index order.
    pub const ALL: [GlobalStat; 28] = [
        GlobalStat::NonIpv6Passed,
        GlobalStat::MalformedPassed,
        GlobalStat::UnicastPassed,
        GlobalStat::AnycastSourceDropped,
        GlobalStat::AnycastSourceCounted,
        GlobalStat::AnycastDestined,
        GlobalStat::UnparsedPassed,
        GlobalStat::Redirected,
        GlobalStat::FallbackPassed,
        GlobalStat::FallbackDropped,
        GlobalStat::SpoofDropped,
        GlobalStat::TooBigPassed,
        GlobalStat::FibMissPassed,
        GlobalStat::HopLimitPassed,
        GlobalStat::MemberSourcePassed,
        GlobalStat::FlowHits,
        GlobalStat::FlowMisses,
        GlobalStat::FloodBypasses,
        GlobalStat::IcmpErrorsSteered,
        GlobalStat::FlowEntriesCreated,
        GlobalStat::FlowEntriesRestored,
        GlobalStat::TunnelledSourceDropped,
        GlobalStat::InvalidSourceDropped,
        GlobalStat::LinkScopePassed,
        GlobalStat::IcmpErrorsPassed,
        GlobalStat::EncapLimitPassed,
        GlobalStat::TooBigSent,
        GlobalStat::OutOfScopeDropped,
    ];

    /// The counter's name in `stats` output.
    pub const fn name(self) -> &'static str {
        match self {
            GlobalStat::NonIpv6Passed => "non_ipv6_passed",
            GlobalStat::MalformedPassed => "malformed_passed",
            GlobalStat::UnicastPassed => "unicast_passed",
            GlobalStat::AnycastSourceDropped => "anycast_source_drops",
            GlobalStat::AnycastSourceCounted => "anycast_source_counted",
            GlobalStat::AnycastDestined => "anycast_destined",
            GlobalStat::UnparsedPassed => "unparsed_passed",
            GlobalStat::Redirected => "redirected",
            GlobalStat::FallbackPassed => "fallback_passed",
            GlobalStat::FallbackDropped => "fallback_dropped",
            GlobalStat::SpoofDropped => "spoof_drops",
            GlobalStat::TooBigPassed => "too_big_passed",
            GlobalStat::FibMissPassed => "fib_miss_passed",
            GlobalStat::HopLimitPassed => "hop_limit_passed",
            GlobalStat::MemberSourcePassed => "member_source_passed",
            GlobalStat::FlowHits => "flow_hits",
            GlobalStat::FlowMisses => "flow_misses",
            GlobalStat::FloodBypasses => "flood_bypasses",
            GlobalStat::IcmpErrorsSteered => "icmp_errors_steered",
            GlobalStat::FlowEntriesCreated => "flow_entries_created",
            GlobalStat::FlowEntriesRestored => "flow_entries_restored",
            GlobalStat::TunnelledSourceDropped => "tunnelled_source_drops",
            GlobalStat::InvalidSourceDropped => "invalid_source_drops",
            GlobalStat::LinkScopePassed => "link_scope_passed",
            GlobalStat::IcmpErrorsPassed => "icmp_errors_passed",
            GlobalStat::EncapLimitPassed => "encap_limit_passed",
            GlobalStat::TooBigSent => "too_big_sent",
            GlobalStat::OutOfScopeDropped => "out_of_scope_drops",
        }
    }
}

/// Per-group counters: indices into [`GroupCounters::counters`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupStat {
    /// Packets with a source in this group dropped on an edge interface.
    AnycastSourceDrops = 0,
    /// Packets with a disallowed source in this group counted in monitor mode (and passed).
    AnycastSourceCounted = 1,
    /// Packets destined to this group (headers parsed).
    DestinedPackets = 2,
    /// Bytes (whole frames) destined to this group.
    DestinedBytes = 3,
    /// Packets redirected to a member.
    Redirected = 4,
    /// Packets passed to the kernel because no member was up.
    FallbackPassed = 5,
    /// Packets dropped because no member was up.
    FallbackDropped = 6,
    /// Packets with a source in this group dropped on a member interface (not from a member).
    SpoofDrops = 7,
    /// Packets with a source in this group accepted from a registered member.
    MemberSourcePassed = 8,
    /// Packets too big for their member's egress passed to the kernel
    /// (not answered here: see `GlobalStat::TooBigSent`).
    TooBigPassed = 9,
    /// Packets passed because the member's next hop was not resolved.
    FibMissPassed = 10,
    /// Packets passed because their hop limit would reach 0.
    HopLimitPassed = 11,
    /// Packets of known flows sent to their member.
    FlowHits = 12,
    /// New flows recorded.
    FlowMisses = 13,
    /// New flows not recorded because of the flood guard.
    FloodBypasses = 14,
    /// ICMPv6 errors steered by the flow they quote.
    IcmpErrorsSteered = 15,
    /// Packets with an inner source in this group (IPv6-in-IPv6) dropped on
    /// an edge interface.
    TunnelledSourceDrops = 16,
    /// Packets to this group from a source no router forwards: dropped.
    InvalidSourceDrops = 17,
    /// Link-scoped packets to this group (link-local source, Neighbor
    /// Discovery, MLD, ...): passed to the kernel.
    LinkScopePassed = 18,
    /// ICMPv6 errors to this group whose quote names no flow: passed to the kernel.
    IcmpErrorsPassed = 19,
    /// Packets for an encapsulated member of this group whose Tunnel
    /// Encapsulation Limit is 0: passed to the kernel.
    EncapLimitPassed = 20,
    /// Packets too big for their member's egress answered with an ICMPv6
    /// Packet Too Big.
    TooBigSent = 21,
    /// Packets for one of this group's scoped addresses dropped: they
    /// arrived outside its scope.
    OutOfScopeDrops = 22,
}

/// Number of slots in [`GroupCounters`] (room for counters added later).
pub const GROUP_STAT_SLOTS: usize = 32;

impl GroupStat {
    /// Every group counter, in index order.
    pub const ALL: [GroupStat; 23] = [
        GroupStat::AnycastSourceDrops,
        GroupStat::AnycastSourceCounted,
        GroupStat::DestinedPackets,
        GroupStat::DestinedBytes,
        GroupStat::Redirected,
        GroupStat::FallbackPassed,
        GroupStat::FallbackDropped,
        GroupStat::SpoofDrops,
        GroupStat::MemberSourcePassed,
        GroupStat::TooBigPassed,
        GroupStat::FibMissPassed,
        GroupStat::HopLimitPassed,
        GroupStat::FlowHits,
        GroupStat::FlowMisses,
        GroupStat::FloodBypasses,
        GroupStat::IcmpErrorsSteered,
        GroupStat::TunnelledSourceDrops,
        GroupStat::InvalidSourceDrops,
        GroupStat::LinkScopePassed,
        GroupStat::IcmpErrorsPassed,
        GroupStat::EncapLimitPassed,
        GroupStat::TooBigSent,
        GroupStat::OutOfScopeDrops,
    ];

    /// The counter's name in `stats` output.
    pub const fn name(self) -> &'static str {
        match self {
            GroupStat::AnycastSourceDrops => "anycast_source_drops",
            GroupStat::AnycastSourceCounted => "anycast_source_counted",
            GroupStat::DestinedPackets => "destined_packets",
            GroupStat::DestinedBytes => "destined_bytes",
            GroupStat::Redirected => "redirected",
            GroupStat::FallbackPassed => "fallback_passed",
            GroupStat::FallbackDropped => "fallback_dropped",
            GroupStat::SpoofDrops => "spoof_drops",
            GroupStat::MemberSourcePassed => "member_source_passed",
            GroupStat::TooBigPassed => "too_big_passed",
            GroupStat::FibMissPassed => "fib_miss_passed",
            GroupStat::HopLimitPassed => "hop_limit_passed",
            GroupStat::FlowHits => "flow_hits",
            GroupStat::FlowMisses => "flow_misses",
            GroupStat::FloodBypasses => "flood_bypasses",
            GroupStat::IcmpErrorsSteered => "icmp_errors_steered",
            GroupStat::TunnelledSourceDrops => "tunnelled_source_drops",
            GroupStat::InvalidSourceDrops => "invalid_source_drops",
            GroupStat::LinkScopePassed => "link_scope_passed",
            GroupStat::IcmpErrorsPassed => "icmp_errors_passed",
            GroupStat::EncapLimitPassed => "encap_limit_passed",
            GroupStat::TooBigSent => "too_big_sent",
            GroupStat::OutOfScopeDrops => "out_of_scope_drops",
        }
    }
}

/// Per-CPU counters of one group, the value of `GROUP_STATS[group_id]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupCounters {
    /// Indexed by [`GroupStat`].
    pub counters: [u64; GROUP_STAT_SLOTS],
}
const _: () = assert!(core::mem::size_of::<GroupCounters>() == 256);
