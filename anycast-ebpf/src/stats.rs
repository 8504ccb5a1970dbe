//! Counters: per CPU, so plain (non-atomic) adds are safe.

use anycast_common::{GROUP_STAT_SLOTS, GlobalStat, GroupStat, MAX_GROUPS, MAX_MEMBERS};

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
    add_group_slot(group, stat as u32, n);
}

/// Adds `n` to counter `idx` of `group`.
#[inline(always)]
fn add_group_slot(group: u32, idx: u32, n: u64) {
    // Group 0 means "none".
    if group == 0 || group >= MAX_GROUPS {
        return;
    }
    // LLVM knows `idx` came from the enum and is in range, and would drop the
    // check below; the verifier sees the index merged from several paths and
    // needs it. The volatile read hides the range from LLVM.
    // SAFETY: reading a local.
    let idx = unsafe { core::ptr::read_volatile(&idx) } as usize;
    if idx >= GROUP_STAT_SLOTS {
        return;
    }
    if let Some(c) = GROUP_STATS.get_ptr_mut(group) {
        // SAFETY: as above; `idx` is checked against the array length.
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
        add_group(d.dst_group, GroupStat::DestinedPackets, 1);
        add_group(d.dst_group, GroupStat::DestinedBytes, d.bytes);
        add_group(d.dst_group, d.dst_stat, 1);
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
        if let Some((g, gs)) = flow {
            add_global(g, 1);
            add_group(d.dst_group, gs, 1);
        }
        if d.icmp_error && d.member != 0 {
            add_global(GlobalStat::IcmpErrorsSteered, 1);
            add_group(d.dst_group, GroupStat::IcmpErrorsSteered, 1);
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
