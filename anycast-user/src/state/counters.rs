//! `GLOBAL_STATS` and `GROUP_STATS`: the data plane's per-CPU counters,
//! read summed over CPUs. (A member's counters are `state::members`.)

use std::collections::BTreeMap;

use anycast_common::{GlobalCounters, GlobalStat, GroupCounters, GroupStat, map_names};

use crate::{
    error::Result,
    maps::{MapSource, PerCpuArrayMap},
};

/// Owner of `GLOBAL_STATS` and `GROUP_STATS`.
pub(crate) struct Counters {
    global: PerCpuArrayMap<GlobalCounters>,
    groups: PerCpuArrayMap<GroupCounters>,
}

impl Counters {
    /// Takes the maps from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Counters {
            global: PerCpuArrayMap::take(src, map_names::GLOBAL_STATS)?,
            groups: PerCpuArrayMap::take(src, map_names::GROUP_STATS)?,
        })
    }

    /// One global counter.
    pub(crate) fn global(&self, stat: GlobalStat) -> Result<u64> {
        Ok(self
            .global
            .get(0)?
            .iter()
            .map(|c| c.counters[stat as usize])
            .sum())
    }

    /// Every global counter, by name.
    pub(crate) fn global_all(&self) -> Result<BTreeMap<&'static str, u64>> {
        let per_cpu = self.global.get(0)?;
        Ok(GlobalStat::ALL
            .into_iter()
            .map(|stat| {
                let sum = per_cpu.iter().map(|c| c.counters[stat as usize]).sum();
                (stat.name(), sum)
            })
            .collect())
    }

    /// Every counter of group `id`, by name.
    pub(crate) fn group_all(&self, id: u32) -> Result<BTreeMap<&'static str, u64>> {
        let per_cpu = self.groups.get(id)?;
        Ok(GroupStat::ALL
            .into_iter()
            .map(|stat| {
                let sum = per_cpu.iter().map(|c| c.counters[stat as usize]).sum();
                (stat.name(), sum)
            })
            .collect())
    }

    /// Zeroes group `id`'s counters (for a new group).
    pub(crate) fn reset_group(&mut self, id: u32) -> Result<()> {
        self.groups.zero(id)
    }
}
