//! Counters: per CPU, so plain (non-atomic) adds are safe.

use anycast_common::{GROUP_STAT_SLOTS, GlobalStat, GroupStat, MAX_GROUPS};
use aya_ebpf::programs::XdpContext;

use crate::{
    classify::Decision,
    maps::{GLOBAL_STATS, GROUP_STATS},
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
    // Group 0 means "none"; ids are clamped to the array by the map itself.
    if group == 0 || group >= MAX_GROUPS {
        return;
    }
    let idx = stat as usize;
    if idx >= GROUP_STAT_SLOTS {
        return;
    }
    if let Some(c) = GROUP_STATS.get_ptr_mut(group) {
        // SAFETY: as above; `idx` is checked against the array length.
        unsafe { (*c).counters[idx] += n };
    }
}

/// Adds the decision's counters.
#[inline(always)]
pub(crate) fn record(ctx: &XdpContext, d: &Decision) {
    add_global(d.stat, 1);
    if d.source_counted {
        add_global(GlobalStat::AnycastSourceCounted, 1);
        add_group(d.source_group, GroupStat::AnycastSourceCounted, 1);
    } else if d.source_group != 0 {
        add_group(d.source_group, GroupStat::AnycastSourceDrops, 1);
    }
    if d.dest_group != 0 {
        let bytes = (ctx.data_end() - ctx.data()) as u64;
        add_group(d.dest_group, GroupStat::DestinedPackets, 1);
        add_group(d.dest_group, GroupStat::DestinedBytes, bytes);
    }
}
