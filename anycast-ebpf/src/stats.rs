//! Recording: every counter a packet moves is added here, at one point per
//! verdict ([`record_final`], [`record_steered`]), to per-CPU arrays, so
//! plain (non-atomic) adds are safe. Each packet looks up each counter map
//! it touches once, and adds to exactly one final global counter.

use anycast_common::{
    GLOBAL_STAT_SLOTS, GROUP_STAT_SLOTS, GlobalCounters, GlobalStat, GroupCounters, GroupStat,
    MAX_GROUPS, MAX_MEMBERS,
};

use crate::{
    maps::{GLOBAL_STATS, GROUP_STATS, MEMBER_STATS},
    verdict::{Final, FlowOutcome, Source, Steered, Target},
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

/// Adds the source's counters: its group's, and the global observation of
/// a passed anycast source.
#[inline(always)]
fn add_source(g: Option<*mut GlobalCounters>, source: &Source) {
    if source.group == 0 {
        return;
    }
    if let (Some(g), Some(stat)) = (g, source.extra()) {
        add_global(g, stat, 1);
    }
    if let Some(c) = group_counters(source.group) {
        add_group(c, source.stat, 1);
    }
}

/// Counts a verdict reached before acting.
#[inline(always)]
pub(crate) fn record_final(v: &Final) {
    let g = globals();
    if let Some(g) = g {
        add_global(g, v.stat, 1);
    }
    add_source(g, &v.source);
}

/// Counts a steered packet: its final outcome, its source, its
/// destination group, the flow table's part and its member.
#[inline(always)]
pub(crate) fn record_steered(t: &Target, s: &Steered) {
    let flow = match s.flow {
        FlowOutcome::None => None,
        FlowOutcome::Hit | FlowOutcome::HitRestored => {
            Some((GlobalStat::FlowHits, GroupStat::FlowHits))
        }
        FlowOutcome::Recorded | FlowOutcome::Created => {
            Some((GlobalStat::FlowMisses, GroupStat::FlowMisses))
        }
        FlowOutcome::Bypassed => Some((GlobalStat::FloodBypasses, GroupStat::FloodBypasses)),
    };
    let icmp_error = s.icmp_error && s.member != 0;
    let g = globals();
    if let Some(g) = g {
        add_global(g, s.stat, 1);
        add_global(g, GlobalStat::AnycastDestined, 1);
        match s.flow {
            FlowOutcome::Created => add_global(g, GlobalStat::FlowEntriesCreated, 1),
            FlowOutcome::HitRestored => add_global(g, GlobalStat::FlowEntriesRestored, 1),
            _ => {}
        }
        if let Some((stat, _)) = flow {
            add_global(g, stat, 1);
        }
        if icmp_error {
            add_global(g, GlobalStat::IcmpErrorsSteered, 1);
        }
    }
    add_source(g, &t.source);
    // One lookup for all of the group's counters of this packet.
    if let Some(c) = group_counters(t.group) {
        add_group(c, GroupStat::DestinedPackets, 1);
        add_group(c, GroupStat::DestinedBytes, t.bytes);
        add_group(c, s.group_stat, 1);
        if let Some((_, stat)) = flow {
            add_group(c, stat, 1);
        }
        if icmp_error {
            add_group(c, GroupStat::IcmpErrorsSteered, 1);
        }
    }
    if s.member != 0 && s.member < MAX_MEMBERS {
        if let Some(c) = MEMBER_STATS.get_ptr_mut(s.member) {
            // SAFETY: a per-CPU slot, as above.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += t.bytes;
            }
        }
    }
}
