//! Types shared by the anycast XDP programs and userspace.
//!
//! Everything that crosses the kernel boundary lives here: map names and
//! capacities, map keys and values (`#[repr(C)]`, explicit padding, bytemuck
//! `Pod`), counter indices and the program's load-time settings. The
//! [`model`] module is a pure-Rust reference model of the verdict, written
//! from the RFCs independently of the eBPF code, for tests.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod frame;
pub mod model;
pub mod wire;

use bytemuck::{Pod, Zeroable};

/// Names of the maps, as the eBPF object declares them and as they are pinned.
///
/// At most 15 characters: the kernel truncates longer object names.
pub mod map_names {
    /// Exact (/128) anycast addresses: [`AddrKey`](super::AddrKey) -> [`AddrValue`](super::AddrValue).
    pub const ANYCAST_ADDRS: &str = "ANYCAST_ADDRS";
    /// Anycast prefixes: LPM trie of addresses -> [`AddrValue`](super::AddrValue).
    pub const ANYCAST_PREFIX: &str = "ANYCAST_PREFIX";
    /// Groups by id: [`GroupInfo`](super::GroupInfo).
    pub const GROUPS: &str = "GROUPS";
    /// Per-CPU global counters, indexed by [`GlobalStat`](super::GlobalStat).
    pub const GLOBAL_STATS: &str = "GLOBAL_STATS";
    /// Per-CPU per-group counters, indexed by group id: [`GroupCounters`](super::GroupCounters).
    pub const GROUP_STATS: &str = "GROUP_STATS";
    /// Attached interfaces by ifindex: [`IfaceConfig`](super::IfaceConfig). Written by userspace.
    pub const IFACES: &str = "IFACES";
    /// Layout version of the pinned state: one `u32` at index 0.
    pub const META: &str = "ANYCAST_META";

    /// Every map the data plane pins, in a stable order.
    pub const ALL: [&str; 7] = [
        ANYCAST_ADDRS,
        ANYCAST_PREFIX,
        GROUPS,
        GLOBAL_STATS,
        GROUP_STATS,
        IFACES,
        META,
    ];
}

/// Names of the XDP programs in the eBPF object.
pub mod program_names {
    /// The anycast filter: parse, classify, act.
    pub const ANYCAST: &str = "anycast";
    /// A program that only returns XDP_PASS: the cost floor for benchmarks.
    pub const PASS_FLOOR: &str = "pass_floor";
}

/// Names of the load-time settings (read-only globals) of the anycast program.
pub mod globals {
    /// The interface role, one of [`IfaceRole`](super::IfaceRole) as `u8`.
    pub const ROLE: &str = "ROLE";
    /// What to do with anycast-sourced packets, one of [`SourceAction`](super::SourceAction) as `u8`.
    pub const SOURCE_ACTION: &str = "SOURCE_ACTION";
}

/// Version of the layout of everything pinned; bumped whenever a map's key
/// or value changes so that a new binary refuses stale pins with a clear error.
pub const LAYOUT_VERSION: u32 = 1;

/// Capacity of the exact-address table (hash, allocated on insert).
pub const MAX_ANYCAST_ADDRS: u32 = 1 << 20;
/// Capacity of the prefix table (LPM trie).
pub const MAX_ANYCAST_PREFIXES: u32 = 1 << 16;
/// Number of group ids; id 0 means "no group" and is never allocated.
pub const MAX_GROUPS: u32 = 4096;
/// Capacity of the attached-interface table.
pub const MAX_IFACES: u32 = 256;
/// Longest group name, in bytes.
pub const GROUP_NAME_LEN: usize = 32;

/// Most VLAN tags (802.1Q / 802.1ad) the parser walks through.
pub const MAX_VLAN_DEPTH: usize = 2;
/// Most IPv6 extension headers the parser walks before giving up (and passing).
pub const MAX_EXT_HEADERS: usize = 12;

/// Role of an interface the program is attached to.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceRole {
    /// Faces clients and the rest of the network: no packet may carry an anycast source.
    Edge = 0,
    /// Faces the members: anycast sources are accepted only from registered members.
    Member = 1,
}

impl IfaceRole {
    /// Decodes the wire value; unknown values fall back to the strict role.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Member,
            _ => Self::Edge,
        }
    }
}

/// What the program does with a packet whose source is an anycast address it may not use.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceAction {
    /// Drop and count (XDP_DROP).
    Drop = 0,
    /// Count and pass: monitor mode, for rolling the rule out safely.
    Count = 1,
}

impl SourceAction {
    /// Decodes the wire value; unknown values fall back to dropping.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Count,
            _ => Self::Drop,
        }
    }
}

/// Key of the exact-address table: an IPv6 address in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AddrKey {
    /// The address, network byte order.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<AddrKey>() == 16);

/// Value of both address tables: which group an anycast address belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AddrValue {
    /// Group id (host byte order), 1..[`MAX_GROUPS`].
    pub group_id: u32,
    /// Reserved, zero.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<AddrValue>() == 8);

/// A group, indexed by its id in the `GROUPS` array. Id 0 is never used.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupInfo {
    /// The group's name, UTF-8, NUL-padded.
    pub name: [u8; GROUP_NAME_LEN],
    /// 1 when the id is allocated, 0 when free.
    pub in_use: u8,
    /// Reserved, zero.
    pub _pad: [u8; 3],
    /// How many anycast addresses and prefixes name this group (host byte order).
    pub addresses: u32,
}
const _: () = assert!(core::mem::size_of::<GroupInfo>() == 40);

/// An attached interface, keyed by ifindex in the `IFACES` table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct IfaceConfig {
    /// Interface name at attach time, NUL-padded.
    pub name: [u8; 16],
    /// [`IfaceRole`] as `u8`.
    pub role: u8,
    /// [`SourceAction`] as `u8`.
    pub source_action: u8,
    /// XDP attach mode: 0 auto, 1 native (driver), 2 generic (skb).
    pub mode: u8,
    /// Reserved, zero.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<IfaceConfig>() == 20);

/// Global per-CPU counters: indices into `GLOBAL_STATS`, each a packet count.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalStat {
    /// Not IPv6 (IPv4, ARP, ...): passed untouched.
    NonIpv6Passed = 0,
    /// IPv6 but truncated or inconsistent (short header, bad version, payload
    /// length beyond the frame): passed for the kernel to judge.
    MalformedPassed = 1,
    /// IPv6 with neither source nor destination anycast: passed.
    UnicastPassed = 2,
    /// Anycast source on an interface where it is not allowed: dropped.
    AnycastSourceDropped = 3,
    /// Anycast source not allowed, interface in monitor mode: counted and passed.
    AnycastSourceCounted = 4,
    /// Destination is anycast: counted (and passed, until redirect).
    AnycastDestined = 5,
    /// Destination is anycast but the header chain could not be parsed within bounds: passed.
    UnparsedPassed = 6,
}

/// Number of slots in `GLOBAL_STATS` (room for counters added later).
pub const GLOBAL_STAT_SLOTS: u32 = 16;

impl GlobalStat {
    /// Every global counter, in index order.
    pub const ALL: [GlobalStat; 7] = [
        GlobalStat::NonIpv6Passed,
        GlobalStat::MalformedPassed,
        GlobalStat::UnicastPassed,
        GlobalStat::AnycastSourceDropped,
        GlobalStat::AnycastSourceCounted,
        GlobalStat::AnycastDestined,
        GlobalStat::UnparsedPassed,
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
        }
    }
}

/// Per-group counters: indices into [`GroupCounters::counters`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStat {
    /// Packets with a source in this group dropped.
    AnycastSourceDrops = 0,
    /// Packets with a source in this group counted in monitor mode (and passed).
    AnycastSourceCounted = 1,
    /// Packets destined to this group.
    DestinedPackets = 2,
    /// Bytes (whole frames) destined to this group.
    DestinedBytes = 3,
}

/// Number of slots in [`GroupCounters`] (room for counters added later).
pub const GROUP_STAT_SLOTS: usize = 16;

impl GroupStat {
    /// Every group counter, in index order.
    pub const ALL: [GroupStat; 4] = [
        GroupStat::AnycastSourceDrops,
        GroupStat::AnycastSourceCounted,
        GroupStat::DestinedPackets,
        GroupStat::DestinedBytes,
    ];

    /// The counter's name in `stats` output.
    pub const fn name(self) -> &'static str {
        match self {
            GroupStat::AnycastSourceDrops => "anycast_source_drops",
            GroupStat::AnycastSourceCounted => "anycast_source_counted",
            GroupStat::DestinedPackets => "destined_packets",
            GroupStat::DestinedBytes => "destined_bytes",
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
const _: () = assert!(core::mem::size_of::<GroupCounters>() == 128);

#[cfg(feature = "user")]
mod user {
    use super::*;

    // SAFETY: all of these are `#[repr(C)]` plain data with no implicit padding
    // (bytemuck's derive proves it), so any bit pattern is valid.
    unsafe impl aya::Pod for AddrKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for AddrValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for GroupInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for IfaceConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for GroupCounters {}

    impl From<std::net::Ipv6Addr> for AddrKey {
        fn from(a: std::net::Ipv6Addr) -> Self {
            AddrKey { addr: a.octets() }
        }
    }

    impl From<AddrKey> for std::net::Ipv6Addr {
        fn from(k: AddrKey) -> Self {
            std::net::Ipv6Addr::from(k.addr)
        }
    }

    impl GroupInfo {
        /// The group's name as text (lossy for bytes that are not UTF-8).
        pub fn name_str(&self) -> std::string::String {
            nul_padded_str(&self.name)
        }
    }

    impl IfaceConfig {
        /// The interface name as text.
        pub fn name_str(&self) -> std::string::String {
            nul_padded_str(&self.name)
        }
    }

    fn nul_padded_str(b: &[u8]) -> std::string::String {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        std::string::String::from_utf8_lossy(&b[..end]).into_owned()
    }
}
