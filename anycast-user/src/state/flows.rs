//! `FLOWS`, the flow table, and the flow settings kept in `SETTINGS` (the
//! epoch that tells the per-CPU flow caches the table changed, the flood
//! guard's rate, the count of flushed entries), which the methods here
//! borrow from [`Settings`].

use std::collections::BTreeMap;

use anycast_common::{
    FlowEntry, FlowKey, GroupInfo, flow_epoch_in_flush, map_names, next_flow_epoch,
};

use super::settings::Settings;
use crate::{
    error::Result,
    flows::{FlowView, is_live},
    maps::{HashMapOf, MapSource},
};

/// Owner of `FLOWS`.
pub(crate) struct Flows {
    map: HashMapOf<FlowKey, FlowEntry>,
}

impl Flows {
    /// Takes the map from `src`.
    pub(crate) fn take(src: &mut MapSource<'_>) -> Result<Self> {
        Ok(Flows {
            map: HashMapOf::take_sized(src, map_names::FLOWS)?,
        })
    }

    /// Capacity of the flow table as created.
    pub(crate) fn capacity(&self) -> u32 {
        self.map.capacity()
    }

    fn each(&self, mut f: impl FnMut(FlowKey, FlowEntry)) -> Result<()> {
        for entry in self.map.iter_present() {
            let (k, e) = entry?;
            f(k, e);
        }
        Ok(())
    }

    /// The entry of flow `key`, if any; a failed lookup reads as none.
    #[cfg(feature = "test-support")]
    pub(crate) fn entry(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.map.get(key).ok().flatten()
    }

    /// Live flows per member id (`groups`: every group, by id).
    pub(crate) fn per_member(
        &self,
        groups: &BTreeMap<u32, GroupInfo>,
        now: u64,
    ) -> Result<BTreeMap<u32, u64>> {
        let mut out = BTreeMap::new();
        self.each(|k, e| {
            if is_live(&k, &e, groups, now) {
                *out.entry(e.member_id).or_default() += 1;
            }
        })?;
        Ok(out)
    }

    /// Entries present, and those of them live.
    pub(crate) fn occupancy(
        &self,
        groups: &BTreeMap<u32, GroupInfo>,
        now: u64,
    ) -> Result<(u64, u64)> {
        let (mut entries, mut live) = (0, 0);
        self.each(|k, e| {
            entries += 1;
            if is_live(&k, &e, groups, now) {
                live += 1;
            }
        })?;
        Ok((entries, live))
    }

    /// Up to `limit` flows, of group id `group` or all (`members`: member
    /// names by id).
    pub(crate) fn list(
        &self,
        groups: &BTreeMap<u32, GroupInfo>,
        members: &BTreeMap<u32, String>,
        group: Option<u32>,
        limit: usize,
        now: u64,
    ) -> Result<Vec<FlowView>> {
        let mut out = Vec::new();
        self.each(|k, e| {
            if out.len() >= limit || group.is_some_and(|g| g != k.group_id) {
                return;
            }
            out.push(FlowView::new(&k, &e, groups, members, now));
        })?;
        Ok(out)
    }

    /// Forgets the flows of every group id for which `which` holds, in one
    /// walk of the table; returns how many.
    pub(crate) fn flush_where(
        &mut self,
        settings: &mut Settings,
        which: impl Fn(u32) -> bool,
    ) -> Result<u64> {
        Self::begin_flush(settings)?;
        let removed = self.remove_unannounced(|k| which(k.group_id));
        // Even after a failed removal: the caches must not keep answering
        // for flows the table may have lost.
        Self::end_flush(settings, *removed.as_ref().unwrap_or(&0))?;
        removed
    }

    /// A flush's first step: the flow caches stop answering for the table
    /// as it was, and put nothing back into it until [`Self::end_flush`]
    /// (the epoch is odd).
    pub(crate) fn begin_flush(settings: &mut Settings) -> Result<()> {
        Self::bump_epoch(settings, true, 0)
    }

    /// A flush's last step: nothing a cache remembered during the walk
    /// survives it, and caches may put back entries the LRU evicts again.
    /// Counts `removed` entries as flushed.
    pub(crate) fn end_flush(settings: &mut Settings, removed: u64) -> Result<()> {
        Self::bump_epoch(settings, false, removed)
    }

    /// `Settings::flow_epoch`: odd while a flush walks the flow table.
    pub(crate) fn epoch(settings: &Settings) -> Result<u32> {
        Ok(settings.get()?.flow_epoch)
    }

    /// Ends a flush that a killed process left half done (the epoch odd), so
    /// that caches put back evicted entries again. Call with the pin lock
    /// held: no flush is under way then.
    pub(crate) fn settle_epoch(settings: &mut Settings) -> Result<()> {
        if flow_epoch_in_flush(Self::epoch(settings)?) {
            Self::end_flush(settings, 0)?;
        }
        Ok(())
    }

    /// How many entries flushes have removed, ever.
    pub(crate) fn flushed(settings: &Settings) -> Result<u64> {
        Ok(settings.get()?.flows_flushed)
    }

    /// Removes the flows for whose key `which` holds, in one walk of the
    /// table, without telling the per-CPU flow caches; returns how many.
    /// Between [`Self::begin_flush`] and [`Self::end_flush`] it is a
    /// flush's walk; alone, it does to the table what LRU evictions do.
    pub(crate) fn remove_unannounced(&mut self, which: impl Fn(&FlowKey) -> bool) -> Result<u64> {
        let mut keys = Vec::new();
        self.each(|k, _| {
            if which(&k) {
                keys.push(k);
            }
        })?;
        let mut n = 0;
        for k in keys {
            if self.map.remove_if_present(&k)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes flow-table entries directly, `(key, member id, last seen)`,
    /// and tells the caches.
    #[cfg(feature = "test-support")]
    pub(crate) fn record(
        &mut self,
        settings: &mut Settings,
        flows: impl IntoIterator<Item = (FlowKey, u32, u64)>,
    ) -> Result<()> {
        for (key, member_id, last_seen_ns) in flows {
            let e = FlowEntry {
                member_id,
                _pad: 0,
                last_seen_ns,
            };
            self.map.insert(key, e, 0)?;
        }
        Self::bump_epoch(settings, false, 0)
    }

    /// Tells the data plane's per-CPU flow caches that the flow table was
    /// changed from here, or that a flush begins its walk (see
    /// `Settings::flow_epoch`), and counts `flushed` entries removed.
    fn bump_epoch(settings: &mut Settings, flush_begins: bool, flushed: u64) -> Result<()> {
        settings.update(|s| {
            s.flows_flushed += flushed;
            s.flow_epoch = next_flow_epoch(s.flow_epoch, flush_begins);
        })
    }

    /// The flood guard's rate (new flows recorded per second per CPU; 0: no limit).
    pub(crate) fn flood_rate(settings: &Settings) -> Result<u32> {
        Ok(settings.get()?.flood_rate)
    }

    /// Sets the flood guard's rate.
    pub(crate) fn set_flood_rate(settings: &mut Settings, rate: u32) -> Result<()> {
        settings.update(|s| s.flood_rate = rate)
    }
}
