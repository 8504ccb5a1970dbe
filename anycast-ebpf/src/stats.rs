//! Counters: per CPU, so plain (non-atomic) adds are safe. Each packet
//! looks up each counter map it touches once.

use anycast_common::{
    GLOBAL_STAT_SLOTS, GROUP_STAT_SLOTS, GlobalCounters, GlobalStat, GroupCounters, GroupStat,
    MAX_GROUPS, MAX_MEMBERS,
};

use crate::{
    classify::{Decision, FlowOutcome},
    maps::{GLOBAL_STATS, GROUP_STATS, MEMBER_STATS},
};

/// Index `idx` of a counter array of `len` slots, checked. LLVM knows an
/// index that came from an enum is in range and would drop the check; the
/// verifier sees the index merged from several paths and needs it. The
/// volatile read hides the range from LLVM.
#[inline(always)]
fn checked(idx: u32, len: usize) -> Option<usize> {
    // SAFETY: reading a local.
    let idx = unsafe { core::ptr::read_volatile(&idx) } as usize;
    (idx < len).then_some(idx)
}

/// This CPU's global counters.
#[inline(always)]
fn globals() -> Option<*mut GlobalCounters> {
    GLOBAL_STATS.get_ptr_mut(0)
}

/// Adds `n` to global counter `stat` of `g`.
#[inline(always)]
fn add_global(g: *mut GlobalCounters, stat: GlobalStat, n: u64) {
    if let Some(i) = checked(stat as u32, GLOBAL_STAT_SLOTS as usize) {
        // SAFETY: a per-CPU slot, written only by this CPU while the program
        // runs; `i` is checked against the array length.
        unsafe { (*g).counters[i] += n };
    }
}

/// This CPU's counters of `group` (0 means "none").
#[inline(always)]
fn group_counters(group: u32) -> Option<*mut GroupCounters> {
    if group == 0 || group >= MAX_GROUPS {
        return None;
    }
    GROUP_STATS.get_ptr_mut(group)
}

/// Adds `n` to counter `stat` of a group's counters `c`.
#[inline(always)]
fn add_group(c: *mut GroupCounters, stat: GroupStat, n: u64) {
    if let Some(i) = checked(stat as u32, GROUP_STAT_SLOTS) {
        // SAFETY: as in `add_global`.
        unsafe { (*c).counters[i] += n };
    }
}

/// Counts a packet passed with nothing but a global counter.
#[inline(always)]
pub(crate) fn count(stat: GlobalStat) {
    if let Some(g) = globals() {
        add_global(g, stat, 1);
    }
}

/// Counts an anycast source of `group` dropped on an edge interface.
#[inline(always)]
pub(crate) fn count_edge_source_drop(group: u32) {
    count(GlobalStat::AnycastSourceDropped);
    if let Some(c) = group_counters(group) {
        add_group(c, GroupStat::AnycastSourceDrops, 1);
    }
}

/// Adds the decision's counters.
#[inline(always)]
pub(crate) fn record(d: &Decision) {
    let flow = match d.flow {
        FlowOutcome::None => None,
        FlowOutcome::Hit => Some((GlobalStat::FlowHits, GroupStat::FlowHits)),
        FlowOutcome::Recorded | FlowOutcome::Created => {
            Some((GlobalStat::FlowMisses, GroupStat::FlowMisses))
        }
        FlowOutcome::Bypassed => Some((GlobalStat::FloodBypasses, GroupStat::FloodBypasses)),
    };
    let icmp_error = d.icmp_error && d.member != 0;
    if let Some(g) = globals() {
        add_global(g, d.stat, 1);
        if d.source_counted {
            add_global(g, GlobalStat::AnycastSourceCounted, 1);
        }
        if d.member_source {
            add_global(g, GlobalStat::MemberSourcePassed, 1);
        }
        if d.dst_group != 0 {
            add_global(g, GlobalStat::AnycastDestined, 1);
            if d.flow == FlowOutcome::Created {
                add_global(g, GlobalStat::FlowEntriesCreated, 1);
            }
            if let Some((stat, _)) = flow {
                add_global(g, stat, 1);
            }
            if icmp_error {
                add_global(g, GlobalStat::IcmpErrorsSteered, 1);
            }
        }
    }
    if let Some(c) = group_counters(d.src_group) {
        add_group(c, d.src_stat, 1);
    }
    if d.dst_group != 0 {
        // One lookup for all of the group's counters of this packet.
        if let Some(c) = group_counters(d.dst_group) {
            add_group(c, GroupStat::DestinedPackets, 1);
            add_group(c, GroupStat::DestinedBytes, d.bytes);
            add_group(c, d.dst_stat, 1);
            if let Some((_, stat)) = flow {
                add_group(c, stat, 1);
            }
            if icmp_error {
                add_group(c, GroupStat::IcmpErrorsSteered, 1);
            }
        }
    }
    if d.member != 0 && d.member < MAX_MEMBERS {
        if let Some(c) = MEMBER_STATS.get_ptr_mut(d.member) {
            // SAFETY: a per-CPU slot, as above.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += d.bytes;
            }
        }
    }
}
