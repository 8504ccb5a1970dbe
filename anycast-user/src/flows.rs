//! The flow table as operators see it: occupancy, flows per member, a
//! listing, flushing, and the flood guard's rate.

use std::{collections::BTreeMap, net::Ipv6Addr};

use anycast_common::{FlowEntry, FlowKey, GroupInfo, map_names};
use aya::maps::MapError;
use serde::Serialize;

use crate::{
    error::Result,
    state::{State, map_err},
};

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

fn is_live(k: &FlowKey, e: &FlowEntry, groups: &BTreeMap<u32, GroupInfo>, now: u64) -> bool {
    let proto = if k.by_label == 0 { k.proto } else { 0 };
    groups
        .get(&k.group_id)
        .is_some_and(|g| now.saturating_sub(e.last_seen_ns) <= g.flow_timeout_ns(proto))
}

impl State {
    fn group_map(&self) -> Result<BTreeMap<u32, GroupInfo>> {
        Ok(self.groups_in_use()?.into_iter().collect())
    }

    fn each_flow(&self, mut f: impl FnMut(FlowKey, FlowEntry)) -> Result<()> {
        for entry in self.flows.iter() {
            match entry {
                Ok((k, e)) => f(k, e),
                // An LRU entry may vanish between two steps of the walk.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(map_names::FLOWS)(e)),
            }
        }
        Ok(())
    }

    /// Live flows per member id.
    pub fn flows_per_member(&self) -> Result<BTreeMap<u32, u64>> {
        let groups = self.group_map()?;
        let now = monotonic_ns();
        let mut out = BTreeMap::new();
        self.each_flow(|k, e| {
            if is_live(&k, &e, &groups, now) {
                *out.entry(e.member_id).or_default() += 1;
            }
        })?;
        Ok(out)
    }

    /// Occupancy of the flow table.
    pub fn flow_table_stats(&self) -> Result<FlowTableStats> {
        let groups = self.group_map()?;
        let now = monotonic_ns();
        let mut st = FlowTableStats {
            capacity: self.flow_capacity,
            ..FlowTableStats::default()
        };
        self.each_flow(|k, e| {
            st.entries += 1;
            if is_live(&k, &e, &groups, now) {
                st.live += 1;
            }
        })?;
        // Entries made: new flows, and cached flows put back after an eviction.
        let created = self.global_counter(anycast_common::GlobalStat::FlowEntriesCreated)?
            + self.global_counter(anycast_common::GlobalStat::FlowEntriesRestored)?;
        let flushed = self.settings_value()?.flows_flushed;
        st.evictions = created.saturating_sub(st.entries + flushed);
        Ok(st)
    }

    /// Up to `limit` flows, of one group or all.
    pub fn list_flows(&self, group: Option<u32>, limit: usize) -> Result<Vec<FlowView>> {
        let groups = self.group_map()?;
        let now = monotonic_ns();
        let mut out = Vec::new();
        self.each_flow(|k, e| {
            if out.len() >= limit || group.is_some_and(|g| g != k.group_id) {
                return;
            }
            let by_label = k.by_label != 0;
            out.push(FlowView {
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
                idle_secs: now.saturating_sub(e.last_seen_ns) as f64 / 1e9,
            });
        })?;
        Ok(out)
    }

    /// Forgets the flows of one group, or all; returns how many.
    pub fn flush_flows(&mut self, group: Option<u32>) -> Result<u64> {
        self.flush_flows_where(|g| group.is_none_or(|x| x == g))
    }

    /// Forgets the flows of every group id for which `which` holds, in one
    /// walk of the table; returns how many.
    pub(crate) fn flush_flows_where(&mut self, which: impl Fn(u32) -> bool) -> Result<u64> {
        self.begin_flows_flush()?;
        let removed = self.remove_flows_unannounced(|k| which(k.group_id));
        // Even after a failed removal: the caches must not keep answering
        // for flows the table may have lost.
        self.end_flows_flush(*removed.as_ref().unwrap_or(&0))?;
        removed
    }

    /// A flush's first step: the flow caches stop answering for the table
    /// as it was, and put nothing back into it until [`Self::end_flows_flush`]
    /// (the epoch is odd). The steps are public so that tests can send
    /// packets between them.
    pub fn begin_flows_flush(&mut self) -> Result<()> {
        self.bump_flow_epoch(true, 0)
    }

    /// A flush's last step: nothing a cache remembered during the walk
    /// survives it, and caches may put back entries the LRU evicts again.
    /// Counts `removed` entries as flushed.
    pub fn end_flows_flush(&mut self, removed: u64) -> Result<()> {
        self.bump_flow_epoch(false, removed)
    }

    /// `Settings::flow_epoch`: odd while a flush walks the flow table.
    pub fn flow_epoch(&self) -> Result<u32> {
        Ok(self.settings_value()?.flow_epoch)
    }

    /// Ends a flush that a killed process left half done (the epoch odd), so
    /// that caches put back evicted entries again. Call with the pin lock
    /// held: no flush is under way then.
    pub(crate) fn settle_flow_epoch(&mut self) -> Result<()> {
        if anycast_common::flow_epoch_in_flush(self.flow_epoch()?) {
            self.end_flows_flush(0)?;
        }
        Ok(())
    }

    /// Removes the flows for whose key `which` holds, in one walk of the
    /// table, without telling the per-CPU flow caches; returns how many.
    /// Between [`Self::begin_flows_flush`] and [`Self::end_flows_flush`] it
    /// is a flush's walk; alone, it does to the table what LRU evictions do
    /// (for tests of both).
    pub fn remove_flows_unannounced(&mut self, which: impl Fn(&FlowKey) -> bool) -> Result<u64> {
        let mut keys = Vec::new();
        self.each_flow(|k, _| {
            if which(&k) {
                keys.push(k);
            }
        })?;
        let mut n = 0;
        for k in keys {
            match self.flows.remove(&k) {
                Ok(()) => n += 1,
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(map_names::FLOWS)(e)),
            }
        }
        Ok(n)
    }

    /// Tells the data plane's per-CPU flow caches that the flow table was
    /// changed from here, or that a flush begins its walk (see
    /// `Settings::flow_epoch`), and counts `flushed` entries removed.
    fn bump_flow_epoch(&mut self, flush_begins: bool, flushed: u64) -> Result<()> {
        let mut s = self.settings_value()?;
        s.flows_flushed += flushed;
        s.flow_epoch = anycast_common::next_flow_epoch(s.flow_epoch, flush_begins);
        self.set_settings(s)
    }

    /// The flood guard's rate (new flows recorded per second per CPU; 0: no limit).
    pub fn flood_rate(&self) -> Result<u32> {
        Ok(self.settings_value()?.flood_rate)
    }

    /// Sets the flood guard's rate.
    pub fn set_flood_rate(&mut self, rate: u32) -> Result<()> {
        let mut s = self.settings_value()?;
        s.flood_rate = rate;
        self.set_settings(s)
    }
}

impl State {
    /// The flow table's entry for `key`, if any.
    pub fn flow_entry(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.flows.get(key, 0).ok()
    }
}

impl State {
    /// Writes flow-table entries directly, `(key, member id, last seen)`
    /// (for tests and benchmarks that need a table with many live flows).
    pub fn record_flows(
        &mut self,
        flows: impl IntoIterator<Item = (FlowKey, u32, u64)>,
    ) -> Result<()> {
        for (key, member_id, last_seen_ns) in flows {
            let e = FlowEntry {
                member_id,
                _pad: 0,
                last_seen_ns,
            };
            self.flows
                .insert(key, e, 0)
                .map_err(map_err(map_names::FLOWS))?;
        }
        self.bump_flow_epoch(false, 0)
    }
}

impl State {
    /// Whether the data plane's prefilter is on (it is off when more
    /// distinct prefix lengths are configured than it covers).
    pub fn prefilter_active(&self) -> Result<bool> {
        Ok(self.settings_value()?.prefilter != 0)
    }
}
