//! Every map of the data plane, each with its purpose. Names and capacities
//! come from `anycast-common`; userspace pins them under the pin dir.

use anycast_common::{
    AddrKey, AddrValue, DEFAULT_FLOW_TABLE, EXACT_INDEX_BUCKETS, ExactBucket, FloodState,
    FlowEntry, FlowKey, GlobalCounters, GroupCounters, GroupInfo, IfaceConfig, MAX_ANYCAST_ADDRS,
    MAX_ANYCAST_PREFIXES, MAX_GROUPS, MAX_IFACES, MAX_MEMBERS, MAX_TX_PORTS, MemberCounters,
    MemberInfo, MemberSourceKey, PREFILTER_BUCKETS, Selection, Settings,
};
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};

/// Exact anycast addresses. Allocated on insert: a million-entry table costs
/// memory only for the addresses configured.
#[map(name = "ANYCAST_ADDRS")]
pub(crate) static ANYCAST_ADDRS: HashMap<AddrKey, AddrValue> =
    HashMap::with_max_entries(MAX_ANYCAST_ADDRS, BPF_F_NO_PREALLOC);

/// The exact addresses again, direct-mapped (see `ExactBucket`): most /128
/// lookups are answered here, by an array read the verifier inlines, and
/// only addresses that share a slot fall back to `ANYCAST_ADDRS`.
#[map(name = "EXACT_INDEX")]
pub(crate) static EXACT_INDEX: Array<ExactBucket> = Array::with_max_entries(EXACT_INDEX_BUCKETS, 0);

/// Anycast prefixes, longest match wins.
#[map(name = "ANYCAST_PREFIX")]
pub(crate) static ANYCAST_PREFIX: LpmTrie<[u8; 16], AddrValue> =
    LpmTrie::with_max_entries(MAX_ANYCAST_PREFIXES, 0);

/// Groups by id. Read by userspace today; the redirect path reads it too.
#[map(name = "GROUPS")]
pub(crate) static GROUPS: Array<GroupInfo> = Array::with_max_entries(MAX_GROUPS, 0);

/// Global verdict counters, per CPU so that the hot path never contends.
#[map(name = "GLOBAL_STATS")]
pub(crate) static GLOBAL_STATS: PerCpuArray<GlobalCounters> = PerCpuArray::with_max_entries(1, 0);

/// Per-group counters, per CPU.
#[map(name = "GROUP_STATS")]
pub(crate) static GROUP_STATS: PerCpuArray<GroupCounters> =
    PerCpuArray::with_max_entries(MAX_GROUPS, 0);

/// Attached interfaces. Written and read by userspace only; declared here so
/// that it is created and pinned with the rest of the state.
#[map(name = "IFACES")]
pub(crate) static IFACES: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(MAX_IFACES, 0);

/// Layout version of the pinned state (index 0), checked by userspace.
#[map(name = "ANYCAST_META")]
pub(crate) static ANYCAST_META: Array<u32> = Array::with_max_entries(1, 0);

/// Members by id: how to reach each one.
#[map(name = "MEMBERS")]
pub(crate) static MEMBERS: Array<MemberInfo> = Array::with_max_entries(MAX_MEMBERS, 0);

/// Two consistent-hash tables per group (`group * 2 + slot`);
/// `GroupInfo::active_slot` says which is live.
#[map(name = "SELECTION")]
pub(crate) static SELECTION: Array<Selection> = Array::with_max_entries(MAX_GROUPS * 2, 0);

/// Who may use a group's anycast source on a member interface.
#[map(name = "MEMBER_SOURCES")]
pub(crate) static MEMBER_SOURCES: HashMap<MemberSourceKey, u32> =
    HashMap::with_max_entries(MAX_MEMBERS, BPF_F_NO_PREALLOC);

/// Per-member counters, per CPU.
#[map(name = "MEMBER_STATS")]
pub(crate) static MEMBER_STATS: PerCpuArray<MemberCounters> =
    PerCpuArray::with_max_entries(MAX_MEMBERS, 0);

/// Egress interfaces of on-link members, for bulked XDP_REDIRECT.
#[map(name = "TX_PORTS")]
pub(crate) static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_TX_PORTS, 0);

/// The flow table: which member took a flow, and when it was last seen. LRU,
/// so a full table forgets its idlest flows first; sized at creation by
/// userspace (default 1M flows).
#[map(name = "FLOWS")]
pub(crate) static FLOWS: LruHashMap<FlowKey, FlowEntry> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_TABLE, 0);

/// Per-CPU flood-guard window (index 0).
#[map(name = "FLOOD")]
pub(crate) static FLOOD: PerCpuArray<FloodState> = PerCpuArray::with_max_entries(1, 0);

/// Global settings (index 0), written by userspace.
#[map(name = "SETTINGS")]
pub(crate) static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Counting prefilter: per bucket, how many configured prefixes hash there
/// (see `anycast_common::hash::prefilter_bucket`). An array, so the
/// verifier inlines the lookup: no helper call on the pass path.
#[map(name = "PREFILTER")]
pub(crate) static PREFILTER: Array<u32> = Array::with_max_entries(PREFILTER_BUCKETS, 0);
