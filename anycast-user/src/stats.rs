//! Counters as operators see them: summed over CPUs, by name, and the
//! rates `anycast run` prints. The maps are `state::counters`.

use std::{collections::BTreeMap, time::Duration};

use anycast_common::{GlobalStat, GroupInfo};
use serde::Serialize;

use crate::group::GroupSettings;

/// Counters of one group, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    /// Group id.
    pub id: u32,
    /// Number of anycast addresses and prefixes in the group.
    pub addresses: u32,
    /// Its settings.
    #[serde(flatten)]
    pub settings: GroupSettings,
    /// Counters by name.
    #[serde(flatten)]
    pub counters: BTreeMap<&'static str, u64>,
}

impl GroupStats {
    /// Group `id`'s settings from its stored entry, with its counters.
    pub(crate) fn new(id: u32, info: &GroupInfo, counters: BTreeMap<&'static str, u64>) -> Self {
        GroupStats {
            id,
            addresses: info.addresses,
            settings: GroupSettings::of(info),
            counters,
        }
    }
}

/// A snapshot of every counter, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Global verdict counters by name ([`GlobalStat::name`]).
    pub global: BTreeMap<&'static str, u64>,
    /// Per-group counters by group name.
    pub groups: BTreeMap<String, GroupStats>,
}

/// The global counters `anycast run` shows a rate of, in its order.
pub const RATE_COUNTERS: [GlobalStat; 11] = [
    GlobalStat::UnicastPassed,
    GlobalStat::AnycastSourceDropped,
    GlobalStat::AnycastSourceCounted,
    GlobalStat::AnycastDestined,
    GlobalStat::Redirected,
    GlobalStat::FlowHits,
    GlobalStat::FlowMisses,
    GlobalStat::FallbackPassed,
    GlobalStat::SpoofDropped,
    GlobalStat::MalformedPassed,
    GlobalStat::NonIpv6Passed,
];

impl Stats {
    /// One global counter (0 when the snapshot lacks it).
    pub fn global_counter(&self, stat: GlobalStat) -> u64 {
        self.global.get(stat.name()).copied().unwrap_or(0)
    }

    /// The rates of [`RATE_COUNTERS`] from `prev` to `self`, taken `every`
    /// apart: `name N/s` each, two spaces apart.
    pub fn rate_line(&self, prev: &Stats, every: Duration) -> String {
        let secs = every.as_secs_f64();
        RATE_COUNTERS
            .iter()
            .map(|&stat| {
                let d = self.global_counter(stat) - prev.global_counter(stat);
                format!("{stat} {:.0}/s", d as f64 / secs)
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_line_names_every_counter_per_second() {
        let mut prev = Stats::default();
        for stat in GlobalStat::ALL {
            prev.global.insert(stat.name(), 100);
        }
        let mut now = prev.clone();
        now.global.insert(GlobalStat::Redirected.name(), 300);
        now.global.insert(GlobalStat::FlowHits.name(), 102);
        let line = now.rate_line(&prev, Duration::from_secs(2));
        assert_eq!(
            line,
            "unicast_passed 0/s  anycast_source_drops 0/s  anycast_source_counted 0/s  \
             anycast_destined 0/s  redirected 100/s  flow_hits 1/s  flow_misses 0/s  \
             fallback_passed 0/s  spoof_drops 0/s  malformed_passed 0/s  non_ipv6_passed 0/s"
        );
    }
}
