//! The flow table as operators see it: its occupancy and its flows. The
//! map itself is `state::flows`.

use std::{collections::BTreeMap, net::Ipv6Addr};

use anycast_common::{FlowEntry, FlowKey, GroupInfo};
use serde::Serialize;

/// Occupancy of the flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowTableStats {
    /// Capacity (all groups together).
    pub capacity: u32,
    /// Entries present (live or idle past their timeout, not yet evicted).
    pub entries: u64,
    /// Entries seen within their group's timeout.
    pub live: u64,
    /// Entries the LRU dropped to make room: created, less present, less flushed.
    pub evictions: u64,
}

/// One flow as `flows list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowView {
    /// Group name.
    pub group: String,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination (anycast) address.
    pub dst: Ipv6Addr,
    /// Protocol (0 when keyed by flow label).
    pub proto: u8,
    /// Source port, or None when keyed by flow label.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// Flow label, when keyed by it.
    pub flow_label: Option<u32>,
    /// Member id holding the flow.
    pub member_id: u32,
    /// Name of the member holding the flow (`#ID` if it is gone).
    pub member: String,
    /// Seconds since last seen.
    pub idle_secs: f64,
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of
/// `bpf_ktime_get_coarse_ns`, which the data plane stamps flows with.
pub fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime writes into a timespec we own.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether flow `k` was seen within its group's timeout at `now`.
pub(crate) fn is_live(
    k: &FlowKey,
    e: &FlowEntry,
    groups: &BTreeMap<u32, GroupInfo>,
    now: u64,
) -> bool {
    let proto = if k.by_label == 0 { k.proto } else { 0 };
    groups
        .get(&k.group_id)
        .is_some_and(|g| now.saturating_sub(e.last_seen_ns) <= g.flow_timeout_ns(proto))
}

impl FlowView {
    /// Flow `k` as listed at `now`, its group named from `groups` and its
    /// member from `members` (names by id).
    pub(crate) fn new(
        k: &FlowKey,
        e: &FlowEntry,
        groups: &BTreeMap<u32, GroupInfo>,
        members: &BTreeMap<u32, String>,
        now: u64,
    ) -> Self {
        let by_label = k.by_label != 0;
        FlowView {
            group: groups
                .get(&k.group_id)
                .map(GroupInfo::name_str)
                .unwrap_or_default(),
            src: k.src.into(),
            dst: k.dst.into(),
            proto: k.proto,
            sport: (!by_label).then(|| u16::from_be_bytes([k.tail[0], k.tail[1]])),
            dport: (!by_label).then(|| u16::from_be_bytes([k.tail[2], k.tail[3]])),
            flow_label: by_label.then(|| u32::from_be_bytes(k.tail)),
            member_id: e.member_id,
            member: members
                .get(&e.member_id)
                .cloned()
                .unwrap_or_else(|| format!("#{}", e.member_id)),
            idle_secs: now.saturating_sub(e.last_seen_ns) as f64 / 1e9,
        }
    }
}
