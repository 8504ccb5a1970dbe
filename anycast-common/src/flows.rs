//! The flow table's types: its key and entry, the fragment table that
//! keeps a datagram's fragments with its first, the flood guard's window,
//! and the flow epoch that flushes and flow caches agree on.

use bytemuck::{Pod, Zeroable};

/// Key of the flow table. For the protocols with ports (a first fragment's
/// included): addresses, protocol and ports; otherwise addresses and flow
/// label (`by_label` 1). A later fragment follows its datagram's
/// [`FragmentEntry`] instead, when there is one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    /// The group (host byte order).
    pub group_id: u32,
    /// Source address, network byte order.
    pub src: [u8; 16],
    /// Destination address, network byte order.
    pub dst: [u8; 16],
    /// Upper-layer protocol (0 when keyed by label).
    pub proto: u8,
    /// 1 when keyed by flow label, 0 by ports.
    pub by_label: u8,
    /// Reserved, zero.
    pub _pad: [u8; 2],
    /// Source and destination port (network byte order), or the flow label.
    pub tail: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 44);
// The XDP program writes the addresses as 32-bit words.
const _: () = assert!(
    core::mem::offset_of!(FlowKey, src) % 4 == 0 && core::mem::offset_of!(FlowKey, dst) % 4 == 0
);

/// Value of the flow table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowEntry {
    /// The member that took the flow.
    pub member_id: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// When the flow was last seen (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub last_seen_ns: u64,
}

/// Key of the fragment table: the fields every fragment of one datagram
/// carries alike (RFC 8200 section 4.5: source, destination and
/// Identification), in the anycast group of the destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FragmentKey {
    /// The group (host byte order).
    pub group_id: u32,
    /// Source address, network byte order.
    pub src: [u8; 16],
    /// Destination address, network byte order.
    pub dst: [u8; 16],
    /// The Fragment header's Identification (host byte order).
    pub id: u32,
}
const _: () = assert!(core::mem::size_of::<FragmentKey>() == 40);
// The XDP program writes the addresses as 32-bit words.
const _: () = assert!(
    core::mem::offset_of!(FragmentKey, src) % 4 == 0
        && core::mem::offset_of!(FragmentKey, dst) % 4 == 0
);

/// Value of the fragment table: the member a datagram's first fragment
/// went to, which its later fragments follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FragmentEntry {
    /// The member the first fragment went to.
    pub member_id: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// When the first fragment went (CLOCK_MONOTONIC, ns).
    pub first_ns: u64,
}

/// How long later fragments follow their first one: a destination
/// abandons a reassembly 60 seconds after the first fragment to arrive
/// (RFC 8200 section 4.5).
pub const FRAGMENT_TIMEOUT_NS: u64 = 60_000_000_000;

/// Capacity of the fragment table (LRU: the oldest datagrams go first).
pub const FRAGMENT_TABLE: u32 = 1 << 14;

/// Per-CPU flood-guard window.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FloodState {
    /// Start of the current one-second window (ns).
    pub window_start_ns: u64,
    /// New flows recorded in the window.
    pub new_flows: u64,
}

/// Whether flow epoch `epoch` says that a flush is walking the flow table
/// (odd). A flow cache then never puts an entry back into the table: the
/// walk may just have removed it. Otherwise a cached flow whose entry the
/// LRU evicted is put back, keeping its member (a busy cached flow touches
/// its entry only once a second, so the LRU sees it as less recent than it is).
pub const fn flow_epoch_in_flush(epoch: u32) -> bool {
    epoch & 1 == 1
}

/// The flow epoch after `epoch`: odd when a flush begins its walk, even for
/// any other change (the end of a flush, direct writes). Always a new value.
pub const fn next_flow_epoch(epoch: u32, flush_begins: bool) -> u32 {
    let next = epoch.wrapping_add(1);
    if flow_epoch_in_flush(next) == flush_begins {
        next
    } else {
        next.wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{flow_epoch_in_flush, next_flow_epoch};

    #[test]
    fn every_bump_is_new_and_only_a_beginning_flush_is_odd() {
        for e in [0, 1, 2, 3, 1000, 1001, u32::MAX - 2, u32::MAX - 1, u32::MAX] {
            for begins in [true, false] {
                let n = next_flow_epoch(e, begins);
                assert_ne!(n, e, "{e} {begins}");
                assert_eq!(flow_epoch_in_flush(n), begins, "{e} -> {n}");
                // Never further than needed: caches compare for equality only.
                assert!(n.wrapping_sub(e) <= 2, "{e} -> {n}");
            }
        }
        // A flush from a quiet table: odd during the walk, even after.
        let during = next_flow_epoch(0, true);
        assert_eq!((during, next_flow_epoch(during, false)), (1, 2));
    }
}
