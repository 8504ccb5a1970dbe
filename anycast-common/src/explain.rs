//! The decision trail of the explain instance of the program (`anycast
//! explain`): what one run of the program on one frame found at each
//! stage, written to its own per-CPU map ([`EXPLAIN_TRAIL`]) instead of
//! the counters, and read back by userspace after `BPF_PROG_TEST_RUN`.
//!
//! The explain instance is the same program loaded with the load-time
//! constant [`EXPLAIN`] set: every write to shared state is skipped in it,
//! and the verifier removes those branches from every other instance.

use bytemuck::{Pod, Zeroable};

use crate::FlowKey;

/// Name of the load-time constant (`u8`, 1 in the explain instance).
pub const EXPLAIN: &str = "EXPLAIN";

/// Name of the explain instance's trail map: a per-CPU array of one
/// [`ExplainTrail`]. The program's own (not pinned, not in `map_names::ALL`).
pub const EXPLAIN_TRAIL: &str = "EXPLAIN_TRAIL";

/// [`ExplainTrail::group_stat`] of a verdict reached before acting (no
/// group counter of the destination moves).
pub const NO_GROUP_STAT: u32 = u32::MAX;

/// How the member was chosen ([`ExplainTrail::chosen_by`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChosenBy {
    /// No member was chosen.
    None = 0,
    /// A later fragment followed its datagram's first fragment (the
    /// fragment table).
    Fragment = 1,
    /// A live flow-table entry.
    FlowEntry = 2,
    /// The group's consistent-hash table.
    Hash = 3,
}

impl ChosenBy {
    /// From its `u8`; unknown values are `None`.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => ChosenBy::Fragment,
            2 => ChosenBy::FlowEntry,
            3 => ChosenBy::Hash,
            _ => ChosenBy::None,
        }
    }
}

/// [`ExplainTrail::reached`] bits: the stages the packet reached.
pub mod reached {
    /// Ethernet, VLAN tags and the IPv6 fixed header parsed.
    pub const PARSED: u32 = 1;
    /// The extension headers were walked to the upper-layer header.
    pub const TRANSPORT: u32 = 1 << 1;
    /// The flow was built (key and hash in the trail).
    pub const FLOW: u32 = 1 << 2;
    /// A flow-table entry was found (live or stale).
    pub const ENTRY: u32 = 1 << 3;
    /// The consistent-hash table was read.
    pub const HASH: u32 = 1 << 4;
    /// The FIB answered the encapsulation's lookup (fields `fib_*`).
    pub const FIB: u32 = 1 << 5;
    /// The fragment table had an entry for the datagram.
    pub const FRAGMENT: u32 = 1 << 6;
    /// The flood guard would not let a new flow be recorded.
    pub const FLOOD_FULL: u32 = 1 << 7;
    /// The verdict was recorded (the run completed).
    pub const DONE: u32 = 1 << 31;
}

/// What one run of the explain instance found. All integers in host byte
/// order unless said; userspace zeroes it before each run.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ExplainTrail {
    /// [`reached`] bits.
    pub reached: u32,
    /// The XDP action returned.
    pub action: u32,
    /// The final global counter (`GlobalStat` as u32).
    pub stat: u32,
    /// The destination group's counter of the outcome (`GroupStat` as
    /// u32), [`NO_GROUP_STAT`] for a verdict reached before acting.
    pub group_stat: u32,
    /// The anycast source's group (0: not an anycast source).
    pub source_group: u32,
    /// The source rule's group counter (`GroupStat` as u32), meaningful
    /// when `source_group` is not 0.
    pub source_stat: u32,
    /// The destination's anycast group (0: not anycast, or not reached).
    pub group: u32,
    /// The member redirected to, 0 if none.
    pub member: u32,
    /// What the flow table did (the program's `FlowOutcome` as u32:
    /// 0 none, 1 hit, 2 hit restored, 3 recorded over a stale entry,
    /// 4 created, 5 bypassed by the flood guard).
    pub flow_outcome: u32,
    /// The flow's hash (valid with [`reached::FLOW`]).
    pub flow_hash: u32,
    /// The flow's key (valid with [`reached::FLOW`]).
    pub flow_key: FlowKey,
    /// [`ChosenBy`] as u8.
    pub chosen_by: u8,
    /// Steered by the flow an ICMPv6 error quotes.
    pub icmp_error: u8,
    /// A first fragment (offset 0, M set).
    pub first_fragment: u8,
    /// A later fragment (offset above 0).
    pub later_fragment: u8,
    /// Offset of the IPv6 header in the frame (14 plus 4 per VLAN tag).
    pub l3_off: u16,
    /// The fixed header's next header.
    pub next_header: u8,
    /// The fixed header's hop limit.
    pub hop_limit: u8,
    /// The fixed header's flow label.
    pub flow_label: u32,
    /// The upper-layer protocol the walk reached ([`reached::TRANSPORT`]).
    pub proto: u8,
    /// The upper-layer header is in this packet (not a later fragment).
    pub upper: u8,
    /// The Tunnel Encapsulation Limit is 0.
    pub encap_limit_zero: u8,
    /// Reserved, zero.
    pub _pad0: u8,
    /// Offset of the upper-layer header in the frame.
    pub l4_off: u32,
    /// The Fragment header's Identification, for a fragment.
    pub frag_id: u32,
    /// The member of the flow-table entry found ([`reached::ENTRY`]).
    pub entry_member: u32,
    /// When that entry was last seen (CLOCK_MONOTONIC_COARSE, ns).
    pub entry_last_seen_ns: u64,
    /// The clock as the program read it (CLOCK_MONOTONIC_COARSE, ns; 0 if
    /// not read).
    pub now_ns: u64,
    /// The flow timeout of the group for this flow's protocol (ns).
    pub timeout_ns: u64,
    /// The selection slot read (`GroupInfo::active_slot & 1`).
    pub active_slot: u32,
    /// The consistent-hash table's size.
    pub table_size: u32,
    /// The slot of the table the flow hash fell in (`hash % size`).
    pub table_slot: u32,
    /// The member of the fragment-table entry ([`reached::FRAGMENT`]).
    pub fragment_member: u32,
    /// When the datagram's first fragment went (ns).
    pub fragment_first_ns: u64,
    /// The FIB's answer for an encapsulated member: next hop's MAC.
    pub fib_dmac: [u8; 6],
    /// Our MAC towards it.
    pub fib_smac: [u8; 6],
    /// The egress interface's index.
    pub fib_ifindex: u32,
    /// The outer source address (network byte order).
    pub fib_src: [u8; 16],
    /// The `bpf_fib_lookup` return code (`BPF_FIB_LKUP_RET_*`).
    pub fib_rc: u32,
    /// The MTU of a Packet Too Big to send (0: none).
    pub too_big_mtu: u32,
    /// The frame's length as received.
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<ExplainTrail>() == 208);
// The program copies the flow key a word at a time.
const _: () = assert!(core::mem::offset_of!(ExplainTrail, flow_key) % 4 == 0);
