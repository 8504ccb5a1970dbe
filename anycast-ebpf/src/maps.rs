//! Every map of the program, each with its purpose: first the state that
//! userspace shares (names and capacities from `anycast-common`; userspace
//! pins it under the pin dir), then the per-CPU scratch space and caches
//! that only the program uses, with their layouts.

use anycast_common::{
    AddrKey, AddrValue, DEFAULT_FLOW_TABLE, EXACT_INDEX_BUCKETS, ExactBucket, FLOW_CACHE_SLOTS,
    FRAGMENT_TABLE, FloodState, FlowEntry, FlowKey, FragmentEntry, FragmentKey, GlobalCounters,
    GroupCounters, GroupInfo, IfaceConfig, MAX_ANYCAST_ADDRS, MAX_ANYCAST_PREFIXES, MAX_GROUPS,
    MAX_IFACES, MAX_MEMBERS, MAX_SCOPES, MAX_SUBNETS, MAX_TX_PORTS, MemberCounters, MemberInfo,
    MemberSourceKey, SLASH16_WORDS, SOURCE_SLOTS, ScopeInfo, Selection, Settings, SubnetInfo,
    SubnetKey, TRACE_RING_BYTES, TooBigLimit, TraceControl, TraceCpu,
    explain::ExplainTrail,
    prefix_trie::{self, Node},
};
use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, bpf_fib_lookup},
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
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

/// Which first 16 bits an exact address may have (see
/// `anycast_common::slash16_bit`): the index and the exact table are read
/// only for an address whose bit is set.
#[map(name = "EXACT_SLASH16")]
pub(crate) static EXACT_SLASH16: Array<u64> = Array::with_max_entries(SLASH16_WORDS, 0);

/// Anycast prefixes, longest match wins: the table of record, and the
/// data plane's answer where the prefix trie (`PREFIX_NODES`) asks it.
#[map(name = "ANYCAST_PREFIX")]
pub(crate) static ANYCAST_PREFIX: LpmTrie<[u8; 16], AddrValue> =
    LpmTrie::with_max_entries(MAX_ANYCAST_PREFIXES, 0);

/// Scopes by id: the attachments from which a scoped address may be
/// reached (`AddrValue::scope_id`).
#[map(name = "SCOPES")]
pub(crate) static SCOPES: Array<ScopeInfo> = Array::with_max_entries(MAX_SCOPES, 0);

/// Registered subnets (RFC 2526). Written and read by userspace only;
/// declared here so that it is created and pinned with the rest.
#[map(name = "SUBNETS")]
pub(crate) static SUBNETS: HashMap<SubnetKey, SubnetInfo> =
    HashMap::with_max_entries(MAX_SUBNETS, BPF_F_NO_PREALLOC);

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

/// The prefix trie, two copies (see `anycast_common::prefix_trie`). An
/// array, so the verifier inlines each lookup: one memory read a level,
/// no helper call.
#[map(name = "PREFIX_NODES")]
pub(crate) static PREFIX_NODES: Array<Node> = Array::with_max_entries(prefix_trie::PREFIX_NODES, 0);

// Per-CPU scratch space and caches, used by the program alone: not pinned,
// so each attachment's instance of the program has its own.

/// The fragment table: the member each datagram's first fragment went to,
/// for its later fragments (`fragment`). LRU and short-lived (an entry
/// counts for `FRAGMENT_TIMEOUT_NS`); the program's own: an attachment
/// that starts without it sends the fragments in flight by their label.
#[map(name = "FRAGMENTS")]
pub(crate) static FRAGMENTS: LruHashMap<FragmentKey, FragmentEntry> =
    LruHashMap::with_max_entries(FRAGMENT_TABLE, 0);

/// A flow: its table key and its hash. Built in a per-CPU scratch slot
/// rather than on the stack, which the redirect path would overflow. The
/// slot also keeps this CPU's clock reading (see `flow::now`): one map
/// lookup for both.
#[repr(C)]
pub(crate) struct Flow {
    /// Key in the flow table.
    pub(crate) key: FlowKey,
    /// Hash, for the consistent-hash table and the outer flow label.
    pub(crate) hash: u32,
    /// Built from the quote of an ICMPv6 error: steer, never record.
    pub(crate) icmp_error: bool,
    /// A later fragment (offset above 0): it follows its first fragment
    /// (`fragment`) or its label's flow, never records one.
    pub(crate) later_fragment: bool,
    /// A first fragment (offset 0, M set): its member goes to the fragment
    /// table. Kept here, as `later_fragment`, rather than decided on the
    /// parser's values: a branch on those makes the verifier keep every
    /// state of the header walk that differs in them apart.
    pub(crate) first_fragment: bool,
    /// Its Tunnel Encapsulation Limit is 0: never to be encapsulated
    /// (`parse::ipv6::encap_limit_zero`). Kept here rather than in a
    /// register: a value in a map is unknown to the verifier, so the two
    /// answers do not keep the paths after the call apart.
    pub(crate) encap_limit_zero: bool,
    /// The jiffy of the clock reading `clock_ns`.
    pub(crate) clock_jiffies: u64,
    /// This CPU's last reading of the coarse clock.
    pub(crate) clock_ns: u64,
    /// The fragment-table key of a fragment's datagram (`fragment`),
    /// built here rather than on the stack.
    pub(crate) fragment: FragmentKey,
}

/// The flow of the packet being handled, per CPU (`flow::of_packet`).
#[map(name = "FLOW_SCRATCH")]
pub(crate) static FLOW_SCRATCH: PerCpuArray<Flow> = PerCpuArray::with_max_entries(1, 0);

/// One flow this CPU remembers: the flow cache in front of the flow table.
///
/// A hit needs no helper call (the table's lookup is one, and with this
/// VM's return thunks each call and return costs tens of ns per packet).
/// The table stays the truth that every CPU and userspace share: a hit
/// refreshes the table's entry at most once a second, an entry that leaves
/// the cache writes its last packet's time back, and userspace invalidates
/// every cache when it changes the table (`Settings::flow_epoch`). Members
/// are checked on every hit, as on a table hit.
#[repr(C)]
pub(crate) struct CachedFlow {
    /// The flow's key.
    pub(crate) key: FlowKey,
    /// The member it went to.
    pub(crate) member_id: u32,
    /// `Settings::flow_epoch` when remembered.
    pub(crate) epoch: u32,
    /// 1 when the slot holds a flow.
    pub(crate) used: u32,
    /// When this CPU last saw the flow.
    pub(crate) last_seen_ns: u64,
    /// When the flow table's entry was last refreshed from here.
    pub(crate) synced_ns: u64,
}

/// The flow cache: per CPU, direct-mapped by the flow hash.
#[map(name = "FLOW_CACHE")]
pub(crate) static FLOW_CACHE: PerCpuArray<CachedFlow> =
    PerCpuArray::with_max_entries(FLOW_CACHE_SLOTS, 0);

/// Per-CPU scratch space of the encapsulation and of the Packet Too Big:
/// the FIB request and the MTU check, off the 512-byte stack, and this
/// CPU's outer sources (`act::redirect_encap`).
#[repr(C)]
pub(crate) struct EncapScratch {
    /// The request `bpf_fib_lookup` fills in.
    pub(crate) fib: bpf_fib_lookup,
    /// The length `bpf_check_mtu` checks, and the MTU it answers.
    pub(crate) mtu: u32,
    /// The outer sources the kernel chose lately, direct-mapped by the
    /// member's address (`hash::source_slot`).
    pub(crate) sources: [ChosenSource; SOURCE_SLOTS as usize],
}

/// The outer source the kernel chose (`BPF_FIB_LOOKUP_SRC`) toward an
/// encapsulated member, for packets that came in on `ingress`, and when.
#[repr(C)]
pub(crate) struct ChosenSource {
    /// The member's address (the outer destination), native words.
    pub(crate) dst: [u32; 4],
    /// The source the kernel chose, native words.
    pub(crate) src: [u32; 4],
    /// The interface the packet came in on (the FIB request's `ifindex`).
    pub(crate) ingress: u32,
    /// 1 once written.
    pub(crate) used: u32,
    /// This CPU's coarse clock when the kernel chose it.
    pub(crate) chosen_ns: u64,
}

/// The FIB request and MTU check, per CPU (`act::redirect_encap`,
/// `too_big`).
#[map(name = "ENCAP_SCRATCH")]
pub(crate) static ENCAP_SCRATCH: PerCpuArray<EncapScratch> = PerCpuArray::with_max_entries(1, 0);

/// The rate limit of Packet Too Big messages, per CPU (`too_big::answer`).
#[map(name = "TOO_BIG_LIMIT")]
pub(crate) static TOO_BIG_LIMIT: PerCpuArray<TooBigLimit> = PerCpuArray::with_max_entries(1, 0);

/// The decision trail of the explain instance (`explain`), per CPU: what
/// the stages found, in place of the counters. Unused by every other
/// instance (its writes are removed with the explain branches).
#[map(name = "EXPLAIN_TRAIL")]
pub(crate) static EXPLAIN_TRAIL: PerCpuArray<ExplainTrail> = PerCpuArray::with_max_entries(1, 0);

// Tracing (`trace`): pinned next to the layout's maps so that every
// attachment's instance and the trace process share them (see
// `anycast_common::trace_map_names`).

/// What the trace process asks for (index 0): off while its deadline is 0.
#[map(name = "TRACE_CTL")]
pub(crate) static TRACE_CTL: Array<TraceControl> = Array::with_max_entries(1, 0);

/// Per-CPU sampling counter, rate limit and lost records of tracing.
#[map(name = "TRACE_CPU")]
pub(crate) static TRACE_CPU: PerCpuArray<TraceCpu> = PerCpuArray::with_max_entries(1, 0);

/// The records of traced decisions.
#[map(name = "TRACE_EVENTS")]
pub(crate) static TRACE_EVENTS: RingBuf = RingBuf::with_byte_size(TRACE_RING_BYTES, 0);
