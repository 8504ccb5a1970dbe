//! Counters: per CPU, so plain (non-atomic) adds are safe.

use anycast_common::{
    GROUP_STAT_SLOTS, GlobalStat, GroupCounters, GroupStat, MAX_GROUPS, MAX_MEMBERS,
};

use crate::{
    classify::{Decision, FlowOutcome},
    maps::{GLOBAL_STATS, GROUP_STATS, MEMBER_STATS},
};

#[inline(always)]
fn add_global(stat: GlobalStat, n: u64) {
    if let Some(c) = GLOBAL_STATS.get_ptr_mut(stat as u32) {
        // SAFETY: a per-CPU slot, written only by this CPU while the program runs.
        unsafe { *c += n };
    }
}

#[inline(always)]
fn add_group(group: u32, stat: GroupStat, n: u64) {
    if let Some(c) = group_counters(group) {
        add_slot(c, stat as u32, n);
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

/// Adds `n` to counter `idx` of a group's counters `c`.
#[inline(always)]
fn add_slot(c: *mut GroupCounters, idx: u32, n: u64) {
    // LLVM knows `idx` came from the enum and is in range, and would drop the
    // check below; the verifier sees the index merged from several paths and
    // needs it. The volatile read hides the range from LLVM.
    // SAFETY: reading a local.
    let idx = unsafe { core::ptr::read_volatile(&idx) } as usize;
    if idx < GROUP_STAT_SLOTS {
        // SAFETY: a per-CPU slot, written only by this CPU while the program
        // runs; `idx` is checked against the array length.
        unsafe { (*c).counters[idx] += n };
    }
}

/// Counts a packet passed with nothing but a global counter.
#[inline(always)]
pub(crate) fn count(stat: GlobalStat) {
    add_global(stat, 1);
}

/// Counts an anycast source of `group` dropped on an edge interface.
#[inline(always)]
pub(crate) fn count_edge_source_drop(group: u32) {
    add_global(GlobalStat::AnycastSourceDropped, 1);
    add_group(group, GroupStat::AnycastSourceDrops, 1);
}

/// Adds the decision's counters.
#[inline(always)]
pub(crate) fn record(d: &Decision) {
    add_global(d.stat, 1);
    if d.source_counted {
        add_global(GlobalStat::AnycastSourceCounted, 1);
    }
    if d.member_source {
        add_global(GlobalStat::MemberSourcePassed, 1);
    }
    add_group(d.src_group, d.src_stat, 1);
    if d.dst_group != 0 {
        add_global(GlobalStat::AnycastDestined, 1);
        let flow = match d.flow {
            FlowOutcome::None => None,
            FlowOutcome::Hit => Some((GlobalStat::FlowHits, GroupStat::FlowHits)),
            FlowOutcome::Recorded => Some((GlobalStat::FlowMisses, GroupStat::FlowMisses)),
            FlowOutcome::Created => {
                add_global(GlobalStat::FlowEntriesCreated, 1);
                Some((GlobalStat::FlowMisses, GroupStat::FlowMisses))
            }
            FlowOutcome::Bypassed => Some((GlobalStat::FloodBypasses, GroupStat::FloodBypasses)),
        };
        let icmp_error = d.icmp_error && d.member != 0;
        if let Some((g, _)) = flow {
            add_global(g, 1);
        }
        if icmp_error {
            add_global(GlobalStat::IcmpErrorsSteered, 1);
        }
        // One lookup for all of the group's counters of this packet.
        if let Some(c) = group_counters(d.dst_group) {
            // SAFETY: a per-CPU slot, as above; constant in-range indices.
            unsafe {
                (*c).counters[GroupStat::DestinedPackets as usize] += 1;
                (*c).counters[GroupStat::DestinedBytes as usize] += d.bytes;
            }
            add_slot(c, d.dst_stat as u32, 1);
            if let Some((_, gs)) = flow {
                add_slot(c, gs as u32, 1);
            }
            if icmp_error {
                add_slot(c, GroupStat::IcmpErrorsSteered as u32, 1);
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
