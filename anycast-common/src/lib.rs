//! Types shared by the anycast XDP programs and userspace.
//!
//! Everything that crosses the kernel boundary lives here: map names and
//! capacities, map keys and values (`#[repr(C)]`, explicit padding, bytemuck
//! `Pod`), counter indices and the program's load-time settings. The
//! [`model`] module is a pure-Rust reference model of the verdict, written
//! from the RFCs independently of the eBPF code, for tests.
#![no_std]

// The unit tests (`hash`'s too) use std, also without the `std` feature:
// `cargo test -p anycast-common` alone compiles them.
#[cfg(any(feature = "std", test))]
extern crate std;

mod counters;
mod exact_index;
pub mod explain;
mod flows;
#[cfg(feature = "std")]
pub mod frame;
pub mod hash;
#[cfg(feature = "std")]
pub mod maglev;
mod members;
#[cfg(feature = "std")]
pub mod model;
#[cfg(feature = "user")]
mod names;
pub mod prefix_trie;
mod scope;
mod trace;
pub mod wire;

pub use counters::*;
pub use exact_index::*;
pub use flows::*;
pub use members::*;
pub use scope::*;
pub use trace::*;

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
    /// Per-CPU global counters: one [`GlobalCounters`](super::GlobalCounters) at index 0.
    pub const GLOBAL_STATS: &str = "GLOBAL_STATS";
    /// Per-CPU per-group counters, indexed by group id: [`GroupCounters`](super::GroupCounters).
    pub const GROUP_STATS: &str = "GROUP_STATS";
    /// Attached interfaces by ifindex: [`IfaceConfig`](super::IfaceConfig). Written by userspace.
    pub const IFACES: &str = "IFACES";
    /// Layout version of the pinned state: one `u32` at index 0.
    pub const META: &str = "ANYCAST_META";
    /// Members by id: [`MemberInfo`](super::MemberInfo).
    pub const MEMBERS: &str = "MEMBERS";
    /// Published selection tables, two slots per group: [`Selection`](super::Selection).
    pub const SELECTION: &str = "SELECTION";
    /// Registered member sources: [`MemberSourceKey`](super::MemberSourceKey) -> member id.
    pub const MEMBER_SOURCES: &str = "MEMBER_SOURCES";
    /// Per-CPU per-member counters: [`MemberCounters`](super::MemberCounters).
    pub const MEMBER_STATS: &str = "MEMBER_STATS";
    /// Egress interfaces for XDP_REDIRECT (devmap keyed by ifindex).
    pub const TX_PORTS: &str = "TX_PORTS";
    /// The flow table: [`FlowKey`](super::FlowKey) -> [`FlowEntry`](super::FlowEntry), LRU.
    pub const FLOWS: &str = "FLOWS";
    /// Per-CPU flood-guard state: [`FloodState`](super::FloodState).
    pub const FLOOD: &str = "FLOOD";
    /// Global settings, one [`Settings`](super::Settings) at index 0.
    pub const SETTINGS: &str = "SETTINGS";
    /// The prefix trie the data plane reads, two copies: a
    /// [`Node`](super::prefix_trie::Node) per index (see [`prefix_trie`](super::prefix_trie)).
    pub const PREFIX_NODES: &str = "PREFIX_NODES";
    /// Direct-mapped index of the exact addresses: an [`ExactBucket`](super::ExactBucket)
    /// per [`exact_bucket`](super::hash::exact_bucket).
    pub const EXACT_INDEX: &str = "EXACT_INDEX";
    /// The /16 filter of the exact addresses: one bit per first 16 bits
    /// of an address, set when an exact address may begin with them, in
    /// [`SLASH16_WORDS`](super::SLASH16_WORDS) `u64`s (see
    /// [`slash16_bit`](super::slash16_bit)).
    pub const EXACT_SLASH16: &str = "EXACT_SLASH16";
    /// Per-CPU rate limit of the Packet Too Big messages the program
    /// sends: [`TooBigLimit`](super::TooBigLimit). The program's own (not
    /// pinned, not in [`ALL`]): each attachment has its own.
    pub const TOO_BIG_LIMIT: &str = "TOO_BIG_LIMIT";
    /// The fragment table: [`FragmentKey`](super::FragmentKey) ->
    /// [`FragmentEntry`](super::FragmentEntry), LRU. The program's own
    /// (not pinned, not in [`ALL`]): its entries live for one datagram's
    /// reassembly time, and a restart that forgets them only sends the
    /// fragments in flight by their flow label.
    pub const FRAGMENTS: &str = "FRAGMENTS";
    /// Scopes by id: [`ScopeInfo`](super::ScopeInfo), the attachments
    /// from which a scoped anycast address may be reached.
    pub const SCOPES: &str = "SCOPES";
    /// Registered subnets (RFC 2526): [`SubnetKey`](super::SubnetKey) ->
    /// [`SubnetInfo`](super::SubnetInfo). Userspace only.
    pub const SUBNETS: &str = "SUBNETS";

    /// Every map the data plane pins, in a stable order.
    pub const ALL: [&str; 20] = [
        ANYCAST_ADDRS,
        ANYCAST_PREFIX,
        GROUPS,
        GLOBAL_STATS,
        GROUP_STATS,
        IFACES,
        META,
        MEMBERS,
        SELECTION,
        MEMBER_SOURCES,
        MEMBER_STATS,
        TX_PORTS,
        FLOWS,
        FLOOD,
        SETTINGS,
        PREFIX_NODES,
        EXACT_INDEX,
        SCOPES,
        SUBNETS,
        EXACT_SLASH16,
    ];
}

/// Names of the XDP programs in the eBPF object.
pub mod program_names {
    /// The anycast filter: parse, classify, act.
    pub const ANYCAST: &str = "anycast";
    /// A program that only returns XDP_PASS: the cost floor for benchmarks.
    pub const PASS_FLOOR: &str = "pass_floor";
}

/// Names in the benchmark's peer object (`peers`): the generator, the
/// member-side sink and the trivial programs the end-to-end bench compares
/// the anycast program against.
pub mod peer_names {
    /// XDP_TX after restoring the frame's first [`GEN_HEADER_LEN`] bytes:
    /// the live-frames generator (pages are reused, and routers downstream
    /// rewrite MACs and the hop limit in place).
    pub const GEN_TX: &str = "gen_tx";
    /// Counts into [`SINK_PACKETS`] and drops: the member's receiver.
    pub const SINK: &str = "sink";
    /// XDP_PASS and nothing else: the least an XDP program on the path of
    /// transit traffic costs.
    pub const PASS_ALL: &str = "pass_all";
    /// XDP_DROP and nothing else: the drop ceiling.
    pub const DROP_ALL: &str = "drop_all";
    /// Redirects every frame to [`PEER_PORT`] index 0: the redirect ceiling.
    pub const REDIRECT_ALL: &str = "redirect_all";
    /// Looks the IPv6 source up in [`DENY_SOURCES`] and drops on a hit:
    /// the simplest possible source filter.
    pub const LOOKUP_DROP: &str = "lookup_drop";
    /// Per-CPU packet counter of [`SINK`] (index 0, `u64`).
    pub const SINK_PACKETS: &str = "SINK_PACKETS";
    /// Devmap of [`REDIRECT_ALL`]: index 0 -> egress ifindex.
    pub const PEER_PORT: &str = "PEER_PORT";
    /// Source addresses [`LOOKUP_DROP`] drops: `[u8; 16]` -> `u8`.
    pub const DENY_SOURCES: &str = "DENY_SOURCES";
    /// The frame header [`GEN_TX`] restores (index 0, `[u64; GEN_HEADER_LEN / 8]`).
    pub const GEN_HEADER: &str = "GEN_HEADER";
    /// Stays in flight for a long while in a single run (a loop of loops),
    /// counting its runs' starts and ends in [`HOLD_MARKS`], then passes:
    /// for the tests of what waits for the program runs under way.
    pub const HOLD: &str = "hold";
    /// [`HOLD`]'s counters (`u64`): index [`HOLD_STARTED`], runs started;
    /// index [`HOLD_FINISHED`], runs finished.
    pub const HOLD_MARKS: &str = "HOLD_MARKS";
    /// [`HOLD_MARKS`] index of the runs started.
    pub const HOLD_STARTED: u32 = 0;
    /// [`HOLD_MARKS`] index of the runs finished.
    pub const HOLD_FINISHED: u32 = 1;
    /// Bytes [`GEN_TX`] restores: the Ethernet header and the IPv6 header
    /// up to the hop limit (what routers rewrite), rounded up to words.
    pub const GEN_HEADER_LEN: usize = 24;
    /// The kernel's LRU hash alone (the flow table's map type), for the
    /// bench: each run of these takes the next number of [`LRU_SEQ`] and
    /// makes a key no run made before. The floor: only that.
    pub const LRU_FLOOR: &str = "lru_floor";
    /// Looks a new key up in [`LRU_WIDE`] (a miss: a new flow under the
    /// flood guard); XDP_PASS when missed.
    pub const LRU_MISS: &str = "lru_miss";
    /// Looks a new key up in [`LRU_WIDE`], then inserts it (a new flow:
    /// into a full table, every insert evicts); XDP_DROP when inserted.
    pub const LRU_INSERT_WIDE: &str = "lru_insert_wide";
    /// As [`LRU_INSERT_WIDE`] with a 16-byte key, in [`LRU_NARROW`].
    pub const LRU_INSERT_NARROW: &str = "lru_insert_narrow";
    /// As [`LRU_INSERT_WIDE`], in [`LRU_PER_CPU`].
    pub const LRU_INSERT_PER_CPU: &str = "lru_insert_per_cpu";
    /// LRU hash with the flow table's key size (44 bytes), the common LRU
    /// list: the flow table's shape.
    pub const LRU_WIDE: &str = "LRU_WIDE";
    /// LRU hash with a 16-byte key.
    pub const LRU_NARROW: &str = "LRU_NARROW";
    /// LRU hash with a 44-byte key and a list per CPU (`BPF_F_NO_COMMON_LRU`).
    pub const LRU_PER_CPU: &str = "LRU_PER_CPU";
    /// Per CPU, `u64`: the LRU programs' key counter at index 0, and at
    /// [`LRU_UNEXPECTED`] their runs that took another path than the one
    /// timed (a key found, an insert refused).
    pub const LRU_SEQ: &str = "LRU_SEQ";
    /// [`LRU_SEQ`]'s index of the unexpected runs.
    pub const LRU_UNEXPECTED: u32 = 1;
    /// The flow table's key size in 32-bit words, as the LRU programs' wide key.
    pub const LRU_WIDE_WORDS: usize = core::mem::size_of::<super::FlowKey>() / 4;
}

/// Names of the load-time settings (read-only globals) of the anycast program.
pub mod globals {
    /// The interface role, one of [`IfaceRole`](super::IfaceRole) as `u8`.
    pub const ROLE: &str = "ROLE";
    /// What to do with anycast-sourced packets, one of [`SourceAction`](super::SourceAction) as `u8`.
    pub const SOURCE_ACTION: &str = "SOURCE_ACTION";
    /// The attachment's id in `IFACES` (`u32`), which scopes name.
    pub const ATTACHMENT: &str = "ATTACHMENT";
    /// Bits of an exact-address index bucket number (`u32`): the index
    /// has 2^bits buckets. The loader takes it from the `EXACT_INDEX` map
    /// the program is given (see [`exact_index_bits`](super::exact_index_bits)).
    pub const EXACT_INDEX_BITS: &str = "EXACT_INDEX_BITS";
    /// Nodes of one copy of the prefix trie (`u32`): the loader takes it
    /// from the `PREFIX_NODES` map the program is given (half its size,
    /// see [`prefix_trie::copy_nodes`](super::prefix_trie::copy_nodes)).
    pub const PREFIX_COPY_NODES: &str = "PREFIX_COPY_NODES";
}

/// Version of the layout of everything pinned; bumped whenever a map's key
/// or value changes so that a new binary refuses stale pins with a clear error.
///
/// 8: attachments keyed by an id, with the interface's index and network
/// namespace in [`IfaceConfig`]; members record their interface's name and
/// namespace, the operator's state apart from the one the data plane reads,
/// and how often their interface was lost ([`MemberInfo`]); the journal
/// and the address loads' tags (`Settings::journal`, `AddrValue::load_tag`);
/// group counters in 32 slots.
///
/// 9: scoped addresses (the scope in [`AddrValue`] and in the index's
/// words, `SCOPES`) and registered subnets (`SUBNETS`).
///
/// 10: the exact-address table and its index sized at creation
/// (`--max-addresses`): the index's bucket count, and so every address's
/// bucket, follows the table's capacity ([`exact_index_buckets`]).
///
/// 11: the prefix trie in arrays (`PREFIX_NODES`, `Settings::prefix_copy`)
/// instead of the prefilter (`PREFILTER`, `Settings::prefix_lens`). Still
/// 11 with the trie's copies sized by `--max-prefixes`: a state of the
/// default sizes has the same maps, copies and nodes as before; a smaller
/// state can only be made by a build that knows copy sizes, and a build
/// of fixed copies given one reads past its map (the kernel refuses the
/// writes; its data plane asks the LPM trie), never a wrong node.
///
/// 12: the prefix trie path-compressed: a child slot names the byte its
/// node takes and may skip levels, a node carries the path and word the
/// walk checks then (`prefix_trie::Node`, 1,040 bytes, was 1,024).
///
/// 13: the /16 filter of the exact addresses (`EXACT_SLASH16`): the data
/// plane reads the index and the exact table only for an address whose
/// first 16 bits an exact address may have.
pub const LAYOUT_VERSION: u32 = 13;

/// Default capacity of the exact-address table (hash, allocated on
/// insert); `--max-addresses` chooses another when the state is created.
pub const MAX_ANYCAST_ADDRS: u32 = 1 << 20;
/// Largest capacity of the exact-address table: its index then takes
/// 1 GiB.
pub const MAX_ANYCAST_ADDRS_LIMIT: u32 = 1 << 24;
/// Default capacity of the prefix table (LPM trie, allocated on insert);
/// `--max-prefixes` chooses another when the state is created, which
/// sizes the prefix trie too ([`prefix_trie::copy_nodes`]).
pub const MAX_ANYCAST_PREFIXES: u32 = 1 << 16;
/// Largest capacity of the prefix table (its trie's copies stop growing
/// long before: [`prefix_trie::COPY_NODES`]).
pub const MAX_ANYCAST_PREFIXES_LIMIT: u32 = 1 << 24;
/// Number of group ids; id 0 means "no group" and is never allocated.
pub const MAX_GROUPS: u32 = 1024;
// A group id fits the low half of an address's word (`AddrValue::word`).
const _: () = assert!(MAX_GROUPS <= 1 << 16);
/// Capacity of the attached-interface table.
pub const MAX_IFACES: u32 = 256;
/// Longest group name, in bytes.
pub const GROUP_NAME_LEN: usize = 32;
/// Number of member ids; id 0 means "no member" and is never allocated.
pub const MAX_MEMBERS: u32 = 1 << 16;
/// Longest member name, in bytes.
pub const MEMBER_NAME_LEN: usize = 32;
/// Most members tied at the nearest metric that share a group's traffic.
pub const MAX_TIED: usize = 64;
/// Largest consistent-hash (Maglev) table of a group: a prime.
pub const MAGLEV_MAX: usize = 4093;
/// Default size of a group's consistent-hash table: a prime.
pub const MAGLEV_DEFAULT: u32 = 1021;
/// Default capacity of the flow table (all groups together).
pub const DEFAULT_FLOW_TABLE: u32 = 1 << 20;
/// Default idle timeout of a TCP flow, seconds.
pub const DEFAULT_TCP_TIMEOUT: u32 = 300;
/// Default idle timeout of any other flow, seconds.
pub const DEFAULT_OTHER_TIMEOUT: u32 = 30;
/// Slots of each CPU's flow cache in front of the flow table (a power of
/// two, direct-mapped by the flow hash; 72 bytes each, 576 KiB per CPU).
/// Most packets belong to a few heavy flows; the rest go to the table.
pub const FLOW_CACHE_SLOTS: u32 = 1 << 13;
/// Slots of each CPU's outer sources of encapsulation (the data plane's
/// `ENCAP_SCRATCH`), direct-mapped by the member's address
/// ([`hash::source_slot`]): a group has a few encapsulated members.
pub const SOURCE_SLOTS: u32 = 1 << SOURCE_SLOT_BITS;
/// Bits of [`SOURCE_SLOTS`].
pub const SOURCE_SLOT_BITS: u32 = 4;
/// Capacity of the egress-port devmap.
pub const MAX_TX_PORTS: u32 = 256;
/// Hop limit of the outer header of encapsulated packets.
pub const ENCAP_HOP_LIMIT: u8 = 64;

/// The IPv6 minimum link MTU (RFC 8200 section 5): a packet this long or
/// shorter fits every link, so only a longer one is checked against its
/// egress MTU.
pub const IPV6_MIN_MTU: usize = 1280;
/// Hop limit of the ICMPv6 Packet Too Big messages the program sends (the
/// default hop limit Linux gives the messages it originates).
pub const TOO_BIG_HOP_LIMIT: u8 = 64;
/// Packet Too Big messages each CPU sends per second at most, per
/// attachment (RFC 4443 section 2.4 (f)); past it the packet goes to the
/// kernel, counted `too_big_passed`. Linux's own ICMP limit
/// (`net.ipv4.icmp_msgs_per_sec`, which covers ICMPv6 too) is 1000.
pub const TOO_BIG_PER_SEC: u64 = 1000;
/// Packet Too Big messages each CPU may send at once after a quiet spell
/// (Linux's `net.ipv4.icmp_msgs_burst` is 50).
pub const TOO_BIG_BURST: u64 = 50;
/// Credit one Packet Too Big message costs, ns.
pub const TOO_BIG_COST_NS: u64 = 1_000_000_000 / TOO_BIG_PER_SEC;

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

/// Value of both address tables: which group an anycast address belongs
/// to, and from where it may be reached.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AddrValue {
    /// Group id (host byte order), 1..[`MAX_GROUPS`].
    pub group_id: u16,
    /// Its scope: an id in `SCOPES`, 0 for none (reached from every
    /// interface).
    pub scope_id: u16,
    /// The tag of the address load that added the entry (see
    /// [`Settings::load_tag`]), 0 for entries added otherwise. Userspace
    /// only: the data plane reads the group.
    pub load_tag: u32,
}
const _: () = assert!(core::mem::size_of::<AddrValue>() == 8);

impl AddrValue {
    /// The address's group and scope as one word, as the exact-address
    /// index publishes them: the group in the low half (never 0 for a
    /// configured address), the scope in the high half.
    #[inline(always)]
    pub const fn word(&self) -> u32 {
        addr_word(self.group_id as u32, self.scope_id as u32)
    }
}

/// The word of an address of group `group` and scope `scope` (see
/// [`AddrValue::word`]).
#[inline(always)]
pub const fn addr_word(group: u32, scope: u32) -> u32 {
    (group & 0xffff) | scope << 16
}

/// The group of an address's word.
#[inline(always)]
pub const fn word_group(word: u32) -> u32 {
    word & 0xffff
}

/// The scope of an address's word (0: none).
#[inline(always)]
pub const fn word_scope(word: u32) -> u32 {
    word >> 16
}

/// What a group does with anycast-destined packets when no member is up.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// XDP_PASS: the kernel routes the packet normally.
    Pass = 0,
    /// XDP_DROP.
    Drop = 1,
}

impl Fallback {
    /// Decodes the wire value; unknown values fall back to passing.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Drop,
            _ => Self::Pass,
        }
    }
}

/// A group, indexed by its id in the `GROUPS` array. Id 0 is never used.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupInfo {
    /// The group's name, UTF-8, NUL-padded.
    pub name: [u8; GROUP_NAME_LEN],
    /// 1 when the id is allocated, 0 when free.
    pub in_use: u8,
    /// [`Fallback`] as `u8`.
    pub fallback: u8,
    /// 1 when `tunnel_source` is set.
    pub has_tunnel_source: u8,
    /// [`Affinity`] as `u8`.
    pub affinity: u8,
    /// How many anycast addresses and prefixes name this group (host byte order).
    pub addresses: u32,
    /// Which of the group's two [`Selection`] slots is live (0 or 1). Userspace
    /// fills the other slot, then flips this word: the data plane never sees
    /// a half-written selection.
    pub active_slot: u32,
    /// Outer source address of encapsulated packets, network byte order.
    pub tunnel_source: [u8; 16],
    /// Idle timeout of TCP flows, seconds (0: the default).
    pub tcp_timeout: u32,
    /// Idle timeout of other flows, seconds (0: the default).
    pub other_timeout: u32,
    /// Size of the group's consistent-hash table, a prime (0: [`MAGLEV_DEFAULT`]).
    pub table_size: u32,
}
const _: () = assert!(core::mem::size_of::<GroupInfo>() == 72);
// The XDP program reads the tunnel source as 32-bit words.
const _: () = assert!(core::mem::offset_of!(GroupInfo, tunnel_source) % 4 == 0);

/// Whether a group keeps flows on their member.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// A known flow stays on its member while it is registered and up.
    Flow = 0,
    /// Stateless: every packet goes by the consistent hash.
    None = 1,
}

impl Affinity {
    /// Decodes the wire value.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::None,
            _ => Self::Flow,
        }
    }
}

impl GroupInfo {
    /// The idle timeout of a flow of protocol `proto`, in nanoseconds.
    #[inline(always)]
    pub const fn flow_timeout_ns(&self, proto: u8) -> u64 {
        let secs = if proto == wire::IPPROTO_TCP {
            if self.tcp_timeout == 0 {
                DEFAULT_TCP_TIMEOUT
            } else {
                self.tcp_timeout
            }
        } else if self.other_timeout == 0 {
            DEFAULT_OTHER_TIMEOUT
        } else {
            self.other_timeout
        };
        secs as u64 * 1_000_000_000
    }

    /// The consistent-hash table size in use.
    pub const fn maglev_size(&self) -> u32 {
        if self.table_size == 0 {
            MAGLEV_DEFAULT
        } else {
            self.table_size
        }
    }
}

/// Where a group's new flows go: a consistent-hash (Maglev) table over the
/// live members tied at the lowest metric. Indexed by `group_id * 2 + slot`
/// in `SELECTION`; a flow goes to `table[hash % size]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Selection {
    /// Number of distinct members in the table (0: no live member).
    pub count: u32,
    /// Table size in use: a prime, at most [`MAGLEV_MAX`].
    pub size: u32,
    /// Member ids.
    pub table: [u32; MAGLEV_MAX],
}
const _: () = assert!(core::mem::size_of::<Selection>() == 8 + 4 * MAGLEV_MAX);

/// Per-CPU token bucket of the Packet Too Big messages (value of
/// `TOO_BIG_LIMIT`): credit in nanoseconds of the clock, one message costs
/// [`TOO_BIG_COST_NS`], at most [`TOO_BIG_BURST`] messages' worth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TooBigLimit {
    /// Credit left, ns.
    pub credit_ns: u64,
    /// When the credit was last refilled (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<TooBigLimit>() == 16);

impl TooBigLimit {
    /// Takes one message's credit at time `now` (ns), after refilling what
    /// the time since the last refill earned: false when there is not
    /// enough. A clock behind `last_ns` earns nothing (a test sets a
    /// bucket empty so).
    pub fn take(&mut self, now: u64) -> bool {
        if now > self.last_ns {
            self.credit_ns = self
                .credit_ns
                .saturating_add(now - self.last_ns)
                .min(TOO_BIG_BURST * TOO_BIG_COST_NS);
            self.last_ns = now;
        }
        if self.credit_ns < TOO_BIG_COST_NS {
            return false;
        }
        self.credit_ns -= TOO_BIG_COST_NS;
        true
    }

    /// Whether [`Self::take`] at `now` would succeed, taking nothing (the
    /// explain instance reads the live bucket so).
    pub fn allows(&self, now: u64) -> bool {
        let mut copy = *self;
        copy.take(now)
    }
}

/// Global settings of the data plane.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Settings {
    /// Most new flows recorded per second per CPU; past it, new flows are
    /// steered by the consistent hash alone (0: no limit).
    pub flood_rate: u32,
    /// Number of anycast prefixes configured (the data plane reads
    /// `prefix_any`).
    pub prefixes: u32,
    /// Flow-table entries removed by userspace (`flows flush`), so far.
    pub flows_flushed: u64,
    /// The copy of the prefix trie the data plane reads (0 or 1, see
    /// [`prefix_trie`]): flipped by userspace, in one byte, after it
    /// rebuilt the other.
    pub prefix_copy: u8,
    /// 1 when any prefix is configured: else the data plane skips the
    /// prefix lookups (one byte, so that a reader never sees it half
    /// written).
    pub prefix_any: u8,
    /// Unused, zero.
    pub reserved: [u8; 3],
    /// What userspace has under way ([`JOURNAL_CHANGING`],
    /// [`JOURNAL_LOADING`]): set before a command's first write and cleared
    /// after its last, so that the next command knows when one was killed
    /// half-way. Userspace only.
    pub journal: u8,
    /// The group an unfinished address load created (0: none), freed with
    /// the load's entries when it is rolled back. Userspace only.
    pub load_group: u16,
    /// Bumped by userspace whenever it changes the flow table (flush,
    /// direct writes): the data plane's per-CPU flow caches forget what
    /// they remembered under an older value. Odd while a flush walks the
    /// table (see [`next_flow_epoch`]).
    pub flow_epoch: u32,
    /// The tag of the latest address load (entries it added carry it in
    /// [`AddrValue::load_tag`]); while [`JOURNAL_LOADING`] is set, the load
    /// has not finished and its entries are rolled back by the next
    /// command. Userspace only.
    pub load_tag: u32,
}

/// [`Settings::journal`]: a command is changing the maps; derived state
/// (the exact-address index, the prefix trie, counts, selections, member
/// sources) may be half-written.
pub const JOURNAL_CHANGING: u8 = 1;
/// [`Settings::journal`]: an address load is under way, its entries tagged
/// with [`Settings::load_tag`].
pub const JOURNAL_LOADING: u8 = 2;
const _: () = assert!(core::mem::size_of::<Settings>() == 32);
const _: () = assert!(
    core::mem::offset_of!(Settings, journal) == 21
        && core::mem::offset_of!(Settings, load_group) == 22
        && core::mem::offset_of!(Settings, load_tag) == 28
);

/// An attachment, in the `IFACES` table under an id userspace allocates
/// (1 to [`MAX_IFACES`]): an interface is known by its network namespace
/// and index together, as two namespaces may use the same index.
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
    /// Interface index in its namespace (host byte order).
    pub ifindex: u32,
    /// The interface's network namespace.
    pub netns: NetnsId,
}
const _: () = assert!(core::mem::size_of::<IfaceConfig>() == 40);

#[cfg(feature = "user")]
mod user {
    use super::*;

    // SAFETY: all of these are `#[repr(C)]` plain data with no implicit padding
    // (bytemuck's derive proves it), so any bit pattern is valid.
    unsafe impl aya::Pod for AddrKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for AddrValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ExactBucket {}
    // SAFETY: as above.
    unsafe impl aya::Pod for GroupInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for IfaceConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::prefix_trie::Node {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::explain::ExplainTrail {}
    // SAFETY: as above.
    unsafe impl aya::Pod for GroupCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for GlobalCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for MemberInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Selection {}
    // SAFETY: as above.
    unsafe impl aya::Pod for MemberSourceKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for MemberCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FlowEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FragmentKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FragmentEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FloodState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TooBigLimit {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TraceControl {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TraceCpu {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TraceRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Settings {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NetnsId {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ScopeInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SubnetKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SubnetInfo {}

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

    impl MemberInfo {
        /// The member's name as text.
        pub fn name_str(&self) -> std::string::String {
            nul_padded_str(&self.name)
        }

        /// L2: the name its interface had when the member was added.
        pub fn ifname_str(&self) -> std::string::String {
            nul_padded_str(&self.ifname)
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
